/* monitor: the runner's figures for the status server; see monitor.h. */
#include "daemon/monitor.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon/syncsink.h"

#define RATE_SAMPLES 11          /* one a second: the rate over 10 s */

typedef struct rate {
    uint64_t rows[RATE_SAMPLES];
    double at[RATE_SAMPLES];
    size_t next, count;
} rate;

struct monitor {
    const cfg *config;
    const fanout *fo;
    size_t n;
    syncstate *ss;
    _Atomic(const initsync *) is;
    atomic_bool connected;
    atomic_bool binary;           /* the stream's values, binary or text */
    atomic_uint_least64_t received, flushed;
    atomic_uint_least64_t *pos;
    atomic_bool *pending;
    double started, last_sample;
    pthread_mutex_t mu;          /* the rate samples, the errors below */
    rate *rates;
    char source_error[sizeof ((status_snapshot *)0)->last_error];
    int64_t source_error_time;
    char **refused;              /* per service: why, or NULL */
    int64_t *refused_time;       /* Unix seconds */
};

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

monitor *monitor_new(const cfg *config, const fanout *fo, syncstate *ss)
{
    size_t n = fanout_size(fo);
    monitor *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    size_t k = n ? n : 1;
    m->pos = calloc(k, sizeof *m->pos);
    m->pending = calloc(k, sizeof *m->pending);
    m->rates = calloc(k, sizeof *m->rates);
    size_t nsvc = config->n_services ? config->n_services : 1;
    m->refused = calloc(nsvc, sizeof *m->refused);
    m->refused_time = calloc(nsvc, sizeof *m->refused_time);
    if (!m->pos || !m->pending || !m->rates || !m->refused ||
        !m->refused_time) {
        monitor_free(m);
        return NULL;
    }
    m->config = config;
    m->fo = fo;
    m->n = n;
    m->ss = ss;
    m->started = mono_s();
    pthread_mutex_init(&m->mu, NULL);
    return m;
}

void monitor_free(monitor *m)
{
    if (!m)
        return;
    if (m->config)   /* set with the mutex, once every allocation worked */
        pthread_mutex_destroy(&m->mu);
    for (size_t i = 0; m->refused && m->config && i < m->config->n_services;
         i++)
        free(m->refused[i]);
    free(m->refused);
    free(m->refused_time);
    free(m->pos);
    free(m->pending);
    free(m->rates);
    free(m);
}

void monitor_set_initsync(monitor *m, const initsync *is)
{
    atomic_store(&m->is, is);
}

void monitor_refuse(monitor *m, size_t svc, const char *why)
{
    char *copy = strdup(why);
    pthread_mutex_lock(&m->mu);
    free(m->refused[svc]);
    m->refused[svc] = copy;
    m->refused_time[svc] = (int64_t)time(NULL);
    pthread_mutex_unlock(&m->mu);
}

/* Once a second: each sink's rows, for the rate over the last 10 s. */
static void sample_rates(monitor *m, double now)
{
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->n; i++) {
        rate *r = &m->rates[i];
        r->rows[r->next] = atomic_load_explicit(&fanout_sink(m->fo, i)->rows_applied,
                                                memory_order_relaxed);
        r->at[r->next] = now;
        r->next = (r->next + 1) % RATE_SAMPLES;
        if (r->count < RATE_SAMPLES)
            r->count++;
    }
    pthread_mutex_unlock(&m->mu);
}

void monitor_publish(monitor *m, bool connected, const stream *st,
                     lsn_t flushed)
{
    atomic_store(&m->connected, connected);
    atomic_store(&m->flushed, flushed);
    if (st) {
        atomic_store(&m->binary, stream_binary(st));
        atomic_store(&m->received, stream_received(st));
        for (size_t i = 0; i < m->n; i++) {
            bool pending;
            atomic_store(&m->pos[i], stream_sink_position(st, i, &pending));
            atomic_store(&m->pending[i], pending);
        }
    }
    double now = mono_s();
    if (now - m->last_sample >= 1.0) {
        m->last_sample = now;
        sample_rates(m, now);
    }
}

void monitor_publish_source_error(monitor *m, const char *err, int64_t when)
{
    /* Only the loop writes: reading without the lock is safe here. */
    if (when == m->source_error_time &&
        strncmp(err, m->source_error, sizeof m->source_error) == 0)
        return;
    pthread_mutex_lock(&m->mu);
    snprintf(m->source_error, sizeof m->source_error, "%s", err);
    m->source_error_time = when;
    pthread_mutex_unlock(&m->mu);
}

static double rows_per_second(monitor *m, size_t i)
{
    pthread_mutex_lock(&m->mu);
    rate *r = &m->rates[i];
    double per_s = 0;
    if (r->count >= 2) {
        size_t last = (r->next + RATE_SAMPLES - 1) % RATE_SAMPLES;
        size_t first = (r->next + RATE_SAMPLES - r->count) % RATE_SAMPLES;
        double secs = r->at[last] - r->at[first];
        if (secs > 0)
            per_s = (double)(r->rows[last] - r->rows[first]) / secs;
    }
    pthread_mutex_unlock(&m->mu);
    return per_s;
}

static size_t service_index(monitor *m, size_t i)
{
    return (size_t)(fanout_sink(m->fo, i)->service - m->config->services);
}

/* The service's refusal, if it is refused: it stands above any error. */
static bool refusal(monitor *m, size_t svc, char *buf, size_t len,
                    int64_t *when)
{
    pthread_mutex_lock(&m->mu);
    bool refused = m->refused[svc] != NULL;
    if (refused) {
        snprintf(buf, len, "%s", m->refused[svc]);
        *when = m->refused_time[svc];
    }
    pthread_mutex_unlock(&m->mu);
    return refused;
}

/*
 * The sink's last error: its service's refusal, else its worker's or its
 * service's initial sync's, whichever came last; true while one stands.
 */
static bool last_error(monitor *m, size_t i, const fanout_figures *f,
                       char *buf, size_t len, int64_t *when,
                       uint64_t *failures)
{
    char sync_error[STATUS_ERROR_MAX];
    int64_t sync_when;
    uint64_t sync_failures;
    bool syncing = initsync_last_error(atomic_load(&m->is), service_index(m, i),
                                       sync_error, sizeof sync_error,
                                       &sync_when, &sync_failures);
    snprintf(buf, len, "%s", f->last_error);
    *when = f->last_error_time;
    *failures = f->failures + sync_failures;
    if (sync_error[0] && (syncing || sync_when >= *when)) {
        snprintf(buf, len, "%s", sync_error);
        *when = sync_when;
    }
    bool refused = refusal(m, service_index(m, i), buf, len, when);
    return refused || syncing || f->failed;
}

/*
 * The sink's phase; a service set to copy again (a resync) is in its
 * initial copy from that moment, before its sink's thread holds.
 */
static const char *phase_of(monitor *m, size_t i)
{
    syncsink_phase ph = syncsink_get_phase(fanout_sink(m->fo, i));
    if (ph == SYNCSINK_STREAMING &&
        !syncstate_finished(m->ss, service_index(m, i)))
        ph = SYNCSINK_INITIAL_COPY;
    return syncsink_phase_name(ph);
}

static const char *state_of(monitor *m, size_t i, const fanout_figures *f)
{
    char why[STATUS_ERROR_MAX];
    int64_t when;
    uint64_t failures;
    if (last_error(m, i, f, why, sizeof why, &when, &failures))
        return "error";
    return phase_of(m, i);
}

static void copy_progress(monitor *m, size_t i, status_sink *out)
{
    const cfg_service *svc = fanout_sink(m->fo, i)->service;
    size_t si = service_index(m, i);
    out->copy_tables_total = (uint32_t)svc->n_owned;
    for (size_t j = 0; j < svc->n_owned; j++)
        out->copy_tables_done += syncstate_table(m->ss, si, j, NULL) == SYNC_DONE;
    out->copy_rows = initsync_rows(atomic_load(&m->is), si);
}

static void fill_sink(monitor *m, size_t i, lsn_t received, status_sink *out)
{
    sink *s = fanout_sink(m->fo, i);
    fanout_figures f;
    fanout_figures_of(m->fo, i, &f);
    memset(out, 0, sizeof *out);
    snprintf(out->service, sizeof out->service, "%s", s->service->name);
    snprintf(out->kind, sizeof out->kind, "%s", s->ops->kind);
    bool failing = last_error(m, i, &f, out->last_error, sizeof out->last_error,
                              &out->last_error_time, &out->errors);
    snprintf(out->state, sizeof out->state, "%s", failing ? "error"
             : phase_of(m, i));
    out->applied_lsn = atomic_load(&m->pos[i]);
    bool pending = atomic_load(&m->pending[i]);
    out->lag_bytes = pending && received > out->applied_lsn
                         ? received - out->applied_lsn : 0;
    int64_t commit = f.commit_time;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_us = (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
    out->lag_seconds = pending && commit > 0 && now_us > commit
                           ? (double)(now_us - commit) / 1e6 : 0;
    out->rows_applied = atomic_load(&s->rows_applied);
    out->txns_applied = atomic_load(&s->txns_applied);
    out->rows_per_second = rows_per_second(m, i);
    if (strcmp(out->state, "initial_copy") == 0)
        copy_progress(m, i, out);
}

void monitor_fill(void *arg, status_snapshot *out)
{
    monitor *m = arg;
    snprintf(out->name, sizeof out->name, "%s", m->config->name);
    out->version = CLEAVE_VERSION;
    out->pid = (int)getpid();
    out->uptime_s = mono_s() - m->started;
    snprintf(out->slot, sizeof out->slot, "%s", m->config->source.slot);
    out->connected = atomic_load(&m->connected);
    out->binary_values = atomic_load(&m->binary);
    out->received_lsn = atomic_load(&m->received);
    out->flushed_lsn = atomic_load(&m->flushed);
    out->retained_wal_bytes = -1;
    pthread_mutex_lock(&m->mu);
    memcpy(out->last_error, m->source_error, sizeof out->last_error);
    out->last_error_time = m->source_error_time;
    pthread_mutex_unlock(&m->mu);
    size_t n = m->n < out->nsinks ? m->n : out->nsinks;
    for (size_t i = 0; i < n; i++)
        fill_sink(m, i, out->received_lsn, &out->sinks[i]);
    out->nsinks = n;
}

static void human_bytes(uint64_t b, char *buf, size_t len)
{
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB"};
    double v = (double)b;
    size_t u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

void monitor_summary(monitor *m, char *buf, size_t len)
{
    size_t streaming = 0, errors = 0, copying = 0;
    uint64_t lag = 0;
    lsn_t received = atomic_load(&m->received);
    for (size_t i = 0; i < m->n; i++) {
        fanout_figures f;
        fanout_figures_of(m->fo, i, &f);
        const char *st = state_of(m, i, &f);
        streaming += strcmp(st, "streaming") == 0;
        errors += strcmp(st, "error") == 0;
        copying += strcmp(st, "initial_copy") == 0;
        lsn_t pos = atomic_load(&m->pos[i]);
        if (atomic_load(&m->pending[i]) && received > pos && received - pos > lag)
            lag = received - pos;
    }
    char lag_text[32];
    human_bytes(lag, lag_text, sizeof lag_text);
    snprintf(buf, len, "%s; %zu of %zu sinks streaming, %zu copying, %zu in "
             "error; lag %s", atomic_load(&m->connected) ? "connected"
                                                         : "source down",
             streaming, m->n, copying, errors, lag_text);
}
