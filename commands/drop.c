/*
 * drop: `cleave drop`, the clean-up after a cut-over (PRODUCT.md §6).
 *
 * Three steps, nothing dropped before the last:
 *   1. look: the slot on the source (there or not, active and by which pid,
 *      the WAL it holds back), the publication (its table count), and with
 *      `origins` the replication origin cleave made in each service's
 *      PostgreSQL target (cfg_origin_name);
 *   2. refuse while the slot is active (a `cleave run` streams it), else
 *      print the list and ask "Drop these? [y/N]" unless `yes`. The answer
 *      is read from stdin even when it is not a terminal, so a script may
 *      pipe one in; end of input counts as no;
 *   3. drop: the slot, the publication, the origins, each only if still
 *      there (a missing one is "not there", not an error).
 *
 * cleave's own state (state_dir) is left as it is. Every DSN shown is
 * redacted (cfg_dsn_redacted): a password is never printed.
 */
#include "commands/drop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "common/exitcode.h"
#include "common/dbconn.h"

#define ERRLEN 512

/* What is there, found in step 1. */
typedef struct drop_origin {
    const cfg_service *svc;
    char *name;          /* cfg_origin_name */
    PGconn *conn;        /* the service's target, kept open for step 3 */
    bool exists;
} drop_origin;

typedef struct drop_plan {
    PGconn *source;
    bool slot_exists;
    bool slot_active;
    char active_pid[16];
    char retained[32];   /* pg_size_pretty of the WAL the slot holds */
    bool pub_exists;
    long pub_tables;
    drop_origin *origins;    /* one per service with a PostgreSQL target */
    size_t n_origins;
} drop_plan;

static void set_err(char *err, size_t errlen, const char *what, PGconn *conn)
{
    const char *msg = conn ? PQerrorMessage(conn) : "out of memory";
    snprintf(err, errlen, "%s: %.*s", what, (int)strcspn(msg, "\n"), msg);
}

/* Runs a statement with one text parameter; the result or NULL (err set). */
static PGresult *drop_query(PGconn *conn, const char *sql, const char *param,
                            char *err, size_t errlen)
{
    PGresult *res = PQexecParams(conn, sql, param ? 1 : 0, NULL, &param, NULL,
                                 NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    set_err(err, errlen, sql, conn);
    PQclear(res);
    return NULL;
}

/* ---- 1. look ---- */

static bool look_slot(drop_plan *p, const cfg *config, char *err,
                      size_t errlen)
{
    PGresult *res = drop_query(p->source,
        "SELECT active, coalesce(active_pid::text, ''), "
        "coalesce(pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), "
        "restart_lsn)), 'unknown') "
        "FROM pg_replication_slots WHERE slot_name = $1",
        config->source.slot, err, errlen);
    if (!res)
        return false;
    p->slot_exists = PQntuples(res) > 0;
    if (p->slot_exists) {
        p->slot_active = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
        snprintf(p->active_pid, sizeof p->active_pid, "%s", PQgetvalue(res, 0, 1));
        snprintf(p->retained, sizeof p->retained, "%s", PQgetvalue(res, 0, 2));
    }
    PQclear(res);
    return true;
}

static bool look_publication(drop_plan *p, const cfg *config, char *err,
                             size_t errlen)
{
    PGresult *res = drop_query(p->source,
        "SELECT (SELECT count(*) FROM pg_publication_tables t "
        "WHERE t.pubname = p.pubname) FROM pg_publication p WHERE p.pubname = $1",
        config->source.publication, err, errlen);
    if (!res)
        return false;
    p->pub_exists = PQntuples(res) > 0;
    if (p->pub_exists)
        p->pub_tables = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return true;
}

static bool look_origin(drop_origin *o, const cfg *config, char *err,
                        size_t errlen)
{
    o->name = cfg_origin_name(config, o->svc);
    if (!o->name) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    char what[160];
    snprintf(what, sizeof what, "the target of %s", o->svc->name);
    o->conn = dbconn_open(o->svc->target_postgres, "cleave drop", what, err,
                          errlen);
    if (!o->conn)
        return false;
    PGresult *res = drop_query(o->conn, "SELECT 1 FROM pg_replication_origin "
                               "WHERE roname = $1", o->name, err, errlen);
    if (!res)
        return false;
    o->exists = PQntuples(res) > 0;
    PQclear(res);
    return true;
}

static bool look_origins(drop_plan *p, const cfg *config, char *err,
                         size_t errlen)
{
    p->origins = calloc(config->n_services ? config->n_services : 1,
                        sizeof *p->origins);
    if (!p->origins) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    for (size_t i = 0; i < config->n_services; i++) {
        if (!config->services[i].target_postgres)
            continue;
        drop_origin *o = &p->origins[p->n_origins++];
        o->svc = &config->services[i];
        if (!look_origin(o, config, err, errlen))
            return false;
    }
    return true;
}

static bool drop_look(drop_plan *p, const cfg *config, bool origins, char *err,
                      size_t errlen)
{
    p->source = dbconn_open(config->source.dsn, "cleave drop", "the source",
                            err, errlen);
    if (!p->source)
        return false;
    return look_slot(p, config, err, errlen) &&
           look_publication(p, config, err, errlen) &&
           (!origins || look_origins(p, config, err, errlen));
}

static void drop_plan_free(drop_plan *p)
{
    for (size_t i = 0; i < p->n_origins; i++) {
        PQfinish(p->origins[i].conn);
        free(p->origins[i].name);
    }
    free(p->origins);
    PQfinish(p->source);
}

/* ---- 2. show and ask ---- */

static bool drop_anything(const drop_plan *p)
{
    bool any = p->slot_exists || p->pub_exists;
    for (size_t i = 0; i < p->n_origins; i++)
        any = any || p->origins[i].exists;
    return any;
}

static void drop_show(const drop_plan *p, const cfg *config, bool origins)
{
    char *dsn = cfg_dsn_redacted(config->source.dsn);
    printf("cleave drop: %s, source %s\n", config->name, dsn ? dsn : "?");
    free(dsn);
    if (p->slot_exists)
        printf("  slot         %s: there, %s, retains %s of WAL\n",
               config->source.slot, p->slot_active ? "active" : "inactive",
               p->retained);
    else
        printf("  slot         %s: not there\n", config->source.slot);
    if (p->pub_exists)
        printf("  publication  %s: there, %ld table%s\n", config->source.publication,
               p->pub_tables, p->pub_tables == 1 ? "" : "s");
    else
        printf("  publication  %s: not there\n", config->source.publication);
    if (!origins)
        printf("  origins      kept in the service databases (--origins drops them)\n");
    for (size_t i = 0; i < p->n_origins; i++)
        printf("  origin       %s in %s: %s\n", p->origins[i].name,
               p->origins[i].svc->name,
               p->origins[i].exists ? "there" : "not there");
    if (origins && p->n_origins == 0)
        printf("  origins      none: no service has a PostgreSQL target\n");
    printf("cleave's state%s%s is not touched.\n",
           config->state_dir ? " in " : "",
           config->state_dir ? config->state_dir : "");
}

bool drop_ask(const char *question)
{
    printf("%s [y/N] ", question);
    fflush(stdout);
    char line[64];
    bool got = fgets(line, sizeof line, stdin) != NULL;
    if (!isatty(STDIN_FILENO))
        printf("\n");   /* a piped answer is not echoed: end the line */
    if (!got)
        return false;
    line[strcspn(line, "\r\n")] = '\0';
    const char *s = line + strspn(line, " \t");
    size_t n = strcspn(s, " \t");
    return (n == 1 && strncasecmp(s, "y", 1) == 0) ||
           (n == 3 && strncasecmp(s, "yes", 3) == 0);
}

/* ---- 3. drop ---- */

/* Runs sql (one parameter); says "dropped WHAT" when it took a row. */
static bool drop_one(PGconn *conn, const char *sql, const char *param,
                     const char *what, char *err, size_t errlen)
{
    PGresult *res = drop_query(conn, sql, param, err, errlen);
    if (!res)
        return false;
    bool took = PQresultStatus(res) == PGRES_COMMAND_OK || PQntuples(res) > 0;
    printf("  %s %s\n", took ? "dropped" : "not there:", what);
    PQclear(res);
    return true;
}

static bool drop_publication(drop_plan *p, const cfg *config, char *err,
                             size_t errlen)
{
    const char *pub = config->source.publication;
    char what[200];
    snprintf(what, sizeof what, "publication %s", pub);
    if (!p->pub_exists) {
        printf("  not there: %s\n", what);
        return true;
    }
    char *ident = PQescapeIdentifier(p->source, pub, strlen(pub));
    char *sql = NULL;
    bool built = ident &&
                 asprintf(&sql, "DROP PUBLICATION IF EXISTS %s", ident) >= 0;
    if (!built) {
        set_err(err, errlen, "DROP PUBLICATION", ident ? NULL : p->source);
        PQfreemem(ident);
        return false;
    }
    PQfreemem(ident);
    bool ok = drop_one(p->source, sql, NULL, what, err, errlen);
    free(sql);
    return ok;
}

static bool drop_all(drop_plan *p, const cfg *config, char *err, size_t errlen)
{
    char what[200];
    snprintf(what, sizeof what, "slot %s", config->source.slot);
    /* Through the view: a slot gone since the look is not an error. */
    if (!drop_one(p->source, "SELECT pg_drop_replication_slot(slot_name) "
                  "FROM pg_replication_slots WHERE slot_name = $1",
                  config->source.slot, what, err, errlen))
        return false;
    if (!drop_publication(p, config, err, errlen))
        return false;
    for (size_t i = 0; i < p->n_origins; i++) {
        drop_origin *o = &p->origins[i];
        snprintf(what, sizeof what, "origin %s in %s", o->name, o->svc->name);
        if (!drop_one(o->conn, "SELECT pg_replication_origin_drop(roname) "
                      "FROM pg_replication_origin WHERE roname = $1",
                      o->name, what, err, errlen))
            return false;
    }
    return true;
}

int drop_run(const cfg *config, bool yes, bool origins)
{
    drop_plan p = {0};
    char err[ERRLEN] = "";
    int rc = EXITCODE_RUNTIME;
    if (!drop_look(&p, config, origins, err, sizeof err)) {
        fprintf(stderr, "cleave drop: %s\nNothing dropped.\n", err);
        goto out;
    }
    drop_show(&p, config, origins);
    if (p.slot_active) {
        fprintf(stderr, "cleave drop: slot %s is active (pid %s): a cleave run "
                "still streams it; stop it first. Nothing dropped.\n",
                config->source.slot, p.active_pid);
        goto out;
    }
    if (!drop_anything(&p)) {
        printf("Nothing to drop: none of these is there.\n");
        rc = EXITCODE_OK;
        goto out;
    }
    if (!yes && !drop_ask("Drop these?")) {
        fprintf(stderr, "cleave drop: not confirmed, nothing dropped.\n");
        goto out;
    }
    if (!drop_all(&p, config, err, sizeof err)) {
        fprintf(stderr, "cleave drop: %s\n(what is listed as dropped above "
                "is gone; run it again for the rest)\n", err);
        goto out;
    }
    printf("Done.\n");
    rc = EXITCODE_OK;
out:
    drop_plan_free(&p);
    return rc;
}
