/*
 * dbz: cleave's change events in Debezium's PostgreSQL JSON format
 * (PRODUCT.md §5), built with jansson. Pure: no I/O, no Kafka.
 *
 * Values render as Debezium renders them with decimal.handling.mode=string,
 * time.precision.mode=isostring and binary.handling.mode=base64, from the
 * text form pgoutput sends and the column's type OID (built-in types; any
 * other type is its text form).
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

/*
 * A row as a JSON object, column name to value: 'n' null, 'u' (unchanged
 * TOAST) DBZ_UNAVAILABLE, 't' dbz_value. `key_only` keeps the key columns.
 */
json_t *dbz_row(const sink_rel *rel, const sink_value *vals, bool key_only);

/*
 * The message key: the key columns of vals as an object; JSON null when
 * the relation has no key columns or its replica identity is FULL (every
 * column flagged) with no primary key known: Debezium's null key.
 */
json_t *dbz_key(const sink_rel *rel, const sink_value *vals);

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

/* Base64 (RFC 4648, padded), malloc'd and NUL-terminated. */
char *dbz_base64(const uint8_t *data, size_t len);

/* Serialises compactly (malloc'd, *len set); NULL when out of memory. */
char *dbz_dump(const json_t *j, size_t *len);

#endif
