/* testlib: helpers shared by the decoder tests; see testlib.h. */
#include "tests/decoder/testlib.h"

#include <ctype.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

long tl_bytes(const char *spec, uint8_t *out, size_t cap)
{
    size_t n = 0;
    for (const char *p = spec; *p;) {
        if (*p == ' ') {
            p++;
        } else if (*p == '\'') {
            const char *end = strchr(p + 1, '\'');
            if (!end || n + (size_t)(end - p - 1) > cap)
                return -1;
            memcpy(out + n, p + 1, (size_t)(end - p - 1));
            n += (size_t)(end - p - 1);
            p = end + 1;
        } else {
            int hi = hexval((unsigned char)p[0]);
            int lo = hi < 0 ? -1 : hexval((unsigned char)p[1]);
            if (lo < 0 || n == cap)
                return -1;
            out[n++] = (uint8_t)(hi << 4 | lo);
            p += 2;
        }
    }
    return (long)n;
}

/* Printable ASCII as is, the rest as \xNN, so dumps are one line. */
static void dump_bytes(FILE *f, const uint8_t *p, size_t n)
{
    putc('"', f);
    for (size_t i = 0; i < n; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\')
            putc(p[i], f);
        else
            fprintf(f, "\\x%02x", p[i]);
    }
    putc('"', f);
}

static void dump_str(FILE *f, const char *s)
{
    if (s)
        dump_bytes(f, (const uint8_t *)s, strlen(s));
    else
        fputs("(null)", f);
}

static void dump_tuple(FILE *f, const char *label, const pgo_tuple *t)
{
    fprintf(f, " %s(%u)[", label, t->ncols);
    for (unsigned i = 0; i < t->ncols; i++) {
        const pgo_value *v = &t->cols[i];
        fprintf(f, "%s%c", i ? " " : "", v->kind);
        if (v->kind == 't' || v->kind == 'b')
            dump_bytes(f, v->data, v->len);
    }
    putc(']', f);
}

static void dump_relation(FILE *f, const pgo_relation *r)
{
    fprintf(f, " oid=%u ", r->oid);
    dump_str(f, r->nspname);
    putc('.', f);
    dump_str(f, r->relname);
    fprintf(f, " ident=%c cols=%u", r->replident, r->ncols);
    for (unsigned i = 0; i < r->ncols; i++) {
        fprintf(f, " [%u ", r->cols[i].flags);
        dump_str(f, r->cols[i].name);
        fprintf(f, " %u %d]", r->cols[i].type_oid, r->cols[i].typmod);
    }
}

static void dump_change(FILE *f, const pgo_msg *m)
{
    fprintf(f, " rel=%u", m->change.rel->oid);
    if (m->change.old_kind)
        dump_tuple(f, m->change.old_kind == 'K' ? "key" : "old",
                   &m->change.old_tuple);
    if (m->kind != PGO_DELETE)
        dump_tuple(f, "new", &m->change.new_tuple);
}

static void dump_prepare(FILE *f, const pgo_msg *m)
{
    char a[LSN_STRLEN], b[LSN_STRLEN];
    fprintf(f, " flags=%u lsn=%s end=%s time=%lld gid=", m->prepare.flags,
            lsn_format(m->prepare.lsn, a), lsn_format(m->prepare.end_lsn, b),
            (long long)m->prepare.time);
    dump_str(f, m->prepare.gid);
}

static void dump_body(FILE *f, const pgo_msg *m)
{
    char a[LSN_STRLEN], b[LSN_STRLEN];
    switch (m->kind) {
    case PGO_BEGIN:
        fprintf(f, " final=%s time=%lld", lsn_format(m->begin.final_lsn, a),
                (long long)m->begin.commit_time);
        break;
    case PGO_COMMIT:
    case PGO_STREAM_COMMIT:
        fprintf(f, " flags=%u lsn=%s end=%s time=%lld", m->commit.flags,
                lsn_format(m->commit.commit_lsn, a),
                lsn_format(m->commit.end_lsn, b),
                (long long)m->commit.commit_time);
        break;
    case PGO_ORIGIN:
        fprintf(f, " lsn=%s name=", lsn_format(m->origin.commit_lsn, a));
        dump_str(f, m->origin.name);
        break;
    case PGO_RELATION:
        dump_relation(f, m->relation);
        break;
    case PGO_TYPE:
        fprintf(f, " oid=%u ", m->type.oid);
        dump_str(f, m->type.nspname);
        putc('.', f);
        dump_str(f, m->type.typname);
        break;
    case PGO_INSERT:
    case PGO_UPDATE:
    case PGO_DELETE:
        dump_change(f, m);
        break;
    case PGO_TRUNCATE:
        fprintf(f, " options=%u rels=", m->truncate.options);
        for (uint32_t i = 0; i < m->truncate.nrels; i++)
            fprintf(f, "%s%u", i ? "," : "", m->truncate.rels[i]->oid);
        break;
    case PGO_MESSAGE:
        fprintf(f, " flags=%u lsn=%s prefix=", m->message.flags,
                lsn_format(m->message.lsn, a));
        dump_str(f, m->message.prefix);
        putc(' ', f);
        dump_bytes(f, m->message.content, m->message.len);
        break;
    case PGO_STREAM_START:
        fprintf(f, " first=%d", m->stream_start.first_segment);
        break;
    case PGO_STREAM_ABORT:
        fprintf(f, " subxid=%u lsn=%s time=%lld", m->stream_abort.subxid,
                lsn_format(m->stream_abort.abort_lsn, a),
                (long long)m->stream_abort.abort_time);
        break;
    case PGO_BEGIN_PREPARE:
    case PGO_PREPARE:
    case PGO_COMMIT_PREPARED:
    case PGO_STREAM_PREPARE:
        dump_prepare(f, m);
        break;
    case PGO_ROLLBACK_PREPARED:
        fprintf(f, " flags=%u prep_end=%s rb_end=%s ptime=%lld rtime=%lld gid=",
                m->rollback_prepared.flags,
                lsn_format(m->rollback_prepared.prepare_end_lsn, a),
                lsn_format(m->rollback_prepared.rollback_end_lsn, b),
                (long long)m->rollback_prepared.prepare_time,
                (long long)m->rollback_prepared.rollback_time);
        dump_str(f, m->rollback_prepared.gid);
        break;
    case PGO_STREAM_STOP:
        break;
    }
}

void tl_dump(FILE *f, const pgo_msg *m)
{
    fprintf(f, "%c xid=%u%s", m->kind, m->xid, m->streamed ? " streamed" : "");
    dump_body(f, m);
    putc('\n', f);
}

char *tl_dump_str(const pgo_msg *m)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    tl_dump(f, m);
    fclose(f);
    return buf;
}

pgo_options tl_stream_options(const sf_stream *s)
{
    pgo_options o = {.proto_version = 1};
    char *v = sf_option(s, "proto_version");
    if (v)
        o.proto_version = atoi(v);
    free(v);
    v = sf_option(s, "streaming");
    o.abort_info = v && strcmp(v, "parallel") == 0 && o.proto_version >= 4;
    free(v);
    return o;
}

char **tl_stream_paths(void)
{
    const char *src = getenv("CLEAVE_SRCDIR");
    char pattern[4096];
    snprintf(pattern, sizeof pattern, "%s/tests/decoder/streams/*.stream",
             src ? src : ".");
    glob_t g;
    char **paths = calloc(1, sizeof *paths);
    if (glob(pattern, 0, NULL, &g) != 0)
        return paths;
    char **more = realloc(paths, (g.gl_pathc + 1) * sizeof *paths);
    if (more) {
        paths = more;
        for (size_t i = 0; i < g.gl_pathc; i++)
            paths[i] = strdup(g.gl_pathv[i]);
        paths[g.gl_pathc] = NULL;
    }
    globfree(&g);
    return paths;
}

void tl_free_paths(char **paths)
{
    for (char **p = paths; p && *p; p++)
        free(*p);
    free(paths);
}

const char *tl_stream_name(const char *path)
{
    static char name[256];
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(name, sizeof name, "%.*s", (int)strcspn(base, "."), base);
    return name;
}
