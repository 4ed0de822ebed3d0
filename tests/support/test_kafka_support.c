/*
 * test_kafka_support: the mock Kafka cluster process and the real client
 * that reads it back (tests/support/kafka.h), as later Kafka tests use
 * them.
 *
 * Records round trip with their keys, per-key order and a tombstone; a
 * topic that does not exist reads as empty and stays absent; a record
 * held back by its leader being down is delivered once the broker is up;
 * retriable Produce errors are ridden out with the record written once,
 * and a permanent one reaches the producer; the mock exits 0 and is
 * reaped on quit, and dies with the process that started it even while
 * its stdin is still open.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "tests/support/kafka.h"

#define NKEYS 10
#define PER_KEY 10

static kt_mock *mock;
static char err[512];

static void mock_setup(void)
{
    mock = kt_mock_start(NULL);
    ck_assert_ptr_nonnull(mock);
}

static void mock_teardown(void)
{
    if (mock)
        ck_assert_int_eq(kt_mock_stop(mock), 0);
    mock = NULL;
}

static const char *bootstrap(void)
{
    return kt_mock_bootstrap(mock);
}

static void read_topic(const char *topic, kt_set *s)
{
    if (!kt_read_topic(bootstrap(), topic, s, err, sizeof err))
        ck_abort_msg("kt_read_topic %s: %s", topic, err);
}

static bool has_topic(const char *topic)
{
    char **names;
    size_t n;
    if (!kt_list_topics(bootstrap(), &names, &n, err, sizeof err))
        ck_abort_msg("kt_list_topics: %s", err);
    bool found = false;
    for (size_t i = 0; i < n; i++)
        found |= strcmp(names[i], topic) == 0;
    kt_names_free(names, n);
    return found;
}

/* ---- round trip --------------------------------------------------------- */

static void produce_keyed(const char *topic)
{
    static char kbuf[NKEYS * PER_KEY + 1][8], vbuf[NKEYS * PER_KEY][16];
    const char *keys[NKEYS * PER_KEY + 1], *values[NKEYS * PER_KEY + 1];
    for (int i = 0; i < NKEYS * PER_KEY; i++) {
        snprintf(kbuf[i], sizeof kbuf[i], "k%d", i % NKEYS);
        snprintf(vbuf[i], sizeof vbuf[i], "v%d", i / NKEYS);
        keys[i] = kbuf[i];
        values[i] = vbuf[i];
    }
    keys[NKEYS * PER_KEY] = "k0";
    values[NKEYS * PER_KEY] = NULL;
    if (!kt_produce_n(bootstrap(), topic, keys, values, NKEYS * PER_KEY + 1,
                      err, sizeof err))
        ck_abort_msg("kt_produce_n: %s", err);
}

/* Each key's values come in the order produced; k0 ends in a tombstone. */
static void check_per_key(const kt_set *s)
{
    int seen[NKEYS] = {0};
    for (size_t i = 0; i < s->n; i++) {
        const kt_rec *r = &s->r[i];
        ck_assert_ptr_nonnull(r->key);
        int k = atoi(r->key + 1);
        ck_assert(k >= 0 && k < NKEYS);
        if (seen[k] == PER_KEY) {
            ck_assert_int_eq(k, 0);
            ck_assert_ptr_null(r->value);
            ck_assert_uint_eq(r->value_len, 0);
        } else {
            char want[16];
            snprintf(want, sizeof want, "v%d", seen[k]);
            ck_assert_ptr_nonnull(r->value);
            ck_assert_str_eq(r->value, want);
            ck_assert_uint_eq(r->value_len, strlen(want));
        }
        seen[k]++;
    }
    for (int k = 0; k < NKEYS; k++)
        ck_assert_int_eq(seen[k], PER_KEY + (k == 0));
}

/* Partition by partition, offsets rising within each. */
static void check_layout(const kt_set *s, const char *topic)
{
    for (size_t i = 0; i < s->n; i++) {
        ck_assert_str_eq(s->r[i].topic, topic);
        ck_assert_int_gt(s->r[i].timestamp, 0);
        if (i == 0)
            continue;
        ck_assert_int_ge(s->r[i].partition, s->r[i - 1].partition);
        if (s->r[i].partition == s->r[i - 1].partition)
            ck_assert_int_gt(s->r[i].offset, s->r[i - 1].offset);
    }
}

START_TEST(test_round_trip)
{
    kt_set s;
    produce_keyed("t.round");
    read_topic("t.round", &s);
    ck_assert_uint_eq(s.n, NKEYS * PER_KEY + 1);
    check_layout(&s, "t.round");
    check_per_key(&s);
    ck_assert(s.r[0].partition != s.r[s.n - 1].partition);
    kt_set_free(&s);

    kt_set w;
    if (!kt_wait_count(bootstrap(), "t.round", NKEYS * PER_KEY + 1, 10000,
                       &w, err, sizeof err))
        ck_abort_msg("kt_wait_count: %s", err);
    ck_assert_uint_eq(w.n, NKEYS * PER_KEY + 1);
    check_per_key(&w);
    kt_set_free(&w);
    ck_assert(has_topic("t.round"));
}
END_TEST

START_TEST(test_missing_topic)
{
    kt_set s;
    read_topic("t.absent", &s);
    ck_assert_uint_eq(s.n, 0);
    ck_assert_ptr_null(s.r);
    ck_assert(!kt_wait_count(bootstrap(), "t.absent", 1, 300, &s, err,
                             sizeof err));
    ck_assert_uint_eq(s.n, 0);
    ck_assert(!has_topic("t.absent"));
}
END_TEST

static void *produce_late(void *arg)
{
    static char perr[512];
    (void)arg;
    if (!kt_produce(bootstrap(), "t.late", "a", "1", perr, sizeof perr))
        return perr;
    return NULL;
}

/*
 * The topic is (most likely) created by the producer only after the wait
 * began, and auto-created: the wait must pick it up either way.
 */
START_TEST(test_wait_sees_new_topic)
{
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, produce_late, NULL), 0);
    kt_set s;
    bool ok = kt_wait_count(bootstrap(), "t.late", 1, 20000, &s, err,
                            sizeof err);
    void *perr;
    ck_assert_int_eq(pthread_join(t, &perr), 0);
    ck_assert_msg(perr == NULL, "kt_produce: %s", (char *)perr);
    ck_assert_msg(ok, "kt_wait_count: %s", err);
    ck_assert_uint_eq(s.n, 1);
    ck_assert_str_eq(s.r[0].value, "1");
    kt_set_free(&s);
}
END_TEST

/* ---- faults ------------------------------------------------------------- */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque)
{
    (void)rk;
    rd_kafka_resp_err_t *e = opaque;
    *e = m->err;
}

static rd_kafka_t *raw_producer(rd_kafka_resp_err_t *dr)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    ck_assert_int_eq(rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap(),
                                       err, sizeof err),
                     RD_KAFKA_CONF_OK);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, dr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    ck_assert_msg(rk != NULL, "%s", err);
    return rk;
}

/*
 * The one partition's leader is down, so the record must stay queued for
 * the whole bounded flush (an assertion, not a wait for something); once
 * the broker is up it is delivered.
 */
START_TEST(test_broker_down_then_up)
{
    ck_assert(kt_mock_cmd(mock, "topic t.down 1"));
    ck_assert(kt_mock_cmd(mock, "leader t.down 0 1"));
    ck_assert(kt_mock_cmd(mock, "down 1"));
    rd_kafka_resp_err_t dr = RD_KAFKA_RESP_ERR__IN_PROGRESS;
    rd_kafka_t *rk = raw_producer(&dr);
    ck_assert_int_eq(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC("t.down"),
                                       RD_KAFKA_V_KEY("k", 1),
                                       RD_KAFKA_V_VALUE("held", 4),
                                       RD_KAFKA_V_END),
                     0);
    ck_assert_int_eq(rd_kafka_flush(rk, 1500), RD_KAFKA_RESP_ERR__TIMED_OUT);
    ck_assert_int_eq(dr, RD_KAFKA_RESP_ERR__IN_PROGRESS);

    ck_assert(kt_mock_cmd(mock, "up 1"));
    ck_assert_int_eq(rd_kafka_flush(rk, 30000), 0);
    ck_assert_int_eq(dr, 0);
    rd_kafka_destroy(rk);

    if (!kt_produce(bootstrap(), "t.down", "k", "after", err, sizeof err))
        ck_abort_msg("kt_produce: %s", err);
    kt_set s;
    read_topic("t.down", &s);
    ck_assert_uint_eq(s.n, 2);
    ck_assert_str_eq(s.r[0].value, "held");
    ck_assert_str_eq(s.r[1].value, "after");
    kt_set_free(&s);
}
END_TEST

START_TEST(test_produce_errors)
{
    ck_assert(kt_mock_cmd(mock, "topic t.errors 1"));
    /* Permanent: proves the injected errors reach the producer at all. */
    ck_assert(kt_mock_cmd(mock, "errors 0 1 MSG_SIZE_TOO_LARGE"));
    ck_assert(!kt_produce(bootstrap(), "t.errors", "k", "big", err,
                          sizeof err));
    ck_assert_msg(strstr(err, "too large") != NULL, "%s", err);

    ck_assert(kt_mock_cmd(mock, "errors 0 3 NOT_LEADER_FOR_PARTITION 7 6"));
    if (!kt_produce(bootstrap(), "t.errors", "k", "once", err, sizeof err))
        ck_abort_msg("kt_produce: %s", err);
    kt_set s;
    read_topic("t.errors", &s);
    ck_assert_uint_eq(s.n, 1);
    ck_assert_str_eq(s.r[0].value, "once");
    kt_set_free(&s);
}
END_TEST

START_TEST(test_bad_commands)
{
    ck_assert(!kt_mock_cmd(mock, "frobnicate"));
    ck_assert(!kt_mock_cmd(mock, "down"));
    ck_assert(!kt_mock_cmd(mock, "down 99"));
    ck_assert(!kt_mock_cmd(mock, "errors 0 2 6"));
    ck_assert(!kt_mock_cmd(mock, "errors 0 1 NO_SUCH_ERROR"));
    ck_assert(kt_mock_cmd(mock, "rtt 2 5"));
    ck_assert(kt_mock_cmd(mock, "rtt 2 0"));
    ck_assert(kt_mock_cmd(mock, "topic t.bad"));
    ck_assert(!kt_mock_cmd(mock, "topic t.bad 2"));
}
END_TEST

/* ---- the process -------------------------------------------------------- */

static void assert_gone(pid_t pid)
{
    ck_assert_int_eq(kill(pid, 0), -1);
    ck_assert_int_eq(errno, ESRCH);
}

START_TEST(test_quit_reaps)
{
    kt_mock *m = kt_mock_start("--brokers 1 --partitions 2");
    ck_assert_ptr_nonnull(m);
    pid_t pid = kt_mock_pid(m);
    ck_assert_int_eq(kt_mock_stop(m), 0);
    assert_gone(pid);
    ck_assert_int_eq(waitpid(pid, NULL, WNOHANG), -1);
    ck_assert_int_eq(errno, ECHILD);
}
END_TEST

START_TEST(test_bad_args)
{
    ck_assert_ptr_null(kt_mock_start("--brokers 0"));
    ck_assert_ptr_null(kt_mock_start("--bogus"));
}
END_TEST

/*
 * In the forked child: starts a mock, leaves a process holding the mock's
 * stdin open until `hold` closes, sends both pids on `out`, and dies.
 */
static void orphan_mock(int out, int hold_rd, int hold_wr)
{
    close(hold_wr);
    kt_mock *m = kt_mock_start(NULL);
    pid_t pids[2] = {m ? kt_mock_pid(m) : 0, fork()};
    if (pids[1] == 0) {
        char c;
        _exit(read(hold_rd, &c, 1) < 0);
    }
    _exit(write(out, pids, sizeof pids) == sizeof pids ? 0 : 1);
}

/*
 * A test process that dies without stopping its mock: the mock goes too.
 * Its stdin stays open elsewhere, so only PR_SET_PDEATHSIG can end it.
 * It is not our child then, so a pidfd tells when it has exited.
 */
START_TEST(test_dies_with_parent)
{
    int p[2], hold[2];
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(pipe(hold), 0);
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0)
        orphan_mock(p[1], hold[0], hold[1]);
    close(p[1]);
    close(hold[0]);
    pid_t pids[2] = {0, 0};
    ck_assert_int_eq(read(p[0], pids, sizeof pids), sizeof pids);
    close(p[0]);
    ck_assert_int_gt(pids[0], 0);
    ck_assert_int_gt(pids[1], 0);
    int fd = pidfd_open(pids[0], 0);
    ck_assert_int_eq(waitpid(child, NULL, 0), child);
    if (fd >= 0) {
        struct pollfd pf = {fd, POLLIN, 0};
        ck_assert_int_eq(poll(&pf, 1, 10000), 1);
        close(fd);
    } else {
        ck_assert_int_eq(errno, ESRCH);
    }
    close(hold[1]);  /* and the holder ends */
}
END_TEST

static Suite *kafka_support_suite(void)
{
    Suite *s = suite_create("kafka_support");
    TCase *tc = tcase_create("mock");
    tcase_add_checked_fixture(tc, mock_setup, mock_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_missing_topic);
    tcase_add_test(tc, test_wait_sees_new_topic);
    tcase_add_test(tc, test_broker_down_then_up);
    tcase_add_test(tc, test_produce_errors);
    tcase_add_test(tc, test_bad_commands);
    suite_add_tcase(s, tc);

    TCase *proc = tcase_create("process");
    tcase_set_timeout(proc, 60);
    tcase_add_test(proc, test_quit_reaps);
    tcase_add_test(proc, test_bad_args);
    tcase_add_test(proc, test_dies_with_parent);
    suite_add_tcase(s, proc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(kafka_support_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
