/*
 * run: the daemon's event loop.
 *
 * One thread reads the slot and routes (stream.c); one worker thread per
 * sink applies (worker.c). This loop waits on the replication socket, the
 * workers' wake-up eventfd and a signalfd, and on timers: standby status
 * updates, heartbeats, reconnects. Signals only set what the loop acts on.
 */
#include "daemon/run.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "common/backoff.h"
#include "common/exitcode.h"
#include "config/config.h"
#include "daemon/fanout.h"
#include "daemon/initsync.h"
#include "common/log.h"
#include "daemon/source.h"
#include "daemon/monitor.h"
#include "daemon/spool.h"
#include "daemon/status.h"
#include "daemon/stream.h"
#include "daemon/syncsink.h"
#include "daemon/syncstate.h"

#define STATUS_INTERVAL_MS 10000   /* standby status update at least this often */
#define STATUS_MIN_GAP_MS 200      /* and when flush moved, at most this often */
#define QUEUE_BYTES (8u << 20)     /* per sink: bounds memory, gives batching */
#define FRAMES_PER_TURN 4096       /* then look at signals and timers again */
#define NOTIFY_STATUS_MS 5000      /* systemd's STATUS= line this often */

typedef struct runner {
    cfg *config;
    int sigfd, wakefd;
    source *src;
    stream *st;
    syncstate *sync;
    initsync *init;
    bool reexec;              /* a reload changed what is replicated */
    snap *created;            /* the new slot's snapshot, for the copy */
    fanout *fo;               /* a syncsink around each real sink, and workers */
    monitor *mon;             /* figures for the status socket */
    status_server *status;
    int64_t last_notify_status;
    bool stopping;
    bool notified_ready;
    int64_t next_source_try;
    backoff source_backoff;
    int64_t last_status;
    lsn_t last_flush_sent;
    int64_t next_heartbeat;
    uint64_t watchdog_us;
    int64_t last_watchdog;
} runner;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool make_dir(const char *path)
{
    if (mkdir(path, 0700) == 0 || errno == EEXIST)
        return true;
    log_error("event=state_dir_failed path=%s error=\"%s\"", path, strerror(errno));
    return false;
}

static char **kept_argv;

void run_keep_argv(char **argv)
{
    kept_argv = argv;
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

/* A sink of service i (and its worker), wrapped for the initial sync. */
static bool start_worker(runner *d, size_t i, bool kafka)
{
    const cfg *c = d->config;
    const cfg_service *svc = &c->services[i];
    sink *inner = sink_new(kafka ? SINK_KIND_KAFKA : SINK_KIND_POSTGRES, c,
                           svc);
    sink *s = inner ? syncsink_new(inner, d->sync, i) : NULL;
    return fanout_add(d->fo, s, kafka && svc->n_messages > 0);
}

static bool start_workers(runner *d)
{
    const cfg *c = d->config;
    d->fo = fanout_new(c, d->wakefd, QUEUE_BYTES);
    if (!d->fo)
        return false;
    for (size_t i = 0; i < c->n_services; i++) {
        const cfg_service *svc = &c->services[i];
        if ((svc->target_postgres && !start_worker(d, i, false)) ||
            (svc->target_kafka && !start_worker(d, i, true)))
            return false;
    }
    return true;
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

/* Removes the hold spools of an earlier slot: they belong to its stream. */
static void clean_hold_dir(const char *dir)
{
    DIR *dh = opendir(dir);
    struct dirent *e;
    while (dh && (e = readdir(dh)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    if (dh)
        closedir(dh);
}

/*
 * The source is prepared first (retrying while it is down): whether the
 * slot is new decides whether earlier progress counts.
 */
static void watchdog(runner *d);

static bool start_sync(runner *d, const char *hold_dir)
{
    char err[1024];
    while (!source_prepare(d->src, signalled, d, err, sizeof err)) {
        if (signalled(d)) {
            d->stopping = true;
            return true;
        }
        int64_t wait = backoff_next(&d->source_backoff);
        log_error("event=source_failed error=\"%s\" retry_in=%lldms", err,
                  (long long)wait);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        /* An armed watchdog (a restart in place) must hear from us. */
        watchdog(d);
        if (d->watchdog_us && wait > (int64_t)(d->watchdog_us / 2000))
            wait = (int64_t)(d->watchdog_us / 2000);
        struct timespec ts = {wait / 1000, (wait % 1000) * 1000000};
        if (sigtimedwait(&set, NULL, &ts) > 0) {
            d->stopping = true;
            return true;
        }
    }
    backoff_reset(&d->source_backoff);
    d->created = source_take_snapshot(d->src);
    if (d->created)
        clean_hold_dir(hold_dir);
    d->sync = syncstate_open(d->config, d->created != NULL, err, sizeof err);
    if (!d->sync)
        log_error("event=state_failed error=\"%s\"", err);
    return d->sync != NULL;
}

/* Lets every sink try its first open, so the stream starts with them. */
static void await_workers(runner *d)
{
    int64_t deadline = now_ms() + 30000;
    for (;;) {
        if (!fanout_starting(d->fo) || now_ms() > deadline)
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

static bool make_stream(runner *d, const char *spool_dir)
{
    d->st = stream_new(d->config, d->fo, spool_dir);
    return d->st != NULL;
}

static void source_failed(runner *d, const char *err)
{
    int wait = backoff_next(&d->source_backoff);
    log_error("event=source_failed error=\"%s\" retry_in=%dms", err, wait);
    source_stop(d->src);
    d->next_source_try = now_ms() + wait;
}

static void try_start_source(runner *d)
{
    char err[1024] = "";
    if (source_streaming(d->src) || now_ms() < d->next_source_try)
        return;
    if (!source_prepare(d->src, signalled, d, err, sizeof err) ||
        !stream_restart(d->st, source_proto_version(d->src)) ||
        !source_start(d->src, err, sizeof err)) {
        source_failed(d, err[0] ? err : "out of memory");
        return;
    }
    snap *late = source_take_snapshot(d->src);
    if (late) {
        /* Someone dropped the slot while cleave ran: changes were lost. */
        log_error("event=slot_recreated slot=%s error=\"the slot disappeared "
                  "while cleave was running; changes made meanwhile are not "
                  "in the targets: copy again (empty the targets and remove "
                  "%s/initial_sync.json)\"", d->config->source.slot,
                  d->config->state_dir);
        snap_release(late);
    }
    backoff_reset(&d->source_backoff);
    d->last_status = 0;
    if (!d->notified_ready) {
        d->notified_ready = true;
        sd_notify(0, "READY=1\nSTATUS=streaming");
    }
}

static void send_status(runner *d, bool force)
{
    if (!source_streaming(d->src))
        return;
    lsn_t flush = stream_flush_lsn(d->st);
    int64_t now = now_ms();
    bool due = now - d->last_status >= STATUS_INTERVAL_MS ||
               (flush != d->last_flush_sent && now - d->last_status >= STATUS_MIN_GAP_MS);
    if (!force && !due)
        return;
    if (!source_send_status(d->src, stream_received(d->st), flush, false)) {
        source_failed(d, "cannot send a status update");
        return;
    }
    if (flush != d->last_flush_sent) {
        char lsn[LSN_STRLEN];
        log_debug("event=feedback flush_lsn=%s", lsn_format(flush, lsn));
    }
    d->last_status = now;
    d->last_flush_sent = flush;
}

/* Reads frames until none is ready, the sinks push back, or a turn ends. */
static void read_frames(runner *d)
{
    char err[1024];
    for (int n = 0; n < FRAMES_PER_TURN && !stream_busy(d->st); n++) {
        const uint8_t *buf;
        size_t len;
        err[0] = '\0';
        int r = source_read(d->src, &buf, &len, err, sizeof err);
        if (r == 0)
            return;
        bool reply = false;
        if (r < 0 || !stream_frame(d->st, buf, len, &reply, err, sizeof err)) {
            source_failed(d, err);
            return;
        }
        if (reply)
            send_status(d, true);
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
    if (stream_needs_restart(d->st) && source_streaming(d->src)) {
        /* A sink came back: replay the slot from what it holds. */
        log_info("event=replay reason=\"a sink reopened\"");
        source_stop(d->src);
        d->next_source_try = 0;
    }
}

static void heartbeat(runner *d)
{
    int interval = d->config->source.heartbeat_interval_ms;
    if (interval <= 0 || now_ms() < d->next_heartbeat)
        return;
    char err[1024];
    d->next_heartbeat = now_ms() + interval;
    if (!source_heartbeat(d->src, err, sizeof err))
        log_warning("event=heartbeat_failed error=\"%s\"", err);
}

static int poll_timeout(const runner *d)
{
    int64_t now = now_ms();
    int64_t t = now + STATUS_MIN_GAP_MS;
    if (!source_streaming(d->src) && d->next_source_try < t)
        t = d->next_source_try;
    if (d->config->source.heartbeat_interval_ms > 0 && d->next_heartbeat < t)
        t = d->next_heartbeat;
    if (stream_busy(d->st))
        t = now + 50;
    return t <= now ? 0 : (int)(t - now);
}

/* The figures for the status socket, and systemd's one-line summary. */
static void publish(runner *d)
{
    monitor_publish(d->mon, source_streaming(d->src), d->st,
                    d->last_flush_sent);
    if (now_ms() - d->last_notify_status < NOTIFY_STATUS_MS)
        return;
    char line[256];
    d->last_notify_status = now_ms();
    monitor_summary(d->mon, line, sizeof line);
    sd_notifyf(0, "STATUS=%s", line);
}

/*
 * The status socket. Another cleave answering on it is fatal (two daemons
 * on one configuration would fight over the slot); any other failure
 * only costs the socket.
 */
static bool start_status(runner *d)
{
    char err[512];
    d->mon = monitor_new(d->config, d->fo, d->sync);
    if (!d->mon)
        return false;
    d->status = status_start(d->config->status_socket, d->config->source.dsn,
                             d->config->source.slot, fanout_size(d->fo), monitor_fill,
                             d->mon, err, sizeof err);
    if (d->status)
        return true;
    log_error("event=status_socket_failed path=%s error=\"%s\"",
              d->config->status_socket, err);
    return strstr(err, "another cleave") == NULL;
}

static void watchdog(runner *d)
{
    if (d->watchdog_us == 0 || now_ms() - d->last_watchdog < (int64_t)(d->watchdog_us / 2000))
        return;
    d->last_watchdog = now_ms();
    sd_notify(0, "WATCHDOG=1");
}

static void loop(runner *d)
{
    char err[1024];
    while (!d->stopping) {
        try_start_source(d);
        struct pollfd p[3] = {{d->sigfd, POLLIN, 0}, {d->wakefd, POLLIN, 0},
                              {-1, POLLIN, 0}};
        if (source_streaming(d->src) && !stream_busy(d->st))
            p[2].fd = source_fd(d->src);
        if (poll(p, 3, poll_timeout(d)) < 0 && errno != EINTR)
            break;
        if (p[0].revents)
            handle_signals(d);
        if (p[1].revents)
            handle_wake(d);
        if (stream_busy(d->st) && !stream_work(d->st, err, sizeof err))
            source_failed(d, err);
        if (source_streaming(d->src) && !stream_busy(d->st))
            read_frames(d);
        send_status(d, false);
        heartbeat(d);
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
    initsync_stop(d->init);
    if (d->st)
        stream_restart(d->st, source_proto_version(d->src));
    fanout_stop(d->fo);
    if (d->src && source_streaming(d->src)) {
        lsn_t flush = stream_flush_lsn(d->st);
        char lsn[LSN_STRLEN];
        source_send_status(d->src, stream_received(d->st), flush, false);
        log_info("event=stopped flush_lsn=%s", lsn_format(flush, lsn));
    }
    monitor_free(d->mon);
    syncstate_free(d->sync);
    stream_free(d->st);
    fanout_free(d->fo);
    source_free(d->src);
}

int run_daemon(const char *config_path)
{
    char err[1024];
    runner d = {0};
    backoff_init(&d.source_backoff, BACKOFF_MIN_MS, BACKOFF_MAX_MS);
    d.config = cfg_load(config_path, err, sizeof err);
    if (!d.config) {
        fprintf(stderr, "%s\n", err);
        return EXITCODE_CONFIG;
    }
    log_set_level((log_level)d.config->log_level);
    char *spool_dir = NULL, *hold_dir = NULL;
    int rc = EXITCODE_RUNTIME;
    d.sigfd = setup_signals();
    d.wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (d.sigfd < 0 || d.wakefd < 0 || !make_dir(d.config->state_dir) ||
        asprintf(&spool_dir, "%s/spool", d.config->state_dir) < 0 ||
        !make_dir(spool_dir) ||
        asprintf(&hold_dir, "%s/hold", d.config->state_dir) < 0)
        goto out;
    spool_clean_dir(spool_dir);
    if (sd_watchdog_enabled(0, &d.watchdog_us) <= 0)
        d.watchdog_us = 0;
    log_info("event=starting name=%s services=%zu slot=%s version=%s",
             d.config->name, d.config->n_services, d.config->source.slot,
             CLEAVE_VERSION);
    d.src = source_new(d.config);
    if (!d.src || !make_dir(hold_dir) || !start_sync(&d, hold_dir))
        goto out;
    if (d.stopping) {
        rc = EXITCODE_OK;
        goto out;
    }
    if (!start_workers(&d) || !make_stream(&d, spool_dir) || !start_status(&d))
        goto out;
    await_workers(&d);
    d.init = initsync_start(d.config, d.sync, d.created);
    d.created = NULL;
    if (!d.init)
        goto out;
    if (d.mon)
        monitor_set_initsync(d.mon, d.init);
    loop(&d);
    rc = EXITCODE_OK;
out:
    snap_release(d.created);
    shutdown_all(&d);
    free(hold_dir);
    if (d.reexec && kept_argv) {
        cfg_free(d.config);
        close(d.sigfd);
        close(d.wakefd);
        free(spool_dir);
        /* Same pid: systemd and the status socket's users see one daemon. */
        execv("/proc/self/exe", kept_argv);
        log_error("event=restart_failed error=\"%s\"", strerror(errno));
        return EXITCODE_RUNTIME;
    }
    free(spool_dir);
    if (d.sigfd >= 0)
        close(d.sigfd);
    if (d.wakefd >= 0)
        close(d.wakefd);
    cfg_free(d.config);
    return rc;
}
