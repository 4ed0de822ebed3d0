/*
 * dbconn: the one way cleave opens a libpq connection (the daemon's
 * replication and plain connections, the targets, the migration tools),
 * and the one way it says one failed, with the password redacted.
 */
#ifndef CLEAVE_COMMON_DBCONN_H
#define CLEAVE_COMMON_DBCONN_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

/*
 * Every connection cleave opens speaks UTF8 whatever the DSN or
 * PGCLIENTENCODING say, so both servers convert: bytes read from a source
 * in one encoding are never taken as another by a target, a Kafka event
 * is UTF-8 like Debezium's, and a character the target's encoding cannot
 * hold is the target's error, not a changed value. A SQL_ASCII server,
 * which has no encoding, is spoken to in SQL_ASCII: its bytes go on as
 * they are, taken for UTF-8.
 */
#define DBCONN_ENCODING "UTF8"

typedef enum dbconn_mode {
    DBCONN_PLAIN,
    DBCONN_REPLICATION,      /* a walsender for the DSN's database */
} dbconn_mode;

/*
 * Connects to `dsn` as application `app` (unless the DSN names one), in
 * DBCONN_ENCODING (whatever the DSN names; SQL_ASCII to a SQL_ASCII
 * server), and returns the attempt, good or bad (PQstatus says); NULL
 * only when out of memory.
 */
PGconn *dbconn_connect(const char *dsn, const char *app, dbconn_mode mode);
/*
 * Plain connections to every dsns[i] (NULL: none) at once, as
 * dbconn_connect makes them, waiting at most timeout_ms in all (a
 * thread that serves others, looking at servers it does not depend on,
 * must not wait out TCP's minutes on one, nor one after another):
 * conns[i] is the attempt, good or bad, or NULL (no DSN, out of memory,
 * or not connected in time).
 */
void dbconn_connect_many(const char *const *dsns, size_t n, const char *app,
                         int timeout_ms, PGconn **conns);
/* "cannot connect to WHAT (REDACTED DSN): why" for a failed attempt. */
void dbconn_why(const PGconn *conn, const char *dsn, const char *what,
                char *err, size_t errlen);
/*
 * Both: a plain connection, or NULL with the reason in err.
 * Connects to `dsn` as application `app` (unless the DSN names one). NULL
 * with "cannot connect to WHAT (REDACTED DSN): why" in err on failure.
 */
PGconn *dbconn_open(const char *dsn, const char *app, const char *what,
                    char *err, size_t errlen);
/*
 * SET lock_timeout to ms (at least 1): DDL that must never hang behind a
 * reader, nor hang the thread that runs it. False with err.
 */
bool dbconn_lock_timeout(PGconn *conn, int ms, char *err, size_t errlen);

#endif
