/*
 * dbconn_connect_many: attempts run at once and the deadline holds for
 * all of them together. A listener that never answers the startup packet
 * stands for a server that hangs (a blackholed host would too, but has no
 * stand-in without a network); a closed port fails at once.
 */
#include <check.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/dbconn.h"

/* A loopback listener that accepts into its backlog and never answers. */
static int silent_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, len), 0);
    ck_assert_int_eq(listen(fd, 8), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* A loopback port nobody listens on (bound, then closed). */
static int closed_port(void)
{
    int port, fd = silent_listener(&port);
    close(fd);
    return port;
}

START_TEST(hung_servers_share_one_deadline)
{
    int p1, p2;
    int l1 = silent_listener(&p1), l2 = silent_listener(&p2);
    char hung1[64], hung2[64], refused[64];
    snprintf(hung1, sizeof hung1, "host=127.0.0.1 port=%d dbname=x", p1);
    snprintf(hung2, sizeof hung2, "host=127.0.0.1 port=%d dbname=x", p2);
    snprintf(refused, sizeof refused, "host=127.0.0.1 port=%d dbname=x",
             closed_port());
    const char *dsns[] = {hung1, NULL, refused, hung2};
    PGconn *conns[4];
    int64_t t0 = clock_ms();
    dbconn_connect_many(dsns, 4, "test", 400, conns);
    int64_t took = clock_ms() - t0;
    /* Two hung servers, 400 ms in all: not one wait after the other. */
    ck_assert_int_ge(took, 400);
    ck_assert_int_lt(took, 780);
    ck_assert_ptr_null(conns[0]);
    ck_assert_ptr_null(conns[1]);
    ck_assert_ptr_null(conns[3]);
    ck_assert_ptr_nonnull(conns[2]);
    ck_assert_int_eq(PQstatus(conns[2]), CONNECTION_BAD);
    char why[256];
    dbconn_why(conns[2], refused, "the refusing one", why, sizeof why);
    ck_assert_msg(strstr(why, "cannot connect to the refusing one"), "%s", why);
    PQfinish(conns[2]);
    close(l1);
    close(l2);
}
END_TEST

static void on_alarm(int sig)
{
    (void)sig;
}

/*
 * A signal while waiting (the daemon's SIGHUP or SIGCHLD, say) interrupts
 * the wait, not the attempt: the deadline still holds.
 */
START_TEST(signal_does_not_end_the_wait)
{
    int port, l = silent_listener(&port);
    char hung[64];
    snprintf(hung, sizeof hung, "host=127.0.0.1 port=%d dbname=x", port);
    const char *dsns[] = {hung};
    PGconn *conns[1];
    struct sigaction sa = {.sa_handler = on_alarm};   /* no SA_RESTART */
    ck_assert_int_eq(sigaction(SIGALRM, &sa, NULL), 0);
    struct itimerval every = {.it_interval = {0, 50000},
                              .it_value = {0, 50000}};
    ck_assert_int_eq(setitimer(ITIMER_REAL, &every, NULL), 0);
    int64_t t0 = clock_ms();
    dbconn_connect_many(dsns, 1, "test", 400, conns);
    int64_t took = clock_ms() - t0;
    struct itimerval off = {0};
    setitimer(ITIMER_REAL, &off, NULL);
    ck_assert_int_ge(took, 400);
    ck_assert_ptr_null(conns[0]);
    close(l);
}
END_TEST

static const char *option_of(PGconn *conn, const char *name)
{
    static char value[64];
    value[0] = '\0';
    PQconninfoOption *opts = PQconninfo(conn);
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (strcmp(o->keyword, name) == 0 && o->val)
            snprintf(value, sizeof value, "%s", o->val);
    PQconninfoFree(opts);
    return value;
}

/*
 * A server that takes the connection and never answers holds a blocking
 * connect for good without a connect_timeout: cleave sets one where the
 * DSN says nothing, and the DSN's own wins.
 */
START_TEST(connect_gives_up_on_a_silent_server)
{
    char refused[64];
    snprintf(refused, sizeof refused, "host=127.0.0.1 port=%d dbname=x",
             closed_port());
    PGconn *c = dbconn_connect(refused, "test", DBCONN_PLAIN);
    ck_assert_str_eq(option_of(c, "connect_timeout"), "10");
    PQfinish(c);
    int port, l = silent_listener(&port);
    char hung[96];
    snprintf(hung, sizeof hung, "host=127.0.0.1 port=%d dbname=x "
             "connect_timeout=2", port);
    int64_t t0 = clock_ms();
    c = dbconn_connect(hung, "test", DBCONN_REPLICATION);
    int64_t took = clock_ms() - t0;
    ck_assert_int_eq(PQstatus(c), CONNECTION_BAD);
    ck_assert_str_eq(option_of(c, "connect_timeout"), "2");
    ck_assert_int_lt(took, 3500);
    PQfinish(c);
    close(l);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dbconn");
    TCase *tc = tcase_create("dbconn");
    tcase_add_test(tc, hung_servers_share_one_deadline);
    tcase_add_test(tc, signal_does_not_end_the_wait);
    tcase_add_test(tc, connect_gives_up_on_a_silent_server);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
