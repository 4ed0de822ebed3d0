/*
 * pgrun: the runs the PostgreSQL sink holds open in a target
 * transaction, changes of one relation, one operation and one statement
 * shape waiting to go to the server as one multi-row statement.
 *
 * Up to PGRUN_OPEN runs are open at once, one per table and, for a table
 * whose rows are found by a key, one per operation as long as their keys
 * differ, so a source transaction that moves
 * from table to table and back does not end a run at every switch. The
 * sink decides what may be held (pgsink.c says why it is safe); this
 * module only keeps the runs: their rows, the hashes of their keys, and
 * the order they were opened in. A run's rows are the journal's copies,
 * or past the journal's bound copies of its own, freed when it closes,
 * as is a row made in place of one (an INSERT that took its UPDATE's
 * values).
 */
#ifndef CLEAVE_SINKS_PGRUN_H
#define CLEAVE_SINKS_PGRUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sinks/sink.h"

enum {
    PGRUN_ROWS = 64,         /* rows of a run: one statement at most */
    PGRUN_OPEN = 32,         /* runs open at once; then the oldest goes */
};

typedef struct pgrun {
    sink_rel *rel;           /* NULL: the slot is free */
    struct pgstmt *st;       /* the rows' one-row statement */
    char op;                 /* 'I', 'U' or 'D' */
    bool owned;              /* rows added are this run's copies */
    uint64_t mine;           /* bit i: rows[i] is the run's, freed with it */
    uint16_t n;
    uint64_t seq;            /* when it was opened */
    sink_event *rows[PGRUN_ROWS];
    uint64_t keys[PGRUN_ROWS];
} pgrun;

typedef struct pgrun_set {
    pgrun runs[PGRUN_OPEN];
    int open;
    uint64_t seq;
    size_t owned_bytes;      /* of the rows the runs own */
} pgrun_set;

/* A change's key (the new row's for INSERT, else the identity), hashed. */
uint64_t pgrun_key(const sink_event *ev);

/* The open run of rel (that version) and op, or NULL. */
pgrun *pgrun_find(pgrun_set *s, const sink_rel *rel, char op);
/* Whether a row of the run has that key. */
bool pgrun_has_key(const pgrun *r, uint64_t key);
/* Whether rel's rows are found by a key (REPLICA IDENTITY DEFAULT, INDEX). */
bool pgrun_keyed(const sink_rel *rel);
/*
 * The oldest open run of rel of another operation than op that must go
 * before a change of op with that key: one holding the key, or any when
 * rel is not keyed. NULL when none.
 */
pgrun *pgrun_in_the_way(pgrun_set *s, const sink_rel *rel, char op,
                        uint64_t key);
/* The oldest open run of rel (rel NULL: of any relation), or NULL. */
pgrun *pgrun_oldest(pgrun_set *s, const sink_rel *rel);
/*
 * Whether a run is open for the same target table under another relation
 * version or another relation of that name (dropped and made again).
 */
bool pgrun_other_version(const pgrun_set *s, const sink_rel *rel);

/* A new empty run, or NULL when PGRUN_OPEN are open. */
pgrun *pgrun_open(pgrun_set *s, sink_rel *rel, char op, struct pgstmt *st,
                  bool owned);
void pgrun_add(pgrun_set *s, pgrun *r, sink_event *row, uint64_t key);
/* The last row of the run with that key, or -1. */
int pgrun_key_at(const pgrun *r, uint64_t key);
/* Puts row, the run's own, in place of rows[at] (same key). */
void pgrun_replace(pgrun_set *s, pgrun *r, int at, sink_event *row);
/* Frees the slot (and the rows the run owns). */
void pgrun_close(pgrun_set *s, pgrun *r);
void pgrun_clear(pgrun_set *s);

#endif
