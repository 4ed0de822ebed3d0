/* initsync: schema, snapshot and copy threads; see initsync.h. */
#include "daemon/initsync.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "common/dbconn.h"
#include "common/backoff.h"
#include "common/log.h"
#include "daemon/schema.h"
#include "sinks/pgfence.h"
#include "sinks/sink.h"

#define PROGRESS_EVERY_MS 5000
/* How long a round waits for a service's stream to be held (held_fn). */
#define HELD_WAIT_MS 30000

/* A service's standing, for status: under initsync.mu. */
typedef struct health {
    bool failing;             /* the last try failed, none copies since */
    bool role_warned;         /* replica role refused: said once */
    char error[512];          /* the last failure, kept after it passed */
    int64_t error_time;       /* Unix seconds */
    uint64_t failures;
} health;

struct initsync {
    const cfg *config;
    const cfg_source *source;
    syncstate *ss;
    snap *created;
    initsync_held_fn *held;
    void *held_arg;
    pthread_t thread;
    atomic_bool stop;
    atomic_bool done;
    atomic_bool again;            /* a resync: another round wanted */
    bool running;                 /* under mu: the thread has not ended */
    bool joined;                  /* no thread left to join */
    atomic_uint_fast64_t *rows;   /* per service, copied so far: for status */
    pthread_mutex_t mu;
    health *health;               /* per service */
};

/*
 * A table copied in parts, each a job of its own (a block range, or a
 * partition): the first part to start empties the table, the last to
 * end finishes it. Under round.mu.
 */
typedef struct split {
    int emptied;              /* 0 not yet, 1 under way, 2 done, -1 failed */
    size_t nparts, left;      /* parts, and parts still to load */
    int64_t bytes;            /* the heaps of what it reads */
    uint64_t rows_copied, bytes_copied;
    size_t binary_parts;      /* parts copied in COPY's binary format */
    double started;
} split;

typedef struct job {
    size_t svc, table;
    int64_t bytes;
    split *split;             /* NULL: the whole table in one transaction */
    size_t part;
    char *from_schema;        /* the partition read, or NULL: the table */
    char *from_name;
    uint32_t blk_from, blk_to;   /* its blocks; blk_to 0: to the end */
} job;

typedef struct service_round {
    bool needed;
    bool failed;              /* under mu: its jobs are skipped */
    schema_plan *plan;
    size_t remaining;         /* tables still to copy */
    size_t unloaded;          /* tables not yet loaded: the last is "last" */
    uint64_t rows, bytes;
    double started;
} service_round;

/* One attempt at every unfinished service, with one snapshot. */
typedef struct round {
    initsync *is;
    lsn_t snap_lsn;
    PGconn **src;             /* copy_workers connections in the snapshot */
    size_t nsrc;
    service_round *svc;
    job *jobs;
    size_t njobs, jobs_cap, next_job;
    int64_t split_bytes;      /* copy_split_size; 0: block ranges never */
    pthread_mutex_t mu;
    pthread_cond_t emptied;   /* a split table emptied, or a service failed */
    char error[1024];         /* the first failure, under mu */
} round;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static bool stopped(void *arg)
{
    return atomic_load(&((initsync *)arg)->stop);
}

/* Service i failed: status shows it in error until it copies again. */
static void health_failed(initsync *is, size_t i, const char *why)
{
    pthread_mutex_lock(&is->mu);
    health *h = &is->health[i];
    h->failing = true;
    snprintf(h->error, sizeof h->error, "initial sync: %s", why);
    h->error_time = (int64_t)time(NULL);
    h->failures++;
    pthread_mutex_unlock(&is->mu);
}

/* Service i copies (or finished): past its last failure. */
static void health_going(initsync *is, size_t i)
{
    pthread_mutex_lock(&is->mu);
    is->health[i].failing = false;
    pthread_mutex_unlock(&is->mu);
}

static void round_fail(round *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void round_fail(round *r, const char *fmt, ...)
{
    pthread_mutex_lock(&r->mu);
    if (!r->error[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->error, sizeof r->error, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&r->mu);
}

/*
 * One service's failure (its target down, a table of another shape):
 * logged now; the other services go on, this one is tried next round.
 */
static void service_fail(round *r, size_t i, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void service_fail(round *r, size_t i, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&r->mu);
    bool first = !r->svc[i].failed;
    r->svc[i].failed = true;
    pthread_cond_broadcast(&r->emptied);
    pthread_mutex_unlock(&r->mu);
    if (!first || atomic_load(&r->is->stop))
        return;
    log_error("event=initial_sync_failed service=%s error=\"%s\"",
              r->is->config->services[i].name, msg);
    health_failed(r->is, i, msg);
}

static bool service_failed(round *r, size_t i)
{
    pthread_mutex_lock(&r->mu);
    bool failed = r->svc[i].failed;
    pthread_mutex_unlock(&r->mu);
    return failed || atomic_load(&r->is->stop);
}

static bool round_failed(round *r)
{
    pthread_mutex_lock(&r->mu);
    bool failed = r->error[0] != '\0';
    pthread_mutex_unlock(&r->mu);
    return failed || atomic_load(&r->is->stop);
}

static const char *first_line(PGconn *c)
{
    static _Thread_local char buf[512];
    const char *msg = c ? PQerrorMessage(c) : "out of memory";
    snprintf(buf, sizeof buf, "%.*s", (int)strcspn(msg, "\n"), msg);
    return buf;
}

static bool exec_ok(PGconn *c, const char *sql)
{
    PGresult *res = PQexec(c, sql);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK ||
              PQresultStatus(res) == PGRES_TUPLES_OK;
    PQclear(res);
    return ok;
}

static PGconn *connect_dsn(const char *dsn)
{
    return dbconn_connect(dsn, "cleave_copy", DBCONN_PLAIN);
}

/* ---- the source side ---------------------------------------------------- */

/* A read-only repeatable-read transaction in the snapshot (if any). */
static PGconn *open_source(round *r, const snap *s)
{
    PGconn *c = connect_dsn(r->is->source->dsn);
    if (PQstatus(c) != CONNECTION_OK) {
        round_fail(r, "cannot connect to the source: %s", first_line(c));
        PQfinish(c);
        return NULL;
    }
    bool ok = exec_ok(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    if (ok && s) {
        char *lit = PQescapeLiteral(c, snap_name(s), strlen(snap_name(s)));
        char *sql = NULL;
        ok = lit && asprintf(&sql, "SET TRANSACTION SNAPSHOT %s", lit) >= 0 &&
             exec_ok(c, sql);
        PQfreemem(lit);
        free(sql);
    }
    if (!ok) {
        round_fail(r, "cannot read the source in the snapshot: %s",
                   first_line(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* ---- one table ---------------------------------------------------------- */

typedef struct progress {
    const char *service;
    const cfg_table *t;
    size_t part, nparts;      /* nparts 0: the whole table */
    int64_t estimate;         /* rows, from the source's statistics */
    const char *format;       /* COPY's: "binary", "text" (or "mixed") */
    uint64_t rows, bytes;
    double started, last_log;
} progress;

static void log_progress(progress *p, bool final)
{
    double now = now_s(), secs = now - p->started;
    if (!final && (now - p->last_log) * 1000 < PROGRESS_EVERY_MS)
        return;
    p->last_log = now;
    double rate = secs > 0 ? p->rows / secs : 0;
    if (final && p->nparts) {
        log_info("event=part_copied service=%s table=%s.%s part=%zu/%zu "
                 "rows=%llu mb=%.1f seconds=%.2f rows_per_s=%.0f format=%s",
                 p->service, p->t->schema, p->t->name, p->part + 1,
                 p->nparts, (unsigned long long)p->rows,
                 p->bytes / 1048576.0, secs, rate, p->format);
        return;
    }
    if (final) {
        log_info("event=table_copied service=%s table=%s.%s rows=%llu mb=%.1f "
                 "seconds=%.2f rows_per_s=%.0f format=%s", p->service,
                 p->t->schema, p->t->name, (unsigned long long)p->rows,
                 p->bytes / 1048576.0, secs, rate, p->format);
        return;
    }
    double left = p->estimate > (int64_t)p->rows && rate > 0
                      ? (p->estimate - (double)p->rows) / rate : 0;
    log_info("event=copy_progress service=%s table=%s.%s rows=%llu mb=%.1f "
             "rows_per_s=%.0f eta_s=%.0f", p->service, p->t->schema, p->t->name,
             (unsigned long long)p->rows, p->bytes / 1048576.0, rate, left);
}

static char *table_sql(PGconn *c, const char *fmt, const cfg_table *t,
                       const char *cols)
{
    char *s = PQescapeIdentifier(c, t->schema, strlen(t->schema));
    char *n = PQescapeIdentifier(c, t->name, strlen(t->name));
    char *sql = NULL;
    if (s && n && asprintf(&sql, fmt, s, n, cols) < 0)
        sql = NULL;
    PQfreemem(s);
    PQfreemem(n);
    return sql;
}

static bool start_copy(PGconn *c, char *sql, ExecStatusType want)
{
    PGresult *res = sql ? PQexec(c, sql) : NULL;
    bool ok = PQresultStatus(res) == want;
    PQclear(res);
    free(sql);
    return ok;
}

/*
 * The source's rows of t: a partitioned table's are all in its partitions
 * (ONLY would read none); a plain table's children are not its rows.
 */
static char *copy_out_sql(PGconn *src, const cfg_table *t, const char *cols,
                          bool partitioned)
{
    return table_sql(src, partitioned
                     ? "COPY (SELECT %3$s FROM %1$s.%2$s) TO STDOUT"
                     : "COPY (SELECT %3$s FROM ONLY %1$s.%2$s) TO STDOUT",
                     t, cols);
}

/* A part's block range as a condition ("" when it has none). */
static char *range_clause(PGconn *c, const job *j)
{
    char lo[32], hi[32];
    snprintf(lo, sizeof lo, "(%u,0)", j->blk_from);
    snprintf(hi, sizeof hi, "(%u,0)", j->blk_to);
    char *l = j->blk_from ? PQescapeLiteral(c, lo, strlen(lo)) : NULL;
    char *h = j->blk_to ? PQescapeLiteral(c, hi, strlen(hi)) : NULL;
    char *sql = NULL;
    if ((!j->blk_from || l) && (!j->blk_to || h) &&
        asprintf(&sql, "%s%s%s%s%s%s", l || h ? " WHERE " : "",
                 l ? "ctid >= " : "", l ? l : "", l && h ? " AND " : "",
                 h ? "ctid < " : "", h ? h : "") < 0)
        sql = NULL;
    PQfreemem(l);
    PQfreemem(h);
    return sql;
}

/*
 * A part's rows: its partition's or its table's, in its block range (a
 * TID range scan, PostgreSQL 14 on, reads only those blocks).
 */
static char *part_sql(PGconn *c, const job *j, const cfg_table *t,
                      const char *cols)
{
    const char *schema = j->from_schema ? j->from_schema : t->schema;
    const char *name = j->from_name ? j->from_name : t->name;
    char *s = PQescapeIdentifier(c, schema, strlen(schema));
    char *n = PQescapeIdentifier(c, name, strlen(name));
    char *where = range_clause(c, j);
    char *sql = NULL;
    if (s && n && where &&
        asprintf(&sql, "COPY (SELECT %s FROM ONLY %s.%s%s) TO STDOUT", cols,
                 s, n, where) < 0)
        sql = NULL;
    PQfreemem(s);
    PQfreemem(n);
    free(where);
    return sql;
}

/* A copy thread: one source connection in the snapshot, a table at a time. */
typedef struct copier {
    round *r;
    PGconn *src;
    pthread_t thread;
    /* The service whose target connection and loaders are open. */
    size_t svc;
    bool ready;
    PGconn *tgt;              /* its PostgreSQL target, if it has one */
    sink_loader *loaders[SINK_NKINDS];   /* one per destination */
    size_t nloaders;
} copier;

/* A loader failed: its service fails with the loader's reason. */
static bool loader_failed(copier *cp, const sink_loader *l)
{
    service_fail(cp->r, cp->svc, "%s", l->error);
    return false;
}

static bool begin_loaders(copier *cp, const sink_load_table *t)
{
    for (size_t i = 0; i < cp->nloaders; i++)
        if (!cp->loaders[i]->ops->begin(cp->loaders[i], t))
            return loader_failed(cp, cp->loaders[i]);
    return true;
}

static bool feed_loaders(copier *cp, const char *line, int len)
{
    for (size_t i = 0; i < cp->nloaders; i++)
        if (!cp->loaders[i]->ops->row(cp->loaders[i], line, (size_t)len))
            return loader_failed(cp, cp->loaders[i]);
    return true;
}

/* The table is in; the service's last table to load says so. */
static bool end_loaders(copier *cp)
{
    round *r = cp->r;
    pthread_mutex_lock(&r->mu);
    bool last = --r->svc[cp->svc].unloaded == 0;
    pthread_mutex_unlock(&r->mu);
    for (size_t i = 0; i < cp->nloaders; i++)
        if (!cp->loaders[i]->ops->end(cp->loaders[i], last))
            return loader_failed(cp, cp->loaders[i]);
    return true;
}

static bool empty_loaders(copier *cp, const sink_load_table *t)
{
    for (size_t i = 0; i < cp->nloaders; i++)
        if (cp->loaders[i]->ops->empty &&
            !cp->loaders[i]->ops->empty(cp->loaders[i], t))
            return loader_failed(cp, cp->loaders[i]);
    return true;
}

typedef enum split_turn { SPLIT_READY, SPLIT_EMPTY_IT, SPLIT_FAILED } split_turn;

/*
 * A split table's part may load once the table is empty: the first part
 * to start empties it (SPLIT_EMPTY_IT), the others wait for that (a part
 * loaded before would be emptied with the rest).
 */
static split_turn split_claim(round *r, const job *j)
{
    split *sp = j->split;
    pthread_mutex_lock(&r->mu);
    if (sp->emptied == 0) {
        sp->emptied = 1;
        sp->started = now_s();
        pthread_mutex_unlock(&r->mu);
        return SPLIT_EMPTY_IT;
    }
    while (sp->emptied == 1 && !r->svc[j->svc].failed &&
           !atomic_load(&r->is->stop)) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 100 * 1000 * 1000;
        until.tv_sec += until.tv_nsec / 1000000000;
        until.tv_nsec %= 1000000000;
        pthread_cond_timedwait(&r->emptied, &r->mu, &until);
    }
    bool ready = sp->emptied == 2;
    pthread_mutex_unlock(&r->mu);
    return ready ? SPLIT_READY : SPLIT_FAILED;
}

/* The table emptied for its parts (or not: they give up). */
static bool split_empty(copier *cp, const job *j, const sink_load_table *t)
{
    round *r = cp->r;
    bool ok = empty_loaders(cp, t);
    pthread_mutex_lock(&r->mu);
    j->split->emptied = ok ? 2 : -1;
    pthread_cond_broadcast(&r->emptied);
    pthread_mutex_unlock(&r->mu);
    return ok;
}

static void abort_loaders(copier *cp)
{
    for (size_t i = 0; i < cp->nloaders; i++)
        cp->loaders[i]->ops->abort(cp->loaders[i]);
}

/*
 * Whether a message of a binary COPY is its trailer (-1 as the field
 * count), after the header when no row came between: not a row.
 */
static bool binary_trailer(const char *buf, int n)
{
    static const char signature[11] = "PGCOPY\n\377\r\n";
    int at = n >= 19 && memcmp(buf, signature, sizeof signature) == 0 ? 19
                                                                        : 0;
    return n - at == 2 && (unsigned char)buf[at] == 0xff &&
           (unsigned char)buf[at + 1] == 0xff;
}

/* Moves the rows into every loader; the source is in COPY OUT mode. */
static bool pump(copier *cp, progress *p, bool binary)
{
    round *r = cp->r;
    char *buf;
    int n;
    while ((n = PQgetCopyData(cp->src, &buf, 0)) > 0) {
        bool row = !binary || !binary_trailer(buf, n);
        bool ok = feed_loaders(cp, buf, n);
        PQfreemem(buf);
        if (!ok)
            return false;
        p->bytes += (uint64_t)n;
        if (!row)
            continue;
        p->rows++;
        atomic_fetch_add_explicit(&r->is->rows[cp->svc], 1,
                                  memory_order_relaxed);
        if ((p->rows & 1023) == 0) {
            if (service_failed(r, cp->svc))
                return false;
            log_progress(p, false);
        }
    }
    PGresult *res = PQgetResult(cp->src);
    bool ok = n == -1 && PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (!ok)
        service_fail(r, cp->svc, "copying %s.%s out of the source: %s",
                     p->t->schema, p->t->name, first_line(cp->src));
    return ok;
}

/* sql in COPY's binary format (freed), or sql itself. */
static char *in_binary(char *sql, bool binary)
{
    char *out = NULL;
    if (!binary || !sql)
        return sql;
    if (asprintf(&out, "%s (FORMAT binary)", sql) < 0)
        out = NULL;
    free(sql);
    return out;
}

/* COPY out of the source in the snapshot, of the columns the loaders take. */
static bool copy_out(copier *cp, const job *j, const cfg_table *t,
                     const sink_load_table *lt)
{
    char *cols = sink_rel_columns(cp->src, lt->rel);
    bool ok = cols && start_copy(cp->src, in_binary(j->split
                                 ? part_sql(cp->src, j, t, cols)
                                 : copy_out_sql(cp->src, t, cols,
                                                lt->partitioned),
                                 lt->binary), PGRES_COPY_OUT);
    free(cols);
    if (!ok)
        service_fail(cp->r, cp->svc, "cannot copy %s.%s out of the source: "
                     "%s", t->schema, t->name, first_line(cp->src));
    return ok;
}

/*
 * The target table's columns whose type may travel in COPY's binary
 * format: with binary I/O, and not a reg* type (their binary form is an
 * OID, which differs between servers; their text form is a name).
 */
static const char binary_columns_sql[] =
    "SELECT a.attname, a.atttypid::int8 FROM pg_attribute a "
    "JOIN pg_class c ON c.oid = a.attrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "JOIN pg_type t ON t.oid = a.atttypid "
    "LEFT JOIN pg_type e ON e.oid = t.typelem "
    "WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 "
    "AND NOT a.attisdropped AND t.typsend::oid <> 0 "
    "AND t.typreceive::oid <> 0 AND t.typname NOT LIKE 'reg%' "
    "AND (e.oid IS NULL OR (e.typsend::oid <> 0 AND "
    "e.typreceive::oid <> 0 AND e.typname NOT LIKE 'reg%'))";

/* Whether the target's column `name` (res's rows) has type `type`. */
static bool target_has(const PGresult *res, const char *name, uint32_t type)
{
    for (int k = 0; k < PQntuples(res); k++)
        if (strcmp(PQgetvalue(res, k, 0), name) == 0)
            return strtoul(PQgetvalue(res, k, 1), NULL, 10) == type;
    return false;
}

/*
 * Whether rel may be copied in COPY's binary format, which spares both
 * servers the types' text output and input: every loader takes it, both
 * servers are of one major version (a type's binary form may change
 * between them), and each column is of a built-in type, the same in the
 * target's table. A user type (enum, domain, composite, an array of one)
 * carries OIDs in its binary form or has no binary I/O of its own, and a
 * table the team made may have other types, which text converts and
 * binary does not.
 */
static bool copy_binary(copier *cp, const sink_rel *rel)
{
    bool ok = cp->tgt && cp->nloaders > 0 &&
              PQserverVersion(cp->src) / 10000 ==
                  PQserverVersion(cp->tgt) / 10000;
    for (size_t i = 0; ok && i < cp->nloaders; i++)
        ok = cp->loaders[i]->ops->binary;
    if (!ok)
        return false;
    const char *params[] = {rel->schema, rel->name};
    PGresult *res = PQexecParams(cp->tgt, binary_columns_sql, 2, NULL, params,
                                 NULL, NULL, 0);
    ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    for (uint16_t i = 0; ok && i < rel->ncols; i++)
        ok = rel->cols[i].type_oid < 16384 &&   /* FirstNormalObjectId */
             target_has(res, rel->cols[i].name, rel->cols[i].type_oid);
    PQclear(res);
    return ok;
}

/* One job's rows, out of the source once, into each of its service's loaders. */
static bool load_table(copier *cp, const job *j, bool empty_first)
{
    round *r = cp->r;
    schema_plan *plan = r->svc[j->svc].plan;
    const cfg_table *t = schema_table(plan, j->table);
    char err[512];
    sink_rel *rel = sink_rel_read(cp->src, t->schema, t->name, err,
                                  sizeof err);
    if (!rel) {
        service_fail(r, j->svc, "reading the columns of %s.%s: %s",
                     t->schema, t->name, err);
        return false;
    }
    sink_load_table lt = {rel, schema_table_partitioned(plan, j->table),
                          r->snap_lsn, j->split != NULL,
                          copy_binary(cp, rel)};
    int64_t est = schema_table_rows(plan, j->table);
    progress p = {.service = r->is->config->services[j->svc].name, .t = t,
                  .format = lt.binary ? "binary" : "text",
                  .part = j->part, .nparts = j->split ? j->split->nparts : 0,
                  .estimate = j->split && j->split->bytes > 0
                      ? (int64_t)((double)est * j->bytes / j->split->bytes)
                      : est,
                  .started = now_s()};
    p.last_log = p.started;
    bool ok = (!empty_first || split_empty(cp, j, &lt)) &&
              begin_loaders(cp, &lt) && copy_out(cp, j, t, &lt);
    if (ok)
        health_going(r->is, j->svc);
    ok = ok && pump(cp, &p, lt.binary) && end_loaders(cp);
    if (!ok)
        abort_loaders(cp);
    sink_rel_unref(rel);
    if (!ok)
        return false;
    log_progress(&p, true);
    pthread_mutex_lock(&r->mu);
    r->svc[j->svc].rows += p.rows;
    r->svc[j->svc].bytes += p.bytes;
    if (j->split) {
        j->split->rows_copied += p.rows;
        j->split->bytes_copied += p.bytes;
        j->split->binary_parts += lt.binary;
    }
    pthread_mutex_unlock(&r->mu);
    return true;
}

/* ---- a service ---------------------------------------------------------- */

static bool finish_service(round *r, PGconn *tgt, size_t i)
{
    const cfg_service *svc = &r->is->config->services[i];
    service_round *sr = &r->svc[i];
    char err[1024];
    if ((tgt && !schema_finish_service(tgt, sr->plan, err, sizeof err)) ||
        !syncstate_set_finished(r->is->ss, i, true, err, sizeof err)) {
        service_fail(r, i, "%s", err);
        return false;
    }
    health_going(r->is, i);
    log_info("event=copy_done service=%s tables=%zu rows=%llu bytes=%llu "
             "seconds=%.2f", svc->name, svc->n_owned,
             (unsigned long long)sr->rows, (unsigned long long)sr->bytes,
             now_s() - sr->started);
    return true;
}

/*
 * A table is recorded as copied once its COMMIT returns, so that COMMIT
 * must be on the target's disk: a target whose default is asynchronous
 * commit would lose it in a crash, and the table would stay empty. (The
 * stream's apply commits asynchronously on purpose: it asks the target
 * what is flushed before the slot moves.)
 */
static const char durable_commit[] =
    "SELECT set_config('synchronous_commit', 'local', false) "
    "WHERE current_setting('synchronous_commit') = 'off'";

static PGconn *open_target(round *r, size_t i)
{
    const cfg_service *svc = &r->is->config->services[i];
    PGconn *c = connect_dsn(svc->target_postgres);
    if (PQstatus(c) == CONNECTION_OK && exec_ok(c, durable_commit))
        return c;
    service_fail(r, i, "cannot connect to the target %s: %s",
                 svc->name, first_line(c));
    PQfinish(c);
    return NULL;
}

static bool role_warned_before(initsync *is, size_t i)
{
    pthread_mutex_lock(&is->mu);
    bool before = is->health[i].role_warned;
    is->health[i].role_warned = true;
    pthread_mutex_unlock(&is->mu);
    return before;
}

/*
 * As PostgreSQL's own table sync: in the replica role the foreign keys
 * (and user triggers) of tables a team created itself stay quiet, so a
 * table may be filled before the one it references; the source's
 * snapshot keeps the keys true once all are in. The role takes a
 * superuser (or GRANT SET ON PARAMETER, PostgreSQL 15 on); without it
 * the copy goes on with the keys checked, and says so once.
 */
static bool copy_session(round *r, size_t i, PGconn *tgt)
{
    PGresult *res = PQexec(tgt, "SET session_replication_role = replica");
    const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    bool refused = !ok && code && strcmp(code, "42501") == 0;
    PQclear(res);
    if (!ok && !refused)
        service_fail(r, i, "cannot set session_replication_role on the "
                     "target: %s", first_line(tgt));
    else if (refused && !role_warned_before(r->is, i))
        log_warning("event=replica_role_refused service=%s note=\"not a "
                    "superuser: the copy checks the target's foreign keys, "
                    "so a table copied before the one it references fails "
                    "until the role is granted\"",
                    r->is->config->services[i].name);
    return ok || refused;
}

/* One job done: the table's indexes, its state, maybe the service. */
static bool table_done(round *r, PGconn *tgt, const job *j)
{
    char err[1024];
    service_round *sr = &r->svc[j->svc];
    if ((tgt && !schema_finish_table(tgt, sr->plan, j->table, err,
                                     sizeof err)) ||
        !syncstate_set_table(r->is->ss, j->svc, j->table, SYNC_DONE,
                             r->snap_lsn, err, sizeof err)) {
        service_fail(r, j->svc, "%s", err);
        return false;
    }
    const cfg_table *t = schema_table(sr->plan, j->table);
    char lsn[LSN_STRLEN];
    log_info("event=table_done service=%s table=%s.%s sync_lsn=%s",
             r->is->config->services[j->svc].name, t->schema, t->name,
             lsn_format(r->snap_lsn, lsn));
    pthread_mutex_lock(&r->mu);
    bool last = --sr->remaining == 0;
    pthread_mutex_unlock(&r->mu);
    return !last || finish_service(r, tgt, j->svc);
}

/* A job loaded: a split table is done when its last part is. */
static bool job_done(round *r, PGconn *tgt, const job *j)
{
    split *sp = j->split;
    if (!sp)
        return table_done(r, tgt, j);
    pthread_mutex_lock(&r->mu);
    bool last = --sp->left == 0;
    progress p = {.service = r->is->config->services[j->svc].name,
                  .t = schema_table(r->svc[j->svc].plan, j->table),
                  .rows = sp->rows_copied, .bytes = sp->bytes_copied,
                  .format = sp->binary_parts == sp->nparts ? "binary"
                            : sp->binary_parts ? "mixed" : "text",
                  .started = sp->started};
    pthread_mutex_unlock(&r->mu);
    if (!last)
        return true;
    log_progress(&p, true);
    return table_done(r, tgt, j);
}

static const job *next_job(round *r)
{
    pthread_mutex_lock(&r->mu);
    while (r->next_job < r->njobs && r->svc[r->jobs[r->next_job].svc].failed)
        r->next_job++;
    const job *j = r->next_job < r->njobs && !r->error[0]
                       ? &r->jobs[r->next_job++] : NULL;
    pthread_mutex_unlock(&r->mu);
    return atomic_load(&r->is->stop) ? NULL : j;
}

static void copier_close(copier *cp)
{
    for (size_t i = 0; i < cp->nloaders; i++)
        sink_loader_close(cp->loaders[i]);
    cp->nloaders = 0;
    PQfinish(cp->tgt);
    cp->tgt = NULL;
    cp->ready = false;
}

/*
 * The job's service's target connection (schema.h finishes its tables
 * on it; its loader copies through it) and a loader per destination;
 * false when that failed.
 */
static bool copier_open(copier *cp, const job *j)
{
    const cfg *config = cp->r->is->config;
    const cfg_service *svc = &config->services[j->svc];
    sink_kind kinds[SINK_NKINDS];
    char err[512];
    if (cp->ready && cp->svc == j->svc)
        return true;
    copier_close(cp);
    cp->svc = j->svc;
    if (svc->target_postgres && (!(cp->tgt = open_target(cp->r, j->svc)) ||
                                 !copy_session(cp->r, j->svc, cp->tgt)))
        return false;
    size_t n = sink_kinds(svc, kinds);
    for (; cp->nloaders < n; cp->nloaders++) {
        cp->loaders[cp->nloaders] = sink_loader_open(kinds[cp->nloaders],
                                                     config, svc, cp->tgt,
                                                     err, sizeof err);
        if (!cp->loaders[cp->nloaders]) {
            service_fail(cp->r, j->svc, "%s", err);
            return false;
        }
    }
    cp->ready = true;
    return true;
}

static void *copier_main(void *arg)
{
    copier *cp = arg;
    const job *j;
    while ((j = next_job(cp->r)) != NULL) {
        /* A failed open fails its service; the source is still clean. */
        if (!copier_open(cp, j))
            continue;
        split_turn turn = j->split ? split_claim(cp->r, j) : SPLIT_READY;
        /* Its table could not be emptied: the source is still clean. */
        if (turn == SPLIT_FAILED)
            continue;
        if (!load_table(cp, j, turn == SPLIT_EMPTY_IT) ||
            !job_done(cp->r, cp->tgt, j))
            break;
    }
    copier_close(cp);
    return NULL;
}

/* ---- a round ------------------------------------------------------------ */

static int by_size_desc(const void *a, const void *b)
{
    const job *x = a, *y = b;
    return (y->bytes > x->bytes) - (y->bytes < x->bytes);
}

static bool add_job(round *r, job j)
{
    if (r->njobs == r->jobs_cap) {
        size_t cap = r->jobs_cap ? r->jobs_cap * 2 : 16;
        job *grown = realloc(r->jobs, cap * sizeof *grown);
        if (!grown) {
            free(j.from_schema);
            free(j.from_name);
            return false;
        }
        r->jobs = grown;
        r->jobs_cap = cap;
    }
    r->jobs[r->njobs++] = j;
    r->svc[j.svc].unloaded++;
    return true;
}

enum { SRC_SCHEMA, SRC_NAME, SRC_KIND, SRC_BYTES, SRC_BLOCK };

/*
 * What table t's rows are read from, with the sizes of their heaps: the
 * table itself, or a partitioned table's leaf partitions.
 */
static PGresult *read_sources(PGconn *src, const cfg_table *t)
{
    const char *params[] = {t->schema, t->name};
    /* (pg_partition_tree has no row for a table outside any tree.) */
    return PQexecParams(src,
        "WITH t AS (SELECT format('%I.%I', $1::text, $2::text)::regclass "
        "AS oid) SELECT n.nspname, c.relname, c.relkind, "
        "pg_relation_size(c.oid), current_setting('block_size')::bigint "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.oid IN (SELECT p.relid FROM t, pg_partition_tree(t.oid) p "
        "WHERE p.isleaf) OR (c.oid = (SELECT oid FROM t) AND "
        "c.relkind <> 'p')", 2, NULL, params, NULL, NULL, 0);
}

/* Source k's heap: its size in bytes, and in blocks. */
static int64_t source_heap(const PGresult *res, int k, int64_t *blocks)
{
    int64_t bytes = strtoll(PQgetvalue(res, k, SRC_BYTES), NULL, 10);
    int64_t bsz = strtoll(PQgetvalue(res, k, SRC_BLOCK), NULL, 10);
    *blocks = bsz > 0 ? bytes / bsz : 0;
    return bytes;
}

/* How many block ranges a heap of that size is copied in. */
static size_t ranges_of(const round *r, int64_t bytes, int64_t blocks)
{
    if (r->split_bytes <= 0 || bytes <= r->split_bytes || blocks < 2)
        return 1;
    int64_t n = (bytes + r->split_bytes - 1) / r->split_bytes;
    return (size_t)(n < blocks ? n : blocks);
}

/*
 * Table j's parts: each source (res) in block ranges, the last range
 * open-ended (rows the snapshot sees are in blocks the heap had when it
 * was taken, and a heap only grows while the snapshot holds its rows).
 */
static bool add_parts(round *r, size_t i, size_t j, PGresult *res,
                      size_t nparts)
{
    split *sp = calloc(1, sizeof *sp);
    if (!sp)
        return false;
    sp->nparts = sp->left = nparts;
    bool partitioned = schema_table_partitioned(r->svc[i].plan, j);
    size_t part = 0;
    for (int k = 0; k < PQntuples(res); k++) {
        int64_t blocks, bytes = source_heap(res, k, &blocks);
        size_t n = ranges_of(r, bytes, blocks);
        sp->bytes += bytes;
        for (size_t m = 0; m < n; m++) {
            job jb = {.svc = i, .table = j, .bytes = bytes / (int64_t)n,
                      .split = sp, .part = part,
                      .blk_from = (uint32_t)(blocks * (int64_t)m / (int64_t)n),
                      .blk_to = m + 1 < n ? (uint32_t)(blocks * (int64_t)(m + 1)
                                                       / (int64_t)n) : 0};
            bool ok = !partitioned ||
                ((jb.from_schema = strdup(PQgetvalue(res, k, SRC_SCHEMA))) &&
                 (jb.from_name = strdup(PQgetvalue(res, k, SRC_NAME))));
            if (!ok)
                free(jb.from_schema);   /* add_job frees what it refuses */
            if (!ok || !add_job(r, jb)) {
                if (part == 0)
                    free(sp);
                return false;
            }
            part++;
        }
    }
    return true;
}

/*
 * Table j of service i as jobs: one for the whole table, or one per part
 * where it is partitioned (each leaf partition) or its heap is larger
 * than copy_split_size (each block range), so that the copy threads load
 * it side by side.
 */
static bool plan_jobs(round *r, size_t i, size_t j, char *err, size_t len)
{
    const cfg_table *t = schema_table(r->svc[i].plan, j);
    PGresult *res = read_sources(r->src[0], t);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(err, len, "reading the partitions of %s.%s: %s", t->schema,
                 t->name, first_line(r->src[0]));
        PQclear(res);
        return false;
    }
    size_t nparts = 0;
    bool heaps = true;        /* a foreign partition is read via its root */
    for (int k = 0; k < PQntuples(res); k++) {
        heaps = heaps && strcmp(PQgetvalue(res, k, SRC_KIND), "r") == 0;
        int64_t blocks, bytes = source_heap(res, k, &blocks);
        nparts += ranges_of(r, bytes, blocks);
    }
    log_debug("event=copy_plan table=%s.%s sources=%d parts=%zu "
              "split_bytes=%lld", t->schema, t->name, PQntuples(res), nparts,
              (long long)r->split_bytes);
    bool ok = heaps && nparts > 1
                  ? add_parts(r, i, j, res, nparts)
                  : add_job(r, (job){.svc = i, .table = j,
                                     .bytes = schema_table_bytes(
                                         r->svc[i].plan, j)});
    PQclear(res);
    if (!ok)
        snprintf(err, len, "out of memory");
    return ok;
}

/*
 * Fenced from the start: until a cut-over only cleave writes there. Only
 * the tables about to be copied (all of them the first time): the others
 * are fenced already, or, in a service cut over since, take its writes,
 * and a table given to it after that stays fenced until it moves too.
 */
static bool fence_new_tables(round *r, size_t i, PGconn *tgt,
                             const schema_outcome *out, char *err,
                             size_t errlen)
{
    const cfg_service *svc = &r->is->config->services[i];
    cfg_table *t = calloc(svc->n_owned ? svc->n_owned : 1, sizeof *t);
    size_t n = 0;
    for (size_t j = 0; t && j < svc->n_owned; j++)
        if (out[j] == SCHEMA_CREATED ||
            syncstate_table(r->is->ss, i, j, NULL) != SYNC_DONE)
            t[n++] = svc->owned[j];
    bool ok = t ? pgfence_set(tgt, t, n, PQdb(r->src[0]), err, errlen)
                : (snprintf(err, errlen, "out of memory"), false);
    free(t);
    return ok;
}

/* What the target has decides what is copied. */
static bool plan_service(round *r, size_t i)
{
    const cfg *config = r->is->config;
    const cfg_service *svc = &config->services[i];
    service_round *sr = &r->svc[i];
    char err[1024];
    sr->started = now_s();
    sr->plan = schema_read(r->src[0], config, svc, err, sizeof err);
    /* Kafka alone: nothing to create, every table not done is published. */
    PGconn *tgt = sr->plan && svc->target_postgres ? open_target(r, i) : NULL;
    schema_outcome *out = calloc(svc->n_owned, sizeof *out);
    bool ok = sr->plan && out &&
              (!svc->target_postgres ||
               (tgt && schema_prepare_target(tgt, sr->plan, out, err,
                                             sizeof err) &&
                fence_new_tables(r, i, tgt, out, err, sizeof err)));
    for (size_t j = 0; ok && !svc->target_postgres && j < svc->n_owned; j++)
        out[j] = SCHEMA_EXISTS_EMPTY;
    PQfinish(tgt);
    for (size_t j = 0; ok && j < svc->n_owned; j++) {
        sync_table_state st = syncstate_table(r->is->ss, i, j, NULL);
        if (out[j] != SCHEMA_CREATED && st == SYNC_DONE)
            continue;
        if (out[j] == SCHEMA_EXISTS_ROWS && st == SYNC_UNKNOWN) {
            log_info("event=table_used_as_is service=%s table=%s.%s reason=\"it "
                     "exists in the target with the same shape and has rows\"",
                     svc->name, svc->owned[j].schema, svc->owned[j].name);
            ok = syncstate_set_table(r->is->ss, i, j, SYNC_DONE, 0, err,
                                     sizeof err);
            continue;
        }
        ok = syncstate_set_table(r->is->ss, i, j, SYNC_PENDING, 0, err,
                                 sizeof err) &&
             plan_jobs(r, i, j, err, sizeof err);
        sr->remaining++;
    }
    free(out);
    if (!ok && sr->plan)
        service_fail(r, i, "%s", err);
    else if (!ok)
        service_fail(r, i, "reading the source catalog: %s", err);
    return ok;
}

static bool any_table_left(initsync *is)
{
    for (size_t i = 0; i < is->config->n_services; i++) {
        const cfg_service *svc = &is->config->services[i];
        if (syncstate_finished(is->ss, i))
            continue;
        for (size_t j = 0; j < svc->n_owned; j++)
            if (syncstate_table(is->ss, i, j, NULL) != SYNC_DONE)
                return true;
    }
    return false;
}

/* A temporary slot: its snapshot and consistent point for this round. */
static snap *round_snapshot(round *r)
{
    initsync *is = r->is;
    if (is->created) {
        snap *s = is->created;
        is->created = NULL;
        return s;
    }
    if (!any_table_left(is))
        return NULL;
    char slot[64], err[1024];
    snprintf(slot, sizeof slot, "%.40s_sync_%ld", is->source->slot,
             (long)getpid());
    snap *s = snap_create(is->source, slot, true, stopped, is, err, sizeof err);
    if (!s)
        round_fail(r, "%s", err);
    return s;
}

static bool open_sources(round *r, snap *s)
{
    r->nsrc = (size_t)r->is->config->copy_workers;
    r->src = calloc(r->nsrc, sizeof *r->src);
    if (!r->src) {
        round_fail(r, "out of memory");
        return false;
    }
    for (size_t i = 0; i < r->nsrc; i++)
        if (!(r->src[i] = open_source(r, s)))
            return false;
    return true;
}

/* "schema"."name" if the table exists in the source, else NULL. */
static char *existing_table(PGconn *c, const cfg_table *t)
{
    char *sc = PQescapeIdentifier(c, t->schema, strlen(t->schema));
    char *n = PQescapeIdentifier(c, t->name, strlen(t->name));
    char *name = NULL;
    if (sc && n && asprintf(&name, "%s.%s", sc, n) < 0)
        name = NULL;
    PQfreemem(sc);
    PQfreemem(n);
    const char *param = name;
    PGresult *res = name ? PQexecParams(c, "SELECT to_regclass($1) IS NOT "
                                        "NULL", 1, NULL, &param, NULL, NULL,
                                        0) : NULL;
    bool there = PQresultStatus(res) == PGRES_TUPLES_OK &&
                 PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (!there) {
        free(name);
        return NULL;
    }
    return name;
}

/* LOCK TABLE over every owned table of the services to copy, or NULL. */
static char *lock_statement(round *r)
{
    const cfg *config = r->is->config;
    char *sql = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&sql, &len);
    if (!out)
        return NULL;
    const char *sep = "LOCK TABLE ";
    for (size_t i = 0; i < config->n_services; i++)
        for (size_t j = 0; r->svc[i].needed && j < config->services[i].n_owned;
             j++) {
            char *name = existing_table(r->src[0], &config->services[i].owned[j]);
            if (name)
                fprintf(out, "%s%s", sep, name), sep = ", ";
            free(name);
        }
    fputs(sep[0] == 'L' ? "" : " IN ACCESS SHARE MODE", out);
    fclose(out);
    return sql;
}

/*
 * Every table to copy locked ACCESS SHARE in each copy connection's
 * transaction for the whole round, as pg_dump does: TRUNCATE and the
 * rewriting forms of ALTER TABLE are not MVCC-safe, and one committed
 * after the snapshot made the copy read the table empty, its rows lost
 * for good. Such DDL now waits for the copy. Each connection takes them
 * (not one for all), or a copier's own lock would queue behind the DDL
 * that waits for the first connection's.
 */
static bool lock_tables(round *r)
{
    char *sql = lock_statement(r);
    size_t i = 0;
    while (sql && sql[0] && i < r->nsrc &&
           exec_ok(r->src[i], "SET LOCAL lock_timeout = '60s'") &&
           exec_ok(r->src[i], sql))
        i++;
    bool ok = sql && (!sql[0] || i == r->nsrc);
    if (!ok)
        round_fail(r, "cannot lock the tables to copy: %s",
                   sql ? first_line(r->src[i]) : "out of memory");
    free(sql);
    return ok;
}

static void run_copiers(round *r)
{
    size_t n = r->njobs < r->nsrc ? r->njobs : r->nsrc;
    copier cps[n ? n : 1];
    size_t started = 0;
    for (size_t i = 0; i < n; i++) {
        cps[i] = (copier){.r = r, .src = r->src[i]};
        if (pthread_create(&cps[i].thread, NULL, copier_main, &cps[i]) != 0) {
            round_fail(r, "cannot start a copy thread");
            break;
        }
        started++;
    }
    for (size_t i = 0; i < started; i++)
        pthread_join(cps[i].thread, NULL);
}

/*
 * A resync's copy sends a Kafka target its rows through a producer of its
 * own: an event of the stream still in flight when the hold began could
 * land after them, and a consumer would keep its older value.
 */
static void wait_held(round *r)
{
    initsync *is = r->is;
    for (size_t i = 0; i < is->config->n_services; i++) {
        if (!r->svc[i].needed)
            continue;
        int waited = 0;
        while (!is->held(is->held_arg, i) && !atomic_load(&is->stop) &&
               waited < HELD_WAIT_MS) {
            usleep(10 * 1000);
            waited += 10;
        }
        if (waited >= HELD_WAIT_MS)
            service_fail(r, i, "the events sent to its targets before the "
                         "copy are not all acknowledged after %d s; the "
                         "copy waits for them", HELD_WAIT_MS / 1000);
    }
}

static bool run_round(round *r)
{
    initsync *is = r->is;
    const cfg *config = is->config;
    wait_held(r);
    snap *s = round_snapshot(r);
    if (round_failed(r))
        return false;
    r->snap_lsn = s ? snap_lsn(s) : 0;
    bool ok = open_sources(r, s) && lock_tables(r);
    /* Every copy connection has it now: the snapshot may go. */
    snap_release(s);
    if (!ok)
        return false;
    /* TID range scans came with PostgreSQL 14: before, each range reads all. */
    r->split_bytes = PQserverVersion(r->src[0]) >= 140000
                         ? strtoll(config->copy_split_size, NULL, 10) : 0;
    for (size_t i = 0; i < config->n_services; i++)
        if (r->svc[i].needed && !service_failed(r, i))
            plan_service(r, i);
    if (r->njobs)   /* jobs is NULL without any */
        qsort(r->jobs, r->njobs, sizeof *r->jobs, by_size_desc);
    run_copiers(r);
    /* Services with nothing to copy still get their keys and sequences. */
    for (size_t i = 0; i < config->n_services && !round_failed(r); i++) {
        if (!r->svc[i].needed || r->svc[i].remaining > 0 ||
            service_failed(r, i) || syncstate_finished(is->ss, i))
            continue;
        PGconn *tgt = config->services[i].target_postgres ? open_target(r, i)
                                                          : NULL;
        if (tgt || !config->services[i].target_postgres)
            finish_service(r, tgt, i);
        PQfinish(tgt);
    }
    bool ok_all = !round_failed(r);
    for (size_t i = 0; i < config->n_services; i++)
        ok_all = ok_all && (!r->svc[i].needed || syncstate_finished(is->ss, i));
    return ok_all;
}

static void round_free(round *r)
{
    for (size_t i = 0; r->src && i < r->nsrc; i++)
        PQfinish(r->src[i]);
    free(r->src);
    for (size_t i = 0; r->svc && i < r->is->config->n_services; i++)
        schema_free(r->svc[i].plan);
    free(r->svc);
    for (size_t i = 0; i < r->njobs; i++) {
        free(r->jobs[i].from_schema);
        free(r->jobs[i].from_name);
        if (r->jobs[i].split && r->jobs[i].part == 0)
            free(r->jobs[i].split);
    }
    free(r->jobs);
    pthread_cond_destroy(&r->emptied);
    pthread_mutex_destroy(&r->mu);
}

/* 0: nothing to do; 1: done; -1: failed (logged). */
static int one_round(initsync *is, double started)
{
    const cfg *config = is->config;
    round r = {.is = is};
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.emptied, NULL);
    r.svc = calloc(config->n_services ? config->n_services : 1, sizeof *r.svc);
    size_t needed = 0;
    for (size_t i = 0; r.svc && i < config->n_services; i++) {
        r.svc[i].needed = !syncstate_finished(is->ss, i);
        needed += r.svc[i].needed;
    }
    int result = needed == 0 ? 0 : run_round(&r) ? 1 : -1;
    if (!r.svc)
        result = -1;
    if (result < 0 && !atomic_load(&is->stop) && r.error[0]) {
        log_error("event=initial_sync_failed error=\"%s\"", r.error);
        for (size_t i = 0; i < config->n_services; i++)
            if (r.svc[i].needed && !r.svc[i].failed)
                health_failed(is, i, r.error);
    }
    if (result > 0) {
        uint64_t rows = 0, bytes = 0;
        for (size_t i = 0; i < config->n_services; i++)
            rows += r.svc[i].rows, bytes += r.svc[i].bytes;
        log_info("event=initial_sync_done services=%zu rows=%llu bytes=%llu "
                 "seconds=%.2f", needed, (unsigned long long)rows,
                 (unsigned long long)bytes, now_s() - started);
    }
    round_free(&r);
    return result;
}

/* A resync cuts the wait short: its service waits for no backoff. */
static bool sleep_unless_stopped(initsync *is, int ms)
{
    for (int waited = 0; waited < ms && !atomic_load(&is->stop) &&
                         !atomic_load(&is->again); waited += 100)
        usleep(100 * 1000);
    return !atomic_load(&is->stop);
}

/* Nothing left: the thread ends, unless a resync came meanwhile. */
static bool end_thread(initsync *is)
{
    pthread_mutex_lock(&is->mu);
    bool again = atomic_exchange(&is->again, false);
    if (!again) {
        is->running = false;
        atomic_store(&is->done, true);
    }
    pthread_mutex_unlock(&is->mu);
    return !again;
}

static void *initsync_main(void *arg)
{
    initsync *is = arg;
    backoff b;
    backoff_init(&b, BACKOFF_MIN_MS, BACKOFF_MAX_MS);
    double started = now_s();
    for (;;) {
        atomic_store(&is->again, false);
        int result = one_round(is, started);
        if (result > 0) {
            /* Services set to copy again during the round are next. */
            backoff_reset(&b);
            started = now_s();
            continue;
        }
        if (result == 0 && end_thread(is))
            break;
        if (result == 0)
            continue;
        int wait = backoff_next(&b);
        log_info("event=initial_sync_retry retry_in=%dms", wait);
        if (!sleep_unless_stopped(is, wait) && end_thread(is))
            break;
    }
    snap_release(is->created);
    is->created = NULL;
    return NULL;
}

initsync *initsync_start(const cfg *config, const cfg_source *source,
                         syncstate *ss, snap *created,
                         initsync_held_fn *held, void *held_arg)
{
    initsync *is = calloc(1, sizeof *is);
    if (!is) {
        snap_release(created);
        return NULL;
    }
    is->config = config;
    is->source = source;
    is->ss = ss;
    is->created = created;
    is->held = held;
    is->held_arg = held_arg;
    size_t n = config->n_services ? config->n_services : 1;
    is->rows = calloc(n, sizeof *is->rows);
    is->health = calloc(n, sizeof *is->health);
    pthread_mutex_init(&is->mu, NULL);
    is->running = true;
    if (!is->rows || !is->health ||
        pthread_create(&is->thread, NULL, initsync_main, is) != 0) {
        snap_release(created);
        pthread_mutex_destroy(&is->mu);
        free(is->rows);
        free(is->health);
        free(is);
        return NULL;
    }
    return is;
}

uint64_t initsync_rows(const initsync *is, size_t svc)
{
    return is ? atomic_load_explicit(&is->rows[svc], memory_order_relaxed) : 0;
}

bool initsync_last_error(const initsync *is, size_t svc, char *buf,
                         size_t len, int64_t *when, uint64_t *failures)
{
    buf[0] = '\0';
    *when = 0;
    *failures = 0;
    if (!is)
        return false;
    initsync *mis = (initsync *)is;
    pthread_mutex_lock(&mis->mu);
    const health *h = &is->health[svc];
    snprintf(buf, len, "%s", h->error);
    *when = h->error_time;
    *failures = h->failures;
    bool failing = h->failing;
    pthread_mutex_unlock(&mis->mu);
    return failing;
}

bool initsync_done(initsync *is)
{
    return !is || atomic_load(&is->done);
}

bool initsync_again(initsync *is, size_t svc)
{
    atomic_store(&is->rows[svc], 0);
    pthread_mutex_lock(&is->mu);
    bool running = is->running;
    /* A running thread sees it before it ends (end_thread). */
    atomic_store(&is->again, true);
    pthread_mutex_unlock(&is->mu);
    if (running)
        return true;
    pthread_join(is->thread, NULL);
    atomic_store(&is->done, false);
    is->running = true;
    if (pthread_create(&is->thread, NULL, initsync_main, is) == 0)
        return true;
    is->running = false;
    is->joined = true;
    atomic_store(&is->done, true);
    return false;
}

void initsync_stop(initsync *is)
{
    if (!is)
        return;
    atomic_store(&is->stop, true);
    if (!is->joined)
        pthread_join(is->thread, NULL);
    pthread_mutex_destroy(&is->mu);
    free(is->rows);
    free(is->health);
    free(is);
}
