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
#         WORKLOADS   which rows, of: c100 c1 extended prepared connect, and the pipelining
#                     groups (issue 14; benchmarks/lib/pipeline.sh): pipeline (-S -c 100 simple,
#                     extended, prepared at pipeline_depth 1 2 4 8), mixed (5% pg_sleep(0.01):
#                     the fast statements' p99 at depth 1 and 4), maxwait (PgLynx alone at
#                     depth 4, pipeline_max_wait_ms 1 2 5), verify (PgLynx alone at depth 8: each
#                     transaction checks its reply is its own). Default: the five classic rows
#         PIPE_DEPTHS       pipeline_depth values of the pipeline group (default "1 2 4 8")
#         PIPE_MODES        pgbench -M modes of the pipeline group (default "simple extended prepared")
#         PIPE_MIXED_DEPTH  depth of the mixed and maxwait groups (default 4)
#         PIPE_WAITS        pipeline_max_wait_ms values of the maxwait group (default "1 2 5")
#         PIPE_MAX_WAIT     pipeline_max_wait_ms of the pipeline and mixed groups (default 1)
#         POOL_SIZE   server connections per pooler (default 20)
#         SCALE       pgbench -i scale factor (default 10)
#         PG_BIN      Postgres binaries (default /usr/lib/postgresql/15/bin)
#         PGLYNX_ROOT checkout whose dist/ runs (default this one; built if stale)
#         PGLYNX_NODE_ARGS  extra node flags for PgLynx (e.g. --cpu-prof --cpu-prof-dir=/tmp/prof)
#         PGBENCH_EXTRA     extra pgbench arguments for every run (e.g. "-R 300": the same
#                     rate for both poolers, so CPU per transaction compares on a busy machine)
#
# The pipelining groups log every transaction (pgbench -l into the temp dir)
# for true p50/p99, read SHOW POOLS' pipelined column before and after each
# PgLynx run, and use one PgLynx pool per setting (same database, same pool
# size). A pgbench run that outlives DURATION by 60 s is killed and reported
# (a hang).
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
# The groups pipeline, mixed, maxwait (defined once the temp dir exists, below).
source "$REPO_ROOT/benchmarks/lib/pipeline.sh"

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

pipe_write_scripts

# KEYS: the rows in order; a pipelining group stands for several keys.
KEYS=()
for w in $WORKLOADS; do
  if [[ -n ${W_ARGS[$w]:-} ]]; then KEYS+=("$w")
  else pipe_define_group "$w" || die "unknown workload '$w' (c100 c1 extended prepared connect pipeline mixed maxwait verify)"; fi
done

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
LYNX_ADMIN_PASSWORD="admin-$RANDOM$RANDOM"
cat >"$LYNX_CONF" <<EOF
[general]
host = "127.0.0.1"
port = $LYNX_PORT
admin_username = "admin"
admin_password = "$LYNX_ADMIN_PASSWORD"
# PgBouncer's server_connect_timeout default (15 s): on a busy machine PgLynx's
# 1 s default aborted pgbench clients when a pool opened a server connection mid-run.
connect_timeout = 15000

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
pipe_pools_toml >>"$LYNX_CONF"
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

declare -A TPS CPU SYS  # key,target,pair -> tps / CPU µs per transaction / share of it in the kernel
declare -A RUN_OK P50 P99 F50 F99 PIPED  # latency ms (all, fast script), units pipelined per transaction
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
  RUN_NO=$((RUN_NO + 1))
  local logprefix="$RUNS_DIR/$RUN_NO-$target-log" logargs=()
  [[ -n ${W_LATENCY[$key]:-} ]] && logargs=(-l --log-prefix="$logprefix")
  local cmd=("$PGBENCH" -n $args ${PGBENCH_EXTRA:-} "${logargs[@]}" -T "$DURATION" -h 127.0.0.1 -p "$port" -U "$BENCH_USER" "$db")
  local out="$RUNS_DIR/$RUN_NO-$target.txt" rc=0 piped0=""
  COMMANDS+=("PGPASSWORD=$BENCH_PASSWORD ${cmd[*]#"$PG_BIN/"}   # $target")
  log "run $RUN_NO [$target] ${cmd[*]#"$PG_BIN/"}"
  [[ $target == pglynx && -n ${W_GROUP[$key]:-} ]] && piped0=$(lynx_pipelined "$db")
  local u0 s0 u1 s1
  read -r u0 s0 < <(cpu_ticks "$pid")
  timeout -k 5 $((DURATION + 60)) "${cmd[@]}" >"$out" 2>&1 || rc=$?
  read -r u1 s1 < <(cpu_ticks "$pid" 2>/dev/null || echo "$u0 $s0")
  [[ $rc -eq 124 || $rc -eq 137 ]] && NOTES+=("run $RUN_NO ($target, $key): pgbench still running $((DURATION + 60)) s after a ${DURATION} s run: killed (a hang)")
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
  if [[ -n ${W_LATENCY[$key]:-} ]]; then
    read -r "P50[$key,$target,$pair]" "P99[$key,$target,$pair]" "F50[$key,$target,$pair]" "F99[$key,$target,$pair]" _ < <(log_latency "$logprefix")
    rm -f "$logprefix".*
  fi
  if [[ -n $piped0 && ${txs:-0} -gt 0 ]]; then
    PIPED[$key,$target,$pair]=$(awk -v a="$piped0" -v b="$(lynx_pipelined "$db")" -v n="$txs" 'BEGIN { printf "%.2f", (b - a) / n }')
  fi
  if [[ $rc -ne 0 || -z $tps || ${failed:-0} -ne 0 ]]; then
    NOTES+=("run $RUN_NO ($target, $key): pgbench exit $rc, failed transactions ${failed:-?}; last output lines:"$'\n'"$(grep -v '^progress' "$out" | tail -n 15 | sed 's/^/    /')")
    log "  -> exit $rc, tps ${tps:-none}"
    RUN_OK[$key,$target,$pair]=0
  else
    RUN_OK[$key,$target,$pair]=1
    log "  -> ${TPS[$key,$target,$pair]} tps, ${CPU[$key,$target,$pair]} µs CPU per transaction (${SYS[$key,$target,$pair]} in the kernel)${P99[$key,$target,$pair]:+, p50 ${P50[$key,$target,$pair]} p99 ${P99[$key,$target,$pair]} fast p99 ${F99[$key,$target,$pair]} ms}${PIPED[$key,$target,$pair]:+, pipelined ${PIPED[$key,$target,$pair]}/tx}"
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
pipe_warmup

# Pair by pair over every row (not row by row), so drift in the machine's
# load spreads over the rows compared with each other (depth 1 vs 4...).
for pair in $(seq "$PAIRS"); do
  for w in "${KEYS[@]}"; do
    if (( pair % 2 )); then order="pglynx pgbouncer"; else order="pgbouncer pglynx"; fi
    [[ -n ${W_SOLO[$w]:-} ]] && order=pglynx
    for target in $order; do bench "$w" "$target" "$pair"; done
  done
done

# --- report ----------------------------------------------------------------
source "$REPO_ROOT/benchmarks/lib/pgbench-report.sh"
pgbench_report

mkdir -p "$RESULTS_DIR"
cp "$REPORT" "$RESULTS_DIR/pgbench-$STAMP.md"
cat "$REPORT"
log "report written to benchmarks/results/pgbench-$STAMP.md"
