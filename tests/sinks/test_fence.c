/*
 * pgfence and pgseq against a real server: one throwaway cluster, a fresh
 * database per test, the fence tried with ordinary and replica sessions,
 * the cut-over's lock against sessions that hold or want the tables, and
 * sequences compared across two databases.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "sinks/pgfence.h"
#include "sinks/pgseq.h"
#include "tests/support/pgcluster.h"

static pgc_cluster *cluster;

#define ORDERS_SQL \
    "CREATE TABLE orders (id int PRIMARY KEY, note text);" \
    "INSERT INTO orders VALUES (1, 'a'), (2, 'b');"
#define REFUSED_ORDERS \
    "table public.orders is fenced: its writes go to database " \
    "\"order_service_db\""

static const cfg_table ORDERS[] = {{.schema = "public", .name = "orders"}};

/* ------------------------------------------------------------ helpers */

/* A fresh database holding `sql`, and a connection to it. */
static PGconn *fresh_db(const char *db, const char *sql)
{
    ck_assert(pgc_createdb(cluster, db));
    ck_assert(pgc_exec(cluster, db, sql));
    PGconn *c = pgc_connect(cluster, db);
    ck_assert_ptr_nonnull(c);
    return c;
}

static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *res = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(res);
    ck_assert_msg(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s",
                  sql, PQerrorMessage(c));
    PQclear(res);
}

/* The first value of the first row; caller frees. */
static char *value(PGconn *c, const char *sql)
{
    PGresult *res = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK &&
                  PQntuples(res) > 0, "%s: %s", sql, PQerrorMessage(c));
    char *v = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

static void expect_value(PGconn *c, const char *sql, const char *want)
{
    char *got = value(c, sql);
    ck_assert_msg(strcmp(got, want) == 0, "%s: got '%s', want '%s'", sql, got,
                  want);
    free(got);
}

/* sql fails with 25006 and, unless NULL, exactly that message. */
static void expect_refused(PGconn *c, const char *sql, const char *message)
{
    PGresult *res = PQexec(c, sql);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
    ck_assert_msg(state && strcmp(state, "25006") == 0, "%s: %s (%s)", sql,
                  PQerrorMessage(c), state ? state : "no SQLSTATE");
    ck_assert_msg(!message || strcmp(msg, message) == 0,
                  "%s: message '%s', want '%s'", sql, msg, message);
    ck_assert_msg(hint && strstr(hint, "cleave rollback"), "hint: %s",
                  hint ? hint : "none");
    PQclear(res);
}

static void set_ok(PGconn *c, const cfg_table *t, size_t n, const char *owner)
{
    char err[512];
    ck_assert_msg(pgfence_set(c, t, n, owner, err, sizeof err), "set: %s",
                  err);
}

static void clear_ok(PGconn *c, const cfg_table *t, size_t n)
{
    char err[512];
    ck_assert_msg(pgfence_clear(c, t, n, err, sizeof err), "clear: %s", err);
}

static void expect_state(PGconn *c, const cfg_table *t, size_t n, int want)
{
    char err[512] = "";
    int got = pgfence_state(c, t, n, err, sizeof err);
    ck_assert_msg(got == want, "state %d, want %d (%s)", got, want, err);
}

/* Counts the NOTICEs a connection receives (the daemon logs none). */
static void count_notice(void *arg, const PGresult *res)
{
    (void)res;
    ++*(int *)arg;
}

/* ------------------------------------------------------------ fence */

START_TEST(refuses_writes_reads_go_on)
{
    PGconn *c = fresh_db("refuses", ORDERS_SQL);
    expect_state(c, ORDERS, 1, PGFENCE_NONE);
    set_ok(c, ORDERS, 1, "order_service_db");
    expect_state(c, ORDERS, 1, PGFENCE_ALL);
    expect_refused(c, "INSERT INTO orders VALUES (3, 'c')", REFUSED_ORDERS);
    expect_refused(c, "UPDATE orders SET note = 'x'", REFUSED_ORDERS);
    /* Statement-level: even a statement touching no row is refused. */
    expect_refused(c, "UPDATE orders SET note = 'x' WHERE false", NULL);
    expect_refused(c, "DELETE FROM orders WHERE id = 1", REFUSED_ORDERS);
    expect_refused(c, "TRUNCATE orders", REFUSED_ORDERS);
    expect_refused(c, "INSERT INTO orders VALUES (1, 'a') ON CONFLICT (id)"
                   " DO UPDATE SET note = 'z'", REFUSED_ORDERS);
    expect_value(c, "SELECT string_agg(note, ',' ORDER BY id) FROM orders",
                 "a,b");
    exec_ok(c, "BEGIN; SELECT * FROM orders FOR UPDATE; COMMIT");
    PQfinish(c);
}
END_TEST

/*
 * An application's role needs no right on schema cleave or its function:
 * the trigger calls it by oid, and the refusal is still 25006.
 */
START_TEST(refuses_an_ordinary_role)
{
    PGconn *c = fresh_db("approle", ORDERS_SQL
        "CREATE ROLE app LOGIN; GRANT ALL ON orders TO app;");
    set_ok(c, ORDERS, 1, "order_service_db");
    exec_ok(c, "REVOKE ALL ON FUNCTION cleave.fence() FROM PUBLIC");
    exec_ok(c, "SET ROLE app");
    expect_refused(c, "INSERT INTO orders VALUES (3, 'c')", REFUSED_ORDERS);
    expect_refused(c, "TRUNCATE orders", REFUSED_ORDERS);
    expect_value(c, "SELECT count(*) FROM orders", "2");
    exec_ok(c, "RESET ROLE");
    PQfinish(c);
}
END_TEST

/* cleave's own apply (session_replication_role = replica) writes through. */
START_TEST(replica_role_writes_through)
{
    PGconn *c = fresh_db("replica", ORDERS_SQL);
    set_ok(c, ORDERS, 1, "order_service_db");
    exec_ok(c, "SET session_replication_role = replica");
    exec_ok(c, "INSERT INTO orders VALUES (3, 'c')");
    exec_ok(c, "UPDATE orders SET note = 'x' WHERE id = 3");
    exec_ok(c, "DELETE FROM orders WHERE id = 1");
    expect_value(c, "SELECT string_agg(note, ',' ORDER BY id) FROM orders",
                 "b,x");
    exec_ok(c, "TRUNCATE orders");
    expect_value(c, "SELECT count(*) FROM orders", "0");
    exec_ok(c, "SET session_replication_role = origin");
    expect_refused(c, "INSERT INTO orders VALUES (4, 'd')", REFUSED_ORDERS);
    PQfinish(c);
}
END_TEST

/* Set and clear join the caller's transaction and end with it. */
START_TEST(set_and_clear_inside_a_transaction)
{
    PGconn *c = fresh_db("intxn", ORDERS_SQL);
    PGconn *other = pgc_connect(cluster, "intxn");
    char err[512];
    exec_ok(c, "BEGIN");
    ck_assert_msg(pgfence_lock(c, ORDERS, 1, 5000, err, sizeof err), "%s",
                  err);
    set_ok(c, ORDERS, 1, "order_service_db");
    ck_assert_int_eq(PQtransactionStatus(c), PQTRANS_INTRANS);
    expect_state(c, ORDERS, 1, PGFENCE_ALL);
    expect_state(other, ORDERS, 1, PGFENCE_NONE);
    exec_ok(c, "ROLLBACK");
    expect_state(other, ORDERS, 1, PGFENCE_NONE);
    exec_ok(c, "BEGIN");
    set_ok(c, ORDERS, 1, "order_service_db");
    exec_ok(c, "COMMIT");
    expect_state(other, ORDERS, 1, PGFENCE_ALL);
    exec_ok(c, "BEGIN");
    clear_ok(c, ORDERS, 1);
    ck_assert_int_eq(PQtransactionStatus(c), PQTRANS_INTRANS);
    exec_ok(c, "ROLLBACK");
    expect_state(other, ORDERS, 1, PGFENCE_ALL);
    clear_ok(c, ORDERS, 1);
    clear_ok(c, ORDERS, 1);          /* nothing left to drop: still fine */
    expect_state(other, ORDERS, 1, PGFENCE_NONE);
    exec_ok(other, "INSERT INTO orders VALUES (3, 'c')");
    PQfinish(other);
    PQfinish(c);
}
END_TEST

START_TEST(owner_changes)
{
    PGconn *c = fresh_db("owner", ORDERS_SQL);
    int notices = 0;
    PQsetNoticeReceiver(c, count_notice, &notices);
    set_ok(c, ORDERS, 1, "shop");
    expect_refused(c, "DELETE FROM orders", "table public.orders is fenced: "
                   "its writes go to database \"shop\"");
    set_ok(c, ORDERS, 1, "order_service_db");
    expect_refused(c, "DELETE FROM orders", REFUSED_ORDERS);
    expect_value(c, "SELECT count(*) FROM pg_trigger WHERE tgname = "
                 "'" PGFENCE_TRIGGER "'", "1");
    clear_ok(c, ORDERS, 1);
    clear_ok(c, ORDERS, 1);
    ck_assert_int_eq(notices, 0);
    PQfinish(c);
}
END_TEST

#define EVENTS_SQL \
    "CREATE TABLE ev (id int, region text, at date)" \
    " PARTITION BY LIST (region);" \
    "CREATE TABLE ev_eu PARTITION OF ev FOR VALUES IN ('eu')" \
    " PARTITION BY RANGE (at);" \
    "CREATE TABLE ev_eu_2026 PARTITION OF ev_eu" \
    " FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');" \
    "CREATE TABLE ev_us PARTITION OF ev FOR VALUES IN ('us');"

/* The root and every partition, since a write may name any of them. */
START_TEST(partitions_fenced_at_every_level)
{
    static const cfg_table EV[] = {{.schema = "public", .name = "ev"}};
    PGconn *c = fresh_db("parts", EVENTS_SQL);
    set_ok(c, EV, 1, "events_db");
    expect_value(c, "SELECT count(*) FROM pg_trigger WHERE tgname = "
                 "'" PGFENCE_TRIGGER "'", "4");
    expect_state(c, EV, 1, PGFENCE_ALL);
    expect_refused(c, "INSERT INTO ev VALUES (1, 'us', '2026-05-01')",
                   "table public.ev is fenced: its writes go to database "
                   "\"events_db\"");
    expect_refused(c, "INSERT INTO ev_us VALUES (1, 'us', '2026-05-01')",
                   "table public.ev_us is fenced: its writes go to database "
                   "\"events_db\"");
    expect_refused(c, "INSERT INTO ev_eu_2026 VALUES (1, 'eu', '2026-05-01')",
                   NULL);
    expect_refused(c, "TRUNCATE ev_eu", NULL);
    exec_ok(c, "DROP TRIGGER " PGFENCE_TRIGGER " ON ev_us");
    expect_state(c, EV, 1, PGFENCE_SOME);
    clear_ok(c, EV, 1);
    expect_state(c, EV, 1, PGFENCE_NONE);
    exec_ok(c, "INSERT INTO ev_eu_2026 VALUES (1, 'eu', '2026-05-01')");
    PQfinish(c);
}
END_TEST

#define ODD_SQL \
    "CREATE SCHEMA \"Odd \"\"Schema\"\"\";" \
    "CREATE TABLE \"Odd \"\"Schema\"\"\".\"Weird \"\"Name\"\"\"" \
    " (id serial PRIMARY KEY);"
#define ODD_TABLE "\"Odd \"\"Schema\"\"\".\"Weird \"\"Name\"\"\""
#define ODD_OWNER "db \"x\"'; --\\"

START_TEST(hostile_names)
{
    static const cfg_table ODD[] = {{.schema = "Odd \"Schema\"",
                                     .name = "Weird \"Name\""}};
    PGconn *c = fresh_db("hostile", ODD_SQL);
    char err[512];
    set_ok(c, ODD, 1, ODD_OWNER);
    expect_state(c, ODD, 1, PGFENCE_ALL);
    expect_refused(c, "INSERT INTO " ODD_TABLE " DEFAULT VALUES",
                   "table " ODD_TABLE " is fenced: its writes go to database"
                   " \"" ODD_OWNER "\"");
    exec_ok(c, "BEGIN");
    ck_assert_msg(pgfence_lock(c, ODD, 1, 5000, err, sizeof err), "%s", err);
    exec_ok(c, "ROLLBACK");
    ck_assert(pgfence_lock_holders(c, ODD, 1, err, sizeof err));
    ck_assert_str_eq(err, "");
    clear_ok(c, ODD, 1);
    expect_state(c, ODD, 1, PGFENCE_NONE);
    exec_ok(c, "INSERT INTO " ODD_TABLE " DEFAULT VALUES");
    PQfinish(c);
}
END_TEST

/* A missing table is never fenced: it would take writes once created. */
START_TEST(state_counts_missing_as_unfenced)
{
    static const cfg_table TWO[] = {{.schema = "public", .name = "orders"},
                                    {.schema = "public", .name = "items"}};
    static const cfg_table MIXED[] = {{.schema = "public", .name = "orders"},
                                      {.schema = "public", .name = "gone"}};
    PGconn *c = fresh_db("state", ORDERS_SQL "CREATE TABLE items (id int);");
    char err[512];
    set_ok(c, ORDERS, 1, "order_service_db");
    expect_state(c, TWO, 2, PGFENCE_SOME);
    expect_state(c, MIXED, 2, PGFENCE_SOME);
    expect_state(c, MIXED + 1, 1, PGFENCE_NONE);
    expect_state(c, TWO, 0, PGFENCE_NONE);
    set_ok(c, TWO, 2, "order_service_db");
    expect_state(c, TWO, 2, PGFENCE_ALL);
    ck_assert(!pgfence_set(c, MIXED, 2, "x", err, sizeof err));
    ck_assert_msg(strstr(err, "gone"), "%s", err);
    clear_ok(c, MIXED, 2);           /* the missing one is skipped */
    expect_state(c, TWO, 2, PGFENCE_SOME);
    PQfinish(c);
}
END_TEST

/* ------------------------------------------------------------ lock */

static int backend_pid(PGconn *c)
{
    return PQbackendPID(c);
}

/* Waits until session pid waits on a lock (pg_stat_activity says so). */
static void wait_lock_wait(const char *db, int pid)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT wait_event_type = 'Lock' FROM "
             "pg_stat_activity WHERE pid = %d", pid);
    ck_assert_msg(pgc_wait_until(cluster, db, sql, 30), "pid %d never "
                  "waited on a lock", pid);
}

/* A long query text, to see it cut in the holders' description. */
#define HELD_UPDATE \
    "UPDATE orders SET note = 'held'   WHERE id = 1 /* a comment long" \
    " enough to push the text of this statement past the hundred and" \
    " twenty characters kept */"

START_TEST(lock_timeout_names_holders)
{
    PGconn *c = fresh_db("holders", ORDERS_SQL);
    PGconn *holder = pgc_connect(cluster, "holders");
    char err[1024], want[256];
    exec_ok(holder, "BEGIN");
    exec_ok(holder, HELD_UPDATE);
    ck_assert(!pgfence_lock(c, ORDERS, 1, 200, err, sizeof err));
    ck_assert_msg(strstr(err, "not inside a transaction"), "%s", err);
    exec_ok(c, "BEGIN");
    int64_t t0 = clock_ms();
    ck_assert(!pgfence_lock(c, ORDERS, 1, 200, err, sizeof err));
    ck_assert_int_lt(clock_ms() - t0, 5000);
    ck_assert_msg(strncmp(err, "lock not obtained", 17) == 0, "%s", err);
    ck_assert_int_eq(PQtransactionStatus(c), PQTRANS_INERROR);
    exec_ok(c, "ROLLBACK");
    /* A lock of our own that conflicts is not reported: we are not waiting. */
    exec_ok(c, "BEGIN; LOCK TABLE orders IN ROW EXCLUSIVE MODE");
    ck_assert_msg(pgfence_lock_holders(c, ORDERS, 1, err, sizeof err), "%s",
                  err);
    snprintf(want, sizeof want, "pid=%d state=idle in transaction "
             "xact_start=2", backend_pid(holder));
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);
    ck_assert_msg(!strstr(err, "; "), "only one holder: %s", err);
    /* Squeezed white space, cut to 120 characters ending in "...". */
    const char *q = strstr(err, "query=\"");
    ck_assert_msg(q && strncmp(q + 7, "UPDATE orders SET note = 'held' "
                  "WHERE id = 1 /* a comment", 40) == 0, "%s", err);
    ck_assert_uint_eq(strlen(q + 7), 121);      /* 120 and the quote */
    ck_assert_str_eq(q + 7 + 117, "...\"");
    exec_ok(c, "ROLLBACK");
    exec_ok(holder, "COMMIT");
    ck_assert(pgfence_lock_holders(c, ORDERS, 1, err, sizeof err));
    ck_assert_str_eq(err, "");
    PQfinish(holder);
    PQfinish(c);
}
END_TEST

#define PARENT_CHILD_SQL \
    "CREATE TABLE parent (id int PRIMARY KEY);" \
    "INSERT INTO parent VALUES (1);" \
    "CREATE TABLE child (id int, parent_id int REFERENCES parent);"

/*
 * SHARE ROW EXCLUSIVE stops writes to the locked table but not the
 * foreign key checks (FOR KEY SHARE) of inserts elsewhere pointing at it.
 */
START_TEST(lock_lets_foreign_keys_through)
{
    static const cfg_table PARENT[] = {{.schema = "public", .name = "parent"}};
    PGconn *c = fresh_db("fklock", PARENT_CHILD_SQL);
    PGconn *other = pgc_connect(cluster, "fklock");
    PGconn *writer = pgc_connect(cluster, "fklock");
    char err[512];
    exec_ok(c, "BEGIN");
    ck_assert_msg(pgfence_lock(c, PARENT, 1, 5000, err, sizeof err), "%s",
                  err);
    /* A wait would fail after 10 s rather than hang the test. */
    exec_ok(other, "SET statement_timeout = '10s'");
    exec_ok(other, "INSERT INTO child VALUES (1, 1)");
    expect_value(other, "SELECT count(*) FROM parent", "1");
    ck_assert(PQsendQuery(writer, "INSERT INTO parent VALUES (2)"));
    wait_lock_wait("fklock", backend_pid(writer));
    exec_ok(c, "COMMIT");
    PGresult *res = PQgetResult(writer);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s",
                  PQerrorMessage(writer));
    PQclear(res);
    ck_assert_ptr_null(PQgetResult(writer));
    expect_value(other, "SELECT count(*) FROM parent", "2");
    PQfinish(writer);
    PQfinish(other);
    PQfinish(c);
}
END_TEST

/* Sends a transaction holding `table` for `secs`, then committing. */
static PGconn *hold_for(const char *db, const char *table, const char *secs)
{
    PGconn *h = pgc_connect(cluster, db);
    char sql[256];
    ck_assert_ptr_nonnull(h);
    snprintf(sql, sizeof sql, "BEGIN; LOCK TABLE %s IN ROW EXCLUSIVE MODE;"
             " SELECT pg_sleep(%s); COMMIT", table, secs);
    ck_assert(PQsendQuery(h, sql));
    return h;
}

static void drain(PGconn *h)
{
    PGresult *res;
    while ((res = PQgetResult(h)) != NULL) {
        ExecStatusType st = PQresultStatus(res);
        ck_assert_msg(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s",
                      PQerrorMessage(h));
        PQclear(res);
    }
    PQfinish(h);
}

/*
 * lock_timeout bounds each table's wait alone: a holds for 1.5 s, b for
 * 3 s, so each wait is under 2 s, yet the lock is not there before 3 s.
 * The budget is for the whole statement.
 */
START_TEST(lock_budget_covers_all_tables)
{
    static const cfg_table AB[] = {{.schema = "public", .name = "a"},
                                   {.schema = "public", .name = "b"}};
    PGconn *c = fresh_db("budget", "CREATE TABLE a (id int);"
                         "CREATE TABLE b (id int);");
    PGconn *ha = hold_for("budget", "a", "1.5");
    PGconn *hb = hold_for("budget", "b", "3.0");
    ck_assert(pgc_wait_until(cluster, "budget", "SELECT count(*) = 2 FROM "
              "pg_locks WHERE relation IN ('a'::regclass, 'b'::regclass)"
              " AND mode = 'RowExclusiveLock' AND granted", 30));
    char err[512];
    exec_ok(c, "BEGIN");
    int64_t t0 = clock_ms();
    bool locked = pgfence_lock(c, AB, 2, 2000, err, sizeof err);
    int64_t took = clock_ms() - t0;
    ck_assert_msg(!locked, "locked after %lld ms", (long long)took);
    ck_assert_msg(strncmp(err, "lock not obtained", 17) == 0, "%s", err);
    ck_assert_int_lt(took, 2600);
    exec_ok(c, "ROLLBACK");
    drain(ha);
    drain(hb);
    PQfinish(c);
}
END_TEST

/* ------------------------------------------------------------ sequences */

#define SEQ_SCHEMA_SQL \
    "CREATE SEQUENCE shared_seq;" \
    "CREATE TABLE orders (id serial PRIMARY KEY," \
    " ref bigint DEFAULT nextval('shared_seq'));" \
    "CREATE TABLE items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY," \
    " ref bigint DEFAULT nextval('shared_seq'));" \
    "CREATE SCHEMA \"Odd \"\"Schema\"\"\";" \
    "CREATE SEQUENCE \"Odd \"\"Schema\"\"\".\"Weird \"\"Seq\"\"\";" \
    "CREATE TABLE \"Odd \"\"Schema\"\"\".\"Weird \"\"Name\"\"\" (id int" \
    " DEFAULT nextval('\"Odd \"\"Schema\"\"\".\"Weird \"\"Seq\"\"\"'));" \
    "CREATE SEQUENCE unused_seq;" \
    "CREATE TABLE other (id serial);" \
    "CREATE SEQUENCE never_seq;" \
    "CREATE SEQUENCE down_seq INCREMENT -1;" \
    "CREATE SEQUENCE high_seq START 1000;"
#define ODD_SEQ "\"Odd \"\"Schema\"\"\".\"Weird \"\"Seq\"\"\""

static const cfg_table SEQ_TABLES[] = {
    {.schema = "public", .name = "orders"},
    {.schema = "public", .name = "items"},
    {.schema = "Odd \"Schema\"", .name = "Weird \"Name\""},
    {.schema = "public", .name = "items"},     /* twice: listed once */
};

START_TEST(seq_of_tables)
{
    static const char *const want[] = {
        ODD_SEQ, "\"public\".\"items_id_seq\"",
        "\"public\".\"orders_id_seq\"", "\"public\".\"shared_seq\""};
    static const cfg_table GONE[] = {{.schema = "public", .name = "gone"}};
    PGconn *c = fresh_db("seqof", SEQ_SCHEMA_SQL);
    char **names, err[512];
    size_t n;
    ck_assert_msg(pgseq_of_tables(c, SEQ_TABLES, 4, &names, &n, err,
                                  sizeof err), "%s", err);
    ck_assert_uint_eq(n, 4);
    for (size_t i = 0; i < n; i++)
        ck_assert_str_eq(names[i], want[i]);
    pgseq_free_names(names, n);
    ck_assert(!pgseq_of_tables(c, GONE, 1, &names, &n, err, sizeof err));
    ck_assert_msg(strstr(err, "gone"), "%s", err);
    ck_assert_ptr_null(names);
    PQfinish(c);
}
END_TEST

static char *SYNC_NAMES[] = {
    "\"public\".\"orders_id_seq\"", "\"public\".\"items_id_seq\"",
    "\"public\".\"shared_seq\"", ODD_SEQ, "\"public\".\"never_seq\"",
    "\"public\".\"down_seq\"", "\"public\".\"high_seq\"",
};
#define N_SYNC (sizeof SYNC_NAMES / sizeof *SYNC_NAMES)

/* A sequence's last_value and is_called, "100 t". */
static void expect_seq(PGconn *c, const char *seq, const char *want)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT last_value || ' ' || is_called::text "
             "FROM %s", seq);
    char *got = value(c, sql);
    ck_assert_msg(strcmp(got, want) == 0, "%s: got '%s', want '%s'", seq,
                  got, want);
    free(got);
}

static void sync_ok(PGconn *from, PGconn *to, int want_raised)
{
    char err[512];
    int raised = -1;
    ck_assert_msg(pgseq_sync(from, to, SYNC_NAMES, N_SYNC, &raised, err,
                             sizeof err), "%s", err);
    ck_assert_int_eq(raised, want_raised);
}

START_TEST(seq_sync_raises_what_is_behind)
{
    PGconn *from = fresh_db("seqfrom", SEQ_SCHEMA_SQL
        "SELECT setval('orders_id_seq', 100), setval('items_id_seq', 50),"
        " setval('shared_seq', 7), setval('" ODD_SEQ "', 3),"
        " setval('down_seq', -20), setval('high_seq', 5);");
    PGconn *to = fresh_db("seqto", SEQ_SCHEMA_SQL
        "SELECT setval('orders_id_seq', 10), setval('items_id_seq', 500),"
        " setval('" ODD_SEQ "', 3), setval('never_seq', 5);");
    sync_ok(from, to, 3);            /* orders, shared and down */
    expect_seq(to, "orders_id_seq", "100 true");
    expect_seq(to, "items_id_seq", "500 true");      /* ahead stays */
    expect_seq(to, "shared_seq", "7 true");          /* never called */
    expect_seq(to, ODD_SEQ, "3 true");
    expect_seq(to, "never_seq", "5 true");           /* from never called */
    expect_seq(to, "down_seq", "-20 true");
    expect_seq(to, "high_seq", "1000 false");        /* start is ahead */
    expect_value(to, "INSERT INTO orders DEFAULT VALUES RETURNING id", "101");
    sync_ok(from, to, 0);
    /* Inside transactions on both sides, as the cut-over runs it. */
    exec_ok(from, "BEGIN; SELECT setval('orders_id_seq', 200)");
    exec_ok(to, "BEGIN");
    sync_ok(from, to, 1);
    ck_assert_int_eq(PQtransactionStatus(to), PQTRANS_INTRANS);
    exec_ok(to, "COMMIT");
    exec_ok(from, "COMMIT");
    expect_seq(to, "orders_id_seq", "200 true");
    PQfinish(to);
    PQfinish(from);
}
END_TEST

START_TEST(seq_sync_missing_is_named)
{
    PGconn *from = fresh_db("seqmfrom", SEQ_SCHEMA_SQL
        "CREATE SEQUENCE gone_seq; SELECT setval('orders_id_seq', 100);");
    PGconn *to = fresh_db("seqmto", SEQ_SCHEMA_SQL);
    char *names[] = {"\"public\".\"orders_id_seq\"", "\"public\".\"gone_seq\""};
    char err[512];
    int raised = -1;
    ck_assert(!pgseq_sync(from, to, names, 2, &raised, err, sizeof err));
    ck_assert_str_eq(err, "no sequence \"public\".\"gone_seq\" in database "
                     "\"seqmto\"");
    expect_seq(to, "orders_id_seq", "1 false");      /* nothing moved */
    ck_assert(!pgseq_sync(to, from, names, 2, &raised, err, sizeof err));
    ck_assert_str_eq(err, "no sequence \"public\".\"gone_seq\" in database "
                     "\"seqmto\"");
    /* A table of that name is no sequence either. */
    exec_ok(to, "CREATE TABLE gone_seq (id int)");
    ck_assert(!pgseq_sync(from, to, names, 2, &raised, err, sizeof err));
    ck_assert_str_eq(err, "no sequence \"public\".\"gone_seq\" in database "
                     "\"seqmto\"");
    PQfinish(to);
    PQfinish(from);
}
END_TEST

int main(void)
{
    cluster = pgc_start(NULL);
    if (!cluster)
        return EXIT_FAILURE;
    Suite *s = suite_create("fence");
    TCase *fence = tcase_create("fence");
    tcase_set_timeout(fence, 60);
    tcase_add_test(fence, refuses_writes_reads_go_on);
    tcase_add_test(fence, refuses_an_ordinary_role);
    tcase_add_test(fence, replica_role_writes_through);
    tcase_add_test(fence, set_and_clear_inside_a_transaction);
    tcase_add_test(fence, owner_changes);
    tcase_add_test(fence, partitions_fenced_at_every_level);
    tcase_add_test(fence, hostile_names);
    tcase_add_test(fence, state_counts_missing_as_unfenced);
    tcase_add_test(fence, lock_timeout_names_holders);
    tcase_add_test(fence, lock_lets_foreign_keys_through);
    tcase_add_test(fence, lock_budget_covers_all_tables);
    suite_add_tcase(s, fence);
    TCase *seq = tcase_create("sequences");
    tcase_set_timeout(seq, 60);
    tcase_add_test(seq, seq_of_tables);
    tcase_add_test(seq, seq_sync_raises_what_is_behind);
    tcase_add_test(seq, seq_sync_missing_is_named);
    suite_add_tcase(s, seq);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    pgc_stop(cluster);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
