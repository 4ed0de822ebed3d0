/*
 * stream against frames the test builds, with no sink: what a frame the
 * stream refuses leaves of the position it reports.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "daemon/fanout.h"
#include "daemon/stream.h"

static size_t put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
    return 8;
}

/* An XLogData frame of a Stream Commit whose end is `end`. */
static size_t stream_commit_frame(uint8_t *buf, uint32_t xid, uint64_t end)
{
    size_t n = 0;
    buf[n++] = 'w';
    n += put64(buf + n, end);          /* the message's start */
    n += put64(buf + n, end);          /* the server's end of WAL */
    n += put64(buf + n, 0);            /* its clock */
    buf[n++] = 'c';
    for (int i = 0; i < 4; i++)
        buf[n++] = (uint8_t)(xid >> (24 - 8 * i));
    buf[n++] = 0;                      /* flags */
    n += put64(buf + n, end - 0x20);   /* commit LSN */
    n += put64(buf + n, end);          /* end LSN */
    n += put64(buf + n, 0);            /* commit time */
    return n;
}

/*
 * A Stream Commit of a transaction never streamed is refused. Its end was
 * counted as received before the refusal, so the restart after it
 * confirmed the transaction to the slot, which then never sent it again.
 */
/* A stream of one service without a sink, restarted, ready for frames. */
typedef struct bench {
    char dir[32];
    cfg_service svc;
    cfg config;
    cfg_source source;
    int fd;
    fanout *fo;
    stream *st;
} bench;

static void bench_open(bench *b)
{
    snprintf(b->dir, sizeof b->dir, "/tmp/cleave-stream-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(b->dir));
    b->svc = (cfg_service){.name = "svc"};
    b->config = (cfg){.name = "t", .services = &b->svc, .n_services = 1,
                      .state_dir = b->dir};
    b->source = (cfg_source){.loop_prevention = true};
    b->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ck_assert_int_ge(b->fd, 0);
    b->fo = fanout_new(&b->config, b->fd, 1 << 20);
    ck_assert_ptr_nonnull(b->fo);
    b->st = stream_new(&b->config, &b->source, b->fo, b->dir);
    ck_assert_ptr_nonnull(b->st);
    ck_assert(stream_restart(b->st, 2));
}

static void bench_close(bench *b)
{
    stream_free(b->st);
    fanout_stop(b->fo);
    fanout_free(b->fo);
    close(b->fd);
    rmdir(b->dir);
}

START_TEST(refused_frame_moves_nothing)
{
    bench b;
    bench_open(&b);
    stream *st = b.st;
    uint8_t buf[128];
    size_t len = stream_commit_frame(buf, 77, 0x5000);
    bool reply;
    char err[256] = "";
    ck_assert(!stream_frame(st, buf, len, &reply, err, sizeof err));
    ck_assert_msg(err[0], "refused without a reason");
    ck_assert_msg(stream_received(st) < 0x5000, "received %llx after the "
                  "refusal: %s", (unsigned long long)stream_received(st), err);
    ck_assert(stream_restart(st, 2));
    ck_assert_uint_lt(stream_flush_lsn(st), 0x5000);
    bench_close(&b);
}
END_TEST

static size_t frame_head(uint8_t *buf, uint64_t at)
{
    size_t n = 0;
    buf[n++] = 'w';
    n += put64(buf + n, at);
    n += put64(buf + n, at);
    n += put64(buf + n, 0);
    return n;
}

static size_t begin_frame(uint8_t *buf, uint32_t xid, uint64_t commit)
{
    size_t n = frame_head(buf, commit - 0x100);
    buf[n++] = 'B';
    n += put64(buf + n, commit);
    n += put64(buf + n, 0);
    for (int i = 0; i < 4; i++)
        buf[n++] = (uint8_t)(xid >> (24 - 8 * i));
    return n;
}

static size_t commit_frame(uint8_t *buf, uint64_t commit, uint64_t end)
{
    size_t n = frame_head(buf, end);
    buf[n++] = 'C';
    buf[n++] = 0;
    n += put64(buf + n, commit);
    n += put64(buf + n, end);
    n += put64(buf + n, 0);
    return n;
}

/*
 * A Commit without its Begin, and a Begin inside a transaction, are
 * refused: the first moved the received position to its end, the second
 * merged two source transactions into one.
 */
START_TEST(messages_out_of_order_refused)
{
    bench b;
    bench_open(&b);
    stream *st = b.st;
    uint8_t buf[128];
    bool reply;
    char err[256] = "";
    size_t len = commit_frame(buf, 0x4fe0, 0x5000);
    ck_assert(!stream_frame(st, buf, len, &reply, err, sizeof err));
    ck_assert_msg(strstr(err, "Commit message outside"), "%s", err);
    ck_assert_uint_lt(stream_received(st), 0x5000);
    ck_assert(stream_restart(st, 2));
    len = begin_frame(buf, 7, 0x6000);
    ck_assert_msg(stream_frame(st, buf, len, &reply, err, sizeof err), "%s",
                  err);
    len = begin_frame(buf, 8, 0x7000);
    ck_assert(!stream_frame(st, buf, len, &reply, err, sizeof err));
    ck_assert_msg(strstr(err, "Begin message inside transaction 7"), "%s",
                  err);
    bench_close(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("stream");
    TCase *tc = tcase_create("frames");
    tcase_add_test(tc, refused_frame_moves_nothing);
    tcase_add_test(tc, messages_out_of_order_refused);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
