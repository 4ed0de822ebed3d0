/*
 * make_corpus: turns captured streams into seeds for fuzz_decoder.
 *   make_corpus OUTDIR FILE.stream...
 *
 * Writes, in fuzz_decoder's record format ([Int16 length][frame]...), one
 * file with the whole stream, and one per frame holding that frame after
 * the frames it depends on: the latest Relation and Type for each OID and
 * the Stream Start of an open block. So a seed for an Insert decodes as far
 * as its tuple instead of stopping at an unknown relation OID.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decoder/frame.h"
#include "decoder/pgoutput.h"
#include "tests/support/streamfile.h"

#define MAX_CONTEXT 256

/* The frames later frames depend on, by index into the stream. */
typedef struct dependency {
    int kind;
    uint32_t oid;
    size_t frame;
} dependency;

typedef struct context {
    dependency dep[MAX_CONTEXT];
    size_t n;
} context;

static bool write_record(FILE *f, const sf_frame *fr)
{
    if (fr->len > 0xffff)
        return true;  /* does not fit a record; the fuzzer can't use it */
    uint8_t len[2] = {(uint8_t)(fr->len >> 8), (uint8_t)fr->len};
    return fwrite(len, 1, 2, f) == 2 &&
           fwrite(fr->data, 1, fr->len, f) == fr->len;
}

/* Sets the dependency of this kind and OID to frame i (a later Relation
 * for the same OID replaces the earlier one). */
static void depend(context *c, int kind, uint32_t oid, size_t i)
{
    for (size_t j = 0; j < c->n; j++) {
        if (c->dep[j].kind == kind && c->dep[j].oid == oid) {
            memmove(&c->dep[j], &c->dep[j + 1], (c->n - j - 1) * sizeof c->dep[0]);
            c->n--;
            break;
        }
    }
    if (c->n < MAX_CONTEXT)
        c->dep[c->n++] = (dependency){kind, oid, i};
}

static void forget_stream_start(context *c)
{
    for (size_t j = 0; j < c->n; j++) {
        if (c->dep[j].kind == PGO_STREAM_START) {
            memmove(&c->dep[j], &c->dep[j + 1], (c->n - j - 1) * sizeof c->dep[0]);
            c->n--;
            return;
        }
    }
}

/* Decodes frame i to learn what later frames depend on. */
static void learn(context *c, pgo_decoder *dec, const sf_frame *fr, size_t i)
{
    frame f;
    pgo_msg m;
    rb_error err;
    if (!frame_decode(fr->data, fr->len, &f, &err) || f.kind != FRAME_XLOGDATA ||
        !pgo_decode(dec, f.data, f.data_len, &m, &err))
        return;
    if (m.kind == PGO_RELATION)
        depend(c, PGO_RELATION, m.relation->oid, i);
    else if (m.kind == PGO_TYPE)
        depend(c, PGO_TYPE, m.type.oid, i);
    else if (m.kind == PGO_STREAM_START)
        depend(c, PGO_STREAM_START, 0, i);
    else if (m.kind == PGO_STREAM_STOP)
        forget_stream_start(c);
}

static FILE *open_out(const char *dir, const char *name, const char *suffix)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s%s", dir, name, suffix);
    FILE *f = fopen(path, "wb");
    if (!f)
        perror(path);
    return f;
}

/* One seed per frame: its context, then itself. */
static bool write_frames(const char *dir, const char *name, const sf_stream *s)
{
    char *proto = sf_option(s, "proto_version");
    pgo_options o = {.proto_version = proto ? atoi(proto) : 1};
    free(proto);
    pgo_decoder *dec = pgo_new(&o);
    context *c = calloc(1, sizeof *c);
    bool ok = dec && c;
    for (size_t i = 0; ok && i < s->n; i++) {
        char suffix[32];
        snprintf(suffix, sizeof suffix, "-%05zu", i);
        FILE *f = open_out(dir, name, suffix);
        ok = f != NULL;
        for (size_t j = 0; ok && j < c->n; j++)
            ok = write_record(f, &s->frames[c->dep[j].frame]);
        ok = ok && write_record(f, &s->frames[i]);
        if (f && fclose(f) != 0)
            ok = false;
        learn(c, dec, &s->frames[i], i);
    }
    free(c);
    pgo_free(dec);
    return ok;
}

static bool convert(const char *dir, const char *path)
{
    sf_stream s;
    char err[512];
    if (!sf_load(path, &s, err, sizeof err)) {
        fprintf(stderr, "make_corpus: %s\n", err);
        return false;
    }
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)strcspn(base, "."), base);
    FILE *f = open_out(dir, name, "");
    bool ok = f != NULL;
    for (size_t i = 0; ok && i < s.n; i++)
        ok = write_record(f, &s.frames[i]);
    if (f && fclose(f) != 0)
        ok = false;
    ok = ok && write_frames(dir, name, &s);
    sf_free(&s);
    return ok;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: make_corpus OUTDIR FILE.stream...\n");
        return 2;
    }
    int failed = 0;
    for (int i = 2; i < argc; i++)
        failed |= !convert(argv[1], argv[i]);
    return failed;
}
