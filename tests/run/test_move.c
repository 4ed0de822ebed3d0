/*
 * `cleave cutover`, `rollback` and `complete`, the command-line side
 * (PRODUCT.md §8): what the real binary refuses before it asks the daemon
 * (unknown service, a service without a PostgreSQL target, bad values, no
 * daemon, no terminal), and what `complete` does itself in a real shared
 * database: the archive of hostile-named tables restored elsewhere, the
 * drop refused while a foreign key points in and done once it is gone.
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "commands/move.h"
#include "tests/support/pgcluster.h"
#include "tests/support/runcmd.h"

static pgc_cluster *pg;
static const char *cleave_bin;
static char dir[256];   /* configurations, sockets, archives */

/* ---- helpers ---- */

/* Writes dir/NAME.yaml with source database `db` and the services. */
static void write_config(const char *name, const char *db,
                         const char *services, char *path, size_t len)
{
    snprintf(path, len, "%s/%s.yaml", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert(f);
    char *dsn = pgc_dsn(pg, db);
    fprintf(f, "name: %s\nsource:\n  dsn: \"%s\"\nstatus_socket: %s/%s.sock\n"
            "kafka:\n  brokers: \"localhost:9\"\nservices:\n%s",
            name, dsn, dir, name, services);
    free(dsn);
    ck_assert(fclose(f) == 0);
}

/* Runs a shell command line; asserts the exit code. */
static rc_result sh(int expect, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static rc_result sh(int expect, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char *argv[] = {"sh", "-c", cmd, NULL};
    rc_result r;
    ck_assert(rc_run(argv, &r));
    ck_assert_msg(r.status == expect, "%s: exit %d, expected %d\n"
                  "stdout: %s\nstderr: %s", cmd, r.status, expect, r.out,
                  r.err);
    return r;
}

static void assert_has(const char *text, const char *want)
{
    ck_assert_msg(strstr(text, want), "wanted \"%s\" in:\n%s", want, text);
}

static cfg *load(const char *path)
{
    char err[1024];
    cfg *c = cfg_load(path, err, sizeof err);
    ck_assert_msg(c, "%s", err);
    return c;
}

static const cfg_service *service(const cfg *c, const char *name)
{
    for (size_t i = 0; i < c->n_services; i++)
        if (strcmp(c->services[i].name, name) == 0)
            return &c->services[i];
    ck_abort_msg("no service %s", name);
    return NULL;
}

static long count(const char *db, const char *sql)
{
    char *v = pgc_query_value(pg, db, sql);
    ck_assert_msg(v, "%s", sql);
    long n = strtol(v, NULL, 10);
    free(v);
    return n;
}

static bool exists(const char *db, const char *quoted)
{
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT (to_regclass('%s') IS NOT NULL)::int",
             quoted);
    return count(db, sql) == 1;
}

/* What a call printed on its FILE, as a string. */
typedef struct capture {
    char *text;
    size_t len;
    FILE *f;
} capture;

static FILE *capture_start(capture *c)
{
    c->text = NULL;
    c->f = open_memstream(&c->text, &c->len);
    ck_assert(c->f);
    return c->f;
}

static char *capture_end(capture *c)
{
    fclose(c->f);
    return c->text;
}

/* ---- without a database ---- */

static const char two_services[] =
    "  orders:\n    owned_tables: [orders]\n"
    "    target:\n      postgres: \"dbname=orders_db\"\n"
    "  events:\n    owned_tables: [events]\n"
    "    target:\n      kafka: true\n";

START_TEST(usage_errors)
{
    char cf[512];
    write_config("usage", "x", two_services, cf, sizeof cf);
    static const char *const verbs[] = {"cutover", "rollback", "complete"};
    for (int v = 0; v < 3; v++) {
        const char *yes = v == 2 ? "--yes" : "";
        rc_result r = sh(2, "'%s' %s -c '%s' billing %s", cleave_bin,
                         verbs[v], cf, yes);
        assert_has(r.err, "unknown service 'billing'");
        assert_has(r.err, "configures: orders, events");
        rc_free(&r);
        r = sh(2, "'%s' %s -c '%s' events %s", cleave_bin, verbs[v], cf,
               yes);
        assert_has(r.err, "service events has no PostgreSQL target; cut-over "
                   "moves writes between PostgreSQL databases");
        rc_free(&r);
        r = sh(2, "'%s' %s -c '%s'", cleave_bin, verbs[v], cf);
        assert_has(r.err, "SERVICE is required");
        rc_free(&r);
        r = sh(2, "'%s' %s -c '%s' orders other", cleave_bin, verbs[v], cf);
        assert_has(r.err, "unexpected argument 'other'");
        rc_free(&r);
    }
    static const char *const bad[] = {
        "--lock-timeout 0", "--lock-timeout 2147483648", "--pause-budget -5",
        "--pause-budget ''", "--lag-limit 1e3", "--lag-limit 12MB",
        "--lag-limit -1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc_result r = sh(2, "'%s' cutover -c '%s' orders %s", cleave_bin, cf,
                         bad[i]);
        assert_has(r.err, "takes a whole number from");
        rc_free(&r);
    }
    /* complete takes none of cutover's limits, nor --json. */
    rc_result r = sh(2, "'%s' complete -c '%s' orders --yes --lag-limit 5",
                     cleave_bin, cf);
    assert_has(r.err, "--lag-limit");
    rc_free(&r);
    r = sh(2, "'%s' complete -c '%s' orders --yes --json", cleave_bin, cf);
    rc_free(&r);
    r = sh(2, "'%s' cutover -c '%s' orders --yes", cleave_bin, cf);
    rc_free(&r);
    /* A bad configuration is 78, before anything else. */
    r = sh(78, "'%s' cutover -c '%s/none.yaml' orders", cleave_bin, dir);
    rc_free(&r);
}
END_TEST

/* Nothing listens: exit 1 and the reason, the configured socket or -s. */
START_TEST(no_daemon)
{
    char cf[512];
    write_config("nodaemon", "x", two_services, cf, sizeof cf);
    rc_result r = sh(1, "'%s' cutover -c '%s' orders", cleave_bin, cf);
    char want[600];
    snprintf(want, sizeof want, "cleave is not running (no socket at "
             "%s/nodaemon.sock): the running daemon carries out the cut-over",
             dir);
    assert_has(r.err, want);
    ck_assert_str_eq(r.out, "");
    rc_free(&r);
    r = sh(1, "'%s' rollback -c '%s' orders --json --lock-timeout 100 -s "
           "'%s/other.sock'", cleave_bin, cf, dir);
    snprintf(want, sizeof want, "(no socket at %s/other.sock)", dir);
    assert_has(r.err, want);
    rc_free(&r);
    r = sh(1, "'%s' complete -c '%s' orders --yes", cleave_bin, cf);
    assert_has(r.err, "cleave is not running");
    rc_free(&r);

    /* A socket file nobody listens on (a daemon that died). */
    char path[300];
    snprintf(path, sizeof path, "%s/stale.sock", dir);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    ck_assert(strlen(path) < sizeof sa.sun_path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    ck_assert(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    close(fd);
    r = sh(1, "'%s' cutover -c '%s' orders -s '%s'", cleave_bin, cf, path);
    snprintf(want, sizeof want, "cleave is not running (nothing listens on "
             "%s)", path);
    assert_has(r.err, want);
    rc_free(&r);
}
END_TEST

/* complete asks; without a terminal it needs --yes, and never overwrites. */
START_TEST(complete_refusals)
{
    char cf[512];
    write_config("refuse", "x", two_services, cf, sizeof cf);
    rc_result r = sh(2, "'%s' complete -c '%s' orders </dev/null", cleave_bin,
                     cf);
    assert_has(r.err, "stdin is not a terminal");
    assert_has(r.err, "--yes");
    rc_free(&r);
    char archive[300];
    snprintf(archive, sizeof archive, "%s/kept.sql", dir);
    FILE *f = fopen(archive, "w");
    ck_assert(f && fputs("precious\n", f) >= 0 && fclose(f) == 0);
    r = sh(2, "'%s' complete -c '%s' orders --yes --archive '%s'", cleave_bin,
           cf, archive);
    assert_has(r.err, "exists; an archive is never overwritten");
    rc_free(&r);
    /* No pg_dump anywhere: said before anything is asked or changed. */
    snprintf(archive, sizeof archive, "%s/new.sql", dir);
    r = sh(1, "PATH=/nonexistent exec '%s' complete -c '%s' orders --yes "
           "--archive '%s'", cleave_bin, cf, archive);
    assert_has(r.err, "pg_dump is neither on PATH nor in `pg_config "
               "--bindir`");
    assert_has(r.err, "nothing was changed");
    ck_assert_int_ne(access(archive, F_OK), 0);
    rc_free(&r);
}
END_TEST

/* ---- in a real shared database ---- */

/*
 * Owned by `ward`: a table in a schema whose name has a quote, a dot, a
 * dollar and a space, itself named with pattern characters; "tab*" beside
 * a decoy "table" a wildcard would catch; "UPPER" beside a decoy upper
 * that case folding would catch; a partitioned table whose rows are in
 * its partitions.
 */
static const char hostile_sql[] =
    "CREATE SCHEMA \"We$ird \"\"S\"\".x\";"
    "CREATE TABLE \"We$ird \"\"S\"\".x\".\"Odd \"\"Name\"\" *?|(x)\""
    " (id int PRIMARY KEY, v text);"
    "INSERT INTO \"We$ird \"\"S\"\".x\".\"Odd \"\"Name\"\" *?|(x)\""
    " SELECT g, 'odd-' || g FROM generate_series(1, 37) g;"
    "CREATE TABLE \"tab*\" (id int PRIMARY KEY);"
    "INSERT INTO \"tab*\" SELECT generate_series(1, 11);"
    "CREATE TABLE \"table\" (id int PRIMARY KEY, decoy text);"
    "INSERT INTO \"table\" VALUES (1, 'decoy-row-table');"
    "CREATE TABLE \"UPPER\" (id int PRIMARY KEY);"
    "INSERT INTO \"UPPER\" SELECT generate_series(1, 5);"
    "CREATE TABLE upper (id int PRIMARY KEY, decoy text);"
    "INSERT INTO upper VALUES (1, 'decoy-row-upper');"
    "CREATE TABLE events (at date NOT NULL, n int) PARTITION BY RANGE (at);"
    "CREATE TABLE events_2025 PARTITION OF events"
    " FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');"
    "CREATE TABLE events_2026 PARTITION OF events"
    " FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');"
    "INSERT INTO events SELECT date '2025-06-01' + g, g"
    " FROM generate_series(1, 400) g;";

/* A write fence as the daemon sets one (sinks/pgfence), on "tab*". */
static const char fence_fn_sql[] =
    "CREATE SCHEMA cleave;"
    "CREATE FUNCTION cleave.fence() RETURNS trigger LANGUAGE plpgsql AS"
    " $$BEGIN RAISE EXCEPTION 'fenced' USING ERRCODE = '25006'; END$$;";
static const char fence_sql[] =
    "CREATE TRIGGER cleave_fence BEFORE INSERT OR UPDATE OR DELETE OR"
    " TRUNCATE ON \"tab*\" FOR EACH STATEMENT EXECUTE FUNCTION"
    " cleave.fence();";

static const char hostile_services[] =
    "  ward:\n    owned_tables:\n"
    "      - '\"We$ird \"\"S\"\".x\".\"Odd \"\"Name\"\" *?|(x)\"'\n"
    "      - '\"tab*\"'\n"
    "      - '\"UPPER\"'\n"
    "      - events\n"
    "    target:\n      postgres: \"dbname=ward_db\"\n";

static const char odd[] = "\"We$ird \"\"S\"\".x\".\"Odd \"\"Name\"\" *?|(x)\"";

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    ck_assert_msg(f, "%s", path);
    char *buf = NULL;
    size_t len = 0;
    ck_assert(getdelim(&buf, &len, '\0', f) >= 0);
    fclose(f);
    return buf;
}

START_TEST(archive_hostile_names)
{
    ck_assert(pgc_createdb(pg, "arch") && pgc_exec(pg, "arch", hostile_sql) &&
              pgc_exec(pg, "arch", fence_fn_sql) &&
              pgc_exec(pg, "arch", fence_sql));
    char cf[512], path[300], err[1024];
    write_config("arch", "arch", hostile_services, cf, sizeof cf);
    cfg *c = load(cf);
    const cfg_service *ward = service(c, "ward");
    snprintf(path, sizeof path, "%s/ward.sql", dir);
    ck_assert_msg(move_archive(c, ward, path, err, sizeof err), "%s", err);

    struct stat st;
    ck_assert(stat(path, &st) == 0);
    ck_assert_int_eq(st.st_mode & 077, 0);   /* the service's data */
    char partial[320];
    snprintf(partial, sizeof partial, "%s.partial", path);
    ck_assert_int_ne(access(partial, F_OK), 0);
    char *text = slurp(path);
    ck_assert_msg(!strstr(text, "decoy-row"), "a decoy was dumped:\n%s", text);
    free(text);

    /*
     * Restored into an empty database (its schemas and the fence's
     * function made first): every owned row, no decoy, "tab*" fenced as
     * it was.
     */
    ck_assert(pgc_createdb(pg, "restored") &&
              pgc_exec(pg, "restored",
                       "CREATE SCHEMA \"We$ird \"\"S\"\".x\"") &&
              pgc_exec(pg, "restored", fence_fn_sql));
    ck_assert(pgc_psql_file(pg, "restored", path, NULL));
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE v = 'odd-' || id",
             odd);
    ck_assert_int_eq(count("restored", sql), 37);
    ck_assert_int_eq(count("restored", "SELECT count(*) FROM \"tab*\""), 11);
    ck_assert_int_eq(count("restored", "SELECT count(*) FROM \"UPPER\""), 5);
    ck_assert_int_eq(count("restored", "SELECT count(*) FROM events"), 400);
    ck_assert_int_eq(count("restored", "SELECT count(*) FROM events_2026"),
                     count("arch", "SELECT count(*) FROM events_2026"));
    ck_assert(!exists("restored", "public.\"table\""));
    ck_assert(!exists("restored", "public.upper"));
    ck_assert_int_eq(count("restored", "SELECT count(*) FROM pg_trigger"
                           " WHERE tgname = 'cleave_fence'"
                           " AND tgrelid = '\"tab*\"'::regclass"), 1);

    /* Never over an existing file; a missing table is said, no file. */
    ck_assert(!move_archive(c, ward, path, err, sizeof err));
    assert_has(err, "exists");
    ck_assert(pgc_exec(pg, "arch", "DROP TABLE \"UPPER\""));
    snprintf(path, sizeof path, "%s/ward2.sql", dir);
    ck_assert(!move_archive(c, ward, path, err, sizeof err));
    assert_has(err, "public.UPPER is not in the shared database");
    ck_assert_int_ne(access(path, F_OK), 0);
    cfg_free(c);
}
END_TEST

/*
 * `parent` owns p and "Kid ""1""" (whose key to p stays inside the
 * service); `other` owns o, whose key points at p; an unowned audit table
 * points at "Kid ""1""".
 */
static const char fk_sql[] =
    "CREATE TABLE p (id int PRIMARY KEY);"
    "INSERT INTO p SELECT generate_series(1, 10);"
    "CREATE TABLE \"Kid \"\"1\"\"\" (id int PRIMARY KEY,"
    " p_id int REFERENCES p);"
    "INSERT INTO \"Kid \"\"1\"\"\" SELECT g, g FROM generate_series(1, 10) g;"
    "CREATE TABLE o (id int PRIMARY KEY, p_id int,"
    " CONSTRAINT \"o->p \"\"fk\"\"\" FOREIGN KEY (p_id) REFERENCES p);"
    "INSERT INTO o SELECT g, g FROM generate_series(1, 10) g;"
    "CREATE TABLE audit (kid int REFERENCES \"Kid \"\"1\"\"\");";

static const char fk_services[] =
    "  parent:\n    owned_tables: [p, '\"Kid \"\"1\"\"\"']\n"
    "    target:\n      postgres: \"dbname=parent_db\"\n"
    "  other:\n    owned_tables: [o]\n"
    "    target:\n      postgres: \"dbname=other_db\"\n";

static const char o_fk_drop[] =
    "ALTER TABLE public.o DROP CONSTRAINT \"o->p \"\"fk\"\"\";";
static const char audit_fk_drop[] =
    "ALTER TABLE public.audit DROP CONSTRAINT audit_kid_fkey;";

static void assert_parent_tables(const char *db, bool there)
{
    ck_assert_int_eq(exists(db, "public.p"), there);
    ck_assert_int_eq(exists(db, "public.\"Kid \"\"1\"\"\""), there);
    ck_assert(exists(db, "public.o"));
    if (there)
        ck_assert_int_eq(count(db, "SELECT count(*) FROM p"), 10);
}

START_TEST(drop_tables_refused_then_done)
{
    ck_assert(pgc_createdb(pg, "fk") && pgc_exec(pg, "fk", fk_sql));
    char cf[512], err[1024];
    write_config("fk", "fk", fk_services, cf, sizeof cf);
    cfg *c = load(cf);
    const cfg_service *parent = service(c, "parent");
    capture cap;

    size_t n = 0;
    ck_assert(move_foreign_keys_in(c, parent, capture_start(&cap), &n, err,
                                   sizeof err));
    char *text = capture_end(&cap);
    ck_assert_int_eq(n, 2);
    assert_has(text, "o->p \"fk\": public.o -> public.p (owned by other)");
    assert_has(text, o_fk_drop);
    assert_has(text, "audit_kid_fkey: public.audit -> public.Kid \"1\" "
               "(not owned)");
    ck_assert_msg(!strstr(text, "Kid \"1\" -> public.p"), "%s", text);
    free(text);

    ck_assert_int_eq(move_drop_tables(c, parent, capture_start(&cap), err,
                                      sizeof err), 1);
    text = capture_end(&cap);
    assert_has(text, o_fk_drop);
    assert_has(err, "2 foreign key(s) of other tables point at parent's");
    ck_assert_msg(!strstr(text, "dropped"), "%s", text);
    free(text);
    assert_parent_tables("fk", true);

    /* One gone, one left: still refused, the one left named. */
    ck_assert(pgc_exec(pg, "fk", o_fk_drop));
    ck_assert_int_eq(move_drop_tables(c, parent, capture_start(&cap), err,
                                      sizeof err), 1);
    text = capture_end(&cap);
    assert_has(text, audit_fk_drop);
    ck_assert_msg(!strstr(text, "o->p"), "%s", text);
    free(text);
    assert_parent_tables("fk", true);

    ck_assert(pgc_exec(pg, "fk", audit_fk_drop));
    ck_assert_msg(move_drop_tables(c, parent, capture_start(&cap), err,
                                   sizeof err) == 0, "%s", err);
    text = capture_end(&cap);
    assert_has(text, "dropped public.p\n");
    assert_has(text, "dropped public.Kid \"1\"\n");
    free(text);
    assert_parent_tables("fk", false);
    ck_assert_int_eq(count("fk", "SELECT count(*) FROM o"), 10);

    /* Again: nothing there, not an error. */
    ck_assert_int_eq(move_drop_tables(c, parent, capture_start(&cap), err,
                                      sizeof err), 0);
    text = capture_end(&cap);
    assert_has(text, "not there: public.p\n");
    free(text);
    cfg_free(c);
}
END_TEST

/*
 * Through the binary: --drop-tables is refused before the daemon is
 * asked; once the keys are gone the daemon is asked first, and without
 * its ok nothing is dropped.
 */
START_TEST(complete_drop_waits_for_the_daemon)
{
    ck_assert(pgc_createdb(pg, "fkcli") && pgc_exec(pg, "fkcli", fk_sql));
    char cf[512];
    write_config("fkcli", "fkcli", fk_services, cf, sizeof cf);
    rc_result r = sh(1, "'%s' complete -c '%s' parent --yes --drop-tables",
                     cleave_bin, cf);
    assert_has(r.out, o_fk_drop);
    assert_has(r.out, audit_fk_drop);
    assert_has(r.err, "--drop-tables is refused while 2 foreign key(s)");
    assert_has(r.err, "nothing was changed");
    ck_assert_msg(!strstr(r.err, "not running"), "%s", r.err);
    rc_free(&r);
    assert_parent_tables("fkcli", true);

    ck_assert(pgc_exec(pg, "fkcli", o_fk_drop) &&
              pgc_exec(pg, "fkcli", audit_fk_drop));
    r = sh(1, "'%s' complete -c '%s' parent --yes --drop-tables", cleave_bin,
           cf);
    assert_has(r.err, "cleave is not running");
    rc_free(&r);
    assert_parent_tables("fkcli", true);
}
END_TEST

int main(int argc, char **argv)
{
    cleave_bin = argc > 1 ? argv[1] : "build/cleave";
    snprintf(dir, sizeof dir, "%s/cleave-move-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir))
        return EXIT_FAILURE;
    Suite *s = suite_create("move");
    TCase *tc = tcase_create("move");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, usage_errors);
    tcase_add_test(tc, no_daemon);
    tcase_add_test(tc, complete_refusals);
    tcase_add_test(tc, archive_hostile_names);
    tcase_add_test(tc, drop_tables_refused_then_done);
    tcase_add_test(tc, complete_drop_waits_for_the_daemon);
    suite_add_tcase(s, tc);
    pg = pgc_start(NULL);
    if (!pg)
        return EXIT_FAILURE;
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    pgc_stop(pg);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        failed++;
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
