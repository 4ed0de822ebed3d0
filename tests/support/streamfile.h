/*
 * streamfile: captured replication streams on disk, for tests, the fuzz
 * corpus and benchmarks.
 *
 * Text, one CopyData payload from the server per line, in hex (so a 'w'
 * frame starts "77", a keepalive "6b"). Lines starting with '#' are
 * comments: the capture writes the SQL that made the stream there, and one
 * "# options: key=value ..." line with the START_REPLICATION options.
 */
#ifndef CLEAVE_TESTS_STREAMFILE_H
#define CLEAVE_TESTS_STREAMFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct sf_frame {
    uint8_t *data;
    size_t len;
} sf_frame;

typedef struct sf_stream {
    sf_frame *frames;
    size_t n;
    char *options;   /* the "# options:" line's text, or "" */
} sf_stream;

bool sf_load(const char *path, sf_stream *out, char *err, size_t errlen);
void sf_free(sf_stream *s);
/* The value of one option ("proto_version"), or NULL. Caller frees. */
char *sf_option(const sf_stream *s, const char *key);
/* Appends one frame as a hex line. */
bool sf_write_frame(FILE *f, const void *data, size_t len);

#endif
