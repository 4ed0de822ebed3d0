/*
 * run: the daemon's event loop.
 *
 * The runner holds the pipelines (pipeline.c: a source, its stream and
 * its sinks' workers; today one, the shared database to the services),
 * the status socket and systemd's protocol. This loop, on the main thread,
 * waits on each pipeline's replication socket, the workers' wake-up
 * eventfd and a signalfd, and on timers: standby status updates,
 * heartbeats, reconnects. Signals only set what the loop acts on.
 */
#include "daemon/run.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "common/clock.h"
#include "common/exitcode.h"
#include "common/log.h"
#include "config/config.h"
#include "daemon/monitor.h"
#include "daemon/mover.h"
#include "daemon/pipeline.h"
#include "daemon/status.h"

#define STATUS_MIN_GAP_MS 200      /* the loop's longest sleep */
#define NOTIFY_STATUS_MS 5000      /* systemd's STATUS= line this often */
#define FIRST_OPEN_WAIT_MS 30000   /* for every sink's first open at start */
/* Until READY=1, systemd's start timeout is pushed this far ahead, this
 * often (see still_starting). */
#define START_EXTEND_US 90000000ull
#define START_EXTEND_EVERY_MS 20000
/* Set across a restart in place for a slot made again (status says so). */
#define MADE_AGAIN_ENV "CLEAVE_SLOT_MADE_AGAIN"

typedef struct runner {
    cfg *config;
    int sigfd, wakefd;
    /*
     * pipes[0] is the forward pipeline, the others reverse streams (of
     * service rev_svc[i]), added and removed while the loop runs: the
     * status thread reads mons[] under fill_mu.
     */
    pipeline **pipes;         /* room for one per service, and pipes[0] */
    size_t *rev_svc;
    monitor **mons;
    struct pollfd *polled;    /* the loop's, as many and two more */
    size_t npipes;
    pthread_mutex_t fill_mu;
    mover *mv;                /* cut-over, rollback, complete */
    bool reexec;              /* a reload changed what is replicated */
    status_server *status;
    int64_t last_notify_status;
    bool stopping;
    bool notified_ready;
    int64_t last_extend;      /* EXTEND_TIMEOUT_USEC, before READY=1 */
    uint64_t watchdog_us;
    int64_t last_watchdog;
} runner;

static char **kept_argv;

void run_keep_argv(char **argv)
{
    kept_argv = argv;
}

/*
 * cleave's threads wake often: the reader for every message the walsender
 * sends (a BEGIN, each change, a COMMIT: each its own send), a worker for
 * every transaction. Under the normal policy each wake-up may preempt
 * whatever runs; on a busy host shared with the source that is mostly
 * the walsender, the one process every service waits on. Measured at
 * 1,000 transactions/s on two loaded cores: the walsender preempted
 * some 2,000 times a second, running 8% of the time and waiting for a CPU
 * 60%, up to 2 s behind the commits it decodes. Under SCHED_BATCH a
 * wake-up never preempts (the fair share is unchanged, and an idle CPU
 * still takes a thread at once). Threads inherit it: set before any starts.
 */
static void yield_on_wakeup(const cfg *config)
{
    /* Kafka alone: no target backend, and the producer's hand-offs want
     * prompt wake-ups (worker.c keeps a producer's threads normal). */
    bool postgres = false;
    for (size_t i = 0; i < config->n_services; i++)
        postgres |= config->services[i].target_postgres != NULL;
    struct sched_param none = {0};
    if (postgres && sched_setscheduler(0, SCHED_BATCH, &none) != 0)
        log_warning("event=sched_batch_failed error=\"%s\"", strerror(errno));
}

static int setup_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    /* Blocked in every thread (workers inherit the mask): the loop reads them. */
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

/*
 * Until READY=1 (sent once the stream runs) systemd's start timeout runs,
 * 90 s by default: a source down at boot, or a new slot waiting on a long
 * transaction, would get cleave killed and started again and again. While
 * it waits, the timeout is pushed ahead and STATUS= says why.
 */
static void still_starting(runner *d, const char *why)
{
    if (d->notified_ready || (d->last_extend != 0 &&
                              clock_ms() - d->last_extend < START_EXTEND_EVERY_MS))
        return;
    d->last_extend = clock_ms();
    sd_notifyf(0, "EXTEND_TIMEOUT_USEC=%llu\nSTATUS=%s", START_EXTEND_US, why);
}

/* While a slot is made: a pending SIGTERM/SIGINT gives up (left unread). */
static bool signalled(void *arg)
{
    runner *d = arg;
    sigset_t pending;
    if (d->stopping)
        return true;
    if (sigpending(&pending) != 0)
        return false;
    return sigismember(&pending, SIGTERM) || sigismember(&pending, SIGINT);
}

/* The same, asked every second while a new slot waits on the source. */
static bool making_slot(void *arg)
{
    still_starting(arg, "making the replication slot: it waits for the "
                   "transactions running on the source to end");
    return signalled(arg);
}

static void watchdog(runner *d)
{
    if (d->watchdog_us == 0 ||
        clock_ms() - d->last_watchdog < (int64_t)(d->watchdog_us / 2000))
        return;
    d->last_watchdog = clock_ms();
    sd_notify(0, "WATCHDOG=1");
}

/*
 * Waits `ms` unless SIGTERM or SIGINT comes (then true). An armed
 * watchdog (a restart in place) must hear from us meanwhile.
 */
static bool wait_or_stop(runner *d, int64_t ms)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    watchdog(d);
    if (d->watchdog_us && ms > (int64_t)(d->watchdog_us / 2000))
        ms = (int64_t)(d->watchdog_us / 2000);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    return sigtimedwait(&set, NULL, &ts) > 0;
}

/*
 * A pipeline's source is prepared first, retried while it is down: whether
 * its slot is new decides whether earlier progress counts. False when
 * stopped meanwhile, or when it cannot go on.
 */
static bool prepare(runner *d, pipeline *p)
{
    char err[1024];
    int retry_ms;
    while (!pipeline_prepare(p, making_slot, d, &retry_ms, err, sizeof err)) {
        if (!signalled(d))
            log_error("event=source_failed error=\"%s\" retry_in=%dms", err,
                      retry_ms);
        char why[1100];
        snprintf(why, sizeof why, "waiting for the source: %s", err);
        d->last_extend = 0;
        still_starting(d, why);
        if (signalled(d) || wait_or_stop(d, retry_ms)) {
            d->stopping = true;
            return false;
        }
    }
    return pipeline_open(p);
}

/* Lets every sink try its first open, so the streams start with them. */
static void await_sinks(runner *d)
{
    int64_t deadline = clock_ms() + FIRST_OPEN_WAIT_MS;
    for (;;) {
        bool starting = false;
        for (size_t i = 0; i < d->npipes; i++)
            starting = starting || pipeline_starting(d->pipes[i]);
        if (!starting || clock_ms() > deadline)
            return;
        watchdog(d);
        struct pollfd p = {d->wakefd, POLLIN, 0};
        if (poll(&p, 1, 200) > 0) {
            uint64_t v;
            if (read(d->wakefd, &v, sizeof v) < 0 && errno != EAGAIN)
                return;
        }
    }
}

/* Adds pipeline p (with its monitor) where the status thread sees it. */
static bool keep_pipeline(runner *d, pipeline *p, const cfg *c, size_t svc)
{
    monitor *mon = monitor_new(c, pipeline_fanout(p), pipeline_syncstate(p));
    if (!mon || d->npipes == d->config->n_services + 1) {
        monitor_free(mon);
        return false;
    }
    pthread_mutex_lock(&d->fill_mu);
    d->pipes[d->npipes] = p;
    d->rev_svc[d->npipes] = svc;
    d->mons[d->npipes++] = mon;
    pthread_mutex_unlock(&d->fill_mu);
    return true;
}

/*
 * Service svc's reverse stream (after a cut-over): its slot exists, and
 * the shared database holds every row, so nothing is copied. Its source
 * starts with the loop's retries, not here: the service's database down,
 * or its slot gone, holds up neither the start nor the other streams.
 */
static bool add_reverse(runner *d, size_t svc)
{
    for (size_t i = 1; i < d->npipes; i++)
        if (d->rev_svc[i] == svc)
            return true;   /* asked again: one stream per slot */
    const cfg *rc = mover_reverse_cfg(d->mv, svc);
    pipeline *p = rc ? pipeline_new(rc, &rc->source, rc->state_dir, d->wakefd)
                     : NULL;
    if (p)
        pipeline_forbid_new_slot(p);
    if (p && pipeline_open(p) && pipeline_skip_copy(p) &&
        pipeline_start_copy(p) && keep_pipeline(d, p, rc, svc)) {
        log_info("event=reverse_started service=%s slot=%s",
                 d->config->services[svc].name, rc->source.slot);
        return true;
    }
    log_error("event=reverse_failed service=%s", d->config->services[svc].name);
    pipeline_free(p);
    return false;
}

static void remove_reverse(runner *d, size_t svc)
{
    for (size_t i = 1; i < d->npipes; i++) {
        if (d->rev_svc[i] != svc)
            continue;
        pipeline *p = d->pipes[i];
        monitor *mon = d->mons[i];
        pthread_mutex_lock(&d->fill_mu);
        d->npipes--;
        d->pipes[i] = d->pipes[d->npipes];
        d->mons[i] = d->mons[d->npipes];
        d->rev_svc[i] = d->rev_svc[d->npipes];
        pthread_mutex_unlock(&d->fill_mu);
        monitor_free(mon);
        pipeline_free(p);
        log_info("event=reverse_stopped service=%s",
                 d->config->services[svc].name);
        return;
    }
}

/* The forward pipeline: the shared database to the services. */
static bool add_forward(runner *d)
{
    pipeline *p = pipeline_new(d->config, &d->config->source,
                               d->config->state_dir, d->wakefd);
    if (!p)
        return false;
    d->pipes[0] = p;
    d->npipes = 1;
    return true;
}

/*
 * The forward slot made again while running: every sink opens again (a
 * restart in place), so that each forgets the earlier slot's position.
 */
static void restart_for_new_slot(runner *d)
{
    if (!kept_argv) {
        log_error("event=restart_failed error=\"cannot restart in place: "
                  "stop cleave, then start it\"");
        d->stopping = true;
        return;
    }
    log_info("event=restarting reason=slot_made_again");
    /* What status said must outlive the exec. */
    setenv(MADE_AGAIN_ENV, "1", 1);
    d->reexec = true;
    d->stopping = true;
}

static void try_start_sources(runner *d)
{
    for (size_t i = 0; i < d->npipes; i++) {
        bool started = pipeline_try_start(d->pipes[i], making_slot, d);
        if (started && pipeline_slot_made_again(d->pipes[i])) {
            restart_for_new_slot(d);
            return;
        }
        if (started && i == 0 && !d->notified_ready) {
            d->notified_ready = true;
            sd_notify(0, "READY=1\nSTATUS=streaming");
        }
    }
}

/* What a reload changes: the keys, and whether any needs a restart. */
typedef struct reload_diff {
    char keys[512];
    bool restart;
} reload_diff;

static void note_change(const char *key, bool reloadable, void *arg)
{
    reload_diff *rd = arg;
    size_t used = strlen(rd->keys);
    snprintf(rd->keys + used, sizeof rd->keys - used, "%s%s", used ? "," : "",
             key);
    rd->restart = rd->restart || !reloadable;
}

/*
 * SIGHUP: a reloadable key takes effect at once; any other change restarts
 * the daemon in place (same pid), so new tables are copied and every new
 * setting holds. An invalid file keeps the running configuration.
 */
static void reload(runner *d)
{
    char err[1024];
    sd_notify(0, "RELOADING=1");
    cfg *fresh = cfg_load(d->config->path, err, sizeof err);
    if (!fresh) {
        log_error("event=reload_failed error=\"%s\" keeping=previous", err);
        sd_notify(0, "READY=1");
        return;
    }
    reload_diff rd = {.keys = ""};
    cfg_diff(d->config, fresh, note_change, &rd);
    if (rd.restart && kept_argv) {
        log_info("event=reloading action=restart changed=\"%s\"", rd.keys);
        d->reexec = true;
        d->stopping = true;
        cfg_free(fresh);
        return;
    }
    if (rd.restart)
        log_warning("event=reload_incomplete changed=\"%s\" error=\"cannot "
                    "restart in place; restart cleave for these to take "
                    "effect\"", rd.keys);
    log_set_level((log_level)fresh->log_level);
    d->config->log_level = fresh->log_level;
    log_info("event=reloaded changed=\"%s\" log_level=%s",
             rd.keys[0] ? rd.keys : "nothing",
             cfg_log_level_name(fresh->log_level));
    cfg_free(fresh);
    sd_notify(0, "READY=1");
}

static void handle_signals(runner *d)
{
    struct signalfd_siginfo si;
    while (read(d->sigfd, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGHUP) {
            reload(d);
        } else if (!d->stopping) {
            log_info("event=stopping signal=%s", strsignal((int)si.ssi_signo));
            d->stopping = true;
        }
    }
}

static void handle_wake(runner *d)
{
    uint64_t v;
    if (read(d->wakefd, &v, sizeof v) < 0 && errno != EAGAIN)
        log_warning("event=wake_read_failed error=\"%s\"", strerror(errno));
    for (size_t i = 0; i < d->npipes; i++)
        pipeline_wake(d->pipes[i]);
}

static int poll_timeout(const runner *d)
{
    int64_t now = clock_ms();
    int64_t t = now + STATUS_MIN_GAP_MS;
    for (size_t i = 0; i < d->npipes; i++)
        t = pipeline_deadline(d->pipes[i], t);
    return t <= now ? 0 : (int)(t - now);
}

/* The figures for the status socket, and systemd's one-line summary. */
static void publish(runner *d)
{
    for (size_t i = 0; i < d->npipes; i++) {
        const pipeline *p = d->pipes[i];
        int64_t when;
        const char *err = pipeline_source_error(p, &when);
        monitor_publish(d->mons[i], pipeline_streaming(p), pipeline_stream(p),
                        pipeline_flush_sent(p));
        monitor_publish_source_error(d->mons[i], err, when);
    }
    if (clock_ms() - d->last_notify_status < NOTIFY_STATUS_MS)
        return;
    char line[256];
    d->last_notify_status = clock_ms();
    monitor_summary(d->mons[0], line, sizeof line);
    sd_notifyf(0, "STATUS=%s", line);
}

/* Puts one reverse sink after its service's other sinks. */
static void insert_reverse(status_snapshot *out, size_t max,
                           const status_sink *k)
{
    if (out->nsinks >= max)
        return;
    size_t at = out->nsinks;
    for (size_t i = 0; i < out->nsinks; i++)
        if (strcmp(out->sinks[i].service, k->service) == 0)
            at = i + 1;
    memmove(&out->sinks[at + 1], &out->sinks[at],
            (out->nsinks - at) * sizeof *out->sinks);
    out->sinks[at] = *k;
    snprintf(out->sinks[at].kind, sizeof out->sinks[at].kind, "reverse");
    out->nsinks++;
}

/* status_fill_fn: the forward figures, each reverse sink, the moves. */
static void fill(void *arg, status_snapshot *out)
{
    runner *d = arg;
    size_t max = out->nsinks;
    pthread_mutex_lock(&d->fill_mu);
    monitor_fill(d->mons[0], out);
    for (size_t i = 1; i < d->npipes; i++) {
        status_sink one = {0};
        status_snapshot rev = {.sinks = &one, .nsinks = 1};
        monitor_fill(d->mons[i], &rev);
        /*
         * Its source (the service's database) has no line of its own: a
         * source that does not stream shows on the sink, so a rollback
         * waits for it before locking anything.
         */
        if (rev.last_error_time > one.last_error_time) {
            memcpy(one.last_error, rev.last_error, sizeof one.last_error);
            one.last_error_time = rev.last_error_time;
        }
        if (!rev.connected && strcmp(one.state, "streaming") == 0)
            snprintf(one.state, sizeof one.state, "%s",
                     rev.last_error[0] ? "error" : "catching_up");
        if (rev.nsinks == 1)
            insert_reverse(out, max, &one);
    }
    pthread_mutex_unlock(&d->fill_mu);
    mover_fill(d->mv, out);
}

/*
 * The status socket, about every pipeline. Another cleave answering on
 * it is fatal (two daemons on one configuration would fight over the
 * slot); any other failure only costs the socket and the moves.
 */
static bool start_status(runner *d)
{
    char err[512];
    const pipeline *p = d->pipes[0];
    const cfg_source *src = pipeline_settings(p);
    size_t max = fanout_size(pipeline_fanout(p)) + d->config->n_services;
    d->status = status_start(d->config->status_socket, src->dsn, src->slot,
                             max, fill, d, err, sizeof err);
    if (d->status) {
        if (mover_start(d->mv, fill, d, max))
            status_set_control(d->status, mover_control, d->mv);
        return true;
    }
    log_error("event=status_socket_failed path=%s error=\"%s\"",
              d->config->status_socket, err);
    return strstr(err, "another cleave") == NULL;
}

/* `cleave resync`: the forward pipeline copies the service again. */
static void serve_resync(runner *d, size_t svc)
{
    char err[512];
    if (pipeline_resync(d->pipes[0], svc, mover_asked_table(d->mv), err,
                        sizeof err))
        mover_answer(d->mv, true);
    else
        mover_refuse(d->mv, err);
}

/* What the mover waits for: a reverse stream started or stopped, a mark. */
static void serve_mover(runner *d)
{
    size_t svc;
    bool reverse;
    char token[STREAM_MARK_MAX];
    switch (mover_asked(d->mv, &svc)) {
    case MOVER_ASK_START:
        mover_answer(d->mv, add_reverse(d, svc));
        break;
    case MOVER_ASK_STOP:
        remove_reverse(d, svc);
        mover_answer(d->mv, true);
        break;
    case MOVER_ASK_RESYNC:
        serve_resync(d, svc);
        break;
    case MOVER_ASK_LEAVE:
        pipeline_leave(d->pipes[0], svc);
        mover_answer(d->mv, true);
        break;
    case MOVER_ASK_NONE:
        break;
    }
    if (!mover_mark_wanted(d->mv, &svc, &reverse, token, sizeof token))
        return;
    for (size_t i = 0; i < d->npipes; i++)
        if ((i == 0) != reverse && (i == 0 || d->rev_svc[i] == svc) &&
            pipeline_mark_applied(d->pipes[i], i == 0 ? svc : 0, token))
            mover_mark_reached(d->mv);
}

static void loop(runner *d)
{
    struct pollfd *p = d->polled;
    while (!d->stopping) {
        try_start_sources(d);
        p[0] = (struct pollfd){d->sigfd, POLLIN, 0};
        p[1] = (struct pollfd){d->wakefd, POLLIN, 0};
        for (size_t i = 0; i < d->npipes; i++)
            p[2 + i] = (struct pollfd){pipeline_fd(d->pipes[i]), POLLIN, 0};
        if (poll(p, 2 + d->npipes, poll_timeout(d)) < 0 && errno != EINTR)
            break;
        if (p[0].revents)
            handle_signals(d);
        if (p[1].revents)
            handle_wake(d);
        for (size_t i = 0; i < d->npipes; i++)
            pipeline_turn(d->pipes[i]);
        serve_mover(d);
        publish(d);
        watchdog(d);
    }
}

/* Lets the sinks finish what they hold, reports it, closes. */
static void shutdown_all(runner *d)
{
    if (!d->reexec)
        sd_notify(0, "STOPPING=1");
    /* First: its thread reads the workers and the initial sync. */
    status_stop(d->status);
    mover_stop(d->mv);
    for (size_t i = 0; i < d->npipes; i++)
        pipeline_stop(d->pipes[i]);
    for (size_t i = 0; i < d->npipes; i++) {
        monitor_free(d->mons[i]);
        pipeline_free(d->pipes[i]);
    }
    /* Last: the reverse pipelines read its configurations. */
    mover_free(d->mv);
}

/*
 * Tables given to a service after its move was complete: refused, each
 * said once per start, and status names the first and how many more.
 * Nothing is copied (pipeline_leave): the service's database is the only
 * writer of what moved and the forward stream carries nothing of it any
 * more, so a copy would go stale unseen. The other services go on.
 */
static void refuse_given_after_complete(runner *d, size_t svc)
{
    const cfg_service *s = &d->config->services[svc];
    char why[STATUS_ERROR_MAX], first[STATUS_ERROR_MAX] = "";
    const cfg_table *t;
    size_t from = 0, n = 0;
    while ((t = mover_given_after_complete(d->mv, svc, &from, why,
                                           sizeof why))) {
        log_error("event=table_refused service=%s table=%s.%s reason=\"%s\"",
                  s->name, t->schema, t->name, why);
        if (n++ == 0)
            snprintf(first, sizeof first, "%s", why);
    }
    if (n > 1)
        snprintf(why, sizeof why, "%s (and %zu more tables given since: "
                 "see event=table_refused in the log)", first, n - 1);
    if (n > 0)
        monitor_refuse(d->mons[0], svc, n > 1 ? why : first);
}

/* The move journal first: it decides which reverse streams run. */
static bool add_pipelines(runner *d)
{
    char err[512];
    d->mv = mover_new(d->config, d->wakefd, err, sizeof err);
    if (!d->mv) {
        log_error("event=journal_failed error=\"%s\"", err);
        return false;
    }
    /* A database that cannot be asked holds up only its own service. */
    if (!mover_recover(d->mv))
        log_warning("event=move_recovery_deferred reason=\"the mover tries "
                    "again every few seconds\"");
    if (!add_forward(d))
        return false;
    if (getenv(MADE_AGAIN_ENV)) {
        pipeline_say_slot_made_again(d->pipes[0]);
        unsetenv(MADE_AGAIN_ENV);
    }
    for (size_t i = 0; i < d->config->n_services; i++)
        if (mover_complete(d->mv, i))
            pipeline_leave(d->pipes[0], i);
    if (!prepare(d, d->pipes[0]))
        return false;
    d->mons[0] = monitor_new(d->config, pipeline_fanout(d->pipes[0]),
                             pipeline_syncstate(d->pipes[0]));
    if (!d->mons[0])
        return false;
    for (size_t i = 0; i < d->config->n_services; i++)
        refuse_given_after_complete(d, i);
    for (size_t i = 0; i < d->config->n_services; i++)
        if (mover_reverse(d->mv, i) && !add_reverse(d, i))
            return false;
    return true;
}

/* Sets up the pipelines and the status socket, then runs the loop. */
static int run(runner *d)
{
    if (!add_pipelines(d))
        return d->stopping ? EXITCODE_OK : EXITCODE_RUNTIME;
    if (!start_status(d))
        return EXITCODE_RUNTIME;
    await_sinks(d);
    if (!pipeline_start_copy(d->pipes[0]))
        return EXITCODE_RUNTIME;
    monitor_set_initsync(d->mons[0], pipeline_initsync(d->pipes[0]));
    loop(d);
    return EXITCODE_OK;
}

/* Room for the forward pipeline and one reverse stream per service. */
static bool make_room(runner *d)
{
    size_t n = d->config->n_services + 1;
    d->pipes = calloc(n, sizeof *d->pipes);
    d->rev_svc = calloc(n, sizeof *d->rev_svc);
    d->mons = calloc(n, sizeof *d->mons);
    d->polled = calloc(n + 2, sizeof *d->polled);
    return d->pipes && d->rev_svc && d->mons && d->polled;
}

int run_daemon(const char *config_path)
{
    char err[1024];
    runner d = {0};
    pthread_mutex_init(&d.fill_mu, NULL);
    d.config = cfg_load(config_path, err, sizeof err);
    if (!d.config) {
        fprintf(stderr, "%s\n", err);
        return EXITCODE_CONFIG;
    }
    log_set_level((log_level)d.config->log_level);
    int rc = EXITCODE_RUNTIME;
    yield_on_wakeup(d.config);
    d.sigfd = setup_signals();
    d.wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (sd_watchdog_enabled(0, &d.watchdog_us) <= 0)
        d.watchdog_us = 0;
    log_info("event=starting name=%s services=%zu slot=%s version=%s",
             d.config->name, d.config->n_services, d.config->source.slot,
             CLEAVE_VERSION);
    if (d.sigfd >= 0 && d.wakefd >= 0 && make_room(&d))
        rc = run(&d);
    shutdown_all(&d);
    free(d.pipes);
    free(d.rev_svc);
    free(d.mons);
    free(d.polled);
    if (d.reexec && kept_argv) {
        cfg_free(d.config);
        close(d.sigfd);
        close(d.wakefd);
        /* Same pid: systemd and the status socket's users see one daemon. */
        execv("/proc/self/exe", kept_argv);
        log_error("event=restart_failed error=\"%s\"", strerror(errno));
        return EXITCODE_RUNTIME;
    }
    if (d.sigfd >= 0)
        close(d.sigfd);
    if (d.wakefd >= 0)
        close(d.wakefd);
    cfg_free(d.config);
    return rc;
}
