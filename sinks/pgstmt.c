/*
 * pgstmt: plans, SQL text and the prepared-statement cache of the
 * PostgreSQL sink; see pgstmt.h for the shape a plan is keyed by.
 *
 * Values always travel as parameters in text form with unspecified types,
 * so the server reads each as the type of the column it meets; names
 * always go through PQescapeIdentifier. Rows are found the way
 * PostgreSQL's own apply finds them: by the replica identity key, or with
 * REPLICA IDENTITY FULL by every old value, NULL-safely, one row at a time.
 */
#include "sinks/pgstmt.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decoder/pgoutput.h"

struct pgstmt_relent {
    bool used;
    uint32_t oid;
    uint64_t version;
    pgstmt *stmts;
};

/* ------------------------------------------------------------ plans */

static bool plan_reserve(pgstmt_plan *pl, size_t need)
{
    if (need <= pl->cap)
        return true;
    size_t cap = pl->cap ? pl->cap : 64;
    while (cap < need)
        cap *= 2;
    char *shape = realloc(pl->shape, cap);
    if (!shape)
        return false;
    pl->shape = shape;
    const char **params = realloc(pl->params, cap * sizeof *params);
    if (params)
        pl->params = params;
    int *lengths = params ? realloc(pl->lengths, cap * sizeof *lengths) : NULL;
    if (lengths)
        pl->lengths = lengths;
    int *formats = lengths ? realloc(pl->formats, cap * sizeof *formats) : NULL;
    if (!formats)
        return false;
    pl->formats = formats;
    pl->cap = cap;
    return true;
}

bool pgstmt_plan_add_params(pgstmt_plan *dst, const pgstmt_plan *src)
{
    size_t at = (size_t)dst->nparams, n = (size_t)src->nparams;
    if (!plan_reserve(dst, at + n))
        return false;
    memcpy(dst->params + at, src->params, n * sizeof *dst->params);
    memcpy(dst->lengths + at, src->lengths, n * sizeof *dst->lengths);
    memcpy(dst->formats + at, src->formats, n * sizeof *dst->formats);
    dst->nparams += src->nparams;
    dst->binary |= src->binary;
    return true;
}

void pgstmt_plan_free(pgstmt_plan *pl)
{
    free(pl->shape);
    free(pl->params);
    free(pl->lengths);
    free(pl->formats);
    memset(pl, 0, sizeof *pl);
}

/*
 * The values that find the target row: the old tuple when the message
 * has one; otherwise the key did not change and the new tuple holds it.
 */
static const sink_value *identity_values(const sink_event *ev)
{
    if (ev->old_vals && (ev->old_kind == 'K' || ev->old_kind == 'O'))
        return ev->old_vals;
    return ev->new_vals;
}

static bool same_value(const sink_value *a, const sink_value *b)
{
    if (a->kind != b->kind)
        return false;
    return (a->kind != 't' && a->kind != 'b') ||
           (a->len == b->len && memcmp(a->data, b->data, a->len) == 0);
}

/* A value as the next parameter: text, binary, or NULL for anything else. */
static void add_param(pgstmt_plan *pl, const sink_value *v)
{
    bool bin = v->kind == 'b';
    pl->params[pl->nparams] = bin || v->kind == 't' ? v->data : NULL;
    pl->lengths[pl->nparams] = (int)v->len;
    pl->formats[pl->nparams++] = bin;
    pl->binary |= bin;
}

/*
 * An UPDATE leaves out key columns that keep their value: the WHERE
 * clause holds them already, and a GENERATED ALWAYS identity key may
 * only be updated to DEFAULT. (Not for REPLICA IDENTITY FULL, where every
 * column is "key" and each combination would be a statement of its own.)
 */
static bool key_kept(const sink_event *ev, uint16_t i)
{
    const sink_rel *rel = ev->rel;
    if (ev->op != SINK_UPDATE || rel->replident == 'f' || !rel->cols[i].key)
        return false;
    const sink_value *old = identity_values(ev);
    return old == ev->new_vals || same_value(&old[i], &ev->new_vals[i]);
}

/* New values: unchanged TOAST is left out so the target keeps its own. */
static void plan_values(pgstmt_plan *pl, const sink_event *ev)
{
    const sink_value *vals = ev->new_vals;
    for (uint16_t i = 0; i < ev->rel->ncols; i++) {
        if (vals[i].kind == 'u' || key_kept(ev, i)) {
            pl->shape[pl->shape_len++] = '-';
            continue;
        }
        pl->shape[pl->shape_len++] = 'v';
        add_param(pl, &vals[i]);
    }
}

/*
 * NULLs become IS NULL rather than a parameter, so the comparison is
 * NULL-safe and still uses an index; that choice is part of the shape.
 */
static bool plan_identity(pgstmt_plan *pl, const sink_event *ev, bool full,
                          const char **why)
{
    const sink_rel *rel = ev->rel;
    const sink_value *vals = identity_values(ev);
    if (!vals) {
        *why = "the change carries no old row to find the target row by";
        return false;
    }
    int compared = 0;
    for (uint16_t i = 0; i < rel->ncols; i++) {
        char code = '-';
        if (full || rel->cols[i].key) {
            if (vals[i].kind == 'n')
                code = 'n';
            else if (vals[i].kind == 't' || vals[i].kind == 'b')
                code = 'p';
        }
        if (code == 'p')
            add_param(pl, &vals[i]);
        compared += code != '-';
        pl->shape[pl->shape_len++] = code;
    }
    if (compared == 0) {
        *why = "the table has no replica identity to find rows by "
               "(no primary key, or REPLICA IDENTITY NOTHING)";
        return false;
    }
    return true;
}

bool pgstmt_plan_change(pgstmt_plan *pl, const sink_event *ev,
                        const char **why)
{
    const sink_rel *rel = ev->rel;
    if (!plan_reserve(pl, 2 + 2 * (size_t)rel->ncols)) {
        *why = "out of memory";
        return false;
    }
    char op = ev->op == SINK_INSERT ? 'I' : ev->op == SINK_UPDATE ? 'U' : 'D';
    bool full = rel->replident == 'f';
    pl->shape_len = 0;
    pl->nparams = 0;
    pl->binary = false;
    pl->shape[pl->shape_len++] = op;
    pl->shape[pl->shape_len++] = full ? 'f' : 'k';
    if (op != 'D') {
        if (!ev->new_vals) {
            *why = "the change carries no new row";
            return false;
        }
        plan_values(pl, ev);
    }
    return op == 'I' || plan_identity(pl, ev, full, why);
}

/* ------------------------------------------------------------ cache */

static uint64_t shape_hash(const char *s, uint32_t len)
{
    uint64_t h = 1469598103934665603ULL;  /* FNV-1a */
    for (uint32_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static size_t oid_slot(uint32_t oid, size_t cap)
{
    return (size_t)(oid * 2654435761u) & (cap - 1);
}

static bool cache_grow(pgstmt_cache *c)
{
    size_t cap = c->cap ? c->cap * 2 : 16;
    struct pgstmt_relent *rels = calloc(cap, sizeof *rels);
    if (!rels)
        return false;
    for (size_t i = 0; i < c->cap; i++) {
        if (!c->rels[i].used)
            continue;
        size_t j = oid_slot(c->rels[i].oid, cap);
        while (rels[j].used)
            j = (j + 1) & (cap - 1);
        rels[j] = c->rels[i];
    }
    free(c->rels);
    c->rels = rels;
    c->cap = cap;
    return true;
}

static struct pgstmt_relent *relent_get(pgstmt_cache *c, const sink_rel *rel)
{
    if (2 * (c->n + 1) > c->cap && !cache_grow(c))
        return NULL;
    size_t j = oid_slot(rel->oid, c->cap);
    while (c->rels[j].used && c->rels[j].oid != rel->oid)
        j = (j + 1) & (c->cap - 1);
    struct pgstmt_relent *r = &c->rels[j];
    if (!r->used) {
        *r = (struct pgstmt_relent){.used = true, .oid = rel->oid,
                                    .version = rel->version};
        c->n++;
    }
    return r;
}

/*
 * Statements of an older version may still have results in flight, so
 * they wait on the retired list until the caller's queue is empty.
 */
static void retire(pgstmt_cache *c, struct pgstmt_relent *r)
{
    while (r->stmts) {
        pgstmt *st = r->stmts;
        r->stmts = st->next;
        st->next = c->retired;
        c->retired = st;
    }
}

static pgstmt *stmt_new(pgstmt_cache *c, sink_rel *rel, const pgstmt_plan *pl,
                        uint64_t hash, uint16_t rows)
{
    pgstmt *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->shape = malloc(pl->shape_len);
    if (!st->shape) {
        free(st);
        return NULL;
    }
    memcpy(st->shape, pl->shape, pl->shape_len);
    st->shape_len = pl->shape_len;
    st->hash = hash;
    st->rows = rows;
    st->rel = sink_rel_ref(rel);
    snprintf(st->name, sizeof st->name, "cleave_%" PRIu64, ++c->next_id);
    return st;
}

pgstmt *pgstmt_lookup(pgstmt_cache *c, sink_rel *rel, const pgstmt_plan *pl)
{
    return pgstmt_lookup_rows(c, rel, pl, 1);
}

pgstmt *pgstmt_lookup_rows(pgstmt_cache *c, sink_rel *rel,
                           const pgstmt_plan *pl, uint16_t rows)
{
    struct pgstmt_relent *r = relent_get(c, rel);
    if (!r)
        return NULL;
    if (r->version != rel->version) {
        retire(c, r);
        r->version = rel->version;
    }
    uint64_t h = shape_hash(pl->shape, pl->shape_len);
    for (pgstmt *st = r->stmts; st; st = st->next)
        if (st->hash == h && st->rows == rows &&
            st->shape_len == pl->shape_len &&
            memcmp(st->shape, pl->shape, pl->shape_len) == 0)
            return st;
    pgstmt *st = stmt_new(c, rel, pl, h, rows);
    if (st) {
        st->next = r->stmts;
        r->stmts = st;
    }
    return st;
}

static const char *text_eq_type(uint32_t type_oid);

/* Every key column compared with a parameter, none set, a type with =. */
static bool found_by_kept_key(const sink_rel *rel, const char *vals,
                              const char *ident)
{
    for (uint16_t i = 0; i < rel->ncols; i++) {
        bool key = rel->cols[i].key;
        if ((vals && vals[i] == 'v' && key) || (key && ident[i] != 'p') ||
            (!key && ident[i] != '-') ||
            (key && text_eq_type(rel->cols[i].type_oid)))
            return false;
    }
    return true;
}

bool pgstmt_batchable(const pgstmt_cache *c, const sink_rel *rel,
                      const pgstmt_plan *pl)
{
    const char *vals = pl->shape + 2;
    if (c->upsert || pl->shape[1] != 'k')
        return false;
    switch (pl->shape[0]) {
    case 'I':
        return memchr(vals, 'v', rel->ncols) != NULL;
    case 'U':
        return memchr(vals, 'v', rel->ncols) != NULL &&
               found_by_kept_key(rel, vals, vals + rel->ncols);
    default:
        return found_by_kept_key(rel, NULL, vals);
    }
}

bool pgstmt_typed(const pgstmt *st)
{
    return st->rows > 1 && st->shape[0] != 'I';
}

bool pgstmt_param_types(const pgstmt *st, const uint32_t *col_types,
                        uint32_t *types, int ntypes)
{
    const sink_rel *rel = st->rel;
    const char *codes = st->shape + 2;
    size_t ncodes = st->shape[0] == 'U' ? 2u * rel->ncols : rel->ncols;
    int n = 0;
    for (uint16_t r = 0; r < st->rows; r++)
        for (size_t j = 0; j < ncodes; j++) {
            if (codes[j] != 'v' && codes[j] != 'p')
                continue;
            uint32_t t = col_types[j % rel->ncols];
            if (n == ntypes || t == 0)
                return false;
            types[n++] = t;
        }
    return n == ntypes;
}

void pgstmt_retire_rel(pgstmt_cache *c, uint32_t oid)
{
    if (c->cap == 0)
        return;
    size_t j = oid_slot(oid, c->cap);
    while (c->rels[j].used && c->rels[j].oid != oid)
        j = (j + 1) & (c->cap - 1);
    if (c->rels[j].used)
        retire(c, &c->rels[j]);
}

pgstmt *pgstmt_take_retired(pgstmt_cache *c)
{
    pgstmt *list = c->retired;
    c->retired = NULL;
    return list;
}

void pgstmt_free(pgstmt *st)
{
    if (!st)
        return;
    sink_rel_unref(st->rel);
    free(st->shape);
    free(st);
}

static void free_list(pgstmt *st)
{
    while (st) {
        pgstmt *next = st->next;
        pgstmt_free(st);
        st = next;
    }
}

void pgstmt_cache_clear(pgstmt_cache *c)
{
    for (size_t i = 0; i < c->cap; i++)
        if (c->rels[i].used)
            free_list(c->rels[i].stmts);
    free(c->rels);
    free_list(c->retired);
    c->rels = NULL;
    c->retired = NULL;
    c->cap = c->n = 0;
    c->next_id = 0;
}

/* ------------------------------------------------------------ SQL text */

typedef struct sqlbuf {
    char *p;
    size_t len, cap;
    bool bad;                /* out of memory, or a name libpq refused */
} sqlbuf;

static void sb_addn(sqlbuf *b, const char *s, size_t n)
{
    if (b->bad)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->bad = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_add(sqlbuf *b, const char *s)
{
    sb_addn(b, s, strlen(s));
}

static void sb_param(sqlbuf *b, int *np)
{
    char num[16];
    snprintf(num, sizeof num, "$%d", ++*np);
    sb_add(b, num);
}

static void sb_ident(sqlbuf *b, PGconn *conn, const char *name)
{
    char *q = PQescapeIdentifier(conn, name, strlen(name));
    if (!q) {
        b->bad = true;
        return;
    }
    sb_add(b, q);
    PQfreemem(q);
}

static void sb_table(sqlbuf *b, PGconn *conn, const sink_rel *rel)
{
    sb_ident(b, conn, rel->schema);
    sb_add(b, ".");
    sb_ident(b, conn, rel->name);
}

/*
 * Built-in types with no equality operator (and their arrays): compared
 * as text. The value is read as the type first, whether it came as text
 * or in the type's binary form, and written out again.
 */
static const char *text_eq_type(uint32_t type_oid)
{
    switch (type_oid) {
    case 114: return "json";
    case 199: return "json[]";
    case 142: return "xml";
    case 143: return "xml[]";
    case 600: return "point";
    case 1017: return "point[]";
    case 601: return "lseg";
    case 1018: return "lseg[]";
    case 602: return "path";
    case 1019: return "path[]";
    case 603: return "box";
    case 1020: return "box[]";
    case 604: return "polygon";
    case 1027: return "polygon[]";
    case 628: return "line";
    case 629: return "line[]";
    case 718: return "circle";
    case 719: return "circle[]";
    default: return NULL;
    }
}

static void build_cond(sqlbuf *b, PGconn *conn, const struct sink_col *col,
                       char code, int *np)
{
    sb_ident(b, conn, col->name);
    if (code == 'n') {
        sb_add(b, " IS NULL");
        return;
    }
    const char *type = text_eq_type(col->type_oid);
    sb_add(b, type ? "::text = " : " = ");
    sb_param(b, np);
    if (type) {
        sb_add(b, "::pg_catalog.");
        sb_add(b, type);
        sb_add(b, "::text");
    }
}

/*
 * With the whole row as identity, duplicates are possible: ctid picks
 * exactly one of them, as PostgreSQL's apply does. A ctid is unique
 * within one heap only: in a partitioned (or inheritance) table every
 * partition has its own (0,1), so the row is named by tableoid too.
 */
static void build_where(sqlbuf *b, PGconn *conn, const pgstmt *st,
                        const char *ident, int *np)
{
    const sink_rel *rel = st->rel;
    bool full = st->shape[1] == 'f';
    sb_add(b, " WHERE ");
    if (full) {
        sb_add(b, "(tableoid, ctid) = (SELECT tableoid, ctid FROM ");
        sb_table(b, conn, rel);
        sb_add(b, " WHERE ");
    }
    const char *sep = "";
    for (uint16_t i = 0; i < rel->ncols; i++) {
        if (ident[i] == '-')
            continue;
        sb_add(b, sep);
        build_cond(b, conn, &rel->cols[i], ident[i], np);
        sep = " AND ";
    }
    if (full)
        sb_add(b, " LIMIT 1)");
}

static bool has_key(const sink_rel *rel)
{
    for (uint16_t i = 0; i < rel->ncols; i++)
        if (rel->cols[i].key)
            return true;
    return false;
}

/*
 * RETURNING says whether the row existed: xmax is set on a row that
 * ON CONFLICT updated and 0 on a fresh one; DO NOTHING returns no row.
 */
static void build_upsert(sqlbuf *b, PGconn *conn, const pgstmt *st)
{
    const sink_rel *rel = st->rel;
    const char *vals = st->shape + 2;
    if (st->shape[1] == 'f' || !has_key(rel)) {
        sb_add(b, " ON CONFLICT DO NOTHING RETURNING false");
        return;
    }
    sb_add(b, " ON CONFLICT (");
    const char *sep = "";
    for (uint16_t i = 0; i < rel->ncols; i++) {
        if (!rel->cols[i].key)
            continue;
        sb_add(b, sep);
        sb_ident(b, conn, rel->cols[i].name);
        sep = ", ";
    }
    bool any_set = false;
    for (uint16_t i = 0; i < rel->ncols; i++)
        any_set |= !rel->cols[i].key && vals[i] == 'v';
    if (!any_set) {
        /* Every column sent is a key column: nothing to update. */
        sb_add(b, ") DO NOTHING RETURNING false");
        return;
    }
    sb_add(b, ") DO UPDATE SET ");
    sep = "";
    for (uint16_t i = 0; i < rel->ncols; i++) {
        if (rel->cols[i].key || vals[i] != 'v')
            continue;
        sb_add(b, sep);
        sb_ident(b, conn, rel->cols[i].name);
        sb_add(b, " = EXCLUDED.");
        sb_ident(b, conn, rel->cols[i].name);
        sep = ", ";
    }
    sb_add(b, " RETURNING (xmax <> 0)");
}

/* One VALUES list; a multi-row INSERT has several, each typed by its column. */
static void build_values(sqlbuf *b, const sink_rel *rel, const char *vals,
                         const char *open, int *np)
{
    sb_add(b, open);
    for (uint16_t i = 0, n = 0; i < rel->ncols; i++) {
        if (vals[i] != 'v')
            continue;
        sb_add(b, n++ ? ", " : "");
        sb_param(b, np);
    }
    sb_add(b, ")");
}

static void build_insert(sqlbuf *b, PGconn *conn, const pgstmt *st,
                         bool upsert, int *np)
{
    const sink_rel *rel = st->rel;
    const char *vals = st->shape + 2;
    sb_add(b, "INSERT INTO ");
    sb_table(b, conn, rel);
    const char *sep = " (";
    for (uint16_t i = 0; i < rel->ncols; i++) {
        if (vals[i] != 'v')
            continue;
        sb_add(b, sep);
        sb_ident(b, conn, rel->cols[i].name);
        sep = ", ";
    }
    if (!*sep) {
        sb_add(b, " DEFAULT VALUES");
    } else {
        /* The source's value wins, even for GENERATED ALWAYS identity. */
        sb_add(b, ") OVERRIDING SYSTEM VALUE VALUES ");
        for (uint16_t r = 0; r < st->rows; r++)
            build_values(b, rel, vals, r ? ", (" : "(", np);
    }
    if (upsert)
        build_upsert(b, conn, st);
}

/*
 * With nothing to set (only key columns, unchanged) the row must still
 * exist: a SELECT reports the same row count an UPDATE would.
 */
static void build_update(sqlbuf *b, PGconn *conn, const pgstmt *st, int *np)
{
    const sink_rel *rel = st->rel;
    const char *vals = st->shape + 2;
    if (!memchr(vals, 'v', rel->ncols)) {
        sb_add(b, "SELECT 1 FROM ");
        sb_table(b, conn, rel);
        build_where(b, conn, st, vals + rel->ncols, np);
        return;
    }
    sb_add(b, "UPDATE ");
    sb_table(b, conn, rel);
    sb_add(b, " SET ");
    const char *sep = "";
    for (uint16_t i = 0; i < rel->ncols; i++) {
        if (vals[i] != 'v')
            continue;
        sb_add(b, sep);
        sb_ident(b, conn, rel->cols[i].name);
        sb_add(b, " = ");
        sb_param(b, np);
        sep = ", ";
    }
    build_where(b, conn, st, vals + rel->ncols, np);
}

/*
 * The VALUES list of a multi-row UPDATE or DELETE, its columns named
 * c<column number>: the values set ('v'), then the key ('p'), per row.
 */
static void build_rows(sqlbuf *b, const pgstmt *st, int *np)
{
    const sink_rel *rel = st->rel;
    const char *codes = st->shape + 2;
    size_t ncodes = st->shape[0] == 'U' ? 2u * rel->ncols : rel->ncols;
    sb_add(b, " (VALUES ");
    for (uint16_t r = 0; r < st->rows; r++) {
        const char *sep = r ? ", (" : "(";
        for (size_t j = 0; j < ncodes; j++) {
            if (codes[j] != 'v' && codes[j] != 'p')
                continue;
            sb_add(b, sep);
            sb_param(b, np);
            sep = ", ";
        }
        sb_add(b, ")");
    }
    sb_add(b, ") AS v");
    const char *sep = " (";
    for (size_t j = 0; j < ncodes; j++) {
        if (codes[j] != 'v' && codes[j] != 'p')
            continue;
        char name[24];
        snprintf(name, sizeof name, "%sc%zu", sep, j);
        sb_add(b, name);
        sep = ", ";
    }
    sb_add(b, ")");
}

/* t."key" = v.c<n> for each key column, the key's codes from `ident`. */
static void build_join(sqlbuf *b, PGconn *conn, const pgstmt *st,
                       size_t ident)
{
    const sink_rel *rel = st->rel;
    const char *sep = " WHERE ";
    for (uint16_t i = 0; i < rel->ncols; i++) {
        if (!rel->cols[i].key)
            continue;
        char v[32];
        snprintf(v, sizeof v, " = v.c%zu", ident + i);
        sb_add(b, sep);
        sb_add(b, "t.");
        sb_ident(b, conn, rel->cols[i].name);
        sb_add(b, v);
        sep = " AND ";
    }
}

static void build_update_rows(sqlbuf *b, PGconn *conn, const pgstmt *st,
                              int *np)
{
    const sink_rel *rel = st->rel;
    const char *vals = st->shape + 2;
    sb_add(b, "UPDATE ");
    sb_table(b, conn, rel);
    sb_add(b, " AS t SET ");
    const char *sep = "";
    for (uint16_t i = 0; i < rel->ncols; i++) {
        if (vals[i] != 'v')
            continue;
        char v[32];
        snprintf(v, sizeof v, " = v.c%u", (unsigned)i);
        sb_add(b, sep);
        sb_ident(b, conn, rel->cols[i].name);
        sb_add(b, v);
        sep = ", ";
    }
    sb_add(b, " FROM");
    build_rows(b, st, np);
    build_join(b, conn, st, rel->ncols);
}

static void build_delete_rows(sqlbuf *b, PGconn *conn, const pgstmt *st,
                              int *np)
{
    sb_add(b, "DELETE FROM ");
    sb_table(b, conn, st->rel);
    sb_add(b, " AS t USING");
    build_rows(b, st, np);
    build_join(b, conn, st, 0);
}

static void build_delete(sqlbuf *b, PGconn *conn, const pgstmt *st, int *np)
{
    sb_add(b, "DELETE FROM ");
    sb_table(b, conn, st->rel);
    build_where(b, conn, st, st->shape + 2, np);
}

char *pgstmt_sql(PGconn *conn, const pgstmt *st, bool upsert, int *nparams)
{
    sqlbuf b = {0};
    *nparams = 0;
    switch (st->shape[0]) {
    case 'I':
        build_insert(&b, conn, st, upsert, nparams);
        break;
    case 'U':
        if (st->rows > 1)
            build_update_rows(&b, conn, st, nparams);
        else
            build_update(&b, conn, st, nparams);
        break;
    default:
        if (st->rows > 1)
            build_delete_rows(&b, conn, st, nparams);
        else
            build_delete(&b, conn, st, nparams);
        break;
    }
    if (b.bad) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* SINK_TRUNCATE_ROWS: WITH d0 AS (DELETE FROM t0), ... DELETE FROM tn. */
static void build_rows_gone(sqlbuf *b, PGconn *conn, const sink_event *ev)
{
    uint32_t last = ev->ntruncate ? ev->ntruncate - 1 : 0;
    for (uint32_t i = 0; i < last; i++) {
        char name[48];
        snprintf(name, sizeof name, "%sd%u AS (DELETE FROM ", i ? ", " : "WITH ",
                 i);
        sb_add(b, name);
        sb_table(b, conn, ev->truncate_rels[i]);
        sb_add(b, ")");
    }
    sb_add(b, last ? " DELETE FROM " : "DELETE FROM ");
    sb_table(b, conn, ev->truncate_rels[last]);
}

char *pgstmt_truncate_sql(PGconn *conn, const sink_event *ev)
{
    sqlbuf b = {0};
    if (ev->truncate_options & SINK_TRUNCATE_ROWS) {
        build_rows_gone(&b, conn, ev);
        if (b.bad) {
            free(b.p);
            return NULL;
        }
        return b.p;
    }
    sb_add(&b, "TRUNCATE ");
    for (uint32_t i = 0; i < ev->ntruncate; i++) {
        sb_add(&b, i ? ", " : "");
        sb_table(&b, conn, ev->truncate_rels[i]);
    }
    if (ev->truncate_options & PGO_TRUNCATE_RESTART_IDENTITY)
        sb_add(&b, " RESTART IDENTITY");
    if (ev->truncate_options & PGO_TRUNCATE_CASCADE)
        sb_add(&b, " CASCADE");
    if (b.bad) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* ------------------------------------------------------------ layouts */

/* Dropped columns linger in pg_attribute; identity counts as a default. */
const char pgstmt_columns_sql[] =
    "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), "
    "  a.atttypid, a.atttypmod, a.attnotnull, "
    "  a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '', "
    "  a.attgenerated <> '', "
    "  EXISTS (SELECT FROM (SELECT c.oid AS relid UNION "
    "      SELECT relid FROM pg_catalog.pg_partition_tree(c.oid)) p "
    "    JOIN pg_catalog.pg_class pc ON pc.oid = p.relid "
    "    WHERE pc.relhasrules OR EXISTS (SELECT FROM pg_catalog.pg_trigger t "
    "      WHERE t.tgrelid = p.relid AND NOT t.tgisinternal "
    "        AND t.tgenabled IN ('A', CASE current_setting("
    "          'session_replication_role') WHEN 'replica' THEN 'R' "
    "          ELSE 'O' END))) "
    "FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid "
    "  AND a.attnum > 0 AND NOT a.attisdropped "
    "WHERE n.nspname = $1 AND c.relname = $2 "
    "ORDER BY a.attnum";

/*
 * Numbers go into the text as literals (we print them); names are
 * parameters: to_regtype resolves a type's the way the target would. A
 * built-in OID the target lacks (an older server) comes back NULL too.
 * "Takes" is true when the target's column of that name reads the
 * source's text as the same type: that type (any typmod), a domain over
 * it, or one it converts to implicitly (int to bigint, varchar to text).
 */
char *pgstmt_types_sql(const sink_rel *rel, const char **params,
                       int *nparams)
{
    sqlbuf b = {0};
    *nparams = 0;
    if (rel->ncols == 0)
        return NULL;
    params[(*nparams)++] = rel->schema;
    params[(*nparams)++] = rel->name;
    sb_add(&b, "SELECT v.i, v.o, pg_catalog.format_type(v.o, v.m), "
               "  v.o IN (a.atttypid, t.typbasetype) OR EXISTS (SELECT 1 "
               "    FROM pg_catalog.pg_cast k WHERE k.castsource = v.o "
               "    AND k.casttarget IN (a.atttypid, t.typbasetype) "
               "    AND k.castcontext = 'i') "
               "FROM (VALUES ");
    for (uint16_t i = 0; i < rel->ncols; i++) {
        const struct sink_col *col = &rel->cols[i];
        char num[96];
        snprintf(num, sizeof num, "%s(%u, ", i ? ", " : "", i + 1u);
        sb_add(&b, num);
        params[*nparams] = col->name;
        sb_param(&b, nparams);
        if (col->type_name) {
            sb_add(&b, "::text, pg_catalog.to_regtype(");
            params[*nparams] = col->type_name;
            sb_param(&b, nparams);
            sb_add(&b, ")::oid");
        } else {
            snprintf(num, sizeof num, "::text, (SELECT t.oid FROM "
                     "pg_catalog.pg_type t WHERE t.oid = %" PRIu32 ")",
                     col->type_oid);
            sb_add(&b, num);
        }
        snprintf(num, sizeof num, ", %" PRId32 ")", col->typmod);
        sb_add(&b, num);
    }
    sb_add(&b, ") AS v(i, n, o, m) "
               "LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = ("
               "  SELECT c.oid FROM pg_catalog.pg_class c "
               "  JOIN pg_catalog.pg_namespace s ON s.oid = c.relnamespace "
               "  WHERE s.nspname = $1 AND c.relname = $2) "
               "  AND a.attname = v.n AND a.attnum > 0 AND NOT a.attisdropped "
               "LEFT JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
               "ORDER BY v.i");
    if (b.bad) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

static void sb_literal(sqlbuf *b, PGconn *conn, const char *value)
{
    char *q = PQescapeLiteral(conn, value, strlen(value));
    if (!q) {
        b->bad = true;
        return;
    }
    sb_add(b, q);
    PQfreemem(q);
}

/* One column of ADD COLUMN: name, type, collation, default, NOT NULL. */
static void build_coldef(sqlbuf *b, PGconn *conn, const sink_rel *rel,
                         const pgstmt_coldef *d)
{
    sb_ident(b, conn, rel->cols[d->col].name);
    sb_add(b, " ");
    sb_add(b, d->type);
    if (d->coll_schema && d->coll_name) {
        sb_add(b, " COLLATE ");
        sb_ident(b, conn, d->coll_schema);
        sb_add(b, ".");
        sb_ident(b, conn, d->coll_name);
    }
    if (d->identity) {
        sb_add(b, d->identity == 'a' ? " GENERATED ALWAYS AS IDENTITY"
                                     : " GENERATED BY DEFAULT AS IDENTITY");
    } else if (d->fill) {
        sb_add(b, " DEFAULT ");
        sb_literal(b, conn, d->fill);
        sb_add(b, "::");
        sb_add(b, d->type);
    } else if (d->dflt) {
        sb_add(b, " DEFAULT ");
        sb_add(b, d->dflt);
    }
    if (d->notnull)
        sb_add(b, " NOT NULL");
}

static char *sb_finish(sqlbuf *b)
{
    if (!b->bad)
        return b->p;
    free(b->p);
    return NULL;
}

char *pgstmt_add_columns_sql(PGconn *conn, const sink_rel *rel,
                             const pgstmt_coldef *defs, int n)
{
    sqlbuf b = {0};
    sb_add(&b, "ALTER TABLE ");
    sb_table(&b, conn, rel);
    for (int i = 0; i < n; i++) {
        sb_add(&b, i ? ", ADD COLUMN " : " ADD COLUMN ");
        build_coldef(&b, conn, rel, &defs[i]);
    }
    return sb_finish(&b);
}

/*
 * A statement of its own: in the ADD's statement, DROP DEFAULT would run
 * before the column exists (ALTER TABLE orders its subcommands by kind).
 */
bool pgstmt_fill_defaults_sql(PGconn *conn, const sink_rel *rel,
                              const pgstmt_coldef *defs, int n, char **sql)
{
    sqlbuf b = {0};
    const char *sep = " ALTER COLUMN ";
    sb_add(&b, "ALTER TABLE ");
    sb_table(&b, conn, rel);
    for (int i = 0; i < n; i++) {
        if (!defs[i].fill || defs[i].identity)
            continue;
        sb_add(&b, sep);
        sb_ident(&b, conn, rel->cols[defs[i].col].name);
        sb_add(&b, defs[i].dflt ? " SET DEFAULT " : " DROP DEFAULT");
        sb_add(&b, defs[i].dflt ? defs[i].dflt : "");
        sep = ", ALTER COLUMN ";
    }
    *sql = sb_finish(&b);
    if (*sql && sep[0] == ' ') {
        free(*sql);
        *sql = NULL;
    }
    return *sql || !b.bad;
}

/* ------------------------------------------------------------ messages */

typedef struct textout {
    char *buf;
    size_t len, pos;
} textout;

static void out_add(textout *o, const char *s, size_t n)
{
    if (o->pos + 1 >= o->len)
        return;
    size_t room = o->len - 1 - o->pos;
    if (n > room)
        n = room;
    memcpy(o->buf + o->pos, s, n);
    o->pos += n;
    o->buf[o->pos] = '\0';
}

static void out_str(textout *o, const char *s)
{
    out_add(o, s, strlen(s));
}

/* Long values would crowd out the rest of the message. */
enum { MAXVAL = 40 };

static uint64_t be_bytes(const char *p, uint32_t n)
{
    uint64_t x = 0;
    for (uint32_t i = 0; i < n; i++)
        x = x << 8 | (unsigned char)p[i];
    return x;
}

/* An integer or uuid in its binary form as its text would be; else false. */
static bool out_binary_number(textout *o, uint32_t type, const sink_value *v)
{
    char buf[48];
    uint64_t x = be_bytes(v->data, v->len > 8 ? 8 : v->len);
    if ((type == 21 && v->len == 2) || (type == 23 && v->len == 4) ||
        (type == 20 && v->len == 8)) {
        int bits = (int)v->len * 8;
        int64_t sx = bits < 64 && (x >> (bits - 1)) ? (int64_t)(x - (1ULL << bits))
                                                     : (int64_t)x;
        snprintf(buf, sizeof buf, "%" PRId64, sx);
    } else if (type == 2950 && v->len == 16) {   /* uuid */
        const unsigned char *u = (const unsigned char *)v->data;
        int n = 0;
        for (int i = 0; i < 16; i++)
            n += snprintf(buf + n, sizeof buf - (size_t)n, "%s%02x",
                          i == 4 || i == 6 || i == 8 || i == 10 ? "-" : "",
                          u[i]);
    } else {
        return false;
    }
    out_str(o, buf);
    return true;
}

/*
 * A binary value for a message: integers and uuids as their text, text
 * types as they are, anything else as \x and its first bytes in hex.
 */
static void out_binary(textout *o, uint32_t type, const sink_value *v)
{
    if (out_binary_number(o, type, v))
        return;
    if (type == 25 || type == 1043 || type == 1042 || type == 19) {
        out_add(o, v->data, v->len > MAXVAL ? MAXVAL : v->len);
        out_str(o, v->len > MAXVAL ? "..." : "");
        return;
    }
    out_str(o, "\\x");
    for (uint32_t i = 0; i < v->len && i < MAXVAL / 2; i++) {
        char hex[3];
        snprintf(hex, sizeof hex, "%02x", (unsigned char)v->data[i]);
        out_str(o, hex);
    }
    out_str(o, v->len > MAXVAL / 2 ? "..." : "");
}

static void out_value(textout *o, uint32_t type, const sink_value *v)
{
    if (v->kind == 'n') {
        out_str(o, "NULL");
        return;
    }
    if (v->kind == 'b') {
        out_binary(o, type, v);
        return;
    }
    out_add(o, v->data, v->len > MAXVAL ? MAXVAL : v->len);
    if (v->len > MAXVAL)
        out_str(o, "...");
}

static void describe_truncate(const sink_event *ev, textout *o)
{
    for (uint32_t i = 0; i < ev->ntruncate; i++) {
        out_str(o, i ? ", " : "");
        out_str(o, ev->truncate_rels[i]->schema);
        out_str(o, ".");
        out_str(o, ev->truncate_rels[i]->name);
    }
}

void pgstmt_describe(const sink_event *ev, char *buf, size_t len)
{
    textout o = {.buf = buf, .len = len};
    buf[0] = '\0';
    if (ev->op == SINK_TRUNCATE) {
        describe_truncate(ev, &o);
        return;
    }
    const sink_rel *rel = ev->rel;
    const sink_value *vals =
        ev->op == SINK_INSERT ? ev->new_vals : identity_values(ev);
    bool full = rel->replident == 'f';
    const char *sep = "";
    for (uint16_t i = 0; vals && i < rel->ncols; i++) {
        if ((!full && !rel->cols[i].key) || vals[i].kind == 'u')
            continue;
        out_str(&o, sep);
        out_str(&o, rel->cols[i].name);
        out_str(&o, "=");
        out_value(&o, rel->cols[i].type_oid, &vals[i]);
        sep = ", ";
    }
    if (!*sep)
        out_str(&o, "no key");
}
