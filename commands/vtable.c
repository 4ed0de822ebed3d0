/*
 * vtable: one table of `cleave verify`; see vtable.h and verify.h.
 *
 * Three steps:
 *   1. definition: the source's columns and key (primary key, else the
 *      replica identity index), and a look that the target has the table
 *      and those columns;
 *   2. the chunk pass: the source hashes the next VERIFY_CHUNK_ROWS rows
 *      in key order and says where they end, the target hashes the same
 *      key range; the source's next chunk and the target's chunk run at
 *      the same time. A keyless table is cut into buckets by md5 instead,
 *      all of them hashed in one read of each side;
 *   3. the chunks whose hashes differ, row by row, eight at a time, up to
 *      ROUNDS rounds while some row is open (see "row by row" below).
 *
 * In the chunk pass a row's hash is hashtextextended of its text (for a
 * keyless table, 60 bits of its md5; between servers of two encodings,
 * 64 bits of the md5 of its UTF8 bytes), and a chunk's is the count and the
 * sum of those, so it needs no sort and counts a duplicate (keyless
 * tables are multisets). Row by row, md5.
 */
#include "commands/vtable.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "common/clock.h"
#include "common/dbconn.h"
#include "commands/verify.h"
#include "decoder/lsn.h"

enum {
    ROUNDS = 5,            /* row-by-row looks at a differing chunk */
    GROUP = 8,             /* differing chunks looked at with one wait */
    MAX_BUCKETS = 4096,    /* a keyless table's chunks: 12 bits of md5 */
    CATCHUP_MS = 60000,    /* longest wait for the target to catch up */
    SLOT_IDLE_MS = 5000,   /* the slot unstreamed this long: do not wait */
    POLL_MS = 100,
    SHOWN_VALUE = 40,      /* characters of a keyless row's value shown */
};

static const char SESSION_SQL[] =
    "SET search_path = pg_catalog; SET datestyle = 'ISO, YMD';"
    " SET intervalstyle = postgres; SET timezone = 'UTC';"
    " SET extra_float_digits = 3; SET bytea_output = hex;"
    " SET lc_monetary = 'C'; SET default_transaction_read_only = on";

/*
 * Columns of the table in order, with the position of each in the key
 * (0: not in it). The key is the primary key, else the replica identity
 * index (unique, not null, no expressions).
 */
static const char COLUMNS_SQL[] =
    "WITH k AS (SELECT i.indkey FROM pg_index i WHERE i.indrelid = $1::regclass"
    "  AND (i.indisprimary OR i.indisreplident) AND i.indexprs IS NULL"
    "  AND i.indpred IS NULL ORDER BY i.indisprimary DESC LIMIT 1)"
    " SELECT a.attname, format_type(a.atttypid, a.atttypmod),"
    "  coalesce((SELECT o.n FROM k, unnest(k.indkey::int2[]) WITH ORDINALITY"
    "   AS o(att, n) WHERE o.att = a.attnum), 0)"
    " FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0"
    "  AND NOT a.attisdropped ORDER BY a.attnum";

static const char TARGET_COLUMNS_SQL[] =
    "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = $1::regclass"
    " AND a.attnum > 0 AND NOT a.attisdropped";

static const char ORIGIN_SQL[] =
    "SELECT pg_replication_origin_progress(roname, false)::text"
    " FROM pg_replication_origin WHERE roname = $1";

static const char SLOT_SQL[] =
    "SELECT coalesce(confirmed_flush_lsn::text, ''), active"
    " FROM pg_replication_slots WHERE slot_name = $1";

typedef struct vt {
    vtable_env *env;
    const vtable_follow *fol;
    vtable_result *out;
    PGconn *src, *tgt;
    PGconn *lead, *follow;   /* src and tgt as fol says: whose writes flow */
    bool origin_unreadable;  /* no right to read it: the slot alone tells */
    char *qname;             /* "schema"."table" */
    size_t ncols;
    char **names;            /* raw, for output */
    char **cols;             /* quoted */
    char **types;            /* format_type, for the key's casts */
    size_t nkey;
    size_t *key;             /* indexes into cols, in key order */
    char *collist;           /* c1, c2, ... */
    bool recode;             /* the two servers' encodings differ */
    char *rowtext;           /* ROW(c1, c2, ...)::text, as UTF8 if recode */
    int buckets;             /* keyless: chunks by md5, a power of 2 */
} vt;

/* A key range (lo, hi]; NULL bounds are open. */
typedef struct chunk {
    char **lo;
    char **hi;
    lsn_t lsn;               /* the source's WAL position when first read */
    int bucket;              /* keyless: the rows whose md5 falls here */
} chunk;

typedef struct chunks {
    chunk *v;
    size_t n, cap;
} chunks;

/* ------------------------------------------------------------ helpers */

static void pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void fail(vt *v, const char *what, PGconn *conn)
{
    if (v->out->failed)
        return;
    const char *msg = conn ? PQerrorMessage(conn) : "out of memory";
    v->out->failed = true;
    snprintf(v->out->error, sizeof v->out->error, "%s: %.*s", what,
             (int)strcspn(msg, "\n"), msg);
}

static bool oom(vt *v)
{
    fail(v, "out of memory", NULL);
    return false;
}

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void free_strv(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static PGconn *connect_to(vt *v, const char *dsn, const char *what)
{
    char err[sizeof v->out->error];
    PGconn *c = dbconn_open(dsn, "cleave verify", what, err, sizeof err);
    if (!c) {
        if (!v->out->failed) {
            v->out->failed = true;
            snprintf(v->out->error, sizeof v->out->error, "%s", err);
        }
        return NULL;
    }
    PGresult *res = PQexec(c, SESSION_SQL);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (!ok) {
        fail(v, what, c);
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* What the server said at the start ("" if it did not). */
static const char *server_encoding(const PGconn *c)
{
    const char *e = PQparameterStatus(c, "server_encoding");
    return e ? e : "";
}

/* Runs sql with text parameters; the result, or NULL after fail(). */
static PGresult *run(vt *v, PGconn *c, const char *sql, int n,
                     const char *const *params)
{
    PGresult *res = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        return res;
    fail(v, c == v->src ? "reading the source" : "reading the target", c);
    PQclear(res);
    return NULL;
}

/* The result of a query sent with PQsendQueryParams, the connection drained. */
static PGresult *await(vt *v, PGconn *c)
{
    PGresult *res = PQgetResult(c), *more;
    while ((more = PQgetResult(c)) != NULL)
        PQclear(more);
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        return res;
    fail(v, c == v->src ? "reading the source" : "reading the target", c);
    PQclear(res);
    return NULL;
}

static bool send_sql(vt *v, PGconn *c, const char *sql, int n,
                     const char *const *params)
{
    if (PQsendQueryParams(c, sql, n, NULL, params, NULL, NULL, 0))
        return true;
    fail(v, c == v->src ? "reading the source" : "reading the target", c);
    return false;
}

/* The leading side's WAL position: what the other must have applied. */
static bool current_lsn(vt *v, lsn_t *out)
{
    PGresult *res = run(v, v->lead, "SELECT pg_current_wal_lsn()::text", 0,
                        NULL);
    bool ok = res && lsn_parse(PQgetvalue(res, 0, 0), out);
    PQclear(res);
    return ok;
}

/* ------------------------------------------------------------ definition */

static char *quote(vt *v, const char *name)
{
    char *q = PQescapeIdentifier(v->src, name, strlen(name));
    char *s = xstrdup(q);
    PQfreemem(q);
    return s;
}

static bool set_names(vt *v, const cfg_table *t)
{
    char *s = quote(v, t->schema), *n = quote(v, t->name);
    if (s && n && asprintf(&v->qname, "%s.%s", s, n) < 0)
        v->qname = NULL;
    free(s);
    free(n);
    return v->qname || oom(v);
}

/*
 * The column list, and ROW(c1, c2, ...)::text: one row's text, the same
 * on both sides. Hashes are of its bytes, in the server's encoding: where
 * the two encodings differ, of its bytes in UTF8 instead (a bytea), which
 * every encoding converts to.
 */
static bool set_rowtext(vt *v)
{
    size_t len;
    FILE *f = open_memstream(&v->collist, &len);
    if (!f)
        return oom(v);
    for (size_t i = 0; i < v->ncols; i++)
        fprintf(f, "%s%s", i ? ", " : "", v->cols[i]);
    if (fclose(f) != 0)
        return oom(v);
    if (asprintf(&v->rowtext, v->recode
                     ? "convert_to(ROW(%s)::text, 'UTF8')" : "ROW(%s)::text",
                 v->collist) < 0) {
        v->rowtext = NULL;
        return oom(v);
    }
    return true;
}

static bool read_columns(vt *v)
{
    const char *params[] = {v->qname};
    PGresult *res = run(v, v->src, COLUMNS_SQL, 1, params);
    if (!res)
        return false;
    size_t n = (size_t)PQntuples(res);
    v->names = calloc(n + 1, sizeof *v->names);
    v->cols = calloc(n + 1, sizeof *v->cols);
    v->types = calloc(n + 1, sizeof *v->types);
    v->key = calloc(n + 1, sizeof *v->key);
    bool ok = v->names && v->cols && v->types && v->key;
    for (size_t i = 0; ok && i < n; i++) {
        v->names[i] = strdup(PQgetvalue(res, (int)i, 0));
        v->cols[i] = quote(v, v->names[i] ? v->names[i] : "");
        v->types[i] = strdup(PQgetvalue(res, (int)i, 1));
        v->ncols = i + 1;
        ok = v->names[i] && v->cols[i] && v->types[i];
        long pos = strtol(PQgetvalue(res, (int)i, 2), NULL, 10);
        if (ok && pos > 0 && (size_t)pos <= n) {
            v->key[pos - 1] = i;
            v->nkey++;
        }
    }
    PQclear(res);
    return (ok && set_rowtext(v)) || oom(v);
}

static void add_diff(vt *v, vtable_diff_kind kind, char *what)
{
    vtable_result *r = v->out;
    r->n_diffs++;
    if (r->n_shown < VTABLE_SHOW && what)
        r->diffs[r->n_shown++] = (vtable_diff){kind, what};
    else
        free(what);
}

/*
 * The target has the table and every column of the source's; a missing
 * one is a difference (and nothing more is compared), not an error.
 */
static bool target_has_columns(vt *v, bool *complete)
{
    const char *params[] = {v->qname};
    PGresult *res = PQexecParams(v->tgt, TARGET_COLUMNS_SQL, 1, NULL, params,
                                 NULL, NULL, 0);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    *complete = false;
    if (state && (strcmp(state, "42P01") == 0 || strcmp(state, "3F000") == 0)) {
        PQclear(res);
        add_diff(v, VTABLE_MISSING, strdup("the table"));
        return true;
    }
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fail(v, "reading the target", v->tgt);
        PQclear(res);
        return false;
    }
    size_t missing = 0;
    for (size_t i = 0; i < v->ncols; i++) {
        bool found = false;
        for (int r = 0; r < PQntuples(res) && !found; r++)
            found = strcmp(PQgetvalue(res, r, 0), v->names[i]) == 0;
        char *what = NULL;
        if (!found && asprintf(&what, "column %s", v->names[i]) >= 0) {
            add_diff(v, VTABLE_MISSING, what);
            missing++;
        }
    }
    PQclear(res);
    *complete = missing == 0;
    return true;
}

/* ------------------------------------------------------------ SQL */

/*
 * The chunk pass's row hash: hashtextextended, PostgreSQL's own 64-bit
 * hash (the one hash partitioning keeps stable across versions), several
 * times cheaper than md5. Should two servers ever hash differently (say,
 * of other byte orders), every chunk differs and goes row by row, where
 * md5 decides: slower, never wrong. Servers of other encodings hash the
 * row's UTF8 bytes, which only md5 takes (of a bytea): 64 bits of it.
 */
static void put_hash(FILE *f, const vt *v)
{
    if (v->recode)
        fprintf(f, "('x' || left(md5(%s), 16))::bit(64)::bigint", v->rowtext);
    else
        fprintf(f, "hashtextextended(%s, 0)", v->rowtext);
}

/* The bucket of md5 text m. */
static void put_bucket(FILE *f, const vt *v, const char *m)
{
    fprintf(f, "(('x' || left(%s, 3))::bit(12)::int & %d)", m, v->buckets - 1);
}

static void put_keylist(FILE *f, const vt *v, const char *suffix)
{
    for (size_t i = 0; i < v->nkey; i++)
        fprintf(f, "%s%s%s", i ? ", " : "", v->cols[v->key[i]], suffix);
}

/* (k1, k2) OP ($n::t1, $n+1::t2) */
static void put_bound(FILE *f, const vt *v, const char *op, int first_param)
{
    fputc('(', f);
    put_keylist(f, v, "");
    fprintf(f, ") %s (", op);
    for (size_t i = 0; i < v->nkey; i++)
        fprintf(f, "%s$%d::%s", i ? ", " : "", first_param + (int)i,
                v->types[v->key[i]]);
    fputc(')', f);
}

/* WHERE for (lo, hi]; the parameters are lo's values, then hi's. */
static void put_range(FILE *f, const vt *v, const chunk *c)
{
    if (c->lo) {
        fputs(" WHERE ", f);
        put_bound(f, v, ">", 1);
    }
    if (c->hi) {
        fputs(c->lo ? " AND " : " WHERE ", f);
        put_bound(f, v, "<=", c->lo ? (int)v->nkey + 1 : 1);
    }
}

/* The parameters put_range numbers: lo's values, then hi's. */
static const char **range_params(const vt *v, const chunk *c, size_t *n)
{
    const char **p = calloc(2 * v->nkey + 1, sizeof *p);
    *n = 0;
    for (size_t i = 0; p && c->lo && i < v->nkey; i++)
        p[(*n)++] = c->lo[i];
    for (size_t i = 0; p && c->hi && i < v->nkey; i++)
        p[(*n)++] = c->hi[i];
    return p;
}

/* Closes the memstream; *sql is only valid after that. */
static char *finish_sql(vt *v, FILE *f, char **sql)
{
    if (fclose(f) == 0)
        return *sql;
    free(*sql);
    oom(v);
    return NULL;
}

/*
 * Source, one chunk: the next rows after lo in key order, hashed; the
 * count, the sum, the WAL position (after the statement's snapshot, so
 * past every commit it saw), and the last key of the chunk.
 */
static char *src_chunk_sql(vt *v, bool has_lo)
{
    char *sql = NULL;
    size_t len;
    FILE *f = open_memstream(&sql, &len);
    if (!f)
        return oom(v), NULL;
    fputs("SELECT count(*), coalesce(sum(h), 0),"
          " pg_current_wal_lsn()::text", f);
    /*
     * The last key: the rows come in key order from the subquery, which is
     * what array_agg sees (no sort per chunk). Were it ever otherwise, the
     * chunk would differ and be compared row by row on one and the same
     * range on both sides: slower, never wrong.
     */
    for (size_t i = 0; i < v->nkey; i++)
        fprintf(f, ", (array_agg(%s::text))[count(*)]", v->cols[v->key[i]]);
    fputs(" FROM (SELECT ", f);
    put_keylist(f, v, "");
    fputs(", ", f);
    put_hash(f, v);
    fprintf(f, " AS h FROM %s", v->qname);
    if (has_lo) {
        fputs(" WHERE ", f);
        put_bound(f, v, ">", 1);
    }
    fputs(" ORDER BY ", f);
    put_keylist(f, v, "");
    fprintf(f, " LIMIT %d) s", VERIFY_CHUNK_ROWS);
    return finish_sql(v, f, &sql);
}

/* The target's half of a chunk: count and sum over the key range. */
static char *range_hash_sql(vt *v, const chunk *c)
{
    char *sql = NULL;
    size_t len;
    FILE *f = open_memstream(&sql, &len);
    if (!f)
        return oom(v), NULL;
    fputs("SELECT count(*), coalesce(sum(h), 0)", f);
    fputs(" FROM (SELECT ", f);
    put_hash(f, v);
    fprintf(f, " AS h FROM %s", v->qname);
    put_range(f, v, c);
    fputs(") s", f);
    return finish_sql(v, f, &sql);
}

/*
 * Either side, row by row: a keyed chunk's key columns, or the keyless
 * buckets in $1 (an int[]) with each row's bucket; then md5 and version.
 */
static char *rows_sql(vt *v, const chunk *c)
{
    char *sql = NULL;
    size_t len;
    FILE *f = open_memstream(&sql, &len);
    if (!f)
        return oom(v), NULL;
    if (v->nkey) {
        fputs("SELECT ", f);
        put_keylist(f, v, "::text");
        fprintf(f, ", md5(%s), xmin::text || ',' || ctid::text FROM %s",
                v->rowtext, v->qname);
        put_range(f, v, c);
    } else {
        fputs("SELECT m, ver, b FROM (SELECT m, ver, ", f);
        put_bucket(f, v, "m");
        fprintf(f, " AS b FROM (SELECT md5(%s) AS m, xmin::text || ',' ||"
                " ctid::text AS ver FROM %s OFFSET 0) r) s"
                " WHERE b = ANY ($1::int[])", v->rowtext, v->qname);
    }
    return finish_sql(v, f, &sql);
}

/* ------------------------------------------------------------ waiting */

static bool lsn_value(const char *text, lsn_t *out)
{
    return text && *text && lsn_parse(text, out);
}

/* How far the following side has applied, by its origin; 0 when unknown. */
static lsn_t origin_applied(vt *v)
{
    if (v->origin_unreadable)
        return 0;
    const char *params[] = {v->fol->origin};
    PGresult *res = PQexecParams(v->follow, ORIGIN_SQL, 1, NULL, params, NULL,
                                 NULL, 0);
    lsn_t at = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        v->origin_unreadable = true;   /* e.g. no right to: use the slot */
    else if (PQntuples(res) == 1)
        lsn_value(PQgetvalue(res, 0, 0), &at);
    PQclear(res);
    return at;
}

static void give_up(vt *v, lsn_t want, const char *why)
{
    char at[LSN_STRLEN];
    atomic_store(&v->env->no_catchup, true);
    if (v->fol->reversed)
        snprintf(v->out->note, sizeof v->out->note, "the source had not "
                 "applied the service's database up to %s (%s): the "
                 "differences are as the source stands", lsn_format(want, at),
                 why);
    else
        snprintf(v->out->note, sizeof v->out->note, "the target had not "
                 "applied the source up to %s (%s): the differences are as "
                 "the target stands", lsn_format(want, at), why);
}

/*
 * Waits until the following side (the target, or after a cut-over the
 * source) has applied the other past `want`: its origin says so, or the
 * slot's confirmed position does (cleave confirms only what every sink
 * holds, and the origin moves only with the service's own transactions).
 * 1 when it has, 0 when waiting is pointless (no cleave streams the slot,
 * the move is complete) or took too long, -1 on error.
 */
static int wait_applied(vt *v, lsn_t want)
{
    if (v->fol->frozen) {
        snprintf(v->out->note, sizeof v->out->note, "the service's move is "
                 "complete: nothing streams back to the source, whose copy "
                 "is compared as it stands");
        return 0;
    }
    if (atomic_load(&v->env->no_catchup))
        return 0;
    int64_t start = clock_ms(), idle_since = -1;
    const char *params[] = {v->fol->slot};
    for (;;) {
        if (origin_applied(v) >= want)
            return 1;
        PGresult *res = run(v, v->lead, SLOT_SQL, 1, params);
        if (!res)
            return -1;
        lsn_t confirmed = 0;
        bool streamed = PQntuples(res) == 1 &&
                        strcmp(PQgetvalue(res, 0, 1), "t") == 0;
        if (PQntuples(res) == 1)
            lsn_value(PQgetvalue(res, 0, 0), &confirmed);
        PQclear(res);
        if (confirmed >= want)
            return 1;
        int64_t now = clock_ms();
        idle_since = streamed ? -1 : idle_since < 0 ? now : idle_since;
        if (idle_since >= 0 && now - idle_since >= SLOT_IDLE_MS) {
            give_up(v, want, "no cleave run streams the slot");
            return 0;
        }
        if (now - start >= CATCHUP_MS) {
            give_up(v, want, "still behind after 60 s");
            return 0;
        }
        pause_ms(POLL_MS);
    }
}

/* ------------------------------------------------------------ chunk pass */

static bool push_chunk(vt *v, chunks *list, chunk c)
{
    if (list->n == list->cap) {
        size_t cap = list->cap ? 2 * list->cap : 8;
        chunk *nv = realloc(list->v, cap * sizeof *nv);
        if (!nv)
            return oom(v);
        list->v = nv;
        list->cap = cap;
    }
    list->v[list->n++] = c;
    return true;
}

static char **copy_key(vt *v, const PGresult *res, int first_col)
{
    char **k = calloc(v->nkey, sizeof *k);
    for (size_t i = 0; k && i < v->nkey; i++) {
        k[i] = strdup(PQgetvalue(res, 0, first_col + (int)i));
        if (!k[i]) {
            free_strv(k, i);
            return NULL;
        }
    }
    return k;
}

/* Sends the target's half of chunk (lo, hi]. */
static bool send_target_chunk(vt *v, const chunk *c)
{
    char *sql = range_hash_sql(v, c);
    size_t n;
    const char **p = range_params(v, c, &n);
    bool ok = sql && p ? send_sql(v, v->tgt, sql, (int)n, p) : oom(v);
    free(sql);
    free(p);
    return ok;
}

static bool same_hash(const PGresult *a, const PGresult *b)
{
    return strcmp(PQgetvalue(a, 0, 0), PQgetvalue(b, 0, 0)) == 0 &&
           strcmp(PQgetvalue(a, 0, 1), PQgetvalue(b, 0, 1)) == 0;
}

static void count_rows(vt *v, const PGresult *src)
{
    long long n = strtoll(PQgetvalue(src, 0, 0), NULL, 10);
    v->out->rows += n;
    atomic_fetch_add(&v->env->rows, (uint_fast64_t)n);
}

/*
 * One step of the pass: the source's chunk after lo is in `sres`; sends
 * the target's half and the source's next chunk together, then compares.
 * *lo becomes the next chunk's lower bound; *done when this was the last.
 */
static bool keyed_step(vt *v, const char *next_sql, PGresult *sres,
                       char ***lo, chunks *differ, bool *done)
{
    long n = strtol(PQgetvalue(sres, 0, 0), NULL, 10);
    lsn_t lsn = 0;
    /* The source's position; a reversed round reads the target's (look). */
    if (!v->fol->reversed)
        lsn_value(PQgetvalue(sres, 0, 2), &lsn);
    *done = n < VERIFY_CHUNK_ROWS;
    chunk c = {*lo, NULL, lsn, 0};
    *lo = NULL;
    if (!*done && !(c.hi = copy_key(v, sres, 3))) {
        free_strv(c.lo, v->nkey);
        return oom(v);
    }
    PGresult *tres = NULL;
    bool ok = send_target_chunk(v, &c) &&
              (*done || send_sql(v, v->src, next_sql, (int)v->nkey,
                                 (const char *const *)c.hi)) &&
              (tres = await(v, v->tgt)) != NULL;
    if (ok)
        count_rows(v, sres);
    if (ok && !same_hash(sres, tres)) {
        /* the list keeps lo and a copy of hi; hi goes on as the next lo */
        chunk d = {c.lo, c.hi ? copy_key(v, sres, 3) : NULL, lsn, 0};
        ok = (!c.hi || d.hi) ? push_chunk(v, differ, d) : oom(v);
        if (ok)
            c.lo = NULL;
        else
            free_strv(d.hi, v->nkey);
    }
    PQclear(tres);
    free_strv(c.lo, v->nkey);
    if (ok)
        *lo = c.hi;
    else
        free_strv(c.hi, v->nkey);
    return ok;
}

/* Every chunk of a keyed table; the ones that differ go into `differ`. */
static bool keyed_pass(vt *v, chunks *differ)
{
    char *first = src_chunk_sql(v, false), *next = src_chunk_sql(v, true);
    bool ok = first && next && send_sql(v, v->src, first, 0, NULL);
    char **lo = NULL;
    bool done = !ok;
    while (!done) {
        PGresult *sres = await(v, v->src);
        ok = sres && keyed_step(v, next, sres, &lo, differ, &done);
        PQclear(sres);
        done = done || !ok;
    }
    free_strv(lo, v->nkey);
    free(first);
    free(next);
    return ok;
}

/*
 * A keyless table is cut into buckets by the first 12 bits of each row's
 * md5 (masked to the bucket count): the same rows fall in the same bucket
 * on both sides, whatever the servers, and a differing bucket is read
 * again alone. About VERIFY_CHUNK_ROWS rows per bucket, by reltuples.
 */
static void set_buckets(vt *v)
{
    const char *params[] = {v->qname};
    PGresult *res = PQexecParams(v->src,
        "SELECT reltuples FROM pg_class WHERE oid = $1::regclass", 1, NULL,
        params, NULL, NULL, 0);
    double rows = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1
                      ? strtod(PQgetvalue(res, 0, 0), NULL) : 0;
    PQclear(res);
    v->buckets = 1;
    while (v->buckets < MAX_BUCKETS &&
           v->buckets * (double)VERIFY_CHUNK_ROWS < rows)
        v->buckets *= 2;
}

/* Either side: per bucket, the count and the sum of 60 bits of md5. */
static char *buckets_sql(vt *v)
{
    char *sql = NULL;
    size_t len;
    FILE *f = open_memstream(&sql, &len);
    if (!f)
        return oom(v), NULL;
    fputs("SELECT b, count(*), sum(h) FROM (SELECT ", f);
    put_bucket(f, v, "m");
    fprintf(f, " AS b, ('x' || substr(m, 4, 15))::bit(60)::bigint AS h"
            " FROM (SELECT md5(%s) AS m FROM %s OFFSET 0) r) s GROUP BY b",
            v->rowtext, v->qname);
    return finish_sql(v, f, &sql);
}

/* "count sum" of each bucket of a result, "" where none. */
static char **bucket_sums(vt *v, const PGresult *res)
{
    char **sums = calloc((size_t)v->buckets, sizeof *sums);
    for (int i = 0; sums && i < PQntuples(res); i++) {
        long b = strtol(PQgetvalue(res, i, 0), NULL, 10);
        if (b >= 0 && b < v->buckets && !sums[b] &&
            asprintf(&sums[b], "%s %s", PQgetvalue(res, i, 1),
                     PQgetvalue(res, i, 2)) < 0)
            sums[b] = NULL;
    }
    return sums;
}

static bool differing_buckets(vt *v, const PGresult *sres,
                              const PGresult *tres, lsn_t lsn, chunks *differ)
{
    char **s = bucket_sums(v, sres), **t = bucket_sums(v, tres);
    bool ok = (s && t) || oom(v);
    for (int b = 0; ok && b < v->buckets; b++)
        if (strcmp(s[b] ? s[b] : "", t[b] ? t[b] : "") != 0)
            ok = push_chunk(v, differ, (chunk){NULL, NULL, lsn, b});
    free_strv(s, s ? (size_t)v->buckets : 0);
    free_strv(t, t ? (size_t)v->buckets : 0);
    return ok;
}

/* A keyless table: every bucket, in one read of each side, both at once. */
static bool keyless_pass(vt *v, chunks *differ)
{
    set_buckets(v);
    char *sql = buckets_sql(v);
    bool ok = sql && send_sql(v, v->src, sql, 0, NULL) &&
              send_sql(v, v->tgt, sql, 0, NULL);
    PGresult *sres = ok ? await(v, v->src) : NULL;
    PGresult *tres = ok ? await(v, v->tgt) : NULL;
    lsn_t lsn = 0;
    ok = sres && tres && current_lsn(v, &lsn);
    if (ok) {
        for (int i = 0; i < PQntuples(sres); i++) {
            long long n = strtoll(PQgetvalue(sres, i, 1), NULL, 10);
            v->out->rows += n;
            atomic_fetch_add(&v->env->rows, (uint_fast64_t)n);
        }
        ok = differing_buckets(v, sres, tres, lsn, differ);
    }
    PQclear(sres);
    PQclear(tres);
    free(sql);
    return ok;
}

/* ------------------------------------------------------------ row by row */

/*
 * A look at a chunk gives each row's id (its encoded key, or for a keyless
 * table its md5), its md5 and its version (xmin and ctid: a row version
 * seen in two looks was there, unchanged, all the time in between). A
 * round takes four looks: target (T1), source (S, then its WAL position
 * L), the wait until the target has applied past L, target (T2), source
 * (S2). S is compared with T2. Under a correct stream, a target row
 * version seen in T1 and T2 was there when S was read, and a source
 * version seen in S and S2 was there when T2 was read (which has applied
 * past L and cannot be ahead of S2); a difference backed by either is
 * real. Any other difference is a row that moved between looks: it stays
 * open for the next round. After a cut-over the source trails the
 * service's database, so the roles swap (look): T1 and T2 are looks at
 * the source, S and S2 at the target, L is the target's position and the
 * wait is on the reverse stream.
 */

typedef struct vrow {
    char *id;
    char *hash;
    char *version;
} vrow;

typedef struct vrows {
    vrow *v;
    size_t n;
} vrows;

/* A difference: the id, the kind, and for a keyless row how many copies. */
typedef struct vdiff {
    char *id;
    vtable_diff_kind kind;
    long copies;
} vdiff;

typedef struct vdiffs {
    vdiff *v;
    size_t n, cap;
} vdiffs;

/* One chunk's looks in a round. */
/*
 * The looks by role: t1 and t2 at the following side (the target, or
 * after a cut-over the source), s and s2 at the leading one. A kind of
 * difference says the same by role: MISSING is in the leading side and
 * not in the other (real_kind turns it into the sides' terms).
 */
typedef struct look {
    vrows t1, s, t2, s2;
} look;

static void free_rows(vrows *r)
{
    for (size_t i = 0; i < r->n; i++) {
        if (r->v[i].id != r->v[i].hash)   /* a keyless row's id is its md5 */
            free(r->v[i].id);
        free(r->v[i].hash);
        free(r->v[i].version);
    }
    free(r->v);
    *r = (vrows){0};
}

static void free_diffs(vdiffs *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->v[i].id);
    free(d->v);
    *d = (vdiffs){0};
}

static void free_look(look *l)
{
    free_rows(&l->t1);
    free_rows(&l->s);
    free_rows(&l->t2);
    free_rows(&l->s2);
}

/* By id, then version: a keyless id's copies side by side. */
static int cmp_row(const void *a, const void *b)
{
    const vrow *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : strcmp(x->version, y->version);
}

/* "<len>:<value>" per key column: unambiguous, compared bytewise. */
static char *encode_key(const PGresult *res, int row, size_t nkey)
{
    char *s = NULL;
    size_t len;
    FILE *f = open_memstream(&s, &len);
    if (!f)
        return NULL;
    for (size_t i = 0; i < nkey; i++)
        fprintf(f, "%d:%s", PQgetlength(res, row, (int)i),
                PQgetvalue(res, row, (int)i));
    if (fclose(f) != 0) {
        free(s);
        return NULL;
    }
    return s;
}

static bool fill_row(vt *v, const PGresult *res, int i, vrow *r)
{
    int k = (int)v->nkey;
    r->hash = strdup(PQgetvalue(res, i, k));
    r->id = k ? encode_key(res, i, v->nkey) : r->hash;
    r->version = strdup(PQgetvalue(res, i, k + 1));
    return r->id && r->hash && r->version;
}

/* The rows of a reading (a keyless one: those of `bucket`), sorted. */
static bool take_rows(vt *v, const PGresult *res, int bucket, vrows *out)
{
    free_rows(out);
    size_t rows = (size_t)PQntuples(res);
    out->v = calloc(rows + 1, sizeof *out->v);
    bool ok = out->v != NULL;
    for (int i = 0; ok && i < (int)rows; i++) {
        if (bucket >= 0 && strtol(PQgetvalue(res, i, 2), NULL, 10) != bucket)
            continue;
        ok = fill_row(v, res, i, &out->v[out->n++]);
    }
    if (ok)
        qsort(out->v, out->n, sizeof *out->v, cmp_row);
    return ok || oom(v);
}

/* A keyed chunk's rows, or with `buckets` ("{3,17}") keyless buckets'. */
static PGresult *read_rows(vt *v, PGconn *conn, const chunk *c,
                           const char *buckets)
{
    char *sql = rows_sql(v, c);
    size_t n = 1;
    const char **p = buckets ? calloc(2, sizeof *p) : range_params(v, c, &n);
    if (p && buckets)
        p[0] = buckets;
    PGresult *res = sql && p ? run(v, conn, sql, (int)n, p) : NULL;
    free(sql);
    free(p);
    if (!res && !v->out->failed)
        oom(v);
    return res;
}

/* The first row of id in r (r->n when none), and how many there are. */
static size_t find_id(const vrows *r, const char *id, size_t *count)
{
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(r->v[mid].id, id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t end = lo;
    while (end < r->n && strcmp(r->v[end].id, id) == 0)
        end++;
    *count = end - lo;
    return lo;
}

static bool has_version(const vrows *r, const char *id, const char *version)
{
    size_t n, at = find_id(r, id, &n);
    for (size_t i = at; i < at + n; i++)
        if (strcmp(r->v[i].version, version) == 0)
            return true;
    return false;
}

/* Every version of id in a is also in b (and a has one): it stayed. */
static bool kept(const vrows *a, const vrows *b, const char *id)
{
    size_t n, at = find_id(a, id, &n);
    for (size_t i = at; i < at + n; i++)
        if (!has_version(b, id, a->v[i].version))
            return false;
    return n > 0;
}

static bool push_diff(vdiffs *d, const char *id, vtable_diff_kind kind,
                      long copies)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 16;
        vdiff *nv = realloc(d->v, cap * sizeof *nv);
        if (!nv)
            return false;
        d->v = nv;
        d->cap = cap;
    }
    char *copy = strdup(id);
    if (!copy)
        return false;
    d->v[d->n++] = (vdiff){copy, kind, copies};
    return true;
}

/* How S and T2 differ on one id, if they do. */
static bool diff_id(const look *l, const char *id, vdiffs *d)
{
    size_t sn, tn;
    size_t si = find_id(&l->s, id, &sn), ti = find_id(&l->t2, id, &tn);
    if (sn > tn)
        return push_diff(d, id, VTABLE_MISSING, (long)(sn - tn));
    if (tn > sn)
        return push_diff(d, id, VTABLE_EXTRA, (long)(tn - sn));
    if (sn == 1 && strcmp(l->s.v[si].hash, l->t2.v[ti].hash) != 0)
        return push_diff(d, id, VTABLE_DIFFERENT, 1);
    return true;
}

/* Every id where S and T2 differ, in id order. */
static bool differences(const look *l, vdiffs *d)
{
    size_t i = 0, j = 0;
    bool ok = true;
    while (ok && (i < l->s.n || j < l->t2.n)) {
        const char *a = i < l->s.n ? l->s.v[i].id : NULL;
        const char *b = j < l->t2.n ? l->t2.v[j].id : NULL;
        const char *id = !a ? b : !b ? a : strcmp(a, b) <= 0 ? a : b;
        ok = diff_id(l, id, d);
        while (i < l->s.n && strcmp(l->s.v[i].id, id) == 0)
            i++;
        while (j < l->t2.n && strcmp(l->t2.v[j].id, id) == 0)
            j++;
    }
    return ok;
}

static bool is_real(const look *l, const vdiff *x)
{
    bool target_stayed = kept(&l->t2, &l->t1, x->id);
    bool source_stayed = kept(&l->s, &l->s2, x->id);
    switch (x->kind) {
    case VTABLE_MISSING:
        return source_stayed;
    case VTABLE_EXTRA:
        return target_stayed;
    case VTABLE_DIFFERENT:
        return target_stayed || source_stayed;
    }
    return false;
}

/* A difference by role (look) in the terms of source and target. */
static vtable_diff_kind real_kind(const vt *v, vtable_diff_kind k)
{
    if (!v->fol->reversed || k == VTABLE_DIFFERENT)
        return k;
    return k == VTABLE_MISSING ? VTABLE_EXTRA : VTABLE_MISSING;
}

static bool in_diffs(const vdiffs *d, const char *id)
{
    size_t lo = 0, hi = d->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(d->v[mid].id, id);
        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/*
 * A chunk's round: real differences go to `found`, the rest is `open` for
 * the next round. After the first round only what was open counts.
 */
static bool sort_round(vt *v, const look *l, bool first, vdiffs *open,
                       vdiffs *found)
{
    vdiffs d = {0}, next = {0};
    bool ok = differences(l, &d);
    for (size_t i = 0; ok && i < d.n; i++) {
        const vdiff *x = &d.v[i];
        if (!first && !in_diffs(open, x->id))
            continue;
        ok = is_real(l, x)
             ? push_diff(found, x->id, real_kind(v, x->kind), x->copies)
             : push_diff(&next, x->id, x->kind, x->copies);
    }
    free_diffs(&d);
    free_diffs(open);
    *open = next;
    return ok || oom(v);
}

/* "{3,17}": the buckets of the keyless chunks still open. */
static char *bucket_list(const chunk *cs, const bool *act, size_t n)
{
    char *s = NULL;
    size_t len;
    FILE *f = open_memstream(&s, &len);
    if (!f)
        return NULL;
    fputc('{', f);
    for (size_t i = 0, k = 0; i < n; i++)
        if (act[i])
            fprintf(f, "%s%d", k++ ? "," : "", cs[i].bucket);
    fputc('}', f);
    if (fclose(f) != 0) {
        free(s);
        return NULL;
    }
    return s;
}

/*
 * One look (0 T1, 1 S, 2 T2, 3 S2, as look's roles) at every chunk still
 * open: a query
 * per keyed chunk, one scan for all the keyless buckets.
 */
static bool look_at(vt *v, const chunk *cs, const bool *act, look *looks,
                    size_t n, int which)
{
    PGconn *conn = which % 2 ? v->lead : v->follow;
    char *buckets = v->nkey ? NULL : bucket_list(cs, act, n);
    PGresult *all = buckets ? read_rows(v, conn, &cs[0], buckets) : NULL;
    bool ok = v->nkey || all;
    for (size_t i = 0; ok && i < n; i++) {
        vrows *r[] = {&looks[i].t1, &looks[i].s, &looks[i].t2, &looks[i].s2};
        if (!act[i])
            continue;
        PGresult *res = all ? all : read_rows(v, conn, &cs[i], NULL);
        ok = res && take_rows(v, res, all ? cs[i].bucket : -1, r[which]);
        if (res != all)
            PQclear(res);
    }
    PQclear(all);
    free(buckets);
    return ok || v->out->failed || oom(v);
}

/*
 * One round over a group of chunks, with one wait. *waited is false when
 * the target could not be waited for.
 */
static bool round_group(vt *v, const chunk *cs, const bool *act, look *looks,
                        size_t n, bool *waited)
{
    lsn_t want = 0, at = 0;
    for (size_t i = 0; i < n; i++)
        if (act[i] && cs[i].lsn > want)
            want = cs[i].lsn;
    if (!look_at(v, cs, act, looks, n, 0) ||
        !look_at(v, cs, act, looks, n, 1) ||
        !current_lsn(v, &at))
        return false;
    int w = wait_applied(v, at > want ? at : want);
    *waited = w == 1;
    return w >= 0 && look_at(v, cs, act, looks, n, 2) &&
           look_at(v, cs, act, looks, n, 3);
}

static void report(vt *v, const vdiffs *d);

/* Adds up what is still open after the last round: rows that kept moving. */
static void count_open(vt *v, const vdiffs *open)
{
    for (size_t k = 0; k < open->n; k++)
        v->out->unsettled += (size_t)open->v[k].copies;
}

/*
 * Differing chunks, row by row, up to ROUNDS rounds while something is
 * open. Without a wait (no cleave streams the slot) the target stands
 * still, and a difference backed by a target that stayed is still real.
 */
static bool recheck_group(vt *v, const chunk *cs, size_t n)
{
    vdiffs *open = calloc(n, sizeof *open), *found = calloc(n, sizeof *found);
    look *looks = calloc(n, sizeof *looks);
    bool *act = calloc(n, sizeof *act);
    bool ok = (open && found && looks && act) || oom(v), waited = true;
    for (int round = 0; ok && waited && round < ROUNDS; round++) {
        bool any = false;
        for (size_t i = 0; i < n; i++)
            any |= act[i] = round == 0 || open[i].n > 0;
        if (!any)
            break;
        ok = round_group(v, cs, act, looks, n, &waited);
        for (size_t i = 0; ok && i < n; i++)
            ok = !act[i] || sort_round(v, &looks[i], round == 0, &open[i],
                                       &found[i]);
    }
    v->out->rechecked += n;
    for (size_t i = 0; open && found && looks && i < n; i++) {
        if (ok) {
            report(v, &found[i]);
            count_open(v, &open[i]);
        }
        free_diffs(&open[i]);
        free_diffs(&found[i]);
        free_look(&looks[i]);
    }
    free(open);
    free(found);
    free(looks);
    free(act);
    return ok;
}

/* ------------------------------------------------------------ rendering */

static bool plain_value(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "0123456789_.:+-", *s))
            return false;
    return true;
}

/* value as the report shows it: bare when plain, else quoted ('' for '). */
static void put_value(FILE *f, const char *s, int len, size_t limit)
{
    if (!s) {
        fputs("NULL", f);
        return;
    }
    if (plain_value(s) && (size_t)len <= limit) {
        fputs(s, f);
        return;
    }
    fputc('\'', f);
    size_t n = 0;
    for (; *s && n < limit; s++, n++) {
        if (*s == '\'')
            fputc('\'', f);
        fputc(*s, f);
    }
    fputs(*s ? "'..." : "'", f);
}

void vtable_put_name(FILE *f, const char *name)
{
    bool plain = *name && !strchr("0123456789", *name);
    for (const char *p = name; plain && *p; p++)
        plain = strchr("abcdefghijklmnopqrstuvwxyz0123456789_", *p) != NULL;
    if (plain) {
        fputs(name, f);
        return;
    }
    fputc('"', f);
    for (const char *p = name; *p; p++) {
        if (*p == '"')
            fputc('"', f);
        fputc(*p, f);
    }
    fputc('"', f);
}

/* "id=17, line_no=2" from an encoded key. */
static char *render_key(const vt *v, const char *id)
{
    char *s = NULL;
    size_t len;
    FILE *f = open_memstream(&s, &len);
    if (!f)
        return NULL;
    const char *p = id;
    for (size_t i = 0; i < v->nkey && *p; i++) {
        char *colon;
        long n = strtol(p, &colon, 10);
        if (*colon != ':' || n < 0 || (size_t)n > strlen(colon + 1))
            break;
        char *val = strndup(colon + 1, (size_t)n);
        fputs(i ? ", " : "", f);
        vtable_put_name(f, v->names[v->key[i]]);
        fputc('=', f);
        put_value(f, val, (int)n, SIZE_MAX);
        free(val);
        p = colon + 1 + n;
    }
    if (fclose(f) != 0) {
        free(s);
        return NULL;
    }
    return s;
}

/*
 * The shown keyless rows of one kind, by md5, from the side that has them,
 * in one scan: md5, then every column.
 */
static PGresult *fetch_shown(vt *v, PGconn *conn, const vdiffs *d,
                             vtable_diff_kind kind)
{
    char *ids = NULL, *sql = NULL;
    size_t len, k = 0;
    FILE *f = open_memstream(&ids, &len);
    if (!f)
        return NULL;
    fputc('{', f);
    for (size_t i = 0; i < d->n && k < VTABLE_SHOW; i++)
        if (d->v[i].kind == kind)
            fprintf(f, "%s%s", k++ ? "," : "", d->v[i].id);   /* hex only */
    fputc('}', f);
    PGresult *res = NULL;
    if (fclose(f) == 0 && k > 0 &&
        asprintf(&sql, "SELECT DISTINCT ON (m) m, %s FROM (SELECT md5(%s) AS"
                 " m, %s FROM %s OFFSET 0) r WHERE m = ANY ($1::text[])",
                 v->collist, v->rowtext, v->collist, v->qname) >= 0) {
        const char *params[] = {ids};
        res = run(v, conn, sql, 1, params);
        free(sql);
    }
    free(ids);
    return res;
}

/* A keyless row as every column=value, found by its md5 in `res`. */
static char *render_row(const PGresult *res, const char *id)
{
    int row = -1;
    for (int i = 0; res && i < PQntuples(res) && row < 0; i++)
        if (strcmp(PQgetvalue(res, i, 0), id) == 0)
            row = i;
    if (row < 0)
        return strdup("(a row that has changed since)");
    char *s = NULL;
    size_t len;
    FILE *f = open_memstream(&s, &len);
    for (int i = 1; f && i < PQnfields(res); i++) {
        fputs(i > 1 ? ", " : "", f);
        vtable_put_name(f, PQfname(res, i));
        fputc('=', f);
        put_value(f, PQgetisnull(res, row, i) ? NULL : PQgetvalue(res, row, i),
                  PQgetlength(res, row, i), SHOWN_VALUE);
    }
    if (!f || fclose(f) != 0) {
        free(s);
        return NULL;
    }
    return s;
}

/* The remaining differences of a chunk into the result. */
static void report(vt *v, const vdiffs *d)
{
    PGresult *missing = NULL, *extra = NULL;
    if (!v->nkey && v->out->n_shown < VTABLE_SHOW) {
        missing = fetch_shown(v, v->src, d, VTABLE_MISSING);
        extra = fetch_shown(v, v->tgt, d, VTABLE_EXTRA);
    }
    for (size_t i = 0; i < d->n; i++) {
        const vdiff *x = &d->v[i];
        char *what = v->out->n_shown >= VTABLE_SHOW ? NULL
                     : v->nkey ? render_key(v, x->id)
                     : render_row(x->kind == VTABLE_EXTRA ? extra : missing,
                                  x->id);
        for (long k = 0; k < x->copies; k++)
            add_diff(v, x->kind, what && v->out->n_shown < VTABLE_SHOW
                                     ? strdup(what) : NULL);
        free(what);
    }
    PQclear(missing);
    PQclear(extra);
}

/* ------------------------------------------------------------ entry */

static void free_chunks(vt *v, chunks *list)
{
    for (size_t i = 0; i < list->n; i++) {
        free_strv(list->v[i].lo, v->nkey);
        free_strv(list->v[i].hi, v->nkey);
    }
    free(list->v);
}

static void compare(vt *v)
{
    bool complete;
    if (!read_columns(v) || !target_has_columns(v, &complete) || !complete)
        return;
    chunks differ = {0};
    bool ok = v->nkey ? keyed_pass(v, &differ) : keyless_pass(v, &differ);
    for (size_t i = 0; ok && i < differ.n; i += GROUP)
        ok = recheck_group(v, &differ.v[i],
                           differ.n - i < GROUP ? differ.n - i : GROUP);
    free_chunks(v, &differ);
}

void vtable_compare(vtable_env *env, const char *target_dsn,
                    const vtable_follow *follow, const cfg_table *t,
                    vtable_result *out)
{
    vt v = {.env = env, .fol = follow, .out = out};
    v.src = connect_to(&v, env->source_dsn, "the source");
    v.tgt = v.src ? connect_to(&v, target_dsn, "the target") : NULL;
    v.lead = follow->reversed ? v.tgt : v.src;
    v.follow = follow->reversed ? v.src : v.tgt;
    v.recode = v.tgt && strcmp(server_encoding(v.src),
                               server_encoding(v.tgt)) != 0;
    if (v.tgt && set_names(&v, t))
        compare(&v);
    PQfinish(v.src);
    PQfinish(v.tgt);
    free(v.qname);
    free_strv(v.names, v.ncols);
    free_strv(v.cols, v.ncols);
    free_strv(v.types, v.ncols);
    free(v.key);
    free(v.collist);
    free(v.rowtext);
}

void vtable_result_clear(vtable_result *r)
{
    for (size_t i = 0; i < r->n_shown; i++)
        free(r->diffs[i].what);
    r->n_shown = 0;
}
