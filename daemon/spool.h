/*
 * spool: the messages of one streamed (in-progress) source transaction,
 * kept in a file under state_dir until Stream Commit or Stream Abort, so
 * memory stays bounded whatever the transaction's size.
 *
 * A record is [Int32 length][Int64 LSN][pgoutput message as received],
 * the LSN being the one its XLogData said. The first
 * offset of each subtransaction is remembered, so aborting one truncates
 * the file there, as PostgreSQL's own apply does. Spool files are not
 * needed after a crash: the slot streams the transaction again.
 */
#ifndef CLEAVE_DAEMON_SPOOL_H
#define CLEAVE_DAEMON_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decoder/lsn.h"

typedef struct spool spool;

/* Creates dir/spool-<xid> (truncating any leftover). NULL on error. */
spool *spool_open(const char *dir, uint32_t xid, char *err, size_t errlen);
uint32_t spool_xid(const spool *sp);
/* Appends a message belonging to (sub)transaction `xid`, decoded at lsn. */
bool spool_append(spool *sp, uint32_t xid, lsn_t lsn, const uint8_t *msg,
                  size_t len);
/* Forgets subtransaction `subxid` and everything after its first message. */
bool spool_abort_sub(spool *sp, uint32_t subxid);
/* Goes back to the first message, for reading with spool_next. */
bool spool_rewind(spool *sp);
/*
 * The next message: 1 with msg, len (valid until the next call) and lsn set,
 * 0 at the end, -1 on a read error. Read one at a time, so a replay can
 * stop whenever the sinks' queues are full and go on later.
 */
int spool_next(spool *sp, const uint8_t **msg, size_t *len, lsn_t *lsn);
/* Bytes spooled. */
uint64_t spool_size(const spool *sp);
/* Closes and removes the file. */
void spool_discard(spool *sp);
/* Removes leftover spool files of an earlier run. */
void spool_clean_dir(const char *dir);

#endif
