/*
 * frame: the CopyBoth messages of a logical replication connection.
 *
 * From the server: XLogData ('w', one pgoutput message as payload) and the
 * primary keepalive ('k'). To the server: the standby status update ('r').
 * Times on the wire are microseconds since 2000-01-01 00:00 UTC.
 */
#ifndef CLEAVE_DECODER_FRAME_H
#define CLEAVE_DECODER_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decoder/lsn.h"
#include "decoder/rdbuf.h"

typedef enum frame_kind {
    FRAME_XLOGDATA = 'w',
    FRAME_KEEPALIVE = 'k',
} frame_kind;

typedef struct frame {
    frame_kind kind;
    lsn_t wal_start;       /* 'w': where the payload's record starts */
    lsn_t wal_end;         /* 'w', 'k': the server's end of WAL */
    int64_t send_time;     /* 'w', 'k': server clock, PostgreSQL epoch µs */
    bool reply_requested;  /* 'k': answer now or be disconnected */
    const uint8_t *data;   /* 'w': the pgoutput message, in the input buffer */
    size_t data_len;
} frame;

/* Length of an encoded standby status update. */
#define FRAME_STATUS_LEN 34

/* Seconds between the Unix epoch and PostgreSQL's (2000-01-01). */
#define FRAME_PG_EPOCH_OFFSET_S INT64_C(946684800)

/* Decodes one CopyData payload from the server. */
bool frame_decode(const void *buf, size_t len, frame *out, rb_error *err);

/* Encodes a standby status update; returns FRAME_STATUS_LEN. */
size_t frame_encode_status(uint8_t out[FRAME_STATUS_LEN], lsn_t written,
                           lsn_t flushed, lsn_t applied, int64_t now_pg_us,
                           bool reply_requested);

/* Conversions between Unix-epoch and PostgreSQL-epoch microseconds. */
int64_t frame_pgtime_from_unix_us(int64_t unix_us);
int64_t frame_pgtime_to_unix_us(int64_t pg_us);

#endif
