/*
 * `cleave status` (PRODUCT.md §2, §4) against a stand-in for the daemon's
 * status socket: a thread that accepts one connection, checks the request
 * line, and writes a canned answer (or none). The real binary runs against
 * it; the unit formatters are tested directly.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "commands/statuscli.h"
#include "tests/support/runcmd.h"

static const char *cleave_bin;

/* The document of PRODUCT.md §4 with status.h's extra fields. */
static const char doc_json[] =
    "{\"name\": \"shop\", \"version\": \"0.1.0\", \"pid\": 4242, "
    "\"uptime_s\": 3725.0,\n"
    " \"source\": {\"slot\": \"cleave_shop\", \"connected\": true, "
    "\"server_lsn\": \"0/3000148\", \"received_lsn\": \"0/3000148\", "
    "\"flushed_lsn\": \"0/3000110\", \"retained_wal_bytes\": 56, "
    "\"wal_status\": \"reserved\", \"safe_wal_bytes\": 12582912, "
    "\"last_error\": null, \"last_error_time\": null},\n"
    " \"services\": [\n"
    "  {\"name\": \"user_service\", \"state\": \"streaming\", \"sinks\": [\n"
    "    {\"kind\": \"postgres\", \"state\": \"streaming\", "
    "\"applied_lsn\": \"0/3000148\", \"lag_bytes\": 0, \"lag_seconds\": 0.0, "
    "\"rows_applied\": 1234, \"txns_applied\": 99, "
    "\"rows_per_second\": 10.5, \"last_error\": null, "
    "\"last_error_time\": null, \"errors\": 0}]},\n"
    "  {\"name\": \"order_service\", \"state\": \"error\", \"sinks\": [\n"
    "    {\"kind\": \"kafka\", \"state\": \"error\", "
    "\"applied_lsn\": \"0/2FF0000\", \"lag_bytes\": 65536, "
    "\"lag_seconds\": 12.3, \"rows_applied\": 99, \"txns_applied\": 9, "
    "\"rows_per_second\": 0.0, \"last_error\": \"every Kafka broker is "
    "down:\\nbroker1:9092 refused the connection, broker2:9092 refused "
    "the connection too\", \"last_error_time\": \"2024-05-01T12:03:04Z\", "
    "\"errors\": 3}]},\n"
    "  {\"name\": \"inventory_service\", \"state\": \"initial_copy\", "
    "\"sinks\": [\n"
    "    {\"kind\": \"postgres\", \"state\": \"initial_copy\", "
    "\"applied_lsn\": \"0/0\", \"lag_bytes\": 12582912, "
    "\"rows_applied\": 0, \"rows_per_second\": 0.0, \"last_error\": null, "
    "\"copy\": {\"tables_done\": 3, \"tables_total\": 14, "
    "\"rows\": 120000}}]}]}\n";

static const char metrics_text[] =
    "# HELP cleave_lag_bytes WAL not yet applied\n"
    "# TYPE cleave_lag_bytes gauge\n"
    "cleave_lag_bytes{service=\"user_service\",sink=\"postgres\"} 0\n";

/* ---- the stand-in server ---- */

typedef enum fake_mode {
    FAKE_ANSWER,    /* writes `answer` and closes */
    FAKE_SILENT,    /* reads the request, never answers, waits for EOF */
} fake_mode;

typedef struct fake_server {
    char dir[48];
    char path[96];
    int listen_fd;
    fake_mode mode;
    const char *answer;
    char request[256];     /* the request line the client sent */
    bool served;
    pthread_t thread;
} fake_server;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool wait_readable(int fd, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return false;
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, (int)left);
        if (r > 0)
            return true;
        if (r == 0 || errno != EINTR)
            return false;
    }
}

/* Reads the request up to its blank line; false at the deadline. */
static bool read_request(fake_server *f, int fd, int64_t deadline)
{
    char buf[1024];
    size_t used = 0;
    while (used + 1 < sizeof buf) {
        if (!wait_readable(fd, deadline))
            return false;
        ssize_t n = read(fd, buf + used, sizeof buf - used - 1);
        if (n <= 0)
            return false;
        used += (size_t)n;
        buf[used] = '\0';
        if (strstr(buf, "\r\n\r\n")) {
            snprintf(f->request, sizeof f->request, "%.*s",
                     (int)strcspn(buf, "\r\n"), buf);
            return true;
        }
    }
    return false;
}

static void *fake_serve(void *arg)
{
    fake_server *f = arg;
    int64_t deadline = now_ms() + 20000;
    if (!wait_readable(f->listen_fd, deadline))
        return NULL;
    int fd = accept(f->listen_fd, NULL, NULL);
    if (fd < 0)
        return NULL;
    if (read_request(f, fd, deadline)) {
        if (f->mode == FAKE_ANSWER) {
            size_t len = strlen(f->answer), off = 0;
            while (off < len) {
                ssize_t n = write(fd, f->answer + off, len - off);
                if (n <= 0)
                    break;
                off += (size_t)n;
            }
        } else {
            char c;
            while (wait_readable(fd, deadline) && read(fd, &c, 1) > 0)
                ;   /* until the client gives up and closes */
        }
        f->served = true;
    }
    close(fd);
    return NULL;
}

static void fake_bind(fake_server *f)
{
    snprintf(f->dir, sizeof f->dir, "/tmp/cleave-status-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/status.sock", f->dir);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", f->path);
    f->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(f->listen_fd, 0);
    ck_assert_int_eq(bind(f->listen_fd, (struct sockaddr *)&sa, sizeof sa),
                     0);
}

static void fake_start(fake_server *f, fake_mode mode, const char *answer)
{
    memset(f, 0, sizeof *f);
    f->mode = mode;
    f->answer = answer;
    fake_bind(f);
    ck_assert_int_eq(listen(f->listen_fd, 4), 0);
    ck_assert_int_eq(pthread_create(&f->thread, NULL, fake_serve, f), 0);
}

/* Joins the thread (it ends by its own deadline) and removes the socket. */
static void fake_stop(fake_server *f)
{
    pthread_join(f->thread, NULL);
    close(f->listen_fd);
    unlink(f->path);
    rmdir(f->dir);
}

static char *http_200(const char *body)
{
    char *s;
    ck_assert_int_ge(asprintf(&s, "HTTP/1.0 200 OK\r\nContent-Type: "
                                  "application/json\r\nContent-Length: %zu"
                                  "\r\n\r\n%s", strlen(body), body), 0);
    return s;
}

/* Runs cleave with up to five arguments; asserts the exit code. */
static rc_result run_cleave(int expect, const char *a1, const char *a2,
                            const char *a3, const char *a4, const char *a5)
{
    char *argv[] = {(char *)cleave_bin, (char *)a1, (char *)a2, (char *)a3,
                    (char *)a4, (char *)a5, NULL};
    rc_result r;
    ck_assert_int_eq(rc_run(argv, &r), 1);
    ck_assert_msg(r.status == expect,
                  "cleave %s %s %s %s: exit %d, expected %d\nstdout: %s\n"
                  "stderr: %s", a1 ? a1 : "", a2 ? a2 : "", a3 ? a3 : "",
                  a4 ? a4 : "", r.status, expect, r.out, r.err);
    return r;
}

/* The line of the table that starts with `service`. */
static const char *table_row(const char *out, const char *service)
{
    size_t n = strlen(service);
    for (const char *p = out; *p;) {
        if (strncmp(p, service, n) == 0 && p[n] == ' ')
            return p;
        const char *eol = strchr(p, '\n');
        if (!eol)
            break;
        p = eol + 1;
    }
    return NULL;
}

static bool row_has(const char *row, const char *text)
{
    const char *eol = strchr(row, '\n');
    const char *hit = strstr(row, text);
    return hit && (!eol || hit < eol);
}

/* ---- formatters ---- */

START_TEST(bytes_in_human_units)
{
    static const struct { uint64_t in; const char *out; } cases[] = {
        {0, "0 B"}, {56, "56 B"}, {1023, "1023 B"}, {1024, "1.0 kB"},
        {1536, "1.5 kB"}, {65536, "64 kB"}, {1048575, "1.0 MB"},
        {12582912, "12 MB"}, {3435973837ULL, "3.2 GB"},
        {5ULL << 50, "5.0 PB"}, {UINT64_MAX, "16384 PB"},
    };
    char buf[32];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_str_eq(statuscli_fmt_bytes(cases[i].in, buf, sizeof buf),
                         cases[i].out);
}
END_TEST

START_TEST(durations_in_human_units)
{
    static const struct { double in; const char *out; } cases[] = {
        {0, "0.0 s"}, {3.21, "3.2 s"}, {59.9, "59.9 s"}, {60, "1 min 0 s"},
        {125, "2 min 5 s"}, {3725, "1 h 2 min"}, {86400 * 3 + 3600 * 4,
        "3 d 4 h"}, {-1, "-"}, {0.0 / 0.0, "-"},
    };
    char buf[32];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_str_eq(statuscli_fmt_duration(cases[i].in, buf, sizeof buf),
                         cases[i].out);
}
END_TEST

START_TEST(counts_with_separators)
{
    static const struct { uint64_t in; const char *out; } cases[] = {
        {0, "0"}, {999, "999"}, {1000, "1,000"}, {120000, "120,000"},
        {1234567, "1,234,567"},
    };
    char buf[32];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_str_eq(statuscli_fmt_count(cases[i].in, buf, sizeof buf),
                         cases[i].out);
}
END_TEST

START_TEST(table_tolerates_missing_fields)
{
    const char *docs[] = {
        "{\"services\": []}",
        "{\"services\": [{\"name\": \"a\"}]}",
        "{\"name\": \"x\", \"source\": {\"server_lsn\": null, "
        "\"retained_wal_bytes\": null}, \"services\": [{\"name\": \"a\", "
        "\"sinks\": [{}]}]}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        char *text = NULL, err[256];
        size_t len = 0;
        FILE *out = open_memstream(&text, &len);
        ck_assert_msg(statuscli_print_table(docs[i], strlen(docs[i]), out,
                                            err, sizeof err), "%s", err);
        fclose(out);
        ck_assert_ptr_nonnull(strstr(text, "SERVICE"));
        ck_assert_msg(strncmp(text, i == 2 ? "cleave x\n" : "cleave (unnamed)\n",
                              i == 2 ? 9 : 17) == 0, "%s", text);
        if (i == 2)
            ck_assert_ptr_nonnull(strstr(text, "server unknown"));
        free(text);
    }
    const char *bad[] = {"", "[1]", "{\"name\": \"x\"}", "{\"services\": 3}",
                         "not json"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256];
        ck_assert(!statuscli_print_table(bad[i], strlen(bad[i]), stdout, err,
                                         sizeof err));
    }
}
END_TEST

/* The table's text for a document with this source object. */
static char *table_of_source(const char *source)
{
    char doc[2048], *text = NULL, err[256];
    size_t len = 0;
    snprintf(doc, sizeof doc, "{\"name\": \"x\", \"source\": %s, "
             "\"services\": []}", source);
    FILE *out = open_memstream(&text, &len);
    ck_assert_msg(statuscli_print_table(doc, strlen(doc), out, err,
                                        sizeof err), "%s", err);
    fclose(out);
    return text;
}

/* The slot's wal_status and safe size on the source line; the source's
 * error whole, on a line of its own (its recovery advice is long). */
START_TEST(table_shows_the_slot_state)
{
    char *t = table_of_source("{\"slot\": \"s\", \"connected\": false, "
        "\"retained_wal_bytes\": null, \"wal_status\": \"lost\", "
        "\"safe_wal_bytes\": null, \"last_error\": \"the source invalidated "
        "slot s (wal_removed): the changes since cleave last read it are gone;"
        "\\n To recover: stop cleave, run `cleave drop`, empty the owned "
        "tables in every target, start cleave again\", "
        "\"last_error_time\": \"2023-11-14T22:13:20Z\"}");
    ck_assert_msg(strstr(t, "retained unknown  wal lost\n"), "%s", t);
    ck_assert_msg(strstr(t, "\nsource  error: the source invalidated slot s "
                            "(wal_removed): the changes since cleave last "
                            "read it are gone;  To recover: stop cleave, run "
                            "`cleave drop`, empty the owned tables in every "
                            "target, start cleave again (since 2023-11-14 "), "%s", t);
    free(t);
    t = table_of_source("{\"slot\": \"s\", \"connected\": true, "
        "\"wal_status\": \"reserved\", \"safe_wal_bytes\": null, "
        "\"last_error\": \"connection lost\", "
        "\"last_error_time\": \"2023-11-14T22:13:20Z\"}");
    ck_assert_msg(strstr(t, "  wal reserved  safe no limit\n"), "%s", t);
    ck_assert_msg(strstr(t, "\nsource  last error: connection lost (at "), "%s",
                  t);
    free(t);
    t = table_of_source("{\"slot\": \"s\", \"connected\": true, "
                        "\"wal_status\": \"unreserved\", "
                        "\"safe_wal_bytes\": -4096}");
    ck_assert_msg(strstr(t, "  wal unreserved  safe 0 B\n"), "%s", t);
    ck_assert_msg(!strstr(t, "error"), "%s", t);
    free(t);
    /* A server older than 13 has neither. */
    t = table_of_source("{\"slot\": \"s\", \"connected\": true, "
                        "\"retained_wal_bytes\": 56, \"wal_status\": null, "
                        "\"safe_wal_bytes\": null}");
    ck_assert_msg(strstr(t, "retained 56 B\n"), "%s", t);
    free(t);
}
END_TEST

/* ---- the binary against the stand-in ---- */

START_TEST(table_shows_every_sink)
{
    fake_server f;
    char *answer = http_200(doc_json);
    fake_start(&f, FAKE_ANSWER, answer);
    rc_result r = run_cleave(0, "status", "-s", f.path, NULL, NULL);
    fake_stop(&f);
    ck_assert_str_eq(f.request, "GET /status HTTP/1.0");
    const char *o = r.out;
    ck_assert_msg(strncmp(o, "cleave shop (pid 4242, up 1 h 2 min), "
                             "version 0.1.0\n", 50) == 0, "%s", o);
    ck_assert_msg(strstr(o, "slot cleave_shop  connected  server 0/3000148  "
                            "received 0/3000148  flushed 0/3000110  "
                            "retained 56 B  wal reserved  safe 12 MB\n"),
                  "%s", o);
    ck_assert_msg(!strstr(o, "error: the"), "%s", o);
    const char *hdr = strstr(o, "SERVICE ");
    ck_assert_ptr_nonnull(hdr);
    const char *u = table_row(o, "user_service"),
               *k = table_row(o, "order_service"),
               *c = table_row(o, "inventory_service");
    ck_assert_msg(u && k && c, "%s", o);
    ck_assert(row_has(u, "postgres") && row_has(u, "streaming") &&
              row_has(u, "0 B") && row_has(u, "0.0 s") &&
              row_has(u, "10.5") && row_has(u, "1,234"));
    ck_assert(row_has(k, "kafka") && row_has(k, "error") &&
              row_has(k, "64 kB") && row_has(k, "12.3 s") &&
              row_has(k, "every Kafka broker is down: broker1:9092"));
    ck_assert_msg(row_has(k, "...") && row_has(k, "(since "), "%s", k);
    ck_assert(row_has(c, "initial_copy") && row_has(c, "12 MB") &&
              row_has(c, "copying 3/14 tables, 120,000 rows"));
    /* Aligned: every column starts where its header does. */
    size_t lag_col = (size_t)(strstr(hdr, "LAG ") - hdr);
    ck_assert_msg(strncmp(u + lag_col, "0 B ", 4) == 0 &&
                  strncmp(k + lag_col, "64 kB ", 6) == 0 &&
                  strncmp(c + lag_col, "12 MB ", 6) == 0, "%s", o);
    rc_free(&r);
    free(answer);
}
END_TEST

START_TEST(json_and_metrics_are_byte_exact)
{
    fake_server f;
    char *answer = http_200(doc_json);
    fake_start(&f, FAKE_ANSWER, answer);
    rc_result r = run_cleave(0, "status", "-s", f.path, "--json", NULL);
    fake_stop(&f);
    ck_assert_str_eq(f.request, "GET /status HTTP/1.0");
    ck_assert_str_eq(r.out, doc_json);
    rc_free(&r);
    free(answer);

    answer = http_200(metrics_text);
    fake_start(&f, FAKE_ANSWER, answer);
    r = run_cleave(0, "status", "--metrics", "-s", f.path, NULL);
    fake_stop(&f);
    ck_assert_str_eq(f.request, "GET /metrics HTTP/1.0");
    ck_assert_str_eq(r.out, metrics_text);
    rc_free(&r);
    free(answer);

    /* A body without its final newline gets one. */
    fake_start(&f, FAKE_ANSWER, "HTTP/1.0 200 OK\r\n\r\n{\"services\": []}");
    r = run_cleave(0, "status", "--json", "-s", f.path, NULL);
    fake_stop(&f);
    ck_assert_str_eq(r.out, "{\"services\": []}\n");
    rc_free(&r);
}
END_TEST

START_TEST(nothing_running_exits_1)
{
    rc_result r = run_cleave(1, "status", "-s", "/nonexistent/status.sock",
                             NULL, NULL);
    ck_assert_str_eq(r.err, "cleave status: no cleave is running on "
                            "/nonexistent/status.sock (no such file)\n");
    ck_assert_str_eq(r.out, "");
    rc_free(&r);

    /* A socket left behind by a daemon that died: bound, nobody listens. */
    fake_server f;
    memset(&f, 0, sizeof f);
    fake_bind(&f);
    close(f.listen_fd);
    r = run_cleave(1, "status", "-s", f.path, NULL, NULL);
    char want[256];
    snprintf(want, sizeof want, "cleave status: no cleave is running on %s "
             "(connection refused)\n", f.path);
    ck_assert_str_eq(r.err, want);
    rc_free(&r);
    unlink(f.path);
    rmdir(f.dir);
}
END_TEST

START_TEST(silent_daemon_times_out)
{
    fake_server f;
    fake_start(&f, FAKE_SILENT, NULL);
    int64_t start = now_ms();
    rc_result r = run_cleave(1, "status", "-s", f.path, NULL, NULL);
    int64_t took = now_ms() - start;
    fake_stop(&f);
    ck_assert(f.served);
    ck_assert_msg(took >= STATUSCLI_TIMEOUT_MS - 500 &&
                  took < STATUSCLI_TIMEOUT_MS + 5000, "took %lld ms",
                  (long long)took);
    ck_assert_msg(strstr(r.err, "no answer from") &&
                  strstr(r.err, "within 5 s"), "%s", r.err);
    rc_free(&r);
}
END_TEST

START_TEST(bad_answers_exit_1)
{
    static const struct { const char *answer, *err; } cases[] = {
        {"HTTP/1.0 404 Not Found\r\n\r\nno such page\n",
         "answered \"HTTP/1.0 404 Not Found\""},
        {"SSH-2.0-OpenSSH\r\n", "malformed answer"},
        {"", "closed the connection without answering"},
        {"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n",
         "no end of headers"},
        {"HTTP/1.0 200 OK\r\nContent-Length: 100\r\n\r\n{\"services\":[]}",
         "Content-Length"},
        {"HTTP/1.0 200 OK\r\n\r\n{\"services\": [", "not JSON"},
        {"HTTP/1.0 200 OK\r\n\r\n{\"name\": \"shop\"}", "no services"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fake_server f;
        fake_start(&f, FAKE_ANSWER, cases[i].answer);
        rc_result r = run_cleave(1, "status", "-s", f.path, NULL, NULL);
        fake_stop(&f);
        ck_assert_msg(strncmp(r.err, "cleave status: ", 15) == 0 &&
                      strstr(r.err, cases[i].err),
                      "case %zu: %s", i, r.err);
        ck_assert_str_eq(r.out, "");
        rc_free(&r);
    }
}
END_TEST

START_TEST(usage_errors_exit_2)
{
    rc_result r = run_cleave(2, "status", "--json", "--metrics", NULL, NULL);
    ck_assert_ptr_nonnull(strstr(r.err, "exclude each other"));
    rc_free(&r);
    r = run_cleave(2, "status", "-c", "x.yaml", "-s", "x.sock");
    ck_assert_ptr_nonnull(strstr(r.err, "-c and -s exclude each other"));
    rc_free(&r);
    r = run_cleave(2, "status", "extra", NULL, NULL, NULL);
    rc_free(&r);
}
END_TEST

/* Writes the example configuration with status_socket set to sock. */
static void write_config(const char *path, const char *sock)
{
    char example[1024];
    snprintf(example, sizeof example, "%s/config/examples/shop.yaml",
             getenv("CLEAVE_SRCDIR") ? getenv("CLEAVE_SRCDIR") : ".");
    FILE *in = fopen(example, "r"), *out = fopen(path, "w");
    ck_assert(in && out);
    char line[4096];
    bool replaced = false;
    while (fgets(line, sizeof line, in)) {
        if (strncmp(line, "status_socket:", 14) == 0) {
            fprintf(out, "status_socket: %s\n", sock);
            replaced = true;
        } else {
            fputs(line, out);
        }
    }
    ck_assert(replaced);
    fclose(in);
    fclose(out);
}

START_TEST(socket_from_config)
{
    fake_server f;
    char *answer = http_200(doc_json);
    fake_start(&f, FAKE_ANSWER, answer);
    char conf[192];
    snprintf(conf, sizeof conf, "%s/cleave.yaml", f.dir);
    write_config(conf, f.path);
    rc_result r = run_cleave(0, "status", "-c", conf, "--json", NULL);
    fake_stop(&f);   /* removes the directory only once the file is gone */
    ck_assert_str_eq(r.out, doc_json);
    rc_free(&r);
    free(answer);
    unlink(conf);
    rmdir(f.dir);

    char bad[1024];
    snprintf(bad, sizeof bad, "%s/tests/cli/bad-unknown-key.yaml",
             getenv("CLEAVE_SRCDIR"));
    r = run_cleave(78, "status", "-c", bad, NULL, NULL);
    ck_assert_ptr_nonnull(strstr(r.err, "unknown key 'slott'"));
    rc_free(&r);
}
END_TEST

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_status PATH-TO-CLEAVE\n");
        return 2;
    }
    cleave_bin = argv[1];
    Suite *s = suite_create("status");
    TCase *units = tcase_create("units");
    tcase_add_test(units, bytes_in_human_units);
    tcase_add_test(units, durations_in_human_units);
    tcase_add_test(units, counts_with_separators);
    tcase_add_test(units, table_tolerates_missing_fields);
    tcase_add_test(units, table_shows_the_slot_state);
    suite_add_tcase(s, units);
    TCase *cli = tcase_create("cli");
    tcase_set_timeout(cli, 60);   /* the silent daemon costs 5 s */
    tcase_add_test(cli, table_shows_every_sink);
    tcase_add_test(cli, json_and_metrics_are_byte_exact);
    tcase_add_test(cli, nothing_running_exits_1);
    tcase_add_test(cli, silent_daemon_times_out);
    tcase_add_test(cli, bad_answers_exit_1);
    tcase_add_test(cli, usage_errors_exit_2);
    tcase_add_test(cli, socket_from_config);
    suite_add_tcase(s, cli);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
