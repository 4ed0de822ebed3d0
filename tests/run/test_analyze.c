/*
 * cleave analyze end to end: the real binary against a source holding the
 * shop fixtures, in text and JSON, with blocking problems made on purpose.
 */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/runcmd.h"
#include "tests/support/shopenv.h"

static pgc_cluster *src, *tgt;

/* The shop's cross-service keys: name, from table.column, to table.column. */
static const char *const shop_fks[][5] = {
    {"shipping_addresses_user_id_fkey", "public.shipping_addresses", "user_id",
     "public.users", "id"},
    {"orders_user_id_fkey", "public.orders", "user_id", "public.users", "id"},
    {"payments_order_id_fkey", "public.payments", "order_id", "public.orders",
     "id"},
    {"payments_user_id_fkey", "public.payments", "user_id", "public.users",
     "id"},
    {"payment_methods_user_id_fkey", "public.payment_methods", "user_id",
     "public.users", "id"},
    {"notifications_user_id_fkey", "public.notifications", "user_id",
     "public.users", "id"},
};
#define N_FKS (sizeof shop_fks / sizeof *shop_fks)

/* Runs analyze on a configuration; the exit code, stdout in *out. */
static int analyze(const char *config, bool json, rc_result *r)
{
    char *argv[] = {(char *)shop_cleave_bin(), "analyze", "-c", (char *)config,
                    json ? "--json" : NULL, NULL};
    ck_assert(rc_run(argv, r));
    return r->status;
}

static json_t *analyze_json(const char *config, int want_rc)
{
    rc_result r;
    int rc = analyze(config, true, &r);
    ck_assert_msg(rc == want_rc, "exit %d, want %d: %s%s", rc, want_rc, r.err,
                  r.out);
    json_error_t jerr;
    json_t *root = json_loads(r.out, 0, &jerr);
    ck_assert_msg(root, "not JSON (%s): %s", jerr.text, r.out);
    rc_free(&r);
    return root;
}

static const char *str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* The item of section whose `key` is value, or NULL. */
static json_t *find(json_t *root, const char *section, const char *key,
                    const char *value)
{
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(root, section), i, item)
        if (strcmp(str(item, key), value) == 0)
            return item;
    return NULL;
}

static void exec_or_abort(const char *db, const char *sql)
{
    ck_assert_msg(pgc_exec(src, db, sql), "%s", sql);
}

/* A configuration of our own: one service owning `tables`, source as user. */
static void write_config(const char *path, const shop_env *env,
                         const char *user, const char *tables)
{
    FILE *f = fopen(path, "w");
    ck_assert(f);
    char *tdsn = pgc_dsn(tgt, env->dbs[0]);
    fprintf(f,
            "name: %s\n"
            "source:\n  dsn: \"host=%s port=%d dbname=%s user=%s\"\n"
            "services:\n  solo:\n    owned_tables: [%s]\n"
            "    target:\n      postgres: \"%s\"\n",
            env->name, src->sockdir, src->port, env->srcdb, user, tables, tdsn);
    free(tdsn);
    ck_assert(fclose(f) == 0);
}

/* The unmodified fixtures: six undeclared cross-service keys, exit 0. */
START_TEST(fixtures)
{
    shop_env env;
    ck_assert(shop_setup(&env, src, tgt, "an_fix", NULL, NULL));
    json_t *root = analyze_json(env.config, 0);
    ck_assert_int_eq(json_integer_value(json_object_get(root, "blocking")), 0);
    ck_assert_int_eq(json_array_size(json_object_get(root, "tables")),
                     SHOP_NTABLES);
    ck_assert_int_eq(json_array_size(json_object_get(root, "missing_tables")), 0);
    ck_assert_int_eq(json_array_size(json_object_get(root, "replica_identity")),
                     0);
    json_t *fks = json_object_get(root, "foreign_keys");
    ck_assert_int_eq(json_array_size(fks), N_FKS);
    for (size_t k = 0; k < N_FKS; k++) {
        json_t *fk = find(root, "foreign_keys", "name", shop_fks[k][0]);
        ck_assert_msg(fk, "missing %s", shop_fks[k][0]);
        ck_assert_str_eq(str(fk, "from_table"), shop_fks[k][1]);
        ck_assert_str_eq(json_string_value(json_array_get(
                             json_object_get(fk, "from_columns"), 0)),
                         shop_fks[k][2]);
        ck_assert_int_eq(json_array_size(json_object_get(fk, "from_columns")), 1);
        ck_assert_str_eq(str(fk, "to_table"), shop_fks[k][3]);
        ck_assert_str_eq(json_string_value(json_array_get(
                             json_object_get(fk, "to_columns"), 0)),
                         shop_fks[k][4]);
        ck_assert(json_is_false(json_object_get(fk, "declared")));
        ck_assert_str_eq(str(fk, "status"), "warn");
        char drop[256];
        snprintf(drop, sizeof drop, "ALTER TABLE public.%s DROP CONSTRAINT %s;",
                 shop_fks[k][1] + strlen("public."), shop_fks[k][0]);
        ck_assert_str_eq(str(fk, "drop"), drop);
    }
    ck_assert_str_eq(str(find(root, "foreign_keys", "name",
                              "payments_order_id_fkey"), "from_service"),
                     "payment_service");
    json_t *sizes = json_object_get(root, "sizes");
    ck_assert_int_eq(json_array_size(sizes), SHOP_NSERVICES);
    for (int s = 0; s < SHOP_NSERVICES; s++) {
        json_t *sz = find(root, "sizes", "service", shop_services[s]);
        ck_assert(sz);
        ck_assert_int_gt(json_integer_value(json_object_get(sz, "bytes")), 0);
    }
    ck_assert_str_eq(str(find(root, "settings", "check", "wal_level"), "status"),
                     "ok");
    ck_assert_str_eq(str(find(root, "settings", "check", "replication_right"),
                         "status"), "ok");
    json_decref(root);

    rc_result r;
    ck_assert_int_eq(analyze(env.config, false, &r), 0);
    for (size_t k = 0; k < N_FKS; k++) {
        char drop[256];
        snprintf(drop, sizeof drop, "ALTER TABLE %s DROP CONSTRAINT %s;",
                 shop_fks[k][1], shop_fks[k][0]);
        ck_assert_msg(strstr(r.out, drop), "no %s in:\n%s", drop, r.out);
    }
    ck_assert_msg(strstr(r.out, "Data to copy"), "%s", r.out);
    for (int s = 0; s < SHOP_NSERVICES; s++) {
        char line[128];
        snprintf(line, sizeof line, "  %-24s ", shop_services[s]);
        ck_assert_msg(strstr(r.out, line), "no size for %s:\n%s",
                      shop_services[s], r.out);
    }
    ck_assert_msg(strstr(r.out, "[warn]"), "%s", r.out);
    ck_assert_msg(!strstr(r.out, "[block]"), "%s", r.out);
    ck_assert_msg(strstr(r.out, "nothing blocks run"), "%s", r.out);
    rc_free(&r);

    /* The last service written is notification_service: declare its key. */
    ck_assert(shop_config_append(&env, "    references: [users.id]\n"));
    root = analyze_json(env.config, 0);
    ck_assert(json_is_true(json_object_get(
        find(root, "foreign_keys", "name", "notifications_user_id_fkey"),
        "declared")));
    ck_assert(json_is_false(json_object_get(
        find(root, "foreign_keys", "name", "orders_user_id_fkey"), "declared")));
    json_decref(root);
    shop_teardown(&env);
}
END_TEST

/* A table nobody owns and one without a usable replica identity block. */
START_TEST(blocking_tables)
{
    shop_env env;
    ck_assert(shop_setup(&env, src, tgt, "an_blk", NULL, NULL));
    exec_or_abort(env.srcdb, "CREATE TABLE stray (x int);"
                  "ALTER TABLE user_sessions REPLICA IDENTITY DEFAULT");
    json_t *root = analyze_json(env.config, 3);
    ck_assert_int_eq(json_integer_value(json_object_get(root, "blocking")), 2);
    json_t *stray = find(root, "tables", "table", "public.stray");
    ck_assert(stray);
    ck_assert(json_is_null(json_object_get(stray, "owner")));
    ck_assert_str_eq(str(stray, "status"), "block");
    json_t *ri = json_object_get(root, "replica_identity");
    ck_assert_int_eq(json_array_size(ri), 1);
    json_t *us = json_array_get(ri, 0);
    ck_assert_str_eq(str(us, "table"), "public.user_sessions");
    ck_assert_str_eq(str(us, "replica_identity"), "default");
    ck_assert_str_eq(str(us, "fix"),
                     "ALTER TABLE public.user_sessions REPLICA IDENTITY FULL;");
    ck_assert_str_eq(str(us, "status"), "block");
    json_decref(root);

    rc_result r;
    ck_assert_int_eq(analyze(env.config, false, &r), 3);
    ck_assert_msg(strstr(r.out, "[block] public.stray"), "%s", r.out);
    ck_assert_msg(strstr(r.out, "REPLICA IDENTITY FULL;"), "%s", r.out);
    ck_assert_msg(strstr(r.out, "run would be blocked by 2 problem(s)"), "%s",
                  r.out);
    rc_free(&r);

    /* Listed as shared, the stray table no longer blocks. */
    exec_or_abort(env.srcdb, "ALTER TABLE user_sessions REPLICA IDENTITY FULL");
    ck_assert(shop_config_append(&env, "    shared_tables: [stray]\n"));
    root = analyze_json(env.config, 0);
    ck_assert(json_is_true(json_object_get(
        find(root, "tables", "table", "public.stray"), "shared")));
    json_decref(root);
    shop_teardown(&env);
}
END_TEST

/* An owned table the source lacks blocks; so does a role that cannot replicate. */
START_TEST(missing_table_and_role)
{
    shop_env env;
    ck_assert(shop_setup(&env, src, tgt, "an_cfg", NULL, NULL));
    char path[600];
    snprintf(path, sizeof path, "%s.solo.yaml", env.config);
    write_config(path, &env, "postgres", "users, ghost");
    json_t *root = analyze_json(path, 3);
    json_t *ghost = find(root, "missing_tables", "table", "public.ghost");
    ck_assert(ghost);
    ck_assert_str_eq(str(ghost, "service"), "solo");
    ck_assert_str_eq(str(ghost, "status"), "block");
    ck_assert(!find(root, "missing_tables", "table", "public.users"));
    json_decref(root);

    exec_or_abort(env.srcdb, "CREATE ROLE analyst LOGIN");
    write_config(path, &env, "analyst", "users");
    root = analyze_json(path, 3);
    json_t *right = find(root, "settings", "check", "replication_right");
    ck_assert(right);
    ck_assert_str_eq(str(right, "status"), "block");
    ck_assert_msg(strstr(str(right, "detail"), "analyst"), "%s",
                  str(right, "detail"));
    json_decref(root);
    exec_or_abort(env.srcdb, "DROP ROLE analyst");
    remove(path);
    shop_teardown(&env);
}
END_TEST

/* An unreachable source: exit 1, why on stderr, no password. */
START_TEST(unreachable)
{
    char path[] = "/tmp/cleave-analyze-XXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "name: gone\nsource:\n  dsn: \"host=%s port=1 dbname=x "
            "user=postgres password=sekrit\"\nservices:\n  solo:\n"
            "    owned_tables: [t]\n    target:\n      postgres: \"dbname=y\"\n",
            src->sockdir);
    ck_assert(fclose(f) == 0);
    rc_result r;
    ck_assert_int_eq(analyze(path, false, &r), 1);
    ck_assert_msg(strstr(r.err, "cannot connect"), "%s", r.err);
    ck_assert_msg(!strstr(r.err, "sekrit") && !strstr(r.out, "sekrit"), "%s",
                  r.err);
    rc_free(&r);
    remove(path);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("analyze");
    shop_add_case(s, "fixtures", fixtures, 120);
    shop_add_case(s, "blocking_tables", blocking_tables, 120);
    shop_add_case(s, "missing_table_and_role", missing_table_and_role, 120);
    shop_add_case(s, "unreachable", unreachable, 60);
    return shop_run_suite(s, NULL, &src, &tgt);
}
