/*
 * sink: the one small interface every destination implements, so the
 * stream loop never knows whether it feeds PostgreSQL or Kafka.
 *
 * The stream loop turns decoded pgoutput messages into sink events, one
 * heap block each (sink_event_new), and hands them to each sink's worker
 * thread in source commit order. A sink sees, per source transaction,
 * BEGIN, its changes (only those of tables its service owns), COMMIT.
 * The sink may batch several whole source transactions into one of its
 * own; `durable` is the position up to which it holds everything.
 *
 * Every sink call runs on that sink's worker thread; a sink needs no
 * locking of its own. A false return means the sink is unusable until
 * reopened (the worker closes it, backs off, reopens, and the stream is
 * replayed from the sink's durable LSN); the reason is in sink->error.
 */
#ifndef CLEAVE_SINKS_SINK_H
#define CLEAVE_SINKS_SINK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "decoder/lsn.h"

/* A relation as one Relation message described it: immutable, shared. */
typedef struct sink_rel {
    atomic_int refs;
    uint32_t oid;
    uint64_t version;        /* new for every Relation message: re-prepare */
    char *schema;
    char *name;
    char replident;          /* 'd' default, 'n' nothing, 'f' full, 'i' index */
    uint16_t ncols;
    struct sink_col {
        char *name;
        uint32_t type_oid;   /* the source's OID; built-in types agree */
        int32_t typmod;
        /*
         * A type that is not built in, as SQL ("schema"."name", quoted),
         * from the stream's Type message; NULL for built-in types (their
         * OIDs are the same on every server: format_type() names them).
         */
        char *type_name;
        bool key;            /* part of the replica identity */
        /*
         * Part of the primary key, as the source's catalog says: what an
         * event's key holds under REPLICA IDENTITY FULL, which flags every
         * column as identity (sink_rel_read; the stream asks the source).
         */
        bool pk;
    } *cols;
} sink_rel;

/*
 * One column value: 'n' null, 'u' unchanged TOAST, 't' text, 'b' the
 * type's binary form (pgoutput's `binary` option, PostgreSQL targets
 * only: daemon/binfmt.h says when the stream asks for it).
 */
typedef struct sink_value {
    char kind;
    uint32_t len;
    const char *data;        /* 't', 'b': len bytes, then a NUL */
} sink_value;

typedef enum sink_op {
    SINK_BEGIN,
    SINK_INSERT,
    SINK_UPDATE,
    SINK_DELETE,
    SINK_TRUNCATE,
    /*
     * A logical message (pg_logical_emit_message) whose prefix a service
     * claims. A transactional one comes inside its transaction; any other
     * comes alone between BEGIN and COMMIT of its own, whose commit_lsn is
     * the message's LSN and end_lsn one past it. Only sinks that publish
     * messages are sent one; every other sink ignores it.
     */
    SINK_MESSAGE,
    SINK_COMMIT,
    /*
     * Not a change: the source transaction in flight will not complete
     * (the source connection was lost or restarted). The worker rolls the
     * sink back; the stream is replayed from the slot.
     */
    SINK_ROLLBACK,
} sink_op;

/*
 * A TRUNCATE cut down to some of its tables (the others' copies are newer
 * than it): their rows go, and nothing else does. A PostgreSQL target
 * deletes them (in the replica role, so no foreign key cascades into or
 * refuses for a table left out), where TRUNCATE ... CASCADE would empty
 * the tables left out too.
 */
#define SINK_TRUNCATE_ROWS 0x40

typedef struct sink_event {
    sink_op op;
    uint32_t xid;
    /*
     * BEGIN and COMMIT: commit_lsn is where the source's commit record
     * starts, end_lsn where it ends (what a sink records as durable);
     * commit_time is the source's, Unix epoch microseconds. Changes carry
     * the commit_lsn of their transaction, for error messages.
     */
    lsn_t commit_lsn;
    lsn_t end_lsn;
    int64_t commit_time;
    /* INSERT, UPDATE, DELETE */
    sink_rel *rel;
    char old_kind;           /* 0: none, 'K': key columns, 'O': whole old row */
    const sink_value *old_vals;   /* rel->ncols entries, or NULL */
    const sink_value *new_vals;   /* rel->ncols entries, or NULL (DELETE) */
    bool binary;             /* some value is in binary form ('b') */
    /* TRUNCATE */
    uint8_t truncate_options;     /* PGO_TRUNCATE_*, SINK_TRUNCATE_ROWS */
    uint32_t ntruncate;
    sink_rel **truncate_rels;
    /*
     * Changes, TRUNCATE, MESSAGE: the event's own LSN, where the source
     * decoded it from (the XLogData's start; a message's own LSN). Kafka
     * events carry it as source.lsn, as Debezium's do. 0 where none is
     * known (copied rows, an event log written before it was kept).
     */
    lsn_t lsn;
    /* MESSAGE */
    bool transactional;
    const char *prefix;      /* NUL-terminated */
    const uint8_t *content;  /* content_len bytes, not terminated */
    uint32_t content_len;
    struct sink_event *next; /* the worker's queue link */
    size_t size;             /* bytes of this block, for the queue's bound */
} sink_event;

typedef struct sink sink;

/* The kinds of destination; only sinks/ knows what each is made of. */
typedef enum sink_kind {
    SINK_KIND_POSTGRES,
    SINK_KIND_KAFKA,
} sink_kind;

typedef struct sink_ops {
    const char *kind;        /* "postgres", "kafka": for logs and status */
    sink_kind id;
    /*
     * How often a busy worker calls flush, in ms (0: every second). A
     * flush that costs little can report progress, and so free WAL on
     * the source, sooner.
     */
    int flush_every_ms;
    /*
     * Connects and reads the durable position (the end LSN of the last
     * source transaction the sink holds, 0 if none).
     */
    bool (*open)(sink *s, lsn_t *durable);
    bool (*begin)(sink *s, const sink_event *ev);
    bool (*change)(sink *s, const sink_event *ev);
    /*
     * The source transaction is complete. `more` says another complete
     * one is already in the worker's hands, so the sink may keep its own
     * transaction open; without it the sink commits now (nothing behind
     * may hold a complete transaction back).
     */
    bool (*commit)(sink *s, const sink_event *ev, bool more);
    /*
     * Finishes any open batch; *durable as in open, which may trail what
     * the sink committed where reading it costs (PostgreSQL: a WAL flush,
     * read at most every 100 ms unless sink_durable_wanted).
     */
    bool (*flush)(sink *s, lsn_t *durable);
    /*
     * Optional: called about every 100 ms while no event comes, between
     * transactions, and at once when the durable position is wanted
     * (worker_want_durable); *durable as in flush.
     */
    bool (*idle)(sink *s, lsn_t *durable);
    /*
     * Optional: the worker is stopping. Waits (bounded) for what is in
     * flight to become durable; *durable as in flush. Without it, flush.
     */
    bool (*drain)(sink *s, lsn_t *durable);
    /* Drops an unfinished source transaction and anything not committed. */
    void (*rollback)(sink *s);
    void (*close)(sink *s);
    /* Closes the sink if it is open and frees it. */
    void (*destroy)(sink *s);
} sink_ops;

struct sink {
    const sink_ops *ops;
    const cfg *config;
    const cfg_service *service;
    char error[512];         /* why the last call failed */
    lsn_t error_lsn;         /* the source commit LSN it failed at, or 0 */
    /* Counters the sink keeps; read by status (relaxed). */
    atomic_uint_fast64_t rows_applied;
    atomic_uint_fast64_t txns_applied;
    atomic_uint_fast64_t conflicts;
    /*
     * Set by its thread's owner when it stops the sink: a call waiting on
     * something that may take long (a broker) gives up instead. A sink
     * wrapped in another reads the wrapper's (stop_flag): sink_stopping.
     */
    atomic_bool stopping;
    atomic_bool *stop_flag;
    /*
     * Set when something waits on the sink's durable position (a
     * cut-over's catch-up): a sink that reads it lazily reads it now.
     * A wrapped sink reads the wrapper's (want_flag): sink_durable_wanted.
     */
    atomic_bool want_durable;
    atomic_bool *want_flag;
    /*
     * Set before open when the stream starts anew (a slot made since the
     * sink last held anything): what the sink holds as durable belongs to
     * another stream, whose LSNs may be higher than the new one's (a
     * source restored or replaced), and would make it pass over the new
     * stream's transactions. Open then sets it to nothing, durably, and
     * reports 0.
     */
    bool forget_position;
    void *impl;
};

/* Whether s (or the sink wrapping it) is being stopped. */
bool sink_stopping(sink *s);
/* Whether the durable position of s is wanted now; clears the wish. */
bool sink_durable_wanted(sink *s);

/*
 * A new sink of that kind for a service, not opened yet; NULL when out of
 * memory. Whoever holds it ends it with sink_destroy.
 */
sink *sink_new(sink_kind kind, const cfg *config, const cfg_service *service);
/* s->ops->destroy(s); NULL is fine. */
void sink_destroy(sink *s);

/*
 * The kinds of destination a service has (postgres first, then kafka);
 * returns how many.
 */
#define SINK_NKINDS 2
size_t sink_kinds(const cfg_service *service, sink_kind kinds[SINK_NKINDS]);

/*
 * The one rule for "already held, skip it": sinks apply in source commit
 * order, so a transaction whose commit starts before the end of one a
 * sink holds was applied with it, and a replay of it must change nothing.
 * The worker applies it for every sink; a sink applies it again only for
 * what reaches it around the worker (a replay of the initial sync's hold).
 */
static inline bool sink_holds(lsn_t held_end, lsn_t commit_lsn)
{
    return commit_lsn != 0 && commit_lsn < held_end;
}

/* Takes and drops references to a relation snapshot. */
sink_rel *sink_rel_ref(sink_rel *rel);
void sink_rel_unref(sink_rel *rel);

/* Records why a sink failed; returns false for `return sink_fail(...)`. */
bool sink_fail(sink *s, lsn_t lsn, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Frees an event and drops its relation references. */
void sink_event_free(sink_event *ev);

struct pgo_relation;
struct pgo_tuple;
struct pgo_decoder;

/*
 * A snapshot of a decoded relation (one reference, the caller's); `dec`
 * (may be NULL) names the columns' types from its Type messages.
 */
sink_rel *sink_rel_from_pgo(const struct pgo_relation *rel, uint64_t version,
                            const struct pgo_decoder *dec);

struct pg_conn;

/*
 * The columns of table schema.name as a Relation message would describe
 * them (generated columns left out, the replica identity's columns as
 * the key, every column for FULL), read from the catalog through `src`
 * (inside the copy's snapshot, say); version 0. NULL with err when the
 * query fails, there is no such table, or memory runs out.
 */
sink_rel *sink_rel_read(struct pg_conn *src, const char *schema,
                        const char *name, char *err, size_t errlen);
/* rel's columns quoted for SQL: "a", "b" (malloc'd; NULL when out of memory). */
char *sink_rel_columns(struct pg_conn *c, const sink_rel *rel);

/* BEGIN or COMMIT. */
sink_event *sink_event_txn(sink_op op, uint32_t xid, lsn_t commit_lsn,
                           lsn_t end_lsn, int64_t commit_time);
/*
 * INSERT, UPDATE or DELETE, copying the values out of the decoder's
 * buffers (old_tuple/new_tuple may be NULL where the message has none).
 * NULL when out of memory.
 */
sink_event *sink_event_change(sink_op op, sink_rel *rel, lsn_t commit_lsn,
                              char old_kind,
                              const struct pgo_tuple *old_tuple,
                              const struct pgo_tuple *new_tuple);
/* The same from values already in sink form (a spool read back, say). */
sink_event *sink_event_change_values(sink_op op, sink_rel *rel,
                                     lsn_t commit_lsn, char old_kind,
                                     const sink_value *old_vals,
                                     const sink_value *new_vals);
sink_event *sink_event_truncate(lsn_t commit_lsn, uint8_t options,
                                sink_rel *const *rels, uint32_t nrels);
/* ev with its own LSN set (sink_event.lsn); NULL stays NULL. */
sink_event *sink_event_at(sink_event *ev, lsn_t lsn);
/* A logical message, its prefix and content copied in. */
sink_event *sink_event_message(lsn_t commit_lsn, lsn_t msg_lsn,
                               bool transactional, const char *prefix,
                               const void *content, uint32_t len);

/*
 * sink_loader: the initial sync's bulk load of one service's tables into
 * one destination, so the copy threads never know what they fill.
 *
 * A copy thread opens a loader per destination kind of the service it
 * copies (sink_kinds) and feeds every one the same rows: per table,
 * begin, each row of COPY ... TO STDOUT in text form (or, where every
 * loader of the service takes it, each CopyData message of its binary
 * form), then end (or abort). The postgres loader empties the target table and COPYs the rows
 * in, one target transaction per table, on the copy thread's own target
 * connection (which has the tables already: schema.h makes them); the
 * kafka loader produces each row as a Debezium snapshot event (op "r")
 * with a producer of its own, and end returns once the broker
 * acknowledged every row of the table. A loader is used by one thread.
 * A false return fails the table, with the reason in loader->error; the
 * caller aborts it and may begin another table or close.
 *
 * A large table, or a partitioned one, may be loaded in parts by several
 * loaders at once: empty once (on one loader, before any part), then
 * each part as a table of its own with `part` set, which leaves the
 * other parts' rows alone.
 */
typedef struct sink_loader sink_loader;

/* A table as its loaders see it. */
typedef struct sink_load_table {
    const sink_rel *rel;     /* its columns, in the order of COPY's rows */
    bool partitioned;        /* its rows are its partitions' (no ONLY) */
    lsn_t snapshot_lsn;      /* the copy's snapshot: its consistent point */
    bool part;               /* one of its parts: empty was called before */
    /*
     * Rows in COPY's binary format, the messages as the source sent them:
     * the header ahead of the first row, the trailer a message of its own.
     */
    bool binary;
} sink_load_table;

typedef struct sink_loader_ops {
    const char *kind;
    /* Takes COPY's binary format (sink_load_table.binary) too. */
    bool binary;
    bool (*begin)(sink_loader *l, const sink_load_table *t);
    /*
     * One row: a line of COPY's text format (its newline optional), or a
     * CopyData message of its binary format.
     */
    bool (*row)(sink_loader *l, const char *line, size_t len);
    /*
     * The table is complete: committed, acknowledged. `last`: no other
     * table of the service is left to load after it (Kafka marks the last
     * row of the service's snapshot so).
     */
    bool (*end)(sink_loader *l, bool last);
    /* Gives the table up (after any call, a failed one too). */
    void (*abort)(sink_loader *l);
    void (*close)(sink_loader *l);
    /*
     * Empties the table ahead of its parts, for good (committed); NULL:
     * the destination has nothing to empty (Kafka appends).
     */
    bool (*empty)(sink_loader *l, const sink_load_table *t);
} sink_loader_ops;

struct sink_loader {
    const sink_loader_ops *ops;
    const cfg *config;
    const cfg_service *service;
    char error[512];         /* why the last call failed */
    void *impl;
};

/*
 * A loader of that kind for a service; `target` is the copy thread's
 * connection to the service's PostgreSQL target (used by the postgres
 * loader only, never closed by it). NULL with err when it cannot be made.
 */
sink_loader *sink_loader_open(sink_kind kind, const cfg *config,
                              const cfg_service *service,
                              struct pg_conn *target, char *err,
                              size_t errlen);
/* l->ops->close(l); NULL is fine. */
void sink_loader_close(sink_loader *l);
/* Records why a loader failed; returns false for `return ...`. */
bool sink_loader_fail(sink_loader *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
