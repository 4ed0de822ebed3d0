/*
 * ctlword: one word of a control request on the status socket (`control
 * VERB SERVICE key=value ...`, words split at spaces), able to carry any
 * text: a table name as the configuration writes it ('"Order Items"')
 * has spaces and quotes. Bytes other than letters, digits, `_`, `.` and
 * `-` go as `%XX` (two hex digits), as in a URL; both sides of the
 * socket use this one rule.
 */
#ifndef CLEAVE_COMMON_CTLWORD_H
#define CLEAVE_COMMON_CTLWORD_H

#include <stdbool.h>
#include <stddef.h>

/* The word for `text`, malloc'd; NULL when out of memory. */
char *ctlword_encode(const char *text);
/*
 * The text a word carries, NUL-terminated, into out; false when a `%` is
 * not followed by two hex digits, the text would hold a NUL, or it does
 * not fit in outlen.
 */
bool ctlword_decode(const char *word, char *out, size_t outlen);

#endif
