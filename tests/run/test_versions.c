/*
 * cleave run across PostgreSQL versions: sources on 14, 16, 17 and 18,
 * each into a 17 target, and a 17 source into a 14 target. For each pair
 * one daemon run: the initial copy of the shop fixture (scale 1), then
 * every change kind streamed (insert, update with a TOASTed value left
 * alone and one changed, a key change, delete, truncate, a transaction
 * larger than logical_decoding_work_mem, so streamed, two-phase commit
 * and rollback), a transaction under another cleave's origin skipped,
 * SIGKILL under pgbench and a restart, and at the end every table equal
 * and `cleave verify` exit 0. What each version offers is checked where
 * it differs: the server filters origins from 16 on (unless the source
 * has origins that are not cleave's), failover slots from 17 on (a clear
 * error before). 14 to 17 and 17 to 14 also cut order_service over to
 * its database on the other version and back. The versions come from tests/setup-pg.sh 14 16 17 18;
 * the suite fails when one is missing, unless CLEAVE_SKIP_VERSIONS is set
 * (then it says so and is skipped).
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "tests/support/runcmd.h"
#include "tests/support/shopenv.h"

enum { V14, V16, V17, V18, NVERSIONS };
static const int majors[NVERSIONS] = {14, 16, 17, 18};
static pgc_cluster *clusters[NVERSIONS];

#define CAUGHT_UP_S 120

static const char *const mix[] = {
    "new_order.sql@4", "user_update.sql@3", "inventory.sql@3",
    "notification.sql@2", "refund.sql@1", NULL,
};

static void exec_src(shop_env *env, const char *sql)
{
    ck_assert_msg(pgc_exec(env->src, env->srcdb, sql), "%s", sql);
}

static void caught_up_and_equal(shop_env *env, const char *when)
{
    if (!shop_wait_caught_up(env, CAUGHT_UP_S)) {
        shop_log_tail(env, 40);
        ck_abort_msg("%s: cleave did not catch up %s", env->name, when);
    }
    if (!shop_all_equal(env)) {
        shop_log_tail(env, 40);
        ck_abort_msg("%s: a target differs from its source %s", env->name,
                     when);
    }
}

static char *src_value(shop_env *env, const char *sql)
{
    char *v = pgc_query_value(env->src, env->srcdb, sql);
    ck_assert_msg(v, "%s", sql);
    return v;
}

/* The slot's own column (failover, say), as text. */
static char *slot_value(shop_env *env, const char *column)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT %s FROM pg_replication_slots WHERE "
             "slot_name = 'cleave_%s'", column, env->name);
    return pgc_query_value(env->src, env->srcdb, sql);
}

/* Every change kind but the workload's, each made on purpose. */
static void change_kinds(shop_env *env)
{
    exec_src(env, "INSERT INTO warehouses (code, name, country_code) "
                  "VALUES ('NEW', 'inserted', 'DE')");
    /* Users 50 and 100 hold a 9,600-character bio stored out of line. */
    exec_src(env, "UPDATE users SET login_count = login_count + 1 "
                  "WHERE id = 50");
    exec_src(env, "UPDATE users SET bio = (SELECT string_agg(md5('new' || g),"
                  " '') FROM generate_series(1, 300) g) WHERE id = 100");
    exec_src(env, "DELETE FROM user_preferences WHERE user_id = 2;"
                  "UPDATE user_preferences SET user_id = 2 WHERE user_id = 1");
    exec_src(env, "UPDATE order_items SET line_no = line_no + 100 "
                  "WHERE order_id = 7");
    exec_src(env, "DELETE FROM user_sessions WHERE ctid = (SELECT ctid FROM "
                  "user_sessions WHERE user_id = 4 LIMIT 1)");
    exec_src(env, "DELETE FROM refunds WHERE id % 97 = 0");
    exec_src(env, "TRUNCATE notifications");
    /* Far above logical_decoding_work_mem (64kB): streamed in blocks. */
    exec_src(env, "INSERT INTO notifications (user_id, channel, payload) "
                  "SELECT 1 + g % 10000, 'email', jsonb_build_object('n', g)"
                  " FROM generate_series(1, 20000) g");
    /* COMMIT/ROLLBACK PREPARED cannot share a multi-statement string. */
    exec_src(env, "BEGIN; UPDATE products SET price = price + 1 WHERE id = 1;"
                  "PREPARE TRANSACTION 'v1'");
    exec_src(env, "COMMIT PREPARED 'v1'");
    exec_src(env, "BEGIN; UPDATE products SET price = 0 WHERE id = 2;"
                  "PREPARE TRANSACTION 'v2'");
    exec_src(env, "ROLLBACK PREPARED 'v2'");
}

/*
 * A row written under another cleave's origin never reaches the target,
 * whoever drops it: the server (origin 'none') or cleave. `server` says
 * which should have: then cleave never sees the transaction.
 */
static void loop_skipped(shop_env *env, bool server)
{
    long mark = shop_log_size(env);
    /* Made apart, as cleave makes its own: origins are the cluster's. */
    char sql[512], origin[64];
    snprintf(origin, sizeof origin, "cleave_loop_%s", env->name);
    snprintf(sql, sizeof sql, "SELECT pg_replication_origin_create('%s')",
             origin);
    exec_src(env, sql);
    snprintf(sql, sizeof sql, "SELECT pg_replication_origin_session_setup("
             "'%s'); INSERT INTO warehouses (code, name, country_code) "
             "VALUES ('LOOP', 'from another cleave', 'DE')", origin);
    exec_src(env, sql);
    exec_src(env, "INSERT INTO warehouses (code, name, country_code) "
                  "VALUES ('REAL', 'written here', 'DE')");
    if (!shop_wait_caught_up(env, CAUGHT_UP_S)) {
        shop_log_tail(env, 40);
        ck_abort_msg("%s: cleave did not catch up", env->name);
    }
    char *v = pgc_query_value(env->tgt, env->dbs[3], "SELECT string_agg(code, "
                              "',' ORDER BY code) FROM warehouses WHERE code "
                              "IN ('LOOP', 'REAL')");
    ck_assert_msg(v && strcmp(v, "REAL") == 0, "%s: target warehouses %s",
                  env->name, v ? v : "none");
    free(v);
    /*
     * Dropped by the session that used it: from another one, the drop can
     * come before the first backend has exited and let go of the origin.
     */
    snprintf(sql, sizeof sql, "BEGIN; SELECT pg_replication_origin_session_"
             "setup('%s'); DELETE FROM warehouses WHERE code = 'LOOP'; "
             "COMMIT; SELECT pg_replication_origin_session_reset(); "
             "SELECT pg_replication_origin_drop('%s')", origin, origin);
    exec_src(env, sql);
    caught_up_and_equal(env, "after the loop");
    int skipped = shop_log_count(env, "event=txn_skipped", mark);
    if (server)
        ck_assert_msg(skipped == 0, "%s: cleave skipped %d transactions the "
                      "server should have filtered", env->name, skipped);
    else
        ck_assert_msg(skipped >= 2, "%s: cleave skipped %d transactions, "
                      "want 2", env->name, skipped);
}

/* `cleave verify` over every table: exit 0. */
static void verify_clean(shop_env *env)
{
    char *argv[] = {(char *)shop_cleave_bin(), "verify", "-c", env->config,
                    NULL};
    rc_result r;
    ck_assert(rc_run(argv, &r));
    if (r.status != 0)
        fprintf(stderr, "%s: verify exit %d\n%s%s", env->name, r.status,
                r.out, r.err);
    ck_assert_int_eq(r.status, 0);
    rc_free(&r);
}

/* Rewrites the configuration with `line` first under source:. */
static void set_source_key(shop_env *env, const char *line)
{
    FILE *f = fopen(env->config, "r");
    ck_assert(f);
    char text[8192];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    char *at = strstr(text, "source:\n");
    ck_assert(at);
    at += strlen("source:\n");
    f = fopen(env->config, "w");
    ck_assert(f);
    fprintf(f, "%.*s%s\n%s", (int)(at - text), text, line, at);
    ck_assert(fclose(f) == 0);
}

typedef struct pair {
    const char *name;
    int src, tgt;
    const char *source_yaml;
    bool foreign_origin;      /* the source has an origin not cleave's */
    bool late_origin;         /* one appears while the server filters */
    bool failover_later;      /* failover_slot set at the restart */
    bool cutover;             /* order_service moved there and back */
} pair;

static void start_copied(shop_env *env, const pair *p)
{
    pgc_cluster *src = clusters[p->src], *tgt = clusters[p->tgt];
    ck_assert(shop_setup_copy(env, src, tgt, p->name, 1, p->source_yaml,
                              NULL));
    if (p->foreign_origin)
        exec_src(env, "SELECT pg_replication_origin_create('other_system')");
    ck_assert(shop_start(env));
    caught_up_and_equal(env, "after the copy");
    /* A type's binary form may change between major versions. */
    int binary = shop_log_count(env, "format=binary", 0);
    if (majors[p->src] == majors[p->tgt])
        ck_assert_msg(binary > 0, "%s: nothing copied in binary", env->name);
    else
        ck_assert_msg(binary == 0 && shop_log_count(env, "format=text", 0) ==
                      SHOP_NTABLES, "%s: %d tables copied in binary across "
                      "versions", env->name, binary);
}

/* SIGKILL while pgbench writes; restarted, it goes on from its slot. */
static void kill_and_resume(shop_env *env, const pair *p)
{
    char *before = src_value(env, "SELECT count(*) FROM orders");
    char cond[128];
    snprintf(cond, sizeof cond, "SELECT count(*) > %s + 20 FROM orders",
             before);
    free(before);
    int bench = pgc_pgbench_start(env->src, env->srcdb, 2, 150, 1, mix);
    ck_assert(bench > 0);
    ck_assert(pgc_wait_until(env->src, env->srcdb, cond, 60));
    ck_assert_int_eq(shop_stop(env, SIGKILL, 10), 128 + SIGKILL);
    if (p->failover_later)
        set_source_key(env, "  failover_slot: true");
    ck_assert(shop_start(env));
    ck_assert(pgc_pgbench_wait(bench));
    caught_up_and_equal(env, "after SIGKILL and a restart");
}

/*
 * An origin not cleave's made while the server filters every origin:
 * cleave sees it, says so and streams on without the server's filter, so
 * what is applied under it arrives.
 */
static void origin_appears(shop_env *env)
{
    long mark = shop_log_size(env);
    exec_src(env, "SELECT pg_replication_origin_create('late_system')");
    if (!shop_wait_log(env, "event=origin_filter_dropped", mark, 30) ||
        !shop_wait_log(env, "origin_filter=cleave", mark, 30)) {
        shop_log_tail(env, 30);
        ck_abort_msg("%s: the stream kept the server's filter", env->name);
    }
    exec_src(env, "SELECT pg_replication_origin_session_setup('late_system');"
                  "INSERT INTO warehouses (code, name, country_code) "
                  "VALUES ('LATE', 'replicated in later', 'FR')");
    caught_up_and_equal(env, "after an origin appeared");
    exec_src(env, "SELECT pg_replication_origin_drop('late_system')");
}

/* `cleave VERB -c CONFIG order_service`: exit 0, or the test fails. */
static void move_order_service(shop_env *env, const char *verb)
{
    char *argv[] = {(char *)shop_cleave_bin(), (char *)verb, "-c",
                    env->config, "order_service", NULL};
    rc_result r;
    ck_assert(rc_run(argv, &r));
    if (r.status != 0)
        shop_log_tail(env, 40);
    ck_assert_msg(r.status == 0, "%s: %s exit %d: %s%s", env->name, verb,
                  r.status, r.out, r.err);
    rc_free(&r);
}

/* An order noted `note` on one side: refused (25006) or written. */
static void write_order(pgc_cluster *c, const char *db, const char *note,
                        bool fenced)
{
    char sql[256];
    snprintf(sql, sizeof sql, "INSERT INTO orders (order_uuid, user_id, "
             "status, currency, item_count, note) VALUES (gen_random_uuid(),"
             " 1, 'pending', 'EUR', 0, '%s')", note);
    PGconn *conn = pgc_connect(c, db);
    ck_assert(conn != NULL);
    PGresult *res = PQexec(conn, sql);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    ck_assert_msg(fenced ? state && strcmp(state, "25006") == 0 : !state,
                  "%s on %s: SQLSTATE %s, expected %s", note, db,
                  state ? state : "none", fenced ? "25006" : "none");
    PQclear(res);
    PQfinish(conn);
}

/*
 * order_service cut over to its database on the other version and rolled
 * back: each time the old side refuses its writes, the new side takes
 * them, and the other stream carries them across.
 */
static void cut_over_and_back(shop_env *env)
{
    const char *own = env->dbs[1];
    char seen[160];
    move_order_service(env, "cutover");
    write_order(env->src, env->srcdb, "v-shared", true);
    write_order(env->tgt, own, "v-own", false);
    snprintf(seen, sizeof seen, "SELECT count(*) = 1 FROM orders WHERE note "
             "= 'v-own'");
    ck_assert_msg(pgc_wait_until(env->src, env->srcdb, seen, CAUGHT_UP_S),
                  "%s: the reverse stream did not bring v-own", env->name);
    move_order_service(env, "rollback");
    write_order(env->tgt, own, "v-own2", true);
    write_order(env->src, env->srcdb, "v-shared2", false);
    caught_up_and_equal(env, "after a cut-over and its rollback");
}

static void run_pair(const pair *p)
{
    shop_env env;
    start_copied(&env, p);
    /* Opt-in (source.server_origin_filter): to_14's 17 source goes without. */
    bool server_filters = majors[p->src] >= 16 && !p->foreign_origin &&
                          p->source_yaml &&
                          strstr(p->source_yaml, "server_origin_filter");
    ck_assert_msg(shop_log_count(&env, server_filters ? "origin_filter=none"
                                 : "origin_filter=cleave", 0) >= 1,
                  "%s: the stream does not filter origins as expected",
                  env.name);
    /* Binary values only within one major version (daemon/binfmt.h). */
    bool same = majors[p->src] == majors[p->tgt];
    ck_assert_msg(shop_wait_log(&env, same ? "values=binary"
                                : "'s target runs PostgreSQL", 0, 60),
                  "%s: values not in %s", env.name, same ? "binary" : "text");
    change_kinds(&env);
    loop_skipped(&env, server_filters);
    if (p->foreign_origin) {
        /* Not cleave's: applied, as without the server's filter. */
        exec_src(&env, "SELECT pg_replication_origin_session_setup("
                       "'other_system'); INSERT INTO warehouses (code, name,"
                       " country_code) VALUES ('OTHER', 'replicated in', 'FR')");
        caught_up_and_equal(&env, "after the foreign origin");
        exec_src(&env, "SELECT pg_replication_origin_drop('other_system')");
    }
    if (p->late_origin)
        origin_appears(&env);
    kill_and_resume(&env, p);
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT stream_txns > 0 FROM "
             "pg_stat_replication_slots WHERE slot_name = 'cleave_%s'",
             env.name);
    ck_assert_msg(pgc_wait_until(env.src, env.srcdb, sql, 30),
                  "%s: the server streamed no transaction", env.name);
    verify_clean(&env);
    if (p->cutover)
        cut_over_and_back(&env);
    if (majors[p->src] >= 17) {
        char *f = slot_value(&env, "failover");
        bool want = strstr(p->source_yaml ? p->source_yaml : "", "failover") ||
                    p->failover_later;
        ck_assert_msg(f && strcmp(f, want ? "t" : "f") == 0,
                      "%s: slot failover %s", env.name, f ? f : "none");
        free(f);
    }
    ck_assert_int_eq(shop_stop(&env, SIGTERM, 60), 0);
    shop_teardown(&env);
}

START_TEST(from_14)
{
    run_pair(&(pair){"v14to17", V14, V17, NULL, false, false, false, true});
}
END_TEST

/* 16, where an origin not cleave's appears while the server filters. */
START_TEST(from_16)
{
    run_pair(&(pair){"v16to17", V16, V17, "  server_origin_filter: true\n",
                     false, true, false, false});
}
END_TEST

START_TEST(from_17)
{
    run_pair(&(pair){"v17to17", V17, V17, "  failover_slot: true\n"
                     "  server_origin_filter: true\n", false, false, false,
                     false});
}
END_TEST

/* 18 with an origin not cleave's: the server filter would drop its rows. */
START_TEST(from_18)
{
    run_pair(&(pair){"v18to17", V18, V17, "  server_origin_filter: true\n",
                     true, false, false, false});
}
END_TEST

/* A 17 slot made without failover gets it when the key is set later. */
START_TEST(to_14)
{
    run_pair(&(pair){"v17to14", V17, V14, NULL, false, false, true, true});
}
END_TEST

/*
 * failover_slot on a 16 source: analyze blocks on it, run fails at every
 * start naming the version, and no slot is made.
 */
START_TEST(failover_before_17)
{
    shop_env env;
    ck_assert(shop_setup(&env, clusters[V16], clusters[V17], "vfail16",
                         "  failover_slot: true\n", NULL));
    char *argv[] = {(char *)shop_cleave_bin(), "analyze", "-c", env.config,
                    NULL};
    rc_result r;
    ck_assert(rc_run(argv, &r));
    ck_assert_msg(r.status == 3 && strstr(r.out, "failover_slot needs "
                  "PostgreSQL 17 or later; the source runs PostgreSQL 16"),
                  "analyze exit %d:\n%s%s", r.status, r.out, r.err);
    rc_free(&r);
    ck_assert(shop_start(&env));
    if (!shop_wait_log(&env, "event=source_failed", 0, 30)) {
        shop_log_tail(&env, 20);
        ck_abort_msg("no source_failed for failover_slot on 16");
    }
    ck_assert_msg(shop_log_count(&env, "failover_slot needs PostgreSQL 17 "
                                 "or later; the source runs PostgreSQL 16",
                                 0) >= 1, "the error does not name 16");
    char *v = slot_value(&env, "count(*)");
    ck_assert_msg(v && strcmp(v, "0") == 0, "a slot was made");
    free(v);
    ck_assert_int_eq(shop_stop(&env, SIGTERM, 30), 0);
    shop_teardown(&env);
}
END_TEST

static bool start_clusters(void)
{
    /* Small enough that the workload's big transaction streams. */
    static const char *const settings[] = {
        "logical_decoding_work_mem = 64kB", NULL};
    for (int i = 0; i < NVERSIONS; i++) {
        clusters[i] = pgc_start_version(majors[i], settings);
        if (!clusters[i])
            return false;
    }
    return true;
}

int main(void)
{
    if (getenv("CLEAVE_SKIP_VERSIONS")) {
        printf("versions: skipped, CLEAVE_SKIP_VERSIONS says PostgreSQL 14, "
               "16, 17 or 18 is not installed (tests/setup-pg.sh 14 16 17 18 "
               "installs them)\n");
        return 77;
    }
    Suite *s = suite_create("versions");
    shop_add_case(s, "failover_before_17", failover_before_17, 60);
    shop_add_case(s, "from_14", from_14, 240);
    shop_add_case(s, "from_16", from_16, 240);
    shop_add_case(s, "from_17", from_17, 240);
    shop_add_case(s, "from_18", from_18, 240);
    shop_add_case(s, "to_14", to_14, 240);
    SRunner *sr = srunner_create(s);
    int failed = 1;
    if (start_clusters()) {
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
    }
    srunner_free(sr);
    for (int i = 0; i < NVERSIONS; i++)
        pgc_stop(clusters[i]);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
