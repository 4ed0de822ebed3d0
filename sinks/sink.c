/*
 * sink: relation snapshots and change events shared by the stream loop
 * and every sink, and the factories of sinks and loaders; see sink.h.
 *
 * An event is one heap block: the header, the value arrays, then the
 * value bytes, so handing it to another thread and freeing it are one
 * pointer each.
 */
#include "sinks/sink.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "decoder/pgoutput.h"
#include "sinks/kafkasink.h"
#include "sinks/pgload.h"
#include "sinks/pgsink.h"

sink_rel *sink_rel_ref(sink_rel *rel)
{
    if (rel)
        atomic_fetch_add_explicit(&rel->refs, 1, memory_order_relaxed);
    return rel;
}

void sink_rel_unref(sink_rel *rel)
{
    if (!rel || atomic_fetch_sub_explicit(&rel->refs, 1,
                                          memory_order_acq_rel) != 1)
        return;
    for (uint16_t i = 0; i < rel->ncols; i++) {
        free(rel->cols[i].name);
        free(rel->cols[i].type_name);
    }
    free(rel->cols);
    free(rel->schema);
    free(rel->name);
    free(rel);
}

/* "schema"."name" with embedded quotes doubled: SQL's own quoting. */
static char *quoted_type(const char *nsp, const char *typ)
{
    size_t n = 6;
    for (const char *p = nsp; *p; p++)
        n += *p == '"' ? 2 : 1;
    for (const char *p = typ; *p; p++)
        n += *p == '"' ? 2 : 1;
    char *out = malloc(n), *o = out;
    if (!out)
        return NULL;
    for (int part = 0; part < 2; part++) {
        *o++ = '"';
        for (const char *p = part ? typ : nsp; *p; p++) {
            if (*p == '"')
                *o++ = '"';
            *o++ = *p;
        }
        *o++ = '"';
        if (part == 0)
            *o++ = '.';
    }
    *o = '\0';
    return out;
}

static bool name_type(struct sink_col *col, const pgo_decoder *dec)
{
    const char *nsp, *typ;
    if (!dec || !pgo_type_get(dec, col->type_oid, &nsp, &typ))
        return true;
    col->type_name = quoted_type(nsp, typ);
    return col->type_name != NULL;
}

sink_rel *sink_rel_from_pgo(const pgo_relation *src, uint64_t version,
                            const pgo_decoder *dec)
{
    sink_rel *rel = calloc(1, sizeof *rel);
    if (!rel)
        return NULL;
    atomic_init(&rel->refs, 1);
    rel->oid = src->oid;
    rel->version = version;
    rel->replident = src->replident;
    rel->ncols = src->ncols;
    rel->schema = strdup(src->nspname);
    rel->name = strdup(src->relname);
    rel->cols = calloc(src->ncols ? src->ncols : 1, sizeof *rel->cols);
    bool ok = rel->schema && rel->name && rel->cols;
    for (uint16_t i = 0; ok && i < src->ncols; i++) {
        rel->cols[i].name = strdup(src->cols[i].name);
        rel->cols[i].type_oid = src->cols[i].type_oid;
        rel->cols[i].typmod = src->cols[i].typmod;
        rel->cols[i].key = (src->cols[i].flags & PGO_COLUMN_KEY) != 0;
        ok = rel->cols[i].name != NULL && name_type(&rel->cols[i], dec);
    }
    if (!ok) {
        rel->ncols = rel->cols ? rel->ncols : 0;
        sink_rel_unref(rel);
        return NULL;
    }
    return rel;
}

/*
 * The key flags as pgoutput sets them: the replica identity index's
 * columns, the primary key's, or every column for FULL; and the primary
 * key's columns.
 */
static const char rel_sql[] =
    "SELECT a.attname, a.atttypid::int8, a.atttypmod, "
    "       c.relreplident = 'f' OR coalesce(a.attnum = ANY "
    "         (i.indkey::int2[]), false), c.relreplident, c.oid::int8, "
    "       coalesce(a.attnum = ANY (p.indkey::int2[]), false) "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 "
    "  AND NOT a.attisdropped AND a.attgenerated = '' "
    "LEFT JOIN pg_index i ON i.indrelid = c.oid AND CASE c.relreplident "
    "  WHEN 'i' THEN i.indisreplident WHEN 'd' THEN i.indisprimary "
    "  ELSE false END "
    "LEFT JOIN pg_index p ON p.indrelid = c.oid AND p.indisprimary "
    "WHERE n.nspname = $1 AND c.relname = $2 ORDER BY a.attnum";

/* The relation of rel_sql's n > 0 rows; NULL when out of memory. */
static sink_rel *rel_from_rows(PGresult *res, int n, const char *schema,
                               const char *name)
{
    sink_rel *rel = calloc(1, sizeof *rel);
    if (!rel)
        return NULL;
    atomic_init(&rel->refs, 1);
    rel->oid = (uint32_t)strtoul(PQgetvalue(res, 0, 5), NULL, 10);
    rel->replident = PQgetvalue(res, 0, 4)[0];
    rel->schema = strdup(schema);
    rel->name = strdup(name);
    rel->cols = calloc((size_t)n, sizeof *rel->cols);
    bool ok = rel->schema && rel->name && rel->cols;
    for (int i = 0; ok && i < n; i++) {
        struct sink_col *col = &rel->cols[rel->ncols];
        col->name = strdup(PQgetvalue(res, i, 0));
        col->type_oid = (uint32_t)strtoul(PQgetvalue(res, i, 1), NULL, 10);
        col->typmod = atoi(PQgetvalue(res, i, 2));
        col->key = PQgetvalue(res, i, 3)[0] == 't';
        col->pk = PQgetvalue(res, i, 6)[0] == 't';
        ok = col->name != NULL;
        rel->ncols += ok;
    }
    if (!ok) {
        sink_rel_unref(rel);
        return NULL;
    }
    return rel;
}

sink_rel *sink_rel_read(PGconn *src, const char *schema, const char *name,
                        char *err, size_t errlen)
{
    const char *params[2] = {schema, name};
    PGresult *res = PQexecParams(src, rel_sql, 2, NULL, params, NULL, NULL,
                                 0);
    int n = PQresultStatus(res) == PGRES_TUPLES_OK ? PQntuples(res) : -1;
    sink_rel *rel = n > 0 ? rel_from_rows(res, n, schema, name) : NULL;
    const char *msg = PQerrorMessage(src);
    if (!rel && n < 0)
        snprintf(err, errlen, "%.*s", (int)strcspn(msg, "\n"), msg);
    else if (!rel)
        snprintf(err, errlen, "%s", n == 0 ? "no such table"
                                           : "out of memory");
    PQclear(res);
    return rel;
}

char *sink_rel_columns(PGconn *c, const sink_rel *rel)
{
    size_t cap = 1, len = 0;
    char *out = malloc(cap);
    for (uint16_t i = 0; out && i < rel->ncols; i++) {
        const char *name = rel->cols[i].name;
        char *q = PQescapeIdentifier(c, name, strlen(name));
        size_t qn = q ? strlen(q) : 0;
        char *grown = q ? realloc(out, cap + qn + 2) : NULL;
        if (!grown) {
            PQfreemem(q);
            free(out);
            return NULL;
        }
        out = grown;
        cap += qn + 2;
        len += (size_t)sprintf(out + len, "%s%s", i ? ", " : "", q);
        PQfreemem(q);
    }
    if (out && len == 0)
        out[0] = '\0';
    return out;
}

bool sink_fail(sink *s, lsn_t lsn, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->error, sizeof s->error, fmt, ap);
    va_end(ap);
    s->error_lsn = lsn;
    return false;
}

void sink_event_free(sink_event *ev)
{
    if (!ev)
        return;
    sink_rel_unref(ev->rel);
    for (uint32_t i = 0; i < ev->ntruncate; i++)
        sink_rel_unref(ev->truncate_rels[i]);
    free(ev);
}

sink_event *sink_event_txn(sink_op op, uint32_t xid, lsn_t commit_lsn,
                           lsn_t end_lsn, int64_t commit_time)
{
    sink_event *ev = calloc(1, sizeof *ev);
    if (!ev)
        return NULL;
    ev->op = op;
    ev->xid = xid;
    ev->commit_lsn = commit_lsn;
    ev->end_lsn = end_lsn;
    ev->commit_time = commit_time;
    ev->size = sizeof *ev;
    return ev;
}

static bool has_bytes(char kind)
{
    return kind == 't' || kind == 'b';
}

/* Bytes the values of a tuple need, a NUL after each. */
static size_t tuple_bytes(const pgo_tuple *t)
{
    size_t bytes = 0;
    for (uint16_t i = 0; t && i < t->ncols; i++)
        if (has_bytes(t->cols[i].kind))
            bytes += (size_t)t->cols[i].len + 1;
    return bytes;
}

/*
 * Copies a tuple into vals, its bytes into *text; advances *text. Whether
 * a value was binary, so that no sink scans the values again to know.
 */
static bool copy_tuple(const pgo_tuple *t, sink_value *vals, char **text)
{
    bool binary = false;
    for (uint16_t i = 0; i < t->ncols; i++) {
        const pgo_value *v = &t->cols[i];
        vals[i] = (sink_value){.kind = v->kind};
        binary |= v->kind == 'b';
        if (!has_bytes(v->kind))
            continue;
        memcpy(*text, v->data, v->len);
        (*text)[v->len] = '\0';
        vals[i].len = v->len;
        vals[i].data = *text;
        *text += v->len + 1;
    }
    return binary;
}

/* The same for values in sink form. */
static size_t values_bytes(const sink_value *v, uint16_t n)
{
    size_t bytes = 0;
    for (uint16_t i = 0; v && i < n; i++)
        if (has_bytes(v[i].kind))
            bytes += (size_t)v[i].len + 1;
    return bytes;
}

static bool copy_values(const sink_value *src, uint16_t n, sink_value *vals,
                        char **text)
{
    bool binary = false;
    for (uint16_t i = 0; i < n; i++) {
        vals[i] = (sink_value){.kind = src[i].kind};
        binary |= src[i].kind == 'b';
        if (!has_bytes(src[i].kind))
            continue;
        memcpy(*text, src[i].data, src[i].len);
        (*text)[src[i].len] = '\0';
        vals[i].len = src[i].len;
        vals[i].data = *text;
        *text += src[i].len + 1;
    }
    return binary;
}

sink_event *sink_event_change_values(sink_op op, sink_rel *rel,
                                     lsn_t commit_lsn, char old_kind,
                                     const sink_value *old_vals,
                                     const sink_value *new_vals)
{
    size_t n = rel->ncols;
    size_t nold = old_vals ? n : 0, nnew = new_vals ? n : 0;
    size_t text = values_bytes(old_vals, rel->ncols) +
                  values_bytes(new_vals, rel->ncols);
    size_t size = sizeof(sink_event) + (nold + nnew) * sizeof(sink_value) + text;
    sink_event *ev = calloc(1, size);
    if (!ev)
        return NULL;
    sink_value *vals = (sink_value *)(ev + 1);
    char *bytes = (char *)(vals + nold + nnew);
    ev->op = op;
    ev->rel = sink_rel_ref(rel);
    ev->commit_lsn = commit_lsn;
    ev->old_kind = old_vals ? old_kind : 0;
    ev->size = size;
    if (old_vals) {
        ev->binary = copy_values(old_vals, rel->ncols, vals, &bytes);
        ev->old_vals = vals;
    }
    if (new_vals) {
        ev->binary |= copy_values(new_vals, rel->ncols, vals + nold, &bytes);
        ev->new_vals = vals + nold;
    }
    return ev;
}

sink_event *sink_event_change(sink_op op, sink_rel *rel, lsn_t commit_lsn,
                              char old_kind, const pgo_tuple *old_tuple,
                              const pgo_tuple *new_tuple)
{
    size_t text = tuple_bytes(old_tuple) + tuple_bytes(new_tuple);
    size_t nold = old_tuple ? old_tuple->ncols : 0;
    size_t nnew = new_tuple ? new_tuple->ncols : 0;
    size_t size = sizeof(sink_event) + (nold + nnew) * sizeof(sink_value) + text;
    sink_event *ev = calloc(1, size);
    if (!ev)
        return NULL;
    sink_value *vals = (sink_value *)(ev + 1);
    char *bytes = (char *)(vals + nold + nnew);
    ev->op = op;
    ev->rel = sink_rel_ref(rel);
    ev->commit_lsn = commit_lsn;
    ev->old_kind = old_tuple ? old_kind : 0;
    ev->size = size;
    if (old_tuple) {
        ev->binary = copy_tuple(old_tuple, vals, &bytes);
        ev->old_vals = vals;
    }
    if (new_tuple) {
        ev->binary |= copy_tuple(new_tuple, vals + nold, &bytes);
        ev->new_vals = vals + nold;
    }
    return ev;
}

sink_event *sink_event_truncate(lsn_t commit_lsn, uint8_t options,
                                sink_rel *const *rels, uint32_t nrels)
{
    size_t size = sizeof(sink_event) + nrels * sizeof(sink_rel *);
    sink_event *ev = calloc(1, size);
    if (!ev)
        return NULL;
    ev->op = SINK_TRUNCATE;
    ev->commit_lsn = commit_lsn;
    ev->truncate_options = options;
    ev->truncate_rels = (sink_rel **)(ev + 1);
    ev->size = size;
    for (uint32_t i = 0; i < nrels; i++)
        ev->truncate_rels[i] = sink_rel_ref(rels[i]);
    ev->ntruncate = nrels;
    return ev;
}

sink_event *sink_event_at(sink_event *ev, lsn_t lsn)
{
    if (ev)
        ev->lsn = lsn;
    return ev;
}

sink_event *sink_event_message(lsn_t commit_lsn, lsn_t msg_lsn,
                               bool transactional, const char *prefix,
                               const void *content, uint32_t len)
{
    size_t plen = strlen(prefix);
    size_t size = sizeof(sink_event) + plen + 1 + len;
    sink_event *ev = calloc(1, size);
    if (!ev)
        return NULL;
    char *p = (char *)(ev + 1);
    memcpy(p, prefix, plen + 1);
    if (len)
        memcpy(p + plen + 1, content, len);
    ev->op = SINK_MESSAGE;
    ev->commit_lsn = commit_lsn;
    ev->lsn = msg_lsn;
    ev->transactional = transactional;
    ev->prefix = p;
    ev->content = (const uint8_t *)(p + plen + 1);
    ev->content_len = len;
    ev->size = size;
    return ev;
}

sink *sink_new(sink_kind kind, const cfg *config, const cfg_service *service)
{
    return kind == SINK_KIND_KAFKA ? kafkasink_new(config, service)
                                   : pgsink_new(config, service);
}

void sink_destroy(sink *s)
{
    if (s)
        s->ops->destroy(s);
}

size_t sink_kinds(const cfg_service *service, sink_kind kinds[SINK_NKINDS])
{
    size_t n = 0;
    if (service->target_postgres)
        kinds[n++] = SINK_KIND_POSTGRES;
    if (service->target_kafka)
        kinds[n++] = SINK_KIND_KAFKA;
    return n;
}

sink_loader *sink_loader_open(sink_kind kind, const cfg *config,
                              const cfg_service *service, PGconn *target,
                              char *err, size_t errlen)
{
    return kind == SINK_KIND_KAFKA
               ? kafkasink_loader(config, service, err, errlen)
               : pgload_open(config, service, target, err, errlen);
}

void sink_loader_close(sink_loader *l)
{
    if (l)
        l->ops->close(l);
}

bool sink_loader_fail(sink_loader *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->error, sizeof l->error, fmt, ap);
    va_end(ap);
    return false;
}

bool sink_stopping(sink *s)
{
    return atomic_load(s->stop_flag ? s->stop_flag : &s->stopping);
}

bool sink_durable_wanted(sink *s)
{
    atomic_bool *flag = s->want_flag ? s->want_flag : &s->want_durable;
    return atomic_load_explicit(flag, memory_order_relaxed) &&
           atomic_exchange(flag, false);
}
