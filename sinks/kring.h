/*
 * kring: the Kafka sink's source transactions in flight, oldest first,
 * and the position the broker has acknowledged everything up to.
 *
 * Each transaction is an entry with a sequence number; its messages carry
 * that number, and each delivery report settles one of them. The
 * acknowledged position moves only over whole entries, in commit order,
 * whatever order the partitions answer in; an entry with a message the
 * broker refused stops it for good (until kring_reset), so nothing at or
 * after that transaction can ever be called acknowledged, whichever
 * thread served the report and whenever the position is next read.
 *
 * No locking of its own: the sink holds its producer's lock around every
 * call, since reports are served by whichever worker polls.
 */
#ifndef CLEAVE_SINKS_KRING_H
#define CLEAVE_SINKS_KRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decoder/lsn.h"

typedef struct kring_txn {
    lsn_t commit;            /* for error messages */
    lsn_t end;               /* 0: rolled back, moves nothing */
    int64_t pending;         /* produced (added at close) less reported */
    bool closed;             /* no more messages will be added */
    bool refused;            /* a message of it was not taken */
} kring_txn;

typedef struct kring {
    kring_txn *v;
    size_t cap, head, n;
    uint64_t first;          /* the sequence of v[head] */
    uint64_t seq;            /* the current (newest) entry's */
    uint64_t msgs;           /* produced in the current entry, not counted yet */
    lsn_t acked;             /* everything up to here is acknowledged */
    lsn_t acked_commit;      /* the commit LSN of the one acked ends */
} kring;

/* Opens a new current entry for the transaction committing at commit. */
bool kring_push(kring *r, lsn_t commit);
/*
 * No more messages for the current entry: its count is added then, not
 * one lock per message (end 0: it moves nothing).
 */
void kring_close(kring *r, lsn_t end);
/*
 * The entry a report of a message tagged with seq's low bits (mask) is
 * for; NULL when it is no longer in the ring.
 */
kring_txn *kring_find(kring *r, uint64_t low, uint64_t mask);
/* One message of t reported: taken, or refused. */
void kring_report(kring_txn *t, bool refused);
/* Moves acked over closed entries with nothing pending and nothing refused. */
void kring_advance(kring *r);
/* Forgets every entry; later sequences never meet the old ones. */
void kring_reset(kring *r);
void kring_free(kring *r);

#endif
