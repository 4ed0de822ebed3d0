/* snapshot: slots created with an exported snapshot; see snapshot.h. */
#include "daemon/snapshot.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "common/dbconn.h"
#include "common/log.h"

/* How often the sessions holding up a slot's creation are logged. */
#define HOLDERS_EVERY_S 5

struct snap {
    PGconn *conn;
    char *name;
    lsn_t lsn;
};

static PGconn *connect_to(const cfg_source *source, bool replication)
{
    return dbconn_connect(source->dsn, "cleave",
                          replication ? DBCONN_REPLICATION : DBCONN_PLAIN);
}

static void conn_err(char *err, size_t errlen, const char *what, PGconn *c)
{
    const char *msg = c ? PQerrorMessage(c) : "out of memory";
    snprintf(err, errlen, "%s: %.*s", what, (int)strcspn(msg, "\n"), msg);
}

/*
 * A temporary slot never fails over (the server refuses it); the source
 * checked that the server has FAILOVER before asking for it.
 */
static char *create_command(PGconn *c, const cfg_source *source,
                            const char *slot, bool temporary)
{
    char *ident = PQescapeIdentifier(c, slot, strlen(slot));
    char *cmd = NULL;
    /* PostgreSQL 15 brought the option list; older servers the keyword. */
    bool options = PQserverVersion(c) >= 150000;
    bool failover = source->failover_slot && !temporary;
    if (ident && asprintf(&cmd, "CREATE_REPLICATION_SLOT %s %sLOGICAL pgoutput %s",
                          ident, temporary ? "TEMPORARY " : "",
                          !options ? "EXPORT_SNAPSHOT"
                          : failover ? "(SNAPSHOT 'export', FAILOVER true)"
                          : "(SNAPSHOT 'export')") < 0)
        cmd = NULL;
    PQfreemem(ident);
    return cmd;
}

/*
 * Logs the transactions a new slot waits for: every session with a
 * transaction id, and every prepared transaction.
 */
static void log_holders(PGconn *control, const char *slot)
{
    static const char sql[] =
        "SELECT 'pid=' || pid || ' xact_start=\"' || coalesce(xact_start::text, '') "
        "  || '\" state=' || coalesce(state, '') || ' query=\"' "
        "  || replace(left(coalesce(query, ''), 200), '\"', '''') || '\"' "
        "FROM pg_stat_activity "
        "WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid() "
        "UNION ALL "
        "SELECT 'prepared_gid=\"' || replace(gid, '\"', '''') "
        "  || '\" prepared_at=\"' || prepared || '\" database=' || database "
        "FROM pg_prepared_xacts";
    PGresult *res = control ? PQexec(control, sql) : NULL;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_warning("event=slot_waiting slot=%s error=\"cannot list the "
                    "sessions it waits for\"", slot);
    } else if (PQntuples(res) == 0) {
        log_info("event=slot_waiting slot=%s holder=none", slot);
    } else {
        for (int i = 0; i < PQntuples(res); i++)
            log_warning("event=slot_waiting slot=%s %s", slot,
                        PQgetvalue(res, i, 0));
    }
    PQclear(res);
}

/* Waits for the command's result, logging holders; NULL when stopped. */
static PGresult *wait_result(PGconn *c, const cfg_source *source,
                             const char *slot,
                             snap_stop_fn *stop, void *arg)
{
    PGconn *control = NULL;
    time_t started = time(NULL), next_log = started + HOLDERS_EVERY_S;
    while (PQisBusy(c)) {
        struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};
        if (poll(&p, 1, 1000) < 0 || !PQconsumeInput(c))
            break;
        if (stop && stop(arg)) {
            PQfinish(control);
            return NULL;
        }
        if (PQisBusy(c) && time(NULL) >= next_log) {
            if (!control)
                control = connect_to(source, false);
            log_holders(PQstatus(control) == CONNECTION_OK ? control : NULL,
                        slot);
            next_log = time(NULL) + HOLDERS_EVERY_S;
        }
    }
    PQfinish(control);
    return PQgetResult(c);
}

static bool read_result(snap *s, PGresult *res, char *err, size_t errlen)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
        PQnfields(res) < 3) {
        conn_err(err, errlen, "CREATE_REPLICATION_SLOT", s->conn);
        return false;
    }
    s->name = strdup(PQgetvalue(res, 0, 2));
    if (!s->name || !lsn_parse(PQgetvalue(res, 0, 1), &s->lsn)) {
        snprintf(err, errlen, "CREATE_REPLICATION_SLOT: unexpected answer");
        return false;
    }
    return true;
}

snap *snap_create(const cfg_source *source, const char *slot, bool temporary,
                  snap_stop_fn *stop, void *stop_arg, char *err, size_t errlen)
{
    snap *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->conn = connect_to(source, true);
    if (PQstatus(s->conn) != CONNECTION_OK) {
        conn_err(err, errlen, "cannot open a replication connection", s->conn);
        snap_release(s);
        return NULL;
    }
    char *cmd = create_command(s->conn, source, slot, temporary);
    log_info("event=slot_creating slot=%s temporary=%s failover=%s", slot,
             temporary ? "true" : "false",
             source->failover_slot && !temporary ? "true" : "false");
    if (!cmd || !PQsendQuery(s->conn, cmd)) {
        conn_err(err, errlen, "CREATE_REPLICATION_SLOT", s->conn);
        free(cmd);
        snap_release(s);
        return NULL;
    }
    free(cmd);
    PGresult *res = wait_result(s->conn, source, slot, stop, stop_arg);
    bool ok = res && read_result(s, res, err, errlen);
    if (!res)
        snprintf(err, errlen, "stopped while creating slot %s", slot);
    PQclear(res);
    /* The snapshot lives while the connection idles: nothing else may run. */
    while (ok && (res = PQgetResult(s->conn)) != NULL)
        PQclear(res);
    if (!ok) {
        snap_release(s);
        return NULL;
    }
    char lsn[LSN_STRLEN];
    log_info("event=slot_created slot=%s temporary=%s consistent_lsn=%s "
             "snapshot=%s", slot, temporary ? "true" : "false",
             lsn_format(s->lsn, lsn), s->name);
    return s;
}

const char *snap_name(const snap *s)
{
    return s->name;
}

lsn_t snap_lsn(const snap *s)
{
    return s->lsn;
}

void snap_release(snap *s)
{
    if (!s)
        return;
    PQfinish(s->conn);
    free(s->name);
    free(s);
}
