/*
 * stream: decoding, routing, spooling and flush accounting; see stream.h.
 */
#include "daemon/stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "daemon/reverse.h"
#include "daemon/spool.h"
#include "decoder/frame.h"
#include "decoder/pgoutput.h"
#include "sinks/sink.h"

#define CATCHING_UP_US 100000

/* What the stream knows of a relation: its snapshot and its owner. */
typedef struct relinfo {
    uint32_t oid;
    sink_rel *rel;           /* NULL: free slot */
    int service;             /* index in config->services, -1 for nobody */
    bool warned;
} relinfo;

typedef struct streamed {
    spool *sp;
    bool skip;               /* carries a cleave origin */
    int reversed;            /* see stream.reversed */
} streamed;

struct stream {
    const cfg *config;
    char *spool_dir;
    pgo_decoder *dec;
    int proto;
    fanout *fo;              /* the sinks, not ours */
    bool loop_prevention;    /* the source's setting */
    /* Per service: the origin its cut-over's reverse stream applies under. */
    char **rev_origins;
    relinfo *rels;           /* open addressing on oid */
    size_t rels_cap, rels_n;
    uint64_t rel_version;
    /* The source transaction being read (or replayed). */
    bool in_txn, skip_txn;
    /*
     * The moved service whose reverse stream applied this transaction, or
     * -1: its changes are that service's own writes, which go to its
     * Kafka sinks (and nowhere else: its database made them).
     */
    int reversed;
    uint32_t xid;
    lsn_t commit_lsn;
    int64_t commit_time;     /* Unix µs */
    /* The message being read: the LSN its XLogData (or spool record) said. */
    lsn_t msg_lsn;
    /* Streamed transactions, and the one whose block is being read. */
    streamed *streams;
    size_t nstreams, streams_cap;
    streamed *cur;
    /* A committed streamed transaction being replayed into the sinks. */
    spool *replay;
    lsn_t replay_end;
    int64_t replay_time;
    long replayed;            /* records replayed, for the test hook */
    long fail_replay_at;      /* tests: CLEAVE_TEST_FAIL_REPLAY_AT */
    lsn_t received;
    /* The server's clock at its last send less the transaction's commit:
     * how far behind the slot's reading is. */
    int64_t behind_us;
    uint64_t txns, txns_skipped;
    /* The last cut-over mark read: what it said, where. */
    char mark[STREAM_MARK_MAX];
    lsn_t mark_lsn;
    /* Values come binary: the columns checked for it (the source's). */
    const binfmt *bin;
    /* A FULL relation's primary key, asked of the source (Kafka). */
    stream_pk_fn *pk_fn;
    void *pk_arg;
    /* Who owns a relation under an unowned name, asked of the source. */
    stream_owner_fn *owner_fn;
    void *owner_arg;
    bool text_wanted;        /* a relation it did not check came */
};

/* ---- relations -------------------------------------------------------- */

static relinfo *rel_slot(stream *st, uint32_t oid)
{
    size_t mask = st->rels_cap - 1;
    size_t i = (oid * 2654435761u) & mask;
    while (st->rels[i].rel && st->rels[i].oid != oid)
        i = (i + 1) & mask;
    return &st->rels[i];
}

static relinfo *rel_get(stream *st, uint32_t oid)
{
    if (st->rels_cap == 0)
        return NULL;
    relinfo *ri = rel_slot(st, oid);
    return ri->rel ? ri : NULL;
}

static bool rel_grow(stream *st)
{
    size_t ncap = st->rels_cap ? st->rels_cap * 2 : 64;
    relinfo *old = st->rels;
    size_t ocap = st->rels_cap;
    st->rels = calloc(ncap, sizeof *st->rels);
    if (!st->rels) {
        st->rels = old;
        return false;
    }
    st->rels_cap = ncap;
    for (size_t i = 0; i < ocap; i++)
        if (old[i].rel)
            *rel_slot(st, old[i].oid) = old[i];
    free(old);
    return true;
}

static void rel_clear(stream *st)
{
    for (size_t i = 0; i < st->rels_cap; i++)
        sink_rel_unref(st->rels[i].rel);
    memset(st->rels, 0, st->rels_cap * sizeof *st->rels);
    st->rels_n = 0;
}

static int owner_of(const stream *st, const pgo_relation *rel)
{
    const cfg_service *svc = cfg_owner(st->config, rel->nspname, rel->relname);
    return svc ? (int)(svc - st->config->services) : -1;
}

/* service: owner_of(st, rel), which the caller has looked up already. */
static bool rel_update(stream *st, const pgo_relation *rel, int service,
                       char *err, size_t errlen)
{
    if ((st->rels_n + 1) * 2 > st->rels_cap && !rel_grow(st))
        return false;
    sink_rel *snap = sink_rel_from_pgo(rel, ++st->rel_version, st->dec);
    if (!snap)
        return false;
    if (snap->replident == 'f' && service >= 0 && st->pk_fn &&
        !st->pk_fn(st->pk_arg, snap, err, errlen)) {
        sink_rel_unref(snap);
        return false;
    }
    relinfo *ri = rel_slot(st, rel->oid);
    if (ri->rel && ri->service >= 0 && service < 0)
        log_error("event=owned_table_replaced service=%s table=%s.%s "
                  "now=%s.%s error=\"another table has its name now, and "
                  "the changes of this one, under its new name, are no "
                  "longer streamed\"",
                  st->config->services[ri->service].name, ri->rel->schema,
                  ri->rel->name, rel->nspname, rel->relname);
    if (ri->rel)
        sink_rel_unref(ri->rel);
    else
        st->rels_n++;
    *ri = (relinfo){.oid = rel->oid, .rel = snap, .service = service};
    return true;
}

/* ---- transactions ----------------------------------------------------- */

static void txn_begin(stream *st, uint32_t xid, lsn_t commit_lsn,
                      int64_t pg_time, bool skip)
{
    st->in_txn = true;
    st->skip_txn = skip;
    st->reversed = -1;
    st->xid = xid;
    st->commit_lsn = commit_lsn;
    st->commit_time = frame_pgtime_to_unix_us(pg_time);
    fanout_txn_begin(st->fo, xid, commit_lsn, st->commit_time);
}

/* Ends the transaction being read on every target it went to. */
static bool txn_end(stream *st, lsn_t end_lsn, int64_t when)
{
    bool ok = fanout_txn_end(st->fo, end_lsn, when);
    st->txns++;
    st->txns_skipped += st->skip_txn;
    st->in_txn = false;
    st->skip_txn = false;
    st->reversed = -1;
    if (end_lsn > st->received)
        st->received = end_lsn;
    return ok;
}

static bool txn_commit(stream *st, lsn_t end_lsn, int64_t pg_time)
{
    return txn_end(st, end_lsn, frame_pgtime_to_unix_us(pg_time));
}

/*
 * A transaction another cleave applied is skipped unless loops are wanted
 * (logged, so a test tells cleave's skip from the server's filter), but
 * for one that a moved service's reverse stream applied: see reversed.
 */
static void note_origin(const stream *st, const char *name, bool *skip,
                        int *reversed)
{
    if (!cfg_origin_is_cleave(name))
        return;
    /*
     * Even where loops are wanted: a moved service's own writes, which its
     * reverse stream applied, never go back to its database (only to its
     * Kafka sinks), or they would be applied there twice.
     */
    for (size_t i = 0; i < st->config->n_services; i++)
        if (strcmp(st->rev_origins[i], name) == 0) {
            *reversed = (int)i;
            log_debug("event=txn_reversed origin=%s", name);
            return;
        }
    if (!st->loop_prevention)
        return;
    *skip = true;
    log_debug("event=txn_skipped origin=%s", name);
}

/* Whether sink i takes now the changes of service svc's tables. */
static bool takes(const stream *st, size_t i, int svc)
{
    if (fanout_service_of(st->fo, i) != svc)
        return false;
    return st->reversed < 0 || (svc == st->reversed &&
                                fanout_sink(st->fo, i)->ops->id !=
                                    SINK_KIND_POSTGRES);
}

/* The owner of a change's table, or -1 (said once per relation). */
static int route_of(stream *st, uint32_t oid)
{
    relinfo *ri = rel_get(st, oid);
    if (!ri)
        return -1;
    if (ri->service < 0 && !ri->warned) {
        ri->warned = true;
        log_error("event=unowned_table table=%s.%s error=\"a change to a table "
                  "no service owns: it should not be in the publication\"",
                  ri->rel->schema, ri->rel->name);
    }
    return ri->service;
}

static bool route_change(stream *st, const pgo_msg *m)
{
    if (!st->in_txn || st->skip_txn)
        return true;
    int svc = route_of(st, m->change.rel->oid);
    if (svc < 0)
        return true;
    sink_op op = m->kind == PGO_INSERT ? SINK_INSERT
               : m->kind == PGO_UPDATE ? SINK_UPDATE : SINK_DELETE;
    sink_rel *rel = rel_get(st, m->change.rel->oid)->rel;
    bool ok = true;
    for (size_t i = 0; i < fanout_size(st->fo) && ok; i++) {
        if (!takes(st, i, svc))
            continue;
        sink_event *ev = sink_event_change(
            op, rel, st->commit_lsn, m->change.old_kind,
            m->change.old_kind ? &m->change.old_tuple : NULL,
            m->kind == PGO_DELETE ? NULL : &m->change.new_tuple);
        ok = fanout_send(st->fo, i, sink_event_at(ev, st->msg_lsn));
    }
    return ok;
}

static bool route_truncate(stream *st, const pgo_msg *m)
{
    if (!st->in_txn || st->skip_txn)
        return true;
    uint32_t n = m->truncate.nrels;
    sink_rel **rels = malloc((n ? n : 1) * sizeof *rels);
    if (!rels)
        return false;
    bool ok = true;
    for (size_t i = 0; i < fanout_size(st->fo) && ok; i++) {
        int svc = fanout_service_of(st->fo, i);
        if (svc < 0 || !takes(st, i, svc))
            continue;
        uint32_t k = 0;
        for (uint32_t j = 0; j < n; j++)
            if (route_of(st, m->truncate.rels[j]->oid) == svc)
                rels[k++] = rel_get(st, m->truncate.rels[j]->oid)->rel;
        if (k > 0)
            ok = fanout_send(st->fo, i, sink_event_at(sink_event_truncate(
                     st->commit_lsn, m->truncate.options, rels, k),
                     st->msg_lsn));
    }
    free(rels);
    return ok;
}

/*
 * Whether sink i publishes a message: never cleave's own (heartbeats,
 * cut-over marks), whatever a service's `messages` patterns match.
 */
static bool wants_message(const stream *st, size_t i, const char *prefix)
{
    return strcmp(prefix, STREAM_MARK_PREFIX) != 0 &&
           strcmp(prefix, STREAM_HEARTBEAT_PREFIX) != 0 &&
           fanout_wants_message(st->fo, i, prefix);
}

static bool send_message(stream *st, const pgo_msg *m)
{
    bool tx = m->message.flags & PGO_MESSAGE_TRANSACTIONAL;
    for (size_t i = 0; i < fanout_size(st->fo); i++) {
        if (!wants_message(st, i, m->message.prefix))
            continue;
        sink_event *ev = sink_event_message(st->commit_lsn, m->message.lsn, tx,
                                            m->message.prefix,
                                            m->message.content,
                                            m->message.len);
        if (ev)
            ev->xid = st->xid;
        if (!fanout_send(st->fo, i, ev))
            return false;
    }
    return true;
}

/* A cut-over's mark: noted whatever the transaction's origin. */
static void note_mark(stream *st, const pgo_msg *m)
{
    if (strcmp(m->message.prefix, STREAM_MARK_PREFIX) != 0)
        return;
    size_t n = m->message.len < sizeof st->mark - 1 ? m->message.len
                                                    : sizeof st->mark - 1;
    memcpy(st->mark, m->message.content, n);
    st->mark[n] = '\0';
    st->mark_lsn = m->message.lsn;
}

/*
 * A message outside any transaction goes out as a transaction of its own
 * ending one past its LSN: confirmed, it is not decoded again.
 */
static bool route_lone_message(stream *st, const pgo_msg *m)
{
    note_mark(st, m);
    bool wanted = false;
    for (size_t i = 0; i < fanout_size(st->fo) && !wanted; i++)
        wanted = wants_message(st, i, m->message.prefix);
    if (!wanted)
        return true;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t when = (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
    st->in_txn = true;
    st->skip_txn = false;
    st->reversed = -1;
    st->xid = 0;
    st->commit_lsn = m->message.lsn;
    st->commit_time = when;
    fanout_txn_begin(st->fo, 0, m->message.lsn, when);
    bool ok = send_message(st, m);
    return txn_end(st, m->message.lsn + 1, when) && ok;
}

static bool route_message(stream *st, const pgo_msg *m)
{
    note_mark(st, m);
    if (!(m->message.flags & PGO_MESSAGE_TRANSACTIONAL) && !st->in_txn)
        return route_lone_message(st, m);
    if (!st->in_txn || st->skip_txn || st->reversed >= 0)
        return true;
    return send_message(st, m);
}

/* ---- streamed transactions -------------------------------------------- */

static streamed *streamed_get(stream *st, uint32_t xid)
{
    for (size_t i = 0; i < st->nstreams; i++)
        if (spool_xid(st->streams[i].sp) == xid)
            return &st->streams[i];
    return NULL;
}

static void streamed_drop(stream *st, streamed *s)
{
    spool_discard(s->sp);
    *s = st->streams[--st->nstreams];
}

static bool stream_start_block(stream *st, const pgo_msg *m, char *err,
                               size_t errlen)
{
    streamed *s = streamed_get(st, m->xid);
    if (s && m->stream_start.first_segment)
        streamed_drop(st, s), s = NULL;
    if (!s) {
        if (st->nstreams == st->streams_cap) {
            size_t ncap = st->streams_cap ? st->streams_cap * 2 : 4;
            streamed *n = realloc(st->streams, ncap * sizeof *n);
            if (!n)
                return false;
            st->streams = n;
            st->streams_cap = ncap;
        }
        spool *sp = spool_open(st->spool_dir, m->xid, err, errlen);
        if (!sp)
            return false;
        s = &st->streams[st->nstreams++];
        *s = (streamed){.sp = sp, .reversed = -1};
    }
    st->cur = s;
    return true;
}

static bool stream_abort(stream *st, const pgo_msg *m)
{
    streamed *s = streamed_get(st, m->xid);
    if (!s)
        return true;
    if (m->stream_abort.subxid == m->xid || m->stream_abort.subxid == 0) {
        streamed_drop(st, s);
        return true;
    }
    return spool_abort_sub(s->sp, m->stream_abort.subxid);
}

/* Starts replaying a committed streamed transaction into the sinks. */
static bool stream_commit(stream *st, const pgo_msg *m, char *err,
                          size_t errlen)
{
    streamed *s = streamed_get(st, m->xid);
    if (!s) {
        snprintf(err, errlen, "Stream Commit for transaction %u, which was "
                 "never streamed", m->xid);
        return false;
    }
    txn_begin(st, m->xid, m->commit.commit_lsn, m->commit.commit_time, s->skip);
    st->reversed = s->reversed;
    st->replay = s->sp;
    st->replay_end = m->commit.end_lsn;
    st->replay_time = m->commit.commit_time;
    s->sp = NULL;
    *s = st->streams[--st->nstreams];
    /* The spooled messages carry xids: read them as inside a block. */
    uint8_t start[6] = {'S', (uint8_t)(m->xid >> 24), (uint8_t)(m->xid >> 16),
                        (uint8_t)(m->xid >> 8), (uint8_t)m->xid, 0};
    pgo_msg ignored;
    rb_error e;
    if (!spool_rewind(st->replay) ||
        !pgo_decode(st->dec, start, sizeof start, &ignored, &e)) {
        snprintf(err, errlen, "cannot replay streamed transaction %u", m->xid);
        return false;
    }
    return true;
}

/* ---- messages --------------------------------------------------------- */

static bool check_two_phase(const pgo_msg *m, char *err, size_t errlen)
{
    snprintf(err, errlen, "unexpected %s message: cleave does not ask for "
             "two-phase decoding", pgo_kind_name(m->kind));
    return false;
}

/* A message inside a streamed block: keep it for the commit. */
static bool spool_message(stream *st, const pgo_msg *m, const uint8_t *buf,
                          size_t len)
{
    if (m->kind == PGO_ORIGIN) {
        note_origin(st, m->origin.name, &st->cur->skip, &st->cur->reversed);
        return true;
    }
    if (m->kind == PGO_MESSAGE &&
        !(m->message.flags & PGO_MESSAGE_TRANSACTIONAL))
        return route_lone_message(st, m);
    return spool_append(st->cur->sp, m->xid, st->msg_lsn, buf, len);
}

static bool handle_change_msg(stream *st, const pgo_msg *m, char *err,
                              size_t errlen)
{
    switch (m->kind) {
    case PGO_RELATION:
        return rel_update(st, m->relation, owner_of(st, m->relation), err,
                          errlen);
    case PGO_INSERT:
    case PGO_UPDATE:
    case PGO_DELETE:
        return route_change(st, m);
    case PGO_TRUNCATE:
        return route_truncate(st, m);
    case PGO_MESSAGE:
        return route_message(st, m);
    default:
        return true;
    }
}

/*
 * A binary stream goes on only with columns binfmt checked: another
 * relation (a column added, a type changed) has its values read again in
 * text, before any change of it is routed.
 */
static bool binary_takes(stream *st, const pgo_relation *rel, int service,
                         char *err, size_t errlen)
{
    if (!st->bin || service < 0 || binfmt_takes(st->bin, rel))
        return true;
    st->text_wanted = true;
    snprintf(err, errlen, "table %s.%s changed under the binary stream: "
             "reading on in text", rel->nspname, rel->relname);
    return false;
}

/*
 * rel comes under a name no service owns: *named (a copy of rel) takes
 * its owned name and *service its owner where the source's catalog gives
 * its oid to an owned table; false with err where an owned table's name
 * is gone.
 */
static bool owner_by_oid(stream *st, const pgo_relation *rel,
                         pgo_relation *named, int *service, char *err,
                         size_t errlen)
{
    source_owner o;
    if (!st->owner_fn)
        return true;
    if (!st->owner_fn(st->owner_arg, rel->oid, &o, err, errlen))
        return false;
    if (o.service >= 0) {
        named->nspname = o.table->schema;
        named->relname = o.table->name;
        *service = o.service;
        log_info("event=owned_table_renamed service=%s table=%s.%s "
                 "was=%s.%s", st->config->services[o.service].name,
                 o.table->schema, o.table->name, rel->nspname, rel->relname);
        return true;
    }
    if (o.missing)
        snprintf(err, errlen, "owned table %s.%s of service %s is no longer "
                 "in the source database, and %s.%s came instead (renamed "
                 "or moved?): its changes wait; rename the service's table "
                 "the same way and put its name now in the configuration, "
                 "then reload, or give it back its name", o.missing->schema,
                 o.missing->name, st->config->services[o.missing_service].name,
                 rel->nspname, rel->relname);
    return !o.missing;
}

/* A Relation message, also inside a streamed block: its owner looked up once. */
static bool relation_msg(stream *st, const pgo_relation *rel, char *err,
                         size_t errlen)
{
    int service = owner_of(st, rel);
    pgo_relation named;
    if (service < 0) {
        named = *rel;
        if (!owner_by_oid(st, rel, &named, &service, err, errlen))
            return false;
        rel = &named;
    }
    return binary_takes(st, rel, service, err, errlen) &&
           rel_update(st, rel, service, err, errlen);
}

/*
 * A Begin inside a transaction, or a Commit outside one: the server never
 * sends them, and taken as they came, the first would merge two source
 * transactions into one, the second move the position past nothing.
 */
static bool out_of_order(const stream *st, const char *what, char *err,
                         size_t errlen)
{
    if (st->in_txn)
        snprintf(err, errlen, "a %s message inside transaction %u", what,
                 st->xid);
    else
        snprintf(err, errlen, "a %s message outside any transaction", what);
    return false;
}

static bool handle_msg(stream *st, const pgo_msg *m, const uint8_t *buf,
                       size_t len, char *err, size_t errlen)
{
    if (m->kind == PGO_RELATION && !relation_msg(st, m->relation, err, errlen))
        return false;
    if (st->cur && m->kind != PGO_STREAM_STOP)
        return spool_message(st, m, buf, len);
    switch (m->kind) {
    case PGO_BEGIN:
        if (st->in_txn)
            return out_of_order(st, "Begin", err, errlen);
        txn_begin(st, m->xid, m->begin.final_lsn, m->begin.commit_time, false);
        return true;
    case PGO_ORIGIN:
        note_origin(st, m->origin.name, &st->skip_txn, &st->reversed);
        return true;
    case PGO_COMMIT:
        if (!st->in_txn)
            return out_of_order(st, "Commit", err, errlen);
        return txn_commit(st, m->commit.end_lsn, m->commit.commit_time);
    case PGO_STREAM_START:
        return stream_start_block(st, m, err, errlen);
    case PGO_STREAM_STOP:
        st->cur = NULL;
        return true;
    case PGO_STREAM_COMMIT:
        return stream_commit(st, m, err, errlen);
    case PGO_STREAM_ABORT:
        return stream_abort(st, m);
    case PGO_BEGIN_PREPARE:
    case PGO_PREPARE:
    case PGO_COMMIT_PREPARED:
    case PGO_ROLLBACK_PREPARED:
    case PGO_STREAM_PREPARE:
        return check_two_phase(m, err, errlen);
    case PGO_RELATION:
        return true;
    default:
        return handle_change_msg(st, m, err, errlen);
    }
}

/* One spooled message of the transaction being replayed. */
static bool replay_one(stream *st, const uint8_t *buf, size_t len, char *err,
                       size_t errlen)
{
    pgo_msg m;
    rb_error e;
    if (++st->replayed == st->fail_replay_at) {
        snprintf(err, errlen, "replaying transaction %u: failed for a test",
                 st->xid);
        return false;
    }
    if (!pgo_decode(st->dec, buf, len, &m, &e)) {
        snprintf(err, errlen, "replaying transaction %u: offset %zu: %s",
                 st->xid, e.offset, e.msg);
        return false;
    }
    if (!handle_change_msg(st, &m, err, errlen)) {
        if (!err[0])
            snprintf(err, errlen, "replaying transaction %u: out of memory",
                     st->xid);
        return false;
    }
    return true;
}

static bool replay_finish(stream *st, char *err, size_t errlen)
{
    const uint8_t stop[1] = {'E'};
    pgo_msg ignored;
    rb_error e;
    spool_discard(st->replay);
    st->replay = NULL;
    if (!pgo_decode(st->dec, stop, 1, &ignored, &e)) {
        snprintf(err, errlen, "ending replay: %s", e.msg);
        return false;
    }
    return txn_commit(st, st->replay_end, st->replay_time);
}

static bool replay_some(stream *st, char *err, size_t errlen)
{
    while (fanout_drain(st->fo) && st->replay) {
        const uint8_t *msg;
        size_t len;
        int r = spool_next(st->replay, &msg, &len, &st->msg_lsn);
        if (r < 0) {
            snprintf(err, errlen, "reading the spool of transaction %u", st->xid);
            return false;
        }
        if (r == 0)
            return replay_finish(st, err, errlen);
        if (!replay_one(st, msg, len, err, errlen))
            return false;
    }
    return true;
}

bool stream_work(stream *st, char *err, size_t errlen)
{
    if (replay_some(st, err, errlen))
        return true;
    /*
     * The replay is abandoned, not resumed past the record that failed:
     * its COMMIT would make the sinks hold a transaction without it. The
     * transaction stays open, so no position past its commit is confirmed;
     * the restart rolls the sinks back, and the source sends it again.
     */
    spool_discard(st->replay);
    st->replay = NULL;
    return false;
}

bool stream_frame(stream *st, const uint8_t *buf, size_t len,
                  bool *reply_requested, char *err, size_t errlen)
{
    frame fr;
    rb_error e;
    *reply_requested = false;
    if (!frame_decode(buf, len, &fr, &e)) {
        snprintf(err, errlen, "bad frame at offset %zu: %s", e.offset, e.msg);
        return false;
    }
    lsn_t seen = fr.wal_start > fr.wal_end ? fr.wal_start : fr.wal_end;
    if (fr.kind == FRAME_KEEPALIVE) {
        /* Sent when the walsender waits for WAL, or asked for a reply. */
        if (seen > st->received)
            st->received = seen;
        st->behind_us = 0;
        *reply_requested = fr.reply_requested;
        return true;
    }
    pgo_msg m;
    st->msg_lsn = fr.wal_start;
    if (!pgo_decode(st->dec, fr.data, fr.data_len, &m, &e)) {
        snprintf(err, errlen, "bad pgoutput message at offset %zu: %s",
                 e.offset, e.msg);
        return false;
    }
    if (handle_msg(st, &m, fr.data, fr.data_len, err, errlen)) {
        /*
         * Only once routed: a frame refused (a Stream Commit of a
         * transaction never streamed, say) has its end in its header, and
         * the restart after the failure would confirm it.
         */
        if (seen > st->received)
            st->received = seen;
        if (st->in_txn)
            st->behind_us = frame_pgtime_to_unix_us(fr.send_time) -
                            st->commit_time;
        return true;
    }
    if (!err[0])
        snprintf(err, errlen, "out of memory routing a %s message",
                 pgo_kind_name(m.kind));
    return false;
}

bool stream_busy(const stream *st)
{
    return fanout_busy(st->fo) || st->replay != NULL;
}

/* ---- restarts and positions ------------------------------------------- */

bool stream_restart(stream *st, int proto_version)
{
    /*
     * What was read counts only as far as the sinks hold it: from now on
     * received says what this session routed. A sink taken on again
     * (reopened, or open for the first time) looks caught up to its last
     * COMMIT routed, so a position read before the restart, past changes
     * it missed, would be confirmed at the first status and the slot would
     * never send them again. This also covers a transaction cut short (a
     * streamed one's Stream Commit told its end already): nothing past its
     * commit record is confirmed, not at stop, not at the next start.
     */
    st->received = stream_flush_lsn(st);
    fanout_restart(st->fo);
    while (st->nstreams > 0)
        streamed_drop(st, &st->streams[0]);
    spool_discard(st->replay);
    st->replay = NULL;
    st->cur = NULL;
    st->in_txn = st->skip_txn = false;
    st->reversed = -1;
    /*
     * A replay re-sends what came before a mark already read, while the
     * position received stays where it was: the mark counts again only
     * once the replay reads it again, after all of that.
     */
    st->mark[0] = '\0';
    st->mark_lsn = 0;
    st->bin = NULL;
    st->text_wanted = false;
    rel_clear(st);
    if (!st->dec || st->proto != proto_version) {
        pgo_free(st->dec);
        st->proto = proto_version;
        st->dec = pgo_new(&(pgo_options){.proto_version = proto_version});
    } else {
        pgo_reset(st->dec);
    }
    return st->dec != NULL;
}

void stream_set_pk_lookup(stream *st, stream_pk_fn *fn, void *arg)
{
    st->pk_fn = fn;
    st->pk_arg = arg;
}

void stream_set_owner_lookup(stream *st, stream_owner_fn *fn, void *arg)
{
    st->owner_fn = fn;
    st->owner_arg = arg;
}

void stream_set_binfmt(stream *st, const binfmt *bin)
{
    st->bin = bin;
}

bool stream_wants_text(const stream *st)
{
    return st->text_wanted;
}

bool stream_binary(const stream *st)
{
    return st->bin != NULL;
}

bool stream_needs_restart(stream *st)
{
    return fanout_needs_restart(st->fo);
}

bool stream_catching_up(const stream *st)
{
    return st->behind_us > CATCHING_UP_US;
}

lsn_t stream_received(const stream *st)
{
    return st->received;
}

lsn_t stream_flush_lsn(const stream *st)
{
    lsn_t flush = st->received;
    /*
     * A transaction still being routed (a long replay, above all) is not
     * held anywhere yet, while the server's Stream Commit already told
     * its end: never confirm past its commit record, so a restart sends
     * it again.
     */
    if (st->in_txn && st->commit_lsn < flush)
        flush = st->commit_lsn;
    return fanout_flush_lsn(st->fo, flush);
}

lsn_t stream_sink_position(const stream *st, size_t i, bool *pending)
{
    return fanout_position(st->fo, i, st->received, pending);
}

bool stream_last_mark(const stream *st, const char **content, lsn_t *lsn)
{
    *content = st->mark;
    *lsn = st->mark_lsn;
    return st->mark_lsn != 0;
}

uint64_t stream_txns(const stream *st)
{
    return st->txns;
}

uint64_t stream_txns_skipped(const stream *st)
{
    return st->txns_skipped;
}

/* ---- life ------------------------------------------------------------- */

static bool rev_origins_new(stream *st)
{
    const cfg *c = st->config;
    st->rev_origins = calloc(c->n_services + 1, sizeof *st->rev_origins);
    if (!st->rev_origins)
        return false;
    for (size_t i = 0; i < c->n_services; i++)
        if (!(st->rev_origins[i] = reverse_origin_name(c, i)))
            return false;
    return true;
}

stream *stream_new(const cfg *config, const cfg_source *source, fanout *fo,
                   const char *spool_dir)
{
    stream *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->config = config;
    st->fo = fo;
    st->loop_prevention = source->loop_prevention;
    st->reversed = -1;
    const char *fail_at = getenv("CLEAVE_TEST_FAIL_REPLAY_AT");
    st->fail_replay_at = fail_at ? atol(fail_at) : 0;
    st->spool_dir = strdup(spool_dir);
    if (!st->spool_dir || !rel_grow(st) || !rev_origins_new(st)) {
        stream_free(st);
        return NULL;
    }
    return st;
}

void stream_free(stream *st)
{
    if (!st)
        return;
    for (size_t i = 0; st->rev_origins && i < st->config->n_services; i++)
        free(st->rev_origins[i]);
    free(st->rev_origins);
    while (st->nstreams > 0)
        streamed_drop(st, &st->streams[0]);
    free(st->streams);
    spool_discard(st->replay);
    if (st->rels)
        rel_clear(st);
    free(st->rels);
    pgo_free(st->dec);
    free(st->spool_dir);
    free(st);
}
