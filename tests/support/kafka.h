/*
 * kafka: a mock Kafka cluster in a child process, and a real librdkafka
 * consumer and producer to check what reached it, for tests.
 *
 * kt_mock_start() runs cleave-kmock (tests/support/kmock.c) and talks to
 * it over a socket on its stdin/stdout; the mock dies with the thread that
 * started it, so start it from the test's main thread. Every wait has a
 * deadline; failures return false with the reason in err (kt_mock_*: on
 * stderr).
 */
#ifndef CLEAVE_TESTS_KAFKA_H
#define CLEAVE_TESTS_KAFKA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct kt_mock kt_mock;

/*
 * Starts a mock cluster; extra_args is NULL or cleave-kmock's options
 * ("--brokers 1 --partitions 2"). The binary is $CLEAVE_KMOCK, else
 * $CLEAVE_BUILDDIR/tests/support/cleave-kmock. NULL on failure.
 */
kt_mock *kt_mock_start(const char *extra_args);
/* "host:port,host:port,..." for bootstrap.servers. */
const char *kt_mock_bootstrap(const kt_mock *m);
pid_t kt_mock_pid(const kt_mock *m);
/*
 * Sends one command (see kmock.c: down/up/rtt/errors/topic/leader) and
 * waits for its "ok"; false with the mock's answer on stderr. After a
 * timeout the mock is out of step and every later command fails. The
 * 2.0.2 mock now and then serves a command only on its 1 s poll tick.
 */
bool kt_mock_cmd(kt_mock *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/*
 * Quits the mock, killing it if it does not exit in time, reaps it and
 * frees m. Its exit status: 0 after a clean quit, 128 + signal if killed,
 * -1 for a NULL m.
 */
int kt_mock_stop(kt_mock *m);

typedef struct kt_rec {
    char *topic;
    int32_t partition;
    int64_t offset;
    char *key;             /* NULL for a null key; else NUL-terminated too */
    size_t key_len;
    char *value;           /* NULL for a null value (a tombstone) */
    size_t value_len;
    int64_t timestamp;     /* ms since the epoch, -1 if none */
} kt_rec;

typedef struct kt_set {
    kt_rec *r;
    size_t n;
} kt_set;

/*
 * Every record of topic up to the high watermarks at the call, partition
 * by partition in offset order. A missing topic is an empty set (and is
 * not created). Fails, in a few seconds, while a partition's leader is
 * down. The consumer assigns partitions itself: it has a group.id, which
 * librdkafka 2.0.2 requires for rd_kafka_assign, but never joins or
 * commits.
 */
bool kt_read_topic(const char *bootstrap, const char *topic, kt_set *out,
                   char *err, size_t errlen);
/*
 * Reads topic until it holds at least want records or timeout_ms passes
 * (false then, with what was there in out).
 */
bool kt_wait_count(const char *bootstrap, const char *topic, size_t want,
                   int timeout_ms, kt_set *out, char *err, size_t errlen);
void kt_set_free(kt_set *s);

/* The cluster's topic names, sorted; free with kt_names_free. */
bool kt_list_topics(const char *bootstrap, char ***names, size_t *n,
                    char *err, size_t errlen);
void kt_names_free(char **names, size_t n);

/*
 * Produces one record and waits for it to be acknowledged (idempotent
 * producer, so retries neither duplicate nor reorder). key and value may
 * be NULL; a NULL value is a tombstone.
 */
bool kt_produce(const char *bootstrap, const char *topic, const char *key,
                const char *value, char *err, size_t errlen);
/* The same for n records in order, with one producer. */
bool kt_produce_n(const char *bootstrap, const char *topic,
                  const char *const *keys, const char *const *values,
                  size_t n, char *err, size_t errlen);

#endif
