/*
 * statefile: small files in state_dir replaced whole, never torn.
 *
 * The initial sync's progress and the Kafka checkpoints are rewritten in
 * place; a crash in the middle must leave either the old or the new file.
 * Built into the same small library as the logger, so sinks can use it.
 */
#ifndef CLEAVE_COMMON_STATEFILE_H
#define CLEAVE_COMMON_STATEFILE_H

#include <stdbool.h>
#include <stddef.h>

/* Writes a temporary file, fsyncs it, renames it over path, fsyncs the
 * directory. False with err (what, the path, why) on failure. */
bool statefile_write(const char *path, const char *data, size_t len,
                     char *err, size_t errlen);

#endif
