#!/usr/bin/env bash
# Latency under a steady load (issue 16): how long a source commit takes
# to show up on the other side, cleave against native logical
# replication in the same run, or cleave into Kafka.
#
#   bash bench/latency.sh [pg|kafka|all]     (default pg)
#
# The load is the shop mix (new_order, user_update, inventory,
# notification, refund, as bench/catchup.sh weighs them), pgbench
# rate-limited to $RATE transactions/s with a fixed seed, on a source
# cluster "src" (shop at scale 1). Beside it the probe,
# bench/latency_client.c, inserts $PROBES rows/s into user_sessions (a
# user_service table), each in a transaction of its own; a probe's
# latency runs from its transaction's commit timestamp on the source
# (track_commit_timestamp) to the moment the client sees it on the other
# side (one machine, one clock). The first $WARMUP s of the load have no
# probes.
#
# pg: one target cluster "tgt" holds two copies of the five service
#   databases: n_SERVICE, filled from the same data.sql as the source
#   (without the cross-service keys, as bench/catchup.sh does it), for five
#   native subscriptions (copy_data = false), and SERVICE_db, filled by
#   cleave's initial sync. Both have PRIMARY KEY (session_token) on
#   user_sessions, and on it an ALWAYS trigger (it fires under
#   session_replication_role = replica, as both apply with) that NOTIFYs
#   the probe; a NOTIFY is delivered when the target transaction commits,
#   so a probe is seen at the commit that makes it visible. The target's
#   commit timestamps cannot serve: an apply under a replication origin
#   takes the source's commit time. The two run in turn with the same
#   load, each alone: the native subscriptions enabled (cleave stopped),
#   then cleave started (the subscriptions disabled) and waited for until
#   its slot caught up with what the native phase wrote.
# kafka: cleave with a Kafka target only for every service, into
#   librdkafka's mock cluster (cleave-kmock, as bench/kafka.sh, a topic of
#   3 partitions per table), its producer settings the defaults; a probe
#   is seen when a consumer of bench.public.user_sessions (assigned every
#   partition from its end, fetch.wait.max.ms 1) receives it: source commit
#   to a consumer seeing it, which is the broker's acknowledgement plus
#   one fetch.
#
# Printed: p50, p99 and max of the probes' latencies per consumer, the
# probes seen, the load average at the phase's start, and the CPU seconds
# of the phase (the target cluster's processes, the source's, cleave's).
# Targets: cleave's p50 and p99 no worse than native's in the same run;
# into Kafka p99 under 30 ms. A missed target is no error; a lost probe
# is (exit 1).
#
# Environment (and bench/common.sh's): RATE (1000), PROBES (100),
# SECONDS_RUN (30: seconds of probes per phase), WARMUP (5), SCALE (1),
# LATENCY_CLIENT (else build/bench/latency_client, built), CLEAVE_BEFORE
# (another cleave binary, e.g. a build of an earlier commit: pg runs a
# phase "before" with it between native and cleave, kafka a phase
# "kbefore" before cleave's), CLEAVE_KMOCK
# (as bench/kafka.sh), CLEAVE_CONFIG_LINES (lines added to cleave's
# configurations, e.g. "log_level: debug"), BENCH_FSYNC=on (bench/common.sh:
# clusters that fsync, where every commit of the source and every WAL
# flush of a target waits on the disk).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/common.sh
source bench/common.sh

MODE=${1:-pg}
RATE=${RATE:-1000}
PROBES=${PROBES:-100}
SECONDS_RUN=${SECONDS_RUN:-30}
WARMUP=${WARMUP:-5}
SCALE=${SCALE:-1}
SEED=7
case $MODE in pg|kafka|all) ;; *) die "usage: bench/latency.sh [pg|kafka|all]" ;; esac

bench_init
build_cleave
[ -z "$CLEAVE_NOTE" ] || die "$CLEAVE_NOTE"
CLIENT=${LATENCY_CLIENT:-$ROOT/build/bench/latency_client}
if [ -z "${LATENCY_CLIENT:-}" ]; then
  ninja -C build bench/latency_client >"$T/client-build.log" 2>&1 ||
    { cat "$T/client-build.log" >&2; die "latency_client did not build"; }
fi
need_packages jq
PGB_PID=""
KM_PID=""
KM_FD=""
latency_on_exit() {
  [ -z "$PGB_PID" ] || kill -INT "$PGB_PID" 2>/dev/null
  if [ -n "$KM_PID" ]; then
    [ -z "$KM_FD" ] || { kill -0 "$KM_PID" 2>/dev/null && echo quit >&"$KM_FD"; exec {KM_FD}>&-; } 2>/dev/null
    wait_until 5 kmock_exited || kill -KILL "$KM_PID" 2>/dev/null
  fi
}
EXIT_HOOKS+=(latency_on_exit)

dsn() { echo "host=$T/$1 port=${PORT[$1]} dbname=$2 user=postgres"; }
# shellcheck disable=SC2086  # the extra lines, one word each
extra_lines() { local IFS=$'\n'; echo ${CLEAVE_CONFIG_LINES:-}; }

# The trigger that tells the probe its row committed on a target.
NOTIFY_FN="CREATE FUNCTION bench_probe() RETURNS trigger LANGUAGE plpgsql AS
  \$\$ BEGIN PERFORM pg_notify('probe', NEW.user_agent); RETURN NULL; END \$\$"
probe_trigger() {  # probe_trigger CLUSTER DB
  q "$1" "$2" "$NOTIFY_FN"
  q "$1" "$2" "CREATE TRIGGER bench_probe AFTER INSERT ON user_sessions FOR EACH ROW
               WHEN (NEW.user_agent LIKE 'probe %') EXECUTE FUNCTION bench_probe()"
  q "$1" "$2" "ALTER TABLE user_sessions ENABLE ALWAYS TRIGGER bench_probe"
}

slot_at() {  # slot_at SLOT LSN: the slot confirmed the LSN
  [ "$(q src shop "SELECT confirmed_flush_lsn >= '$2' FROM pg_replication_slots WHERE slot_name = '$1'")" = t ]
}
cleave_alive() { cleave_exited && { tail -20 "$T/$1.log" >&2; die "cleave exited"; }; return 0; }
initial_synced() { cleave_alive "$1"; grep -q 'event=initial_sync_done' "$T/$1.log"; }
caught_up() {  # caught_up SLOT: cleave's slot confirmed the source's position
  cleave_alive "$1"
  slot_at "$1" "$(q src shop "SELECT pg_current_wal_lsn()")"
}

# ---------------------------------------------------------------- one phase
declare -A FIG=()
# measure NAME SIDE TARGET...: the load, then the probes through
# latency_client SIDE TARGET... for SECONDS_RUN s; figures into FIG[NAME.*].
measure() {
  local name=$1 side=$2 c0 s0 k0 t0
  shift 2
  FIG[$name.load]=$(cut -d' ' -f1-3 /proc/loadavg)
  (cd "$FIX/workload" && exec pgbench -h "$T/src" -p "${PORT[src]}" -U postgres -n -c 4 -j 2 \
    -R "$RATE" -T $((WARMUP + SECONDS_RUN + 15)) -s "$SCALE" --random-seed=$SEED \
    -f new_order.sql@4 -f user_update.sql@3 -f inventory.sql@3 -f notification.sql@2 \
    -f refund.sql@1 shop) >"$T/$name.pgbench.log" 2>&1 &
  PGB_PID=$!
  sleep "$WARMUP"   # the load settles before the probes: not a synchronisation
  c0=$(cluster_ticks "${TGT:-src}"); s0=$(cluster_ticks src); k0=$(cleave_ticks); t0=$(now)
  "$CLIENT" "$side" "$T/$name.probes" "$(dsn src shop)" "$@" "$PROBES" "$SECONDS_RUN" 2>"$T/$name.client.err" ||
    { cat "$T/$name.client.err" >&2; die "$name: latency_client failed"; }
  FIG[$name.wall]=$(calc "%.1f" "$(now) - $t0")
  FIG[$name.cpu_tgt]=$([ -n "${TGT:-}" ] && calc "%.1f" "($(cluster_ticks "$TGT") - $c0) / $TCK" || echo -)
  FIG[$name.cpu_src]=$(calc "%.1f" "($(cluster_ticks src) - $s0) / $TCK")
  FIG[$name.cpu_cleave]=$([ -n "$CLEAVE_PID" ] && calc "%.1f" "($(cleave_ticks) - $k0) / $TCK" || echo -)
  FIG[$name.tps]=$(pgbench_tps "$name")
  kill -INT "$PGB_PID" 2>/dev/null || true; wait "$PGB_PID" 2>/dev/null || true; PGB_PID=""
  summarise "$name"
}
cleave_ticks() { if [ -n "$CLEAVE_PID" ]; then ticks "$CLEAVE_PID"; else echo 0; fi; }
# pgbench_tps NAME: transactions/s pgbench reached so far (it reports at
# the end only: the rate it was asked for, unless it already fell behind).
pgbench_tps() {
  if kill -0 "$PGB_PID" 2>/dev/null; then echo "$RATE"; else echo "stopped"; fi
}
pct() {  # pct P: the P-th percentile (nearest rank) of the numbers on stdin
  sort -g | awk -v p="$1" '{ v[NR] = $1 } END { if (!NR) { print "-"; exit }
       r = int(p / 100 * NR + 0.999999); if (r < 1) r = 1; print v[r] }'
}
summarise() {
  local out=$T/$1.probes k
  FIG[$1.sent]=$(wc -l <"$out")
  FIG[$1.lost]=$(awk '$2 < 0' "$out" | wc -l)
  for k in 50 99 100; do
    FIG[$1.$k]=$(awk '$2 >= 0 { printf "%.2f\n", $2 / 1000 }' "$out" | pct $k)
  done
  log "$1: p50 ${FIG[$1.50]} ms, p99 ${FIG[$1.99]} ms, max ${FIG[$1.100]} ms" \
      "(${FIG[$1.sent]} probes, ${FIG[$1.lost]} not seen; load ${FIG[$1.load]})"
}

# ---------------------------------------------------------------- the source
t_setup=$(now)
log "source cluster: shop at scale $SCALE"
new_cluster src
# the probe's start: its transaction's commit timestamp
echo "track_commit_timestamp = on" | as_pg tee -a "$T/src/data/postgresql.conf" >/dev/null
pg_stop src
pg_start src
q src postgres "CREATE DATABASE shop"
load_shop src shop "$SCALE"
# The probes' sessions belong to a user of their own: the mix's
# user_update touches every session of the user it picks, and with the
# probes' thousands under one of its users it sometimes made a
# transaction of thousands of rows, more of them in each later phase.
PROBE_USER=$(q src shop "INSERT INTO users (external_id, email, full_name)
                         VALUES (gen_random_uuid(), 'probe@latency.invalid', 'latency probe')
                         RETURNING id")
export PROBE_USER

# ---------------------------------------------------------------- PostgreSQL
pg_mode() {
  TGT=tgt
  new_cluster tgt
  log "native: five service databases from the same data, five subscriptions"
  q tgt postgres "CREATE DATABASE n_tmpl"
  load_shop tgt n_tmpl "$SCALE" -v no_cross_service_fks=1
  local s t drop
  for s in "${SERVICES[@]}"; do
    q tgt postgres "CREATE DATABASE n_$s TEMPLATE n_tmpl"
    drop=""
    for t in $ALL_TABLES; do [[ " ${OWNED[$s]} " == *" $t "* ]] || drop+="${drop:+, }$t"; done
    q tgt "n_$s" "DROP TABLE $drop CASCADE"
    q src shop "CREATE PUBLICATION pub_$s FOR TABLE $(tables_csv "${OWNED[$s]}")"
    q tgt "n_$s" "CREATE SUBSCRIPTION n_$s CONNECTION '$(src_dsn)' PUBLICATION pub_$s
                  WITH (copy_data = false, enabled = false)"
    q tgt postgres "CREATE DATABASE ${s}_db"
  done
  q tgt postgres "DROP DATABASE n_tmpl"
  q tgt n_user_service "ALTER TABLE user_sessions ADD PRIMARY KEY (session_token)"
  probe_trigger tgt n_user_service

  log "cleave: initial sync into the five SERVICE_db"
  # shellcheck disable=SC2046  # the extra lines, one each
  write_config tgt cleave_lat $(extra_lines)
  cleave_start cleave_lat
  wait_until 600 initial_synced cleave_lat || die "cleave: no event=initial_sync_done"
  wait_until 120 caught_up cleave_lat || die "cleave: slot not caught up after its initial sync"
  cleave_stop || die "cleave: SIGTERM after the initial sync: exit $?"
  q tgt user_service_db "ALTER TABLE user_sessions ADD PRIMARY KEY (session_token)"
  probe_trigger tgt user_service_db
  SETUP_S=$(calc "%.0f" "$(now) - $t_setup")

  log "native: five subscriptions enabled, $RATE tps + $PROBES probes/s for $SECONDS_RUN s"
  for s in "${SERVICES[@]}"; do q tgt "n_$s" "ALTER SUBSCRIPTION n_$s ENABLE"; done
  wait_until 60 native_running || die "native: the five apply workers did not start"
  settle n_
  measure native pg "$(dsn tgt n_user_service)"
  for s in "${SERVICES[@]}"; do q tgt "n_$s" "ALTER SUBSCRIPTION n_$s DISABLE"; done

  [ -z "${CLEAVE_BEFORE:-}" ] || cleave_phase before "$CLEAVE_BEFORE"
  cleave_phase cleave "$CLEAVE"
  TGT=""
}
cleave_phase() {  # cleave_phase NAME BINARY
  log "$1 ($2): catching up with the phase before, then the same load"
  CLEAVE=$2 cleave_start cleave_lat
  wait_until 600 caught_up cleave_lat || die "$1: did not catch up in 600 s"
  settle "" _db
  measure "$1" pg "$(dsn tgt user_service_db)"
  warnings cleave_lat
  cleave_stop || log "$1: SIGTERM exit status $?"
}
# settle PREFIX SUFFIX: vacuum the source and the phase's five target
# databases before its load. A cleave phase starts by catching up with the
# phase before, tens of thousands of transactions in seconds, and the
# phase right after that burst measured far worse than the one after it:
# the same binary in both, p99 101 ms in the first cleave phase, 15 ms in
# the second. With this VACUUM before every phase, 15.6 and 23.0 ms (the
# work autovacuum would otherwise start during the probes is done first).
settle() {
  local s
  q src shop "VACUUM (ANALYZE)"
  for s in "${SERVICES[@]}"; do q tgt "$1$s${2:-}" "VACUUM (ANALYZE)"; done
}
native_running() {
  [ "$(q tgt postgres "SELECT count(*) FROM pg_stat_subscription WHERE pid IS NOT NULL")" = 5 ] &&
    [ "$(q src shop "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'n\_%' AND active")" = 5 ]
}
declare -A WARN=()
warnings() {
  WARN[$1]=$(tail -n +"$LOG_FROM" "$T/$1.log" | grep -cE 'level=(warning|error)' || true)
}

# ---------------------------------------------------------------- Kafka
kmock_exited() { ! kill -0 "$KM_PID" 2>/dev/null; }
kmock_start() {
  local km
  km=${CLEAVE_KMOCK:-$ROOT/build/tests/support/cleave-kmock}
  [ -n "${CLEAVE_KMOCK:-}" ] || meson compile -C build tests/support/cleave-kmock >>"$T/build.log" 2>&1 ||
    die "cleave-kmock did not build: $(tail -3 "$T/build.log")"
  mkfifo "$T/kmock.in"
  "$km" --partitions 3 <"$T/kmock.in" >"$T/kmock.out" 2>"$T/kmock.err" &
  KM_PID=$!
  exec {KM_FD}>"$T/kmock.in"
  wait_until 10 grep -q '^bootstrap ' "$T/kmock.out" || die "cleave-kmock did not start: $(cat "$T/kmock.err")"
  BOOTSTRAP=$(awk '/^bootstrap / { print $2; exit }' "$T/kmock.out")
}
kmock_answers() { [ "$(wc -l <"$T/kmock.out")" -ge "$1" ]; }
kmock_topic() {
  local n=$(( $(wc -l <"$T/kmock.out") + 1 ))
  echo "topic $1 3" >&"$KM_FD"
  wait_until 10 kmock_answers "$n" || die "cleave-kmock did not answer"
  [ "$(sed -n "${n}p" "$T/kmock.out")" = ok ] || die "cleave-kmock: topic $1: $(sed -n "${n}p" "$T/kmock.out")"
}
kafka_mode() {
  kmock_start
  local t
  for t in $ALL_TABLES; do kmock_topic "bench.public.$t"; done
  log "cleave into Kafka ($BOOTSTRAP): initial sync"
  # shellcheck disable=SC2046  # the extra lines, one each
  write_kafka_config cleave_kafka "$BOOTSTRAP" $(extra_lines)
  cleave_start cleave_kafka
  wait_until 600 initial_synced cleave_kafka || die "cleave: no event=initial_sync_done"
  wait_until 120 caught_up cleave_kafka || die "cleave: slot not caught up after its initial sync"
  [ -n "${SETUP_S:-}" ] || SETUP_S=$(calc "%.0f" "$(now) - $t_setup")
  cleave_stop || die "cleave: SIGTERM after the initial sync: exit $?"
  [ -z "${CLEAVE_BEFORE:-}" ] || kafka_phase kbefore "$CLEAVE_BEFORE"
  kafka_phase kafka "$CLEAVE"
}
kafka_phase() {  # kafka_phase NAME BINARY
  log "$1 ($2): $RATE tps + $PROBES probes/s for $SECONDS_RUN s"
  CLEAVE=$2 cleave_start cleave_kafka
  wait_until 600 caught_up cleave_kafka || die "$1: did not catch up in 600 s"
  measure "$1" kafka "$BOOTSTRAP" bench.public.user_sessions 3
  warnings cleave_kafka
  cleave_stop || log "$1: SIGTERM exit status $?"
}

case $MODE in
  pg) pg_mode ;;
  kafka) kafka_mode ;;
  all) pg_mode; kafka_mode ;;
esac

# ---------------------------------------------------------------- report
echo
echo "cleave latency benchmark (PostgreSQL $(q src shop "SHOW server_version" | cut -d' ' -f1)," \
     "$(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'))"
echo "shop scale $SCALE, the mix at $RATE tps (pgbench -R, 4 clients) + $PROBES probe rows/s into" \
     "user_sessions for $SECONDS_RUN s a phase; setup ${SETUP_S:-?} s"
printf '%-8s %8s %8s %8s %8s %6s  %-16s %22s\n' "" "p50 ms" "p99 ms" "max ms" probes lost \
  "load average" "CPU s tgt/src/cleave"
rc=0
for p in native before cleave kbefore kafka; do
  [ -n "${FIG[$p.sent]:-}" ] || continue
  printf '%-8s %8s %8s %8s %8s %6s  %-16s %22s\n' "$p" "${FIG[$p.50]}" "${FIG[$p.99]}" "${FIG[$p.100]}" \
    "${FIG[$p.sent]}" "${FIG[$p.lost]}" "${FIG[$p.load]}" \
    "${FIG[$p.cpu_tgt]}/${FIG[$p.cpu_src]}/${FIG[$p.cpu_cleave]}"
  [ "${FIG[$p.lost]}" = 0 ] || rc=1
  [ "${FIG[$p.tps]}" = "$RATE" ] || echo "  ($p: pgbench stopped before the probes ended: $(tail -2 "$T/$p.pgbench.log"))"
done
echo "(CPU: the phase's probing seconds; tgt = the whole target cluster, src = the source's with"
echo " its pgbench backends and walsenders; kafka has no target cluster)"
verdict() { if [ "$(calc "%d" "$1")" = 1 ]; then echo PASS; else echo FAIL; fi; }
if [ -n "${FIG[before.sent]:-}" ]; then
  echo "before/native: p50 $(calc "%.2f" "${FIG[before.50]} / ${FIG[native.50]}")x," \
       "p99 $(calc "%.2f" "${FIG[before.99]} / ${FIG[native.99]}")x"
fi
if [ -n "${FIG[cleave.sent]:-}" ]; then
  echo "cleave/native: p50 $(calc "%.2f" "${FIG[cleave.50]} / ${FIG[native.50]}")x" \
       "(no worse: $(verdict "${FIG[cleave.50]} <= ${FIG[native.50]}")), p99" \
       "$(calc "%.2f" "${FIG[cleave.99]} / ${FIG[native.99]}")x (no worse: $(verdict "${FIG[cleave.99]} <= ${FIG[native.99]}"))"
fi
[ -z "${FIG[kafka.sent]:-}" ] || echo "kafka: p99 ${FIG[kafka.99]} ms < 30 ms: $(verdict "${FIG[kafka.99]} < 30")"
for s in cleave_lat cleave_kafka; do
  [ -z "${WARN[$s]:-}" ] || [ "${WARN[$s]}" = 0 ] || echo "cleave's log ($s): ${WARN[$s]} warning/error lines"
done
[ $rc = 0 ] || echo "some probes were never seen: FAIL"
exit $rc
