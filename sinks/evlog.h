/*
 * evlog: sink events kept on disk, whole source transactions at a time.
 *
 * While a service's tables are being copied, the stream's transactions
 * for it are appended here (BEGIN, changes, TRUNCATE, COMMIT), fsync'd on
 * evlog_sync, and read back later with an evlog_reader to be replayed into
 * the real sink, also after the daemon crashed or restarted. The file
 * format is described at the top of evlog.c.
 *
 * Crash safety: only what evlog_sync made durable is promised
 * (evlog_durable); the source resends anything after it. On open, a torn
 * tail beyond the durable part (an incomplete record, a bad checksum, a
 * transaction without its COMMIT) is cut off; damage inside the durable
 * part is an error, never silently cut, since the source no longer has
 * those transactions.
 *
 * One writer per file. Readers open their own descriptor and may run
 * while the writer appends; they only ever return whole transactions.
 */
#ifndef CLEAVE_SINKS_EVLOG_H
#define CLEAVE_SINKS_EVLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decoder/lsn.h"
#include "sinks/sink.h"

typedef struct evlog evlog;

/*
 * Opens the log at path, creating it when missing with `start` (the LSN
 * the log begins after) in its header; an existing file keeps its own
 * start. An existing file is scanned and a torn tail cut off, so the file
 * ends after its last complete transaction. The directory must exist.
 * NULL with err on failure (what, the path, and why).
 */
evlog *evlog_open(const char *path, lsn_t start, char *err, size_t errlen);
lsn_t evlog_start(const evlog *l);
/* end_lsn of the last complete transaction appended (0 if none). */
lsn_t evlog_last_end(const evlog *l);
/* end_lsn of the last complete transaction fsync'd (after open: last_end). */
lsn_t evlog_durable(const evlog *l);
/* Bytes in the log, buffered ones included. */
uint64_t evlog_bytes(const evlog *l);
/* Bytes cut off as a torn tail when the log was opened. */
uint64_t evlog_cut_bytes(const evlog *l);

/*
 * Appends an event: BEGIN, changes and TRUNCATE, COMMIT, in order. A
 * ROLLBACK drops the unfinished transaction (none: nothing to do).
 * Buffered; nothing is durable before evlog_sync. False with errno set and
 * the reason in evlog_error: EINVAL for an event out of order or
 * malformed (nothing written, the log stays usable); an I/O error leaves
 * the log unusable until reopened.
 */
bool evlog_append(evlog *l, const sink_event *ev);
/* Writes out the buffer and fsyncs; then durable == last_end. */
bool evlog_sync(evlog *l);
/* Why the last append or sync failed. */
const char *evlog_error(const evlog *l);
/*
 * Writes out the buffer (no fsync: evlog_sync first for that), dropping an
 * unfinished transaction, and closes.
 */
void evlog_close(evlog *l);
/* Closes, unlinks the file and fsyncs its directory; frees l either way. */
bool evlog_remove(evlog *l);

typedef struct evlog_reader evlog_reader;

evlog_reader *evlog_reader_open(const char *path, char *err, size_t errlen);
/*
 * The next event: 1 with *ev (yours to sink_event_free), 0 when no further
 * complete transaction is on disk yet (call again later for more), -1 on
 * damage or an I/O error (err names the path and the offset). Events come
 * out as appended; relation snapshots are shared between events.
 */
int evlog_reader_next(evlog_reader *r, sink_event **ev, char *err,
                      size_t errlen);
void evlog_reader_close(evlog_reader *r);

/* CRC-32C (Castagnoli), as the records carry it; crc starts at 0. */
uint32_t evlog_crc32c(uint32_t crc, const void *data, size_t len);

#endif
