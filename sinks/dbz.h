/*
 * dbz: cleave's change events in Debezium's PostgreSQL JSON format
 * (PRODUCT.md §5), built with jansson. Pure: no I/O, no Kafka.
 *
 * Values render as Debezium renders them with decimal.handling.mode=string,
 * time.precision.mode=isostring and binary.handling.mode=base64, from the
 * text form pgoutput sends and the column's type OID (built-in types; any
 * other type is its text form); a dbz_mode chooses Debezium's other
 * decimal modes and, with Kafka Connect schemas, its adaptive times.
 */
#ifndef CLEAVE_SINKS_DBZ_H
#define CLEAVE_SINKS_DBZ_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "decoder/lsn.h"
#include "sinks/sink.h"

/* What Debezium puts in place of an unchanged TOAST value. */
#define DBZ_UNAVAILABLE "__debezium_unavailable_value"

/* The `source` block of an event. */
typedef struct dbz_source {
    const char *version;     /* cleave's version */
    const char *name;        /* the instance name (Debezium's topic.prefix) */
    const char *db;          /* the source database */
    const char *schema;      /* "" for messages */
    const char *table;       /* "" for messages */
    int64_t ts_ms;           /* source commit time, Unix ms */
    const char *snapshot;    /* "false", "true" or "last" */
    int64_t txid;            /* source.txId */
    lsn_t lsn;               /* source.lsn, as an integer */
    lsn_t last_commit_lsn;   /* first half of source.sequence; 0: null */
} dbz_source;

/*
 * Transaction metadata of one event (provide.transaction.metadata):
 * {"id": "<txid>:<lsn>", "total_order": n, "data_collection_order": m}.
 * NULL where not wanted.
 */
typedef struct dbz_txinfo {
    const char *id;
    int64_t total_order;
    int64_t data_collection_order;
} dbz_txinfo;

/* One value from its text form and its column's type OID; never NULL. */
json_t *dbz_value(uint32_t type_oid, const char *text, uint32_t len);

/* Debezium's decimal.handling.mode (kafka.decimal_handling). */
typedef enum dbz_decimal {
    DBZ_DECIMAL_STRING,      /* numeric as its text */
    DBZ_DECIMAL_DOUBLE,      /* a JSON number */
    DBZ_DECIMAL_PRECISE,     /* Connect's Decimal: base64 unscaled bytes */
} dbz_decimal;

/*
 * How values render. The zero value is the default above (string,
 * isostring). `adaptive` is Debezium's time.precision.mode=adaptive, which
 * kafka.schemas turns on so that the values match the schema's semantic
 * types: date as days since the epoch, time and timestamp as micro- (or,
 * with a precision of 3 or less, milli-) seconds, timetz in UTC, interval
 * as MicroDuration, money as a plain decimal, unchanged TOAST in a bytea
 * column as the base64 of DBZ_UNAVAILABLE.
 */
typedef struct dbz_mode {
    dbz_decimal decimal;
    bool adaptive;
} dbz_mode;

/* The same under a mode (NULL: the default) and the column's typmod. */
json_t *dbz_value_typed(const dbz_mode *m, uint32_t type_oid, int32_t typmod,
                        const char *text, uint32_t len);

/*
 * A row as a JSON object, column name to value: 'n' null, 'u' (unchanged
 * TOAST) DBZ_UNAVAILABLE, 't' dbz_value. `key_only` keeps the key columns.
 */
json_t *dbz_row(const sink_rel *rel, const sink_value *vals, bool key_only);
json_t *dbz_row_typed(const dbz_mode *m, const sink_rel *rel,
                      const sink_value *vals, bool key_only);

/*
 * The message key: the key columns of vals as an object (dbz_key_col);
 * JSON null when the relation has none: Debezium's null key.
 */
json_t *dbz_key(const sink_rel *rel, const sink_value *vals);
json_t *dbz_key_typed(const dbz_mode *m, const sink_rel *rel,
                      const sink_value *vals);

/*
 * Whether a column is in the events' key: the replica identity's, but
 * the primary key's under REPLICA IDENTITY FULL (which flags every column).
 */
bool dbz_key_col(const sink_rel *rel, const struct sink_col *col);
/*
 * Whether a relation's events have a key at all (dbz_key's rule); the
 * key schema exists only then.
 */
bool dbz_has_key(const sink_rel *rel);

/*
 * A numeric's typmod taken apart: false when it declares no scale
 * (numeric without (p,s): Debezium's VariableScaleDecimal).
 */
bool dbz_numeric_typmod(int32_t typmod, int *precision, int *scale);

/*
 * A change event's value: {"before", "after", "source", "op", "ts_ms"}
 * plus "transaction" when tx is not NULL. Steals before and after (either
 * may be NULL: JSON null). `op` is one of c u d r t. ts_ms is when cleave
 * made the event.
 */
json_t *dbz_envelope(char op, json_t *before, json_t *after,
                     const dbz_source *src, const dbz_txinfo *tx,
                     int64_t ts_ms);

/*
 * The same around a `source` block made once with dbz_source_json (and
 * shared, with json_incref, by the events of one transaction and table);
 * steals before, after and source.
 */
json_t *dbz_source_json(const dbz_source *src);
json_t *dbz_envelope_src(char op, json_t *before, json_t *after,
                         json_t *source, const dbz_txinfo *tx, int64_t ts_ms);

/*
 * A logical message event: key {"prefix": p}; value {"op": "m", "ts_ms",
 * "source", "message": {"prefix", "content": base64}}.
 */
json_t *dbz_message_key(const char *prefix);
json_t *dbz_message(const char *prefix, const uint8_t *content, uint32_t len,
                    const dbz_source *src, int64_t ts_ms);

/*
 * Transaction metadata events (Debezium's {name}.transaction topic):
 * key {"id"}; BEGIN value {"status": "BEGIN", "id", "event_count": null,
 * "data_collections": null, "ts_ms"}; END value with "event_count" and
 * "data_collections": [{"data_collection": "schema.table",
 * "event_count": n}], from parallel arrays of n_colls entries.
 */
json_t *dbz_txn_key(const char *id);
json_t *dbz_txn_begin(const char *id, int64_t ts_ms);
json_t *dbz_txn_end(const char *id, int64_t ts_ms, int64_t event_count,
                    const char *const *collections, const int64_t *counts,
                    size_t n_colls);

/*
 * The topic for a table from the template ({name} {service} {schema}
 * {table}), with every character Kafka forbids in a topic name (anything
 * but ASCII letters, digits, '.', '_' and '-') replaced by '_' and the
 * result cut to 249 bytes. malloc'd; NULL when out of memory.
 */
char *dbz_topic(const char *tmpl, const char *name, const char *service,
                const char *schema, const char *table);

/*
 * Kafka Connect schemas (kafka.schemas), in the JsonConverter's form, for
 * the events above under mode m: Debezium's field types and semantic
 * names. `allowed` (NULL, or rel->ncols entries, NULL where none) gives an
 * enum column's labels, comma-separated: io.debezium.data.Enum.
 *
 * dbz_type_schema: one column's (without its "field").
 * dbz_key_schema: "<server>.<schema>.<table>.Key"; JSON null when the
 * events have a null key (dbz_has_key).
 * dbz_envelope_schema: "<server>.<schema>.<table>.Envelope", with before
 * and after as "...Value", source, op, ts_ms and the transaction block.
 * dbz_connect: {"schema": schema, "payload": payload}; schema borrowed
 * (a schema is shared by every event of its relation version), payload
 * stolen.
 * NULL when out of memory.
 */
json_t *dbz_type_schema(const dbz_mode *m, uint32_t type_oid, int32_t typmod,
                        bool optional, const char *allowed);
json_t *dbz_key_schema(const dbz_mode *m, const char *server,
                       const sink_rel *rel, const char *const *allowed);
json_t *dbz_envelope_schema(const dbz_mode *m, const char *server,
                            const sink_rel *rel, const char *const *allowed);
json_t *dbz_connect(json_t *schema, json_t *payload);

/* The schemas of the message and transaction topics, which never change. */
typedef enum dbz_fixed {
    DBZ_SCHEMA_MESSAGE_KEY,  /* io.debezium.connector.postgresql.MessageKey */
    DBZ_SCHEMA_MESSAGE,      /* ...postgresql.MessageValue */
    DBZ_SCHEMA_TXN_KEY,      /* ...common.TransactionMetadataKey */
    DBZ_SCHEMA_TXN,          /* ...common.TransactionMetadataValue */
    DBZ_NFIXED,
} dbz_fixed;
json_t *dbz_fixed_schema(dbz_fixed which);

/* Base64 (RFC 4648, padded), malloc'd and NUL-terminated. */
char *dbz_base64(const uint8_t *data, size_t len);

/* Serialises compactly (malloc'd, *len set); NULL when out of memory. */
char *dbz_dump(const json_t *j, size_t *len);

/*
 * The change events again, written straight into a growing buffer with no
 * jansson tree: byte for byte what dbz_dump makes of dbz_row_typed,
 * dbz_key_typed, dbz_source_json and dbz_envelope_src, at a fraction of
 * the allocations (only floats, bytea, arrays and the modes' numbers still
 * go through a jansson value). Writes append; oom is sticky, checked once
 * at the end of an event. The buffer is the caller's to reuse.
 */
typedef struct dbz_out {
    char *data;              /* NULL until the first write */
    size_t len, cap;
    bool oom;
} dbz_out;

void dbz_out_raw(dbz_out *o, const char *s, size_t n);
/* A row as dbz_row_typed renders it ("null" when vals is NULL). */
void dbz_out_row(dbz_out *o, const dbz_mode *m, const sink_rel *rel,
                 const sink_value *vals, bool key_only);
/* The key as dbz_key_typed renders it ("null" when it has none). */
void dbz_out_key_row(dbz_out *o, const dbz_mode *m, const sink_rel *rel,
                     const sink_value *vals);
void dbz_out_source(dbz_out *o, const dbz_source *src);
/*
 * A table's source block in one transaction, written once without the
 * LSN (dbz_srcblock_set ignores src->lsn) and finished with each event's
 * own by dbz_out_srcblock, as dbz_out_source would write it.
 */
typedef struct dbz_srcblock {
    dbz_out text;
    size_t cut;              /* where the LSN goes into source.sequence */
} dbz_srcblock;
void dbz_srcblock_set(dbz_srcblock *b, const dbz_source *src);
void dbz_out_srcblock(dbz_out *o, const dbz_srcblock *b, lsn_t lsn);
/* dbz_envelope_src's value with src finished at lsn. */
void dbz_out_envelope(dbz_out *o, const dbz_mode *m, char op,
                      const sink_rel *rel, const sink_value *before,
                      const sink_value *after, const dbz_srcblock *src,
                      lsn_t lsn, const dbz_txinfo *tx, int64_t ts_ms);
void dbz_out_free(dbz_out *o);

#endif
