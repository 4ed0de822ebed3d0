#!/usr/bin/env bash
# Kafka catch-up benchmark: cleave publishing the accumulated shop stream
# to a mock Kafka cluster, side by side with PostgreSQL handing out the
# same stream.
#
#   bench/kafka.sh [TRANSACTIONS_PER_CLIENT (default 5000)]
#
# One source cluster (database shop, schema.sql + data.sql at scale 1) and
# librdkafka's mock Kafka cluster in a process of its own (cleave-kmock,
# tests/support/kmock.c: 3 brokers, messages kept in memory), with one
# topic of 3 partitions per shop table made up front. cleave runs with a
# Kafka target only for every service (write_kafka_config, bench/common.sh).
#
#   1. cleave's first start creates its slot and publication and publishes
#      every existing row (op r); once its log says event=initial_sync_done
#      and its slot confirmed the source's position, it is SIGTERMed.
#   2. A second pgoutput slot, the reference's, is made at that position,
#      then the shop workload runs once (pgbench, 4 clients, fixed seed),
#      so both slots hold the very same stream.
#   3. cleave alone: started, timed until its slot's confirmed_flush_lsn
#      reaches the source's LSN after the workload, then SIGTERMed.
#   4. The references, on the second slot: PostgreSQL decoding the stream
#      inside a backend (pg_logical_slot_peek_binary_changes, counted, no
#      network), then pg_recvlogical draining it through a walsender into
#      /dev/null (--endpos; GNU time's elapsed, start to exit) with cleave's
#      options (proto_version 2, streaming on, messages true), over TCP as
#      cleave. No consumer of the slot can be faster than these.
#
# Events. cleave's are Kafka messages: the sum over every topic and
# partition of the high watermarks after the catch-up minus before it
# (kcat -Q; the idempotent producer without transactions writes no control
# records, so offsets count messages). They must equal the stream's
# changes plus one tombstone per delete of a table keyed by a primary key
# (user_sessions is REPLICA IDENTITY FULL: a null key, no tombstone); the
# report says whether they do. The references' events are the stream's
# change messages (pgoutput I, U, D, T in the second slot up to the LSN).
# The ratio is the speed over the same stream: the reference's seconds
# over cleave's, i.e. stream changes per second, so cleave's tombstones do
# not count in its favour.
#
# Figures per consumer: seconds from its start; CPU seconds per million of
# its events of the consumer process (cleave: its whole process, which
# only did the catch-up; the backend of the peek; pg_recvlogical by GNU
# time); its peak RSS (cleave's VmHWM before the stop, pg_recvlogical's
# %M); the CPU of its walsender (sampled every 0.02 s for pg_recvlogical,
# whose walsender ends with it). During cleave's run the mock broker's CPU
# is shown too (on two cores it competes with cleave and the walsender),
# and the context switches of cleave's threads per event: a hand-off per
# event instead of per batch shows there first.
# Targets (issue 16): cleave >= 150,000 events/s, at most 6 CPU-seconds
# per million events, and peak RSS < 64 MB (PASS/FAIL
# lines; a missed target is not an error). Exits non-zero only when a run
# failed (cleave exited, timed out, or published fewer messages than the
# stream holds).
#
# Environment: KAFKA_TIMEOUT (s a catch-up may take, 300), CLEAVE_KMOCK
# (the mock; else next to CLEAVE_BIN's build, tests/support/cleave-kmock,
# or build/'s, which is built), BENCH_PERF=DIR (perf record -a -g of each
# timed run into DIR), BENCH_TRACE=DIR (each poll of cleave's catch-up:
# seconds, bytes still to confirm, into DIR/cleave.trace; at the end each
# thread's context switches, into DIR/cleave.threads), and those of
# bench/common.sh: CLEAVE_BIN, CLEAVE_FIXTURES, BENCH_KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/common.sh
. bench/common.sh
TXNS=${1:-5000}
CLIENTS=4
SCALE=1
SEED=42
TIMEOUT=${KAFKA_TIMEOUT:-300}
SLOT=cleave_kafka      # cleave's slot and publication
REF=ref_decode         # the reference's slot, on cleave's publication
PGOPTS=(-o proto_version=2 -o streaming=on -o messages=true -o "publication_names=$SLOT")
GNU_TIME=/usr/bin/time
TARGET_EPS=150000
TARGET_CPU_PER_M=6
TARGET_RSS=64

bench_init
need_packages kcat time
KM_PID=""
KM_FD=""
POLL_PID=""
BG_PID=""
RECV_PID=""
kafka_on_exit() {
  [ -z "$BG_PID" ] || kill -INT "$BG_PID" 2>/dev/null
  [ -z "$RECV_PID" ] || kill "$RECV_PID" 2>/dev/null
  [ -z "$POLL_PID" ] || kill "$POLL_PID" 2>/dev/null
  if [ -n "$KM_PID" ]; then
    # quit, not EOF: the fifo's write end is inherited by every child
    [ -z "$KM_FD" ] || { kmock_exited || echo quit >&"$KM_FD"; exec {KM_FD}>&-; } 2>/dev/null
    wait_until 5 kmock_exited || kill -KILL "$KM_PID" 2>/dev/null
  fi
}
EXIT_HOOKS+=(kafka_on_exit)

# ---------------------------------------------------------------- the mock cluster
# build_kmock: sets KMOCK, the mock's binary, building build/'s if needed.
build_kmock() {
  if [ -n "${CLEAVE_KMOCK:-}" ]; then
    KMOCK=$CLEAVE_KMOCK
  elif [ -n "${CLEAVE_BIN:-}" ]; then
    KMOCK=$(dirname "$(dirname "$CLEAVE_BIN")")/tests/support/cleave-kmock
  else
    KMOCK=$ROOT/build/tests/support/cleave-kmock
    meson compile -C build tests/support/cleave-kmock >>"$T/build.log" 2>&1 ||
      die "cleave-kmock did not build (build/ configured with -Dtests=false?): $(tail -3 "$T/build.log")"
  fi
  [ -x "$KMOCK" ] || die "no cleave-kmock at $KMOCK (set CLEAVE_KMOCK)"
}
kmock_exited() { ! kill -0 "$KM_PID" 2>/dev/null; }
# The mock reads commands from a fifo held open on KM_FD for the whole run
# (EOF would stop it) and answers into $T/kmock.out.
kmock_start() {
  mkfifo "$T/kmock.in"
  "$KMOCK" <"$T/kmock.in" >"$T/kmock.out" 2>"$T/kmock.err" &
  KM_PID=$!
  exec {KM_FD}>"$T/kmock.in"
  wait_until 10 grep -q '^bootstrap ' "$T/kmock.out" ||
    die "cleave-kmock did not start: $(cat "$T/kmock.err")"
  BOOTSTRAP=$(awk '/^bootstrap / { print $2; exit }' "$T/kmock.out")
}
kmock_answers() { [ "$(wc -l <"$T/kmock.out")" -ge "$1" ]; }
kmock_cmd() {  # kmock_cmd WORD...: one command, dies unless it answers ok
  local n
  kmock_exited && die "cleave-kmock exited: $(tail -3 "$T/kmock.err")"
  n=$(( $(wc -l <"$T/kmock.out") + 1 ))
  echo "$*" >&"$KM_FD"
  wait_until 10 kmock_answers "$n" || die "cleave-kmock did not answer: $*"
  [ "$(sed -n "${n}p" "$T/kmock.out")" = ok ] ||
    die "cleave-kmock: $*: $(sed -n "${n}p" "$T/kmock.out")"
}
# Messages in the cluster: the sum of every partition's high watermark.
kafka_messages() {
  local args=()
  # shellcheck disable=SC2207  # topic names have no spaces
  args=($(kcat -b "$BOOTSTRAP" -L 2>/dev/null |
          awk '/^  topic "/ { t = $2; gsub(/"/, "", t); for (p = 0; p < $4; p++) print "-t", t ":" p ":-1" }'))
  [ ${#args[@]} -gt 0 ] || { echo 0; return; }
  kcat -b "$BOOTSTRAP" -Q "${args[@]}" | awk '/ offset / { n += $NF } END { print n + 0 }'
}

# ---------------------------------------------------------------- the source
# Polling goes through one long-lived psql session, as in bench/catchup.sh.
start_poller() {
  coproc POLLER { exec psql -X -qAt -h "$T/src" -p "${PORT[src]}" -U postgres -d shop 2>&1; }
  # shellcheck disable=SC2153  # POLLER_PID: set by coproc
  POLL_PID=$POLLER_PID
}
pq() {
  local line
  printf '%s;\n\\echo __pq_end__\n' "$1" >&"${POLLER[1]}"
  while IFS= read -r line <&"${POLLER[0]}"; do
    [ "$line" = __pq_end__ ] && return 0
    printf '%s\n' "$line"
  done
  die "the polling session ended"
}
slot_pid() { pq "SELECT active_pid FROM pg_replication_slots WHERE slot_name = '$1' AND active_pid IS NOT NULL"; }
slot_at() {  # slot_at SLOT LSN: the slot confirmed the LSN
  [ "$(pq "SELECT confirmed_flush_lsn >= '$2' FROM pg_replication_slots WHERE slot_name = '$1'")" = t ]
}
rows_changed() {
  q src shop "SELECT sum(n_tup_ins + n_tup_upd + n_tup_del) FROM pg_stat_user_tables WHERE schemaname = 'public'"
}
# Deletes of the tables whose Kafka key is not null (replica identity
# default with a primary key, or an index): each has a tombstone.
keyed_deletes() {
  q src shop "SELECT coalesce(sum(s.n_tup_del), 0) FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
              WHERE s.schemaname = 'public' AND (c.relreplident = 'i' OR (c.relreplident = 'd' AND
                    EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)))"
}

perf_start() {
  [ -n "${BENCH_PERF:-}" ] || return 0
  mkdir -p "$BENCH_PERF"
  perf record -a -g -o "$BENCH_PERF/$1.data" >/dev/null 2>&1 & BG_PID=$!
}
perf_stop() {
  [ -n "$BG_PID" ] || return 0
  kill -INT "$BG_PID" 2>/dev/null; wait "$BG_PID" 2>/dev/null || true; BG_PID=""
}

cleave_log_tail() { tail -n 25 "$T/$SLOT.log" | sed 's/^/    /' >&2; }
cleave_gone() {  # dies when cleave exited on its own
  cleave_exited || return 0
  local st=0; wait "$CLEAVE_PID" || st=$?; CLEAVE_PID=""
  cleave_log_tail; die "cleave exited (status $st); last lines of its log above"
}
# wait_fast SECONDS COMMAND...: wait_until, polling every 0.02 s (a
# catch-up of 1 s must not be measured to 0.1 s).
wait_fast() {
  local deadline=$(( $(usec) + $1 * 1000000 ))
  shift
  until "$@"; do
    [ "$(usec)" -lt "$deadline" ] || return 1
    sleep 0.02
  done
}
initial_synced() {
  cleave_gone
  grep -q 'event=initial_sync_done' "$T/$SLOT.log"
}
caught_up() {  # caught_up LSN [T_START]: cleave's slot confirmed the LSN
  cleave_gone
  [ -z "${BENCH_TRACE:-}" ] || [ -z "${2:-}" ] ||
    pq "SELECT round(extract(epoch FROM clock_timestamp()) - $2, 3),
               pg_wal_lsn_diff('$1', confirmed_flush_lsn)
        FROM pg_replication_slots WHERE slot_name = '$SLOT'" >>"$BENCH_TRACE/cleave.trace"
  slot_at "$SLOT" "$1"
}
# Context switches of cleave's threads so far.
cleave_switches() {
  cat /proc/"$CLEAVE_PID"/task/*/status 2>/dev/null |
    awk '/ctxt_switches/ { n += $2 } END { print n + 0 }'
}
# Per thread: id, name, voluntary and involuntary context switches.
cleave_thread_switches() {
  local f
  for f in /proc/"$CLEAVE_PID"/task/*/status; do
    awk '/^Name:/ { n = $2 } /^Pid:/ { p = $2 } /^voluntary_ctxt/ { v = $2 }
         /^nonvoluntary_ctxt/ { print p, n, v, $2 }' "$f" 2>/dev/null
  done
}
cleave_threads() { awk '/^Threads:/ { print $2 }' "/proc/$CLEAVE_PID/status"; }

# ---------------------------------------------------------------- build, cluster, mock
build_cleave
[ -z "$CLEAVE_NOTE" ] || die "$CLEAVE_NOTE"
build_kmock

t_setup=$(now)
log "source cluster: shop at scale $SCALE"
new_cluster src
q src postgres "CREATE DATABASE shop"
start_poller
load_shop src shop $SCALE

kmock_start
log "mock Kafka cluster: $BOOTSTRAP"
for t in $ALL_TABLES; do kmock_cmd topic "bench.public.$t"; done
write_kafka_config "$SLOT" "$BOOTSTRAP"

# ---------------------------------------------------------------- 1. slot and initial sync
log "cleave: first start: slot, then every row to Kafka (op r)"
cleave_start "$SLOT"
wait_until "$TIMEOUT" initial_synced || { cleave_log_tail; die "no event=initial_sync_done in $TIMEOUT s"; }
cur=$(q src shop "SELECT pg_current_wal_lsn()")
wait_until 60 caught_up "$cur" || { cleave_log_tail; die "slot $SLOT did not confirm $cur in 60 s"; }
rc=0; cleave_stop || rc=$?
[ $rc = 0 ] || { cleave_log_tail; die "SIGTERM after the initial sync: exit $rc"; }
SNAP_MSGS=$(kafka_messages)
log "initial sync: $SNAP_MSGS messages in the cluster"

# ---------------------------------------------------------------- 2. reference slot, workload
slot_idle() { [ -z "$(slot_pid "$SLOT")" ]; }
wait_until 10 slot_idle || die "slot $SLOT still active 10 s after cleave stopped"
q src shop "SELECT pg_create_logical_replication_slot('$REF', 'pgoutput')" >/dev/null
q src shop "CHECKPOINT" >/dev/null
setup_s=$(calc "%.0f" "$(now) - $t_setup")

log "workload: $CLIENTS clients x $TXNS transactions (seed $SEED), cleave stopped"
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
rows0=$(rows_changed); del0=$(keyed_deletes)
lsn0=$(q src shop "SELECT pg_current_wal_lsn()")
t0=$(now)
(cd "$FIX/workload" && pgbench -h "$T/src" -p "${PORT[src]}" -U postgres -n -c $CLIENTS -j 2 \
  -t "$TXNS" -s $SCALE --random-seed=$SEED -f new_order.sql@4 -f user_update.sql@3 \
  -f inventory.sql@3 -f notification.sql@2 -f refund.sql@1 shop) >"$T/pgbench.log" 2>&1 ||
  { cat "$T/pgbench.log" >&2; die "pgbench failed"; }
workload_s=$(calc "%.1f" "$(now) - $t0")
sleep 1   # the pgbench backends' statistics
ROWS=$(( $(rows_changed) - rows0 ))
TOMBS=$(( $(keyed_deletes) - del0 ))
LSN=$(q src shop "SELECT pg_current_wal_lsn()")
WAL_MB=$(q src shop "SELECT round(pg_wal_lsn_diff('$LSN', '$lsn0') / 1048576.0)")
log "workload: $ROWS row changes ($TOMBS keyed deletes), $WAL_MB MB of WAL in $workload_s s; target LSN $LSN"

declare -A SEC=() EV=() CPU=() RSS=() WS=()
FAILED=""

# ---------------------------------------------------------------- 3. cleave
log "cleave: catching up"
km0=$(ticks "$KM_PID")
perf_start cleave
t_start=$(now)
cleave_start "$SLOT"
[ -z "${BENCH_TRACE:-}" ] || { mkdir -p "$BENCH_TRACE"; : >"$BENCH_TRACE/cleave.trace"; }
wait_fast "$TIMEOUT" caught_up "$LSN" "$t_start" || { cleave_log_tail; die "cleave did not catch up in $TIMEOUT s"; }
SEC[cleave]=$(calc "%.2f" "$(now) - $t_start")
perf_stop
CPU[cleave]=$(ticks "$CLEAVE_PID")
RSS[cleave]=$(awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$CLEAVE_PID/status")
WS[cleave]=$(calc "%.2f" "$(ticks "$(slot_pid "$SLOT")") / $TCK")
KM_CPU=$(calc "%.2f" "($(ticks "$KM_PID") - $km0) / $TCK")
CSW=$(cleave_switches); THREADS=$(cleave_threads)
[ -z "${BENCH_TRACE:-}" ] || cleave_thread_switches >"$BENCH_TRACE/cleave.threads"
WARN=$(tail -n +"$LOG_FROM" "$T/$SLOT.log" | grep -E 'level=(warning|error)' || true)
rc=0; cleave_stop || rc=$?
[ $rc = 0 ] || { cleave_log_tail; die "caught up, but SIGTERM exit status $rc"; }
EV[cleave]=$(( $(kafka_messages) - SNAP_MSGS ))
log "cleave: caught up in ${SEC[cleave]} s, ${EV[cleave]} messages"

# ---------------------------------------------------------------- 4. references
log "reference: decoding in a backend (peek, counted)"
bpid=$(pq "SELECT pg_backend_pid()")
b0=$(ticks "$bpid")
t_start=$(now)
EV[peek]=$(pq "SELECT count(*) FROM pg_logical_slot_peek_binary_changes('$REF', '$LSN', NULL,
                 'proto_version', '2', 'streaming', 'on', 'messages', 'true', 'publication_names', '$SLOT')
               WHERE get_byte(data, 0) IN (73, 85, 68, 84)")   # I U D T
SEC[peek]=$(calc "%.2f" "$(now) - $t_start")
CPU[peek]=$(( $(ticks "$bpid") - b0 ))
[[ "${EV[peek]}" =~ ^[0-9]+$ ]] || die "peek: ${EV[peek]}"

# Timed by GNU time (its %e), from its start to its exit at --endpos; its
# walsender's CPU is sampled meanwhile, as the walsender ends with it.
log "reference: pg_recvlogical into /dev/null"
perf_start recvlogical
"$GNU_TIME" -f '%e %U %S %M' -o "$T/recv.time" \
  pg_recvlogical -h "$(src_host)" -p "${PORT[src]}" -U postgres -d shop -S "$REF" --start \
  --endpos="$LSN" --no-loop "${PGOPTS[@]}" -f /dev/null 2>"$T/recv.err" &
RECV_PID=$!
ws=0
deadline=$(( $(usec) + TIMEOUT * 1000000 ))
while kill -0 "$RECV_PID" 2>/dev/null; do
  w=$(slot_pid "$REF"); [ -z "$w" ] || ws=$(ticks "$w")
  [ "$(usec)" -lt "$deadline" ] || { FAILED+=" pg_recvlogical (timeout)"; kill "$RECV_PID"; break; }
  sleep 0.02
done
rc=0; wait "$RECV_PID" || rc=$?; RECV_PID=""
perf_stop
if [ $rc = 0 ] && slot_at "$REF" "$LSN"; then
  read -r e u s m <"$T/recv.time"
  SEC[recv]=$(calc "%.2f" "$e")
  CPU[recv]=$(calc "%.0f" "($u + $s) * $TCK")
  RSS[recv]=$(calc "%.1f" "$m / 1024")
  WS[recv]=$(calc "%.2f" "$ws / $TCK")
  EV[recv]=${EV[peek]}
else
  FAILED+=" pg_recvlogical (exit $rc: $(head -c 300 "$T/recv.err"))"
fi

# ---------------------------------------------------------------- report
STREAM=${EV[peek]}
EXPECT=$((STREAM + TOMBS))
echo
echo "cleave Kafka catch-up benchmark (PostgreSQL $(q src shop "SHOW server_version" | cut -d' ' -f1)," \
     "librdkafka mock cluster, 3 brokers; $(nproc) CPUs, load average before the workload $LOAD)"
echo "shop scale $SCALE, $CLIENTS clients x $TXNS transactions (seed $SEED): $ROWS row changes," \
     "$WAL_MB MB WAL, workload $workload_s s; setup $setup_s s (initial sync: $SNAP_MSGS op r messages)"
printf '%-36s %8s %9s %9s %12s %8s %10s %6s\n' consumer seconds events events/s "CPU s per" "peak" walsender ratio
printf '%-36s %8s %9s %9s %12s %8s %10s %6s\n' "" "" "" "" "M events" "RSS MB" "CPU s" ""
row() {  # row KEY LABEL
  local k=$1 label=$2
  if [ -z "${EV[$k]:-}" ] || [ -z "${CPU[$k]:-}" ]; then printf '%-36s FAILED\n' "$label"; return; fi
  printf '%-36s %8s %9s %9s %12s %8s %10s %6s\n' "$label" "${SEC[$k]}" "${EV[$k]}" \
    "$(calc "%.0f" "${EV[$k]} / ${SEC[$k]}")" \
    "$(calc "%.2f" "${CPU[$k]} / $TCK / (${EV[$k]} / 1000000)")" "${RSS[$k]:--}" "${WS[$k]:--}" \
    "$(calc "%.2f" "${SEC[$k]} / ${SEC[cleave]}")"
}
row cleave "cleave -> Kafka (mock)"
row recv "pg_recvlogical -> /dev/null"
row peek "PostgreSQL decoding only (SQL peek)"
echo "(events: cleave's are Kafka messages (high watermarks after - before); the references' are"
echo " the stream's change messages. ratio: the row's seconds over cleave's, on the same stream;"
echo " below 1 the reference is faster.)"
echo "during cleave's run: the mock broker used $KM_CPU CPU s; cleave's $THREADS threads switched" \
     "context $CSW times ($(calc "%.2f" "$CSW / ${EV[cleave]}") per event)"
echo
verdict() { if [ "$(calc "%d" "$1")" = 1 ]; then echo PASS; else echo FAIL; fi; }
eps=$(calc "%.0f" "${EV[cleave]} / ${SEC[cleave]}")
cpm=$(calc "%.2f" "${CPU[cleave]} / $TCK / (${EV[cleave]} / 1000000)")
echo "cleave: $eps events/s (target >= $TARGET_EPS: $(verdict "$eps >= $TARGET_EPS"))," \
     "$cpm CPU s per M events (target <= $TARGET_CPU_PER_M: $(verdict "$cpm <= $TARGET_CPU_PER_M"))," \
     "peak RSS ${RSS[cleave]} MB (target < $TARGET_RSS MB: $(verdict "${RSS[cleave]} < $TARGET_RSS"))"
if [ "${EV[cleave]}" = "$EXPECT" ]; then
  echo "Kafka messages = stream changes $STREAM + tombstones $TOMBS: yes"
else
  echo "Kafka messages ${EV[cleave]} != stream changes $STREAM + tombstones $TOMBS = $EXPECT"
  [ "${EV[cleave]}" -ge "$STREAM" ] || FAILED+=" cleave (fewer messages than stream changes)"
fi
[ "$STREAM" = "$ROWS" ] || echo "note: the stream holds $STREAM changes, pg_stat_user_tables counted $ROWS"
[ -z "$WARN" ] || echo "cleave's log during the catch-up: $(echo "$WARN" | wc -l) warning/error lines," \
                       "first: $(echo "$WARN" | sed -n 1p | cut -c1-160)"
[ -z "$FAILED" ] || { echo "FAILED:$FAILED"; exit 1; }
