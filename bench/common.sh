# shellcheck shell=bash disable=SC2034  # variables for the sourcing script
# Plumbing shared by the benchmarks that run PostgreSQL clusters
# (bench/catchup.sh, bench/copy.sh, bench/kafka.sh, bench/verify.sh);
# sourced, never run.
# The caller has cd'ed to the repository root and set -euo pipefail. It
# provides:
#   - logging (log, die), clocks and arithmetic (now, calc), polling with a
#     deadline (wait_until);
#   - the shop services and their tables (SERVICES, OWNED, ALL_TABLES), as
#     in config/examples/shop.yaml;
#   - bench_init: the Debian packages, the fixtures, a temporary directory
#     $T, and the traps that stop cleave and the clusters and remove $T on
#     exit and Ctrl-C (BENCH_KEEP=1 keeps $T);
#   - throwaway clusters in $T/NAME (initdb as postgres when root, a free
#     loopback port, a private socket directory, wal_level=logical);
#   - cleave: building it, its configuration (PostgreSQL targets, or Kafka
#     only), starting and stopping it;
#   - CPU ticks of processes.
# Environment: CLEAVE_BIN (a built cleave; else build/ is built),
# CLEAVE_FIXTURES (else tests/fixtures), BENCH_KEEP=1, SRC_HOST=unix (the
# source over its Unix socket, as cleave on the database host would reach
# it, instead of TCP on 127.0.0.1; for the reference consumers too),
# BENCH_FSYNC=on (the clusters fsync; off by default, which takes the
# disk out of the comparison).

ROOT=$PWD
FIX=${CLEAVE_FIXTURES:-$ROOT/tests/fixtures}/shop
PGBIN=/usr/lib/postgresql/15/bin
export PATH="$PGBIN:$PATH" PGOPTIONS="-c client_min_messages=warning"
TCK=$(getconf CLK_TCK)
BENCH=$(basename "$0" .sh)

# The services and tables of config/examples/shop.yaml.
SERVICES=(user_service order_service payment_service inventory_service notification_service)
declare -A OWNED=(
  [user_service]="users user_preferences user_sessions"
  [order_service]="orders order_items shipping_addresses"
  [payment_service]="payments refunds payment_methods"
  [inventory_service]="products inventory warehouses"
  [notification_service]="notifications notification_templates"
)
ALL_TABLES="${OWNED[*]}"
tables_csv() { local l=$*; echo "${l// /, }"; }   # "a b c" -> "a, b, c"

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"$1\", ($2) }"; }
usec() { echo "${EPOCHREALTIME/[.,]/}"; }

# wait_until SECONDS COMMAND...: runs COMMAND every 0.1 s until it
# succeeds (0) or SECONDS have passed (1).
wait_until() {
  local deadline=$(( $(usec) + $1 * 1000000 ))
  shift
  until "$@"; do
    [ "$(usec)" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

# need_packages PACKAGE...: installs the Debian packages that are missing,
# as tests/setup-debian.sh does.
need_packages() {
  local p missing=() sudo=""
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  log "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

# ---------------------------------------------------------------- start and clean-up
T=""
AS_ROOT=0; [ "$(id -u)" -eq 0 ] && AS_ROOT=1
declare -A PORT=()
CLUSTERS=()
CLEAVE_PID=""
EXIT_HOOKS=()   # functions bench_cleanup calls first (a benchmark's own processes)

bench_init() {
  bash tests/setup-debian.sh
  [ -d "$FIX" ] || die "no shop fixtures at $FIX (set CLEAVE_FIXTURES)"
  T=$(mktemp -d "${TMPDIR:-/tmp}/cleave-bench-XXXXXX")
  chmod 755 "$T"
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}
bench_cleanup() {
  local rc=$? h c
  set +e
  trap '' INT TERM   # a second Ctrl-C must not cut the clean-up short
  for h in "${EXIT_HOOKS[@]}"; do "$h"; done
  if [ -n "$CLEAVE_PID" ]; then
    kill -TERM "$CLEAVE_PID" 2>/dev/null
    wait_until 5 cleave_exited
    kill -KILL "$CLEAVE_PID" 2>/dev/null
  fi
  for c in "${CLUSTERS[@]}"; do as_pg pg_ctl -D "$T/$c/data" -m immediate -w stop >/dev/null 2>&1; done
  if [ -n "$T" ]; then
    if [ "${BENCH_KEEP:-0}" = 1 ]; then log "kept $T"; else rm -rf "$T"; fi
  fi
  exit "$rc"
}

# ---------------------------------------------------------------- clusters
as_pg() { if [ "$AS_ROOT" = 1 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

free_port() {
  local p
  for p in $(shuf -i 20000-60000 -n 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
    [[ " ${PORT[*]} " == *" $p "* ]] && continue
    echo "$p"; return 0
  done
  return 1
}

# q CLUSTER DB SQL: one query, unaligned tuples only.
q() {
  local c=$1 db=$2; shift 2
  psql -X -qAt -v ON_ERROR_STOP=1 -h "$T/$c" -p "${PORT[$c]}" -U postgres -d "$db" -c "$*"
}
qf() {  # qf CLUSTER DB psql-args...: scripts
  local c=$1 db=$2; shift 2
  psql -X -q -v ON_ERROR_STOP=1 -h "$T/$c" -p "${PORT[$c]}" -U postgres -d "$db" "$@" >/dev/null
}

settings() {  # the same server settings on every cluster
  cat <<EOF

# cleave bench/$BENCH.sh
listen_addresses = '127.0.0.1'
port = ${PORT[$1]}
unix_socket_directories = '$T/$1'
wal_level = logical
max_replication_slots = 32
max_wal_senders = 32
max_worker_processes = 32
max_logical_replication_workers = 16
max_sync_workers_per_subscription = 2
max_connections = 100
fsync = ${BENCH_FSYNC:-off}
shared_buffers = 128MB
max_wal_size = 8GB
checkpoint_timeout = 1h
log_min_messages = warning
# The launcher starts apply workers at most once per this interval (5 s by
# default): the five ENABLEs (one per database) must not wait for it.
wal_retrieve_retry_interval = 50ms
EOF
}

mkcluster_dir() {
  mkdir -p "$T/$1"
  [ "$AS_ROOT" = 1 ] && chown postgres: "$T/$1"
  PORT[$1]=$(free_port) || die "no free port"
  CLUSTERS+=("$1")
}
pg_start() {
  as_pg pg_ctl -D "$T/$1/data" -l "$T/$1/server.log" -w -t 120 start >/dev/null ||
    { tail -20 "$T/$1/server.log" >&2; die "cluster $1 did not start"; }
}
pg_stop() { as_pg pg_ctl -D "$T/$1/data" -m fast -w stop >/dev/null; }
new_cluster() {
  mkcluster_dir "$1"
  as_pg initdb -D "$T/$1/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync \
    >"$T/$1/initdb.log" 2>&1 || { cat "$T/$1/initdb.log" >&2; die "initdb $1"; }
  settings "$1" | as_pg tee -a "$T/$1/data/postgresql.conf" >/dev/null
  pg_start "$1"
}
copy_cluster() {  # copy_cluster FROM TO (FROM stopped)
  mkcluster_dir "$2"
  cp -a "$T/$1/data" "$T/$2/data"
  settings "$2" | as_pg tee -a "$T/$2/data/postgresql.conf" >/dev/null
  pg_start "$2"
}
postmaster_pid() { head -1 "$T/$1/data/postmaster.pid"; }
load_shop() {  # load_shop CLUSTER DB SCALE [psql-args...]: schema.sql and data.sql
  local c=$1 db=$2 scale=$3; shift 3
  qf "$c" "$db" -v scale="$scale" "$@" -f "$FIX/schema.sql" -f "$FIX/data.sql"
}

# CPU ticks (utime + stime) of processes.
ticks() {
  local p s f sum=0
  for p in "$@"; do
    s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    read -r -a f <<<"${s##*) }"
    sum=$((sum + f[11] + f[12]))
  done
  echo "$sum"
}
# cluster_ticks CLUSTER: all the CPU a cluster used since it started: the
# postmaster, its reaped children (exited backends included) and its live
# ones.
cluster_ticks() {
  local pm s f
  pm=$(postmaster_pid "$1")
  s=$(cat "/proc/$pm/stat"); read -r -a f <<<"${s##*) }"
  # shellcheck disable=SC2046  # the pids, one word each
  echo $(( f[11] + f[12] + f[13] + f[14] + $(ticks $(ps -o pid= --ppid "$pm" || true)) ))
}
# server_ticks: both clusters, src and tgt.
server_ticks() { echo $(( $(cluster_ticks src) + $(cluster_ticks tgt) )); }

# ---------------------------------------------------------------- cleave
# build_cleave: sets CLEAVE, the binary, and CLEAVE_NOTE, why there is none.
build_cleave() {
  CLEAVE_NOTE=""
  if [ -n "${CLEAVE_BIN:-}" ]; then
    CLEAVE=$CLEAVE_BIN
  else
    CLEAVE=$ROOT/build/cleave
    if ! { { [ -f build/build.ninja ] || meson setup build; } && meson compile -C build cleave; } \
        >"$T/build.log" 2>&1; then
      CLEAVE_NOTE="cleave did not build: $(grep -m3 -E 'error|undefined' "$T/build.log" | tr '\n' ' ')"
      log "$CLEAVE_NOTE"
    fi
  fi
  [ -n "$CLEAVE_NOTE" ] || [ -x "$CLEAVE" ] || CLEAVE_NOTE="no cleave binary at $CLEAVE"
}

src_host() {
  if [ "${SRC_HOST:-}" = unix ]; then echo "$T/src"; else echo 127.0.0.1; fi
}
src_dsn() { echo "host=$(src_host) port=${PORT[src]} dbname=shop user=postgres"; }

# write_config TARGET_CLUSTER SLOT [LINE...]: $T/SLOT.yaml, cleave from the
# source cluster "src" (slot and publication SLOT) into the five service
# databases SERVICE_db of the target cluster; each LINE is added as is at
# the top level.
write_config() {
  local c=$1 slot=$2 s; shift 2
  {
    config_head "$slot" "$@"
    for s in "${SERVICES[@]}"; do
      echo "  $s:"
      echo "    owned_tables: [$(tables_csv "${OWNED[$s]}")]"
      echo "    target:"
      echo "      postgres: \"host=$T/$c port=${PORT[$c]} dbname=${s}_db user=postgres\""
    done
  } >"$T/$slot.yaml"
}
# write_kafka_config SLOT BROKERS [LINE...]: $T/SLOT.yaml as write_config's,
# but every service publishes to Kafka only (no PostgreSQL target), through
# the brokers "host:port,..." of a top-level kafka section.
write_kafka_config() {
  local slot=$1 brokers=$2 s; shift 2
  {
    config_head "$slot" "kafka:" "  brokers: \"$brokers\"" "$@"
    for s in "${SERVICES[@]}"; do
      echo "  $s:"
      echo "    owned_tables: [$(tables_csv "${OWNED[$s]}")]"
      echo "    target:"
      echo "      kafka: true"
    done
  } >"$T/$slot.yaml"
}
# config_head SLOT [LINE...]: a configuration up to "services:".
config_head() {
  local slot=$1 s; shift
  echo "name: bench"
  echo "source:"
  echo "  dsn: \"$(src_dsn)\""
  echo "  slot: $slot"
  echo "  publication: $slot"
  echo "state_dir: $T/$slot.state"
  echo "status_socket: $T/$slot.sock"
  echo "log_level: info"
  for s in "$@"; do echo "$s"; done
  echo "services:"
}
cleave_start() {  # cleave_start SLOT: starts cleave on its config, logging to SLOT.log
  touch "$T/$1.log"
  LOG_FROM=$(( $(wc -l <"$T/$1.log") + 1 ))
  "$CLEAVE" run -c "$T/$1.yaml" >>"$T/$1.log" 2>&1 &
  CLEAVE_PID=$!
}
cleave_exited() { ! kill -0 "$CLEAVE_PID" 2>/dev/null; }
cleave_stop() {  # SIGTERM, 30 s to exit, then SIGKILL; returns cleave's exit status
  local rc=0
  kill -TERM "$CLEAVE_PID" 2>/dev/null || true
  if ! wait_until 30 cleave_exited; then
    kill -KILL "$CLEAVE_PID"; rc=137; wait "$CLEAVE_PID" 2>/dev/null || true
  else
    wait "$CLEAVE_PID" || rc=$?
  fi
  CLEAVE_PID=""
  return "$rc"
}
