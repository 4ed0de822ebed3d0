/*
 * pgstmt: the statements that apply row changes to a PostgreSQL target,
 * and the per-connection cache of those already prepared.
 *
 * A change is first reduced to a plan: its parameters (text values, in
 * order) and a shape, a short byte string saying which columns the
 * statement sets and how it finds the row. The shape alone determines the
 * SQL, so it is the cache key within one relation version: rows of the
 * same shape reuse one prepared statement and no SQL is built per row.
 *
 * Shape layout: [op I/U/D][identity 'k' key columns | 'f' whole row]
 * then, for INSERT and UPDATE, one byte per column of the new values
 * ('v' sent, '-' left out: unchanged TOAST), then for UPDATE and DELETE
 * one byte per column of the identity ('p' compared with a parameter,
 * 'n' IS NULL, '-' not compared).
 *
 * Also here: the catalog queries that compare a relation version with the
 * target table, and the ALTER TABLE that adds the columns it lacks.
 */
#ifndef CLEAVE_SINKS_PGSTMT_H
#define CLEAVE_SINKS_PGSTMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "sinks/sink.h"

typedef struct pgstmt {
    struct pgstmt *next;
    sink_rel *rel;           /* a reference: names for SQL and messages */
    uint64_t hash;
    char *shape;
    uint32_t shape_len;
    uint16_t rows;           /* rows per execution: > 1 a multi-row INSERT */
    char name[24];
    bool prepared;           /* sent to the server (cleared if that failed) */
    bool returning;          /* INSERT .. RETURNING whether it conflicted */
} pgstmt;

/* Scratch for one change, reused from row to row. */
typedef struct pgstmt_plan {
    char *shape;
    uint32_t shape_len;
    const char **params;
    int *lengths;            /* of binary values, for libpq */
    int *formats;            /* 1: binary ('b'), 0: text */
    int nparams;
    bool binary;             /* some parameter is binary */
    size_t cap;              /* of shape (bytes) and params (entries) */
} pgstmt_plan;

typedef struct pgstmt_cache {
    struct pgstmt_relent *rels;  /* open addressing on the relation OID */
    size_t cap, n;
    pgstmt *retired;         /* of replaced relation versions */
    uint64_t next_id;
    bool upsert;             /* on_conflict: apply */
} pgstmt_cache;

/*
 * Fills the plan for an INSERT, UPDATE or DELETE. False when the change
 * cannot be applied (no replica identity, no old row, out of memory),
 * with the reason in *why.
 */
bool pgstmt_plan_change(pgstmt_plan *pl, const sink_event *ev,
                        const char **why);
/*
 * Appends src's parameters to dst's (a multi-row statement's, row after
 * row; dst's shape is left alone); false when out of memory.
 */
bool pgstmt_plan_add_params(pgstmt_plan *dst, const pgstmt_plan *src);
void pgstmt_plan_free(pgstmt_plan *pl);

/*
 * The statement for ev->rel and the plan's shape, created unprepared if
 * new; NULL when out of memory. A new relation version retires the
 * statements of the old one (pgstmt_take_retired).
 */
pgstmt *pgstmt_lookup(pgstmt_cache *c, sink_rel *rel, const pgstmt_plan *pl);
/*
 * The same for `rows` rows of that shape in one statement (an INSERT
 * with that many VALUES lists, see pgstmt_batchable); rows 1 is
 * pgstmt_lookup.
 */
pgstmt *pgstmt_lookup_rows(pgstmt_cache *c, sink_rel *rel,
                           const pgstmt_plan *pl, uint16_t rows);
/*
 * Whether rows of the plan's shape may go several to one statement:
 * plain INSERTs, and UPDATEs and DELETEs that find their row by a key
 * they leave alone (one statement joins them to a VALUES list of keys),
 * never under on_conflict: apply, whose outcome is told row by row.
 */
bool pgstmt_batchable(const pgstmt_cache *c, const sink_rel *rel,
                      const pgstmt_plan *pl);
/*
 * Whether a multi-row statement of that shape takes typed parameters
 * (UPDATE and DELETE: their VALUES list has no column to take a type
 * from); then pgstmt_param_types fills one type OID per parameter from
 * the target's OIDs of the relation's column types (0: unknown).
 */
bool pgstmt_typed(const pgstmt *st);
bool pgstmt_param_types(const pgstmt *st, const uint32_t *col_types,
                        uint32_t *types, int ntypes);
/*
 * Retires the statements of one relation (its target table changed under
 * them), so its next change prepares afresh.
 */
void pgstmt_retire_rel(pgstmt_cache *c, uint32_t oid);
/* The retired list, for the caller to deallocate and pgstmt_free. */
pgstmt *pgstmt_take_retired(pgstmt_cache *c);
void pgstmt_free(pgstmt *st);
/* Forgets every statement (the connection is gone). */
void pgstmt_cache_clear(pgstmt_cache *c);

/*
 * The SQL text of a statement (st->rows VALUES lists for a multi-row
 * INSERT); NULL when out of memory. Caller frees.
 */
char *pgstmt_sql(PGconn *conn, const pgstmt *st, bool upsert, int *nparams);
/* TRUNCATE of the event's relations with its options. Caller frees. */
char *pgstmt_truncate_sql(PGconn *conn, const sink_event *ev);

/*
 * The target table's columns, by $1 schema and $2 name: no row when there
 * is no such table, one row with a NULL name when it has no columns.
 */
extern const char pgstmt_columns_sql[];
enum {
    PGSTMT_COL_NAME,         /* attname */
    PGSTMT_COL_TYPE,         /* format_type(atttypid, atttypmod) */
    PGSTMT_COL_TYPID,
    PGSTMT_COL_TYPMOD,
    PGSTMT_COL_NOTNULL,      /* 't' or 'f' */
    PGSTMT_COL_DEFAULT,      /* 't': a default, identity or generated */
    PGSTMT_COL_GENERATED,    /* 't': GENERATED ALWAYS AS (...) STORED */
    /*
     * 't' (the same in every row): the table or a partition of it has a
     * rule, or a trigger of its own that fires in this session (ENABLE
     * ALWAYS, or REPLICA under session_replication_role = replica, else
     * plain ENABLE).
     */
    PGSTMT_COL_BARRIER,
};

/*
 * The types of rel's columns as the target knows them, one row per
 * column: its number from 1, the type's OID on the target (NULL when a
 * named type does not exist there), format_type() of it with the
 * source's typmod, and whether the target table's column of that name
 * takes the source's values (see pgstmt.c). `params` needs room for
 * 2 + 2 * rel->ncols. NULL when out of memory or the relation has no
 * columns. Caller frees.
 */
char *pgstmt_types_sql(const sink_rel *rel, const char **params,
                       int *nparams);
enum { PGSTMT_TYPE_NUM, PGSTMT_TYPE_OID, PGSTMT_TYPE_TEXT, PGSTMT_TYPE_TAKES };

/* How a column the target lacks is to be added (see pgcoldef.h). */
typedef struct pgstmt_coldef {
    uint16_t col;            /* rel->cols[col] */
    const char *type;        /* SQL, format_type() on the target */
    const char *coll_schema; /* COLLATE "schema"."name", or NULL */
    const char *coll_name;
    const char *dflt;        /* the default, SQL as the source prints it */
    const char *fill;        /* what the rows already there read, or NULL */
    char identity;           /* 'a' ALWAYS, 'd' BY DEFAULT, or 0 */
    bool notnull;
} pgstmt_coldef;

/*
 * ALTER TABLE adding the columns. One with a `fill` is added with that
 * value (text, cast to its type) as its default, so the rows already
 * there read it; pgstmt_fill_defaults_sql then gives it its own. Caller
 * frees; NULL when out of memory or a name libpq cannot quote.
 */
char *pgstmt_add_columns_sql(PGconn *conn, const sink_rel *rel,
                             const pgstmt_coldef *defs, int n);
/*
 * ALTER TABLE giving the columns added with a fill their own default (or
 * none). *sql is NULL when no column needs it; false when out of memory.
 */
bool pgstmt_fill_defaults_sql(PGconn *conn, const sink_rel *rel,
                              const pgstmt_coldef *defs, int n, char **sql);

/*
 * "col=value, ..." for the key columns of a change (identity for UPDATE
 * and DELETE, new values for INSERT), cut to fit; for TRUNCATE, the
 * tables. For error messages only.
 */
void pgstmt_describe(const sink_event *ev, char *buf, size_t len);

#endif
