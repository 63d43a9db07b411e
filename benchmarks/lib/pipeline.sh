# Pipelining rows of benchmarks/pgbench.sh (issue 14). Sourced by it, not run
# on its own: it reads and fills pgbench.sh's globals (W_* arrays, KEYS,
# BENCH_DB, WORK, POOL_SIZE, THREADS, PSQL, LYNX_PORT, LYNX_ADMIN_PASSWORD).
#
# WORKLOADS groups added here:
#   pipeline  -S -c 100 in simple, extended and prepared mode, PgLynx at
#             pipeline_depth PIPE_DEPTHS (1 = off), each PgLynx run paired with
#             its own PgBouncer run (PgBouncer has no such setting: its column
#             is the same workload run once per depth row and pair)
#   mixed     95% pgbench's select-only script, 5% `SELECT pg_sleep(0.01)`
#             (-b select-only@95 -f slow.sql@5), -c 100, depth 1 and
#             PIPE_MIXED_DEPTH, each paired with PgBouncer: the fast
#             statements' p99 with and without pipelining
#   verify    PgLynx alone at depth 8, 100 clients, each transaction checks
#             that its reply carries its own random value (PIPE_MODES)
#   maxwait   PgLynx alone at depth PIPE_MIXED_DEPTH, pipeline_max_wait_ms in
#             PIPE_WAITS, on -S -c 100 and on the mixed workload
# Every run of these groups logs each transaction (pgbench -l): p50/p99 are
# nearest-rank percentiles over every transaction of the run, not progress
# averages. Each PgLynx setting is its own pool (same database and pool size)
# so one PgLynx process serves every row.

PIPE_DEPTHS=${PIPE_DEPTHS:-"1 2 4 8"}
PIPE_MIXED_DEPTH=${PIPE_MIXED_DEPTH:-4}
PIPE_WAITS=${PIPE_WAITS:-"1 2 5"}
# pipeline_max_wait_ms of the pipeline and mixed rows (PgLynx's default).
PIPE_MAX_WAIT=${PIPE_MAX_WAIT:-1}
# pgbench -M modes of the pipeline group.
PIPE_MODES=${PIPE_MODES:-"simple extended prepared"}
PIPE_CLIENTS=100

declare -A PIPE_POOLS  # pool name -> "depth wait prepared(0|1)"
declare -A W_GROUP W_DEPTH W_WAIT W_MODE W_LATENCY W_SOLO

pipe_pool() { # depth wait prepared: registers the pool for the config, its name in PIPE_POOL
  PIPE_POOL="${BENCH_DB}_d$1_w$2"
  [[ $3 == 1 ]] && PIPE_POOL="${BENCH_DB}_ps_d$1_w$2"
  PIPE_POOLS[$PIPE_POOL]="$1 $2 $3"
}

# pipe_key key group mode depth wait args label [solo]
pipe_key() {
  local key=$1 prepared=0
  [[ $3 == prepared ]] && prepared=1
  KEYS+=("$key")
  W_GROUP[$key]=$2; W_MODE[$key]=$3; W_DEPTH[$key]=$4; W_WAIT[$key]=$5
  W_ARGS[$key]=$6; W_LABEL[$key]=$7; W_LATENCY[$key]=1
  pipe_pool "$4" "$5" "$prepared"  # not in $(...): the registration must outlive it
  W_LYNX_DB[$key]=$PIPE_POOL
  [[ -n ${8:-} ]] && W_SOLO[$key]=1
  # PgBouncer 1.18 has no prepared statements in transaction mode (as the prepared row).
  [[ $3 == prepared ]] && W_BOUNCER_ARGS[$key]=${6/-M prepared/-M extended}
  return 0
}

MIXED_ARGS() { echo "-M simple -c $PIPE_CLIENTS -j $THREADS -b select-only@95 -f $WORK/slow.sql@5"; }

# Adds the keys of one group; returns 1 when the group is not one of these.
pipe_define_group() {
  local d w m
  case $1 in
    pipeline)
      for m in $PIPE_MODES; do
        for d in $PIPE_DEPTHS; do
          pipe_key "pipe_${m}_d$d" pipeline "$m" "$d" "$PIPE_MAX_WAIT" "-S -M $m -c $PIPE_CLIENTS -j $THREADS" \
            "\`-S -M $m -c $PIPE_CLIENTS\`$([[ $m == prepared ]] && echo ' (PgBouncer: `-M extended`)')"
        done
      done ;;
    mixed)
      for d in 1 "$PIPE_MIXED_DEPTH"; do
        pipe_key "mixed_d$d" mixed simple "$d" "$PIPE_MAX_WAIT" "$(MIXED_ARGS)" "mixed 5% pg_sleep(0.01), \`-c $PIPE_CLIENTS\`"
      done ;;
    maxwait)
      for w in $PIPE_WAITS; do
        pipe_key "wait_simple_w$w" maxwait simple "$PIPE_MIXED_DEPTH" "$w" "-S -M simple -c $PIPE_CLIENTS -j $THREADS" \
          "\`-S -c $PIPE_CLIENTS\`" solo
      done
      for w in $PIPE_WAITS; do
        pipe_key "wait_mixed_w$w" maxwait simple "$PIPE_MIXED_DEPTH" "$w" "$(MIXED_ARGS)" "mixed 5% pg_sleep(0.01)" solo
      done ;;
    verify)
      # Replies never cross clients: each transaction checks its own random
      # value (a mismatch divides by zero: the client aborts, reported).
      for m in $PIPE_MODES; do
        pipe_key "verify_$m" verify "$m" 8 "$PIPE_MAX_WAIT" "-M $m -c $PIPE_CLIENTS -j $THREADS -f $WORK/verify.sql" \
          "verify \`-M $m\`, depth 8" solo
      done ;;
    *) return 1 ;;
  esac
}

# The pools the defined keys need, as pgcat.toml sections (after the others).
pipe_pools_toml() {
  local name depth wait prepared
  for name in $(printf '%s\n' "${!PIPE_POOLS[@]}" | sort); do
    read -r depth wait prepared <<<"${PIPE_POOLS[$name]}"
    printf '\n[pools.%s]\npool_mode = "transaction"\npipeline_depth = %s\npipeline_max_wait_ms = %s\n' "$name" "$depth" "$wait"
    [[ $prepared == 1 ]] && printf 'prepared_statements_cache_size = 500\n'
    printf '\n[pools.%s.users.0]\nusername = "%s"\npassword = "%s"\npool_size = %s\n' "$name" "$BENCH_USER" "$BENCH_PASSWORD" "$POOL_SIZE"
    printf '\n[pools.%s.shards.0]\ndatabase = "%s"\nservers = [["127.0.0.1", %s, "primary"]]\n' "$name" "$BENCH_DB" "$PG_PORT"
  done
}

# Fills each pipelining pool's server connections before the runs (a cold
# pool's logins on a busy machine can exceed connect_timeout mid-run), with
# the pool saturated so pipelining paths run too.
pipe_warmup() {
  local name depth wait prepared
  for name in $(printf '%s\n' "${!PIPE_POOLS[@]}" | sort); do
    read -r depth wait prepared <<<"${PIPE_POOLS[$name]}"
    log "warm-up [pglynx $name] 2 s"
    "$PGBENCH" -n -S -M "$([[ $prepared == 1 ]] && echo prepared || echo simple)" -c 40 -j "$THREADS" -T 2 \
      -h 127.0.0.1 -p "$LYNX_PORT" -U "$BENCH_USER" "$name" >/dev/null 2>&1 || true
  done
}

# The slow script of the mixed workload.
pipe_write_scripts() {
  printf 'SELECT pg_sleep(0.01);\n' >"$WORK/slow.sql"
  cat >"$WORK/verify.sql" <<'SQL'
\set r random(1, 1000000000)
SELECT :r::int AS v, abalance FROM pgbench_accounts WHERE aid = 1 + :r % 100000 \gset
\if :v != :r
SELECT 1 / 0 AS reply_of_another_client;
\endif
SQL
}

# SHOW POOLS' pipelined column (units queued behind another since start) for one pool.
# Empty when the admin console does not answer (its error goes to $WORK/admin.err).
lynx_pipelined() {
  { PGPASSWORD=$LYNX_ADMIN_PASSWORD "$PSQL" -X -A -F'|' -h 127.0.0.1 -p "$LYNX_PORT" -U admin -d pgbouncer \
    -c 'SHOW POOLS' 2>>"$WORK/admin.err" || true; } | awk -F'|' -v db="$1" '
      NR == 1 { for (i = 1; i <= NF; i++) { if ($i == "pipelined") c = i; if ($i == "database") d = i } next }
      c && $d == db { s += $c } END { print (c ? s + 0 : "") }'
}

# Nearest-rank p50 and p99 (ms) of the latencies (µs) on stdin, and their count.
percentiles() {
  sort -n | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "- - 0"; exit }
    i50 = int(NR * 0.50); if (i50 < NR * 0.50) i50++; if (i50 < 1) i50 = 1
    i99 = int(NR * 0.99); if (i99 < NR * 0.99) i99++; if (i99 < 1) i99 = 1
    printf "%.3f %.3f %d\n", v[i50] / 1000, v[i99] / 1000, NR }'
}

# From pgbench's per-transaction logs `prefix*` (client tx latency_us script
# epoch us ...): "p50 p99 fast_p50 fast_p99 slow_count" where fast is script 0
# (the select-only script of the mixed workload; every transaction elsewhere).
log_latency() {
  local prefix=$1 all fast slow a50 a99 f50 f99
  # No log (pgbench failed to start): "- - - - 0".
  all=$({ cat "$prefix".* 2>/dev/null || true; } | awk '$3 ~ /^[0-9]+$/ { print $3 }' | percentiles)
  fast=$({ cat "$prefix".* 2>/dev/null || true; } | awk '$3 ~ /^[0-9]+$/ && $4 == 0 { print $3 }' | percentiles)
  slow=$({ cat "$prefix".* 2>/dev/null || true; } | awk '$4 == 1' | wc -l)
  read -r a50 a99 _ <<<"$all"
  read -r f50 f99 _ <<<"$fast"
  echo "$a50 $a99 $f50 $f99 $slow"
}

# --- report ------------------------------------------------------------------
# Values of one metric array (TPS CPU P50 P99 F50 F99 PIPED) over the pairs.
mvals() { # key target array
  local -n arr=$3
  local p out=""
  for p in $(seq "$PAIRS"); do out+="${arr[$1,$2,$p]:-} "; done
  echo "$out"
}
# Per-pair ratios arr[keyA,targetA,p] / arr[keyB,targetB,p].
mratios() { # keyA targetA keyB targetB array
  local -n arr=$5
  local p a b
  for p in $(seq "$PAIRS"); do
    a=${arr[$1,$2,$p]:-}; b=${arr[$3,$4,$p]:-}
    [[ -n $a && -n $b && $a != - && $b != - ]] && awk -v a="$a" -v b="$b" 'BEGIN { if (b > 0) printf "%.3f ", a / b }'
  done
}
med() { mvals "$@" | median; }
p2() { fmt2 "$(med "$@")"; }

pipe_keys_of() { local k; for k in "${KEYS[@]}"; do [[ ${W_GROUP[$k]:-} == "$1" ]] && echo "$k"; done; return 0; }

pipe_report() {
  local k shown=0
  if [[ -n $(pipe_keys_of pipeline) ]]; then
    shown=1
    echo "### Pipelining: pool $POOL_SIZE, $PIPE_CLIENTS clients, PgLynx pipeline_depth $PIPE_DEPTHS (1 = off; pipeline_max_wait_ms $PIPE_MAX_WAIT)"
    echo
    echo "Each PgLynx run is paired with its own PgBouncer run (PgBouncer has no such setting: its columns are the same workload, run"
    echo "once per row and pair, so they show its spread too). Latency: nearest-rank p50/p99 over every transaction of the run (pgbench -l),"
    echo "median over the pairs. \`pipelined\`: units queued behind another (SHOW POOLS) per transaction of the run."
    echo
    echo "| workload | depth | PgLynx tps | PgBouncer tps | tps ratio | PgLynx CPU µs/tx | PgBouncer CPU µs/tx | CPU ratio | PgLynx p50 / p99 ms | PgBouncer p50 / p99 ms | p99 ratio | pipelined |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for k in $(pipe_keys_of pipeline); do
      echo "| ${W_LABEL[$k]} | ${W_DEPTH[$k]} | $(fmt0 "$(med "$k" pglynx TPS)") | $(fmt0 "$(med "$k" pgbouncer TPS)") | $(fmt2 "$(mratios "$k" pglynx "$k" pgbouncer TPS | median)") | $(fmt1 "$(med "$k" pglynx CPU)") | $(fmt1 "$(med "$k" pgbouncer CPU)") | $(fmt2 "$(mratios "$k" pglynx "$k" pgbouncer CPU | median)") | $(p2 "$k" pglynx P50) / $(p2 "$k" pglynx P99) | $(p2 "$k" pgbouncer P50) / $(p2 "$k" pgbouncer P99) | $(fmt2 "$(mratios "$k" pglynx "$k" pgbouncer P99 | median)") | $(p2 "$k" pglynx PIPED) |"
    done
    echo
    k=pipe_simple_d4
    if [[ -n ${W_GROUP[$k]:-} ]]; then
      local tr pr
      tr=$(mratios "$k" pglynx "$k" pgbouncer TPS | median); pr=$(mratios "$k" pglynx "$k" pgbouncer P99 | median)
      echo "Target (\`-S -c 100\`, depth 4): tps >= 1.2x PgBouncer's with p99 no worse: tps $(fmt2 "$tr")x, p99 $(fmt2 "$pr")x PgBouncer's:" \
        "$(awk -v t="$tr" -v p="$pr" 'BEGIN { print (t != "n/a" && p != "n/a" && t >= 1.2 && p <= 1.0) ? "**met**" : "**not met**" }')."
      echo
    fi
  fi
  if [[ -n $(pipe_keys_of mixed) ]]; then
    shown=1
    local d1=mixed_d1 dn=mixed_d$PIPE_MIXED_DEPTH
    echo "### Mixed workload: 95% \`-b select-only\`, 5% \`SELECT pg_sleep(0.01)\`, pool $POOL_SIZE, $PIPE_CLIENTS clients"
    echo
    echo "fast = the select-only transactions (script 0 of pgbench's log), all = every transaction; PgBouncer paired with each row."
    echo
    echo "| PgLynx pipeline_depth | PgLynx tps | PgBouncer tps | PgLynx fast p50 / p99 ms | PgBouncer fast p50 / p99 ms | PgLynx all p99 ms | PgBouncer all p99 ms | PgLynx CPU µs/tx | pipelined |"
    echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for k in $(pipe_keys_of mixed); do
      echo "| ${W_DEPTH[$k]} | $(fmt0 "$(med "$k" pglynx TPS)") | $(fmt0 "$(med "$k" pgbouncer TPS)") | $(p2 "$k" pglynx F50) / $(p2 "$k" pglynx F99) | $(p2 "$k" pgbouncer F50) / $(p2 "$k" pgbouncer F99) | $(p2 "$k" pglynx P99) | $(p2 "$k" pgbouncer P99) | $(fmt1 "$(med "$k" pglynx CPU)") | $(p2 "$k" pglynx PIPED) |"
    done
    echo
    if [[ -n ${W_GROUP[$dn]:-} && -n ${W_GROUP[$d1]:-} && $dn != "$d1" ]]; then
      local fr
      fr=$(mratios "$dn" pglynx "$d1" pglynx F99 | median)
      echo "Target: fast statements' p99 with pipelining (depth $PIPE_MIXED_DEPTH) within 1.2x of without (depth 1): $(fmt2 "$fr")x (median of per-pair ratios):" \
        "$(awk -v r="$fr" 'BEGIN { print (r != "n/a" && r <= 1.2) ? "**met**" : "**not met**" }')."
      echo
    fi
  fi
  if [[ -n $(pipe_keys_of maxwait) ]]; then
    shown=1
    echo "### pipeline_max_wait_ms (PgLynx alone, pipeline_depth $PIPE_MIXED_DEPTH, pool $POOL_SIZE, $PIPE_CLIENTS clients)"
    echo
    echo "The config takes whole milliseconds. Mixed rows: p50 / p99 of the fast (select-only) transactions."
    echo
    echo "| workload | pipeline_max_wait_ms | tps | CPU µs/tx | p50 / p99 ms | pipelined |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    for k in $(pipe_keys_of maxwait); do
      local a=P50 b=P99
      [[ $k == wait_mixed_* ]] && { a=F50; b=F99; }
      echo "| ${W_LABEL[$k]} | ${W_WAIT[$k]} | $(fmt0 "$(med "$k" pglynx TPS)") | $(fmt1 "$(med "$k" pglynx CPU)") | $(p2 "$k" pglynx $a) / $(p2 "$k" pglynx $b) | $(p2 "$k" pglynx PIPED) |"
    done
    echo
  fi
  if [[ -n $(pipe_keys_of verify) ]]; then
    echo "### Replies never cross clients (PgLynx alone, pipeline_depth 8, pool $POOL_SIZE, $PIPE_CLIENTS clients)"
    echo
    echo "Each transaction selects its own random value and checks the reply carries it (verify.sql); a wrong reply or any error aborts"
    echo "the client and shows under Problems."
    echo
    echo "| workload | runs clean | tps | pipelined |"
    echo "| --- | ---: | ---: | ---: |"
    local ok p
    for k in $(pipe_keys_of verify); do
      ok=0; for p in $(seq "$PAIRS"); do [[ ${RUN_OK[$k,pglynx,$p]:-0} == 1 ]] && ok=$((ok + 1)); done
      echo "| ${W_LABEL[$k]} | $ok of $PAIRS | $(fmt0 "$(med "$k" pglynx TPS)") | $(p2 "$k" pglynx PIPED) |"
    done
    echo
  fi
  return 0
}

# Every run of these groups: tps / CPU / p50 / p99 (mixed: fast p99) / pipelined.
pipe_runs_table() {
  local k p t cell
  [[ -n $(printf '%s\n' "${KEYS[@]}" | while read -r k; do [[ -n ${W_GROUP[$k]:-} ]] && echo y; done) ]] || return 0
  echo "Every pipelining run (tps / CPU µs per tx / p50 ms / p99 ms / fast p99 ms / pipelined per tx), by pair:"
  echo
  echo "| workload | pair | PgLynx | PgBouncer |"
  echo "| --- | ---: | ---: | ---: |"
  for k in "${KEYS[@]}"; do
    [[ -n ${W_GROUP[$k]:-} ]] || continue
    for p in $(seq "$PAIRS"); do
      cell=()
      for t in pglynx pgbouncer; do
        if [[ $t == pgbouncer && -n ${W_SOLO[$k]:-} ]]; then cell+=("-"); continue; fi
        cell+=("${TPS[$k,$t,$p]:-error} / ${CPU[$k,$t,$p]:-?} / ${P50[$k,$t,$p]:-?} / ${P99[$k,$t,$p]:-?} / ${F99[$k,$t,$p]:-?} / ${PIPED[$k,$t,$p]:--}")
      done
      echo "| $k | $p | ${cell[0]} | ${cell[1]} |"
    done
  done
  echo
}

# The report's setup lines for these groups.
pipe_setup_lines() {
  echo "- Pipelining rows: one PgLynx pool per setting (\`${BENCH_DB}_d<depth>_w<max wait>\`, \`${BENCH_DB}_ps_...\` with prepared"
  echo "  statements on), each pool_size $POOL_SIZE on the same database; every run logs each transaction (\`pgbench -l\`, also for"
  echo "  PgBouncer) and its p50/p99 are nearest-rank over all of them. Mixed: \`-b select-only@95 -f slow.sql@5\`, slow.sql ="
  echo "  \`$(cat "$WORK/slow.sql")\`. PgBouncer runs with \`-M extended\` where PgLynx runs \`-M prepared\` (1.18: none in transaction mode)."
}
