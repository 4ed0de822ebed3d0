/*
 * status: what `cleave status` and Prometheus read (PRODUCT.md §4), served
 * on a Unix socket by a thread of its own, so a slow or stuck client never
 * holds up replication.
 *
 * The runner hands a fill callback; for each request the server takes a
 * snapshot through it (the callback copies figures under the runner's own
 * lock) and renders it as JSON or Prometheus text. The source's WAL
 * position and the slot's WAL figures (retained, wal_status, safe size)
 * are asked for by the server's thread on a normal connection every few
 * seconds, never by the runner.
 *
 * Wire format: a client writes one request and reads one answer, then the
 * server closes the connection. The request is either an HTTP/1.x request
 * line (`GET /status`, `GET /metrics`, `GET /`; headers are read and
 * ignored), answered with an HTTP/1.0 response, so `curl --unix-socket
 * SOCK http://localhost/status` works; or a bare line `json` or `metrics`,
 * answered with the body alone.
 */
#ifndef CLEAVE_DAEMON_STATUS_H
#define CLEAVE_DAEMON_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decoder/lsn.h"

#define STATUS_NAME_MAX 64
#define STATUS_ERROR_MAX 512
#define STATUS_NO_BYTES INT64_MIN   /* safe_wal_bytes: none */

/* One sink of one service. */
typedef struct status_sink {
    char service[STATUS_NAME_MAX];
    char kind[16];               /* "postgres", "kafka" */
    char state[16];              /* initial_copy catching_up streaming error */
    lsn_t applied_lsn;           /* held durably */
    uint64_t lag_bytes;
    double lag_seconds;
    uint64_t rows_applied;
    uint64_t txns_applied;
    uint64_t errors;             /* failures since start */
    double rows_per_second;      /* over the last 10 s */
    char last_error[STATUS_ERROR_MAX];   /* "" when none */
    int64_t last_error_time;     /* Unix seconds, 0 when none */
    /* During initial_copy: tables and rows copied so far, of how many. */
    uint32_t copy_tables_done, copy_tables_total;
    uint64_t copy_rows;
} status_sink;

/* One service's move (PRODUCT.md §8). */
typedef struct status_service {
    char name[STATUS_NAME_MAX];
    char direction[16];          /* forward reverse complete */
    double pause_ms;             /* the last switch's write pause; <0: none */
} status_service;

typedef struct status_snapshot {
    char name[STATUS_NAME_MAX];
    const char *version;
    int pid;
    double uptime_s;
    char slot[STATUS_NAME_MAX];
    bool connected;
    bool binary_values;          /* pgoutput sends them binary (binfmt.h) */
    lsn_t server_lsn;            /* 0: not known yet */
    lsn_t received_lsn;
    lsn_t flushed_lsn;
    int64_t retained_wal_bytes;  /* -1: not known */
    /*
     * pg_replication_slots.wal_status ("" when not known: PostgreSQL 12 or
     * older, no slot, no reading yet) and safe_wal_size (STATUS_NO_BYTES
     * when not known or the server reports none: max_slot_wal_keep_size
     * = -1, or a lost slot; negative once the slot is past it).
     */
    char wal_status[16];
    int64_t safe_wal_bytes;
    /* The source's last failure (the runner's), "" / 0 when none. */
    char last_error[2 * STATUS_ERROR_MAX];   /* the way back included */
    int64_t last_error_time;     /* Unix seconds */
    status_sink *sinks;          /* grouped by service, in config order */
    size_t nsinks;
    status_service *services;    /* any order; a service not listed: forward */
    size_t nservices;
} status_snapshot;

/*
 * Fills *out (sinks and services: up to out->nsinks and out->nservices
 * entries of the arrays the server provides, setting each count); called
 * on the server's thread.
 */
typedef void (*status_fill_fn)(void *arg, status_snapshot *out);

/*
 * The JSON document of PRODUCT.md §4: services with the worst state of
 * their sinks (error > initial_copy > catching_up > streaming), LSNs as
 * "X/Y", last_error null when empty. malloc'd; NULL when out of memory.
 */
char *status_json(const status_snapshot *s);
/* Prometheus text exposition (cleave_ names, HELP and TYPE). malloc'd. */
char *status_metrics(const status_snapshot *s);

typedef struct status_server status_server;

/*
 * Creates the socket (mode 0660; a stale socket left by a crash is
 * replaced, a live one is an error naming the path) and starts serving.
 * `dsn` and `slot` are for the server LSN and the slot's WAL figures.
 * NULL with err on failure.
 */
status_server *status_start(const char *path, const char *dsn,
                            const char *slot, size_t max_sinks,
                            status_fill_fn fill, void *arg, char *err,
                            size_t errlen);
/* The server's last readings (0 / -1 until the first one). */
lsn_t status_server_lsn(status_server *srv);
int64_t status_retained_wal(status_server *srv);
/*
 * A line "control VERB ..." (cleave cutover, rollback, complete) is not
 * answered by the server: the connection, made blocking, goes to fn with
 * the rest of the line ("VERB ..."), on the server's thread; fn owns the
 * fd from then on and must return at once (it answers from a thread of
 * its own). Until this is called such lines get a refusal.
 */
#define STATUS_CONTROL "control "
typedef void (*status_control_fn)(void *arg, int fd, const char *request);
void status_set_control(status_server *srv, status_control_fn fn, void *arg);
/* Stops the thread, closes and unlinks the socket. */
void status_stop(status_server *srv);

#endif
