/*
 * dbconn: the plain libpq connection the migration tools (analyze, verify,
 * drop) open to the source and the targets, and the one way they say it
 * failed, with the connection string's password redacted.
 */
#ifndef CLEAVE_COMMON_DBCONN_H
#define CLEAVE_COMMON_DBCONN_H

#include <stddef.h>

#include <libpq-fe.h>

/*
 * Connects to `dsn` as application `app` (unless the DSN names one). NULL
 * with "cannot connect to WHAT (REDACTED DSN): why" in err on failure.
 */
PGconn *dbconn_open(const char *dsn, const char *app, const char *what,
                    char *err, size_t errlen);

#endif
