/*
 * rdbuf: a bounds-checked big-endian reader over one message.
 *
 * Every read checks the length first. A failed read returns 0 (or NULL),
 * sets a sticky flag and remembers the offset, so a message reader can do
 * all its reads and check once at the end: there is no path that reads
 * past the buffer, and none that aborts.
 */
#ifndef CLEAVE_DECODER_RDBUF_H
#define CLEAVE_DECODER_RDBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rb_reader {
    const uint8_t *buf;
    size_t len;
    size_t pos;
    bool failed;
    size_t fail_at;   /* offset of the first read that did not fit */
    size_t fail_need; /* bytes it needed */
} rb_reader;

/* Where a decode failed and why; offset is from the start of the message. */
typedef struct rb_error {
    size_t offset;
    char msg[192];
} rb_error;

void rb_init(rb_reader *r, const void *buf, size_t len);
uint8_t rb_u8(rb_reader *r);
uint16_t rb_u16(rb_reader *r);
uint32_t rb_u32(rb_reader *r);
uint64_t rb_u64(rb_reader *r);
int32_t rb_i32(rb_reader *r);
int64_t rb_i64(rb_reader *r);
/* n bytes in place; NULL when fewer are left. */
const uint8_t *rb_bytes(rb_reader *r, size_t n);
/* A NUL-terminated string in place; NULL when no NUL is left in the buffer. */
const char *rb_cstr(rb_reader *r);
size_t rb_remaining(const rb_reader *r);
bool rb_ok(const rb_reader *r);

/* Record an error at an offset, printf-style. Always returns false. */
bool rb_error_set(rb_error *err, size_t offset, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Turn a failed reader into an error naming what was being read. */
bool rb_error_short(rb_error *err, const rb_reader *r, const char *what);

#endif
