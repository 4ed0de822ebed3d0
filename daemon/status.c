/*
 * status: the status socket's rendering (JSON, Prometheus text) and its
 * server; see status.h.
 *
 * Two threads of the server's own. The serving thread polls the listener
 * and its clients, all non-blocking, and renders an answer per request
 * through the runner's fill callback. The probe thread asks the source for
 * its WAL position every few seconds on a plain connection; a slow or
 * unreachable database therefore never delays an answer. Both threads
 * also poll the read end of a pipe that status_stop writes to, so stopping
 * interrupts every wait at once.
 *
 * Wire limits: a request is at most STATUS_REQUEST_MAX bytes; a client has
 * CLIENT_TIMEOUT_MS to send its request and as long again to take its
 * answer, or it is dropped; beyond MAX_CLIENTS at once a new connection is
 * accepted and closed at once, without a word (an HTTP 503 would garble a
 * bare-line client, and writing before reading risks a reset anyway).
 */
#include "daemon/status.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <libgen.h>
#include <libpq-fe.h>
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
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/backoff.h"
#include "common/dbconn.h"
#include "common/log.h"

#define MAX_CLIENTS 64
#define STATUS_REQUEST_MAX 8192
#define CLIENT_TIMEOUT_MS 2000
#define ACCEPT_PAUSE_MS 100
#define PROBE_EVERY_MS 2000
#define PROBE_TIMEOUT_MS 5000     /* connect, and each query */
#define PROBE_BACKOFF_MAX_MS 30000

/* ---------------------------------------------------------------- JSON */

/* Worse states rank higher; an unknown state ranks lowest. */
static int state_rank(const char *state)
{
    static const char *const order[] = {"streaming", "catching_up",
                                        "initial_copy", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(state, order[i]) == 0)
            return i + 1;
    return 0;
}

/*
 * A string from a fixed-size field. jansson refuses invalid UTF-8 (an
 * error message from a server in another encoding): such bytes become '?'
 * rather than losing the whole document.
 */
static json_t *jstr(const char *s, size_t max)
{
    size_t len = strnlen(s, max);
    json_t *v = json_stringn(s, len);
    if (v)
        return v;
    char *copy = malloc(len + 1);
    if (!copy)
        return NULL;
    for (size_t i = 0; i < len; i++)
        copy[i] = (unsigned char)s[i] < 0x80 ? s[i] : '?';
    v = json_stringn(copy, len);
    free(copy);
    return v;
}

static json_t *jlsn(lsn_t lsn)
{
    char buf[LSN_STRLEN];
    return json_string(lsn_format(lsn, buf));
}

/* JSON has no NaN or infinity. */
static json_t *jreal(double d)
{
    return isfinite(d) ? json_real(d) : json_null();
}

/* ISO-8601 UTC, or null for 0 (never). */
static json_t *jtime(int64_t t)
{
    if (t == 0)
        return json_null();
    time_t tt = (time_t)t;
    struct tm tm;
    char buf[32];
    if (!gmtime_r(&tt, &tm) ||
        strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        return json_null();
    return json_string(buf);
}

/* json_object_set_new takes (and drops) v even when it fails; NULL fails. */
static bool set(json_t *obj, const char *key, json_t *v)
{
    return json_object_set_new(obj, key, v) == 0;
}

static json_t *copy_json(const status_sink *k)
{
    json_t *o = json_object();
    if (o && set(o, "tables_done", json_integer(k->copy_tables_done)) &&
        set(o, "tables_total", json_integer(k->copy_tables_total)) &&
        set(o, "rows", json_integer((json_int_t)k->copy_rows)))
        return o;
    json_decref(o);
    return NULL;
}

static json_t *sink_json(const status_sink *k)
{
    json_t *o = json_object();
    bool ok = o &&
        set(o, "kind", jstr(k->kind, sizeof k->kind)) &&
        set(o, "state", jstr(k->state, sizeof k->state)) &&
        set(o, "applied_lsn", jlsn(k->applied_lsn)) &&
        set(o, "lag_bytes", json_integer((json_int_t)k->lag_bytes)) &&
        set(o, "lag_seconds", jreal(k->lag_seconds)) &&
        set(o, "rows_applied", json_integer((json_int_t)k->rows_applied)) &&
        set(o, "txns_applied", json_integer((json_int_t)k->txns_applied)) &&
        set(o, "rows_per_second", jreal(k->rows_per_second)) &&
        set(o, "last_error", k->last_error[0]
            ? jstr(k->last_error, sizeof k->last_error) : json_null()) &&
        set(o, "last_error_time", jtime(k->last_error_time)) &&
        set(o, "errors", json_integer((json_int_t)k->errors));
    if (ok && strcmp(k->state, "initial_copy") == 0)
        ok = set(o, "copy", copy_json(k));
    if (ok)
        return o;
    json_decref(o);
    return NULL;
}

static const status_service *move_of(const status_snapshot *s,
                                     const char *name)
{
    for (size_t i = 0; i < s->nservices; i++)
        if (strncmp(s->services[i].name, name, STATUS_NAME_MAX) == 0)
            return &s->services[i];
    return NULL;
}

/* direction, and the last switch's pause (null when none yet). */
static bool set_move(json_t *o, const status_service *mv)
{
    return set(o, "direction", jstr(mv ? mv->direction : "forward", 16)) &&
           set(o, "last_cutover_pause_ms",
               mv && mv->pause_ms >= 0 ? jreal(mv->pause_ms) : json_null());
}

/* The service of the n sinks from `first` on (consecutive, same name). */
static json_t *service_json(const status_snapshot *s, const status_sink *first,
                            size_t n)
{
    const status_sink *worst = first;
    json_t *sinks = json_array();
    for (size_t i = 0; sinks && i < n; i++) {
        if (state_rank(first[i].state) > state_rank(worst->state))
            worst = &first[i];
        if (json_array_append_new(sinks, sink_json(&first[i])) != 0) {
            json_decref(sinks);
            sinks = NULL;
        }
    }
    json_t *o = json_object();
    if (o && set(o, "name", jstr(first->service, sizeof first->service)) &&
        set(o, "state", jstr(worst->state, sizeof worst->state)) &&
        set_move(o, move_of(s, first->service)) && set(o, "sinks", sinks))
        return o;
    if (!o)
        json_decref(sinks);
    json_decref(o);
    return NULL;
}

static bool same_service(const status_sink *a, const status_sink *b)
{
    return strncmp(a->service, b->service, sizeof a->service) == 0;
}

static json_t *services_json(const status_snapshot *s)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < s->nsinks;) {
        size_t n = 1;
        while (i + n < s->nsinks && same_service(&s->sinks[i], &s->sinks[i + n]))
            n++;
        if (json_array_append_new(arr, service_json(s, &s->sinks[i], n)) != 0) {
            json_decref(arr);
            return NULL;
        }
        i += n;
    }
    return arr;
}

static json_t *source_json(const status_snapshot *s)
{
    json_t *o = json_object();
    if (o && set(o, "slot", jstr(s->slot, sizeof s->slot)) &&
        set(o, "connected", json_boolean(s->connected)) &&
        set(o, "values", s->connected ? json_string(s->binary_values
                                                    ? "binary" : "text")
                                      : json_null()) &&
        set(o, "server_lsn", s->server_lsn ? jlsn(s->server_lsn) : json_null()) &&
        set(o, "received_lsn", jlsn(s->received_lsn)) &&
        set(o, "flushed_lsn", jlsn(s->flushed_lsn)) &&
        set(o, "retained_wal_bytes", s->retained_wal_bytes >= 0
            ? json_integer(s->retained_wal_bytes) : json_null()) &&
        set(o, "wal_status", s->wal_status[0]
            ? jstr(s->wal_status, sizeof s->wal_status) : json_null()) &&
        set(o, "safe_wal_bytes", s->safe_wal_bytes != STATUS_NO_BYTES
            ? json_integer(s->safe_wal_bytes) : json_null()) &&
        set(o, "last_error", s->last_error[0]
            ? jstr(s->last_error, sizeof s->last_error) : json_null()) &&
        set(o, "last_error_time", jtime(s->last_error_time)))
        return o;
    json_decref(o);
    return NULL;
}

char *status_json(const status_snapshot *s)
{
    json_t *root = json_object();
    bool ok = root &&
        set(root, "name", jstr(s->name, sizeof s->name)) &&
        set(root, "version", s->version ? json_string(s->version) : json_null()) &&
        set(root, "pid", json_integer(s->pid)) &&
        set(root, "uptime_s", json_integer((json_int_t)s->uptime_s)) &&
        set(root, "source", source_json(s)) &&
        set(root, "services", services_json(s));
    char *text = ok ? json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(12))
                    : NULL;
    json_decref(root);
    return text;
}

/* ---------------------------------------------------------- Prometheus */

/* Label values escape backslash, double quote and newline, nothing else. */
static void put_label(FILE *f, const char *name, const char *v, size_t max)
{
    fprintf(f, "%s=\"", name);
    for (size_t i = 0; i < max && v[i]; i++) {
        if (v[i] == '\\')
            fputs("\\\\", f);
        else if (v[i] == '"')
            fputs("\\\"", f);
        else if (v[i] == '\n')
            fputs("\\n", f);
        else
            fputc(v[i], f);
    }
    fputc('"', f);
}

static void put_family(FILE *f, const char *name, const char *type,
                       const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void put_double(FILE *f, double d)
{
    if (isnan(d))
        fputs("NaN", f);
    else if (isinf(d))
        fputs(d > 0 ? "+Inf" : "-Inf", f);
    else
        fprintf(f, "%.12g", d);
}

static void put_sink_labels(FILE *f, const status_sink *k)
{
    fputc('{', f);
    put_label(f, "service", k->service, sizeof k->service);
    fputc(',', f);
    put_label(f, "sink", k->kind, sizeof k->kind);
}

typedef enum { FIG_U64, FIG_DOUBLE } figure_type;

/* The per-sink figures, one family each. */
static const struct sink_family {
    const char *name, *type, *help;
    size_t offset;
    figure_type fig;
} sink_families[] = {
    {"cleave_lag_bytes", "gauge",
     "WAL bytes between the source's received LSN and the sink's applied LSN.",
     offsetof(status_sink, lag_bytes), FIG_U64},
    {"cleave_lag_seconds", "gauge",
     "Seconds between the source's last commit and the sink's last one applied.",
     offsetof(status_sink, lag_seconds), FIG_DOUBLE},
    {"cleave_applied_lsn", "gauge",
     "LSN up to which the sink holds every change durably, as a number.",
     offsetof(status_sink, applied_lsn), FIG_U64},
    {"cleave_rows_applied_total", "counter",
     "Row changes applied to the sink since start.",
     offsetof(status_sink, rows_applied), FIG_U64},
    {"cleave_transactions_applied_total", "counter",
     "Source transactions applied to the sink since start.",
     offsetof(status_sink, txns_applied), FIG_U64},
    {"cleave_errors_total", "counter",
     "Failures of the sink since start.",
     offsetof(status_sink, errors), FIG_U64},
};

static void put_sink_family(FILE *f, const struct sink_family *fam,
                            const status_snapshot *s)
{
    put_family(f, fam->name, fam->type, fam->help);
    for (size_t i = 0; i < s->nsinks; i++) {
        const char *field = (const char *)&s->sinks[i] + fam->offset;
        fputs(fam->name, f);
        put_sink_labels(f, &s->sinks[i]);
        fputs("} ", f);
        if (fam->fig == FIG_U64) {
            uint64_t v;
            memcpy(&v, field, sizeof v);
            fprintf(f, "%" PRIu64, v);
        } else {
            double d;
            memcpy(&d, field, sizeof d);
            put_double(f, d);
        }
        fputc('\n', f);
    }
}

/*
 * Every state with 0 or 1, so an alert on a state's value never depends
 * on the series being absent; an unknown current state still shows as 1.
 */
static void put_state(FILE *f, const status_sink *k, const char *state)
{
    fputs("cleave_sink_state", f);
    put_sink_labels(f, k);
    fputc(',', f);
    put_label(f, "state", state, sizeof k->state);
    fprintf(f, "} %d\n", strncmp(state, k->state, sizeof k->state) == 0);
}

static void put_states(FILE *f, const status_snapshot *s)
{
    static const char *const states[] = {"initial_copy", "catching_up",
                                         "streaming", "error"};
    put_family(f, "cleave_sink_state", "gauge",
               "1 for the sink's current state, 0 for the others.");
    for (size_t i = 0; i < s->nsinks; i++) {
        for (int j = 0; j < 4; j++)
            put_state(f, &s->sinks[i], states[j]);
        if (state_rank(s->sinks[i].state) == 0)
            put_state(f, &s->sinks[i], s->sinks[i].state);
    }
}

static void put_slot_bytes(FILE *f, const status_snapshot *s,
                           const char *name, const char *help, int64_t v)
{
    put_family(f, name, "gauge", help);
    fprintf(f, "%s{", name);
    put_label(f, "slot", s->slot, sizeof s->slot);
    fprintf(f, "} %" PRId64 "\n", v);
}

static void put_wal_status(FILE *f, const status_snapshot *s, const char *st)
{
    fputs("cleave_slot_wal_status{", f);
    put_label(f, "slot", s->slot, sizeof s->slot);
    fputc(',', f);
    put_label(f, "status", st, sizeof s->wal_status);
    fprintf(f, "} %d\n", strncmp(st, s->wal_status, sizeof s->wal_status) == 0);
}

/*
 * The slot's WAL figures, each family left out while not known. Every
 * wal_status with 0 or 1, as for the sink states; one PostgreSQL adds
 * later shows as 1 too.
 */
static void put_slot_figures(FILE *f, const status_snapshot *s)
{
    static const char *const statuses[] = {"reserved", "extended",
                                           "unreserved", "lost"};
    if (s->retained_wal_bytes >= 0)
        put_slot_bytes(f, s, "cleave_slot_retained_wal_bytes",
                       "WAL bytes the source keeps for the slot.",
                       s->retained_wal_bytes);
    if (s->safe_wal_bytes != STATUS_NO_BYTES)
        put_slot_bytes(f, s, "cleave_slot_safe_wal_bytes",
                       "WAL bytes the source can write before the slot is "
                       "lost (max_slot_wal_keep_size).", s->safe_wal_bytes);
    if (!s->wal_status[0])
        return;
    put_family(f, "cleave_slot_wal_status", "gauge",
               "1 for the slot's wal_status on the source, 0 for the others.");
    bool known = false;
    for (int i = 0; i < 4; i++) {
        put_wal_status(f, s, statuses[i]);
        known = known || strcmp(statuses[i], s->wal_status) == 0;
    }
    if (!known)
        put_wal_status(f, s, s->wal_status);
}

/* Each service's direction (one series per direction, 1 for its own). */
static void put_moves(FILE *f, const status_snapshot *s)
{
    static const char *const dirs[] = {"forward", "reverse", "complete"};
    put_family(f, "cleave_service_direction", "gauge",
               "1 for the direction a service's writes go (PRODUCT.md 8).");
    for (size_t i = 0; i < s->nservices; i++)
        for (size_t d = 0; d < 3; d++) {
            fputs("cleave_service_direction{", f);
            put_label(f, "service", s->services[i].name, STATUS_NAME_MAX);
            fprintf(f, ",direction=\"%s\"} %d\n", dirs[d],
                    strcmp(s->services[i].direction, dirs[d]) == 0);
        }
    put_family(f, "cleave_last_cutover_pause_seconds", "gauge",
               "The last cut-over's or rollback's write pause.");
    for (size_t i = 0; i < s->nservices; i++) {
        if (s->services[i].pause_ms < 0)
            continue;
        fputs("cleave_last_cutover_pause_seconds{", f);
        put_label(f, "service", s->services[i].name, STATUS_NAME_MAX);
        fputs("} ", f);
        put_double(f, s->services[i].pause_ms / 1000);
        fputc('\n', f);
    }
}

char *status_metrics(const status_snapshot *s)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    put_family(f, "cleave_up", "gauge", "1 while cleave answers.");
    fputs("cleave_up 1\n", f);
    put_family(f, "cleave_uptime_seconds", "gauge", "Seconds since start.");
    fputs("cleave_uptime_seconds ", f);
    put_double(f, s->uptime_s);
    fputc('\n', f);
    put_family(f, "cleave_source_connected", "gauge",
               "1 while the replication connection to the source is up.");
    fprintf(f, "cleave_source_connected %d\n", s->connected ? 1 : 0);
    put_slot_figures(f, s);
    for (size_t i = 0; i < sizeof sink_families / sizeof *sink_families; i++)
        put_sink_family(f, &sink_families[i], s);
    put_states(f, s);
    put_moves(f, s);
    bool failed = ferror(f);
    if (fclose(f) != 0 || failed) {
        free(text);
        return NULL;
    }
    return text;
}

/* -------------------------------------------------------------- server */

typedef enum { CLIENT_FREE, CLIENT_READING, CLIENT_WRITING } client_phase;

typedef struct client {
    int fd;
    client_phase phase;
    int64_t deadline_ms;          /* of the current phase */
    char in[STATUS_REQUEST_MAX];
    size_t inlen;
    char *out;
    size_t outlen, outpos;
} client;

struct status_server {
    char path[sizeof ((struct sockaddr_un *)0)->sun_path];
    dev_t dev;                    /* the socket file we made */
    ino_t ino;
    int listen_fd;
    int stop_pipe[2];             /* written once by status_stop */
    pthread_t serve_thread, probe_thread;
    bool probing;
    atomic_bool stopping;         /* no warnings for failures stop caused */
    status_fill_fn fill;
    void *arg;
    _Atomic(status_control_fn) control;   /* NULL: control lines refused */
    _Atomic(void *) control_arg;
    /* The serving thread's. */
    status_snapshot snap;
    status_sink *sinks;
    status_service *services;     /* as many as sinks */
    size_t max_sinks;
    client clients[MAX_CLIENTS];
    int64_t accept_paused_until;  /* out of fds: the listener waits */
    /* The probe thread's. */
    char *dsn, *slot;
    PGconn *conn;
    atomic_uint_least64_t server_lsn;
    atomic_int_least64_t retained_wal;
    atomic_int_least64_t safe_wal;     /* STATUS_NO_BYTES: none */
    pthread_mutex_t wal_status_mu;
    char wal_status[16];               /* "": not known */
};

void status_set_control(status_server *srv, status_control_fn fn, void *arg)
{
    atomic_store(&srv->control_arg, arg);
    atomic_store(&srv->control, fn);
}

lsn_t status_server_lsn(status_server *srv)
{
    return atomic_load(&srv->server_lsn);
}

int64_t status_retained_wal(status_server *srv)
{
    return atomic_load(&srv->retained_wal);
}

/*
 * Waits for fd (when >= 0) to be ready for `events`, for stop, or for
 * ms (-1: no limit). 1 ready, 0 timed out, -1 stopping or poll failed.
 */
static int wait_fd(status_server *srv, int fd, short events, int ms)
{
    struct pollfd p[2] = {{srv->stop_pipe[0], POLLIN, 0}, {fd, events, 0}};
    int n;
    do
        n = poll(p, fd >= 0 ? 2 : 1, ms);
    while (n < 0 && errno == EINTR);
    if (n < 0 || p[0].revents)
        return -1;
    return n > 0 ? 1 : 0;
}

static int remaining_ms(int64_t deadline)
{
    int64_t left = deadline - clock_ms();
    return left > 0 ? (int)left : 0;
}

/* ---- the probe: server LSN and the slot's WAL figures */

/*
 * Non-blocking connect, so that stop interrupts it and our own deadline
 * holds (libpq leaves connect_timeout to the caller in this mode). A name
 * lookup in the host is still synchronous inside libpq.
 */
static bool probe_connect(status_server *srv)
{
    /*
     * Ours first: the DSN's own settings override them; but the encoding
     * after it, as every connection of cleave's (dbconn.h), so that a
     * server's error shown in the status is UTF-8 whatever the DSN says.
     */
    const char *keys[] = {"connect_timeout", "options",
                          "fallback_application_name", "dbname",
                          "client_encoding", NULL};
    const char *vals[] = {"5", "-c statement_timeout=5000",
                          "cleave status", srv->dsn, DBCONN_ENCODING, NULL};
    srv->conn = PQconnectStartParams(keys, vals, 1);
    if (!srv->conn || PQstatus(srv->conn) == CONNECTION_BAD)
        return false;
    int64_t deadline = clock_ms() + PROBE_TIMEOUT_MS;
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (st != PGRES_POLLING_OK) {
        if (st == PGRES_POLLING_FAILED)
            return false;
        short ev = st == PGRES_POLLING_READING ? POLLIN : POLLOUT;
        if (wait_fd(srv, PQsocket(srv->conn), ev, remaining_ms(deadline)) <= 0)
            return false;
        st = PQconnectPoll(srv->conn);
    }
    return PQsetnonblocking(srv->conn, 1) == 0;
}

/* The query's one result, waited for under the deadline and stop. */
static PGresult *probe_result(status_server *srv, int64_t deadline)
{
    PGconn *c = srv->conn;
    int flushed;
    while ((flushed = PQflush(c)) == 1)
        if (wait_fd(srv, PQsocket(c), POLLOUT, remaining_ms(deadline)) <= 0)
            return NULL;
    if (flushed < 0)
        return NULL;
    PGresult *res = NULL, *r;
    for (;;) {
        while (PQisBusy(c)) {
            if (wait_fd(srv, PQsocket(c), POLLIN, remaining_ms(deadline)) <= 0 ||
                !PQconsumeInput(c)) {
                PQclear(res);
                return NULL;
            }
        }
        if ((r = PQgetResult(c)) == NULL)
            return res;
        PQclear(res);
        res = r;
    }
}

/*
 * One row, with nulls where there is no slot. wal_status and safe_wal_size
 * came with PostgreSQL 13.
 */
static const char *probe_sql(PGconn *conn)
{
    if (PQserverVersion(conn) >= 130000)
        return "SELECT pg_current_wal_lsn()::text, s.retained, s.wal_status, "
               "s.safe_wal_size FROM (SELECT 1) one LEFT JOIN (SELECT "
               "pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint "
               "AS retained, wal_status, safe_wal_size "
               "FROM pg_replication_slots WHERE slot_name = $1) s ON true";
    return "SELECT pg_current_wal_lsn()::text, "
           "(SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint "
           "FROM pg_replication_slots WHERE slot_name = $1), NULL, NULL";
}

static int64_t bytes_or(const PGresult *res, int col, int64_t none)
{
    return PQgetisnull(res, 0, col) ? none
                                    : strtoll(PQgetvalue(res, 0, col), NULL, 10);
}

static void keep_readings(status_server *srv, const PGresult *res, lsn_t lsn)
{
    atomic_store(&srv->server_lsn, lsn);
    atomic_store(&srv->retained_wal, bytes_or(res, 1, -1));
    atomic_store(&srv->safe_wal, bytes_or(res, 3, STATUS_NO_BYTES));
    pthread_mutex_lock(&srv->wal_status_mu);
    snprintf(srv->wal_status, sizeof srv->wal_status, "%s",
             PQgetisnull(res, 0, 2) ? "" : PQgetvalue(res, 0, 2));
    pthread_mutex_unlock(&srv->wal_status_mu);
}

static bool probe_once(status_server *srv)
{
    const char *params[] = {srv->slot};
    if (!PQsendQueryParams(srv->conn, probe_sql(srv->conn), 1, NULL, params,
                           NULL, NULL, 0))
        return false;
    PGresult *res = probe_result(srv, clock_ms() + PROBE_TIMEOUT_MS);
    lsn_t lsn;
    bool ok = res && PQresultStatus(res) == PGRES_TUPLES_OK &&
              PQntuples(res) == 1 && PQnfields(res) == 4 &&
              lsn_parse(PQgetvalue(res, 0, 0), &lsn);
    if (ok)
        keep_readings(srv, res, lsn);
    PQclear(res);
    return ok;
}

/*
 * Readings survive a lost connection: the last known position is kept
 * until a new one comes (status.h: "the server's last readings").
 */
static void *probe_main(void *arg)
{
    status_server *srv = arg;
    backoff b;
    backoff_init(&b, BACKOFF_MIN_MS, PROBE_BACKOFF_MAX_MS);
    bool warned = false;
    for (;;) {
        bool ok = (srv->conn || probe_connect(srv)) && probe_once(srv);
        int wait_ms = PROBE_EVERY_MS;
        if (ok) {
            backoff_reset(&b);
            warned = false;
        } else if (!atomic_load(&srv->stopping)) {
            const char *msg = srv->conn ? PQerrorMessage(srv->conn) : "out of memory";
            if (!msg[0])
                msg = "no answer in time";
            wait_ms = backoff_next(&b);
            log_write(warned ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARNING,
                      "event=status_probe_failed retry_in=%dms error=\"%.*s\"",
                      wait_ms, (int)strcspn(msg, "\n"), msg);
            warned = true;
            PQfinish(srv->conn);
            srv->conn = NULL;
        }
        if (wait_fd(srv, -1, 0, wait_ms) < 0)
            break;
    }
    PQfinish(srv->conn);
    srv->conn = NULL;
    return NULL;
}

/* ---- answering */

/* Takes a snapshot through the runner's callback, made safe to render. */
static void take_snapshot(status_server *srv)
{
    status_snapshot *s = &srv->snap;
    memset(s, 0, sizeof *s);
    memset(srv->sinks, 0, srv->max_sinks * sizeof *srv->sinks);
    memset(srv->services, 0, srv->max_sinks * sizeof *srv->services);
    s->sinks = srv->sinks;
    s->nsinks = srv->max_sinks;
    s->services = srv->services;
    s->nservices = srv->max_sinks;
    s->retained_wal_bytes = -1;
    s->safe_wal_bytes = STATUS_NO_BYTES;
    srv->fill(srv->arg, s);
    if (s->nsinks > srv->max_sinks)
        s->nsinks = srv->max_sinks;
    if (s->nservices > srv->max_sinks)
        s->nservices = srv->max_sinks;
    for (size_t i = 0; i < s->nservices; i++) {
        status_service *v = &s->services[i];
        v->name[sizeof v->name - 1] = v->direction[sizeof v->direction - 1] = 0;
    }
    /* The fixed-size fields come from another module: NUL-end them all. */
    s->name[sizeof s->name - 1] = s->slot[sizeof s->slot - 1] = '\0';
    s->wal_status[sizeof s->wal_status - 1] = '\0';
    s->last_error[sizeof s->last_error - 1] = '\0';
    for (size_t i = 0; i < s->nsinks; i++) {
        status_sink *k = &s->sinks[i];
        k->service[sizeof k->service - 1] = k->kind[sizeof k->kind - 1] = '\0';
        k->state[sizeof k->state - 1] = '\0';
        k->last_error[sizeof k->last_error - 1] = '\0';
    }
    if (srv->probing) {
        s->server_lsn = atomic_load(&srv->server_lsn);
        s->retained_wal_bytes = atomic_load(&srv->retained_wal);
        s->safe_wal_bytes = atomic_load(&srv->safe_wal);
        pthread_mutex_lock(&srv->wal_status_mu);
        memcpy(s->wal_status, srv->wal_status, sizeof s->wal_status);
        pthread_mutex_unlock(&srv->wal_status_mu);
    }
}

typedef enum { BODY_JSON, BODY_METRICS } body_kind;

/* JSON ends with a newline too, so `json` on a terminal reads well. */
static char *render(status_server *srv, body_kind kind)
{
    take_snapshot(srv);
    if (kind == BODY_METRICS)
        return status_metrics(&srv->snap);
    char *json = status_json(&srv->snap), *text = NULL;
    if (json && asprintf(&text, "%s\n", json) < 0)
        text = NULL;
    free(json);
    return text;
}

static char *http_answer(int code, const char *reason, const char *type,
                         const char *body)
{
    char *text;
    if (asprintf(&text, "HTTP/1.0 %d %s\r\nContent-Type: %s\r\n"
                 "Content-Length: %zu\r\n%sConnection: close\r\n\r\n%s",
                 code, reason, type, strlen(body),
                 code == 405 ? "Allow: GET\r\n" : "", body) < 0)
        return NULL;
    return text;
}

static char *http_error(int code, const char *reason, const char *why)
{
    return http_answer(code, reason, "text/plain; charset=utf-8", why);
}

/* "GET /path HTTP/1.x": the answer for that request line. */
static char *http_request(status_server *srv, char *line)
{
    char *save;
    char *method = strtok_r(line, " ", &save);
    char *target = strtok_r(NULL, " ", &save);
    char *version = strtok_r(NULL, " ", &save);
    if (!method || !target || !version || strtok_r(NULL, " ", &save) ||
        strncmp(version, "HTTP/1.", 7) != 0 || target[0] != '/')
        return http_error(400, "Bad Request", "expected GET /status, "
                          "GET /metrics, or a line json or metrics\n");
    if (strcmp(method, "GET") != 0)
        return http_error(405, "Method Not Allowed", "only GET\n");
    target[strcspn(target, "?#")] = '\0';
    body_kind kind;
    if (strcmp(target, "/") == 0 || strcmp(target, "/status") == 0)
        kind = BODY_JSON;
    else if (strcmp(target, "/metrics") == 0)
        kind = BODY_METRICS;
    else
        return http_error(404, "Not Found", "try /status or /metrics\n");
    char *body = render(srv, kind), *text = NULL;
    if (body)
        text = http_answer(200, "OK", kind == BODY_JSON ? "application/json"
                           : "text/plain; version=0.0.4; charset=utf-8", body);
    free(body);
    return text ? text : http_error(500, "Internal Server Error", "out of memory\n");
}

typedef enum { REQ_MORE, REQ_DROP, REQ_ANSWER, REQ_HANDED } request_state;

/*
 * A control request moves a service's writes: the socket's group may read
 * the status, but only root and cleave's own user may ask for a move (as
 * pgbouncer's admin_users, by the peer's credentials). NULL when allowed.
 */
static char *control_refused(int fd, long *uid)
{
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
        cred.uid = (uid_t)-1;
    else if (cred.uid == 0 || cred.uid == geteuid())
        return NULL;
    *uid = (long)cred.uid;
    char *out = NULL;
    if (asprintf(&out, "{\"result\":\"failed\",\"exit\":1,\"error\":\"uid "
                 "%ld may read the status but not ask for a move: control "
                 "requests are taken from root and uid %ld only\"}\n",
                 (long)cred.uid, (long)geteuid()) < 0)
        return NULL;
    return out;
}

/* "control ...": the connection goes to the control callback, blocking. */
static request_state hand_over(status_server *srv, client *c, const char *line)
{
    status_control_fn fn = atomic_load(&srv->control);
    if (!fn) {
        c->out = strdup("{\"result\":\"failed\",\"exit\":1,\"error\":"
                        "\"this cleave takes no control requests yet\"}\n");
        return c->out ? REQ_ANSWER : REQ_DROP;
    }
    long uid;
    if ((c->out = control_refused(c->fd, &uid))) {
        log_warning("event=control_refused uid=%ld", uid);
        return REQ_ANSWER;
    }
    int fd = c->fd;
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0)
        fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    c->fd = -1;
    c->phase = CLIENT_FREE;
    fn(atomic_load(&srv->control_arg), fd, line + strlen(STATUS_CONTROL));
    return REQ_HANDED;
}


/*
 * Looks at what the client sent so far; with REQ_ANSWER, c->out holds the
 * answer. A bare line is complete at its newline (or at EOF); an HTTP
 * request at the blank line after its headers (or at EOF). A first line
 * that is neither is answered 400 at once rather than waited on.
 */
static request_state parse_request(status_server *srv, client *c, bool eof)
{
    char *nl = memchr(c->in, '\n', c->inlen);
    bool full = c->inlen == sizeof c->in;
    if (!nl && !full && !eof)
        return REQ_MORE;
    if (!nl && (full || c->inlen == 0)) {
        c->out = full ? http_error(400, "Bad Request", "request line too long\n")
                      : NULL;
        return c->out ? REQ_ANSWER : REQ_DROP;
    }
    size_t linelen = nl ? (size_t)(nl - c->in) : c->inlen;
    if (linelen > 0 && c->in[linelen - 1] == '\r')
        linelen--;
    char line[STATUS_REQUEST_MAX + 1];
    memcpy(line, c->in, linelen);
    line[linelen] = '\0';
    if (strncmp(line, STATUS_CONTROL, strlen(STATUS_CONTROL)) == 0)
        return hand_over(srv, c, line);
    if (strcmp(line, "json") == 0 || strcmp(line, "metrics") == 0) {
        c->out = render(srv, line[0] == 'j' ? BODY_JSON : BODY_METRICS);
        return c->out ? REQ_ANSWER : REQ_DROP;
    }
    bool http = strstr(line, " HTTP/") != NULL;
    bool done = memmem(c->in, c->inlen, "\r\n\r\n", 4) ||
                memmem(c->in, c->inlen, "\n\n", 2);
    if (http && !done && !eof && !full)
        return REQ_MORE;
    c->out = !http || done || eof
        ? http_request(srv, line)
        : http_error(400, "Bad Request", "headers too long\n");
    return c->out ? REQ_ANSWER : REQ_DROP;
}

static void client_close(client *c, const char *why)
{
    if (why)
        log_debug("event=status_client_dropped reason=%s", why);
    close(c->fd);
    free(c->out);
    c->out = NULL;
    c->fd = -1;
    c->phase = CLIENT_FREE;
}

/*
 * After the answer: read what the client may still have sent, so the
 * close is a clean EOF on its side and not a reset.
 */
static void client_finish(client *c)
{
    char sink[512];
    while (recv(c->fd, sink, sizeof sink, MSG_DONTWAIT) > 0)
        ;
    shutdown(c->fd, SHUT_WR);
    client_close(c, NULL);
}

static void client_write(client *c)
{
    while (c->outpos < c->outlen) {
        ssize_t n = send(c->fd, c->out + c->outpos, c->outlen - c->outpos,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            client_close(c, "write_failed");
            return;
        }
        c->outpos += (size_t)n;
    }
    client_finish(c);
}

static void client_read(status_server *srv, client *c)
{
    ssize_t n = recv(c->fd, c->in + c->inlen, sizeof c->in - c->inlen,
                     MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n > 0)
        c->inlen += (size_t)n;
    switch (parse_request(srv, c, n <= 0)) {
    case REQ_MORE:
    case REQ_HANDED:
        return;
    case REQ_DROP:
        client_close(c, n < 0 ? "read_failed" : "incomplete_request");
        return;
    case REQ_ANSWER:
        c->phase = CLIENT_WRITING;
        c->outlen = strlen(c->out);
        c->outpos = 0;
        c->deadline_ms = clock_ms() + CLIENT_TIMEOUT_MS;
        client_write(c);
    }
}

static void accept_clients(status_server *srv)
{
    int fd;
    while ((fd = accept4(srv->listen_fd, NULL, NULL,
                         SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        client *c = NULL;
        for (int i = 0; i < MAX_CLIENTS && !c; i++)
            if (srv->clients[i].phase == CLIENT_FREE)
                c = &srv->clients[i];
        if (!c) {
            log_debug("event=status_client_dropped reason=too_many_clients");
            close(fd);
            continue;
        }
        c->fd = fd;
        c->phase = CLIENT_READING;
        c->inlen = 0;
        c->deadline_ms = clock_ms() + CLIENT_TIMEOUT_MS;
    }
    if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
        return;
    log_warning("event=status_accept_failed error=\"%s\"", strerror(errno));
    /* The connection stays queued, so the listener stays readable: without
     * a pause, poll would spin until an fd comes free. */
    srv->accept_paused_until = clock_ms() + ACCEPT_PAUSE_MS;
}

/* The poll timeout: until the nearest deadline, or none. */
static int next_timeout(status_server *srv, int64_t now)
{
    int64_t best = srv->accept_paused_until > now ? srv->accept_paused_until : -1;
    for (int i = 0; i < MAX_CLIENTS; i++) {
        client *c = &srv->clients[i];
        if (c->phase != CLIENT_FREE && (best < 0 || c->deadline_ms < best))
            best = c->deadline_ms;
    }
    if (best < 0)
        return -1;
    return best > now ? (int)(best - now) : 0;
}

static void *serve_main(void *arg)
{
    status_server *srv = arg;
    struct pollfd p[2 + MAX_CLIENTS];
    int which[2 + MAX_CLIENTS];
    for (;;) {
        int n = 2;
        p[0] = (struct pollfd){srv->stop_pipe[0], POLLIN, 0};
        p[1] = (struct pollfd){srv->listen_fd,
            clock_ms() < srv->accept_paused_until ? 0 : POLLIN, 0};
        for (int i = 0; i < MAX_CLIENTS; i++) {
            client *c = &srv->clients[i];
            if (c->phase == CLIENT_FREE)
                continue;
            which[n] = i;
            p[n++] = (struct pollfd){c->fd,
                c->phase == CLIENT_READING ? POLLIN : POLLOUT, 0};
        }
        if (poll(p, (nfds_t)n, next_timeout(srv, clock_ms())) < 0 && errno != EINTR) {
            log_error("event=status_poll_failed error=\"%s\"", strerror(errno));
            break;
        }
        if (p[0].revents)
            break;
        for (int j = 2; j < n; j++) {
            client *c = &srv->clients[which[j]];
            if (!p[j].revents)
                continue;
            if (c->phase == CLIENT_READING)
                client_read(srv, c);
            else
                client_write(c);
        }
        int64_t now = clock_ms();
        for (int i = 0; i < MAX_CLIENTS; i++) {
            client *c = &srv->clients[i];
            if (c->phase != CLIENT_FREE && c->deadline_ms <= now)
                client_close(c, c->phase == CLIENT_READING ? "request_timeout"
                                                           : "answer_timeout");
        }
        if (p[1].revents)
            accept_clients(srv);
    }
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (srv->clients[i].phase != CLIENT_FREE)
            client_close(&srv->clients[i], NULL);
    return NULL;
}

/* ---- the socket file */

/*
 * A socket at the path is either a live cleave (refuse) or left by a
 * crash (replace); anything else there is not ours to remove.
 */
static bool clear_path(const char *path, const struct sockaddr_un *addr,
                       char *err, size_t errlen)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return true;
        snprintf(err, errlen, "cannot stat %s: %s", path, strerror(errno));
        return false;
    }
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "%s exists and is not a socket; not replacing it",
                 path);
        return false;
    }
    /* Non-blocking: a live server with a full backlog says EAGAIN. */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return false;
    }
    int rc = connect(fd, (const struct sockaddr *)addr, sizeof *addr);
    int e = errno;
    close(fd);
    if (rc == 0 || e == EAGAIN || e == EINPROGRESS) {
        snprintf(err, errlen, "another cleave is running on %s", path);
        return false;
    }
    if (e != ECONNREFUSED && e != ENOENT) {
        snprintf(err, errlen, "cannot check %s: %s", path, strerror(e));
        return false;
    }
    if (e == ENOENT)
        return true;
    if (unlink(path) != 0 && errno != ENOENT) {
        snprintf(err, errlen, "cannot remove the stale %s: %s", path,
                 strerror(errno));
        return false;
    }
    log_info("event=status_stale_socket_removed path=%s", path);
    return true;
}

static bool parent_exists(const char *path, char *err, size_t errlen)
{
    char *copy = strdup(path);
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    const char *dir = dirname(copy);
    struct stat st;
    bool ok = stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
    if (!ok)
        snprintf(err, errlen, "the status socket's directory %s does not exist",
                 dir);
    free(copy);
    return ok;
}

static bool set_errno_err(char *err, size_t errlen, const char *what,
                          const char *path, int e)
{
    snprintf(err, errlen, "%s %s: %s", what, path, strerror(e));
    return false;
}

/*
 * Nobody can connect before listen(), which comes after the chmod to 0660:
 * no window with wider permissions, and no process-wide umask to touch
 * (other threads create files meanwhile).
 */
static bool make_listener(status_server *srv, const char *path, char *err,
                          size_t errlen)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    memcpy(addr.sun_path, path, strlen(path));
    if (!parent_exists(path, err, errlen) ||
        !clear_path(path, &addr, err, errlen))
        return false;
    srv->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (srv->listen_fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return false;
    }
    int rc = bind(srv->listen_fd, (struct sockaddr *)&addr, sizeof addr);
    int e = errno;
    if (rc != 0)
        return set_errno_err(err, errlen, "cannot bind", path, e);
    struct stat st;
    if (chmod(path, 0660) != 0 || stat(path, &st) != 0 ||
        listen(srv->listen_fd, 128) != 0) {
        e = errno;
        unlink(path);
        return set_errno_err(err, errlen, "cannot set up", path, e);
    }
    srv->dev = st.st_dev;
    srv->ino = st.st_ino;
    return true;
}

/* ---- start and stop */

static void server_free(status_server *srv)
{
    if (srv->listen_fd >= 0)
        close(srv->listen_fd);
    for (int i = 0; i < 2; i++)
        if (srv->stop_pipe[i] >= 0)
            close(srv->stop_pipe[i]);
    free(srv->sinks);
    free(srv->services);
    free(srv->dsn);
    free(srv->slot);
    pthread_mutex_destroy(&srv->wal_status_mu);
    free(srv);
}

static status_server *server_new(const char *path, const char *dsn,
                                 const char *slot, size_t max_sinks)
{
    status_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return NULL;
    srv->listen_fd = srv->stop_pipe[0] = srv->stop_pipe[1] = -1;
    for (int i = 0; i < MAX_CLIENTS; i++)
        srv->clients[i].fd = -1;
    snprintf(srv->path, sizeof srv->path, "%s", path);
    srv->max_sinks = max_sinks;
    srv->sinks = calloc(max_sinks ? max_sinks : 1, sizeof *srv->sinks);
    srv->services = calloc(max_sinks ? max_sinks : 1, sizeof *srv->services);
    srv->dsn = dsn ? strdup(dsn) : NULL;
    srv->slot = strdup(slot ? slot : "");
    atomic_init(&srv->server_lsn, 0);
    atomic_init(&srv->retained_wal, -1);
    atomic_init(&srv->safe_wal, STATUS_NO_BYTES);
    pthread_mutex_init(&srv->wal_status_mu, NULL);
    if (!srv->sinks || !srv->services || (dsn && !srv->dsn) || !srv->slot ||
        pipe2(srv->stop_pipe, O_CLOEXEC) != 0) {
        server_free(srv);
        return NULL;
    }
    return srv;
}

status_server *status_start(const char *path, const char *dsn,
                            const char *slot, size_t max_sinks,
                            status_fill_fn fill, void *arg, char *err,
                            size_t errlen)
{
    if (strlen(path) >= sizeof ((struct sockaddr_un *)0)->sun_path) {
        snprintf(err, errlen, "status socket path %s is too long", path);
        return NULL;
    }
    status_server *srv = server_new(path, dsn, slot, max_sinks);
    if (!srv) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    srv->fill = fill;
    srv->arg = arg;
    if (!make_listener(srv, path, err, errlen)) {
        server_free(srv);
        return NULL;
    }
    /* probing is set before either thread runs: the serving one reads it. */
    srv->probing = dsn != NULL;
    int e = srv->probing
        ? pthread_create(&srv->probe_thread, NULL, probe_main, srv) : 0;
    if (e == 0 && (e = pthread_create(&srv->serve_thread, NULL, serve_main,
                                      srv)) != 0 && srv->probing) {
        atomic_store(&srv->stopping, true);
        if (write(srv->stop_pipe[1], "x", 1) == 1)
            pthread_join(srv->probe_thread, NULL);
    }
    if (e != 0) {
        unlink(path);
        server_free(srv);
        snprintf(err, errlen, "cannot start the status threads: %s", strerror(e));
        return NULL;
    }
    log_info("event=status_listening path=%s", path);
    return srv;
}

void status_stop(status_server *srv)
{
    if (!srv)
        return;
    atomic_store(&srv->stopping, true);
    if (write(srv->stop_pipe[1], "x", 1) != 1)
        log_error("event=status_stop_failed error=\"%s\"", strerror(errno));
    pthread_join(srv->serve_thread, NULL);
    if (srv->probing)
        pthread_join(srv->probe_thread, NULL);
    /* Only our own file: a newer daemon may have replaced it since. */
    struct stat st;
    if (stat(srv->path, &st) == 0 && st.st_dev == srv->dev &&
        st.st_ino == srv->ino)
        unlink(srv->path);
    server_free(srv);
}
