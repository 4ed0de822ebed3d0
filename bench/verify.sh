#!/usr/bin/env bash
# Verify benchmark: `cleave verify` against a plain dump-and-diff of the
# same tables, in one run.
#
#   bench/verify.sh                (SCALE=1 bench/verify.sh for a quick try)
#
# One source cluster holds the shared shop database (schema.sql + data.sql
# at scale $SCALE, 8 by default: 2.06 million rows, 301 MB of table data;
# data.sql ends with VACUUM ANALYZE). One target cluster gets five empty
# service databases, which cleave itself fills: `cleave run` with the
# configuration bench/copy.sh writes (copy_workers: 2) until its log says
# event=initial_sync_done, then until its slot is active (streaming). It
# keeps running, streaming an idle source, during the timed runs, as in
# real use; that costs nothing measurable (an idle walsender and cleave
# waiting on it; no heartbeat is configured).
#
# Timed, one after the other, each ROUNDS times (1 by default), the
# reference first (both read tables the initial sync has just read or
# written, so both find them in the page cache):
#
#   dump-and-diff  for each of the 14 owned tables, two psql sessions run
#                  concurrently, one on the source and one on the owning
#                  service's target, each
#                    COPY (SELECT * FROM t ORDER BY <primary key>) TO STDOUT
#                  (user_sessions, which has no primary key: ORDER BY every
#                  column), piped through two FIFOs into `cmp -s` (streaming,
#                  nothing written to disk, nothing held in memory: the
#                  cheapest exact diff there is). Tables go through
#                  `xargs -P 2` (cleave's copy_workers: 2) largest first
#                  (pg_class.reltuples, the order cleave verify uses). Each
#                  table must compare equal with both psql sessions exiting 0.
#   cleave verify  `cleave verify -c CONFIG`, every owned table; must exit 0
#                  with 14 "ok" lines, each with the source's row count, and
#                  a summary of SRC_TOTAL rows.
#
# The sessions reach the source over TCP on 127.0.0.1 and the targets over
# the target's Unix socket, for both tools (the DSNs of the configuration).
# Then, in this order:
#   - wire bytes (WIRE=1, the default): one more pass of each tool under
#     `strace --seccomp-bpf -f -e trace=recvfrom` (libpq reads its sockets
#     with recv(2)), summing what the clients received from both servers;
#     untimed;
#   - under a workload (WORKLOAD=1; off by default): the shop's pgbench mix
#     (4 clients, seed 42) runs during one more timed `cleave verify`, which
#     must still say "ok" for every table (rows not applied yet are
#     re-checked, not reported); pgbench is stopped when verify ends, cleave
#     catches up and the source's row counts are taken again;
#   - cleave stopped (SIGTERM): `cleave verify` again, ROUNDS times, timed
#     (no run streams the slot: it must say so and still find every table
#     equal);
#   - detection: cleave started again (streaming); in the targets, one
#     order_items row deleted, one updated and one added, and one
#     user_sessions row deleted and another duplicated; then `cleave verify
#     --table order_items` and `--table user_sessions`, once while cleave
#     streams and once after it is stopped, must exit 3 naming exactly
#     those rows (keys as column=value pairs; the keyless rows by every
#     column), each within DETECT_TIMEOUT; the dump-and-diff of those two
#     tables must find both differ. A verify that finds nothing proves
#     nothing.
#
# Figures per run: wall seconds; rows compared (the source's rows; cleave
# verify's from its summary line, checked equal to the source's count);
# rows/s; cleave's rows/s over dump-and-diff's of the same round; peak RSS
# (GNU time's %M: cleave verify's process; for dump-and-diff the largest
# single process, a psql); client CPU seconds (cleave verify; all the psql
# and cmp processes); CPU seconds of the PostgreSQL servers, source and
# target together (verify hashes inside them); and from the wire pass, the
# bytes the clients received.
#
# Environment: SCALE (8), ROUNDS (1), WIRE (1; 0 skips the strace pass),
# WORKLOAD (0; 1 adds the run under pgbench), DETECT_TIMEOUT (s, 120),
# COPY_TIMEOUT (s for cleave's initial sync, 300), VERIFY_TIMEOUT (s for
# each timed run, 600), and those of bench/common.sh: CLEAVE_BIN,
# CLEAVE_FIXTURES, BENCH_KEEP=1.
# Exits 0 when every run was measured and every check above held.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/common.sh
. bench/common.sh
SCALE=${SCALE:-8}
ROUNDS=${ROUNDS:-1}
WIRE=${WIRE:-1}
WORKLOAD=${WORKLOAD:-0}
WORKERS=2
COPY_TIMEOUT=${COPY_TIMEOUT:-300}
RUN_TIMEOUT=${VERIFY_TIMEOUT:-600}
GNU_TIME=/usr/bin/time
DETECT_TIMEOUT=${DETECT_TIMEOUT:-120}
SLOT=cleave_verify

bench_init
CONFIG=$T/$SLOT.yaml
need_packages time strace
RUN_PID=""   # a timed run: GNU time, running `timeout`, running the command
BG_PID=""    # pgbench (WORKLOAD=1)
verify_on_exit() {
  if [ -n "$RUN_PID" ]; then
    # timeout passes a SIGTERM on to the command's whole process group
    # shellcheck disable=SC2046  # the pid, if any
    kill -TERM $(ps -o pid= --ppid "$RUN_PID") 2>/dev/null
    wait "$RUN_PID" 2>/dev/null
  fi
  [ -z "$BG_PID" ] || kill -TERM "$BG_PID" 2>/dev/null
}
EXIT_HOOKS+=(verify_on_exit)
build_cleave
[ -z "$CLEAVE_NOTE" ] || die "$CLEAVE_NOTE"

# ---------------------------------------------------------------- helpers
owner() { local s; for s in "${SERVICES[@]}"; do [[ " ${OWNED[$s]} " == *" $1 "* ]] && echo "$s"; done; }

declare -A SEC=() ROWS=() RSS=() CPU=() SCPU=() WIREB=() RCS=()
FAILURES=()
fail() { FAILURES+=("$1"); log "FAIL: $1"; }

# timed NAME COMMAND...: runs COMMAND under GNU time and `timeout $TO`
# (RUN_TIMEOUT unless set), stdout to $T/NAME.out, stderr to $T/NAME.err;
# sets SEC, RSS, CPU, SCPU [NAME] and RC (and RCS[NAME]), the command's
# exit status (124: timed out).
timed() {
  local name=$1 st0 t0 m u y; shift
  st0=$(server_ticks)
  t0=$(now)
  "$GNU_TIME" -o "$T/$name.time" -f '%e %M %U %S %x' \
    timeout "${TO:-$RUN_TIMEOUT}" "$@" >"$T/$name.out" 2>"$T/$name.err" &
  RUN_PID=$!
  RC=0; wait "$RUN_PID" || RC=$?
  RUN_PID=""
  RCS[$name]=$RC
  SEC[$name]=$(calc "%.2f" "$(now) - $t0")
  SCPU[$name]=$(calc "%.1f" "($(server_ticks) - $st0) / $TCK")
  # GNU time's last line (it writes "Command exited with non-zero status" first)
  read -r _ m u y _ < <(tail -n 1 "$T/$name.time")
  RSS[$name]=$(calc "%.1f" "$m / 1024")
  CPU[$name]=$(calc "%.1f" "$u + $y")
}

# ---------------------------------------------------------------- source and targets
t_setup=$(now)
log "source cluster: shop at scale $SCALE"
new_cluster src
new_cluster tgt
q src postgres "CREATE DATABASE shop"
load_shop src shop "$SCALE"
declare -A SRC_ROWS=()
SRC_TOTAL=0
for t in $ALL_TABLES; do
  SRC_ROWS[$t]=$(q src shop "SELECT count(*) FROM $t")
  SRC_TOTAL=$((SRC_TOTAL + SRC_ROWS[$t]))
done
DATA_MB=$(q src shop "SELECT round(sum(pg_table_size(n::regclass)) / 1048576.0, 1)
                      FROM unnest(string_to_array('$ALL_TABLES', ' ')) n")
SRC_TOTAL0=$SRC_TOTAL
log "source: $SRC_TOTAL rows, $DATA_MB MB of table data"

# The reference's ORDER BY per table (primary key columns in key order,
# else every column) and its table order (reltuples descending, then the
# configuration's order: cleave verify's).
REF=$T/ref
mkdir -p "$REF"
i=0
for s in "${SERVICES[@]}"; do
  for t in ${OWNED[$s]}; do
    q src shop "SELECT coalesce(
        (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.ord)
           FROM pg_index x CROSS JOIN unnest(x.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
           JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
          WHERE x.indrelid = c.oid AND x.indisprimary),
        (SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum)
           FROM pg_attribute WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped))
      FROM pg_class c WHERE c.oid = 'public.$t'::regclass" >"$REF/$t.order"
    echo "$(q src shop "SELECT reltuples FROM pg_class WHERE oid = 'public.$t'::regclass") $i $s $t"
    i=$((i + 1))
  done
done | sort -k1,1gr -k2,2n | awk '{ print $3, $4 }' >"$REF/tables"

log "cleave: initial sync into five empty service databases"
for s in "${SERVICES[@]}"; do q tgt postgres "CREATE DATABASE ${s}_db"; done
write_config tgt "$SLOT" "copy_workers: $WORKERS"
"$CLEAVE" check -c "$CONFIG" >"$T/check.log" 2>&1 ||
  die "cleave check refused the configuration: $(head -c 300 "$T/check.log")"
cleave_log_tail() { log "last lines of cleave's log:"; tail -n 25 "$T/$SLOT.log" | sed 's/^/    /' >&2; }
slot_active() { [ "$(q src shop "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$SLOT' AND active")" = 1 ]; }
sync_over() { grep -q 'event=initial_sync_done' "$T/$SLOT.log" || cleave_exited; }
streaming() { slot_active || cleave_exited; }
# start_streaming: cleave run, until its slot is active (after the initial
# sync, the first time).
start_streaming() {
  cleave_start "$SLOT"
  if [ ! -e "$T/synced" ]; then
    wait_until "$COPY_TIMEOUT" sync_over || { cleave_log_tail; die "no event=initial_sync_done after $COPY_TIMEOUT s"; }
    ! cleave_exited || { cleave_log_tail; die "cleave exited during the initial sync"; }
    SYNC_LINE=$(grep -m1 'event=initial_sync_done' "$T/$SLOT.log")
    touch "$T/synced"
  fi
  wait_until 60 streaming || { cleave_log_tail; die "cleave's slot not active after 60 s"; }
  ! cleave_exited || { cleave_log_tail; die "cleave exited before streaming"; }
}
start_streaming
log "cleave: initial sync done ($(sed -n 's/.* \(seconds=[^ ]*\).*/\1/p' <<<"$SYNC_LINE")), streaming"
q src shop "CHECKPOINT"
q tgt postgres "CHECKPOINT"
setup_s=$(calc "%.0f" "$(now) - $t_setup")
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- dump-and-diff
# One table: $REF/dumpdiff.sh SERVICE TABLE writes "cmp-status src-psql-status
# tgt-psql-status seconds" to $REF/TABLE.result.
cat >"$REF/dumpdiff.sh" <<'EOF'
#!/usr/bin/env bash
# bench/verify.sh's reference, one table: COPY ... TO STDOUT ordered by the
# key, from the source and from the target at once, into cmp -s.
set -u
svc=$1 t=$2 d=$REF_DIR/$2
rm -rf "$d"; mkdir -p "$d"; mkfifo "$d/src" "$d/tgt"
sql="COPY (SELECT * FROM public.$t ORDER BY $(cat "$REF_DIR/$t.order")) TO STDOUT"
t0=${EPOCHREALTIME/[.,]/}
psql -X -q -v ON_ERROR_STOP=1 -d "$REF_SRC_DSN" -c "$sql" >"$d/src" 2>"$d.src.err" & ps=$!
psql -X -q -v ON_ERROR_STOP=1 -d "$REF_TGT_DSN dbname=${svc}_db" -c "$sql" >"$d/tgt" 2>"$d.tgt.err" & pt=$!
c=0; cmp -s "$d/src" "$d/tgt" || c=$?
rs=0; wait "$ps" || rs=$?
rt=0; wait "$pt" || rt=$?
t1=${EPOCHREALTIME/[.,]/}
echo "$c $rs $rt $(( (t1 - t0) / 1000 ))" >"$REF_DIR/$t.result"
rm -rf "$d"
EOF
chmod 755 "$REF/dumpdiff.sh"
DD_PREFIX=()
REF_SRC_DSN=$(src_dsn)
REF_TGT_DSN="host=$T/tgt port=${PORT[tgt]} user=postgres"   # + dbname
export REF_DIR=$REF REF_SRC_DSN REF_TGT_DSN

psql_broke() {  # psql_broke CMP-STATUS PSQL-STATUS
  [ "$2" != 0 ] && { [ "$1" = 0 ] || [ "$2" != 141 ]; }
}
# dumpdiff NAME [TABLE...]: the reference over those tables (all by
# default), timed, behind the command prefix DD_PREFIX (strace for the wire
# pass); DD_DIFFER gets the tables that differ, DD_BROKEN those whose psql
# or cmp failed, DD_PER each table's seconds.
dumpdiff() {
  local name=$1 list t c rs rt ms; shift
  if [ $# -gt 0 ]; then
    list=$(for t in "$@"; do echo "$(owner "$t") $t"; done)
  else
    list=$(cat "$REF/tables")
  fi
  rm -f "$REF"/*.result "$REF"/*.err
  echo "$list" >"$REF/$name.list"   # a background command's stdin is /dev/null
  timed "$name" "${DD_PREFIX[@]}" xargs -r -a "$REF/$name.list" -P "$WORKERS" -L 1 "$REF/dumpdiff.sh"
  DD_DIFFER="" DD_BROKEN="" DD_PER=""
  while read -r _ t; do
    if [ ! -s "$REF/$t.result" ]; then DD_BROKEN+=" $t(no result)"; continue; fi
    read -r c rs rt ms <"$REF/$t.result"
    DD_PER+="${DD_PER:+, }$t $(calc "%.2f" "$ms / 1000")"
    # cmp: 0 same, 1 differ, 2 trouble; a psql cut short by cmp's exit
    # on a difference dies of SIGPIPE (141)
    if [ "$c" = 2 ] || psql_broke "$c" "$rs" || psql_broke "$c" "$rt"; then
      DD_BROKEN+=" $t(cmp $c, psql $rs/$rt: $(cat "$REF/$t".*.err 2>/dev/null | head -c 200 || true))"
    elif [ "$c" = 1 ]; then
      DD_DIFFER+=" $t"
    fi
  done <<<"$list"
}

# ---------------------------------------------------------------- cleave verify
# check_verify NAME: $T/NAME.out must be 14 "ok" lines with the source's
# row counts and a summary of SRC_TOTAL rows; sets ROWS[NAME], or says why.
# With a second argument (a workload ran), the counts are not checked.
check_verify() {
  local name=$1 loose=${2:-} out=$T/$1.out bad="" t n svc line seen=0 sum
  [ "$RC" = 0 ] || bad+="exit status $RC (expected 0); "
  while read -r svc line n; do
    t=${line#public.}
    seen=$((seen + 1))
    [ "$svc" = "$(owner "$t")" ] || bad+="$line under $svc; "
    [ -n "$loose" ] || [ "$n" = "${SRC_ROWS[$t]:-}" ] || bad+="$t: $n rows, source ${SRC_ROWS[$t]:-?}; "
  done < <(awk '$1 == "ok" { print $2, $3, $4 }' "$out")
  [ "$seen" = 14 ] || bad+="$seen ok lines (expected 14); "
  ! grep -qE '^(differs|error|skipped) ' "$out" || bad+="$(grep -cE '^(differs|error|skipped) ' "$out") differs/error/skipped lines; "
  sum=$(sed -n 's/^summary: .* \([0-9][0-9]*\) source rows in .*/\1/p' "$out")
  [ -n "$loose" ] || [ "$sum" = "$SRC_TOTAL" ] || bad+="summary says ${sum:-no} source rows (source $SRC_TOTAL); "
  ROWS[$name]=${sum:-0}
  if [ -n "$bad" ]; then
    fail "$name: ${bad%; }"
    sed 's/^/    /' "$out" >&2; tail -n 5 "$T/$name.err" | sed 's/^/    stderr: /' >&2
  fi
}
# run_verify NAME [PREFIX... --] [ARGS...]: timed `[PREFIX] cleave verify -c
# CONFIG ARGS`
run_verify() {
  local name=$1 pre=()
  shift
  if [[ " $* " == *" -- "* ]]; then
    while [ "$1" != -- ]; do pre+=("$1"); shift; done
    shift
  fi
  log "$name: cleave verify $*"
  timed "$name" "${pre[@]}" "$CLEAVE" verify -c "$CONFIG" "$@"
}

# ---------------------------------------------------------------- timed rounds
for r in $(seq "$ROUNDS"); do
  log "round $r: dump-and-diff, $WORKERS tables at a time"
  dumpdiff "dd$r"
  ROWS[dd$r]=$SRC_TOTAL
  [ "$RC" = 0 ] || fail "dd$r: xargs exit status $RC"
  [ -z "$DD_BROKEN" ] || fail "dd$r: psql failed:$DD_BROKEN"
  [ -z "$DD_DIFFER" ] || fail "dd$r: differ:$DD_DIFFER"
  DD_PER_1=${DD_PER_1:-$DD_PER}
  log "round $r: dump-and-diff ${SEC[dd$r]} s"
  run_verify "cv$r"
  check_verify "cv$r"
  log "round $r: cleave verify ${SEC[cv$r]} s"
done

# ---------------------------------------------------------------- wire bytes
# recv_bytes FILE: the sum of recvfrom's results in an strace output
recv_bytes() { awk '/recvfrom\(/ && / = [0-9]+$/ { s += $NF } END { printf "%d", s }' "$1"; }
if [ "$WIRE" = 1 ]; then
  log "wire: both tools again, under strace (recvfrom only)"
  STRACE=(strace --seccomp-bpf -f -qq -e trace=recvfrom -e status=successful)
  DD_PREFIX=("${STRACE[@]}" -o "$T/wire_dd.strace")
  dumpdiff wire_dd
  DD_PREFIX=()
  if [ "$RC" = 0 ] && [ -z "$DD_BROKEN$DD_DIFFER" ]; then
    WIREB[wire_dd]=$(recv_bytes "$T/wire_dd.strace")
  else
    fail "wire_dd: exit status $RC, psql failed:${DD_BROKEN:- none}, differ:${DD_DIFFER:- none}"
  fi
  run_verify wire_cv "${STRACE[@]}" -o "$T/wire_cv.strace" --
  check_verify wire_cv
  [ "$RC" != 0 ] || WIREB[wire_cv]=$(recv_bytes "$T/wire_cv.strace")
  rm -f "$T"/wire_*.strace
fi

# ---------------------------------------------------------------- under a workload
# WORKLOAD=1: the shop's pgbench mix (4 clients, seed 42) runs during one
# more verify; every table must still be "ok" (the rows cleave has not
# applied yet are re-checked, not reported). pgbench is stopped (SIGTERM)
# when verify ends, cleave catches up, and the source's row counts are
# taken again for what follows.
rows_changed() {
  q src shop "SELECT sum(n_tup_ins + n_tup_upd + n_tup_del) FROM pg_stat_user_tables WHERE schemaname = 'public'"
}
caught_up() {
  [ "$(q src shop "SELECT count(*) FROM pg_replication_slots
                   WHERE slot_name = '$SLOT' AND confirmed_flush_lsn >= '$1'")" = 1 ]
}
if [ "$WORKLOAD" = 1 ]; then
  log "under pgbench: cleave verify while the shop workload runs"
  rows0=$(rows_changed)
  (cd "$FIX/workload" && exec pgbench -h "$T/src" -p "${PORT[src]}" -U postgres -n -c 4 -j 2 \
    -T 3600 -s "$SCALE" --random-seed=42 -f new_order.sql@4 -f user_update.sql@3 \
    -f inventory.sql@3 -f notification.sql@2 -f refund.sql@1 shop) >"$T/pgbench.log" 2>&1 &
  BG_PID=$!
  sleep 2
  run_verify cv_load
  kill -0 "$BG_PID" 2>/dev/null || fail "cv_load: pgbench ended before verify did: $(tail -n 3 "$T/pgbench.log")"
  kill -TERM "$BG_PID" 2>/dev/null || true
  wait "$BG_PID" 2>/dev/null || true
  BG_PID=""
  sleep 1   # the pgbench backends' statistics
  LOAD_CHANGES=$(( $(rows_changed) - rows0 ))
  check_verify cv_load loose
  lsn=$(q src shop "SELECT pg_current_wal_lsn()")
  wait_until 300 caught_up "$lsn" || fail "cleave did not catch up with the workload in 300 s"
  SRC_TOTAL=0
  for t in $ALL_TABLES; do
    SRC_ROWS[$t]=$(q src shop "SELECT count(*) FROM $t")
    SRC_TOTAL=$((SRC_TOTAL + SRC_ROWS[$t]))
  done
  log "under pgbench: ${SEC[cv_load]} s, $LOAD_CHANGES row changes meanwhile; source now $SRC_TOTAL rows"
fi

# ---------------------------------------------------------------- cleave stopped
log "cleave stopped"
cleave_stop || fail "cleave: exit status $? after SIGTERM"
for r in $(seq "$ROUNDS"); do
  run_verify "cs$r"
  check_verify "cs$r"
  grep -q "^note: no cleave run streams slot $SLOT" "$T/cs$r.out" ||
    fail "cs$r: no note that no cleave run streams the slot"
  log "round $r: cleave verify, cleave stopped: ${SEC[cs$r]} s"
done

# ---------------------------------------------------------------- detection
# check_detect NAME TABLE N TEXT...: $T/NAME.out must say TABLE differs in N
# rows, exit 3, and hold each TEXT (a fixed string) on a line of its own
# list of differences.
check_detect() {
  local name=$1 t=$2 n=$3 bad="" x; shift 3
  [ "$RC" = 3 ] || bad+="exit status $RC (expected 3); "
  grep -qE "^differs +$(owner "$t") +public\.$t +${SRC_ROWS[$t]} rows, $n difference\(s\)" "$T/$name.out" ||
    bad+="no line 'differs $(owner "$t") public.$t ${SRC_ROWS[$t]} rows, $n difference(s)'; "
  for x in "$@"; do
    grep -qF -- "$x" "$T/$name.out" || bad+="no '$x'; "
  done
  if [ -n "$bad" ]; then
    fail "$name: ${bad%; }"
    sed 's/^/    /' "$T/$name.out" >&2; tail -n 5 "$T/$name.err" | sed 's/^/    stderr: /' >&2
  fi
}
detect() {  # detect WHEN: both tables, cleave streaming or stopped
  TO=$DETECT_TIMEOUT run_verify "det_${1}_oi" --table order_items
  check_detect "det_${1}_oi" order_items 3 "${OI_EXPECT[@]}"
  TO=$DETECT_TIMEOUT run_verify "det_${1}_us" --table user_sessions
  check_detect "det_${1}_us" user_sessions 2 "${US_EXPECT[@]}"
}
log "detection: cleave started again; differences made in two targets"
start_streaming
read -r k1 k2 < <(q src shop "SELECT string_agg(order_id || ',' || line_no, ' ' ORDER BY order_id, line_no)
                              FROM (SELECT * FROM order_items ORDER BY order_id, line_no LIMIT 2) s")
qo() { q tgt order_service_db "$@"; }
qo "DELETE FROM order_items WHERE (order_id, line_no) = (${k1})"
qo "UPDATE order_items SET quantity = quantity + 1 WHERE (order_id, line_no) = (${k2})"
qo "INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price, discount, attributes)
    SELECT order_id, 32000, product_id, quantity, unit_price, discount, attributes
      FROM order_items WHERE (order_id, line_no) = (${k2})"
OI_EXPECT=("missing in target: order_id=${k1%,*}, line_no=${k1#*,}"
           "different: order_id=${k2%,*}, line_no=${k2#*,}"
           "extra in target: order_id=${k2%,*}, line_no=32000")
qu() { q tgt user_service_db "$@"; }
tok1=$(qu "DELETE FROM user_sessions WHERE ctid = (SELECT ctid FROM user_sessions ORDER BY session_token LIMIT 1)
           RETURNING session_token")
tok2=$(qu "INSERT INTO user_sessions SELECT * FROM user_sessions ORDER BY session_token DESC LIMIT 1
           RETURNING session_token")
US_EXPECT=("missing in target: session_token=$tok1" "extra in target: session_token=$tok2")
detect streaming
cleave_stop || fail "cleave: exit status $? after SIGTERM"
detect stopped
log "detection: dump-and-diff of the two tables"
dumpdiff det_dd order_items user_sessions
[ -z "$DD_BROKEN" ] || fail "det_dd: psql failed:$DD_BROKEN"
[ "${DD_DIFFER# }" = "order_items user_sessions" ] ||
  fail "det_dd: dump-and-diff found differences in:${DD_DIFFER:- none} (expected order_items user_sessions)"

# ---------------------------------------------------------------- report
echo
echo "cleave verify benchmark (PostgreSQL $(q src shop "SHOW server_version" | cut -d' ' -f1)," \
     "$(nproc) CPUs, load average before the timed runs $LOAD)"
echo "shop scale $SCALE: 14 tables, $SRC_TOTAL0 rows${SEC[cv_load]:+ ($SRC_TOTAL after the workload)}, $DATA_MB MB of table data (heap and TOAST);" \
     "targets filled by cleave's initial sync; setup $setup_s s"
echo "both tools $WORKERS tables at a time, largest first; cleave streaming (idle source) unless said"
printf '%-34s %8s %9s %9s %7s %9s %7s %8s %10s\n' tool seconds rows rows/s ratio "peak RSS" "CPU s" server "kB recv'd"
printf '%-34s %8s %9s %9s %7s %9s %7s %8s %10s\n' "" "" "" "" "" MB "" "CPU s" ""
row() {  # row NAME LABEL REFERENCE-NAME WIRE-NAME
  local n=$1 rps ratio="" kb="-"
  if [ -z "${SEC[$n]:-}" ]; then printf '%-34s no result\n' "$2"; return; fi
  rps=$(calc "%.0f" "${ROWS[$n]} / ${SEC[$n]}")
  [ -z "$3" ] || [ -z "${SEC[$3]:-}" ] || ratio=$(calc "%.2f" "$rps / (${ROWS[$3]} / ${SEC[$3]})")
  [ -z "$4" ] || [ -z "${WIREB[$4]:-}" ] || kb=$(calc "%.0f" "${WIREB[$4]} / 1024")
  printf '%-34s %8s %9s %9s %7s %9s %7s %8s %10s\n' "$2" "${SEC[$n]}" "${ROWS[$n]}" "$rps" \
    "${ratio:--}" "${RSS[$n]}" "${CPU[$n]}" "${SCPU[$n]}" "$kb"
}
for r in $(seq "$ROUNDS"); do
  sfx=""; [ "$ROUNDS" = 1 ] || sfx=" ($r)"
  row "dd$r" "dump-and-diff$sfx" "" wire_dd
  row "cv$r" "cleave verify$sfx" "dd$r" wire_cv
done
[ "$WORKLOAD" != 1 ] || row cv_load "cleave verify, under pgbench" "" ""
for r in $(seq "$ROUNDS"); do
  sfx=""; [ "$ROUNDS" = 1 ] || sfx=" ($r)"
  row "cs$r" "cleave verify, cleave stopped$sfx" "dd$r" wire_cv
done
echo "  (ratio: cleave's rows/s over dump-and-diff's of the same round; peak RSS of dump-and-diff:"
echo "   its largest single process; kB recv'd: from both servers, in a separate pass under strace)"
echo "  dump-and-diff seconds per table (round 1): $DD_PER_1"
for n in det_streaming_oi det_streaming_us det_stopped_oi det_stopped_us; do
  [ -z "${SEC[$n]:-}" ] || echo "  detection $n: ${SEC[$n]} s, peak RSS ${RSS[$n]:-?} MB, exit status ${RCS[$n]}"
done
if [ -n "${SEC[cv_load]:-}" ]; then
  echo "  under pgbench: $LOAD_CHANGES row changes on the source during the run;" \
       "$(grep -c 're-checked' "$T/cv_load.out" || true) table(s) with chunks re-checked"
fi
echo
if [ ${#FAILURES[@]} -eq 0 ]; then
  echo "every check held"
else
  echo "FAILED:"; printf '  %s\n' "${FAILURES[@]}"
  exit 1
fi
