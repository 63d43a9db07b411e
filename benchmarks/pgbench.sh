#!/usr/bin/env bash
# PgLynx vs PgBouncer, side by side in one run, measured with pgbench.
#
# Not part of CI. Needs root (apt-get, runuser), the Postgres 15 binaries,
# pgbench and psql. Installs the Debian package `pgbouncer` if it is missing
# (without starting its system service), then on random free loopback ports:
# a throwaway Postgres 15 cluster, PgLynx (dist/, built if missing or stale)
# and PgBouncer, both in transaction mode with the same pool size, in front of
# that one cluster. Everything lives in one temp dir, removed on exit.
#
# Each workload runs as PAIRS A/B pairs, PgLynx and PgBouncer interleaved
# (the order alternates from pair to pair so drift in the machine's load
# hits both). For every run it records pgbench's tps and the pooler's CPU
# time (utime + stime of the pooler process, all threads, from
# /proc/<pid>/stat before and after) divided by the transactions pgbench
# counted. The table shows medians, and the ratios are medians of the
# per-pair ratios.
#
# Usage:  benchmarks/pgbench.sh
# Env:    DURATION    seconds per pgbench run (default 10)
#         PAIRS       A/B pairs per workload (default 3)
#         WORKLOADS   which rows, of: c100 c1 extended prepared connect (default all)
#         POOL_SIZE   server connections per pooler (default 20)
#         SCALE       pgbench -i scale factor (default 10)
#         PG_BIN      Postgres binaries (default /usr/lib/postgresql/15/bin)
#         PGLYNX_ROOT checkout whose dist/ runs (default this one; built if stale)
#         PGLYNX_NODE_ARGS  extra node flags for PgLynx (e.g. --cpu-prof --cpu-prof-dir=/tmp/prof)
#         PGBENCH_EXTRA     extra pgbench arguments for every run (e.g. "-R 300": the same
#                     rate for both poolers, so CPU per transaction compares on a busy machine)
#
# The report (machine, versions, exact commands, generated configs, table,
# every run) goes to stdout and to benchmarks/results/pgbench-<date>.md;
# progress goes to stderr.
set -euo pipefail

DURATION=${DURATION:-10}
PAIRS=${PAIRS:-3}
WORKLOADS=${WORKLOADS:-"c100 c1 extended prepared connect"}
POOL_SIZE=${POOL_SIZE:-20}
SCALE=${SCALE:-10}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PGBENCH="$PG_BIN/pgbench"
PSQL="$PG_BIN/psql"
THREADS=2
BENCH_USER=bench
BENCH_PASSWORD=benchpw
BENCH_DB=bench

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESULTS_DIR="$REPO_ROOT/benchmarks/results"
PGLYNX_ROOT=$(cd "${PGLYNX_ROOT:-$REPO_ROOT}" && pwd)
read -r -a NODE_ARGS <<<"${PGLYNX_NODE_ARGS:-}"

log() { printf '[pgbench.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (apt-get, and runuser to start Postgres/PgBouncer as the postgres user)"
id postgres >/dev/null 2>&1 || die "no 'postgres' OS user (install postgresql-15)"
for b in initdb pg_ctl postgres pgbench psql; do
  [[ -x "$PG_BIN/$b" ]] || die "$PG_BIN/$b not found (set PG_BIN)"
done

# PgBouncer needs about 2 descriptors per client.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
NOFILE=$(ulimit -n)
if [[ $NOFILE != unlimited && $NOFILE -lt 4096 ]]; then
  die "ulimit -n is $NOFILE and cannot be raised to 4096+ (needed for 1,000 clients)"
fi

# --- PgBouncer -------------------------------------------------------------
if ! command -v pgbouncer >/dev/null 2>&1; then
  log "installing the Debian package pgbouncer (its service is not started)"
  created_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    # Tells invoke-rc.d not to start services during this install.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    created_policy=1
  fi
  rc=0
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer; } >&2 || rc=$?
  [[ $created_policy -eq 1 ]] && rm -f /usr/sbin/policy-rc.d
  [[ $rc -eq 0 ]] || die "apt-get install pgbouncer failed"
fi
PGBOUNCER=$(command -v pgbouncer)

# --- PgLynx build ----------------------------------------------------------
PGLYNX_JS="$PGLYNX_ROOT/dist/bin/pglynx.js"
if [[ ! -f $PGLYNX_JS ]] || [[ -n $(find "$PGLYNX_ROOT/bin" "$PGLYNX_ROOT/config" "$PGLYNX_ROOT/pooler" "$PGLYNX_ROOT/engine" \
  -name '*.ts' -newer "$PGLYNX_JS" -print -quit 2>/dev/null) ]]; then
  log "building PgLynx (npm run build in $PGLYNX_ROOT): dist/ is missing or older than the sources"
  (cd "$PGLYNX_ROOT" && npm run build >&2)
fi

# --- temp dir, ports, cleanup ----------------------------------------------
WORK=$(mktemp -d /tmp/pglynx-bench.XXXXXX)
chmod 755 "$WORK"
PGDATA="$WORK/pgdata"
BOUNCER_DIR="$WORK/pgbouncer"
LYNX_DIR="$WORK/pglynx"
RUNS_DIR="$WORK/runs"
mkdir -p "$BOUNCER_DIR" "$LYNX_DIR" "$RUNS_DIR"

LYNX_PID=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  if [[ -n $LYNX_PID ]] && kill -0 "$LYNX_PID" 2>/dev/null; then
    kill -TERM "$LYNX_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$LYNX_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$LYNX_PID" 2>/dev/null
  fi
  if [[ -f $BOUNCER_DIR/pgbouncer.pid ]]; then
    local bpid
    bpid=$(cat "$BOUNCER_DIR/pgbouncer.pid" 2>/dev/null)
    if [[ -n $bpid ]] && kill -0 "$bpid" 2>/dev/null; then
      kill -INT "$bpid" 2>/dev/null
      for _ in $(seq 50); do kill -0 "$bpid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$bpid" 2>/dev/null
    fi
  fi
  if [[ -f $PGDATA/postmaster.pid ]]; then
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA" -m immediate -w stop >/dev/null 2>&1
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Three distinct free loopback ports, held open together so they differ.
read -r PG_PORT LYNX_PORT BOUNCER_PORT < <(node -e '
  const net = require("node:net");
  const servers = [0, 1, 2].map(() => net.createServer());
  Promise.all(servers.map((s) => new Promise((r) => s.listen(0, "127.0.0.1", () => r(s.address().port)))))
    .then((ports) => { console.log(ports.join(" ")); servers.forEach((s) => s.close()); });
')
log "ports: postgres $PG_PORT, pglynx $LYNX_PORT, pgbouncer $BOUNCER_PORT; work dir $WORK"

# --- Postgres --------------------------------------------------------------
log "initdb + start Postgres 15 (max_connections 1200, fsync off)"
install -d -o postgres -g postgres -m 700 "$PGDATA"
runuser -u postgres -- "$PG_BIN/initdb" -D "$PGDATA" -A trust -U postgres >"$WORK/initdb.log" 2>&1 \
  || { cat "$WORK/initdb.log" >&2; die "initdb failed"; }
cat >>"$PGDATA/postgresql.conf" <<EOF

# pglynx benchmark settings
max_connections = 1200
shared_buffers = 512MB
fsync = off
synchronous_commit = off
full_page_writes = off
password_encryption = md5
log_min_messages = warning
EOF
# Over TCP everybody logs in with md5 (PgLynx and PgBouncer authenticate
# their clients with md5 too); the unix socket is for setup only.
cat >"$PGDATA/pg_hba.conf" <<EOF
local all all trust
host  all all 127.0.0.1/32 md5
EOF
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA" -w -t 60 \
  -o "-p $PG_PORT -k $PGDATA -c listen_addresses=127.0.0.1" -l "$PGDATA/log" start >/dev/null \
  || { cat "$PGDATA/log" >&2; die "Postgres did not start"; }

"$PSQL" -X -q -v ON_ERROR_STOP=1 -h "$PGDATA" -p "$PG_PORT" -U postgres -d postgres \
  -c "CREATE ROLE $BENCH_USER LOGIN PASSWORD '$BENCH_PASSWORD'" \
  -c "CREATE DATABASE $BENCH_DB OWNER $BENCH_USER" >&2

export PGPASSWORD=$BENCH_PASSWORD PGCONNECT_TIMEOUT=30
unset PGHOST PGPORT PGUSER PGDATABASE PGSERVICE PGOPTIONS PGSSLMODE
log "pgbench -i -s $SCALE"
"$PGBENCH" -i -s "$SCALE" -q -h 127.0.0.1 -p "$PG_PORT" -U "$BENCH_USER" "$BENCH_DB" >"$WORK/init.log" 2>&1 \
  || { cat "$WORK/init.log" >&2; die "pgbench -i failed"; }

# --- PgLynx ----------------------------------------------------------------
LYNX_CONF="$LYNX_DIR/pgcat.toml"
cat >"$LYNX_CONF" <<EOF
[general]
host = "127.0.0.1"
port = $LYNX_PORT
admin_username = "admin"
admin_password = "admin-$RANDOM$RANDOM"

[pools.$BENCH_DB]
pool_mode = "transaction"

[pools.$BENCH_DB.users.0]
username = "$BENCH_USER"
password = "$BENCH_PASSWORD"
pool_size = $POOL_SIZE

[pools.$BENCH_DB.shards.0]
database = "$BENCH_DB"
servers = [["127.0.0.1", $PG_PORT, "primary"]]

# The same database with prepared statements on (for pgbench -M prepared).
[pools.${BENCH_DB}_ps]
pool_mode = "transaction"
prepared_statements_cache_size = 500

[pools.${BENCH_DB}_ps.users.0]
username = "$BENCH_USER"
password = "$BENCH_PASSWORD"
pool_size = $POOL_SIZE

[pools.${BENCH_DB}_ps.shards.0]
database = "$BENCH_DB"
servers = [["127.0.0.1", $PG_PORT, "primary"]]
EOF
LYNX_CMD=(node "${NODE_ARGS[@]}" dist/bin/pglynx.js "$LYNX_CONF" --log-level warn)
log "starting PgLynx: ${LYNX_CMD[*]}"
(cd "$PGLYNX_ROOT" && NODE_ENV=production exec "${LYNX_CMD[@]}") >"$LYNX_DIR/pglynx.log" 2>&1 &
LYNX_PID=$!

# --- PgBouncer ---------------------------------------------------------------
BOUNCER_INI="$BOUNCER_DIR/pgbouncer.ini"
printf '"%s" "%s"\n' "$BENCH_USER" "$BENCH_PASSWORD" >"$BOUNCER_DIR/userlist.txt"
cat >"$BOUNCER_INI" <<EOF
[databases]
$BENCH_DB = host=127.0.0.1 port=$PG_PORT dbname=$BENCH_DB pool_size=$POOL_SIZE

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = md5
auth_file = $BOUNCER_DIR/userlist.txt
pool_mode = transaction
default_pool_size = $POOL_SIZE
max_client_conn = 2000
logfile = $BOUNCER_DIR/pgbouncer.log
pidfile = $BOUNCER_DIR/pgbouncer.pid
log_connections = 0
log_disconnections = 0
ignore_startup_parameters = extra_float_digits
EOF
chown -R postgres:postgres "$BOUNCER_DIR"
# runuser's PAM session (pam_limits) resets the soft open-files limit to 1024,
# which would cap PgBouncer at ~1,000 clients: raise it again inside.
BOUNCER_CMD=(runuser -u postgres -- sh -c 'ulimit -n "$1" && exec "$2" "$3"' sh "$NOFILE" "$PGBOUNCER" "$BOUNCER_INI")
log "starting PgBouncer: ${BOUNCER_CMD[*]}"
"${BOUNCER_CMD[@]}" >"$WORK/pgbouncer.out" 2>&1 &

# Ready = a real login through the pooler answers SELECT 1.
wait_ready() { # name port [pid]
  local name=$1 port=$2 pid=${3:-}
  for _ in $(seq 300); do
    if "$PSQL" -X -q -A -t -h 127.0.0.1 -p "$port" -U "$BENCH_USER" -d "$BENCH_DB" -c 'SELECT 1' >/dev/null 2>&1; then
      return 0
    fi
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    sleep 0.1
  done
  return 1
}
wait_ready PgLynx "$LYNX_PORT" "$LYNX_PID" || {
  log "PgLynx output:"; cat "$LYNX_DIR/pglynx.log" >&2; die "PgLynx did not accept a login on port $LYNX_PORT"; }
wait_ready PgBouncer "$BOUNCER_PORT" || {
  cat "$WORK/pgbouncer.out" "$BOUNCER_DIR/pgbouncer.log" >&2 2>/dev/null; die "PgBouncer did not accept a login on port $BOUNCER_PORT"; }

BOUNCER_PID=$(cat "$BOUNCER_DIR/pgbouncer.pid")

# --- runs ------------------------------------------------------------------
# Anything else busy on the machine skews tps: recorded in the report. CPU
# per transaction is measured per process, so it is the steadier figure.
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
cpu_idle_pct() { # share of CPU time idle over the next 3 seconds
  local a b
  a=($(head -n 1 /proc/stat)); sleep 3; b=($(head -n 1 /proc/stat))
  awk -v a="${a[*]}" -v b="${b[*]}" 'BEGIN {
    n = split(a, x, " "); split(b, y, " "); t = 0
    for (i = 2; i <= n; i++) t += y[i] - x[i]
    printf "%.0f", (t > 0 ? 100 * ((y[5] - x[5]) + (y[6] - x[6])) / t : 0) }'
}
IDLE_BEFORE=$(cpu_idle_pct)
log "CPU idle before the runs: ${IDLE_BEFORE}%"
[[ $IDLE_BEFORE -ge 90 ]] || log "warning: the machine is busy (${IDLE_BEFORE}% idle): tps will be skewed"
CLK_TCK=$(getconf CLK_TCK)

# utime and stime of a process, all its threads, in clock ticks.
cpu_ticks() { awk '{ print $14, $15 }' "/proc/$1/stat"; }

# Workloads: key -> pgbench arguments, the PgLynx database, and PgBouncer's
# arguments when they differ (PgBouncer 1.18 has no prepared statements in
# transaction mode: its reference for the prepared row is -M extended).
declare -A W_ARGS W_LYNX_DB W_BOUNCER_ARGS W_LABEL
W_ARGS[c100]="-S -M simple -c 100 -j $THREADS";      W_LABEL[c100]='`-S -c 100`'
W_ARGS[c1]="-S -M simple -c 1 -j 1";                 W_LABEL[c1]='`-S -c 1`'
W_ARGS[extended]="-S -M extended -c 100 -j $THREADS"; W_LABEL[extended]='`-S -M extended -c 100`'
W_ARGS[prepared]="-S -M prepared -c 100 -j $THREADS"; W_LABEL[prepared]='`-S -M prepared -c 100` (PgBouncer: `-M extended`)'
W_BOUNCER_ARGS[prepared]="-S -M extended -c 100 -j $THREADS"
W_LYNX_DB[prepared]="${BENCH_DB}_ps"
W_ARGS[connect]="-S -M simple -C -c 20 -j $THREADS"; W_LABEL[connect]='`-S -C -c 20` (CPU per connection)'
for w in $WORKLOADS; do [[ -n ${W_ARGS[$w]:-} ]] || die "unknown workload '$w' (c100 c1 extended prepared connect)"; done

declare -A TPS CPU SYS  # key,target,pair -> tps / CPU µs per transaction / share of it in the kernel
COMMANDS=()
NOTES=()
RUN_NO=0

bench() { # key target pair
  local key=$1 target=$2 pair=$3 port db pid args
  if [[ $target == pglynx ]]; then
    port=$LYNX_PORT; pid=$LYNX_PID; db=${W_LYNX_DB[$key]:-$BENCH_DB}; args=${W_ARGS[$key]}
  else
    port=$BOUNCER_PORT; pid=$BOUNCER_PID; db=$BENCH_DB; args=${W_BOUNCER_ARGS[$key]:-${W_ARGS[$key]}}
  fi
  local cmd=("$PGBENCH" -n $args ${PGBENCH_EXTRA:-} -T "$DURATION" -h 127.0.0.1 -p "$port" -U "$BENCH_USER" "$db")
  RUN_NO=$((RUN_NO + 1))
  local out="$RUNS_DIR/$RUN_NO-$target.txt" rc=0 t0 t1
  COMMANDS+=("PGPASSWORD=$BENCH_PASSWORD ${cmd[*]#"$PG_BIN/"}   # $target")
  log "run $RUN_NO [$target] ${cmd[*]#"$PG_BIN/"}"
  local u0 s0 u1 s1
  read -r u0 s0 < <(cpu_ticks "$pid")
  "${cmd[@]}" >"$out" 2>&1 || rc=$?
  read -r u1 s1 < <(cpu_ticks "$pid" 2>/dev/null || echo "$u0 $s0")
  local tps txs failed
  tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$out" | head -1)
  txs=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out" | head -1)
  failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out" | head -1)
  if [[ -z $tps || -z $txs || $txs -eq 0 ]]; then
    TPS[$key,$target,$pair]=""; CPU[$key,$target,$pair]=""; SYS[$key,$target,$pair]=""
  else
    TPS[$key,$target,$pair]=$(printf '%.0f' "$tps")
    CPU[$key,$target,$pair]=$(awk -v d=$((u1 - u0 + s1 - s0)) -v hz="$CLK_TCK" -v n="$txs" 'BEGIN { printf "%.1f", d / hz * 1e6 / n }')
    SYS[$key,$target,$pair]=$(awk -v u=$((u1 - u0)) -v s=$((s1 - s0)) 'BEGIN { printf "%.0f%%", (u + s > 0 ? 100 * s / (u + s) : 0) }')
  fi
  if [[ $rc -ne 0 || -z $tps || ${failed:-0} -ne 0 ]]; then
    NOTES+=("run $RUN_NO ($target, $key): pgbench exit $rc, failed transactions ${failed:-?}; last output lines:"$'\n'"$(grep -v '^progress' "$out" | tail -n 15 | sed 's/^/    /')")
    log "  -> exit $rc, tps ${tps:-none}"
  else
    log "  -> ${TPS[$key,$target,$pair]} tps, ${CPU[$key,$target,$pair]} µs CPU per transaction (${SYS[$key,$target,$pair]} in the kernel)"
  fi
  if [[ $target == pglynx ]] && ! kill -0 "$LYNX_PID" 2>/dev/null; then
    NOTES+=("PgLynx exited during run $RUN_NO; its output:"$'\n'"$(tail -n 40 "$LYNX_DIR/pglynx.log" | sed 's/^/    /')")
    die "PgLynx is no longer running"
  fi
  sleep 1 # let the previous run's connections close
}

# Warm-up (not recorded): JIT for PgLynx, full pools for both.
for target in pglynx pgbouncer; do
  port=$([[ $target == pglynx ]] && echo "$LYNX_PORT" || echo "$BOUNCER_PORT")
  log "warm-up [$target] 3 s"
  "$PGBENCH" -n -S -c 40 -j "$THREADS" -T 3 -h 127.0.0.1 -p "$port" -U "$BENCH_USER" "$BENCH_DB" >/dev/null 2>&1 || true
done

for w in $WORKLOADS; do
  for pair in $(seq "$PAIRS"); do
    if (( pair % 2 )); then order="pglynx pgbouncer"; else order="pgbouncer pglynx"; fi
    for target in $order; do bench "$w" "$target" "$pair"; done
  done
done

# --- report ----------------------------------------------------------------
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
  echo "- Invocation: \`DURATION=$DURATION PAIRS=$PAIRS POOL_SIZE=$POOL_SIZE SCALE=$SCALE benchmarks/pgbench.sh\`${PGLYNX_NODE_ARGS:+ with PGLYNX_NODE_ARGS=\"$PGLYNX_NODE_ARGS\"}"
  echo
  echo "## Results"
  echo
  echo "Medians over $PAIRS pairs; ratios are PgLynx / PgBouncer, the median of the per-pair ratios (tps: above 1 is PgLynx faster; CPU: below 1 is PgLynx cheaper)."
  echo
  echo "| workload | PgLynx tps | PgBouncer tps | tps ratio | PgLynx CPU µs/tx | PgBouncer CPU µs/tx | CPU ratio |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
  for w in $WORKLOADS; do
    echo "| ${W_LABEL[$w]} | $(fmt0 "$(values "$w" pglynx TPS | median)") | $(fmt0 "$(values "$w" pgbouncer TPS | median)") | $(fmt2 "$(pair_ratios "$w" TPS | median)") | $(fmt1 "$(values "$w" pglynx CPU | median)") | $(fmt1 "$(values "$w" pgbouncer CPU | median)") | $(fmt2 "$(pair_ratios "$w" CPU | median)") |"
  done
  echo
  echo "Every run (tps / CPU µs per transaction / share of that CPU in the kernel), by pair:"
  echo
  echo "| workload | pair | PgLynx | PgBouncer |"
  echo "| --- | ---: | ---: | ---: |"
  for w in $WORKLOADS; do
    for p in $(seq "$PAIRS"); do
      echo "| $w | $p | ${TPS[$w,pglynx,$p]:-error} / ${CPU[$w,pglynx,$p]:-?} / ${SYS[$w,pglynx,$p]:-?} | ${TPS[$w,pgbouncer,$p]:-error} / ${CPU[$w,pgbouncer,$p]:-?} / ${SYS[$w,pgbouncer,$p]:-?} |"
    done
  done
  echo
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

mkdir -p "$RESULTS_DIR"
cp "$REPORT" "$RESULTS_DIR/pgbench-$STAMP.md"
cat "$REPORT"
log "report written to benchmarks/results/pgbench-$STAMP.md"
