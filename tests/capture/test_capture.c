/*
 * Live capture: every scenario in tests/capture runs against a throwaway
 * cluster of the installed PostgreSQL, the walsender's frames are decoded,
 * and the sequence of message kinds must match the committed fixture in
 * tests/decoder/streams (so the fixtures stay true to the server), with
 * no decode error anywhere.
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

/* The pgoutput kinds of a stream, one char each; keepalives left out. */
static char *kinds_of(const char *path)
{
    sf_stream s;
    char err[256];
    ck_assert_msg(sf_load(path, &s, err, sizeof err), "%s", err);
    char *proto = sf_option(&s, "proto_version");
    pgo_options opts = {.proto_version = proto ? atoi(proto) : 1};
    free(proto);
    pgo_decoder *dec = pgo_new(&opts);
    ck_assert_ptr_nonnull(dec);
    char *kinds = calloc(s.n + 1, 1);
    size_t nk = 0;
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
        kinds[nk++] = (char)msg.kind;
    }
    pgo_free(dec);
    sf_free(&s);
    return kinds;
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
    char *want = kinds_of(fixture);
    char *got = kinds_of(live);
    ck_assert_msg(strlen(got) > 0, "%s: nothing captured", name);
    ck_assert_msg(strcmp(want, got) == 0,
                  "%s: the server now sends\n  %s\nwhere the fixture has\n  %s",
                  name, got, want);
    free(want);
    free(got);
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
