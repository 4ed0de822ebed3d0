/* syncsink: hold, replay, then pass through; see syncsink.h. */
#include "daemon/syncsink.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "sinks/evlog.h"

/* During a replay, how often the real sink's position is read (ms). */
#define REPLAY_FLUSH_MS 1000

typedef struct table_filter {
    sync_table_state state;
    lsn_t lsn;
} table_filter;

typedef struct syncsink {
    sink *inner;
    syncstate *ss;
    size_t svc;
    char *path;               /* the spool */
    evlog *log;               /* open while it exists */
    bool holding;             /* appending to the spool */
    bool in_txn;              /* between BEGIN and COMMIT: no switching */
    bool spooled;             /* inside a held transaction already spooled */
    bool replay_due;          /* the spool is not in the real sink yet */
    _Atomic int phase;
    atomic_bool settled;      /* see syncsink_settled */
    sink_ops ops;             /* syncsink_ops under the real sink's kind */
    /* The real sink's side. */
    lsn_t inner_durable;      /* what it holds durably */
    lsn_t inner_last;         /* end of the last transaction it was given */
    bool inner_began;         /* BEGIN passed on for the current one */
    sink_event begin;         /* the current BEGIN, passed on lazily */
    lsn_t last_end;           /* end of the last transaction seen */
    /* The tables' states, re-read when syncstate's generation moves. */
    table_filter *filters;
    uint64_t filters_gen;
    bool filters_read;
} syncsink;

static syncsink *impl(const sink *s)
{
    return s->impl;
}

static void set_phase(syncsink *ss, syncsink_phase phase)
{
    if (atomic_exchange(&ss->phase, (int)phase) != (int)phase)
        log_info("event=service_state service=%s state=%s sink=%s",
                 ss->inner->service->name, syncsink_phase_name(phase),
                 ss->inner->ops->kind);
}

/* Passes the inner sink's failure up as ours. */
static bool inner_failed(sink *s)
{
    syncsink *ss = impl(s);
    snprintf(s->error, sizeof s->error, "%s", ss->inner->error);
    s->error_lsn = ss->inner->error_lsn;
    return false;
}

static void mirror_counters(sink *s)
{
    sink *in = impl(s)->inner;
    atomic_store(&s->rows_applied, atomic_load(&in->rows_applied));
    atomic_store(&s->txns_applied, atomic_load(&in->txns_applied));
    atomic_store(&s->conflicts, atomic_load(&in->conflicts));
}

static void read_filters(syncsink *ss)
{
    uint64_t gen = syncstate_generation(ss->ss);
    if (ss->filters_read && gen == ss->filters_gen)
        return;
    const cfg_service *svc = &ss->inner->config->services[ss->svc];
    for (size_t j = 0; j < svc->n_owned; j++)
        ss->filters[j].state = syncstate_table(ss->ss, ss->svc, j,
                                               &ss->filters[j].lsn);
    ss->filters_gen = gen;
    ss->filters_read = true;
}

/* Whether the real sink should see this change to rel. */
static bool wanted(syncsink *ss, const sink_rel *rel, lsn_t commit_lsn)
{
    int j = syncstate_find(ss->ss, ss->svc, rel->schema, rel->name);
    if (j < 0)
        return false;
    read_filters(ss);
    const table_filter *f = &ss->filters[j];
    return f->state == SYNC_DONE && commit_lsn >= f->lsn;
}

/* ---- the real sink ----------------------------------------------------- */

static bool inner_change(sink *s, const sink_event *ev)
{
    syncsink *ss = impl(s);
    sink_event *subset = NULL;
    if (ev->op == SINK_TRUNCATE) {
        sink_rel *keep[ev->ntruncate ? ev->ntruncate : 1];
        uint32_t k = 0;
        for (uint32_t i = 0; i < ev->ntruncate; i++)
            if (wanted(ss, ev->truncate_rels[i], ev->commit_lsn))
                keep[k++] = ev->truncate_rels[i];
        if (k == 0)
            return true;
        if (k < ev->ntruncate) {
            /* Its CASCADE would reach the tables left out. */
            subset = sink_event_at(
                sink_event_truncate(ev->commit_lsn, SINK_TRUNCATE_ROWS,
                                    keep, k), ev->lsn);
            if (!subset)
                return sink_fail(s, ev->commit_lsn, "out of memory");
            ev = subset;
        }
    } else if (ev->op != SINK_MESSAGE &&
               !wanted(ss, ev->rel, ev->commit_lsn)) {
        /* (A message belongs to no table: every one held is passed on.) */
        return true;
    }
    bool ok = ss->inner_began || ss->inner->ops->begin(ss->inner, &ss->begin);
    ss->inner_began = true;
    ok = ok && ss->inner->ops->change(ss->inner, ev);
    sink_event_free(subset);
    return ok || inner_failed(s);
}

static bool inner_commit(sink *s, const sink_event *ev, bool more)
{
    syncsink *ss = impl(s);
    if (ev->end_lsn > ss->last_end)
        ss->last_end = ev->end_lsn;
    if (!ss->inner_began)
        return true;
    ss->inner_began = false;
    if (!ss->inner->ops->commit(ss->inner, ev, more))
        return inner_failed(s);
    ss->inner_last = ev->end_lsn;
    return true;
}

static bool inner_flush(sink *s, bool drain)
{
    syncsink *ss = impl(s);
    const sink_ops *ops = ss->inner->ops;
    bool ok = drain && ops->drain ? ops->drain(ss->inner, &ss->inner_durable)
                                  : ops->flush(ss->inner, &ss->inner_durable);
    if (!ok)
        return inner_failed(s);
    mirror_counters(s);
    return true;
}

/* ---- the spool ----------------------------------------------------------- */

static bool open_log(sink *s, lsn_t start)
{
    syncsink *ss = impl(s);
    char err[512];
    ss->log = evlog_open(ss->path, start, err, sizeof err);
    return ss->log || sink_fail(s, 0, "%s", err);
}

/* One spooled event into the real sink; ev is freed. */
static bool replay_event(sink *s, sink_event *ev, bool *skip)
{
    syncsink *ss = impl(s);
    bool ok = true;
    switch (ev->op) {
    case SINK_BEGIN:
        /* Spooled after the real sink's position: not held there yet. */
        *skip = ev->commit_lsn < ss->inner_durable;
        ss->begin = *ev;
        ss->begin.next = NULL;
        ss->inner_began = false;
        break;
    case SINK_COMMIT:
        ok = *skip || inner_commit(s, ev, true);
        break;
    case SINK_ROLLBACK:
        break;
    default:
        ok = *skip || inner_change(s, ev);
        break;
    }
    sink_event_free(ev);
    return ok;
}

/* Applies the whole spool to the real sink, in commit order. */
static bool replay(sink *s)
{
    syncsink *ss = impl(s);
    char err[512];
    set_phase(ss, SYNCSINK_CATCHING_UP);
    evlog_reader *r = evlog_reader_open(ss->path, err, sizeof err);
    if (!r)
        return sink_fail(s, 0, "%s", err);
    bool skip = false, ok = true;
    int64_t last_flush = clock_ms();
    sink_event *ev;
    int got;
    while (ok && (got = evlog_reader_next(r, &ev, err, sizeof err)) > 0) {
        bool commit = ev->op == SINK_COMMIT;
        ok = replay_event(s, ev, &skip);
        if (ok && commit && clock_ms() - last_flush >= REPLAY_FLUSH_MS) {
            ok = inner_flush(s, false);
            last_flush = clock_ms();
        }
    }
    evlog_reader_close(r);
    if (ok && got < 0)
        ok = sink_fail(s, 0, "replaying %s: %s", ss->path, err);
    return ok && inner_flush(s, false);
}

/*
 * A resync made the service copy again while this sink streamed: from
 * the next transaction on, its stream is held as during the first copy.
 * The real sink's open batch is committed first (the copy empties its
 * tables and must not wait on it); the spool starts after what the real
 * sink was given, and until that is durable there, durable_now says no
 * more than the real sink holds.
 */
static bool maybe_hold(sink *s)
{
    syncsink *ss = impl(s);
    if (ss->in_txn || ss->holding || syncstate_finished(ss->ss, ss->svc))
        return true;
    if (!inner_flush(s, false) || (!ss->log && !open_log(s, ss->inner_last)))
        return false;
    ss->holding = true;
    ss->filters_read = false;
    set_phase(ss, SYNCSINK_INITIAL_COPY);
    return true;
}

/* The copy finished: replay what was held, then let the stream through. */
static bool maybe_go_live(sink *s)
{
    syncsink *ss = impl(s);
    if (ss->in_txn)
        return true;
    if (ss->holding) {
        if (!syncstate_finished(ss->ss, ss->svc))
            return true;
        if (!evlog_sync(ss->log))
            return sink_fail(s, 0, "cannot write %s: %s", ss->path,
                             evlog_error(ss->log));
        ss->holding = false;
        ss->filters_read = false;
        ss->replay_due = true;
    }
    /* Also after a reopen: a failed or interrupted replay starts again. */
    if (ss->replay_due) {
        if (!replay(s))
            return false;
        ss->replay_due = false;
    }
    /*
     * Gone once the real sink holds all it was given in the replay: the
     * rest was nothing for it (held changes older than its tables'
     * copies), and may be all of the spool's tail when no later change
     * of this service comes to pass the real sink along.
     */
    if (ss->log && ss->inner_durable >= ss->inner_last) {
        if (!evlog_remove(ss->log))
            log_warning("event=spool_remove_failed path=%s error=\"%s\"",
                        ss->path, strerror(errno));
        ss->log = NULL;
    }
    if (!ss->log)
        set_phase(ss, SYNCSINK_STREAMING);
    return true;
}

/*
 * Everything up to the returned LSN is held: in the spool (synced), in
 * the real sink (durable), or was nothing for either.
 */
static lsn_t durable_now(const syncsink *ss)
{
    lsn_t logged = ss->log ? evlog_durable(ss->log) : 0;
    if (ss->holding) {
        lsn_t held = ss->log && logged < evlog_last_end(ss->log) ? logged
                                                                 : ss->last_end;
        /* Held since a resync: the real sink's part is not in the spool. */
        return ss->inner_durable < ss->inner_last && ss->inner_durable < held
                   ? ss->inner_durable : held;
    }
    /* A resync's spool: the real sink's part before it is not in it. */
    if (ss->log && ss->inner_durable < evlog_start(ss->log))
        return ss->inner_durable;
    if (ss->inner_durable < ss->inner_last || (ss->log && ss->inner_durable <
                                                evlog_last_end(ss->log)))
        return ss->inner_durable > logged ? ss->inner_durable : logged;
    return ss->last_end;
}

static void publish_settled(syncsink *ss)
{
    atomic_store(&ss->settled,
                 ss->holding && ss->inner_durable >= ss->inner_last);
}

/* ---- sink_ops ---------------------------------------------------------- */

/*
 * A resync's spool starts where the real sink's part ended; when the real
 * sink lost some of that part (its target crashed before flushing it, a
 * Kafka message was never acknowledged), durable_now never said more, so
 * the slot still has the rest: while holding, the spool starts again from
 * what the real sink holds; after the copy it goes, and the stream brings
 * its transactions again (the tables' copy positions filter them as the
 * replay would).
 */
static bool hold_from_real_sink(sink *s)
{
    syncsink *ss = impl(s);
    if (!ss->log || ss->inner_durable >= evlog_start(ss->log))
        return true;
    log_warning("event=hold_restarted service=%s sink=%s reason=\"the target "
                "lost changes given to it before the resync's hold began\"",
                ss->inner->service->name, ss->inner->ops->kind);
    if (!evlog_remove(ss->log))
        return sink_fail(s, 0, "cannot remove %s: %s", ss->path,
                         strerror(errno));
    ss->log = NULL;
    return !ss->holding || open_log(s, ss->inner_durable);
}

static bool ss_open(sink *s, lsn_t *durable)
{
    syncsink *ss = impl(s);
    char err[512];
    int kind = ss->inner->ops->id;
    ss->inner->forget_position = syncstate_must_forget(ss->ss, ss->svc, kind);
    if (!ss->inner->ops->open(ss->inner, &ss->inner_durable))
        return inner_failed(s);
    if (ss->inner->forget_position &&
        !syncstate_forgotten(ss->ss, ss->svc, kind, err, sizeof err))
        return sink_fail(s, 0, "%s", err);
    ss->inner->forget_position = false;
    ss->inner_last = ss->last_end = ss->inner_durable;
    ss->inner_began = false;
    ss->in_txn = false;
    ss->spooled = false;
    ss->filters_read = false;
    ss->holding = !syncstate_finished(ss->ss, ss->svc);
    struct stat st;
    if ((ss->holding || stat(ss->path, &st) == 0) &&
        !open_log(s, ss->inner_durable))
        return false;
    if (!hold_from_real_sink(s))
        return false;
    if (ss->log && evlog_last_end(ss->log) > ss->last_end)
        ss->last_end = evlog_last_end(ss->log);
    ss->replay_due = !ss->holding && ss->log;
    set_phase(ss, ss->holding ? SYNCSINK_INITIAL_COPY
                              : ss->log ? SYNCSINK_CATCHING_UP
                                        : SYNCSINK_STREAMING);
    publish_settled(ss);
    *durable = ss->last_end;
    return true;
}

/*
 * Whether a held transaction is in the spool or the real sink already. A
 * stream restarted from below what the spool holds (the real sink had not
 * confirmed its part before the hold) brings them again, and a replay
 * would give the real sink each one twice.
 */
static bool already_spooled(const syncsink *ss, lsn_t commit_lsn)
{
    lsn_t start = evlog_start(ss->log), last = evlog_last_end(ss->log);
    return sink_holds(last > start ? last : start, commit_lsn);
}

static bool ss_begin(sink *s, const sink_event *ev)
{
    syncsink *ss = impl(s);
    if (!maybe_hold(s) || !maybe_go_live(s))
        return false;
    ss->in_txn = true;
    publish_settled(ss);
    ss->spooled = ss->holding && already_spooled(ss, ev->commit_lsn);
    if (ss->spooled)
        return true;
    if (ss->holding)
        return evlog_append(ss->log, ev) ||
               sink_fail(s, ev->commit_lsn, "cannot write %s: %s", ss->path,
                         evlog_error(ss->log));
    ss->begin = *ev;
    ss->begin.next = NULL;
    ss->inner_began = false;
    return true;
}

static bool ss_change(sink *s, const sink_event *ev)
{
    syncsink *ss = impl(s);
    if (ss->spooled)
        return true;
    if (ss->holding)
        return evlog_append(ss->log, ev) ||
               sink_fail(s, ev->commit_lsn, "cannot write %s: %s", ss->path,
                         evlog_error(ss->log));
    return inner_change(s, ev);
}

static bool ss_commit(sink *s, const sink_event *ev, bool more)
{
    syncsink *ss = impl(s);
    ss->in_txn = false;
    if (ss->spooled) {
        ss->spooled = false;
        return true;
    }
    if (ss->holding) {
        ss->last_end = ev->end_lsn;
        return evlog_append(ss->log, ev) ||
               sink_fail(s, ev->commit_lsn, "cannot write %s: %s", ss->path,
                         evlog_error(ss->log));
    }
    return inner_commit(s, ev, more);
}

static bool flush_or_drain(sink *s, lsn_t *durable, bool drain)
{
    syncsink *ss = impl(s);
    if (!maybe_hold(s))
        return false;
    if (ss->holding) {
        if (!evlog_sync(ss->log))
            return sink_fail(s, 0, "cannot write %s: %s", ss->path,
                             evlog_error(ss->log));
        if (ss->inner_durable < ss->inner_last && !inner_flush(s, drain))
            return false;
    } else if (!inner_flush(s, drain)) {
        return false;
    }
    if (!maybe_go_live(s))
        return false;
    publish_settled(ss);
    *durable = durable_now(ss);
    return true;
}

static bool ss_flush(sink *s, lsn_t *durable)
{
    return flush_or_drain(s, durable, false);
}

static bool ss_drain(sink *s, lsn_t *durable)
{
    return flush_or_drain(s, durable, true);
}

static bool ss_idle(sink *s, lsn_t *durable)
{
    syncsink *ss = impl(s);
    if (ss->holding || ss->log || !syncstate_finished(ss->ss, ss->svc))
        return ss_flush(s, durable);
    /* Streaming: the real sink may have work of its own (Kafka's acks). */
    const sink_ops *ops = ss->inner->ops;
    if (ops->idle && !ops->idle(ss->inner, &ss->inner_durable))
        return inner_failed(s);
    mirror_counters(s);
    *durable = durable_now(ss);
    return true;
}

static void ss_rollback(sink *s)
{
    syncsink *ss = impl(s);
    if (ss->holding && ss->log) {
        sink_event *rb = sink_event_txn(SINK_ROLLBACK, 0, 0, 0, 0);
        if (rb)
            evlog_append(ss->log, rb);
        sink_event_free(rb);
    }
    ss->inner_began = false;
    ss->in_txn = false;
    ss->spooled = false;
    ss->inner->ops->rollback(ss->inner);
}

static void ss_close(sink *s)
{
    syncsink *ss = impl(s);
    atomic_store(&ss->settled, false);
    if (ss->log) {
        evlog_sync(ss->log);
        evlog_close(ss->log);
        ss->log = NULL;
    }
    ss->inner->ops->close(ss->inner);
}

static void ss_destroy(sink *s);

static const sink_ops syncsink_ops = {
    .open = ss_open,
    .begin = ss_begin,
    .change = ss_change,
    .commit = ss_commit,
    .flush = ss_flush,
    .idle = ss_idle,
    .drain = ss_drain,
    .rollback = ss_rollback,
    .close = ss_close,
    .destroy = ss_destroy,
};

sink *syncsink_new(sink *inner, syncstate *state, size_t svc)
{
    sink *s = calloc(1, sizeof *s);
    syncsink *ss = calloc(1, sizeof *ss);
    const cfg_service *service = &inner->config->services[svc];
    if (ss)
        ss->filters = calloc(service->n_owned ? service->n_owned : 1,
                             sizeof *ss->filters);
    /* The PostgreSQL sink's spool kept its first name. */
    bool pg = inner->ops->id == SINK_KIND_POSTGRES;
    if (!s || !ss || !ss->filters ||
        asprintf(&ss->path, "%s/hold/%s%s%s.spool", inner->config->state_dir,
                 service->name, pg ? "" : ".", pg ? "" : inner->ops->kind) < 0) {
        if (ss)
            free(ss->filters);
        free(ss);
        free(s);
        sink_destroy(inner);
        return NULL;
    }
    ss->inner = inner;
    inner->stop_flag = &s->stopping;   /* the worker stops the wrapper */
    inner->want_flag = &s->want_durable;
    ss->ss = state;
    ss->svc = svc;
    atomic_init(&ss->phase, -1);     /* the first phase set is logged */
    atomic_init(&ss->settled, true);
    ss->ops = syncsink_ops;
    ss->ops.kind = inner->ops->kind;
    ss->ops.id = inner->ops->id;
    ss->ops.flush_every_ms = inner->ops->flush_every_ms;
    s->ops = &ss->ops;
    s->config = inner->config;
    s->service = inner->service;
    s->impl = ss;
    return s;
}

syncsink_phase syncsink_get_phase(const sink *s)
{
    int phase = atomic_load(&impl(s)->phase);
    return phase < 0 ? SYNCSINK_INITIAL_COPY : (syncsink_phase)phase;
}

bool syncsink_settled(const sink *s)
{
    return atomic_load(&impl(s)->settled);
}

const char *syncsink_phase_name(syncsink_phase phase)
{
    static const char *const names[] = {"initial_copy", "catching_up",
                                        "streaming"};
    return names[phase];
}

static void ss_destroy(sink *s)
{
    syncsink *ss = impl(s);
    sink_destroy(ss->inner);
    free(ss->filters);
    free(ss->path);
    free(ss);
    free(s);
}
