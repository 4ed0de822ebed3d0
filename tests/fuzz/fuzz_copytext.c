/*
 * fuzz_copytext: libFuzzer target for copytext_split, COPY's text rows.
 *
 * The input is one row. It is split in a buffer of exactly size + 1
 * bytes (copytext_split may write line[len]), with room for every field
 * the row can have, and checked against a count of its own: fields are
 * the unescaped tabs plus one, and the split fails exactly when the row
 * ends in a backslash that escapes nothing. Every field must lie inside
 * the row, NUL-terminated, in order. The first byte also picks a smaller
 * field limit for a second split, which must fail exactly when the row
 * has more fields than that.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "decoder/copytext.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Where touched bytes go, so the reads cannot be optimised away. */
static volatile unsigned touched;

/* Fields in the row, or -1 when an escape is cut off at its end. */
static long count_fields(const uint8_t *row, size_t len)
{
    if (len > 0 && row[len - 1] == '\n')
        len--;
    long n = 1;
    for (size_t i = 0; i < len; i++) {
        if (row[i] == '\\') {
            if (i + 1 == len)
                return -1;
            i++;             /* whatever follows is data, a tab too */
        } else if (row[i] == '\t') {
            n++;
        }
    }
    return n;
}

static int split(const uint8_t *data, size_t size, size_t max,
                 copytext_field *fields)
{
    /* An exact copy, so touching past line[size] is an overflow. */
    char *line = malloc(size + 1);
    if (!line)
        return -2;
    memcpy(line, data, size);
    line[size] = '\\';       /* not a terminator: must not be read */
    int n = copytext_split(line, size, fields, max);
    if (n != -1 && (n < 1 || (size_t)n > max))
        __builtin_trap();
    const char *prev_end = NULL;
    for (int i = 0; i < n; i++) {
        const copytext_field *f = &fields[i];
        if (f->data < line || f->len > size ||
            f->data + f->len > line + size || f->data[f->len] != '\0' ||
            (prev_end && f->data <= prev_end))
            __builtin_trap();
        unsigned sum = f->null;
        for (uint32_t k = 0; k < f->len; k++)
            sum += (unsigned char)f->data[k];
        touched += sum;
        prev_end = f->data + f->len;
    }
    free(line);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    copytext_field *fields = malloc((size + 1) * sizeof *fields);
    if (!fields)
        return 0;
    long want = count_fields(data, size);
    int n = split(data, size, size + 1, fields);
    if (n != -2 && n != want)
        __builtin_trap();
    size_t max = size ? data[0] % 8 : 0;
    n = split(data, size, max, fields);
    if (n != -2 && n != (want > (long)max ? -1 : want))
        __builtin_trap();
    free(fields);
    return 0;
}
