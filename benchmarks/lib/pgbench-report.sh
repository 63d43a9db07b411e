# The report of benchmarks/pgbench.sh (machine, versions, setup, tables,
# every run, commands, configs, problems), as markdown in $REPORT. Sourced
# by pgbench.sh after the runs: it reads that script's globals (TPS, CPU,
# SYS, KEYS, W_*, NOTES, COMMANDS...) and the pipelining tables of
# lib/pipeline.sh.

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END {
  if (NR == 0) { print "n/a"; exit } m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m }'; }
pair_ratios() { # key metric(TPS|CPU)
  local key=$1 p a b
  for p in $(seq "$PAIRS"); do
    if [[ $2 == TPS ]]; then a=${TPS[$key,pglynx,$p]}; b=${TPS[$key,pgbouncer,$p]}
    else a=${CPU[$key,pglynx,$p]}; b=${CPU[$key,pgbouncer,$p]}; fi
    [[ -n $a && -n $b ]] && awk -v a="$a" -v b="$b" 'BEGIN { if (b > 0) printf "%.3f ", a / b }'
  done
}
values() { # key target metric
  local p out=""
  for p in $(seq "$PAIRS"); do
    if [[ $3 == TPS ]]; then out+="${TPS[$1,$2,$p]} "; else out+="${CPU[$1,$2,$p]} "; fi
  done
  echo "$out"
}
fmt2() { awk -v x="$1" 'BEGIN { if (x == "n/a") print x; else printf "%.2f", x }'; }
fmt0() { awk -v x="$1" 'BEGIN { if (x == "n/a") print x; else printf "%.0f", x }'; }
fmt1() { awk -v x="$1" 'BEGIN { if (x == "n/a") print x; else printf "%.1f", x }'; }
first_line() { "$@" 2>&1 | head -n 1; }

pgbench_report() {
  [[ -s $WORK/admin.err ]] && NOTES+=("SHOW POOLS on PgLynx's admin console failed (no pipelined counts):"$'\n'"$(sort -u "$WORK/admin.err" | head -n 5 | sed 's/^/    /')")
  STAMP=$(date +%Y-%m-%d-%H%M%S)
  REPORT="$WORK/report.md"
  LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
  {
    echo "# PgLynx vs PgBouncer: pgbench, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "## Machine and versions"
    echo
    echo "- CPUs (\`nproc\`): $(nproc); $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1); memory $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    echo "- OS: $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r)"
    echo "- node: $(node --version)"
    echo "- pgbench: $(first_line "$PGBENCH" --version)"
    echo "- pgbouncer: $(first_line "$PGBOUNCER" --version)"
    echo "- postgres: $(first_line "$PG_BIN/postgres" --version)"
    echo "- PgLynx: $(node -p "require('$PGLYNX_ROOT/package.json').version") from $([[ $PGLYNX_ROOT == "$REPO_ROOT" ]] && echo "this checkout" || echo "$PGLYNX_ROOT") (commit $(git -C "$PGLYNX_ROOT" rev-parse --short HEAD 2>/dev/null || echo "unknown: not a git checkout")$(
      [[ -n $(git -C "$PGLYNX_ROOT" --no-optional-locks status --porcelain -- bin config pooler engine 2>/dev/null) ]] && echo ", plus uncommitted changes"))"
    echo "- before the runs: CPU ${IDLE_BEFORE}% idle over 3 s, load average (1/5/15 min) $LOAD_BEFORE; after: load average $LOAD_AFTER"
    echo
    echo "## Setup"
    echo
    echo "- One throwaway Postgres 15 cluster (max_connections 1200, shared_buffers 512MB, fsync/synchronous_commit/full_page_writes off),"
    echo "  \`pgbench -i -s $SCALE\`; both poolers on 127.0.0.1, every client login is md5."
    echo "- PgLynx and PgBouncer: transaction mode, pool size $POOL_SIZE server connections each. PgLynx's \`${BENCH_DB}_ps\` pool is the same"
    echo "  database with prepared statements on (\`prepared_statements_cache_size = 500\`), used by the \`-M prepared\` row only."
    echo "- Every run: ${DURATION} s, \`-n\` (no vacuum), select-only (\`-S\`), after a 3 s warm-up of each pooler. $PAIRS A/B pairs per"
    echo "  workload, PgLynx and PgBouncer interleaved, the order alternating from pair to pair."
    echo "- CPU per transaction: the pooler process's utime + stime (all threads, /proc/<pid>/stat, ${CLK_TCK} ticks/s) over the run,"
    echo "  divided by the transactions pgbench processed (with \`-C\` every transaction is a new connection: CPU per connection)."
    [[ -n $(pipe_keys_of pipeline)$(pipe_keys_of mixed)$(pipe_keys_of maxwait)$(pipe_keys_of verify) ]] && pipe_setup_lines
    echo "- Invocation: \`WORKLOADS=\"$WORKLOADS\" DURATION=$DURATION PAIRS=$PAIRS POOL_SIZE=$POOL_SIZE SCALE=$SCALE benchmarks/pgbench.sh\`${PGLYNX_NODE_ARGS:+ with PGLYNX_NODE_ARGS=\"$PGLYNX_NODE_ARGS\"}"
    echo
    echo "## Results"
    echo
    echo "Medians over $PAIRS pairs; ratios are PgLynx / PgBouncer, the median of the per-pair ratios (tps: above 1 is PgLynx faster; CPU: below 1 is PgLynx cheaper)."
    echo
    CLASSIC=()
    for w in "${KEYS[@]}"; do [[ -z ${W_GROUP[$w]:-} ]] && CLASSIC+=("$w"); done
    if [[ ${#CLASSIC[@]} -gt 0 ]]; then
      echo "| workload | PgLynx tps | PgBouncer tps | tps ratio | PgLynx CPU µs/tx | PgBouncer CPU µs/tx | CPU ratio |"
      echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    fi
    for w in "${CLASSIC[@]}"; do
      echo "| ${W_LABEL[$w]} | $(fmt0 "$(values "$w" pglynx TPS | median)") | $(fmt0 "$(values "$w" pgbouncer TPS | median)") | $(fmt2 "$(pair_ratios "$w" TPS | median)") | $(fmt1 "$(values "$w" pglynx CPU | median)") | $(fmt1 "$(values "$w" pgbouncer CPU | median)") | $(fmt2 "$(pair_ratios "$w" CPU | median)") |"
    done
    echo
    pipe_report
    if [[ ${#CLASSIC[@]} -gt 0 ]]; then
      echo "Every run (tps / CPU µs per transaction / share of that CPU in the kernel), by pair:"
      echo
      echo "| workload | pair | PgLynx | PgBouncer |"
      echo "| --- | ---: | ---: | ---: |"
    fi
    for w in "${CLASSIC[@]}"; do
      for p in $(seq "$PAIRS"); do
        echo "| $w | $p | ${TPS[$w,pglynx,$p]:-error} / ${CPU[$w,pglynx,$p]:-?} / ${SYS[$w,pglynx,$p]:-?} | ${TPS[$w,pgbouncer,$p]:-error} / ${CPU[$w,pgbouncer,$p]:-?} / ${SYS[$w,pgbouncer,$p]:-?} |"
      done
    done
    echo
    pipe_runs_table
    echo "## Commands"
    echo
    echo '```sh'
    echo "# Postgres"
    echo "runuser -u postgres -- initdb -D \$PGDATA -A trust -U postgres"
    echo "runuser -u postgres -- pg_ctl -D \$PGDATA -o \"-p $PG_PORT -k \$PGDATA -c listen_addresses=127.0.0.1\" -l \$PGDATA/log start"
    echo "PGPASSWORD=$BENCH_PASSWORD pgbench -i -s $SCALE -q -h 127.0.0.1 -p $PG_PORT -U $BENCH_USER $BENCH_DB"
    echo "# PgLynx (cwd: repo root) and PgBouncer"
    echo "${LYNX_CMD[*]}" | sed "s#$LYNX_DIR#\$WORK/pglynx#g"
    echo "runuser -u postgres -- sh -c 'ulimit -n $NOFILE && exec $PGBOUNCER \$WORK/pgbouncer/pgbouncer.ini'"
    echo "# pgbench runs, in order (port $LYNX_PORT = PgLynx, $BOUNCER_PORT = PgBouncer)"
    printf '%s\n' "${COMMANDS[@]}"
    echo '```'
    echo
    echo "<details><summary>Generated pgcat.toml and pgbouncer.ini</summary>"
    echo
    echo '```toml'
    sed 's/^admin_password = .*/admin_password = "<random>"/' "$LYNX_CONF"
    echo '```'
    echo
    echo '```ini'
    sed "s#$BOUNCER_DIR#\$WORK/pgbouncer#g" "$BOUNCER_INI"
    echo '```'
    echo
    echo "</details>"
    if [[ ${#NOTES[@]} -gt 0 ]]; then
      echo
      echo "## Problems"
      echo
      for n in "${NOTES[@]}"; do
        echo "- $n"
      done
    fi
    if [[ -s $LYNX_DIR/pglynx.log ]]; then
      echo
      echo "## PgLynx log (--log-level warn, last 20 lines)"
      echo
      echo '```'
      tail -n 20 "$LYNX_DIR/pglynx.log"
      echo '```'
    fi
    if grep -qE 'WARNING|ERROR|FATAL' "$BOUNCER_DIR/pgbouncer.log" 2>/dev/null; then
      echo
      echo "## PgBouncer log warnings and errors (last 20)"
      echo
      echo '```'
      grep -E 'WARNING|ERROR|FATAL' "$BOUNCER_DIR/pgbouncer.log" | tail -n 20
      echo '```'
    fi
  } >"$REPORT"
}
