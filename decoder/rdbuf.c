/* rdbuf: bounds-checked big-endian reads; see rdbuf.h. */
#include "decoder/rdbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void rb_init(rb_reader *r, const void *buf, size_t len)
{
    r->buf = buf;
    r->len = buf ? len : 0;
    r->pos = 0;
    r->failed = false;
    r->fail_at = 0;
    r->fail_need = 0;
}

size_t rb_remaining(const rb_reader *r)
{
    return r->len - r->pos;
}

bool rb_ok(const rb_reader *r)
{
    return !r->failed;
}

/* Reserve n bytes; on failure the reader stays failed and reads nothing. */
static const uint8_t *take(rb_reader *r, size_t n)
{
    if (r->failed)
        return NULL;
    if (n > rb_remaining(r)) {
        r->failed = true;
        r->fail_at = r->pos;
        r->fail_need = n;
        return NULL;
    }
    const uint8_t *p = r->buf + r->pos;
    r->pos += n;
    return p;
}

uint8_t rb_u8(rb_reader *r)
{
    const uint8_t *p = take(r, 1);
    return p ? p[0] : 0;
}

uint16_t rb_u16(rb_reader *r)
{
    const uint8_t *p = take(r, 2);
    return p ? (uint16_t)((p[0] << 8) | p[1]) : 0;
}

uint32_t rb_u32(rb_reader *r)
{
    const uint8_t *p = take(r, 4);
    if (!p)
        return 0;
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

uint64_t rb_u64(rb_reader *r)
{
    const uint8_t *p = take(r, 8);
    uint64_t v = 0;
    for (int i = 0; p && i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

int32_t rb_i32(rb_reader *r)
{
    return (int32_t)rb_u32(r);
}

int64_t rb_i64(rb_reader *r)
{
    return (int64_t)rb_u64(r);
}

const uint8_t *rb_bytes(rb_reader *r, size_t n)
{
    return take(r, n);
}

const char *rb_cstr(rb_reader *r)
{
    if (r->failed)
        return NULL;
    const uint8_t *start = r->buf + r->pos;
    const uint8_t *nul = memchr(start, '\0', rb_remaining(r));
    if (!nul) {
        r->failed = true;
        r->fail_at = r->pos;
        r->fail_need = rb_remaining(r) + 1;
        return NULL;
    }
    r->pos += (size_t)(nul - start) + 1;
    return (const char *)start;
}

bool rb_error_set(rb_error *err, size_t offset, const char *fmt, ...)
{
    if (!err)
        return false;
    va_list ap;
    va_start(ap, fmt);
    err->offset = offset;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return false;
}

bool rb_error_short(rb_error *err, const rb_reader *r, const char *what)
{
    return rb_error_set(err, r->fail_at,
                        "%s: message ends at offset %zu, %zu more byte(s) needed",
                        what, r->fail_at, r->fail_need - (r->len - r->fail_at));
}
