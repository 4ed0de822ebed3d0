/*
 * pgoutput: one pgoutput message in, one pgo_msg out; see pgoutput.h.
 *
 * One reader per message, in wire order, each with its layout above it.
 * Readers only read and check: what a message does to the decoder (a new
 * cache entry, entering or leaving a streamed block) is applied by
 * pgo_decode once the whole message has been accepted, so a message that
 * fails anywhere, even in its last byte, leaves the decoder as it was.
 *
 * Notation: Int8/16/32/64 are big-endian, String is NUL-terminated, [xid]
 * is an Int32 present only inside a streamed block.
 */
#include "decoder/pgoutput.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decoder/relcache.h"

/* PostgreSQL's MaxTupleAttributeNumber: no relation can have more. */
#define PGO_MAX_COLUMNS 1664

/* The wire sends "" for pg_catalog to save space. */
static const char pgo_catalog[] = "pg_catalog";

/* A Type message's cache entry; the strings follow it in the block. */
typedef struct pgo_type {
    char *nspname;
    char *typname;
} pgo_type;

enum { PGO_OLD, PGO_NEW };

struct pgo_decoder {
    pgo_options opts;
    bool in_stream;          /* between Stream Start and Stream Stop */
    relcache rels;           /* pgo_relation blocks */
    relcache types;          /* pgo_type blocks */
    pgo_value *vals[2];      /* scratch for the old and the new tuple */
    size_t vals_cap[2];
    const pgo_relation **trunc;  /* scratch for a Truncate's relations */
    size_t trunc_cap;
};

/* One message being read. */
typedef struct pgo_in {
    pgo_decoder *dec;
    rb_reader r;
    pgo_msg *m;
    rb_error *err;
    void *pending;           /* a new cache entry, stored on acceptance */
} pgo_in;

/* ---- errors ---------------------------------------------------------- */

static bool short_read(pgo_in *in)
{
    return rb_error_short(in->err, &in->r, pgo_kind_name(in->m->kind));
}

/* All reads so far fit: true, else the error for the first that did not. */
static bool read_ok(pgo_in *in)
{
    return rb_ok(&in->r) || short_read(in);
}

__attribute__((format(printf, 3, 4)))
static bool fail_at(pgo_in *in, size_t offset, const char *fmt, ...)
{
    char text[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    return rb_error_set(in->err, offset, "%s: %s",
                        pgo_kind_name(in->m->kind), text);
}

/* A byte for an error message: 'N' when printable, 0x00 otherwise. */
static const char *byte_repr(uint8_t b, char buf[8])
{
    if (b >= 0x20 && b < 0x7f)
        snprintf(buf, 8, "'%c'", b);
    else
        snprintf(buf, 8, "0x%02x", b);
    return buf;
}

/* ---- shared fields ---------------------------------------------------- */

/* Flags that PostgreSQL sends as 0 and rejects otherwise (proto.c). */
static bool read_zero_flags(pgo_in *in, uint8_t *flags)
{
    size_t at = in->r.pos;
    *flags = rb_u8(&in->r);
    if (!read_ok(in))
        return false;
    if (*flags != 0)
        return fail_at(in, at, "unrecognized flags %u", *flags);
    return true;
}

/* An LSN that PostgreSQL refuses to accept as 0 (proto.c). */
static bool read_lsn_set(pgo_in *in, lsn_t *lsn, const char *what)
{
    size_t at = in->r.pos;
    *lsn = rb_u64(&in->r);
    if (!read_ok(in))
        return false;
    if (*lsn == LSN_INVALID)
        return fail_at(in, at, "%s not set", what);
    return true;
}

/* A relation OID that must be in the cache. */
static const pgo_relation *read_relation_ref(pgo_in *in)
{
    size_t at = in->r.pos;
    uint32_t oid = rb_u32(&in->r);
    if (!read_ok(in))
        return NULL;
    const pgo_relation *rel = relcache_get(&in->dec->rels, oid);
    if (!rel)
        fail_at(in, at, "unknown relation OID %u", oid);
    return rel;
}

/* A namespace as sent; "" stands for pg_catalog. */
static const char *namespace_name(const char *wire)
{
    return wire[0] ? wire : pgo_catalog;
}

/* ---- TupleData -------------------------------------------------------- */

/* Scratch for n values, grown only when a wider relation shows up. */
static pgo_value *value_scratch(pgo_decoder *dec, int slot, size_t n)
{
    if (n > dec->vals_cap[slot]) {
        size_t ncap = dec->vals_cap[slot] * 2;
        if (ncap < n)
            ncap = n < 16 ? 16 : n;
        pgo_value *v = realloc(dec->vals[slot], ncap * sizeof *v);
        if (!v)
            return NULL;
        dec->vals[slot] = v;
        dec->vals_cap[slot] = ncap;
    }
    return dec->vals[slot];
}

/*
 * One column: Byte1 kind, then for 't' (text) and 'b' (binary) Int32 len
 * and Byte[len]; 'n' (null) and 'u' (unchanged TOAST) have nothing more.
 */
static bool read_value(pgo_in *in, unsigned col, pgo_value *v)
{
    rb_reader *r = &in->r;
    size_t at = r->pos;
    uint8_t kind = rb_u8(r);
    *v = (pgo_value){.kind = (char)kind};
    switch (kind) {
    case 'n':
    case 'u':
        return true;
    case 't':
    case 'b': {
        size_t len_at = r->pos;
        int32_t len = rb_i32(r);
        if (!read_ok(in))
            return false;
        if (len < 0)
            return fail_at(in, len_at, "column %u: negative value length %d",
                           col + 1, len);
        v->len = (uint32_t)len;
        v->data = rb_bytes(r, (size_t)len);
        return read_ok(in);
    }
    default: {
        char b[8];
        if (!read_ok(in))
            return false;
        return fail_at(in, at,
                       "column %u: unrecognized data representation type %s",
                       col + 1, byte_repr(kind, b));
    }
    }
}

/* TupleData: Int16 ncols, then ncols columns (read_value). */
static bool read_tuple(pgo_in *in, const pgo_relation *rel, int slot,
                       pgo_tuple *t)
{
    size_t at = in->r.pos;
    uint16_t ncols = rb_u16(&in->r);
    if (!read_ok(in))
        return false;
    if (ncols != rel->ncols)
        return fail_at(in, at,
                       "tuple has %u column(s), relation %s.%s (OID %u) has %u",
                       ncols, rel->nspname, rel->relname, rel->oid, rel->ncols);
    pgo_value *vals = value_scratch(in->dec, slot, ncols);
    if (!vals && ncols > 0)
        return fail_at(in, at, "out of memory for %u column(s)", ncols);
    for (unsigned i = 0; i < ncols; i++) {
        if (!read_value(in, i, &vals[i]))
            return false;
    }
    t->ncols = ncols;
    t->cols = vals;
    return true;
}

/* The Byte1 before a tuple; *action is 0 when the message ended. */
static bool read_action(pgo_in *in, uint8_t *action, size_t *at)
{
    *at = in->r.pos;
    *action = rb_u8(&in->r);
    return read_ok(in);
}

static bool bad_action(pgo_in *in, size_t at, uint8_t action,
                       const char *expected)
{
    char b[8];
    return fail_at(in, at, "expected %s, got %s", expected,
                   byte_repr(action, b));
}

/* ---- the messages, in wire order ------------------------------------- */

/* Begin: 'B', Int64 final LSN, Int64 commit time, Int32 xid */
static bool pgo_read_begin(pgo_in *in)
{
    pgo_msg *m = in->m;
    if (!read_lsn_set(in, &m->begin.final_lsn, "final LSN"))
        return false;
    m->begin.commit_time = rb_i64(&in->r);
    m->xid = rb_u32(&in->r);
    return read_ok(in);
}

/* Commit: 'C', Int8 flags (0), Int64 commit LSN, Int64 end LSN,
 * Int64 commit time */
static bool pgo_read_commit(pgo_in *in)
{
    pgo_msg *m = in->m;
    if (!read_zero_flags(in, &m->commit.flags))
        return false;
    m->commit.commit_lsn = rb_u64(&in->r);
    m->commit.end_lsn = rb_u64(&in->r);
    m->commit.commit_time = rb_i64(&in->r);
    return read_ok(in);
}

/* Origin: 'O', Int64 commit LSN on the origin, String origin name */
static bool pgo_read_origin(pgo_in *in)
{
    pgo_msg *m = in->m;
    m->origin.commit_lsn = rb_u64(&in->r);
    m->origin.name = rb_cstr(&in->r);
    return read_ok(in);
}

/* Appends a string to a relation's block; returns the copy. */
static char *block_copy(char **cursor, const char *s)
{
    size_t n = strlen(s) + 1;
    char *copy = memcpy(*cursor, s, n);
    *cursor += n;
    return copy;
}

/*
 * The columns of a Relation: per column Int8 flags (1: part of the key),
 * String name, Int32 type OID, Int32 typmod. Names go to *cursor.
 */
static bool read_columns(pgo_in *in, pgo_relation *rel, char **cursor)
{
    rb_reader *r = &in->r;
    for (unsigned i = 0; i < rel->ncols; i++) {
        pgo_column *col = &rel->cols[i];
        size_t at = r->pos;
        col->flags = rb_u8(r);
        const char *name = rb_cstr(r);
        col->type_oid = rb_u32(r);
        col->typmod = rb_i32(r);
        if (!read_ok(in))
            return false;
        if (col->flags & ~PGO_COLUMN_KEY)
            return fail_at(in, at, "column %u: unrecognized flags %u", i + 1,
                           col->flags);
        col->name = block_copy(cursor, name);
    }
    return true;
}

/*
 * One block holding the relation, its columns and every string. The
 * strings cannot need more than the rest of the message plus what the
 * two names and a "pg_catalog" take.
 */
static pgo_relation *relation_alloc(pgo_in *in, uint16_t ncols,
                                    const char *nsp, const char *relname,
                                    char **cursor)
{
    size_t strings = strlen(nsp) + 1 + strlen(relname) + 1 +
                     rb_remaining(&in->r);
    size_t head = sizeof(pgo_relation) + ncols * sizeof(pgo_column);
    pgo_relation *rel = malloc(head + strings);
    if (!rel)
        return NULL;
    rel->cols = (pgo_column *)(rel + 1);
    rel->ncols = ncols;
    *cursor = (char *)rel + head;
    rel->nspname = block_copy(cursor, nsp);
    rel->relname = block_copy(cursor, relname);
    return rel;
}

/*
 * Relation: 'R', [xid], Int32 OID, String namespace ("" for pg_catalog),
 * String name, Int8 replica identity (d, n, f, i), Int16 ncols, columns.
 */
static bool pgo_read_relation(pgo_in *in)
{
    rb_reader *r = &in->r;
    uint32_t oid = rb_u32(r);
    const char *nsp = rb_cstr(r);
    const char *relname = rb_cstr(r);
    size_t ident_at = r->pos;
    uint8_t replident = rb_u8(r);
    size_t ncols_at = r->pos;
    uint16_t ncols = rb_u16(r);
    if (!read_ok(in))
        return false;
    if (!memchr("dnfi", replident, 4)) {
        char b[8];
        return fail_at(in, ident_at, "unrecognized replica identity %s",
                       byte_repr(replident, b));
    }
    if (ncols > PGO_MAX_COLUMNS)
        return fail_at(in, ncols_at, "%u columns, more than the %d allowed",
                       ncols, PGO_MAX_COLUMNS);
    char *cursor;
    pgo_relation *rel = relation_alloc(in, ncols, namespace_name(nsp),
                                       relname, &cursor);
    if (!rel)
        return fail_at(in, ncols_at, "out of memory");
    in->pending = rel;
    rel->oid = oid;
    rel->replident = (char)replident;
    in->m->relation = rel;
    return read_columns(in, rel, &cursor);
}

/* Type: 'Y', [xid], Int32 OID, String namespace ("" for pg_catalog),
 * String name */
static bool pgo_read_type(pgo_in *in)
{
    pgo_msg *m = in->m;
    m->type.oid = rb_u32(&in->r);
    const char *nsp = rb_cstr(&in->r);
    const char *typname = rb_cstr(&in->r);
    if (!read_ok(in))
        return false;
    nsp = namespace_name(nsp);
    pgo_type *t = malloc(sizeof *t + strlen(nsp) + 1 + strlen(typname) + 1);
    if (!t)
        return fail_at(in, 0, "out of memory");
    in->pending = t;
    char *cursor = (char *)(t + 1);
    t->nspname = block_copy(&cursor, nsp);
    t->typname = block_copy(&cursor, typname);
    m->type.nspname = t->nspname;
    m->type.typname = t->typname;
    return true;
}

/* Insert: 'I', [xid], Int32 relation OID, Byte1 'N', TupleData */
static bool pgo_read_insert(pgo_in *in)
{
    pgo_msg *m = in->m;
    uint8_t action;
    size_t at;
    m->change.rel = read_relation_ref(in);
    if (!m->change.rel || !read_action(in, &action, &at))
        return false;
    if (action != 'N')
        return bad_action(in, at, action, "new tuple 'N'");
    return read_tuple(in, m->change.rel, PGO_NEW, &m->change.new_tuple);
}

/*
 * Update: 'U', [xid], Int32 relation OID, optionally Byte1 'K' (old key)
 * or 'O' (old row) and TupleData, then Byte1 'N' and TupleData.
 */
static bool pgo_read_update(pgo_in *in)
{
    pgo_msg *m = in->m;
    uint8_t action;
    size_t at;
    m->change.rel = read_relation_ref(in);
    if (!m->change.rel || !read_action(in, &action, &at))
        return false;
    if (action != 'K' && action != 'O' && action != 'N')
        return bad_action(in, at, action, "'K', 'O' or 'N'");
    if (action != 'N') {
        m->change.old_kind = (char)action;
        if (!read_tuple(in, m->change.rel, PGO_OLD, &m->change.old_tuple) ||
            !read_action(in, &action, &at))
            return false;
        if (action != 'N')
            return bad_action(in, at, action, "new tuple 'N'");
    }
    return read_tuple(in, m->change.rel, PGO_NEW, &m->change.new_tuple);
}

/* Delete: 'D', [xid], Int32 relation OID, Byte1 'K' or 'O', TupleData */
static bool pgo_read_delete(pgo_in *in)
{
    pgo_msg *m = in->m;
    uint8_t action;
    size_t at;
    m->change.rel = read_relation_ref(in);
    if (!m->change.rel || !read_action(in, &action, &at))
        return false;
    if (action != 'K' && action != 'O')
        return bad_action(in, at, action, "'K' or 'O'");
    m->change.old_kind = (char)action;
    return read_tuple(in, m->change.rel, PGO_OLD, &m->change.old_tuple);
}

/* Room for n relation pointers in the decoder's truncate scratch. */
static const pgo_relation **truncate_scratch(pgo_decoder *dec, size_t n)
{
    if (n > dec->trunc_cap) {
        size_t ncap = n < 16 ? 16 : n;
        const pgo_relation **p = realloc(dec->trunc, ncap * sizeof *p);
        if (!p)
            return NULL;
        dec->trunc = p;
        dec->trunc_cap = ncap;
    }
    return dec->trunc;
}

/* Truncate: 'T', [xid], Int32 nrels, Int8 options, Int32 OID x nrels */
static bool pgo_read_truncate(pgo_in *in)
{
    pgo_msg *m = in->m;
    rb_reader *r = &in->r;
    uint32_t nrels = rb_u32(r);
    size_t opt_at = r->pos;
    m->truncate.options = rb_u8(r);
    if (!read_ok(in))
        return false;
    if (m->truncate.options &
        ~(PGO_TRUNCATE_CASCADE | PGO_TRUNCATE_RESTART_IDENTITY))
        return fail_at(in, opt_at, "unrecognized options %u",
                       m->truncate.options);
    /* Check the count against the bytes before trusting it with memory. */
    if (nrels > rb_remaining(r) / 4)
        return fail_at(in, r->pos,
                       "message ends at offset %zu, %llu more byte(s) needed",
                       r->pos, (unsigned long long)nrels * 4 - rb_remaining(r));
    const pgo_relation **rels = truncate_scratch(in->dec, nrels);
    if (!rels && nrels > 0)
        return fail_at(in, r->pos, "out of memory for %u relations", nrels);
    for (uint32_t i = 0; i < nrels; i++) {
        if (!(rels[i] = read_relation_ref(in)))
            return false;
    }
    m->truncate.nrels = nrels;
    m->truncate.rels = rels;
    return true;
}

/*
 * Message: 'M', [xid], Int8 flags (1: transactional), Int64 LSN,
 * String prefix, Int32 length, Byte[length] content
 */
static bool pgo_read_message(pgo_in *in)
{
    pgo_msg *m = in->m;
    rb_reader *r = &in->r;
    size_t flags_at = r->pos;
    m->message.flags = rb_u8(r);
    m->message.lsn = rb_u64(r);
    m->message.prefix = rb_cstr(r);
    size_t len_at = r->pos;
    int32_t len = rb_i32(r);
    if (!read_ok(in))
        return false;
    if (m->message.flags & ~PGO_MESSAGE_TRANSACTIONAL)
        return fail_at(in, flags_at, "unrecognized flags %u",
                       m->message.flags);
    if (len < 0)
        return fail_at(in, len_at, "negative content length %d", len);
    m->message.len = (uint32_t)len;
    m->message.content = rb_bytes(r, (size_t)len);
    return read_ok(in);
}

/* Stream Start: 'S', Int32 xid, Int8 first segment (1) or not (0) */
static bool pgo_read_stream_start(pgo_in *in)
{
    pgo_msg *m = in->m;
    m->xid = rb_u32(&in->r);
    m->stream_start.first_segment = rb_u8(&in->r) == 1;
    return read_ok(in);
}

/* Stream Stop: 'E' and nothing else */
static bool pgo_read_stream_stop(pgo_in *in)
{
    (void)in;
    return true;
}

/* Stream Commit: 'c', Int32 xid, Int8 flags (0), Int64 commit LSN,
 * Int64 end LSN, Int64 commit time */
static bool pgo_read_stream_commit(pgo_in *in)
{
    pgo_msg *m = in->m;
    m->xid = rb_u32(&in->r);
    if (!read_zero_flags(in, &m->commit.flags))
        return false;
    m->commit.commit_lsn = rb_u64(&in->r);
    m->commit.end_lsn = rb_u64(&in->r);
    m->commit.commit_time = rb_i64(&in->r);
    return read_ok(in);
}

/*
 * Stream Abort: 'A', Int32 xid, Int32 subtransaction xid (the xid again
 * for the whole transaction); with abort_info also Int64 abort LSN and
 * Int64 abort time.
 */
static bool pgo_read_stream_abort(pgo_in *in)
{
    pgo_msg *m = in->m;
    m->xid = rb_u32(&in->r);
    m->stream_abort.subxid = rb_u32(&in->r);
    if (in->dec->opts.abort_info) {
        m->stream_abort.abort_lsn = rb_u64(&in->r);
        m->stream_abort.abort_time = rb_i64(&in->r);
    }
    return read_ok(in);
}

/* The fields Begin Prepare, Prepare, Commit Prepared and Stream Prepare
 * share after their flags: Int64 LSN, Int64 end LSN, Int64 time,
 * Int32 xid, String gid */
static bool read_prepare_fields(pgo_in *in, const char *lsn_name)
{
    pgo_msg *m = in->m;
    if (!read_lsn_set(in, &m->prepare.lsn, lsn_name) ||
        !read_lsn_set(in, &m->prepare.end_lsn, "end LSN"))
        return false;
    m->prepare.time = rb_i64(&in->r);
    m->xid = rb_u32(&in->r);
    m->prepare.gid = rb_cstr(&in->r);
    return read_ok(in);
}

/* Begin Prepare: 'b', Int64 prepare LSN, Int64 end LSN, Int64 prepare time,
 * Int32 xid, String gid */
static bool pgo_read_begin_prepare(pgo_in *in)
{
    return read_prepare_fields(in, "prepare LSN");
}

/* Prepare: 'P', Int8 flags (0), Int64 prepare LSN, Int64 end LSN,
 * Int64 prepare time, Int32 xid, String gid */
static bool pgo_read_prepare(pgo_in *in)
{
    return read_zero_flags(in, &in->m->prepare.flags) &&
           read_prepare_fields(in, "prepare LSN");
}

/* Commit Prepared: 'K', Int8 flags (0), Int64 commit LSN, Int64 end LSN,
 * Int64 commit time, Int32 xid, String gid */
static bool pgo_read_commit_prepared(pgo_in *in)
{
    return read_zero_flags(in, &in->m->prepare.flags) &&
           read_prepare_fields(in, "commit LSN");
}

/*
 * Rollback Prepared: 'r', Int8 flags (0), Int64 prepare end LSN,
 * Int64 rollback end LSN, Int64 prepare time, Int64 rollback time,
 * Int32 xid, String gid
 */
static bool pgo_read_rollback_prepared(pgo_in *in)
{
    pgo_msg *m = in->m;
    if (!read_zero_flags(in, &m->rollback_prepared.flags) ||
        !read_lsn_set(in, &m->rollback_prepared.prepare_end_lsn,
                      "prepare end LSN") ||
        !read_lsn_set(in, &m->rollback_prepared.rollback_end_lsn,
                      "rollback end LSN"))
        return false;
    m->rollback_prepared.prepare_time = rb_i64(&in->r);
    m->rollback_prepared.rollback_time = rb_i64(&in->r);
    m->xid = rb_u32(&in->r);
    m->rollback_prepared.gid = rb_cstr(&in->r);
    return read_ok(in);
}

/* Stream Prepare: 'p', laid out as Prepare */
static bool pgo_read_stream_prepare(pgo_in *in)
{
    return pgo_read_prepare(in);
}

/* ---- dispatch ---------------------------------------------------------- */

/* Where a message may appear relative to a streamed block. */
enum {
    PGO_ANYWHERE,
    PGO_OUTSIDE,         /* never between Stream Start and Stream Stop */
    PGO_INSIDE,          /* only between them */
    PGO_XID_INSIDE,      /* anywhere; inside, an Int32 xid follows the type */
};

typedef struct pgo_spec {
    bool (*read)(pgo_in *in);
    uint8_t min_proto;
    uint8_t where;
} pgo_spec;

static const pgo_spec pgo_specs[256] = {
    ['B'] = {pgo_read_begin, 1, PGO_OUTSIDE},
    ['C'] = {pgo_read_commit, 1, PGO_OUTSIDE},
    ['O'] = {pgo_read_origin, 1, PGO_ANYWHERE},
    ['R'] = {pgo_read_relation, 1, PGO_XID_INSIDE},
    ['Y'] = {pgo_read_type, 1, PGO_XID_INSIDE},
    ['I'] = {pgo_read_insert, 1, PGO_XID_INSIDE},
    ['U'] = {pgo_read_update, 1, PGO_XID_INSIDE},
    ['D'] = {pgo_read_delete, 1, PGO_XID_INSIDE},
    ['T'] = {pgo_read_truncate, 1, PGO_XID_INSIDE},
    ['M'] = {pgo_read_message, 1, PGO_XID_INSIDE},
    ['S'] = {pgo_read_stream_start, 2, PGO_OUTSIDE},
    ['E'] = {pgo_read_stream_stop, 2, PGO_INSIDE},
    ['c'] = {pgo_read_stream_commit, 2, PGO_OUTSIDE},
    ['A'] = {pgo_read_stream_abort, 2, PGO_OUTSIDE},
    ['b'] = {pgo_read_begin_prepare, 3, PGO_OUTSIDE},
    ['P'] = {pgo_read_prepare, 3, PGO_OUTSIDE},
    ['K'] = {pgo_read_commit_prepared, 3, PGO_OUTSIDE},
    ['r'] = {pgo_read_rollback_prepared, 3, PGO_OUTSIDE},
    ['p'] = {pgo_read_stream_prepare, 3, PGO_OUTSIDE},
};

/* Whether this message may come now, given the protocol and the block. */
static bool check_context(pgo_in *in, const pgo_spec *spec)
{
    const pgo_decoder *dec = in->dec;
    if (dec->opts.proto_version < spec->min_proto)
        return fail_at(in, 0, "not part of protocol version %d (needs %u)",
                       dec->opts.proto_version, spec->min_proto);
    if (spec->where == PGO_OUTSIDE && dec->in_stream)
        return fail_at(in, 0, "inside a streamed block");
    if (spec->where == PGO_INSIDE && !dec->in_stream)
        return fail_at(in, 0, "outside a streamed block");
    return true;
}

/* Applies an accepted message to the decoder; only the cache can fail. */
static bool apply(pgo_in *in)
{
    pgo_decoder *dec = in->dec;
    pgo_msg *m = in->m;
    switch (m->kind) {
    case PGO_RELATION:
        if (!relcache_put(&dec->rels, m->relation->oid, in->pending))
            return fail_at(in, 0, "out of memory");
        break;
    case PGO_TYPE:
        if (!relcache_put(&dec->types, m->type.oid, in->pending))
            return fail_at(in, 0, "out of memory");
        break;
    case PGO_STREAM_START:
        dec->in_stream = true;
        break;
    case PGO_STREAM_STOP:
        dec->in_stream = false;
        break;
    default:
        break;
    }
    in->pending = NULL;
    return true;
}

static bool decode(pgo_in *in)
{
    rb_reader *r = &in->r;
    uint8_t kind = rb_u8(r);
    if (!rb_ok(r))
        return rb_error_short(in->err, r, "pgoutput message");
    const pgo_spec *spec = &pgo_specs[kind];
    if (!spec->read) {
        char b[8];
        return rb_error_set(in->err, 0, "unknown pgoutput message type %s",
                            byte_repr(kind, b));
    }
    *in->m = (pgo_msg){.kind = (pgo_kind)kind,
                       .streamed = in->dec->in_stream};
    if (!check_context(in, spec))
        return false;
    if (spec->where == PGO_XID_INSIDE && in->dec->in_stream)
        in->m->xid = rb_u32(r);
    if (!spec->read(in))
        return false;
    if (rb_remaining(r) != 0)
        return fail_at(in, r->pos, "%zu unexpected trailing byte(s)",
                       rb_remaining(r));
    return apply(in);
}

bool pgo_decode(pgo_decoder *dec, const uint8_t *buf, size_t len,
                pgo_msg *out, rb_error *err)
{
    pgo_msg scratch;
    pgo_in in = {.dec = dec, .m = out ? out : &scratch, .err = err};
    rb_init(&in.r, buf, len);
    bool ok = decode(&in);
    free(in.pending);
    return ok;
}

/* ---- the decoder -------------------------------------------------------- */

pgo_decoder *pgo_new(const pgo_options *opts)
{
    if (!opts || opts->proto_version < PGO_PROTO_MIN ||
        opts->proto_version > PGO_PROTO_MAX)
        return NULL;
    /* Only protocol 4 has the abort fields. */
    if (opts->abort_info && opts->proto_version < 4)
        return NULL;
    pgo_decoder *dec = calloc(1, sizeof *dec);
    if (!dec)
        return NULL;
    dec->opts = *opts;
    relcache_init(&dec->rels);
    relcache_init(&dec->types);
    return dec;
}

void pgo_free(pgo_decoder *dec)
{
    if (!dec)
        return;
    relcache_free(&dec->rels);
    relcache_free(&dec->types);
    free(dec->vals[PGO_OLD]);
    free(dec->vals[PGO_NEW]);
    free(dec->trunc);
    free(dec);
}

void pgo_reset(pgo_decoder *dec)
{
    relcache_clear(&dec->rels);
    relcache_clear(&dec->types);
    dec->in_stream = false;
}

const pgo_relation *pgo_relation_get(const pgo_decoder *dec, uint32_t oid)
{
    return relcache_get(&dec->rels, oid);
}

bool pgo_type_get(const pgo_decoder *dec, uint32_t oid, const char **nspname,
                  const char **typname)
{
    const pgo_type *t = relcache_get(&dec->types, oid);
    if (!t)
        return false;
    if (nspname)
        *nspname = t->nspname;
    if (typname)
        *typname = t->typname;
    return true;
}

const char *pgo_kind_name(int kind)
{
    switch (kind) {
    case PGO_BEGIN: return "Begin";
    case PGO_COMMIT: return "Commit";
    case PGO_ORIGIN: return "Origin";
    case PGO_RELATION: return "Relation";
    case PGO_TYPE: return "Type";
    case PGO_INSERT: return "Insert";
    case PGO_UPDATE: return "Update";
    case PGO_DELETE: return "Delete";
    case PGO_TRUNCATE: return "Truncate";
    case PGO_MESSAGE: return "Message";
    case PGO_STREAM_START: return "Stream Start";
    case PGO_STREAM_STOP: return "Stream Stop";
    case PGO_STREAM_COMMIT: return "Stream Commit";
    case PGO_STREAM_ABORT: return "Stream Abort";
    case PGO_BEGIN_PREPARE: return "Begin Prepare";
    case PGO_PREPARE: return "Prepare";
    case PGO_COMMIT_PREPARED: return "Commit Prepared";
    case PGO_ROLLBACK_PREPARED: return "Rollback Prepared";
    case PGO_STREAM_PREPARE: return "Stream Prepare";
    default: return "unknown";
    }
}

int pgo_proto_for_server(int server_version_num)
{
    if (server_version_num >= 160000)
        return 4;
    if (server_version_num >= 150000)
        return 3;
    if (server_version_num >= 140000)
        return 2;
    if (server_version_num >= 100000)
        return 1;
    return 0;
}
