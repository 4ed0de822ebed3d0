/*
 * journal: where each service's move stands (PRODUCT.md §8), kept in
 * state_dir/moves.json so a crash at any step is finished or undone when
 * cleave starts again.
 *
 * A step is written (and fsynced) before it takes effect. What a step
 * did on the databases is then read back from the fences themselves:
 * the journal says what was under way, the fences what was committed.
 * A completed move also keeps the tables it moved, so a table given to
 * the service afterwards is told apart without a database.
 * Only the mover's thread writes; the status server reads copies through
 * the mover.
 */
#ifndef CLEAVE_DAEMON_JOURNAL_H
#define CLEAVE_DAEMON_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"

typedef enum journal_dir {
    JOURNAL_FORWARD,         /* the shared database takes the writes */
    JOURNAL_REVERSE,         /* the service's own database takes them */
    JOURNAL_COMPLETE,        /* reverse, and the move is ended */
} journal_dir;

typedef enum journal_move {
    JOURNAL_IDLE,
    JOURNAL_CUTOVER,
    JOURNAL_ROLLBACK,
    JOURNAL_COMPLETING,      /* `complete`, past the reverse stream's drain */
} journal_move;

typedef enum journal_step {
    JOURNAL_PREPARE,         /* nothing blocked yet: undone by a crash */
    JOURNAL_SWITCH,          /* the switch's transaction may have committed */
    JOURNAL_UNFENCE,         /* committed: the new side is opened */
} journal_step;

typedef struct journal_entry {
    journal_dir dir;         /* the committed direction */
    journal_move move;       /* under way, or JOURNAL_IDLE */
    journal_step step;
    double pause_ms;         /* the last switch's write pause; <0: none */
} journal_entry;

typedef struct journal journal;

/*
 * Reads state_dir/moves.json for config's services (a service it does not
 * list is forward and idle). NULL with err when the file is unreadable.
 */
journal *journal_open(const cfg *config, char *err, size_t errlen);
void journal_free(journal *j);

journal_entry journal_get(const journal *j, size_t svc);
/*
 * Records and saves at once; false with err when it cannot be saved.
 * Leaving JOURNAL_FORWARD (a cut-over) records the service's owned tables
 * too, in the same write, as the tables its move switched; a rollback
 * forgets them (and entering JOURNAL_COMPLETE records them where an older
 * journal did not: `complete` refuses while one of them is not switched).
 */
bool journal_set(journal *j, size_t svc, journal_entry e, char *err,
                 size_t errlen);
/*
 * The next of svc's owned tables (config order), from index *from on,
 * that its completed move did not switch: given to it since, so refused;
 * *from is then past it. NULL when no more, when the move is not
 * complete, or when the journal does not say which tables it moved. With
 * a table, `why` (len > 0) says so and what to do.
 */
const cfg_table *journal_not_moved(const journal *j, size_t svc, size_t *from,
                                   char *why, size_t len);

/*
 * Whether the move of svc, which is not forward, switched t: 1 or 0; -1
 * when the journal does not say (written before it kept the tables of a
 * cut-over, or forward).
 */
int journal_moved(const journal *j, size_t svc, const cfg_table *t);

const char *journal_dir_name(journal_dir d);
const char *journal_move_name(journal_move m);

#endif
