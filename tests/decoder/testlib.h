/*
 * testlib: what the decoder tests share: building messages by hand from a
 * readable hex spec, printing a decoded message as text (so two decodes
 * can be compared), and finding the captured streams with their options.
 */
#ifndef CLEAVE_TESTS_DECODER_TESTLIB_H
#define CLEAVE_TESTS_DECODER_TESTLIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "decoder/pgoutput.h"
#include "tests/support/streamfile.h"

/*
 * Bytes from a spec of hex digits and 'quoted text' (copied as is, no
 * terminator); spaces separate nothing. "43 00 'ab' 00" is 43 00 61 62 00.
 * Returns the length, or -1 when the spec is malformed or too long.
 */
long tl_bytes(const char *spec, uint8_t *out, size_t cap);

/* Writes every field of m as one line of text. */
void tl_dump(FILE *f, const pgo_msg *m);
/* The same into a malloc'd string. */
char *tl_dump_str(const pgo_msg *m);

/* The decoder options a stream was captured with. */
pgo_options tl_stream_options(const sf_stream *s);

/*
 * The captured streams (every .stream file in
 * $CLEAVE_SRCDIR/tests/decoder/streams), sorted; NULL-terminated, free
 * with tl_free_paths.
 */
char **tl_stream_paths(void);
void tl_free_paths(char **paths);
/* "dml_v1" for ".../dml_v1.stream"; static buffer. */
const char *tl_stream_name(const char *path);

#endif
