#!/usr/bin/env bash
# PgLynx vs PgBouncer vs direct Postgres, measured with pgbench.
#
# Not part of CI. Needs root (apt-get, runuser), the Postgres 15 binaries,
# pgbench and psql. Installs the Debian package `pgbouncer` if it is missing
# (without starting its system service), then on random free loopback ports:
# a throwaway Postgres 15 cluster, PgLynx (dist/, built if missing or stale)
# and PgBouncer, both in transaction mode with the same pool size, in front of
# that one cluster. Everything lives in one temp dir, removed on exit.
#
# Usage:  benchmarks/pgbench.sh
# Env:    DURATION    seconds per pgbench run (default 15)
#         POOL_SIZE   server connections per pooler (default 20)
#         SCALE       pgbench -i scale factor (default 10)
#         CLIENTS     client counts for the select-only runs (default "10 100 1000")
#         PG_BIN      Postgres binaries (default /usr/lib/postgresql/15/bin)
#
# The report (machine, versions, exact commands, generated configs, table)
# goes to stdout and to benchmarks/results/pgbench-<date>.md; progress goes
# to stderr.
set -euo pipefail

DURATION=${DURATION:-15}
POOL_SIZE=${POOL_SIZE:-20}
SCALE=${SCALE:-10}
CLIENTS=${CLIENTS:-"10 100 1000"}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PGBENCH="$PG_BIN/pgbench"
PSQL="$PG_BIN/psql"
THREADS=2
BENCH_USER=bench
BENCH_PASSWORD=benchpw
BENCH_DB=bench

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESULTS_DIR="$REPO_ROOT/benchmarks/results"

log() { printf '[pgbench.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (apt-get, and runuser to start Postgres/PgBouncer as the postgres user)"
id postgres >/dev/null 2>&1 || die "no 'postgres' OS user (install postgresql-15)"
for b in initdb pg_ctl postgres pgbench psql; do
  [[ -x "$PG_BIN/$b" ]] || die "$PG_BIN/$b not found (set PG_BIN)"
done

# pgbench -c 1000 needs more than 1,000 descriptors, PgBouncer about 2 per client.
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
PGLYNX_JS="$REPO_ROOT/dist/bin/pglynx.js"
if [[ ! -f $PGLYNX_JS ]] || [[ -n $(find "$REPO_ROOT/bin" "$REPO_ROOT/config" "$REPO_ROOT/pooler" "$REPO_ROOT/engine" \
  -name '*.ts' -newer "$PGLYNX_JS" -print -quit 2>/dev/null) ]]; then
  log "building PgLynx (npm run build): dist/ is missing or older than the sources"
  (cd "$REPO_ROOT" && npm run build >&2)
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
EOF
LYNX_CMD=(node dist/bin/pglynx.js "$LYNX_CONF" --log-level warn)
log "starting PgLynx: ${LYNX_CMD[*]}"
(cd "$REPO_ROOT" && NODE_ENV=production exec "${LYNX_CMD[@]}") >"$LYNX_DIR/pglynx.log" 2>&1 &
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

# --- runs ------------------------------------------------------------------
# Anything else busy on the machine skews the numbers: recorded in the report.
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
[[ $IDLE_BEFORE -ge 90 ]] || log "warning: the machine is busy (${IDLE_BEFORE}% idle): numbers will be skewed"
declare -A TPS LAT
COMMANDS=()
NOTES=()
RUN_NO=0

target_port() {
  case $1 in direct) echo "$PG_PORT" ;; pglynx) echo "$LYNX_PORT" ;; pgbouncer) echo "$BOUNCER_PORT" ;; esac
}

bench() { # key target pgbench-args...
  local key=$1 target=$2; shift 2
  local port out rc=0
  port=$(target_port "$target")
  local cmd=("$PGBENCH" -n "$@" -j "$THREADS" -T "$DURATION" -h 127.0.0.1 -p "$port" -U "$BENCH_USER" "$BENCH_DB")
  RUN_NO=$((RUN_NO + 1))
  out="$RUNS_DIR/$RUN_NO-$target.txt"
  COMMANDS+=("PGPASSWORD=$BENCH_PASSWORD ${cmd[*]#"$PG_BIN/"}   # $target")
  log "run $RUN_NO [$target] ${cmd[*]#"$PG_BIN/"}"
  "${cmd[@]}" >"$out" 2>&1 || rc=$?
  local tps lat failed
  tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$out" | head -1)
  lat=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$out" | head -1)
  failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out" | head -1)
  if [[ -z $tps ]]; then
    TPS[$key,$target]="error"; LAT[$key,$target]="error"
  else
    TPS[$key,$target]=$(printf '%.0f' "$tps"); LAT[$key,$target]=$(printf '%.3f' "${lat:-0}")
  fi
  if [[ $rc -ne 0 || -z $tps || ${failed:-0} -ne 0 ]]; then
    [[ -n $tps ]] && TPS[$key,$target]+=" (!)"
    NOTES+=("run $RUN_NO ($target, $key): pgbench exit $rc, failed transactions ${failed:-?}; last output lines:"$'\n'"$(grep -v '^progress' "$out" | tail -n 15 | sed 's/^/    /')")
    log "  -> exit $rc, tps ${tps:-none}"
  else
    log "  -> ${TPS[$key,$target]} tps, ${LAT[$key,$target]} ms"
  fi
  if [[ $target == pglynx ]] && ! kill -0 "$LYNX_PID" 2>/dev/null; then
    NOTES+=("PgLynx exited during run $RUN_NO; its output:"$'\n'"$(tail -n 40 "$LYNX_DIR/pglynx.log" | sed 's/^/    /')")
    log "PgLynx is no longer running"
  fi
  sleep 1 # let the previous run's connections close
}

ROWS=()
for c in $CLIENTS; do
  for proto in simple extended; do
    key="select-only,$c,$proto"
    ROWS+=("$key")
    for target in direct pglynx pgbouncer; do
      bench "$key" "$target" -S -c "$c" --protocol="$proto"
    done
  done
done
key="select-only -C (connect per txn),10,simple"
ROWS+=("$key")
for target in direct pglynx pgbouncer; do
  bench "$key" "$target" -S -C -c 10 --protocol=simple
done

# --- report ----------------------------------------------------------------
ratio() {
  local a=${1%% *} b=${2%% *}
  [[ $a =~ ^[0-9]+$ && $b =~ ^[0-9]+$ && $b -gt 0 ]] || { echo "n/a"; return; }
  awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }'
}
first_line() { "$@" 2>&1 | head -n 1; }

STAMP=$(date +%Y-%m-%d-%H%M%S)
REPORT="$WORK/report.md"
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
  echo "- PgLynx: $(node -p "require('$REPO_ROOT/package.json').version") (commit $(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(
    [[ -n $(git -C "$REPO_ROOT" --no-optional-locks status --porcelain 2>/dev/null) ]] && echo ", plus uncommitted changes"))"
  echo "- before the runs: CPU ${IDLE_BEFORE}% idle over 3 s, load average (1/5/15 min) $LOAD_BEFORE"
  echo
  echo "## Setup"
  echo
  echo "- One throwaway Postgres 15 cluster (max_connections 1200, shared_buffers 512MB, fsync/synchronous_commit/full_page_writes off),"
  echo "  \`pgbench -i -s $SCALE\`; all three targets on 127.0.0.1, every client login is md5."
  echo "- PgLynx and PgBouncer: transaction mode, pool size $POOL_SIZE server connections each."
  echo "- Every run: ${DURATION}s, $THREADS pgbench threads, \`-n\` (no vacuum), select-only (\`-S\`). Runs are interleaved"
  echo "  direct, PgLynx, PgBouncer for each row. \`ulimit -n\` = $NOFILE."
  echo "- Invocation: \`DURATION=$DURATION POOL_SIZE=$POOL_SIZE SCALE=$SCALE benchmarks/pgbench.sh\`"
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
  echo "# pgbench runs, in order (port $PG_PORT = Postgres, $LYNX_PORT = PgLynx, $BOUNCER_PORT = PgBouncer)"
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
  echo
  echo "## Results"
  echo
  echo "| workload | clients | protocol | direct tps | PgLynx tps | PgBouncer tps | PgLynx avg latency ms | PgBouncer avg latency ms | PgLynx/PgBouncer ratio |"
  echo "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
  for key in "${ROWS[@]}"; do
    IFS=, read -r workload clients proto <<<"$key"
    echo "| $workload | $clients | $proto | ${TPS[$key,direct]} | ${TPS[$key,pglynx]} | ${TPS[$key,pgbouncer]} | ${LAT[$key,pglynx]} | ${LAT[$key,pgbouncer]} | $(ratio "${TPS[$key,pglynx]}" "${TPS[$key,pgbouncer]}") |"
  done
  echo
  echo "tps as reported by pgbench (excluding initial connection time; including it for \`-C\`);"
  echo "latency is pgbench's \"latency average\". Ratio = PgLynx tps / PgBouncer tps. (!) = pgbench exited non-zero or reported failed transactions."
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
