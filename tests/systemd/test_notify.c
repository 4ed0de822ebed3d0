/*
 * cleave's sd_notify messages, as systemd would receive them (PRODUCT.md §3
 * point 8; systemd/cleave.service is Type=notify with WatchdogSec=).
 *
 * No systemd runs in CI, so the test plays its part: NOTIFY_SOCKET names a
 * datagram socket the test binds, WATCHDOG_USEC asks for pings, and the
 * real binary runs against the shop fixtures on throwaway clusters. Every
 * datagram must come from cleave's pid (SCM_CREDENTIALS), as systemd's
 * NotifyAccess=main requires.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "tests/support/shopenv.h"

#define WATCHDOG_USEC "2000000"
#define NOTIFY_MAX 4096

static pgc_cluster *src, *tgt;

/* The socket systemd would own, and what has arrived on it. */
typedef struct notify_sock {
    int fd;
    char dir[80];
    char path[108];          /* sockaddr_un's sun_path */
    pid_t expect_pid;        /* the sender every datagram must come from */
    char last[NOTIFY_MAX];   /* the datagram that matched */
    bool seen_status;        /* a STATUS= line arrived at some point */
} notify_sock;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void notify_open(notify_sock *n)
{
    const char *t = getenv("TMPDIR");
    /* sun_path holds 108 bytes: a long TMPDIR would not fit. */
    if (!t || !*t || strlen(t) > 60)
        t = "/tmp";
    snprintf(n->dir, sizeof n->dir, "%s/cleave-notify-XXXXXX", t);
    ck_assert_msg(mkdtemp(n->dir), "mkdtemp: %s", strerror(errno));
    snprintf(n->path, sizeof n->path, "%s/notify", n->dir);
    n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    ck_assert(n->fd >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    _Static_assert(sizeof n->path == sizeof sa.sun_path, "sun_path");
    memcpy(sa.sun_path, n->path, sizeof n->path);
    ck_assert_msg(bind(n->fd, (struct sockaddr *)&sa, sizeof sa) == 0,
                  "bind %s: %s", n->path, strerror(errno));
    int on = 1;
    ck_assert(setsockopt(n->fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof on) == 0);
    n->expect_pid = 0;
    n->seen_status = false;
}

static void notify_close(notify_sock *n)
{
    close(n->fd);
    unlink(n->path);
    rmdir(n->dir);
}

/*
 * Receives one datagram into buf (NUL-terminated) if one is queued: 1,
 * 0 when none is, asserting on the sender's pid.
 */
static int notify_recv(notify_sock *n, char *buf, size_t len)
{
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(struct ucred))];
    } ctl;
    struct iovec iov = {buf, len - 1};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
                        .msg_control = &ctl, .msg_controllen = sizeof ctl};
    ssize_t r = recvmsg(n->fd, &mh, MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    ck_assert_msg(r >= 0, "recvmsg: %s", strerror(errno));
    buf[r] = '\0';
    char shown[NOTIFY_MAX];
    snprintf(shown, sizeof shown, "%s", buf);
    for (char *c = shown; (c = strchr(c, '\n')); )
        *c = ' ';
    fprintf(stderr, "notify: %s\n", shown);
    pid_t from = -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
            struct ucred uc;
            memcpy(&uc, CMSG_DATA(c), sizeof uc);
            from = uc.pid;
        }
    ck_assert_msg(from == n->expect_pid,
                  "a notify message from pid %d, not cleave's %d: %s",
                  (int)from, (int)n->expect_pid, buf);
    return 1;
}

/* Whether the datagram holds the line exactly (messages are KEY=VALUE lines). */
static bool has_line(const char *msg, const char *line)
{
    size_t len = strlen(line);
    for (const char *p = msg; *p; p += strcspn(p, "\n"), p += *p == '\n') {
        if (strncmp(p, line, len) == 0 && (p[len] == '\n' || p[len] == '\0'))
            return true;
    }
    return false;
}

static bool has_prefix_line(const char *msg, const char *prefix)
{
    size_t len = strlen(prefix);
    for (const char *p = msg; *p; p += strcspn(p, "\n"), p += *p == '\n')
        if (strncmp(p, prefix, len) == 0)
            return true;
    return false;
}

/*
 * Reads datagrams until one holds `line` or timeout_s passes; that one is
 * left in n->last. Datagrams before it are consumed.
 */
static bool notify_wait(notify_sock *n, const char *line, double timeout_s)
{
    double deadline = now_s() + timeout_s;
    for (;;) {
        while (notify_recv(n, n->last, sizeof n->last)) {
            n->seen_status = n->seen_status || has_prefix_line(n->last, "STATUS=");
            if (has_line(n->last, line))
                return true;
        }
        double left = deadline - now_s();
        if (left <= 0)
            return false;
        struct pollfd p = {n->fd, POLLIN, 0};
        poll(&p, 1, (int)(left * 1000) + 1);
    }
}

/* Counts `line` in the datagrams arriving within window_s. */
static int notify_count(notify_sock *n, const char *line, double window_s)
{
    int count = 0;
    double deadline = now_s() + window_s;
    while (notify_wait(n, line, deadline - now_s()))
        count++;
    return count;
}

static void fail_with_log(shop_env *env, const char *what)
{
    shop_log_tail(env, 40);
    shop_teardown(env);
    ck_abort_msg("%s", what);
}

/*
 * The life of a unit: ready once streaming, watchdog pings, a reload of an
 * unchanged configuration, a stop.
 */
START_TEST(notify_protocol)
{
    notify_sock n;
    notify_open(&n);
    shop_env env;
    ck_assert(shop_setup(&env, src, tgt, "notify", NULL, NULL));

    /* What systemd puts in the environment (WATCHDOG_PID is optional). */
    setenv("NOTIFY_SOCKET", n.path, 1);
    setenv("WATCHDOG_USEC", WATCHDOG_USEC, 1);
    unsetenv("WATCHDOG_PID");
    bool started = shop_start(&env);
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    ck_assert(started);
    n.expect_pid = env.pid;

    if (!notify_wait(&n, "READY=1", 60))
        fail_with_log(&env, "no READY=1 within 60 s of the start");
    if (!n.seen_status)
        fail_with_log(&env, "READY=1 came without a STATUS= line before or with it");
    if (!shop_wait_streaming(&env, 10))
        fail_with_log(&env, "READY=1 sent, but no walsender streams the slot");

    /* WATCHDOG_USEC=2 s: systemd's advice is a ping every second. */
    int pings = notify_count(&n, "WATCHDOG=1", 3.0);
    if (pings < 2) {
        char msg[128];
        snprintf(msg, sizeof msg, "%d WATCHDOG=1 in 3 s with WATCHDOG_USEC=%s",
                 pings, WATCHDOG_USEC);
        fail_with_log(&env, msg);
    }

    /* An unchanged configuration: reloaded in place, no re-exec. */
    long mark = shop_log_size(&env);
    ck_assert(kill(env.pid, SIGHUP) == 0);
    if (!notify_wait(&n, "RELOADING=1", 10))
        fail_with_log(&env, "no RELOADING=1 within 10 s of SIGHUP");
    if (!notify_wait(&n, "READY=1", 10))
        fail_with_log(&env, "no READY=1 within 10 s of RELOADING=1");
    if (!shop_wait_log(&env, "event=reloaded", mark, 10))
        fail_with_log(&env, "READY=1 after the reload, but no event=reloaded logged");

    ck_assert(kill(env.pid, SIGTERM) == 0);
    if (!notify_wait(&n, "STOPPING=1", 30))
        fail_with_log(&env, "no STOPPING=1 within 30 s of SIGTERM");
    /* A second SIGTERM to a stopping cleave changes nothing. */
    int rc = shop_stop(&env, SIGTERM, 60);
    if (rc != 0)
        shop_log_tail(&env, 40);
    ck_assert_msg(rc == 0, "cleave exited %d on SIGTERM", rc);
    /* Whatever it sent on the way out still came from its pid. */
    char rest[NOTIFY_MAX];
    while (notify_recv(&n, rest, sizeof rest))
        ck_assert_msg(!has_line(rest, "READY=1"), "READY=1 after STOPPING=1");
    shop_teardown(&env);
    notify_close(&n);
}
END_TEST

/*
 * A source that cannot be reached at start: before READY=1 cleave pushes
 * systemd's start timeout ahead and says why in STATUS=, so it is not
 * killed at TimeoutStartSec while it retries; once the source is back it
 * streams and says READY=1.
 */
START_TEST(notify_source_down)
{
    notify_sock n;
    notify_open(&n);
    shop_env env;
    ck_assert(shop_setup(&env, src, tgt, "notifydown", NULL, NULL));
    char sql[256];
    snprintf(sql, sizeof sql, "ALTER DATABASE %s RENAME TO %s_aside",
             env.srcdb, env.srcdb);
    ck_assert(pgc_exec(src, "postgres", sql));
    setenv("NOTIFY_SOCKET", n.path, 1);
    bool started = shop_start(&env);
    unsetenv("NOTIFY_SOCKET");
    ck_assert(started);
    n.expect_pid = env.pid;
    if (!notify_wait(&n, "EXTEND_TIMEOUT_USEC=90000000", 30))
        fail_with_log(&env, "no EXTEND_TIMEOUT_USEC while the source is down");
    if (!has_prefix_line(n.last, "STATUS=waiting for the source: ") ||
        !strstr(n.last, env.srcdb))
        fail_with_log(&env, "the timeout was pushed without saying why");
    snprintf(sql, sizeof sql, "ALTER DATABASE %s_aside RENAME TO %s",
             env.srcdb, env.srcdb);
    ck_assert(pgc_exec(src, "postgres", sql));
    if (!notify_wait(&n, "READY=1", 90))
        fail_with_log(&env, "no READY=1 once the source was back");
    int rc = shop_stop(&env, SIGTERM, 60);
    ck_assert_msg(rc == 0, "cleave exited %d on SIGTERM", rc);
    shop_teardown(&env);
    notify_close(&n);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("systemd");
    shop_add_case(s, "notify_protocol", notify_protocol, 240);
    shop_add_case(s, "notify_source_down", notify_source_down, 240);
    return shop_run_suite(s, NULL, &src, &tgt);
}
