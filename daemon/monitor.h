/*
 * monitor: the runner's figures, kept where the status server's thread can
 * read them without ever waiting on the replication loop.
 *
 * The loop publishes its own state (connected, received and flushed LSNs,
 * each sink's position) into atomics once per turn, and samples each
 * sink's row counter once a second for the rate; the status server's fill
 * callback (monitor_fill) reads those, the workers' own atomics and the
 * initial sync's failures.
 */
#ifndef CLEAVE_DAEMON_MONITOR_H
#define CLEAVE_DAEMON_MONITOR_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "daemon/initsync.h"
#include "daemon/fanout.h"
#include "daemon/status.h"
#include "daemon/stream.h"
#include "daemon/syncstate.h"

typedef struct monitor monitor;

/* fo's sinks are syncsinks, in config order; the runner keeps fo. */
monitor *monitor_new(const cfg *config, const fanout *fo, syncstate *ss);
void monitor_free(monitor *m);
/* The initial sync, once started (for copy progress). */
void monitor_set_initsync(monitor *m, const initsync *is);
/*
 * Service svc is refused for as long as cleave runs: its sinks show in
 * error with `why` (cut to fit the status). Any thread.
 */
void monitor_refuse(monitor *m, size_t svc, const char *why);

/* From the loop, every turn: cheap. st may be NULL before streaming. */
void monitor_publish(monitor *m, bool connected, const stream *st,
                     lsn_t flushed);
/* From the loop: the source's last failure ("" and 0 when none). */
void monitor_publish_source_error(monitor *m, const char *err, int64_t when);
/* One line for systemd's STATUS=, e.g. "streaming: 5 of 5 sinks, lag 0 B". */
void monitor_summary(monitor *m, char *buf, size_t len);

/* status_fill_fn: arg is the monitor. */
void monitor_fill(void *arg, status_snapshot *out);

#endif
