/*
 * syncsink around a sink of the test's own whose durable position the
 * test sets (a Kafka producer still waiting for acknowledgements, say):
 * what the wrapper reports as held across a resync's hold and replay.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/syncsink.h"
#include "daemon/syncstate.h"

/* The slow sink: takes everything, holds durably what the test says. */
static lsn_t slow_durable;

static bool w_open(sink *s, lsn_t *durable)
{
    (void)s;
    *durable = slow_durable;
    return true;
}

static bool w_event(sink *s, const sink_event *ev)
{
    (void)s, (void)ev;
    return true;
}

/* How many times the real sink was given each of 0x100 .. 0x4ff. */
static int given[5];

static bool w_commit(sink *s, const sink_event *ev, bool more)
{
    (void)s, (void)more;
    if (ev->commit_lsn < 0x500)
        given[ev->commit_lsn >> 8]++;
    return true;
}

static bool w_flush(sink *s, lsn_t *durable)
{
    (void)s;
    *durable = slow_durable;
    return true;
}

static void w_nothing(sink *s)
{
    (void)s;
}

static const sink_ops slow_ops = {
    .kind = "slow",
    .id = SINK_KIND_KAFKA,
    .flush_every_ms = 3600 * 1000,
    .open = w_open,
    .begin = w_event,
    .change = w_event,
    .commit = w_commit,
    .flush = w_flush,
    .rollback = w_nothing,
    .close = w_nothing,
    .destroy = w_nothing,
};

/* One transaction of one logical message (which no table filter holds). */
static void txn(sink *s, lsn_t commit, lsn_t end)
{
    sink_event *b = sink_event_txn(SINK_BEGIN, (uint32_t)commit, commit, end,
                                   0);
    sink_event *m = sink_event_message(commit, commit - 8, true, "t", "x", 1);
    sink_event *c = sink_event_txn(SINK_COMMIT, (uint32_t)commit, commit, end,
                                   0);
    ck_assert(b && m && c);
    ck_assert_msg(s->ops->begin(s, b) && s->ops->change(s, m) &&
                  s->ops->commit(s, c, false), "%s", s->error);
    sink_event_free(b);
    sink_event_free(m);
    sink_event_free(c);
}

static lsn_t held(sink *s)
{
    lsn_t d = 0;
    ck_assert_msg(s->ops->flush(s, &d), "%s", s->error);
    return d;
}

/*
 * One service of one table, copied and streaming, in a state directory of
 * its own; its sink the slow one wrapped.
 */
typedef struct bench {
    char dir[32];
    cfg_table t;
    cfg_service svc;
    cfg config;
    syncstate *st;
    sink inner;
    sink *s;
} bench;

static void bench_open(bench *b)
{
    char err[256], hold[64];
    snprintf(b->dir, sizeof b->dir, "/tmp/cleave-syncsink-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(b->dir));
    snprintf(hold, sizeof hold, "%s/hold", b->dir);
    ck_assert_int_eq(mkdir(hold, 0700), 0);
    b->t = (cfg_table){.schema = "public", .name = "t"};
    b->svc = (cfg_service){.name = "svc", .owned = &b->t, .n_owned = 1};
    b->config = (cfg){.services = &b->svc, .n_services = 1,
                      .state_dir = b->dir};
    b->st = syncstate_open(&b->config, "slot", true, err, sizeof err);
    ck_assert_msg(b->st, "%s", err);
    ck_assert(syncstate_set_table(b->st, 0, 0, SYNC_DONE, 0, err,
                                  sizeof err) &&
              syncstate_set_finished(b->st, 0, true, err, sizeof err));
    b->inner = (sink){.ops = &slow_ops, .config = &b->config,
                      .service = &b->svc};
    b->s = syncsink_new(&b->inner, b->st, 0);
    ck_assert_ptr_nonnull(b->s);
}

static void bench_close(bench *b)
{
    char cmd[128];
    b->s->ops->close(b->s);
    sink_destroy(b->s);
    syncstate_free(b->st);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", b->dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* A resync starts (set) or ends (unset): the service is copied again. */
static void copying(bench *b, bool on)
{
    char err[256];
    ck_assert_msg(syncstate_set_finished(b->st, 0, !on, err, sizeof err),
                  "%s", err);
}

/*
 * A transaction given to the real sink but not yet durable there when a
 * resync's hold begins is in neither the spool nor the real sink: after
 * the copy, while the spool is replayed and the real sink has still not
 * confirmed it, what is held stays below it. It was reported held up to
 * the spool's end, so the slot moved past a transaction a crash (or a
 * refused message) would then lose. Reopened then, it starts from what
 * the real sink holds, the spool gone (the stream brings it again).
 */
START_TEST(replay_holds_below_the_unconfirmed)
{
    bench b;
    bench_open(&b);
    sink *s = b.s;
    lsn_t d;
    slow_durable = 0x100;
    ck_assert(s->ops->open(s, &d));
    txn(s, 0x200, 0x208);                   /* given, not yet durable */
    copying(&b, true);
    txn(s, 0x300, 0x308);                   /* the resync holds it */
    ck_assert_uint_le(held(s), 0x100);
    copying(&b, false);
    txn(s, 0x400, 0x408);                   /* replay, then live */
    ck_assert_msg(held(s) <= 0x100, "held up to %llx with 0x208 not "
                  "confirmed", (unsigned long long)held(s));
    /* Reopened so: the spool goes, and the stream brings it all again. */
    s->ops->close(s);
    ck_assert(s->ops->open(s, &d));
    ck_assert_uint_eq(d, 0x100);
    char spool[128];
    snprintf(spool, sizeof spool, "%s/hold/svc.slow.spool", b.dir);
    ck_assert_int_ne(access(spool, F_OK), 0);
    txn(s, 0x200, 0x208);
    txn(s, 0x300, 0x308);
    txn(s, 0x400, 0x408);
    slow_durable = 0x408;
    ck_assert_uint_eq(held(s), 0x408);
    bench_close(&b);
}
END_TEST

/*
 * A stream restarted while a resync holds (the source's connection cut
 * mid-transaction) starts again from what the real sink confirmed, below
 * the spool: the transactions it brings again are in the spool already,
 * or in the real sink, and each must reach the real sink once.
 */
START_TEST(restart_in_a_hold_spools_once)
{
    bench b;
    bench_open(&b);
    sink *s = b.s;
    lsn_t d;
    memset(given, 0, sizeof given);
    slow_durable = 0x100;
    ck_assert(s->ops->open(s, &d));
    txn(s, 0x200, 0x208);                   /* given, not yet durable */
    copying(&b, true);
    txn(s, 0x300, 0x308);                   /* held */
    /* The connection is cut: the stream starts again from what is held. */
    s->ops->rollback(s);
    ck_assert_uint_le(held(s), 0x100);
    txn(s, 0x200, 0x208);
    txn(s, 0x300, 0x308);
    copying(&b, false);
    txn(s, 0x400, 0x408);                   /* replay, then live */
    for (int i = 2; i <= 4; i++)
        ck_assert_msg(given[i] == 1, "the transaction at 0x%x00 reached the "
                      "real sink %d times", i, given[i]);
    bench_close(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("syncsink");
    TCase *tc = tcase_create("hold");
    tcase_add_test(tc, replay_holds_below_the_unconfirmed);
    tcase_add_test(tc, restart_in_a_hold_spools_once);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
