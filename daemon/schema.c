/*
 * schema: a service's owned tables read from the source catalog and built
 * in its target in phases around the copy; see schema.h.
 *
 * Every statement for the target is built while reading, with names
 * quoted by libpq and definitions printed by the source's deparsers, so
 * the target phases only look at the target's catalog and run them.
 */
#include "daemon/schema.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

/*
 * The comment a table carries while this module builds it: a restart
 * tells its own half-built tables from tables someone else made. Plain
 * ASCII without quotes, so it goes into SQL as it is.
 */
#define MARK_KEYS "cleave: initial sync in progress, keys and indexes pending"
#define MARK_FKS "cleave: initial sync in progress, foreign keys pending"

/* Inside the caller's transaction the reads run in this savepoint. */
#define SAVEPOINT "cleave_schema_read"

/* ------------------------------------------------------------ strings */

typedef struct strbuf {
    char *s;
    size_t len, cap;
    bool failed;             /* out of memory, or a name libpq cannot quote */
} strbuf;

static void sb_addn(strbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *grown = realloc(b->s, cap);
        if (!grown) {
            b->failed = true;
            return;
        }
        b->s = grown;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_add(strbuf *b, const char *s)
{
    sb_addn(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3)))
static void sb_addf(strbuf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if ((size_t)n < sizeof small) {
        sb_addn(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->failed = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_addn(b, big, (size_t)n);
    free(big);
}

static void sb_ident(strbuf *b, PGconn *conn, const char *name)
{
    char *q = PQescapeIdentifier(conn, name, strlen(name));
    if (!q) {
        b->failed = true;
        return;
    }
    sb_add(b, q);
    PQfreemem(q);
}

static void sb_qname(strbuf *b, PGconn *conn, const char *schema,
                     const char *name)
{
    sb_ident(b, conn, schema);
    sb_add(b, ".");
    sb_ident(b, conn, name);
}

static void sb_literal(strbuf *b, PGconn *conn, const char *value)
{
    char *q = PQescapeLiteral(conn, value, strlen(value));
    if (!q) {
        b->failed = true;
        return;
    }
    sb_add(b, q);
    PQfreemem(q);
}

/* A name as a person writes it in SQL: bare when that reads back the same. */
static void sb_display(strbuf *b, const char *name, bool always_quote)
{
    bool bare = !always_quote && *name && !(*name >= '0' && *name <= '9');
    for (const char *c = name; *c && bare; c++)
        bare = (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
               *c == '_';
    if (bare) {
        sb_add(b, name);
        return;
    }
    sb_add(b, "\"");
    for (const char *c = name; *c; c++) {
        sb_addn(b, c, 1);
        if (*c == '"')
            sb_add(b, "\"");
    }
    sb_add(b, "\"");
}

/* Starts the next item of a list in parentheses, one item a line. */
static void sb_item(strbuf *b)
{
    bool first = b->len && b->s[b->len - 1] == '(';
    sb_add(b, first ? "\n    " : ",\n    ");
}

/* The text built, or NULL (and nothing to free) if building failed. */
static char *sb_take(strbuf *b)
{
    char *s = b->failed ? NULL : b->s ? b->s : strdup("");
    if (b->failed)
        free(b->s);
    *b = (strbuf){0};
    return s;
}

typedef struct strlist {
    char **v;
    size_t n, cap;
} strlist;

/* Takes s; false (s freed) when s is NULL or memory runs out. */
static bool sl_push(strlist *l, char *s)
{
    if (!s)
        return false;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        char **grown = realloc(l->v, cap * sizeof *grown);
        if (!grown) {
            free(s);
            return false;
        }
        l->v = grown;
        l->cap = cap;
    }
    l->v[l->n++] = s;
    return true;
}

static bool sl_has(const strlist *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0)
            return true;
    return false;
}

static void sl_free(strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    *l = (strlist){0};
}

/* Room for one more element of size `size` in *v. */
static bool grow(void **v, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return true;
    size_t c = *cap ? *cap * 2 : 8;
    void *grown = realloc(*v, c * size);
    if (!grown)
        return false;
    memset((char *)grown + n * size, 0, (c - n) * size);
    *v = grown;
    *cap = c;
    return true;
}

/* ------------------------------------------------------------ errors */

__attribute__((format(printf, 3, 4)))
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Puts context in front of the error already in err. */
__attribute__((format(printf, 3, 4)))
static void prefix_err(char *err, size_t errlen, const char *fmt, ...)
{
    char *rest = strdup(err);
    if (!rest)
        return;
    char prefix[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    snprintf(err, errlen, "%s: %s", prefix, rest);
    free(rest);
}

/* The server's message and detail on one line, or the connection's. */
static void sql_err(char *err, size_t errlen, PGconn *conn, const PGresult *res)
{
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    if (msg && detail)
        set_err(err, errlen, "%s (%s)", msg, detail);
    else if (msg)
        set_err(err, errlen, "%s", msg);
    else {
        const char *m = PQerrorMessage(conn);
        if (!*m)
            m = "no answer from the server";
        set_err(err, errlen, "%.*s", (int)strcspn(m, "\n"), m);
    }
}

/* A statement's result when it worked, else NULL with err set. */
static PGresult *query(PGconn *conn, const char *sql, int nparams,
                       const char *const *params, char *err, size_t errlen)
{
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL,
                                 NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
        return res;
    sql_err(err, errlen, conn, res);
    PQclear(res);
    return NULL;
}

static bool exec(PGconn *conn, const char *sql, char *err, size_t errlen)
{
    PGresult *res = query(conn, sql, 0, NULL, err, errlen);
    PQclear(res);
    return res != NULL;
}

static bool exec_all(PGconn *conn, const strlist *sqls, char *err,
                     size_t errlen)
{
    for (size_t i = 0; i < sqls->n; i++)
        if (!exec(conn, sqls->v[i], err, errlen))
            return false;
    return true;
}

static bool is_true(const PGresult *res, int row, int col)
{
    return PQgetvalue(res, row, col)[0] == 't';
}

/* An integer as the server prints one: safe to put into SQL as it is. */
static bool is_integer(const char *s)
{
    if (*s == '-')
        s++;
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* ------------------------------------------------------------ the plan */

typedef enum build_step {
    BUILD_NONE,              /* not this module's table: used as it is */
    BUILD_KEYS,              /* keys, indexes, then foreign keys owed */
    BUILD_FKS,               /* foreign keys owed */
} build_step;

typedef struct sch_column {
    char *name;
    char *type;              /* format_type, schema-qualified */
    bool notnull;
    bool generated;
} sch_column;

typedef struct sch_fk {
    char *name;
    char *sql;               /* ALTER TABLE ... ADD CONSTRAINT ... */
    char *references;        /* the referenced table, for people */
    char *owner;             /* the service owning it, or NULL */
    bool in_service;
} sch_fk;

typedef struct sch_table {
    cfg_table name;          /* a copy of the configuration's */
    char *display;           /* schema.table as a person writes it */
    char *qname;             /* "schema"."table" */
    char oid[16];            /* in the source */
    char *create_sql;        /* columns and validated CHECKs */
    size_t *virtual_at;      /* where create_sql says VIRTUAL */
    size_t nvirtual, capvirtual;
    char *partition_by;      /* a partitioned table's key, else NULL */
    char *comment_sql;       /* the source's comment, once finished */
    strlist after_create;    /* partitions, sequences OWNED BY its columns */
    strlist after_data;      /* keys, indexes, NOT VALID CHECKs, identity */
    sch_column *cols;
    size_t ncols, capcols;
    char *copy_columns;
    sch_fk *fks;
    size_t nfks, capfks;
    int64_t bytes, rows;
    build_step build;        /* set by schema_prepare_target */
} sch_table;

typedef struct sch_type {
    char oid[16];
    char *schema, *name;     /* raw */
    char *display;
    const char *kind;        /* for messages */
    char *create_sql;        /* NULL: cleave cannot make it (a base type) */
    strlist late;            /* NOT VALID domain CHECKs: after the data */
    bool created;            /* by schema_prepare_target */
} sch_type;

typedef struct sch_seq {
    char oid[16];
    char *schema, *name;     /* raw */
    char *qname;
    char *options;           /* INCREMENT BY ... [NO] CYCLE */
    char *create_sql;        /* NULL for an identity: CREATE TABLE makes it */
    char *setval_sql;
    char owner_kind;         /* 'i' identity, 'a' OWNED BY, 0 none */
    char owner_oid[16];
    char *owner_col;
} sch_seq;

struct schema_plan {
    char *service;
    sch_table *tables;
    size_t ntables;
    sch_type *types;         /* in dependency order */
    size_t ntypes, captypes;
    sch_seq *seqs;
    size_t nseqs, capseqs;
    strlist schemas;         /* raw names of every schema the plan uses */
};

static void free_table(sch_table *t)
{
    free(t->name.schema);
    free(t->name.name);
    free(t->display);
    free(t->qname);
    free(t->create_sql);
    free(t->virtual_at);
    free(t->partition_by);
    free(t->comment_sql);
    sl_free(&t->after_create);
    sl_free(&t->after_data);
    for (size_t i = 0; i < t->ncols; i++) {
        free(t->cols[i].name);
        free(t->cols[i].type);
    }
    free(t->cols);
    free(t->copy_columns);
    for (size_t i = 0; i < t->nfks; i++) {
        free(t->fks[i].name);
        free(t->fks[i].sql);
        free(t->fks[i].references);
        free(t->fks[i].owner);
    }
    free(t->fks);
}

void schema_free(schema_plan *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->ntables; i++)
        free_table(&p->tables[i]);
    free(p->tables);
    for (size_t i = 0; i < p->ntypes; i++) {
        sch_type *ty = &p->types[i];
        free(ty->schema);
        free(ty->name);
        free(ty->display);
        free(ty->create_sql);
        sl_free(&ty->late);
    }
    free(p->types);
    for (size_t i = 0; i < p->nseqs; i++) {
        sch_seq *s = &p->seqs[i];
        free(s->schema);
        free(s->name);
        free(s->qname);
        free(s->options);
        free(s->create_sql);
        free(s->setval_sql);
        free(s->owner_col);
    }
    free(p->seqs);
    sl_free(&p->schemas);
    free(p->service);
    free(p);
}

static char *display_qname(const char *schema, const char *name)
{
    strbuf b = {0};
    sb_display(&b, schema, false);
    sb_add(&b, ".");
    sb_display(&b, name, false);
    return sb_take(&b);
}

static schema_plan *plan_new(const cfg_service *svc)
{
    schema_plan *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->service = strdup(svc->name);
    p->tables = calloc(svc->n_owned ? svc->n_owned : 1, sizeof *p->tables);
    if (!p->service || !p->tables) {
        schema_free(p);
        return NULL;
    }
    p->ntables = svc->n_owned;
    bool ok = true;
    for (size_t i = 0; i < svc->n_owned; i++) {
        sch_table *t = &p->tables[i];
        t->name.schema = strdup(svc->owned[i].schema);
        t->name.name = strdup(svc->owned[i].name);
        t->name.pos = svc->owned[i].pos;
        t->bytes = t->rows = -1;
        ok = ok && t->name.schema && t->name.name &&
             (t->display = display_qname(t->name.schema, t->name.name));
    }
    if (!ok) {
        schema_free(p);
        return NULL;
    }
    return p;
}

size_t schema_ntables(const schema_plan *p)
{
    return p->ntables;
}

const cfg_table *schema_table(const schema_plan *p, size_t i)
{
    return &p->tables[i].name;
}

const char *schema_copy_columns(const schema_plan *p, size_t i)
{
    return p->tables[i].copy_columns;
}

bool schema_table_partitioned(const schema_plan *p, size_t i)
{
    return p->tables[i].partition_by != NULL;
}

int64_t schema_table_bytes(const schema_plan *p, size_t i)
{
    return p->tables[i].bytes;
}

int64_t schema_table_rows(const schema_plan *p, size_t i)
{
    return p->tables[i].rows;
}

size_t schema_skipped_fks(const schema_plan *p)
{
    size_t n = 0;
    for (size_t i = 0; i < p->ntables; i++)
        for (size_t k = 0; k < p->tables[i].nfks; k++)
            n += !p->tables[i].fks[k].in_service;
    return n;
}

/* ------------------------------------------------------------ reading */

/*
 * The catalog queries below name catalogs and functions without
 * pg_catalog: they run with search_path = pg_catalog, which is also what
 * makes format_type and the pg_get_* deparsers qualify every other name.
 */
typedef struct reader {
    PGconn *src;
    const cfg *config;
    schema_plan *p;
    strlist seen_types;      /* oids already looked at, system ones too */
    bool oom;
    char *err;
    size_t errlen;
} reader;

static PGresult *rd_query(reader *rd, const char *sql, int nparams,
                          const char *const *params)
{
    return query(rd->src, sql, nparams, params, rd->err, rd->errlen);
}

/* Keeps s, or notes that memory ran out (checked once per table). */
static char *rd_take(reader *rd, strbuf *b)
{
    char *s = sb_take(b);
    rd->oom |= !s;
    return s;
}

static char *rd_dup(reader *rd, const char *s)
{
    char *d = strdup(s);
    rd->oom |= !d;
    return d;
}

static void rd_schema(reader *rd, const char *schema)
{
    if (!sl_has(&rd->p->schemas, schema))
        rd->oom |= !sl_push(&rd->p->schemas, strdup(schema));
}

/* " COLLATE schema.name" when the row names one in columns col, col+1. */
static void sb_collate(strbuf *b, PGconn *conn, const PGresult *res, int row,
                       int col)
{
    if (PQgetisnull(res, row, col))
        return;
    sb_add(b, " COLLATE ");
    sb_qname(b, conn, PQgetvalue(res, row, col), PQgetvalue(res, row, col + 1));
}

static bool need_type(reader *rd, const char *oid);

static bool enum_sql(reader *rd, const char *oid, strbuf *b)
{
    PGresult *res = rd_query(rd, "SELECT enumlabel FROM pg_enum "
                                 "WHERE enumtypid = $1 ORDER BY enumsortorder",
                             1, &oid);
    if (!res)
        return false;
    sb_add(b, " AS ENUM (");
    for (int i = 0; i < PQntuples(res); i++) {
        sb_add(b, i ? ", " : "");
        sb_literal(b, rd->src, PQgetvalue(res, i, 0));
    }
    sb_add(b, ")");
    PQclear(res);
    return true;
}

/* Columns of TYPE_SQL, which domain_sql and composite_sql read too. */
enum { TY_KIND, TY_SCHEMA, TY_NAME, TY_IS_ARRAY, TY_ELEM, TY_BASE,
       TY_BASE_TYPE, TY_NOTNULL, TY_DEFAULT, TY_RELID, TY_RELKIND, TY_SYSTEM,
       TY_COLL_SCHEMA, TY_COLL_NAME };

static const char TYPE_SQL[] =
    "SELECT t.typtype, n.nspname, t.typname, t.typelem <> 0 AND t.typlen = -1,"
    "  t.typelem, t.typbasetype, format_type(t.typbasetype, t.typtypmod),"
    "  t.typnotnull, pg_get_expr(t.typdefaultbin, 0), t.typrelid, r.relkind,"
    "  n.nspname IN ('pg_catalog', 'information_schema'),"
    "  cn.nspname, co.collname "
    "FROM pg_type t "
    "JOIN pg_namespace n ON n.oid = t.typnamespace "
    "LEFT JOIN pg_class r ON r.oid = t.typrelid "
    "LEFT JOIN pg_type b ON b.oid = t.typbasetype "
    "LEFT JOIN pg_collation co ON co.oid = t.typcollation "
    "  AND t.typtype = 'd' AND t.typcollation <> b.typcollation "
    "LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace "
    "WHERE t.oid = $1";

/*
 * A domain: its base type first. A CHECK the source has NOT VALID waits
 * for the data, which may break it; CREATE DOMAIN cannot say NOT VALID.
 */
static bool domain_sql(reader *rd, const PGresult *t, sch_type *ty, strbuf *b)
{
    if (!need_type(rd, PQgetvalue(t, 0, TY_BASE)))
        return false;
    PGresult *res = rd_query(rd,
        "SELECT conname, pg_get_constraintdef(oid), convalidated "
        "FROM pg_constraint WHERE contypid = $1 AND contype = 'c' "
        "ORDER BY conname", 1, (const char *[]){ty->oid});
    if (!res)
        return false;
    sb_addf(b, " AS %s", PQgetvalue(t, 0, TY_BASE_TYPE));
    sb_collate(b, rd->src, t, 0, TY_COLL_SCHEMA);
    if (!PQgetisnull(t, 0, TY_DEFAULT))
        sb_addf(b, " DEFAULT %s", PQgetvalue(t, 0, TY_DEFAULT));
    if (is_true(t, 0, TY_NOTNULL))
        sb_add(b, " NOT NULL");
    for (int i = 0; i < PQntuples(res); i++) {
        strbuf c = {0};
        strbuf *into = is_true(res, i, 2) ? b : &c;
        if (into == &c) {
            sb_add(&c, "ALTER DOMAIN ");
            sb_qname(&c, rd->src, ty->schema, ty->name);
            sb_add(&c, " ADD");
        }
        sb_add(into, " CONSTRAINT ");
        sb_ident(into, rd->src, PQgetvalue(res, i, 0));
        sb_addf(into, " %s", PQgetvalue(res, i, 1));
        if (into == &c)
            rd->oom |= !sl_push(&ty->late, sb_take(&c));
    }
    PQclear(res);
    return true;
}

/* A composite type: the types of its attributes first. */
static bool composite_sql(reader *rd, const PGresult *t, strbuf *b)
{
    if (PQgetvalue(t, 0, TY_RELKIND)[0] != 'c') {
        set_err(rd->err, rd->errlen, "it is the row type of a table, "
                "which is not supported as a column type");
        return false;
    }
    const char *relid = PQgetvalue(t, 0, TY_RELID);
    PGresult *res = rd_query(rd,
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.atttypid,"
        "  cn.nspname, co.collname "
        "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "LEFT JOIN pg_collation co ON co.oid = a.attcollation "
        "  AND a.attcollation <> t.typcollation "
        "LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace "
        "WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum", 1, &relid);
    bool ok = res != NULL;
    sb_add(b, " AS (");
    for (int i = 0; ok && i < PQntuples(res); i++) {
        ok = need_type(rd, PQgetvalue(res, i, 2));
        sb_add(b, i ? ", " : "");
        sb_ident(b, rd->src, PQgetvalue(res, i, 0));
        sb_addf(b, " %s", PQgetvalue(res, i, 1));
        sb_collate(b, rd->src, res, i, 3);
    }
    sb_add(b, ")");
    PQclear(res);
    return ok;
}

static const char *type_kind(char k)
{
    switch (k) {
    case 'e': return "enum";
    case 'd': return "domain";
    case 'c': return "composite type";
    case 'r': return "range type";
    case 'm': return "multirange type";
    case 'p': return "pseudo-type";
    default: return "base type";
    }
}

/*
 * Adds a user-defined type after the types it is made of. Types cleave
 * cannot create (base types from extensions, ranges) are listed without a
 * statement: the target must have them already.
 */
static bool add_type(reader *rd, const char *oid, const PGresult *t)
{
    sch_type ty = {0};
    snprintf(ty.oid, sizeof ty.oid, "%s", oid);
    ty.schema = rd_dup(rd, PQgetvalue(t, 0, TY_SCHEMA));
    ty.name = rd_dup(rd, PQgetvalue(t, 0, TY_NAME));
    char kind = PQgetvalue(t, 0, TY_KIND)[0];
    ty.kind = type_kind(kind);
    if (rd->oom || !(ty.display = display_qname(ty.schema, ty.name))) {
        free(ty.schema);
        free(ty.name);
        rd->oom = true;
        return false;
    }
    strbuf b = {0};
    sb_add(&b, kind == 'd' ? "CREATE DOMAIN " : "CREATE TYPE ");
    sb_qname(&b, rd->src, ty.schema, ty.name);
    bool ok = kind == 'e' ? enum_sql(rd, oid, &b)
            : kind == 'd' ? domain_sql(rd, t, &ty, &b)
            : kind == 'c' ? composite_sql(rd, t, &b) : true;
    if (ok && (kind == 'e' || kind == 'd' || kind == 'c')) {
        ty.create_sql = rd_take(rd, &b);
        rd_schema(rd, ty.schema);
    }
    free(sb_take(&b));
    if (!ok)
        prefix_err(rd->err, rd->errlen, "%s %s", ty.kind, ty.display);
    else if (!grow((void **)&rd->p->types, &rd->p->captypes, rd->p->ntypes,
                   sizeof ty))
        rd->oom = true;
    if (!ok || rd->oom) {
        free(ty.schema);
        free(ty.name);
        free(ty.display);
        free(ty.create_sql);
        sl_free(&ty.late);
        return false;
    }
    rd->p->types[rd->p->ntypes++] = ty;
    return true;
}

/* Makes sure the type with this oid (through arrays) is in the plan. */
static bool need_type(reader *rd, const char *oid)
{
    if (sl_has(&rd->seen_types, oid))
        return true;
    if (!sl_push(&rd->seen_types, strdup(oid))) {
        rd->oom = true;
        return false;
    }
    PGresult *t = rd_query(rd, TYPE_SQL, 1, &oid);
    if (!t)
        return false;
    bool ok;
    if (PQntuples(t) != 1) {
        set_err(rd->err, rd->errlen, "type %s not found", oid);
        ok = false;
    } else if (is_true(t, 0, TY_SYSTEM))
        ok = true;
    else if (is_true(t, 0, TY_IS_ARRAY))
        ok = need_type(rd, PQgetvalue(t, 0, TY_ELEM));
    else
        ok = add_type(rd, oid, t);
    PQclear(t);
    return ok;
}

/* Types that only defaults, generated columns and CHECKs mention. */
static bool read_expression_types(reader *rd, sch_table *t)
{
    PGresult *res = rd_query(rd,
        "SELECT DISTINCT d.refobjid FROM pg_depend d "
        "WHERE d.refclassid = 'pg_type'::regclass AND ("
        "  (d.classid = 'pg_attrdef'::regclass AND d.objid IN"
        "    (SELECT oid FROM pg_attrdef WHERE adrelid = $1)) OR"
        "  (d.classid = 'pg_constraint'::regclass AND d.objid IN"
        "    (SELECT oid FROM pg_constraint WHERE conrelid = $1)))",
        1, (const char *[]){t->oid});
    bool ok = res != NULL;
    for (int i = 0; ok && i < PQntuples(res); i++)
        ok = need_type(rd, PQgetvalue(res, i, 0));
    PQclear(res);
    return ok;
}

/* ------------------------------------------------------------ sequences */

enum { SQ_OID, SQ_SCHEMA, SQ_NAME, SQ_TYPE, SQ_INCREMENT, SQ_MIN, SQ_MAX,
       SQ_START, SQ_CACHE, SQ_CYCLE, SQ_OWNER_KIND, SQ_OWNER, SQ_OWNER_COL };

/*
 * The sequences a table needs: its identity sequences, and every sequence
 * its defaults use (nextval('...'::regclass) leaves a dependency), with
 * the column that owns each, if any.
 */
static const char SEQUENCES_SQL[] =
    "SELECT s.seqrelid, n.nspname, c.relname, format_type(s.seqtypid, NULL),"
    "  s.seqincrement, s.seqmin, s.seqmax, s.seqstart, s.seqcache, s.seqcycle,"
    "  o.deptype, o.refobjid, o.attname "
    "FROM pg_sequence s "
    "JOIN pg_class c ON c.oid = s.seqrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "LEFT JOIN LATERAL (SELECT d.deptype, d.refobjid, a.attname"
    "  FROM pg_depend d JOIN pg_attribute a"
    "    ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid"
    "  WHERE d.classid = 'pg_class'::regclass AND d.objid = s.seqrelid"
    "    AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')"
    "  LIMIT 1) o ON true "
    "WHERE s.seqrelid IN ("
    "  SELECT d.refobjid FROM pg_attrdef ad JOIN pg_depend d"
    "    ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid"
    "    AND d.refclassid = 'pg_class'::regclass"
    "  WHERE ad.adrelid = $1 "
    "  UNION SELECT d.objid FROM pg_depend d"
    "  WHERE d.classid = 'pg_class'::regclass"
    "    AND d.refclassid = 'pg_class'::regclass"
    "    AND d.refobjid = $1 AND d.deptype = 'i') "
    "ORDER BY n.nspname, c.relname";

static bool seq_options(reader *rd, sch_seq *s, const PGresult *res, int r)
{
    for (int c = SQ_INCREMENT; c <= SQ_CACHE; c++)
        if (!is_integer(PQgetvalue(res, r, c))) {
            set_err(rd->err, rd->errlen, "sequence %s: unexpected parameter "
                    "'%s'", s->name, PQgetvalue(res, r, c));
            return false;
        }
    strbuf b = {0};
    sb_addf(&b, "INCREMENT BY %s MINVALUE %s MAXVALUE %s START WITH %s "
            "CACHE %s %s", PQgetvalue(res, r, SQ_INCREMENT),
            PQgetvalue(res, r, SQ_MIN), PQgetvalue(res, r, SQ_MAX),
            PQgetvalue(res, r, SQ_START), PQgetvalue(res, r, SQ_CACHE),
            is_true(res, r, SQ_CYCLE) ? "CYCLE" : "NO CYCLE");
    s->options = rd_take(rd, &b);
    return true;
}

/*
 * The value to give the target's sequence. Sequences are not
 * transactional, so this is the value now, at or past the snapshot's,
 * which is what a sequence must be to hand out no number twice.
 */
static bool seq_setval(reader *rd, sch_seq *s, const sch_table *t)
{
    strbuf b = {0};
    sb_add(&b, "SELECT last_value, is_called FROM ");
    sb_add(&b, s->qname);
    char *sql = rd_take(rd, &b);
    PGresult *res = sql ? rd_query(rd, sql, 0, NULL) : NULL;
    free(sql);
    if (!res)
        return false;
    if (PQntuples(res) != 1 || !is_integer(PQgetvalue(res, 0, 0))) {
        set_err(rd->err, rd->errlen, "sequence %s: no value", s->name);
        PQclear(res);
        return false;
    }
    /* An identity sequence may have another name in an existing table. */
    sb_add(&b, "SELECT setval(");
    if (s->owner_kind == 'i') {
        sb_add(&b, "pg_get_serial_sequence(");
        sb_literal(&b, rd->src, t->qname);
        sb_add(&b, ", ");
        sb_literal(&b, rd->src, s->owner_col);
        sb_add(&b, ")");
    } else
        sb_literal(&b, rd->src, s->qname);
    sb_addf(&b, "::regclass, %s, %s)", PQgetvalue(res, 0, 0),
            is_true(res, 0, 1) ? "true" : "false");
    s->setval_sql = rd_take(rd, &b);
    PQclear(res);
    return true;
}

static bool add_sequence(reader *rd, const sch_table *t, const PGresult *res,
                         int r)
{
    schema_plan *p = rd->p;
    for (size_t i = 0; i < p->nseqs; i++)
        if (strcmp(p->seqs[i].oid, PQgetvalue(res, r, SQ_OID)) == 0)
            return true;
    if (!grow((void **)&p->seqs, &p->capseqs, p->nseqs, sizeof *p->seqs)) {
        rd->oom = true;
        return false;
    }
    /* In the plan at once, so schema_free frees whatever fails below. */
    sch_seq *s = &p->seqs[p->nseqs++];
    snprintf(s->oid, sizeof s->oid, "%s", PQgetvalue(res, r, SQ_OID));
    s->schema = rd_dup(rd, PQgetvalue(res, r, SQ_SCHEMA));
    s->name = rd_dup(rd, PQgetvalue(res, r, SQ_NAME));
    if (!PQgetisnull(res, r, SQ_OWNER_KIND)) {
        s->owner_kind = PQgetvalue(res, r, SQ_OWNER_KIND)[0];
        snprintf(s->owner_oid, sizeof s->owner_oid, "%s",
                 PQgetvalue(res, r, SQ_OWNER));
        s->owner_col = rd_dup(rd, PQgetvalue(res, r, SQ_OWNER_COL));
    }
    /* Another table's identity sequence is, for this one, a sequence. */
    if (s->owner_kind == 'i' && strcmp(s->owner_oid, t->oid) != 0)
        s->owner_kind = 0;
    if (rd->oom)
        return false;
    strbuf b = {0};
    sb_qname(&b, rd->src, s->schema, s->name);
    s->qname = rd_take(rd, &b);
    if (!s->qname || !seq_options(rd, s, res, r) || rd->oom)
        return false;
    if (s->owner_kind != 'i') {
        sb_add(&b, "CREATE SEQUENCE ");
        sb_add(&b, s->qname);
        sb_addf(&b, " AS %s %s", PQgetvalue(res, r, SQ_TYPE), s->options);
        s->create_sql = rd_take(rd, &b);
    }
    rd_schema(rd, s->schema);
    return seq_setval(rd, s, t);
}

static bool read_sequences(reader *rd, sch_table *t)
{
    PGresult *res = rd_query(rd, SEQUENCES_SQL, 1, (const char *[]){t->oid});
    bool ok = res != NULL;
    for (int i = 0; ok && i < PQntuples(res); i++)
        ok = add_sequence(rd, t, res, i);
    PQclear(res);
    return ok;
}

static const sch_seq *identity_seq(const schema_plan *p, const sch_table *t,
                                   const char *col)
{
    for (size_t i = 0; i < p->nseqs; i++) {
        const sch_seq *s = &p->seqs[i];
        if (s->owner_kind == 'i' && strcmp(s->owner_oid, t->oid) == 0 &&
            strcmp(s->owner_col, col) == 0)
            return s;
    }
    return NULL;
}

/*
 * ALTER SEQUENCE ... OWNED BY, where the owning column is in one of the
 * plan's tables: run once that table is created. A sequence owned
 * elsewhere is created unowned.
 */
static void plan_owned_by(reader *rd)
{
    schema_plan *p = rd->p;
    for (size_t i = 0; i < p->nseqs; i++) {
        const sch_seq *s = &p->seqs[i];
        for (size_t k = 0; s->owner_kind == 'a' && k < p->ntables; k++) {
            sch_table *t = &p->tables[k];
            if (strcmp(t->oid, s->owner_oid) != 0)
                continue;
            strbuf b = {0};
            sb_addf(&b, "ALTER SEQUENCE %s OWNED BY %s.", s->qname, t->qname);
            sb_ident(&b, rd->src, s->owner_col);
            rd->oom |= !sl_push(&t->after_create, sb_take(&b));
        }
    }
}

/* ------------------------------------------------------------ tables */

enum { TB_OID, TB_KIND, TB_REPLIDENT, TB_BYTES, TB_ROWS, TB_COMMENT,
       TB_PARTKEY };

/*
 * A partitioned table's size and rows are its partitions' (a plain
 * table has no partition tree: it is its own leaf).
 */
static const char RELATION_SQL[] =
    "SELECT c.oid, c.relkind, c.relreplident,"
    "  (SELECT sum(pg_table_size(p.oid))::bigint FROM pg_class p"
    "   WHERE p.oid IN (SELECT relid FROM pg_partition_tree(c.oid)"
    "   UNION SELECT c.oid)),"
    "  (SELECT CASE WHEN min(p.reltuples) < 0 THEN -1"
    "   ELSE sum(p.reltuples)::bigint END FROM pg_class p"
    "   WHERE p.relkind <> 'p' AND p.oid IN (SELECT relid"
    "   FROM pg_partition_tree(c.oid) UNION SELECT c.oid)),"
    "  obj_description(c.oid, 'pg_class'),"
    "  CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = $1 AND c.relname = $2";

static bool read_relation(reader *rd, sch_table *t, char *replident)
{
    PGresult *res = rd_query(rd, RELATION_SQL, 2,
                             (const char *[]){t->name.schema, t->name.name});
    if (!res)
        return false;
    bool ok = false;
    char kind = PQntuples(res) == 1 ? PQgetvalue(res, 0, TB_KIND)[0] : 0;
    if (!kind)
        set_err(rd->err, rd->errlen, "does not exist in the source");
    else if (kind != 'r' && kind != 'p')
        set_err(rd->err, rd->errlen, "is not a table in the source (relkind "
                "'%c')", kind);
    else
        ok = true;
    if (ok) {
        snprintf(t->oid, sizeof t->oid, "%s", PQgetvalue(res, 0, TB_OID));
        *replident = PQgetvalue(res, 0, TB_REPLIDENT)[0];
        t->bytes = strtoll(PQgetvalue(res, 0, TB_BYTES), NULL, 10);
        t->rows = PQgetisnull(res, 0, TB_ROWS)
                      ? -1 : strtoll(PQgetvalue(res, 0, TB_ROWS), NULL, 10);
        if (kind == 'p')
            t->partition_by = rd_dup(rd, PQgetvalue(res, 0, TB_PARTKEY));
        strbuf b = {0};
        sb_addf(&b, "COMMENT ON TABLE %s IS ", t->qname);
        if (PQgetisnull(res, 0, TB_COMMENT))
            sb_add(&b, "NULL");
        else
            sb_literal(&b, rd->src, PQgetvalue(res, 0, TB_COMMENT));
        t->comment_sql = rd_take(rd, &b);
    }
    PQclear(res);
    return ok;
}

enum { CO_NAME, CO_TYPE, CO_NOTNULL, CO_IDENTITY, CO_GENERATED, CO_DEFAULT,
       CO_TYPID, CO_COLL_SCHEMA, CO_COLL_NAME };

static const char COLUMNS_SQL[] =
    "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,"
    "  a.attidentity, a.attgenerated, pg_get_expr(d.adbin, d.adrelid),"
    "  a.atttypid, cn.nspname, co.collname "
    "FROM pg_attribute a "
    "JOIN pg_type t ON t.oid = a.atttypid "
    "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
    "LEFT JOIN pg_collation co ON co.oid = a.attcollation "
    "  AND a.attcollation <> t.typcollation "
    "LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace "
    "WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped "
    "ORDER BY a.attnum";

/*
 * A VIRTUAL generated column (PostgreSQL 18): where the keyword goes is
 * kept, so that a target without them gets the same column STORED.
 */
static void virtual_def(reader *rd, sch_table *t, const char *expr,
                        strbuf *b)
{
    sb_addf(b, " GENERATED ALWAYS AS (%s) ", expr);
    if (!grow((void **)&t->virtual_at, &t->capvirtual, t->nvirtual,
              sizeof *t->virtual_at))
        rd->oom = true;
    else
        t->virtual_at[t->nvirtual++] = b->len;
    sb_add(b, "VIRTUAL");
}

/* One column of CREATE TABLE. */
static void column_def(reader *rd, sch_table *t, const PGresult *res, int r,
                       strbuf *b)
{
    const char *name = PQgetvalue(res, r, CO_NAME);
    char identity = PQgetvalue(res, r, CO_IDENTITY)[0];
    char generated = PQgetvalue(res, r, CO_GENERATED)[0];
    sb_ident(b, rd->src, name);
    sb_addf(b, " %s", PQgetvalue(res, r, CO_TYPE));
    sb_collate(b, rd->src, res, r, CO_COLL_SCHEMA);
    if (generated == 'v') {
        virtual_def(rd, t, PQgetvalue(res, r, CO_DEFAULT), b);
    } else if (generated == 's') {
        sb_addf(b, " GENERATED ALWAYS AS (%s) STORED",
                PQgetvalue(res, r, CO_DEFAULT));
    } else if (identity) {
        const sch_seq *s = identity_seq(rd->p, t, name);
        sb_addf(b, " GENERATED %s AS IDENTITY",
                identity == 'a' ? "ALWAYS" : "BY DEFAULT");
        if (s)
            sb_addf(b, " (SEQUENCE NAME %s %s)", s->qname, s->options);
    } else if (!PQgetisnull(res, r, CO_DEFAULT))
        sb_addf(b, " DEFAULT %s", PQgetvalue(res, r, CO_DEFAULT));
    if (is_true(res, r, CO_NOTNULL))
        sb_add(b, " NOT NULL");
}

/* The columns: into CREATE TABLE, the shape, and COPY's column list. */
static bool read_columns(reader *rd, sch_table *t, strbuf *create)
{
    PGresult *res = rd_query(rd, COLUMNS_SQL, 1, (const char *[]){t->oid});
    if (!res)
        return false;
    bool ok = true;
    strbuf copy = {0};
    for (int i = 0; ok && i < PQntuples(res); i++) {
        ok = need_type(rd, PQgetvalue(res, i, CO_TYPID));
        if (ok && !grow((void **)&t->cols, &t->capcols, t->ncols,
                        sizeof *t->cols))
            ok = !(rd->oom = true);
        if (!ok)
            break;
        sch_column *c = &t->cols[t->ncols++];
        c->name = rd_dup(rd, PQgetvalue(res, i, CO_NAME));
        c->type = rd_dup(rd, PQgetvalue(res, i, CO_TYPE));
        c->notnull = is_true(res, i, CO_NOTNULL);
        c->generated = PQgetvalue(res, i, CO_GENERATED)[0] != '\0';
        sb_item(create);
        column_def(rd, t, res, i, create);
        if (!c->generated) {
            sb_add(&copy, copy.len ? ", " : "");
            sb_ident(&copy, rd->src, c->name);
        }
    }
    t->copy_columns = rd_take(rd, &copy);
    PQclear(res);
    return ok;
}

enum { CN_NAME, CN_TYPE, CN_VALID, CN_DEF, CN_REF_SCHEMA, CN_REF_NAME,
       CN_FK_SQL };

/*
 * The primary key first (the other keys and the replica identity may lean
 * on it), NOT VALID CHECKs last. A foreign key's statement is built by the
 * server (format's %I quotes only where needed), so the log shows what a
 * person would type; the server's quoting is as safe as libpq's.
 */
static const char CONSTRAINTS_SQL[] =
    "SELECT c.conname, c.contype, c.convalidated, pg_get_constraintdef(c.oid),"
    "  fn.nspname, fc.relname,"
    "  format('ALTER TABLE %I.%I ADD CONSTRAINT %I %s', n.nspname, r.relname,"
    "         c.conname, pg_get_constraintdef(c.oid)) "
    "FROM pg_constraint c "
    "JOIN pg_class r ON r.oid = c.conrelid "
    "JOIN pg_namespace n ON n.oid = r.relnamespace "
    "LEFT JOIN pg_class fc ON fc.oid = c.confrelid "
    "LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace "
    "WHERE c.conrelid = $1 AND c.contype IN ('c', 'p', 'u', 'x', 'f') "
    "ORDER BY CASE c.contype WHEN 'p' THEN 0 WHEN 'c' THEN 2 ELSE 1 END,"
    "  c.conname";

static bool add_fk(reader *rd, sch_table *t, const PGresult *res, int r,
                   const cfg_service *svc)
{
    if (!grow((void **)&t->fks, &t->capfks, t->nfks, sizeof *t->fks)) {
        rd->oom = true;
        return false;
    }
    sch_fk *fk = &t->fks[t->nfks++];
    const char *ref_schema = PQgetvalue(res, r, CN_REF_SCHEMA);
    const char *ref_name = PQgetvalue(res, r, CN_REF_NAME);
    const cfg_service *owner = cfg_owner(rd->config, ref_schema, ref_name);
    fk->name = rd_dup(rd, PQgetvalue(res, r, CN_NAME));
    fk->sql = rd_dup(rd, PQgetvalue(res, r, CN_FK_SQL));
    fk->references = display_qname(ref_schema, ref_name);
    fk->owner = owner ? rd_dup(rd, owner->name) : NULL;
    fk->in_service = owner && strcmp(owner->name, svc->name) == 0;
    rd->oom |= !fk->references;
    return true;
}

/* "ALTER TABLE t ADD CONSTRAINT name def", for after the data. */
static void add_constraint(reader *rd, sch_table *t, const PGresult *res,
                           int r)
{
    strbuf b = {0};
    sb_addf(&b, "ALTER TABLE %s ADD CONSTRAINT ", t->qname);
    sb_ident(&b, rd->src, PQgetvalue(res, r, CN_NAME));
    sb_addf(&b, " %s", PQgetvalue(res, r, CN_DEF));
    rd->oom |= !sl_push(&t->after_data, sb_take(&b));
}

/*
 * Validated CHECKs go into CREATE TABLE; NOT VALID ones wait for the
 * data, which may break them; keys wait because indexes build faster
 * over rows already there.
 */
static bool read_constraints(reader *rd, sch_table *t, strbuf *create,
                             const cfg_service *svc)
{
    PGresult *res = rd_query(rd, CONSTRAINTS_SQL, 1, (const char *[]){t->oid});
    if (!res)
        return false;
    bool ok = true;
    for (int i = 0; ok && i < PQntuples(res); i++) {
        char type = PQgetvalue(res, i, CN_TYPE)[0];
        if (type == 'f')
            ok = add_fk(rd, t, res, i, svc);
        else if (type != 'c' || !is_true(res, i, CN_VALID))
            add_constraint(rd, t, res, i);
        else {
            sb_item(create);
            sb_add(create, "CONSTRAINT ");
            sb_ident(create, rd->src, PQgetvalue(res, i, CN_NAME));
            sb_addf(create, " %s", PQgetvalue(res, i, CN_DEF));
        }
    }
    PQclear(res);
    return ok;
}

/*
 * A partitioned table's index prints as "CREATE INDEX name ON ONLY t",
 * the first step of pg_dump's, which then attaches each partition's
 * index: without ONLY it is the whole tree's in one statement. The ON
 * ONLY is cut where it stands, right after the name (which a name
 * holding those words cannot fool).
 */
static const char INDEXES_SQL[] =
    "SELECT CASE WHEN ic.relkind = 'I' AND substr(x.def, length(x.head) + 1,"
    "    9) = ' ON ONLY ' THEN x.head || ' ON ' || substr(x.def,"
    "    length(x.head) + 10) ELSE x.def END,"
    "  c.oid IS NOT NULL, ic.relname, i.indisreplident "
    "FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid "
    "CROSS JOIN LATERAL (SELECT pg_get_indexdef(i.indexrelid) AS def,"
    "  'CREATE ' || CASE WHEN i.indisunique THEN 'UNIQUE ' ELSE '' END ||"
    "  'INDEX ' || quote_ident(ic.relname) AS head) x "
    "LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid "
    "  AND c.conrelid = i.indrelid AND c.contype IN ('p', 'u', 'x') "
    "WHERE i.indrelid = $1 AND i.indisvalid ORDER BY ic.relname";

/*
 * Indexes that no constraint made (those come with their constraint),
 * then the replica identity, which may name one of the indexes.
 */
static bool read_indexes(reader *rd, sch_table *t, char replident)
{
    PGresult *res = rd_query(rd, INDEXES_SQL, 1, (const char *[]){t->oid});
    if (!res)
        return false;
    const char *ri_index = NULL;
    for (int i = 0; i < PQntuples(res); i++) {
        if (!is_true(res, i, 1))
            rd->oom |= !sl_push(&t->after_data,
                                rd_dup(rd, PQgetvalue(res, i, 0)));
        if (is_true(res, i, 3))
            ri_index = PQgetvalue(res, i, 2);
    }
    strbuf b = {0};
    sb_addf(&b, "ALTER TABLE %s REPLICA IDENTITY ", t->qname);
    if (replident == 'f')
        sb_add(&b, "FULL");
    else if (replident == 'n')
        sb_add(&b, "NOTHING");
    else if (replident == 'i' && ri_index) {
        sb_add(&b, "USING INDEX ");
        sb_ident(&b, rd->src, ri_index);
    }
    char *sql = sb_take(&b);
    if (replident == 'f' || replident == 'n' || (replident == 'i' && ri_index))
        rd->oom |= !sl_push(&t->after_data, sql);
    else
        free(sql);
    PQclear(res);
    return true;
}

enum { PA_SCHEMA, PA_NAME, PA_PARENT_SCHEMA, PA_PARENT, PA_KIND, PA_BOUND,
       PA_KEY };

/* Every partition under the table, each after its parent. */
static const char PARTITIONS_SQL[] =
    "SELECT n.nspname, c.relname, pn.nspname, pc.relname, c.relkind,"
    "  pg_get_expr(c.relpartbound, c.oid),"
    "  CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END "
    "FROM pg_partition_tree($1::oid::regclass) t "
    "JOIN pg_class c ON c.oid = t.relid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "JOIN pg_class pc ON pc.oid = t.parentrelid "
    "JOIN pg_namespace pn ON pn.oid = pc.relnamespace "
    "WHERE t.level > 0 ORDER BY t.level, n.nspname, c.relname";

/*
 * A partitioned table's partitions, made right after it: as PARTITION OF
 * they take its columns, CHECKs and, later, its keys and indexes. What
 * is a partition's own (an extra index, say) is not copied.
 */
static bool read_partitions(reader *rd, sch_table *t)
{
    PGresult *res = rd_query(rd, PARTITIONS_SQL, 1, (const char *[]){t->oid});
    bool ok = res != NULL;
    for (int i = 0; ok && i < PQntuples(res); i++) {
        const char *schema = PQgetvalue(res, i, PA_SCHEMA);
        char kind = PQgetvalue(res, i, PA_KIND)[0];
        if (kind != 'r' && kind != 'p') {
            set_err(rd->err, rd->errlen, "has partition %s.%s, which is not "
                    "a table (relkind '%c') and which cleave cannot create",
                    schema, PQgetvalue(res, i, PA_NAME), kind);
            ok = false;
            break;
        }
        rd_schema(rd, schema);
        strbuf b = {0};
        sb_add(&b, "CREATE TABLE ");
        sb_qname(&b, rd->src, schema, PQgetvalue(res, i, PA_NAME));
        sb_add(&b, " PARTITION OF ");
        sb_qname(&b, rd->src, PQgetvalue(res, i, PA_PARENT_SCHEMA),
                 PQgetvalue(res, i, PA_PARENT));
        sb_addf(&b, " %s", PQgetvalue(res, i, PA_BOUND));
        if (kind == 'p')
            sb_addf(&b, " PARTITION BY %s", PQgetvalue(res, i, PA_KEY));
        rd->oom |= !sl_push(&t->after_create, rd_take(rd, &b));
    }
    PQclear(res);
    return ok;
}

static bool read_table(reader *rd, sch_table *t, const cfg_service *svc)
{
    char replident = 'd';
    strbuf b = {0};
    sb_qname(&b, rd->src, t->name.schema, t->name.name);
    t->qname = rd_take(rd, &b);
    rd_schema(rd, t->name.schema);
    bool ok = !rd->oom && read_relation(rd, t, &replident) &&
              read_sequences(rd, t) && read_expression_types(rd, t);
    sb_addf(&b, "CREATE TABLE %s (", t->qname);
    ok = ok && read_columns(rd, t, &b) && read_constraints(rd, t, &b, svc);
    sb_add(&b, ")");
    if (t->partition_by)
        sb_addf(&b, " PARTITION BY %s", t->partition_by);
    t->create_sql = rd_take(rd, &b);
    ok = ok && (!t->partition_by || read_partitions(rd, t)) &&
         read_indexes(rd, t, replident);
    if (rd->oom) {
        set_err(rd->err, rd->errlen, "out of memory");
        ok = false;
    }
    if (!ok)
        prefix_err(rd->err, rd->errlen, "table %s", t->display);
    return ok;
}

/*
 * search_path = pg_catalog makes the deparsers qualify every name. In the
 * caller's transaction (the copy's snapshot) the reads run in a savepoint
 * rolled back afterwards, which puts the search_path back and keeps the
 * transaction usable when a read fails.
 */
static bool src_begin(PGconn *src, bool *own, char *err, size_t errlen)
{
    PGTransactionStatusType st = PQtransactionStatus(src);
    if (st != PQTRANS_IDLE && st != PQTRANS_INTRANS) {
        set_err(err, errlen, "the source connection is busy or its "
                "transaction has failed");
        return false;
    }
    *own = st == PQTRANS_IDLE;
    if (!exec(src, *own ? "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
                        : "SAVEPOINT " SAVEPOINT, err, errlen))
        return false;
    if (exec(src, "SET LOCAL search_path = pg_catalog", err, errlen))
        return true;
    PQclear(PQexec(src, *own ? "ROLLBACK"
                             : "ROLLBACK TO SAVEPOINT " SAVEPOINT "; "
                               "RELEASE SAVEPOINT " SAVEPOINT));
    return false;
}

/* Ends the reads; keeps an earlier error rather than this one. */
static bool src_end(PGconn *src, bool own, bool ok, char *err, size_t errlen)
{
    char other[256];
    char *e = ok ? err : other;
    size_t elen = ok ? errlen : sizeof other;
    if (own)
        return exec(src, "ROLLBACK", e, elen) && ok;
    return exec(src, "ROLLBACK TO SAVEPOINT " SAVEPOINT, e, elen) &&
           exec(src, "RELEASE SAVEPOINT " SAVEPOINT, e, elen) && ok;
}

schema_plan *schema_read(PGconn *src, const cfg *config,
                         const cfg_service *svc, char *err, size_t errlen)
{
    err[0] = '\0';
    schema_plan *p = plan_new(svc);
    if (!p) {
        set_err(err, errlen, "service %s: out of memory", svc->name);
        return NULL;
    }
    reader rd = {.src = src, .config = config, .p = p, .err = err,
                 .errlen = errlen};
    bool own = false;
    bool ok = src_begin(src, &own, err, errlen);
    if (ok) {
        for (size_t i = 0; ok && i < p->ntables; i++)
            ok = read_table(&rd, &p->tables[i], svc);
        if (ok)
            plan_owned_by(&rd);
        if (ok && rd.oom) {
            set_err(err, errlen, "out of memory");
            ok = false;
        }
        ok = src_end(src, own, ok, err, errlen);
    }
    sl_free(&rd.seen_types);
    if (!ok) {
        prefix_err(err, errlen, "service %s", svc->name);
        schema_free(p);
        return NULL;
    }
    return p;
}

/* ------------------------------------------------------------ target */

/*
 * Our own transaction, with the search_path the definitions were printed
 * under, and without NOTICEs (libpq would print them on stderr).
 */
static bool tgt_begin(PGconn *tgt, const schema_plan *p, char *err,
                      size_t errlen)
{
    if (PQtransactionStatus(tgt) != PQTRANS_IDLE) {
        set_err(err, errlen, "service %s: the target connection is busy or "
                "already in a transaction", p->service);
        return false;
    }
    if (exec(tgt, "BEGIN", err, errlen) &&
        exec(tgt, "SET LOCAL search_path = pg_catalog", err, errlen) &&
        exec(tgt, "SET LOCAL client_min_messages = warning", err, errlen))
        return true;
    PQclear(PQexec(tgt, "ROLLBACK"));
    prefix_err(err, errlen, "service %s", p->service);
    return false;
}

/* Commits when all went well, else rolls back, keeping the first error. */
static bool tgt_end(PGconn *tgt, const schema_plan *p, bool ok, char *err,
                    size_t errlen)
{
    if (ok)
        ok = exec(tgt, "COMMIT", err, errlen);
    else
        PQclear(PQexec(tgt, "ROLLBACK"));
    if (!ok)
        prefix_err(err, errlen, "service %s", p->service);
    return ok;
}

/* Whether the target has it; a query is needed with one or two params. */
static bool tgt_exists(PGconn *tgt, const char *sql, const char *a,
                       const char *b, bool *found, char *err, size_t errlen)
{
    PGresult *res = query(tgt, sql, b ? 2 : 1, (const char *[]){a, b}, err,
                          errlen);
    if (!res)
        return false;
    *found = PQntuples(res) > 0;
    PQclear(res);
    return true;
}

/*
 * Creating only what is missing (rather than IF NOT EXISTS) also works
 * for a role without CREATE rights where everything is there already.
 */
static bool create_schemas(PGconn *tgt, const schema_plan *p, char *err,
                           size_t errlen)
{
    for (size_t i = 0; i < p->schemas.n; i++) {
        const char *name = p->schemas.v[i];
        bool found;
        if (!tgt_exists(tgt, "SELECT 1 FROM pg_namespace WHERE nspname = $1",
                        name, NULL, &found, err, errlen))
            return false;
        if (found)
            continue;
        strbuf b = {0};
        sb_add(&b, "CREATE SCHEMA ");
        sb_ident(&b, tgt, name);
        char *sql = sb_take(&b);
        bool ok = sql && exec(tgt, sql, err, errlen);
        if (!sql)
            set_err(err, errlen, "out of memory");
        free(sql);
        if (!ok) {
            prefix_err(err, errlen, "schema %s", name);
            return false;
        }
    }
    return true;
}

/* Types in dependency order; one that exists by name is reused as it is. */
static bool create_types(PGconn *tgt, schema_plan *p, char *err,
                         size_t errlen)
{
    for (size_t i = 0; i < p->ntypes; i++) {
        sch_type *ty = &p->types[i];
        bool found;
        ty->created = false;
        if (!tgt_exists(tgt,
                "SELECT 1 FROM pg_type t JOIN pg_namespace n "
                "ON n.oid = t.typnamespace WHERE n.nspname = $1 "
                "AND t.typname = $2", ty->schema, ty->name, &found, err,
                errlen))
            return false;
        if (found)
            continue;
        if (!ty->create_sql) {
            set_err(err, errlen, "%s %s does not exist in the target and "
                    "cleave cannot create it: create it first (with its "
                    "extension, say)", ty->kind, ty->display);
            return false;
        }
        if (!exec(tgt, ty->create_sql, err, errlen)) {
            prefix_err(err, errlen, "%s %s", ty->kind, ty->display);
            return false;
        }
        ty->created = true;
    }
    return true;
}

static bool create_sequences(PGconn *tgt, const schema_plan *p, char *err,
                             size_t errlen)
{
    for (size_t i = 0; i < p->nseqs; i++) {
        const sch_seq *s = &p->seqs[i];
        bool found;
        if (!s->create_sql)
            continue;
        if (!tgt_exists(tgt,
                "SELECT 1 FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE n.nspname = $1 "
                "AND c.relname = $2 AND c.relkind = 'S'",
                s->schema, s->name, &found, err, errlen))
            return false;
        if (!found && !exec(tgt, s->create_sql, err, errlen)) {
            prefix_err(err, errlen, "sequence %s", s->qname);
            return false;
        }
    }
    return true;
}

static bool set_mark(PGconn *tgt, const sch_table *t, const char *mark,
                     char *err, size_t errlen)
{
    strbuf b = {0};
    sb_addf(&b, "COMMENT ON TABLE %s IS '%s'", t->qname, mark);
    char *sql = sb_take(&b);
    if (!sql) {
        set_err(err, errlen, "out of memory");
        return false;
    }
    bool ok = exec(tgt, sql, err, errlen);
    free(sql);
    return ok;
}

/*
 * CREATE TABLE for this target: before PostgreSQL 18 a VIRTUAL generated
 * column becomes STORED, which reads the same (the same expression) and
 * is never written by cleave either. NULL when out of memory.
 */
static char *create_sql_for(PGconn *tgt, const sch_table *t,
                            const schema_plan *p)
{
    char *sql = strdup(t->create_sql);
    if (!sql || !t->nvirtual || PQserverVersion(tgt) >= 180000)
        return sql;
    /* Same length, so the places kept stay right: "STORED " for "VIRTUAL". */
    for (size_t i = 0; i < t->nvirtual; i++)
        memcpy(sql + t->virtual_at[i], "STORED ", 7);
    log_info("event=virtual_columns_stored service=%s table=%s columns=%zu "
             "target_version=%d", p->service, t->display, t->nvirtual,
             PQserverVersion(tgt) / 10000);
    return sql;
}

static bool create_table(PGconn *tgt, const schema_plan *p, sch_table *t,
                         schema_outcome *out, char *err, size_t errlen)
{
    char *sql = create_sql_for(tgt, t, p);
    bool created = sql && exec(tgt, sql, err, errlen);
    if (!sql)
        set_err(err, errlen, "out of memory");
    free(sql);
    if (!created ||
        !exec_all(tgt, &t->after_create, err, errlen) ||
        !set_mark(tgt, t, MARK_KEYS, err, errlen)) {
        prefix_err(err, errlen, "table %s: cannot create it", t->display);
        return false;
    }
    t->build = BUILD_KEYS;
    *out = SCHEMA_CREATED;
    return true;
}

static void quoted(strbuf *b, const char *name)
{
    sb_display(b, name, true);
}

static int find_column(const PGresult *res, const char *name)
{
    for (int r = 0; r < PQntuples(res); r++)
        if (strcmp(PQgetvalue(res, r, 0), name) == 0)
            return r;
    return -1;
}

static bool source_has(const sch_table *t, const char *name)
{
    for (size_t i = 0; i < t->ncols; i++)
        if (strcmp(t->cols[i].name, name) == 0)
            return true;
    return false;
}

/* How the target's version of a source column differs, if it does. */
static void column_diff(const sch_column *c, const PGresult *res, strbuf *d)
{
    int r = find_column(res, c->name);
    bool notnull = r >= 0 && is_true(res, r, 2);
    bool generated = r >= 0 && PQgetvalue(res, r, 3)[0] != '\0';
    if (r >= 0 && strcmp(c->type, PQgetvalue(res, r, 1)) == 0 &&
        c->notnull == notnull && c->generated == generated)
        return;
    sb_add(d, "column ");
    quoted(d, c->name);
    if (r < 0)
        sb_add(d, " is missing in the target");
    else if (strcmp(c->type, PQgetvalue(res, r, 1)) != 0)
        sb_addf(d, " is %s in the source, %s in the target", c->type,
                PQgetvalue(res, r, 1));
    else if (c->notnull != notnull)
        sb_addf(d, " is %s in the source, %s in the target",
                c->notnull ? "NOT NULL" : "nullable",
                notnull ? "NOT NULL" : "nullable");
    else
        sb_addf(d, " is %sgenerated in the source, %sgenerated in the target",
                c->generated ? "" : "not ", generated ? "" : "not ");
}

/* The first difference between the source's columns and the target's. */
static void shape_diff(const sch_table *t, const PGresult *res, strbuf *d)
{
    for (size_t i = 0; i < t->ncols && !d->len; i++)
        column_diff(&t->cols[i], res, d);
    for (int r = 0; r < PQntuples(res) && !d->len; r++)
        if (!source_has(t, PQgetvalue(res, r, 0))) {
            sb_add(d, "column ");
            quoted(d, PQgetvalue(res, r, 0));
            sb_add(d, " exists only in the target");
        }
}

static bool same_shape(PGconn *tgt, const sch_table *t, const char *oid,
                       char *err, size_t errlen)
{
    PGresult *res = query(tgt,
        "SELECT attname, format_type(atttypid, atttypmod), attnotnull,"
        "  attgenerated FROM pg_attribute "
        "WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped "
        "ORDER BY attnum", 1, &oid, err, errlen);
    if (!res)
        return false;
    strbuf d = {0};
    shape_diff(t, res, &d);
    PQclear(res);
    char *diff = sb_take(&d);
    bool same = diff && !diff[0];
    if (!same)
        set_err(err, errlen, "table %s exists in the target with another "
                "shape: %s", t->display, diff ? diff : "(out of memory)");
    free(diff);
    return same;
}

/* A table that exists: the same shape, and whether it is one of ours. */
static bool adopt_table(PGconn *tgt, sch_table *t, const PGresult *found,
                        schema_outcome *out, char *err, size_t errlen)
{
    char want = t->partition_by ? 'p' : 'r';
    if (PQgetvalue(found, 0, 1)[0] != want) {
        set_err(err, errlen, "table %s: something else than a %stable has its "
                "name in the target (relkind '%s')", t->display,
                t->partition_by ? "partitioned " : "", PQgetvalue(found, 0, 1));
        return false;
    }
    if (!same_shape(tgt, t, PQgetvalue(found, 0, 0), err, errlen))
        return false;
    strbuf b = {0};
    sb_addf(&b, "SELECT EXISTS (SELECT 1 FROM %s)", t->qname);
    char *sql = sb_take(&b);
    PGresult *res = sql ? query(tgt, sql, 0, NULL, err, errlen) : NULL;
    free(sql);
    if (!res) {
        prefix_err(err, errlen, "table %s", t->display);
        return false;
    }
    *out = is_true(res, 0, 0) ? SCHEMA_EXISTS_ROWS : SCHEMA_EXISTS_EMPTY;
    PQclear(res);
    const char *mark = PQgetisnull(found, 0, 2) ? "" : PQgetvalue(found, 0, 2);
    t->build = strcmp(mark, MARK_KEYS) == 0 ? BUILD_KEYS
             : strcmp(mark, MARK_FKS) == 0 ? BUILD_FKS : BUILD_NONE;
    return true;
}

static bool prepare_table(PGconn *tgt, const schema_plan *p, sch_table *t,
                          schema_outcome *out, char *err, size_t errlen)
{
    PGresult *res = query(tgt,
        "SELECT c.oid, c.relkind, obj_description(c.oid, 'pg_class') "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relname = $2",
        2, (const char *[]){t->name.schema, t->name.name}, err, errlen);
    if (!res)
        return false;
    bool ok = PQntuples(res) == 0 ? create_table(tgt, p, t, out, err, errlen)
                                  : adopt_table(tgt, t, res, out, err, errlen);
    PQclear(res);
    return ok;
}

bool schema_prepare_target(PGconn *tgt, schema_plan *p,
                           schema_outcome *outcome, char *err, size_t errlen)
{
    for (size_t i = 0; i < p->ntables; i++)
        p->tables[i].build = BUILD_NONE;
    if (!tgt_begin(tgt, p, err, errlen))
        return false;
    bool ok = create_schemas(tgt, p, err, errlen) &&
              create_types(tgt, p, err, errlen) &&
              create_sequences(tgt, p, err, errlen);
    for (size_t i = 0; ok && i < p->ntables; i++)
        ok = prepare_table(tgt, p, &p->tables[i], &outcome[i], err, errlen);
    ok = tgt_end(tgt, p, ok, err, errlen);
    for (size_t i = 0; !ok && i < p->ntables; i++)
        p->tables[i].build = BUILD_NONE;
    for (size_t i = 0; !ok && i < p->ntypes; i++)
        p->types[i].created = false;
    return ok;
}

bool schema_finish_table(PGconn *tgt, const schema_plan *p, size_t i,
                         char *err, size_t errlen)
{
    const sch_table *t = &p->tables[i];
    if (t->build != BUILD_KEYS)
        return true;
    if (!tgt_begin(tgt, p, err, errlen))
        return false;
    bool ok = exec_all(tgt, &t->after_data, err, errlen) &&
              set_mark(tgt, t, MARK_FKS, err, errlen);
    if (!ok)
        prefix_err(err, errlen, "table %s", t->display);
    return tgt_end(tgt, p, ok, err, errlen);
}

/* A log field's value: bare when it can be, else quoted with \ escapes. */
static char *log_value(const char *v)
{
    strbuf b = {0};
    if (*v && !strpbrk(v, " \"\\=\t\n")) {
        sb_add(&b, v);
        return sb_take(&b);
    }
    sb_add(&b, "\"");
    for (; *v; v++) {
        if (*v == '"' || *v == '\\')
            sb_add(&b, "\\");
        sb_addn(&b, *v == '\n' ? " " : v, 1);
    }
    sb_add(&b, "\"");
    return sb_take(&b);
}

static void log_skipped(const schema_plan *p, const sch_table *t,
                        const sch_fk *fk)
{
    char *table = log_value(t->display), *name = log_value(fk->name);
    char *refs = log_value(fk->references), *sql = log_value(fk->sql);
    char *owner = log_value(fk->owner ? fk->owner : "none");
    log_info("event=foreign_key_skipped service=%s table=%s constraint=%s "
             "references=%s owner=%s statement=%s", p->service,
             table ? table : "?", name ? name : "?", refs ? refs : "?",
             owner ? owner : "?", sql ? sql : "?");
    free(table);
    free(name);
    free(refs);
    free(sql);
    free(owner);
}

/* What validates a key made NOT VALID, said once in the log. */
static void log_not_validated(PGconn *tgt, const schema_plan *p,
                              const sch_table *t, const sch_fk *fk)
{
    char *name = PQescapeIdentifier(tgt, fk->name, strlen(fk->name));
    char *sql = NULL;
    if (!name || asprintf(&sql, "ALTER TABLE %s VALIDATE CONSTRAINT %s",
                          t->qname, name) < 0)
        sql = NULL;
    PQfreemem(name);
    char *table = log_value(t->display), *con = log_value(fk->name);
    char *stmt = sql ? log_value(sql) : NULL;
    log_warning("event=foreign_key_not_validated service=%s table=%s "
                "constraint=%s reason=\"tables copied in different snapshots "
                "(a restart during the copy, a table given since): rows the "
                "held changes bring are missing until they are applied\" "
                "statement=%s", p->service, table ? table : "?",
                con ? con : "?", stmt ? stmt : "?");
    free(table);
    free(con);
    free(stmt);
    free(sql);
}

/*
 * One in-service foreign key, checked against the rows. Tables copied in
 * different snapshots may hold, for now, children whose parents come with
 * the held changes: the key is then made NOT VALID (new rows are still
 * checked) and the log gives the statement that validates it, since a
 * key refused here would stop the service for good.
 */
static bool add_in_service_fk(PGconn *tgt, const schema_plan *p,
                              const sch_table *t, const sch_fk *fk,
                              char *err, size_t errlen)
{
    if (!exec(tgt, "SAVEPOINT cleave_fk", err, errlen))
        return false;
    PGresult *res = PQexec(tgt, fk->sql);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    bool violated = !ok && state && strcmp(state, "23503") == 0;
    if (!ok && !violated)
        sql_err(err, errlen, tgt, res);
    PQclear(res);
    if (!violated)
        return ok && exec(tgt, "RELEASE SAVEPOINT cleave_fk", err, errlen);
    char *sql = NULL;
    if (asprintf(&sql, "%s NOT VALID", fk->sql) < 0) {
        sql = NULL;
        snprintf(err, errlen, "out of memory");
    }
    ok = sql && exec(tgt, "ROLLBACK TO SAVEPOINT cleave_fk", err, errlen) &&
         exec(tgt, sql, err, errlen) &&
         exec(tgt, "RELEASE SAVEPOINT cleave_fk", err, errlen);
    if (ok)
        log_not_validated(tgt, p, t, fk);
    free(sql);
    return ok;
}

/* The in-service foreign keys of a table, and its own comment back. */
static bool finish_fks(PGconn *tgt, const schema_plan *p, const sch_table *t,
                       char *err, size_t errlen)
{
    for (size_t k = 0; k < t->nfks; k++)
        if (t->fks[k].in_service &&
            !add_in_service_fk(tgt, p, t, &t->fks[k], err, errlen)) {
            prefix_err(err, errlen, "table %s: foreign key %s", t->display,
                       t->fks[k].name);
            return false;
        }
    if (!exec(tgt, t->comment_sql, err, errlen)) {
        prefix_err(err, errlen, "table %s", t->display);
        return false;
    }
    return true;
}

bool schema_finish_service(PGconn *tgt, const schema_plan *p, char *err,
                           size_t errlen)
{
    if (!tgt_begin(tgt, p, err, errlen))
        return false;
    bool ok = true;
    for (size_t i = 0; ok && i < p->ntypes; i++) {
        const sch_type *ty = &p->types[i];
        if (ty->created && !exec_all(tgt, &ty->late, err, errlen)) {
            prefix_err(err, errlen, "%s %s", ty->kind, ty->display);
            ok = false;
        }
    }
    for (size_t i = 0; ok && i < p->ntables; i++)
        if (p->tables[i].build != BUILD_NONE)
            ok = finish_fks(tgt, p, &p->tables[i], err, errlen);
    for (size_t i = 0; ok && i < p->nseqs; i++)
        if (!exec(tgt, p->seqs[i].setval_sql, err, errlen)) {
            prefix_err(err, errlen, "sequence %s", p->seqs[i].qname);
            ok = false;
        }
    if (!tgt_end(tgt, p, ok, err, errlen))
        return false;
    for (size_t i = 0; i < p->ntables; i++)
        for (size_t k = 0; k < p->tables[i].nfks; k++)
            if (!p->tables[i].fks[k].in_service)
                log_skipped(p, &p->tables[i], &p->tables[i].fks[k]);
    return true;
}
