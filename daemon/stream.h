/*
 * stream: from the slot's frames to each service's sinks.
 *
 * Decodes every frame, keeps the source transaction being read, routes
 * each change to the workers of the service owning its table (BEGIN only
 * to those that get a change), spools streamed transactions until they
 * commit and replays them then, skips transactions that carry a cleave
 * replication origin (loop prevention), and works out the flush LSN to
 * report: everything received, except what a sink does not hold yet.
 * One origin is not skipped: a moved service's reverse stream writes the
 * service's own changes back under it, and they go to that service's
 * Kafka sinks, so its topics go on through a cut-over.
 *
 * Backpressure: when a worker's queue is full the event waits in the
 * fan-out's FIFO and the stream is "busy": the caller stops reading frames
 * and calls stream_work() when a worker has made room. The stream never
 * touches a worker itself: everything per sink is the fan-out's.
 */
#ifndef CLEAVE_DAEMON_STREAM_H
#define CLEAVE_DAEMON_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "daemon/binfmt.h"
#include "daemon/fanout.h"
#include "daemon/source.h"
#include "decoder/lsn.h"

typedef struct stream stream;

/*
 * Routes what `source` sends to config's services through fo's sinks (the
 * caller keeps fo, and frees it after the stream); spool_dir holds
 * streamed transactions.
 */
stream *stream_new(const cfg *config, const cfg_source *source, fanout *fo,
                   const char *spool_dir);
void stream_free(stream *st);

/*
 * Before the source (re)starts: rolls back sinks in the middle of a
 * transaction, forgets spools, waiting events and the relation cache, and
 * takes every ready worker on from here. `proto_version` is the one the
 * source agreed.
 */
bool stream_restart(stream *st, int proto_version);

/*
 * The source asked for binary values: the columns checked for them
 * (kept, not copied, until the next restart), or NULL for text.
 */
void stream_set_binfmt(stream *st, const binfmt *bin);
/*
 * Why stream_frame failed: a relation binfmt did not check came in a
 * binary stream, to be read again in text (not an error of the source).
 */
bool stream_wants_text(const stream *st);
/* Whether the values come in their binary form (stream_set_binfmt). */
bool stream_binary(const stream *st);
/*
 * Asked for each relation with REPLICA IDENTITY FULL as its Relation
 * message comes, to mark its primary key (sink_col.pk), which the
 * message does not carry: Kafka keys such a table by it. False with err
 * fails the message. None set: not asked (no Kafka sink).
 */
typedef bool stream_pk_fn(void *arg, sink_rel *rel, char *err, size_t errlen);
void stream_set_pk_lookup(stream *st, stream_pk_fn *fn, void *arg);
/*
 * Asked for a relation that comes under a name no service owns: an owned
 * table renamed or moved on the source (ALTER TABLE ... RENAME, SET
 * SCHEMA), whose changes would otherwise reach no service. Where the
 * oid is an owned table's now (renamed back since: the stream reads the
 * past), its changes go to that table's owner under its configured name;
 * where an owned table's name is gone from the catalog, the message
 * fails, naming both, and so does every start until the configuration or
 * the source changes. None set: such changes belong to nobody.
 */
typedef bool stream_owner_fn(void *arg, uint32_t oid, source_owner *out,
                             char *err, size_t errlen);
void stream_set_owner_lookup(stream *st, stream_owner_fn *fn, void *arg);

/* Handles one CopyData message; false with err when the stream is bad. */
bool stream_frame(stream *st, const uint8_t *buf, size_t len,
                  bool *reply_requested, char *err, size_t errlen);
/* Waiting events or a replay in progress: read no frames. */
bool stream_busy(const stream *st);
/* Moves waiting events and a replay on as far as queues allow. */
bool stream_work(stream *st, char *err, size_t errlen);

/*
 * Notices workers that failed (they get nothing more until the restart)
 * and says whether one came back and needs the stream replayed.
 */
bool stream_needs_restart(stream *st);

/*
 * The server sends what it decoded well after the commit: a backlog (or
 * one big transaction) is being read, so a frame read a moment later
 * costs nobody a wait. Both times are the server's clock.
 */
bool stream_catching_up(const stream *st);
/* The highest position received from the server. */
lsn_t stream_received(const stream *st);
/* What every sink holds durably: the flush LSN for the server. */
lsn_t stream_flush_lsn(const stream *st);
/*
 * Where target i stands: its durable LSN while it has something pending
 * (*pending), else the position received (it holds all it was sent).
 */
lsn_t stream_sink_position(const stream *st, size_t i, bool *pending);
/*
 * The cut-over's mark: a logical message with this prefix, its content a
 * token the mover chose. The last one read, and its LSN; false when none
 * was read since start. Main thread.
 */
#define STREAM_MARK_PREFIX "cleave_mark"
#define STREAM_MARK_MAX 64
/* The source's heartbeat (source.heartbeat_interval): a message too. */
#define STREAM_HEARTBEAT_PREFIX "cleave_heartbeat"
bool stream_last_mark(const stream *st, const char **content, lsn_t *lsn);

/* Source transactions read, skipped by loop prevention. */
uint64_t stream_txns(const stream *st);
uint64_t stream_txns_skipped(const stream *st);

#endif
