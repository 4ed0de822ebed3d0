/*
 * move: `cleave cutover`, `cleave rollback` and `cleave complete`, the
 * command-line side of the cut-over (PRODUCT.md §8), and `cleave resync`,
 * which asks the daemon the same way. The running daemon
 * carries out the move; the command checks what it can alone, sends one
 * request over the status socket and prints the steps the daemon streams
 * back. `complete` then archives and drops the shared copies itself.
 *
 * The request, one line: `control VERB SERVICE [key=value ...]\n`, VERB
 * cutover, rollback or complete, keys lag_limit_bytes, lock_timeout_ms
 * and pause_budget_ms (only those given); or resync with the key table.
 * The answer, one JSON object a line, then the daemon closes:
 * `{"step":NAME,"ms":N,"detail":TEXT}` as each step finishes (detail
 * optional), and one final
 * `{"result":"ok","pause_ms":N,"detail":TEXT}` or
 * `{"result":"failed","exit":1|2,"error":TEXT}`.
 */
#ifndef CLEAVE_COMMANDS_MOVE_H
#define CLEAVE_COMMANDS_MOVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "config/config.h"

typedef enum move_verb {
    MOVE_CUTOVER,
    MOVE_ROLLBACK,
    MOVE_COMPLETE,
    MOVE_RESYNC,
} move_verb;

/* What the request asks for beyond the daemon's defaults; -1: not sent. */
typedef struct move_limits {
    long long lag_limit_bytes;
    long long lock_timeout_ms;
    long long pause_budget_ms;
} move_limits;

#define MOVE_NO_LIMITS ((move_limits){-1, -1, -1})

/* What `complete` does after the daemon's part. */
typedef struct move_complete_opts {
    bool yes;                /* do not ask */
    const char *archive;     /* pg_dump the shared copies here, or NULL */
    bool drop_tables;        /* then drop them */
} move_complete_opts;

/* "cutover", "rollback", "complete", "resync": the command and the verb. */
const char *move_verb_name(move_verb verb);

/*
 * The configured service `name` when it has a PostgreSQL target; NULL
 * after saying why on stderr ("cleave VERB: ..."; an unknown name lists
 * the configured ones). The caller exits 2.
 */
const cfg_service *move_service(const cfg *config, move_verb verb,
                                const char *name);

/*
 * Sends the request to the daemon on `socket` and prints its answer on
 * stdout as it arrives: each line as it is with `json`, else one aligned
 * line per step and a summary (a failure on stderr). Returns the exit
 * code: 0 done, the daemon's 1 or 2 on failure, 1 when no daemon listens
 * or it closes without a result.
 */
int move_request(const char *socket, move_verb verb, const char *service,
                 const move_limits *limits, bool json);

/* `cleave cutover` and `cleave rollback`: move_service, move_request. */
int move_run(const cfg *config, const char *socket, move_verb verb,
             const char *service, const move_limits *limits, bool json);

/*
 * `cleave resync`: the service (and table, as the configuration writes
 * it) checked against the configuration (2 when it has neither), the
 * request `control resync SERVICE [table=WORD]` (WORD a ctlword), then,
 * once the daemon has started the copy, the service followed in the
 * status (a line per change, or with `json` its status object) until it
 * streams again. The exit code: 0 streaming again, the daemon's 1 or 2
 * when refused, 1 when the daemon stops answering meanwhile.
 */
int move_resync(const cfg *config, const char *socket, const char *service,
                const char *table, bool json);

/*
 * `cleave complete`: refuses a non-terminal stdin without `yes`, an
 * archive file that exists, and with drop_tables a foreign key of another
 * table pointing in (before anything is changed); asks; has the daemon
 * end the move; then archives and drops. The exit code.
 */
int move_complete(const cfg *config, const char *socket, const char *service,
                  const move_complete_opts *opts);

/*
 * pg_dump (schema and data) of exactly svc's owned tables, partitions
 * included, from the shared database (config's source DSN) into `path`,
 * which must not exist: written beside it first, moved in place when
 * whole. pg_dump is the one on PATH, else in `pg_config --bindir`.
 * False with err (pg_dump's own messages on stderr); nothing at `path`.
 */
bool move_archive(const cfg *config, const cfg_service *svc, const char *path,
                  char *err, size_t errlen);

/*
 * Prints on `out` every foreign key of a table svc does not own that
 * points at one of its owned tables in the shared database, each with the
 * statement that drops it; how many in *n. False with err when the
 * catalog cannot be read.
 */
bool move_foreign_keys_in(const cfg *config, const cfg_service *svc,
                          FILE *out, size_t *n, char *err, size_t errlen);

/*
 * Drops the shared database's copies of svc's owned tables, in one
 * transaction, after checking again under lock that no other table's
 * foreign key points at them (printed as move_foreign_keys_in does, and
 * nothing dropped). Says on `out` what it dropped and what was not there.
 * 0 done, 1 refused or failed (err; nothing dropped).
 */
int move_drop_tables(const cfg *config, const cfg_service *svc, FILE *out,
                     char *err, size_t errlen);

#endif
