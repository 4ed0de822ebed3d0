#!/usr/bin/env bash
# cleave's main job, end to end, in about a minute:
#
#   bash tests/demo.sh
#
# Installs the Debian packages it needs, builds cleave, then starts two
# throwaway PostgreSQL 15 clusters: a source holding the shared "shop"
# database (tests/fixtures/shop, about 258,000 rows) and a target
# holding five empty service databases. `cleave run`, with the services and
# tables of config/examples/shop.yaml, creates each service's tables, copies
# them inside its slot's snapshot and streams on, while a pgbench workload
# runs on the source the whole time. Once cleave has confirmed the source's
# last position, every owned table is compared row for row. Then, while
# the other services keep writing, order_service's writes are cut over to
# its own database (the pause printed, the shared copy fenced, a write
# coming back through the reverse stream) and rolled back. The clusters
# are stopped and removed (also on Ctrl-C). Exit 0 only if all of it
# matched.
#
# Run as root on Debian 12, or as a user who can run initdb.
# Environment: CLEAVE_FIXTURES (else tests/fixtures), DEMO_TIMEOUT (s,
# default 120, for each wait), DEMO_KEEP=1 (keep the temporary directory),
# CLEAVE_BIN (a cleave to run instead of building build/cleave: the
# installed package's /usr/bin/cleave, say).
set -Eeuo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
FIX=${CLEAVE_FIXTURES:-$ROOT/tests/fixtures}/shop
PGBIN=/usr/lib/postgresql/15/bin
CLEAVE=${CLEAVE_BIN:-$ROOT/build/cleave}
TIMEOUT=${DEMO_TIMEOUT:-120}
CLIENTS=4 TXNS=500         # the pgbench workload: small, to stay well under 2 min
SLOT=cleave_shop           # the slot and publication cleave creates (name: shop)
export PATH="$PGBIN:$PATH"

# The services and tables of config/examples/shop.yaml.
SERVICES=(user_service order_service payment_service inventory_service notification_service)
declare -A OWNED=(
  [user_service]="users user_preferences user_sessions"
  [order_service]="orders order_items shipping_addresses"
  [payment_service]="payments refunds payment_methods"
  [inventory_service]="products inventory warehouses"
  [notification_service]="notifications notification_templates"
)

# ---------------------------------------------------------------- output
ms() { local t=${EPOCHREALTIME//[.,]/}; echo $((t / 1000)); }   # wall clock, ms
T0=$(ms)
elapsed() { local d=$(($(ms) - T0)); printf '%d.%d' $((d / 1000)) $((d % 1000 / 100)); }
STEP=0
section() { STEP=$((STEP + 1)); printf '\n== %d. %s  (%ss)\n' "$STEP" "$*" "$(elapsed)"; }
say() { echo "   $*"; }
die() { echo "FAIL: $*" >&2; exit 1; }

# ---------------------------------------------------------------- clean-up
# Everything lives in one temporary directory; the EXIT trap stops what was
# started in it and removes it, whether the demo passed, failed or was
# interrupted (the INT/TERM traps turn Ctrl-C into an exit, so EXIT runs).
T=""
CLEAVE_PID="" JOB_PID="" STARTING=""
declare -A PORT=()
AS_ROOT=0; [ "$(id -u)" -eq 0 ] && AS_ROOT=1
as_pg() { if [ "$AS_ROOT" = 1 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

stop_cleave() {  # SIGTERM, as an operator would; prints nothing, returns its exit status
  local rc=0
  kill -TERM "$CLEAVE_PID" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$CLEAVE_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$CLEAVE_PID" 2>/dev/null || true
  wait "$CLEAVE_PID" || rc=$?
  CLEAVE_PID=""
  return "$rc"
}
stop_cluster() {  # immediate: the data is thrown away anyway
  local c=$1
  for _ in $(seq 20); do
    if [ -f "$T/$c/data/postmaster.pid" ]; then
      as_pg pg_ctl -D "$T/$c/data" -m immediate -w stop >/dev/null 2>&1 || true
      return 0
    fi
    # Interrupted during pg_ctl start: the postmaster may not have written
    # its pid file yet; give it a moment so that it is not left behind.
    [ "$STARTING" = "$c" ] || return 0
    sleep 0.2
  done
}
cleanup() {
  local rc=$?
  set +e
  trap - ERR
  trap '' INT TERM    # a second Ctrl-C must not cut the clean-up short
  [ -z "$JOB_PID" ] || kill "$JOB_PID" 2>/dev/null
  [ -z "$CLEAVE_PID" ] || stop_cleave
  [ -z "$T" ] || [ ! -d "$T" ] || {
    stop_cluster src; stop_cluster tgt
    if [ "${DEMO_KEEP:-0}" = 1 ]; then echo "kept $T"; else
      rm -rf "$T"; echo "(cleave and both clusters stopped, $T removed)"; fi
  }
  exit "$rc"
}
trap cleanup EXIT
# Say which command failed when set -e ends the demo (once, not per subshell).
# shellcheck disable=SC2154  # st is assigned in the trap itself
trap 'st=$?; [ "$BASH_SUBSHELL" != 0 ] || echo "FAIL: line $LINENO: $BASH_COMMAND (status $st)" >&2' ERR
trap 'echo; echo "interrupted: stopping cleave and the clusters"; exit 130' INT TERM

# ---------------------------------------------------------------- helpers
q() {  # q CLUSTER DB SQL: one query, unaligned rows, '|' between columns
  local c=$1 db=$2; shift 2
  PGOPTIONS="-c client_min_messages=warning" \
    psql -X -qAt -v ON_ERROR_STOP=1 -h "$T/$c" -p "${PORT[$c]}" -U postgres -d "$db" -c "$*"
}
qf() {  # qf CLUSTER DB PSQL-ARGS...: run scripts quietly
  local c=$1 db=$2; shift 2
  PGOPTIONS="-c client_min_messages=warning" \
    psql -X -q -v ON_ERROR_STOP=1 -h "$T/$c" -p "${PORT[$c]}" -U postgres -d "$db" "$@" >/dev/null
}
free_port() {  # a loopback port nothing listens on
  local p
  for p in $(shuf -i 20000-60000 -n 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
    [[ " ${PORT[*]} " == *" $p "* ]] && continue
    echo "$p"; return 0
  done
  return 1
}
new_cluster() {  # new_cluster NAME: initdb and start, sockets and data in $T/NAME
  local c=$1
  mkdir "$T/$c"
  [ "$AS_ROOT" = 0 ] || chown postgres: "$T/$c"
  PORT[$c]=$(free_port) || die "no free port"
  as_pg initdb -D "$T/$c/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync \
    >"$T/$c/initdb.log" 2>&1 || { cat "$T/$c/initdb.log" >&2; die "initdb $c"; }
  # wal_level=logical is what cleave needs; fsync off and a large
  # max_wal_size only make a throwaway cluster faster.
  as_pg tee -a "$T/$c/data/postgresql.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = ${PORT[$c]}
unix_socket_directories = '$T/$c'
wal_level = logical
fsync = off
max_wal_size = 2GB
log_min_messages = warning
EOF
  STARTING=$c
  as_pg pg_ctl -D "$T/$c/data" -l "$T/$c/server.log" -w -t 60 start >/dev/null ||
    { tail -20 "$T/$c/server.log" >&2; die "cluster $c did not start"; }
  STARTING=""
}
tables_sql() { local l=$*; echo "${l// /, }"; }   # "a b c" -> "a, b, c"
short() { echo "${1%_service}"; }              # user_service -> user

check_cleave() {  # fails the demo, with cleave's last words, if it exited
  kill -0 "$CLEAVE_PID" 2>/dev/null && return 0
  local rc=0; wait "$CLEAVE_PID" || rc=$?; CLEAVE_PID=""
  echo "cleave exited unexpectedly (status $rc); last lines of its log:" >&2
  tail -15 "$T/cleave.log" | sed 's/^/    /' >&2
  exit 1
}

# Progress: the source's WAL position, what cleave confirmed on its slot,
# the distance between them, and the rows each service database holds.
progress_header() {
  printf '   %6s  %-9s %-12s %-12s %10s |' time phase "source WAL" confirmed behind
  for s in "${SERVICES[@]}"; do printf ' %*s' $((${#s} - 8 > 7 ? ${#s} - 8 : 7)) "$(short "$s")"; done
  echo
}
progress() {  # progress PHASE
  local phase=$1 wal conf behind s n line
  IFS='|' read -r wal conf behind < <(q src shop "
    SELECT pg_current_wal_lsn(), confirmed_flush_lsn,
           pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn))
    FROM pg_replication_slots WHERE slot_name = '$SLOT'") || true   # no slot yet: blanks
  line=$(printf '   %5ss  %-9s %-12s %-12s %10s |' "$(elapsed)" "$phase" "$wal" "$conf" "$behind")
  for s in "${SERVICES[@]}"; do
    # "-" until cleave has created the service's tables
    n=$(q tgt "${s}_db" "SELECT $(for t in ${OWNED[$s]}; do printf '(SELECT count(*) FROM %s) + ' "$t"; done) 0" 2>/dev/null) || n=-
    line+=$(printf ' %*s' $((${#s} - 8 > 7 ? ${#s} - 8 : 7)) "$n")
  done
  echo "$line"
}
# wait_for PHASE CONDITION...: a progress line every second until the command
# CONDITION succeeds; fails on cleave's exit or after $TIMEOUT seconds.
wait_for() {
  local phase=$1 start next now; shift
  start=$(ms); next=$((start + 1000))
  until "$@"; do
    check_cleave
    now=$(ms)
    [ $((now - start)) -lt $((TIMEOUT * 1000)) ] || { progress "$phase"; die "$phase: not done after $TIMEOUT s"; }
    if [ "$now" -ge "$next" ]; then progress "$phase"; next=$((now + 1000)); fi
    sleep 0.2
  done
}
job_done() { ! kill -0 "$JOB_PID" 2>/dev/null; }
sync_done() { grep -q 'event=initial_sync_done' "$T/cleave.log"; }
# Every service streams: its copy is done and what was held meanwhile applied.
all_streaming() {
  local s
  for s in "${SERVICES[@]}"; do
    [ "$(grep -o "event=service_state service=$s state=[a-z_]*" "$T/cleave.log" | tail -1)" = \
      "event=service_state service=$s state=streaming" ] || return 1
  done
}
# cleave's own word, from its status socket: every sink streams, none lags.
status_caught_up() {
  "$CLEAVE" status -c "$CONF" --json 2>/dev/null | python3 -c '
import json, sys
st = json.load(sys.stdin)
sinks = [k for s in st["services"] for k in s["sinks"]]
sys.exit(0 if sinks and all(k["state"] == "streaming" and k["lag_bytes"] == 0
                            for k in sinks) else 1)'
}
caught_up() {
  all_streaming && status_caught_up &&
  [ "$(q src shop "SELECT confirmed_flush_lsn >= '$TARGET_LSN'
                   FROM pg_replication_slots WHERE slot_name = '$SLOT'")" = t ]
}
show_status() {
  say "\$ cleave status -c $CONF"
  "$CLEAVE" status -c "$CONF" | sed 's/^/   /' || true
}

# fingerprints CLUSTER DB TABLES...: "table|rows|md5 of its rows as text, in
# order", one line per table, sorted by table (a Parallel Append would
# return the lines in any order).
fingerprints() {
  local c=$1 db=$2 t sql=""; shift 2
  for t in "$@"; do
    sql+="${sql:+ UNION ALL }SELECT '$t', count(*),
          coalesce(md5(string_agg(r::text, E'\n' ORDER BY r::text)), '') FROM $t r"
  done
  q "$c" "$db" "$sql ORDER BY 1"
}

# ================================================================ the demo
section "Packages and build"
bash tests/setup-debian.sh
[ -d "$FIX" ] || die "no shop fixtures at $FIX (set CLEAVE_FIXTURES)"
T=$(mktemp -d "${TMPDIR:-/tmp}/cleave-demo-XXXXXX")
chmod 755 "$T"   # the postgres user works in here too
if [ -n "${CLEAVE_BIN:-}" ]; then
  [ -x "$CLEAVE" ] || die "CLEAVE_BIN=$CLEAVE is not an executable"
  say "$("$CLEAVE" --version), at $CLEAVE (not built)"
elif ! { { [ -f build/build.ninja ] || meson setup build; } && meson compile -C build cleave; } \
    >"$T/build.log" 2>&1; then
  tail -30 "$T/build.log" >&2; die "cleave did not build"
else
  say "$("$CLEAVE" --version), built in build/"
fi

section "Two throwaway PostgreSQL 15 clusters under $T"
new_cluster src
new_cluster tgt
say "source: port ${PORT[src]}, wal_level=logical    target: port ${PORT[tgt]}"

section "The shared database 'shop' with its data, five empty service databases"
q src postgres "CREATE DATABASE shop"
qf src shop -v scale=1 -f "$FIX/schema.sql" -f "$FIX/data.sql"
say "shop: $(q src shop "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") tables, $(q src shop "SELECT sum(n_live_tup) FROM pg_stat_user_tables") rows, cross-service foreign keys included"
for s in "${SERVICES[@]}"; do
  q tgt postgres "CREATE DATABASE ${s}_db"
done
say "${SERVICES[*]/%/_db}: no tables at all; cleave creates them"

section "Configuration"
CONF=$T/shop.yaml
{
  echo "# config/examples/shop.yaml's services and tables, on the demo's clusters"
  echo "name: shop"
  echo "source:"
  echo "  dsn: \"host=$T/src port=${PORT[src]} dbname=shop user=postgres\""
  echo "  slot: $SLOT"
  echo "  publication: $SLOT"
  echo "state_dir: $T/state"
  echo "status_socket: $T/status.sock"
  echo "log_level: info"
  echo "services:"
  for s in "${SERVICES[@]}"; do
    echo "  $s:"
    echo "    owned_tables: [$(tables_sql "${OWNED[$s]}")]"
    echo "    target:"
    echo "      postgres: \"host=$T/tgt port=${PORT[tgt]} dbname=${s}_db user=postgres\""
  done
} >"$CONF"
# The head of the file and the first service; cleave check lists them all.
sed -n '1,/^  order_service:/p' "$CONF" | sed '$d' | sed 's/^/   | /'
say "|   ... and 4 more services of the same shape"
say "\$ cleave check -c $CONF"
"$CLEAVE" check -c "$CONF" | sed 's/^/   /'

section "cleave run: slot, tables, copy in the slot's snapshot, then streaming; pgbench all along"
# In a session of its own, so that a Ctrl-C reaches only the demo, whose
# clean-up then stops cleave the way an operator would (SIGTERM).
setsid "$CLEAVE" run -c "$CONF" >"$T/cleave.log" 2>&1 & CLEAVE_PID=$!
say "\$ cleave run -c $CONF 2>cleave.log &    (pid $CLEAVE_PID)"
# The fixture's standard mix: orders, user updates (unchanged TOAST, a table
# without a primary key), stock, notifications (insert/update/delete), refunds.
W=$FIX/workload
pgbench -h "$T/src" -p "${PORT[src]}" -U postgres -n -c $CLIENTS -j 2 -t $TXNS -s 1 \
        --random-seed=42 -f "$W/new_order.sql@4" -f "$W/user_update.sql@3" \
        -f "$W/inventory.sql@3" -f "$W/notification.sql@2" -f "$W/refund.sql@1" shop \
        >"$T/pgbench.log" 2>&1 & JOB_PID=$!
say "pgbench: $CLIENTS clients x $TXNS transactions on the source, from now on"
progress_header
# While the tables copy, the stream is held in state_dir/hold/ (the slot
# moves on); each service replays it once its copy is done.
wait_for copy sync_done
progress copied
grep -o 'event=copy_done service=[a-z_]* .*' "$T/cleave.log" | sed 's/^/   /'
show_status
wait_for pgbench job_done
rc=0; wait "$JOB_PID" || rc=$?; JOB_PID=""
[ "$rc" = 0 ] || { tail -20 "$T/pgbench.log" >&2; die "pgbench failed (status $rc)"; }
TARGET_LSN=$(q src shop "SELECT pg_current_wal_lsn()")
wait_for catch-up caught_up
progress "caught up"
show_status
say "cleave confirmed $TARGET_LSN, the source's position after the workload"
say "pgbench: $((CLIENTS * TXNS)) transactions, $(grep -m1 -o 'tps = [0-9]*' "$T/pgbench.log" || echo '?') on the source while cleave streamed"

section "Source and service databases, table by table (count and md5 of the ordered rows)"
printf '   %-22s %6s %12s %12s  %s\n' service tables "source rows" "service rows" equal
failed=0 tot_t=0 tot_s=0 tot_d=0
for s in "${SERVICES[@]}"; do
  # shellcheck disable=SC2086
  src_fp=$(fingerprints src shop ${OWNED[$s]})
  # shellcheck disable=SC2086
  dst_fp=$(fingerprints tgt "${s}_db" ${OWNED[$s]})
  ns=$(awk -F'|' '{ n += $2 } END { print n }' <<<"$src_fp")
  nd=$(awk -F'|' '{ n += $2 } END { print n }' <<<"$dst_fp")
  nt=$(wc -w <<<"${OWNED[$s]}")
  if [ "$src_fp" = "$dst_fp" ]; then eq=yes; else
    eq="NO: $( { diff <(echo "$src_fp") <(echo "$dst_fp") || true; } |
              awk -F'[<>|]' '/^[<>]/ { print $2 }' | tr -d ' ' | sort -u | paste -sd, -)"
    failed=1
  fi
  printf '   %-22s %6s %12s %12s  %s\n' "$s" "$nt" "$ns" "$nd" "$eq"
  tot_t=$((tot_t + nt)) tot_s=$((tot_s + ns)) tot_d=$((tot_d + nd))
done
printf '   %-22s %6s %12s %12s  %s\n' total "$tot_t" "$tot_s" "$tot_d" "$([ $failed = 0 ] && echo yes || echo NO)"

section "Cut-over: order_service's writes move to its own database, then back"
# The other services keep writing all along; payment.sql's payments point
# into the moving orders by foreign key, and must never wait.
pgbench -h "$T/src" -p "${PORT[src]}" -U postgres -n -c 2 -j 2 -T 8 -s 1 \
        -f "$W/user_update.sql@3" -f "$W/inventory.sql@3" -f "$W/notification.sql@2" \
        -f "$W/payment.sql@2" shop >"$T/pgbench2.log" 2>&1 & JOB_PID=$!
say "pgbench: the other four services write for 8 s"
new_order="INSERT INTO orders (order_uuid, user_id) VALUES (gen_random_uuid(), 1) RETURNING id"
try_write() {  # try_write CLUSTER DB: an order written through its sequence, or the error
  { q "$1" "$2" "$new_order" 2>&1 || true; } | { grep -E '^[0-9]+$|ERROR' || true; } |
    sed 's/^psql:[^E]*//' | sed -n 1p
}
say "before: order_service_db refuses: $(try_write tgt order_service_db)"
say "\$ cleave cutover -c $CONF order_service"
"$CLEAVE" cutover -c "$CONF" order_service 2>&1 | sed 's/^/   /' || die "the cut-over failed"
say "now the shared database refuses: $(try_write src shop)"
id=$(try_write tgt order_service_db)
[[ $id =~ ^[0-9]+$ ]] || die "order_service_db refused a write after the cut-over: $id"
say "and order_service_db takes it: order $id"
reverse_applied() { [ "$(q src shop "SELECT count(*) FROM orders WHERE id = $id")" = 1 ]; }
wait_for reverse reverse_applied
say "order $id reached the shared database through the reverse stream"
show_status
say "\$ cleave rollback -c $CONF order_service"
"$CLEAVE" rollback -c "$CONF" order_service 2>&1 | sed 's/^/   /' || die "the rollback failed"
id=$(try_write src shop)
[[ $id =~ ^[0-9]+$ ]] || die "the shared database refused a write after the rollback: $id"
say "the shared database takes writes again (order $id); order_service_db refuses: $(try_write tgt order_service_db)"
wait_for pgbench job_done
rc=0; wait "$JOB_PID" || rc=$?; JOB_PID=""
[ "$rc" = 0 ] || { tail -20 "$T/pgbench2.log" >&2; die "the other services' workload failed during the cut-over (status $rc)"; }
say "the other services' workload ran through both switches: $(grep -m1 -o 'tps = [0-9]*' "$T/pgbench2.log" || echo '?')"
orders_equal() {
  # shellcheck disable=SC2086
  [ "$(fingerprints src shop ${OWNED[order_service]})" = "$(fingerprints tgt order_service_db ${OWNED[order_service]})" ]
}
wait_for converge orders_equal
say "order_service's tables are identical on both sides again"

section "Stop cleave (SIGTERM) and what it logged"
rc=0; stop_cleave || rc=$?
# sed -n, not head: under pipefail a head that exits first fails the grep with SIGPIPE
grep 'event=' "$T/cleave.log" | grep -vE 'event=(feedback|copy_progress|table_copied|copy_done)' | sed -n 1,24p |
  sed -E 's/^[0-9-]+T//; s/^/   /' | cut -c1-140   # time of day is enough
problems=$(grep -cE 'level=(warning|error)' "$T/cleave.log" || true)
[ "$problems" = 0 ] || say "($problems warning/error lines in cleave's log)"
[ "$rc" = 0 ] || { failed=1; say "cleave exited with status $rc on SIGTERM, not 0"; }

echo
if [ $failed = 0 ]; then
  echo "PASS: every owned table is identical in its service's database ($(elapsed) s)"
else
  echo "FAIL: see above ($(elapsed) s)"
  exit 1
fi
