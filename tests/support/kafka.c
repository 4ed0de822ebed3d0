/* kafka: mock cluster process, reader and producer for tests; see kafka.h. */
#include "tests/support/kafka.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#define KT_START_MS 10000    /* for the bootstrap line */
#define KT_CMD_MS 10000      /* for a command's answer */
#define KT_STOP_MS 10000     /* for the exit after quit */
#define KT_READ_MS 30000     /* for a whole kt_read_topic */
#define KT_PRODUCE_MS 30000  /* for the acknowledgements */
#define KT_META_MS 5000      /* for one metadata request */
#define KT_MAX_ARGS 32

static int64_t kt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* What is left until deadline, capped, never negative: a poll timeout. */
static int kt_left_ms(int64_t deadline, int cap)
{
    int64_t left = deadline - kt_now_ms();
    if (left < 0)
        return 0;
    return left < cap ? (int)left : cap;
}

/* ---- the mock cluster process ------------------------------------------ */

struct kt_mock {
    pid_t pid;
    int fd;              /* a socket on the mock's stdin and stdout */
    bool broken;         /* an answer never came: replies are out of step */
    char buf[4096];
    size_t len;
    char bootstrap[1024];
};

static const char *kt_kmock_path(char *buf, size_t len)
{
    const char *p = getenv("CLEAVE_KMOCK");
    if (p && *p)
        return p;
    const char *b = getenv("CLEAVE_BUILDDIR");
    snprintf(buf, len, "%s/tests/support/cleave-kmock", b && *b ? b : ".");
    return buf;
}

/* 1 with a line (no newline), 0 at the deadline, -1 at EOF or error. */
static int kt_read_line(kt_mock *m, char *line, size_t len, int64_t deadline)
{
    for (;;) {
        char *nl = memchr(m->buf, '\n', m->len);
        if (nl) {
            size_t n = (size_t)(nl - m->buf);
            snprintf(line, len, "%.*s", (int)n, m->buf);
            m->len -= n + 1;
            memmove(m->buf, nl + 1, m->len);
            return 1;
        }
        if (m->len == sizeof m->buf)
            return -1;
        struct pollfd p = {m->fd, POLLIN, 0};
        int r = poll(&p, 1, kt_left_ms(deadline, 1000));
        if (r < 0 && errno != EINTR)
            return -1;
        if (r <= 0) {
            if (kt_now_ms() >= deadline)
                return 0;
            continue;
        }
        ssize_t got = read(m->fd, m->buf + m->len, sizeof m->buf - m->len);
        if (got <= 0)
            return -1;
        m->len += (size_t)got;
    }
}

/* A socket, not a pipe: a dead mock is EPIPE here, never SIGPIPE. */
static bool kt_send(kt_mock *m, const char *s)
{
    size_t len = strlen(s);
    while (len > 0) {
        ssize_t n = send(m->fd, s, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        s += n;
        len -= (size_t)n;
    }
    return true;
}

static int kt_split_args(char *args, char **argv, int max)
{
    int n = 0;
    for (char *save, *t = strtok_r(args, " \t", &save); t && n < max;
         t = strtok_r(NULL, " \t", &save))
        argv[n++] = t;
    return n;
}

/* In the forked child: never returns. */
static void kt_exec_mock(int fd, pid_t parent, const char *path,
                         char *const argv[])
{
    /* Here, before the exec, the parent's death cannot be missed. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(127);
    if (dup2(fd, 0) < 0 || dup2(fd, 1) < 0)
        _exit(127);
    /* Or the mock would hold the test's pipes open after it is gone. */
    close_range(3, ~0U, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    execv(path, argv);
    _exit(127);
}

static int kt_reap(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static bool kt_await_bootstrap(kt_mock *m, const char *path)
{
    char line[sizeof m->buf];
    int r = kt_read_line(m, line, sizeof line, kt_now_ms() + KT_START_MS);
    if (r == 1 && strncmp(line, "bootstrap ", 10) == 0 &&
        strlen(line + 10) < sizeof m->bootstrap) {
        strcpy(m->bootstrap, line + 10);
        return true;
    }
    fprintf(stderr, "kt_mock_start: %s: %s\n", path,
            r == 1 ? line : r == 0 ? "no bootstrap line in time"
                                   : "exited before its bootstrap line");
    return false;
}

kt_mock *kt_mock_start(const char *extra_args)
{
    char pathbuf[1024], args[1024];
    const char *path = kt_kmock_path(pathbuf, sizeof pathbuf);
    char *argv[KT_MAX_ARGS + 2] = {"cleave-kmock"};
    snprintf(args, sizeof args, "%s", extra_args ? extra_args : "");
    argv[1 + kt_split_args(args, argv + 1, KT_MAX_ARGS)] = NULL;
    kt_mock *m = calloc(1, sizeof *m);
    int sv[2];
    if (!m || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        perror("kt_mock_start");
        free(m);
        return NULL;
    }
    pid_t parent = getpid();
    fflush(NULL);  /* or the child would print our buffers too */
    m->pid = fork();
    if (m->pid == 0)
        kt_exec_mock(sv[1], parent, path, argv);
    close(sv[1]);
    m->fd = sv[0];
    if (m->pid < 0) {
        perror("kt_mock_start: fork");
        close(m->fd);
        free(m);
        return NULL;
    }
    if (!kt_await_bootstrap(m, path)) {
        kill(m->pid, SIGKILL);
        kt_reap(m->pid);
        close(m->fd);
        free(m);
        return NULL;
    }
    return m;
}

const char *kt_mock_bootstrap(const kt_mock *m)
{
    return m->bootstrap;
}

pid_t kt_mock_pid(const kt_mock *m)
{
    return m->pid;
}

/* Sends cmd plus a newline; 1 with the answer in line, 0 late, -1 gone. */
static int kt_mock_ask(kt_mock *m, const char *cmd, char *line, size_t len)
{
    char buf[1100];
    snprintf(buf, sizeof buf, "%s\n", cmd);
    if (!kt_send(m, buf))
        return -1;
    return kt_read_line(m, line, len, kt_now_ms() + KT_CMD_MS);
}

bool kt_mock_cmd(kt_mock *m, const char *fmt, ...)
{
    char cmd[1024], line[sizeof m->buf];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    const char *why = NULL;
    if (len < 0 || (size_t)len >= sizeof cmd || strchr(cmd, '\n'))
        why = "not one command line";
    else if (m->broken)
        why = "mock out of step";
    int r = why ? -1 : kt_mock_ask(m, cmd, line, sizeof line);
    if (!why && r != 1) {
        m->broken = true;
        why = r == 0 ? "no answer in time" : "mock gone";
    } else if (!why && strcmp(line, "ok") != 0) {
        why = line;
    }
    if (why)
        fprintf(stderr, "kt_mock_cmd: %s: %s\n", len < 0 ? fmt : cmd, why);
    return why == NULL;
}

int kt_mock_stop(kt_mock *m)
{
    if (!m)
        return -1;
    char line[sizeof m->buf];
    int64_t deadline = kt_now_ms() + KT_STOP_MS;
    int r = -1;
    /* Its stdout closes only when it exits: EOF is the exit, waited on. */
    if (kt_send(m, "quit\n"))
        while ((r = kt_read_line(m, line, sizeof line, deadline)) == 1)
            ;
    if (r == 0) {
        fprintf(stderr, "kt_mock_stop: no exit in time, killing it\n");
        kill(m->pid, SIGKILL);
    }
    int status = kt_reap(m->pid);
    close(m->fd);
    free(m);
    return status;
}

/* ---- reading topics back ------------------------------------------------ */

/* What was read of one partition, and where reading goes on. */
typedef struct kt_part {
    int64_t next;        /* the next offset wanted, or a logical one */
    int64_t hi;          /* stop here; -1 to read on */
    kt_set recs;
    size_t cap;
} kt_part;

typedef struct kt_reader {
    rd_kafka_t *rk;
    const char *topic;
    kt_part *parts;
    int nparts;
    char last_err[256];  /* the consumer's latest error, for a timeout */
} kt_reader;

static bool kt_conf_set(rd_kafka_conf_t *conf, const char *name,
                        const char *value, char *err, size_t errlen)
{
    return rd_kafka_conf_set(conf, name, value, err, errlen) ==
           RD_KAFKA_CONF_OK;
}

static rd_kafka_t *kt_client_new(rd_kafka_type_t type, rd_kafka_conf_t *conf,
                                 char *err, size_t errlen)
{
    rd_kafka_t *rk = rd_kafka_new(type, conf, err, errlen);
    if (!rk)
        rd_kafka_conf_destroy(conf);
    return rk;
}

/*
 * librdkafka 2.0.2 only assigns and polls with a group.id; it is never
 * joined (no subscribe) and nothing is committed. Topics are not created
 * for lack of allow.auto.create.topics (false for consumers) but because
 * metadata is only asked for all topics (kt_metadata): the mock speaks
 * Metadata below v4, which cannot carry the flag, and creates any topic
 * named in a request. Setting the flag would only log that.
 */
static rd_kafka_t *kt_consumer_new(const char *bootstrap, char *err,
                                   size_t errlen)
{
    static const char *const kv[][2] = {
        {"group.id", "cleave-kt-reader"},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"enable.partition.eof", "false"},
        {"auto.offset.reset", "earliest"},
        /* An empty partition's fetch would hold its broker's others back. */
        {"fetch.wait.max.ms", "20"},
    };
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    bool ok = kt_conf_set(conf, "bootstrap.servers", bootstrap, err, errlen);
    for (size_t i = 0; ok && i < sizeof kv / sizeof *kv; i++)
        ok = kt_conf_set(conf, kv[i][0], kv[i][1], err, errlen);
    const char *debug = getenv("CLEAVE_KT_DEBUG");
    if (ok && debug && *debug)
        ok = kt_conf_set(conf, "debug", debug, err, errlen);
    if (!ok) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return kt_client_new(RD_KAFKA_CONSUMER, conf, err, errlen);
}

static void kt_consumer_close(rd_kafka_t *rk)
{
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

/*
 * The cluster's metadata, asked for all topics: naming the one topic
 * would let the broker create it.
 */
static const rd_kafka_metadata_t *kt_metadata(rd_kafka_t *rk, char *err,
                                              size_t errlen)
{
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, KT_META_MS);
    if (e) {
        snprintf(err, errlen, "metadata: %s", rd_kafka_err2str(e));
        return NULL;
    }
    return md;
}

/* The topic's partition count, 0 when it does not exist; -1 on error. */
static int kt_partition_count(rd_kafka_t *rk, const char *topic, char *err,
                              size_t errlen)
{
    const rd_kafka_metadata_t *md = kt_metadata(rk, err, errlen);
    if (!md)
        return -1;
    int n = 0;
    for (int i = 0; i < md->topic_cnt; i++)
        if (strcmp(md->topics[i].topic, topic) == 0)
            n = md->topics[i].partition_cnt;
    rd_kafka_metadata_destroy(md);
    return n;
}

/* Grows r->parts to n partitions, new ones read from the beginning. */
static bool kt_reader_grow(kt_reader *r, int n, char *err, size_t errlen)
{
    if (n <= r->nparts)
        return true;
    kt_part *np = realloc(r->parts, (size_t)n * sizeof *np);
    if (!np) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    for (int p = r->nparts; p < n; p++)
        np[p] = (kt_part){.next = RD_KAFKA_OFFSET_BEGINNING, .hi = -1};
    r->parts = np;
    r->nparts = n;
    return true;
}

static bool kt_part_done(const kt_part *p)
{
    return p->hi >= 0 && p->next >= p->hi;
}

/* (Re)assigns every unfinished partition at the offset it has reached. */
static bool kt_reader_assign(kt_reader *r, char *err, size_t errlen)
{
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new(r->nparts);
    for (int p = 0; p < r->nparts; p++)
        if (!kt_part_done(&r->parts[p]))
            rd_kafka_topic_partition_list_add(l, r->topic, p)->offset =
                r->parts[p].next;
    rd_kafka_resp_err_t e = rd_kafka_assign(r->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e)
        snprintf(err, errlen, "assign %s: %s", r->topic, rd_kafka_err2str(e));
    return e == RD_KAFKA_RESP_ERR_NO_ERROR;
}

static char *kt_dup_bytes(const void *p, size_t len)
{
    if (!p)
        return NULL;
    char *s = malloc(len + 1);
    if (s) {
        memcpy(s, p, len);
        s[len] = '\0';
    }
    return s;
}

static bool kt_part_append(kt_part *p, const rd_kafka_message_t *m)
{
    if (p->recs.n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        kt_rec *nr = realloc(p->recs.r, cap * sizeof *nr);
        if (!nr)
            return false;
        p->recs.r = nr;
        p->cap = cap;
    }
    p->recs.r[p->recs.n++] = (kt_rec){
        .topic = strdup(rd_kafka_topic_name(m->rkt)),
        .partition = m->partition,
        .offset = m->offset,
        .key = kt_dup_bytes(m->key, m->key_len),
        .key_len = m->key_len,
        .value = kt_dup_bytes(m->payload, m->len),
        .value_len = m->len,
        .timestamp = rd_kafka_message_timestamp(m, NULL),
    };
    p->next = m->offset + 1;
    return true;
}

/* Takes one message in, or notes its error; false only out of memory. */
static bool kt_reader_take(kt_reader *r, rd_kafka_message_t *m)
{
    bool ok = true;
    if (m->err) {
        snprintf(r->last_err, sizeof r->last_err, "%s",
                 rd_kafka_message_errstr(m));
    } else if (m->partition >= 0 && m->partition < r->nparts &&
               strcmp(rd_kafka_topic_name(m->rkt), r->topic) == 0) {
        kt_part *p = &r->parts[m->partition];
        if ((p->next < 0 || m->offset >= p->next) &&
            (p->hi < 0 || m->offset < p->hi))
            ok = kt_part_append(p, m);
    }
    rd_kafka_message_destroy(m);
    return ok;
}

/*
 * Offsets need not be dense (transaction markers take one), so a
 * partition is also done when the consumer's position has passed hi.
 */
static void kt_reader_positions(kt_reader *r)
{
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new(r->nparts);
    for (int p = 0; p < r->nparts; p++)
        rd_kafka_topic_partition_list_add(l, r->topic, p);
    if (rd_kafka_position(r->rk, l) == RD_KAFKA_RESP_ERR_NO_ERROR)
        for (int i = 0; i < l->cnt; i++) {
            kt_part *p = &r->parts[l->elems[i].partition];
            if (l->elems[i].offset >= 0 && p->hi >= 0 &&
                l->elems[i].offset >= p->hi)
                p->next = l->elems[i].offset;
        }
    rd_kafka_topic_partition_list_destroy(l);
}

static bool kt_reader_all_done(const kt_reader *r)
{
    for (int p = 0; p < r->nparts; p++)
        if (!kt_part_done(&r->parts[p]))
            return false;
    return true;
}

static size_t kt_reader_count(const kt_reader *r)
{
    size_t n = 0;
    for (int p = 0; p < r->nparts; p++)
        n += r->parts[p].recs.n;
    return n;
}

/* Moves every record into out, partition by partition. */
static bool kt_reader_collect(kt_reader *r, kt_set *out, char *err,
                              size_t errlen)
{
    size_t total = kt_reader_count(r);
    *out = (kt_set){0};
    if (total == 0)
        return true;
    out->r = malloc(total * sizeof *out->r);
    if (!out->r) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    for (int p = 0; p < r->nparts; p++) {
        kt_part *part = &r->parts[p];
        if (part->recs.n)
            memcpy(out->r + out->n, part->recs.r,
                   part->recs.n * sizeof *out->r);
        out->n += part->recs.n;
        free(part->recs.r);
        part->recs = (kt_set){0};
        part->cap = 0;
    }
    return true;
}

static void kt_reader_free(kt_reader *r)
{
    for (int p = 0; p < r->nparts; p++)
        kt_set_free(&r->parts[p].recs);
    free(r->parts);
    if (r->rk)
        kt_consumer_close(r->rk);
}

/*
 * One watermark (RD_KAFKA_OFFSET_BEGINNING or _END) of every partition.
 * Not rd_kafka_query_watermark_offsets: in 2.0.2 it ignores its timeout
 * and hangs while a leader is down (librdkafka #2588, fixed in 2.3.0).
 */
static bool kt_reader_marks(kt_reader *r, int64_t which, int64_t deadline,
                            int64_t *marks, char *err, size_t errlen)
{
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new(r->nparts);
    for (int p = 0; p < r->nparts; p++)
        rd_kafka_topic_partition_list_add(l, r->topic, p)->offset = which;
    rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(
        r->rk, l, kt_left_ms(deadline, KT_META_MS));
    for (int i = 0; !e && i < l->cnt; i++) {
        e = l->elems[i].err;
        marks[l->elems[i].partition] = l->elems[i].offset;
    }
    rd_kafka_topic_partition_list_destroy(l);
    if (e)
        snprintf(err, errlen, "watermarks of %s: %s", r->topic,
                 rd_kafka_err2str(e));
    return e == RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* Sets every partition's range: from the low to the high watermark. */
static bool kt_reader_watermarks(kt_reader *r, int64_t deadline, char *err,
                                 size_t errlen)
{
    if (r->nparts == 0)
        return true;
    int64_t *lo = calloc((size_t)r->nparts, sizeof *lo);
    int64_t *hi = calloc((size_t)r->nparts, sizeof *hi);
    bool ok = lo && hi &&
              kt_reader_marks(r, RD_KAFKA_OFFSET_BEGINNING, deadline, lo, err,
                              errlen) &&
              kt_reader_marks(r, RD_KAFKA_OFFSET_END, deadline, hi, err,
                              errlen);
    for (int p = 0; ok && p < r->nparts; p++) {
        r->parts[p].next = lo[p];
        r->parts[p].hi = hi[p];
    }
    if (!lo || !hi)
        snprintf(err, errlen, "out of memory");
    free(lo);
    free(hi);
    return ok;
}

/* Consumes until every partition reached its high watermark. */
static bool kt_reader_drain(kt_reader *r, int64_t deadline, char *err,
                            size_t errlen)
{
    while (!kt_reader_all_done(r)) {
        if (kt_now_ms() >= deadline) {
            snprintf(err, errlen, "reading %s: timed out%s%s", r->topic,
                     r->last_err[0] ? ", last error: " : "", r->last_err);
            return false;
        }
        rd_kafka_message_t *m =
            rd_kafka_consumer_poll(r->rk, kt_left_ms(deadline, 500));
        if (m && !kt_reader_take(r, m)) {
            snprintf(err, errlen, "out of memory");
            return false;
        }
        if (!m)
            kt_reader_positions(r);
    }
    return true;
}

bool kt_read_topic(const char *bootstrap, const char *topic, kt_set *out,
                   char *err, size_t errlen)
{
    int64_t deadline = kt_now_ms() + KT_READ_MS;
    kt_reader r = {.topic = topic};
    *out = (kt_set){0};
    r.rk = kt_consumer_new(bootstrap, err, errlen);
    if (!r.rk)
        return false;
    int n = kt_partition_count(r.rk, topic, err, errlen);
    bool ok = n >= 0 && kt_reader_grow(&r, n, err, errlen) &&
              kt_reader_watermarks(&r, deadline, err, errlen) &&
              kt_reader_assign(&r, err, errlen) &&
              kt_reader_drain(&r, deadline, err, errlen) &&
              kt_reader_collect(&r, out, err, errlen);
    kt_reader_free(&r);
    return ok;
}

/*
 * Turns "from the beginning" into the low watermark: assigned at a logical
 * offset before its leader is known, a partition waits out librdkafka's
 * 500 ms offset query retry. If the query fails the logical offset stays.
 */
static void kt_reader_resolve(kt_reader *r, int64_t deadline)
{
    int64_t *lo = calloc((size_t)r->nparts, sizeof *lo);
    char ignored[256];
    if (lo && kt_reader_marks(r, RD_KAFKA_OFFSET_BEGINNING, deadline, lo,
                              ignored, sizeof ignored))
        for (int p = 0; p < r->nparts; p++)
            if (r->parts[p].next < 0)
                r->parts[p].next = lo[p];
    free(lo);
}

/*
 * Picks up partitions (and the topic itself) created since the last look.
 * A failed metadata request is only noted: the deadline decides.
 */
static bool kt_reader_refresh(kt_reader *r, int64_t deadline, char *err,
                              size_t errlen)
{
    int n = kt_partition_count(r->rk, r->topic, r->last_err,
                               sizeof r->last_err);
    if (n <= r->nparts)
        return true;
    if (!kt_reader_grow(r, n, err, errlen))
        return false;
    kt_reader_resolve(r, deadline);
    return kt_reader_assign(r, err, errlen);
}

/*
 * The consumer's poll is the wait: it returns as soon as a record comes.
 * Only a topic or partition that does not exist yet has no event to wake
 * on, so metadata is looked at again every KT_REFRESH_MS, and the poll is
 * capped at that.
 */
#define KT_REFRESH_MS 100

bool kt_wait_count(const char *bootstrap, const char *topic, size_t want,
                   int timeout_ms, kt_set *out, char *err, size_t errlen)
{
    int64_t deadline = kt_now_ms() + timeout_ms, refresh = 0;
    kt_reader r = {.topic = topic};
    *out = (kt_set){0};
    r.rk = kt_consumer_new(bootstrap, err, errlen);
    bool ok = r.rk != NULL;
    while (ok && kt_reader_count(&r) < want) {
        if (kt_now_ms() >= deadline) {
            snprintf(err, errlen, "%s: %zu of %zu records in time%s%s", topic,
                     kt_reader_count(&r), want,
                     r.last_err[0] ? ", last error: " : "", r.last_err);
            break;
        }
        if (kt_now_ms() >= refresh) {
            ok = kt_reader_refresh(&r, deadline, err, errlen);
            refresh = kt_now_ms() + KT_REFRESH_MS;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(
            r.rk, kt_left_ms(deadline, KT_REFRESH_MS));
        if (m && !kt_reader_take(&r, m)) {
            snprintf(err, errlen, "out of memory");
            ok = false;
        }
    }
    ok = ok && kt_reader_count(&r) >= want;
    if (!kt_reader_collect(&r, out, err, errlen))
        ok = false;
    kt_reader_free(&r);
    return ok;
}

void kt_set_free(kt_set *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->r[i].topic);
        free(s->r[i].key);
        free(s->r[i].value);
    }
    free(s->r);
    *s = (kt_set){0};
}

static int kt_cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

bool kt_list_topics(const char *bootstrap, char ***names, size_t *n,
                    char *err, size_t errlen)
{
    *names = NULL;
    *n = 0;
    rd_kafka_t *rk = kt_consumer_new(bootstrap, err, errlen);
    const rd_kafka_metadata_t *md = rk ? kt_metadata(rk, err, errlen) : NULL;
    bool ok = md != NULL;
    if (ok && md->topic_cnt > 0) {
        *names = calloc((size_t)md->topic_cnt, sizeof **names);
        ok = *names != NULL;
        for (int i = 0; ok && i < md->topic_cnt; i++)
            ok = ((*names)[(*n)++] = strdup(md->topics[i].topic)) != NULL;
        if (ok)
            qsort(*names, *n, sizeof **names, kt_cmp_names);
        else
            snprintf(err, errlen, "out of memory");
    }
    if (md)
        rd_kafka_metadata_destroy(md);
    if (rk)
        kt_consumer_close(rk);
    if (!ok) {
        kt_names_free(*names, *n);
        *names = NULL;
        *n = 0;
    }
    return ok;
}

void kt_names_free(char **names, size_t n)
{
    for (size_t i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
}

/* ---- producing ---------------------------------------------------------- */

typedef struct kt_acks {
    size_t n;
    rd_kafka_resp_err_t first_err;
} kt_acks;

static void kt_on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                           void *opaque)
{
    (void)rk;
    kt_acks *a = opaque;
    a->n++;
    if (m->err && !a->first_err)
        a->first_err = m->err;
}

static rd_kafka_t *kt_producer_new(const char *bootstrap, kt_acks *acks,
                                   char *err, size_t errlen)
{
    char timeout[32];
    snprintf(timeout, sizeof timeout, "%d", KT_PRODUCE_MS);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!kt_conf_set(conf, "bootstrap.servers", bootstrap, err, errlen) ||
        !kt_conf_set(conf, "enable.idempotence", "true", err, errlen) ||
        !kt_conf_set(conf, "message.timeout.ms", timeout, err, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, kt_on_delivery);
    rd_kafka_conf_set_opaque(conf, acks);
    return kt_client_new(RD_KAFKA_PRODUCER, conf, err, errlen);
}

/* Queues one record, serving delivery reports while the queue is full. */
static rd_kafka_resp_err_t kt_enqueue(rd_kafka_t *rk, const char *topic,
                                      const char *key, const char *value,
                                      int64_t deadline)
{
    rd_kafka_resp_err_t e;
    while ((e = rd_kafka_producev(
                rk, RD_KAFKA_V_TOPIC(topic),
                RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
                RD_KAFKA_V_VALUE((void *)value, value ? strlen(value) : 0),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
               RD_KAFKA_RESP_ERR__QUEUE_FULL &&
           kt_now_ms() < deadline)
        rd_kafka_poll(rk, kt_left_ms(deadline, 100));
    return e;
}

bool kt_produce_n(const char *bootstrap, const char *topic,
                  const char *const *keys, const char *const *values,
                  size_t n, char *err, size_t errlen)
{
    int64_t deadline = kt_now_ms() + KT_PRODUCE_MS + 5000;
    kt_acks acks = {0};
    rd_kafka_t *rk = kt_producer_new(bootstrap, &acks, err, errlen);
    if (!rk)
        return false;
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (size_t i = 0; i < n && !e; i++)
        e = kt_enqueue(rk, topic, keys[i], values[i], deadline);
    if (!e)
        e = rd_kafka_flush(rk, kt_left_ms(deadline, KT_PRODUCE_MS + 5000));
    if (!e && acks.n != n)
        e = RD_KAFKA_RESP_ERR__TIMED_OUT;
    if (!e)
        e = acks.first_err;
    if (e)
        snprintf(err, errlen, "producing to %s: %s (%zu of %zu acknowledged)",
                 topic, rd_kafka_err2str(e), acks.n, n);
    rd_kafka_destroy(rk);
    return e == RD_KAFKA_RESP_ERR_NO_ERROR;
}

bool kt_produce(const char *bootstrap, const char *topic, const char *key,
                const char *value, char *err, size_t errlen)
{
    return kt_produce_n(bootstrap, topic, &key, &value, 1, err, errlen);
}
