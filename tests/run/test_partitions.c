/*
 * Partitioned tables owned by a service (PRODUCT.md §3), on PostgreSQL 15
 * at both ends: a range-partitioned and a list-partitioned table created,
 * copied (each partition a job of its own) and streamed with rows moving
 * between partitions by UPDATE;
 * ATTACH PARTITION of a table already holding rows and DETACH PARTITION
 * on the source while a writer inserts and updates: the target reads as
 * the source (the attached rows in, the detached ones out) and `cleave
 * verify` is clean; `cleave analyze` checks the replica identity of every
 * partition, not only the root's, and names the one that blocks.
 */
#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support/runcmd.h"
#include "tests/support/shopenv.h"

static pgc_cluster *src, *tgt;

static const char SCHEMA[] =
    "CREATE SEQUENCE events_id;"
    "CREATE TABLE events (id bigint NOT NULL DEFAULT nextval('events_id'),"
    "  at date NOT NULL, amount numeric(10,2) NOT NULL, note text,"
    "  PRIMARY KEY (id, at)) PARTITION BY RANGE (at);"
    "CREATE TABLE events_2025 PARTITION OF events"
    "  FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');"
    "CREATE TABLE events_2026 PARTITION OF events"
    "  FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');"
    "CREATE TABLE tickets (id int NOT NULL, region text NOT NULL,"
    "  title text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);"
    "CREATE TABLE tickets_eu PARTITION OF tickets FOR VALUES IN ('eu', 'uk');"
    "CREATE TABLE tickets_us PARTITION OF tickets FOR VALUES IN ('us');"
    "CREATE TABLE tickets_rest PARTITION OF tickets DEFAULT;"
    "INSERT INTO events (at, amount, note) SELECT DATE '2025-01-01' + g % 700,"
    "  g * 1.5, 'n' || g FROM generate_series(1, 2000) g;"
    "INSERT INTO tickets SELECT g, (ARRAY['eu', 'uk', 'us', 'jp'])[1 + g % 4],"
    "  't' || g FROM generate_series(1, 400) g;";

/* Rows moving between partitions, both kinds, and into DEFAULT. */
static const char MOVES[] =
    "UPDATE events SET at = at + 365 WHERE id % 10 = 0 AND at < '2026-01-01';"
    "UPDATE events SET amount = amount + 1 WHERE id % 7 = 0;"
    "DELETE FROM events WHERE id % 13 = 0;"
    "INSERT INTO events (at, amount) SELECT DATE '2026-03-01' + g, g"
    "  FROM generate_series(1, 50) g;"
    "UPDATE tickets SET region = 'us' WHERE region = 'eu' AND id % 3 = 0;"
    "UPDATE tickets SET region = 'br' WHERE region = 'uk' AND id % 5 = 0;"
    "UPDATE tickets SET region = 'eu' WHERE region = 'jp' AND id % 2 = 0;"
    "UPDATE tickets SET title = 'moved' WHERE id % 11 = 0;"
    "DELETE FROM tickets WHERE id % 17 = 0;";

/* Rows as a multiset, each with the partition that holds it. */
static char *digest(const pgc_cluster *c, const char *db, const char *table)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT count(*) || ' ' || coalesce(md5(string_agg(r, '|' "
             "ORDER BY r)), '-') FROM (SELECT t.tableoid::regclass::text "
             "|| t::text AS r FROM %s t) s", table);
    return pgc_query_value(c, db, sql);
}

static bool same_rows(const shop_env *env, const char *db, const char *table)
{
    char *a = digest(src, env->srcdb, table);
    char *b = digest(tgt, db, table);
    bool eq = a && b && strcmp(a, b) == 0;
    if (!eq)
        fprintf(stderr, "%s differs: source %s, target %s\n", table,
                a ? a : "?", b ? b : "?");
    free(a);
    free(b);
    return eq;
}

/* A source with the schema, the service `books` owning `owned`. */
static void setup(shop_env *env, const char *name, const char *owned,
                  const char *extra_sql)
{
    memset(env, 0, sizeof *env);
    env->src = src;
    env->tgt = tgt;
    snprintf(env->name, sizeof env->name, "%s", name);
    snprintf(env->srcdb, sizeof env->srcdb, "%s_src", name);
    snprintf(env->dbs[0], sizeof env->dbs[0], "%s_books", name);
    snprintf(env->state_dir, sizeof env->state_dir, "%s/state_%s", src->root,
             name);
    snprintf(env->config, sizeof env->config, "%s/%s.yaml", src->root, name);
    snprintf(env->log, sizeof env->log, "%s/%s.log", src->root, name);
    ck_assert(pgc_createdb(src, env->srcdb));
    ck_assert(pgc_exec(src, env->srcdb, SCHEMA));
    if (extra_sql)
        ck_assert(pgc_exec(src, env->srcdb, extra_sql));
    ck_assert(pgc_createdb(tgt, env->dbs[0]));
    char *sdsn = pgc_dsn(src, env->srcdb);
    char *bdsn = pgc_dsn(tgt, env->dbs[0]);
    FILE *f = fopen(env->config, "w");
    ck_assert(f);
    fprintf(f, "name: %s\nsource:\n  dsn: \"%s\"\nstate_dir: %s\n"
            "status_socket: %s/status.sock\nlog_level: debug\nservices:\n"
            "  books:\n    owned_tables: [%s]\n    target:\n"
            "      postgres: \"%s\"\n", name, sdsn, env->state_dir,
            env->state_dir, owned, bdsn);
    ck_assert(fclose(f) == 0);
    free(sdsn);
    free(bdsn);
}

static void caught_up(shop_env *env)
{
    if (!shop_wait_caught_up(env, 90)) {
        shop_log_tail(env, 40);
        ck_abort_msg("%s: cleave did not catch up", env->name);
    }
}

static void verify_clean(shop_env *env)
{
    char *argv[] = {(char *)shop_cleave_bin(), "verify", "-c", env->config,
                    NULL};
    rc_result r;
    ck_assert(rc_run(argv, &r));
    if (r.status != 0)
        fprintf(stderr, "verify exit %d\n%s%s", r.status, r.out, r.err);
    ck_assert_int_eq(r.status, 0);
    rc_free(&r);
}

static const char PARTITIONS_SQL[] =
    "SELECT string_agg(c.relname || ' ' || pg_get_expr(c.relpartbound, c.oid),"
    " ', ' ORDER BY c.relname) FROM pg_inherits i"
    " JOIN pg_class c ON c.oid = i.inhrelid"
    " WHERE i.inhparent = '%s'::regclass";

static void same_partitions(const shop_env *env, const char *table)
{
    char sql[512];
    snprintf(sql, sizeof sql, PARTITIONS_SQL, table);
    char *a = pgc_query_value(src, env->srcdb, sql);
    char *b = pgc_query_value(tgt, env->dbs[0], sql);
    ck_assert_msg(a && b && strcmp(a, b) == 0, "%s: source partitions %s, "
                  "target %s", table, a ? a : "?", b ? b : "?");
    free(a);
    free(b);
}

/* Range and list: created, copied, rows moved between partitions. */
START_TEST(range_and_list)
{
    shop_env env;
    setup(&env, "parts", "events, tickets", NULL);
    ck_assert(shop_start(&env));
    caught_up(&env);
    same_partitions(&env, "events");
    same_partitions(&env, "tickets");
    /* Each partition a job of its own, the copy threads side by side. */
    ck_assert_int_eq(shop_log_count(&env, "event=part_copied service=books "
                                    "table=public.events part=", 0), 2);
    ck_assert_int_eq(shop_log_count(&env, "event=part_copied service=books "
                                    "table=public.tickets part=", 0), 3);
    ck_assert_int_eq(shop_log_count(&env, "event=table_copied", 0), 2);
    ck_assert(same_rows(&env, env.dbs[0], "events"));
    ck_assert(same_rows(&env, env.dbs[0], "tickets"));
    ck_assert(pgc_exec(src, env.srcdb, MOVES));
    caught_up(&env);
    ck_assert(same_rows(&env, env.dbs[0], "events"));
    ck_assert(same_rows(&env, env.dbs[0], "tickets"));
    char *v = pgc_query_value(tgt, env.dbs[0], "SELECT count(*) FROM "
                              "tickets_rest WHERE region = 'br'");
    ck_assert_msg(v && atoi(v) > 0, "no row moved into the DEFAULT partition");
    free(v);
    verify_clean(&env);
    ck_assert_int_eq(shop_stop(&env, SIGTERM, 30), 0);
    shop_teardown(&env);
}
END_TEST

/*
 * A writer in a process of its own: inserts over five years (those with
 * no partition fail, and are left), moves and updates rows, until `stop`
 * exists.
 */
static pid_t writer_start(const shop_env *env, const char *stop)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    PGconn *c = pgc_connect(src, env->srcdb);
    struct stat st;
    for (int i = 0; c && stat(stop, &st) != 0; i++) {
        char sql[256];
        snprintf(sql, sizeof sql, "INSERT INTO events (at, amount, note) "
                 "VALUES (DATE '2025-01-01' + %d, %d, 'w')", (i * 37) % 1826,
                 i);
        PQclear(PQexec(c, sql));
        snprintf(sql, sizeof sql, "UPDATE events SET amount = amount + 1, "
                 "at = at + 1 WHERE id = %d", 1 + (i * 13) % 2000);
        PQclear(PQexec(c, sql));
    }
    PQfinish(c);
    _exit(c ? 0 : 1);
}

static void writer_wait(pid_t pid, const char *stop)
{
    FILE *f = fopen(stop, "w");
    ck_assert(f);
    fclose(f);
    int st;
    ck_assert(waitpid(pid, &st, 0) == pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the writer failed");
}

/* Waits until the writer has written `n` more rows of events. */
static void writer_progress(const shop_env *env, int n)
{
    char *before = pgc_query_value(src, env->srcdb, "SELECT last_value "
                                   "FROM events_id");
    ck_assert(before);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT last_value > %s + %d FROM events_id",
             before, n);
    free(before);
    ck_assert(pgc_wait_until(src, env->srcdb, sql, 60));
}

static int verify_rc(shop_env *env)
{
    char *argv[] = {(char *)shop_cleave_bin(), "verify", "-c", env->config,
                    NULL};
    rc_result r;
    ck_assert(rc_run(argv, &r));
    int rc = r.status;
    rc_free(&r);
    return rc;
}

static void exec_on(const pgc_cluster *c, const char *db, const char *sql)
{
    ck_assert_msg(pgc_exec(c, db, sql), "%s", sql);
}

/*
 * While the writer writes: a partition created on the source, an empty
 * table attached (cleave makes both in the target when a row needs
 * them), a table holding rows attached as docs/run.md says (the same
 * partition with its rows in the target first), and a partition detached
 * (verify sees its rows left in the target until it is detached there
 * too). Then the target reads as the source and verify is clean.
 */
START_TEST(attach_detach_under_load)
{
    shop_env env;
    setup(&env, "attach", "events", NULL);
    ck_assert(shop_start(&env));
    caught_up(&env);
    char stop[600];
    snprintf(stop, sizeof stop, "%s/attach.stop", src->root);
    pid_t w = writer_start(&env, stop);
    writer_progress(&env, 50);
    exec_on(src, env.srcdb, "CREATE TABLE events_2028 PARTITION OF "
              "events FOR VALUES FROM ('2028-01-01') TO ('2029-01-01')");
    exec_on(src, env.srcdb,
              "CREATE TABLE events_2029 (LIKE events INCLUDING DEFAULTS);"
              "ALTER TABLE events ATTACH PARTITION events_2029"
              "  FOR VALUES FROM ('2029-01-01') TO ('2030-01-01')");
    static const char FILLED[] =
        "CREATE TABLE events_2027 (LIKE events INCLUDING DEFAULTS);"
        "INSERT INTO events_2027 (id, at, amount, note) SELECT 900000 + g,"
        "  DATE '2027-01-01' + g % 300, g, 'before attach'"
        "  FROM generate_series(1, 500) g;"
        "ALTER TABLE events ATTACH PARTITION events_2027"
        "  FOR VALUES FROM ('2027-01-01') TO ('2028-01-01')";
    exec_on(tgt, env.dbs[0], FILLED);
    exec_on(src, env.srcdb, FILLED);
    writer_progress(&env, 100);
    exec_on(src, env.srcdb,
              "ALTER TABLE events DETACH PARTITION events_2025");
    writer_progress(&env, 50);
    writer_wait(w, stop);
    caught_up(&env);
    ck_assert_int_eq(verify_rc(&env), 3);
    exec_on(tgt, env.dbs[0],
              "ALTER TABLE events DETACH PARTITION events_2025");
    if (!same_rows(&env, env.dbs[0], "events"))
        shop_log_tail(&env, 30);
    ck_assert_msg(same_rows(&env, env.dbs[0], "events"),
                  "events differs after ATTACH and DETACH");
    same_partitions(&env, "events");
    ck_assert_int_eq(shop_log_count(&env, "event=partition_created", 0), 2);
    char *v = pgc_query_value(tgt, env.dbs[0], "SELECT count(*) FROM "
                              "events_2028");
    ck_assert_msg(v && atoi(v) > 0, "no row reached events_2028");
    free(v);
    verify_clean(&env);
    ck_assert_int_eq(shop_stop(&env, SIGTERM, 30), 0);
    shop_teardown(&env);
}
END_TEST

static json_t *analyze_json(const shop_env *env, int want_rc)
{
    char *argv[] = {(char *)shop_cleave_bin(), "analyze", "-c",
                    (char *)env->config, "--json", NULL};
    rc_result r;
    ck_assert(rc_run(argv, &r));
    ck_assert_msg(r.status == want_rc, "analyze exit %d, want %d: %s%s",
                  r.status, want_rc, r.err, r.out);
    json_t *root = json_loads(r.out, 0, NULL);
    ck_assert_msg(root, "not JSON: %s", r.out);
    rc_free(&r);
    return root;
}

/* The replica_identity item naming `partition`, or NULL. */
static json_t *identity_item(json_t *root, const char *partition)
{
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(root, "replica_identity"), i, item) {
        const char *p = json_string_value(json_object_get(item, "partition"));
        if (p && strcmp(p, partition) == 0)
            return item;
    }
    return NULL;
}

/*
 * A keyless partitioned table under REPLICA IDENTITY FULL: each partition
 * has its own first row at ctid (0,1). Deleting or updating one of them
 * touches that row alone: every partition's (0,1) was deleted, or
 * overwritten, with it.
 */
START_TEST(full_identity_rows_by_partition)
{
    shop_env env;
    setup(&env, "fullparts", "notes",
          "CREATE TABLE notes (at date, line text) PARTITION BY RANGE (at);"
          "ALTER TABLE notes REPLICA IDENTITY FULL;"
          "CREATE TABLE notes_a PARTITION OF notes"
          "  FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');"
          "CREATE TABLE notes_b PARTITION OF notes"
          "  FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');"
          "ALTER TABLE notes_a REPLICA IDENTITY FULL;"
          "ALTER TABLE notes_b REPLICA IDENTITY FULL;"
          "INSERT INTO notes VALUES ('2025-02-01', 'a1'), ('2025-03-01', 'a2'),"
          "  ('2026-02-01', 'b1'), ('2026-03-01', 'b2');");
    ck_assert(shop_start(&env));
    caught_up(&env);
    ck_assert(same_rows(&env, env.dbs[0], "notes"));
    ck_assert(pgc_exec(src, env.srcdb,
                       "DELETE FROM notes WHERE line = 'a1';"
                       "UPDATE notes SET line = 'a2 changed' WHERE line = 'a2';"));
    caught_up(&env);
    ck_assert(same_rows(&env, env.dbs[0], "notes"));
    ck_assert_int_eq(shop_stop(&env, SIGTERM, 30), 0);
    shop_teardown(&env);
}
END_TEST

/*
 * A keyless partitioned table: its root and one partition FULL, the other
 * partitions without a usable identity (DEFAULT without a key, NOTHING).
 */
START_TEST(analyze_checks_every_partition)
{
    shop_env env;
    setup(&env, "ident", "events, tickets, logs",
          "CREATE TABLE logs (id int, at date, line text)"
          "  PARTITION BY RANGE (at);"
          "ALTER TABLE logs REPLICA IDENTITY FULL;"
          "CREATE TABLE logs_a PARTITION OF logs"
          "  FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');"
          "ALTER TABLE logs_a REPLICA IDENTITY FULL;"
          "CREATE TABLE logs_b PARTITION OF logs"
          "  FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');"
          "CREATE TABLE logs_c PARTITION OF logs"
          "  FOR VALUES FROM ('2027-01-01') TO ('2028-01-01')"
          "  PARTITION BY RANGE (at);"
          "CREATE TABLE logs_c1 PARTITION OF logs_c"
          "  FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');"
          "ALTER TABLE logs_c1 REPLICA IDENTITY NOTHING;");
    json_t *root = analyze_json(&env, 3);
    json_t *b = identity_item(root, "public.logs_b");
    json_t *c1 = identity_item(root, "public.logs_c1");
    ck_assert_msg(b && c1, "analyze does not name logs_b and logs_c1");
    ck_assert_str_eq(json_string_value(json_object_get(b, "status")), "block");
    ck_assert_str_eq(json_string_value(json_object_get(b, "table")),
                     "public.logs");
    ck_assert_str_eq(json_string_value(json_object_get(b, "fix")),
                     "ALTER TABLE public.logs_b REPLICA IDENTITY FULL;");
    ck_assert_str_eq(json_string_value(json_object_get(c1, "replica_identity")),
                     "nothing");
    ck_assert_msg(!identity_item(root, "public.logs_a") &&
                  !identity_item(root, "public.events_2025"),
                  "analyze blocks on a partition that can replicate");
    json_decref(root);
    /* Once every partition has an identity, nothing blocks. */
    ck_assert(pgc_exec(src, env.srcdb,
                       "ALTER TABLE logs_b REPLICA IDENTITY FULL;"
                       "ALTER TABLE logs_c1 REPLICA IDENTITY FULL"));
    root = analyze_json(&env, 0);
    json_decref(root);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("partitions");
    shop_add_case(s, "range_and_list", range_and_list, 120);
    shop_add_case(s, "attach_detach_under_load", attach_detach_under_load,
                  180);
    shop_add_case(s, "full_identity_rows_by_partition",
                  full_identity_rows_by_partition, 120);
    shop_add_case(s, "analyze_checks_every_partition",
                  analyze_checks_every_partition, 60);
    return shop_run_suite(s, NULL, &src, &tgt);
}
