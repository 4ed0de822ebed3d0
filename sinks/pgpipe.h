/*
 * pgpipe: one libpq connection in pipeline and nonblocking mode, with the
 * queue of what was sent so each result finds the request it answers.
 *
 * Requests are queued without waiting; results are read whenever the
 * socket allows, so neither side ever blocks on a full buffer while the
 * other waits for it. Every result goes to the owner's callback, which
 * decides what it means (pgsink checks row counts and errors there);
 * pgpipe itself only fails when the connection does.
 */
#ifndef CLEAVE_SINKS_PGPIPE_H
#define CLEAVE_SINKS_PGPIPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "decoder/lsn.h"

typedef enum pgpipe_kind {
    PGPIPE_COMMAND,   /* BEGIN, COMMIT, origin set-up: must succeed */
    PGPIPE_PREPARE,   /* a statement for the cache */
    PGPIPE_ROW,       /* one change (or a TRUNCATE) */
    PGPIPE_PROGRESS,  /* pg_replication_origin_progress */
    PGPIPE_CATALOG,   /* a catalog query; `what` says which */
    PGPIPE_SYNC,      /* handled by pgpipe itself */
} pgpipe_kind;

/* Room for "col=value, ..." in error messages; longer keys are cut. */
#define PGPIPE_KEYLEN 200

typedef struct pgpipe_entry {
    uint8_t kind;
    char op;                 /* PGPIPE_ROW: 'I', 'U', 'D', 'T' */
    bool got_result;
    uint16_t rows;           /* PGPIPE_ROW: changes the statement applies */
    struct pgstmt *stmt;     /* PGPIPE_PREPARE, PGPIPE_ROW (not 'T') */
    const char *what;        /* PGPIPE_COMMAND: names it in messages */
    lsn_t lsn;               /* the source commit LSN of a row */
    char key[PGPIPE_KEYLEN]; /* PGPIPE_ROW: key values, or the tables */
} pgpipe_entry;

/* Called once per result of every entry but syncs; pgpipe clears res. */
typedef void (*pgpipe_result_fn)(void *arg, pgpipe_entry *e,
                                 PGresult *res);

typedef struct pgpipe {
    PGconn *conn;
    pgpipe_result_fn on_result;
    void *arg;
    pgpipe_entry *ring;      /* cap is a power of two */
    size_t cap, head, count;
    size_t rows;             /* changes the queued requests carry */
    char error[256];         /* why the connection failed */
} pgpipe;

void pgpipe_init(pgpipe *p, pgpipe_result_fn fn, void *arg);
/* Attaches an open connection, already in pipeline and nonblocking mode. */
void pgpipe_attach(pgpipe *p, PGconn *conn);
/* Forgets the queue (the connection is gone); keeps the memory. */
void pgpipe_reset(pgpipe *p);
void pgpipe_free(pgpipe *p);

/*
 * A cleared entry at the back of the queue, to fill in before sending
 * its request; NULL when out of memory.
 */
pgpipe_entry *pgpipe_add(pgpipe *p);
/* Queues a sync point (a result boundary; pipeline errors end there). */
bool pgpipe_sync(pgpipe *p);
/* Sends what it can and handles the results already here; never waits. */
bool pgpipe_service(pgpipe *p);
/*
 * Waits until at most `left` requests are unanswered, handling results
 * as they come; timeout_ms < 0 waits as long as it takes.
 */
bool pgpipe_wait(pgpipe *p, size_t left, int timeout_ms);
/* The same, until the unanswered requests carry at most `left` changes. */
bool pgpipe_wait_rows(pgpipe *p, size_t left);

static inline size_t pgpipe_pending(const pgpipe *p)
{
    return p->count;
}

/* Changes in flight: a request counts 1 unless it says it carries more. */
static inline size_t pgpipe_rows(const pgpipe *p)
{
    return p->rows;
}

static inline void pgpipe_set_rows(pgpipe *p, pgpipe_entry *e, uint16_t rows)
{
    p->rows += (size_t)rows - e->rows;
    e->rows = rows;
}

/* Records a connection-level failure in p->error; returns false. */
bool pgpipe_fail(pgpipe *p, const char *what);

#endif
