/*
 * `cleave drop` against a real run (PRODUCT.md §6): refused while cleave
 * streams the slot, aborted on a "no", then the slot, the publication and
 * every service's replication origin gone, and a second drop that finds
 * nothing.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/runcmd.h"
#include "tests/support/shopenv.h"

static pgc_cluster *src, *tgt;

#define WAIT_S 120

/* Runs `cleave drop -c CONFIG ARGS` with `answer` piped to its stdin. */
static void run_drop(const shop_env *env, const char *answer, const char *args,
                     rc_result *r)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "printf '%s' | '%s' drop -c '%s' %s", answer,
             shop_cleave_bin(), env->config, args);
    char *argv[] = {"sh", "-c", cmd, NULL};
    ck_assert(rc_run(argv, r));
}

static long count_on(const pgc_cluster *c, const char *db, const char *sql)
{
    char *v = pgc_query_value(c, db, sql);
    ck_assert_msg(v, "%s", sql);
    long n = strtol(v, NULL, 10);
    free(v);
    return n;
}

static long slots(const shop_env *env)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_replication_slots "
             "WHERE slot_name = 'cleave_%s'", env->name);
    return count_on(src, env->srcdb, sql);
}

static long publications(const shop_env *env)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_publication "
             "WHERE pubname = 'cleave_%s'", env->name);
    return count_on(src, env->srcdb, sql);
}

/* Services whose origin exists, each asked in its own database. */
static int origins(const shop_env *env)
{
    int n = 0;
    for (int s = 0; s < SHOP_NSERVICES; s++) {
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_replication_origin "
                 "WHERE roname = 'cleave_%s_%s'", env->name, shop_services[s]);
        n += (int)count_on(tgt, env->dbs[s], sql);
    }
    return n;
}

static void assert_untouched(const shop_env *env)
{
    ck_assert_int_eq(slots(env), 1);
    ck_assert_int_eq(publications(env), 1);
    ck_assert_int_eq(origins(env), SHOP_NSERVICES);
}

START_TEST(refuse_abort_drop_again)
{
    shop_env env;
    ck_assert(shop_setup(&env, src, tgt, "dropit", NULL, NULL));
    ck_assert(shop_start(&env));
    if (!shop_wait_caught_up(&env, WAIT_S)) {
        shop_log_tail(&env, 40);
        ck_abort_msg("cleave did not catch up");
    }
    assert_untouched(&env);

    /* While cleave streams the slot: refused, even with --yes. */
    rc_result r;
    run_drop(&env, "", "--yes --origins", &r);
    ck_assert_msg(r.status == 1, "exit %d: %s%s", r.status, r.out, r.err);
    ck_assert_msg(strstr(r.err, "cleave_dropit") && strstr(r.err, "active"),
                  "%s", r.err);
    rc_free(&r);
    assert_untouched(&env);

    int rc = shop_stop(&env, SIGTERM, 60);
    ck_assert_msg(rc == 0, "cleave exited %d", rc);

    /* A "no" (and end of input) drops nothing. */
    const char *noes[] = {"n\\n", ""};
    for (int i = 0; i < 2; i++) {
        run_drop(&env, noes[i], "--origins", &r);
        ck_assert_msg(r.status == 1, "exit %d: %s%s", r.status, r.out, r.err);
        ck_assert_msg(strstr(r.out, "Drop these? [y/N]"), "%s", r.out);
        ck_assert_msg(strstr(r.out, "retains") && strstr(r.out, "14 tables"),
                      "%s", r.out);
        ck_assert_msg(strstr(r.err, "nothing dropped"), "%s", r.err);
        rc_free(&r);
        assert_untouched(&env);
    }

    /* --yes --origins: everything gone. */
    run_drop(&env, "", "--yes --origins", &r);
    ck_assert_msg(r.status == 0, "exit %d: %s%s", r.status, r.out, r.err);
    ck_assert_msg(!strstr(r.out, "Drop these?"), "%s", r.out);
    ck_assert_msg(strstr(r.out, "dropped slot cleave_dropit"), "%s", r.out);
    rc_free(&r);
    ck_assert_int_eq(slots(&env), 0);
    ck_assert_int_eq(publications(&env), 0);
    ck_assert_int_eq(origins(&env), 0);

    /* Again: nothing there, not an error. */
    run_drop(&env, "", "--yes --origins", &r);
    ck_assert_msg(r.status == 0, "exit %d: %s%s", r.status, r.out, r.err);
    ck_assert_msg(strstr(r.out, "slot         cleave_dropit: not there") &&
                  strstr(r.out, "publication  cleave_dropit: not there"),
                  "%s", r.out);
    rc_free(&r);
    shop_teardown(&env);
}
END_TEST

/* A "y" on stdin drops; origins are kept without --origins. */
START_TEST(yes_on_stdin_keeps_origins)
{
    shop_env env;
    ck_assert(shop_setup(&env, src, tgt, "dropy", NULL, NULL));
    ck_assert(shop_start(&env));
    ck_assert(shop_wait_caught_up(&env, WAIT_S));
    ck_assert_int_eq(shop_stop(&env, SIGTERM, 60), 0);
    rc_result r;
    run_drop(&env, "y\\n", "", &r);
    ck_assert_msg(r.status == 0, "exit %d: %s%s", r.status, r.out, r.err);
    ck_assert_msg(strstr(r.out, "Drop these? [y/N]"), "%s", r.out);
    rc_free(&r);
    ck_assert_int_eq(slots(&env), 0);
    ck_assert_int_eq(publications(&env), 0);
    ck_assert_int_eq(origins(&env), SHOP_NSERVICES);
    shop_teardown(&env);
}
END_TEST

/* An unreachable source: exit 1 with the reason, no password shown. */
START_TEST(unreachable_source)
{
    shop_env env;
    ck_assert(shop_setup(&env, src, tgt, "dropbad", NULL, NULL));
    char path[600];
    snprintf(path, sizeof path, "%s.bad.yaml", env.config);
    FILE *f = fopen(path, "w");
    ck_assert(f);
    fprintf(f, "name: dropbad\nsource:\n  dsn: \"host=127.0.0.1 port=1 "
            "dbname=x password=sekrit connect_timeout=5\"\n"
            "services:\n  a:\n    owned_tables: [t]\n"
            "    target:\n      postgres: \"dbname=y\"\n");
    fclose(f);
    char *argv[] = {(char *)shop_cleave_bin(), "drop", "-c", path, "--yes", NULL};
    rc_result r;
    ck_assert(rc_run(argv, &r));
    ck_assert_msg(r.status == 1, "exit %d: %s%s", r.status, r.out, r.err);
    ck_assert_msg(strstr(r.err, "cannot connect to the source"), "%s", r.err);
    ck_assert_msg(!strstr(r.err, "sekrit") && !strstr(r.out, "sekrit"),
                  "%s", r.err);
    rc_free(&r);
    shop_teardown(&env);
}
END_TEST

int main(void)
{
    static const char *const tgt_settings[] = {"max_replication_slots = 64", NULL};
    Suite *s = suite_create("drop");
    shop_add_case(s, "refuse_abort_drop_again", refuse_abort_drop_again, 300);
    shop_add_case(s, "yes_on_stdin_keeps_origins", yes_on_stdin_keeps_origins, 300);
    shop_add_case(s, "unreachable_source", unreachable_source, 60);
    return shop_run_suite(s, tgt_settings, &src, &tgt);
}
