/*
 * copytext: one row of COPY's text format, split into fields.
 *
 * The initial copy to Kafka reads each table with COPY ... TO STDOUT and
 * needs the values one by one to render them; the text format is the
 * one PostgreSQL documents for COPY: fields separated by tabs, \N for
 * NULL, backslash escapes for the rest. Pure: bytes in, fields out.
 */
#ifndef CLEAVE_DECODER_COPYTEXT_H
#define CLEAVE_DECODER_COPYTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct copytext_field {
    const char *data;        /* NUL-terminated, inside the line */
    uint32_t len;
    bool null;
} copytext_field;

/*
 * Splits a row (one line, its trailing newline optional) in place,
 * undoing escapes; line[len] must be writable (PQgetCopyData's rows are
 * NUL-terminated). Returns the number of fields, or -1 when there are
 * more than max or an escape is cut off at the end.
 */
int copytext_split(char *line, size_t len, copytext_field *fields, size_t max);

#endif
