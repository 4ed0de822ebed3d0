#include "common/dbconn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

/*
 * A SQL_ASCII server has no encoding: it converts nothing, and checks
 * every byte it sends a UTF8 client as UTF-8, so that one byte that is
 * not would end the replication stream for every service, at the same
 * change each time. Spoken to in SQL_ASCII it passes its bytes on as
 * they are, and the other side takes them for UTF-8: a target refuses
 * those that are not, for its service alone.
 */
static void raw_if_sql_ascii(PGconn *conn)
{
    const char *enc = PQparameterStatus(conn, "server_encoding");
    if (PQstatus(conn) == CONNECTION_OK && enc &&
        strcmp(enc, "SQL_ASCII") == 0)
        PQsetClientEncoding(conn, "SQL_ASCII");   /* fails only with conn */
}

PGconn *dbconn_connect(const char *dsn, const char *app, dbconn_mode mode)
{
    /*
     * The DSN is expanded first: what it says overrides what follows,
     * except client_encoding, which comes after it (see dbconn.h) and so
     * holds over the DSN's and PGCLIENTENCODING (and over an options='-c
     * client_encoding=...', which the server applies before it).
     */
    const char *last = mode == DBCONN_REPLICATION ? "replication"
                       : mode == DBCONN_QUICK       ? "connect_timeout"
                                                    : NULL;
    const char *keys[] = {"dbname", "fallback_application_name",
                          "client_encoding", last, NULL};
    const char *vals[] = {dsn, app, DBCONN_ENCODING,
                          mode == DBCONN_QUICK ? DBCONN_QUICK_S : "database",
                          NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    raw_if_sql_ascii(conn);
    return conn;
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
