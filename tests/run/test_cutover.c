/*
 * The cut-over end to end (PRODUCT.md §8): the real binary between the
 * shop clusters moves order_service's writes to its own database and
 * back, under a workload of the other services, refuses when it must,
 * and comes back right after being killed at each journaled step.
 */
#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "tests/support/runcmd.h"
#include "tests/support/shopenv.h"

static pgc_cluster *src, *tgt;

#define WAIT_S 120
#define ORDERS 1                 /* order_service, in shop_services */

/* The other services' workload; payment.sql's keys point into orders. */
static const char *const others[] = {
    "user_update.sql@3", "inventory.sql@3", "notification.sql@2",
    "payment.sql@3", NULL,
};

/* `cleave VERB -c CONFIG order_service [extra]`. */
static int move(shop_env *env, const char *verb, const char *extra1,
                const char *extra2, rc_result *r)
{
    char *argv[] = {(char *)shop_cleave_bin(), (char *)verb, "-c",
                    env->config, (char *)shop_services[ORDERS],
                    (char *)extra1, (char *)extra2, NULL};
    ck_assert_msg(rc_run(argv, r), "cannot run cleave %s", verb);
    return r->status;
}

static void move_ok(shop_env *env, const char *verb)
{
    rc_result r;
    int rc = move(env, verb, NULL, NULL, &r);
    if (rc != 0)
        shop_log_tail(env, 40);
    ck_assert_msg(rc == 0, "cleave %s exited %d: %s%s", verb, rc, r.out, r.err);
    ck_assert_msg(strstr(r.out, "paused") != NULL || strcmp(verb, "complete") == 0,
                  "cleave %s does not report the pause: %s", verb, r.out);
    rc_free(&r);
}

/* The SQLSTATE a statement ends with ("" when it worked). */
static void sqlstate_of(const pgc_cluster *c, const char *db, const char *sql,
                        char *state, size_t len)
{
    PGconn *conn = pgc_connect(c, db);
    ck_assert_msg(conn != NULL, "cannot connect to %s", db);
    PGresult *res = PQexec(conn, sql);
    const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    snprintf(state, len, "%s", s ? s : "");
    PQclear(res);
    PQfinish(conn);
}

static void assert_refused(const pgc_cluster *c, const char *db, const char *sql)
{
    char state[8];
    sqlstate_of(c, db, sql, state, sizeof state);
    ck_assert_msg(strcmp(state, "25006") == 0,
                  "%s on %s: SQLSTATE '%s', expected the fence's 25006", sql,
                  db, state);
}

static void assert_written(const pgc_cluster *c, const char *db, const char *sql)
{
    char state[8];
    sqlstate_of(c, db, sql, state, sizeof state);
    ck_assert_msg(state[0] == '\0', "%s on %s failed with SQLSTATE %s", sql, db,
                  state);
}

/* An order written through its identity sequence (no id given). */
static const char new_order[] =
    "INSERT INTO orders (order_uuid, user_id, status, currency, item_count) "
    "VALUES (gen_random_uuid(), 1, 'pending', 'EUR', 0)";

/* Whether every table of the shop is the same on both sides, quietly. */
static bool all_same(shop_env *env)
{
    char diff[512];
    for (int t = 0; t < SHOP_NTABLES; t++)
        if (!shop_table_equal(env, t, diff, sizeof diff))
            return false;
    return true;
}

/* Waits until both sides hold the same rows (the streams caught up). */
static void assert_converges(shop_env *env, const char *when)
{
    double deadline = shop_now_s() + WAIT_S;
    while (!all_same(env)) {
        if (shop_now_s() > deadline) {
            shop_all_equal(env);
            shop_log_tail(env, 60);
            ck_abort_msg("%s: the two sides still differ after %d s", when,
                         WAIT_S);
        }
        struct timespec ts = {0, 200 * 1000 * 1000};  /* polling a deadline */
        nanosleep(&ts, NULL);
    }
}

/* The status document's field of order_service, as JSON text. */
static char *service_field(shop_env *env, const char *field)
{
    json_t *doc = shop_status_json(env);
    char *value = NULL;
    size_t i;
    json_t *svc;
    json_array_foreach(json_object_get(doc, "services"), i, svc) {
        const char *n = json_string_value(json_object_get(svc, "name"));
        if (n && strcmp(n, shop_services[ORDERS]) == 0)
            value = json_dumps(json_object_get(svc, field),
                               JSON_ENCODE_ANY | JSON_COMPACT);
    }
    json_decref(doc);
    return value;
}

/* Whether any of order_service's tables is in a publication. */
static bool in_publication(shop_env *env)
{
    char *n = pgc_query_value(src, env->srcdb, "SELECT count(*) FROM "
                              "pg_publication_tables WHERE tablename IN "
                              "('orders', 'order_items', 'shipping_addresses')");
    ck_assert(n != NULL);
    bool in = atoi(n) > 0;
    free(n);
    return in;
}

static void assert_direction(shop_env *env, const char *want)
{
    char *got = service_field(env, "direction");
    ck_assert_msg(got && strcmp(got, want) == 0, "direction %s, expected %s",
                  got ? got : "(none)", want);
    free(got);
}

/*
 * Cut-over, rollback, cut-over again and complete, while the other
 * services write (payments pointing into the moving orders among them):
 * after each step exactly one side takes order_service's writes, the
 * other refuses them with 25006, and both hold the same rows.
 */
START_TEST(cutover_rollback_complete)
{
    shop_env env;
    shop_start_caught_up(&env, src, tgt, "cut_cycle", WAIT_S);
    const char *svcdb = env.dbs[ORDERS];
    assert_refused(tgt, svcdb, new_order);
    int bench = pgc_pgbench_start(src, env.srcdb, 2, 400, 1, others);
    ck_assert(bench > 0);
    move_ok(&env, "cutover");
    assert_refused(src, env.srcdb, new_order);
    assert_written(tgt, svcdb, new_order);
    assert_written(tgt, svcdb, "UPDATE orders SET note = 'moved' WHERE id = 7");
    assert_direction(&env, "\"reverse\"");
    char *pause = service_field(&env, "last_cutover_pause_ms");
    ck_assert_msg(pause && atof(pause) > 0, "no pause in status: %s", pause);
    free(pause);
    ck_assert_msg(pgc_pgbench_wait(bench), "the other services' workload "
                  "failed during the cut-over");
    assert_converges(&env, "after the cut-over");
    move_ok(&env, "rollback");
    assert_refused(tgt, svcdb, new_order);
    assert_written(src, env.srcdb, new_order);
    assert_direction(&env, "\"forward\"");
    assert_converges(&env, "after the rollback");
    move_ok(&env, "cutover");
    assert_written(tgt, svcdb, new_order);
    assert_converges(&env, "after the second cut-over");
    rc_result r;
    ck_assert_int_eq(move(&env, "complete", "--yes", NULL, &r), 0);
    rc_free(&r);
    assert_direction(&env, "\"complete\"");
    assert_refused(src, env.srcdb, new_order);
    assert_written(tgt, svcdb, new_order);
    /*
     * Nothing streams back now: verify compares the frozen copies as they
     * stand, says why, and does not wait for a reverse stream.
     */
    char *verify[] = {(char *)shop_cleave_bin(), "verify", "-c", env.config,
                      "--table", "orders", NULL};
    ck_assert(rc_run(verify, &r));
    ck_assert_msg(r.status == 3 && strstr(r.out, "extra in target") &&
                  strstr(r.out, "move is complete"),
                  "verify exited %d: %s%s", r.status, r.out, r.err);
    rc_free(&r);
    ck_assert(!in_publication(&env));
    /* A restart leaves the completed service's tables out too. */
    ck_assert_int_eq(shop_stop(&env, SIGTERM, 60), 0);
    ck_assert(shop_start(&env));
    ck_assert(shop_wait_caught_up(&env, WAIT_S));
    ck_assert_msg(!in_publication(&env), "the completed service's tables "
                  "are published again after a restart");
    assert_direction(&env, "\"complete\"");
    shop_stop_cleanly(&env);
}
END_TEST

/*
 * An open transaction holding a row of orders: the cut-over gives up
 * within its lock timeout, names the blocker, and nothing changed.
 */
START_TEST(lock_held_refused)
{
    shop_env env;
    shop_start_caught_up(&env, src, tgt, "cut_lock", WAIT_S);
    PGconn *holder = pgc_connect(src, env.srcdb);
    PQclear(PQexec(holder, "BEGIN"));
    PQclear(PQexec(holder, "UPDATE orders SET note = 'held' WHERE id = 3"));
    rc_result r;
    double t0 = shop_now_s();
    int rc = move(&env, "cutover", "--lock-timeout", "300", &r);
    double took = shop_now_s() - t0;
    ck_assert_msg(rc == 1, "exit %d, expected 1: %s%s", rc, r.out, r.err);
    ck_assert_msg(strstr(r.err, "lock not obtained") && strstr(r.err, "pid="),
                  "the blocker is not named: %s", r.err);
    ck_assert_msg(took < 10, "gave up after %.1f s", took);
    rc_free(&r);
    PQclear(PQexec(holder, "COMMIT"));
    PQfinish(holder);
    assert_written(src, env.srcdb, new_order);
    assert_refused(tgt, env.dbs[ORDERS], new_order);
    assert_direction(&env, "\"forward\"");
    assert_converges(&env, "after a refused cut-over");
    shop_stop_cleanly(&env);
}
END_TEST

/* order_service's object in a status answer, or NULL. */
static json_t *orders_status(json_t *st)
{
    size_t i;
    json_t *svc;
    json_array_foreach(json_object_get(st, "services"), i, svc) {
        const char *n = json_string_value(json_object_get(svc, "name"));
        if (n && strcmp(n, shop_services[ORDERS]) == 0)
            return svc;
    }
    return NULL;
}

/* order_service's PostgreSQL sink is more than 1000 bytes behind. */
static bool lagging(json_t *st, void *arg)
{
    (void)arg;
    size_t j;
    json_t *k;
    json_array_foreach(json_object_get(orders_status(st), "sinks"), j, k)
        if (json_integer_value(json_object_get(k, "lag_bytes")) > 1000)
            return true;
    return false;
}

/* Lag above the limit: refused before anything is blocked. */
START_TEST(lag_refused)
{
    shop_env env;
    shop_start_caught_up(&env, src, tgt, "cut_lag", WAIT_S);
    /* The service's apply waits on this lock, so its lag grows. */
    PGconn *blocker = pgc_connect(tgt, env.dbs[ORDERS]);
    PQclear(PQexec(blocker, "BEGIN"));
    PQclear(PQexec(blocker, "LOCK TABLE orders IN ACCESS EXCLUSIVE MODE"));
    assert_written(src, env.srcdb, "UPDATE orders SET note = 'lag' "
                   "WHERE id <= 2000");
    /* The lag check comes first: once it shows, nothing else is asked. */
    ck_assert_msg(shop_wait_status(&env, lagging, NULL, WAIT_S),
                  "order_service never lagged behind its held apply");
    rc_result r;
    int rc = move(&env, "cutover", "--lag-limit", "1000", &r);
    ck_assert_msg(rc == 1 && strstr(r.err, "above the limit"),
                  "exit %d: %s%s", rc, r.out, r.err);
    ck_assert_int_eq(rc, 1);
    rc_free(&r);
    PQclear(PQexec(blocker, "COMMIT"));
    PQfinish(blocker);
    assert_direction(&env, "\"forward\"");
    assert_written(src, env.srcdb, new_order);
    shop_stop_cleanly(&env);
}
END_TEST

/*
 * The blocker of verify_waits_on_reverse, in a process of its own: holds
 * the shared database's orders (the reverse apply waits), says so on
 * `ready`, and lets go once verify asks the source how far the reverse
 * stream has applied. Exits 0 when it saw verify ask, 1 if not in time.
 */
static int hold_until_verify_waits(const shop_env *env, int ready)
{
    PGconn *hold = pgc_connect(src, env->srcdb);
    PGresult *a = hold ? PQexec(hold, "BEGIN") : NULL;
    PGresult *b = a ? PQexec(hold, "LOCK TABLE orders IN SHARE MODE") : NULL;
    bool held = b && PQresultStatus(b) == PGRES_COMMAND_OK;
    PQclear(a);
    PQclear(b);
    if (write(ready, held ? "y" : "n", 1) != 1 || !held)
        return 1;
    bool asked = pgc_wait_until(src, env->srcdb, "SELECT count(*) > 0 FROM "
                                "pg_stat_activity WHERE application_name = "
                                "'cleave verify' AND query LIKE "
                                "'%pg_replication_origin_progress%'", 30);
    PQclear(PQexec(hold, "COMMIT"));
    PQfinish(hold);
    return asked ? 0 : 1;
}

/*
 * After a cut-over the shared database trails the service's: verify
 * waits on the reverse stream. A row written in the service's database
 * that the shared one has not applied yet (its apply held on a lock) is
 * waited for, not reported as extra in the target.
 */
START_TEST(verify_waits_on_reverse)
{
    shop_env env;
    shop_start_caught_up(&env, src, tgt, "cut_verify", WAIT_S);
    move_ok(&env, "cutover");
    assert_direction(&env, "\"reverse\"");
    int fds[2];
    ck_assert(pipe(fds) == 0);
    pid_t child = fork();
    ck_assert(child >= 0);
    if (child == 0)
        _exit(hold_until_verify_waits(&env, fds[1]));
    char held = 0;
    ck_assert(read(fds[0], &held, 1) == 1 && held == 'y');
    close(fds[0]);
    close(fds[1]);
    assert_written(tgt, env.dbs[ORDERS], new_order);
    char *argv[] = {(char *)shop_cleave_bin(), "verify", "-c", env.config,
                    "--table", "orders", NULL};
    rc_result r;
    ck_assert(rc_run(argv, &r));
    int status = 0;
    ck_assert(waitpid(child, &status, 0) == child);
    ck_assert_msg(r.status == 0, "verify exited %d: %s%s", r.status, r.out,
                  r.err);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
                  !strstr(r.out, "had not applied"),
                  "verify did not wait on the reverse stream: %s", r.out);
    rc_free(&r);
    assert_converges(&env, "after verify");
    /*
     * A row gone from the shared database alone (under an origin the
     * forward stream skips) is extra in the target, as the sides say.
     */
    PGconn *gone = pgc_connect(src, env.srcdb);
    const char *steps[] = {
        "SELECT pg_replication_origin_create('cleave_verify_test')",
        "SET session_replication_role = replica",
        "SELECT pg_replication_origin_session_setup('cleave_verify_test')",
        "DELETE FROM orders WHERE id = 5",
    };
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
        PGresult *res = PQexec(gone, steps[i]);
        ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK ||
                      PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s",
                      steps[i], PQerrorMessage(gone));
        PQclear(res);
    }
    PQfinish(gone);
    ck_assert(rc_run(argv, &r));
    ck_assert_msg(r.status == 3 && strstr(r.out, "extra in target: id=5"),
                  "verify exited %d: %s%s", r.status, r.out, r.err);
    rc_free(&r);
    shop_stop_cleanly(&env);
}
END_TEST

/*
 * With loop_prevention off (loops through other instances wanted), a
 * moved service's own writes, which its reverse stream applies to the
 * shared database, still never come back to its database: they came back
 * and were applied there twice (the INSERT failing on its own key, and
 * the service stopped).
 */
START_TEST(no_loop_prevention_no_echo)
{
    shop_env env;
    ck_assert(shop_setup_copy(&env, src, tgt, "cut_loops", 1,
                              "  loop_prevention: false\n", NULL));
    ck_assert(shop_start(&env));
    ck_assert(shop_wait_caught_up(&env, WAIT_S));
    move_ok(&env, "cutover");
    assert_written(tgt, env.dbs[ORDERS], new_order);
    assert_converges(&env, "after a write in the service's database");
    /* Caught up: the forward stream has read the reverse stream's apply. */
    bool caught_up = shop_wait_caught_up(&env, 60);
    char *state = service_field(&env, "state");
    ck_assert_msg(caught_up && state && strcmp(state, "\"streaming\"") == 0,
                  "order_service is %s after its own write came back",
                  state ? state : "unknown");
    free(state);
    shop_stop_cleanly(&env);
}
END_TEST

/*
 * A moved table's fence lost on the shared side (by hand; a partition
 * made there after the cut-over has none either), then a restart: the
 * table still streams back, as the journal says it moved. Read from the
 * fences, it was taken for one given after the cut-over and left out of
 * the reverse stream, and the service's writes to it never came back.
 */
START_TEST(fence_lost_still_moved)
{
    shop_env env;
    shop_start_caught_up(&env, src, tgt, "cut_lost", WAIT_S);
    move_ok(&env, "cutover");
    ck_assert(pgc_exec(src, env.srcdb, "ALTER TABLE order_items DISABLE "
                       "TRIGGER cleave_fence"));
    ck_assert_int_eq(shop_stop(&env, SIGTERM, 60), 0);
    ck_assert(shop_start(&env));
    ck_assert(shop_wait_caught_up(&env, WAIT_S));
    assert_direction(&env, "\"reverse\"");
    assert_written(tgt, env.dbs[ORDERS], "UPDATE order_items SET quantity "
                   "= quantity + 1 WHERE order_id <= 5");
    assert_converges(&env, "after a write to the table whose fence was lost");
    shop_stop_cleanly(&env);
}
END_TEST

/*
 * The fence of orders in database db disabled by hand, twice (the
 * keeper's first look may come after the first loss): each time the
 * keeper sets it again within a minute.
 */
static void fence_lost_twice(const pgc_cluster *c, const char *db)
{
    for (int k = 0; k < 2; k++) {
        ck_assert(pgc_exec(c, db, "ALTER TABLE orders DISABLE TRIGGER "
                           "cleave_fence"));
        char state[8] = "";
        double deadline = shop_now_s() + 60;
        while (strcmp(state, "25006") != 0 && shop_now_s() < deadline) {
            struct timespec ts = {0, 200 * 1000 * 1000};  /* a deadline poll */
            nanosleep(&ts, NULL);
            sqlstate_of(c, db, "INSERT INTO orders (order_uuid, user_id, "
                        "status, currency, item_count) SELECT "
                        "gen_random_uuid(), 1, 'pending', 'EUR', 0 WHERE false",
                        state, sizeof state);
        }
        ck_assert_msg(strcmp(state, "25006") == 0, "the fence lost the %s "
                      "time in %s was not set again", k ? "second" : "first",
                      db);
    }
    assert_refused(c, db, new_order);
}

/*
 * A fence lost by hand on the side that does not take the writes (the
 * service's database, then after a cut-over the shared one): the keeper
 * sets it again within a few turns. It looked once, at start, and on the
 * service's side only, so the table stayed writable on both sides.
 */
START_TEST(lost_fence_set_again)
{
    shop_env env;
    shop_start_caught_up(&env, src, tgt, "cut_refence", WAIT_S);
    assert_refused(tgt, env.dbs[ORDERS], new_order);
    fence_lost_twice(tgt, env.dbs[ORDERS]);
    /*
     * After a cut-over the shared copies are the fenced side: kept so too
     * (the keeper looked at the service's database only, and a write to
     * the shared copy would have been lost to the service).
     */
    move_ok(&env, "cutover");
    fence_lost_twice(src, env.srcdb);
    assert_converges(&env, "after the shared fences were set again");
    shop_stop_cleanly(&env);
}
END_TEST

/* Each journaled step SIGKILL can stop a cut-over at. */
static const struct {
    const char *step;
    bool committed;
} crashes[] = {
    {"prepared", false}, {"locked", false}, {"caught_up", false},
    {"fenced", false}, {"committed", true}, {"unfenced", true},
};

/* The invariant after a restart: one side takes the writes, the other refuses. */
static void assert_owner(shop_env *env, bool moved, const char *when)
{
    const char *db = env->dbs[ORDERS];
    if (moved) {
        assert_refused(src, env->srcdb, new_order);
        assert_written(tgt, db, new_order);
        assert_direction(env, "\"reverse\"");
    } else {
        assert_refused(tgt, db, new_order);
        assert_written(src, env->srcdb, new_order);
        assert_direction(env, "\"forward\"");
    }
    assert_converges(env, when);
}

/* One crash: cleave killed at `step` of a cut-over, then started again. */
static void kill_at(shop_env *env, int i)
{
    ck_assert(shop_stop(env, SIGTERM, 60) == 0);
    setenv("CLEAVE_TEST_CRASH_AT", crashes[i].step, 1);
    ck_assert(shop_start(env));
    unsetenv("CLEAVE_TEST_CRASH_AT");
    ck_assert(shop_wait_caught_up(env, WAIT_S));
    rc_result r;
    ck_assert_int_ne(move(env, "cutover", NULL, NULL, &r), 0);
    rc_free(&r);
    ck_assert_int_eq(shop_stop(env, SIGTERM, 30), 128 + SIGKILL);
    long mark = shop_log_size(env);
    ck_assert(shop_start(env));
    const char *said = crashes[i].committed ? "event=move_finished"
                                            : "event=move_undone";
    ck_assert_msg(shop_wait_log(env, said, mark, WAIT_S), "killed at %s: "
                  "no %s", crashes[i].step, said);
    ck_assert(shop_wait_caught_up(env, WAIT_S));
    assert_owner(env, crashes[i].committed, crashes[i].step);
    if (crashes[i].committed)
        move_ok(env, "rollback");
}

/*
 * cleave killed at each step of a cut-over, then started again: it
 * finishes the move if the switch committed, else undoes it, says which,
 * and one side only takes the writes.
 */
START_TEST(killed_at_each_step)
{
    shop_env env;
    shop_start_caught_up(&env, src, tgt, "cut_kill", WAIT_S);
    for (size_t i = 0; i < sizeof crashes / sizeof crashes[0]; i++)
        kill_at(&env, (int)i);
    shop_stop_cleanly(&env);
}
END_TEST

/*
 * cleave killed just after a cut-over's switch committed, and started
 * again while order_service's database refuses connections: the move
 * cannot be finished yet, but the daemon runs and the other services
 * stream; once the database takes connections the mover finishes the
 * move by itself. A start used to fail outright, stopping every service.
 */
START_TEST(recovery_waits_for_its_database)
{
    shop_env env;
    shop_start_caught_up(&env, src, tgt, "cut_recover_later", WAIT_S);
    ck_assert(shop_stop(&env, SIGTERM, 60) == 0);
    setenv("CLEAVE_TEST_CRASH_AT", "committed", 1);
    ck_assert(shop_start(&env));
    unsetenv("CLEAVE_TEST_CRASH_AT");
    ck_assert(shop_wait_caught_up(&env, WAIT_S));
    rc_result r;
    ck_assert_int_ne(move(&env, "cutover", NULL, NULL, &r), 0);
    rc_free(&r);
    ck_assert_int_eq(shop_stop(&env, SIGTERM, 30), 128 + SIGKILL);
    char sql[256];
    snprintf(sql, sizeof sql, "ALTER DATABASE %s ALLOW_CONNECTIONS false",
             env.dbs[ORDERS]);
    ck_assert(pgc_exec(tgt, "postgres", sql));
    long mark = shop_log_size(&env);
    ck_assert(shop_start(&env));
    ck_assert_msg(shop_wait_log(&env, "event=move_recovery_failed", mark,
                                WAIT_S), "no recovery was tried");
    assert_written(src, env.srcdb, "UPDATE users SET display_name = 'meanwhile' "
                   "WHERE id = 4");
    ck_assert_msg(pgc_wait_until(tgt, env.dbs[0], "SELECT display_name = "
                  "'meanwhile' FROM users WHERE id = 4", WAIT_S),
                  "user_service does not stream while order_service's move "
                  "waits");
    snprintf(sql, sizeof sql, "ALTER DATABASE %s ALLOW_CONNECTIONS true",
             env.dbs[ORDERS]);
    ck_assert(pgc_exec(tgt, "postgres", sql));
    if (!shop_wait_log(&env, "event=move_finished", mark, WAIT_S)) {
        shop_log_tail(&env, 40);
        ck_abort_msg("the move was not finished once the database was back");
    }
    ck_assert(shop_wait_caught_up(&env, WAIT_S));
    assert_owner(&env, true, "after the deferred recovery");
    shop_stop_cleanly(&env);
}
END_TEST

/*
 * Each CREATE TRIGGER on the shared database (the switch's fences) adds a
 * row whose deferred trigger sleeps 3 s at COMMIT: the switch's COMMIT
 * lands that long after it is sent.
 */
static const char slow_commit_sql[] =
    "CREATE TABLE slow_commit (x int);"
    "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$"
    "BEGIN PERFORM pg_sleep(3); RETURN NULL; END$$;"
    "CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON slow_commit "
    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit();"
    "CREATE FUNCTION note_trigger() RETURNS event_trigger LANGUAGE plpgsql "
    "AS $$BEGIN INSERT INTO slow_commit VALUES (1); END$$;"
    "CREATE EVENT TRIGGER note_trigger ON ddl_command_end "
    "WHEN TAG IN ('CREATE TRIGGER') EXECUTE FUNCTION note_trigger();";

/*
 * The cut-over's COMMIT sent and its answer lost (the test hook cuts the
 * connection), the commit landing 3 s later: the move waits for the
 * switch's backend to end, reads that it committed, and finishes. It read
 * the fences at once, took the switch for undone, dropped the reverse
 * slot and left both sides fenced once the commit landed.
 */
START_TEST(commit_answer_lost)
{
    shop_env env;
    shop_start_caught_up(&env, src, tgt, "cut_lost_answer", WAIT_S);
    ck_assert(shop_stop(&env, SIGTERM, 60) == 0);
    ck_assert(pgc_exec(src, env.srcdb, slow_commit_sql));
    setenv("CLEAVE_TEST_LOSE_COMMIT_REPLY", "1", 1);
    ck_assert(shop_start(&env));
    unsetenv("CLEAVE_TEST_LOSE_COMMIT_REPLY");
    ck_assert(shop_wait_caught_up(&env, WAIT_S));
    rc_result r;
    int rc = move(&env, "cutover", NULL, NULL, &r);
    ck_assert_msg(rc == 0, "cutover exited %d: %s%s", rc, r.out, r.err);
    rc_free(&r);
    ck_assert(pgc_exec(src, env.srcdb, "DROP EVENT TRIGGER note_trigger"));
    assert_owner(&env, true, "after the lost answer");
    shop_stop_cleanly(&env);
}
END_TEST

/*
 * A writer queued behind the switch's lock (held a while by the test
 * hook) gets the fence's error once the switch commits, never a write
 * into the old copy.
 */
START_TEST(queued_writer_fenced)
{
    shop_env env;
    ck_assert(shop_setup_copy(&env, src, tgt, "cut_queue", 1, NULL, NULL));
    setenv("CLEAVE_TEST_HOLD_LOCK_MS", "700", 1);
    ck_assert(shop_start(&env));
    unsetenv("CLEAVE_TEST_HOLD_LOCK_MS");
    ck_assert(shop_wait_caught_up(&env, WAIT_S));
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        execl(shop_cleave_bin(), "cleave", "cutover", "-c", env.config,
              shop_services[ORDERS], (char *)NULL);
        _exit(127);
    }
    ck_assert_msg(pgc_wait_until(src, env.srcdb, "SELECT EXISTS (SELECT 1 "
                  "FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                  "WHERE l.relation = 'orders'::regclass AND l.granted AND "
                  "l.mode = 'ShareRowExclusiveLock' AND "
                  "a.application_name = 'cleave-mover')", 30),
                  "the switch never held its lock");
    char state[8];
    sqlstate_of(src, env.srcdb, new_order, state, sizeof state);
    int status;
    ck_assert(waitpid(pid, &status, 0) == pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "the cut-over failed");
    ck_assert_msg(strcmp(state, "25006") == 0, "the queued write ended with "
                  "SQLSTATE '%s', not the fence's 25006", state);
    assert_converges(&env, "after the queued write");
    shop_stop_cleanly(&env);
}
END_TEST

#define ODD_TABLE "\"we;ird \"\"Tab\"\" ñ\""

/* The odd table's rows as a count and a digest, order-independent. */
static char *odd_digest(const pgc_cluster *c, const char *db)
{
    return pgc_query_value(c, db,
        "SELECT count(*) || ' ' || coalesce(md5(string_agg(r, '|' ORDER BY r)), "
        "'-') FROM (SELECT t::text AS r FROM " ODD_TABLE " t) s");
}

static bool odd_equal(const shop_env *env, const char *odd_db)
{
    char *a = odd_digest(src, env->srcdb), *b = odd_digest(tgt, odd_db);
    bool same = a && b && strcmp(a, b) == 0;
    free(a);
    free(b);
    return same;
}

static void odd_converges(shop_env *env, const char *odd_db)
{
    double deadline = shop_now_s() + WAIT_S;
    while (!odd_equal(env, odd_db)) {
        if (shop_now_s() > deadline) {
            shop_log_tail(env, 40);
            ck_abort_msg("the odd table differs after %d s", WAIT_S);
        }
        struct timespec ts = {0, 200 * 1000 * 1000};  /* polling a deadline */
        nanosleep(&ts, NULL);
    }
}

/* A service whose table and sequence need quoting everywhere, moved and back. */
START_TEST(hostile_names)
{
    static const char *const create =
        "CREATE TABLE " ODD_TABLE " (\"Sel ect\" serial PRIMARY KEY, "
        "\"from\" text)";
    static const char *const odd_insert =
        "INSERT INTO " ODD_TABLE " (\"from\") VALUES ('x; DROP TABLE y')";
    shop_env env;
    ck_assert(shop_setup(&env, src, tgt, "cut_odd", NULL, NULL));
    const char *odd_db = "cut_odd_service";
    ck_assert(pgc_createdb(tgt, odd_db));
    ck_assert(pgc_exec(src, env.srcdb, create));
    assert_written(src, env.srcdb, odd_insert);
    char *dsn = pgc_dsn(tgt, odd_db);
    char yaml[1024];
    snprintf(yaml, sizeof yaml, "  odd_service:\n"
             "    owned_tables: ['\"we;ird \"\"Tab\"\" ñ\"']\n"
             "    target:\n      postgres: \"%s\"\n", dsn);
    free(dsn);
    ck_assert(shop_config_append(&env, yaml));
    ck_assert(shop_start(&env));
    ck_assert(shop_wait_caught_up(&env, WAIT_S));
    char *argv[] = {(char *)shop_cleave_bin(), "cutover", "-c", env.config,
                    "odd_service", NULL};
    rc_result r;
    ck_assert(rc_run(argv, &r));
    ck_assert_msg(r.status == 0, "cutover: %s%s", r.out, r.err);
    rc_free(&r);
    assert_refused(src, env.srcdb, odd_insert);
    assert_written(tgt, odd_db, odd_insert);
    odd_converges(&env, odd_db);
    argv[1] = "rollback";
    ck_assert(rc_run(argv, &r));
    ck_assert_msg(r.status == 0, "rollback: %s%s", r.out, r.err);
    rc_free(&r);
    assert_refused(tgt, odd_db, odd_insert);
    assert_written(src, env.srcdb, odd_insert);
    odd_converges(&env, odd_db);
    shop_stop_cleanly(&env);
}
END_TEST

/* The whole configuration file, malloc'd, to put back later. */
static char *config_text(const shop_env *env)
{
    FILE *f = fopen(env->config, "r");
    ck_assert(f != NULL);
    char *text = calloc(1, 16384);
    ck_assert(text != NULL);
    size_t n = fread(text, 1, 16383, f);
    fclose(f);
    text[n] = '\0';
    return text;
}

static void put_config(const shop_env *env, const char *text)
{
    FILE *f = fopen(env->config, "w");
    ck_assert(f != NULL);
    fputs(text, f);
    ck_assert(fclose(f) == 0);
}

/* The configuration with `table` added to order_service's owned tables. */
static void own_one_more(shop_env *env, const char *table)
{
    char *text = config_text(env);
    static char out[16384];
    const char *at = strstr(text, "shipping_addresses]");
    ck_assert(at != NULL);
    snprintf(out, sizeof out, "%.*sshipping_addresses, %s%s",
             (int)(at - text), text, table, at + strlen("shipping_addresses"));
    free(text);
    put_config(env, out);
}

/* Waits until the query gives "t" on both sides. */
static void assert_both(shop_env *env, const char *sql, const char *what)
{
    ck_assert_msg(pgc_wait_until(src, env->srcdb, sql, WAIT_S) &&
                  pgc_wait_until(tgt, env->dbs[ORDERS], sql, WAIT_S),
                  "%s: not on both sides", what);
}

/*
 * The shop caught up as `name`, a table order_notes (50 rows) made on the
 * source but owned by no service yet, then order_service cut over.
 */
static void cut_over_with_notes(shop_env *env, const char *name)
{
    shop_start_caught_up(env, src, tgt, name, WAIT_S);
    ck_assert(pgc_exec(src, env->srcdb, "CREATE TABLE order_notes (id bigint "
                       "PRIMARY KEY, body text); INSERT INTO order_notes "
                       "SELECT g, 'note ' || g FROM generate_series(1, 50) g"));
    move_ok(env, "cutover");
}

/*
 * A table given to order_service after its cut-over (cleave stopped, the
 * configuration edited, started again): its moved tables keep taking
 * writes in its own database only, the reverse stream goes on; the new
 * table is copied, its writes stay on the shared side (its own copy
 * fenced) and stream forward; `complete` is refused naming it; a
 * rollback and a cut-over move it too.
 */
START_TEST(table_added_after_cutover)
{
    shop_env env;
    cut_over_with_notes(&env, "cut_added");
    const char *svcdb = env.dbs[ORDERS];
    ck_assert_int_eq(shop_stop(&env, SIGTERM, 60), 0);
    own_one_more(&env, "order_notes");
    long mark = shop_log_size(&env);
    ck_assert(shop_start(&env));
    if (!shop_wait_caught_up(&env, WAIT_S)) {
        shop_log_tail(&env, 60);
        ck_abort_msg("not caught up after order_notes was added");
    }
    ck_assert_int_eq(shop_log_count(&env, "event=table_not_moved service="
                                    "order_service table=public.order_notes",
                                    mark), 1);
    assert_direction(&env, "\"reverse\"");
    assert_refused(src, env.srcdb, new_order);
    assert_written(tgt, svcdb, "UPDATE orders SET note = 'own' WHERE id = 3");
    assert_both(&env, "SELECT note = 'own' FROM orders WHERE id = 3",
                "a moved table's write in its own database");
    const char *note = "INSERT INTO order_notes VALUES (1000, 'shared')";
    assert_refused(tgt, svcdb, note);
    assert_written(src, env.srcdb, note);
    assert_both(&env, "SELECT count(*) = 51 FROM order_notes",
                "the new table's copy and its write on the shared side");
    rc_result r;
    ck_assert_int_eq(move(&env, "complete", "--yes", NULL, &r), 1);
    ck_assert_msg(strstr(r.out, "order_notes") || strstr(r.err, "order_notes"),
                  "complete refused without naming order_notes: %s%s", r.out,
                  r.err);
    rc_free(&r);
    /* A rollback killed before its commit is undone, order_notes aside. */
    ck_assert_int_eq(shop_stop(&env, SIGTERM, 60), 0);
    setenv("CLEAVE_TEST_CRASH_AT", "fenced", 1);
    ck_assert(shop_start(&env));
    unsetenv("CLEAVE_TEST_CRASH_AT");
    ck_assert(shop_wait_caught_up(&env, WAIT_S));
    ck_assert_int_ne(move(&env, "rollback", NULL, NULL, &r), 0);
    rc_free(&r);
    ck_assert_int_eq(shop_stop(&env, SIGTERM, 30), 128 + SIGKILL);
    mark = shop_log_size(&env);
    ck_assert(shop_start(&env));
    if (!shop_wait_log(&env, "event=move_undone", mark, WAIT_S)) {
        shop_log_tail(&env, 40);
        ck_abort_msg("the killed rollback was not undone");
    }
    ck_assert(shop_wait_caught_up(&env, WAIT_S));
    assert_direction(&env, "\"reverse\"");
    assert_written(tgt, svcdb, "UPDATE orders SET note = 'kept' WHERE id = 3");
    assert_refused(tgt, svcdb, "INSERT INTO order_notes VALUES (1003, 'x')");
    assert_written(src, env.srcdb, "INSERT INTO order_notes VALUES (1004, 'y')");
    move_ok(&env, "rollback");
    move_ok(&env, "cutover");
    assert_refused(src, env.srcdb, "INSERT INTO order_notes VALUES (1001, 'x')");
    assert_written(tgt, svcdb, "INSERT INTO order_notes VALUES (1002, 'own')");
    assert_both(&env, "SELECT count(*) = 53 FROM order_notes",
                "the new table's write in its own database, once moved");
    assert_converges(&env, "after order_notes moved");
    shop_stop_cleanly(&env);
}
END_TEST

/* order_service's PostgreSQL sink's last error, malloc'd, or NULL. */
static char *orders_error(json_t *st)
{
    size_t j;
    json_t *k;
    json_array_foreach(json_object_get(orders_status(st), "sinks"), j, k) {
        const char *why = json_string_value(json_object_get(k, "last_error"));
        const char *kind = json_string_value(json_object_get(k, "kind"));
        if (why && kind && strcmp(kind, "postgres") == 0)
            return strdup(why);
    }
    return NULL;
}

/* order_service in error, its reason naming the table in arg. */
static bool refused_naming(json_t *st, void *arg)
{
    const char *state =
        json_string_value(json_object_get(orders_status(st), "state"));
    char *why = orders_error(st);
    bool refused = state && strcmp(state, "error") == 0 && why &&
                   strstr(why, arg) != NULL;
    free(why);
    return refused;
}

/*
 * A table given to order_service after its move is complete (cleave
 * stopped, the configuration edited, started again): refused, since the
 * service's database is the only writer of what moved and nothing
 * streams into it any more. Status shows order_service in error naming
 * the table and what to do, the log says it once, `cleave check` says it
 * from state_dir, nothing is copied into order_service's database, the
 * other services stream on; taking the table out of the configuration
 * again clears the error.
 */
START_TEST(table_added_after_complete)
{
    shop_env env;
    cut_over_with_notes(&env, "cut_done_added");
    const char *svcdb = env.dbs[ORDERS];
    rc_result r;
    ck_assert_int_eq(move(&env, "complete", "--yes", NULL, &r), 0);
    rc_free(&r);
    ck_assert_int_eq(shop_stop(&env, SIGTERM, 60), 0);
    char *before = config_text(&env);
    ck_assert(pgc_exec(src, env.srcdb, "CREATE TABLE order_tags (id bigint "
                       "PRIMARY KEY)"));
    own_one_more(&env, "order_notes, order_tags");
    /* check tells it from state_dir, before cleave starts: both tables. */
    char *check[] = {(char *)shop_cleave_bin(), "check", "-c", env.config,
                     NULL};
    ck_assert(rc_run(check, &r));
    ck_assert_msg(r.status == 78 && strstr(r.err, "public.order_notes") &&
                  strstr(r.err, "public.order_tags") &&
                  strstr(r.err, "complete"), "check exited %d: %s%s",
                  r.status, r.out, r.err);
    rc_free(&r);
    long mark = shop_log_size(&env);
    ck_assert(shop_start(&env));
    if (!shop_wait_status(&env, refused_naming, "public.order_notes",
                          WAIT_S)) {
        shop_log_tail(&env, 60);
        ck_abort_msg("order_service is not in error naming order_notes");
    }
    json_t *st = shop_status_json(&env);
    char *why = st ? orders_error(st) : NULL;
    json_decref(st);
    ck_assert_msg(why && strstr(why, "complete") && strstr(why, "owned_tables")
                  && strstr(why, "and 1 more"),
                  "the reason does not say why, what to do and how many: %s",
                  why);
    free(why);
    assert_direction(&env, "\"complete\"");
    const char *absent = "SELECT to_regclass('public.order_notes') IS NULL";
    char *none = pgc_query_value(tgt, svcdb, absent);
    ck_assert_msg(none && strcmp(none, "t") == 0, "order_notes was created in "
                  "%s", svcdb);
    free(none);
    /* The others stream on: user_service gets a write made now. */
    assert_written(src, env.srcdb, "UPDATE users SET display_name = 'after' "
                   "WHERE id = 4");
    ck_assert_msg(pgc_wait_until(tgt, env.dbs[0], "SELECT display_name = "
                  "'after' FROM users WHERE id = 4", WAIT_S),
                  "user_service stopped streaming beside the refusal");
    ck_assert_int_eq(shop_log_count(&env, "event=table_refused service="
                                    "order_service table=public.order_notes",
                                    mark), 1);
    ck_assert_int_eq(shop_log_count(&env, "event=table_refused service="
                                    "order_service table=public.order_tags",
                                    mark), 1);
    assert_written(tgt, svcdb, new_order);
    /* Taken out again: no refusal, every service streams. */
    ck_assert_int_eq(shop_stop(&env, SIGTERM, 60), 0);
    put_config(&env, before);
    free(before);
    ck_assert(rc_run(check, &r));
    ck_assert_msg(r.status == 0, "check exited %d: %s", r.status, r.err);
    rc_free(&r);
    mark = shop_log_size(&env);
    ck_assert(shop_start(&env));
    if (!shop_wait_caught_up(&env, WAIT_S)) {
        shop_log_tail(&env, 60);
        ck_abort_msg("not caught up once order_notes was taken out");
    }
    ck_assert_int_eq(shop_log_count(&env, "event=table_refused", mark), 0);
    assert_direction(&env, "\"complete\"");
    none = pgc_query_value(tgt, svcdb, absent);
    ck_assert(none && strcmp(none, "t") == 0);
    free(none);
    shop_stop_cleanly(&env);
}
END_TEST

/* How many reverse slots order_service's database holds. */
static int reverse_slots(const shop_env *env)
{
    char *n = pgc_query_value(tgt, env->dbs[ORDERS], "SELECT count(*) FROM "
                              "pg_replication_slots WHERE slot_name LIKE "
                              "'%\\_rev\\_%' AND database = "
                              "current_database()");
    ck_assert(n != NULL);
    int count = atoi(n);
    free(n);
    return count;
}

/* `cleave complete --yes` in a child process; its pid. */
static pid_t complete_in_child(shop_env *env)
{
    pid_t child = fork();
    ck_assert(child >= 0);
    if (child == 0) {
        rc_result r;
        int rc = move(env, "complete", "--yes", NULL, &r);
        fprintf(stderr, "complete exited %d: %s%s", rc, r.out, r.err);
        _exit(rc == 1 && strstr(r.err, "not finished") ? 0 : 1);
    }
    return child;
}

static bool completed(json_t *st, void *arg)
{
    (void)arg;
    size_t i;
    json_t *svc;
    json_array_foreach(json_object_get(st, "services"), i, svc) {
        const char *n = json_string_value(json_object_get(svc, "name"));
        const char *d = json_string_value(json_object_get(svc, "direction"));
        if (n && d && strcmp(n, shop_services[ORDERS]) == 0)
            return strcmp(d, "complete") == 0;
    }
    return false;
}

/*
 * `complete` first lets the reverse stream apply what the service's
 * database holds (a write whose apply waits on a lock reaches the shared
 * copy), and once past that it is never undone: a step that fails (here
 * the publication refusing changes) is retried by cleave until it works,
 * no other move is taken on meanwhile, and a restart does not make a new
 * reverse slot. It used to stop the reverse stream at once, dropping
 * what it had not applied, and a failure after that left the journal
 * saying "reverse", so the next start made a new slot past the writes
 * made meanwhile.
 */
START_TEST(complete_drains_then_finishes)
{
    shop_env env;
    shop_start_caught_up(&env, src, tgt, "cut_complete", WAIT_S);
    move_ok(&env, "cutover");
    ck_assert(pgc_exec(src, env.srcdb, "CREATE FUNCTION no_pub() RETURNS "
                       "event_trigger LANGUAGE plpgsql AS $$BEGIN RAISE "
                       "EXCEPTION 'the test refuses publication changes'; "
                       "END$$; CREATE EVENT TRIGGER no_pub ON "
                       "ddl_command_start WHEN TAG IN ('ALTER PUBLICATION') "
                       "EXECUTE FUNCTION no_pub()"));
    PGconn *hold = pgc_connect(src, env.srcdb);
    PQclear(PQexec(hold, "BEGIN"));
    PGresult *res = PQexec(hold, "LOCK TABLE orders IN SHARE MODE");
    ck_assert(PQresultStatus(res) == PGRES_COMMAND_OK);
    PQclear(res);
    assert_written(tgt, env.dbs[ORDERS], "UPDATE orders SET note = "
                   "'before complete' WHERE id = 3");
    long mark = shop_log_size(&env);
    pid_t child = complete_in_child(&env);
    bool draining = shop_wait_log(&env, "event=reverse_draining", mark, 60);
    PQclear(PQexec(hold, "COMMIT"));
    PQfinish(hold);
    int status = 0;
    ck_assert(waitpid(child, &status, 0) == child);
    ck_assert_msg(draining, "complete did not wait for the reverse stream");
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "complete did not stop short at the publication");
    char *note = pgc_query_value(src, env.srcdb, "SELECT note FROM orders "
                                 "WHERE id = 3");
    ck_assert_msg(note && strcmp(note, "before complete") == 0, "the write "
                  "made before complete is not in the shared copy: %s", note);
    free(note);
    /* Nothing else moves it meanwhile: a rollback would undo the journal. */
    rc_result r;
    ck_assert_int_eq(move(&env, "rollback", NULL, NULL, &r), 1);
    ck_assert_msg(strstr(r.err, "complete is not finished"), "rollback: %s",
                  r.err);
    rc_free(&r);
    ck_assert(pgc_exec(src, env.srcdb, "DROP EVENT TRIGGER no_pub"));
    if (!shop_wait_status(&env, completed, NULL, WAIT_S)) {
        shop_log_tail(&env, 40);
        ck_abort_msg("cleave did not finish the complete it had begun");
    }
    ck_assert_int_eq(shop_stop(&env, SIGTERM, 60), 0);
    ck_assert(shop_start(&env));
    ck_assert(shop_wait_caught_up(&env, WAIT_S));
    assert_direction(&env, "\"complete\"");
    ck_assert_int_eq(reverse_slots(&env), 0);
    ck_assert(!in_publication(&env));
    shop_stop_cleanly(&env);
}
END_TEST

/* Whether the reverse sink's last error in status says arg. */
static bool reverse_error_says(json_t *st, void *arg)
{
    size_t i, j;
    json_t *svc, *k;
    json_array_foreach(json_object_get(st, "services"), i, svc)
        json_array_foreach(json_object_get(svc, "sinks"), j, k) {
            const char *kind = json_string_value(json_object_get(k, "kind"));
            const char *e = json_string_value(json_object_get(k,
                                                              "last_error"));
            if (kind && strcmp(kind, "reverse") == 0 && e && strstr(e, arg))
                return true;
        }
    return false;
}

/*
 * The reverse slot dropped by hand while cleave was stopped: cleave does
 * not make a new one (it would start after the writes made meanwhile,
 * which the shared copies would never get) but says so in status, the
 * forward stream goes on, a rollback is refused before it locks
 * anything, and `complete` still ends the move.
 */
START_TEST(reverse_slot_gone)
{
    shop_env env;
    shop_start_caught_up(&env, src, tgt, "cut_slot_gone", WAIT_S);
    move_ok(&env, "cutover");
    ck_assert_int_eq(shop_stop(&env, SIGTERM, 60), 0);
    ck_assert(pgc_exec(tgt, env.dbs[ORDERS], "SELECT "
                       "pg_drop_replication_slot(slot_name) FROM "
                       "pg_replication_slots WHERE slot_name LIKE '%\\_rev\\_%' "
                       "AND database = current_database()"));
    ck_assert(shop_start(&env));
    if (!shop_wait_status(&env, reverse_error_says, "is gone", WAIT_S)) {
        shop_log_tail(&env, 40);
        ck_abort_msg("status does not say the reverse slot is gone");
    }
    ck_assert_int_eq(reverse_slots(&env), 0);
    assert_written(src, env.srcdb, "UPDATE users SET display_name = 'on' "
                   "WHERE id = 4");
    ck_assert_msg(pgc_wait_until(tgt, env.dbs[0], "SELECT display_name = "
                  "'on' FROM users WHERE id = 4", WAIT_S),
                  "the forward stream stopped beside the reverse one");
    /* Nothing can catch the shared copies up: refused before any lock. */
    rc_result r;
    ck_assert_int_eq(move(&env, "rollback", NULL, NULL, &r), 1);
    ck_assert_msg(strstr(r.err, "is error, not streaming"), "rollback: %s",
                  r.err);
    rc_free(&r);
    ck_assert_int_eq(move(&env, "complete", "--yes", NULL, &r), 0);
    ck_assert_msg(strstr(r.out, "was gone"), "complete does not say the slot "
                  "was gone: %s", r.out);
    rc_free(&r);
    assert_direction(&env, "\"complete\"");
    shop_stop_cleanly(&env);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cutover");
    shop_add_case(s, "cutover_rollback_complete", cutover_rollback_complete,
                  600);
    shop_add_case(s, "lock_held_refused", lock_held_refused, 300);
    shop_add_case(s, "lag_refused", lag_refused, 300);
    shop_add_case(s, "verify_waits_on_reverse", verify_waits_on_reverse, 300);
    shop_add_case(s, "no_loop_prevention_no_echo", no_loop_prevention_no_echo,
                  300);
    shop_add_case(s, "fence_lost_still_moved", fence_lost_still_moved, 300);
    shop_add_long_case(s, "lost_fence_set_again", lost_fence_set_again,
                       300);
    shop_add_case(s, "killed_at_each_step", killed_at_each_step, 900);
    shop_add_case(s, "hostile_names", hostile_names, 300);
    shop_add_case(s, "queued_writer_fenced", queued_writer_fenced, 300);
    shop_add_case(s, "table_added_after_cutover", table_added_after_cutover,
                  300);
    shop_add_case(s, "table_added_after_complete", table_added_after_complete,
                  300);
    shop_add_case(s, "complete_drains_then_finishes",
                  complete_drains_then_finishes, 300);
    shop_add_case(s, "reverse_slot_gone", reverse_slot_gone, 300);
    shop_add_case(s, "recovery_waits_for_its_database",
                  recovery_waits_for_its_database, 300);
    shop_add_case(s, "commit_answer_lost", commit_answer_lost, 300);
    /*
     * Each case leaves its five origins (with progress, each holding a
     * replication state slot), and killed runs leave sessions holding
     * them until they notice.
     */
    static const char *const tgt_settings[] = {"max_replication_slots = 128",
                                               NULL};
    return shop_run_suite(s, tgt_settings, &src, &tgt);
}
