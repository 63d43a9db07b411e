#!/usr/bin/env bash
# Failover drills: what clients of PgLynx see when a replica dies and when a
# standby is promoted.
#
# Not part of CI. Needs root (runuser), the Postgres 15 binaries (initdb,
# pg_ctl, pg_basebackup, psql), Node 20 and the repo's node_modules. Each
# run, on random free loopback ports in a temp dir (removed on exit):
#   - a primary and two streaming replicas (pg_basebackup -R -X stream -c fast),
#     run as the `postgres` OS user;
#   - PgLynx from source (node --import tsx bin/pglynx.ts <config>) with two
#     pools over the same three servers: `reads` (roles primary/replica,
#     read/write splitting) and `auto` (role "auto" everywhere);
#   - benchmarks/failover.ts, which runs the drills and times them:
#     (a) 20 node-postgres clients read in a loop through `reads`; kill -9
#         replica 1's postmaster; count client-visible errors and the time
#         until reads are error-free again;
#     (b) through `auto`: pg_ctl stop -m immediate the primary, pg_ctl
#         promote replica 2; time from the promote until a write succeeds.
#
# Usage:  sudo benchmarks/failover.sh
# Env:    RUNS        runs, each on fresh clusters (default 3)
#         CLIENTS     reading clients in drill (a) (default 20)
#         POOL_SIZE   PgLynx pool_size per server (default 10)
#         LOG_LEVEL   PgLynx --log-level (default warn)
#         KEEP_LOGS   a directory to keep each run's PgLynx log in
#         WARMUP_MS   reading before the kill (default 2000)
#         OBSERVE_MS  reading after the kill (default 5000)
#         PG_BIN      Postgres binaries (default /usr/lib/postgresql/15/bin)
#
# The report (machine, command, table) goes to stdout and to
# benchmarks/results/failover-<date>.md; progress goes to stderr.
set -euo pipefail

RUNS=${RUNS:-3}
CLIENTS=${CLIENTS:-20}
POOL_SIZE=${POOL_SIZE:-10}
WARMUP_MS=${WARMUP_MS:-2000}
OBSERVE_MS=${OBSERVE_MS:-5000}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PSQL="$PG_BIN/psql"
PASSWORD=drillpw

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESULTS_DIR="$REPO_ROOT/benchmarks/results"

log() { printf '[failover.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (runuser starts Postgres as the postgres user)"
id postgres >/dev/null 2>&1 || die "no 'postgres' OS user (install postgresql-15)"
for b in initdb pg_ctl pg_basebackup postgres psql; do
  [[ -x "$PG_BIN/$b" ]] || die "$PG_BIN/$b not found (set PG_BIN)"
done
[[ -d $REPO_ROOT/node_modules/tsx ]] || die "node_modules/tsx missing: run npm ci"

WORK=$(mktemp -d /tmp/pglynx-failover.XXXXXX)
chmod 755 "$WORK"
# initdb and pg_ctl, run as postgres, complain about a cwd they cannot read.
cd "$WORK"
RUN_DIR=""
LYNX_PID=""

# Stop what the current run started: PgLynx, then any cluster still running.
stop_run() {
  if [[ -n $LYNX_PID ]] && kill -0 "$LYNX_PID" 2>/dev/null; then
    kill -TERM "$LYNX_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$LYNX_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$LYNX_PID" 2>/dev/null || true
  fi
  LYNX_PID=""
  [[ -n $RUN_DIR ]] || return 0
  # A killed postmaster leaves its pid file: pg_ctl then fails, harmlessly.
  for d in primary replica1 replica2; do
    if [[ -f $RUN_DIR/$d/postmaster.pid ]]; then
      runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$RUN_DIR/$d" -m immediate -w stop >/dev/null 2>&1 || true
    fi
  done
  return 0
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  stop_run
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

pg() { runuser -u postgres -- "$PG_BIN/$1" "${@:2}"; }

# Four distinct free loopback ports, held open together so they differ.
free_ports() {
  node -e '
    const net = require("node:net");
    const servers = [0, 1, 2, 3].map(() => net.createServer());
    Promise.all(servers.map((s) => new Promise((r) => s.listen(0, "127.0.0.1", () => r(s.address().port)))))
      .then((ports) => { console.log(ports.join(" ")); servers.forEach((s) => s.close()); });'
}

start_cluster() { # dir port
  pg pg_ctl -D "$1" -w -t 60 -o "-p $2 -k $1 -c listen_addresses=127.0.0.1" -l "$1.log" start >/dev/null \
    || { cat "$1.log" >&2; die "Postgres in $1 did not start"; }
}

# A primary and two replicas of it, PgLynx in front; sets the *_PORT globals.
setup_run() { # run number
  RUN_DIR="$WORK/run$1"
  install -d -o postgres -g postgres -m 755 "$RUN_DIR"
  read -r PRIMARY_PORT REPLICA1_PORT REPLICA2_PORT LYNX_PORT < <(free_ports)
  log "run $1: ports primary $PRIMARY_PORT, replicas $REPLICA1_PORT $REPLICA2_PORT, pglynx $LYNX_PORT"

  pg initdb -D "$RUN_DIR/primary" -A trust -U postgres -E UTF8 --locale=C -N >"$RUN_DIR/initdb.log" 2>&1 \
    || { cat "$RUN_DIR/initdb.log" >&2; die "initdb failed"; }
  # Durability is pointless for throwaway clusters and costs time.
  cat >>"$RUN_DIR/primary/postgresql.conf" <<EOF

# pglynx failover drill settings
max_connections = 200
shared_buffers = 32MB
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = replica
max_wal_senders = 10
wal_keep_size = 256MB
hot_standby = on
password_encryption = md5
log_min_messages = warning
EOF
  # Setup and replication as postgres without a password; clients over TCP with md5.
  cat >"$RUN_DIR/primary/pg_hba.conf" <<EOF
local all         postgres trust
local replication postgres trust
host  all         all 127.0.0.1/32 md5
EOF
  start_cluster "$RUN_DIR/primary" "$PRIMARY_PORT"
  "$PSQL" -X -q -v ON_ERROR_STOP=1 -h "$RUN_DIR/primary" -p "$PRIMARY_PORT" -U postgres -d postgres \
    -c "CREATE ROLE app LOGIN PASSWORD '$PASSWORD'" -c "CREATE DATABASE drill OWNER app" >&2
  "$PSQL" -X -q -v ON_ERROR_STOP=1 -h "$RUN_DIR/primary" -p "$PRIMARY_PORT" -U postgres -d drill \
    -c "CREATE TABLE items (id bigserial PRIMARY KEY, v text)" -c "ALTER TABLE items OWNER TO app" \
    -c "INSERT INTO items (v) SELECT 'seed' FROM generate_series(1, 1000)" >&2

  local n port
  for n in 1 2; do
    port=REPLICA${n}_PORT
    # -c fast: without it the backup waits for a regular checkpoint (minutes).
    pg pg_basebackup -h "$RUN_DIR/primary" -p "$PRIMARY_PORT" -U postgres -D "$RUN_DIR/replica$n" -R -X stream -c fast \
      >"$RUN_DIR/basebackup$n.log" 2>&1 || { cat "$RUN_DIR/basebackup$n.log" >&2; die "pg_basebackup failed"; }
    start_cluster "$RUN_DIR/replica$n" "${!port}"
  done
  for n in 1 2; do
    port=REPLICA${n}_PORT
    for _ in $(seq 200); do
      [[ $("$PSQL" -X -A -t -h "$RUN_DIR/replica$n" -p "${!port}" -U postgres -d drill -c 'SELECT count(*) FROM items' 2>/dev/null) == 1000 ]] && break
      sleep 0.05
    done
  done

  LYNX_CONF="$RUN_DIR/pgcat.toml"
  {
    cat <<EOF
[general]
host = "127.0.0.1"
port = $LYNX_PORT
admin_username = "admin"
admin_password = "admin-$RANDOM$RANDOM"
ban_time = 60
EOF
    local pool role1 role2
    for pool in reads auto; do
      if [[ $pool == reads ]]; then role1=primary role2=replica; else role1=auto role2=auto; fi
      cat <<EOF

[pools.$pool]
pool_mode = "transaction"
load_balancing_mode = "random"
query_parser_enabled = true
query_parser_read_write_splitting = true
primary_reads_enabled = false

[pools.$pool.users.0]
username = "app"
password = "$PASSWORD"
pool_size = $POOL_SIZE

[pools.$pool.shards.0]
database = "drill"
servers = [["127.0.0.1", $PRIMARY_PORT, "$role1"], ["127.0.0.1", $REPLICA1_PORT, "$role2"], ["127.0.0.1", $REPLICA2_PORT, "$role2"]]
EOF
    done
  } >"$LYNX_CONF"
  LYNX_CMD=(node --import tsx bin/pglynx.ts "$LYNX_CONF" --log-level "${LOG_LEVEL:-warn}")
  log "run $1: starting PgLynx: ${LYNX_CMD[*]}"
  (cd "$REPO_ROOT" && exec "${LYNX_CMD[@]}") >"$RUN_DIR/pglynx.log" 2>&1 &
  LYNX_PID=$!
  for _ in $(seq 300); do
    PGPASSWORD=$PASSWORD "$PSQL" -X -q -A -t -h 127.0.0.1 -p "$LYNX_PORT" -U app -d reads -c 'SELECT 1' >/dev/null 2>&1 && return 0
    kill -0 "$LYNX_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$RUN_DIR/pglynx.log" >&2
  die "PgLynx did not accept a login on port $LYNX_PORT"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
RESULTS=()
for i in $(seq "$RUNS"); do
  setup_run "$i"
  out="$RUN_DIR/failover.json"
  (cd "$REPO_ROOT" && LYNX_PORT=$LYNX_PORT PG_BIN=$PG_BIN PASSWORD=$PASSWORD CLIENTS=$CLIENTS \
    WARMUP_MS=$WARMUP_MS OBSERVE_MS=$OBSERVE_MS PRIMARY_DIR="$RUN_DIR/primary" REPLICA1_DIR="$RUN_DIR/replica1" \
    REPLICA2_DIR="$RUN_DIR/replica2" REPLICA2_PORT=$REPLICA2_PORT node --import tsx benchmarks/failover.ts) >"$out" \
    || { tail -n 40 "$RUN_DIR/pglynx.log" >&2; die "run $i: failover.ts failed"; }
  kill -0 "$LYNX_PID" 2>/dev/null || die "run $i: PgLynx exited during the drills"
  RESULTS+=("$(tail -n 1 "$out")")
  WARNINGS_TAIL=$(tail -n 12 "$RUN_DIR/pglynx.log")
  stop_run
  # KEEP_LOGS=DIR: keep each run's PgLynx log (a timeline of what it did).
  if [[ -n ${KEEP_LOGS:-} ]]; then mkdir -p "$KEEP_LOGS" && cp "$RUN_DIR/pglynx.log" "$KEEP_LOGS/$(basename "$RUN_DIR").log"; fi
  rm -rf "$RUN_DIR"
  RUN_DIR=""
done

# --- report ----------------------------------------------------------------
STAMP=$(date +%Y-%m-%d-%H%M%S)
REPORT="$WORK/report.md"
{
  echo "# PgLynx failover drills, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "- CPUs (\`nproc\`): $(nproc); $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1); memory $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
  echo "- OS: $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r); node $(node --version); $("$PG_BIN/postgres" --version)"
  echo "- PgLynx: $(node -p "require('$REPO_ROOT/package.json').version") (commit $(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(
    [[ -n $(git -C "$REPO_ROOT" --no-optional-locks status --porcelain 2>/dev/null) ]] && echo ", plus uncommitted changes"))"
  echo "- load average before (1/5/15 min): $LOAD_BEFORE"
  echo "- command: \`RUNS=$RUNS CLIENTS=$CLIENTS POOL_SIZE=$POOL_SIZE WARMUP_MS=$WARMUP_MS OBSERVE_MS=$OBSERVE_MS benchmarks/failover.sh\`"
  echo
  echo "| run | (a) client errors | (a) error-free after ms | (a) slowest read after kill ms | (a) slowest read before kill ms | (a) reads in ${OBSERVE_MS} ms after kill | (b) promote cmd ms | (b) write ok after promote issued ms | (b) after promote returned ms | (b) failed writes |"
  echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  n=0
  for r in "${RESULTS[@]}"; do
    n=$((n + 1))
    node -e '
      const r = JSON.parse(process.argv[1]); const k = r.kill, p = r.promote;
      console.log(`| ${process.argv[2]} | ${k.errors} | ${k.errorFreeAfterMs} | ${k.maxReadLatencyAfterKillMs} | ${k.maxReadLatencyBeforeKillMs} | ${k.readsAfterKill} | ${p.promoteCommandMs} | ${p.writeAfterPromoteStartMs ?? "never"} | ${p.writeAfterPromoteReturnMs ?? "never"} | ${p.writeErrors} |`);' "$r" "$n"
  done
  echo
  echo "(a) error-free after: from the kill to the end of the last failed read (0: no read failed); slowest read after kill: the"
  echo "longest read that finished after the kill (reads in flight at the kill included); before kill: the longest read of the"
  echo "warm-up's second half, for comparison. (b) promote issued: when \`pg_ctl promote -w\` started;"
  echo "returned: when it returned (the standby accepts writes). Failed writes: inserts that failed between the primary's stop"
  echo "and the first insert on the promoted server."
  echo
  n=0
  for r in "${RESULTS[@]}"; do
    n=$((n + 1))
    node -e 'const m = JSON.parse(process.argv[1]).kill.errorMessages; for (const [k, v] of Object.entries(m)) console.log(`- run ${process.argv[2]}, (a): ${v} x ${k}`);' "$r" "$n"
  done
  if [[ -n ${WARNINGS_TAIL:-} ]]; then
    echo
    echo "PgLynx log of the last run (--log-level warn, last 12 lines):"
    echo
    echo '```'
    echo "$WARNINGS_TAIL"
    echo '```'
  fi
} >"$REPORT"

mkdir -p "$RESULTS_DIR"
cp "$REPORT" "$RESULTS_DIR/failover-$STAMP.md"
cat "$REPORT"
log "report written to benchmarks/results/failover-$STAMP.md"
