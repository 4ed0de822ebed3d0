/*
 * test_status_unit: the status socket without a database.
 *
 * Rendering: the JSON document of PRODUCT.md §4 read back with jansson
 * (services grouped, the worst state, nulls where a figure is unknown);
 * the Prometheus text read back by a small parser of the 0.0.4 format that
 * insists on HELP and TYPE before each family's samples, valid names,
 * float values and label escaping that round-trips a hostile name.
 *
 * The server: the socket file is 0660, a stale one is replaced, a live one
 * or a regular file is refused and left alone; HTTP and bare-line requests;
 * clients that never ask or never read do not delay another one and are
 * dropped after the timeout; stop is prompt even while the probe waits on
 * a database that never answers. The probe's DSN cannot connect, so the
 * server LSN stays unknown. Waits are deadlines on a condition, not sleeps.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "daemon/status.h"

#define NO_DB "host=/nonexistent dbname=x connect_timeout=1"
#define MAX_SINKS 4096
#define BIG_SINKS 2000        /* an answer far beyond a socket's buffer */

static char tmpdir[64];
static char sock_path[128];

/* What the server's fill sees; the lock is the runner's in real life. */
static pthread_mutex_t fill_mu = PTHREAD_MUTEX_INITIALIZER;
static int fill_big;          /* under fill_mu */
static uint64_t fill_rows;    /* under fill_mu: changed by a racing thread */

static void dir_setup(void)
{
    strcpy(tmpdir, "/tmp/status-XXXXXX");
    if (!mkdtemp(tmpdir))
        abort();
    snprintf(sock_path, sizeof sock_path, "%s/status.sock", tmpdir);
    pthread_mutex_lock(&fill_mu);
    fill_big = 0;    /* each test its own figures, also with CK_FORK=no */
    pthread_mutex_unlock(&fill_mu);
}

static void dir_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tmpdir);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------ fixtures */

static status_sink sink_of(const char *service, const char *kind,
                           const char *state)
{
    status_sink k;
    memset(&k, 0, sizeof k);
    snprintf(k.service, sizeof k.service, "%s", service);
    snprintf(k.kind, sizeof k.kind, "%s", kind);
    snprintf(k.state, sizeof k.state, "%s", state);
    return k;
}

/* Two services, three sinks: one streaming, one failed, one copying. */
static size_t three_sinks(status_sink *out)
{
    out[0] = sink_of("user_service", "postgres", "streaming");
    out[0].applied_lsn = 0x3000148;
    out[0].rows_applied = 1234;
    out[0].txns_applied = 99;
    out[0].rows_per_second = 10.5;
    out[1] = sink_of("order_service", "postgres", "error");
    out[1].applied_lsn = 0x3000110;
    out[1].lag_bytes = 56;
    out[1].lag_seconds = 2.25;
    out[1].errors = 3;
    snprintf(out[1].last_error, sizeof out[1].last_error,
             "duplicate key value violates unique constraint \"orders_pkey\"");
    out[1].last_error_time = 1700000000;
    out[2] = sink_of("order_service", "kafka", "initial_copy");
    out[2].applied_lsn = 0x10000000AULL;
    out[2].copy_tables_done = 2;
    out[2].copy_tables_total = 5;
    out[2].copy_rows = 1000;
    return 3;
}

static void snapshot_of(status_snapshot *s, status_sink *sinks, size_t n)
{
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "shop");
    s->version = "0.3.0";
    s->pid = 4242;
    s->uptime_s = 3600.7;
    snprintf(s->slot, sizeof s->slot, "cleave_shop");
    s->connected = true;
    s->binary_values = true;
    s->server_lsn = 0x3000148;
    s->received_lsn = 0x3000148;
    s->flushed_lsn = 0x3000110;
    s->retained_wal_bytes = 56;
    snprintf(s->wal_status, sizeof s->wal_status, "reserved");
    s->safe_wal_bytes = 1048576;
    s->sinks = sinks;
    s->nsinks = n;
}


static void fill(void *arg, status_snapshot *out)
{
    (void)arg;
    size_t room = out->nsinks;
    status_sink *sinks = out->sinks;
    pthread_mutex_lock(&fill_mu);
    snapshot_of(out, sinks, 0);
    out->server_lsn = 0x123;   /* the server puts its own reading here */
    out->retained_wal_bytes = 7;
    snprintf(out->wal_status, sizeof out->wal_status, "extended");
    out->safe_wal_bytes = 9;
    snprintf(out->last_error, sizeof out->last_error, "slot gone");
    out->last_error_time = 1700000000;
    if (fill_big) {
        for (size_t i = 0; i < BIG_SINKS && i < room; i++) {
            sinks[i] = sink_of("svc", "postgres", "error");
            memset(sinks[i].last_error, 'e', 400);
            out->nsinks++;
        }
    } else {
        out->nsinks = three_sinks(sinks);
        sinks[0].rows_applied = fill_rows;
    }
    pthread_mutex_unlock(&fill_mu);
}

static status_server *start_at(const char *path, const char *dsn)
{
    char err[256] = "";
    status_server *srv = status_start(path, dsn, "cleave_shop", MAX_SINKS,
                                      fill, NULL, err, sizeof err);
    ck_assert_msg(srv, "status_start: %s", err);
    return srv;
}

/* ---------------------------------------------------------------- JSON */

static json_t *parse_json(const char *text)
{
    json_error_t e;
    json_t *root = json_loads(text, 0, &e);
    ck_assert_msg(root, "bad JSON (%s): %s", e.text, text);
    return root;
}

static void assert_str(json_t *obj, const char *key, const char *want)
{
    json_t *v = json_object_get(obj, key);
    ck_assert_msg(json_is_string(v), "%s is not a string", key);
    ck_assert_str_eq(json_string_value(v), want);
}

static void assert_int(json_t *obj, const char *key, json_int_t want)
{
    json_t *v = json_object_get(obj, key);
    ck_assert_msg(json_is_integer(v), "%s is not an integer", key);
    ck_assert_int_eq(json_integer_value(v), want);
}

static void assert_null(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    ck_assert_msg(v && json_is_null(v), "%s is not null", key);
}

/* The cut-over's fields: a moved service, one never moved, metrics. */
START_TEST(test_json_moves)
{
    status_sink sinks[3];
    status_snapshot s;
    snapshot_of(&s, sinks, three_sinks(sinks));
    status_service moved = {.direction = "reverse", .pause_ms = 41.5};
    snprintf(moved.name, sizeof moved.name, "%s", sinks[0].service);
    s.services = &moved;
    s.nservices = 1;
    char *text = status_json(&s);
    ck_assert_ptr_nonnull(text);
    json_t *root = parse_json(text);
    json_t *svcs = json_object_get(root, "services");
    json_t *first = json_array_get(svcs, 0), *last = json_array_get(svcs, 1);
    assert_str(first, "direction", "reverse");
    ck_assert(json_real_value(json_object_get(first, "last_cutover_pause_ms"))
              == 41.5);
    assert_str(last, "direction", "forward");
    assert_null(last, "last_cutover_pause_ms");
    json_decref(root);
    free(text);
    char *m = status_metrics(&s);
    char want[256];
    snprintf(want, sizeof want, "cleave_service_direction{service=\"%s\","
             "direction=\"reverse\"} 1\n", sinks[0].service);
    ck_assert_msg(strstr(m, want), "no %s in:\n%s", want, m);
    ck_assert(strstr(m, "cleave_last_cutover_pause_seconds{service="));
    free(m);
}
END_TEST

START_TEST(test_json_document)
{
    status_sink sinks[3];
    status_snapshot s;
    snapshot_of(&s, sinks, three_sinks(sinks));
    char *text = status_json(&s);
    ck_assert_ptr_nonnull(text);
    json_t *root = parse_json(text);
    assert_str(root, "name", "shop");
    assert_str(root, "version", "0.3.0");
    assert_int(root, "pid", 4242);
    assert_int(root, "uptime_s", 3600);
    json_t *src = json_object_get(root, "source");
    assert_str(src, "slot", "cleave_shop");
    ck_assert(json_is_true(json_object_get(src, "connected")));
    assert_str(src, "values", "binary");
    assert_str(src, "server_lsn", "0/3000148");
    assert_str(src, "received_lsn", "0/3000148");
    assert_str(src, "flushed_lsn", "0/3000110");
    assert_int(src, "retained_wal_bytes", 56);
    assert_str(src, "wal_status", "reserved");
    assert_int(src, "safe_wal_bytes", 1048576);
    assert_null(src, "last_error");
    assert_null(src, "last_error_time");

    json_t *services = json_object_get(root, "services");
    ck_assert_int_eq(json_array_size(services), 2);
    json_t *users = json_array_get(services, 0);
    assert_str(users, "name", "user_service");
    assert_str(users, "state", "streaming");
    json_t *u = json_array_get(json_object_get(users, "sinks"), 0);
    assert_str(u, "kind", "postgres");
    assert_str(u, "applied_lsn", "0/3000148");
    assert_int(u, "lag_bytes", 0);
    ck_assert(json_real_value(json_object_get(u, "lag_seconds")) == 0.0);
    assert_int(u, "rows_applied", 1234);
    assert_int(u, "txns_applied", 99);
    ck_assert(json_real_value(json_object_get(u, "rows_per_second")) == 10.5);
    assert_null(u, "last_error");
    assert_null(u, "last_error_time");
    assert_int(u, "errors", 0);
    ck_assert_ptr_null(json_object_get(u, "copy"));

    json_t *orders = json_array_get(services, 1);
    assert_str(orders, "name", "order_service");
    assert_str(orders, "state", "error");
    json_t *osinks = json_object_get(orders, "sinks");
    ck_assert_int_eq(json_array_size(osinks), 2);
    json_t *failed = json_array_get(osinks, 0);
    assert_str(failed, "state", "error");
    assert_str(failed, "last_error",
               "duplicate key value violates unique constraint \"orders_pkey\"");
    assert_str(failed, "last_error_time", "2023-11-14T22:13:20Z");
    assert_int(failed, "errors", 3);
    assert_int(failed, "lag_bytes", 56);
    ck_assert(json_real_value(json_object_get(failed, "lag_seconds")) == 2.25);
    ck_assert_ptr_null(json_object_get(failed, "copy"));
    json_t *copying = json_array_get(osinks, 1);
    assert_str(copying, "kind", "kafka");
    assert_str(copying, "state", "initial_copy");
    assert_str(copying, "applied_lsn", "1/A");
    json_t *copy = json_object_get(copying, "copy");
    assert_int(copy, "tables_done", 2);
    assert_int(copy, "tables_total", 5);
    assert_int(copy, "rows", 1000);
    json_decref(root);
    free(text);
}
END_TEST

START_TEST(test_json_unknowns)
{
    status_sink sinks[1] = {sink_of("s", "postgres", "catching_up")};
    sinks[0].lag_seconds = NAN;
    /* An error text from a server in another encoding. */
    snprintf(sinks[0].last_error, sizeof sinks[0].last_error, "bad \xff\xfe byte");
    status_snapshot s;
    snapshot_of(&s, sinks, 1);
    s.server_lsn = 0;
    s.retained_wal_bytes = -1;
    s.wal_status[0] = '\0';
    s.safe_wal_bytes = STATUS_NO_BYTES;
    s.version = NULL;
    char *text = status_json(&s);
    ck_assert_ptr_nonnull(text);
    json_t *root = parse_json(text);
    json_t *src = json_object_get(root, "source");
    assert_null(src, "server_lsn");
    assert_null(src, "retained_wal_bytes");
    assert_null(src, "wal_status");
    assert_null(src, "safe_wal_bytes");
    assert_null(root, "version");
    json_t *k = json_array_get(json_object_get(
        json_array_get(json_object_get(root, "services"), 0), "sinks"), 0);
    assert_null(k, "lag_seconds");
    assert_str(k, "last_error", "bad ?? byte");
    json_decref(root);
    free(text);
}
END_TEST

/* An invalidated slot: lost, no safe size, the source's error with its time;
 * a safe size past zero stays the server's (negative) figure. */
START_TEST(test_json_slot_lost)
{
    status_snapshot s;
    snapshot_of(&s, NULL, 0);
    s.connected = false;
    snprintf(s.wal_status, sizeof s.wal_status, "lost");
    s.safe_wal_bytes = STATUS_NO_BYTES;
    snprintf(s.last_error, sizeof s.last_error, "the source invalidated "
             "slot cleave_shop (wal_removed): ... `cleave drop` ...");
    s.last_error_time = 1700000000;
    char *text = status_json(&s);
    json_t *root = parse_json(text);
    json_t *src = json_object_get(root, "source");
    ck_assert(json_is_false(json_object_get(src, "connected")));
    ck_assert(json_is_null(json_object_get(src, "values")));
    assert_str(src, "wal_status", "lost");
    assert_null(src, "safe_wal_bytes");
    assert_str(src, "last_error", "the source invalidated slot cleave_shop "
               "(wal_removed): ... `cleave drop` ...");
    assert_str(src, "last_error_time", "2023-11-14T22:13:20Z");
    json_decref(root);
    free(text);
    snprintf(s.wal_status, sizeof s.wal_status, "unreserved");
    s.safe_wal_bytes = -4096;
    text = status_json(&s);
    root = parse_json(text);
    assert_int(json_object_get(root, "source"), "safe_wal_bytes", -4096);
    json_decref(root);
    free(text);
}
END_TEST

/* A service's state is the worst of its sinks', in any order. */
START_TEST(test_json_worst_state)
{
    static const struct {
        const char *states[3];
        const char *want;
    } cases[] = {
        {{"streaming", "streaming", "streaming"}, "streaming"},
        {{"streaming", "catching_up", "streaming"}, "catching_up"},
        {{"catching_up", "initial_copy", "streaming"}, "initial_copy"},
        {{"initial_copy", "streaming", "error"}, "error"},
        {{"error", "initial_copy", "catching_up"}, "error"},
        {{"streaming", "initial_copy", "catching_up"}, "initial_copy"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        status_sink sinks[4];
        for (int i = 0; i < 3; i++)
            sinks[i] = sink_of("svc", "postgres", cases[c].states[i]);
        sinks[3] = sink_of("other", "kafka", "streaming");
        status_snapshot s;
        snapshot_of(&s, sinks, 4);
        char *text = status_json(&s);
        json_t *root = parse_json(text);
        json_t *services = json_object_get(root, "services");
        ck_assert_int_eq(json_array_size(services), 2);
        assert_str(json_array_get(services, 0), "state", cases[c].want);
        assert_str(json_array_get(services, 1), "state", "streaming");
        json_decref(root);
        free(text);
    }
}
END_TEST

/* ---------------------------------------------------------- Prometheus */

#define MAX_SAMPLES 256
#define MAX_LABELS 4

typedef struct sample {
    char name[64];
    int nlabels;
    char label[MAX_LABELS][16];
    char value_text[MAX_LABELS][128];
    double value;
} sample;

typedef struct family {
    char name[64];
    bool help, type, sampled;
} family;

static bool name_char(char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c == ':' || (!first && c >= '0' && c <= '9');
}

/* A metric name at *p: [a-zA-Z_:][a-zA-Z0-9_:]*. */
static void read_name(const char **p, char *out, size_t max)
{
    size_t n = 0;
    ck_assert_msg(name_char(**p, true), "bad name at \"%.20s\"", *p);
    while (name_char(**p, n == 0)) {
        ck_assert(n + 1 < max);
        out[n++] = *(*p)++;
    }
    out[n] = '\0';
}

/* A quoted label value at *p, unescaped: only \\, \" and \n exist. */
static void read_label_value(const char **p, char *out, size_t max)
{
    size_t n = 0;
    ck_assert_int_eq(*(*p)++, '"');
    while (**p != '"') {
        char c = *(*p)++;
        ck_assert_msg(c != '\n' && c != '\0', "unterminated label value");
        if (c == '\\') {
            c = *(*p)++;
            ck_assert_msg(c == '\\' || c == '"' || c == 'n', "bad escape \\%c", c);
            c = c == 'n' ? '\n' : c;
        }
        ck_assert(n + 1 < max);
        out[n++] = c;
    }
    (*p)++;
    out[n] = '\0';
}

static family *family_of(family *fams, int *nfams, const char *name)
{
    for (int i = 0; i < *nfams; i++)
        if (strcmp(fams[i].name, name) == 0)
            return &fams[i];
    ck_assert(*nfams < 64);
    family *f = &fams[(*nfams)++];
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", name);
    return f;
}

static void parse_comment(const char *line, family *fams, int *nfams)
{
    bool help = strncmp(line, "# HELP ", 7) == 0;
    bool type = strncmp(line, "# TYPE ", 7) == 0;
    if (!help && !type)
        return;
    const char *p = line + 7;
    char name[64];
    read_name(&p, name, sizeof name);
    family *f = family_of(fams, nfams, name);
    ck_assert_msg(!f->sampled, "%s: HELP/TYPE after its samples", name);
    ck_assert_int_eq(*p, ' ');
    if (help) {
        ck_assert_msg(!f->help, "%s: two HELP lines", name);
        f->help = true;
    } else {
        ck_assert_msg(!f->type, "%s: two TYPE lines", name);
        ck_assert_msg(strcmp(p + 1, "gauge") == 0 || strcmp(p + 1, "counter") == 0,
                      "%s: type %s", name, p + 1);
        f->type = true;
    }
}

static void parse_sample(const char *line, sample *s, family *fams,
                         int *nfams, const char **last)
{
    const char *p = line;
    memset(s, 0, sizeof *s);
    read_name(&p, s->name, sizeof s->name);
    family *f = family_of(fams, nfams, s->name);
    ck_assert_msg(f->help && f->type, "%s: sample before HELP and TYPE", s->name);
    ck_assert_msg(!f->sampled || strcmp(*last, s->name) == 0,
                  "%s: samples not together", s->name);
    f->sampled = true;
    *last = f->name;
    if (*p == '{') {
        p++;
        while (*p != '}') {
            ck_assert(s->nlabels < MAX_LABELS);
            read_name(&p, s->label[s->nlabels], sizeof s->label[0]);
            ck_assert_int_eq(*p++, '=');
            read_label_value(&p, s->value_text[s->nlabels], sizeof s->value_text[0]);
            s->nlabels++;
            if (*p == ',')
                p++;
        }
        p++;
    }
    ck_assert_int_eq(*p++, ' ');
    char *end;
    s->value = strtod(p, &end);
    ck_assert_msg(end != p && *end == '\0', "%s: bad value \"%s\"", s->name, p);
}

/* Every line of a 0.0.4 exposition; the samples in order. */
static int parse_prom(const char *text, sample *out)
{
    family fams[64];
    int nfams = 0, n = 0;
    const char *last = "";
    char *copy = strdup(text), *save;
    ck_assert(copy && text[strlen(text) - 1] == '\n');
    for (char *line = strtok_r(copy, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') {
            parse_comment(line, fams, &nfams);
        } else {
            ck_assert(n < MAX_SAMPLES);
            parse_sample(line, &out[n++], fams, &nfams, &last);
        }
    }
    free(copy);
    return n;
}

static const char *label(const sample *s, const char *name)
{
    for (int i = 0; i < s->nlabels; i++)
        if (strcmp(s->label[i], name) == 0)
            return s->value_text[i];
    return NULL;
}

/* The value of the sample with that name and labels (NULL: any). */
static double value_of(const sample *ss, int n, const char *name,
                       const char *service, const char *sink, const char *state)
{
    for (int i = 0; i < n; i++) {
        const sample *s = &ss[i];
        const char *sv = label(s, "service"), *sk = label(s, "sink");
        const char *st = label(s, "state");
        if (strcmp(s->name, name) == 0 &&
            (!service || (sv && strcmp(sv, service) == 0)) &&
            (!sink || (sk && strcmp(sk, sink) == 0)) &&
            (!state || (st && strcmp(st, state) == 0)))
            return s->value;
    }
    ck_abort_msg("no sample %s service=%s sink=%s state=%s", name,
                 service ? service : "-", sink ? sink : "-", state ? state : "-");
    return 0;
}

START_TEST(test_metrics_format)
{
    status_sink sinks[3];
    status_snapshot s;
    snapshot_of(&s, sinks, three_sinks(sinks));
    char *text = status_metrics(&s);
    ck_assert_ptr_nonnull(text);
    static sample ss[MAX_SAMPLES];
    int n = parse_prom(text, ss);
    ck_assert_double_eq(value_of(ss, n, "cleave_up", NULL, NULL, NULL), 1);
    ck_assert_double_eq(value_of(ss, n, "cleave_uptime_seconds", NULL, NULL, NULL),
                        3600.7);
    ck_assert_double_eq(value_of(ss, n, "cleave_source_connected", NULL, NULL, NULL),
                        1);
    ck_assert_double_eq(value_of(ss, n, "cleave_slot_retained_wal_bytes", NULL,
                                 NULL, NULL), 56);
    ck_assert_double_eq(value_of(ss, n, "cleave_lag_bytes", "order_service",
                                 "postgres", NULL), 56);
    ck_assert_double_eq(value_of(ss, n, "cleave_lag_seconds", "order_service",
                                 "postgres", NULL), 2.25);
    ck_assert_double_eq(value_of(ss, n, "cleave_applied_lsn", "order_service",
                                 "kafka", NULL), (double)0x10000000AULL);
    ck_assert_double_eq(value_of(ss, n, "cleave_rows_applied_total",
                                 "user_service", "postgres", NULL), 1234);
    ck_assert_double_eq(value_of(ss, n, "cleave_transactions_applied_total",
                                 "user_service", "postgres", NULL), 99);
    ck_assert_double_eq(value_of(ss, n, "cleave_errors_total", "order_service",
                                 "postgres", NULL), 3);
    ck_assert_double_eq(value_of(ss, n, "cleave_sink_state", "order_service",
                                 "postgres", "error"), 1);
    ck_assert_double_eq(value_of(ss, n, "cleave_sink_state", "order_service",
                                 "postgres", "streaming"), 0);
    ck_assert_double_eq(value_of(ss, n, "cleave_sink_state", "order_service",
                                 "kafka", "initial_copy"), 1);
    /* One state sample per state per sink, one of them 1. */
    int states = 0, ones = 0;
    for (int i = 0; i < n; i++)
        if (strcmp(ss[i].name, "cleave_sink_state") == 0) {
            states++;
            ones += ss[i].value == 1;
        }
    ck_assert_int_eq(states, 12);
    ck_assert_int_eq(ones, 3);
    ck_assert_str_eq(label(&ss[3], "slot"), "cleave_shop");
    free(text);

    /* Unknown retained WAL: the family is left out. */
    s.retained_wal_bytes = -1;
    text = status_metrics(&s);
    n = parse_prom(text, ss);
    ck_assert_ptr_null(strstr(text, "cleave_slot_retained_wal_bytes"));
    free(text);
}
END_TEST

/* The value of cleave_slot_wal_status{status=...}; -1 when absent. */
static double wal_status_value(const sample *ss, int n, const char *status,
                               int *count)
{
    double v = -1;
    *count = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(ss[i].name, "cleave_slot_wal_status") != 0)
            continue;
        (*count)++;
        ck_assert_str_eq(label(&ss[i], "slot"), "cleave_shop");
        if (strcmp(label(&ss[i], "status"), status) == 0)
            v = ss[i].value;
    }
    return v;
}

/* wal_status as 0/1 for every status, the safe size as a gauge; each family
 * left out while not known; a status PostgreSQL may add shows as 1. */
START_TEST(test_metrics_wal_status)
{
    status_snapshot s;
    snapshot_of(&s, NULL, 0);
    static sample ss[MAX_SAMPLES];
    char *text = status_metrics(&s);
    int n = parse_prom(text, ss), count;
    ck_assert_double_eq(value_of(ss, n, "cleave_slot_safe_wal_bytes", NULL,
                                 NULL, NULL), 1048576);
    ck_assert_double_eq(wal_status_value(ss, n, "reserved", &count), 1);
    ck_assert_int_eq(count, 4);
    ck_assert_double_eq(wal_status_value(ss, n, "lost", &count), 0);
    ck_assert_double_eq(wal_status_value(ss, n, "extended", &count), 0);
    ck_assert_double_eq(wal_status_value(ss, n, "unreserved", &count), 0);
    free(text);

    snprintf(s.wal_status, sizeof s.wal_status, "lost");
    s.safe_wal_bytes = STATUS_NO_BYTES;
    text = status_metrics(&s);
    n = parse_prom(text, ss);
    ck_assert_ptr_null(strstr(text, "cleave_slot_safe_wal_bytes"));
    ck_assert_double_eq(wal_status_value(ss, n, "lost", &count), 1);
    ck_assert_double_eq(wal_status_value(ss, n, "reserved", &count), 0);
    free(text);

    snprintf(s.wal_status, sizeof s.wal_status, "dormant");
    s.safe_wal_bytes = -4096;
    text = status_metrics(&s);
    n = parse_prom(text, ss);
    ck_assert_double_eq(value_of(ss, n, "cleave_slot_safe_wal_bytes", NULL,
                                 NULL, NULL), -4096);
    ck_assert_double_eq(wal_status_value(ss, n, "dormant", &count), 1);
    ck_assert_int_eq(count, 5);
    free(text);

    s.wal_status[0] = '\0';
    text = status_metrics(&s);
    ck_assert_ptr_null(strstr(text, "cleave_slot_wal_status"));
    free(text);
}
END_TEST

START_TEST(test_metrics_escaping)
{
    static const char hostile[] = "we\"ird\\name\nwith} \"{x=\"y\"";
    status_sink sinks[1] = {sink_of(hostile, "kafka", "streaming")};
    sinks[0].lag_seconds = INFINITY;
    status_snapshot s;
    snapshot_of(&s, sinks, 1);
    snprintf(s.slot, sizeof s.slot, "sl\"ot\\");
    char *text = status_metrics(&s);
    static sample ss[MAX_SAMPLES];
    int n = parse_prom(text, ss);
    int seen = 0;
    for (int i = 0; i < n; i++) {
        const char *sv = label(&ss[i], "service");
        if (sv) {
            ck_assert_str_eq(sv, hostile);
            seen++;
        }
    }
    ck_assert_int_eq(seen, 6 + 4);
    ck_assert(isinf(value_of(ss, n, "cleave_lag_seconds", hostile, "kafka", NULL)));
    ck_assert_str_eq(label(&ss[3], "slot"), "sl\"ot\\");
    free(text);
}
END_TEST

/* --------------------------------------------------------------- wire */

static void set_sun_path(struct sockaddr_un *a, const char *path)
{
    ck_assert(strlen(path) < sizeof a->sun_path);
    memcpy(a->sun_path, path, strlen(path) + 1);
}

static int connect_to(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    set_sun_path(&a, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert(fd >= 0);
    ck_assert_msg(connect(fd, (struct sockaddr *)&a, sizeof a) == 0,
                  "connect %s: %s", path, strerror(errno));
    return fd;
}

static void send_all(int fd, const char *text)
{
    size_t len = strlen(text);
    ck_assert_int_eq(send(fd, text, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* Reads to EOF by the deadline; NUL-ended. */
static char *read_all(int fd, int64_t deadline, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int left = (int)(deadline - now_ms());
        ck_assert_msg(left > 0 && poll(&p, 1, left) == 1, "no answer in time");
        if (n + 4096 > cap)
            buf = realloc(buf, cap *= 2);
        ssize_t r = recv(fd, buf + n, cap - n - 1, 0);
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            break;
        ck_assert_msg(r > 0, "recv: %s", strerror(errno));
        n += (size_t)r;
    }
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

static char *ask(const char *path, const char *request)
{
    int fd = connect_to(path);
    send_all(fd, request);
    char *answer = read_all(fd, now_ms() + 5000, NULL);
    close(fd);
    return answer;
}

/* Splits an HTTP answer: the status code, the body, header checks. */
static const char *http_body(const char *answer, int want_code,
                             const char *want_type)
{
    char status[32];
    snprintf(status, sizeof status, "HTTP/1.0 %d ", want_code);
    ck_assert_msg(strncmp(answer, status, strlen(status)) == 0, "answer: %.80s",
                  answer);
    const char *body = strstr(answer, "\r\n\r\n");
    ck_assert_ptr_nonnull(body);
    body += 4;
    const char *cl = strstr(answer, "\r\nContent-Length: ");
    ck_assert(cl && cl < body);
    ck_assert_int_eq(strtoul(cl + 18, NULL, 10), strlen(body));
    const char *conn = strstr(answer, "\r\nConnection: close\r\n");
    ck_assert(conn && conn < body);
    if (want_type) {
        char line[128];
        snprintf(line, sizeof line, "\r\nContent-Type: %s", want_type);
        const char *ct = strstr(answer, line);
        ck_assert_msg(ct && ct < body, "no %s in %.200s", line, answer);
    }
    return body;
}

/* The server's JSON: three sinks, and no server LSN without a database. */
static void assert_served_json(const char *body)
{
    json_t *root = parse_json(body);
    json_t *src = json_object_get(root, "source");
    assert_null(src, "server_lsn");
    assert_null(src, "retained_wal_bytes");
    assert_null(src, "wal_status");
    assert_null(src, "safe_wal_bytes");
    /* The source's error is the runner's: the fill's text goes through. */
    assert_str(src, "last_error", "slot gone");
    ck_assert_int_eq(json_array_size(json_object_get(root, "services")), 2);
    json_decref(root);
}

START_TEST(test_socket_mode)
{
    status_server *srv = start_at(sock_path, NO_DB);
    struct stat st;
    ck_assert_int_eq(lstat(sock_path, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    ck_assert_int_eq(st.st_mode & 07777, 0660);
    ck_assert_int_eq(status_server_lsn(srv), 0);
    ck_assert_int_eq(status_retained_wal(srv), -1);
    status_stop(srv);
    ck_assert_int_eq(lstat(sock_path, &st), -1);
}
END_TEST

/* The control callback: answers "handed" and lets go of the connection. */
static void control_echo(void *arg, int fd, const char *request)
{
    (void)arg;
    (void)request;
    const char *text = "{\"result\":\"handed\"}\n";
    ck_assert(send(fd, text, strlen(text), MSG_NOSIGNAL) > 0);
    close(fd);
}

/* A child that connects as `uid` and prints what a control line gets. */
static char *control_as(uid_t uid)
{
    int out[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, out), 0);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        close(out[0]);
        if (setgid(uid) != 0 || setuid(uid) != 0)
            _exit(2);
        char *answer = ask(sock_path, "control cutover shop\n");
        ssize_t w = write(out[1], answer, strlen(answer));
        _exit(w < 0 ? 3 : 0);
    }
    close(out[1]);
    char *answer = read_all(out[0], now_ms() + 10000, NULL);
    close(out[0]);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child failed");
    return answer;
}

/*
 * Control lines move a service's writes: the socket's group may read the
 * status, but only root and cleave's own user may ask for a move.
 */
START_TEST(test_control_needs_owner)
{
    if (geteuid() != 0)
        return;   /* another user to connect as needs root */
    status_server *srv = start_at(sock_path, NO_DB);
    status_set_control(srv, control_echo, NULL);
    char *answer = ask(sock_path, "control cutover shop\n");
    ck_assert_str_eq(answer, "{\"result\":\"handed\"}\n");
    free(answer);
    /* Another user allowed in by the file's mode, as a group member is. */
    ck_assert_int_eq(chmod(sock_path, 0666), 0);
    ck_assert_int_eq(chmod(tmpdir, 0711), 0);
    answer = control_as(65534);
    ck_assert_msg(strstr(answer, "\"result\":\"failed\"") &&
                  strstr(answer, "uid 65534"), "answer: %s", answer);
    free(answer);
    status_stop(srv);
}
END_TEST

START_TEST(test_stale_socket_replaced)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    set_sun_path(&a, sock_path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(fd, 1), 0);
    close(fd);   /* a crash: the file stays */
    status_server *srv = start_at(sock_path, NO_DB);
    char *answer = ask(sock_path, "json\n");
    assert_served_json(answer);
    free(answer);
    status_stop(srv);
}
END_TEST

START_TEST(test_live_socket_refused)
{
    status_server *srv = start_at(sock_path, NO_DB);
    char err[256] = "";
    status_server *again = status_start(sock_path, NO_DB, "s", 4, fill, NULL,
                                        err, sizeof err);
    ck_assert_ptr_null(again);
    char want[256];
    snprintf(want, sizeof want, "another cleave is running on %s", sock_path);
    ck_assert_str_eq(err, want);
    char *answer = ask(sock_path, "json\n");   /* the first one still serves */
    assert_served_json(answer);
    free(answer);
    status_stop(srv);
}
END_TEST

START_TEST(test_regular_file_refused)
{
    FILE *f = fopen(sock_path, "w");
    fputs("keep me\n", f);
    fclose(f);
    char err[256] = "";
    ck_assert_ptr_null(status_start(sock_path, NO_DB, "s", 4, fill, NULL, err,
                                    sizeof err));
    ck_assert_msg(strstr(err, sock_path) && strstr(err, "not a socket"), "%s", err);
    f = fopen(sock_path, "r");
    char line[32] = "";
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    fclose(f);
    ck_assert_str_eq(line, "keep me\n");
}
END_TEST

START_TEST(test_missing_directory)
{
    char path[300], dir[256], err[256] = "";
    snprintf(dir, sizeof dir, "%s/nowhere", tmpdir);
    snprintf(path, sizeof path, "%s/status.sock", dir);
    ck_assert_ptr_null(status_start(path, NO_DB, "s", 4, fill, NULL, err,
                                    sizeof err));
    ck_assert_msg(strstr(err, dir) && strstr(err, "does not exist"), "%s", err);
}
END_TEST

/* Stop removes only its own file, not one put there since. */
START_TEST(test_stop_leaves_other_file)
{
    status_server *srv = start_at(sock_path, NO_DB);
    ck_assert_int_eq(unlink(sock_path), 0);
    FILE *f = fopen(sock_path, "w");
    fclose(f);
    status_stop(srv);
    struct stat st;
    ck_assert_int_eq(lstat(sock_path, &st), 0);
    ck_assert(S_ISREG(st.st_mode));
}
END_TEST

START_TEST(test_http_requests)
{
    status_server *srv = start_at(sock_path, NO_DB);
    static const char *const json_requests[] = {
        "GET /status HTTP/1.0\r\n\r\n",
        "GET /status HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n",
        "GET / HTTP/1.0\r\nUser-Agent: test\r\n\r\n",
        "GET /status?x=1 HTTP/1.0\n\n",
    };
    for (size_t i = 0; i < sizeof json_requests / sizeof *json_requests; i++) {
        char *answer = ask(sock_path, json_requests[i]);
        assert_served_json(http_body(answer, 200, "application/json\r\n"));
        free(answer);
    }
    char *answer = ask(sock_path, "GET /metrics HTTP/1.0\r\n\r\n");
    const char *body = http_body(answer, 200, "text/plain; version=0.0.4");
    static sample ss[MAX_SAMPLES];
    int n = parse_prom(body, ss);
    ck_assert_double_eq(value_of(ss, n, "cleave_up", NULL, NULL, NULL), 1);
    /* No reading from the database: the fill's figure is not used either. */
    ck_assert_ptr_null(strstr(body, "cleave_slot_retained_wal_bytes"));
    ck_assert_ptr_null(strstr(body, "cleave_slot_safe_wal_bytes"));
    ck_assert_ptr_null(strstr(body, "cleave_slot_wal_status"));
    free(answer);
    status_stop(srv);
}
END_TEST

START_TEST(test_bare_lines)
{
    status_server *srv = start_at(sock_path, NO_DB);
    char *answer = ask(sock_path, "json\n");
    ck_assert_int_eq(answer[0], '{');
    ck_assert_int_eq(answer[strlen(answer) - 1], '\n');
    assert_served_json(answer);
    free(answer);
    answer = ask(sock_path, "metrics\r\n");
    static sample ss[MAX_SAMPLES];
    int n = parse_prom(answer, ss);
    ck_assert_double_eq(value_of(ss, n, "cleave_rows_applied_total",
                                 "user_service", "postgres", NULL), 0);
    free(answer);
    /* Without the newline, at EOF. */
    int fd = connect_to(sock_path);
    send_all(fd, "json");
    shutdown(fd, SHUT_WR);
    answer = read_all(fd, now_ms() + 5000, NULL);
    close(fd);
    assert_served_json(answer);
    free(answer);
    status_stop(srv);
}
END_TEST

START_TEST(test_http_errors)
{
    status_server *srv = start_at(sock_path, NO_DB);
    static const struct {
        const char *request;
        int code;
    } cases[] = {
        {"GET /nope HTTP/1.0\r\n\r\n", 404},
        {"GET /statusx HTTP/1.0\r\n\r\n", 404},
        {"POST /status HTTP/1.0\r\n\r\n", 405},
        {"hello\n", 400},
        {"GET /status\r\n", 400},
        {"GET status HTTP/1.0\r\n\r\n", 400},
        {"GET /status HTTP/2.0\r\n\r\n", 400},
        {"GET /status HTTP/1.0 extra\r\n\r\n", 400},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *answer = ask(sock_path, cases[i].request);
        http_body(answer, cases[i].code, "text/plain");
        free(answer);
    }
    /* 8 KiB of headers without their end. */
    int fd = connect_to(sock_path);
    send_all(fd, "GET /status HTTP/1.0\r\n");
    char filler[1024];
    memset(filler, 'h', sizeof filler - 3);
    strcpy(filler + sizeof filler - 3, "\r\n");
    for (int i = 0; i < 8; i++)
        send_all(fd, filler);
    char *answer = read_all(fd, now_ms() + 5000, NULL);
    http_body(answer, 400, "text/plain");
    free(answer);
    close(fd);
    status_stop(srv);
}
END_TEST

/* Waits for the peer's close (RDHUP) without reading; false at the deadline. */
static bool wait_closed(int fd, int64_t deadline)
{
    for (;;) {
        struct pollfd p = {fd, POLLRDHUP, 0};
        int left = (int)(deadline - now_ms());
        if (left <= 0 || poll(&p, 1, left) == 0)
            return false;
        if (p.revents & (POLLRDHUP | POLLHUP | POLLERR))
            return true;
    }
}

/*
 * Ten clients that never ask and ten that never read their (large) answer:
 * an eleventh is answered at once, and the stuck ones are dropped after
 * the 2 s timeout, not before.
 */
START_TEST(test_stuck_clients)
{
    pthread_mutex_lock(&fill_mu);
    fill_big = 1;
    pthread_mutex_unlock(&fill_mu);
    status_server *srv = start_at(sock_path, NO_DB);
    int idle[10], mute[10];
    int64_t t0 = now_ms();
    for (int i = 0; i < 10; i++)
        idle[i] = connect_to(sock_path);
    for (int i = 0; i < 10; i++) {
        mute[i] = connect_to(sock_path);
        send_all(mute[i], "json\n");
    }
    /* The server is writing to every mute client: the first bytes came. */
    for (int i = 0; i < 10; i++) {
        struct pollfd p = {mute[i], POLLIN, 0};
        ck_assert_int_eq(poll(&p, 1, 1500), 1);
    }

    int64_t t1 = now_ms();
    int fd = connect_to(sock_path);
    send_all(fd, "GET /status HTTP/1.0\r\n\r\n");
    size_t full;
    char *answer = read_all(fd, t1 + 1500, &full);
    close(fd);
    ck_assert_msg(now_ms() - t1 < 1500, "answered after %lld ms",
                  (long long)(now_ms() - t1));
    json_t *root = parse_json(http_body(answer, 200, "application/json"));
    ck_assert_int_eq(json_array_size(json_object_get(json_array_get(
        json_object_get(root, "services"), 0), "sinks")), BIG_SINKS);
    json_decref(root);
    free(answer);

    for (int i = 0; i < 10; i++) {
        ck_assert_msg(wait_closed(idle[i], t0 + 6000), "idle client %d kept", i);
        ck_assert_msg(now_ms() - t0 >= 1900, "idle client dropped after %lld ms",
                      (long long)(now_ms() - t0));
        char c;
        ssize_t r = recv(idle[i], &c, 1, MSG_DONTWAIT);
        ck_assert(r == 0 || (r < 0 && errno == ECONNRESET));
        close(idle[i]);
    }
    for (int i = 0; i < 10; i++) {
        ck_assert_msg(wait_closed(mute[i], t0 + 7000), "mute client %d kept", i);
        size_t got;
        char *part = read_all(mute[i], now_ms() + 5000, &got);
        ck_assert_msg(got < full / 2, "mute client %d got %zu of %zu", i, got, full);
        free(part);
        close(mute[i]);
    }
    int64_t t2 = now_ms();
    status_stop(srv);
    ck_assert_int_lt(now_ms() - t2, 1000);
}
END_TEST

/* Beyond 64 clients at once, a new one is closed without a word. */
START_TEST(test_too_many_clients)
{
    status_server *srv = start_at(sock_path, NO_DB);
    int fds[64];
    for (int i = 0; i < 64; i++)
        fds[i] = connect_to(sock_path);
    int extra = connect_to(sock_path);
    int64_t t0 = now_ms();
    ck_assert(wait_closed(extra, t0 + 1500));
    ck_assert_int_lt(now_ms() - t0, 1500);
    char c;
    ssize_t r = recv(extra, &c, 1, MSG_DONTWAIT);
    ck_assert(r == 0 || (r < 0 && errno == ECONNRESET));
    close(extra);
    /* One of the 64 still gets its answer. */
    send_all(fds[0], "json\n");
    char *answer = read_all(fds[0], now_ms() + 1500, NULL);
    assert_served_json(answer);
    free(answer);
    int64_t t1 = now_ms();
    status_stop(srv);
    ck_assert_int_lt(now_ms() - t1, 1000);
    for (int i = 0; i < 64; i++)
        close(fds[i]);
}
END_TEST

START_TEST(test_curl)
{
    if (system("command -v curl >/dev/null 2>&1") != 0) {
        fprintf(stderr, "curl not installed: test_curl skipped\n");
        return;
    }
    status_server *srv = start_at(sock_path, NO_DB);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "curl -sS --fail --max-time 5 --unix-socket '%s' "
             "http://localhost/status", sock_path);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, p);
    buf[n] = '\0';
    ck_assert_int_eq(pclose(p), 0);
    assert_served_json(buf);
    snprintf(cmd, sizeof cmd, "curl -sS --max-time 5 -o /dev/null -w '%%{http_code}' "
             "--unix-socket '%s' http://localhost/missing", sock_path);
    p = popen(cmd, "r");
    n = fread(buf, 1, sizeof buf - 1, p);
    buf[n] = '\0';
    ck_assert_int_eq(pclose(p), 0);
    ck_assert_str_eq(buf, "404");
    status_stop(srv);
}
END_TEST

/*
 * A "database" that accepts and never answers: the probe waits on it, and
 * stop still returns at once.
 */
START_TEST(test_stop_interrupts_probe)
{
    char pg_path[256], dsn[256];
    snprintf(pg_path, sizeof pg_path, "%s/.s.PGSQL.5999", tmpdir);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    set_sun_path(&a, pg_path);
    int pg = socket(AF_UNIX, SOCK_STREAM, 0);
    ck_assert_int_eq(bind(pg, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(pg, 4), 0);
    snprintf(dsn, sizeof dsn, "host=%s port=5999 dbname=x", tmpdir);
    status_server *srv = start_at(sock_path, dsn);
    struct pollfd p = {pg, POLLIN, 0};
    ck_assert_int_eq(poll(&p, 1, 3000), 1);   /* the probe is connecting */
    char *answer = ask(sock_path, "json\n");  /* and answers go on */
    assert_served_json(answer);
    free(answer);
    int64_t t0 = now_ms();
    status_stop(srv);
    ck_assert_int_lt(now_ms() - t0, 1000);
    close(pg);
}
END_TEST

/* The fill runs on the server's thread while the runner changes figures. */
static atomic_bool racing_done;

static void *race_figures(void *arg)
{
    (void)arg;
    while (!atomic_load(&racing_done)) {
        pthread_mutex_lock(&fill_mu);
        fill_rows++;
        pthread_mutex_unlock(&fill_mu);
    }
    return NULL;
}

START_TEST(test_fill_concurrent)
{
    status_server *srv = start_at(sock_path, NO_DB);
    pthread_t t;
    atomic_store(&racing_done, false);
    ck_assert_int_eq(pthread_create(&t, NULL, race_figures, NULL), 0);
    json_int_t last = -1;
    for (int i = 0; i < 50; i++) {
        char *answer = ask(sock_path, i % 2 ? "json\n" : "metrics\n");
        if (i % 2) {
            json_t *root = parse_json(answer);
            json_t *k = json_array_get(json_object_get(json_array_get(
                json_object_get(root, "services"), 0), "sinks"), 0);
            json_int_t rows = json_integer_value(json_object_get(k, "rows_applied"));
            ck_assert_int_ge(rows, last);
            last = rows;
            json_decref(root);
        }
        free(answer);
    }
    atomic_store(&racing_done, true);
    pthread_join(t, NULL);
    status_stop(srv);
}
END_TEST

static Suite *status_suite(void)
{
    Suite *s = suite_create("status");
    TCase *render = tcase_create("render");
    tcase_add_test(render, test_json_document);
    tcase_add_test(render, test_json_moves);
    tcase_add_test(render, test_json_unknowns);
    tcase_add_test(render, test_json_slot_lost);
    tcase_add_test(render, test_json_worst_state);
    tcase_add_test(render, test_metrics_format);
    tcase_add_test(render, test_metrics_wal_status);
    tcase_add_test(render, test_metrics_escaping);
    suite_add_tcase(s, render);
    TCase *wire = tcase_create("wire");
    tcase_add_checked_fixture(wire, dir_setup, dir_teardown);
    tcase_set_timeout(wire, 60);
    tcase_add_test(wire, test_socket_mode);
    tcase_add_test(wire, test_control_needs_owner);
    tcase_add_test(wire, test_stale_socket_replaced);
    tcase_add_test(wire, test_live_socket_refused);
    tcase_add_test(wire, test_regular_file_refused);
    tcase_add_test(wire, test_missing_directory);
    tcase_add_test(wire, test_stop_leaves_other_file);
    tcase_add_test(wire, test_http_requests);
    tcase_add_test(wire, test_bare_lines);
    tcase_add_test(wire, test_http_errors);
    tcase_add_test(wire, test_stuck_clients);
    tcase_add_test(wire, test_too_many_clients);
    tcase_add_test(wire, test_curl);
    tcase_add_test(wire, test_stop_interrupts_probe);
    tcase_add_test(wire, test_fill_concurrent);
    suite_add_tcase(s, wire);
    return s;
}

int main(void)
{
    log_set_level(LOG_LEVEL_ERROR);   /* the probe's failures are expected */
    SRunner *sr = srunner_create(status_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
