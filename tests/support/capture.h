/*
 * capture: records what a real walsender sends for a scenario, frame by
 * frame, into a stream file (streamfile.h).
 *
 * A scenario is an SQL file in two parts split by a line "-- capture":
 * the setup (tables, the publication) runs before the slot exists, the
 * workload after it. Header lines configure the capture:
 *   -- options: proto_version=2 publication_names=p streaming=on
 *   -- twophase: true          (the slot decodes PREPARE)
 *   -- work_mem: 64kB          (logical_decoding_work_mem of the walsender)
 * Each scenario runs in a new database named after the file.
 */
#ifndef CLEAVE_TESTS_CAPTURE_H
#define CLEAVE_TESTS_CAPTURE_H

#include <stdbool.h>
#include <stdio.h>

#include "tests/support/pgcluster.h"

/* Runs the scenario and writes the frames to out_path. */
bool cap_scenario(const pgc_cluster *c, const char *sql_path,
                  const char *out_path);

/*
 * Streams an existing slot of dbname from its start up to the server's
 * current WAL position into out. `options` as in "-- options:",
 * work_mem NULL for the server's default.
 */
bool cap_record(const pgc_cluster *c, const char *dbname, const char *slot,
                const char *options, const char *work_mem, FILE *out);

#endif
