#include "common/dbconn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

PGconn *dbconn_connect(const char *dsn, const char *app, dbconn_mode mode)
{
    /*
     * The DSN is expanded first: what it says overrides what follows,
     * except client_encoding, which comes after it (see dbconn.h) and so
     * holds over the DSN's and PGCLIENTENCODING (and over an options='-c
     * client_encoding=...', which the server applies before it).
     */
    const char *keys[] = {"dbname", "fallback_application_name",
                          "client_encoding",
                          mode == DBCONN_REPLICATION ? "replication" : NULL,
                          NULL};
    const char *vals[] = {dsn, app, DBCONN_ENCODING, "database", NULL};
    return PQconnectdbParams(keys, vals, 1);
}

void dbconn_why(const PGconn *conn, const char *dsn, const char *what,
                char *err, size_t errlen)
{
    char *shown = cfg_dsn_redacted(dsn);
    const char *msg = conn ? PQerrorMessage(conn) : "out of memory";
    snprintf(err, errlen, "cannot connect to %s (%s): %.*s", what,
             shown ? shown : "?", (int)strcspn(msg, "\n"), msg);
    free(shown);
}

PGconn *dbconn_open(const char *dsn, const char *app, const char *what,
                    char *err, size_t errlen)
{
    PGconn *conn = dbconn_connect(dsn, app, DBCONN_PLAIN);
    if (conn && PQstatus(conn) == CONNECTION_OK)
        return conn;
    dbconn_why(conn, dsn, what, err, errlen);
    PQfinish(conn);
    return NULL;
}

bool dbconn_lock_timeout(PGconn *conn, int ms, char *err, size_t errlen)
{
    char sql[64];
    snprintf(sql, sizeof sql, "SET lock_timeout = %d", ms > 0 ? ms : 1);
    PGresult *res = PQexec(conn, sql);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        snprintf(err, errlen, "%s: %s", sql, PQerrorMessage(conn));
    PQclear(res);
    return ok;
}
