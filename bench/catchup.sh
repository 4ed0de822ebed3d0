#!/usr/bin/env bash
# Catch-up benchmark: cleave against PostgreSQL 15's native logical
# replication, on the same accumulated stream.
#
#   bench/catchup.sh [TRANSACTIONS_PER_CLIENT (default 5000)]
#
# One source cluster (database shop, schema.sql + data.sql at scale 1) and
# four target clusters copied from one prepared target (the five service
# databases: schema.sql without cross-service keys, the same data.sql, each
# keeping its owned tables), so every run starts from the same state:
#   native, as is   five subscriptions (copy_data = false), one per service
#   native, key     the same, with PRIMARY KEY (session_token) on the
#                   user_service target's user_sessions
#   cleave, as is   `cleave run` into a copy of the same targets
#   cleave, key     the same with the key
#   cleave, key, text values   the same with source.binary_values: false
#                   (the key run's values come binary: this one shows text)
# Every consumer's slot is created first, then the consumers are stopped
# (subscriptions disabled, cleave SIGTERMed), then the shop workload runs
# once (pgbench, 4 clients, fixed seed), so all four slots hold the very
# same stream. Each consumer is then started alone and timed until its
# slots' confirmed_flush_lsn reaches the source's LSN after the workload,
# then stopped again. Last, a 1,000,000-row transaction (workload/bigtxn.sql)
# streams through a fresh cleave process.
#
# Environment: CLEAVE_BIN (a built cleave; else build/ is built),
# CLEAVE_FIXTURES (else tests/fixtures), CATCHUP_TIMEOUT (s, 300),
# BENCH_PERF=DIR (perf record -a -g each catch-up into DIR), BENCH_TRACE=DIR
# (each poll: seconds, bytes still to confirm, walsender pids), BENCH_KEEP=1
# (keep the temporary directory). The clusters, cleave and the clean-up are
# bench/common.sh's.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/common.sh
. bench/common.sh
TXNS=${1:-5000}
CLIENTS=4
SCALE=1
SEED=42
TIMEOUT=${CATCHUP_TIMEOUT:-300}

bench_init
BG_PID=""
POLL_PID=""
catchup_on_exit() {
  [ -z "$BG_PID" ] || kill "$BG_PID" 2>/dev/null
  [ -z "$POLL_PID" ] || kill "$POLL_PID" 2>/dev/null
}
EXIT_HOOKS+=(catchup_on_exit)

# Children of a cluster's postmaster as "pid:ticks" words.
cluster_snapshot() {
  local p
  for p in $(ps -o pid= --ppid "$(postmaster_pid "$1")"); do echo "$p:$(ticks "$p")"; done
}
# CPU seconds a cluster's processes used since a snapshot ($2).
cluster_cpu_since() {
  local -A base=()
  local w p sum=0
  for w in $2; do base[${w%%:*}]=${w##*:}; done
  for p in $(ps -o pid= --ppid "$(postmaster_pid "$1")"); do
    sum=$((sum + $(ticks "$p") - ${base[$p]:-0}))
  done
  calc "%.1f" "$sum / $TCK"
}

# Polling goes through one long-lived psql session on the source, so that
# polling every 0.1 s does not fork a backend each time.
start_poller() {
  coproc POLLER { exec psql -X -qAt -h "$T/src" -p "${PORT[src]}" -U postgres -d shop 2>&1; }
  POLL_PID=$POLLER_PID
}
pq() {  # pq SQL: one statement through the poller, its rows on stdout
  local line
  printf '%s;\n\\echo __pq_end__\n' "$1" >&"${POLLER[1]}"
  while IFS= read -r line <&"${POLLER[0]}"; do
    [ "$line" = __pq_end__ ] && return 0
    printf '%s\n' "$line"
  done
  die "the polling session ended"
}
# Slots' active walsender pids; whether all slots reached an LSN.
slot_pids() { pq "SELECT active_pid FROM pg_replication_slots WHERE slot_name LIKE '$1' AND active_pid IS NOT NULL"; }
slots_at() {
  [ "$(pq "SELECT count(*) FILTER (WHERE confirmed_flush_lsn >= '$2') = count(*) AND count(*) > 0
           FROM pg_replication_slots WHERE slot_name LIKE '$1'")" = t ]
}
rows_changed() {
  q src shop "SELECT sum(n_tup_ins + n_tup_upd + n_tup_del) FROM pg_stat_user_tables WHERE schemaname = 'public'"
}

# Table fingerprints: count and hash of the sorted row texts.
fingerprint() {  # fingerprint CLUSTER DB TABLE
  q "$1" "$2" "SELECT count(*) || ':' || coalesce(md5(string_agg(h, '' ORDER BY h)), '')
               FROM (SELECT md5(t::text) AS h FROM $3 t) s"
}
declare -A SRC_FP=()
source_fingerprints() { local t; for t in $ALL_TABLES; do SRC_FP[$t]=$(fingerprint src shop "$t"); done; }
compare_cluster() {  # prints "yes" or the differing tables
  local c=$1 s t bad=""
  for s in "${SERVICES[@]}"; do
    for t in ${OWNED[$s]}; do
      [ "$(fingerprint "$c" "${s}_db" "$t")" = "${SRC_FP[$t]}" ] || bad+="${bad:+,}$t"
    done
  done
  echo "${bad:-yes}"
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

# ---------------------------------------------------------------- build
build_cleave

# ---------------------------------------------------------------- clusters and data
t_setup=$(now)
log "source cluster: shop at scale $SCALE"
new_cluster src
q src postgres "CREATE DATABASE shop"
start_poller
load_shop src shop $SCALE

log "target template: five service databases"
new_cluster gold
q gold postgres "CREATE DATABASE shop_tmpl"
load_shop gold shop_tmpl $SCALE -v no_cross_service_fks=1
for s in "${SERVICES[@]}"; do
  q gold postgres "CREATE DATABASE ${s}_db TEMPLATE shop_tmpl STRATEGY FILE_COPY"
  drop=""
  for t in $ALL_TABLES; do [[ " ${OWNED[$s]} " == *" $t "* ]] || drop+="${drop:+, }$t"; done
  q gold "${s}_db" "DROP TABLE $drop CASCADE"
done
q gold postgres "DROP DATABASE shop_tmpl"
q gold postgres "CHECKPOINT"
pg_stop gold
for c in tn1 tn2 tc1 tc2 tc3; do copy_cluster gold "$c"; done
for c in tn2 tc2 tc3; do q "$c" user_service_db "ALTER TABLE user_sessions ADD PRIMARY KEY (session_token)"; done

SRC_DSN=$(src_dsn)

log "native: five publications, five disabled subscriptions per native target"
for s in "${SERVICES[@]}"; do
  q src shop "CREATE PUBLICATION pub_$s FOR TABLE $(tables_csv "${OWNED[$s]}")"
done
for c in tn1 tn2; do
  for s in "${SERVICES[@]}"; do
    q "$c" "${s}_db" "CREATE SUBSCRIPTION ${c}_$s CONNECTION '$SRC_DSN' PUBLICATION pub_$s
                      WITH (copy_data = false, enabled = false)"
  done
done

# cleave: configuration per cleave target (write_config, bench/common.sh);
# its own slot and publication.
declare -A LOGW=()
log_warnings() {  # log_warnings SLOT RUN: cleave's warnings and errors since its start
  local w
  w=$(tail -n +"$LOG_FROM" "$T/$1.log" | grep -E 'level=(warning|error)' || true)
  [ -z "$w" ] || LOGW[$2]="$(echo "$w" | wc -l) warning/error lines, first: $(echo "$w" | sed -n 1p | cut -c1-160)"
}
cleave_failed() {  # cleave_failed SLOT WHAT [RUN]: remembers why, prints the log
  local run=${3:-$1}
  FAILED[$run]="$2"
  FAILLOG[$run]=$(tail -n 12 "$T/$1.log")
  log "cleave ($run): $2; last lines of its log:"
  tail -n 25 "$T/$1.log" | sed 's/^/    /' >&2
}
declare -A FAILED=() FAILLOG=()
CLEAVE_SLOTS=(cleave_fixture cleave_key cleave_text)
declare -A CLEAVE_TGT=([cleave_fixture]=tc1 [cleave_key]=tc2 [cleave_text]=tc3)
for slot in "${CLEAVE_SLOTS[@]}"; do
  if [ -n "$CLEAVE_NOTE" ]; then FAILED[$slot]=$CLEAVE_NOTE; continue; fi
  write_config "${CLEAVE_TGT[$slot]}" "$slot"
  [ "$slot" != cleave_text ] ||
    sed -i 's/^  publication: .*/&\n  binary_values: false/' "$T/$slot.yaml"
  log "cleave ($slot): first start, creates its slot"
  cur=$(q src shop "SELECT pg_current_wal_lsn()")
  cleave_start "$slot"
  ok=0
  for _ in $(seq 600); do   # active, and streaming: confirmed what was there
    kill -0 "$CLEAVE_PID" 2>/dev/null || break
    if [ -n "$(slot_pids "$slot")" ]; then
      ok=1; slots_at "$slot" "$cur" && { ok=2; break; }
    fi
    sleep 0.1
  done
  [ $ok = 1 ] && log "cleave ($slot): slot active, but its confirmed flush did not reach $cur in 60 s"
  if [ $ok = 0 ]; then
    kill -0 "$CLEAVE_PID" 2>/dev/null && why="slot not active after 60 s" || why="exited before its slot was active"
    cleave_stop || why+=" (exit $?)"
    cleave_failed "$slot" "$why"
    continue
  fi
  sleep 1
  cleave_stop || cleave_failed "$slot" "SIGTERM after the first start: exit $?"
done
q src shop "CHECKPOINT" >/dev/null
setup_s=$(calc "%.0f" "$(now) - $t_setup")

# ---------------------------------------------------------------- the workload, once
log "workload: $CLIENTS clients x $TXNS transactions (seed $SEED), every consumer stopped"
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
rows0=$(rows_changed)
lsn0=$(q src shop "SELECT pg_current_wal_lsn()")
t0=$(now)
(cd "$FIX/workload" && pgbench -h "$T/src" -p "${PORT[src]}" -U postgres -n -c $CLIENTS -j 2 \
  -t "$TXNS" -s $SCALE --random-seed=$SEED -f new_order.sql@4 -f user_update.sql@3 \
  -f inventory.sql@3 -f notification.sql@2 -f refund.sql@1 shop) >"$T/pgbench.log" 2>&1 ||
  { cat "$T/pgbench.log" >&2; die "pgbench failed"; }
workload_s=$(calc "%.1f" "$(now) - $t0")
sleep 1   # the pgbench backends' statistics
ROWS=$(( $(rows_changed) - rows0 ))
LSN=$(q src shop "SELECT pg_current_wal_lsn()")
WAL_MB=$(q src shop "SELECT round(pg_wal_lsn_diff('$LSN', '$lsn0') / 1048576.0)")
log "workload: $ROWS row changes, ${WAL_MB} MB of WAL in $workload_s s; target LSN $LSN"
source_fingerprints

declare -A SEC=() WS=() CCPU=() TCPU=() RSS=() EQ=() PER_SLOT=()
# measure RUN SLOTPATTERN TARGETCLUSTER T_START SNAPSHOT [LSN]: polls until
# every slot matching the pattern confirmed the LSN; fills the arrays.
# Returns 1 on timeout, 2 when cleave exited.
measure() {
  local run=$1 pat=$2 c=$3 t_start=$4 snap=$5 target=${6:-$LSN} deadline n done_now sl
  local -A seen=()
  n=$(pq "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE '$pat'")
  PER_SLOT[$run]=""
  deadline=$(calc "%.0f" "$t_start + $TIMEOUT")
  while :; do
    done_now=$(pq "SELECT slot_name FROM pg_replication_slots
                   WHERE slot_name LIKE '$pat' AND confirmed_flush_lsn >= '$target'")
    for sl in $done_now; do
      [ -n "${seen[$sl]:-}" ] && continue
      seen[$sl]=$(calc "%.1f" "$(now) - $t_start")
      PER_SLOT[$run]+="${PER_SLOT[$run]:+ }${sl#*_}=${seen[$sl]}s"
    done
    [ "${#seen[@]}" -ge "$n" ] && [ "$n" -gt 0 ] && break
    [ -z "${BENCH_TRACE:-}" ] || pq "SELECT round(extract(epoch FROM clock_timestamp()) - $t_start, 2),
          pg_wal_lsn_diff('$target', min(confirmed_flush_lsn)), string_agg(active_pid::text, ',')
          FROM pg_replication_slots WHERE slot_name LIKE '$pat'" >>"$BENCH_TRACE/$run.trace"
    if [ -n "$CLEAVE_PID" ] && ! kill -0 "$CLEAVE_PID" 2>/dev/null; then return 2; fi
    [ "$(calc "%d" "$(now) > $deadline")" = 1 ] && return 1
    sleep 0.1
  done
  SEC[$run]=$(calc "%.2f" "$(now) - $t_start")
  # walsenders start with their consumers; their whole CPU is the catch-up's
  WS[$run]=$(calc "%.2f" "$(ticks $(slot_pids "$pat")) / $TCK")
  TCPU[$run]=$(cluster_cpu_since "$c" "$snap")
  if [ -n "$CLEAVE_PID" ]; then
    CCPU[$run]=$(calc "%.1f" "$(ticks "$CLEAVE_PID") / $TCK")
    RSS[$run]=$(awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$CLEAVE_PID/status")
  fi
  log "$run: caught up in ${SEC[$run]} s (${PER_SLOT[$run]})"
  return 0
}

# ---------------------------------------------------------------- native
for c in tn1 tn2; do
  run=$c; log "native ($c): enabling five subscriptions"
  [ -z "$(slot_pids "${c}\_%")" ] || die "native slots of $c active before the start"
  snap=$(cluster_snapshot "$c")
  perf_start "native_$c"
  t_start=$(now)
  for s in "${SERVICES[@]}"; do q "$c" "${s}_db" "ALTER SUBSCRIPTION ${c}_$s ENABLE"; done
  rc=0; measure "$run" "${c}\_%" "$c" "$t_start" "$snap" || rc=$?
  perf_stop
  if [ $rc = 0 ]; then
    EQ[$run]=$(compare_cluster "$c")
  else
    FAILED[$run]="not caught up in $TIMEOUT s"
    tail -20 "$T/$c/server.log" >&2
  fi
  for s in "${SERVICES[@]}"; do q "$c" "${s}_db" "ALTER SUBSCRIPTION ${c}_$s DISABLE"; done
  for _ in $(seq 100); do [ -z "$(slot_pids "${c}\_%")" ] && break; sleep 0.1; done
done

# ---------------------------------------------------------------- cleave
for slot in "${CLEAVE_SLOTS[@]}"; do
  [ -z "${FAILED[$slot]:-}" ] || continue
  c=${CLEAVE_TGT[$slot]}
  log "cleave ($slot): catching up"
  snap=$(cluster_snapshot "$c")
  perf_start "$slot"
  t_start=$(now)
  cleave_start "$slot"
  rc=0; measure "$slot" "$slot" "$c" "$t_start" "$snap" || rc=$?
  perf_stop
  log_warnings "$slot" "$slot"
  case $rc in
    0) EQ[$slot]=$(compare_cluster "$c")
       cleave_stop || cleave_failed "$slot" "caught up, but SIGTERM exit status $?" ;;
    1) cleave_stop; cleave_failed "$slot" "not caught up in $TIMEOUT s" ;;
    *) st=0; wait "$CLEAVE_PID" || st=$?; CLEAVE_PID=""
       cleave_failed "$slot" "exited during catch-up (status $st)" ;;
  esac
done

# ---------------------------------------------------------------- one 1,000,000-row transaction
big=cleave_bigtxn
if [ -z "${FAILED[cleave_fixture]:-}" ]; then
  log "cleave: a 1,000,000-row transaction through a fresh cleave process (cleave_fixture)"
  cur=$(q src shop "SELECT pg_current_wal_lsn()")
  cleave_start cleave_fixture
  ok=0
  for _ in $(seq 600); do
    kill -0 "$CLEAVE_PID" 2>/dev/null || break
    [ -n "$(slot_pids cleave_fixture)" ] && slots_at cleave_fixture "$cur" && { ok=1; break; }
    sleep 0.1
  done
  if [ $ok = 1 ]; then
    snap=$(cluster_snapshot tc1)
    perf_start "$big"
    ws0=$(ticks "$(slot_pids cleave_fixture)"); cc0=$(ticks "$CLEAVE_PID")
    t_start=$(now)
    (cd "$FIX/workload" && pgbench -h "$T/src" -p "${PORT[src]}" -U postgres -n -c 1 -t 1 \
      -s $SCALE -f bigtxn.sql shop) >"$T/bigtxn.log" 2>&1 || { cat "$T/bigtxn.log" >&2; die "bigtxn failed"; }
    big_commit=$(calc "%.1f" "$(now) - $t_start")
    big_lsn=$(q src shop "SELECT pg_current_wal_lsn()")
    rc=0; measure "$big" cleave_fixture tc1 "$t_start" "$snap" "$big_lsn" || rc=$?
    perf_stop
    log_warnings cleave_fixture "$big"
    if [ $rc = 0 ]; then
      WS[$big]=$(calc "%.2f" "${WS[$big]} - $ws0 / $TCK")
      CCPU[$big]=$(calc "%.1f" "${CCPU[$big]} - $cc0 / $TCK")
      fp=$(fingerprint src shop notifications)
      [ "$(fingerprint tc1 notification_service_db notifications)" = "$fp" ] && EQ[$big]=yes || EQ[$big]=notifications
      cleave_stop || cleave_failed cleave_fixture "after the big transaction, SIGTERM exit status $?" "$big"
    else
      [ $rc = 1 ] && { cleave_stop || true; }
      [ $rc = 2 ] && { wait "$CLEAVE_PID" || true; CLEAVE_PID=""; }
      cleave_failed cleave_fixture "not caught up (status $rc)" "$big"
    fi
  else
    cleave_stop || true
    cleave_failed cleave_fixture "restarted, did not catch up to the source" "$big"
  fi
else
  FAILED[$big]="cleave_fixture failed"
fi

# ---------------------------------------------------------------- report
echo
echo "cleave catch-up benchmark (PostgreSQL $(q src shop "SHOW server_version" | cut -d' ' -f1), $(nproc) CPUs," \
     "load average before the workload $LOAD)"
echo "shop scale $SCALE, $CLIENTS clients x $TXNS transactions (seed $SEED): $ROWS row changes," \
     "$WAL_MB MB WAL, workload $workload_s s; setup $setup_s s"
printf '%-30s %8s %9s %11s %9s %9s %7s  %s\n' run seconds rows/s walsender consumer "target" "RSS" "target =="
printf '%-30s %8s %9s %11s %9s %9s %7s  %s\n' "" "" "" "CPU s" "CPU s" "CPU s" "MB" "source"
row() {  # row RUN LABEL ROWS
  local r=$1 label=$2 n=$3
  if [ -n "${FAILED[$r]:-}" ] || [ -z "${SEC[$r]:-}" ]; then
    printf '%-30s FAILED: %s\n' "$label" "${FAILED[$r]:-no result}"; return
  fi
  printf '%-30s %8s %9s %11s %9s %9s %7s  %s\n' "$label" "${SEC[$r]}" \
    "$(calc "%.0f" "$n / ${SEC[$r]}")" "${WS[$r]}" "${CCPU[$r]:--}" "${TCPU[$r]}" "${RSS[$r]:--}" "${EQ[$r]:-?}"
}
row tn1 "native, fixture as is (5 subs)" "$ROWS"
row tn2 "native, user_sessions PK" "$ROWS"
row cleave_fixture "cleave, fixture as is" "$ROWS"
row cleave_key "cleave, user_sessions PK" "$ROWS"
row cleave_text "cleave, PK, text values" "$ROWS"
row "$big" "cleave, 1,000,000-row txn" 1000000
[ -n "${SEC[$big]:-}" ] && echo "  (1,000,000-row txn: source commit after $big_commit s; seconds from its start)"
echo "(native consumer CPU = its apply workers, inside target CPU)"
for r in tn1 tn2; do
  [ -n "${PER_SLOT[$r]:-}" ] && echo "per-subscription catch-up, $r: ${PER_SLOT[$r]}"
done

echo
verdict() { if [ "$(calc "%d" "$1")" = 1 ]; then echo PASS; else echo FAIL; fi; }
have() { [ -n "${SEC[$1]:-}" ] && [ -z "${FAILED[$1]:-}" ]; }
# Targets (issue 16): catch-up 10x native as the fixture stands, 1.2x with
# the key; walsender CPU at most 0.5x native's five; CPU summed over
# walsender, cleave and target backends no more than native's.
for pair in "tn1 cleave_fixture 10 fixture as is" "tn2 cleave_key 1.2 user_sessions PK"; do
  read -r n c need label <<<"$pair"
  if have "$n" && have "$c"; then
    sp=$(calc "%.2f" "${SEC[$n]} / ${SEC[$c]}")
    wr=$(calc "%.2f" "${WS[$c]} / ${WS[$n]}")
    cr=$(calc "%.2f" "(${WS[$c]} + ${CCPU[$c]} + ${TCPU[$c]}) / (${WS[$n]} + ${TCPU[$n]})")
    echo "cleave/native, $label: catch-up ${sp}x (target >= ${need}x: $(verdict "$sp >= $need"))," \
         "walsender CPU ${wr}x (target <= 0.5x: $(verdict "$wr <= 0.5"))," \
         "CPU summed ${cr}x (target <= 1x: $(verdict "$cr <= 1"))"
  else
    echo "cleave/native, $label: no ratio (a run failed): FAIL"
  fi
done
for r in cleave_fixture cleave_key cleave_text; do
  echo "values in $r's last stream: $(grep -o 'values=[a-z]*' "$T/$r.log" | tail -1)"
done
if have cleave_key && have cleave_text; then
  echo "binary values against text (user_sessions PK): catch-up" \
       "$(calc "%.2f" "${SEC[cleave_text]} / ${SEC[cleave_key]}")x, walsender CPU" \
       "$(calc "%.2f" "${WS[cleave_key]} / ${WS[cleave_text]}")x, target CPU" \
       "$(calc "%.2f" "${TCPU[cleave_key]} / ${TCPU[cleave_text]}")x, cleave CPU" \
       "$(calc "%.2f" "${CCPU[cleave_key]} / ${CCPU[cleave_text]}")x"
fi
for r in cleave_fixture cleave_key "$big"; do
  if have "$r"; then echo "peak RSS $r: ${RSS[$r]} MB (target < 64 MB: $(verdict "${RSS[$r]} < 64"))"
  else echo "peak RSS $r: none (run failed): FAIL"; fi
done
bad=""
for r in tn1 tn2 cleave_fixture cleave_key cleave_text "$big"; do
  [ -z "${EQ[$r]:-}" ] || [ "${EQ[$r]}" = yes ] || bad+=" $r (${EQ[$r]})"
done
if [ -n "$bad" ]; then echo "target differs from source after catch-up:$bad: FAIL"
else echo "every caught-up target equals the source (owned tables, row for row)"; fi
[ -z "$CLEAVE_NOTE" ] || echo "note: $CLEAVE_NOTE"
for r in cleave_fixture cleave_key cleave_text "$big"; do
  [ -z "${LOGW[$r]:-}" ] || echo "cleave's log during $r: ${LOGW[$r]}"
done
for r in "${!FAILLOG[@]}"; do
  echo "cleave's log ($r), last lines:"
  echo "${FAILLOG[$r]}" | sed 's/^/    /'
done
