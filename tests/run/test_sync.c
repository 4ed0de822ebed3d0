/*
 * The initial sync end to end: the real binary creates the shop's owned
 * tables in five empty service databases, copies them inside the slot's
 * snapshot while a workload runs, and streams on (PRODUCT.md §3 point 2).
 * Each test ends with every table equal, row for row, to its source.
 */
#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/support/runcmd.h"
#include "tests/support/shopenv.h"

static pgc_cluster *src, *tgt;

static const char *const mix[] = {
    "new_order.sql@4", "user_update.sql@3", "inventory.sql@3",
    "notification.sql@2", "refund.sql@1", NULL,
};

#define SYNC_S 240

static void wait_or_abort(shop_env *env, const char *text, long from,
                          double timeout_s)
{
    if (!shop_wait_log(env, text, from, timeout_s)) {
        shop_log_tail(env, 60);
        ck_abort_msg("%s: no '%s' in cleave's log within %.0f s", env->name,
                     text, timeout_s);
    }
}

/* The sinks of a service in a status document (an empty array if none). */
static json_t *sinks_of(json_t *st, const char *service)
{
    size_t i;
    json_t *svc;
    json_array_foreach(json_object_get(st, "services"), i, svc) {
        const char *name = json_string_value(json_object_get(svc, "name"));
        if (name && strcmp(name, service) == 0)
            return json_object_get(svc, "sinks");
    }
    return NULL;
}

/* Whether every sink of the service is in state (and, streaming, caught up). */
static bool service_in(json_t *st, const char *service, const char *state)
{
    json_t *sinks = sinks_of(st, service), *k;
    size_t i;
    bool all = json_array_size(sinks) > 0;
    json_array_foreach(sinks, i, k) {
        const char *got = json_string_value(json_object_get(k, "state"));
        all = all && got && strcmp(got, state) == 0;
        if (strcmp(state, "streaming") == 0)
            all = all && json_integer_value(json_object_get(k,
                                                            "lag_bytes")) == 0;
    }
    return all;
}

static bool all_streaming(json_t *st, void *arg)
{
    (void)arg;
    for (int s = 0; s < SHOP_NSERVICES; s++)
        if (!service_in(st, shop_services[s], "streaming"))
            return false;
    return true;
}

static void wait_status_or_abort(shop_env *env,
                                 bool (*pred)(json_t *, void *), void *arg,
                                 const char *what)
{
    if (shop_wait_status(env, pred, arg, SYNC_S))
        return;
    json_t *st = shop_status_json(env);
    char *text = st ? json_dumps(st, JSON_COMPACT) : NULL;
    char shown[4096];
    snprintf(shown, sizeof shown, "%s", text ? text : "(none)");
    free(text);
    json_decref(st);
    shop_log_tail(env, 60);
    ck_abort_msg("%s: %s within %d s; status: %s", env->name, what, SYNC_S,
                 shown);
}

static long query_long(const pgc_cluster *c, const char *db, const char *sql)
{
    char *v = pgc_query_value(c, db, sql);
    ck_assert_msg(v != NULL, "%s", sql);
    long n = atol(v);
    free(v);
    return n;
}

/* Foreign keys whose two tables belong to the same service, per service. */
static void in_service_fks(shop_env *env, long per_service[SHOP_NSERVICES],
                           long *cross)
{
    *cross = 0;
    memset(per_service, 0, SHOP_NSERVICES * sizeof *per_service);
    for (int a = 0; a < SHOP_NTABLES; a++)
        for (int b = 0; b < SHOP_NTABLES; b++) {
            char sql[512];
            snprintf(sql, sizeof sql,
                     "SELECT count(*) FROM pg_constraint WHERE contype = 'f' "
                     "AND conrelid = 'public.%s'::regclass "
                     "AND confrelid = 'public.%s'::regclass",
                     shop_tables[a], shop_tables[b]);
            long n = query_long(env->src, env->srcdb, sql);
            if (shop_owner(a) == shop_owner(b))
                per_service[shop_owner(a)] += n;
            else
                *cross += n;
        }
}

/* Owned tables' indexes in the target, as many as in the source. */
static void assert_indexes(shop_env *env)
{
    for (int t = 0; t < SHOP_NTABLES; t++) {
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_index WHERE "
                 "indrelid = 'public.%s'::regclass", shop_tables[t]);
        long want = query_long(env->src, env->srcdb, sql);
        long got = query_long(env->tgt, env->dbs[shop_owner(t)], sql);
        ck_assert_msg(want == got, "%s: %ld indexes in the source, %ld in the "
                      "target", shop_tables[t], want, got);
    }
}

/*
 * How many event=table_copied lines name `table` (NULL: any) with COPY's
 * format `format`.
 */
static int copied_as(const shop_env *env, const char *table,
                     const char *format)
{
    FILE *f = fopen(env->log, "r");
    char line[4096], want_table[160], want_format[32];
    snprintf(want_table, sizeof want_table, " table=public.%s ",
             table ? table : "");
    snprintf(want_format, sizeof want_format, " format=%s", format);
    int n = 0;
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, "event=table_copied") &&
             (!table || strstr(line, want_table)) &&
             strstr(line, want_format);
    if (f)
        fclose(f);
    return n;
}

/*
 * The shop's tables with a user type (an enum or the email domain)
 * travel in COPY's text format; the nine of built-in types only, in its
 * binary format (source and target of one major version).
 */
static void assert_shop_formats(const shop_env *env)
{
    static const char *const text[] = {"users", "orders", "payments",
                                       "notification_templates",
                                       "notifications"};
    for (size_t i = 0; i < sizeof text / sizeof *text; i++)
        ck_assert_msg(copied_as(env, text[i], "text") == 1, "%s: not copied "
                      "in text", text[i]);
    ck_assert_int_eq(copied_as(env, "order_items", "binary"), 1);
    ck_assert_int_eq(copied_as(env, NULL, "binary"), SHOP_NTABLES - 5);
}

/* The copy under a running workload: tables, keys, sequences, rows. */
START_TEST(copy_with_workload)
{
    shop_env env;
    ck_assert(shop_setup_copy(&env, src, tgt, "copy", 2, NULL, NULL));
    long seq_before = query_long(src, env.srcdb,
        "SELECT sum(last_value) FROM pg_sequences WHERE schemaname = 'public'");
    int bench = pgc_pgbench_start(src, env.srcdb, 4, 1500, 2, mix);
    ck_assert(bench > 0);
    ck_assert(shop_start(&env));
    wait_or_abort(&env, "event=initial_sync_done", 0, SYNC_S);
    ck_assert(pgc_pgbench_wait(bench));
    shop_assert_caught_up_and_equal(&env, SYNC_S);

    long fks[SHOP_NSERVICES], cross;
    in_service_fks(&env, fks, &cross);
    ck_assert_msg(cross == 6, "the fixture has %ld cross-service keys", cross);
    for (int s = 0; s < SHOP_NSERVICES; s++) {
        long got = query_long(tgt, env.dbs[s], "SELECT count(*) FROM "
                              "pg_constraint WHERE contype = 'f'");
        ck_assert_msg(got == fks[s], "%s: %ld foreign keys, %ld expected",
                      shop_services[s], got, fks[s]);
    }
    int skipped = shop_log_count(&env, "event=foreign_key_skipped", 0);
    ck_assert_msg(skipped == 6, "%d cross-service keys logged, 6 expected",
                  skipped);
    assert_indexes(&env);
    /* Every sequence stands at least where the source's stood at the copy. */
    long seq_after = 0;
    for (int s = 0; s < SHOP_NSERVICES; s++)
        seq_after += query_long(tgt, env.dbs[s], "SELECT coalesce(sum("
                                "last_value), 0) FROM pg_sequences");
    ck_assert_msg(seq_after >= seq_before, "target sequences sum %ld, source "
                  "had %ld before the copy", seq_after, seq_before);
    assert_shop_formats(&env);
    ck_assert_int_eq(shop_log_count(&env, "event=initial_sync_failed", 0), 0);
    shop_stop_cleanly(&env);
}
END_TEST

/* SIGKILL in the middle of the copy, then a restart: the same result. */
START_TEST(killed_during_copy)
{
    shop_env env;
    ck_assert(shop_setup_copy(&env, src, tgt, "killed", 2, NULL,
                              NULL));
    int bench = pgc_pgbench_start(src, env.srcdb, 4, 1500, 2, mix);
    ck_assert(bench > 0);
    ck_assert(shop_start(&env));
    /* A table is done (copied, indexed, recorded); others are not. */
    wait_or_abort(&env, "event=table_done", 0, SYNC_S);
    ck_assert_int_eq(shop_stop(&env, SIGKILL, 10), 128 + SIGKILL);
    ck_assert_msg(shop_log_count(&env, "event=initial_sync_done", 0) == 0,
                  "the copy ended before the kill: nothing was interrupted");
    long mark = shop_log_size(&env);
    ck_assert(shop_start(&env));
    wait_or_abort(&env, "event=initial_sync_done", mark, SYNC_S);
    ck_assert(pgc_pgbench_wait(bench));
    shop_assert_caught_up_and_equal(&env, SYNC_S);
    int again = shop_log_count(&env, "event=table_copied", mark);
    ck_assert_msg(again < SHOP_NTABLES, "every table was copied again (%d)",
                  again);
    shop_stop_cleanly(&env);
}
END_TEST

/*
 * A rewriting ALTER TABLE on the source while the copy runs, on a table
 * not copied yet (warehouses, the smallest, goes last): it waits for the
 * copy, which holds every table it copies, and the table comes out
 * whole. The rewrite is not MVCC-safe: it committed at once and the copy
 * read the table empty in its older snapshot, losing its rows for good.
 */
START_TEST(rewrite_waits_for_the_copy)
{
    shop_env env;
    ck_assert(shop_setup_copy(&env, src, tgt, "rewrite", 1, NULL, NULL));
    ck_assert(shop_config_append(&env, "copy_workers: 2\n"));
    ck_assert(shop_start(&env));
    wait_or_abort(&env, "event=table_copied", 0, SYNC_S);
    PGconn *ddl = pgc_connect(src, env.srcdb);
    ck_assert(ddl && PQsendQuery(ddl, "ALTER TABLE warehouses ALTER COLUMN "
                                 "capacity TYPE integer USING capacity + 0"));
    wait_or_abort(&env, "event=initial_sync_done", 0, SYNC_S);
    PGresult *res;
    bool altered = false;
    while ((res = PQgetResult(ddl)) != NULL) {
        altered = altered || PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
    }
    PQfinish(ddl);
    ck_assert_msg(altered, "the rewrite failed");
    char diff[512];
    enum { WAREHOUSES = 11 };   /* in shop_tables */
    ck_assert_str_eq(shop_tables[WAREHOUSES], "warehouses");
    ck_assert_msg(shop_table_equal(&env, WAREHOUSES, diff, sizeof diff),
                  "warehouses: %s", diff);
    shop_assert_caught_up_and_equal(&env, SYNC_S);
    shop_stop_cleanly(&env);
}
END_TEST

/*
 * Killed once payments is copied and before refunds is; a payment and a
 * refund of it written before the restart: refunds, copied in a later
 * snapshot, holds a child whose parent comes with the held changes. Its
 * key is made NOT VALID (and logged with the statement that validates
 * it) and the service finishes, equal. The key was refused, and the
 * service tried it again and again without ever streaming.
 */
START_TEST(keys_across_snapshots)
{
    shop_env env;
    ck_assert(shop_setup_copy(&env, src, tgt, "fkgap", 1, NULL, NULL));
    ck_assert(shop_config_append(&env, "copy_workers: 1\n"));
    ck_assert(shop_start(&env));
    wait_or_abort(&env, "event=table_done service=payment_service "
                  "table=public.payments", 0, SYNC_S);
    ck_assert_int_eq(shop_stop(&env, SIGKILL, 10), 128 + SIGKILL);
    ck_assert_msg(shop_log_count(&env, "event=table_done service="
                                 "payment_service table=public.refunds", 0)
                  == 0, "refunds was copied before the kill");
    ck_assert(pgc_exec(src, env.srcdb, "WITH p AS (INSERT INTO payments "
                       "(payment_uuid, order_id, user_id, amount) VALUES "
                       "(gen_random_uuid(), 1, 1, 10) RETURNING id) "
                       "INSERT INTO refunds (payment_id, amount) "
                       "SELECT id, 1 FROM p"));
    long mark = shop_log_size(&env);
    ck_assert(shop_start(&env));
    wait_or_abort(&env, "event=initial_sync_done", mark, SYNC_S);
    shop_assert_caught_up_and_equal(&env, SYNC_S);
    ck_assert_int_eq(shop_log_count(&env, "event=foreign_key_not_validated "
                                    "service=payment_service "
                                    "table=public.refunds", mark), 1);
    shop_stop_cleanly(&env);
}
END_TEST

/* The copy of tables larger than copy_split_size, under a workload. */
static void setup_split(shop_env *env, const char *name, const char *size)
{
    char yaml[64];
    ck_assert(shop_setup_copy(env, src, tgt, name, 2, NULL, NULL));
    snprintf(yaml, sizeof yaml, "copy_split_size: %s\n", size);
    ck_assert(shop_config_append(env, yaml));
}

/*
 * Tables larger than copy_split_size are copied in block ranges, each a
 * job of its own, and come out equal; each table is still logged copied
 * and done once.
 */
START_TEST(split_copy)
{
    shop_env env;
    setup_split(&env, "split", "512kB");
    int bench = pgc_pgbench_start(src, env.srcdb, 4, 1500, 2, mix);
    ck_assert(bench > 0);
    ck_assert(shop_start(&env));
    wait_or_abort(&env, "event=initial_sync_done", 0, SYNC_S);
    ck_assert(pgc_pgbench_wait(bench));
    shop_assert_caught_up_and_equal(&env, SYNC_S);
    int parts = shop_log_count(&env, "event=part_copied", 0);
    if (parts < 4)
        shop_log_tail(&env, 200);
    ck_assert_msg(parts >= 4 && shop_log_count(&env, "part=2/", 0) > 0,
                  "%d parts logged: no table was split", parts);
    ck_assert_int_eq(shop_log_count(&env, "event=table_copied", 0),
                     SHOP_NTABLES);
    ck_assert_int_eq(shop_log_count(&env, "event=table_done", 0),
                     SHOP_NTABLES);
    /* Each part with its own binary header and trailer, rows counted. */
    assert_shop_formats(&env);
    ck_assert_int_eq(shop_log_count(&env, "format=mixed", 0), 0);
    ck_assert_int_eq(shop_log_count(&env, "event=initial_sync_failed", 0), 0);
    shop_stop_cleanly(&env);
}
END_TEST

/* The table= of a log line, copied into buf ("" when it has none). */
static void log_table(const char *line, char *buf, size_t len)
{
    const char *t = strstr(line, " table=");
    size_t n = t ? strcspn(t + 7, " \n") : 0;
    snprintf(buf, len, "%.*s", (int)n, t ? t + 7 : "");
}

/* Whether the log holds a part of a table not done: a split copy cut. */
static bool split_cut(const shop_env *env)
{
    FILE *f = fopen(env->log, "r");
    char line[4096], parted[SHOP_NTABLES][128];
    int np = 0, cut = 0;
    while (f && fgets(line, sizeof line, f)) {
        if (strstr(line, "event=part_copied") && np < SHOP_NTABLES)
            log_table(line, parted[np++], sizeof parted[0]);
        if (!strstr(line, "event=table_done"))
            continue;
        char done[128];
        log_table(line, done, sizeof done);
        for (int i = 0; i < np; i++)
            if (strcmp(parted[i], done) == 0)
                parted[i][0] = '\0';
    }
    if (f)
        fclose(f);
    for (int i = 0; i < np; i++)
        cut += parted[i][0] != '\0';
    return cut > 0;
}

/*
 * SIGKILL while tables are copied in parts, some parts committed in the
 * target and others not, then a restart: the cut tables are emptied and
 * copied again whole, so nothing is missing and nothing twice.
 */
START_TEST(killed_during_split_copy)
{
    shop_env env;
    setup_split(&env, "splitkill", "128kB");
    int bench = pgc_pgbench_start(src, env.srcdb, 4, 1500, 2, mix);
    ck_assert(bench > 0);
    ck_assert(shop_start(&env));
    wait_or_abort(&env, "event=part_copied", 0, SYNC_S);
    ck_assert_int_eq(shop_stop(&env, SIGKILL, 10), 128 + SIGKILL);
    ck_assert_msg(split_cut(&env), "no table was cut between its parts");
    long mark = shop_log_size(&env);
    ck_assert(shop_start(&env));
    wait_or_abort(&env, "event=initial_sync_done", mark, SYNC_S);
    ck_assert(pgc_pgbench_wait(bench));
    shop_assert_caught_up_and_equal(&env, SYNC_S);
    ck_assert_int_eq(shop_log_count(&env, "event=initial_sync_failed", mark),
                     0);
    shop_stop_cleanly(&env);
}
END_TEST

/*
 * A team's own schema, made before cleave runs: each service database
 * holds its own tables with their in-service foreign keys (what
 * `pg_dump --schema-only -t` of its tables gives, without the
 * cross-service keys), the source holds the data.
 */
static void setup_precreated(shop_env *env, const char *name)
{
    ck_assert(shop_setup(env, src, tgt, name, NULL, NULL));
    for (int s = 0; s < SHOP_NSERVICES; s++)
        for (int t = 0; t < SHOP_NTABLES; t++) {
            char sql[128];
            snprintf(sql, sizeof sql, "DROP TABLE %s CASCADE", shop_tables[t]);
            ck_assert(shop_owner(t) == s || pgc_exec(tgt, env->dbs[s], sql));
        }
    char data[600];
    snprintf(data, sizeof data, "%s/shop/data.sql", pgc_fixtures_dir());
    const char *vars[] = {"scale=1", NULL};
    ck_assert(pgc_psql_file(src, env->srcdb, data, vars));
}

static long foreign_keys(const shop_env *env, int service)
{
    return query_long(env->tgt, env->dbs[service], "SELECT count(*) FROM "
                      "pg_constraint WHERE contype = 'f'");
}

/*
 * user_service's database commits asynchronously by default, and its
 * pre-created users table records the setting each COPY into it ran
 * under (an ALWAYS trigger fires in the replica role too).
 */
static const char async_target_sql[] =
    "CREATE TABLE copy_commits (setting text);"
    "CREATE FUNCTION note_commit() RETURNS trigger LANGUAGE plpgsql AS $$"
    "BEGIN INSERT INTO copy_commits "
    "VALUES (current_setting('synchronous_commit')); RETURN NULL; END$$;"
    "CREATE TRIGGER note_commit AFTER INSERT ON users "
    "FOR EACH STATEMENT EXECUTE FUNCTION note_commit();"
    "ALTER TABLE users ENABLE ALWAYS TRIGGER note_commit;";

/*
 * Pre-created tables with their foreign keys are filled whatever order
 * the copy takes: one copy at a time, largest first, copies order_items
 * before orders and notifications before notification_templates. A
 * target whose default is asynchronous commit gets the copy committed
 * to its disk all the same: a table is recorded copied once its COMMIT
 * returns, and was lost to a crash of the target before.
 */
START_TEST(precreated_tables_with_keys)
{
    shop_env env;
    setup_precreated(&env, "precreated");
    char sql[256];
    snprintf(sql, sizeof sql, "ALTER DATABASE %s SET synchronous_commit = off",
             env.dbs[0]);
    ck_assert(pgc_exec(tgt, env.dbs[0], sql));
    ck_assert(pgc_exec(tgt, env.dbs[0], async_target_sql));
    long fks[SHOP_NSERVICES];
    for (int s = 0; s < SHOP_NSERVICES; s++)
        fks[s] = foreign_keys(&env, s);
    ck_assert_msg(fks[1] == 2 && fks[4] == 1, "order_service has %ld keys, "
                  "notification_service %ld", fks[1], fks[4]);
    ck_assert(shop_config_append(&env, "copy_workers: 1\n"));
    ck_assert(shop_start(&env));
    wait_status_or_abort(&env, all_streaming, NULL,
                         "not every service streams");
    if (!shop_all_equal(&env)) {
        shop_log_tail(&env, 60);
        ck_abort_msg("a target differs from its source");
    }
    for (int s = 0; s < SHOP_NSERVICES; s++)
        ck_assert_msg(foreign_keys(&env, s) == fks[s], "%s: the foreign keys "
                      "changed", shop_services[s]);
    char *async = pgc_query_value(tgt, env.dbs[0], "SELECT count(*) FILTER "
                                  "(WHERE setting = 'off') || '/' || count(*) "
                                  "FROM copy_commits");
    ck_assert_msg(async && strcmp(async, "0/1") == 0, "copies into users "
                  "committed asynchronously / in all: %s", async);
    free(async);
    shop_stop_cleanly(&env);
}
END_TEST

/* Replaces the first occurrence of `from` in the configuration file. */
static void edit_config(shop_env *env, const char *from, const char *to)
{
    FILE *f = fopen(env->config, "r");
    ck_assert(f);
    static char text[16384];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    char *at = strstr(text, from);
    ck_assert_msg(at, "no '%s' in the configuration", from);
    f = fopen(env->config, "w");
    ck_assert(f);
    fprintf(f, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    ck_assert(fclose(f) == 0);
}

/*
 * Built-in types of every common kind, odd values included: `kinds` goes
 * in COPY's binary format and `moods` (a user enum, a domain, an array
 * of the enum) in text; both come out equal to the source, value for
 * value, and the rows logged are the rows there are.
 */
static const char kinds_sql[] =
    "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');"
    "CREATE DOMAIN positive AS int CHECK (VALUE > 0);"
    "CREATE TABLE moods (id int PRIMARY KEY, m mood, p positive, ms mood[]);"
    "INSERT INTO moods SELECT g, (ARRAY['sad','ok','happy'])[g % 3 + 1]::mood,"
    "  g, ARRAY['ok', NULL, 'happy']::mood[] FROM generate_series(1, 300) g;"
    "INSERT INTO moods VALUES (0, NULL, NULL, NULL);"
    "CREATE TABLE kinds (id int PRIMARY KEY, b boolean, i2 smallint, i4 int,"
    "  i8 bigint, f4 real, f8 float8, n numeric, n2 numeric(12,2), t text,"
    "  vc varchar(20), c char(5), by bytea, d date, tm time, ttz timetz,"
    "  ts timestamp, tstz timestamptz, iv interval, u uuid, j json,"
    "  jb jsonb, ia int[], ta text[], na numeric[], tsa timestamptz[],"
    "  ip inet, net cidr, mac macaddr, bits varbit, pt point, r int4range,"
    "  o oid, ch \"char\", nm name);"
    "INSERT INTO kinds SELECT g, g % 2 = 0, g % 32000, g * 7, g::bigint * 1000000007,"
    "  g / 3.0, g / 7.0, g * 1.5 - 999.125, g / 100.0,"
    "  'row ' || g || '\ttab\nline\\back' || repeat('x', g % 50),"
    "  'v' || g, 'c' || g % 100, decode(md5(g::text), 'hex'),"
    "  date '2026-01-01' + g, time '12:00' + g * interval '1 s',"
    "  timetz '12:00+02' + g * interval '1 min',"
    "  timestamp '2000-01-01' + g * interval '1 h 1 s',"
    "  timestamptz '2026-01-01 00:00+00' + g * interval '1 day 1 us',"
    "  g * interval '1 mon 2 days 3 s', md5(g::text)::uuid,"
    "  json_build_object('g', g, 'e', 'é\\\"'),"
    "  jsonb_build_object('g', g, 'a', jsonb_build_array(g, NULL, 'x')),"
    "  ARRAY[g, NULL, -g], ARRAY['a' || g, NULL, 'b\tc\\d', ''],"
    "  ARRAY[g / 3.0, 'NaN'], ARRAY[timestamptz '2026-01-01' + g * "
    "  interval '1 s', 'infinity'], ('10.0.' || g % 256 || '.1')::inet,"
    "  '10.1.0.0/16', '08:00:2b:01:02:03', (g % 256)::bit(8)::varbit,"
    "  point(g, -g), int4range(g, g + 10), g, 'x', 'name' || g"
    "  FROM generate_series(1, 3000) g;"
    "INSERT INTO kinds (id, n, f8, tstz, ts, d, t, ia) VALUES"
    "  (-1, 'NaN', 'NaN', 'infinity', '-infinity', 'infinity', '', '{}'),"
    "  (-2, '-0.000000000000000000000001', '-Infinity', '-infinity',"
    "   'infinity', '-infinity', '\\.\n\\N\r', '{{1,2},{3,4}}');"
    "INSERT INTO kinds (id) VALUES (0)";

/* A table's rows as one digest, the same on both sides when equal. */
static char *digest(const pgc_cluster *c, const char *db, const char *table)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) || ' ' || md5(coalesce("
             "string_agg(x::text, '|' ORDER BY id), '')) FROM %s x", table);
    char *v = pgc_query_value(c, db, sql);
    ck_assert_msg(v != NULL, "%s", sql);
    return v;
}

static void assert_same_table(shop_env *env, int service, const char *table)
{
    char *want = digest(src, env->srcdb, table);
    char *got = digest(tgt, env->dbs[service], table);
    ck_assert_msg(strcmp(want, got) == 0, "%s: source %s, target %s", table,
                  want, got);
    free(want);
    free(got);
}

START_TEST(binary_where_types_allow)
{
    shop_env env;
    ck_assert(shop_setup_copy(&env, src, tgt, "kinds", 1, NULL, NULL));
    ck_assert(pgc_exec(src, env.srcdb, kinds_sql));
    ck_assert(shop_config_append(&env, "copy_split_size: 128kB\n"));
    edit_config(&env, "[users, user_preferences, user_sessions]",
                "[users, user_preferences, user_sessions, kinds, moods]");
    ck_assert(shop_start(&env));
    wait_or_abort(&env, "event=initial_sync_done", 0, SYNC_S);
    assert_same_table(&env, 0, "kinds");
    assert_same_table(&env, 0, "moods");
    ck_assert_int_eq(copied_as(&env, "kinds", "binary"), 1);
    ck_assert_int_eq(copied_as(&env, "moods", "text"), 1);
    ck_assert_int_eq(shop_log_count(&env, "event=table_copied service="
                                    "user_service table=public.kinds "
                                    "rows=3003 ", 0), 1);
    ck_assert_int_eq(shop_log_count(&env, "event=table_copied service="
                                    "user_service table=public.moods "
                                    "rows=301 ", 0), 1);
    ck_assert_msg(shop_log_count(&env, "table=public.kinds part=2/", 0) == 1,
                  "kinds was not copied in parts");
    shop_assert_caught_up_and_equal(&env, SYNC_S);
    shop_stop_cleanly(&env);
}
END_TEST

/* A table given to a service while it runs is copied and joins. */
START_TEST(table_added_by_reload)
{
    shop_env env;
    ck_assert(shop_setup_copy(&env, src, tgt, "added", 1, NULL, NULL));
    edit_config(&env, "[users, user_preferences, user_sessions]",
                "[users, user_preferences]");
    ck_assert(shop_start(&env));
    wait_or_abort(&env, "event=initial_sync_done", 0, SYNC_S);
    int bench = pgc_pgbench_start(src, env.srcdb, 4, 800, 1, mix);
    ck_assert(bench > 0);
    long mark = shop_log_size(&env);
    edit_config(&env, "[users, user_preferences]",
                "[users, user_preferences, user_sessions]");
    ck_assert(kill(env.pid, SIGHUP) == 0);
    wait_or_abort(&env, "table=public.user_sessions", mark, SYNC_S);
    wait_or_abort(&env, "event=initial_sync_done", mark, SYNC_S);
    ck_assert(pgc_pgbench_wait(bench));
    shop_assert_caught_up_and_equal(&env, SYNC_S);
    /* The tables the service had were not copied again. */
    ck_assert_int_eq(shop_log_count(&env, "event=table_copied", mark), 1);
    shop_stop_cleanly(&env);
}
END_TEST

/*
 * The way back from an owned table renamed on the source (the stream
 * waits, see run renamed_table_waits): the service's table renamed the
 * same way and the new name configured. The table is used as it is,
 * and the rows written under the new name, before and after, are there.
 */
START_TEST(renamed_table_configured)
{
    shop_env env;
    ck_assert(shop_setup_copy(&env, src, tgt, "renconf", 1, NULL, NULL));
    ck_assert(shop_start(&env));
    wait_or_abort(&env, "event=initial_sync_done", 0, SYNC_S);
    ck_assert_msg(shop_rename_warehouses(&env, shop_log_size(&env), SYNC_S),
                  "the rename was not said");
    long mark = shop_log_size(&env);
    const char *inventory = env.dbs[3];
    ck_assert_str_eq(shop_services[3], "inventory_service");
    ck_assert(pgc_exec(tgt, inventory, "ALTER TABLE warehouses RENAME TO "
                       "depots"));
    edit_config(&env, "[products, inventory, warehouses]",
                "[products, inventory, depots]");
    ck_assert(kill(env.pid, SIGHUP) == 0);
    wait_or_abort(&env, "event=table_used_as_is service=inventory_service "
                  "table=public.depots", mark, SYNC_S);
    ck_assert(pgc_exec(src, env.srcdb, "INSERT INTO depots (code, name, "
                       "country_code) VALUES ('W3', 'three', 'FR')"));
    char *want = pgc_query_value(src, env.srcdb, "SELECT count(*) || ' ' || "
                                 "string_agg(code, ',' ORDER BY code) FROM "
                                 "depots");
    ck_assert(want);
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT count(*) || ' ' || string_agg(code, "
             "',' ORDER BY code) = '%s' FROM depots", want);
    free(want);
    ck_assert_msg(pgc_wait_until(tgt, inventory, sql, SYNC_S),
                  "depots differs from its source");
    shop_stop_cleanly(&env);
}
END_TEST

/* ADD COLUMN on the source reaches the target by itself. */
START_TEST(add_column_while_streaming)
{
    shop_env env;
    ck_assert(shop_setup_copy(&env, src, tgt, "addcol", 1, NULL, NULL));
    ck_assert(shop_start(&env));
    wait_or_abort(&env, "event=initial_sync_done", 0, SYNC_S);
    ck_assert(pgc_exec(src, env.srcdb,
                       "ALTER TABLE warehouses ADD COLUMN \"Dock Count\" integer;"
                       "UPDATE warehouses SET \"Dock Count\" = id * 2;"
                       "INSERT INTO warehouses (code, name, country_code, "
                       "\"Dock Count\") VALUES ('NEW', 'added', 'DE', 9)"));
    shop_assert_caught_up_and_equal(&env, SYNC_S);
    ck_assert(shop_log_count(&env, "event=column_added", 0) >= 1);
    shop_stop_cleanly(&env);
}
END_TEST

/* Whether every sink of the service shows an error that names `what`. */
static bool failing_for(json_t *st, const char *service, const char *what)
{
    json_t *sinks = sinks_of(st, service), *k;
    size_t i;
    bool all = service_in(st, service, "error");
    json_array_foreach(sinks, i, k) {
        const char *why = json_string_value(json_object_get(k, "last_error"));
        all = all && why && strstr(why, what);
    }
    return all;
}

/* payment_service stopped on its refunds table, the others streaming. */
static bool refunds_refused(json_t *st, void *arg)
{
    int failing = *(const int *)arg;
    for (int s = 0; s < SHOP_NSERVICES; s++)
        if (s != failing && !service_in(st, shop_services[s], "streaming"))
            return false;
    return failing_for(st, shop_services[failing], "refunds");
}

/*
 * A target table of another shape stops that service only, in error in
 * the status with the reason, until it is fixed.
 */
START_TEST(other_shape_stops_one_service)
{
    shop_env env;
    ck_assert(shop_setup_copy(&env, src, tgt, "shape", 1, NULL, NULL));
    int payment = 2;
    ck_assert(pgc_exec(tgt, env.dbs[payment],
                       "CREATE TABLE refunds (id bigint PRIMARY KEY, note text)"));
    ck_assert(shop_start(&env));
    wait_status_or_abort(&env, refunds_refused, &payment, "payment_service "
                         "not in error over refunds while the others stream");
    ck_assert(pgc_exec(tgt, env.dbs[payment], "DROP TABLE refunds"));
    wait_status_or_abort(&env, all_streaming, NULL,
                         "payment_service did not recover");
    shop_assert_caught_up_and_equal(&env, SYNC_S);
    shop_stop_cleanly(&env);
}
END_TEST

int main(void)
{
    /* Every test leaves its five replication origins on the target. */
    static const char *const tgt_settings[] = {"max_replication_slots = 64", NULL};
    Suite *s = suite_create("sync");
    shop_add_case(s, "copy_with_workload", copy_with_workload, 600);
    shop_add_case(s, "killed_during_copy", killed_during_copy, 600);
    shop_add_case(s, "rewrite_waits_for_the_copy", rewrite_waits_for_the_copy,
                  300);
    shop_add_case(s, "keys_across_snapshots", keys_across_snapshots, 400);
    shop_add_case(s, "split_copy", split_copy, 600);
    shop_add_long_case(s, "killed_during_split_copy", killed_during_split_copy,
                       600);
    shop_add_case(s, "binary_where_types_allow", binary_where_types_allow,
                  400);
    shop_add_case(s, "table_added_by_reload", table_added_by_reload, 400);
    shop_add_case(s, "renamed_table_configured", renamed_table_configured,
                  300);
    shop_add_case(s, "add_column_while_streaming", add_column_while_streaming, 300);
    shop_add_case(s, "precreated_tables_with_keys",
                  precreated_tables_with_keys, 400);
    shop_add_case(s, "other_shape_stops_one_service",
                  other_shape_stops_one_service, 300);
    return shop_run_suite(s, tgt_settings, &src, &tgt);
}
