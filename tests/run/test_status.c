/*
 * The status socket against a real run (PRODUCT.md §4): the real binary
 * between the shop clusters, asked through its socket and through
 * `cleave status`, while its state changes.
 */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "tests/support/runcmd.h"
#include "tests/support/shopenv.h"

static pgc_cluster *src, *tgt;

#define WAIT_S 120
#define INVENTORY 3

static void sock_path(const shop_env *env, char *buf, size_t len)
{
    if (snprintf(buf, len, "%s/status.sock", env->state_dir) >= (int)len)
        ck_abort_msg("socket path too long: %s", env->state_dir);
}

/* A connected client socket, or -1. */
static int connect_status(const shop_env *env)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    sock_path(env, a.sun_path, sizeof a.sun_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Asks with a bare request line; the answer's body, malloc'd, or NULL. */
static char *ask(const shop_env *env, const char *what, double timeout_s)
{
    int fd = connect_status(env);
    if (fd < 0)
        return NULL;
    char req[32];
    snprintf(req, sizeof req, "%s\n", what);
    if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
        close(fd);
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    double deadline = shop_now_s() + timeout_s;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int left = (int)((deadline - shop_now_s()) * 1000);
        if (left <= 0 || poll(&p, 1, left) <= 0)
            break;
        if (len + 1 == cap)
            buf = realloc(buf, cap *= 2);
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n <= 0) {
            close(fd);
            buf[len] = '\0';
            return n == 0 ? buf : (free(buf), NULL);
        }
        len += (size_t)n;
    }
    close(fd);
    free(buf);
    return NULL;
}

static json_t *status_json(const shop_env *env)
{
    char *body = ask(env, "json", 5);
    if (!body)
        shop_log_tail(env, 40);
    ck_assert_msg(body, "no answer from the status socket");
    json_error_t e;
    json_t *j = json_loads(body, 0, &e);
    ck_assert_msg(j, "status is not JSON (%s): %s", e.text, body);
    free(body);
    return j;
}

/* The sink object of a service (its only one, postgres here). */
static json_t *sink_of(json_t *st, const char *service)
{
    size_t i;
    json_t *svc;
    json_array_foreach(json_object_get(st, "services"), i, svc)
        if (strcmp(json_string_value(json_object_get(svc, "name")), service) == 0)
            return json_array_get(json_object_get(svc, "sinks"), 0);
    ck_abort_msg("no service %s in the status", service);
    return NULL;
}

static const char *sink_str(json_t *st, const char *service, const char *key)
{
    return json_string_value(json_object_get(sink_of(st, service), key));
}

static double sink_num(json_t *st, const char *service, const char *key)
{
    return json_number_value(json_object_get(sink_of(st, service), key));
}

static bool in_state(json_t *st, void *arg)
{
    const char *const *want = arg;
    const char *got = sink_str(st, want[0], "state");
    return got && strcmp(got, want[1]) == 0;
}

static bool lag_grew(json_t *st, void *arg)
{
    return sink_num(st, arg, "lag_bytes") > 0 &&
           sink_num(st, arg, "lag_seconds") > 0.5;
}

/*
 * Every sink streaming and caught up, the source connected: the stream
 * starts again once after the initial copy (to recheck binary values),
 * and a look in between reads it disconnected.
 */
static bool lag_gone(json_t *st, void *arg)
{
    (void)arg;
    if (!json_is_true(json_object_get(json_object_get(st, "source"),
                                      "connected")))
        return false;
    for (int s = 0; s < SHOP_NSERVICES; s++)
        if (sink_num(st, shop_services[s], "lag_bytes") != 0 ||
            strcmp(sink_str(st, shop_services[s], "state"), "streaming") != 0)
            return false;
    return true;
}

static void exec_or_abort(const pgc_cluster *c, const char *db, const char *sql)
{
    ck_assert_msg(pgc_exec(c, db, sql), "%s", sql);
}

static void start(shop_env *env, const char *name)
{
    ck_assert(shop_setup(env, src, tgt, name, NULL, NULL));
    ck_assert(shop_start(env));
    if (!shop_wait_caught_up(env, WAIT_S)) {
        shop_log_tail(env, 40);
        ck_abort_msg("%s: cleave did not catch up", name);
    }
}

static void stop_cleanly(shop_env *env)
{
    int rc = shop_stop(env, SIGTERM, 60);
    if (rc != 0)
        shop_log_tail(env, 40);
    ck_assert_msg(rc == 0, "cleave exited %d", rc);
    char path[600];
    sock_path(env, path, sizeof path);
    ck_assert_msg(access(path, F_OK) != 0, "the socket outlived cleave");
    shop_teardown(env);
}

/* The document's fields against the run; lag up while a target is held,
 * zero after; an error with its reason, and the recovery. */
START_TEST(fields_lag_and_errors)
{
    shop_env env;
    start(&env, "stfields");
    char path[600];
    sock_path(&env, path, sizeof path);
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_msg((sb.st_mode & 0777) == 0660, "mode %o", sb.st_mode & 0777);

    ck_assert(shop_wait_status(&env, lag_gone, NULL, WAIT_S));
    json_t *st = status_json(&env);
    ck_assert_str_eq(json_string_value(json_object_get(st, "name")), "stfields");
    ck_assert_int_eq(json_integer_value(json_object_get(st, "pid")), env.pid);
    json_t *source = json_object_get(st, "source");
    ck_assert_str_eq(json_string_value(json_object_get(source, "slot")),
                     "cleave_stfields");
    ck_assert(json_is_true(json_object_get(source, "connected")));
    /* The shop's five targets hold its tables with its types. */
    ck_assert_str_eq(json_string_value(json_object_get(source, "values")),
                     "binary");
    ck_assert(json_is_string(json_object_get(source, "received_lsn")));
    ck_assert_uint_eq(json_array_size(json_object_get(st, "services")),
                      SHOP_NSERVICES);
    ck_assert_str_eq(sink_str(st, "user_service", "kind"), "postgres");
    ck_assert(json_is_null(json_object_get(sink_of(st, "user_service"),
                                           "last_error")));
    json_decref(st);

    /* A lock held on a target table: the service falls behind. */
    PGconn *hold = pgc_connect(tgt, env.dbs[0]);
    ck_assert(hold && PQstatus(hold) == CONNECTION_OK);
    PQclear(PQexec(hold, "BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE"));
    exec_or_abort(src, env.srcdb, "INSERT INTO users (external_id, email, "
                  "full_name) VALUES (gen_random_uuid(), 'lag@x.io', 'Lag')");
    ck_assert_msg(shop_wait_status(&env, lag_grew, "user_service", WAIT_S),
                  "no lag while the target was held");
    PQclear(PQexec(hold, "COMMIT"));
    PQfinish(hold);
    ck_assert_msg(shop_wait_status(&env, lag_gone, NULL, WAIT_S),
                  "the lag did not fall back to zero");
    st = status_json(&env);
    ck_assert(sink_num(st, "user_service", "rows_applied") >= 1);
    ck_assert(sink_num(st, "user_service", "txns_applied") >= 1);
    json_decref(st);

    /* A conflict: the service is in error with the reason, then recovers. */
    /* Behind cleave's back, past the fence as cleave's own apply goes. */
    exec_or_abort(tgt, env.dbs[INVENTORY], "SET session_replication_role = "
                  "replica; INSERT INTO warehouses (id, code, name, "
                  "country_code) VALUES (500, 'TGT', 't', 'FR')");
    exec_or_abort(src, env.srcdb, "INSERT INTO warehouses (id, code, name, "
                  "country_code) VALUES (500, 'SRC', 's', 'DE')");
    const char *err_state[] = {"inventory_service", "error"};
    ck_assert_msg(shop_wait_status(&env, in_state, err_state, WAIT_S),
                  "inventory_service not in error");
    st = status_json(&env);
    const char *why = sink_str(st, "inventory_service", "last_error");
    ck_assert_msg(why && strstr(why, "warehouses"), "last_error: %s",
                  why ? why : "null");
    ck_assert(json_is_string(json_object_get(sink_of(st, "inventory_service"),
                                             "last_error_time")));
    ck_assert(sink_num(st, "inventory_service", "lag_bytes") > 0);
    json_decref(st);
    exec_or_abort(tgt, env.dbs[INVENTORY], "SET session_replication_role = "
                  "replica; DELETE FROM warehouses WHERE id = 500");
    ck_assert_msg(shop_wait_status(&env, lag_gone, NULL, WAIT_S),
                  "inventory_service did not recover");
    stop_cleanly(&env);
}
END_TEST

/* Ten clients that connect and never read do not hold replication up;
 * the status answers while a large transaction is applied. */
START_TEST(stuck_clients_and_big_transaction)
{
    shop_env env;
    start(&env, "ststuck");
    int stuck[10];
    for (int i = 0; i < 10; i++) {
        stuck[i] = connect_status(&env);
        ck_assert(stuck[i] >= 0);
        if (i % 2)
            ck_assert(write(stuck[i], "json\n", 5) == 5);   /* never read */
    }
    exec_or_abort(src, env.srcdb, "INSERT INTO notification_templates (code, "
                  "channel, body) SELECT 'c' || g, 'email', 'b' FROM "
                  "generate_series(1, 1000000) g");
    /* Asked over and over while the transaction is applied. */
    int answered = 0;
    double deadline = shop_now_s() + WAIT_S;
    for (bool done = false; !done; answered++) {
        char *body = ask(&env, "json", 2);
        ck_assert_msg(body, "no answer within 2 s while applying");
        free(body);
        char *v = pgc_query_value(tgt, env.dbs[4], "SELECT count(*) = 1000000 "
                                  "FROM notification_templates");
        done = v && strcmp(v, "t") == 0;
        free(v);
        ck_assert_msg(shop_now_s() < deadline, "the transaction was not applied");
    }
    ck_assert_int_gt(answered, 0);
    ck_assert(shop_wait_caught_up(&env, WAIT_S));
    for (int i = 0; i < 10; i++)
        close(stuck[i]);
    stop_cleanly(&env);
}
END_TEST

typedef struct counts {
    const char *service;
    double rows, txns;
} counts;

static counts counts_of(json_t *st, const char *service)
{
    return (counts){service, sink_num(st, service, "rows_applied"),
                    sink_num(st, service, "txns_applied")};
}

static bool counted(json_t *st, void *arg)
{
    const counts *want = arg;
    counts got = counts_of(st, want->service);
    return got.rows >= want->rows || got.txns >= want->txns;
}

/*
 * A transaction too large for the source's memory is streamed, spooled
 * and replayed: its rows and itself count like any other, exactly.
 */
START_TEST(big_transaction_counted)
{
    shop_env env;
    ck_assert(shop_setup(&env, src, tgt, "stcount", NULL, NULL));
    /* The walsender streams what does not fit in 64 kB. */
    exec_or_abort(src, env.srcdb, "ALTER DATABASE stcount_shop SET "
                  "logical_decoding_work_mem = '64kB'");
    ck_assert(shop_start(&env));
    ck_assert(shop_wait_status(&env, lag_gone, NULL, WAIT_S));
    json_t *st = status_json(&env);
    counts want = counts_of(st, "notification_service");
    json_decref(st);
    want.rows += 200000;
    want.txns += 1;
    exec_or_abort(src, env.srcdb, "INSERT INTO notification_templates (code, "
                  "channel, body) SELECT 'c' || g, 'email', 'b' FROM "
                  "generate_series(1, 200000) g");
    ck_assert_msg(pgc_wait_until(tgt, env.dbs[4], "SELECT count(*) = 200000 "
                                 "FROM notification_templates", WAIT_S),
                  "the transaction was not applied");
    ck_assert_msg(pgc_wait_until(src, env.srcdb, "SELECT stream_txns > 0 FROM "
                                 "pg_stat_replication_slots WHERE slot_name "
                                 "= 'cleave_stcount'", WAIT_S),
                  "the transaction was not streamed");
    bool done = shop_wait_status(&env, counted, &want, WAIT_S);
    st = status_json(&env);
    counts got = counts_of(st, "notification_service");
    json_decref(st);
    ck_assert_msg(done && got.rows == want.rows && got.txns == want.txns,
                  "rows_applied %.0f, txns_applied %.0f: %.0f and %.0f "
                  "expected", got.rows, got.txns, want.rows, want.txns);
    stop_cleanly(&env);
}
END_TEST

/* Prometheus text: every sample's family has HELP and TYPE, values parse. */
static void check_prometheus(const char *text)
{
    char help[64][128], type[64][128];
    int nhelp = 0, ntype = 0, samples = 0;
    char *copy = strdup(text), *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char name[128];
        if (sscanf(line, "# HELP %127s", name) == 1 && nhelp < 64) {
            snprintf(help[nhelp++], sizeof help[0], "%s", name);
            continue;
        }
        if (sscanf(line, "# TYPE %127s", name) == 1 && ntype < 64) {
            ck_assert_msg(strstr(line, " gauge") || strstr(line, " counter"),
                          "%s", line);
            snprintf(type[ntype++], sizeof type[0], "%s", name);
            continue;
        }
        ck_assert_msg(line[0] != '#', "unknown comment: %s", line);
        size_t n = strspn(line, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS"
                          "TUVWXYZ0123456789_:");
        ck_assert_msg(n > 0 && (line[n] == '{' || line[n] == ' '), "%s", line);
        snprintf(name, sizeof name, "%.*s", (int)n, line);
        bool has_help = false, has_type = false;
        for (int i = 0; i < nhelp; i++)
            has_help = has_help || strcmp(help[i], name) == 0;
        for (int i = 0; i < ntype; i++)
            has_type = has_type || strcmp(type[i], name) == 0;
        ck_assert_msg(has_help && has_type, "no HELP/TYPE before %s", name);
        const char *value = strrchr(line, ' ');
        char *end;
        strtod(value + 1, &end);
        ck_assert_msg(*end == '\0', "bad value: %s", line);
        samples++;
    }
    free(copy);
    ck_assert_int_gt(samples, SHOP_NSERVICES);
}

/* `cleave status` and its --json and --metrics against the run. */
START_TEST(cli_and_metrics)
{
    shop_env env;
    start(&env, "stcli");
    char path[600];
    sock_path(&env, path, sizeof path);
    char *table[] = {(char *)shop_cleave_bin(), "status", "-s", path, NULL};
    rc_result r;
    ck_assert(rc_run(table, &r));
    ck_assert_msg(r.status == 0, "exit %d: %s", r.status, r.err);
    for (int s = 0; s < SHOP_NSERVICES; s++)
        ck_assert_msg(strstr(r.out, shop_services[s]), "%s", r.out);
    ck_assert(strstr(r.out, "streaming"));
    rc_free(&r);
    char *metrics[] = {(char *)shop_cleave_bin(), "status", "-c", env.config,
                       "--metrics", NULL};
    ck_assert(rc_run(metrics, &r));
    ck_assert_msg(r.status == 0, "exit %d: %s", r.status, r.err);
    check_prometheus(r.out);
    ck_assert(strstr(r.out, "cleave_lag_bytes{"));
    rc_free(&r);
    stop_cleanly(&env);
    /* Nothing running: exit 1 with a message. */
    ck_assert(rc_run(table, &r));
    ck_assert_int_eq(r.status, 1);
    ck_assert(strlen(r.err) > 0);
    rc_free(&r);
}
END_TEST

static json_t *source_of(json_t *st)
{
    return json_object_get(st, "source");
}

/* The slot's WAL figures have been read: reserved, a safe size of the
 * kind wanted (arg: "null" or "number"). */
static bool wal_reserved(json_t *st, void *arg)
{
    json_t *src = source_of(st), *safe = json_object_get(src, "safe_wal_bytes");
    const char *ws = json_string_value(json_object_get(src, "wal_status"));
    return ws && strcmp(ws, "reserved") == 0 &&
           (strcmp(arg, "null") == 0 ? json_is_null(safe)
                                     : json_is_integer(safe));
}

/* Status says the slot is lost and the source down with the way back. */
static bool slot_lost(json_t *st, void *arg)
{
    (void)arg;
    json_t *src = source_of(st);
    const char *ws = json_string_value(json_object_get(src, "wal_status"));
    const char *err = json_string_value(json_object_get(src, "last_error"));
    return ws && strcmp(ws, "lost") == 0 && err &&
           json_is_false(json_object_get(src, "connected")) &&
           json_is_string(json_object_get(src, "last_error_time")) &&
           strstr(err, "invalidated slot cleave_stlost") &&
           strstr(err, "cleave drop") && strstr(err, "cleave resync");
}

/* The invalidated slot was dropped while cleave ran: it still made none. */
static bool lost_then_dropped(json_t *st, void *arg)
{
    (void)arg;
    const char *err = json_string_value(json_object_get(source_of(st),
                                                        "last_error"));
    return err && strstr(err, "since been dropped") &&
           json_is_null(json_object_get(source_of(st), "wal_status"));
}

static char *slot_wal_status(const shop_env *env)
{
    return pgc_query_value(src, env->srcdb, "SELECT coalesce(wal_status, "
                           "'none') FROM pg_replication_slots WHERE slot_name "
                           "= 'cleave_stlost'");
}

/* WAL written, switched and checkpointed until the server invalidates the
 * slot (max_slot_wal_keep_size is 1MB); false at the deadline. */
static bool push_until_lost(const shop_env *env, double timeout_s)
{
    double deadline = shop_now_s() + timeout_s;
    while (shop_now_s() < deadline) {
        exec_or_abort(src, env->srcdb, "SELECT pg_logical_emit_message(false, "
                      "'test', repeat('x', 100000)); SELECT pg_switch_wal(); "
                      "CHECKPOINT");
        char *ws = slot_wal_status(env);
        bool lost = ws && strcmp(ws, "lost") == 0;
        free(ws);
        if (lost)
            return true;
    }
    return false;
}

/* Waits until a just started cleave answers on its socket. */
static bool wait_socket(const shop_env *env, double timeout_s)
{
    double deadline = shop_now_s() + timeout_s;
    for (;;) {
        int fd = connect_status(env);
        if (fd >= 0) {
            close(fd);
            return true;
        }
        if (shop_now_s() > deadline)
            return false;
        struct timespec ts = {0, 50 * 1000 * 1000};  /* a deadline poll */
        nanosleep(&ts, NULL);
    }
}

/* Waits until the log holds n lines with text since cleave started. */
static bool wait_log_lines(const shop_env *env, const char *text, int n,
                           double timeout_s)
{
    double deadline = shop_now_s() + timeout_s;
    while (shop_log_count(env, text, env->log_mark) < n) {
        if (shop_now_s() > deadline)
            return false;
        struct timespec ts = {0, 50 * 1000 * 1000};  /* a deadline poll */
        nanosleep(&ts, NULL);
    }
    return true;
}

/* Both settings, or back to their defaults with NULL (reloaded). */
static void set_keep_size(const char *max_slot_wal_keep_size)
{
    char sql[128];
    if (max_slot_wal_keep_size)
        snprintf(sql, sizeof sql, "ALTER SYSTEM SET max_slot_wal_keep_size = "
                 "'%s'", max_slot_wal_keep_size);
    else
        snprintf(sql, sizeof sql, "ALTER SYSTEM RESET max_slot_wal_keep_size");
    exec_or_abort(src, "postgres", sql);
    exec_or_abort(src, "postgres", max_slot_wal_keep_size
                  ? "ALTER SYSTEM SET wal_keep_size = 0"
                  : "ALTER SYSTEM RESET wal_keep_size");
    exec_or_abort(src, "postgres", "SELECT pg_reload_conf()");
}

/*
 * The slot's wal_status and safe size while it is well; then the source
 * invalidates it while cleave is stopped: cleave starts, says so in status
 * and the log with the way back, retries, and never makes a new slot.
 */
START_TEST(lost_slot)
{
    shop_env env;
    start(&env, "stlost");
    ck_assert_msg(shop_wait_status(&env, wal_reserved, "null", WAIT_S),
                  "no wal_status reserved with a null safe_wal_bytes");
    set_keep_size("1MB");
    ck_assert_msg(shop_wait_status(&env, wal_reserved, "number", WAIT_S),
                  "no safe_wal_bytes with max_slot_wal_keep_size set");
    ck_assert_int_eq(shop_stop(&env, SIGTERM, 60), 0);

    ck_assert_msg(push_until_lost(&env, WAIT_S), "the slot was not invalidated");
    ck_assert(shop_start(&env));
    ck_assert_msg(wait_socket(&env, WAIT_S), "no status socket");
    ck_assert_msg(shop_wait_status(&env, slot_lost, NULL, WAIT_S),
                  "status does not show the lost slot and the way back");
    /* Logged with the slot, the reason and the way back, and retried. */
    ck_assert_msg(wait_log_lines(&env, "event=slot_invalidated slot=cleave_stlost"
                                 " reason=", 2, WAIT_S), "not logged, or not "
                  "retried");
    ck_assert(shop_log_count(&env, "To recover: stop cleave, run `cleave drop`",
                             env.log_mark) >= 2);
    ck_assert_int_eq(shop_log_count(&env, "event=slot_created", env.log_mark), 0);
    ck_assert_int_eq(shop_log_count(&env, "event=slot_recreated", env.log_mark),
                     0);
    char *ws = slot_wal_status(&env);
    ck_assert_msg(ws && strcmp(ws, "lost") == 0, "the slot is %s, not the lost "
                  "one", ws ? ws : "gone");
    free(ws);

    /* The table and the metrics say it too. */
    char path[600];
    sock_path(&env, path, sizeof path);
    char *table[] = {(char *)shop_cleave_bin(), "status", "-s", path, NULL};
    rc_result r;
    ck_assert(rc_run(table, &r));
    ck_assert_msg(r.status == 0 && strstr(r.out, "disconnected") &&
                  strstr(r.out, "  wal lost\n") &&
                  strstr(r.out, "source  error: the source invalidated slot "
                         "cleave_stlost"), "exit %d: %s", r.status, r.out);
    rc_free(&r);
    char *metrics[] = {(char *)shop_cleave_bin(), "status", "-s", path,
                       "--metrics", NULL};
    ck_assert(rc_run(metrics, &r));
    ck_assert_msg(strstr(r.out, "cleave_slot_wal_status{slot=\"cleave_stlost\","
                         "status=\"lost\"} 1\n"), "%s", r.out);
    rc_free(&r);

    /* Dropped by hand while cleave runs: still no new slot (the old code
     * made one, and a gap nobody sees). */
    exec_or_abort(src, env.srcdb, "SELECT pg_drop_replication_slot("
                  "'cleave_stlost')");
    long mark = shop_log_size(&env);
    ck_assert_msg(shop_wait_status(&env, lost_then_dropped, NULL, WAIT_S),
                  "status does not say the lost slot was dropped");
    ck_assert(wait_log_lines(&env, "and it has since been dropped", 2, WAIT_S));
    ws = slot_wal_status(&env);
    ck_assert_msg(!ws, "cleave made a new slot (wal_status %s)", ws);
    ck_assert_int_eq(shop_log_count(&env, "event=slot_created", mark), 0);
    stop_cleanly(&env);
    set_keep_size(NULL);
}
END_TEST

/* Status says the slot was made again, and what to do about it. */
static bool slot_remade(json_t *st, void *arg)
{
    const char *err = json_string_value(json_object_get(source_of(st),
                                                        "last_error"));
    return err && strstr(err, arg) && strstr(err, "cleave resync") &&
           json_is_true(json_object_get(source_of(st), "connected"));
}

/* Drops the slot between a walsender ended and cleave's reconnect. */
static bool drop_while_disconnected(const shop_env *env, const char *slot,
                                    double timeout_s)
{
    char kill[256], drop[256], *gone = NULL;
    snprintf(kill, sizeof kill, "SELECT pg_terminate_backend(active_pid) FROM "
             "pg_replication_slots WHERE slot_name = '%s'", slot);
    snprintf(drop, sizeof drop, "SELECT count(pg_drop_replication_slot("
             "slot_name)) FROM pg_replication_slots WHERE slot_name = '%s' AND "
             "active_pid IS NULL", slot);
    double deadline = shop_now_s() + timeout_s;
    while ((!gone || strcmp(gone, "1") != 0) && shop_now_s() < deadline) {
        free(gone);
        gone = NULL;
        free(pgc_query_value(src, env->srcdb, kill));
        for (double until = shop_now_s() + 0.5; !gone && shop_now_s() < until;)
            gone = pgc_query_value(src, env->srcdb, drop);
        if (gone && strcmp(gone, "0") == 0)
            free(gone), gone = NULL;
    }
    bool ok = gone != NULL;
    free(gone);
    return ok;
}

/*
 * A healthy slot dropped while cleave's connection is down: cleave makes
 * a new one and streams on, and says so where operators look (status's
 * source.last_error), not in the log alone: changes were lost.
 */
START_TEST(dropped_slot_shown)
{
    shop_env env;
    start(&env, "stdrop");
    ck_assert_msg(drop_while_disconnected(&env, "cleave_stdrop", WAIT_S),
                  "the slot could not be dropped between two connections");
    ck_assert_msg(shop_wait_status(&env, slot_remade, "slot cleave_stdrop "
                                   "disappeared while cleave was running",
                                   WAIT_S), "status does not say the slot was "
                  "made again");
    ck_assert(shop_log_count(&env, "event=slot_recreated slot=cleave_stdrop",
                             env.log_mark) == 1);
    stop_cleanly(&env);
}
END_TEST

int main(void)
{
    static const char *const tgt_settings[] = {"max_replication_slots = 64", NULL};
    Suite *s = suite_create("status");
    shop_add_case(s, "fields_lag_and_errors", fields_lag_and_errors, 300);
    shop_add_case(s, "stuck_clients_and_big_transaction",
                  stuck_clients_and_big_transaction, 300);
    shop_add_case(s, "big_transaction_counted", big_transaction_counted, 300);
    shop_add_case(s, "cli_and_metrics", cli_and_metrics, 200);
    shop_add_case(s, "dropped_slot_shown", dropped_slot_shown, 200);
    /* Last: it changes the source's max_slot_wal_keep_size meanwhile. */
    shop_add_case(s, "lost_slot", lost_slot, 300);
    return shop_run_suite(s, tgt_settings, &src, &tgt);
}
