/*
 * `cleave resync` end to end (PRODUCT.md §2): the real binary copies one
 * table, or a whole service, again inside a fresh snapshot while the
 * other services stream on, then streams it from there. Target tables
 * are damaged behind cleave's back first (in the replica role, as the
 * fence refuses plain writes); each test ends with every table equal to
 * its source.
 */
#include <check.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/support/runcmd.h"
#include "tests/support/shopenv.h"

static pgc_cluster *src, *tgt;

#define WAIT_S 120
#define USERS 0                  /* user_service, in shop_services */
#define ORDERS 1                 /* order_service */
#define INVENTORY 3              /* inventory_service */

static const char *const mix[] = {
    "new_order.sql@4", "user_update.sql@3", "inventory.sql@3",
    "notification.sql@2", "refund.sql@1", NULL,
};

/* Rows changed and deleted in a target behind cleave's back. */
static void damage(shop_env *env, int service, const char *sql)
{
    char all[1024];
    snprintf(all, sizeof all, "SET session_replication_role = replica; %s",
             sql);
    ck_assert(pgc_exec(tgt, env->dbs[service], all));
}

static int table_index(const char *name)
{
    for (int t = 0; t < SHOP_NTABLES; t++)
        if (strcmp(shop_tables[t], name) == 0)
            return t;
    ck_abort_msg("no shop table %s", name);
    return -1;
}

static void assert_differs(shop_env *env, const char *table)
{
    char diff[512];
    ck_assert_msg(!shop_table_equal(env, table_index(table), diff, sizeof diff),
                  "%s: the damage to %s does not show", env->name, table);
}

/* `cleave resync` in the background, its output into env's directory. */
static pid_t resync_start(shop_env *env, int service, const char *table,
                          char *out, size_t outlen)
{
    snprintf(out, outlen, "%s.resync.%d", env->log, (int)getpid());
    char *argv[] = {(char *)shop_cleave_bin(), "resync", "-c", env->config,
                    (char *)shop_services[service], table ? "--table" : NULL,
                    (char *)table, NULL};
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
            _exit(127);
        execv(argv[0], argv);
        _exit(127);
    }
    ck_assert(pid > 0);
    return pid;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    static char buf[16384];
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
    return buf;
}

/* A service's state in a status document, or "". */
static const char *state_of(json_t *st, const char *service)
{
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(st, "services"), i, s) {
        const char *n = json_string_value(json_object_get(s, "name"));
        const char *v = json_string_value(json_object_get(s, "state"));
        if (n && v && strcmp(n, service) == 0)
            return v;
    }
    return "";
}

/*
 * Waits for the resync command to exit, asking the status meanwhile:
 * every service but `service` must stream at each look. Its exit code.
 */
static int watch_resync(shop_env *env, pid_t pid, int service,
                        const char *out)
{
    double deadline = shop_now_s() + WAIT_S;
    int looks = 0, st = 0;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        json_t *doc = shop_status_json(env);
        for (int i = 0; doc && i < SHOP_NSERVICES; i++) {
            const char *s = state_of(doc, shop_services[i]);
            if (i != service && strcmp(s, "streaming") != 0) {
                shop_log_tail(env, 40);
                ck_abort_msg("%s: %s is %s during the resync of %s",
                             env->name, shop_services[i], s,
                             shop_services[service]);
            }
        }
        looks += doc != NULL;
        json_decref(doc);
        if (shop_now_s() > deadline) {
            kill(pid, SIGKILL);
            shop_log_tail(env, 60);
            ck_abort_msg("%s: the resync did not end in %d s: %s", env->name,
                         WAIT_S, read_text(out));
        }
        struct timespec ts = {0, 200 * 1000 * 1000};  /* polling a deadline */
        nanosleep(&ts, NULL);
    }
    ck_assert_msg(looks > 0, "%s: the status never answered", env->name);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void assert_resync_ok(shop_env *env, pid_t pid, int service,
                             const char *out)
{
    int rc = watch_resync(env, pid, service, out);
    const char *text = read_text(out);
    if (rc != 0)
        shop_log_tail(env, 60);
    ck_assert_msg(rc == 0, "%s: cleave resync exited %d: %s", env->name, rc,
                  text);
    /*
     * Its first look may come after a small copy is over: the copy itself
     * is checked in the log, the command's end here.
     */
    ck_assert_msg(strstr(text, "streams again"),
                  "%s: the resync's progress is missing: %s", env->name, text);
    unlink(out);
}

/*
 * One table, referenced by another table of its service, damaged and
 * copied again under a workload of every service: the copy empties it
 * (DELETE in the replica role, since TRUNCATE refuses a referenced
 * table), the other services keep streaming, everything ends equal.
 */
START_TEST(table_under_load)
{
    shop_env env;
    shop_start_caught_up(&env, src, tgt, "rs_table", WAIT_S);
    damage(&env, ORDERS, "DELETE FROM orders WHERE id % 9 = 0; "
           "UPDATE orders SET note = 'damaged' WHERE id % 7 = 0;");
    assert_differs(&env, "orders");
    char *before = pgc_query_value(src, env.srcdb, "SELECT max(id) FROM orders");
    ck_assert(before != NULL);
    int bench = pgc_pgbench_start(src, env.srcdb, 2, 800, 1, mix);
    ck_assert(bench > 0);
    /* The workload writes orders before the resync asks. */
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT max(id) > %s FROM orders", before);
    free(before);
    ck_assert(pgc_wait_until(src, env.srcdb, sql, WAIT_S));
    long mark = shop_log_size(&env);
    char out[600];
    pid_t pid = resync_start(&env, ORDERS, "orders", out, sizeof out);
    assert_resync_ok(&env, pid, ORDERS, out);
    /*
     * Whether its stream was held during the copy depends on timing: the
     * damage failed its sink, which may reopen only after the copy ended
     * (then nothing was held). What must hold either way: the one table
     * copied again, and everything equal under the load (below).
     */
    ck_assert(shop_log_count(&env, "event=resync_started service=order_service "
                             "table=\"public.orders\"", mark) == 1);
    ck_assert(shop_log_count(&env, "event=table_copied service=order_service "
                             "table=public.orders", mark) == 1);
    ck_assert_msg(shop_log_count(&env, "event=table_copied", mark) == 1,
                  "a table other than orders was copied again");
    ck_assert(pgc_pgbench_wait(bench));
    shop_assert_caught_up_and_equal(&env, WAIT_S);
    shop_stop_cleanly(&env);
}
END_TEST

/*
 * A whole service (users referenced by its two other tables, one of
 * them keyless) damaged and copied again while its own workload runs.
 */
START_TEST(whole_service)
{
    shop_env env;
    shop_start_caught_up(&env, src, tgt, "rs_service", WAIT_S);
    damage(&env, USERS, "DELETE FROM user_sessions WHERE random() < 0.1; "
           "DELETE FROM users WHERE id % 13 = 0; "
           "UPDATE user_preferences SET theme = 9 WHERE user_id % 5 = 0;");
    assert_differs(&env, "user_sessions");
    assert_differs(&env, "users");
    static const char *const users_only[] = {"user_update.sql", NULL};
    int bench = pgc_pgbench_start(src, env.srcdb, 1, 400, 1, users_only);
    ck_assert(bench > 0);
    long mark = shop_log_size(&env);
    char out[600];
    pid_t pid = resync_start(&env, USERS, NULL, out, sizeof out);
    assert_resync_ok(&env, pid, USERS, out);
    ck_assert_int_eq(shop_log_count(&env, "event=table_copied service="
                                    "user_service", mark), 3);
    ck_assert(pgc_pgbench_wait(bench));
    shop_assert_caught_up_and_equal(&env, WAIT_S);
    shop_stop_cleanly(&env);
}
END_TEST

/* Runs sql on conn; aborts the test when it fails. */
static void exec_on(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s: %s", sql,
                  PQerrorMessage(conn));
    PQclear(res);
}

/*
 * A resync of user_service (or of its `table`) started while open_txn is
 * open, which commits once the copy's snapshot waits for it: the commit
 * lands in the hold, before the snapshot. The resync ends, every table
 * equal.
 */
static void resync_past(shop_env *env, PGconn *open_txn, const char *table)
{
    long mark = shop_log_size(env);
    char out[600];
    pid_t pid = resync_start(env, USERS, table, out, sizeof out);
    ck_assert(shop_wait_log(env, "event=service_state service=user_service "
                            "state=initial_copy sink=postgres", mark, WAIT_S));
    ck_assert(shop_wait_log(env, "event=slot_creating", mark, WAIT_S));
    exec_on(open_txn, "COMMIT");
    PQfinish(open_txn);
    assert_resync_ok(env, pid, USERS, out);
    shop_assert_caught_up_and_equal(env, WAIT_S);
}

/*
 * The service's last write lands in the hold but before the copy's
 * snapshot (the snapshot waits for it to commit), and nothing follows:
 * what was held is nothing for the target, and the resync still ends.
 */
START_TEST(quiet_after_snapshot)
{
    shop_env env;
    shop_start_caught_up(&env, src, tgt, "rs_quiet", WAIT_S);
    damage(&env, USERS, "DELETE FROM users WHERE id % 11 = 0");
    PGconn *open_txn = pgc_connect(src, env.srcdb);
    ck_assert(open_txn != NULL);
    exec_on(open_txn, "BEGIN");
    exec_on(open_txn, "UPDATE users SET last_login_at = now() WHERE id = 1");
    resync_past(&env, open_txn, NULL);
    shop_stop_cleanly(&env);
}
END_TEST

/*
 * A TRUNCATE ... CASCADE held during a resync of one table, committed
 * before the copy's snapshot: it is replayed for the tables not copied
 * again only, and does not reach the table just copied, whose copy has
 * the rows written after it. It reached it before: the target's
 * TRUNCATE users CASCADE emptied the fresh user_preferences, and the row
 * inserted after it was lost.
 */
START_TEST(truncate_cut_down)
{
    shop_env env;
    shop_start_caught_up(&env, src, tgt, "rs_trunc", WAIT_S);
    PGconn *open_txn = pgc_connect(src, env.srcdb);
    ck_assert(open_txn != NULL);
    exec_on(open_txn, "BEGIN");
    exec_on(open_txn, "TRUNCATE users CASCADE");
    exec_on(open_txn, "INSERT INTO users (id, external_id, email, full_name) "
            "OVERRIDING SYSTEM VALUE VALUES (900001, gen_random_uuid(), "
            "'t@x.io', 'T')");
    exec_on(open_txn, "INSERT INTO user_preferences (user_id) VALUES (900001)");
    resync_past(&env, open_txn, "user_preferences");
    shop_stop_cleanly(&env);
}
END_TEST

static int resync_now(shop_env *env, const char *service, const char *table,
                      rc_result *r)
{
    char *argv[] = {(char *)shop_cleave_bin(), "resync", "-c", env->config,
                    (char *)service, table ? "--table" : NULL, (char *)table,
                    NULL};
    ck_assert(rc_run(argv, r));
    return r->status;
}

static void assert_refused(shop_env *env, const char *service,
                           const char *table, int want, const char *why)
{
    rc_result r;
    int rc = resync_now(env, service, table, &r);
    ck_assert_msg(rc == want && strstr(r.err, why),
                  "resync %s %s: exit %d (expected %d, '%s'): %s%s", service,
                  table ? table : "", rc, want, why, r.out, r.err);
    rc_free(&r);
}

static bool copying(json_t *st, void *arg)
{
    return strcmp(state_of(st, arg), "initial_copy") == 0;
}

/*
 * What is refused: a table or service the configuration does not have
 * (2, before the daemon is asked), and a resync of a service whose copy
 * is under way (1; held up here by a lock on the target table). The
 * first resync names its table quoted, as the configuration may.
 */
START_TEST(refusals)
{
    shop_env env;
    shop_start_caught_up(&env, src, tgt, "rs_refuse", WAIT_S);
    assert_refused(&env, "user_service", "nosuch", 2, "does not own");
    assert_refused(&env, "user_service", "orders", 2, "does not own");
    assert_refused(&env, "nosuch_service", NULL, 2, "unknown service");
    PGconn *lock = pgc_connect(tgt, env.dbs[INVENTORY]);
    ck_assert(lock != NULL);
    PGresult *res = PQexec(lock, "BEGIN; LOCK TABLE products IN SHARE MODE");
    ck_assert(PQresultStatus(res) == PGRES_COMMAND_OK);
    PQclear(res);
    char out[600];
    pid_t pid = resync_start(&env, INVENTORY, "public.\"products\"", out,
                             sizeof out);
    if (!shop_wait_status(&env, copying, (void *)shop_services[INVENTORY],
                          WAIT_S))
        ck_abort_msg("inventory_service never showed its copy: %s",
                     read_text(out));
    assert_refused(&env, "inventory_service", NULL, 1, "is being copied");
    assert_refused(&env, "inventory_service", "warehouses", 1,
                   "is being copied");
    res = PQexec(lock, "COMMIT");
    PQclear(res);
    PQfinish(lock);
    assert_resync_ok(&env, pid, INVENTORY, out);
    shop_assert_caught_up_and_equal(&env, WAIT_S);
    shop_stop_cleanly(&env);
}
END_TEST

static void exec_or_abort(const char *db, const char *sql)
{
    ck_assert_msg(pgc_exec(src, db, sql), "%s failed", sql);
}

/* The source keeps at most 1MB of WAL for a slot (NULL: the default). */
static void set_keep_size(const char *size)
{
    char sql[128];
    snprintf(sql, sizeof sql, size ? "ALTER SYSTEM SET max_slot_wal_keep_size "
             "= '%s'" : "ALTER SYSTEM RESET max_slot_wal_keep_size", size);
    exec_or_abort("postgres", sql);
    exec_or_abort("postgres", size ? "ALTER SYSTEM SET wal_keep_size = 0"
                                   : "ALTER SYSTEM RESET wal_keep_size");
    exec_or_abort("postgres", "SELECT pg_reload_conf()");
}

/* WAL written and checkpointed until the server invalidates the slot. */
static bool push_until_lost(const shop_env *env, double timeout_s)
{
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT wal_status = 'lost' FROM "
             "pg_replication_slots WHERE slot_name = 'cleave_%s'", env->name);
    double deadline = shop_now_s() + timeout_s;
    while (shop_now_s() < deadline) {
        exec_or_abort(env->srcdb, "SELECT pg_logical_emit_message(false, "
                      "'test', repeat('x', 100000)); SELECT pg_switch_wal(); "
                      "CHECKPOINT");
        char *lost = pgc_query_value(src, env->srcdb, sql);
        bool yes = lost && strcmp(lost, "t") == 0;
        free(lost);
        if (yes)
            return true;
    }
    return false;
}

/* Every service past its initial sync: streaming, or stopped on a change. */
static bool all_past_copy(json_t *st, void *arg)
{
    (void)arg;
    for (int i = 0; i < SHOP_NSERVICES; i++) {
        const char *s = state_of(st, shop_services[i]);
        if (strcmp(s, "streaming") != 0 && strcmp(s, "error") != 0)
            return false;
    }
    return true;
}

/*
 * The way back after a lost slot (docs/operations.md): changes made
 * while cleave was stopped, the slot invalidated meanwhile; the slot
 * dropped, cleave started (a new slot, the targets' tables used as they
 * are, the gap in them), then every service resynced: all equal again.
 */
START_TEST(lost_slot_way_back)
{
    shop_env env;
    shop_start_caught_up(&env, src, tgt, "rs_lost", WAIT_S);
    set_keep_size("1MB");
    ck_assert_int_eq(shop_stop(&env, SIGTERM, 60), 0);
    exec_or_abort(env.srcdb, "UPDATE users SET last_login_at = now() WHERE "
                  "id % 10 = 0; UPDATE orders SET note = 'gap' WHERE id % 10 "
                  "= 0; UPDATE payments SET provider_ref = 'gap' WHERE id % 10 "
                  "= 0; UPDATE products SET price = price + 1 WHERE id % 10 = 0;"
                  " DELETE FROM notifications WHERE id % 10 = 0");
    ck_assert_msg(push_until_lost(&env, WAIT_S), "the slot was not invalidated");
    set_keep_size(NULL);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT pg_drop_replication_slot('cleave_%s')",
             env.name);
    exec_or_abort(env.srcdb, sql);
    long mark = shop_log_size(&env);
    ck_assert(shop_start(&env));
    if (!shop_wait_status(&env, all_past_copy, NULL, WAIT_S)) {
        shop_log_tail(&env, 60);
        ck_abort_msg("cleave did not start streaming from a new slot");
    }
    ck_assert_int_eq(shop_log_count(&env, "event=table_used_as_is", mark),
                     SHOP_NTABLES);
    assert_differs(&env, "users");
    assert_differs(&env, "notifications");
    for (int i = 0; i < SHOP_NSERVICES; i++) {
        rc_result r;
        int rc = resync_now(&env, shop_services[i], NULL, &r);
        if (rc != 0)
            shop_log_tail(&env, 60);
        ck_assert_msg(rc == 0, "resync %s: exit %d: %s%s", shop_services[i],
                      rc, r.out, r.err);
        rc_free(&r);
    }
    shop_assert_caught_up_and_equal(&env, WAIT_S);
    shop_stop_cleanly(&env);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("resync");
    shop_add_case(s, "table_under_load", table_under_load, 300);
    shop_add_case(s, "whole_service", whole_service, 300);
    shop_add_case(s, "quiet_after_snapshot", quiet_after_snapshot, 300);
    shop_add_case(s, "truncate_cut_down", truncate_cut_down, 300);
    shop_add_case(s, "refusals", refusals, 300);
    /* Last: it changes the source's max_slot_wal_keep_size meanwhile. */
    shop_add_case(s, "lost_slot_way_back", lost_slot_way_back, 300);
    return shop_run_suite(s, NULL, &src, &tgt);
}
