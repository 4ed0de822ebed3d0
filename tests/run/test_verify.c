/*
 * `cleave verify` end to end (PRODUCT.md §6, daemon/verify.h): the real
 * binary compares the shop source with the five service databases while
 * cleave streams. Under a live workload it must report nothing; after
 * rows of the targets are changed behind cleave's back it must name
 * exactly those keys, in the blocks of the right tables, and exit 3; a
 * table without a key is compared as a multiset, so a duplicated row
 * shows.
 */
#include <check.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "tests/support/runcmd.h"
#include "tests/support/shopenv.h"

static pgc_cluster *src, *tgt;

static const char *const mix[] = {
    "new_order.sql@4", "user_update.sql@3", "inventory.sql@3",
    "notification.sql@2", "refund.sql@1", NULL,
};

#define WAIT_S 180
#define MAX_BLOCKS 32

/* ---- verify's report ---------------------------------------------------- */

/* One table's block: its header line and the indented lines under it. */
typedef struct vblock {
    char status[16];
    char service[64];
    char table[128];
    long rows;            /* "N rows", -1 when the header has none */
    long diffs;           /* "K difference(s)", -1 when none */
    int listed;           /* difference lines ("... and N more" too) */
    int unsettled;        /* "unsettled:" lines: not compared, not differences */
    int notes;            /* "note:" lines */
    int others;           /* indented lines of no kind verify.h names */
    char body[4096];      /* every indented line, each ending in '\n' */
} vblock;

typedef struct vreport {
    rc_result r;
    int n;
    vblock b[MAX_BLOCKS];
    int summaries;        /* lines starting with "summary:" */
    int strays;           /* lines that fit no block */
    int heads;            /* "verify: ..." and "note: ..." before the tables */
} vreport;

static bool is_header(const char *line)
{
    static const char *const kinds[] = {"ok ", "differs ", "error ", "skipped "};
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        if (strncmp(line, kinds[i], strlen(kinds[i])) == 0)
            return true;
    return false;
}

/*
 * "STATUS SERVICE SCHEMA.TABLE N rows[, K difference(s)]"; whatever else
 * follows the count (chunks re-checked, say) is left alone.
 */
static void parse_header(vblock *b, const char *line)
{
    memset(b, 0, sizeof *b);
    b->rows = b->diffs = -1;
    int end = 0;
    if (sscanf(line, "%15s %63s %127s %ld rows%n", b->status, b->service,
               b->table, &b->rows, &end) < 4) {
        b->rows = -1;
        return;
    }
    long k;
    char word[16];
    if (sscanf(line + end, ", %ld %15[a-z]", &k, word) == 2 &&
        strcmp(word, "difference") == 0)
        b->diffs = k;
}

static bool starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* An indented line under a table: a difference, or what verify.h adds. */
static void add_body_line(vblock *b, const char *line, size_t len)
{
    size_t used = strlen(b->body);
    snprintf(b->body + used, sizeof b->body - used, "%.*s\n", (int)len, line);
    const char *l = line + strspn(line, " ");
    if (starts(l, "missing in target: ") || starts(l, "extra in target: ") ||
        starts(l, "different: ") || starts(l, "... and "))
        b->listed++;
    else if (starts(l, "unsettled: "))
        b->unsettled++;
    else if (starts(l, "note: "))
        b->notes++;
    else
        b->others++;
}

/* Splits stdout into blocks, as verify.h lays them out. */
static void parse_report(vreport *rep)
{
    rep->n = rep->summaries = rep->strays = rep->heads = 0;
    vblock *cur = NULL;
    for (const char *p = rep->r.out; *p;) {
        size_t len = strcspn(p, "\n");
        char line[4096];
        snprintf(line, sizeof line, "%.*s", (int)len, p);
        if (is_header(line) && rep->n < MAX_BLOCKS) {
            cur = &rep->b[rep->n++];
            parse_header(cur, line);
        } else if (line[0] == ' ' && cur) {
            add_body_line(cur, line, len);
        } else if (strncmp(line, "summary:", 8) == 0) {
            rep->summaries++;
            cur = NULL;
        } else if (rep->n == 0 && (starts(line, "verify: ") ||
                                   starts(line, "note: "))) {
            rep->heads++;
        } else if (line[0]) {
            rep->strays++;
        }
        p += len + (p[len] == '\n');
    }
}

/*
 * The first report with a line outside verify.h's format: checked last in
 * each test, so a stray line does not hide what the other checks find.
 */
static char *first_stray;

static void note_strays(const vreport *rep)
{
    if (rep->strays > 0 && !first_stray)
        first_stray = strdup(rep->r.out);
}

static void assert_no_strays(void)
{
    ck_assert_msg(!first_stray, "line(s) outside verify.h's format (neither "
                  "a table's block nor the summary) in:\n%s", first_stray);
}

/* Runs `cleave verify -c CONFIG [opt val]`; its exit code. */
static int verify(const shop_env *env, const char *opt, const char *val,
                  vreport *rep)
{
    char *argv[] = {(char *)shop_cleave_bin(), "verify", "-c",
                    (char *)env->config, (char *)opt, (char *)val, NULL};
    ck_assert(rc_run(argv, &rep->r));
    parse_report(rep);
    note_strays(rep);
    /* In the test's log, so a failure shows what verify said. */
    printf("verify %s %s: exit %d\n%s%s", opt ? opt : "", val ? val : "",
           rep->r.status, rep->r.out, rep->r.err);
    fflush(stdout);
    return rep->r.status;
}

static const vblock *find_block(const vreport *rep, const char *table)
{
    char qualified[128];
    snprintf(qualified, sizeof qualified, "public.%s", table);
    for (int i = 0; i < rep->n; i++)
        if (strcmp(rep->b[i].table, qualified) == 0)
            return &rep->b[i];
    return NULL;
}

static int count_status(const vreport *rep, const char *status)
{
    int n = 0;
    for (int i = 0; i < rep->n; i++)
        n += strcmp(rep->b[i].status, status) == 0;
    return n;
}

/* Where a test's time goes, in its log (the suite has a time budget). */
static void phase(const char *test, const char *what, double since)
{
    printf("%s: %s after %.1f s\n", test, what, shop_now_s() - since);
    fflush(stdout);
}

/* ---- the databases ------------------------------------------------------ */

static long count_on(const pgc_cluster *c, const char *db, const char *sql)
{
    char *v = pgc_query_value(c, db, sql);
    ck_assert_msg(v, "%s", sql);
    long n = strtol(v, NULL, 10);
    free(v);
    return n;
}

static long source_rows(const shop_env *env, const char *table)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM public.%s", table);
    return count_on(env->src, env->srcdb, sql);
}

static int table_index(const char *table)
{
    for (int t = 0; t < SHOP_NTABLES; t++)
        if (strcmp(shop_tables[t], table) == 0)
            return t;
    ck_abort_msg("no shop table %s", table);
    return -1;
}

/* Changes a service's target directly, behind cleave's back. */
static void exec_target(const shop_env *env, const char *table, const char *sql)
{
    const char *db = env->dbs[shop_owner(table_index(table))];
    char *unfenced;   /* past the fence, as cleave's own apply goes */
    ck_assert(asprintf(&unfenced, "SET session_replication_role = replica; "
                       "%s", sql) > 0);
    ck_assert_msg(pgc_exec(env->tgt, db, unfenced), "%s: %s", db, sql);
    free(unfenced);
}

/* An initial sync at scale 1, streamed to the end. */
static void start_caught_up(shop_env *env, const char *name)
{
    double t0 = shop_now_s();
    ck_assert_msg(shop_setup_copy(env, src, tgt, name, 1, NULL, NULL),
                  "setup %s", name);
    ck_assert(shop_start(env));
    if (!shop_wait_caught_up(env, WAIT_S)) {
        shop_log_tail(env, 40);
        ck_abort_msg("%s: cleave did not catch up", name);
    }
    phase(name, "loaded, copied and caught up", t0);
}

static void stop_and_teardown(shop_env *env)
{
    double t0 = shop_now_s();
    int rc = shop_stop(env, SIGTERM, 60);
    ck_assert_msg(rc == 0, "%s: cleave exited %d", env->name, rc);
    shop_teardown(env);
    phase(env->name, "stopped", t0);
}

/* ---- what a report must say --------------------------------------------- */

/* The table is "ok" with `rows` rows (-1: any count), owned by its service. */
static void assert_ok(const vreport *rep, const char *table, long rows)
{
    const vblock *b = find_block(rep, table);
    ck_assert_msg(b, "no block for %s in:\n%s", table, rep->r.out);
    ck_assert_msg(strcmp(b->status, "ok") == 0, "%s is %s:\n%s", table,
                  b->status, rep->r.out);
    ck_assert_str_eq(b->service, shop_services[shop_owner(table_index(table))]);
    ck_assert_msg(b->listed == 0 && b->others == 0,
                  "%s: ok with differences under it:\n%s", table, b->body);
    if (rows >= 0)
        ck_assert_msg(b->rows == rows, "%s: %ld rows reported, source has %ld",
                      table, b->rows, rows);
}

/* The table "differs" in exactly the lines `want` (substrings, one each). */
static void assert_differs(const vreport *rep, const char *table,
                           const char *const *want)
{
    const vblock *b = find_block(rep, table);
    ck_assert_msg(b, "no block for %s in:\n%s", table, rep->r.out);
    ck_assert_msg(strcmp(b->status, "differs") == 0, "%s is %s:\n%s", table,
                  b->status, rep->r.out);
    ck_assert_str_eq(b->service, shop_services[shop_owner(table_index(table))]);
    int n = 0;
    for (; want[n]; n++)
        ck_assert_msg(strstr(b->body, want[n]), "%s: no \"%s\" in:\n%s", table,
                      want[n], b->body);
    ck_assert_msg(b->listed == n && b->diffs == n && b->others == 0,
                  "%s: %d line(s), %ld difference(s) in the header, want %d:\n%s",
                  table, b->listed, b->diffs, n, rep->r.out);
}

/* Every other table of the report is "ok" with its source's row count. */
static void assert_rest_ok(const shop_env *env, const vreport *rep,
                           const char *const *changed)
{
    for (int i = 0; i < rep->n; i++) {
        const char *table = rep->b[i].table + strlen("public.");
        bool skip = false;
        for (int c = 0; changed[c]; c++)
            skip = skip || strcmp(changed[c], table) == 0;
        if (!skip)
            assert_ok(rep, table, source_rows(env, table));
    }
}

/* One summary line (stray lines: note_strays). */
static void assert_summary(const vreport *rep)
{
    ck_assert_msg(rep->summaries == 1, "%d summary lines in:\n%s",
                  rep->summaries, rep->r.out);
}

/*
 * Nothing left unsettled and no note: with no workload and cleave
 * caught up, every row is compared and the target is known current.
 */
static void assert_settled(const vreport *rep)
{
    for (int i = 0; i < rep->n; i++)
        ck_assert_msg(rep->b[i].unsettled == 0 && rep->b[i].notes == 0,
                      "%s: unsettled or noted while quiet:\n%s",
                      rep->b[i].table, rep->r.out);
}

/* Every owned table once, each with its owner's name. */
static void assert_all_tables(const vreport *rep)
{
    ck_assert_msg(rep->n == SHOP_NTABLES, "%d table lines, want %d:\n%s",
                  rep->n, SHOP_NTABLES, rep->r.out);
    for (int t = 0; t < SHOP_NTABLES; t++)
        ck_assert_msg(find_block(rep, shop_tables[t]), "no line for %s:\n%s",
                      shop_tables[t], rep->r.out);
}

/* ---- the workload ------------------------------------------------------- */

/*
 * Ends pgbench early, then waits until its sessions are gone from the
 * source: a COMMIT it had already sent lands before we read the source's
 * LSN to catch up to.
 */
static void stop_pgbench(shop_env *env, int pid)
{
    kill(pid, SIGTERM);
    int st;
    ck_assert(waitpid(pid, &st, 0) == pid);
    ck_assert(pgc_wait_until(src, env->srcdb,
                             "SELECT count(*) = 0 FROM pg_stat_activity "
                             "WHERE application_name = 'pgbench'", 60));
}

/* Waits until the order service's target holds more than n orders. */
static void wait_target_orders(shop_env *env, long n)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) > %ld FROM orders", n);
    if (!pgc_wait_until(tgt, env->dbs[1], sql, WAIT_S)) {
        shop_log_tail(env, 40);
        ck_abort_msg("%s: the target never had %ld orders", env->name, n);
    }
}

/* ---- the tests ---------------------------------------------------------- */

/*
 * Under load verify may leave rows unsettled (changed between all its
 * looks: neither equal nor a difference); the log shows how many.
 */
static void print_unsettled(const vreport *rep)
{
    int blocks = 0, notes = 0;
    for (int i = 0; i < rep->n; i++) {
        blocks += rep->b[i].unsettled > 0;
        notes += rep->b[i].notes;
    }
    printf("no_false_positives: %d table(s) with unsettled rows, %d note(s)\n",
           blocks, notes);
}

/*
 * While pgbench writes to every service and cleave streams it, verify
 * sees rows the targets have not applied yet: it must re-check them, not
 * report them. Afterwards, caught up, the row counts must be the source's.
 */
START_TEST(no_false_positives)
{
    shop_env env;
    start_caught_up(&env, "vlive");
    long orders = source_rows(&env, "orders");
    /* Far more than verify needs: pgbench is stopped once verify is done. */
    int bench = pgc_pgbench_start(src, env.srcdb, 4, 50000, 1, mix);
    ck_assert(bench > 0);
    /* The stream carries the workload before verify starts reading. */
    wait_target_orders(&env, orders + 200);
    ck_assert_msg(rc_running(bench), "pgbench ended before verify started");

    vreport rep;
    double t0 = shop_now_s();
    int rc = verify(&env, NULL, NULL, &rep);
    bool busy = rc_running(bench);
    printf("no_false_positives: pgbench %s when verify ended\n",
           busy ? "still running" : "had ended");
    phase(env.name, "verify under load done", t0);
    print_unsettled(&rep);
    stop_pgbench(&env, bench);
    ck_assert_msg(rc == 0, "exit %d under load:\n%s%s", rc, rep.r.out, rep.r.err);
    assert_all_tables(&rep);
    ck_assert_int_eq(count_status(&rep, "ok"), SHOP_NTABLES);
    ck_assert_msg(!strstr(rep.r.out, "differs"), "%s", rep.r.out);
    assert_summary(&rep);
    rc_free(&rep.r);

    /* Quiet and caught up: the same verdict, with the source's counts. */
    t0 = shop_now_s();
    if (!shop_wait_caught_up(&env, WAIT_S) || !shop_all_equal(&env)) {
        shop_log_tail(&env, 40);
        ck_abort_msg("cleave did not catch up to an equal copy");
    }
    phase(env.name, "caught up after the workload", t0);
    rc = verify(&env, NULL, NULL, &rep);
    ck_assert_msg(rc == 0, "exit %d:\n%s%s", rc, rep.r.out, rep.r.err);
    assert_all_tables(&rep);
    const char *none[] = {NULL};
    assert_rest_ok(&env, &rep, none);
    assert_summary(&rep);
    assert_settled(&rep);
    rc_free(&rep.r);
    stop_and_teardown(&env);
    assert_no_strays();
}
END_TEST

/* Rows changed in the targets, each kind once; keys no workload touches. */
static void change_targets(shop_env *env)
{
    exec_target(env, "orders",
                "UPDATE orders SET note = 'changed by test_verify' WHERE id = 4242");
    exec_target(env, "order_items",
                "UPDATE order_items SET quantity = quantity + 1 "
                "WHERE order_id = 77 AND line_no = 2");
    exec_target(env, "user_preferences",
                "DELETE FROM user_preferences WHERE user_id = 1234");
    exec_target(env, "warehouses",
                "INSERT INTO warehouses (id, code, name, country_code) "
                "VALUES (900, 'VFY', 'test_verify', 'DE')");
}

static const char *const changed_tables[] = {
    "orders", "order_items", "user_preferences", "warehouses", NULL,
};

static void assert_changes_named(const vreport *rep)
{
    const char *orders[] = {"different: id=4242", NULL};
    const char *items[] = {"different: order_id=77, line_no=2", NULL};
    const char *prefs[] = {"missing in target: user_id=1234", NULL};
    const char *whs[] = {"extra in target: id=900", NULL};
    assert_differs(rep, "orders", orders);
    assert_differs(rep, "order_items", items);
    assert_differs(rep, "user_preferences", prefs);
    assert_differs(rep, "warehouses", whs);
}

/* An unknown name is a usage error, and says which name. */
static void assert_unknown(const shop_env *env, const char *opt)
{
    vreport rep;
    int rc = verify(env, opt, "nosuch", &rep);
    ck_assert_msg(rc == 2, "%s nosuch: exit %d:\n%s%s", opt, rc, rep.r.out,
                  rep.r.err);
    ck_assert_msg(rep.n == 0, "%s nosuch: table lines:\n%s", opt, rep.r.out);
    ck_assert_msg(strstr(rep.r.err, "nosuch"), "%s nosuch: %s", opt, rep.r.err);
    rc_free(&rep.r);
}

START_TEST(target_changes_reported)
{
    shop_env env;
    start_caught_up(&env, "vdiff");
    change_targets(&env);

    vreport rep;
    int rc = verify(&env, NULL, NULL, &rep);
    ck_assert_msg(rc == 3, "exit %d:\n%s%s", rc, rep.r.out, rep.r.err);
    assert_all_tables(&rep);
    assert_changes_named(&rep);
    assert_rest_ok(&env, &rep, changed_tables);
    ck_assert_int_eq(count_status(&rep, "differs"), 4);
    assert_summary(&rep);
    assert_settled(&rep);
    rc_free(&rep.r);

    /* One service: its three tables only, and its difference still counts. */
    rc = verify(&env, "--service", "user_service", &rep);
    ck_assert_msg(rc == 3, "exit %d:\n%s%s", rc, rep.r.out, rep.r.err);
    ck_assert_msg(rep.n == 3, "%d table lines:\n%s", rep.n, rep.r.out);
    const char *prefs[] = {"missing in target: user_id=1234", NULL};
    assert_differs(&rep, "user_preferences", prefs);
    assert_ok(&rep, "users", source_rows(&env, "users"));
    assert_ok(&rep, "user_sessions", source_rows(&env, "user_sessions"));
    assert_summary(&rep);
    assert_settled(&rep);
    rc_free(&rep.r);

    /* One table, as the configuration names it. */
    rc = verify(&env, "--table", "orders", &rep);
    ck_assert_msg(rc == 3, "exit %d:\n%s%s", rc, rep.r.out, rep.r.err);
    ck_assert_msg(rep.n == 1, "%d table lines:\n%s", rep.n, rep.r.out);
    const char *orders[] = {"different: id=4242", NULL};
    assert_differs(&rep, "orders", orders);
    assert_summary(&rep);
    assert_settled(&rep);
    rc_free(&rep.r);

    /* An unchanged table alone: equal, whatever differs elsewhere. */
    rc = verify(&env, "--table", "payments", &rep);
    ck_assert_msg(rc == 0, "exit %d:\n%s%s", rc, rep.r.out, rep.r.err);
    ck_assert_msg(rep.n == 1, "%d table lines:\n%s", rep.n, rep.r.out);
    assert_ok(&rep, "payments", source_rows(&env, "payments"));
    assert_summary(&rep);
    assert_settled(&rep);
    rc_free(&rep.r);

    assert_unknown(&env, "--table");
    assert_unknown(&env, "--service");
    stop_and_teardown(&env);
    assert_no_strays();
}
END_TEST

/* The session_token of the target's first user_sessions row. */
static char *first_session(const shop_env *env)
{
    char *token = pgc_query_value(tgt, env->dbs[0],
                                  "SELECT session_token FROM user_sessions "
                                  "WHERE ctid = (SELECT min(ctid) FROM user_sessions)");
    ck_assert(token);
    return token;
}

/* The user_sessions block names the row by its session_token (among all). */
static void assert_names_session(const vreport *rep, const char *token)
{
    const vblock *b = find_block(rep, "user_sessions");
    ck_assert(b);
    ck_assert_msg(strstr(b->body, token), "no %s in:\n%s", token, rep->r.out);
}

START_TEST(keyless_duplicate_reported)
{
    shop_env env;
    start_caught_up(&env, "vdup");
    char *token = first_session(&env);
    /* The same row once more: only a multiset comparison can see it. */
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO user_sessions SELECT * FROM user_sessions "
             "WHERE session_token = '%s'", token);
    exec_target(&env, "user_sessions", sql);
    ck_assert_int_eq(count_on(tgt, env.dbs[0], "SELECT count(*) FROM user_sessions")
                     - source_rows(&env, "user_sessions"), 1);

    vreport rep;
    int rc = verify(&env, NULL, NULL, &rep);
    ck_assert_msg(rc == 3, "exit %d:\n%s%s", rc, rep.r.out, rep.r.err);
    assert_all_tables(&rep);
    /* One line naming the row by its columns, the token among them. */
    const char *extra[] = {"extra in target:", NULL};
    assert_differs(&rep, "user_sessions", extra);
    assert_names_session(&rep, token);
    const char *changed[] = {"user_sessions", NULL};
    assert_rest_ok(&env, &rep, changed);
    assert_summary(&rep);
    assert_settled(&rep);
    rc_free(&rep.r);

    /* The duplicate gone: equal again. */
    snprintf(sql, sizeof sql,
             "DELETE FROM user_sessions WHERE ctid = (SELECT max(ctid) FROM "
             "user_sessions WHERE session_token = '%s')", token);
    exec_target(&env, "user_sessions", sql);
    rc = verify(&env, "--table", "user_sessions", &rep);
    ck_assert_msg(rc == 0, "exit %d:\n%s%s", rc, rep.r.out, rep.r.err);
    ck_assert_msg(rep.n == 1, "%d table lines:\n%s", rep.n, rep.r.out);
    assert_ok(&rep, "user_sessions", source_rows(&env, "user_sessions"));
    assert_summary(&rep);
    assert_settled(&rep);
    rc_free(&rep.r);

    /* And the row gone altogether: missing, named the same way. */
    snprintf(sql, sizeof sql,
             "DELETE FROM user_sessions WHERE session_token = '%s'", token);
    exec_target(&env, "user_sessions", sql);
    rc = verify(&env, "--table", "user_sessions", &rep);
    ck_assert_msg(rc == 3, "exit %d:\n%s%s", rc, rep.r.out, rep.r.err);
    const char *missing[] = {"missing in target:", NULL};
    assert_differs(&rep, "user_sessions", missing);
    assert_names_session(&rep, token);
    assert_summary(&rep);
    assert_settled(&rep);
    rc_free(&rep.r);
    free(token);
    stop_and_teardown(&env);
    assert_no_strays();
}
END_TEST

int main(void)
{
    static const char *const tgt_settings[] = {"max_replication_slots = 64", NULL};
    Suite *s = suite_create("verify");
    shop_add_case(s, "no_false_positives", no_false_positives, 300);
    shop_add_case(s, "target_changes_reported", target_changes_reported, 300);
    shop_add_case(s, "keyless_duplicate_reported", keyless_duplicate_reported, 300);
    return shop_run_suite(s, tgt_settings, &src, &tgt);
}
