/*
 * worker against a sink of the test's own, which applies a change only
 * when the test lets it: the queue's hand-over seen event by event, with
 * the test as the stream loop (pushing, and reading the wake-up eventfd).
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "daemon/fanout.h"
#include "daemon/worker.h"

/* The gated sink: change number n waits until permits >= n. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static unsigned entered, permits;
static uint32_t last_xid;
static bool out_of_order;
static unsigned rollbacks;

static bool g_open(sink *s, lsn_t *durable)
{
    (void)s;
    *durable = 0;
    return true;
}

static bool g_begin(sink *s, const sink_event *ev)
{
    (void)s, (void)ev;
    return true;
}

static bool g_change(sink *s, const sink_event *ev)
{
    (void)s;
    pthread_mutex_lock(&mu);
    unsigned n = ++entered;
    out_of_order = out_of_order || ev->xid != last_xid + 1;
    last_xid = ev->xid;
    pthread_cond_broadcast(&cond);
    while (permits < n)
        pthread_cond_wait(&cond, &mu);
    pthread_mutex_unlock(&mu);
    return true;
}

static bool g_commit(sink *s, const sink_event *ev, bool more)
{
    (void)s, (void)ev, (void)more;
    return true;
}

static bool g_flush(sink *s, lsn_t *durable)
{
    (void)s;
    *durable = 0;
    return true;
}

static void g_nothing(sink *s)
{
    (void)s;
}

static void g_rollback(sink *s)
{
    (void)s;
    pthread_mutex_lock(&mu);
    rollbacks++;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&mu);
}

static const sink_ops gated_ops = {
    .kind = "gated",
    .flush_every_ms = 3600 * 1000,   /* no flush while the test steps */
    .open = g_open,
    .begin = g_begin,
    .change = g_change,
    .commit = g_commit,
    .flush = g_flush,
    .rollback = g_rollback,
    .close = g_nothing,
    .destroy = g_nothing,
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Lets change n through and waits until the worker is in change n + 1. */
static void step(unsigned n)
{
    pthread_mutex_lock(&mu);
    permits = n;
    pthread_cond_broadcast(&cond);
    while (entered < n + 1)
        pthread_cond_wait(&cond, &mu);
    pthread_mutex_unlock(&mu);
}

/* Wake-ups written to the eventfd since the last read. */
static uint64_t wakes(int fd)
{
    uint64_t n = 0;
    if (read(fd, &n, sizeof n) < 0)
        ck_assert_int_eq(errno, EAGAIN);
    return n;
}

static sink_event *change(uint32_t seq)
{
    sink_event *ev = sink_event_txn(SINK_INSERT, seq, 1, 0, 0);
    ck_assert_ptr_nonnull(ev);
    return ev;
}

/*
 * A full queue wakes the stream loop once half of it has drained, not at
 * every event applied (a context switch per event for both threads), and
 * the events pushed after the wake follow those before it in order.
 */
START_TEST(full_queue_wakes_loop_at_half)
{
    enum { ROOM = 100 };
    cfg_service svc = {.name = "gated"};
    sink s = {.ops = &gated_ops, .service = &svc};
    const size_t size = sizeof(sink_event);
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    worker *w = worker_start(&s, fd, ROOM * size);
    ck_assert_ptr_nonnull(w);
    double deadline = now_s() + 10;
    while (worker_get_state(w) != WORKER_READY && now_s() < deadline)
        usleep(1000);
    ck_assert_int_eq(worker_get_state(w), WORKER_READY);
    unsigned gen = worker_generation(w);
    ck_assert(worker_push(w, gen, sink_event_txn(SINK_BEGIN, 1, 1, 0, 0)));
    uint32_t seq = 1;
    sink_event *ev;
    while (worker_push(w, gen, ev = change(seq)))
        seq++;
    unsigned queued = seq - 1;           /* ev (seq) did not fit */
    ck_assert_uint_ge(queued, ROOM - 1);
    wakes(fd);                           /* the open's */
    /* Queued: BEGIN (applied) and `queued` changes, ROOM events' room. */
    unsigned half = queued - ROOM / 2;   /* applied when half is free */
    for (unsigned n = 1; n < half; n++) {
        step(n);
        ck_assert_msg(wakes(fd) == 0, "woken after %u of %u changes, "
                      "before half of the queue drained", n, queued);
    }
    step(half);
    ck_assert_uint_eq(wakes(fd), 1);
    /* As the stream loop would: what did not fit, then more. */
    ck_assert(worker_push(w, gen, ev));
    for (unsigned k = 0; k < 10; k++)
        ck_assert(worker_push(w, gen, change(++seq)));
    ck_assert(worker_push(w, gen, sink_event_txn(SINK_COMMIT, 1, 1, 2, 0)));
    pthread_mutex_lock(&mu);
    permits = UINT32_MAX;
    pthread_cond_broadcast(&cond);
    while (entered < seq && now_s() < deadline + 10)
        pthread_cond_wait(&cond, &mu);
    ck_assert_uint_eq(entered, seq);
    ck_assert(!out_of_order);
    pthread_mutex_unlock(&mu);
    worker_free(w);
    close(fd);
}
END_TEST

/* Waits until the sink has entered n changes; false past the deadline. */
static bool entered_by(unsigned n, double deadline)
{
    pthread_mutex_lock(&mu);
    permits = UINT32_MAX;
    pthread_cond_broadcast(&cond);
    while (entered < n && now_s() < deadline) {
        pthread_mutex_unlock(&mu);
        usleep(1000);
        pthread_mutex_lock(&mu);
    }
    bool ok = entered >= n;
    pthread_mutex_unlock(&mu);
    return ok;
}

/*
 * Wakes held while a burst is read: every transaction pushed meanwhile,
 * one of them large enough to wake the thread on its own, is applied in
 * order once they are let go, and nothing waits behind the release.
 */
START_TEST(held_wakes_lose_nothing)
{
    enum { ROOM = 80 };
    cfg_service svc = {.name = "gated"};
    sink s = {.ops = &gated_ops, .service = &svc};
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    worker *w = worker_start(&s, fd, ROOM * sizeof(sink_event));
    ck_assert_ptr_nonnull(w);
    double deadline = now_s() + 10;
    while (worker_get_state(w) != WORKER_READY && now_s() < deadline)
        usleep(1000);
    ck_assert_int_eq(worker_get_state(w), WORKER_READY);
    unsigned gen = worker_generation(w), seq = 0;
    pthread_mutex_lock(&mu);
    entered = permits = 0;
    last_xid = 0;
    out_of_order = false;
    pthread_mutex_unlock(&mu);
    worker_hold_wakes(w, true);
    for (uint32_t txn = 1; txn <= 4; txn++) {
        unsigned rows = txn == 3 ? ROOM / 4 : 1;
        lsn_t at = 10 * txn;
        ck_assert(worker_push(w, gen, sink_event_txn(SINK_BEGIN, txn, at, 0, 0)));
        for (unsigned r = 0; r < rows; r++)
            ck_assert(worker_push(w, gen, change(++seq)));
        ck_assert(worker_push(w, gen,
                              sink_event_txn(SINK_COMMIT, txn, at, at + 1, 0)));
    }
    worker_hold_wakes(w, false);
    ck_assert_msg(entered_by(seq, now_s() + 10), "%u of %u changes applied",
                  entered, seq);
    ck_assert(!out_of_order);
    worker_free(w);
    close(fd);
}
END_TEST

/*
 * A restart while a COMMIT still waits in the fan-out's FIFO (the
 * worker's queue full): the worker holds that transaction open without
 * its end, so it gets a ROLLBACK, as for a transaction cut short while
 * being read; otherwise the replay's BEGIN of it would come inside it.
 */
START_TEST(restart_rolls_back_a_held_commit)
{
    enum { ROOM = 40 };
    cfg_service svc = {.name = "gated"};
    cfg config = {.services = &svc, .n_services = 1};
    sink s = {.ops = &gated_ops, .config = &config, .service = &svc};
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    fanout *fo = fanout_new(&config, fd, ROOM * sizeof(sink_event));
    ck_assert(fo && fanout_add(fo, &s, false));
    double deadline = now_s() + 10;
    while (!fanout_needs_restart(fo) && now_s() < deadline)
        usleep(1000);
    fanout_restart(fo);                  /* the stream takes it on */
    ck_assert_int_eq(fanout_service_of(fo, 0), 0);
    pthread_mutex_lock(&mu);
    entered = permits = rollbacks = 0;
    last_xid = 0;
    out_of_order = false;
    pthread_mutex_unlock(&mu);
    fanout_txn_begin(fo, 1, 10, 0);
    uint32_t seq = 0;
    while (!fanout_busy(fo))             /* until one waits for room */
        ck_assert(fanout_send(fo, 0, change(++seq)));
    ck_assert(fanout_txn_end(fo, 11, 0));
    fanout_restart(fo);
    ck_assert_msg(entered_by(seq - 1, now_s() + 10), "%u of %u changes "
                  "applied", entered, seq - 1);
    pthread_mutex_lock(&mu);
    while (rollbacks == 0 && now_s() < deadline + 10) {
        pthread_mutex_unlock(&mu);
        usleep(1000);
        pthread_mutex_lock(&mu);
    }
    unsigned got = rollbacks;
    pthread_mutex_unlock(&mu);
    ck_assert_msg(got == 1, "%u rollbacks after the restart", got);
    fanout_stop(fo);
    fanout_free(fo);
    close(fd);
}
END_TEST

/* The failing sink: opens at once, fails at the first idle call. */
static double opened[3];
static unsigned opens;

static bool f_open(sink *s, lsn_t *durable)
{
    (void)s;
    *durable = 0;
    pthread_mutex_lock(&mu);
    if (opens < 3)
        opened[opens] = now_s();
    opens++;
    pthread_mutex_unlock(&mu);
    return true;
}

static bool f_idle(sink *s, lsn_t *durable)
{
    (void)durable;
    return sink_fail(s, 0, "refused again");
}

/*
 * A sink that opens and fails again before it holds anything more (a row
 * its target refuses each time) waits longer at each try. The backoff
 * started again at every open, so it retried every second, restarting
 * the stream for every service each time.
 */
START_TEST(failing_again_after_open_backs_off)
{
    cfg_service svc = {.name = "failing"};
    cfg config = {.services = &svc, .n_services = 1};
    sink_ops ops = gated_ops;
    ops.open = f_open;
    ops.idle = f_idle;
    sink s = {.ops = &ops, .config = &config, .service = &svc};
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    opens = 0;
    worker *w = worker_start(&s, fd, 1 << 20);
    ck_assert_ptr_nonnull(w);
    double deadline = now_s() + 20;
    pthread_mutex_lock(&mu);
    while (opens < 3 && now_s() < deadline) {
        pthread_mutex_unlock(&mu);
        usleep(10000);
        pthread_mutex_lock(&mu);
    }
    unsigned n = opens;
    pthread_mutex_unlock(&mu);
    worker_stop(w);
    worker_free(w);
    close(fd);
    ck_assert_uint_ge(n, 3);
    /* 0.75 to 1 s after the first failure, 1.5 to 2 s after the second. */
    double first = opened[1] - opened[0], second = opened[2] - opened[1];
    ck_assert_msg(second >= 1.4 && second > first, "retried %.2f s, then "
                  "%.2f s after failing again", first, second);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("worker");
    TCase *tc = tcase_create("queue");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, full_queue_wakes_loop_at_half);
    tcase_add_test(tc, held_wakes_lose_nothing);
    tcase_add_test(tc, restart_rolls_back_a_held_commit);
    tcase_add_test(tc, failing_again_after_open_backs_off);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
