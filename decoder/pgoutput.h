/*
 * pgoutput: the messages of PostgreSQL's pgoutput plugin (protocol versions
 * 1 to 4) turned into typed events. Pure: bytes in, events out, no I/O.
 *
 * One pgo_decode() call reads one message (the payload of one XLogData
 * frame, or one row of pg_logical_slot_peek_binary_changes). Strings and
 * tuple values in the event point into the input buffer and the decoder's
 * scratch space: they are valid until the next pgo_decode() call. Relation
 * entries live in the decoder's cache until a new Relation message for the
 * same OID replaces them, or pgo_reset()/pgo_free().
 *
 * The decoder keeps the state the wire format needs: whether it is inside
 * a streamed block (Stream Start .. Stream Stop), where changes carry the
 * xid of the (sub)transaction that made them.
 */
#ifndef CLEAVE_DECODER_PGOUTPUT_H
#define CLEAVE_DECODER_PGOUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decoder/lsn.h"
#include "decoder/rdbuf.h"

typedef enum pgo_kind {
    PGO_BEGIN = 'B',
    PGO_COMMIT = 'C',
    PGO_ORIGIN = 'O',
    PGO_RELATION = 'R',
    PGO_TYPE = 'Y',
    PGO_INSERT = 'I',
    PGO_UPDATE = 'U',
    PGO_DELETE = 'D',
    PGO_TRUNCATE = 'T',
    PGO_MESSAGE = 'M',
    PGO_STREAM_START = 'S',
    PGO_STREAM_STOP = 'E',
    PGO_STREAM_COMMIT = 'c',
    PGO_STREAM_ABORT = 'A',
    PGO_BEGIN_PREPARE = 'b',
    PGO_PREPARE = 'P',
    PGO_COMMIT_PREPARED = 'K',
    PGO_ROLLBACK_PREPARED = 'r',
    PGO_STREAM_PREPARE = 'p',
} pgo_kind;

/* Column flag in a Relation message: the column is part of the key. */
#define PGO_COLUMN_KEY 1
/* Truncate options. */
#define PGO_TRUNCATE_CASCADE 1
#define PGO_TRUNCATE_RESTART_IDENTITY 2
/* Logical message flag: transactional. */
#define PGO_MESSAGE_TRANSACTIONAL 1
/* Protocol versions this decoder reads. */
#define PGO_PROTO_MIN 1
#define PGO_PROTO_MAX 4

/* One TupleData column: 'n' null, 'u' unchanged TOAST, 't' text, 'b' binary. */
typedef struct pgo_value {
    char kind;
    uint32_t len;          /* 't', 'b' */
    const uint8_t *data;   /* 't', 'b': in the input buffer, not terminated */
} pgo_value;

typedef struct pgo_tuple {
    uint16_t ncols;
    const pgo_value *cols;
} pgo_tuple;

typedef struct pgo_column {
    uint8_t flags;         /* PGO_COLUMN_KEY */
    char *name;
    uint32_t type_oid;
    int32_t typmod;
} pgo_column;

typedef struct pgo_relation {
    uint32_t oid;
    char *nspname;
    char *relname;
    char replident;        /* 'd' default, 'n' nothing, 'f' full, 'i' index */
    uint16_t ncols;
    pgo_column *cols;
} pgo_relation;

typedef struct pgo_msg {
    pgo_kind kind;
    /*
     * The transaction id where the message carries one: Begin, Begin
     * Prepare, Prepare, Commit/Rollback Prepared, Stream Start/Commit/
     * Abort/Prepare, and every message inside a streamed block (there the
     * subtransaction's xid where a subtransaction made the change). 0
     * otherwise.
     */
    uint32_t xid;
    bool streamed;         /* read inside Stream Start .. Stream Stop */
    union {
        struct {           /* B */
            lsn_t final_lsn;
            int64_t commit_time;
        } begin;
        struct {           /* C, c */
            uint8_t flags;
            lsn_t commit_lsn;
            lsn_t end_lsn;
            int64_t commit_time;
        } commit;
        struct {           /* O */
            lsn_t commit_lsn;
            const char *name;
        } origin;
        const pgo_relation *relation;  /* R: the new cache entry */
        struct {           /* Y */
            uint32_t oid;
            const char *nspname;
            const char *typname;
        } type;
        struct {           /* I, U, D */
            const pgo_relation *rel;
            char old_kind; /* 0 (none), 'K' key columns, 'O' old row */
            pgo_tuple old_tuple;
            pgo_tuple new_tuple;  /* I, U */
        } change;
        struct {           /* T */
            uint8_t options;
            uint32_t nrels;
            const pgo_relation *const *rels;
        } truncate;
        struct {           /* M */
            uint8_t flags;
            lsn_t lsn;
            const char *prefix;
            uint32_t len;
            const uint8_t *content;
        } message;
        struct {           /* S */
            bool first_segment;
        } stream_start;
        struct {           /* A */
            uint32_t subxid;
            lsn_t abort_lsn;       /* only with abort_info, else 0 */
            int64_t abort_time;    /* only with abort_info, else 0 */
        } stream_abort;
        struct {           /* b, P, K, p */
            uint8_t flags;
            lsn_t lsn;             /* prepare LSN (b, P, p), commit LSN (K) */
            lsn_t end_lsn;
            int64_t time;          /* prepare time (b, P, p), commit time (K) */
            const char *gid;
        } prepare;
        struct {           /* r */
            uint8_t flags;
            lsn_t prepare_end_lsn;
            lsn_t rollback_end_lsn;
            int64_t prepare_time;
            int64_t rollback_time;
            const char *gid;
        } rollback_prepared;
    };
} pgo_msg;

typedef struct pgo_options {
    int proto_version;     /* PGO_PROTO_MIN..PGO_PROTO_MAX */
    /*
     * Stream Abort carries the abort LSN and time (protocol 4 with
     * streaming = parallel).
     */
    bool abort_info;
} pgo_options;

typedef struct pgo_decoder pgo_decoder;

/* NULL only when out of memory or the options are out of range. */
pgo_decoder *pgo_new(const pgo_options *opts);
void pgo_free(pgo_decoder *dec);
/* Forgets the relation cache and the stream state (after a reconnect). */
void pgo_reset(pgo_decoder *dec);

/*
 * Decodes one message. On failure returns false with err naming the
 * message, the offset in it and what was wrong; the decoder's cache is
 * left as it was before the call.
 */
bool pgo_decode(pgo_decoder *dec, const uint8_t *buf, size_t len,
                pgo_msg *out, rb_error *err);

/* The cached relation, or NULL. */
const pgo_relation *pgo_relation_get(const pgo_decoder *dec, uint32_t oid);
/* The type a Type message named, or NULL when none did. */
bool pgo_type_get(const pgo_decoder *dec, uint32_t oid, const char **nspname,
                  const char **typname);

/* "Begin", "Insert", ...; "unknown" for anything else. */
const char *pgo_kind_name(int kind);

/*
 * The highest protocol version both this decoder and a server of the given
 * server_version_num speak (PostgreSQL 14: 2, 15: 3, 16 and later: 4);
 * 0 when the server has no pgoutput (before 10).
 */
int pgo_proto_for_server(int server_version_num);

#endif
