/* frame: CopyBoth replication frames; see frame.h. */
#include "decoder/frame.h"

/*
 * XLogData:   'w' Int64 start, Int64 end-of-WAL, Int64 send time, Byte[n]
 * Keepalive:  'k' Int64 end-of-WAL, Int64 send time, Byte1 reply requested
 */
bool frame_decode(const void *buf, size_t len, frame *out, rb_error *err)
{
    rb_reader r;
    rb_init(&r, buf, len);
    uint8_t kind = rb_u8(&r);
    if (!rb_ok(&r))
        return rb_error_short(err, &r, "replication frame");
    *out = (frame){.kind = (frame_kind)kind};
    switch (kind) {
    case FRAME_XLOGDATA:
        out->wal_start = rb_u64(&r);
        out->wal_end = rb_u64(&r);
        out->send_time = rb_i64(&r);
        if (!rb_ok(&r))
            return rb_error_short(err, &r, "XLogData header");
        out->data_len = rb_remaining(&r);
        out->data = rb_bytes(&r, out->data_len);
        if (out->data_len == 0)
            return rb_error_set(err, r.pos, "XLogData without a payload");
        return true;
    case FRAME_KEEPALIVE: {
        out->wal_end = rb_u64(&r);
        out->send_time = rb_i64(&r);
        uint8_t reply = rb_u8(&r);
        if (!rb_ok(&r))
            return rb_error_short(err, &r, "primary keepalive");
        if (reply > 1)
            return rb_error_set(err, r.pos - 1,
                                "primary keepalive: reply flag %u is not 0 or 1",
                                reply);
        if (rb_remaining(&r) != 0)
            return rb_error_set(err, r.pos,
                                "primary keepalive: %zu unexpected trailing byte(s)",
                                rb_remaining(&r));
        out->reply_requested = reply == 1;
        return true;
    }
    default:
        return rb_error_set(err, 0, "unknown replication frame type 0x%02x",
                            kind);
    }
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

/* 'r' Int64 written, Int64 flushed, Int64 applied, Int64 clock, Byte1 reply */
size_t frame_encode_status(uint8_t out[FRAME_STATUS_LEN], lsn_t written,
                           lsn_t flushed, lsn_t applied, int64_t now_pg_us,
                           bool reply_requested)
{
    out[0] = 'r';
    put_u64(out + 1, written);
    put_u64(out + 9, flushed);
    put_u64(out + 17, applied);
    put_u64(out + 25, (uint64_t)now_pg_us);
    out[33] = reply_requested ? 1 : 0;
    return FRAME_STATUS_LEN;
}

int64_t frame_pgtime_from_unix_us(int64_t unix_us)
{
    return unix_us - FRAME_PG_EPOCH_OFFSET_S * INT64_C(1000000);
}

/* A time off the wire near INT64_MAX (infinity, or damage) saturates. */
int64_t frame_pgtime_to_unix_us(int64_t pg_us)
{
    const int64_t offset = FRAME_PG_EPOCH_OFFSET_S * INT64_C(1000000);
    return pg_us > INT64_MAX - offset ? INT64_MAX : pg_us + offset;
}
