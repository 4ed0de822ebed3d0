/*
 * pgpipe: the request queue and pump of a libpq pipeline; see pgpipe.h.
 *
 * libpq in pipeline mode hands back, per request, its result(s) and then
 * a NULL; a sync point gives one PGRES_PIPELINE_SYNC result and no NULL.
 * The queue mirrors libpq's own, so the entry at its head is always the
 * request whose result comes next.
 */
#include "sinks/pgpipe.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"

void pgpipe_init(pgpipe *p, pgpipe_result_fn fn, void *arg)
{
    memset(p, 0, sizeof *p);
    p->on_result = fn;
    p->arg = arg;
}

void pgpipe_attach(pgpipe *p, PGconn *conn)
{
    p->conn = conn;
    p->head = p->count = p->rows = 0;
    p->error[0] = '\0';
}

void pgpipe_reset(pgpipe *p)
{
    p->conn = NULL;
    p->head = p->count = p->rows = 0;
}

void pgpipe_free(pgpipe *p)
{
    free(p->ring);
    memset(p, 0, sizeof *p);
}

bool pgpipe_fail(pgpipe *p, const char *what)
{
    const char *msg = p->conn ? PQerrorMessage(p->conn) : "";
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        n--;
    snprintf(p->error, sizeof p->error, "%s%s%.*s", what, n ? ": " : "",
             (int)n, msg);
    return false;
}

/* Doubles the ring, unwrapping it so the head is at 0 again. */
static bool grow(pgpipe *p)
{
    size_t cap = p->cap ? p->cap * 2 : 256;
    pgpipe_entry *ring = malloc(cap * sizeof *ring);
    if (!ring)
        return false;
    for (size_t i = 0; i < p->count; i++)
        ring[i] = p->ring[(p->head + i) & (p->cap - 1)];
    free(p->ring);
    p->ring = ring;
    p->cap = cap;
    p->head = 0;
    return true;
}

pgpipe_entry *pgpipe_add(pgpipe *p)
{
    if (p->count == p->cap && !grow(p))
        return NULL;
    pgpipe_entry *e = &p->ring[(p->head + p->count) & (p->cap - 1)];
    p->count++;
    p->rows++;
    e->kind = PGPIPE_COMMAND;
    e->op = 0;
    e->got_result = false;
    e->rows = 1;
    e->stmt = NULL;
    e->what = NULL;
    e->lsn = 0;
    e->key[0] = '\0';
    return e;
}

static pgpipe_entry *front(pgpipe *p)
{
    return &p->ring[p->head];
}

static pgpipe_entry *back(pgpipe *p)
{
    return &p->ring[(p->head + p->count - 1) & (p->cap - 1)];
}

static void pop(pgpipe *p)
{
    p->rows -= front(p)->rows;
    p->head = (p->head + 1) & (p->cap - 1);
    p->count--;
}

bool pgpipe_sync(pgpipe *p)
{
    pgpipe_entry *e = pgpipe_add(p);
    if (!e) {
        snprintf(p->error, sizeof p->error, "out of memory");
        return false;
    }
    e->kind = PGPIPE_SYNC;
    if (!PQpipelineSync(p->conn))
        return pgpipe_fail(p, "cannot send a sync to the target");
    return true;
}

/* A result for the sync at the head: anything else means we lost track. */
static bool take_sync(pgpipe *p, PGresult *res)
{
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    PQclear(res);
    if (st != PGRES_PIPELINE_SYNC) {
        if (PQstatus(p->conn) == CONNECTION_BAD)
            return pgpipe_fail(p, "target connection lost");
        snprintf(p->error, sizeof p->error,
                 "target pipeline out of step (%s where a sync was due)",
                 PQresStatus(st));
        return false;
    }
    pop(p);
    return true;
}

/* Handles every result libpq can give without waiting for the socket. */
static bool take_ready(pgpipe *p)
{
    while (p->count > 0 && !PQisBusy(p->conn)) {
        PGresult *res = PQgetResult(p->conn);
        pgpipe_entry *e = front(p);
        if (e->kind == PGPIPE_SYNC) {
            if (!take_sync(p, res))
                return false;
            continue;
        }
        if (!res) {
            /* A request with no result at all: the connection broke. */
            if (!e->got_result && PQstatus(p->conn) == CONNECTION_BAD)
                return pgpipe_fail(p, "target connection lost");
            pop(p);
            continue;
        }
        e->got_result = true;
        p->on_result(p->arg, e, res);
        PQclear(res);
    }
    if (PQstatus(p->conn) == CONNECTION_BAD)
        return pgpipe_fail(p, "target connection lost");
    return true;
}

bool pgpipe_service(pgpipe *p)
{
    if (PQflush(p->conn) < 0)
        return pgpipe_fail(p, "cannot send to the target");
    if (!PQconsumeInput(p->conn))
        return pgpipe_fail(p, "cannot read from the target");
    return take_ready(p);
}

/*
 * The server holds results back until a sync or a flush request; without
 * either at the end of the queue the wait would never end.
 */
static bool ask_flush(pgpipe *p)
{
    if (p->count == 0 || back(p)->kind == PGPIPE_SYNC)
        return true;
    if (!PQsendFlushRequest(p->conn))
        return pgpipe_fail(p, "cannot send a flush request to the target");
    return true;
}

/* Sleeps until the socket can be read (or written, while output waits). */
static bool await_socket(pgpipe *p, bool want_write, int64_t deadline)
{
    struct pollfd pfd = {.fd = PQsocket(p->conn), .events = POLLIN};
    if (want_write)
        pfd.events |= POLLOUT;
    int timeout = -1;
    if (deadline >= 0) {
        int64_t left = deadline - clock_ms();
        if (left <= 0) {
            snprintf(p->error, sizeof p->error,
                     "the target did not answer in time");
            return false;
        }
        timeout = (int)left;
    }
    if (poll(&pfd, 1, timeout) < 0 && errno != EINTR) {
        snprintf(p->error, sizeof p->error, "poll on the target socket: %s",
                 strerror(errno));
        return false;
    }
    return true;
}

static bool wait_for(pgpipe *p, const size_t *what, size_t left,
                     int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? -1 : clock_ms() + timeout_ms;
    if (*what > left && !ask_flush(p))
        return false;
    while (*what > left) {
        int pending_out = PQflush(p->conn);
        if (pending_out < 0)
            return pgpipe_fail(p, "cannot send to the target");
        if (!PQconsumeInput(p->conn))
            return pgpipe_fail(p, "cannot read from the target");
        if (!take_ready(p))
            return false;
        if (*what <= left)
            break;
        if (!await_socket(p, pending_out == 1, deadline))
            return false;
    }
    return true;
}

bool pgpipe_wait(pgpipe *p, size_t left, int timeout_ms)
{
    return wait_for(p, &p->count, left, timeout_ms);
}

bool pgpipe_wait_rows(pgpipe *p, size_t left)
{
    return wait_for(p, &p->rows, left, -1);
}
