/*
 * `cleave run` end to end: the real binary streams the shop database into
 * five service databases on another cluster (PRODUCT.md §3). Each test
 * ends with every table of every service equal, row for row, to its
 * source table: nothing missing, nothing twice.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/support/runcmd.h"
#include "tests/support/shopenv.h"

static pgc_cluster *src, *tgt;

static const char *const mix[] = {
    "new_order.sql@4", "user_update.sql@3", "inventory.sql@3",
    "notification.sql@2", "refund.sql@1", NULL,
};

#define CAUGHT_UP_S 180

static void load_data(shop_env *env)
{
    char path[600];
    snprintf(path, sizeof path, "%s/shop/data.sql", pgc_fixtures_dir());
    const char *vars[] = {"scale=1", NULL};
    ck_assert(pgc_psql_file(env->src, env->srcdb, path, vars));
}

static void start_streaming(shop_env *env, const char *name, const char *extra)
{
    ck_assert_msg(shop_setup(env, src, tgt, name, NULL, extra), "setup %s", name);
    ck_assert(shop_start(env));
    if (!shop_wait_streaming(env, 60)) {
        shop_log_tail(env, 40);
        ck_abort_msg("%s: cleave never started streaming", name);
    }
}

static void exec_src(shop_env *env, const char *sql)
{
    ck_assert_msg(pgc_exec(env->src, env->srcdb, sql), "%s", sql);
}

/* Every DML kind, on every table, through the catch-up of a data load. */
/*
 * Every thread of the daemon under SCHED_BATCH: their wake-ups (one per
 * walsender message, one per transaction) must not preempt the source's
 * walsender on a host they share (see run.c). The threads started so far
 * (reader, workers, status) and none found otherwise.
 */
static void assert_batch_threads(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/task", (long)pid);
    DIR *d = opendir(path);
    ck_assert_msg(d, "%s: %s", path, strerror(errno));
    int threads = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        int policy = sched_getscheduler((pid_t)atol(e->d_name));
        ck_assert_msg(policy == SCHED_BATCH || (policy < 0 && errno == ESRCH),
                      "thread %s of cleave runs policy %d, not SCHED_BATCH",
                      e->d_name, policy);
        threads += policy == SCHED_BATCH;
    }
    closedir(d);
    ck_assert_msg(threads >= 3, "only %d threads under SCHED_BATCH", threads);
}

/*
 * Over TCP on a loopback address, as a source on the database host is
 * often reached: the replication socket gets its small receive window,
 * and a catch-up its longer pause (source.c, pipeline.c). libpq takes
 * the address from the environment for every connection of cleave's.
 */
START_TEST(every_change_kind)
{
    shop_env env;
    ck_assert(setenv("PGHOSTADDR", "127.0.0.1", 1) == 0);
    start_streaming(&env, "kinds", NULL);
    ck_assert_msg(shop_log_count(&env, "receive_buffer=64kB", 0) > 0,
                  "the loopback source did not get the small window");
    assert_batch_threads(env.pid);
    load_data(&env);
    int bench = pgc_pgbench_start(src, env.srcdb, 4, 300, 1, mix);
    ck_assert(pgc_pgbench_wait(bench));
    /* Key changes: a single-column key and a composite one. */
    exec_src(&env, "DELETE FROM user_preferences WHERE user_id = 2;"
                   "UPDATE user_preferences SET user_id = 2 WHERE user_id = 1;"
                   "UPDATE order_items SET line_no = line_no + 100 WHERE order_id = 7");
    /* Unchanged TOAST: user 50 has a 9,600-character bio out of line. */
    exec_src(&env, "UPDATE users SET login_count = login_count + 1 WHERE id = 50");
    /* No primary key: REPLICA IDENTITY FULL, duplicates and NULLs. */
    exec_src(&env, "INSERT INTO user_sessions SELECT * FROM user_sessions WHERE user_id = 3;"
                   "UPDATE user_sessions SET last_seen_at = '2026-01-01' WHERE ctid = "
                   "(SELECT ctid FROM user_sessions WHERE user_id = 3 LIMIT 1);"
                   "DELETE FROM user_sessions WHERE ctid = (SELECT ctid FROM "
                   "user_sessions WHERE user_id = 4 LIMIT 1)");
    /* A savepoint rolled back inside a committed transaction. */
    exec_src(&env, "BEGIN; INSERT INTO warehouses (code, name, country_code) "
                   "VALUES ('KEEP', 'kept', 'DE'); SAVEPOINT s; "
                   "INSERT INTO warehouses (code, name, country_code) VALUES "
                   "('GONE', 'rolled back', 'DE'); ROLLBACK TO s; COMMIT");
    /* Two-phase: committed, and rolled back. */
    /* COMMIT/ROLLBACK PREPARED cannot share a multi-statement string. */
    exec_src(&env, "BEGIN; UPDATE products SET price = price + 1 WHERE id = 1;"
                   "PREPARE TRANSACTION 'p1'");
    exec_src(&env, "COMMIT PREPARED 'p1'");
    exec_src(&env, "BEGIN; UPDATE products SET price = 0 WHERE id = 2;"
                   "PREPARE TRANSACTION 'p2'");
    exec_src(&env, "ROLLBACK PREPARED 'p2'");
    /* TRUNCATE, then life after it. */
    exec_src(&env, "TRUNCATE notifications");
    exec_src(&env, "INSERT INTO notifications (user_id, channel, payload) "
                   "VALUES (1, 'sms', '{\"after\": \"truncate\"}')");
    shop_assert_caught_up_and_equal(&env, CAUGHT_UP_S);
    ck_assert_int_eq(shop_stop(&env, SIGTERM, 60), 0);
    shop_teardown(&env);
    unsetenv("PGHOSTADDR");
}
END_TEST

/* ---- helpers for the failure and edge-case runs ------------------------ */

/* Starts cleave on an environment already set up; waits for the stream. */
static void start_cleave(shop_env *env)
{
    ck_assert(shop_start(env));
    if (!shop_wait_streaming(env, 60)) {
        shop_log_tail(env, 40);
        ck_abort_msg("%s: cleave never started streaming", env->name);
    }
}

/* Behind cleave's back: past the fence, as cleave's own apply goes. */
static void exec_tgt(shop_env *env, int service, const char *sql)
{
    char *unfenced;
    ck_assert(asprintf(&unfenced, "SET session_replication_role = replica; "
                       "%s", sql) > 0);
    ck_assert_msg(pgc_exec(env->tgt, env->dbs[service], unfenced), "%s", sql);
    free(unfenced);
}

/* The walsender streaming the slot, or 0 when none does. */
static long walsender_pid(shop_env *env)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT coalesce(max(active_pid), 0) FROM pg_replication_slots "
             "WHERE slot_name = 'cleave_%s'", env->name);
    char *v = pgc_query_value(env->src, env->srcdb, sql);
    long pid = v ? atol(v) : 0;
    free(v);
    return pid;
}

/* Waits until a walsender other than `old` streams the slot. */
static void wait_streaming_again(shop_env *env, long old, double timeout_s)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) > 0 FROM pg_replication_slots WHERE slot_name = "
             "'cleave_%s' AND active AND active_pid <> %ld", env->name, old);
    if (!pgc_wait_until(env->src, env->srcdb, sql, timeout_s)) {
        shop_log_tail(env, 40);
        ck_abort_msg("%s: cleave did not stream again", env->name);
    }
}

/* The source's current WAL position, as text. Caller frees. */
static char *source_lsn(shop_env *env, const char *db)
{
    char *lsn = pgc_query_value(env->src, db, "SELECT pg_current_wal_lsn()");
    ck_assert(lsn != NULL);
    return lsn;
}

/* Waits until the slot has confirmed everything up to lsn. */
static bool wait_confirmed(shop_env *env, const char *lsn, double timeout_s)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT coalesce(confirmed_flush_lsn >= '%s', false) FROM "
             "pg_replication_slots WHERE slot_name = 'cleave_%s'", lsn, env->name);
    return pgc_wait_until(env->src, env->srcdb, sql, timeout_s);
}

/* Waits until cleave has applied some of what the source wrote by now. */
static void wait_progress(shop_env *env)
{
    char *lsn = source_lsn(env, env->srcdb);
    bool ok = wait_confirmed(env, lsn, CAUGHT_UP_S);
    free(lsn);
    if (!ok) {
        shop_log_tail(env, 40);
        ck_abort_msg("%s: the slot did not move", env->name);
    }
}

/* Waits until the order service's target holds more than n orders. */
static void wait_target_orders(shop_env *env, int n)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) > %d FROM orders", n);
    if (!pgc_wait_until(env->tgt, env->dbs[1], sql, CAUGHT_UP_S)) {
        shop_log_tail(env, 40);
        ck_abort_msg("%s: the target never had %d orders", env->name, n);
    }
}

/*
 * The line number (1-based) of the first log line at or after line `from`
 * containing both a and b (b may be NULL), or 0.
 */
static int log_find(const shop_env *env, int from, const char *a, const char *b)
{
    FILE *f = fopen(env->log, "r");
    if (!f)
        return 0;
    char line[8192];
    int n = 0, found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        n++;
        if (n >= from && strstr(line, a) && (!b || strstr(line, b)))
            found = n;
    }
    fclose(f);
    return found;
}

/* Polls the log for such a line until timeout_s passes; its number or 0. */
static int wait_log(const shop_env *env, int from, const char *a,
                    const char *b, double timeout_s)
{
    double deadline = shop_now_s() + timeout_s;
    for (;;) {
        int n = log_find(env, from, a, b);
        if (n > 0 || shop_now_s() > deadline)
            return n;
        struct timespec ts = {0, 50 * 1000 * 1000};  /* polling interval */
        nanosleep(&ts, NULL);
    }
}

/*
 * The experiment's random moment (not a synchronisation): somewhere
 * between lo and hi seconds from now.
 */
static void random_pause(double lo, double hi)
{
    double d = lo + (hi - lo) * ((double)rand() / RAND_MAX);
    struct timespec ts = {(time_t)d, (long)((d - (time_t)d) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static void seed_random(const char *test)
{
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    const char *env = getenv("CLEAVE_TEST_SEED");
    if (env && *env)
        seed = (unsigned)strtoul(env, NULL, 10);
    printf("%s: random seed %u (CLEAVE_TEST_SEED to repeat)\n", test, seed);
    fflush(stdout);
    srand(seed);
}

/* ---- crashes and outages ---------------------------------------------- */

/* SIGKILL at random moments under load: nothing lost, nothing twice. */
START_TEST(sigkill_five_times)
{
    shop_env env;
    seed_random("sigkill_five_times");
    start_streaming(&env, "sigkill", NULL);
    load_data(&env);
    /* About 8 s of pgbench here: long enough for the five kills to fall in it. */
    int bench = pgc_pgbench_start(src, env.srcdb, 4, 5000, 1, mix);
    ck_assert(bench > 0);
    for (int k = 0; k < 5; k++) {
        long old = walsender_pid(&env);
        random_pause(0.2, 1.5);
        bool busy = rc_running(bench);
        int rc = shop_stop(&env, SIGKILL, 10);
        ck_assert_int_eq(rc, 128 + SIGKILL);
        printf("sigkill_five_times: kill %d%s\n", k + 1,
               busy ? " while pgbench runs" : " after pgbench ended");
        ck_assert(shop_start(&env));
        wait_streaming_again(&env, old, 60);
    }
    ck_assert_msg(pgc_pgbench_wait(bench), "pgbench failed");
    shop_assert_caught_up_and_equal(&env, CAUGHT_UP_S);
    shop_stop_cleanly(&env);
}
END_TEST

/* The target cluster goes away and comes back while changes flow. */
START_TEST(target_restarted)
{
    shop_env env;
    start_streaming(&env, "tgtrestart", NULL);
    load_data(&env);
    wait_progress(&env);
    int bench = pgc_pgbench_start(src, env.srcdb, 4, 3000, 1, mix);
    ck_assert(bench > 0);
    /* Mid-way: the data's 30,000 orders and some of pgbench's applied. */
    wait_target_orders(&env, 30300);
    int before = log_find(&env, 1, "event=sink_failed", NULL);
    ck_assert_msg(before == 0, "a sink failed before the restart");
    ck_assert(pgc_restart(tgt));
    int failed = wait_log(&env, 1, "event=sink_failed", NULL, 60);
    int ready = failed ? wait_log(&env, failed + 1, "event=sink_ready", NULL, 120) : 0;
    if (!failed || !ready) {
        shop_log_tail(&env, 40);
        ck_abort_msg("log: sink_failed at line %d, sink_ready after it at %d",
                     failed, ready);
    }
    ck_assert_msg(pgc_pgbench_wait(bench), "pgbench failed");
    shop_assert_caught_up_and_equal(&env, CAUGHT_UP_S);
    shop_stop_cleanly(&env);
}
END_TEST

/* The source ends the replication connection under cleave, twice. */
START_TEST(walsender_terminated)
{
    shop_env env;
    start_streaming(&env, "walsnd", NULL);
    load_data(&env);
    wait_progress(&env);
    int bench = pgc_pgbench_start(src, env.srcdb, 4, 3000, 1, mix);
    ck_assert(bench > 0);
    for (int k = 0; k < 2; k++) {
        /* Mid-way, twice: after some of pgbench's orders were applied. */
        wait_target_orders(&env, 30300 + 1200 * k);
        long old = walsender_pid(&env);
        ck_assert_msg(old > 0, "no walsender to terminate");
        char sql[256];
        snprintf(sql, sizeof sql,
                 "SELECT pg_terminate_backend(active_pid) FROM "
                 "pg_replication_slots WHERE slot_name = 'cleave_%s'", env.name);
        char *v = pgc_query_value(src, env.srcdb, sql);
        ck_assert_msg(v && strcmp(v, "t") == 0, "terminate: %s", v ? v : "null");
        free(v);
        wait_streaming_again(&env, old, 60);
    }
    ck_assert_msg(pgc_pgbench_wait(bench), "pgbench failed");
    shop_assert_caught_up_and_equal(&env, CAUGHT_UP_S);
    shop_stop_cleanly(&env);
}
END_TEST

/* ---- size ----------------------------------------------------------------- */

/* cleave's peak resident set (VmHWM) in kB, or -1. */
static long peak_rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = atol(line + 6);
    if (f)
        fclose(f);
    return kb;
}

/* One source transaction of 1,000,000 row changes. */
START_TEST(million_row_transaction)
{
    shop_env env;
    start_streaming(&env, "bigtxn", NULL);
    load_data(&env);
    shop_assert_caught_up_and_equal(&env, CAUGHT_UP_S);
    double t0 = shop_now_s();
    const char *const scripts[] = {"bigtxn.sql", NULL};
    int bench = pgc_pgbench_start(src, env.srcdb, 1, 1, 1, scripts);
    ck_assert(bench > 0);
    ck_assert_msg(pgc_pgbench_wait(bench), "bigtxn.sql failed");
    double t1 = shop_now_s();
    if (!shop_wait_caught_up(&env, 480)) {
        shop_log_tail(&env, 40);
        ck_abort_msg("bigtxn: cleave did not catch up");
    }
    double t2 = shop_now_s();
    printf("million_row_transaction: source %.1f s, slot caught up %.1f s later, "
           "cleave peak RSS (VmHWM) %ld kB\n", t1 - t0, t2 - t1,
           peak_rss_kb(env.pid));
    fflush(stdout);
    /* Caught up means held by the target: the slot confirms nothing else. */
    int notifications = 12;
    char diff[512];
    ck_assert_msg(shop_table_equal(&env, notifications, diff, sizeof diff),
                  "the slot confirmed what the target does not hold: %s", diff);
    ck_assert(shop_all_equal(&env));
    shop_stop_cleanly(&env);
}
END_TEST

/* ---- names ---------------------------------------------------------------- */

#define ODD_TABLE "\"we;ird \"\"Tab\"\" ñ\""

/* A table's rows as a count and a digest, order-independent. */
static char *odd_digest(const pgc_cluster *c, const char *db)
{
    return pgc_query_value(c, db,
        "SELECT count(*) || ' ' || coalesce(md5(string_agg(r, '|' ORDER BY r)), '-') "
        "FROM (SELECT t::text AS r FROM " ODD_TABLE " t) s");
}

/* Table and column names that need quoting everywhere they go. */
START_TEST(hostile_names)
{
    static const char *const create =
        "CREATE TABLE " ODD_TABLE " (\"Sel ect\" int PRIMARY KEY, "
        "\"from\" text, \"MixedCase\" int, \"ünï\" text)";
    shop_env env;
    ck_assert(shop_setup(&env, src, tgt, "hostile", NULL, NULL));
    const char *odd_db = "hostile_odd_service";
    ck_assert(pgc_createdb(tgt, odd_db));
    ck_assert(pgc_exec(tgt, odd_db, create));
    exec_src(&env, create);
    char *dsn = pgc_dsn(tgt, odd_db);
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "  odd_service:\n"
             "    owned_tables: ['\"we;ird \"\"Tab\"\" ñ\"']\n"
             "    target:\n"
             "      postgres: \"%s\"\n", dsn);
    free(dsn);
    ck_assert(shop_config_append(&env, yaml));
    start_cleave(&env);
    exec_src(&env, "INSERT INTO " ODD_TABLE " VALUES "
                   "(1, 'semi;colon', 1, 'ünï'), (2, 'quote''s \"and\" \\back', 2, NULL),"
                   "(3, NULL, NULL, 'line\nbreak'), (4, 'four', 4, 'vier')");
    exec_src(&env, "UPDATE " ODD_TABLE " SET \"from\" = 'updated; DROP TABLE x', "
                   "\"MixedCase\" = 20 WHERE \"Sel ect\" = 2");
    exec_src(&env, "UPDATE " ODD_TABLE " SET \"Sel ect\" = 10, \"ünï\" = 'moved' "
                   "WHERE \"Sel ect\" = 1");
    exec_src(&env, "DELETE FROM " ODD_TABLE " WHERE \"Sel ect\" = 4");
    exec_src(&env, "INSERT INTO warehouses (code, name, country_code) "
                   "VALUES ('ODD', 'beside the odd table', 'DE')");
    if (!shop_wait_caught_up(&env, 60)) {
        shop_log_tail(&env, 40);
        ck_abort_msg("hostile: cleave did not catch up");
    }
    char *a = odd_digest(src, env.srcdb);
    char *b = odd_digest(tgt, odd_db);
    if (!a || !b || strcmp(a, b) != 0)
        shop_log_tail(&env, 40);
    ck_assert_msg(a && b && strcmp(a, b) == 0, "odd table: source %s, target %s",
                  a ? a : "?", b ? b : "?");
    ck_assert_msg(strncmp(a, "3 ", 2) == 0, "odd table: %s rows, 3 expected", a);
    free(a);
    free(b);
    ck_assert(shop_all_equal(&env));
    shop_stop_cleanly(&env);
}
END_TEST

/* ---- schema changes ------------------------------------------------------- */

enum { PRODUCTS = 9, WAREHOUSES = 11 };

/*
 * A column's definition as the catalog holds it: type, NOT NULL, default,
 * collation (where it is not the type's), identity.
 */
static char *column_definition(const pgc_cluster *c, const char *db,
                               const char *table, const char *column)
{
    char sql[768];
    snprintf(sql, sizeof sql,
             "SELECT format_type(a.atttypid, a.atttypmod) || ' notnull=' || "
             "  a.attnotnull || ' default=' || coalesce(pg_get_expr(d.adbin, "
             "  d.adrelid), '-') || ' collation=' || "
             "  coalesce(co.collname, '-') "
             "  || ' identity=' || a.attidentity::text "
             "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
             "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid "
             "  AND d.adnum = a.attnum "
             "LEFT JOIN pg_collation co ON co.oid = a.attcollation "
             "  AND a.attcollation <> t.typcollation "
             "WHERE a.attrelid = 'public.%s'::regclass "
             "  AND a.attname = '%s' AND NOT a.attisdropped", table, column);
    return pgc_query_value(c, db, sql);
}

static void assert_column(shop_env *env, int table, const char *column,
                          const char *want)
{
    const char *name = shop_tables[table];
    char *s = column_definition(env->src, env->srcdb, name, column);
    char *t = column_definition(env->tgt, env->dbs[shop_owner(table)], name,
                                column);
    ck_assert_msg(s && strcmp(s, want) == 0, "%s in the source: %s, "
                  "expected %s", column, s ? s : "(none)", want);
    if (!t || strcmp(s, t) != 0)
        shop_log_tail(env, 40);
    ck_assert_msg(t && strcmp(s, t) == 0, "%s: source %s, target %s", column,
                  s, t ? t : "(none)");
    free(s);
    free(t);
}

static long count_tgt(shop_env *env, int table, const char *sql)
{
    char *v = pgc_query_value(env->tgt, env->dbs[shop_owner(table)], sql);
    ck_assert_msg(v != NULL, "%s", sql);
    long n = atol(v);
    free(v);
    return n;
}

/*
 * ADD COLUMN with defaults while streaming: the rows that were there read
 * on the target what they read on the source, and the target's columns
 * are defined as the source's (NOT NULL, default, collation, typmod),
 * even where the default changed after the ADD COLUMN.
 */
START_TEST(add_column_with_default)
{
    shop_env env;
    start_streaming(&env, "adddef", NULL);
    exec_src(&env, "INSERT INTO warehouses (code, name, country_code) "
                   "SELECT 'OLD' || g, 'before', 'DE' "
                   "FROM generate_series(1, 20) g;"
                   "INSERT INTO products (sku, name, price) "
                   "SELECT 'OLD' || g, 'before', g "
                   "FROM generate_series(1, 5) g");
    shop_assert_caught_up_and_equal(&env, CAUGHT_UP_S);
    long mark = shop_log_size(&env);
    exec_src(&env, "ALTER TABLE warehouses "
                   "ADD COLUMN nickname text NOT NULL DEFAULT 'none', "
                   "ADD COLUMN sort_key text COLLATE \"C\" DEFAULT 'k', "
                   "ADD COLUMN fee numeric(10,2) NOT NULL DEFAULT 0, "
                   "ADD COLUMN flagged boolean NOT NULL DEFAULT false");
    /* The rows already there keep false; new ones get true. */
    exec_src(&env, "ALTER TABLE warehouses ALTER flagged SET DEFAULT true");
    exec_src(&env, "INSERT INTO warehouses (code, name, country_code, "
                   "nickname, fee) VALUES ('NEW', 'after', 'DE', 'nick', 2.5)");
    /*
     * Volatile: the source rewrites the table, and the stream carries
     * nothing of it. (Another table: a rewrite would also forget the
     * values warehouses' rows read for the columns above.)
     */
    exec_src(&env, "ALTER TABLE products ADD COLUMN token uuid "
                   "DEFAULT gen_random_uuid();"
                   "INSERT INTO products (sku, name, price) "
                   "VALUES ('NEW', 'after', 1)");
    if (!shop_wait_caught_up(&env, CAUGHT_UP_S)) {
        shop_log_tail(&env, 40);
        ck_abort_msg("adddef: cleave did not catch up");
    }
    assert_column(&env, WAREHOUSES, "nickname", "text notnull=true "
                  "default='none'::text collation=- identity=");
    assert_column(&env, WAREHOUSES, "sort_key", "text notnull=false "
                  "default='k'::text collation=C identity=");
    assert_column(&env, WAREHOUSES, "fee", "numeric(10,2) notnull=true "
                  "default=0 collation=- identity=");
    assert_column(&env, WAREHOUSES, "flagged", "boolean notnull=true "
                  "default=true collation=- identity=");
    assert_column(&env, PRODUCTS, "token", "uuid notnull=false "
                  "default=gen_random_uuid() collation=- identity=");
    ck_assert_int_eq(count_tgt(&env, WAREHOUSES, "SELECT count(*) FROM "
                               "warehouses WHERE nickname = 'none' AND "
                               "sort_key = 'k' AND fee = 0 AND NOT flagged"),
                     20);
    ck_assert_int_eq(count_tgt(&env, WAREHOUSES, "SELECT count(*) FROM "
                               "warehouses WHERE code = 'NEW' AND nickname = "
                               "'nick' AND fee = 2.50 AND flagged"), 1);
    ck_assert_int_eq(count_tgt(&env, PRODUCTS, "SELECT count(*) FROM products "
                               "WHERE sku = 'NEW' AND token IS NOT NULL"), 1);
    ck_assert_msg(shop_log_count(&env, "event=column_values_unknown", mark) == 1
                  && log_find(&env, 1, "event=column_values_unknown",
                              "column=token") > 0,
                  "no warning that token's existing values are unknown");
    /* The volatile column cannot match row for row; the others must. */
    exec_src(&env, "ALTER TABLE products DROP COLUMN token");
    exec_tgt(&env, shop_owner(PRODUCTS),
             "ALTER TABLE products DROP COLUMN token");
    shop_assert_caught_up_and_equal(&env, CAUGHT_UP_S);
    shop_stop_cleanly(&env);
}
END_TEST

/* ---- binary values -------------------------------------------------------- */

/* Restarts cleave and waits for its stream to start with `values`. */
static void restart_expecting(shop_env *env, const char *values,
                              const char *why)
{
    ck_assert_int_eq(shop_stop(env, SIGTERM, 30), 0);
    long mark = shop_log_size(env);
    ck_assert(shop_start(env));
    if (!shop_wait_log(env, values, mark, 60) ||
        (why && shop_log_count(env, why, mark) == 0)) {
        shop_log_tail(env, 40);
        ck_abort_msg("%s: no stream with %s (%s)", env->name, values,
                     why ? why : "");
    }
}

/*
 * Values travel in binary where every target reads them the same way
 * (daemon/binfmt.h): the shop's types, enums and a domain included. A
 * type changed in one target sends the next start in text (an int8
 * reading an int4's four bytes would misread or fail), and a column
 * added under the binary stream makes it read on in text, before any
 * change of that shape is applied: nothing lost, nothing twice.
 */
START_TEST(binary_values_then_text)
{
    shop_env env;
    start_streaming(&env, "binvals", NULL);
    ck_assert_msg(shop_wait_log(&env, "values=binary", 0, 60),
                  "the stream did not ask for binary values");
    ck_assert_msg(shop_log_count(&env, "receive_buffer=auto", 0) > 0,
                  "a source over a Unix socket got the loopback window");
    load_data(&env);
    int bench = pgc_pgbench_start(src, env.srcdb, 2, 500, 1, mix);
    ck_assert(bench > 0);
    ck_assert_msg(pgc_pgbench_wait(bench), "pgbench failed");
    shop_assert_caught_up_and_equal(&env, CAUGHT_UP_S);

    exec_tgt(&env, shop_owner(WAREHOUSES),
             "ALTER TABLE warehouses ALTER capacity TYPE bigint");
    restart_expecting(&env, "values=text", "public.warehouses.capacity of "
                      "service inventory_service: the target's type differs");
    exec_src(&env, "UPDATE warehouses SET capacity = -2147483648 "
                   "WHERE id = (SELECT min(id) FROM warehouses);"
                   "INSERT INTO warehouses (code, name, country_code, "
                   "capacity) VALUES ('BIN1', 'text again', 'DE', 70000)");
    shop_assert_caught_up_and_equal(&env, CAUGHT_UP_S);

    exec_tgt(&env, shop_owner(WAREHOUSES),
             "ALTER TABLE warehouses ALTER capacity TYPE integer");
    restart_expecting(&env, "values=binary", NULL);
    long mark = shop_log_size(&env);
    exec_src(&env, "ALTER TABLE warehouses ADD COLUMN note text;"
                   "INSERT INTO warehouses (code, name, country_code, note) "
                   "VALUES ('BIN2', 'added', 'DE', 'a note');"
                   "UPDATE warehouses SET note = 'later' WHERE code = 'BIN1'");
    ck_assert_msg(shop_wait_log(&env, "event=values_text reason=\"table "
                                "public.warehouses changed", mark, 60),
                  "the added column did not send the stream to text");
    shop_assert_caught_up_and_equal(&env, CAUGHT_UP_S);
    ck_assert_int_eq(count_tgt(&env, WAREHOUSES, "SELECT count(*) FROM "
                               "warehouses WHERE note IS NOT NULL"), 2);
    shop_stop_cleanly(&env);
}
END_TEST

/* ---- origins and conflicts ------------------------------------------------ */

/* A transaction carrying another cleave's origin is not applied again. */
START_TEST(loop_prevention)
{
    shop_env env;
    start_streaming(&env, "loop", NULL);
    /* The session lets the origin go before it ends, so it can be dropped. */
    exec_src(&env, "SELECT pg_replication_origin_create('cleave_elsewhere');"
                   "SELECT pg_replication_origin_session_setup('cleave_elsewhere');"
                   "BEGIN; INSERT INTO warehouses (code, name, country_code) "
                   "VALUES ('LOOP', 'from another cleave', 'DE'); COMMIT;"
                   "SELECT pg_replication_origin_session_reset()");
    exec_src(&env, "INSERT INTO warehouses (code, name, country_code) "
                   "VALUES ('REAL', 'written here', 'DE')");
    if (!shop_wait_caught_up(&env, 60)) {
        shop_log_tail(&env, 40);
        ck_abort_msg("loop: cleave did not catch up");
    }
    int inventory = 3;
    char *v = pgc_query_value(tgt, env.dbs[inventory],
                              "SELECT string_agg(code, ',' ORDER BY code) FROM warehouses");
    ck_assert_msg(v && strcmp(v, "REAL") == 0, "target warehouses: %s", v ? v : "none");
    free(v);
    /* PostgreSQL 15 has no origin filter in the server: cleave skips it. */
    ck_assert(shop_log_contains(&env, "origin_filter=cleave"));
    ck_assert(shop_log_contains(&env, "event=txn_skipped "
                                "origin=cleave_elsewhere"));
    /* Remove LOOP the same way it came, so every table can be compared. */
    exec_src(&env, "SELECT pg_replication_origin_session_setup('cleave_elsewhere');"
                   "BEGIN; DELETE FROM warehouses WHERE code = 'LOOP'; COMMIT;"
                   "SELECT pg_replication_origin_session_reset()");
    exec_src(&env, "SELECT pg_replication_origin_drop('cleave_elsewhere')");
    shop_assert_caught_up_and_equal(&env, CAUGHT_UP_S);
    shop_stop_cleanly(&env);
}
END_TEST

#define INVENTORY 3

static void setup_conflict(shop_env *env, const char *name, const char *service_yaml)
{
    ck_assert(shop_setup(env, src, tgt, name, NULL, service_yaml));
    exec_tgt(env, INVENTORY, "INSERT INTO warehouses (id, code, name, country_code) "
                             "VALUES (500, 'TGT', 'only in the target', 'FR')");
    start_cleave(env);
    exec_src(env, "INSERT INTO warehouses (id, code, name, country_code, city) "
                  "VALUES (500, 'SRC', 'from the source', 'DE', 'Berlin')");
    exec_src(env, "INSERT INTO users (external_id, email, full_name) VALUES "
                  "(gen_random_uuid(), 'c1@example.com', 'Conflict One')");
    exec_src(env, "INSERT INTO shipping_addresses (user_id, recipient, line1, city, "
                  "country_code) SELECT id, 'C One', 'Street 1', 'Paris', 'FR' "
                  "FROM users WHERE email = 'c1@example.com'");
    exec_src(env, "INSERT INTO orders (order_uuid, user_id, note) SELECT "
                  "gen_random_uuid(), id, 'after the conflict' FROM users "
                  "WHERE email = 'c1@example.com'");
    exec_src(env, "UPDATE users SET login_count = 7 WHERE email = 'c1@example.com'");
}

/* A duplicate key stops one service; the others go on; it recovers. */
START_TEST(conflict_stops_one_service)
{
    shop_env env;
    setup_conflict(&env, "conflict", NULL);
    int failed = wait_log(&env, 1, "event=sink_failed service=inventory_service",
                          "warehouses", 60);
    if (!failed) {
        shop_log_tail(&env, 40);
        ck_abort_msg("no sink_failed for inventory_service naming warehouses");
    }
    ck_assert_msg(log_find(&env, 1, "event=sink_failed service=user_service", NULL) == 0 &&
                  log_find(&env, 1, "event=sink_failed service=order_service", NULL) == 0,
                  "another service failed too");
    ck_assert(pgc_wait_until(tgt, env.dbs[0], "SELECT count(*) = 1 FROM users "
                             "WHERE email = 'c1@example.com' AND login_count = 7", 60));
    ck_assert(pgc_wait_until(tgt, env.dbs[1], "SELECT count(*) = 1 FROM orders "
                             "WHERE note = 'after the conflict'", 60));
    for (int t = 0; t < SHOP_NTABLES; t++) {
        char diff[512];
        if (shop_owner(t) <= 1)
            ck_assert_msg(shop_table_equal(&env, t, diff, sizeof diff), "%s", diff);
    }
    /* The target still holds its own row: the service did not go on. */
    char *v = pgc_query_value(tgt, env.dbs[INVENTORY],
                              "SELECT code FROM warehouses WHERE id = 500");
    ck_assert_msg(v && strcmp(v, "TGT") == 0, "warehouse 500: %s", v ? v : "none");
    free(v);
    exec_tgt(&env, INVENTORY, "DELETE FROM warehouses WHERE id = 500");
    if (!shop_wait_caught_up(&env, 90)) {
        shop_log_tail(&env, 40);
        ck_abort_msg("conflict: inventory_service did not recover in 90 s");
    }
    if (!shop_all_equal(&env)) {
        shop_log_tail(&env, 40);
        ck_abort_msg("conflict: a target differs from its source");
    }
    shop_stop_cleanly(&env);
}
END_TEST

/* With on_conflict: apply the source's row wins and nothing stops. */
START_TEST(on_conflict_apply)
{
    shop_env env;
    setup_conflict(&env, "upsert", "    on_conflict: apply\n");
    shop_assert_caught_up_and_equal(&env, CAUGHT_UP_S);
    ck_assert_msg(log_find(&env, 1, "event=sink_failed", NULL) == 0,
                  "a sink failed under on_conflict: apply");
    shop_stop_cleanly(&env);
}
END_TEST

/* ---- positions ------------------------------------------------------------ */

/* WAL written elsewhere on the source cluster does not pile up behind the slot. */
START_TEST(heartbeat_moves_idle_slot)
{
    shop_env env;
    ck_assert(shop_setup(&env, src, tgt, "heartbeat", "  heartbeat_interval: 200ms\n",
                         NULL));
    start_cleave(&env);
    exec_src(&env, "INSERT INTO warehouses (code, name, country_code) "
                   "VALUES ('HB', 'heartbeat', 'DE')");
    shop_assert_caught_up_and_equal(&env, CAUGHT_UP_S);
    const char *other = "heartbeat_other";
    ck_assert(pgc_createdb(src, other));
    ck_assert(pgc_exec(src, other, "CREATE TABLE filler (id int, pad text);"
                                   "INSERT INTO filler SELECT g, repeat('x', 200) "
                                   "FROM generate_series(1, 20000) g"));
    char *lsn = source_lsn(&env, other);
    bool moved = wait_confirmed(&env, lsn, 30);
    if (!moved)
        shop_log_tail(&env, 40);
    ck_assert_msg(moved, "the slot did not pass %s (another database's write) in 30 s",
                  lsn);
    free(lsn);
    ck_assert_msg(log_find(&env, 1, "event=heartbeat_failed", NULL) == 0,
                  "a heartbeat failed");
    /*
     * Keepalives alone can move an idle slot on PostgreSQL 15, so prove
     * the heartbeats themselves: a second slot sees cleave's messages.
     */
    ck_assert(pgc_exec(src, env.srcdb, "SELECT pg_create_logical_replication_slot("
                                       "'heartbeat_probe', 'test_decoding')"));
    bool beat = pgc_wait_until(src, env.srcdb,
                               "SELECT count(*) > 0 FROM pg_logical_slot_peek_changes("
                               "'heartbeat_probe', NULL, NULL) "
                               "WHERE data LIKE '%prefix: cleave_heartbeat%'", 30);
    pgc_exec(src, env.srcdb, "SELECT pg_drop_replication_slot('heartbeat_probe')");
    ck_assert_msg(beat, "no cleave_heartbeat message reached the WAL in 30 s");
    shop_stop_cleanly(&env);
}
END_TEST

/*
 * The service's sink is inside a transaction that wrote (its session, not
 * the keeper's, whose setval of a sequence takes an xid too).
 */
static bool target_writing(shop_env *env, int service)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE "
             "datname = '%s' AND application_name = 'cleave' AND "
             "backend_xid IS NOT NULL", env->dbs[service]);
    char *n = pgc_query_value(tgt, "postgres", sql);
    bool writing = n && atoi(n) > 0;
    free(n);
    return writing;
}

/*
 * Stopped while a streamed transaction (decoded in blocks, spooled,
 * committed) is being replayed into its target: the replay is abandoned,
 * so the slot must not be told the transaction's end, or the source
 * never sends it again. After a restart its rows are there.
 */
START_TEST(sigterm_in_streamed_replay)
{
    shop_env env;
    ck_assert(shop_setup(&env, src, tgt, "replaystop", NULL, NULL));
    /* The walsender streams every transaction over 64 kB in blocks. */
    char sql[256];
    snprintf(sql, sizeof sql, "ALTER DATABASE %s SET logical_decoding_work_mem "
             "= '64kB'", env.srcdb);
    ck_assert(pgc_exec(src, "postgres", sql));
    load_data(&env);
    start_cleave(&env);
    shop_assert_caught_up_and_equal(&env, CAUGHT_UP_S);
    int svc = shop_owner(12);
    ck_assert_str_eq(shop_tables[12], "notifications");
    exec_src(&env, "INSERT INTO notifications (user_id, template_id, channel, "
             "payload, status) SELECT 1 + g % 10000, 1 + g % 50, 'email', "
             "jsonb_build_object('n', g), 'replayed' "
             "FROM generate_series(1, 200000) g");
    double deadline = shop_now_s() + 120;
    while (!target_writing(&env, svc) && shop_now_s() < deadline)
        ;
    ck_assert_msg(shop_now_s() < deadline, "the replay never reached the target");
    int rc = shop_stop(&env, SIGTERM, 60);
    ck_assert_int_eq(rc, 0);
    char *held = pgc_query_value(tgt, env.dbs[svc], "SELECT count(*) FROM "
                                 "notifications WHERE status = 'replayed'");
    ck_assert_msg(held && strcmp(held, "0") == 0,
                  "the replay was not cut short: %s rows held", held);
    free(held);
    start_cleave(&env);
    shop_assert_caught_up_and_equal(&env, CAUGHT_UP_S);
    shop_stop_cleanly(&env);
}
END_TEST

/*
 * A streamed transaction whose replay fails part-way (a record that
 * cannot be decoded or routed, forced here by a test hook at the 2000th
 * record): the replay is abandoned and the source sends the transaction
 * again, whole. It went on from the next record before, so the target
 * committed the transaction without that row, for good.
 */
START_TEST(failed_replay_sends_again)
{
    shop_env env;
    ck_assert(shop_setup(&env, src, tgt, "replayfail", NULL, NULL));
    char sql[256];
    snprintf(sql, sizeof sql, "ALTER DATABASE %s SET logical_decoding_work_mem "
             "= '64kB'", env.srcdb);
    ck_assert(pgc_exec(src, "postgres", sql));
    load_data(&env);
    setenv("CLEAVE_TEST_FAIL_REPLAY_AT", "2000", 1);
    start_cleave(&env);
    unsetenv("CLEAVE_TEST_FAIL_REPLAY_AT");
    shop_assert_caught_up_and_equal(&env, CAUGHT_UP_S);
    long mark = shop_log_size(&env);
    exec_src(&env, "INSERT INTO notifications (user_id, template_id, channel, "
             "payload, status) SELECT 1 + g % 10000, 1 + g % 50, 'email', "
             "jsonb_build_object('n', g), 'replayed' "
             "FROM generate_series(1, 5000) g");
    ck_assert(shop_wait_log(&env, "failed for a test", mark, CAUGHT_UP_S));
    shop_assert_caught_up_and_equal(&env, CAUGHT_UP_S);
    char *n = pgc_query_value(tgt, env.dbs[shop_owner(12)], "SELECT count(*) "
                              "FROM notifications WHERE status = 'replayed'");
    ck_assert_msg(n && strcmp(n, "5000") == 0, "%s rows of 5000", n);
    free(n);
    shop_stop_cleanly(&env);
}
END_TEST

/*
 * The walsender stopped (SIGSTOP) with its connection open, as behind a
 * network gone quiet: after source.receive_timeout (2 s here) without a
 * message, a keepalive asked for at half of it, the connection is taken
 * for lost and made again; once the walsender runs again (and leaves the
 * slot), the stream goes on. Nothing noticed before: TCP alone would
 * have taken many minutes, every service stalled.
 */
START_TEST(silent_source_is_left)
{
    shop_env env;
    ck_assert(shop_setup(&env, src, tgt, "silent", "  receive_timeout: 2s\n",
                         NULL));
    load_data(&env);
    start_cleave(&env);
    shop_assert_caught_up_and_equal(&env, CAUGHT_UP_S);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT active_pid FROM pg_replication_slots "
             "WHERE slot_name = 'cleave_%s'", env.name);
    char *pid = pgc_query_value(src, env.srcdb, sql);
    ck_assert_msg(pid && atoi(pid) > 0, "no walsender: %s", pid);
    long mark = shop_log_size(&env);
    ck_assert_int_eq(kill(atoi(pid), SIGSTOP), 0);
    bool left = shop_wait_log(&env, "no message from the source in 2000 ms",
                              mark, 30);
    ck_assert_int_eq(kill(atoi(pid), SIGCONT), 0);
    free(pid);
    ck_assert_msg(left, "the silent stream was not left in 30 s");
    exec_src(&env, "UPDATE users SET login_count = login_count + 1 "
             "WHERE id = 1");
    shop_assert_caught_up_and_equal(&env, CAUGHT_UP_S);
    shop_stop_cleanly(&env);
}
END_TEST

/*
 * An owned table renamed in the source while cleave streams: its changes
 * under the new name wait (the stream stops, and every start says which
 * table is gone) until it has its name back; then they reach its owner
 * (before, they belonged to no service, and the slot passed them).
 */
START_TEST(renamed_table_waits)
{
    shop_env env;
    start_streaming(&env, "renamed", NULL);
    exec_src(&env, "INSERT INTO warehouses (code, name, country_code) "
             "VALUES ('W1', 'one', 'FR')");
    shop_assert_caught_up_and_equal(&env, CAUGHT_UP_S);
    ck_assert_msg(shop_rename_warehouses(&env, shop_log_size(&env), 60),
                  "the rename was not said");
    exec_src(&env, "ALTER TABLE depots RENAME TO warehouses");
    shop_assert_caught_up_and_equal(&env, CAUGHT_UP_S);
    shop_stop_cleanly(&env);
}
END_TEST

/*
 * A target down when cleave starts, back while the other services stream:
 * the stream starts again for its sink, and until the sink holds the
 * change it missed the slot is not told past it, though the stream had
 * read further before the restart (it was, and a second restart then
 * skipped the change for that service for good).
 */
START_TEST(reopened_sink_holds_the_slot)
{
    shop_env env;
    start_streaming(&env, "reopen", NULL);
    load_data(&env);
    shop_assert_caught_up_and_equal(&env, CAUGHT_UP_S);
    ck_assert_int_eq(shop_stop(&env, SIGTERM, 60), 0);
    const char *udb = env.dbs[0];
    ck_assert_str_eq(shop_services[0], "user_service");
    /* Its apply will wait on this lock once the sink is up. */
    PGconn *blocker = pgc_connect(tgt, udb);
    PQclear(PQexec(blocker, "BEGIN"));
    PGresult *res = PQexec(blocker, "LOCK TABLE users IN ACCESS EXCLUSIVE MODE");
    ck_assert(PQresultStatus(res) == PGRES_COMMAND_OK);
    PQclear(res);
    char sql[512];
    snprintf(sql, sizeof sql, "ALTER DATABASE %s ALLOW_CONNECTIONS false", udb);
    ck_assert(pgc_exec(tgt, "postgres", sql));
    int mark = log_find(&env, 1, "event=sink_ready", "service=user_service");
    ck_assert(shop_start(&env));
    ck_assert_msg(wait_log(&env, mark + 1, "event=sink_failed",
                           "service=user_service", 60), "the sink opened");
    /* A change it misses, then the others go on without it. */
    exec_src(&env, "UPDATE users SET login_count = login_count + 1 "
             "WHERE id <= 10");
    char *after = pgc_query_value(src, env.srcdb, "SELECT pg_current_wal_lsn()");
    ck_assert_ptr_nonnull(after);
    exec_src(&env, "INSERT INTO orders (order_uuid, user_id, status, "
             "currency, item_count, note) VALUES (gen_random_uuid(), 1, "
             "'pending', 'EUR', 0, 'reopen1')");
    ck_assert(pgc_wait_until(tgt, env.dbs[1], "SELECT count(*) = 1 FROM "
                             "orders WHERE note = 'reopen1'", 60));
    snprintf(sql, sizeof sql, "ALTER DATABASE %s ALLOW_CONNECTIONS true", udb);
    ck_assert(pgc_exec(tgt, "postgres", sql));
    ck_assert_msg(wait_log(&env, mark + 1, "event=sink_ready",
                           "service=user_service", 60), "the sink never came up");
    exec_src(&env, "INSERT INTO orders (order_uuid, user_id, status, "
             "currency, item_count, note) VALUES (gen_random_uuid(), 1, "
             "'pending', 'EUR', 0, 'reopen2')");
    ck_assert(pgc_wait_until(tgt, env.dbs[1], "SELECT count(*) = 1 FROM "
                             "orders WHERE note = 'reopen2'", 60));
    /* The change it missed is not applied: the slot stays before its end. */
    snprintf(sql, sizeof sql, "SELECT confirmed_flush_lsn >= '%s' FROM "
             "pg_replication_slots WHERE slot_name = 'cleave_%s'", after,
             env.name);
    free(after);
    ck_assert_msg(!pgc_wait_until(src, env.srcdb, sql, 3), "the slot was told "
                  "past a change user_service does not hold");
    PQclear(PQexec(blocker, "COMMIT"));
    PQfinish(blocker);
    shop_assert_caught_up_and_equal(&env, CAUGHT_UP_S);
    shop_stop_cleanly(&env);
}
END_TEST

/* Stopped cleanly, restarted later: it resumes where it stopped. */
START_TEST(sigterm_then_restart_resumes)
{
    shop_env env;
    start_streaming(&env, "resume", NULL);
    load_data(&env);
    int bench = pgc_pgbench_start(src, env.srcdb, 2, 300, 1, mix);
    ck_assert(pgc_pgbench_wait(bench));
    int rc = shop_stop(&env, SIGTERM, 60);
    if (rc != 0)
        shop_log_tail(&env, 40);
    ck_assert_int_eq(rc, 0);
    bench = pgc_pgbench_start(src, env.srcdb, 2, 300, 1, mix);
    ck_assert(pgc_pgbench_wait(bench));
    exec_src(&env, "INSERT INTO user_sessions SELECT * FROM user_sessions "
                   "WHERE user_id = 5");
    start_cleave(&env);
    shop_assert_caught_up_and_equal(&env, CAUGHT_UP_S);
    shop_stop_cleanly(&env);
}
END_TEST

int main(void)
{
    /*
     * Every test leaves its instance's five replication origins on the
     * target cluster, and PostgreSQL (up to 17) keeps origin progress in
     * max_replication_slots state slots: pgcluster's 32 last six tests.
     */
    static const char *const tgt_settings[] = {"max_replication_slots = 128", NULL};
    Suite *s = suite_create("run");
    shop_add_case(s, "every_change_kind", every_change_kind, 600);
    shop_add_long_case(s, "sigkill_five_times", sigkill_five_times, 400);
    shop_add_case(s, "target_restarted", target_restarted, 400);
    shop_add_case(s, "walsender_terminated", walsender_terminated, 400);
    shop_add_long_case(s, "million_row_transaction", million_row_transaction,
                       600);
    shop_add_case(s, "hostile_names", hostile_names, 120);
    shop_add_case(s, "add_column_with_default", add_column_with_default, 180);
    shop_add_case(s, "binary_values_then_text", binary_values_then_text, 300);
    shop_add_case(s, "loop_prevention", loop_prevention, 120);
    shop_add_case(s, "conflict_stops_one_service", conflict_stops_one_service, 240);
    shop_add_case(s, "on_conflict_apply", on_conflict_apply, 120);
    shop_add_case(s, "heartbeat_moves_idle_slot", heartbeat_moves_idle_slot, 120);
    shop_add_case(s, "sigterm_then_restart_resumes", sigterm_then_restart_resumes, 400);
    shop_add_case(s, "sigterm_in_streamed_replay", sigterm_in_streamed_replay, 400);
    shop_add_case(s, "failed_replay_sends_again", failed_replay_sends_again,
                  300);
    shop_add_case(s, "silent_source_is_left", silent_source_is_left, 180);
    shop_add_case(s, "renamed_table_waits", renamed_table_waits, 120);
    shop_add_case(s, "reopened_sink_holds_the_slot",
                  reopened_sink_holds_the_slot, 300);
    return shop_run_suite(s, tgt_settings, &src, &tgt);
}
