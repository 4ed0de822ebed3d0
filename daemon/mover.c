/* mover: cut-over, rollback, complete; see mover.h and docs/cutover.md. */
#include "daemon/mover.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/backoff.h"
#include "common/clock.h"
#include "common/ctlword.h"
#include "common/dbconn.h"
#include "common/log.h"
#include "daemon/journal.h"
#include "daemon/keeper.h"
#include "daemon/reverse.h"
#include "sinks/pgfence.h"
#include "sinks/pgseq.h"
#include "decoder/lsn.h"
#include "daemon/stream.h"

#define KEEP_EVERY_MS 5000          /* the keeper's turn */
#define LOCK_ATTEMPT_MS 100         /* writers queue behind a waiting lock */
#define DEFAULT_LAG_LIMIT (1u << 20)
#define DEFAULT_LOCK_TIMEOUT_MS 2000
#define DEFAULT_PAUSE_BUDGET_MS 1000
#define LOOP_ANSWER_MS 30000        /* the loop starts or stops a stream */
#define COMPLETE_DRAIN_MS 60000     /* `complete` waits on the reverse stream */
#define COMMIT_OUTCOME_MS 10000     /* a COMMIT whose answer was lost lands */
/*
 * A lag over the limit is looked at again this often, for this long,
 * before the move is refused: applied_lsn is the durable position, which
 * a PostgreSQL sink reads every 100 ms, so a fast writer's lag reads up to
 * 100 ms of WAL high between two reads (pgsink.c, durable_due).
 */
#define LAG_SAMPLE_MS 100
#define LAG_LOOK_MS 1000

typedef struct move_opts {
    uint64_t lag_limit;
    int lock_timeout_ms;
    int pause_budget_ms;
} move_opts;

typedef struct request {
    int fd;                  /* -1: none */
    char verb[16];
    size_t svc;
    int table;               /* resync: the owned table, -1 for all */
    move_opts opts;
} request;

struct mover {
    const cfg *config;
    int wake_fd;
    journal *jr;
    cfg **rev;               /* per service, made on first use */
    const char *crash_at;    /* tests: CLEAVE_TEST_CRASH_AT */
    long hold_ms;            /* tests: CLEAVE_TEST_HOLD_LOCK_MS */
    bool lose_reply;         /* tests: CLEAVE_TEST_LOSE_COMMIT_REPLY */
    status_fill_fn fill;
    void *fill_arg;
    size_t max_sinks;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;      /* everything below */
    pthread_cond_t cv;
    bool stopping, busy;
    request req;
    journal_entry *shown;    /* copies for the status socket */
    mover_ask ask;
    size_t ask_svc;
    bool asked, answered, answer_ok;
    int ask_table;           /* MOVER_ASK_RESYNC */
    char answer_err[512];    /* a refusal's reason */
    bool mark_wanted, mark_reached, mark_reverse;
    size_t mark_svc;
    char mark_token[STREAM_MARK_MAX];
    keeper *keeper;
    int64_t unfenced_at;     /* clock_us: the last new side opened */
};

static void say_failed(int fd, int exit, const char *error);

/* ---- construction ------------------------------------------------------ */

mover *mover_new(const cfg *config, int wake_fd, char *err, size_t errlen)
{
    mover *m = calloc(1, sizeof *m);
    size_t n = config->n_services ? config->n_services : 1;
    if (!m || !(m->rev = calloc(n, sizeof *m->rev)) ||
        !(m->shown = calloc(n, sizeof *m->shown)) ||
        !(m->keeper = keeper_new(config))) {
        snprintf(err, errlen, "out of memory");
        mover_free(m);
        return NULL;
    }
    m->config = config;
    m->wake_fd = wake_fd;
    m->req.fd = -1;
    m->crash_at = getenv("CLEAVE_TEST_CRASH_AT");
    const char *hold = getenv("CLEAVE_TEST_HOLD_LOCK_MS");
    m->hold_ms = hold ? strtol(hold, NULL, 10) : 0;
    m->lose_reply = getenv("CLEAVE_TEST_LOSE_COMMIT_REPLY") != NULL;
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    if (!(m->jr = journal_open(config, err, errlen))) {
        mover_free(m);
        return NULL;
    }
    for (size_t i = 0; i < config->n_services; i++)
        m->shown[i] = journal_get(m->jr, i);
    return m;
}

void mover_stop(mover *m)
{
    if (!m || !m->started)
        return;
    pthread_mutex_lock(&m->mu);
    m->stopping = true;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    pthread_join(m->thread, NULL);
    m->started = false;
    if (m->req.fd >= 0) {
        say_failed(m->req.fd, 1, "cleave is stopping: nothing was changed");
        close(m->req.fd);
        m->req.fd = -1;
    }
}

void mover_free(mover *m)
{
    if (!m)
        return;
    mover_stop(m);
    if (m->jr) {
        pthread_mutex_destroy(&m->mu);
        pthread_cond_destroy(&m->cv);
    }
    for (size_t i = 0; m->rev && i < m->config->n_services; i++)
        reverse_cfg_free(m->rev[i]);
    journal_free(m->jr);
    free(m->rev);
    free(m->shown);
    keeper_free(m->keeper);
    free(m);
}

bool mover_reverse(const mover *m, size_t svc)
{
    journal_entry e = journal_get(m->jr, svc);
    return e.dir == JOURNAL_REVERSE && e.move != JOURNAL_COMPLETING;
}

bool mover_complete(const mover *m, size_t svc)
{
    return journal_get(m->jr, svc).dir == JOURNAL_COMPLETE;
}

const cfg_table *mover_given_after_complete(const mover *m, size_t svc,
                                            size_t *from, char *why,
                                            size_t len)
{
    return journal_not_moved(m->jr, svc, from, why, len);
}

/*
 * Whether the cut-over of svc switched its owned table t: 1, 0, or -1
 * when the fences cannot be read. The journal says so; fences say it only
 * for a journal written before it kept the tables (a fence lost on the
 * shared side, or a partition made there since, would otherwise take a
 * moved table's writes out of the reverse stream).
 */
static int table_moved(const mover *m, size_t svc, const cfg_table *t,
                       PGconn **shared, char *err, size_t errlen)
{
    int moved = journal_moved(m->jr, svc, t);
    if (moved >= 0)
        return moved;
    if (!*shared && !(*shared = dbconn_open(m->config->source.dsn,
                                            "cleave-mover",
                                            "the shared database", err,
                                            errlen)))
        return -1;
    int state = pgfence_state(*shared, t, 1, err, errlen);
    return state < 0 ? -1 : state == PGFENCE_ALL;
}

/*
 * A moved service's owned tables its cut-over did not switch: given to it
 * after, their writes still go to the shared database, so its reverse
 * stream leaves them out (until a rollback and a cut-over move them too).
 * False with err when that cannot be read.
 */
static bool not_moved(const mover *m, size_t svc, bool *left_out,
                      char *err, size_t errlen)
{
    const cfg_service *s = &m->config->services[svc];
    PGconn *shared = NULL;
    bool ok = true;
    for (size_t j = 0; ok && j < s->n_owned; j++) {
        int moved = table_moved(m, svc, &s->owned[j], &shared, err, errlen);
        ok = moved >= 0;
        left_out[j] = moved == 0;
        if (left_out[j])
            log_warning("event=table_not_moved service=%s table=%s.%s "
                        "reason=\"given to the service after its cut-over: "
                        "its writes stay on the shared database until "
                        "`cleave rollback` and `cleave cutover` move it\"",
                        s->name, s->owned[j].schema, s->owned[j].name);
    }
    PQfinish(shared);
    return ok;
}

/*
 * Made on first use: at a cut-over's start with every owned table, at a
 * start-up of a moved service with the tables it moved.
 */
const cfg *mover_reverse_cfg(mover *m, size_t svc)
{
    if (m->rev[svc])
        return m->rev[svc];
    const cfg_service *s = &m->config->services[svc];
    bool *left_out = calloc(s->n_owned ? s->n_owned : 1, sizeof *left_out);
    char err[512] = "out of memory";
    if (left_out && (journal_get(m->jr, svc).dir == JOURNAL_FORWARD ||
                     not_moved(m, svc, left_out, err, sizeof err)))
        m->rev[svc] = reverse_cfg_new(m->config, svc, left_out);
    else
        log_error("event=reverse_failed service=%s error=\"reading which "
                  "tables it moved: %s\"", s->name, err);
    free(left_out);
    return m->rev[svc];
}

/* The first owned table of svc its reverse stream leaves out, or NULL. */
static const cfg_table *first_not_moved(mover *m, size_t svc)
{
    const cfg *rc = mover_reverse_cfg(m, svc);
    const cfg_service *s = &m->config->services[svc];
    for (size_t j = 0, k = 0; rc && j < s->n_owned; j++) {
        const cfg_service *r = &rc->services[0];
        if (k < r->n_owned && r->owned[k].name == s->owned[j].name)
            k++;
        else
            return &s->owned[j];
    }
    return NULL;
}

/* After a rollback: the next cut-over moves every owned table. */
static void forget_reverse(mover *m, size_t svc)
{
    reverse_cfg_free(m->rev[svc]);
    m->rev[svc] = NULL;
}

/* Saves e for svc and shows it; false (logged) when it cannot be saved. */
static bool record(mover *m, size_t svc, journal_entry e)
{
    char err[512];
    if (!journal_set(m->jr, svc, e, err, sizeof err)) {
        log_error("event=journal_failed service=%s error=\"%s\"",
                  m->config->services[svc].name, err);
        return false;
    }
    pthread_mutex_lock(&m->mu);
    m->shown[svc] = e;
    pthread_mutex_unlock(&m->mu);
    return true;
}

/* Tests kill cleave at a named step to check what a restart does. */
static void crash_point(const mover *m, const char *step)
{
    if (m->crash_at && strcmp(m->crash_at, step) == 0) {
        log_warning("event=test_crash step=%s", step);
        raise(SIGKILL);
    }
}

/* Tests hold the lock a while, so a writer queues behind it. */
static void hold_point(const mover *m)
{
    if (m->hold_ms <= 0)
        return;
    log_warning("event=test_hold ms=%ld", m->hold_ms);
    struct timespec ts = {m->hold_ms / 1000, (m->hold_ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* ---- the loop's side ---------------------------------------------------- */

static void wake_loop(mover *m)
{
    uint64_t one = 1;
    if (write(m->wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
        log_warning("event=wake_failed error=\"%s\"", strerror(errno));
}

mover_ask mover_asked(mover *m, size_t *svc)
{
    pthread_mutex_lock(&m->mu);
    mover_ask a = m->asked && !m->answered ? m->ask : MOVER_ASK_NONE;
    *svc = m->ask_svc;
    pthread_mutex_unlock(&m->mu);
    return a;
}

int mover_asked_table(mover *m)
{
    pthread_mutex_lock(&m->mu);
    int t = m->ask_table;
    pthread_mutex_unlock(&m->mu);
    return t;
}

void mover_refuse(mover *m, const char *why)
{
    pthread_mutex_lock(&m->mu);
    snprintf(m->answer_err, sizeof m->answer_err, "%s", why);
    pthread_mutex_unlock(&m->mu);
    mover_answer(m, false);
}

void mover_answer(mover *m, bool ok)
{
    pthread_mutex_lock(&m->mu);
    m->answered = true;
    m->answer_ok = ok;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

bool mover_mark_wanted(mover *m, size_t *svc, bool *reverse, char *token,
                       size_t len)
{
    pthread_mutex_lock(&m->mu);
    bool wanted = m->mark_wanted && !m->mark_reached;
    *svc = m->mark_svc;
    *reverse = m->mark_reverse;
    snprintf(token, len, "%s", m->mark_token);
    pthread_mutex_unlock(&m->mu);
    return wanted;
}

void mover_mark_reached(mover *m)
{
    pthread_mutex_lock(&m->mu);
    m->mark_reached = true;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

/* Waits on the mover's condition until *flag or the deadline or a stop. */
static bool wait_flag(mover *m, const bool *flag, int64_t deadline_ms)
{
    pthread_mutex_lock(&m->mu);
    while (!*flag && !m->stopping && clock_ms() < deadline_ms) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t left = deadline_ms - clock_ms();
        ts.tv_sec += left / 1000;
        ts.tv_nsec += (left % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&m->cv, &m->mu, &ts);
    }
    bool got = *flag;
    pthread_mutex_unlock(&m->mu);
    return got;
}

/* Asks the loop to start or stop svc's reverse stream; true once done. */
static bool ask_loop(mover *m, mover_ask what, size_t svc)
{
    pthread_mutex_lock(&m->mu);
    m->ask = what;
    m->ask_svc = svc;
    m->asked = true;
    m->answered = false;
    pthread_mutex_unlock(&m->mu);
    wake_loop(m);
    bool done = wait_flag(m, &m->answered, clock_ms() + LOOP_ANSWER_MS);
    pthread_mutex_lock(&m->mu);
    bool ok = done && m->answer_ok;
    m->asked = false;
    pthread_mutex_unlock(&m->mu);
    return ok;
}

void mover_fill(mover *m, status_snapshot *out)
{
    size_t n = m->config->n_services;
    if (n > out->nservices)
        n = out->nservices;
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < n; i++) {
        status_service *v = &out->services[i];
        snprintf(v->name, sizeof v->name, "%s", m->config->services[i].name);
        snprintf(v->direction, sizeof v->direction, "%s",
                 journal_dir_name(m->shown[i].dir));
        v->pause_ms = m->shown[i].pause_ms;
    }
    pthread_mutex_unlock(&m->mu);
    out->nservices = n;
}

/* ---- talking to the command -------------------------------------------- */

static void say(int fd, json_t *line)
{
    char *text = line ? json_dumps(line, JSON_COMPACT) : NULL;
    json_decref(line);
    char *out = NULL;
    if (text && asprintf(&out, "%s\n", text) >= 0) {
        /* A client that went away only misses the story: the move goes on. */
        if (send(fd, out, strlen(out), MSG_NOSIGNAL) < 0)
            log_debug("event=move_client_gone error=\"%s\"", strerror(errno));
        free(out);
    }
    free(text);
}

static void say_step(int fd, const char *step, double ms, const char *detail)
{
    json_t *o = json_pack("{s:s, s:f}", "step", step, "ms", ms);
    if (o && detail && detail[0])
        json_object_set_new(o, "detail", json_string(detail));
    say(fd, o);
}

static void say_failed(int fd, int exit, const char *error)
{
    say(fd, json_pack("{s:s, s:i, s:s}", "result", "failed", "exit", exit,
                      "error", error));
}

/* A switch that committed, its last steps left for the retry. */
static void say_unfinished(int fd, const char *error)
{
    say(fd, json_pack("{s:s, s:i, s:b, s:s}", "result", "failed", "exit", 1,
                      "changed", 1, "error", error));
}

static void say_ok(int fd, double pause_ms, const char *detail)
{
    json_t *o = json_pack("{s:s, s:s}", "result", "ok", "detail", detail);
    if (o && pause_ms >= 0)
        json_object_set_new(o, "pause_ms", json_real(pause_ms));
    say(fd, o);
}

/* ---- requests ----------------------------------------------------------- */

static int service_index(const cfg *c, const char *name)
{
    for (size_t i = 0; i < c->n_services; i++)
        if (strcmp(c->services[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* "key=value": one of the options; false when unknown or not a number. */
static bool parse_option(move_opts *o, const char *kv)
{
    const char *eq = strchr(kv, '=');
    char *end;
    if (!eq || !eq[1])
        return false;
    errno = 0;
    long long v = strtoll(eq + 1, &end, 10);
    if (*end || errno || v < 0 || v > INT32_MAX)
        return false;
    size_t klen = (size_t)(eq - kv);
    if (klen == 15 && strncmp(kv, "lag_limit_bytes", klen) == 0)
        o->lag_limit = (uint64_t)v;
    else if (klen == 15 && strncmp(kv, "lock_timeout_ms", klen) == 0)
        o->lock_timeout_ms = (int)v;
    else if (klen == 15 && strncmp(kv, "pause_budget_ms", klen) == 0)
        o->pause_budget_ms = (int)v;
    else
        return false;
    return true;
}

/*
 * `resync SERVICE [table=WORD]`: the table as the configuration writes
 * it, carried as a ctlword; false with err (usage).
 */
static bool resync_options(const cfg *c, size_t svc, char **save, request *r,
                           char *err, size_t errlen)
{
    const cfg_service *s = &c->services[svc];
    char name[256];
    cfg_table want = {0};
    for (char *kv; (kv = strtok_r(NULL, " ", save)) != NULL;) {
        if (strncmp(kv, "table=", 6) != 0 || r->table >= 0 ||
            !ctlword_decode(kv + 6, name, sizeof name))
            return snprintf(err, errlen, "bad option '%s'", kv), false;
        if (!cfg_table_parse(name, &want, err, errlen))
            return false;
        for (size_t j = 0; j < s->n_owned && r->table < 0; j++)
            if (strcmp(s->owned[j].schema, want.schema) == 0 &&
                strcmp(s->owned[j].name, want.name) == 0)
                r->table = (int)j;
        if (r->table < 0)
            snprintf(err, errlen, "service %s does not own a table %s.%s",
                     s->name, want.schema, want.name);
        cfg_table_clear(&want);
        if (r->table < 0)
            return false;
    }
    snprintf(r->verb, sizeof r->verb, "resync");
    r->svc = svc;
    return true;
}

/* The request line "VERB SERVICE [k=v ...]"; false with err (usage). */
static bool parse_request(const cfg *c, const char *line, request *r,
                          char *err, size_t errlen)
{
    char buf[512], *save;
    snprintf(buf, sizeof buf, "%s", line);
    char *verb = strtok_r(buf, " ", &save);
    char *svc = verb ? strtok_r(NULL, " ", &save) : NULL;
    r->opts = (move_opts){DEFAULT_LAG_LIMIT, DEFAULT_LOCK_TIMEOUT_MS,
                          DEFAULT_PAUSE_BUDGET_MS};
    bool resync = verb && strcmp(verb, "resync") == 0;
    if (!verb || (strcmp(verb, "cutover") && strcmp(verb, "rollback") &&
                  strcmp(verb, "complete") && !resync))
        return snprintf(err, errlen, "unknown request '%s': expected "
                        "cutover, rollback, complete or resync",
                        verb ? verb : ""), false;
    int i = svc ? service_index(c, svc) : -1;
    if (i < 0)
        return snprintf(err, errlen, "no service '%s' in the configuration",
                        svc ? svc : ""), false;
    r->table = -1;
    if (resync)
        return resync_options(c, (size_t)i, &save, r, err, errlen);
    if (!c->services[i].target_postgres)
        return snprintf(err, errlen, "service %s has no PostgreSQL target: "
                        "a cut-over moves writes between PostgreSQL "
                        "databases", svc), false;
    for (char *kv; (kv = strtok_r(NULL, " ", &save)) != NULL;)
        if (!parse_option(&r->opts, kv))
            return snprintf(err, errlen, "bad option '%s'", kv), false;
    snprintf(r->verb, sizeof r->verb, "%s", verb);
    r->svc = (size_t)i;
    return true;
}

void mover_control(void *arg, int fd, const char *line)
{
    mover *m = arg;
    request r = {.fd = fd};
    char err[512];
    if (!parse_request(m->config, line, &r, err, sizeof err)) {
        say_failed(fd, 2, err);
        close(fd);
        return;
    }
    pthread_mutex_lock(&m->mu);
    bool busy = m->busy || m->stopping;
    if (!busy) {
        m->busy = true;
        m->req = r;
        pthread_cond_broadcast(&m->cv);
    }
    pthread_mutex_unlock(&m->mu);
    if (busy) {
        say_failed(fd, 1, "another cut-over, rollback, complete or resync "
                   "is under way: one at a time");
        close(fd);
    }
}

/* ---- a move ------------------------------------------------------------- */

typedef struct move {
    mover *m;
    int fd;
    size_t svc;
    const cfg_service *s;
    bool cutover;            /* else a rollback */
    move_opts o;
    PGconn *from, *aux, *to; /* from: the side that loses the writes */
    char **seqs;
    size_t nseqs;
    int64_t lock_start;      /* the attempt that got the lock, clock_us */
    bool outcome_unknown;    /* the switch's COMMIT: answer lost, pending */
    char err[1024];
} move;

static void close_move(move *mv)
{
    PQfinish(mv->from);
    PQfinish(mv->aux);
    PQfinish(mv->to);
    pgseq_free_names(mv->seqs, mv->nseqs);
}

/* Milliseconds since t0 (clock_us). */
static double since(int64_t t0)
{
    return (double)(clock_us() - t0) / 1000;
}

/* One statement outside any result; false with err. */
static bool exec(PGconn *c, const char *sql, char *err, size_t errlen)
{
    PGresult *res = PQexec(c, sql);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK ||
              PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok)
        snprintf(err, errlen, "%s: %s", sql, PQerrorMessage(c));
    PQclear(res);
    return ok;
}

static const status_sink *find_sink(const status_snapshot *s,
                                    const char *service, const char *kind)
{
    for (size_t i = 0; i < s->nsinks; i++)
        if (strcmp(s->sinks[i].service, service) == 0 &&
            strcmp(s->sinks[i].kind, kind) == 0)
            return &s->sinks[i];
    return NULL;
}

/* The status figures, as `cleave status` would see them now. */
static status_snapshot *take_figures(mover *m)
{
    status_snapshot *s = calloc(1, sizeof *s);
    size_t n = m->max_sinks ? m->max_sinks : 1;
    if (!s || !(s->sinks = calloc(n, sizeof *s->sinks)) ||
        !(s->services = calloc(n, sizeof *s->services))) {
        if (s)
            free(s->sinks);
        free(s);
        return NULL;
    }
    s->nsinks = s->nservices = n;
    m->fill(m->fill_arg, s);
    return s;
}

static void free_figures(status_snapshot *s)
{
    if (s) {
        free(s->sinks);
        free(s->services);
    }
    free(s);
}

/*
 * The stream the switch waits on streams, with lag under the limit: 1;
 * 0 when it does not stream, -1 when its lag is over (mv->err says which).
 */
static int lag_once(move *mv)
{
    const char *kind = mv->cutover ? "postgres" : "reverse";
    status_snapshot *s = take_figures(mv->m);
    const status_sink *k = s ? find_sink(s, mv->s->name, kind) : NULL;
    if (!k)
        snprintf(mv->err, sizeof mv->err, "service %s has no %s stream "
                 "running", mv->s->name, mv->cutover ? "forward" : "reverse");
    else if (strcmp(k->state, "streaming") != 0)
        snprintf(mv->err, sizeof mv->err, "service %s is %s, not streaming: "
                 "it may move once it streams", mv->s->name, k->state);
    int verdict = k && !mv->err[0] ? 1 : 0;
    if (verdict && k->lag_bytes > mv->o.lag_limit) {
        snprintf(mv->err, sizeof mv->err, "lag of %s is %llu bytes, above the "
                 "limit of %llu: try again when it has caught up",
                 mv->s->name, (unsigned long long)k->lag_bytes,
                 (unsigned long long)mv->o.lag_limit);
        verdict = -1;
    }
    free_figures(s);
    return verdict;
}

/* Refused only when the lag stays over the limit for LAG_LOOK_MS. */
static bool check_lag(move *mv)
{
    int64_t until = clock_ms() + LAG_LOOK_MS;
    bool never = false;
    for (;;) {
        mv->err[0] = '\0';
        int verdict = lag_once(mv);
        if (verdict >= 0 || clock_ms() >= until)
            return verdict > 0;
        wait_flag(mv->m, &never, clock_ms() + LAG_SAMPLE_MS);
    }
}

static bool connect_all(move *mv)
{
    const char *shared = mv->m->config->source.dsn;
    const char *own = mv->s->target_postgres;
    const char *from = mv->cutover ? shared : own, *to = mv->cutover ? own : shared;
    char *e = mv->err;
    size_t n = sizeof mv->err;
    return (mv->from = dbconn_open(from, "cleave-mover", "the writable side",
                                   e, n)) &&
           (mv->aux = dbconn_open(from, "cleave-mover", "the writable side",
                                  e, n)) &&
           (mv->to = dbconn_open(to, "cleave-mover", "the fenced side", e, n)) &&
           dbconn_lock_timeout(mv->to, mv->o.lock_timeout_ms, e, n);
}

static journal_entry entry(journal_dir dir, journal_move mv, journal_step st,
                           double pause_ms)
{
    return (journal_entry){dir, mv, st, pause_ms};
}

/*
 * The side that gets the writes fenced until the switch: set only when it
 * is not already (the keeper and the last switch see to that), because
 * setting takes SHARE ROW EXCLUSIVE table by table, which queues the
 * forward sink behind it and deadlocks with a sink transaction holding a
 * later table.
 */
static bool fence_to(move *mv)
{
    /* A rollback's: the tables moved (one given since takes its writes). */
    const cfg *rc = mv->cutover ? NULL : mover_reverse_cfg(mv->m, mv->svc);
    if (!mv->cutover && !rc)
        return snprintf(mv->err, sizeof mv->err, "cannot tell which tables "
                        "the cut-over moved"), false;
    const cfg_service *s = rc ? &rc->services[0] : mv->s;
    int state = pgfence_state(mv->to, s->owned, s->n_owned, mv->err,
                              sizeof mv->err);
    return state == PGFENCE_ALL ||
           (state >= 0 && pgfence_set(mv->to, s->owned, s->n_owned,
                                      PQdb(mv->from), mv->err,
                                      sizeof mv->err));
}

/*
 * Nothing blocked yet: the reverse stream's slot (a cut-over), the fence
 * of the side that gets the writes checked, its sequences brought ahead.
 */
static bool preflight(move *mv)
{
    const cfg_service *s = mv->s;
    int64_t t = clock_us();
    journal_entry old = journal_get(mv->m->jr, mv->svc);
    if (!record(mv->m, mv->svc, entry(old.dir, mv->cutover ? JOURNAL_CUTOVER
                                      : JOURNAL_ROLLBACK, JOURNAL_PREPARE,
                                      old.pause_ms)))
        return snprintf(mv->err, sizeof mv->err, "cannot write the journal"),
               false;
    /* The fence first: where it must be set, its lock wait is bounded. */
    if (!fence_to(mv))
        return false;
    say_step(mv->fd, "fenced side checked", since(t), PQdb(mv->to));
    t = clock_us();
    if (mv->cutover &&
        !reverse_prepare(mover_reverse_cfg(mv->m, mv->svc), mv->err,
                         sizeof mv->err))
        return false;
    if (mv->cutover)
        say_step(mv->fd, "reverse slot", since(t),
                 mover_reverse_cfg(mv->m, mv->svc)->source.slot);
    t = clock_us();
    int raised = 0;
    if (!pgseq_of_tables(mv->from, s->owned, s->n_owned, &mv->seqs,
                         &mv->nseqs, mv->err, sizeof mv->err) ||
        !pgseq_sync(mv->aux, mv->to, mv->seqs, mv->nseqs, &raised, mv->err,
                    sizeof mv->err))
        return false;
    char detail[128];
    snprintf(detail, sizeof detail, "%zu sequences, %d raised", mv->nseqs,
             raised);
    say_step(mv->fd, "sequences ahead", since(t), detail);
    crash_point(mv->m, "prepared");
    return true;
}

/* Who holds the tables, for the refusal. */
static bool lock_refused(move *mv)
{
    char who[768] = "";
    if (!pgfence_lock_holders(mv->aux, mv->s->owned, mv->s->n_owned, who,
                              sizeof who))
        snprintf(who, sizeof who, "(the holders could not be read)");
    snprintf(mv->err, sizeof mv->err, "lock not obtained in %d ms, held by: "
             "%s", mv->o.lock_timeout_ms, who[0] ? who : "nobody now");
    return false;
}

/*
 * BEGIN and the lock, in short attempts: while one waits, writers queue
 * behind it, so each is brief and retried with backoff up to the timeout.
 */
static bool lock_tables(move *mv)
{
    int64_t deadline = clock_ms() + mv->o.lock_timeout_ms;
    backoff b;
    backoff_init(&b, 10, 200);
    for (;;) {
        int64_t left = deadline - clock_ms();
        int attempt = left < LOCK_ATTEMPT_MS ? (int)left : LOCK_ATTEMPT_MS;
        mv->lock_start = clock_us();
        if (!exec(mv->from, "BEGIN", mv->err, sizeof mv->err))
            return false;
        if (pgfence_lock(mv->from, mv->s->owned, mv->s->n_owned,
                         attempt > 0 ? attempt : 1, mv->err, sizeof mv->err))
            return true;
        char ignored[256];
        exec(mv->from, "ROLLBACK", ignored, sizeof ignored);
        if (strncmp(mv->err, "lock not obtained", 17) != 0)
            return false;
        int wait = backoff_next(&b);
        if (clock_ms() + wait >= deadline)
            return lock_refused(mv);
        struct timespec ts = {wait / 1000, (long)(wait % 1000) * 1000000};
        nanosleep(&ts, NULL);   /* between attempts, writers go on */
    }
}

static void arm_mark(mover *m, bool wanted, size_t svc, bool reverse,
                     const char *token)
{
    pthread_mutex_lock(&m->mu);
    m->mark_wanted = wanted;
    m->mark_reached = false;
    m->mark_svc = svc;
    m->mark_reverse = reverse;
    snprintf(m->mark_token, sizeof m->mark_token, "%s", token);
    pthread_mutex_unlock(&m->mu);
}

/*
 * A logical message on `where`, then the wait until the stream that reads
 * it (the forward one, or svc's reverse one) has its sink hold everything
 * up to it. False with err when the message cannot be written, or when
 * the deadline comes first (err left empty).
 */
static bool place_mark(move *mv, PGconn *where, bool reverse,
                       int64_t deadline_ms)
{
    char token[STREAM_MARK_MAX];
    mv->err[0] = '\0';
    snprintf(token, sizeof token, "%d-%lld-%zu", (int)getpid(),
             (long long)clock_ms(), mv->svc);
    arm_mark(mv->m, true, mv->svc, reverse, token);
    const char *params[] = {STREAM_MARK_PREFIX, token};
    PGresult *res = PQexecParams(where, "SELECT pg_logical_emit_message("
                                 "true, $1, $2)", 2, NULL, params, NULL,
                                 NULL, 0);
    bool sent = PQresultStatus(res) == PGRES_TUPLES_OK;
    PQclear(res);
    if (!sent) {
        arm_mark(mv->m, false, 0, false, "");
        return snprintf(mv->err, sizeof mv->err, "cannot write the mark: %s",
                        PQerrorMessage(where)), false;
    }
    wake_loop(mv->m);
    bool ok = wait_flag(mv->m, &mv->m->mark_reached, deadline_ms);
    arm_mark(mv->m, false, 0, false, "");
    return ok;
}

/*
 * The mark goes in as a transactional message on a second connection:
 * its commit flushes the WAL at once, and every write to the locked
 * tables committed before it.
 */
static bool catch_up(move *mv)
{
    bool ok = place_mark(mv, mv->aux, !mv->cutover,
                         mv->lock_start / 1000 + mv->o.pause_budget_ms);
    if (!ok && !mv->err[0])
        snprintf(mv->err, sizeof mv->err, "the %s database did not catch up "
                 "within the pause budget of %d ms", mv->cutover ? "service's"
                 : "shared", mv->o.pause_budget_ms);
    return ok;
}

/*
 * Tests lose the COMMIT's answer: it is sent, then the connection is cut
 * before the answer is read, as a network fault would.
 */
static PGresult *send_commit(move *mv)
{
    if (!mv->m->lose_reply)
        return PQexec(mv->from, "COMMIT");
    if (PQsendQuery(mv->from, "COMMIT") && PQflush(mv->from) == 0)
        shutdown(PQsocket(mv->from), SHUT_RDWR);
    PGresult *last = NULL, *res;
    while ((res = PQgetResult(mv->from)) != NULL) {
        PQclear(last);
        last = res;
    }
    return last;
}

/* Whether backend pid is gone from the side the move takes writes from. */
static int backend_gone(move *mv, int pid)
{
    char text[16];
    snprintf(text, sizeof text, "%d", pid);
    const char *param = text;
    PGresult *res = PQexecParams(mv->aux, "SELECT count(*) = 0 FROM "
                                 "pg_stat_activity WHERE pid = $1", 1, NULL,
                                 &param, NULL, NULL, 0);
    int gone = PQresultStatus(res) == PGRES_TUPLES_OK
                   ? PQgetvalue(res, 0, 0)[0] == 't' : -1;
    PQclear(res);
    return gone;
}

/*
 * The COMMIT's answer was lost. Until its backend is gone the commit may
 * still land (a synchronous standby awaited, a slow deferred trigger):
 * the fences only say once it is. Still there at the deadline, the
 * outcome is not known, and nothing may be undone.
 */
static bool lost_commit(move *mv, int pid)
{
    int64_t deadline = clock_ms() + COMMIT_OUTCOME_MS;
    int gone;
    while ((gone = backend_gone(mv, pid)) == 0 && clock_ms() < deadline) {
        struct timespec ts = {0, 50 * 1000000};
        nanosleep(&ts, NULL);   /* polled: the server gives no wake-up */
    }
    char err[256];
    int state = gone == 1 ? pgfence_state(mv->aux, mv->s->owned,
                                          mv->s->n_owned, err, sizeof err)
                          : -1;
    mv->outcome_unknown = state < 0;
    if (state == PGFENCE_ALL)
        return true;
    snprintf(mv->err, sizeof mv->err, state < 0
             ? "the COMMIT's answer was lost and its outcome is not known "
               "yet (backend %d): cleave decides once it is"
             : "the COMMIT's answer was lost and it did not commit "
               "(backend %d)", pid);
    return false;
}

/* COMMIT; when its answer is lost, the fences say whether it happened. */
static bool commit(move *mv)
{
    int pid = PQbackendPID(mv->from);
    PGresult *res = send_commit(mv);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK &&
              strcmp(PQcmdStatus(res), "COMMIT") == 0;
    PQclear(res);
    if (ok || PQstatus(mv->from) == CONNECTION_OK)
        return ok || (snprintf(mv->err, sizeof mv->err, "COMMIT: %s",
                               PQerrorMessage(mv->from)), false);
    return lost_commit(mv, pid);
}

/* Inside the lock: catch-up, sequences, fence, commit. Pause in *pause. */
static bool switch_locked(move *mv, double *pause)
{
    int64_t t = clock_us();
    if (!catch_up(mv))
        return false;
    say_step(mv->fd, "catch-up", since(t), "the mark applied");
    crash_point(mv->m, "caught_up");
    t = clock_us();
    int raised = 0;
    if (!pgseq_sync(mv->from, mv->to, mv->seqs, mv->nseqs, &raised, mv->err,
                    sizeof mv->err))
        return false;
    char detail[64];
    snprintf(detail, sizeof detail, "%d raised", raised);
    say_step(mv->fd, "sequences", since(t), detail);
    t = clock_us();
    if (!pgfence_set(mv->from, mv->s->owned, mv->s->n_owned, PQdb(mv->to),
                     mv->err, sizeof mv->err))
        return false;
    say_step(mv->fd, "fence", since(t), PQdb(mv->from));
    crash_point(mv->m, "fenced");
    t = clock_us();
    if (!commit(mv))
        return false;
    *pause = since(mv->lock_start);
    say_step(mv->fd, "commit", since(t), "");
    crash_point(mv->m, "committed");
    return true;
}

/*
 * The switch: one transaction on the writable side. Any failure before
 * COMMIT rolls it back: nothing changed.
 */
static bool switch_over(move *mv, double *pause)
{
    journal_entry old = journal_get(mv->m->jr, mv->svc);
    if (!record(mv->m, mv->svc, entry(old.dir, old.move, JOURNAL_SWITCH,
                                      old.pause_ms)))
        return snprintf(mv->err, sizeof mv->err, "cannot write the journal"),
               false;
    int64_t t = clock_us();
    if (!lock_tables(mv))
        return false;
    char detail[64];
    snprintf(detail, sizeof detail, "%zu tables", mv->s->n_owned);
    say_step(mv->fd, "lock", since(t), detail);
    crash_point(mv->m, "locked");
    hold_point(mv->m);
    if (switch_locked(mv, pause))
        return true;
    char ignored[256];
    if (PQtransactionStatus(mv->from) != PQTRANS_IDLE)
        exec(mv->from, "ROLLBACK", ignored, sizeof ignored);
    return false;
}

/*
 * After the commit: the side that now takes the writes is unfenced, and
 * the reverse stream started (cut-over) or removed (rollback). `to` and
 * `other` are connections to it and to the other side.
 */
static bool open_new_side(mover *m, size_t svc, bool cutover, PGconn *to,
                          PGconn *other, char *err, size_t errlen)
{
    const cfg_service *s = &m->config->services[svc];
    if (!pgfence_clear(to, s->owned, s->n_owned, err, errlen))
        return false;
    m->unfenced_at = clock_us();
    crash_point(m, "unfenced");
    /* At start-up no reverse stream runs yet: the runner starts them. */
    if (cutover)
        return !m->started || ask_loop(m, MOVER_ASK_START, svc) ||
               (snprintf(err, errlen, "the reverse stream did not start"),
                false);
    if (m->started && !ask_loop(m, MOVER_ASK_STOP, svc))
        return snprintf(err, errlen, "the reverse stream did not stop"), false;
    bool ok = reverse_drop(mover_reverse_cfg(m, svc), other, to, err, errlen);
    forget_reverse(m, svc);
    return ok;
}

/* Journals the new direction, then opens the new side. */
static bool finish(mover *m, size_t svc, journal_move kind, double pause,
                   PGconn *to, PGconn *other, char *err, size_t errlen)
{
    bool cutover = kind == JOURNAL_CUTOVER;
    journal_dir dir = cutover ? JOURNAL_REVERSE : JOURNAL_FORWARD;
    if (!record(m, svc, entry(dir, kind, JOURNAL_UNFENCE, pause)))
        return snprintf(err, errlen, "cannot write the journal"), false;
    if (!open_new_side(m, svc, cutover, to, other, err, errlen))
        return false;
    return record(m, svc, entry(dir, JOURNAL_IDLE, JOURNAL_PREPARE, pause)) ||
           (snprintf(err, errlen, "cannot write the journal"), false);
}

/* A move that changed nothing: the journal back to idle, the slot gone. */
static void undo(move *mv)
{
    char err[512];
    journal_entry old = journal_get(mv->m->jr, mv->svc);
    record(mv->m, mv->svc, entry(old.dir, JOURNAL_IDLE, JOURNAL_PREPARE,
                                 old.pause_ms));
    if (mv->cutover && mv->from && mv->to &&
        !reverse_drop(mover_reverse_cfg(mv->m, mv->svc), mv->to, mv->from,
                      err, sizeof err))
        log_warning("event=reverse_drop_failed service=%s error=\"%s\"",
                    mv->s->name, err);
}

static void run_switch(move *mv)
{
    double pause = -1;
    int64_t t = clock_us();
    if (!check_lag(mv) || !connect_all(mv)) {
        say_failed(mv->fd, 1, mv->err);
        return;
    }
    say_step(mv->fd, "preflight", since(t), "streaming, lag under the limit");
    if (!preflight(mv) || !switch_over(mv, &pause)) {
        if (mv->outcome_unknown) {
            /* Journaled at its switch: the keeper's turns decide. */
            log_error("event=move_unfinished service=%s error=\"%s\"",
                      mv->s->name, mv->err);
            say_unfinished(mv->fd, mv->err);
            return;
        }
        log_warning("event=move_refused service=%s move=%s error=\"%s\"",
                    mv->s->name, mv->cutover ? "cutover" : "rollback", mv->err);
        undo(mv);
        say_failed(mv->fd, 1, mv->err);
        return;
    }
    log_info("event=move_switched service=%s move=%s switch_ms=%.1f",
             mv->s->name, mv->cutover ? "cutover" : "rollback", pause);
    t = clock_us();
    if (!finish(mv->m, mv->svc, mv->cutover ? JOURNAL_CUTOVER : JOURNAL_ROLLBACK,
                pause, mv->to, mv->from, mv->err, sizeof mv->err)) {
        log_error("event=move_unfinished service=%s error=\"%s\"", mv->s->name,
                  mv->err);
        char msg[1280];
        snprintf(msg, sizeof msg, "switched (writes now go to %s) but not "
                 "finished: %s; cleave retries, both sides stay fenced "
                 "meanwhile", PQdb(mv->to), mv->err);
        say_unfinished(mv->fd, msg);
        return;
    }
    say_step(mv->fd, mv->cutover ? "unfence, reverse stream"
             : "unfence, reverse stream removed", since(t), PQdb(mv->to));
    /* Writes waited from the lock until the new side took them. */
    double total = (double)(mv->m->unfenced_at - mv->lock_start) / 1000;
    record(mv->m, mv->svc, entry(mv->cutover ? JOURNAL_REVERSE
                                 : JOURNAL_FORWARD, JOURNAL_IDLE,
                                 JOURNAL_PREPARE, total));
    log_info("event=move_done service=%s move=%s pause_ms=%.1f", mv->s->name,
             mv->cutover ? "cutover" : "rollback", total);
    char detail[256];
    snprintf(detail, sizeof detail, "%s: writes go to %s (switch %.1f ms, "
             "then the new side opened)", mv->s->name, PQdb(mv->to), pause);
    say_ok(mv->fd, total, detail);
}

/* The forward publication lets go of service s's tables. */
static bool leave_publication(PGconn *shared, const char *pub,
                              const cfg_service *s, char *err, size_t errlen)
{
    for (size_t i = 0; i < s->n_owned; i++) {
        const cfg_table *t = &s->owned[i];
        char *p = PQescapeIdentifier(shared, pub, strlen(pub));
        char *sc = PQescapeIdentifier(shared, t->schema, strlen(t->schema));
        char *n = PQescapeIdentifier(shared, t->name, strlen(t->name));
        char *sql = NULL;
        const char *params[] = {pub, t->schema, t->name};
        PGresult *res = PQexecParams(shared, "SELECT 1 FROM "
                                     "pg_publication_tables WHERE pubname = $1 "
                                     "AND schemaname = $2 AND tablename = $3",
                                     3, NULL, params, NULL, NULL, 0);
        bool member = PQresultStatus(res) == PGRES_TUPLES_OK &&
                      PQntuples(res) > 0;
        PQclear(res);
        bool ok = p && sc && n &&
                  (!member || (asprintf(&sql, "ALTER PUBLICATION %s DROP TABLE "
                                        "%s.%s", p, sc, n) >= 0 &&
                               exec(shared, sql, err, errlen)));
        PQfreemem(p);
        PQfreemem(sc);
        PQfreemem(n);
        free(sql);
        if (!ok)
            return false;
    }
    return true;
}

/*
 * `complete` past its drain (journaled JOURNAL_COMPLETING): the reverse
 * stream stopped and removed, the tables out of the forward publication,
 * the move complete. Run again after a failure or a crash, it goes on
 * from where it stopped: the reverse slot is never made again.
 */
static bool end_move(mover *m, size_t svc, PGconn *shared, PGconn *own,
                     char *err, size_t errlen)
{
    const cfg_service *s = &m->config->services[svc];
    /* The stream first, or its next reconnection adds the tables back. */
    if (m->started && (!ask_loop(m, MOVER_ASK_STOP, svc) ||
                       !ask_loop(m, MOVER_ASK_LEAVE, svc)))
        return snprintf(err, errlen, "the daemon did not stop the reverse "
                        "stream"), false;
    if (!reverse_drop(mover_reverse_cfg(m, svc), own, shared, err, errlen))
        return false;
    crash_point(m, "reverse_dropped");
    if (!leave_publication(shared, m->config->source.publication, s, err,
                           errlen))
        return false;
    double pause = journal_get(m->jr, svc).pause_ms;
    if (!record(m, svc, entry(JOURNAL_COMPLETE, JOURNAL_IDLE, JOURNAL_PREPARE,
                              pause)))
        return snprintf(err, errlen, "cannot write the journal"), false;
    log_info("event=move_completed service=%s", s->name);
    return true;
}

/*
 * Whether the reverse slot is there and streamable (not invalidated:
 * wal_status read through jsonb, which any version answers): 1 or 0, -1
 * with err.
 */
static int reverse_slot_exists(move *mv)
{
    char *slot = reverse_slot_name(mv->m->config, mv->svc);
    const char *param = slot;
    PGresult *res = slot ? PQexecParams(mv->to, "SELECT 1 FROM "
                                        "pg_replication_slots s WHERE "
                                        "slot_name = $1 AND coalesce(to_jsonb"
                                        "(s)->>'wal_status', '') <> 'lost'",
                                        1, NULL, &param, NULL, NULL, 0)
                       : NULL;
    int there = PQresultStatus(res) != PGRES_TUPLES_OK ? -1
                : PQntuples(res) > 0;
    if (there < 0)
        snprintf(mv->err, sizeof mv->err, "cannot look for the reverse slot: "
                 "%s", slot ? PQerrorMessage(mv->to) : "out of memory");
    PQclear(res);
    free(slot);
    return there;
}

/*
 * Before anything is removed, the reverse stream applies what the
 * service's database holds now: what it wrote before `complete` reaches
 * the shared copies (and the forward stream's Kafka topics). With the
 * reverse slot gone there is nothing left to wait for.
 */
static bool drain_reverse(move *mv)
{
    int64_t t = clock_us();
    int there = reverse_slot_exists(mv);
    if (there < 0)
        return false;
    if (there == 0) {
        say_step(mv->fd, "reverse stream drained", since(t), "its slot was "
                 "gone or invalidated: the shared copies miss what was "
                 "written since");
        return true;
    }
    log_info("event=reverse_draining service=%s", mv->s->name);
    if (!place_mark(mv, mv->to, true, clock_ms() + COMPLETE_DRAIN_MS)) {
        if (!mv->err[0])
            snprintf(mv->err, sizeof mv->err, "the reverse stream did not "
                     "apply the service's writes within %d s (status says "
                     "why); nothing changed", COMPLETE_DRAIN_MS / 1000);
        return false;
    }
    say_step(mv->fd, "reverse stream drained", since(t), "the mark applied");
    return true;
}

static void run_complete(move *mv)
{
    journal_entry e = journal_get(mv->m->jr, mv->svc);
    if (e.dir == JOURNAL_COMPLETE) {
        say_ok(mv->fd, -1, "the move was already complete");
        return;
    }
    const cfg_table *left = first_not_moved(mv->m, mv->svc);
    if (left) {
        snprintf(mv->err, sizeof mv->err, "cannot complete %s: %s.%s was "
                 "given to it after its cut-over and its writes still go to "
                 "the shared database; `cleave rollback` and `cleave cutover` "
                 "move it first", mv->s->name, left->schema, left->name);
        say_failed(mv->fd, 1, mv->err);
        return;
    }
    mv->cutover = true;   /* from: the shared database, to: the service's */
    if (!connect_all(mv) || !drain_reverse(mv)) {
        say_failed(mv->fd, 1, mv->err);
        return;
    }
    if (!record(mv->m, mv->svc, entry(e.dir, JOURNAL_COMPLETING,
                                      JOURNAL_PREPARE, e.pause_ms))) {
        say_failed(mv->fd, 1, "cannot write the journal");
        return;
    }
    int64_t t = clock_us();
    if (!end_move(mv->m, mv->svc, mv->from, mv->to, mv->err, sizeof mv->err)) {
        char msg[1280];
        snprintf(msg, sizeof msg, "not finished: %s; cleave retries, and "
                 "nothing streams back meanwhile", mv->err);
        say_unfinished(mv->fd, msg);
        return;
    }
    say_step(mv->fd, "reverse stream removed, publication left", since(t), "");
    say_ok(mv->fd, -1, "the shared copies stay fenced, frozen as they are");
}

/* Exit 2 for a request that does not fit the service's direction. */
static bool fits(move *mv, const char *verb, journal_dir dir)
{
    const char *why = NULL;
    if (dir == JOURNAL_COMPLETE && strcmp(verb, "complete") != 0)
        why = "its move is complete: nothing moves any more";
    else if (dir == JOURNAL_FORWARD && strcmp(verb, "cutover") != 0)
        why = "it was never cut over: its writes go to the shared database";
    else if (dir == JOURNAL_REVERSE && strcmp(verb, "cutover") == 0)
        why = "it is cut over already: its writes go to its own database";
    if (why)
        snprintf(mv->err, sizeof mv->err, "cannot %s %s: %s", verb,
                 mv->s->name, why);
    return why == NULL;
}

/*
 * A resync: the loop sets the service (or one table) to copy again, and
 * the copy starts in its own snapshot; `cleave resync` follows it in the
 * status. Only forward: it copies from the shared database.
 */
static void run_resync(move *mv, const request *r)
{
    journal_dir dir = journal_get(mv->m->jr, mv->svc).dir;
    int64_t t = clock_us();
    if (dir != JOURNAL_FORWARD) {
        snprintf(mv->err, sizeof mv->err, "%s is %s: a resync copies from "
                 "the shared database, which no longer takes its writes",
                 mv->s->name, dir == JOURNAL_REVERSE ? "cut over"
                 : "moved for good");
        say_failed(mv->fd, 1, mv->err);
        return;
    }
    pthread_mutex_lock(&mv->m->mu);
    mv->m->ask_table = r->table;
    mv->m->answer_err[0] = '\0';
    pthread_mutex_unlock(&mv->m->mu);
    if (!ask_loop(mv->m, MOVER_ASK_RESYNC, mv->svc)) {
        pthread_mutex_lock(&mv->m->mu);
        snprintf(mv->err, sizeof mv->err, "%s", mv->m->answer_err[0]
                 ? mv->m->answer_err : "the daemon did not answer");
        pthread_mutex_unlock(&mv->m->mu);
        say_failed(mv->fd, 1, mv->err);
        return;
    }
    const cfg_table *one = r->table >= 0 ? &mv->s->owned[r->table] : NULL;
    char detail[512];
    snprintf(detail, sizeof detail, "%s%s%s", one ? one->schema : "every table",
             one ? "." : "", one ? one->name : "");
    say_step(mv->fd, "sync state reset", since(t), detail);
    say_ok(mv->fd, -1, "the copy starts in a snapshot of its own; the stream "
           "is held meanwhile");
}

static void carry_out(mover *m, const request *r)
{
    move mv = {.m = m, .fd = r->fd, .svc = r->svc,
               .s = &m->config->services[r->svc], .o = r->opts};
    mv.cutover = strcmp(r->verb, "cutover") == 0;
    log_info("event=move_requested service=%s move=%s", mv.s->name, r->verb);
    journal_move under_way = journal_get(m->jr, r->svc).move;
    if (under_way != JOURNAL_IDLE) {
        snprintf(mv.err, sizeof mv.err, "cannot %s %s: its %s is not "
                 "finished; cleave retries it every few seconds and the log "
                 "says what stops it (event=move_recovery_failed)", r->verb,
                 mv.s->name, journal_move_name(under_way));
        say_failed(mv.fd, 1, mv.err);
    } else if (strcmp(r->verb, "resync") == 0)
        run_resync(&mv, r);
    else if (!fits(&mv, r->verb, journal_get(m->jr, r->svc).dir))
        say_failed(mv.fd, 2, mv.err);
    else if (strcmp(r->verb, "complete") == 0)
        run_complete(&mv);
    else
        run_switch(&mv);
    close_move(&mv);
    close(r->fd);
}

/* ---- after a crash ------------------------------------------------------ */

/* An interrupted move that changed nothing: idle again, no reverse slot. */
static bool undo_interrupted(mover *m, size_t svc, journal_entry e,
                             PGconn *from, PGconn *to, char *err,
                             size_t errlen)
{
    if (!record(m, svc, entry(e.dir, JOURNAL_IDLE, JOURNAL_PREPARE,
                              e.pause_ms)))
        return snprintf(err, errlen, "cannot write the journal"), false;
    return e.move != JOURNAL_CUTOVER ||
           reverse_drop(mover_reverse_cfg(m, svc), to, from, err, errlen);
}

/*
 * A mover's transaction still open on `from` (its COMMIT's answer lost,
 * a synchronous standby awaited): the switch may yet commit, so its
 * outcome is not known. True with err then, or when it cannot be asked.
 */
static bool switch_pending(PGconn *from, char *err, size_t errlen)
{
    PGresult *res = PQexec(from, "SELECT pid FROM pg_stat_activity WHERE "
                           "application_name = 'cleave-mover' AND datname = "
                           "current_database() AND pid <> pg_backend_pid() "
                           "AND xact_start IS NOT NULL");
    bool asked = PQresultStatus(res) == PGRES_TUPLES_OK;
    bool open = asked && PQntuples(res) > 0;
    if (!asked)
        snprintf(err, errlen, "cannot look for an open switch: %s",
                 PQerrorMessage(from));
    else if (open)
        snprintf(err, errlen, "the switch's transaction (backend %s) is still "
                 "open: its outcome is not known yet", PQgetvalue(res, 0, 0));
    PQclear(res);
    return !asked || open;
}

/*
 * Whether the interrupted switch committed: the fences of the side it
 * took the writes from say so (set in the switch's own transaction).
 * Only the tables the move switches count: those still fenced on the
 * side it gives the writes to (a table given to a moved service since
 * its cut-over is fenced in the service's database either way).
 */
static int switch_committed(const cfg_service *s, journal_entry e,
                            PGconn *from, PGconn *to, char *err,
                            size_t errlen)
{
    if (e.step == JOURNAL_PREPARE)
        return 0;
    if (e.step == JOURNAL_UNFENCE)
        return 1;
    if (switch_pending(from, err, errlen))
        return -1;
    size_t moving = 0, fenced = 0;
    for (size_t j = 0; j < s->n_owned; j++) {
        int there = pgfence_state(to, &s->owned[j], 1, err, errlen);
        int here = there == PGFENCE_ALL
                       ? pgfence_state(from, &s->owned[j], 1, err, errlen)
                       : PGFENCE_NONE;
        if (there < 0 || here < 0)
            return -1;
        moving += there == PGFENCE_ALL;
        fenced += here == PGFENCE_ALL;
    }
    if (moving == 0) {       /* unfenced there by hand: the whole side says */
        int state = pgfence_state(from, s->owned, s->n_owned, err, errlen);
        if (state < 0)
            return -1;
        moving = s->n_owned;
        fenced = state == PGFENCE_ALL ? moving : state == PGFENCE_NONE ? 0 : 1;
    }
    if (fenced > 0 && fenced < moving)
        snprintf(err, errlen, "only some of the tables are fenced: "
                 "see docs/cutover.md, \"Recovering by hand\"");
    return fenced == 0 ? 0 : fenced == moving ? 1 : -1;
}

/* A `complete` that had drained the reverse stream: finished. */
static bool recover_complete(mover *m, size_t svc)
{
    const cfg_service *s = &m->config->services[svc];
    char err[1024] = "";
    PGconn *shared = dbconn_open(m->config->source.dsn, "cleave-mover",
                                 "the shared database", err, sizeof err);
    PGconn *own = shared ? dbconn_open(s->target_postgres, "cleave-mover",
                                       "the service's database", err,
                                       sizeof err) : NULL;
    bool ok = own && end_move(m, svc, shared, own, err, sizeof err);
    if (ok)
        log_info("event=move_finished service=%s move=complete reason=\"its "
                 "reverse stream had applied everything before cleave "
                 "stopped\"", s->name);
    else
        log_error("event=move_recovery_failed service=%s move=complete "
                  "error=\"%s\"", s->name, err);
    PQfinish(shared);
    PQfinish(own);
    return ok;
}

static bool recover_one(mover *m, size_t svc)
{
    journal_entry e = journal_get(m->jr, svc);
    if (e.move == JOURNAL_COMPLETING)
        return recover_complete(m, svc);
    const cfg_service *s = &m->config->services[svc];
    bool cutover = e.move == JOURNAL_CUTOVER;
    const char *shared = m->config->source.dsn, *own = s->target_postgres;
    char err[1024] = "";
    PGconn *from = dbconn_open(cutover ? shared : own, "cleave-mover",
                               "the side the move takes writes from", err,
                               sizeof err);
    PGconn *to = from ? dbconn_open(cutover ? own : shared, "cleave-mover",
                                    "the side the move gives writes to", err,
                                    sizeof err) : NULL;
    int done = to && dbconn_lock_timeout(to, DEFAULT_LOCK_TIMEOUT_MS, err, sizeof err)
                   ? switch_committed(s, e, from, to, err, sizeof err) : -1;
    bool ok = done == 1 ? finish(m, svc, e.move, e.pause_ms, to, from, err,
                                 sizeof err)
            : done == 0 && undo_interrupted(m, svc, e, from, to, err,
                                            sizeof err);
    if (ok)
        log_info("event=%s service=%s move=%s reason=\"%s\"",
                 done ? "move_finished" : "move_undone", s->name,
                 journal_move_name(e.move), done
                 ? "its switch had committed before cleave stopped"
                 : "its switch had not committed: nothing changed");
    else
        log_error("event=move_recovery_failed service=%s move=%s error=\"%s\"",
                  s->name, journal_move_name(e.move), err);
    PQfinish(from);
    PQfinish(to);
    return ok;
}

bool mover_recover(mover *m)
{
    bool ok = true;
    for (size_t i = 0; i < m->config->n_services; i++)
        if (journal_get(m->jr, i).move != JOURNAL_IDLE)
            ok = recover_one(m, i) && ok;
    return ok;
}

/* ---- between moves ------------------------------------------------------ */

/* Whether svc's sinks have their tables (past the initial copy). */
static bool copied(const status_snapshot *s, const char *service)
{
    const status_sink *k = find_sink(s, service, "postgres");
    return k && (strcmp(k->state, "streaming") == 0 ||
                 strcmp(k->state, "catching_up") == 0);
}

static void keep(mover *m)
{
    status_snapshot *s = take_figures(m);
    for (size_t i = 0; s && i < m->config->n_services; i++) {
        const cfg_service *svc = &m->config->services[i];
        journal_entry e = journal_get(m->jr, i);
        if (!svc->target_postgres || e.dir == JOURNAL_COMPLETE)
            continue;
        /* Unfinished: whatever the sinks do, the fences decide. */
        if (e.move != JOURNAL_IDLE) {
            recover_one(m, i);
            continue;
        }
        if (e.dir == JOURNAL_FORWARD && !copied(s, svc->name))
            continue;
        const cfg *rc = e.dir == JOURNAL_REVERSE ? mover_reverse_cfg(m, i)
                                                 : NULL;
        if (e.dir == JOURNAL_FORWARD || rc)
            keeper_keep(m->keeper, i, rc ? rc->services : NULL);
    }
    free_figures(s);
}

/* ---- the thread --------------------------------------------------------- */

static void *mover_main(void *arg)
{
    mover *m = arg;
    int64_t next_keep = clock_ms() + KEEP_EVERY_MS;
    pthread_mutex_lock(&m->mu);
    while (!m->stopping) {
        if (m->req.fd >= 0) {
            request r = m->req;
            m->req.fd = -1;
            pthread_mutex_unlock(&m->mu);
            carry_out(m, &r);
            pthread_mutex_lock(&m->mu);
            m->busy = false;
            continue;
        }
        if (clock_ms() >= next_keep) {
            pthread_mutex_unlock(&m->mu);
            keep(m);
            next_keep = clock_ms() + KEEP_EVERY_MS;
            pthread_mutex_lock(&m->mu);
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&m->cv, &m->mu, &ts);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

bool mover_start(mover *m, status_fill_fn fill, void *arg, size_t max_sinks)
{
    m->fill = fill;
    m->fill_arg = arg;
    m->max_sinks = max_sinks;
    m->started = pthread_create(&m->thread, NULL, mover_main, m) == 0;
    if (!m->started)
        log_error("event=mover_failed error=\"cannot start its thread\"");
    return m->started;
}
