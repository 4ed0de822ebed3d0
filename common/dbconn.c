#include "common/dbconn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

PGconn *dbconn_open(const char *dsn, const char *app, const char *what,
                    char *err, size_t errlen)
{
    const char *keys[] = {"dbname", "fallback_application_name", NULL};
    const char *vals[] = {dsn, app, NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (conn && PQstatus(conn) == CONNECTION_OK)
        return conn;
    char *shown = cfg_dsn_redacted(dsn);
    const char *msg = conn ? PQerrorMessage(conn) : "out of memory";
    snprintf(err, errlen, "cannot connect to %s (%s): %.*s", what,
             shown ? shown : "?", (int)strcspn(msg, "\n"), msg);
    free(shown);
    PQfinish(conn);
    return NULL;
}
