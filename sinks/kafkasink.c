/*
 * kafkasink: Debezium events through an idempotent producer; see
 * kafkasink.h.
 *
 * Every sink of a configuration produces through one shared producer
 * (kprod): produce is thread-safe in librdkafka, and one handle's broker
 * threads carry every service's partitions in one request per broker,
 * where a producer per service ran five sets of threads and requests.
 * Delivery reports and errors are served by rd_kafka_poll on whichever
 * worker polls; each message's opaque names its sink's attachment and its
 * transaction, and the report reaches that sink's ring under the
 * producer's lock. Each source transaction has an entry in a ring with the
 * count of its messages not yet acknowledged; the acknowledged position
 * moves over entries that are complete and fully acknowledged, in commit
 * order, whatever order the partitions acknowledge in.
 */
#include "sinks/kafkasink.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <libpq-fe.h>

#include "common/log.h"
#include "common/statefile.h"
#include "decoder/copytext.h"
#include "sinks/dbz.h"
#include "sinks/dbzcat.h"
#include "sinks/kring.h"

/*
 * While messages stay in flight, as often as a busy PostgreSQL sink makes
 * its batch durable (worker.c's FLUSH_EVERY_MS): each write is two fsyncs,
 * and at every 200 ms the writers of five sinks were 8% of cleave's CPU
 * in a catch-up.
 */
#define CHECKPOINT_EVERY_MS 1000
#define OPEN_TIMEOUT_MS 10000
#define DRAIN_TIMEOUT_MS 10000
#define ROLLBACK_TIMEOUT_MS 10000
#define CLOSE_TIMEOUT_MS 1000        /* drain did the waiting, if any */
#define COPY_TIMEOUT_MS 60000        /* for a copied table's last acks */
#define QUEUE_FULL_WAIT_MS 100
/*
 * A sink's share of the shared producer's queue: a quarter of
 * queue.buffering.max.messages and .kbytes (25,000 messages and 4 MB by
 * default). A sink whose messages wait on a broker (a topic refused, a
 * partition without a leader) waits at its share instead of filling the
 * queue for every other sink.
 */
#define SHARE_OF_QUEUE 4
#define POLL_EVERY 1024          /* messages between polls, if no flush polls */
#define REPEAT_LOG_MS 10000
#define SETTLE_POLL_MS 10        /* a settle's look at its own ring */

/*
 * A message's opaque: its sink's attachment id in the top ATT_BITS, the
 * low bits of its transaction's ring sequence below (the ring is far
 * shorter than SEQ_MASK, so the sequence is found again from the ring's
 * first).
 */
#define ATT_BITS 12
#define SEQ_BITS (sizeof(uintptr_t) * 8 - ATT_BITS)
#define SEQ_MASK ((uintptr_t)-1 >> ATT_BITS)
#define ATT_MASK ((1u << ATT_BITS) - 1)

struct kafkasink;

typedef struct kattach {
    uint32_t id;
    struct kafkasink *ks;
} kattach;

/*
 * A producer and the sinks attached to it. A sink that fails or closes
 * detaches: reports for its messages still in flight find no attachment
 * and are dropped (its replay produces them again), and the others' go on.
 */
typedef struct kprod {
    rd_kafka_t *rk;
    const cfg *config;
    unsigned refs;           /* under kprods_mu */
    bool registered;         /* under kprods_mu: new sinks may join it */
    atomic_bool broken;      /* failed for good: the next open makes anew */
    int64_t share_msgs, share_bytes;   /* see SHARE_OF_QUEUE */
    int64_t queue_bytes;               /* the whole queue's; 0: unknown */
    /* The attachments, and their sinks' rings and failures. */
    pthread_mutex_t mu;
    kattach *att;
    size_t natt, att_cap;
    uint32_t next_id;
    char last_warning[256];
    int64_t last_warning_ms;
    struct kprod *next;
} kprod;

typedef struct ktopic {
    uint32_t oid;
    char *schema;
    char *table;
    rd_kafka_topic_t *rkt;
} ktopic;

/*
 * A relation version's Kafka Connect schemas (kafka.schemas), built at its
 * first event: once per Relation message, shared by every event after.
 */
typedef struct kschema {
    uint32_t oid;            /* 0: a free entry */
    uint64_t version;
    json_t *key;             /* JSON null: the table's events have no key */
    json_t *value;
    char *key_text;          /* both dumped, for events written directly */
    char *value_text;
    size_t key_len, value_len;
    dbzcat_types cat;        /* enums' labels, domains as their base types */
} kschema;

typedef struct kcoll {
    char *name;              /* schema.table */
    int64_t count;
} kcoll;

typedef struct kafkasink {
    sink base;
    kprod *kp;
    rd_kafka_t *rk;          /* kp's */
    uint32_t att;            /* the attachment's id */
    bool own_producer;       /* the loader's: a producer of its own */
    char *ckpt_path;
    char *db;
    kring ring;              /* transactions in flight; what is acknowledged */
    lsn_t written;           /* ... and recorded in the checkpoint */
    lsn_t written_commit;    /* the commit LSN of the one written ends */
    int64_t written_ms;      /* when the last write was asked for */
    /*
     * The checkpoint's writer thread, so that its fsyncs never hold back
     * the events behind them; under ck_mu.
     */
    pthread_t ck_thread;
    bool ck_running;         /* the worker's */
    pthread_mutex_t ck_mu;
    pthread_cond_t ck_cond;  /* a request or stop; a write done */
    lsn_t ck_want, ck_done;
    lsn_t ck_want_commit, ck_done_commit;
    bool ck_stop;
    char ck_err[512];        /* the write that failed, if any */
    /* Produced and not yet reported on: see SHARE_OF_QUEUE. */
    atomic_int_fast64_t unacked_msgs, unacked_bytes;
    /* Set by callbacks (failure text under kp->mu): the sink is unusable. */
    atomic_bool failed;
    char failure[480];
    lsn_t failure_lsn;
    /* The source transaction being produced. */
    bool in_txn;
    uint32_t xid;
    lsn_t commit_lsn;
    lsn_t last_commit_lsn;
    lsn_t lsn;               /* the change's own: source.lsn */
    int64_t commit_ms;
    int64_t now_ms;
    unsigned since_poll;
    char txid[48];
    int64_t total_order;
    kcoll *colls;
    size_t ncolls, colls_cap;
    ktopic *topics;
    size_t ntopics, topics_cap;
    /*
     * The source block of the table being produced, written once for its
     * events in the transaction (empty: none yet) and finished with each
     * one's LSN, and the buffer each
     * change event is written into, key first, then value.
     */
    dbz_srcblock src;
    uint32_t src_oid;
    uint64_t src_version;
    dbz_out out;
    rd_kafka_topic_t *msg_rkt, *txn_rkt;
    dbz_mode mode;           /* kafka.schemas, kafka.decimal_handling */
    kschema *schemas;
    size_t nschemas, schemas_cap;
    json_t *fixed[DBZ_NFIXED];   /* message and transaction schemas */
} kafkasink;

static kafkasink *impl(sink *s)
{
    return s->impl;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- configuration ----------------------------------------------------- */

static bool conf_set(rd_kafka_conf_t *conf, const char *k, const char *v,
                     char *err, size_t errlen)
{
    char why[256];
    if (rd_kafka_conf_set(conf, k, v, why, sizeof why) == RD_KAFKA_CONF_OK)
        return true;
    snprintf(err, errlen, "kafka.properties: %s: %s", k, why);
    return false;
}

rd_kafka_conf_t *kafkasink_conf(const cfg *config, char *err, size_t errlen)
{
    /*
     * Idempotence keeps each partition in order without duplicates across
     * librdkafka's own retries; murmur2 picks the partition a Java
     * producer (Debezium's) would pick for the same key; a bounded buffer
     * keeps memory bounded when the broker is slow: 16 MB, beside five
     * sinks' 4 MB queues (pipeline.c), keeps a catch-up under 64 MB.
     */
    static const char *const defaults[][2] = {
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"compression.type", "lz4"},
        {"linger.ms", "5"},
        {"partitioner", "murmur2_random"},
        {"queue.buffering.max.kbytes", "16384"},
        {"client.id", "cleave"},
    };
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    bool ok = conf_set(conf, "bootstrap.servers", config->kafka.brokers, err,
                       errlen);
    for (size_t i = 0; ok && i < sizeof defaults / sizeof defaults[0]; i++)
        ok = conf_set(conf, defaults[i][0], defaults[i][1], err, errlen);
    for (size_t i = 0; ok && i < config->kafka.n_props; i++)
        ok = conf_set(conf, config->kafka.props[i].key,
                      config->kafka.props[i].value, err, errlen);
    if (!ok) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

char *kafkasink_checkpoint_path(const cfg *config, const cfg_service *service)
{
    char *path = NULL;
    if (asprintf(&path, "%s/kafka/%s.json", config->state_dir,
                 service->name) < 0)
        return NULL;
    return path;
}

static const char *conninfo_value(PQconninfoOption *opts, const char *key)
{
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (strcmp(o->keyword, key) == 0 && o->val && *o->val)
            return o->val;
    return NULL;
}

char *kafkasink_source_db(const char *dsn)
{
    PQconninfoOption *opts = PQconninfoParse(dsn, NULL);
    const char *db = conninfo_value(opts, "dbname");
    if (!db)
        db = getenv("PGDATABASE");
    if (!db)
        db = conninfo_value(opts, "user");
    if (!db)
        db = getenv("PGUSER");
    if (!db)
        db = getenv("USER");
    char *out = strdup(db ? db : "");
    PQconninfoFree(opts);
    return out;
}

/* ---- the checkpoint ------------------------------------------------------ */

/*
 * The checkpoint: the end of the last transaction acknowledged, and its
 * commit LSN (source.sequence's first half for the next one; a file
 * without it leaves that null once).
 */
static bool read_checkpoint(kafkasink *ks, lsn_t *lsn, lsn_t *commit)
{
    *lsn = *commit = 0;
    json_error_t jerr;
    json_t *doc = json_load_file(ks->ckpt_path, 0, &jerr);
    if (!doc) {
        struct stat st;
        if (stat(ks->ckpt_path, &st) != 0 && errno == ENOENT)
            return true;
        return sink_fail(&ks->base, 0, "cannot read the Kafka checkpoint "
                         "%s: %s", ks->ckpt_path, jerr.text);
    }
    const char *text = json_string_value(json_object_get(doc, "lsn"));
    const char *ctext = json_string_value(json_object_get(doc, "commit_lsn"));
    bool ok = text && lsn_parse(text, lsn) && (!ctext || lsn_parse(ctext,
                                                                   commit));
    json_decref(doc);
    return ok || sink_fail(&ks->base, 0, "the Kafka checkpoint %s has no "
                           "valid lsn", ks->ckpt_path);
}

/* The checkpoint file at `at`; false with err. Reads only what never
 * changes, so from the writer thread. */
static bool write_checkpoint(kafkasink *ks, lsn_t at, lsn_t commit,
                             char *err, size_t errlen)
{
    char lsn[LSN_STRLEN], clsn[LSN_STRLEN];
    json_t *doc = json_pack("{s:s, s:s, s:s, s:s}", "service",
                            ks->base.service->name, "slot",
                            ks->base.config->source.slot, "lsn",
                            lsn_format(at, lsn), "commit_lsn",
                            lsn_format(commit, clsn));
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    bool ok = statefile_write(ks->ckpt_path, text, strlen(text), err, errlen);
    free(text);
    return ok;
}

/*
 * The writer: each write is two fsyncs, up to tens of milliseconds on a
 * busy disk, and on the worker every event behind one waited for them
 * (some 5 writes a second per sink at 1,000 transactions/s: the tail of
 * the latency into Kafka). It writes the latest position asked for,
 * what is asked before a stop included; after a failure it stops.
 */
static void *ckpt_main(void *arg)
{
    kafkasink *ks = arg;
    char err[512];
    pthread_mutex_lock(&ks->ck_mu);
    for (;;) {
        while (!ks->ck_stop && ks->ck_want <= ks->ck_done)
            pthread_cond_wait(&ks->ck_cond, &ks->ck_mu);
        if (ks->ck_want <= ks->ck_done)
            break;
        lsn_t at = ks->ck_want, commit = ks->ck_want_commit;
        pthread_mutex_unlock(&ks->ck_mu);
        bool ok = write_checkpoint(ks, at, commit, err, sizeof err);
        pthread_mutex_lock(&ks->ck_mu);
        if (ok) {
            ks->ck_done = at;
            ks->ck_done_commit = commit;
        }
        else
            snprintf(ks->ck_err, sizeof ks->ck_err, "%s", err);
        pthread_cond_broadcast(&ks->ck_cond);
        if (!ok)
            break;
    }
    pthread_mutex_unlock(&ks->ck_mu);
    return NULL;
}

static bool ckpt_start(kafkasink *ks, lsn_t at, lsn_t commit)
{
    ks->ck_want = ks->ck_done = ks->written = at;
    ks->ck_want_commit = ks->ck_done_commit = ks->written_commit = commit;
    ks->ck_stop = false;
    ks->ck_err[0] = '\0';
    ks->ck_running = pthread_create(&ks->ck_thread, NULL, ckpt_main, ks) == 0;
    return ks->ck_running ||
           sink_fail(&ks->base, 0, "cannot start the checkpoint's writer");
}

/* Stops the writer once what was asked is written (or failed). */
static void ckpt_stop(kafkasink *ks)
{
    if (!ks->ck_running)
        return;
    pthread_mutex_lock(&ks->ck_mu);
    ks->ck_stop = true;
    pthread_cond_broadcast(&ks->ck_cond);
    pthread_mutex_unlock(&ks->ck_mu);
    pthread_join(ks->ck_thread, NULL);
    ks->ck_running = false;
}

/* Under ck_mu: whether the acknowledged position is due to be written. */
static bool ckpt_due(kafkasink *ks, bool force)
{
    if (ks->ring.acked <= ks->ck_want)
        return false;
    return force || ks->ring.n == 0 ||
           mono_ms() - ks->written_ms >= CHECKPOINT_EVERY_MS;
}

/*
 * Records what the broker acknowledged: at once when nothing is in flight
 * any more (the end of a burst: the source should hear of it now), else
 * at most every CHECKPOINT_EVERY_MS, since each write is two fsyncs. The
 * writer thread writes it; what it wrote is durable from then on. force
 * waits for the write (a drain, a close).
 */
static bool checkpoint(kafkasink *ks, bool force)
{
    char err[sizeof ks->ck_err];
    pthread_mutex_lock(&ks->ck_mu);
    if (ckpt_due(ks, force)) {
        ks->ck_want = ks->ring.acked;
        ks->ck_want_commit = ks->ring.acked_commit;
        ks->written_ms = mono_ms();
        pthread_cond_broadcast(&ks->ck_cond);
    }
    while (force && ks->ck_running && !ks->ck_err[0] &&
           ks->ck_done < ks->ck_want)
        pthread_cond_wait(&ks->ck_cond, &ks->ck_mu);
    ks->written = ks->ck_done;
    ks->written_commit = ks->ck_done_commit;
    memcpy(err, ks->ck_err, sizeof err);
    pthread_mutex_unlock(&ks->ck_mu);
    return !err[0] || sink_fail(&ks->base, ks->written, "%s", err);
}

/* ---- the ring of transactions in flight (under kp->mu) ---------------- */

static bool ring_push(kafkasink *ks, lsn_t commit)
{
    pthread_mutex_lock(&ks->kp->mu);
    bool ok = kring_push(&ks->ring, commit);
    pthread_mutex_unlock(&ks->kp->mu);
    return ok;
}

static void ring_close(kafkasink *ks, lsn_t end)
{
    pthread_mutex_lock(&ks->kp->mu);
    kring_close(&ks->ring, end);
    pthread_mutex_unlock(&ks->kp->mu);
}

/* ---- the shared producer ------------------------------------------------ */

static pthread_mutex_t kprods_mu = PTHREAD_MUTEX_INITIALIZER;
static kprod *kprods;        /* the shared ones sinks may join */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque);
static void on_error(rd_kafka_t *rk, int err, const char *reason,
                     void *opaque);
static void on_log(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf);

/* conf's value of a numeric property, or 0. */
static int64_t conf_number(rd_kafka_conf_t *conf, const char *name)
{
    char buf[32];
    size_t len = sizeof buf;
    if (rd_kafka_conf_get(conf, name, buf, &len) != RD_KAFKA_CONF_OK)
        return 0;
    return strtoll(buf, NULL, 10);
}

static void set_share(kprod *kp, rd_kafka_conf_t *conf)
{
    int64_t msgs = conf_number(conf, "queue.buffering.max.messages");
    int64_t kbytes = conf_number(conf, "queue.buffering.max.kbytes");
    kp->share_msgs = msgs > SHARE_OF_QUEUE ? msgs / SHARE_OF_QUEUE : 1;
    kp->share_bytes = kbytes > 0 ? kbytes * 1024 / SHARE_OF_QUEUE : 1 << 20;
    kp->queue_bytes = kbytes > 0 ? kbytes * 1024 : 0;
}

static kprod *kprod_new(const cfg *config, char *err, size_t errlen)
{
    kprod *kp = calloc(1, sizeof *kp);
    rd_kafka_conf_t *conf = kp ? kafkasink_conf(config, err, errlen) : NULL;
    char why[256];
    if (!conf) {
        if (!kp)
            snprintf(err, errlen, "out of memory");
        free(kp);
        return NULL;
    }
    set_share(kp, conf);
    rd_kafka_conf_set_opaque(conf, kp);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_log_cb(conf, on_log);
    if (!(kp->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why))) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "cannot make a Kafka producer: %s", why);
        free(kp);
        return NULL;
    }
    kp->config = config;
    kp->refs = 1;
    atomic_init(&kp->broken, false);
    pthread_mutex_init(&kp->mu, NULL);
    return kp;
}

/* The configuration's shared producer, made at first use and anew after
 * it failed for good; one more reference. */
static kprod *kprod_get(const cfg *config, char *err, size_t errlen)
{
    pthread_mutex_lock(&kprods_mu);
    kprod **p = &kprods;
    while (*p && ((*p)->config != config || atomic_load(&(*p)->broken))) {
        if (atomic_load(&(*p)->broken)) {
            (*p)->registered = false;
            *p = (*p)->next;
        } else {
            p = &(*p)->next;
        }
    }
    kprod *kp = *p;
    if (kp) {
        kp->refs++;
    } else if ((kp = kprod_new(config, err, errlen))) {
        kp->registered = true;
        kp->next = kprods;
        kprods = kp;
    }
    pthread_mutex_unlock(&kprods_mu);
    return kp;
}

static void kprod_unlink(kprod *kp)
{
    for (kprod **p = &kprods; *p; p = &(*p)->next)
        if (*p == kp) {
            *p = kp->next;
            return;
        }
}

/* One reference less; the last drops what is still queued. */
static void kprod_put(kprod *kp)
{
    pthread_mutex_lock(&kprods_mu);
    bool last = --kp->refs == 0;
    if (last && kp->registered)
        kprod_unlink(kp);
    pthread_mutex_unlock(&kprods_mu);
    if (!last)
        return;
    rd_kafka_purge(kp->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(kp->rk, 0);
    rd_kafka_destroy(kp->rk);
    pthread_mutex_destroy(&kp->mu);
    free(kp->att);
    free(kp);
}

static kattach *kprod_find(kprod *kp, uint32_t id)
{
    for (size_t i = 0; i < kp->natt; i++)
        if (kp->att[i].id == id)
            return &kp->att[i];
    return NULL;
}

/* ks takes a fresh attachment id: reports for a former one's messages are
 * not its own. */
static bool kprod_attach(kprod *kp, kafkasink *ks)
{
    pthread_mutex_lock(&kp->mu);
    bool ok = kp->natt < kp->att_cap;
    if (!ok) {
        size_t ncap = kp->att_cap ? kp->att_cap * 2 : 8;
        kattach *n = realloc(kp->att, ncap * sizeof *n);
        if ((ok = n != NULL)) {
            kp->att = n;
            kp->att_cap = ncap;
        }
    }
    if (ok) {
        do
            kp->next_id = (kp->next_id + 1) & ATT_MASK;
        while (!kp->next_id || kprod_find(kp, kp->next_id));
        kp->att[kp->natt++] = (kattach){kp->next_id, ks};
        ks->att = kp->next_id;
        kring_reset(&ks->ring);
        atomic_store(&ks->unacked_msgs, 0);
        atomic_store(&ks->unacked_bytes, 0);
    }
    pthread_mutex_unlock(&kp->mu);
    return ok;
}

static void kprod_detach(kprod *kp, kafkasink *ks)
{
    pthread_mutex_lock(&kp->mu);
    kattach *a = kprod_find(kp, ks->att);
    if (a)
        *a = kp->att[--kp->natt];
    kring_reset(&ks->ring);
    pthread_mutex_unlock(&kp->mu);
}

static void *msg_tag(const kafkasink *ks)
{
    return (void *)(((uintptr_t)ks->att << SEQ_BITS) |
                    ((uintptr_t)ks->ring.seq & SEQ_MASK));
}

/* ---- librdkafka's callbacks (from rd_kafka_poll on any worker) ---------- */

/* Under kp->mu. */
static void set_failure(kafkasink *ks, lsn_t lsn, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_failure(kafkasink *ks, lsn_t lsn, const char *fmt, ...)
{
    if (atomic_load(&ks->failed))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ks->failure, sizeof ks->failure, fmt, ap);
    va_end(ap);
    ks->failure_lsn = lsn;
    atomic_store(&ks->failed, true);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque)
{
    (void)rk;
    kprod *kp = opaque;
    uintptr_t tag = (uintptr_t)m->_private;
    pthread_mutex_lock(&kp->mu);
    kattach *a = kprod_find(kp, (uint32_t)(tag >> SEQ_BITS));
    kafkasink *ks = a ? a->ks : NULL;
    kring_txn *t = ks ? kring_find(&ks->ring, tag, SEQ_MASK) : NULL;
    if (ks && m->err)
        set_failure(ks, t ? t->commit : 0, "Kafka did not take a message "
                    "for topic %s (partition %" PRId32 ", %zu bytes): %s",
                    rd_kafka_topic_name(m->rkt), m->partition, m->len,
                    rd_kafka_err2str(m->err));
    if (t)
        kring_report(t, m->err != RD_KAFKA_RESP_ERR_NO_ERROR);
    if (ks) {
        atomic_fetch_sub(&ks->unacked_msgs, 1);
        atomic_fetch_sub(&ks->unacked_bytes,
                         (int_fast64_t)(m->len + m->key_len));
    }
    pthread_mutex_unlock(&kp->mu);
}

/* Says a warning once per REPEAT_LOG_MS: a broker down repeats them. */
static void warn_once(kprod *kp, const char *what)
{
    int64_t now = mono_ms();
    pthread_mutex_lock(&kp->mu);
    bool repeat = strcmp(what, kp->last_warning) == 0 &&
                  now - kp->last_warning_ms < REPEAT_LOG_MS;
    if (!repeat) {
        snprintf(kp->last_warning, sizeof kp->last_warning, "%s", what);
        kp->last_warning_ms = now;
    }
    pthread_mutex_unlock(&kp->mu);
    if (!repeat)
        log_warning("event=kafka_warning error=\"%s\"", what);
}

/* An error of the producer's fails every sink attached to it. */
static void fail_all(kprod *kp, const char *why)
{
    pthread_mutex_lock(&kp->mu);
    for (size_t i = 0; i < kp->natt; i++)
        set_failure(kp->att[i].ks, 0, "%s", why);
    pthread_mutex_unlock(&kp->mu);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason,
                     void *opaque)
{
    kprod *kp = opaque;
    char fatal[256], why[480];
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        rd_kafka_fatal_error(rk, fatal, sizeof fatal);
        atomic_store(&kp->broken, true);
        snprintf(why, sizeof why, "Kafka producer failed for good: %s", fatal);
        fail_all(kp, why);
    } else if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        snprintf(why, sizeof why, "every Kafka broker is down (%s): %s",
                 kp->config->kafka.brokers, reason);
        fail_all(kp, why);
    } else {
        warn_once(kp, reason);
    }
}

/* librdkafka's own log lines, from its threads: log.c is thread-safe. */
static void on_log(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf)
{
    (void)rk;
    if (level <= 4)
        log_warning("event=kafka_log facility=%s message=\"%s\"", fac, buf);
    else
        log_debug("event=kafka_log facility=%s message=\"%s\"", fac, buf);
}

/* Serves delivery reports and errors; false when the sink failed. */
static bool serve(kafkasink *ks, int timeout_ms)
{
    char failure[sizeof ks->failure];
    lsn_t lsn = 0;
    bool failed;
    rd_kafka_poll(ks->rk, timeout_ms);
    ks->since_poll = 0;
    pthread_mutex_lock(&ks->kp->mu);
    kring_advance(&ks->ring);
    if ((failed = atomic_load(&ks->failed))) {
        memcpy(failure, ks->failure, sizeof failure);
        lsn = ks->failure_lsn;
    }
    pthread_mutex_unlock(&ks->kp->mu);
    if (failed)
        return sink_fail(&ks->base, lsn, "%s", failure);
    return true;
}

/* ---- producing ---------------------------------------------------------- */

/*
 * Produces one message (value NULL: a tombstone). With RD_KAFKA_MSG_F_FREE
 * value is malloc'd and taken either way; with RD_KAFKA_MSG_F_COPY
 * librdkafka copies it into the message it allocates anyway, one
 * allocation for both, and the caller's buffer is free again at once. A
 * full local queue waits for the broker, not forever: a broker that stays
 * away fails the sink through the callbacks.
 */
static bool produce_msg(kafkasink *ks, rd_kafka_topic_t *rkt,
                        int32_t partition, const char *key, size_t klen,
                        char *value, size_t vlen, int msgflags)
{
    if (msgflags != RD_KAFKA_MSG_F_FREE || !value)
        msgflags = value ? RD_KAFKA_MSG_F_COPY : 0;
    /* librdkafka says the queue is full for good, and the wait never ends. */
    if (ks->kp->queue_bytes && (int64_t)(vlen + klen) > ks->kp->queue_bytes) {
        if (msgflags == RD_KAFKA_MSG_F_FREE)
            free(value);
        return sink_fail(&ks->base, ks->commit_lsn, "a message of %zu bytes "
                         "to topic %s is larger than the producer's whole "
                         "queue (queue.buffering.max.kbytes)", vlen + klen,
                         rd_kafka_topic_name(rkt));
    }
    for (;;) {
        bool over = atomic_load(&ks->unacked_msgs) >= ks->kp->share_msgs ||
                    atomic_load(&ks->unacked_bytes) >= ks->kp->share_bytes;
        if (!over && rd_kafka_produce(rkt, partition, msgflags, value, vlen,
                                      key, klen, msg_tag(ks)) == 0) {
            atomic_fetch_add(&ks->unacked_msgs, 1);
            atomic_fetch_add(&ks->unacked_bytes, (int_fast64_t)(vlen + klen));
            ks->ring.msgs++;
            if (++ks->since_poll >= POLL_EVERY)
                return serve(ks, 0);
            return true;
        }
        rd_kafka_resp_err_t err = over ? RD_KAFKA_RESP_ERR__QUEUE_FULL
                                       : rd_kafka_last_error();
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            if (msgflags == RD_KAFKA_MSG_F_FREE)
                free(value);
            return sink_fail(&ks->base, ks->commit_lsn, "cannot produce to "
                             "topic %s: %s", rd_kafka_topic_name(rkt),
                             rd_kafka_err2str(err));
        }
        if (sink_stopping(&ks->base)) {
            if (msgflags == RD_KAFKA_MSG_F_FREE)
                free(value);
            return sink_fail(&ks->base, ks->commit_lsn, "stopped while its "
                             "messages waited on the broker");
        }
        if (!serve(ks, QUEUE_FULL_WAIT_MS)) {
            if (msgflags == RD_KAFKA_MSG_F_FREE)
                free(value);
            return false;
        }
    }
}

static bool produce(kafkasink *ks, rd_kafka_topic_t *rkt, int32_t partition,
                    const char *key, size_t klen, char *value, size_t vlen)
{
    return produce_msg(ks, rkt, partition, key, klen, value, vlen,
                       RD_KAFKA_MSG_F_FREE);
}

/* Produces key and value JSON (value NULL: a tombstone); takes both. */
static bool produce_json(kafkasink *ks, rd_kafka_topic_t *rkt, json_t *key,
                         json_t *value)
{
    size_t klen = 0, vlen = 0;
    char *k = key && !json_is_null(key) ? dbz_dump(key, &klen) : NULL;
    char *v = value ? dbz_dump(value, &vlen) : NULL;
    bool oom = (key && !json_is_null(key) && !k) || (value && !v);
    json_decref(key);
    json_decref(value);
    if (oom) {
        free(k);
        free(v);
        return sink_fail(&ks->base, ks->commit_lsn, "out of memory");
    }
    /* No key: one partition keeps such a table's changes in order. */
    bool ok = produce(ks, rkt, k ? RD_KAFKA_PARTITION_UA : 0, k, klen, v,
                      vlen);
    free(k);
    return ok;
}

static rd_kafka_topic_t *new_topic(kafkasink *ks, const char *tmpl,
                                   const char *schema, const char *table)
{
    char *name = dbz_topic(tmpl, ks->base.config->name,
                           ks->base.service->name, schema, table);
    rd_kafka_topic_t *rkt = name ? rd_kafka_topic_new(ks->rk, name, NULL)
                                 : NULL;
    if (!rkt)
        sink_fail(&ks->base, ks->commit_lsn, "cannot make topic %s: %s",
                  name ? name : "(out of memory)",
                  rd_kafka_err2str(rd_kafka_last_error()));
    free(name);
    return rkt;
}

/* The topic of a table, made once (again after a rename). */
static rd_kafka_topic_t *table_topic(kafkasink *ks, const sink_rel *rel)
{
    for (size_t i = 0; i < ks->ntopics; i++) {
        ktopic *t = &ks->topics[i];
        if (t->oid == rel->oid && strcmp(t->schema, rel->schema) == 0 &&
            strcmp(t->table, rel->name) == 0)
            return t->rkt;
    }
    if (ks->ntopics == ks->topics_cap) {
        size_t ncap = ks->topics_cap ? ks->topics_cap * 2 : 16;
        ktopic *n = realloc(ks->topics, ncap * sizeof *n);
        if (!n) {
            sink_fail(&ks->base, ks->commit_lsn, "out of memory");
            return NULL;
        }
        ks->topics = n;
        ks->topics_cap = ncap;
    }
    rd_kafka_topic_t *rkt = new_topic(ks, ks->base.config->kafka.topic,
                                      rel->schema, rel->name);
    ktopic t = {rel->oid, strdup(rel->schema), strdup(rel->name), rkt};
    if (!rkt || !t.schema || !t.table) {
        free(t.schema);
        free(t.table);
        if (rkt)
            rd_kafka_topic_destroy(rkt);
        return rkt ? (sink_fail(&ks->base, ks->commit_lsn, "out of memory"),
                      NULL) : NULL;
    }
    ks->topics[ks->ntopics++] = t;
    return rkt;
}

static void topics_free(kafkasink *ks)
{
    for (size_t i = 0; i < ks->ntopics; i++) {
        free(ks->topics[i].schema);
        free(ks->topics[i].table);
        rd_kafka_topic_destroy(ks->topics[i].rkt);
    }
    ks->ntopics = 0;
    if (ks->msg_rkt)
        rd_kafka_topic_destroy(ks->msg_rkt);
    if (ks->txn_rkt)
        rd_kafka_topic_destroy(ks->txn_rkt);
    ks->msg_rkt = ks->txn_rkt = NULL;
}

/* ---- events ------------------------------------------------------------- */

static dbz_source source_of(kafkasink *ks, const sink_rel *rel)
{
    return (dbz_source){
        .version = CLEAVE_VERSION,
        .name = ks->base.config->name,
        .db = ks->db,
        .schema = rel ? rel->schema : "",
        .table = rel ? rel->name : "",
        .ts_ms = ks->commit_ms,
        .snapshot = "false",
        .txid = ks->xid,
        .lsn = ks->lsn,
        .last_commit_lsn = ks->last_commit_lsn,
    };
}

/*
 * The transaction's source block for rel, written once per table, not
 * per event; false when out of memory.
 */
static bool shared_source(kafkasink *ks, const sink_rel *rel)
{
    if (!ks->src.text.len || ks->src_oid != rel->oid ||
        ks->src_version != rel->version) {
        dbz_source src = source_of(ks, rel);
        dbz_srcblock_set(&ks->src, &src);
        ks->src_oid = rel->oid;
        ks->src_version = rel->version;
    }
    return !ks->src.text.oom;
}

static void forget_source(kafkasink *ks)
{
    ks->src.text.len = 0;
    ks->src.text.oom = false;
}

/* Counts an event of a table for the END event; NULL when out of memory. */
static kcoll *count_event(kafkasink *ks, const sink_rel *rel)
{
    char name[512];
    snprintf(name, sizeof name, "%s.%s", rel->schema, rel->name);
    ks->total_order++;
    for (size_t i = 0; i < ks->ncolls; i++)
        if (strcmp(ks->colls[i].name, name) == 0) {
            ks->colls[i].count++;
            return &ks->colls[i];
        }
    if (ks->ncolls == ks->colls_cap) {
        size_t ncap = ks->colls_cap ? ks->colls_cap * 2 : 8;
        kcoll *n = realloc(ks->colls, ncap * sizeof *n);
        if (!n)
            return NULL;
        ks->colls = n;
        ks->colls_cap = ncap;
    }
    kcoll *c = &ks->colls[ks->ncolls];
    c->name = strdup(name);
    if (!c->name)
        return NULL;
    c->count = 1;
    ks->ncolls++;
    return c;
}

static void colls_clear(kafkasink *ks)
{
    for (size_t i = 0; i < ks->ncolls; i++)
        free(ks->colls[i].name);
    ks->ncolls = 0;
}

_Static_assert((int)DBZ_DECIMAL_STRING == (int)CFG_DECIMAL_STRING &&
               (int)DBZ_DECIMAL_DOUBLE == (int)CFG_DECIMAL_DOUBLE &&
               (int)DBZ_DECIMAL_PRECISE == (int)CFG_DECIMAL_PRECISE,
               "kafka.decimal_handling maps onto dbz_decimal");

/* The entry for rel's schemas: its oid's (any version), or a new one. */
static kschema *schema_slot(kafkasink *ks, const sink_rel *rel)
{
    kschema *free_slot = NULL;
    for (size_t i = 0; i < ks->nschemas; i++) {
        if (ks->schemas[i].oid == rel->oid)
            return &ks->schemas[i];
        if (!ks->schemas[i].oid && !free_slot)
            free_slot = &ks->schemas[i];
    }
    if (free_slot)
        return free_slot;
    if (ks->nschemas == ks->schemas_cap) {
        size_t ncap = ks->schemas_cap ? ks->schemas_cap * 2 : 16;
        kschema *n = realloc(ks->schemas, ncap * sizeof *n);
        if (!n)
            return NULL;
        ks->schemas = n;
        ks->schemas_cap = ncap;
    }
    ks->schemas[ks->nschemas] = (kschema){0};
    return &ks->schemas[ks->nschemas++];
}

/*
 * Enum labels and domains' base types from the source catalog, for a
 * relation with types that are not built in. Without them (the source
 * cannot be read) such columns are plain strings: warned, not failed.
 */
static void resolve_types(kafkasink *ks, kschema *sc, const sink_rel *rel)
{
    char err[512];
    dbzcat_clear(&sc->cat);
    if (dbzcat_needed(rel) &&
        !dbzcat_resolve(&sc->cat, ks->base.config->source.dsn, rel, err,
                        sizeof err))
        log_warning("event=kafka_schema_types service=%s table=%s.%s "
                    "error=\"%s\"", ks->base.service->name, rel->schema,
                    rel->name, err);
}

/* rel's schemas, made when its version is new; NULL when out of memory. */
static kschema *rel_schemas(kafkasink *ks, const sink_rel *rel)
{
    kschema *sc = schema_slot(ks, rel);
    const char *server = ks->base.config->name;
    const char *const *allowed;
    if (!sc)
        return NULL;
    if (sc->oid == rel->oid && sc->version == rel->version)
        return sc;
    json_decref(sc->key);
    json_decref(sc->value);
    resolve_types(ks, sc, rel);
    allowed = (const char *const *)sc->cat.allowed;
    if (sc->cat.rel)
        rel = sc->cat.rel;
    free(sc->key_text);
    free(sc->value_text);
    sc->key = dbz_key_schema(&ks->mode, server, rel, allowed);
    sc->value = dbz_envelope_schema(&ks->mode, server, rel, allowed);
    sc->key_text = sc->key ? dbz_dump(sc->key, &sc->key_len) : NULL;
    sc->value_text = sc->value ? dbz_dump(sc->value, &sc->value_len) : NULL;
    sc->oid = rel->oid;
    sc->version = rel->version;
    if (sc->key_text && sc->value_text)
        return sc;
    json_decref(sc->key);
    json_decref(sc->value);
    free(sc->key_text);
    free(sc->value_text);
    dbzcat_clear(&sc->cat);
    *sc = (kschema){0};
    return NULL;
}

/*
 * The relation its values render by: with kafka.schemas, its copy with
 * domains as their base types (when it has one), so that values match
 * the schema; rel otherwise. NULL (the sink failed) when out of memory.
 */
static const sink_rel *typed_rel(kafkasink *ks, const sink_rel *rel)
{
    kschema *sc;
    if (!ks->base.config->kafka.schemas)
        return rel;
    if (!(sc = rel_schemas(ks, rel))) {
        sink_fail(&ks->base, ks->commit_lsn, "out of memory");
        return NULL;
    }
    return sc->cat.rel ? sc->cat.rel : rel;
}

static void schemas_free(kafkasink *ks)
{
    for (size_t i = 0; i < ks->nschemas; i++) {
        json_decref(ks->schemas[i].key);
        json_decref(ks->schemas[i].value);
        free(ks->schemas[i].key_text);
        free(ks->schemas[i].value_text);
        dbzcat_clear(&ks->schemas[i].cat);
    }
    free(ks->schemas);
    for (int i = 0; i < DBZ_NFIXED; i++)
        json_decref(ks->fixed[i]);
}

/*
 * With kafka.schemas, key and value (either NULL or, for the key, JSON
 * null: left as they are) in Kafka Connect's {"schema", "payload"}.
 * Takes both; false (both NULL) when out of memory.
 */
static bool connect_wrap(kafkasink *ks, const sink_rel *rel, json_t **key,
                         json_t **value)
{
    bool has_key = *key && !json_is_null(*key), has_value = *value != NULL;
    kschema *sc;
    if (!ks->base.config->kafka.schemas)
        return true;
    sc = rel_schemas(ks, rel);
    if (sc && has_key)
        *key = dbz_connect(sc->key, *key);
    if (sc && *value)
        *value = dbz_connect(sc->value, *value);
    if (sc && (!has_key || *key) && (!has_value || *value))
        return true;
    json_decref(*key);
    json_decref(*value);
    *key = *value = NULL;
    return false;
}

/*
 * The same for a message or transaction event, whose schemas never
 * change (made at first use): key with schema kkey, value with kvalue.
 */
static bool connect_wrap_fixed(kafkasink *ks, dbz_fixed kkey,
                               dbz_fixed kvalue, json_t **key, json_t **value)
{
    dbz_fixed which[2] = {kkey, kvalue};
    json_t **part[2] = {key, value};
    bool ok = true;
    if (!ks->base.config->kafka.schemas)
        return true;
    for (int i = 0; i < 2; i++) {
        if (!ks->fixed[which[i]])
            ks->fixed[which[i]] = dbz_fixed_schema(which[i]);
        if (*part[i])
            *part[i] = ks->fixed[which[i]]
                           ? dbz_connect(ks->fixed[which[i]], *part[i])
                           : (json_decref(*part[i]), NULL);
        ok = ok && *part[i];
    }
    if (ok)
        return true;
    json_decref(*key);
    json_decref(*value);
    *key = *value = NULL;
    return false;
}

#define OUT_KEEP (1024 * 1024)  /* a buffer grown past this is let go */

/*
 * With kafka.schemas, Kafka Connect's {"schema", "payload"} around what
 * part writes (as dbz_connect would dump it); part alone otherwise.
 */
static void out_wrapped(kafkasink *ks, const char *schema, size_t schema_len,
                        bool wrap)
{
    static const char head[] = "{\"schema\":", mid[] = ",\"payload\":";
    if (!wrap)
        return;
    dbz_out_raw(&ks->out, head, sizeof head - 1);
    dbz_out_raw(&ks->out, schema, schema_len);
    dbz_out_raw(&ks->out, mid, sizeof mid - 1);
}

/*
 * An event written into ks->out (key then value, klen bytes of key; no
 * key: partition 0, which keeps such a table's changes in order) goes
 * out, copied by librdkafka; the buffer is emptied for the next one.
 */
static bool produce_out(kafkasink *ks, rd_kafka_topic_t *rkt, size_t klen,
                        bool has_value)
{
    dbz_out *o = &ks->out;
    bool ok = o->oom ? sink_fail(&ks->base, ks->commit_lsn, "out of memory")
                     : produce_msg(ks, rkt, klen ? RD_KAFKA_PARTITION_UA : 0,
                                   klen ? o->data : NULL, klen,
                                   has_value ? o->data + klen : NULL,
                                   o->len - klen, RD_KAFKA_MSG_F_COPY);
    if (o->cap > OUT_KEEP)
        dbz_out_free(o);
    o->len = 0;
    o->oom = false;
    return ok;
}

/*
 * The key of an event of rel into ks->out from key_vals (NULL, or a table
 * whose events have no key: none); its length.
 */
static size_t out_key(kafkasink *ks, const sink_rel *rel, kschema *sc,
                      const sink_value *key_vals)
{
    if (!key_vals || !dbz_has_key(rel))
        return 0;
    out_wrapped(ks, sc ? sc->key_text : NULL, sc ? sc->key_len : 0, sc);
    dbz_out_row(&ks->out, &ks->mode, rel, key_vals, true);
    dbz_out_raw(&ks->out, "}", sc != NULL);
    return ks->out.len;
}

/* rel's schemas with kafka.schemas (false when out of memory), else NULL. */
static bool schemas_of(kafkasink *ks, const sink_rel *rel, kschema **sc)
{
    *sc = NULL;
    if (!ks->base.config->kafka.schemas)
        return true;
    return (*sc = rel_schemas(ks, rel)) != NULL;
}

/*
 * One change event of a table: c u d r t, keyed by key_vals' key columns
 * (NULL: no key), written straight into the reusable buffer.
 */
static bool produce_change(kafkasink *ks, const sink_rel *rel, char op,
                           const sink_value *key_vals,
                           const sink_value *before, const sink_value *after)
{
    rd_kafka_topic_t *rkt = table_topic(ks, rel);
    dbz_txinfo tx = {.id = ks->txid};
    bool meta = ks->base.config->kafka.transaction_metadata;
    kschema *sc;
    size_t klen;
    if (!rkt)
        return false;
    if (meta) {
        kcoll *c = count_event(ks, rel);
        if (!c)
            return sink_fail(&ks->base, ks->commit_lsn, "out of memory");
        tx.total_order = ks->total_order;
        tx.data_collection_order = c->count;
    }
    if (!schemas_of(ks, rel, &sc) || !shared_source(ks, rel))
        return sink_fail(&ks->base, ks->commit_lsn, "out of memory");
    klen = out_key(ks, rel, sc, key_vals);
    out_wrapped(ks, sc ? sc->value_text : NULL, sc ? sc->value_len : 0, sc);
    dbz_out_envelope(&ks->out, &ks->mode, op, rel, before, after,
                     &ks->src, ks->lsn, meta ? &tx : NULL,
                     ks->now_ms);
    dbz_out_raw(&ks->out, "}", sc != NULL);
    atomic_fetch_add_explicit(&ks->base.rows_applied, 1, memory_order_relaxed);
    return produce_out(ks, rkt, klen, true);
}

/* The tombstone after a delete of key_vals' key (none without a key). */
static bool tombstone(kafkasink *ks, const sink_rel *rel,
                      const sink_value *key_vals)
{
    rd_kafka_topic_t *rkt;
    kschema *sc;
    size_t klen;
    if (!ks->base.config->kafka.tombstones || !key_vals || !dbz_has_key(rel))
        return true;
    if (!(rkt = table_topic(ks, rel)))
        return false;
    if (!schemas_of(ks, rel, &sc))
        return sink_fail(&ks->base, ks->commit_lsn, "out of memory");
    klen = out_key(ks, rel, sc, key_vals);
    return produce_out(ks, rkt, klen, false);
}

/* A row and a key under the sink's mode (the loader's jansson trees). */
static json_t *row_of(kafkasink *ks, const sink_rel *rel,
                      const sink_value *vals, bool key_only)
{
    return dbz_row_typed(&ks->mode, rel, vals, key_only);
}

static json_t *key_of(kafkasink *ks, const sink_rel *rel,
                      const sink_value *vals)
{
    return dbz_key_typed(&ks->mode, rel, vals);
}

static bool on_insert(kafkasink *ks, const sink_event *ev)
{
    const sink_rel *rel = typed_rel(ks, ev->rel);
    return rel && produce_change(ks, rel, 'c', ev->new_vals, NULL,
                                 ev->new_vals);
}

/*
 * Whether an update moved its row to another key. pgoutput sends the old
 * key ('K') only then; under FULL the whole old row ('O') comes every
 * time, and the primary key's values tell.
 */
/*
 * Whether an update moved the row's key. An old key ('K') also comes when
 * the key is unchanged but stored out of line (the new row then says 'u'
 * for it): the values decide, not the old tuple's presence.
 */
static bool key_moved(const sink_rel *rel, const sink_event *ev)
{
    if ((ev->old_kind != 'O' && ev->old_kind != 'K') || !ev->old_vals ||
        !ev->new_vals || !dbz_has_key(rel))
        return ev->old_kind == 'K';
    for (uint16_t i = 0; i < rel->ncols; i++) {
        const sink_value *o = &ev->old_vals[i], *n = &ev->new_vals[i];
        if (!dbz_key_col(rel, &rel->cols[i]) || n->kind == 'u')
            continue;
        if (o->kind != n->kind || o->len != n->len ||
            (o->len && memcmp(o->data, n->data, o->len) != 0))
            return true;
    }
    return false;
}

/*
 * The new row's values with an unchanged out-of-line key column ('u') taken
 * from the old tuple, in *merged (NULL when none is 'u', or there is no old
 * tuple): keyed by the placeholder, the event would go to another
 * partition under another key. False when out of memory.
 */
static bool unchanged_key(const sink_rel *rel, const sink_event *ev,
                          sink_value **merged)
{
    *merged = NULL;
    if (!ev->old_vals || !ev->new_vals || !dbz_has_key(rel))
        return true;
    for (uint16_t i = 0; i < rel->ncols; i++) {
        if (!dbz_key_col(rel, &rel->cols[i]) || ev->new_vals[i].kind != 'u' ||
            ev->old_vals[i].kind == 'u')
            continue;
        if (!*merged) {
            *merged = malloc(rel->ncols * sizeof **merged);
            if (!*merged)
                return false;
            memcpy(*merged, ev->new_vals, rel->ncols * sizeof **merged);
        }
        (*merged)[i] = ev->old_vals[i];
    }
    return true;
}

/*
 * A key change is a delete, a tombstone and a create, as Debezium does,
 * so each key's partition sees its row go.
 */
static bool on_update(kafkasink *ks, const sink_event *ev)
{
    const sink_rel *rel = typed_rel(ks, ev->rel);
    if (!rel)
        return false;
    if (key_moved(rel, ev))
        return produce_change(ks, rel, 'd', ev->old_vals, ev->old_vals,
                              NULL) &&
               tombstone(ks, rel, ev->old_vals) &&
               on_insert(ks, ev);
    sink_value *merged;
    if (!unchanged_key(rel, ev, &merged))
        return sink_fail(&ks->base, ks->commit_lsn, "out of memory");
    bool ok = produce_change(ks, rel, 'u', merged ? merged : ev->new_vals,
                             ev->old_kind == 'O' ? ev->old_vals : NULL,
                             ev->new_vals);
    free(merged);
    return ok;
}

static bool on_delete(kafkasink *ks, const sink_event *ev)
{
    const sink_rel *rel = typed_rel(ks, ev->rel);
    return rel &&
           produce_change(ks, rel, 'd', ev->old_vals, ev->old_vals, NULL) &&
           tombstone(ks, rel, ev->old_vals);
}

static bool on_truncate(kafkasink *ks, const sink_event *ev)
{
    if (!ks->base.config->kafka.truncate_events)
        return true;
    for (uint32_t i = 0; i < ev->ntruncate; i++)
        if (!produce_change(ks, ev->truncate_rels[i], 't', NULL, NULL,
                            NULL))
            return false;
    return true;
}

static bool on_message(kafkasink *ks, const sink_event *ev)
{
    if (!ks->msg_rkt &&
        !(ks->msg_rkt = new_topic(ks, ks->base.config->kafka.message_topic,
                                  "", "")))
        return false;
    dbz_source src = source_of(ks, NULL);
    json_t *value = dbz_message(ev->prefix, ev->content, ev->content_len,
                                &src, ks->now_ms);
    json_t *key = dbz_message_key(ev->prefix);
    if (!value || !key ||
        !connect_wrap_fixed(ks, DBZ_SCHEMA_MESSAGE_KEY, DBZ_SCHEMA_MESSAGE,
                            &key, &value)) {
        json_decref(key);
        json_decref(value);
        return sink_fail(&ks->base, ks->commit_lsn, "out of memory");
    }
    atomic_fetch_add_explicit(&ks->base.rows_applied, 1, memory_order_relaxed);
    return produce_json(ks, ks->msg_rkt, key, value);
}

/* BEGIN and END events on the transaction topic. */
static bool produce_txn_event(kafkasink *ks, bool end)
{
    if (!ks->txn_rkt &&
        !(ks->txn_rkt = new_topic(ks, ks->base.config->kafka.transaction_topic,
                                  "", "")))
        return false;
    json_t *value;
    if (!end) {
        value = dbz_txn_begin(ks->txid, ks->now_ms);
    } else {
        const char *names[ks->ncolls ? ks->ncolls : 1];
        int64_t counts[ks->ncolls ? ks->ncolls : 1];
        for (size_t i = 0; i < ks->ncolls; i++) {
            names[i] = ks->colls[i].name;
            counts[i] = ks->colls[i].count;
        }
        value = dbz_txn_end(ks->txid, ks->now_ms, ks->total_order, names,
                            counts, ks->ncolls);
    }
    json_t *key = dbz_txn_key(ks->txid);
    if (!value || !key ||
        !connect_wrap_fixed(ks, DBZ_SCHEMA_TXN_KEY, DBZ_SCHEMA_TXN, &key,
                            &value)) {
        json_decref(key);
        json_decref(value);
        return sink_fail(&ks->base, ks->commit_lsn, "out of memory");
    }
    return produce_json(ks, ks->txn_rkt, key, value);
}

/* ---- the sink interface -------------------------------------------------- */

/*
 * The producer ks reports through: the configuration's shared one, or
 * (the loader) one of its own. False with the reason in ks->base.error.
 */
static bool producer_new(kafkasink *ks)
{
    char err[512];
    ks->kp = ks->own_producer ? kprod_new(ks->base.config, err, sizeof err)
                              : kprod_get(ks->base.config, err, sizeof err);
    if (!ks->kp)
        return sink_fail(&ks->base, 0, "%s", err);
    atomic_store(&ks->failed, false);
    if (!kprod_attach(ks->kp, ks)) {
        kprod_put(ks->kp);
        ks->kp = NULL;
        return sink_fail(&ks->base, 0, "out of memory");
    }
    ks->rk = ks->kp->rk;
    return true;
}

/* Whether every message of ks in flight was acknowledged or refused. */
static bool settled(kafkasink *ks)
{
    pthread_mutex_lock(&ks->kp->mu);
    kring_advance(&ks->ring);
    bool none = ks->ring.n == 0;
    pthread_mutex_unlock(&ks->kp->mu);
    return none;
}

/*
 * Waits up to timeout_ms for every message of ks in flight to be
 * acknowledged or refused, serving the reports; *timed_out (may be NULL)
 * says some were still in flight. Only ks's own messages are waited for:
 * the producer is shared, and the reports may be served by any worker.
 * False when the sink failed.
 */
static bool settle(kafkasink *ks, int timeout_ms, bool *timed_out)
{
    int64_t until = mono_ms() + timeout_ms;
    bool ok = serve(ks, 0);
    while (ok && !settled(ks) && mono_ms() < until)
        ok = serve(ks, SETTLE_POLL_MS);
    if (timed_out)
        *timed_out = ok && !settled(ks);
    return ok;
}

/* Leaves the producer: what is still queued of ks's is no longer its. */
static void producer_close(kafkasink *ks)
{
    kprod_detach(ks->kp, ks);
    topics_free(ks);
    forget_source(ks);
    kprod_put(ks->kp);
    ks->kp = NULL;
    ks->rk = NULL;
    colls_clear(ks);
}

/* See sink.forget_position: the checkpoint goes back to nothing. */
static bool forget_checkpoint(kafkasink *ks, lsn_t *ckpt, lsn_t *commit)
{
    char err[512];
    if (!ks->base.forget_position || *ckpt == 0)
        return true;
    *commit = 0;
    if (!write_checkpoint(ks, 0, 0, err, sizeof err))
        return sink_fail(&ks->base, 0, "cannot forget an earlier slot's "
                         "Kafka checkpoint: %s", err);
    log_info("event=position_forgotten service=%s sink=kafka reason=\"the "
             "slot is new\"", ks->base.service->name);
    *ckpt = 0;
    return true;
}

static bool ks_open(sink *s, lsn_t *durable)
{
    kafkasink *ks = impl(s);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/kafka", s->config->state_dir);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return sink_fail(s, 0, "cannot make %s: %s", dir, strerror(errno));
    lsn_t ckpt, commit;
    if (!read_checkpoint(ks, &ckpt, &commit) ||
        !forget_checkpoint(ks, &ckpt, &commit) ||
        !ckpt_start(ks, ckpt, commit) || !producer_new(ks))
        return false;
    ks->ring.acked = ckpt;
    ks->ring.acked_commit = commit;
    /* The stream starts again after the checkpoint's transaction. */
    ks->last_commit_lsn = commit;
    ks->in_txn = false;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t merr = rd_kafka_metadata(ks->rk, 0, NULL, &md,
                                                 OPEN_TIMEOUT_MS);
    if (merr)
        return sink_fail(s, 0, "cannot reach Kafka (%s): %s",
                         s->config->kafka.brokers, rd_kafka_err2str(merr));
    rd_kafka_metadata_destroy(md);
    *durable = ckpt;
    return serve(ks, 0);
}

static bool ks_begin(sink *s, const sink_event *ev)
{
    kafkasink *ks = impl(s);
    if (ks->failed)
        return serve(ks, 0);
    if (!ring_push(ks, ev->commit_lsn))
        return sink_fail(s, ev->commit_lsn, "out of memory");
    ks->in_txn = true;
    ks->xid = ev->xid;
    ks->commit_lsn = ev->commit_lsn;
    ks->commit_ms = ev->commit_time / 1000;
    ks->now_ms = wall_ms();
    ks->total_order = 0;
    colls_clear(ks);
    forget_source(ks);
    if (!s->config->kafka.transaction_metadata)
        return true;
    /* Only transaction metadata names the transaction: no printf per txn. */
    snprintf(ks->txid, sizeof ks->txid, "%" PRIu32 ":%" PRIu64, ev->xid,
             (uint64_t)ev->commit_lsn);
    return produce_txn_event(ks, false);
}

/*
 * Binary values are never asked for where a Kafka sink is configured
 * (binfmt.h); one that came anyway is refused rather than sent as null.
 */
static bool binary_values(kafkasink *ks, const sink_event *ev)
{
    if (!ev->binary)
        return false;
    sink_fail(&ks->base, ev->commit_lsn, "a change of %s.%s came with "
              "values in binary form, which Kafka events cannot carry",
              ev->rel->schema, ev->rel->name);
    return true;
}

static bool ks_change(sink *s, const sink_event *ev)
{
    kafkasink *ks = impl(s);
    if (ks->failed)
        return serve(ks, 0);
    if (binary_values(ks, ev))
        return false;
    ks->lsn = ev->lsn ? ev->lsn : ks->commit_lsn;
    switch (ev->op) {
    case SINK_INSERT:
        return on_insert(ks, ev);
    case SINK_UPDATE:
        return on_update(ks, ev);
    case SINK_DELETE:
        return on_delete(ks, ev);
    case SINK_TRUNCATE:
        return on_truncate(ks, ev);
    case SINK_MESSAGE:
        return on_message(ks, ev);
    default:
        return true;
    }
}

static bool ks_commit(sink *s, const sink_event *ev, bool more)
{
    kafkasink *ks = impl(s);
    (void)more;
    if (s->config->kafka.transaction_metadata && !produce_txn_event(ks, true))
        return false;
    ring_close(ks, ev->end_lsn);
    ks->in_txn = false;
    ks->last_commit_lsn = ks->commit_lsn;
    atomic_fetch_add_explicit(&s->txns_applied, 1, memory_order_relaxed);
    /*
     * Delivery reports wait for the worker's flush (every flush_every_ms
     * while busy, and whenever its queue runs empty) or POLL_EVERY
     * messages: a poll per transaction of a few rows was 2% of cleave's
     * CPU in a Kafka catch-up, for nothing the flush would not do.
     */
    return true;
}

static bool ks_flush(sink *s, lsn_t *durable)
{
    kafkasink *ks = impl(s);
    bool ok = serve(ks, 0) && checkpoint(ks, false);
    *durable = ks->written;
    return ok;
}

static bool ks_drain(sink *s, lsn_t *durable)
{
    kafkasink *ks = impl(s);
    bool ok = ks->rk && settle(ks, DRAIN_TIMEOUT_MS, NULL) &&
              checkpoint(ks, true);
    *durable = ks->written;
    return ok;
}

/*
 * Messages already produced cannot be taken back: the unfinished
 * transaction's entry moves nothing, and what is in flight is waited for
 * so the replay repeats as little as it can.
 */
static void ks_rollback(sink *s)
{
    kafkasink *ks = impl(s);
    if (ks->in_txn && ks->rk)
        ring_close(ks, 0);
    ks->in_txn = false;
    if (ks->rk && !atomic_load(&ks->failed) &&
        settle(ks, ROLLBACK_TIMEOUT_MS, NULL))
        checkpoint(ks, true);
    /*
     * The replay starts after what the checkpoint holds: the transactions
     * produced since come again, and the first one's predecessor is the
     * checkpoint's (source.sequence would put it after them all).
     */
    ks->last_commit_lsn = ks->written_commit;
}

static void ks_close(sink *s)
{
    kafkasink *ks = impl(s);
    if (ks->rk && !atomic_load(&ks->failed) &&
        settle(ks, CLOSE_TIMEOUT_MS, NULL))
        checkpoint(ks, true);
    ckpt_stop(ks);
    /* Whatever is left will be produced again from the checkpoint. */
    if (ks->rk)
        producer_close(ks);
}

static bool ks_idle(sink *s, lsn_t *durable)
{
    return ks_flush(s, durable);
}

static const sink_ops kafkasink_ops = {
    .kind = "kafka",
    .id = SINK_KIND_KAFKA,
    .destroy = kafkasink_free,
    .flush_every_ms = 50,
    .open = ks_open,
    .begin = ks_begin,
    .change = ks_change,
    .commit = ks_commit,
    .flush = ks_flush,
    .idle = ks_idle,
    .drain = ks_drain,
    .rollback = ks_rollback,
    .close = ks_close,
};

sink *kafkasink_new(const cfg *config, const cfg_service *service)
{
    kafkasink *ks = calloc(1, sizeof *ks);
    if (!ks)
        return NULL;
    ks->base.ops = &kafkasink_ops;
    ks->base.config = config;
    ks->base.service = service;
    ks->base.impl = ks;
    atomic_init(&ks->base.rows_applied, 0);
    atomic_init(&ks->base.txns_applied, 0);
    atomic_init(&ks->base.conflicts, 0);
    pthread_mutex_init(&ks->ck_mu, NULL);
    pthread_cond_init(&ks->ck_cond, NULL);
    ks->ckpt_path = kafkasink_checkpoint_path(config, service);
    ks->db = kafkasink_source_db(config->source.dsn);
    ks->mode = (dbz_mode){
        .decimal = (dbz_decimal)config->kafka.decimal_handling,
        .adaptive = config->kafka.schemas,
    };
    if (!ks->ckpt_path || !ks->db) {
        kafkasink_free(&ks->base);
        return NULL;
    }
    return &ks->base;
}

void kafkasink_free(sink *s)
{
    if (!s)
        return;
    kafkasink *ks = impl(s);
    ks_close(s);
    kring_free(&ks->ring);
    free(ks->colls);
    free(ks->topics);
    schemas_free(ks);
    dbz_out_free(&ks->src.text);
    dbz_out_free(&ks->out);
    free(ks->ckpt_path);
    free(ks->db);
    pthread_mutex_destroy(&ks->ck_mu);
    pthread_cond_destroy(&ks->ck_cond);
    free(ks);
}

/* ---- the initial sync's loader -------------------------------------------- */

/*
 * A kafkasink of its own, never opened as a sink: its producer, topics,
 * delivery reports and queue-full waits serve the snapshot events. Each
 * table is one entry of its ring, closed by end.
 */
typedef struct kafkaload {
    sink_loader base;
    kafkasink *ks;
    const sink_rel *rel;     /* the table being loaded (the caller's) */
    const sink_rel *trel;    /* what its values render by (typed_rel) */
    rd_kafka_topic_t *rkt;
    lsn_t lsn;
    int64_t now_ms, started_ms;
    uint64_t rows;
    bool in_table;           /* its ring entry is open */
    json_t *held_key, *held_value;   /* the table's last row so far */
    char *line;              /* the row, copied to be split in place */
    size_t line_cap;
} kafkaload;

static bool kl_fail(kafkaload *kl, const char *why)
{
    return sink_loader_fail(&kl->base, "publishing %s.%s to Kafka: %s",
                            kl->rel->schema, kl->rel->name, why);
}

static void kl_close_entry(kafkaload *kl)
{
    if (kl->in_table)
        ring_close(kl->ks, 0);
    kl->in_table = false;
}

static bool kl_begin(sink_loader *l, const sink_load_table *t)
{
    kafkaload *kl = l->impl;
    kafkasink *ks = kl->ks;
    kl->rel = t->rel;
    kl->lsn = t->snapshot_lsn;
    kl->now_ms = wall_ms();
    kl->started_ms = mono_ms();
    kl->rows = 0;
    ks->commit_lsn = 0;
    if (!ring_push(ks, 0))
        return kl_fail(kl, "out of memory");
    kl->in_table = true;
    if (!(kl->trel = typed_rel(ks, t->rel)))
        return kl_fail(kl, ks->base.error);
    kl->rkt = table_topic(ks, t->rel);
    return kl->rkt || kl_fail(kl, ks->base.error);
}

/* The held row goes out; `snapshot` is what its source says. */
static bool kl_release_held(kafkaload *kl, const char *snapshot)
{
    if (!kl->held_value)
        return true;
    json_object_set_new(json_object_get(kl->held_value, "source"),
                        "snapshot", json_string(snapshot));
    if (!connect_wrap(kl->ks, kl->rel, &kl->held_key, &kl->held_value))
        return kl_fail(kl, "out of memory");
    bool ok = produce_json(kl->ks, kl->rkt, kl->held_key, kl->held_value);
    kl->held_key = kl->held_value = NULL;
    return ok || kl_fail(kl, kl->ks->base.error);
}

/* The row's "r" event is held until the next row says it is not last. */
static bool kl_hold(kafkaload *kl, const sink_value *vals)
{
    dbz_source src = {
        .version = CLEAVE_VERSION, .name = kl->base.config->name,
        .db = kl->ks->db, .schema = kl->rel->schema, .table = kl->rel->name,
        .ts_ms = kl->now_ms, .snapshot = "true", .lsn = kl->lsn,
    };
    json_t *key = key_of(kl->ks, kl->trel, vals);
    json_t *value = dbz_envelope('r', NULL,
                                 row_of(kl->ks, kl->trel, vals, false), &src,
                                 NULL, kl->now_ms);
    if (!key || !value) {
        json_decref(key);
        json_decref(value);
        return kl_fail(kl, "out of memory");
    }
    bool ok = kl_release_held(kl, "true");
    kl->held_key = key;
    kl->held_value = value;
    kl->rows++;
    return ok;
}

/* A NUL-terminated copy of the line, which copytext splits in place. */
static char *kl_line(kafkaload *kl, const char *line, size_t len)
{
    if (len + 1 > kl->line_cap) {
        char *grown = realloc(kl->line, len + 1);
        if (!grown)
            return NULL;
        kl->line = grown;
        kl->line_cap = len + 1;
    }
    memcpy(kl->line, line, len);
    kl->line[len] = '\0';
    return kl->line;
}

static bool kl_row(sink_loader *l, const char *line, size_t len)
{
    kafkaload *kl = l->impl;
    uint16_t ncols = kl->rel->ncols;
    copytext_field fields[ncols ? ncols : 1];
    sink_value vals[ncols ? ncols : 1];
    char *text = kl_line(kl, line, len);
    if (!text)
        return kl_fail(kl, "out of memory");
    /* A table without columns has empty rows: no field to split. */
    int got = ncols ? copytext_split(text, len, fields, ncols) : 0;
    if (got != ncols)
        return kl_fail(kl, "a row of COPY that does not split into its "
                       "columns");
    for (int i = 0; i < got; i++)
        vals[i] = (sink_value){fields[i].null ? 'n' : 't', fields[i].len,
                               fields[i].data};
    return kl_hold(kl, vals);
}

/* Done once the broker acknowledged every row of the table. */
static bool kl_end(sink_loader *l, bool last)
{
    kafkaload *kl = l->impl;
    bool timed_out = false;
    if (!kl_release_held(kl, last ? "last" : "true"))
        return false;
    kl_close_entry(kl);
    if (!settle(kl->ks, COPY_TIMEOUT_MS, &timed_out))
        return kl_fail(kl, kl->ks->base.error);
    if (timed_out)
        return sink_loader_fail(l, "Kafka did not acknowledge the rows of "
                                "%s.%s in %d s", kl->rel->schema,
                                kl->rel->name, COPY_TIMEOUT_MS / 1000);
    log_info("event=table_published service=%s table=%s.%s rows=%llu "
             "seconds=%.2f", l->service->name, kl->rel->schema,
             kl->rel->name, (unsigned long long)kl->rows,
             (mono_ms() - kl->started_ms) / 1000.0);
    return true;
}

/* Rows already produced stay: the table is published again in full. */
static void kl_abort(sink_loader *l)
{
    kafkaload *kl = l->impl;
    json_decref(kl->held_key);
    json_decref(kl->held_value);
    kl->held_key = kl->held_value = NULL;
    kl_close_entry(kl);
}

static void kl_close(sink_loader *l)
{
    kafkaload *kl = l->impl;
    kl_abort(l);
    producer_close(kl->ks);
    kafkasink_free(&kl->ks->base);
    free(kl->line);
    free(kl);
}

static const sink_loader_ops kafkaload_ops = {
    .kind = "kafka",
    .begin = kl_begin,
    .row = kl_row,
    .end = kl_end,
    .abort = kl_abort,
    .close = kl_close,
};

sink_loader *kafkasink_loader(const cfg *config, const cfg_service *service,
                              char *err, size_t errlen)
{
    kafkaload *kl = calloc(1, sizeof *kl);
    sink *s = kl ? kafkasink_new(config, service) : NULL;
    if (!s) {
        free(kl);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    kl->ks = impl(s);
    kl->ks->own_producer = true;
    kl->base = (sink_loader){.ops = &kafkaload_ops, .config = config,
                             .service = service, .impl = kl};
    if (!producer_new(kl->ks)) {
        snprintf(err, errlen, "%s", s->error);
        kafkasink_free(s);
        free(kl);
        return NULL;
    }
    return &kl->base;
}
