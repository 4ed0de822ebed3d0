/*
 * lsn: WAL positions and their text form "X/Y", as PostgreSQL prints them
 * (upper-case hex, no padding) and as pg_lsn input accepts them.
 */
#ifndef CLEAVE_DECODER_LSN_H
#define CLEAVE_DECODER_LSN_H

#include <stdbool.h>
#include <stdint.h>

typedef uint64_t lsn_t;

#define LSN_INVALID ((lsn_t)0)
/* "FFFFFFFF/FFFFFFFF" and its NUL */
#define LSN_STRLEN 18

/* Writes the text form into buf and returns buf. */
char *lsn_format(lsn_t lsn, char buf[LSN_STRLEN]);
/* Parses "X/Y" (1 to 8 hex digits each side, nothing else); false otherwise. */
bool lsn_parse(const char *text, lsn_t *out);

#endif
