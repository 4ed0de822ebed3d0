/*
 * statuscli: `cleave status`, the client of the status socket.
 *
 * One request per connection (daemon/status.h's wire format): connect,
 * write `GET /status HTTP/1.0` (or /metrics), read until the server
 * closes, check the status line is 200, split off the body. Connecting,
 * writing and reading share one deadline (STATUSCLI_TIMEOUT_MS), so a
 * daemon that accepts and never answers costs five seconds, not forever.
 *
 * The table, for a person at a terminal:
 *
 *   cleave shop (pid 4242, up 1 h 2 min), version 0.1.0
 *   source  slot cleave_shop  connected  server 0/3000148  received ...
 *   (the source line ends with the slot's retained WAL, its wal_status
 *   and safe size where the server has them; the source's last error,
 *   whole, follows on a line of its own)
 *
 *   SERVICE        SINK      STATE         APPLIED LSN  LAG    LAG TIME ...
 *   user_service   postgres  streaming     0/3000148    0 B    0.0 s    ...
 *   order_service  kafka     error         0/2FF0000    64 kB  12.3 s   ...
 *
 * Columns: SERVICE, SINK, STATE, APPLIED LSN, LAG, LAG TIME, ROWS/S, ROWS,
 * ERRORS, DETAIL; one row per sink, the service named on every row so the
 * output greps. Widths fit the widest cell; the last column is not padded.
 * LAG is in B/kB/MB/GB (1024-based, one decimal below 10), LAG TIME in
 * seconds below a minute, then min/s, h/min, d/h. ROWS and ERRORS have
 * thousands separators. DETAIL is the error of a sink in `error` (cut to
 * 60 characters with "...", control characters blanked, "(since T)" with
 * T the local time, or date and time when not today), else the copy's
 * progress during initial_copy, else a past error as "last error: ...".
 * A field the daemon did not send prints as "-".
 */
#include "commands/statuscli.h"
#include "common/clock.h"
#include "common/exitcode.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define ERROR_WIDTH 60   /* characters of an error shown in DETAIL */
#define CELL_MAX 320

/* ---- the request ---- */

/* 1 when fd is ready for events, 0 at the deadline, -1 on error. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - clock_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {fd, events, 0};
        int r = poll(&p, 1, (int)left);
        if (r > 0)
            return 1;
        if (r == 0)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/*
 * SO_SNDTIMEO bounds connect() itself: on a Unix socket it waits while
 * the listener's backlog is full.
 */
int statuscli_connect(const char *path, int timeout_ms, char *err,
                      size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        set_err(err, errlen, "socket path too long: %s", path);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        set_err(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        if (e == ENOENT || e == ECONNREFUSED)
            set_err(err, errlen, "no cleave is running on %s (%s)", path,
                    e == ENOENT ? "no such file" : "connection refused");
        else if (e == EAGAIN || e == EINPROGRESS || e == ETIMEDOUT)
            set_err(err, errlen, "no answer from %s within %d s", path,
                    timeout_ms / 1000);
        else
            set_err(err, errlen, "cannot connect to %s: %s", path,
                    strerror(e));
        close(fd);
        errno = e;
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static bool send_all(int fd, const char *buf, size_t len, int64_t deadline)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (wait_fd(fd, POLLOUT, deadline) != 1) {
                errno = ETIMEDOUT;
                return false;
            }
        } else {
            return false;
        }
    }
    return true;
}

/* Reads until the server closes; the answer malloc'd and NUL-terminated. */
static char *recv_all(int fd, int64_t deadline, size_t *len, const char *path,
                      int timeout_ms, char *err, size_t errlen)
{
    size_t cap = 4096, used = 0;
    char *buf = malloc(cap);
    if (!buf) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    for (;;) {
        if (cap - used < 2) {
            if (cap >= STATUSCLI_MAX_ANSWER) {
                set_err(err, errlen, "answer from %s larger than %u bytes",
                        path, STATUSCLI_MAX_ANSWER);
                break;
            }
            char *grown = realloc(buf, cap * 2);
            if (!grown) {
                set_err(err, errlen, "out of memory");
                break;
            }
            buf = grown;
            cap *= 2;
        }
        ssize_t n = recv(fd, buf + used, cap - used - 1, 0);
        if (n == 0) {
            buf[used] = '\0';
            *len = used;
            return buf;
        }
        if (n > 0) {
            used += (size_t)n;
            continue;
        }
        if (errno != EAGAIN && errno != EINTR) {
            set_err(err, errlen, "reading from %s: %s", path,
                    strerror(errno));
            break;
        }
        if (wait_fd(fd, POLLIN, deadline) != 1) {
            set_err(err, errlen, "%s from %s within %d s",
                    used ? "no complete answer" : "no answer", path,
                    timeout_ms / 1000);
            break;
        }
    }
    free(buf);
    return NULL;
}

/* Copies at most 80 printable bytes of a line, for messages. */
static void printable_line(const char *s, size_t len, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < len && s[i] != '\r' && s[i] != '\n' && i < 80 &&
                       o + 1 < outlen; i++)
        out[o++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    out[o] = '\0';
}

/* The value of Content-Length among the headers, or -1 when absent. */
static long long content_length(const char *hdr, const char *end)
{
    static const char name[] = "content-length:";
    for (const char *p = hdr; p < end;) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        if ((size_t)(eol - p) > sizeof name - 1 &&
            strncasecmp(p, name, sizeof name - 1) == 0) {
            char *stop;
            long long v = strtoll(p + sizeof name - 1, &stop, 10);
            return (stop == p + sizeof name - 1 || v < 0) ? -2 : v;
        }
        p = eol + 1;
    }
    return -1;
}

/*
 * Checks an HTTP/1.x answer is 200 and moves its body to the start of
 * buf; false with err otherwise.
 */
static bool split_answer(char *buf, size_t *len, const char *path,
                         char *err, size_t errlen)
{
    char line[96];
    if (*len == 0) {
        set_err(err, errlen, "%s closed the connection without answering",
                path);
        return false;
    }
    printable_line(buf, *len, line, sizeof line);
    int code = 0;
    if (*len < 12 || strncmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ' ||
        sscanf(buf + 9, "%3d", &code) != 1 || code < 100) {
        set_err(err, errlen, "malformed answer from %s: \"%s\"", path, line);
        return false;
    }
    if (code != 200) {
        set_err(err, errlen, "%s answered \"%s\"", path, line);
        return false;
    }
    char *crlf = strstr(buf, "\r\n\r\n"), *lf = strstr(buf, "\n\n");
    char *body = crlf && (!lf || crlf < lf) ? crlf + 4 : lf ? lf + 2 : NULL;
    if (!body) {
        set_err(err, errlen, "malformed answer from %s: no end of headers",
                path);
        return false;
    }
    size_t blen = *len - (size_t)(body - buf);
    long long want = content_length(buf, body);
    if (want == -2 || (want >= 0 && (size_t)want != blen)) {
        set_err(err, errlen, "malformed answer from %s: %zu bytes of body, "
                "Content-Length says otherwise", path, blen);
        return false;
    }
    memmove(buf, body, blen);
    buf[blen] = '\0';
    *len = blen;
    return true;
}

char *statuscli_fetch(const char *path, const char *target, int timeout_ms,
                      size_t *len, char *err, size_t errlen)
{
    int64_t deadline = clock_ms() + timeout_ms;
    int fd = statuscli_connect(path, timeout_ms, err, errlen);
    if (fd < 0)
        return NULL;
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\n\r\n", target);
    char *buf = NULL;
    if (n < 0 || (size_t)n >= sizeof req)
        set_err(err, errlen, "request target too long");
    else if (!send_all(fd, req, (size_t)n, deadline))
        set_err(err, errlen, "cannot send the request to %s: %s", path,
                strerror(errno));
    else
        buf = recv_all(fd, deadline, len, path, timeout_ms, err, errlen);
    close(fd);
    if (buf && !split_answer(buf, len, path, err, errlen)) {
        free(buf);
        buf = NULL;
    }
    return buf;
}

/* ---- units ---- */

char *statuscli_fmt_bytes(uint64_t bytes, char *buf, size_t buflen)
{
    static const char *const units[] = {"kB", "MB", "GB", "TB", "PB"};
    if (bytes < 1024) {
        snprintf(buf, buflen, "%" PRIu64 " B", bytes);
        return buf;
    }
    double v = (double)bytes / 1024;
    size_t u = 0;
    while (v >= 1023.5 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024;
        u++;
    }
    snprintf(buf, buflen, v < 9.95 ? "%.1f %s" : "%.0f %s", v, units[u]);
    return buf;
}

char *statuscli_fmt_duration(double s, char *buf, size_t buflen)
{
    if (!(s >= 0) || s > 1e12) {   /* negative, NaN, absurd */
        snprintf(buf, buflen, "-");
        return buf;
    }
    uint64_t t = (uint64_t)s;
    if (s < 59.95)
        snprintf(buf, buflen, "%.1f s", s);
    else if (t < 3600)
        snprintf(buf, buflen, "%" PRIu64 " min %" PRIu64 " s", t / 60,
                 t % 60);
    else if (t < 86400)
        snprintf(buf, buflen, "%" PRIu64 " h %" PRIu64 " min", t / 3600,
                 t % 3600 / 60);
    else
        snprintf(buf, buflen, "%" PRIu64 " d %" PRIu64 " h", t / 86400,
                 t % 86400 / 3600);
    return buf;
}

char *statuscli_fmt_count(uint64_t n, char *buf, size_t buflen)
{
    char digits[24];
    int nd = snprintf(digits, sizeof digits, "%" PRIu64, n);
    size_t o = 0;
    for (int i = 0; i < nd && o + 2 < buflen; i++) {
        if (i > 0 && (nd - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

/* ---- the document ---- */

static const char *jstr(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static bool jnum(const json_t *o, const char *key, double *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_number(v))
        return false;
    *out = json_number_value(v);
    return true;
}

static bool jcount(const json_t *o, const char *key, uint64_t *out)
{
    double d;
    if (!jnum(o, key, &d) || !(d >= 0) || d > 1.8e19)
        return false;
    json_t *v = json_object_get(o, key);
    *out = json_is_integer(v) ? (uint64_t)json_integer_value(v) : (uint64_t)d;
    return true;
}

static void cell_str(char *cell, const json_t *o, const char *key)
{
    const char *s = jstr(o, key);
    snprintf(cell, CELL_MAX, "%s", s && *s ? s : "-");
}

static void cell_count(char *cell, const json_t *o, const char *key)
{
    uint64_t n;
    if (jcount(o, key, &n))
        statuscli_fmt_count(n, cell, CELL_MAX);
    else
        snprintf(cell, CELL_MAX, "-");
}

/* Characters, not bytes, so UTF-8 in a name does not skew the columns. */
static size_t text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            w++;
    return w;
}

/*
 * An error on one line: control characters blanked, runs of blanks
 * squeezed, cut to ERROR_WIDTH characters with "..." (never inside a
 * UTF-8 sequence).
 */
static void one_line_error(const char *s, char *out, size_t outlen)
{
    size_t o = 0, chars = 0, cut = 0, cut_at = 0;
    bool blank = true;   /* drops leading blanks too */
    for (; *s && o + 4 < outlen; s++) {
        unsigned char c = (unsigned char)*s;
        bool space = c < 0x20 || c == 0x7f || c == ' ';
        if (space && blank)
            continue;
        blank = space;
        if ((c & 0xC0) != 0x80) {
            if (chars == ERROR_WIDTH - 3)
                cut_at = o;
            if (chars == ERROR_WIDTH) {
                cut = 1;
                break;
            }
            chars++;
        }
        out[o++] = space ? ' ' : (char)c;
    }
    if (cut || (*s && o + 4 >= outlen)) {
        o = cut_at ? cut_at : o;
        while (o > 0 && out[o - 1] == ' ')
            o--;
        memcpy(out + o, "...", 3);
        o += 3;
    }
    while (o > 0 && out[o - 1] == ' ')
        o--;
    out[o] = '\0';
}

/*
 * "12:03:04" for an ISO 8601 time today (local time), else "2024-05-01
 * 12:03"; the text as given when it does not parse.
 */
static void short_time(const char *iso, char *out, size_t outlen)
{
    struct tm tm = {0};
    int used = 0;
    if (sscanf(iso, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon,
               &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec,
               &used) != 6) {
        snprintf(out, outlen, "%.32s", iso);
        return;
    }
    const char *p = iso + used;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++)
            ;
    long offset = 0;
    int oh, om;
    if ((*p == '+' || *p == '-') && sscanf(p + 1, "%2d:%2d", &oh, &om) == 2)
        offset = (*p == '+' ? 1 : -1) * (oh * 3600L + om * 60L);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm) - offset, now = time(NULL);
    struct tm lt, ln;
    localtime_r(&t, &lt);
    localtime_r(&now, &ln);
    if (lt.tm_year == ln.tm_year && lt.tm_yday == ln.tm_yday)
        strftime(out, outlen, "%H:%M:%S", &lt);
    else
        strftime(out, outlen, "%Y-%m-%d %H:%M", &lt);
}

static void detail_cell(char *cell, const json_t *sink)
{
    const char *state = jstr(sink, "state");
    const char *error = jstr(sink, "last_error");
    const json_t *copy = json_object_get(sink, "copy");
    bool failing = state && strcmp(state, "error") == 0;
    if (error && *error && (failing || !json_is_object(copy))) {
        char text[ERROR_WIDTH * 4 + 8], since[48] = "";
        one_line_error(error, text, sizeof text);
        const char *when = jstr(sink, "last_error_time");
        if (when)
            short_time(when, since, sizeof since);
        snprintf(cell, CELL_MAX, "%s%s%s%s%s", failing ? "" : "last error: ",
                 text, *since ? " (since " : "", since, *since ? ")" : "");
    } else if (json_is_object(copy)) {
        /* CELL_MAX each: cell_count writes that bound (a smaller buffer
         * aborts under _FORTIFY_SOURCE, as Debian's packages build). */
        char done[CELL_MAX] = "?", total[CELL_MAX] = "?";
        char rows[CELL_MAX] = "?";
        cell_count(done, copy, "tables_done");
        cell_count(total, copy, "tables_total");
        cell_count(rows, copy, "rows");
        snprintf(cell, CELL_MAX, "copying %s/%s tables, %s rows", done,
                 total, rows);
    } else {
        snprintf(cell, CELL_MAX, "-");
    }
}

enum {
    COL_SERVICE, COL_SINK, COL_STATE, COL_LSN, COL_LAG, COL_LAG_TIME,
    COL_RATE, COL_ROWS, COL_ERRORS, COL_DETAIL, NCOLS
};

static const char *const headers[NCOLS] = {
    "SERVICE", "SINK", "STATE", "APPLIED LSN", "LAG", "LAG TIME", "ROWS/S",
    "ROWS", "ERRORS", "DETAIL",
};

typedef struct row {
    char cell[NCOLS][CELL_MAX];
} row;

static void fill_row(row *r, const char *service, const json_t *sink)
{
    double d;
    uint64_t n;
    snprintf(r->cell[COL_SERVICE], CELL_MAX, "%s", service);
    cell_str(r->cell[COL_SINK], sink, "kind");
    cell_str(r->cell[COL_STATE], sink, "state");
    cell_str(r->cell[COL_LSN], sink, "applied_lsn");
    if (jcount(sink, "lag_bytes", &n))
        statuscli_fmt_bytes(n, r->cell[COL_LAG], CELL_MAX);
    else
        snprintf(r->cell[COL_LAG], CELL_MAX, "-");
    if (jnum(sink, "lag_seconds", &d))
        statuscli_fmt_duration(d, r->cell[COL_LAG_TIME], CELL_MAX);
    else
        snprintf(r->cell[COL_LAG_TIME], CELL_MAX, "-");
    if (jnum(sink, "rows_per_second", &d) && isfinite(d))
        snprintf(r->cell[COL_RATE], CELL_MAX, "%.1f", d);
    else
        snprintf(r->cell[COL_RATE], CELL_MAX, "-");
    cell_count(r->cell[COL_ROWS], sink, "rows_applied");
    cell_count(r->cell[COL_ERRORS], sink, "errors");
    detail_cell(r->cell[COL_DETAIL], sink);
}

/* One row per sink; a service without sinks gets a row of its own. */
static row *collect_rows(const json_t *services, size_t *nrows)
{
    size_t cap = 0, i;
    json_t *svc;
    json_array_foreach(services, i, svc) {
        size_t ns = json_array_size(json_object_get(svc, "sinks"));
        cap += ns ? ns : 1;
    }
    row *rows = calloc(cap ? cap : 1, sizeof *rows);
    if (!rows)
        return NULL;
    size_t n = 0;
    json_array_foreach(services, i, svc) {
        const char *name = jstr(svc, "name");
        json_t *sinks = json_object_get(svc, "sinks"), *sink;
        size_t j;
        if (json_array_size(sinks) == 0) {
            fill_row(&rows[n], name ? name : "-", svc);
            snprintf(rows[n++].cell[COL_SINK], CELL_MAX, "-");
            continue;
        }
        json_array_foreach(sinks, j, sink)
            fill_row(&rows[n++], name ? name : "-", sink);
    }
    *nrows = n;
    return rows;
}

static void print_cell(FILE *out, const char *text, size_t width, bool last)
{
    fputs(text, out);
    if (last)
        return;
    for (size_t w = text_width(text); w < width + 2; w++)
        fputc(' ', out);
}

static void print_header(FILE *out, const json_t *doc)
{
    const char *name = jstr(doc, "name"), *version = jstr(doc, "version");
    double pid, up;
    char dur[48];
    bool has_pid = jnum(doc, "pid", &pid), has_up = jnum(doc, "uptime_s", &up);
    fprintf(out, "cleave %s", name ? name : "(unnamed)");
    if (has_pid && has_up)
        fprintf(out, " (pid %.0f, up %s)", pid,
                statuscli_fmt_duration(up, dur, sizeof dur));
    else if (has_pid)
        fprintf(out, " (pid %.0f)", pid);
    else if (has_up)
        fprintf(out, " (up %s)", statuscli_fmt_duration(up, dur, sizeof dur));
    if (version)
        fprintf(out, ", version %s", version);
    fputc('\n', out);
}

/* "  wal reserved  safe 12 MB": what the server says of the slot's WAL. */
static void print_wal(FILE *out, const json_t *src)
{
    const char *status = jstr(src, "wal_status");
    json_t *safe = json_object_get(src, "safe_wal_bytes");
    char size[32];
    if (!status)
        return;
    fprintf(out, "  wal %s", status);
    if (json_is_integer(safe) && json_integer_value(safe) >= 0)
        fprintf(out, "  safe %s", statuscli_fmt_bytes(
                    (uint64_t)json_integer_value(safe), size, sizeof size));
    else if (json_is_integer(safe))
        fputs("  safe 0 B", out);
    else if (json_is_null(safe) && strcmp(status, "lost") != 0)
        fputs("  safe no limit", out);
}

/* The source's last error, whole (it says how to recover), on one line. */
static void print_source_error(FILE *out, const json_t *src, bool connected)
{
    const char *error = jstr(src, "last_error"), *when = jstr(src,
                                                              "last_error_time");
    if (!error || !*error)
        return;
    char since[48] = "";
    if (when)
        short_time(when, since, sizeof since);
    fprintf(out, "source  %s", connected ? "last error: " : "error: ");
    for (const char *c = error; *c; c++)
        fputc((unsigned char)*c < 0x20 || *c == 0x7f ? ' ' : *c, out);
    if (*since)
        fprintf(out, " (%s %s)", connected ? "at" : "since", since);
    fputc('\n', out);
}

static void print_source(FILE *out, const json_t *src)
{
    if (!json_is_object(src)) {
        fputs("source  unknown\n", out);
        return;
    }
    const char *slot = jstr(src, "slot"), *server = jstr(src, "server_lsn"),
               *recv = jstr(src, "received_lsn"),
               *flushed = jstr(src, "flushed_lsn");
    json_t *conn = json_object_get(src, "connected");
    uint64_t retained;
    char size[32] = "unknown";
    if (jcount(src, "retained_wal_bytes", &retained))
        statuscli_fmt_bytes(retained, size, sizeof size);
    fprintf(out, "source  slot %s  %s  server %s  received %s  flushed %s  "
                 "retained %s",
            slot ? slot : "-",
            json_is_true(conn) ? "connected"
            : json_is_false(conn) ? "disconnected" : "connection unknown",
            server ? server : "unknown", recv ? recv : "-",
            flushed ? flushed : "-", size);
    print_wal(out, src);
    fputc('\n', out);
    print_source_error(out, src, json_is_true(conn));
}

/* Services whose writes moved (PRODUCT.md §8): a line each, under the table. */
static void print_moves(FILE *out, const json_t *services)
{
    size_t i;
    json_t *svc;
    json_array_foreach(services, i, svc) {
        const char *dir = jstr(svc, "direction"), *name = jstr(svc, "name");
        double pause;
        if (!dir || !name || strcmp(dir, "forward") == 0)
            continue;
        fprintf(out, "%s: %s", name, strcmp(dir, "reverse") == 0
                ? "cut over, its writes go to its own database; the reverse "
                  "stream keeps the shared copy current"
                : "move complete, the shared copy is frozen");
        if (jnum(svc, "last_cutover_pause_ms", &pause))
            fprintf(out, " (last switch paused writes %.0f ms)", pause);
        fputc('\n', out);
    }
}

bool statuscli_print_table(const char *json, size_t len, FILE *out,
                           char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *doc = json_loadb(json, len, 0, &jerr);
    if (!doc) {
        set_err(err, errlen, "not JSON (line %d: %s)", jerr.line, jerr.text);
        return false;
    }
    json_t *services = json_object_get(doc, "services");
    if (!json_is_object(doc) || !json_is_array(services)) {
        set_err(err, errlen, "not a cleave status document (no services)");
        json_decref(doc);
        return false;
    }
    size_t nrows = 0;
    row *rows = collect_rows(services, &nrows);
    if (!rows) {
        set_err(err, errlen, "out of memory");
        json_decref(doc);
        return false;
    }
    size_t width[NCOLS];
    for (int c = 0; c < NCOLS; c++) {
        width[c] = text_width(headers[c]);
        for (size_t r = 0; r < nrows; r++)
            if (text_width(rows[r].cell[c]) > width[c])
                width[c] = text_width(rows[r].cell[c]);
    }
    print_header(out, doc);
    print_source(out, json_object_get(doc, "source"));
    fputc('\n', out);
    for (int c = 0; c < NCOLS; c++)
        print_cell(out, headers[c], width[c], c == NCOLS - 1);
    fputc('\n', out);
    for (size_t r = 0; r < nrows; r++) {
        for (int c = 0; c < NCOLS; c++)
            print_cell(out, rows[r].cell[c], width[c], c == NCOLS - 1);
        fputc('\n', out);
    }
    if (nrows == 0)
        fputs("(no services)\n", out);
    print_moves(out, services);
    free(rows);
    json_decref(doc);
    return true;
}

/* ---- the command ---- */

int statuscli_run(const char *path, statuscli_format format)
{
    char err[1024];
    size_t len = 0;
    char *body = statuscli_fetch(path,
                                 format == STATUSCLI_METRICS ? "/metrics"
                                                             : "/status",
                                 STATUSCLI_TIMEOUT_MS, &len, err, sizeof err);
    if (!body) {
        fprintf(stderr, "cleave status: %s\n", err);
        return EXITCODE_RUNTIME;
    }
    bool ok = true;
    if (format == STATUSCLI_TABLE) {
        char why[512];
        ok = statuscli_print_table(body, len, stdout, why, sizeof why);
        if (!ok)
            fprintf(stderr, "cleave status: malformed answer from %s: %s\n",
                    path, why);
    } else {
        fwrite(body, 1, len, stdout);
        if (len > 0 && body[len - 1] != '\n')
            fputc('\n', stdout);
    }
    free(body);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "cleave status: cannot write: %s\n", strerror(errno));
        ok = false;
    }
    return ok ? EXITCODE_OK : EXITCODE_RUNTIME;
}
