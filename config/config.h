/*
 * config: cleave.yaml (PRODUCT.md §1) parsed with libyaml into typed
 * structs, then validated as a whole.
 *
 * Loading never half-succeeds: it returns a complete, validated cfg or NULL
 * with one error of the form "FILE:LINE:COLUMN: what was wrong, what was
 * expected". A reload parses into a new cfg and swaps only on success.
 * Nothing here connects to a database.
 */
#ifndef CLEAVE_CONFIG_CONFIG_H
#define CLEAVE_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Exit code for a configuration error (sysexits' EX_CONFIG). */
#define CFG_EXIT_CONFIG 78

/* Where something was written in the file, 1-based. */
typedef struct cfg_pos {
    int line;
    int col;
} cfg_pos;

/*
 * A table name as SQL reads it: unquoted parts folded to lower case,
 * quoted parts kept as written (with "" turned into "). schema is "public"
 * when the name is not qualified. Both are the raw names, to be quoted
 * with PQescapeIdentifier wherever they go into SQL.
 */
typedef struct cfg_table {
    char *schema;
    char *name;
    cfg_pos pos;
} cfg_table;

/* A `references:` entry: [schema.]table.column. */
typedef struct cfg_ref {
    cfg_table table;
    char *column;
} cfg_ref;

typedef enum cfg_conflict {
    CFG_CONFLICT_ERROR = 0,  /* stop the service, say why */
    CFG_CONFLICT_APPLY,      /* upsert; ignore a missing row; count and log */
} cfg_conflict;

typedef enum cfg_log_level {
    CFG_LOG_DEBUG = 0,
    CFG_LOG_INFO,
    CFG_LOG_WARNING,
    CFG_LOG_ERROR,
} cfg_log_level;

typedef struct cfg_service {
    char *name;
    cfg_pos pos;
    cfg_table *owned;
    size_t n_owned;
    cfg_table *shared;
    size_t n_shared;
    cfg_ref *refs;
    size_t n_refs;
    char *target_postgres;   /* a libpq connection string, or NULL */
    bool target_kafka;
    /*
     * Prefixes of logical messages (pg_logical_emit_message) the service
     * publishes as Debezium `m` events: exact, or ending in '*' for
     * "starts with".
     */
    char **messages;
    size_t n_messages;
    cfg_conflict on_conflict;
} cfg_service;

typedef struct cfg_kv {
    char *key;
    char *value;
} cfg_kv;

/* kafka.decimal_handling: Debezium's decimal.handling.mode. */
typedef enum cfg_decimal {
    CFG_DECIMAL_STRING,
    CFG_DECIMAL_DOUBLE,
    CFG_DECIMAL_PRECISE,
} cfg_decimal;

typedef struct cfg_kafka {
    char *brokers;
    char *topic;              /* template: {name} {service} {schema} {table} */
    cfg_kv *props;            /* handed to librdkafka as they are */
    size_t n_props;
    bool tombstones;          /* a null-valued message after each delete */
    bool truncate_events;     /* TRUNCATE as an op "t" event */
    bool transaction_metadata;    /* BEGIN/END events, event.transaction */
    char *transaction_topic;  /* template, {name} {service} */
    char *message_topic;      /* template, {name} {service} */
    bool schemas;             /* Kafka Connect's {"schema", "payload"} */
    cfg_decimal decimal_handling;
} cfg_kafka;

/*
 * Where a replication stream comes from. The configuration's `source` is
 * the shared database; a pipeline of the daemon reads one of these.
 */
typedef struct cfg_source {
    char *dsn;
    char *slot;               /* default: cleave_<name> */
    char *publication;        /* default: cleave_<name> */
    int heartbeat_interval_ms;  /* 0: off */
    int receive_timeout_ms;     /* 0: wait for ever */
    bool loop_prevention;       /* skip cleave_ origins */
    bool failover_slot;         /* the slot FAILOVER (PostgreSQL 17+) */
    bool server_origin_filter;  /* origin 'none' (PostgreSQL 16+) */
    bool binary_values;         /* pgoutput's binary (14+), where safe */
} cfg_source;

/* Whether a service publishes a logical message with this prefix. */
bool cfg_wants_message(const cfg_service *svc, const char *prefix);

typedef struct cfg {
    char *path;
    char *name;
    cfg_source source;        /* the shared database */
    char *state_dir;
    int copy_workers;         /* parallel table copies in the initial sync */
    char *copy_split_size;    /* bytes, in decimal: a table's heap over it
                                 is copied in parts of it; "0": never */
    char *status_socket;
    cfg_log_level log_level;
    bool has_kafka;
    cfg_kafka kafka;
    cfg_service *services;
    size_t n_services;
} cfg;

/* Reads and validates a file. NULL on error, with the message in err. */
cfg *cfg_load(const char *path, char *err, size_t errlen);
/* The same over text in memory; `path` only names it in errors. */
cfg *cfg_parse(const char *text, size_t len, const char *path, char *err,
               size_t errlen);
void cfg_free(cfg *c);

/* The service owning schema.table (raw names), or NULL. */
const cfg_service *cfg_owner(const cfg *c, const char *schema,
                             const char *table);

/*
 * One table name written as the configuration writes it ("orders",
 * 'sales."Order Items"'), e.g. for `verify --table`. On success fills
 * out->schema and out->name (release them with cfg_table_clear); on failure
 * returns false with the reason in err.
 */
bool cfg_table_parse(const char *text, cfg_table *out, char *err,
                     size_t errlen);
void cfg_table_clear(cfg_table *t);

/*
 * A copy of a connection string (keyword or URI form) rebuilt as key=value
 * pairs with any password replaced by "********"; a string libpq cannot
 * parse comes back as "(unparsable connection string)". NULL only when out
 * of memory. The caller frees it.
 */
char *cfg_dsn_redacted(const char *dsn);

/*
 * Prints every key with its type, default and help (from the key table), as
 * one Markdown table.
 */
void cfg_describe(FILE *out);
/*
 * Prints the whole configuration reference, docs/configuration.md: each
 * section's prose and a table of its keys, all from the key table.
 */
void cfg_describe_page(FILE *out);
/*
 * Prints the same reference as a manual page, docs/cleave.yaml.5 (man(7)
 * requests): cleave.yaml(5).
 */
void cfg_describe_man(FILE *out);

const char *cfg_log_level_name(cfg_log_level level);

/*
 * Calls fn for every key whose value differs between a and b (a reload),
 * with its path as the key table names it ("source.heartbeat_interval",
 * "services.orders.target.postgres"; "services" when services came or
 * went) and whether the key is reloadable. Returns how many differ.
 */
typedef void cfg_changed_fn(const char *key, bool reloadable, void *arg);
size_t cfg_diff(const cfg *a, const cfg *b, cfg_changed_fn *fn, void *arg);

/*
 * Replication origins: a service's target records its position under
 * "cleave_<name>_<service>", and a source transaction applied under any
 * origin starting CFG_ORIGIN_PREFIX came from a cleave (loop prevention).
 * The run loop, the sinks and the commands must agree, so the rule is here.
 */
#define CFG_ORIGIN_PREFIX "cleave_"
/* The caller frees it; NULL when out of memory. */
char *cfg_origin_name(const cfg *c, const cfg_service *service);
bool cfg_origin_is_cleave(const char *origin);

#endif
