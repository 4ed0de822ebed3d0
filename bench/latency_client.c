/*
 * latency_client: the probe of bench/latency.sh. Inserts probe rows into
 * user_sessions on the source at a steady rate and notes when each one
 * shows up on the other side.
 *
 *   latency_client pg OUT SRC_DSN TGT_DSN RATE SECONDS
 *     The other side is a PostgreSQL target whose user_sessions has an
 *     ALWAYS trigger that NOTIFYs channel "probe" with the row's
 *     user_agent: LISTEN on TGT_DSN, so a probe is seen when the target
 *     transaction holding it commits (a NOTIFY is delivered at commit).
 *
 *   latency_client kafka OUT SRC_DSN BROKERS TOPIC PARTITIONS RATE SECONDS
 *     The other side is Kafka: a consumer assigned every partition of
 *     TOPIC from its end sees a probe when a fetch returns the message
 *     (fetch.wait.max.ms 1, so an idle fetch does not hold a probe back).
 *
 * A probe is "INSERT ... user_agent 'probe PID:N'" in a transaction of its
 * own, for the user $PROBE_USER (1 if unset); its latency runs from the source's commit timestamp of that
 * transaction (track_commit_timestamp must be on; read after the run) to
 * the moment this process saw it (CLOCK_REALTIME, the same clock on one
 * machine). Not the source's acknowledgement: on a loaded machine this
 * process may read the acknowledgement after the other side's answer.
 * One probe in flight at a time; RATE probes a second for SECONDS, then
 * up to 10 s for the last ones. OUT gets one line per probe,
 * "N latency_us", or "N -1" for a probe never seen.
 */
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#define GRACE_US 10000000
#define MAX_PROBES 1000000

typedef struct probes {
    long n, max;
    int64_t *committed;          /* the source's commit timestamp, or 0 */
    char (*xid)[16];             /* the probe's transaction */
    _Atomic int64_t *seen;       /* when it was seen, or 0 */
    atomic_long seen_count;
} probes;

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("latency_client: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t real_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static PGconn *connect_to(const char *dsn)
{
    PGconn *c = PQconnectdb(dsn);
    if (PQstatus(c) != CONNECTION_OK)
        die("%s: %s", dsn, PQerrorMessage(c));
    return c;
}

static void probes_init(probes *p, long max)
{
    p->n = 0;
    p->max = max;
    p->committed = calloc((size_t)max, sizeof *p->committed);
    p->xid = calloc((size_t)max, sizeof *p->xid);
    p->seen = calloc((size_t)max, sizeof *p->seen);
    atomic_init(&p->seen_count, 0);
    if (!p->committed || !p->xid || !p->seen)
        die("out of memory");
}

/*
 * The probes' text is "probe PID:N": a message of an earlier run (Kafka
 * is at least once: a restarted producer may send the end of the last
 * run again) is not taken for this one's.
 */
static char tag[32];
static size_t tag_len;

/* Notes probe N seen now, from its "probe PID:N" text anywhere in buf. */
static void probes_seen(probes *p, const char *buf, size_t len)
{
    const char *s = memmem(buf, len, tag, tag_len);
    if (!s)
        return;
    long k = strtol(s + tag_len, NULL, 10);
    int64_t zero = 0;
    if (k >= 0 && k < p->max &&
        atomic_compare_exchange_strong(&p->seen[k], &zero, real_us()))
        atomic_fetch_add(&p->seen_count, 1);
}

static void probes_write(const probes *p, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        die("%s: cannot write", path);
    for (long k = 0; k < p->n; k++) {
        int64_t seen = atomic_load(&p->seen[k]);
        int64_t lat = seen == 0 || p->committed[k] == 0 ? -1
                      : seen - p->committed[k];
        fprintf(f, "%ld %lld\n", k, (long long)lat);
    }
    fclose(f);
}

/* ------------------------------------------------------------ the source */

typedef struct source {
    PGconn *conn;
    long in_flight;          /* the probe awaiting its answer, or -1 */
} source;

static void source_send(source *s, probes *p)
{
    char sql[320];
    const char *user = getenv("PROBE_USER");
    snprintf(sql, sizeof sql,
             "INSERT INTO user_sessions (session_token, user_id, user_agent, "
             "expires_at) VALUES (gen_random_uuid(), %ld, '%s%ld', "
             "now() + interval '1 day') RETURNING xmin::text",
             user ? atol(user) : 1L, tag, p->n);
    if (!PQsendQuery(s->conn, sql))
        die("source: %s", PQerrorMessage(s->conn));
    s->in_flight = p->n++;
}

/* Reads what the source answered; notes the acknowledgement. */
static void source_read(source *s, probes *p)
{
    if (!PQconsumeInput(s->conn))
        die("source: %s", PQerrorMessage(s->conn));
    while (s->in_flight >= 0 && !PQisBusy(s->conn)) {
        PGresult *r = PQgetResult(s->conn);
        if (!r) {
            s->in_flight = -1;
            break;
        }
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            die("probe insert: %s", PQresultErrorMessage(r));
        snprintf(p->xid[s->in_flight], sizeof p->xid[0], "%s",
                 PQgetvalue(r, 0, 0));
        PQclear(r);
    }
}

/* The source's commit timestamps of the probes, Unix microseconds. */
static void source_commit_times(source *s, probes *p)
{
    for (long k = 0; k < p->n; k++) {
        const char *params[] = {p->xid[k]};
        PGresult *r = PQexecParams(s->conn, "SELECT (extract(epoch FROM "
                                   "pg_xact_commit_timestamp($1::xid)) * 1e6)"
                                   "::bigint", 1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            die("commit timestamp: %s", PQresultErrorMessage(r));
        if (!PQgetisnull(r, 0, 0))
            p->committed[k] = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
    }
}

/* ------------------------------------------------------------ the run */

typedef void (*side_fn)(void *side, probes *p, int timeout_ms);

/*
 * Sends a probe every 1/rate s for `seconds`, then waits for the last
 * ones; `poll_side` waits on the other side (and the source's socket).
 */
static void run(source *s, probes *p, double rate, int seconds,
                side_fn poll_side, void *side)
{
    int64_t period = (int64_t)(1000000 / rate);
    int64_t start = mono_us(), next = start;
    int64_t end = start + (int64_t)seconds * 1000000;
    while (mono_us() < end || s->in_flight >= 0) {
        int64_t now = mono_us();
        if (now >= next && now < end && s->in_flight < 0 && p->n < p->max) {
            source_send(s, p);
            next += period;
        }
        int64_t wait = next > now ? (next - now) / 1000 : 0;
        poll_side(side, p, (int)(wait > 100 ? 100 : wait));
        source_read(s, p);
    }
    int64_t grace = mono_us() + GRACE_US;
    while (atomic_load(&p->seen_count) < p->n && mono_us() < grace)
        poll_side(side, p, 100);
}

/* ------------------------------------------------------------ PostgreSQL */

typedef struct pgside {
    PGconn *listen;
    source *src;
} pgside;

static void pg_poll(void *arg, probes *p, int timeout_ms)
{
    pgside *ps = arg;
    struct pollfd fds[2] = {
        {.fd = PQsocket(ps->listen), .events = POLLIN},
        {.fd = PQsocket(ps->src->conn), .events = POLLIN},
    };
    poll(fds, ps->src->in_flight >= 0 ? 2 : 1, timeout_ms);
    if (!PQconsumeInput(ps->listen))
        die("target: %s", PQerrorMessage(ps->listen));
    PGnotify *n;
    while ((n = PQnotifies(ps->listen))) {
        probes_seen(p, n->extra, strlen(n->extra));
        PQfreemem(n);
    }
}

static int run_pg(char **argv)
{
    source s = {connect_to(argv[1]), -1};
    pgside ps = {connect_to(argv[2]), &s};
    PGresult *r = PQexec(ps.listen, "LISTEN probe");
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        die("LISTEN: %s", PQerrorMessage(ps.listen));
    PQclear(r);
    probes p;
    probes_init(&p, MAX_PROBES);
    run(&s, &p, atof(argv[3]), atoi(argv[4]), pg_poll, &ps);
    source_commit_times(&s, &p);
    probes_write(&p, argv[0]);
    PQfinish(s.conn);
    PQfinish(ps.listen);
    return 0;
}

/* ------------------------------------------------------------ Kafka */

typedef struct kside {
    rd_kafka_t *rk;
    pthread_t thread;
    probes *p;
    atomic_bool stop;
} kside;

/* The consumer in a thread of its own: a probe is stamped as it lands. */
static void *consume(void *arg)
{
    kside *k = arg;
    while (!atomic_load(&k->stop)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(k->rk, 50);
        if (!m)
            continue;
        if (!m->err && m->payload)
            probes_seen(k->p, m->payload, m->len);
        rd_kafka_message_destroy(m);
    }
    return NULL;
}

static void kafka_set(rd_kafka_conf_t *conf, const char *key, const char *v)
{
    char why[256];
    if (rd_kafka_conf_set(conf, key, v, why, sizeof why) != RD_KAFKA_CONF_OK)
        die("%s: %s", key, why);
}

/*
 * A consumer assigned every partition from its current end: the end asked
 * of the brokers first, so that no probe can slip in before the
 * assignment takes effect.
 */
static rd_kafka_t *kafka_consumer(const char *brokers, const char *topic,
                                  int partitions)
{
    char why[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    kafka_set(conf, "bootstrap.servers", brokers);
    kafka_set(conf, "group.id", "latency_client");
    kafka_set(conf, "enable.auto.commit", "false");
    kafka_set(conf, "fetch.wait.max.ms", "1");
    kafka_set(conf, "fetch.error.backoff.ms", "1");
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why);
    if (!rk)
        die("consumer: %s", why);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new(partitions);
    for (int i = 0; i < partitions; i++) {
        int64_t lo, hi;
        rd_kafka_resp_err_t e =
            rd_kafka_query_watermark_offsets(rk, topic, i, &lo, &hi, 30000);
        if (e)
            die("%s [%d]: %s", topic, i, rd_kafka_err2str(e));
        rd_kafka_topic_partition_list_add(l, topic, i)->offset = hi;
    }
    if (rd_kafka_assign(rk, l))
        die("assign %s", topic);
    rd_kafka_topic_partition_list_destroy(l);
    return rk;
}

static void kafka_poll(void *arg, probes *p, int timeout_ms)
{
    source *s = arg;
    (void)p;
    struct pollfd fd = {.fd = PQsocket(s->conn), .events = POLLIN};
    poll(&fd, s->in_flight >= 0 ? 1 : 0, timeout_ms);
}

static int run_kafka(char **argv)
{
    source s = {connect_to(argv[1]), -1};
    probes p;
    probes_init(&p, MAX_PROBES);
    int partitions = atoi(argv[4]);
    kside k = {.rk = kafka_consumer(argv[2], argv[3], partitions), .p = &p};
    atomic_init(&k.stop, false);
    if (pthread_create(&k.thread, NULL, consume, &k))
        die("pthread_create");
    run(&s, &p, atof(argv[5]), atoi(argv[6]), kafka_poll, &s);
    atomic_store(&k.stop, true);
    pthread_join(k.thread, NULL);
    source_commit_times(&s, &p);
    probes_write(&p, argv[0]);
    rd_kafka_consumer_close(k.rk);
    rd_kafka_destroy(k.rk);
    PQfinish(s.conn);
    return 0;
}

int main(int argc, char **argv)
{
    tag_len = (size_t)snprintf(tag, sizeof tag, "probe %ld:", (long)getpid());
    if (argc == 7 && strcmp(argv[1], "pg") == 0)
        return run_pg(argv + 2);
    if (argc == 9 && strcmp(argv[1], "kafka") == 0)
        return run_kafka(argv + 2);
    fprintf(stderr, "usage: latency_client pg OUT SRC_DSN TGT_DSN RATE SECONDS\n"
                    "       latency_client kafka OUT SRC_DSN BROKERS TOPIC "
                    "PARTITIONS RATE SECONDS\n");
    return 2;
}
