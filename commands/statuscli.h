/*
 * statuscli: the client side of the status socket (daemon/status.h), what
 * `cleave status` runs (PRODUCT.md §2, §4). It asks a running daemon over
 * HTTP/1.0 on the Unix socket, with a deadline so a hung daemon cannot
 * hang the command, and prints the answer as JSON, Prometheus text, or a
 * table for people.
 */
#ifndef CLEAVE_COMMANDS_STATUSCLI_H
#define CLEAVE_COMMANDS_STATUSCLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Where `cleave status` looks without -s or -c (the config's default). */
#define STATUSCLI_DEFAULT_SOCKET "/run/cleave/status.sock"
/* How long connecting, sending and reading the whole answer may take. */
#define STATUSCLI_TIMEOUT_MS 5000
/* An answer larger than this is refused as malformed. */
#define STATUSCLI_MAX_ANSWER (16u << 20)

typedef enum statuscli_format {
    STATUSCLI_TABLE,
    STATUSCLI_JSON,
    STATUSCLI_METRICS,
} statuscli_format;

/*
 * Asks the daemon on `path` and prints the answer on stdout; errors go to
 * stderr as "cleave status: ...". Returns the exit code: 0 when the daemon
 * answered, 1 when none is running, it did not answer in time, or the
 * answer is malformed.
 */
int statuscli_run(const char *path, statuscli_format format);

/*
 * Sends `GET target HTTP/1.0` to the socket and returns the body of a 200
 * answer (malloc'd, NUL-terminated, length in *len). NULL with err on
 * failure: nothing listens on path, no answer within timeout_ms, or an
 * answer that is not HTTP 200.
 */
char *statuscli_fetch(const char *path, const char *target, int timeout_ms,
                      size_t *len, char *err, size_t errlen);

/*
 * A connection to the status socket on `path`, non-blocking, or -1 with
 * err and errno (ENOENT: no socket there; ECONNREFUSED: nothing listens
 * on it). Connecting waits at most timeout_ms.
 */
int statuscli_connect(const char *path, int timeout_ms, char *err,
                      size_t errlen);

/* Prints the table for the JSON document; false with err if malformed. */
bool statuscli_print_table(const char *json, size_t len, FILE *out,
                           char *err, size_t errlen);

/* "56 B", "1.5 kB", "64 kB", "12 MB", "3.2 GB". Returns buf. */
char *statuscli_fmt_bytes(uint64_t bytes, char *buf, size_t buflen);
/* "0.0 s", "3.2 s", "2 min 5 s", "1 h 2 min", "3 d 4 h". Returns buf. */
char *statuscli_fmt_duration(double seconds, char *buf, size_t buflen);
/* 120000 -> "120,000". Returns buf. */
char *statuscli_fmt_count(uint64_t n, char *buf, size_t buflen);

#endif
