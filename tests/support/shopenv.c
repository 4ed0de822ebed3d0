/* shopenv: end-to-end runs of cleave on the shop fixtures; see shopenv.h. */
#include "tests/support/shopenv.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "tests/support/runcmd.h"

double shop_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

const char *const shop_services[SHOP_NSERVICES] = {
    "user_service", "order_service", "payment_service", "inventory_service",
    "notification_service",
};

const char *const shop_tables[SHOP_NTABLES] = {
    "users", "user_preferences", "user_sessions",
    "orders", "order_items", "shipping_addresses",
    "payments", "refunds", "payment_methods",
    "products", "inventory", "warehouses",
    "notifications", "notification_templates",
};

int shop_owner(int table)
{
    static const int owner[SHOP_NTABLES] = {0, 0, 0, 1, 1, 1, 2, 2, 2,
                                            3, 3, 3, 4, 4};
    return owner[table];
}

const char *shop_cleave_bin(void)
{
    static char buf[600];
    const char *env = getenv("CLEAVE_BIN");
    if (env && *env)
        return env;
    const char *b = getenv("CLEAVE_BUILDDIR");
    snprintf(buf, sizeof buf, "%s/cleave", b && *b ? b : "build");
    return buf;
}

static bool write_config(shop_env *env, const char *source_extra,
                         const char *extra)
{
    FILE *f = fopen(env->config, "w");
    if (!f)
        return false;
    char *src = pgc_dsn(env->src, env->srcdb);
    fprintf(f,
            "name: %s\n"
            "source:\n  dsn: \"%s\"\n%s"
            "state_dir: %s\n"
            "status_socket: %s/status.sock\n"
            "log_level: debug\n"
            "services:\n",
            env->name, src, source_extra ? source_extra : "", env->state_dir,
            env->state_dir);
    free(src);
    for (int s = 0; s < SHOP_NSERVICES; s++) {
        char *dsn = pgc_dsn(env->tgt, env->dbs[s]);
        fprintf(f, "  %s:\n    owned_tables: [", shop_services[s]);
        const char *sep = "";
        for (int t = 0; t < SHOP_NTABLES; t++)
            if (shop_owner(t) == s) {
                fprintf(f, "%s%s", sep, shop_tables[t]);
                sep = ", ";
            }
        fprintf(f, "]\n    target:\n      postgres: \"%s\"\n%s", dsn,
                extra ? extra : "");
        free(dsn);
    }
    return fclose(f) == 0;
}

bool shop_config_append(shop_env *env, const char *yaml)
{
    FILE *f = fopen(env->config, "a");
    if (!f)
        return false;
    fputs(yaml, f);
    return fclose(f) == 0;
}

/* Names, paths and clusters of an instance. */
static void init_env(shop_env *env, pgc_cluster *src, pgc_cluster *tgt,
                     const char *name)
{
    memset(env, 0, sizeof *env);
    env->src = src;
    env->tgt = tgt;
    snprintf(env->name, sizeof env->name, "%s", name);
    snprintf(env->srcdb, sizeof env->srcdb, "%s_shop", name);
    snprintf(env->state_dir, sizeof env->state_dir, "%s/state_%s", src->root, name);
    snprintf(env->config, sizeof env->config, "%s/%s.yaml", src->root, name);
    snprintf(env->log, sizeof env->log, "%s/%s.log", src->root, name);
}

bool shop_setup(shop_env *env, pgc_cluster *src, pgc_cluster *tgt,
                const char *name, const char *source_yaml,
                const char *service_yaml)
{
    init_env(env, src, tgt, name);
    if (!pgc_load_shop(src, env->srcdb, 0, true))
        return false;
    for (int s = 0; s < SHOP_NSERVICES; s++) {
        snprintf(env->dbs[s], sizeof env->dbs[s], "%s_%s", name, shop_services[s]);
        if (!pgc_load_shop(tgt, env->dbs[s], 0, false))
            return false;
    }
    return write_config(env, source_yaml, service_yaml);
}

bool shop_setup_copy(shop_env *env, pgc_cluster *src, pgc_cluster *tgt,
                     const char *name, int scale, const char *source_yaml,
                     const char *service_yaml)
{
    init_env(env, src, tgt, name);
    if (!pgc_load_shop(src, env->srcdb, scale, true))
        return false;
    for (int s = 0; s < SHOP_NSERVICES; s++) {
        snprintf(env->dbs[s], sizeof env->dbs[s], "%s_%s", name, shop_services[s]);
        if (!pgc_createdb(tgt, env->dbs[s]))
            return false;
    }
    return write_config(env, source_yaml, service_yaml);
}

long shop_log_size(const shop_env *env)
{
    struct stat st;
    return stat(env->log, &st) == 0 ? (long)st.st_size : 0;
}

int shop_log_count(const shop_env *env, const char *text, long from)
{
    FILE *f = fopen(env->log, "r");
    if (!f)
        return 0;
    if (from > 0)
        fseek(f, from, SEEK_SET);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, text) != NULL;
    fclose(f);
    return n;
}

bool shop_wait_log(const shop_env *env, const char *text, long from,
                   double timeout_s)
{
    double deadline = shop_now_s() + timeout_s;
    while (shop_log_count(env, text, from) == 0) {
        if (shop_now_s() > deadline)
            return false;
        struct timespec ts = {0, 50 * 1000 * 1000};  /* polling a deadline */
        nanosleep(&ts, NULL);
    }
    return true;
}

bool shop_wait_log_either(const shop_env *env, const char *a, const char *b,
                          long from, double timeout_s)
{
    double deadline = shop_now_s() + timeout_s;
    while (shop_log_count(env, a, from) + shop_log_count(env, b, from) == 0) {
        if (shop_now_s() > deadline)
            return false;
        struct timespec ts = {0, 50 * 1000 * 1000};  /* polling a deadline */
        nanosleep(&ts, NULL);
    }
    return true;
}

bool shop_rename_warehouses(shop_env *env, long from, double timeout_s)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(active_pid) "
             "FROM pg_replication_slots WHERE slot_name = 'cleave_%s'",
             env->name);
    bool ok = pgc_exec(env->src, env->srcdb,
                       "ALTER TABLE warehouses RENAME TO depots;"
                       "INSERT INTO depots (code, name, country_code) "
                       "VALUES ('W2', 'two', 'FR')") &&
              shop_wait_log_either(env, "owned table public.warehouses of "
                                   "service inventory_service is no longer "
                                   "in the source database, and "
                                   "public.depots came instead",
                                   "event=owned_table_renamed service="
                                   "inventory_service table=public."
                                   "warehouses was=public.depots", from,
                                   timeout_s) &&
              pgc_exec(env->src, env->srcdb, sql) &&
              shop_wait_log(env, "owned table public.warehouses is not in "
                            "the source database", from, timeout_s);
    if (!ok)
        shop_log_tail(env, 60);
    return ok;
}

bool shop_start(shop_env *env)
{
    env->log_mark = shop_log_size(env);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return false;
    if (pid == 0) {
        int fd = open(env->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
            _exit(127);
        execl(shop_cleave_bin(), "cleave", "run", "-c", env->config, (char *)NULL);
        _exit(127);
    }
    env->pid = pid;
    return true;
}

int shop_stop(shop_env *env, int sig, double timeout_s)
{
    if (env->pid <= 0)
        return -1;
    kill(env->pid, sig);
    double deadline = shop_now_s() + timeout_s;
    int st;
    pid_t r;
    while ((r = waitpid(env->pid, &st, WNOHANG)) == 0 && shop_now_s() < deadline) {
        struct timespec ts = {0, 20 * 1000 * 1000};  /* polling a deadline */
        nanosleep(&ts, NULL);
    }
    if (r == 0) {
        kill(env->pid, SIGKILL);
        waitpid(env->pid, &st, 0);
        env->pid = 0;
        return -1;
    }
    env->pid = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

bool shop_wait_streaming(shop_env *env, double timeout_s)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) > 0 FROM pg_replication_slots "
             "WHERE slot_name = 'cleave_%s' AND active", env->name);
    return pgc_wait_until(env->src, env->srcdb, sql, timeout_s);
}

json_t *shop_status_json(const shop_env *env)
{
    char *argv[] = {(char *)shop_cleave_bin(), "status", "-c",
                    (char *)env->config, "--json", NULL};
    rc_result r;
    if (!rc_run(argv, &r))
        return NULL;
    json_t *j = r.status == 0 ? json_loads(r.out, 0, NULL) : NULL;
    rc_free(&r);
    return j;
}

bool shop_wait_status(const shop_env *env, bool (*pred)(json_t *, void *),
                      void *arg, double timeout_s)
{
    double deadline = shop_now_s() + timeout_s;
    for (;;) {
        json_t *st = shop_status_json(env);
        bool ok = st && pred(st, arg);
        json_decref(st);
        if (ok)
            return true;
        if (shop_now_s() > deadline)
            return false;
        struct timespec ts = {0, 100 * 1000 * 1000};  /* polling a deadline */
        nanosleep(&ts, NULL);
    }
}

/*
 * Whether every service reports streaming (a service's state is the
 * worst of its sinks', so a PostgreSQL and a Kafka sink must both
 * stream).
 */
static bool all_streaming(json_t *st, void *arg)
{
    (void)arg;
    json_t *services = json_object_get(st, "services");
    size_t n = json_array_size(services), streaming = 0;
    for (size_t i = 0; i < n; i++) {
        const char *state = json_string_value(
            json_object_get(json_array_get(services, i), "state"));
        streaming += state && strcmp(state, "streaming") == 0;
    }
    return n > 0 && streaming == n;
}

bool shop_wait_caught_up(shop_env *env, double timeout_s)
{
    if (!shop_wait_status(env, all_streaming, NULL, timeout_s))
        return false;
    char *lsn = pgc_query_value(env->src, env->srcdb, "SELECT pg_current_wal_lsn()");
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT coalesce(confirmed_flush_lsn >= '%s', false) FROM "
             "pg_replication_slots WHERE slot_name = 'cleave_%s'",
             lsn ? lsn : "0/0", env->name);
    free(lsn);
    return pgc_wait_until(env->src, env->srcdb, sql, timeout_s);
}

/*
 * A table's rows as one digest and a count, order-independent: a
 * multiset, so a duplicated row in a table without a key shows.
 */
static char *digest(const pgc_cluster *c, const char *db, const char *table)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT count(*) || ' ' || coalesce(md5(string_agg(r, '|' ORDER BY r)), '-') "
             "FROM (SELECT t::text AS r FROM %s t) s", table);
    return pgc_query_value(c, db, sql);
}

bool shop_table_equal(shop_env *env, int table, char *diff, size_t difflen)
{
    char *a = digest(env->src, env->srcdb, shop_tables[table]);
    char *b = digest(env->tgt, env->dbs[shop_owner(table)], shop_tables[table]);
    bool eq = a && b && strcmp(a, b) == 0;
    if (!eq)
        snprintf(diff, difflen, "%s: source %s, target %s", shop_tables[table],
                 a ? a : "?", b ? b : "?");
    free(a);
    free(b);
    return eq;
}

bool shop_all_equal(shop_env *env)
{
    bool all = true;
    for (int t = 0; t < SHOP_NTABLES; t++) {
        char diff[512];
        if (!shop_table_equal(env, t, diff, sizeof diff)) {
            fprintf(stderr, "differs: %s\n", diff);
            all = false;
        }
    }
    return all;
}

void shop_log_tail(const shop_env *env, int lines)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "tail -n %d '%s' >&2", lines, env->log);
    if (system(cmd) != 0)
        fprintf(stderr, "(no cleave log)\n");
}

bool shop_log_contains(const shop_env *env, const char *text)
{
    FILE *f = fopen(env->log, "r");
    if (!f)
        return false;
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, text) != NULL;
    fclose(f);
    return found;
}

void shop_teardown(shop_env *env)
{
    if (env->pid > 0)
        shop_stop(env, SIGKILL, 10);
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
             "WHERE slot_name = 'cleave_%s' AND NOT active", env->name);
    pgc_exec(env->src, env->srcdb, sql);
}

static void add_case(Suite *s, const char *name, const TTest *test,
                     double timeout_s, const char *tags)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, timeout_s);
    if (tags)
        tcase_set_tags(tc, tags);
    tcase_add_test(tc, test);
    suite_add_tcase(s, tc);
}

void shop_add_case(Suite *s, const char *name, const TTest *test,
                   double timeout_s)
{
    add_case(s, name, test, timeout_s, NULL);
}

void shop_add_long_case(Suite *s, const char *name, const TTest *test,
                        double timeout_s)
{
    add_case(s, name, test, timeout_s, "unsanitized");
}

int shop_run_suite(Suite *s, const char *const *tgt_settings,
                   pgc_cluster **src, pgc_cluster **tgt)
{
    SRunner *sr = srunner_create(s);
    *src = pgc_start(NULL);
    *tgt = *src ? pgc_start(tgt_settings) : NULL;
    int failed = 1;
    if (*tgt) {
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
    }
    srunner_free(sr);
    pgc_stop(*tgt);
    pgc_stop(*src);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

void shop_start_caught_up(shop_env *env, pgc_cluster *src, pgc_cluster *tgt,
                          const char *name, double timeout_s)
{
    ck_assert(shop_setup_copy(env, src, tgt, name, 1, NULL, NULL));
    ck_assert(shop_start(env));
    if (!shop_wait_caught_up(env, timeout_s)) {
        shop_log_tail(env, 60);
        ck_abort_msg("%s: cleave did not catch up", name);
    }
}

void shop_assert_caught_up_and_equal(shop_env *env, double timeout_s)
{
    if (!shop_wait_caught_up(env, timeout_s)) {
        shop_log_tail(env, 60);
        ck_abort_msg("%s: cleave did not catch up", env->name);
    }
    if (!shop_all_equal(env)) {
        shop_log_tail(env, 60);
        ck_abort_msg("%s: a target differs from its source", env->name);
    }
}

void shop_stop_cleanly(shop_env *env)
{
    int rc = shop_stop(env, SIGTERM, 60);
    if (rc != 0)
        shop_log_tail(env, 60);
    ck_assert_msg(rc == 0, "%s: cleave exited %d on SIGTERM", env->name, rc);
    shop_teardown(env);
}
