/*
 * fuzz_decoder: libFuzzer target for the frame and pgoutput decoders.
 *
 * The input is a sequence of records, [Int16 big-endian length][frame],
 * each a CopyData payload from the server. They go through frame_decode
 * and, for XLogData, pgo_decode on one decoder, so what a record leaves in
 * the decoder (relations, types, an open streamed block) meets the next.
 * Every input runs twice: protocol 3, and protocol 4 with the Stream Abort
 * fields, which read Stream Abort differently.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "decoder/frame.h"
#include "decoder/pgoutput.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Where touched bytes go, so the reads cannot be optimised away. */
static volatile unsigned touched;

static void touch_bytes(const void *p, size_t n)
{
    const uint8_t *b = p;
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += b[i];
    touched += sum;
}

static void touch_str(const char *s)
{
    touch_bytes(s, strlen(s) + 1);
}

static void touch_tuple(const pgo_tuple *t)
{
    for (unsigned i = 0; i < t->ncols; i++)
        touch_bytes(t->cols[i].data, t->cols[i].len);
}

static void touch_relation(const pgo_relation *rel)
{
    touch_str(rel->nspname);
    touch_str(rel->relname);
    for (unsigned i = 0; i < rel->ncols; i++)
        touch_str(rel->cols[i].name);
}

/* Reads everything a decoded message points at, for the sanitizers. */
static void touch(const pgo_msg *m)
{
    switch (m->kind) {
    case PGO_ORIGIN:
        touch_str(m->origin.name);
        break;
    case PGO_RELATION:
        touch_relation(m->relation);
        break;
    case PGO_TYPE:
        touch_str(m->type.nspname);
        touch_str(m->type.typname);
        break;
    case PGO_INSERT:
    case PGO_UPDATE:
    case PGO_DELETE:
        touch_relation(m->change.rel);
        if (m->change.old_kind)
            touch_tuple(&m->change.old_tuple);
        if (m->kind != PGO_DELETE)
            touch_tuple(&m->change.new_tuple);
        break;
    case PGO_TRUNCATE:
        for (uint32_t i = 0; i < m->truncate.nrels; i++)
            touch_relation(m->truncate.rels[i]);
        break;
    case PGO_MESSAGE:
        touch_str(m->message.prefix);
        touch_bytes(m->message.content, m->message.len);
        break;
    case PGO_BEGIN_PREPARE:
    case PGO_PREPARE:
    case PGO_COMMIT_PREPARED:
    case PGO_STREAM_PREPARE:
        touch_str(m->prepare.gid);
        break;
    case PGO_ROLLBACK_PREPARED:
        touch_str(m->rollback_prepared.gid);
        break;
    default:
        break;
    }
}

/* A failure must say where, inside what was given. */
static void check_error(const rb_error *err, size_t len)
{
    if (err->offset > len || err->msg[0] == '\0')
        __builtin_trap();
}

static void decode_record(pgo_decoder *dec, const uint8_t *rec, size_t len)
{
    /* An exact copy, so reading past the record is an overflow. */
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return;
    memcpy(buf, rec, len);
    frame f;
    pgo_msg m;
    rb_error err = {0};
    if (!frame_decode(buf, len, &f, &err))
        check_error(&err, len);
    else if (f.kind == FRAME_XLOGDATA) {
        if (pgo_decode(dec, f.data, f.data_len, &m, &err))
            touch(&m);
        else
            check_error(&err, f.data_len);
    }
    free(buf);
}

static void run(const pgo_options *opts, const uint8_t *data, size_t size)
{
    pgo_decoder *dec = pgo_new(opts);
    if (!dec)
        __builtin_trap();
    size_t pos = 0;
    while (size - pos >= 2) {
        size_t len = (size_t)data[pos] << 8 | data[pos + 1];
        pos += 2;
        if (len > size - pos)
            len = size - pos;
        decode_record(dec, data + pos, len);
        pos += len;
    }
    pgo_free(dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const pgo_options variants[] = {
        {.proto_version = 3},
        {.proto_version = 4, .abort_info = true},
    };
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++)
        run(&variants[i], data, size);
    return 0;
}
