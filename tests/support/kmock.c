/*
 * cleave-kmock: librdkafka's mock Kafka cluster in a process of its own,
 * driven over stdin/stdout, for tests.
 *
 *   cleave-kmock [--brokers N] [--partitions P]
 *
 * Prints "bootstrap <host:port,...>", then answers each command line with
 * "ok" or "error <reason>":
 *
 *   down <broker> | up <broker>        refuse / accept connections again
 *   rtt <broker> <ms>                  delay every response
 *   errors <apikey> <count> <err>...   fail the next <count> requests
 *                                      (codes by number or name)
 *   topic <name> [<partitions>]        create a topic (default P)
 *   topic_error <name> <error>         the topic's metadata carries error
 *                                      (e.g. TOPIC_AUTHORIZATION_FAILED)
 *   leader <topic> <partition> <broker>
 *   quit                               (or EOF) destroy and exit 0
 *
 * A separate process so a test can take brokers down or make them fail
 * while its own librdkafka handles ride it out, and so a crashed test
 * cannot leave the cluster's threads inside it. It dies with its parent.
 *
 * librdkafka 2.0.2 has no way to set the partition count of auto-created
 * topics (the mock hardcodes 4), so P only applies to "topic" without a
 * count; create topics up front when the count matters.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define KMOCK_MAX_ERRORS 64

typedef struct kmock_opts {
    int brokers;
    int partitions;
} kmock_opts;

static bool kmock_parse_int(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static bool kmock_parse_args(int argc, char **argv, kmock_opts *o)
{
    *o = (kmock_opts){.brokers = 3, .partitions = 3};
    for (int i = 1; i < argc; i++) {
        long v;
        if (i + 1 >= argc || !kmock_parse_int(argv[i + 1], 1, 1000, &v))
            return false;
        if (strcmp(argv[i], "--brokers") == 0)
            o->brokers = (int)v;
        else if (strcmp(argv[i], "--partitions") == 0)
            o->partitions = (int)v;
        else
            return false;
        i++;
    }
    return true;
}

/* An error code by number (6) or by name (NOT_LEADER_FOR_PARTITION). */
static bool kmock_parse_err(const char *s, rd_kafka_resp_err_t *out)
{
    long v;
    if (kmock_parse_int(s, -200, 200, &v)) {
        *out = (rd_kafka_resp_err_t)v;
        return true;
    }
    const struct rd_kafka_err_desc *descs;
    size_t n;
    rd_kafka_get_err_descs(&descs, &n);
    for (size_t i = 0; i < n; i++)
        if (descs[i].name && strcmp(descs[i].name, s) == 0) {
            *out = descs[i].code;
            return true;
        }
    return false;
}

static int kmock_split(char *line, char **tok, int max)
{
    int n = 0;
    for (char *save, *t = strtok_r(line, " \t\r\n", &save); t && n < max;
         t = strtok_r(NULL, " \t\r\n", &save))
        tok[n++] = t;
    return n;
}

static void kmock_reply(rd_kafka_resp_err_t err, const char *usage)
{
    if (usage)
        printf("error usage: %s\n", usage);
    else if (err)
        printf("error %s\n", rd_kafka_err2name(err));
    else
        printf("ok\n");
    fflush(stdout);
}

static void kmock_errors(rd_kafka_mock_cluster_t *mc, char **tok, int n)
{
    const char *usage = "errors <apikey> <count> <error>...";
    long key, cnt;
    rd_kafka_resp_err_t errs[KMOCK_MAX_ERRORS];
    if (n < 4 || !kmock_parse_int(tok[1], 0, 32767, &key) ||
        !kmock_parse_int(tok[2], 1, KMOCK_MAX_ERRORS, &cnt) ||
        n - 3 != cnt) {
        kmock_reply(0, usage);
        return;
    }
    for (int i = 0; i < cnt; i++)
        if (!kmock_parse_err(tok[3 + i], &errs[i])) {
            kmock_reply(0, usage);
            return;
        }
    rd_kafka_mock_push_request_errors_array(mc, (int16_t)key, (size_t)cnt,
                                            errs);
    kmock_reply(0, NULL);
}

static void kmock_topic(rd_kafka_mock_cluster_t *mc, const kmock_opts *o,
                        char **tok, int n)
{
    long parts = o->partitions;
    if ((n != 2 && n != 3) ||
        (n == 3 && !kmock_parse_int(tok[2], 1, 10000, &parts))) {
        kmock_reply(0, "topic <name> [<partitions>]");
        return;
    }
    int rf = o->brokers < 3 ? o->brokers : 3;
    kmock_reply(rd_kafka_mock_topic_create(mc, tok[1], (int)parts, rf), NULL);
}

static void kmock_topic_error(rd_kafka_mock_cluster_t *mc, char **tok, int n)
{
    rd_kafka_resp_err_t err;
    if (n != 3 || !kmock_parse_err(tok[2], &err)) {
        kmock_reply(0, "topic_error <name> <error>");
        return;
    }
    rd_kafka_mock_topic_set_error(mc, tok[1], err);
    kmock_reply(0, NULL);
}

static void kmock_leader(rd_kafka_mock_cluster_t *mc, char **tok, int n)
{
    long part, broker;
    if (n != 4 || !kmock_parse_int(tok[2], 0, 10000, &part) ||
        !kmock_parse_int(tok[3], -1, 10000, &broker)) {
        kmock_reply(0, "leader <topic> <partition> <broker>");
        return;
    }
    kmock_reply(rd_kafka_mock_partition_set_leader(mc, tok[1], (int32_t)part,
                                                   (int32_t)broker),
                NULL);
}

static void kmock_broker(rd_kafka_mock_cluster_t *mc, char **tok, int n)
{
    long id, ms = 0;
    bool rtt = strcmp(tok[0], "rtt") == 0;
    if (n != (rtt ? 3 : 2) || !kmock_parse_int(tok[1], -1, 10000, &id) ||
        (rtt && !kmock_parse_int(tok[2], 0, 3600000, &ms))) {
        kmock_reply(0, rtt ? "rtt <broker> <ms>" : "down|up <broker>");
        return;
    }
    rd_kafka_resp_err_t err;
    if (rtt)
        err = rd_kafka_mock_broker_set_rtt(mc, (int32_t)id, (int)ms);
    else if (strcmp(tok[0], "down") == 0)
        err = rd_kafka_mock_broker_set_down(mc, (int32_t)id);
    else
        err = rd_kafka_mock_broker_set_up(mc, (int32_t)id);
    kmock_reply(err, NULL);
}

/* Serves commands until quit or EOF. */
static void kmock_serve(rd_kafka_mock_cluster_t *mc, const kmock_opts *o)
{
    char line[4096];
    char *tok[3 + KMOCK_MAX_ERRORS + 1];
    while (fgets(line, sizeof line, stdin)) {
        int n = kmock_split(line, tok, (int)(sizeof tok / sizeof *tok));
        if (n == 0)
            kmock_reply(0, "empty command");
        else if (strcmp(tok[0], "quit") == 0)
            return;
        else if (strcmp(tok[0], "down") == 0 || strcmp(tok[0], "up") == 0 ||
                 strcmp(tok[0], "rtt") == 0)
            kmock_broker(mc, tok, n);
        else if (strcmp(tok[0], "errors") == 0)
            kmock_errors(mc, tok, n);
        else if (strcmp(tok[0], "topic") == 0)
            kmock_topic(mc, o, tok, n);
        else if (strcmp(tok[0], "topic_error") == 0)
            kmock_topic_error(mc, tok, n);
        else if (strcmp(tok[0], "leader") == 0)
            kmock_leader(mc, tok, n);
        else
            kmock_reply(0, "down|up|rtt|errors|topic|topic_error|leader|quit");
    }
}

int main(int argc, char **argv)
{
    kmock_opts o;
    if (!kmock_parse_args(argc, argv, &o)) {
        fprintf(stderr, "usage: cleave-kmock [--brokers N] [--partitions P]\n");
        return 2;
    }
    /*
     * Also set by kt_mock_start before the exec, where it cannot miss the
     * parent; here for a mock started some other way. Orphaned in between:
     * the parent's death went unseen.
     */
    pid_t parent = getppid();
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        return 1;

    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* Only hosts the cluster: its notice of no bootstrap.servers is noise. */
    rd_kafka_conf_set(conf, "log_level", "4", errstr, sizeof errstr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr,
                                  sizeof errstr);
    if (!rk) {
        fprintf(stderr, "cleave-kmock: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, o.brokers);
    if (!mc) {
        fprintf(stderr, "cleave-kmock: cannot create the mock cluster\n");
        rd_kafka_destroy(rk);
        return 1;
    }
    printf("bootstrap %s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);
    kmock_serve(mc, &o);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    printf("ok\n");
    fflush(stdout);
    return 0;
}
