#include "common/dbconn.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "config/config.h"

/* Seconds to connect, where the DSN says nothing (libpq waits forever). */
#define DBCONN_TIMEOUT_S "10"

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

/*
 * Values as text the same way whatever a server or database sets by
 * default, as PostgreSQL's own subscriber asks of its publisher: a
 * walsender's output functions write the stream's text values, which a
 * target's input functions read under its own settings and the Kafka
 * events take for ISO-8601 (DateStyle 'SQL, DMY' wrote 17/05/1990), and
 * extra_float_digits 3 keeps every float's digits on a server set lower.
 * A failure is left to the connection's first real statement to say.
 */
static void same_text(PGconn *conn)
{
    if (PQstatus(conn) == CONNECTION_OK)
        PQclear(PQexec(conn, "SET datestyle = ISO; SET intervalstyle = "
                             "postgres; SET extra_float_digits = 3"));
}

/*
 * The keywords of a connection to dsn (see dbconn_connect). A server that
 * takes the connection and never answers would hold the caller for good
 * (the runner's loop, for a service database's reverse stream): a
 * connect_timeout, before dbname so that the DSN's own wins.
 */
#define DBCONN_KEYS(dsn, app, mode)                                          \
    const char *keys[] = {"connect_timeout", "dbname",                      \
                          "fallback_application_name", "client_encoding",   \
                          mode == DBCONN_REPLICATION ? "replication" : NULL, \
                          NULL};                                            \
    const char *vals[] = {DBCONN_TIMEOUT_S, dsn, app, DBCONN_ENCODING,       \
                          "database", NULL}

PGconn *dbconn_connect(const char *dsn, const char *app, dbconn_mode mode)
{
    /*
     * The DSN is expanded first: what it says overrides what follows,
     * except client_encoding, which comes after it (see dbconn.h) and so
     * holds over the DSN's and PGCLIENTENCODING (and over an options='-c
     * client_encoding=...', which the server applies before it).
     */
    DBCONN_KEYS(dsn, app, mode);
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    raw_if_sql_ascii(conn);
    same_text(conn);
    return conn;
}

static PGconn *start_plain(const char *dsn, const char *app)
{
    DBCONN_KEYS(dsn, app, DBCONN_PLAIN);
    PGconn *conn = PQconnectStartParams(keys, vals, 1);
    if (conn && PQstatus(conn) == CONNECTION_BAD) {
        PQfinish(conn);
        conn = NULL;
    }
    return conn;
}

/*
 * One round of the attempts still under way (polling[i]: what
 * PQconnectPoll last asked to wait for): waits for any of their sockets,
 * then moves on those that are ready. False when none is under way or
 * the deadline passed.
 */
static bool connect_round(PGconn **conns, PostgresPollingStatusType *polling,
                          struct pollfd *fds, size_t *idx, size_t n,
                          int64_t deadline)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (polling[i] == PGRES_POLLING_READING ||
            polling[i] == PGRES_POLLING_WRITING) {
            fds[k] = (struct pollfd){.fd = PQsocket(conns[i]),
                                     .events = polling[i] == PGRES_POLLING_READING
                                                   ? POLLIN : POLLOUT};
            idx[k++] = i;
        }
    int64_t left = deadline - clock_ms();
    if (k == 0 || left <= 0)
        return false;
    if (poll(fds, k, (int)left) < 0)
        return errno == EINTR;   /* a signal: wait on for what is left */
    for (size_t j = 0; j < k; j++)
        if (fds[j].revents)
            polling[idx[j]] = PQconnectPoll(conns[idx[j]]);
    return true;
}

void dbconn_connect_many(const char *const *dsns, size_t n, const char *app,
                         int timeout_ms, PGconn **conns)
{
    PostgresPollingStatusType *polling = calloc(n + 1, sizeof *polling);
    struct pollfd *fds = calloc(n + 1, sizeof *fds);
    size_t *idx = calloc(n + 1, sizeof *idx);
    bool mem = polling && fds && idx;
    for (size_t i = 0; i < n; i++) {
        conns[i] = mem && dsns[i] ? start_plain(dsns[i], app) : NULL;
        if (mem)
            polling[i] = conns[i] ? PGRES_POLLING_WRITING : PGRES_POLLING_FAILED;
    }
    int64_t deadline = clock_ms() + timeout_ms;
    while (mem && connect_round(conns, polling, fds, idx, n, deadline))
        ;
    for (size_t i = 0; mem && i < n; i++) {
        if (conns[i] && polling[i] != PGRES_POLLING_OK &&
            polling[i] != PGRES_POLLING_FAILED) {
            PQfinish(conns[i]);    /* still connecting at the deadline */
            conns[i] = NULL;
        }
        if (conns[i])
            raw_if_sql_ascii(conns[i]);
    }
    free(polling);
    free(fds);
    free(idx);
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
