#!/usr/bin/env bash
# The cut-over benchmark (issue 14): cycles of `cleave cutover` and
# `cleave rollback` of one service under the shop mix, against a stand-in
# built from native logical replication, side by side in the same run.
#   bash bench/cutover.sh            (CYCLES=3 bash bench/cutover.sh for a quick try)
#
# Two clusters, as the other benchmarks have them: "src" holds the shared
# shop database at scale $SCALE, "tgt" the five service databases, filled
# by cleave's initial sync (PostgreSQL targets for all five services), and
# user_service_native, the reference's copy of the moving service.
#
# The moving service is user_service: no script of the mix writes its
# tables, while four of the five foreign keys that cross services point
# into its users (orders, payments, notifications, shipping_addresses), so
# the other services' inserts take FOR KEY SHARE locks on rows of the
# locked tables all through the switch. For the whole run:
#   - the shop mix without user_update.sql (new_order, inventory,
#     notification, refund), pgbench rate-limited to $RATE tps;
#   - one mover (bench/cutover_client.c mover) writing users and
#     user_preferences as fast as it can on whichever side takes writes
#     (it switches on SQLSTATE 25006) and recording every acknowledged
#     write;
#   - one probe per other service (cutover_client probe: orders,
#     payments, inventory, notifications on the shared database, a write
#     every $PROBE_US us) recording its gaps between acknowledged writes.
# Then $CYCLES cut-over/rollback cycles through cleave, the clients
# stopped, the streams waited for, every acknowledged write looked for on
# both sides; then the same with the native stand-in (cutover_client
# native): the shared database's tables locked IN SHARE ROW EXCLUSIVE
# MODE (100 ms attempts with backoff, as cleave), the mark
# pg_current_wal_lsn(), pg_stat_subscription.latest_end_lsn polled every
# millisecond until it passes the mark (the worker applies in order, so
# a keepalive past the mark follows every change before it), setval of
# users' sequence, a statement trigger as the fence (raising 25006,
# silent under session_replication_role = replica like cleave's),
# COMMIT; then the forward subscription disabled, the new side unfenced,
# the reverse subscription's slot advanced past what the forward one
# applied and the reverse subscription enabled (PostgreSQL 15 has no
# origin filter, so only one direction runs at a time). Rollback is the
# same the other way.
#
# The write pause of a switch is the mover's longest gap between two
# acknowledged writes overlapping the switch command's run. The other
# services' figures: the switches during whose write pause a probe wrote
# nothing (its gap covers the mover's), and its longest gap overlapping
# the switch commands' windows against its longest gap outside every
# window (what the loaded machine does anyway). "Never paused": no
# covered switch, and the in-window gap at most twice the outside one.
#
# Environment (and bench/common.sh's): CYCLES (20), SCALE (1), RATE (100
# pgbench tps), PROBE_US (2000), MOVER_US (0: the mover as fast as it
# can; else a pause between its writes), SETTLE (1: seconds between
# switches), CUTOVER_CLIENT (else build/bench/cutover_client, built).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/common.sh
source bench/common.sh

CYCLES=${CYCLES:-20}
SCALE=${SCALE:-1}
RATE=${RATE:-100}
PROBE_US=${PROBE_US:-2000}
MOVER_US=${MOVER_US:-0}
SETTLE=${SETTLE:-1}
MOVING=user_service
MTABLES="users, user_preferences, user_sessions"
NAT=user_service_native
SLOT=cleave_cut
declare -A PROBE_OF=([order_service]=orders [payment_service]=payments
                     [inventory_service]=inventory [notification_service]=notifications)
OTHERS=(order_service payment_service inventory_service notification_service)

bench_init
build_cleave
[ -z "$CLEAVE_NOTE" ] || die "$CLEAVE_NOTE"
CLIENT=${CUTOVER_CLIENT:-$ROOT/build/bench/cutover_client}
if [ -z "${CUTOVER_CLIENT:-}" ]; then
  ninja -C build bench/cutover_client >"$T/client-build.log" 2>&1 ||
    { cat "$T/client-build.log" >&2; die "cutover_client did not build"; }
fi

dsn() { echo "host=$T/$1 port=${PORT[$1]} dbname=$2 user=postgres"; }

# ---------------------------------------------------------------- setup
t_setup=$(now)
log "source cluster: shop at scale $SCALE"
new_cluster src
q src postgres "CREATE DATABASE shop"
load_shop src shop "$SCALE"
new_cluster tgt
for s in "${SERVICES[@]}"; do q tgt postgres "CREATE DATABASE ${s}_db"; done
SRC=$(dsn src shop)
SVC=$(dsn tgt ${MOVING}_db)
NATDSN=$(dsn tgt $NAT)

FENCE_FN="CREATE FUNCTION bench_fence() RETURNS trigger LANGUAGE plpgsql AS
  \$\$ BEGIN RAISE EXCEPTION USING ERRCODE = '25006',
       MESSAGE = format('table %s is fenced (native stand-in)', TG_TABLE_NAME); END \$\$"
log "native stand-in: $NAT, its two subscriptions"
q tgt postgres "CREATE DATABASE $NAT"
qf tgt "$NAT" -v no_cross_service_fks=1 -f "$FIX/schema.sql"
drop=""
for t in $ALL_TABLES; do [[ " ${OWNED[$MOVING]} " == *" $t "* ]] || drop+="${drop:+, }$t"; done
q tgt "$NAT" "DROP TABLE $drop CASCADE"
q src shop "$FENCE_FN"
q tgt "$NAT" "$FENCE_FN"
q src shop "CREATE PUBLICATION nat_fwd FOR TABLE $MTABLES"
q tgt "$NAT" "CREATE PUBLICATION nat_back FOR TABLE $MTABLES"
q tgt "$NAT" "CREATE SUBSCRIPTION nat_fwd CONNECTION '$SRC' PUBLICATION nat_fwd"
q src shop "CREATE SUBSCRIPTION nat_back CONNECTION '$NATDSN' PUBLICATION nat_back
            WITH (copy_data = false, enabled = false)"
nat_synced() { [ "$(q tgt "$NAT" "SELECT count(*) FILTER (WHERE srsubstate <> 'r') FROM pg_subscription_rel")" = 0 ]; }
wait_until 300 nat_synced || die "the native subscription's initial copy did not finish"
for t in ${OWNED[$MOVING]}; do
  q tgt "$NAT" "CREATE TRIGGER bench_fence BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE
                ON $t FOR EACH STATEMENT EXECUTE FUNCTION bench_fence()"
done

log "cleave: initial sync into the five service databases"
write_config tgt "$SLOT"
CFG=$T/$SLOT.yaml
cleave_start "$SLOT"
status_json() { "$CLEAVE" status -c "$CFG" --json 2>/dev/null; }
streaming() {  # every service, or the one named, streaming with lag under LAG_MAX
  local st
  st=$(status_json) || return 1
  [ "$(jq -r --arg s "${1:-}" --argjson max "${LAG_MAX:-1e18}" '[.services[] | select($s == "" or .name == $s)]
       | (length > 0 and all(.state == "streaming" and ([.sinks[].lag_bytes] | max) < $max))' <<<"$st")" = true ]
}
wait_until 600 streaming || { tail -20 "$T/$SLOT.log" >&2; die "cleave did not reach streaming"; }
setup_s=$(calc "%.0f" "$(now) - $t_setup")

# ---------------------------------------------------------------- the load
PGB_PID=""; PGB_DIED=""; MOVER_PID=""; PROBE_PIDS=()
stop_clients() {
  local p
  for p in $MOVER_PID "${PROBE_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in $MOVER_PID "${PROBE_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  MOVER_PID=""; PROBE_PIDS=()
}
stop_load() { stop_clients; [ -z "$PGB_PID" ] || kill -INT "$PGB_PID" 2>/dev/null || true; }
EXIT_HOOKS+=(stop_load)

log "the mix: new_order, inventory, notification, refund at $RATE tps"
(cd "$FIX/workload" && exec pgbench -h "$T/src" -p "${PORT[src]}" -U postgres -n -c 2 -j 1 \
  -R "$RATE" -T 86400 -s "$SCALE" --random-seed=7 -f new_order.sql@4 -f inventory.sql@3 \
  -f notification.sql@2 -f refund.sql@1 shop) >"$T/pgbench.log" 2>&1 &
PGB_PID=$!

start_clients() {  # start_clients PHASE SERVICE_DSN
  local s
  "$CLIENT" mover "$T/$1.mover" "$1" "$SRC" "$2" "$MOVER_US" 2>>"$T/$1.mover.err" &
  MOVER_PID=$!
  for s in "${OTHERS[@]}"; do
    "$CLIENT" probe "$T/$1.$s.gaps" "${PROBE_OF[$s]}" "$SCALE" "$SRC" "$PROBE_US" 2>>"$T/$1.probe.err" &
    PROBE_PIDS+=($!)
  done
}

# ---------------------------------------------------------------- the switches
# switch PHASE N DIR: one switch, its JSON lines in PHASE.N.DIR.json, its
# window (start and end, microseconds) appended to PHASE.windows.
cleave_switch() {
  "$CLEAVE" "$1" -c "$CFG" "$MOVING" --json
}
native_switch() {
  if [ "$1" = cutover ]; then
    "$CLIENT" native "$SRC" "$NATDSN" nat_fwd nat_back nat_back "$MTABLES" public.users_id_seq
  else
    "$CLIENT" native "$NATDSN" "$SRC" nat_back nat_fwd nat_fwd "$MTABLES" public.users_id_seq
  fi
}
native_ready() {  # the subscription into the side that will give up the writes runs
  if [ "$1" = cutover ]; then q tgt "$NAT" "SELECT pid IS NOT NULL FROM pg_stat_subscription WHERE subname = 'nat_fwd'"
  else q src shop "SELECT pid IS NOT NULL FROM pg_stat_subscription WHERE subname = 'nat_back'"; fi | grep -qx t
}
declare -A FAILS=()
# A switch that fails (nothing changed) is tried again, up to three times
# in all, so that the directions stay in step; every attempt is a window.
run_cycles() {  # run_cycles PHASE
  local p=$1 i dir f t0 t1 rc try
  : >"$T/$p.windows"
  FAILS[$p]=0
  for i in $(seq "$CYCLES"); do
    for dir in cutover rollback; do
      for try in 1 2 3; do
        # cleave refuses above a lag of 1 MiB: a quarter of that is waited for
        if [ "$p" = cleave ]; then LAG_MAX=262144 wait_until 30 streaming "$MOVING" ||
            log "$p $i $dir: $MOVING not streaming with lag under 256 kB after 30 s: $(status_json | jq -c '.services[] | select(.name == "'$MOVING'") | [.state, [.sinks[] | .kind, .lag_bytes]]')"
        else wait_until 30 native_ready "$dir" || log "$p $i $dir: the subscription is not running"; fi
        sleep "$SETTLE"   # the load runs between switches: not a synchronisation
        f=$T/$p.$i.$dir.$try.json
        t0=$(usec); rc=0
        "${p}_switch" "$dir" >"$f" 2>"$f.err" || rc=$?
        t1=$(usec)
        echo "$t0 $t1 $i $dir $rc" >>"$T/$p.windows"
        if [ $rc != 0 ] || ! grep -q '"result":"ok"' "$f"; then
          FAILS[$p]=$(( FAILS[$p] + 1 ))
          log "$p $i $dir: FAILED (exit $rc): $(tail -c 400 "$f") $(tail -c 300 "$f.err")"
          [ "$p" != cleave ] || tail -n 15 "$T/$SLOT.log" | sed 's/^/    /' >&2
          # a half-done switch leaves the rest meaningless
          grep -q '"changed":true' "$f" && return 1
          [ "$try" -lt 3 ] || return 1
        else
          log "$p $i $dir: pause $(jq -r 'select(.result) | .pause_ms' "$f") ms"
          break
        fi
      done
    done
  done
}

# wait_converged PHASE SERVICE_CLUSTER SERVICE_DB: both sides hold the same
# rows of the mover's (user count, login_count sum, preferences).
side_digest() {
  q "$1" "$2" "SELECT count(*), sum(login_count), (SELECT count(*) FROM user_preferences p
               JOIN users u ON u.id = p.user_id WHERE u.email LIKE '$3-%')
               FROM users WHERE email LIKE '$3-%'"
}
same_sides() { [ "$(side_digest src shop "$1")" = "$(side_digest tgt "$2" "$1")" ]; }

# lost PHASE SERVICE_DB: acknowledged writes missing on either side,
# counted per side and kind into LOST[PHASE].
declare -A LOST=() LOSTN=() ACKED=() DUPS=() MISSES=() ERRS=() FENCED=()
check_writes() {
  local p=$1 db=$2 side c d n out=""
  awk '$3 == "I" { print $4 }' "$T/$p.mover" | sort >"$T/$p.ins"
  awk '$3 == "P" { print $4 }' "$T/$p.mover" | sort >"$T/$p.pref"
  awk '$3 == "U" { last[$4] = $5 } END { for (k in last) print k, last[k] }' "$T/$p.mover" | sort >"$T/$p.upd"
  ACKED[$p]=$(awk '$3 ~ /^[IUP]$/' "$T/$p.mover" | wc -l)
  DUPS[$p]=$(awk '$3 == "D"' "$T/$p.mover" | wc -l)
  MISSES[$p]=$(awk '$3 == "M"' "$T/$p.mover" | wc -l)
  ERRS[$p]=$(awk '$3 == "E"' "$T/$p.mover" | wc -l)
  FENCED[$p]=$(awk '$3 == "F"' "$T/$p.mover" | wc -l)
  for side in "src shop" "tgt $db"; do
    read -r c d <<<"$side"
    q "$c" "$d" "SELECT id FROM users WHERE email LIKE '$p-%'" | sort >"$T/$p.$c.ins"
    q "$c" "$d" "SELECT u.id FROM user_preferences p JOIN users u ON u.id = p.user_id
                 WHERE u.email LIKE '$p-%'" | sort >"$T/$p.$c.pref"
    q "$c" "$d" "SELECT id || ' ' || login_count FROM users WHERE email LIKE '$p-%' AND login_count > 0" |
      sort >"$T/$p.$c.upd"
    n=$(( $(comm -23 "$T/$p.ins" "$T/$p.$c.ins" | wc -l) + $(comm -23 "$T/$p.pref" "$T/$p.$c.pref" | wc -l)
          + $(comm -23 "$T/$p.upd" "$T/$p.$c.upd" | wc -l) ))
    out+="${out:+, }$d $n"
    [ "$n" = 0 ] || comm -23 "$T/$p.ins" "$T/$p.$c.ins" | sed -n 1,5p | sed "s/^/    missing insert on $d: id /" >&2
  done
  LOST[$p]=$out
  LOSTN[$p]=$(( $(tr -cd '0-9 ' <<<"$out" | awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; print s }') + MISSES[$p] ))
}

# After a failed rollback cleave is left cut over: the next phase needs
# the shared database writable again.
direction() { status_json | jq -r '.services[] | select(.name == "'$MOVING'") | .direction'; }
forward_again() { [ "$(direction)" = forward ] || { cleave_switch rollback >/dev/null 2>&1; false; }; }
restore_forward() {
  [ "$(direction)" != forward ] || return 0
  log "cleave: $MOVING left cut over; rolling back for the next phase"
  wait_until 60 forward_again || die "cleave: $MOVING could not be rolled back"
}

run_phase() {  # run_phase PHASE SERVICE_DB SERVICE_DSN
  local p=$1
  log "$p: clients up, $CYCLES cut-over/rollback cycles"
  start_clients "$p" "$3"
  sleep 2   # a baseline for the probes before the first switch
  run_cycles "$p" || log "$p: stopped after a switch that did not finish"
  [ "$p" != cleave ] || restore_forward
  sleep 2
  stop_clients
  kill -0 "$PGB_PID" 2>/dev/null || { PGB_DIED+="$p "; log "$p: pgbench is no longer running: $(tail -3 "$T/pgbench.log")"; }
  log "$p: waiting for the two sides to agree"
  wait_until 120 same_sides "$p" "$2" || log "$p: the two sides still differ after 120 s"
  check_writes "$p" "$2"
}

run_phase cleave "${MOVING}_db" "$SVC"
run_phase native "$NAT" "$NATDSN"
stop_load

# ---------------------------------------------------------------- analysis
# gaps PHASE: per window "i dir pause_us" of the mover, into PHASE.pauses
mover_pauses() {
  awk 'FNR == NR { n++; w0[n] = $1; w1[n] = $2; id[n] = $3 " " $4; next }
       $3 !~ /^[IUP]$/ { next }
       { t = $1
         if (prev) for (k = first; k <= n; k++) {
           if (w1[k] < prev) { if (k == first) first++; continue }
           if (w0[k] > t) break
           if (t - prev > best[k]) { best[k] = t - prev; b0[k] = prev; b1[k] = t }
         }
         prev = t }
       BEGIN { first = 1 }
       END { for (k = 1; k <= n; k++) print id[k], best[k] + 0, b0[k] + 0, b1[k] + 0 }' \
    "$T/$1.windows" "$T/$1.mover" >"$T/$1.pauses"
}
# probe_gaps PHASE SERVICE: "in-window-max outside-max covered" in us
# (gaps under the logging threshold count as the threshold); covered: the
# switches whose whole write pause (the mover's gap) lies inside one gap
# of the probe, i.e. the probe wrote nothing while the mover waited.
probe_gaps() {
  awk -v thr=$((PROBE_US + 2000)) 'FILENAME ~ /windows$/ { n++; w0[n] = $1; w1[n] = $2; next }
       FILENAME ~ /pauses$/ { m++; a0[m] = $4; a1[m] = $5; next }
       /^#/ { next }
       { inw = 0
         for (k = 1; k <= n; k++) if ($1 <= w1[k] && $2 >= w0[k]) inw = 1
         for (k = 1; k <= m; k++) if (a1[k] > a0[k] && $1 <= a0[k] && $2 >= a1[k]) cov[k] = 1
         g = $2 - $1
         if (inw) { if (g > a) a = g } else if (g > b) b = g }
       END { for (k in cov) c++
             printf "%d %d %d\n", (a ? a : thr), (b ? b : thr), c }' \
    "$T/$1.windows" "$T/$1.pauses" "$T/$1.$2.gaps"
}
pct() {  # pct P: the P-th percentile (nearest rank) of the numbers on stdin
  sort -g | awk -v p="$1" '{ v[NR] = $1 } END { if (!NR) { print "-"; exit }
       r = int(p / 100 * NR + 0.999999); if (r < 1) r = 1; print v[r] }'
}
# step_ms PHASE STEP: the step's ms of every switch, one a line
step_ms() { cat "$T/$1".*.json 2>/dev/null | jq -r --arg s "$2" 'select(.step == $s) | .ms'; }
pause_ms() { cat "$T/$1".*.json 2>/dev/null | jq -r 'select(.result == "ok") | .pause_ms'; }

declare -A FIG=()
for p in cleave native; do
  mover_pauses "$p"
  for k in 50 99 100; do
    FIG[$p.pause.$k]=$(awk '{ print $3 / 1000 }' "$T/$p.pauses" | pct $k)
    FIG[$p.daemon.$k]=$(pause_ms "$p" | pct $k)
    for s in lock catch-up sequences fence commit unfence; do
      FIG[$p.$s.$k]=$(step_ms "$p" "$s" | pct $k)
    done
  done
done

# ---------------------------------------------------------------- report
echo
echo "cleave cut-over benchmark (PostgreSQL $(q src shop "SHOW server_version" | cut -d' ' -f1)," \
     "$(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'))"
echo "shop scale $SCALE; mix new_order/inventory/notification/refund at $RATE tps (${PGB_DIED:+stopped during: }${PGB_DIED:-running throughout});" \
     "$MOVING moved $CYCLES times each way; mover $([ "$MOVER_US" = 0 ] && echo "as fast as it can" || echo "every $MOVER_US us");" \
     "probes every $PROBE_US us; setup $setup_s s"
echo
printf '%-26s %10s %10s %10s   %10s %10s %10s  %s\n' "ms (p50 / p99 / max)" cleave "" "" native "" "" "ratio p50/p99/max"
row() {  # row LABEL KEY
  local p k r=""
  for k in 50 99 100; do
    if [[ "${FIG[cleave.$2.$k]}" =~ ^[0-9.]+$ && "${FIG[native.$2.$k]}" =~ ^[0-9.]+$ ]] &&
       [ "$(calc "%d" "${FIG[native.$2.$k]} > 0")" = 1 ]; then
      r+="${r:+ / }$(calc "%.2f" "${FIG[cleave.$2.$k]} / ${FIG[native.$2.$k]}")"
    else r+="${r:+ / }-"; fi
  done
  printf '%-26s %10s %10s %10s   %10s %10s %10s  %s\n' "$1" \
    "${FIG[cleave.$2.50]}" "${FIG[cleave.$2.99]}" "${FIG[cleave.$2.100]}" \
    "${FIG[native.$2.50]}" "${FIG[native.$2.99]}" "${FIG[native.$2.100]}" "$r"
}
row "write pause (the mover)" pause
row "  lock" lock
row "  catch-up to the mark" catch-up
row "  sequences" sequences
row "  fence" fence
row "  commit" commit
row "  unfence (native)" unfence
row "pause_ms (lock..commit)" daemon
echo "(a failed switch counts with the pause it caused; cleave's unfence of the new side is inside its"
echo " \"reverse stream\" step, after pause_ms)"
echo
verdict() { if [ "$(calc "%d" "$1")" = 1 ]; then echo PASS; else echo FAIL; fi; }
for p in cleave native; do
  echo "$p: ${ACKED[$p]} acknowledged writes, ${FENCED[$p]} fence refusals, ${FAILS[$p]} failed switches (tried again)," \
       "other errors ${ERRS[$p]}"
  worst=0
  for s in "${OTHERS[@]}"; do
    read -r a b c <<<"$(probe_gaps "$p" "$s")"
    summary=$(grep '^#' "$T/$p.$s.gaps" | cut -c3-)
    echo "  $s (${PROBE_OF[$s]}): no write during the mover's pause in $c of $(wc -l <"$T/$p.windows") switches;" \
         "longest gap in the switch windows $(calc "%.1f" "$a / 1000") ms, outside them" \
         "$(calc "%.1f" "$b / 1000") ms ($summary)"
    worst=$((worst + c))
    [ "$a" -le $((2 * b)) ] || worst=$((worst + 1))
  done
  [ "$p" = cleave ] || continue
  echo "targets (cleave):"
  echo "  p99 write pause ${FIG[cleave.pause.99]} ms < 100 ms: $(verdict "${FIG[cleave.pause.99]:-1e9} < 100")"
  echo "  other services never paused (each wrote during every pause of the mover, in-window gap <= 2x outside): $(verdict "$worst == 0")"
  echo "  lost writes (missing on: ${LOST[cleave]}; rows missing when written next: ${MISSES[cleave]}):" \
       "$(verdict "${LOSTN[cleave]} == 0")"
  echo "  duplicate keys ${DUPS[cleave]}: $(verdict "${DUPS[cleave]} == 0")"
  echo "  every switch succeeded: $(verdict "${FAILS[cleave]} == 0")"
done
echo "native: lost writes (missing on: ${LOST[native]}; rows missing when written next: ${MISSES[native]})," \
     "duplicate keys ${DUPS[native]}"
w=$(grep -cE 'level=(warning|error)' "$T/$SLOT.log" || true)
[ "$w" = 0 ] || { echo "cleave's log: $w warning/error lines, first:"; grep -m5 -E 'level=(warning|error)' "$T/$SLOT.log" | cut -c1-300 | sed 's/^/    /'; }
