/*
 * Live capture: every scenario in tests/capture runs against a throwaway
 * cluster of the installed PostgreSQL, the walsender's frames are decoded,
 * and the messages must match the committed fixture in
 * tests/decoder/streams (so the fixtures stay true to the server), with no
 * decode error anywhere.
 *
 * What is compared is what the protocol promises: the messages in order,
 * each with its contents (relation, columns, values, prefixes, gids), but
 * not the values a run cannot repeat (xids, LSNs, times, the OIDs of
 * types the scenario creates) and not where a server chose to cut a
 * streamed transaction into blocks: minor releases differ there (15.18 and
 * 15.20 do). So Stream Start and Stop are left out, a Relation message
 * that repeats the last one for its relation is too (it comes again with
 * each streamed block), and a Stream Abort is replaced by what it means:
 * the changes the aborted (sub)transaction streamed are taken back (a
 * server that had not streamed them yet sends neither them nor the abort).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "decoder/frame.h"
#include "decoder/pgoutput.h"
#include "tests/support/capture.h"
#include "tests/support/streamfile.h"

static pgc_cluster *cluster;

static const char *const scenarios[] = {
    "dml_v1", "binary_v2", "message_origin_v2", "streamed_v2", "twophase_v3",
};

/* The messages of one stream, one line each. */
typedef struct msg_line {
    char *text;
    uint32_t top;            /* the streamed transaction it came in, or 0 */
    uint32_t xid;            /* the (sub)transaction that made a change */
    bool schema;             /* a Relation or Type inside a streamed block */
} msg_line;

typedef struct msg_list {
    msg_line *line;
    size_t n;
    uint32_t streaming;      /* the xid of the open Stream Start, or 0 */
} msg_list;

/* Types the scenarios create get a new OID every run. */
#define FIRST_NORMAL_OID 16384

static void put_tuple(FILE *f, const pgo_tuple *t)
{
    for (uint16_t i = 0; i < t->ncols; i++) {
        const pgo_value *v = &t->cols[i];
        fputc(i ? ',' : '(', f);
        if (v->kind == 't' || v->kind == 'b')
            fprintf(f, "%c:%.*s", v->kind, (int)v->len, (const char *)v->data);
        else
            fputc(v->kind, f);
    }
    fputs(t->ncols ? ")" : "()", f);
}

static void put_relation(FILE *f, const pgo_relation *r)
{
    fprintf(f, " %s.%s %c", r->nspname, r->relname, r->replident);
    for (uint16_t i = 0; i < r->ncols; i++) {
        uint32_t type = r->cols[i].type_oid;
        fprintf(f, " %s:%u:%d:%u", r->cols[i].name,
                type < FIRST_NORMAL_OID ? type : 0, r->cols[i].typmod,
                r->cols[i].flags);
    }
}

static void put_change(FILE *f, const pgo_msg *m)
{
    fprintf(f, " %s.%s", m->change.rel->nspname, m->change.rel->relname);
    if (m->change.old_kind) {
        fprintf(f, " %c", m->change.old_kind);
        put_tuple(f, &m->change.old_tuple);
    }
    if (m->kind != PGO_DELETE) {
        fputs(" new", f);
        put_tuple(f, &m->change.new_tuple);
    }
}

/* The message's contents that every run of the scenario repeats. */
static void put_contents(FILE *f, const pgo_msg *m)
{
    switch (m->kind) {
    case PGO_RELATION:
        put_relation(f, m->relation);
        break;
    case PGO_INSERT: case PGO_UPDATE: case PGO_DELETE:
        put_change(f, m);
        break;
    case PGO_TRUNCATE:
        fprintf(f, " options=%u", m->truncate.options);
        for (uint32_t i = 0; i < m->truncate.nrels; i++)
            fprintf(f, " %s", m->truncate.rels[i]->relname);
        break;
    case PGO_MESSAGE:
        fprintf(f, " %u %s %.*s", m->message.flags, m->message.prefix,
                (int)m->message.len, (const char *)m->message.content);
        break;
    case PGO_ORIGIN:
        fprintf(f, " %s", m->origin.name);
        break;
    case PGO_TYPE:
        fprintf(f, " %s.%s", m->type.nspname, m->type.typname);
        break;
    case PGO_BEGIN_PREPARE: case PGO_PREPARE: case PGO_COMMIT_PREPARED:
    case PGO_STREAM_PREPARE:
        fprintf(f, " %s", m->prepare.gid);
        break;
    case PGO_ROLLBACK_PREPARED:
        fprintf(f, " %s", m->rollback_prepared.gid);
        break;
    default:
        break;
    }
}

static char *describe(const pgo_msg *m)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(f);
    fputs(pgo_kind_name(m->kind), f);
    put_contents(f, m);
    fclose(f);
    return text;
}

/* Whether a Relation message says what the last one for it said. */
static bool relation_repeats(const msg_list *l, const pgo_relation *r,
                             const char *line)
{
    char start[300];
    int head = snprintf(start, sizeof start, "Relation %s.%s ", r->nspname,
                        r->relname);
    for (size_t i = l->n; i-- > 0;)
        if (strncmp(l->line[i].text, start, (size_t)head) == 0)
            return strcmp(l->line[i].text, line) == 0;
    return false;
}

/*
 * Takes back what an aborted streamed (sub)transaction sent: its changes,
 * and with the whole transaction the Relation and Type messages sent for
 * it (a server that never streamed it sends them with a later one).
 */
static void stream_abort(msg_list *l, const pgo_msg *m)
{
    bool whole = m->stream_abort.subxid == m->xid ||
                 m->stream_abort.subxid == 0;
    size_t kept = 0;
    for (size_t i = 0; i < l->n; i++) {
        msg_line *x = &l->line[i];
        bool gone = x->top == m->xid && x->top != 0 &&
                    (whole || (!x->schema && x->xid == m->stream_abort.subxid));
        if (gone)
            free(x->text);
        else
            l->line[kept++] = *x;
    }
    l->n = kept;
}

static bool is_change(pgo_kind kind)
{
    return kind == PGO_INSERT || kind == PGO_UPDATE || kind == PGO_DELETE ||
           kind == PGO_TRUNCATE || kind == PGO_MESSAGE;
}

/* Stream boundaries and aborts; true when the message is dealt with. */
static bool stream_control(msg_list *l, const pgo_msg *m)
{
    switch (m->kind) {
    case PGO_STREAM_START:
        l->streaming = m->xid;
        return true;
    case PGO_STREAM_STOP:
        l->streaming = 0;
        return true;
    case PGO_STREAM_ABORT:
        stream_abort(l, m);
        return true;
    default:
        return false;
    }
}

static void add_message(msg_list *l, const pgo_msg *m)
{
    if (stream_control(l, m))
        return;
    char *line = describe(m);
    if (m->kind == PGO_RELATION && relation_repeats(l, m->relation, line)) {
        free(line);
        return;
    }
    l->line = realloc(l->line, (l->n + 1) * sizeof *l->line);
    ck_assert_ptr_nonnull(l->line);
    bool change = m->streamed && is_change(m->kind);
    bool schema = m->streamed &&
                  (m->kind == PGO_RELATION || m->kind == PGO_TYPE);
    l->line[l->n++] = (msg_line){.text = line,
                                 .top = change || schema ? l->streaming : 0,
                                 .xid = change ? m->xid : 0,
                                 .schema = schema};
}

static pgo_decoder *decoder_for(const sf_stream *s)
{
    char *proto = sf_option(s, "proto_version");
    pgo_options opts = {.proto_version = proto ? atoi(proto) : 1};
    free(proto);
    pgo_decoder *dec = pgo_new(&opts);
    ck_assert_ptr_nonnull(dec);
    return dec;
}

/* The messages of a stream file; keepalives left out. */
static msg_list messages_of(const char *path)
{
    sf_stream s;
    char err[256];
    ck_assert_msg(sf_load(path, &s, err, sizeof err), "%s", err);
    pgo_decoder *dec = decoder_for(&s);
    msg_list l = {0};
    for (size_t i = 0; i < s.n; i++) {
        frame fr;
        pgo_msg msg;
        rb_error e;
        ck_assert_msg(frame_decode(s.frames[i].data, s.frames[i].len, &fr, &e),
                      "%s frame %zu: %s", path, i, e.msg);
        if (fr.kind != FRAME_XLOGDATA)
            continue;
        ck_assert_msg(pgo_decode(dec, fr.data, fr.data_len, &msg, &e),
                      "%s frame %zu offset %zu: %s", path, i, e.offset, e.msg);
        add_message(&l, &msg);
    }
    pgo_free(dec);
    sf_free(&s);
    return l;
}

static void free_list(msg_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->line[i].text);
    free(l->line);
}

static const char *line_or_end(const msg_list *l, size_t i)
{
    return i < l->n ? l->line[i].text : "(end of stream)";
}

/* Names the first message where the two differ, if one does. */
static void assert_same(const char *name, const msg_list *got,
                        const msg_list *want)
{
    size_t i = 0;
    while (i < got->n && i < want->n &&
           strcmp(got->line[i].text, want->line[i].text) == 0)
        i++;
    ck_assert_msg(i == got->n && i == want->n,
                  "%s: message %zu of %zu: the server now sends\n  %.300s\n"
                  "where the fixture (%zu messages) has\n  %.300s",
                  name, i + 1, got->n, line_or_end(got, i), want->n,
                  line_or_end(want, i));
}

START_TEST(scenario_matches_fixture)
{
    const char *name = scenarios[_i];
    char sql[1024], fixture[1024], live[1024];
    snprintf(sql, sizeof sql, "%s/tests/capture/%s.sql", pgc_srcdir(), name);
    snprintf(fixture, sizeof fixture, "%s/tests/decoder/streams/%s.stream",
             pgc_srcdir(), name);
    snprintf(live, sizeof live, "%s/%s.stream", cluster->root, name);
    ck_assert_msg(cap_scenario(cluster, sql, live), "capture of %s", name);
    msg_list want = messages_of(fixture);
    msg_list got = messages_of(live);
    ck_assert_msg(got.n > 0, "%s: nothing captured", name);
    assert_same(name, &got, &want);
    free_list(&want);
    free_list(&got);
}
END_TEST
int main(void)
{
    cluster = pgc_start(NULL);
    if (!cluster)
        return EXIT_FAILURE;
    Suite *s = suite_create("capture");
    TCase *tc = tcase_create("live");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, scenario_matches_fixture, 0,
                        (int)(sizeof scenarios / sizeof scenarios[0]));
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    pgc_stop(cluster);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
