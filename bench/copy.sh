#!/usr/bin/env bash
# Initial-copy benchmark: cleave's initial sync against pgcopydb, in one run.
#
#   bench/copy.sh                  (SCALE=1 bench/copy.sh for a quick try)
#   BIGTABLE=1 bench/copy.sh       (one big table; BIG_MB=200 for a quick try)
#
# One source cluster holds the shared shop database (schema.sql + data.sql
# at scale $SCALE, 8 by default: 2.06 million rows, 301 MB of table data),
# loaded once and read by both tools. One target cluster gets five empty
# service databases (no tables at all), created fresh for each tool. Each
# tool is timed from its start until the five services hold their owned
# tables (of config/examples/shop.yaml) with every row, their indexes and
# their in-service foreign keys:
#
#   pgcopydb  `pgcopydb clone` (Debian 12's 0.10, installed if missing)
#             once per service, the five one after another, each with a
#             filter file whose [include-only-table] lists the service's
#             tables, --table-jobs 2 --index-jobs 2 (the parallelism of
#             cleave's copy_workers: 2), --no-owner --no-acl, in the
#             consistent default (its own exported snapshot; no --follow,
#             so no slot and no --not-consistent). It also runs VACUUM
#             ANALYZE on each table it copied, which cleave need not do.
#             No --skip-extensions: the source has only plpgsql.
#   cleave    `cleave run` with the configuration bench/catchup.sh writes
#             plus `copy_workers: 2`: it creates the tables from the source
#             catalog, copies them inside its new slot's snapshot, then
#             streams. Timed from its start until its log says
#             event=initial_sync_done (polled, with a deadline of
#             COPY_TIMEOUT seconds), then SIGTERMed.
#
# Sequential clones match what cleave does: two table copies at a time in
# all, not two per service. Both tools reach the source over TCP on
# 127.0.0.1 and the targets over the target's Unix socket.
#
# pgcopydb 0.10's [include-only-table] leaves two kinds of entries of the
# tables it filters out in the pg_restore list it writes: the identity
# column sequences and the column defaults (nextval of a serial), so the
# pre-data restore fails on the first of them ("relation public.inventory
# does not exist"; fixed upstream after 0.10, dimitri/pgcopydb#246).
# pgcopydb takes pg_restore from the directory of the first psql in PATH,
# so its PATH starts with $T/pgbin: PostgreSQL 15's programs, except a
# pg_restore that comments those entries out of the --use-list file (by
# OID, taken from the source catalog beforehand) and runs the real one.
# pgcopydb runs in a session of its own (setsid) because on failure it
# kills its whole process group.
#
# Figures per tool: wall seconds; rows found in the targets afterwards
# (each table's count must equal the source's, and each service's indexes
# and key constraints the source's: a copy that did nothing proves
# nothing); rows/s; MB/s of the source tables' data (heap and TOAST,
# without indexes: the same figure for both); peak RSS, for cleave VmHWM
# when the sync is done, for pgcopydb the largest single process of any
# clone (GNU time's %M; pgcopydb runs several at once); CPU seconds of the
# tool (cleave: until the sync is done; pgcopydb: with every child it
# waited for, pg_dump and pg_restore included), and of the PostgreSQL
# servers, source and target together.
#
# Big-table mode (BIGTABLE=1): one table `big` (a bigint key, an int, a
# numeric, a timestamptz and 32 characters of text: about 100 bytes a
# row) of BIG_MB MB of heap (1536 by default; BIG_MB=200 for a quick
# run), frozen and analyzed, copied into one empty service database three
# times, one after another in one run: pgcopydb clone with
# --split-tables-larger-than $SPLIT (it splits by ranges of the integer
# key, ceil(size / SPLIT) ways, and builds the key's index after the
# rows), cleave with copy_split_size: $SPLIT (block ranges of that size),
# and cleave with copy_split_size: 0 (the table copied by one worker, as
# before the split copy). All three with two jobs (copy_workers: 2,
# --table-jobs 2 --index-jobs 2). Each copy is checked by the target's
# row count and an order-free checksum (the sum of hashtext of each row's
# text) against the source's. The ratios are printed side by side.
# With CLEAVE_BEFORE (another build of cleave), a fourth copy, "before":
# that build with copy_split_size: 0, for the single worker's before and
# after in one run. Each cleave run notes the COPY format of its table
# (event=table_copied's format=; a build without the field copied text).
#
# Environment: SCALE (8), COPY_TIMEOUT (s cleave may take, 120; 900 in
# big-table mode), BIGTABLE, BIG_MB, SPLIT (256MB), CLEAVE_BEFORE, and those of
# bench/common.sh: CLEAVE_BIN, CLEAVE_FIXTURES, BENCH_KEEP=1.
# Exits 0 when every tool was measured and every copy is complete.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/common.sh
. bench/common.sh
SCALE=${SCALE:-8}
WORKERS=2
BIGTABLE=${BIGTABLE:-0}
if [ "$BIGTABLE" = 1 ]; then TIMEOUT=${COPY_TIMEOUT:-900}; else TIMEOUT=${COPY_TIMEOUT:-120}; fi
BIG_MB=${BIG_MB:-1536}
SPLIT=${SPLIT:-256MB}
PGCOPYDB=/usr/bin/pgcopydb
GNU_TIME=/usr/bin/time

bench_init
need_packages pgcopydb time
[ -x "$PGCOPYDB" ] || die "no $PGCOPYDB after installing pgcopydb"
PGC_PID=""   # GNU time, running one pgcopydb clone in a session of its own
copy_on_exit() {  # the clone's process group (its id in $T/pgcopydb.pgid), then GNU time
  [ -n "$PGC_PID" ] || return 0
  [ ! -s "$T/pgcopydb.pgid" ] || kill -TERM -- "-$(cat "$T/pgcopydb.pgid")" 2>/dev/null
  kill -TERM "$PGC_PID" 2>/dev/null
}
EXIT_HOOKS+=(copy_on_exit)
build_cleave

# ---------------------------------------------------------------- helpers
sql_names() {  # sql_names "a b": ARRAY['a', 'b']
  local t l="" ts
  read -r -a ts <<<"$*"
  for t in "${ts[@]}"; do l+="${l:+, }'$t'"; done
  echo "ARRAY[$l]"
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }   # field KEY LINE: a key=value's value

fresh_targets() {  # five empty service databases, and nothing dirty left behind
  local s
  for s in "${SERVICES[@]}"; do
    q tgt postgres "DROP DATABASE IF EXISTS ${s}_db WITH (FORCE)"
    q tgt postgres "CREATE DATABASE ${s}_db"
  done
  q tgt postgres "CHECKPOINT"
  q src shop "CHECKPOINT"
}

# shape CLUSTER DB "TABLE...": "tables|indexes|key constraints" of those tables
# there (key constraints: primary key, unique, exclusion, and foreign keys
# between those tables).
shape() {
  q "$1" "$2" "WITH mine AS (SELECT to_regclass(n) AS oid FROM unnest($(sql_names "$3")) n)
    SELECT (SELECT count(oid) FROM mine) || '|' ||
           (SELECT count(*) FROM pg_index WHERE indrelid IN (SELECT oid FROM mine)) || '|' ||
           (SELECT count(*) FROM pg_constraint WHERE conrelid IN (SELECT oid FROM mine)
              AND contype IN ('p', 'u', 'x', 'f')
              AND (contype <> 'f' OR confrelid IN (SELECT oid FROM mine)))"
}

# verify TOOL: ROWS[TOOL], the rows in the targets, and EQ[TOOL], "yes" or
# what differs from the source.
verify() {
  local tool=$1 s t n got sum=0 bad=""
  for s in "${SERVICES[@]}"; do
    got=$(shape tgt "${s}_db" "${OWNED[$s]}")
    [ "$got" = "${SRC_SHAPE[$s]}" ] ||
      bad+="${bad:+; }$s tables|indexes|keys $got, source ${SRC_SHAPE[$s]}"
    for t in ${OWNED[$s]}; do
      n=$(q tgt "${s}_db" "SELECT count(*) FROM $t" 2>/dev/null) || n=0
      sum=$((sum + n))
      [ "$n" = "${SRC_ROWS[$t]}" ] || bad+="${bad:+; }$t $n rows of ${SRC_ROWS[$t]}"
    done
  done
  ROWS[$tool]=$sum
  EQ[$tool]=${bad:-yes}
}

declare -A SEC=() ROWS=() RSS=() CPU=() SCPU=() EQ=() FAILED=() PER=() NOTE=()

# ---------------------------------------------------------------- one big table
big_fresh() {  # an empty big_db, and nothing dirty left behind
  q tgt postgres "DROP DATABASE IF EXISTS big_db WITH (FORCE)"
  q tgt postgres "CREATE DATABASE big_db"
  q tgt postgres "CHECKPOINT"
  q src shop "CHECKPOINT"
}
big_sum() { q "$1" "$2" "SELECT count(*) || ' ' || coalesce(sum(hashtext(b::text)::bigint), 0) FROM big b"; }
big_check() {  # big_check RUN: EQ[RUN], "yes" or what the target holds
  local got
  got=$(big_sum tgt big_db 2>/dev/null) || got="no table"
  ROWS[$1]=${got%% *}
  if [ "$got" = "$BIG_SUM" ]; then EQ[$1]=yes; else EQ[$1]="count and checksum $got, source $BIG_SUM"; fi
}

big_source() {  # the table, about BIG_MB MB of heap
  local rows=$(( BIG_MB * 1048576 / 100 ))
  log "source: big, $rows rows (about $BIG_MB MB)"
  q src postgres "CREATE DATABASE shop"
  q src shop "CREATE TABLE big (id bigint NOT NULL, account int NOT NULL,
      amount numeric(12,2) NOT NULL, created timestamptz NOT NULL, note text)"
  q src shop "INSERT INTO big SELECT g, g % 100000, (g % 100000) / 100.0,
      timestamptz '2026-01-01' + g * interval '1 second', md5(g::text)
      FROM generate_series(1, $rows) g"
  q src shop "ALTER TABLE big ADD PRIMARY KEY (id)"
  q src shop "VACUUM (FREEZE, ANALYZE) big"
  BIG_SUM=$(big_sum src shop)
  DATA_MB=$(q src shop "SELECT round(pg_relation_size('big') / 1048576.0, 1)")
}

big_pgcopydb() {
  local rc=0 e m u y
  log "pgcopydb: clone --split-tables-larger-than $SPLIT"
  big_fresh
  mkdir -p "$T/pgcopydb"
  rm -rf "$T/pgcopydb/big"
  local st0 t0
  st0=$(server_ticks)
  t0=$(now)
  # shellcheck disable=SC2016  # $$, $0 and $@ are the inner shell's
  "$GNU_TIME" -o "$T/pgcopydb/big.time" -f '%e %M %U %S' \
    setsid -w sh -c 'echo $$ >"$0"; exec "$@"' "$T/pgcopydb.pgid" \
    "$PGCOPYDB" clone --source "postgres://postgres@127.0.0.1:${PORT[src]}/shop" \
      --target "postgres://postgres@${T//\//%2F}%2Ftgt:${PORT[tgt]}/big_db" \
      --dir "$T/pgcopydb/big" --table-jobs $WORKERS --index-jobs $WORKERS \
      --split-tables-larger-than "$SPLIT" --no-owner --no-acl >"$T/pgcopydb/big.log" 2>&1 &
  PGC_PID=$!
  wait "$PGC_PID" || rc=$?
  rm -f "$T/pgcopydb.pgid"
  PGC_PID=""
  if [ "$rc" != 0 ]; then
    FAILED[pgcopydb]="exit status $rc"
    tail -n 25 "$T/pgcopydb/big.log" | sed 's/^/    /' >&2
    return
  fi
  SEC[pgcopydb]=$(calc "%.2f" "$(now) - $t0")
  SCPU[pgcopydb]=$(calc "%.1f" "($(server_ticks) - $st0) / $TCK")
  read -r e m u y <"$T/pgcopydb/big.time"
  RSS[pgcopydb]=$(calc "%.1f" "$m / 1024")
  CPU[pgcopydb]=$(calc "%.1f" "$u + $y")
  NOTE[pgcopydb]=$(grep -oE '[0-9]+ COPY processes' "$T/pgcopydb/big.log" | head -1 || true)
  big_check pgcopydb
  log "pgcopydb: ${SEC[pgcopydb]} s (${NOTE[pgcopydb]:-not split})"
}

big_over() { grep -q 'event=initial_sync_done' "$T/$BIG_SLOT.log" || cleave_exited; }
big_cleave() {  # big_cleave RUN SPLIT_SIZE [CLEAVE]: one initial sync of big
  local run=$1 slot="big_$1" hwm st0 t0 format CLEAVE=${3:-$CLEAVE}
  if [ -n "$CLEAVE_NOTE" ]; then FAILED[$run]=$CLEAVE_NOTE; return; fi
  log "cleave ($run): copy_split_size $2"
  big_fresh
  { config_head "$slot" "copy_workers: $WORKERS" "copy_split_size: $2"
    echo "  big_service:"
    echo "    owned_tables: [big]"
    echo "    target:"
    echo "      postgres: \"host=$T/tgt port=${PORT[tgt]} dbname=big_db user=postgres\""
  } >"$T/$slot.yaml"
  st0=$(server_ticks)
  t0=$(now)
  cleave_start "$slot"
  BIG_SLOT=$slot
  wait_until "$TIMEOUT" big_over || true
  if grep -q 'event=initial_sync_done' "$T/$slot.log" && ! cleave_exited; then
    SEC[$run]=$(calc "%.2f" "$(now) - $t0")
    hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$CLEAVE_PID/status")
    CPU[$run]=$(calc "%.1f" "$(ticks "$CLEAVE_PID") / $TCK")
    SCPU[$run]=$(calc "%.1f" "($(server_ticks) - $st0) / $TCK")
    RSS[$run]=$(calc "%.1f" "$hwm / 1024")
    format=$(grep -m1 'event=table_copied' "$T/$slot.log" | grep -o 'format=[a-z]*' || true)
    NOTE[$run]="$(grep -c 'event=part_copied' "$T/$slot.log" || true) parts, ${format:-format=text}"
  else
    FAILED[$run]="no event=initial_sync_done in $TIMEOUT s"
    tail -n 25 "$T/$slot.log" | sed 's/^/    /' >&2
  fi
  cleave_stop || true
  q src shop "SELECT pg_drop_replication_slot('$slot')" >/dev/null
  big_check "$run"
  log "cleave ($run): ${SEC[$run]:-failed} s (${NOTE[$run]:-})"
}

big_main() {
  local r ratio
  new_cluster src
  new_cluster tgt
  big_source
  LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
  big_pgcopydb
  big_cleave split "$SPLIT"
  big_cleave single 0
  RUNS="pgcopydb split single"
  if [ -n "${CLEAVE_BEFORE:-}" ]; then
    big_cleave before 0 "$CLEAVE_BEFORE"
    RUNS+=" before"
  fi
  echo
  echo "cleave big-table copy benchmark (PostgreSQL $(q src shop "SHOW server_version" | cut -d' ' -f1)," \
       "pgcopydb $("$PGCOPYDB" --version 2>/dev/null | sed -n 's/^pgcopydb version //p'), $(nproc) CPUs," \
       "load average before $LOAD, after $(cut -d' ' -f1-3 /proc/loadavg))"
  echo "one table: ${BIG_SUM%% *} rows, $DATA_MB MB of heap; two jobs each; split size $SPLIT"
  printf '%-9s %8s %9s %7s %9s %7s %8s  %s\n' run seconds rows/s MB/s "RSS MB" "CPU s" "srv CPU" "target == source"
  for r in $RUNS; do
    if [ -n "${FAILED[$r]:-}" ] || [ -z "${SEC[$r]:-}" ]; then
      printf '%-9s FAILED: %s\n' "$r" "${FAILED[$r]:-no result}"; continue
    fi
    printf '%-9s %8s %9s %7s %9s %7s %8s  %s\n' "$r" "${SEC[$r]}" \
      "$(calc "%.0f" "${BIG_SUM%% *} / ${SEC[$r]}")" "$(calc "%.1f" "$DATA_MB / ${SEC[$r]}")" \
      "${RSS[$r]}" "${CPU[$r]}" "${SCPU[$r]}" "${EQ[$r]} (${NOTE[$r]:-})"
  done
  local ok=1
  for r in $RUNS; do
    if [ -z "${SEC[$r]:-}" ] || [ -n "${FAILED[$r]:-}" ] || [ "${EQ[$r]}" != yes ]; then ok=0; fi
  done
  if [ "$ok" = 1 ]; then
    ratio=$(calc "%.2f" "${SEC[single]} / ${SEC[split]}")
    echo "speed-up of the split copy over one worker: ${ratio}x (target >= 1.5)"
    ratio=$(calc "%.2f" "${SEC[pgcopydb]} / ${SEC[split]}")
    echo "split copy against pgcopydb's: ${ratio}x pgcopydb's speed (target >= 1)"
    echo "cleave peak RSS: split ${RSS[split]} MB, single ${RSS[single]} MB (target < 64)"
    if [ -n "${CLEAVE_BEFORE:-}" ]; then
      echo "one worker, this build against CLEAVE_BEFORE: $(calc "%.2f" "${SEC[before]} / ${SEC[single]}")x the speed," \
           "server CPU ${SCPU[single]} s against ${SCPU[before]} s"
    fi
  fi
  [ "$ok" = 1 ]
}
if [ "$BIGTABLE" = 1 ]; then
  big_main
  exit $?
fi

# ---------------------------------------------------------------- source
t_setup=$(now)
log "source cluster: shop at scale $SCALE"
new_cluster src
new_cluster tgt
q src postgres "CREATE DATABASE shop"
load_shop src shop "$SCALE"
declare -A SRC_ROWS=() SRC_SHAPE=()
SRC_TOTAL=0
for t in $ALL_TABLES; do
  SRC_ROWS[$t]=$(q src shop "SELECT count(*) FROM $t")
  SRC_TOTAL=$((SRC_TOTAL + SRC_ROWS[$t]))
done
for s in "${SERVICES[@]}"; do SRC_SHAPE[$s]=$(shape src shop "${OWNED[$s]}"); done
DATA_MB=$(q src shop "SELECT round(sum(pg_table_size(n::regclass)) / 1048576.0, 1)
                      FROM unnest($(sql_names "$ALL_TABLES")) n")
setup_s=$(calc "%.0f" "$(now) - $t_setup")
log "source: $SRC_TOTAL rows, $DATA_MB MB of table data, in $setup_s s"
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- pgcopydb
SRC_URI="postgres://postgres@127.0.0.1:${PORT[src]}/shop"
tgt_uri() { echo "postgres://postgres@${T//\//%2F}%2Ftgt:${PORT[tgt]}/$1"; }

# The PATH pgcopydb gets: PostgreSQL 15's programs, and the pg_restore that
# completes its filtering (see the header).
mkdir -p "$T/pgbin" "$T/pgcopydb"
for f in "$PGBIN"/*; do ln -s "$f" "$T/pgbin/"; done
rm "$T/pgbin/pg_restore"
cat >"$T/pgbin/pg_restore" <<EOF
#!/usr/bin/env bash
# bench/copy.sh: comments the objects listed in \$COPY_SKIP_OIDS (one OID a
# line) out of the --use-list file pgcopydb 0.10 wrote, then runs pg_restore.
set -euo pipefail
args=()
while [ \$# -gt 0 ]; do
  case \$1 in
    --use-list) list=\$2; shift 2 ;;
    --use-list=*) list=\${1#*=}; shift ;;
    *) args+=("\$1"); shift; continue ;;
  esac
  awk 'NR == FNR { skip[\$1] = 1; next }
       /^[0-9]+; [0-9]+ [0-9]+ / && (\$3 in skip) { print ";" \$0; next }
       { print }' "\$COPY_SKIP_OIDS" "\$list" >"\$list.bench"
  args+=(--use-list "\$list.bench")
done
exec "$PGBIN/pg_restore" "\${args[@]}"
EOF
chmod 755 "$T/pgbin/pg_restore"

for s in "${SERVICES[@]}"; do
  { echo "[include-only-table]"; for t in ${OWNED[$s]}; do echo "public.$t"; done; } >"$T/pgcopydb/$s.filter"
  # The sequences and column defaults of every other service's tables.
  q src shop "WITH mine AS (SELECT unnest($(sql_names "${OWNED[$s]}")::regclass[]) AS oid)
    SELECT c.oid FROM pg_class c
      JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
                      AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
     WHERE c.relkind = 'S' AND d.refobjid NOT IN (SELECT oid FROM mine)
    UNION ALL
    SELECT oid FROM pg_attrdef WHERE adrelid NOT IN (SELECT oid FROM mine)" >"$T/pgcopydb/$s.skip"
done

pgcopydb_clone() {  # pgcopydb_clone SERVICE: one clone; its exit status
  local s=$1 rc=0
  # shellcheck disable=SC2016  # $$, $0 and $@ are the inner shell's
  COPY_SKIP_OIDS=$T/pgcopydb/$s.skip PATH="$T/pgbin:$PATH" \
    "$GNU_TIME" -o "$T/pgcopydb/$s.time" -f '%e %M %U %S' \
    setsid -w sh -c 'echo $$ >"$0"; exec "$@"' "$T/pgcopydb.pgid" \
    "$PGCOPYDB" clone --source "$SRC_URI" --target "$(tgt_uri "${s}_db")" \
      --dir "$T/pgcopydb/$s" --table-jobs $WORKERS --index-jobs $WORKERS \
      --no-owner --no-acl --filters "$T/pgcopydb/$s.filter" >"$T/pgcopydb/$s.log" 2>&1 &
  PGC_PID=$!
  wait "$PGC_PID" || rc=$?
  rm -f "$T/pgcopydb.pgid"
  PGC_PID=""
  return "$rc"
}

log "pgcopydb: five clones, one after another"
fresh_targets
rss=0 cpu=0 rc=0
st0=$(server_ticks)
t0=$(now)
for s in "${SERVICES[@]}"; do
  pgcopydb_clone "$s" || rc=$?
  if [ "$rc" != 0 ]; then
    FAILED[pgcopydb]="clone of $s: exit status $rc"
    log "pgcopydb ($s): exit status $rc; last lines of its log:"
    tail -n 25 "$T/pgcopydb/$s.log" | sed 's/^/    /' >&2
    break
  fi
  read -r e m u y <"$T/pgcopydb/$s.time"
  PER[pgcopydb]+="${PER[pgcopydb]:+, }${s%_service} $e"
  rss=$(( m > rss ? m : rss ))
  cpu=$(calc "%.2f" "$cpu + $u + $y")
done
if [ "$rc" = 0 ]; then
  SEC[pgcopydb]=$(calc "%.2f" "$(now) - $t0")
  SCPU[pgcopydb]=$(calc "%.1f" "($(server_ticks) - $st0) / $TCK")
  RSS[pgcopydb]=$(calc "%.1f" "$rss / 1024")
  CPU[pgcopydb]=$(calc "%.1f" "$cpu")
  verify pgcopydb
  log "pgcopydb: ${SEC[pgcopydb]} s (${PER[pgcopydb]})"
fi

# ---------------------------------------------------------------- cleave
sync_over() { grep -q 'event=initial_sync_done' "$T/cleave_copy.log" || cleave_exited; }
cleave_copy() {  # fills the arrays, or FAILED[cleave]
  local rc=0 st0 t0 hwm done_line line
  if [ -n "$CLEAVE_NOTE" ]; then FAILED[cleave]=$CLEAVE_NOTE; return; fi
  log "cleave: initial sync into five empty databases"
  fresh_targets
  write_config tgt cleave_copy "copy_workers: $WORKERS"
  "$CLEAVE" check -c "$T/cleave_copy.yaml" >"$T/check.log" 2>&1 || rc=$?
  if [ "$rc" != 0 ]; then
    FAILED[cleave]="cleave check refused the configuration (exit $rc): $(head -c 200 "$T/check.log")"
    return
  fi
  st0=$(server_ticks)
  t0=$(now)
  cleave_start cleave_copy
  wait_until "$TIMEOUT" sync_over || true
  if grep -q 'event=initial_sync_done' "$T/cleave_copy.log" && ! cleave_exited; then
    SEC[cleave]=$(calc "%.2f" "$(now) - $t0")
    hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$CLEAVE_PID/status")
    CPU[cleave]=$(calc "%.1f" "$(ticks "$CLEAVE_PID") / $TCK")
    SCPU[cleave]=$(calc "%.1f" "($(server_ticks) - $st0) / $TCK")
    RSS[cleave]=$(calc "%.1f" "$hwm / 1024")
    rc=0; cleave_stop || rc=$?
    [ "$rc" = 0 ] || NOTE[cleave]="exit status $rc after SIGTERM"
    done_line=$(grep -m1 'event=initial_sync_done' "$T/cleave_copy.log")
    NOTE[cleave]+="${NOTE[cleave]:+; }it reports services=$(field services "$done_line")"
    NOTE[cleave]+=" rows=$(field rows "$done_line") bytes=$(field bytes "$done_line") seconds=$(field seconds "$done_line")"
    while IFS= read -r line; do
      PER[cleave]+="${PER[cleave]:+, }$(field service "$line" | sed 's/_service$//') $(field seconds "$line")"
    done < <(grep 'event=copy_done' "$T/cleave_copy.log")
    verify cleave
    log "cleave: ${SEC[cleave]} s (${PER[cleave]:-no event=copy_done lines})"
    return
  fi
  if cleave_exited; then
    rc=0; wait "$CLEAVE_PID" || rc=$?; CLEAVE_PID=""
    FAILED[cleave]="exited during the initial sync (status $rc)"
  else
    FAILED[cleave]="no event=initial_sync_done in its log after $TIMEOUT s (COPY_TIMEOUT):"
    FAILED[cleave]+=" $(grep -c 'event=copy_done' "$T/cleave_copy.log" || true) of 5 services logged event=copy_done"
    cleave_stop || true
  fi
  log "cleave: ${FAILED[cleave]}; last lines of its log:"
  tail -n 25 "$T/cleave_copy.log" | sed 's/^/    /' >&2
}
cleave_copy

# ---------------------------------------------------------------- report
echo
echo "cleave initial-copy benchmark (PostgreSQL $(q src shop "SHOW server_version" | cut -d' ' -f1)," \
     "pgcopydb $("$PGCOPYDB" --version 2>/dev/null | sed -n 's/^pgcopydb version //p'), $(nproc) CPUs," \
     "load average before the copies $LOAD)"
echo "shop scale $SCALE: 14 tables, $SRC_TOTAL rows, $DATA_MB MB of table data (heap and TOAST)," \
     "into five empty service databases; setup $setup_s s"
echo "cleave copy_workers $WORKERS; pgcopydb clone --table-jobs $WORKERS --index-jobs $WORKERS, one service after another"
printf '%-9s %8s %9s %9s %7s %9s %7s %8s  %s\n' tool seconds rows rows/s MB/s "peak RSS" "CPU s" server "target == source"
printf '%-9s %8s %9s %9s %7s %9s %7s %8s\n' "" "" "" "" "" MB "" "CPU s"
row() {
  local r=$1
  if [ -n "${FAILED[$r]:-}" ] || [ -z "${SEC[$r]:-}" ]; then
    printf '%-9s FAILED: %s\n' "$r" "${FAILED[$r]:-no result}"; return
  fi
  printf '%-9s %8s %9s %9s %7s %9s %7s %8s  %s\n' "$r" "${SEC[$r]}" "${ROWS[$r]}" \
    "$(calc "%.0f" "${ROWS[$r]} / ${SEC[$r]}")" "$(calc "%.1f" "$DATA_MB / ${SEC[$r]}")" \
    "${RSS[$r]}" "${CPU[$r]}" "${SCPU[$r]}" "${EQ[$r]}"
}
row pgcopydb
row cleave
for r in pgcopydb cleave; do
  [ -z "${PER[$r]:-}" ] || echo "  $r seconds per service: ${PER[$r]}"
done
echo "  (pgcopydb's peak RSS is its largest single process; server CPU is source and target together)"
[ -z "${NOTE[cleave]:-}" ] || echo "  cleave: ${NOTE[cleave]}"
echo
verdict() { if [ "$(calc "%d" "$1")" = 1 ]; then echo PASS; else echo FAIL; fi; }
have() { [ -n "${SEC[$1]:-}" ] && [ -z "${FAILED[$1]:-}" ]; }
if have cleave && have pgcopydb; then
  ratio=$(calc "%.2f" "${SEC[cleave]} / ${SEC[pgcopydb]}")
  echo "ratio cleave/pgcopydb time: $ratio (target <= 1.00): $(verdict "$ratio <= 1")"
else
  echo "ratio cleave/pgcopydb time: none, a side failed (target <= 1.00): FAIL"
fi
if have cleave; then
  echo "cleave peak RSS: $(calc "%.0f" "${RSS[cleave]}") MB (target < 64): $(verdict "${RSS[cleave]} < 64")"
else
  echo "cleave peak RSS: none, cleave failed (target < 64): FAIL"
fi
[ -z "$CLEAVE_NOTE" ] || echo "note: $CLEAVE_NOTE"
ok=1
for r in pgcopydb cleave; do
  if ! have "$r" || [ "${EQ[$r]}" != yes ]; then ok=0; fi
done
[ "$ok" = 1 ]
