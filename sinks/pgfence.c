/*
 * pgfence: the write fence and the cut-over's lock; see pgfence.h.
 *
 * Setting and clearing run as one DO block, so one round trip covers
 * every table and every partition the server finds below it at that
 * moment, inside whatever transaction the caller has open. The block's
 * text is built with libpq's literal quoting, and quoted once more as the
 * DO block's own literal, so no name can close a quote it did not open.
 */
#include "sinks/pgfence.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "sinks/pgtables.h"

/*
 * The schema is made quietly: IF NOT EXISTS would send a NOTICE on every
 * call but the first, onto the daemon's stderr.
 * The table is named as format('%I.%I') prints it, so the message reads
 * `table public.orders` for plain names and quotes only odd ones. The
 * hint is true on either side of a move: before the cut-over the
 * service's database is fenced, after it the shared one.
 */
static const char FUNCTION_SQL[] =
    "DO $schema$ BEGIN IF to_regnamespace('cleave') IS NULL THEN"
    " CREATE SCHEMA cleave; END IF; END $schema$;"
    "CREATE OR REPLACE FUNCTION " PGFENCE_FUNCTION " RETURNS trigger"
    " LANGUAGE plpgsql AS $fence$ BEGIN"
    " RAISE EXCEPTION 'table % is fenced: its writes go to database \"%\"',"
    "  format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME), TG_ARGV[0]"
    " USING ERRCODE = 'read_only_sql_transaction',"
    "  HINT = 'cleave fenced it for a cut-over: `cleave cutover` moves the"
    " writes to the service''s database, `cleave rollback` moves them back.';"
    " END $fence$;";

/* One statement per table and partition: format() gets schema, name. */
#define CREATE_TRIGGER \
    "'CREATE OR REPLACE TRIGGER " PGFENCE_TRIGGER " BEFORE INSERT OR UPDATE" \
    " OR DELETE OR TRUNCATE ON %I.%I FOR EACH STATEMENT" \
    " EXECUTE FUNCTION cleave.fence(%L)'"
/*
 * Cleared by disabling, not dropping: DISABLE TRIGGER takes SHARE ROW
 * EXCLUSIVE, which readers and foreign-key checks never wait on, where
 * DROP TRIGGER would take ACCESS EXCLUSIVE and queue every reader behind
 * it. CREATE OR REPLACE TRIGGER enables it again.
 */
#define DROP_TRIGGER \
    "'ALTER TABLE ONLY %I.%I DISABLE TRIGGER " PGFENCE_TRIGGER "'"

/* Which relations the DO block visits: for clear, those with a fence. */
#define SET_TREE PGTABLES_TREE("u.t::regclass")
#define CLEAR_TREE \
    "(SELECT f.relid FROM " PGTABLES_TREE("to_regclass(u.t)") " AS f" \
    " JOIN pg_trigger g ON g.tgrelid = f.relid" \
    "  AND g.tgname = '" PGFENCE_TRIGGER "' AND g.tgenabled <> 'D')"

/* The modes that conflict with SHARE ROW EXCLUSIVE. */
#define CONFLICTING_MODES \
    "('RowExclusiveLock', 'ShareUpdateExclusiveLock', 'ShareLock'," \
    " 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')"

/* ------------------------------------------------------------ statements */

/* Runs a command (several allowed); false with the reason in err. */
static bool exec_command(PGconn *c, const char *sql, const char *what,
                         char *err, size_t errlen)
{
    PGresult *res = PQexec(c, sql);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        pgtables_err(c, res, what, err, errlen);
    PQclear(res);
    return ok;
}

/* ------------------------------------------------------------ DO block */

/* ARRAY['"s"."t"', ...]::text[], every name a literal. NULL on failure. */
static char *literal_array(PGconn *c, char **quoted, size_t n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    bool ok = out != NULL;
    if (ok)
        fputs("ARRAY[", out);
    for (size_t i = 0; ok && i < n; i++) {
        char *lit = PQescapeLiteral(c, quoted[i], strlen(quoted[i]));
        ok = lit != NULL;
        if (ok)
            fprintf(out, "%s%s", i ? ", " : "", lit);
        PQfreemem(lit);
    }
    if (out) {
        fputs("]::text[]", out);
        ok = fclose(out) == 0 && ok;
    }
    if (!ok)
        free(buf);
    return ok ? buf : NULL;
}

/*
 * The body of a DO block running format(stmt, schema, name[, extra]) for
 * every relation of `tree` (rows of relid; u.t is each quoted name).
 */
static char *do_body(const char *tables, const char *tree, const char *stmt,
                     const char *extra)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    if (!out)
        return NULL;
    fprintf(out,
        "DECLARE r record; BEGIN"
        " FOR r IN SELECT n.nspname, k.relname FROM unnest(%s) AS u(t)"
        "  CROSS JOIN LATERAL %s AS p"
        "  JOIN pg_class k ON k.oid = p.relid"
        "  JOIN pg_namespace n ON n.oid = k.relnamespace"
        " LOOP EXECUTE format(%s, r.nspname, r.relname%s%s); END LOOP;"
        " END", tables, tree, stmt, extra ? ", " : "", extra ? extra : "");
    if (fclose(out) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* "DO '<body>'" for the tables; NULL when out of memory or unquotable. */
static char *do_block(PGconn *c, const cfg_table *t, size_t n,
                      const char *tree, const char *stmt, const char *extra)
{
    char **quoted = pgtables_quoted(c, t, n);
    char *tables = quoted ? literal_array(c, quoted, n) : NULL;
    char *body = tables ? do_body(tables, tree, stmt, extra) : NULL;
    char *lit = body ? PQescapeLiteral(c, body, strlen(body)) : NULL;
    char *sql = lit ? malloc(strlen(lit) + 4) : NULL;
    if (sql)
        sprintf(sql, "DO %s", lit);
    PQfreemem(lit);
    free(body);
    free(tables);
    pgtables_free(quoted, n);
    return sql;
}

/* ------------------------------------------------------------ fence */

bool pgfence_set(PGconn *c, const cfg_table *t, size_t n, const char *owner,
                 char *err, size_t errlen)
{
    if (n == 0)
        return true;
    char *who = PQescapeLiteral(c, owner, strlen(owner));
    /* ::regclass, not to_regclass: a missing table fails the call. */
    char *block = who ? do_block(c, t, n, SET_TREE, CREATE_TRIGGER, who)
                      : NULL;
    char *sql = block ? malloc(sizeof FUNCTION_SQL + strlen(block)) : NULL;
    bool ok = sql != NULL;
    if (!ok)
        snprintf(err, errlen, "fence: out of memory or an unquotable name");
    else {
        sprintf(sql, "%s%s", FUNCTION_SQL, block);
        ok = exec_command(c, sql, "fence", err, errlen);
    }
    free(sql);
    free(block);
    PQfreemem(who);
    return ok;
}

bool pgfence_clear(PGconn *c, const cfg_table *t, size_t n, char *err,
                   size_t errlen)
{
    if (n == 0)
        return true;
    /* Only where there is one: DROP TRIGGER IF EXISTS sends NOTICEs. */
    char *sql = do_block(c, t, n, CLEAR_TREE, DROP_TRIGGER, NULL);
    bool ok = sql != NULL;
    if (!ok)
        snprintf(err, errlen, "unfence: out of memory or an unquotable name");
    else
        ok = exec_command(c, sql, "unfence", err, errlen);
    free(sql);
    return ok;
}

/* ------------------------------------------------------------ state */

/* Per distinct name: relations under it, and those carrying the fence. */
static const char STATE_SQL[] =
    "SELECT count(*) FILTER (WHERE parts > 0 AND fenced = parts),"
    "  count(*) FILTER (WHERE fenced > 0), count(*) "
    "FROM (SELECT u.t, count(p.relid) AS parts, count(g.oid) AS fenced"
    "  FROM unnest(%s) AS u(t)"
    "  LEFT JOIN LATERAL " PGTABLES_TREE("to_regclass(u.t)") " AS p ON true"
    "  LEFT JOIN pg_trigger g ON g.tgrelid = p.relid"
    "   AND g.tgname = '" PGFENCE_TRIGGER "' AND g.tgenabled IN ('O', 'A')"
    "   AND g.tgfoid = to_regprocedure('" PGFENCE_FUNCTION "')"
    "  GROUP BY u.t) AS x";

/* The SQL `fmt` with the tables' parameter array in place of its %s. */
static char *with_param_array(const char *fmt, size_t n)
{
    char *array = pgtables_param_array(1, n);
    char *sql = array ? malloc(strlen(fmt) + strlen(array)) : NULL;
    if (sql)
        sprintf(sql, fmt, array);
    free(array);
    return sql;
}

/* Runs `fmt` (see with_param_array) over the tables. */
static PGresult *query_over(PGconn *c, const char *fmt, const cfg_table *t,
                            size_t n, const char *what, char *err,
                            size_t errlen)
{
    char **quoted = pgtables_quoted(c, t, n);
    char *sql = quoted ? with_param_array(fmt, n) : NULL;
    PGresult *res = NULL;
    if (!sql)
        snprintf(err, errlen, "%s: out of memory or an unquotable name",
                 what);
    else
        res = pgtables_query(c, sql, (const char *const *)quoted, n, what,
                             err, errlen);
    free(sql);
    pgtables_free(quoted, n);
    return res;
}

int pgfence_state(PGconn *c, const cfg_table *t, size_t n, char *err,
                  size_t errlen)
{
    if (n == 0)
        return PGFENCE_NONE;
    PGresult *res = query_over(c, STATE_SQL, t, n, "fence state", err,
                               errlen);
    if (!res)
        return -1;
    long all = atol(PQgetvalue(res, 0, 0));
    long some = atol(PQgetvalue(res, 0, 1));
    long tables = atol(PQgetvalue(res, 0, 2));
    PQclear(res);
    if (all == tables)
        return PGFENCE_ALL;
    return some == 0 ? PGFENCE_NONE : PGFENCE_SOME;
}

/* ------------------------------------------------------------ lock */

/* Waits for the whole answer until deadline; false when time ran out. */
static bool await_result(PGconn *c, int64_t deadline)
{
    while (PQisBusy(c)) {
        int64_t left = deadline - clock_ms();
        if (left <= 0)
            return false;
        struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno != EINTR)
            return true;     /* PQgetResult reports the broken connection */
        if (r > 0 && !PQconsumeInput(c))
            return true;
    }
    return true;
}

/* Asks the server to stop the statement; its error answer follows. */
static void cancel_statement(PGconn *c)
{
    char why[256];
    PGcancel *cancel = PQgetCancel(c);
    if (cancel)
        PQcancel(cancel, why, sizeof why);
    PQfreeCancel(cancel);
}

/* Reads every result; false with err (why the lock failed) if one did. */
static bool lock_results(PGconn *c, int timeout_ms, char *err, size_t errlen)
{
    bool ok = true;
    PGresult *res;
    while ((res = PQgetResult(c)) != NULL) {
        if (ok && PQresultStatus(res) != PGRES_COMMAND_OK) {
            const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            /* 55P03 lock_not_available, 57014 query_canceled (ours) */
            bool timed_out = state && (strcmp(state, "55P03") == 0 ||
                                       strcmp(state, "57014") == 0);
            char what[64];
            snprintf(what, sizeof what, timed_out
                     ? "lock not obtained within %d ms" : "lock", timeout_ms);
            pgtables_err(c, res, what, err, errlen);
            ok = false;
        }
        PQclear(res);
    }
    return ok;
}

/* Sends the statement and waits for it, cancelling it at the deadline. */
static bool run_lock(PGconn *c, const char *sql, int timeout_ms, char *err,
                     size_t errlen)
{
    int64_t deadline = clock_ms() + timeout_ms;
    if (!PQsendQuery(c, sql)) {
        pgtables_err(c, NULL, "lock", err, errlen);
        return false;
    }
    if (!await_result(c, deadline))
        cancel_statement(c);
    return lock_results(c, timeout_ms, err, errlen);
}

bool pgfence_lock(PGconn *c, const cfg_table *t, size_t n, int timeout_ms,
                  char *err, size_t errlen)
{
    if (n == 0)
        return true;
    if (timeout_ms <= 0 || PQtransactionStatus(c) != PQTRANS_INTRANS) {
        snprintf(err, errlen, "lock: %s", timeout_ms <= 0
                 ? "no time given" : "not inside a transaction");
        return false;
    }
    char **quoted = pgtables_quoted(c, t, n);
    char *list = quoted ? pgtables_join(quoted, n) : NULL;
    char *sql = list ? malloc(strlen(list) + 128) : NULL;
    bool ok = sql != NULL;
    if (!ok)
        snprintf(err, errlen, "lock: out of memory or an unquotable name");
    else {
        sprintf(sql, "SET LOCAL lock_timeout = %d;"
                " LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE", timeout_ms, list);
        ok = run_lock(c, sql, timeout_ms, err, errlen);
    }
    free(sql);
    free(list);
    pgtables_free(quoted, n);
    return ok;
}

/* ------------------------------------------------------------ holders */

/*
 * Sessions holding a conflicting lock on the tables or their partitions,
 * their queries on one line and cut to 120 characters for a log line.
 */
static const char HOLDERS_SQL[] =
    "SELECT coalesce(h.pid::text, '-'),"
    "  CASE WHEN h.pid IS NULL THEN 'prepared'"
    "   ELSE coalesce(a.state, a.backend_type, '') END,"
    "  coalesce(a.xact_start::text, ''),"
    "  CASE WHEN length(q.q) > 120 THEN left(q.q, 117) || '...'"
    "   ELSE q.q END "
    "FROM (SELECT DISTINCT l.pid FROM pg_locks l"
    "  WHERE l.locktype = 'relation' AND l.granted"
    "   AND l.database = (SELECT oid FROM pg_database"
    "    WHERE datname = current_database())"
    "   AND l.pid IS DISTINCT FROM pg_backend_pid()"
    "   AND l.mode IN " CONFLICTING_MODES
    "   AND l.relation IN (SELECT p.relid FROM unnest(%s) AS u(t)"
    "    CROSS JOIN LATERAL " PGTABLES_TREE("to_regclass(u.t)") " AS p)) AS h "
    "LEFT JOIN pg_stat_activity a ON a.pid = h.pid "
    "CROSS JOIN LATERAL (SELECT regexp_replace(coalesce(a.query, ''),"
    "  '[[:space:]]+', ' ', 'g') AS q) AS q "
    "ORDER BY h.pid NULLS LAST";

/* Appends to out what fits of one holder's line. */
static void add_holder(char *out, size_t outlen, const PGresult *res, int r)
{
    size_t used = strlen(out);
    if (used + 1 >= outlen)
        return;
    snprintf(out + used, outlen - used, "%spid=%s state=%s xact_start=%s"
             " query=\"%s\"", r ? "; " : "", PQgetvalue(res, r, 0),
             PQgetvalue(res, r, 1), PQgetvalue(res, r, 2),
             PQgetvalue(res, r, 3));
}

bool pgfence_lock_holders(PGconn *c, const cfg_table *t, size_t n, char *out,
                          size_t outlen)
{
    if (outlen == 0)
        return false;
    out[0] = '\0';
    if (n == 0)
        return true;
    PGresult *res = query_over(c, HOLDERS_SQL, t, n, "lock holders", out,
                               outlen);
    if (!res)
        return false;
    for (int r = 0; r < PQntuples(res); r++)
        add_holder(out, outlen, res, r);
    PQclear(res);
    return true;
}
