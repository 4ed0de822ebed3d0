/* pipeline: one replication stream end to end; see pipeline.h. */
#include "daemon/pipeline.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/backoff.h"
#include "common/log.h"
#include "daemon/source.h"
#include "daemon/spool.h"
#include "daemon/syncsink.h"

#define STATUS_INTERVAL_MS 10000   /* standby status update at least this often */
#define STATUS_MIN_GAP_MS 200      /* and when flush moved, at most this often */
/*
 * Per sink: bounds memory, gives batching. Five of these and Kafka's 16 MB
 * producer queue kept a catch-up under 64 MB where 8 MB queues and a
 * 32 MB producer queue reached 66.5 MB; throughput did not move.
 */
#define QUEUE_BYTES (4u << 20)
#define FRAMES_PER_TURN 4096       /* then look at signals and timers again */
#define BUSY_RETRY_MS 50           /* a turn this soon while the sinks push back */
/*
 * While catching up, the server sends a frame per change: read as each
 * arrives, every few changes cost this thread, and the workers it wakes,
 * a sleep and a wake-up. A pause once the socket runs dry lets a burst
 * gather instead; it delays nothing that was not already late.
 *
 * Over loopback TCP with the small receive window (source.c) the pause
 * is longer: in 6 ms the walsender fills the window and waits on it, so
 * its sends go out in large segments rather than one per change. In
 * bench/ beside 1 ms: Kafka catch-up 1.25 against 1.58 s on average over
 * six runs each, the PostgreSQL catch-up 1.24x to 1.90x native against
 * 0.97x to 1.20x, the walsender's CPU a quarter lower. Not over a Unix
 * socket, whose buffer counts each small message at its allocation's
 * size, so a few hundred fill it: there 6 ms cut the rate to a third.
 * Across a network it is not measured, so 1 ms there too.
 */
#define NAP_MS 1
#define WINDOW_NAP_MS 6

struct pipeline {
    const cfg *config;
    const cfg_source *settings;
    int wake_fd;
    char *spool_dir;          /* streamed transactions until they commit */
    char *hold_dir;           /* each service's stream during its copy */
    source *src;
    stream *st;
    fanout *fo;               /* a syncsink around each real sink, and workers */
    syncstate *sync;
    initsync *init;
    snap *created;            /* the new slot's snapshot, for the copy */
    bool made_again;          /* the slot was made again while running */
    backoff source_backoff;
    int64_t next_source_try;
    char source_error[1024];  /* the last failure, for status */
    int64_t source_error_time;
    int64_t last_status;
    lsn_t last_flush_sent;
    int64_t next_heartbeat;
    int64_t nap_until;        /* no read before, see NAP_MS */
    int64_t heard;            /* last frame, or last time not reading */
    bool pinged;              /* a keepalive asked for since `heard` */
    lsn_t text_until;         /* values in text until the flush passes it */
    bool copying;             /* a copy ran since the source started */
};

static bool make_dir(const char *path)
{
    if (mkdir(path, 0700) == 0 || errno == EEXIST)
        return true;
    log_error("event=state_dir_failed path=%s error=\"%s\"", path, strerror(errno));
    return false;
}

/* dir/name, or NULL when out of memory. */
static char *path_in(const char *dir, const char *name)
{
    char *path;
    return asprintf(&path, "%s/%s", dir, name) < 0 ? NULL : path;
}

/*
 * The slot is about to be made: the state of an earlier one stops
 * counting now (see syncstate_reset), the one open (made again while
 * running) keeps its tables but its sinks must forget their positions.
 */
static bool new_slot(void *arg, char *err, size_t errlen)
{
    pipeline *p = arg;
    if (!p->sync)
        return syncstate_reset(p->config, p->settings->slot, err, errlen);
    return syncstate_forget_all(p->sync, err, errlen);
}

pipeline *pipeline_new(const cfg *config, const cfg_source *settings,
                       const char *state_dir, int wake_fd)
{
    pipeline *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->config = config;
    p->settings = settings;
    p->wake_fd = wake_fd;
    backoff_init(&p->source_backoff, BACKOFF_MIN_MS, BACKOFF_MAX_MS);
    if (!make_dir(state_dir) ||
        !(p->spool_dir = path_in(state_dir, "spool")) ||
        !make_dir(p->spool_dir) ||
        !(p->hold_dir = path_in(state_dir, "hold")) ||
        !make_dir(p->hold_dir) || !(p->src = source_new(config, settings))) {
        pipeline_free(p);
        return NULL;
    }
    spool_clean_dir(p->spool_dir);
    source_on_new_slot(p->src, new_slot, p);
    return p;
}

void pipeline_free(pipeline *p)
{
    if (!p)
        return;
    pipeline_stop(p);
    snap_release(p->created);
    syncstate_free(p->sync);
    stream_free(p->st);
    fanout_free(p->fo);
    source_free(p->src);
    free(p->spool_dir);
    free(p->hold_dir);
    free(p);
}

/* ---- start ------------------------------------------------------------- */

/* Removes the hold spools of an earlier slot: they belong to its stream. */
static void clean_hold_dir(const char *dir)
{
    DIR *dh = opendir(dir);
    struct dirent *e;
    while (dh && (e = readdir(dh)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    if (dh)
        closedir(dh);
}

bool pipeline_prepare(pipeline *p, snap_stop_fn *stop, void *stop_arg,
                      int *retry_ms, char *err, size_t errlen)
{
    if (source_prepare(p->src, stop, stop_arg, err, errlen)) {
        backoff_reset(&p->source_backoff);
        return true;
    }
    *retry_ms = backoff_next(&p->source_backoff);
    return false;
}

/* A sink of service i (and its worker), wrapped for the initial sync. */
static bool add_sink(pipeline *p, size_t i, bool kafka)
{
    const cfg_service *svc = &p->config->services[i];
    sink *inner = sink_new(kafka ? SINK_KIND_KAFKA : SINK_KIND_POSTGRES,
                           p->config, svc);
    sink *s = inner ? syncsink_new(inner, p->sync, i) : NULL;
    return fanout_add(p->fo, s, kafka && svc->n_messages > 0);
}

static bool add_sinks(pipeline *p)
{
    const cfg *c = p->config;
    p->fo = fanout_new(c, p->wake_fd, QUEUE_BYTES);
    if (!p->fo)
        return false;
    for (size_t i = 0; i < c->n_services; i++) {
        const cfg_service *svc = &c->services[i];
        if ((svc->target_postgres && !add_sink(p, i, false)) ||
            (svc->target_kafka && !add_sink(p, i, true)))
            return false;
    }
    return true;
}

/*
 * A completed service's copy stays finished: a table given to it since
 * (refused, see mover_given_after_complete) would otherwise be copied
 * into a database whose writes are the service's own, and never
 * streamed. Before the sinks open, so none holds its stream for it.
 */
static bool keep_left_finished(pipeline *p, char *err, size_t errlen)
{
    for (size_t i = 0; i < p->config->n_services; i++)
        if (source_left(p->src, i) && !syncstate_finished(p->sync, i) &&
            !syncstate_set_finished(p->sync, i, true, err, errlen))
            return false;
    return true;
}

/* The stream's question about a FULL relation, asked on the source. */
static bool mark_primary_key(void *arg, sink_rel *rel, char *err,
                             size_t errlen)
{
    pipeline *p = arg;
    return source_mark_primary_key(p->src, rel, err, errlen);
}

/* The stream's question about a relation under an unowned name. */
static bool owner_by_oid(void *arg, uint32_t oid, source_owner *out,
                         char *err, size_t errlen)
{
    pipeline *p = arg;
    return source_owner_of(p->src, oid, out, err, errlen);
}

bool pipeline_open(pipeline *p)
{
    char err[1024];
    p->created = source_take_snapshot(p->src);
    if (p->created)
        clean_hold_dir(p->hold_dir);
    p->sync = syncstate_open(p->config, p->settings->slot, p->created != NULL,
                             err, sizeof err);
    if (!p->sync || !keep_left_finished(p, err, sizeof err)) {
        log_error("event=state_failed error=\"%s\"", err);
        return false;
    }
    if (!add_sinks(p))
        return false;
    p->st = stream_new(p->config, p->settings, p->fo, p->spool_dir);
    if (p->st && p->config->has_kafka)
        stream_set_pk_lookup(p->st, mark_primary_key, p);
    if (p->st)
        stream_set_owner_lookup(p->st, owner_by_oid, p);
    return p->st != NULL;
}

bool pipeline_starting(const pipeline *p)
{
    return fanout_starting(p->fo);
}

void pipeline_forbid_new_slot(pipeline *p)
{
    source_forbid_new_slot(p->src);
}

void pipeline_leave(pipeline *p, size_t svc)
{
    source_leave(p->src, svc);
}

bool pipeline_skip_copy(pipeline *p)
{
    char err[1024];
    const cfg *c = p->config;
    for (size_t i = 0; i < c->n_services; i++) {
        if (syncstate_finished(p->sync, i))
            continue;
        for (size_t j = 0; j < c->services[i].n_owned; j++)
            if (!syncstate_set_table(p->sync, i, j, SYNC_DONE, 0, err,
                                     sizeof err))
                goto failed;
        if (!syncstate_set_finished(p->sync, i, true, err, sizeof err))
            goto failed;
    }
    return true;
failed:
    log_error("event=state_failed error=\"%s\"", err);
    return false;
}

/* initsync_held_fn: every Kafka sink of service svc settled. */
static bool kafka_held(void *arg, size_t svc)
{
    pipeline *p = arg;
    for (size_t i = 0; i < fanout_size(p->fo); i++) {
        const sink *s = fanout_sink(p->fo, i);
        if (s->service == &p->config->services[svc] &&
            s->ops->id == SINK_KIND_KAFKA && !syncsink_settled(s))
            return false;
    }
    return true;
}

bool pipeline_start_copy(pipeline *p)
{
    p->init = initsync_start(p->config, p->settings, p->sync, p->created,
                             kafka_held, p);
    p->created = NULL;
    return p->init != NULL;
}

/* ---- resync ------------------------------------------------------------ */

/* Some sink of service svc still replays what it held. */
static bool catching_up(const pipeline *p, size_t svc)
{
    for (size_t i = 0; i < fanout_size(p->fo); i++) {
        const sink *s = fanout_sink(p->fo, i);
        if (s->service == &p->config->services[svc] &&
            syncsink_get_phase(s) != SYNCSINK_STREAMING)
            return true;
    }
    return false;
}

bool pipeline_resync(pipeline *p, size_t svc, int table, char *err,
                     size_t errlen)
{
    const cfg_service *s = &p->config->services[svc];
    if (!p->init || !syncstate_finished(p->sync, svc) || catching_up(p, svc))
        return snprintf(err, errlen, "%s is being copied: resync it once it "
                        "streams", s->name), false;
    bool ok = true;
    for (size_t j = 0; ok && j < s->n_owned; j++)
        if (table < 0 || (size_t)table == j)
            ok = syncstate_set_table(p->sync, svc, j, SYNC_PENDING, 0, err,
                                     errlen);
    /* Even then: what is pending in memory gets copied. */
    if (!initsync_again(p->init, svc))
        return snprintf(err, errlen, "cannot start the copy thread"), false;
    if (ok)
        log_info("event=resync_started service=%s table=\"%s%s%s\"",
                 s->name, table < 0 ? "*" : s->owned[table].schema,
                 table < 0 ? "" : ".", table < 0 ? "" : s->owned[table].name);
    return ok;
}

/* ---- the loop ---------------------------------------------------------- */

/*
 * Retried with backoff even for an invalidated slot: an operator may mend
 * the source meanwhile (and a slot stays invalidated, so nothing streams).
 */
static void source_failed(pipeline *p, const char *err)
{
    int wait = backoff_next(&p->source_backoff);
    const char *lost = source_slot_lost(p->src);
    if (lost)
        log_error("event=slot_invalidated slot=%s reason=\"%s\" retry_in=%dms "
                  "error=\"%s\"", p->settings->slot, lost, wait, err);
    else
        log_error("event=source_failed error=\"%s\" retry_in=%dms", err, wait);
    snprintf(p->source_error, sizeof p->source_error, "%s", err);
    p->source_error_time = (int64_t)time(NULL);
    source_stop(p->src);
    p->next_source_try = clock_ms() + wait;
}

bool pipeline_slot_made_again(const pipeline *p)
{
    return p->made_again;
}

/*
 * Someone dropped the slot while cleave ran: changes were lost, which
 * status says too (the source's last_error), not the log alone.
 */
void pipeline_say_slot_made_again(pipeline *p)
{
    snprintf(p->source_error, sizeof p->source_error, "slot %s "
             "disappeared while cleave was running and was made again; "
             "changes made meanwhile are not in the targets: `cleave "
             "resync` each service", p->settings->slot);
    p->source_error_time = (int64_t)time(NULL);
}

bool pipeline_try_start(pipeline *p, snap_stop_fn *stop, void *stop_arg)
{
    char err[1024] = "";
    if (source_streaming(p->src) || clock_ms() < p->next_source_try)
        return false;
    source_allow_binary(p->src, stream_flush_lsn(p->st) >= p->text_until);
    if (!source_prepare(p->src, stop, stop_arg, err, sizeof err) ||
        !stream_restart(p->st, source_proto_version(p->src)) ||
        !source_start(p->src, err, sizeof err)) {
        source_failed(p, err[0] ? err : "out of memory");
        return false;
    }
    stream_set_binfmt(p->st, source_binfmt(p->src));
    p->copying = false;
    snap *late = source_take_snapshot(p->src);
    if (late) {
        pipeline_say_slot_made_again(p);
        log_error("event=slot_recreated slot=%s error=\"%s\"",
                  p->settings->slot, p->source_error);
        snap_release(late);
        p->made_again = true;
    }
    backoff_reset(&p->source_backoff);
    p->last_status = 0;
    p->heard = clock_ms();
    p->pinged = false;
    return true;
}

static void send_status(pipeline *p, bool force)
{
    /*
     * Nor on a slot made again, before the restart: the sinks' positions
     * are still the earlier slot's, and a flush position above the new
     * slot's (a source restored, its LSNs lower) would make the server
     * skip every transaction below it.
     */
    if (!source_streaming(p->src) || p->made_again)
        return;
    lsn_t flush = stream_flush_lsn(p->st);
    int64_t now = clock_ms();
    bool due = now - p->last_status >= STATUS_INTERVAL_MS ||
               (flush != p->last_flush_sent &&
                now - p->last_status >= STATUS_MIN_GAP_MS);
    if (!force && !due)
        return;
    if (!source_send_status(p->src, stream_received(p->st), flush, false)) {
        source_failed(p, "cannot send a status update");
        return;
    }
    if (flush != p->last_flush_sent) {
        char lsn[LSN_STRLEN];
        log_debug("event=feedback flush_lsn=%s", lsn_format(flush, lsn));
    }
    p->last_status = now;
    p->last_flush_sent = flush;
}

/*
 * A relation the binary stream was not checked for: start again at once
 * from what the sinks hold, in text until the flush passes this point
 * (its Relation message may come again from older WAL).
 */
static void restart_in_text(pipeline *p, const char *why)
{
    log_info("event=values_text reason=\"%s\"", why);
    p->text_until = stream_received(p->st);
    source_stop(p->src);
    p->next_source_try = 0;
}

static bool napping(const pipeline *p)
{
    return p->nap_until != 0 && clock_ms() < p->nap_until;
}

/* Reads frames until none is ready, the sinks push back, or a turn ends. */
static void read_some(pipeline *p)
{
    char err[1024];
    for (int n = 0; n < FRAMES_PER_TURN && !stream_busy(p->st); n++) {
        const uint8_t *buf;
        size_t len;
        err[0] = '\0';
        int r = source_read(p->src, &buf, &len, err, sizeof err);
        if (r == 0) {
            if (stream_catching_up(p->st))
                p->nap_until = clock_ms() + (source_small_window(p->src)
                                             ? WINDOW_NAP_MS : NAP_MS);
            return;
        }
        bool reply = false;
        if (r < 0 || !stream_frame(p->st, buf, len, &reply, err, sizeof err)) {
            if (r > 0 && stream_wants_text(p->st))
                restart_in_text(p, err);
            else
                source_failed(p, err);
            return;
        }
        p->heard = clock_ms();
        p->pinged = false;
        if (reply)
            send_status(p, true);
    }
}

/*
 * As PostgreSQL's walreceiver does (wal_receiver_timeout): a stream
 * silent while read, past half the timeout, is asked for a keepalive;
 * past all of it, the connection is taken for lost. TCP alone would take
 * many minutes to say so about a network gone quiet, every service
 * stalled meanwhile. Time spent not reading (the sinks pushing back, a
 * nap) does not count.
 */
static void check_silence(pipeline *p)
{
    int timeout = p->settings->receive_timeout_ms;
    int64_t now = clock_ms();
    if (timeout <= 0 || !source_streaming(p->src) || stream_busy(p->st) ||
        napping(p)) {
        p->heard = now;
        p->pinged = false;
        return;
    }
    if (now - p->heard >= timeout) {
        char err[128];
        snprintf(err, sizeof err, "no message from the source in %d ms "
                 "(source.receive_timeout)", timeout);
        source_failed(p, err);
    } else if (!p->pinged && now - p->heard >= timeout / 2) {
        p->pinged = true;
        if (!source_send_status(p->src, stream_received(p->st),
                                stream_flush_lsn(p->st), true))
            source_failed(p, "cannot send a status update");
    }
}

static void read_frames(pipeline *p)
{
    bool hold = stream_catching_up(p->st);
    if (hold)
        fanout_hold_wakes(p->fo, true);
    read_some(p);
    if (hold)
        fanout_hold_wakes(p->fo, false);
}

int pipeline_fd(const pipeline *p)
{
    return source_streaming(p->src) && !stream_busy(p->st) && !napping(p)
               ? source_fd(p->src)
               : -1;
}

void pipeline_wake(pipeline *p)
{
    if (stream_needs_restart(p->st) && source_streaming(p->src)) {
        /* A sink came back: replay the slot from what it holds. */
        log_info("event=replay reason=\"a sink reopened\"");
        source_stop(p->src);
        p->next_source_try = 0;
    }
}

static void heartbeat(pipeline *p)
{
    int interval = p->settings->heartbeat_interval_ms;
    if (interval <= 0 || clock_ms() < p->next_heartbeat)
        return;
    char err[1024];
    p->next_heartbeat = clock_ms() + interval;
    if (!source_heartbeat(p->src, err, sizeof err))
        log_warning("event=heartbeat_failed error=\"%s\"", err);
}

/* Every service that has not left is copied and streams. */
static bool all_streaming(const pipeline *p)
{
    for (size_t i = 0; i < p->config->n_services; i++)
        if (!source_left(p->src, i) &&
            (!syncstate_finished(p->sync, i) || catching_up(p, i)))
            return false;
    return true;
}

/*
 * The stream went in text because a target lacked tables the initial
 * copy was to make: once every service streams, start again, checked.
 */
static void binary_after_copy(pipeline *p)
{
    if (!source_streaming(p->src) || !source_binary_missing(p->src))
        return;
    if (!all_streaming(p)) {
        p->copying = true;
    } else if (p->copying) {
        log_info("event=values_recheck reason=\"the initial copy is done\"");
        source_stop(p->src);
        p->next_source_try = 0;
    }
}

void pipeline_turn(pipeline *p)
{
    char err[1024] = "";
    if (stream_busy(p->st) && !stream_work(p->st, err, sizeof err))
        source_failed(p, err);
    if (source_streaming(p->src) && !stream_busy(p->st) && !napping(p))
        read_frames(p);
    check_silence(p);
    send_status(p, false);
    heartbeat(p);
    binary_after_copy(p);
}

int64_t pipeline_deadline(const pipeline *p, int64_t by)
{
    int64_t t = by;
    if (!source_streaming(p->src) && p->next_source_try < t)
        t = p->next_source_try;
    if (p->settings->heartbeat_interval_ms > 0 && p->next_heartbeat < t)
        t = p->next_heartbeat;
    if (stream_busy(p->st) && clock_ms() + BUSY_RETRY_MS < t)
        t = clock_ms() + BUSY_RETRY_MS;
    if (napping(p) && p->nap_until < t)
        t = p->nap_until;
    int timeout = p->settings->receive_timeout_ms;
    if (timeout > 0 && source_streaming(p->src) && !stream_busy(p->st) &&
        !napping(p)) {
        int64_t due = p->heard + (p->pinged ? timeout : timeout / 2);
        if (due < t)
            t = due;
    }
    return t;
}

void pipeline_stop(pipeline *p)
{
    if (!p->src)
        return;
    initsync_stop(p->init);
    p->init = NULL;
    if (p->st)
        stream_restart(p->st, source_proto_version(p->src));
    fanout_stop(p->fo);
    if (p->st && source_streaming(p->src) && !p->made_again) {
        lsn_t flush = stream_flush_lsn(p->st);
        char lsn[LSN_STRLEN];
        source_send_status(p->src, stream_received(p->st), flush, false);
        log_info("event=stopped flush_lsn=%s", lsn_format(flush, lsn));
    }
    source_stop(p->src);
}

/* ---- figures ----------------------------------------------------------- */

/* The index of service svc's PostgreSQL sink in the fan-out, or -1. */
static int postgres_sink(const pipeline *p, size_t svc)
{
    for (size_t i = 0; i < fanout_size(p->fo); i++) {
        const sink *s = fanout_sink(p->fo, i);
        if (s->service == &p->config->services[svc] &&
            s->ops->id == SINK_KIND_POSTGRES)
            return (int)i;
    }
    return -1;
}

bool pipeline_mark_applied(const pipeline *p, size_t svc, const char *token)
{
    const char *seen;
    lsn_t at;
    int i = postgres_sink(p, svc);
    if (!p->st || i < 0 || !stream_last_mark(p->st, &seen, &at) ||
        strcmp(seen, token) != 0)
        return false;
    bool pending;
    if (stream_sink_position(p->st, (size_t)i, &pending) >= at)
        return true;
    /* The sink reads its durable position when due; the pause is now. */
    if (pending)
        fanout_want_durable(p->fo, (size_t)i);
    return false;
}

const cfg_source *pipeline_settings(const pipeline *p)
{
    return p->settings;
}

bool pipeline_streaming(const pipeline *p)
{
    return source_streaming(p->src);
}

const fanout *pipeline_fanout(const pipeline *p)
{
    return p->fo;
}

const stream *pipeline_stream(const pipeline *p)
{
    return p->st;
}

syncstate *pipeline_syncstate(const pipeline *p)
{
    return p->sync;
}

const initsync *pipeline_initsync(const pipeline *p)
{
    return p->init;
}

lsn_t pipeline_flush_sent(const pipeline *p)
{
    return p->last_flush_sent;
}

const char *pipeline_source_error(const pipeline *p, int64_t *when)
{
    *when = p->source_error_time;
    return p->source_error;
}
