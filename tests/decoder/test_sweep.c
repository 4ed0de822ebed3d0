/*
 * test_sweep: every captured stream, cut short at every byte and with
 * every byte damaged.
 *
 * Truncations: before each message is decoded for real, every prefix of
 * its frame and of its pgoutput payload is decoded on the same decoder;
 * each must fail with a message and an offset inside the prefix, and the
 * real decode that follows must still match a clean decode of the stream
 * (so a failed decode changed nothing).
 *
 * Damage: each byte of each frame is flipped (^0xff, ^0x01) and
 * overwritten (0x00, 0x7f) and decoded on a decoder in the state before
 * that frame. It may succeed or fail, but must not read outside the
 * buffer or crash. Every buffer is allocated to its exact length so the
 * sanitizers see any overread.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "decoder/frame.h"
#include "decoder/pgoutput.h"
#include "tests/decoder/testlib.h"
#include "tests/support/streamfile.h"

static char **paths;

/* A stream with its clean decode: one dump line per frame ("" for 'k'). */
typedef struct sweep {
    const char *name;
    sf_stream s;
    pgo_options opts;
    char **ref;
    FILE *sink;       /* where decoded damage is printed, to touch it all */
} sweep;

static void load(sweep *sw, const char *path)
{
    char errbuf[512];
    *sw = (sweep){.name = path};
    ck_assert_msg(sf_load(path, &sw->s, errbuf, sizeof errbuf), "%s", errbuf);
    sw->opts = tl_stream_options(&sw->s);
    sw->ref = calloc(sw->s.n, sizeof *sw->ref);
    sw->sink = fopen("/dev/null", "w");
    ck_assert(sw->ref && sw->sink);
}

static void unload(sweep *sw)
{
    for (size_t i = 0; i < sw->s.n; i++)
        free(sw->ref[i]);
    free(sw->ref);
    fclose(sw->sink);
    sf_free(&sw->s);
}

/* Decodes frame i for real on dec; returns its dump ("" for keepalives). */
static char *decode_real(sweep *sw, pgo_decoder *dec, size_t i, pgo_msg *m)
{
    frame f;
    rb_error err;
    const sf_frame *fr = &sw->s.frames[i];
    ck_assert_msg(frame_decode(fr->data, fr->len, &f, &err), "%s frame %zu: %s",
                  sw->name, i, err.msg);
    m->kind = 0;
    if (f.kind != FRAME_XLOGDATA)
        return strdup("");
    ck_assert_msg(pgo_decode(dec, f.data, f.data_len, m, &err),
                  "%s frame %zu: %s", sw->name, i, err.msg);
    return tl_dump_str(m);
}

static void reference(sweep *sw)
{
    pgo_decoder *dec = pgo_new(&sw->opts);
    for (size_t i = 0; i < sw->s.n; i++) {
        pgo_msg m;
        sw->ref[i] = decode_real(sw, dec, i, &m);
    }
    pgo_free(dec);
}

/* ---- truncations ----------------------------------------------------------- */

static uint8_t *exact_copy(const uint8_t *p, size_t n)
{
    uint8_t *copy = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(copy);
    if (n)
        memcpy(copy, p, n);
    return copy;
}

static void expect_failure(const sweep *sw, size_t i, const char *what,
                           bool ok, const rb_error *err, size_t len)
{
    ck_assert_msg(!ok, "%s frame %zu: %s cut to %zu bytes decoded", sw->name,
                  i, what, len);
    ck_assert_msg(err->msg[0] != '\0', "%s frame %zu: %s cut to %zu: no message",
                  sw->name, i, what, len);
    ck_assert_msg(err->offset <= len, "%s frame %zu: %s cut to %zu: offset %zu",
                  sw->name, i, what, len, err->offset);
}

/* The frame cut short: the frame or the payload it carries must fail. */
static void cut_frame(sweep *sw, pgo_decoder *dec, size_t i, size_t len)
{
    uint8_t *buf = exact_copy(sw->s.frames[i].data, len);
    frame f;
    pgo_msg m;
    rb_error err = {0};
    bool ok = frame_decode(buf, len, &f, &err);
    if (ok) {
        /* Frames have no length: only the payload can notice. */
        ck_assert_int_eq(f.kind, FRAME_XLOGDATA);
        ok = pgo_decode(dec, f.data, f.data_len, &m, &err);
        len = f.data_len;
    }
    expect_failure(sw, i, "frame", ok, &err, len);
    free(buf);
}

static void cut_payload(sweep *sw, pgo_decoder *dec, size_t i,
                        const frame *f, size_t len)
{
    uint8_t *buf = exact_copy(f->data, len);
    pgo_msg m;
    rb_error err = {0};
    bool ok = pgo_decode(dec, buf, len, &m, &err);
    expect_failure(sw, i, "payload", ok, &err, len);
    free(buf);
}

static void truncations(sweep *sw, pgo_decoder *dec, size_t i)
{
    const sf_frame *fr = &sw->s.frames[i];
    for (size_t len = 0; len < fr->len; len++)
        cut_frame(sw, dec, i, len);
    frame f;
    rb_error err;
    ck_assert(frame_decode(fr->data, fr->len, &f, &err));
    if (f.kind != FRAME_XLOGDATA)
        return;
    for (size_t len = 0; len < f.data_len; len++)
        cut_payload(sw, dec, i, &f, len);
}

START_TEST(test_truncations)
{
    sweep sw;
    load(&sw, paths[_i]);
    reference(&sw);
    pgo_decoder *dec = pgo_new(&sw.opts);
    for (size_t i = 0; i < sw.s.n; i++) {
        truncations(&sw, dec, i);
        pgo_msg m;
        char *dump = decode_real(&sw, dec, i, &m);
        ck_assert_msg(strcmp(dump, sw.ref[i]) == 0,
                      "%s frame %zu after truncations:\n%s\nwant\n%s",
                      sw.name, i, dump, sw.ref[i]);
        free(dump);
    }
    pgo_free(dec);
    unload(&sw);
}
END_TEST

/* ---- damage ---------------------------------------------------------------- */

/* Whether a message kind changes what the decoder remembers. */
static bool changes_state(int kind)
{
    return kind == PGO_RELATION || kind == PGO_TYPE ||
           kind == PGO_STREAM_START || kind == PGO_STREAM_STOP;
}

/* A decoder in the state before frame i: only state changes replayed. */
static pgo_decoder *state_before(sweep *sw, const bool *stateful, size_t i)
{
    pgo_decoder *dec = pgo_new(&sw->opts);
    for (size_t j = 0; j < i; j++) {
        if (!stateful[j])
            continue;
        pgo_msg m;
        free(decode_real(sw, dec, j, &m));
    }
    return dec;
}

/* Decodes one damaged frame; true when it changed the decoder's state. */
static bool decode_damaged(sweep *sw, pgo_decoder *dec, const uint8_t *buf,
                           size_t len)
{
    frame f;
    pgo_msg m;
    rb_error err = {0};
    if (!frame_decode(buf, len, &f, &err)) {
        ck_assert(err.offset <= len && err.msg[0]);
        return false;
    }
    if (f.kind != FRAME_XLOGDATA)
        return false;
    if (!pgo_decode(dec, f.data, f.data_len, &m, &err)) {
        ck_assert(err.offset <= f.data_len && err.msg[0]);
        return false;
    }
    /* Print every field so a pointer out of bounds would be read. */
    tl_dump(sw->sink, &m);
    return changes_state(m.kind);
}

static const uint8_t flip_xor[] = {0xff, 0x01};
static const uint8_t flip_set[] = {0x00, 0x7f};

/* Every damaged variant of frame i; *dec is replaced when one changed it. */
static void damage(sweep *sw, pgo_decoder **dec, const bool *stateful, size_t i)
{
    const sf_frame *fr = &sw->s.frames[i];
    uint8_t *buf = exact_copy(fr->data, fr->len);
    for (size_t at = 0; at < fr->len; at++) {
        uint8_t variants[4] = {
            (uint8_t)(fr->data[at] ^ flip_xor[0]),
            (uint8_t)(fr->data[at] ^ flip_xor[1]), flip_set[0], flip_set[1],
        };
        for (size_t v = 0; v < sizeof variants; v++) {
            if (variants[v] == fr->data[at])
                continue;
            buf[at] = variants[v];
            if (decode_damaged(sw, *dec, buf, fr->len)) {
                pgo_free(*dec);
                *dec = state_before(sw, stateful, i);
            }
        }
        buf[at] = fr->data[at];
    }
    free(buf);
}

START_TEST(test_damage)
{
    sweep sw;
    load(&sw, paths[_i]);
    bool *stateful = calloc(sw.s.n, sizeof *stateful);
    pgo_decoder *dec = pgo_new(&sw.opts);
    for (size_t i = 0; i < sw.s.n; i++) {
        damage(&sw, &dec, stateful, i);
        pgo_msg m;
        free(decode_real(&sw, dec, i, &m));
        stateful[i] = changes_state(m.kind);
    }
    pgo_free(dec);
    free(stateful);
    unload(&sw);
}
END_TEST

static Suite *sweep_suite(size_t nstreams)
{
    Suite *s = suite_create("sweep");
    TCase *tc = tcase_create("streams");
    tcase_add_loop_test(tc, test_truncations, 0, (int)nstreams);
    tcase_add_loop_test(tc, test_damage, 0, (int)nstreams);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    paths = tl_stream_paths();
    size_t n = 0;
    while (paths[n])
        n++;
    if (n == 0) {
        fprintf(stderr, "sweep: no captured streams in tests/decoder/streams\n");
        return EXIT_FAILURE;
    }
    SRunner *sr = srunner_create(sweep_suite(n));
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    tl_free_paths(paths);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
