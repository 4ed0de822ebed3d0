/*
 * test_copytext: rows of COPY's text format split into fields, as
 * PostgreSQL documents the format (COPY, "Text Format"): tabs between
 * fields, \N alone for NULL, the backslash escapes, octal and hex bytes.
 *
 * Cases are a table of rows and the fields they must give. Every row is
 * split in a buffer of exactly len + 1 bytes, with fields[] exactly max
 * long, so the sanitizers see any access outside what the header allows;
 * the byte after the row is a tab or a backslash, never a terminator, so
 * a split that reads past the row gives a different answer.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decoder/copytext.h"

#define MAX_WANT 6

/* A field as expected: text (may hold NUL bytes), or NULL. */
typedef struct want_field {
    const char *data;
    uint32_t len;
    bool null;
} want_field;

typedef struct split_case {
    const char *in;
    size_t len;
    size_t max;
    int n;                   /* fields, or -1 */
    want_field want[MAX_WANT];
} split_case;

/* String literals with their exact length, NUL bytes included. */
#define IN(s) s, sizeof(s) - 1
#define F(s) {s, sizeof(s) - 1, false}
#define NUL {NULL, 0, true}

static const split_case cases[] = {
    /* tabs between fields; the trailing newline is optional */
    {IN("a\tb\tc"), 8, 3, {F("a"), F("b"), F("c")}},
    {IN("a\tb\tc\n"), 8, 3, {F("a"), F("b"), F("c")}},
    {IN("one field"), 8, 1, {F("one field")}},
    /* empty fields are empty text, not NULL */
    {IN("a\t\tb"), 8, 3, {F("a"), F(""), F("b")}},
    {IN("\t"), 8, 2, {F(""), F("")}},
    {IN("\t\n"), 8, 2, {F(""), F("")}},
    {IN("a\t"), 8, 2, {F("a"), F("")}},
    {IN(""), 8, 1, {F("")}},
    {IN("\n"), 8, 1, {F("")}},
    /* \N alone is NULL, wherever the field is */
    {IN("\\N"), 8, 1, {NUL}},
    {IN("\\N\n"), 8, 1, {NUL}},
    {IN("a\t\\N\tc"), 8, 3, {F("a"), NUL, F("c")}},
    {IN("\\N\t\\N"), 8, 2, {NUL, NUL}},
    {IN("\\N\t"), 8, 2, {NUL, F("")}},
    {IN("\t\\N"), 8, 2, {F(""), NUL}},
    /* ... and nowhere else: an escaped backslash, or \N inside text */
    {IN("\\\\N"), 8, 1, {F("\\N")}},
    {IN("\\\\N\t\\N"), 8, 2, {F("\\N"), NUL}},
    {IN("x\\N"), 8, 1, {F("xN")}},
    {IN("\\Nx"), 8, 1, {F("Nx")}},
    {IN("\\N\\N"), 8, 1, {F("NN")}},
    {IN("N"), 8, 1, {F("N")}},
    {IN("\\n"), 8, 1, {F("\n")}},
    /* the named escapes */
    {IN("\\b\\f\\n\\r\\t\\v\\\\"), 8, 1, {F("\b\f\n\r\t\v\\")}},
    {IN("a\\tb\tc\\nd"), 8, 2, {F("a\tb"), F("c\nd")}},
    {IN("line\\n\n"), 8, 1, {F("line\n")}},
    /* a backslash before a real tab makes it data */
    {IN("a\\\tb"), 8, 1, {F("a\tb")}},
    /* octal: one to three digits, the value kept to a byte */
    {IN("\\1"), 8, 1, {F("\001")}},
    {IN("\\0"), 8, 1, {F("\0")}},
    {IN("a\\0b"), 8, 1, {F("a\0b")}},
    {IN("\\101"), 8, 1, {F("A")}},
    {IN("\\1011"), 8, 1, {F("A1")}},
    {IN("\\18"), 8, 1, {F("\0018")}},
    {IN("\\12\t\\7"), 8, 2, {F("\n"), F("\a")}},
    {IN("\\377"), 8, 1, {F("\377")}},
    {IN("\\777"), 8, 1, {F("\377")}},
    /* hex: \x and one or two digits; without a digit, x itself */
    {IN("\\x4"), 8, 1, {F("\004")}},
    {IN("\\x41"), 8, 1, {F("A")}},
    {IN("\\x414"), 8, 1, {F("A4")}},
    {IN("\\xfF\\xA"), 8, 1, {F("\377\n")}},
    {IN("\\x4g"), 8, 1, {F("\004g")}},
    {IN("\\xg"), 8, 1, {F("xg")}},
    {IN("\\x"), 8, 1, {F("x")}},
    {IN("\\x\ty"), 8, 2, {F("x"), F("y")}},
    /* any other escaped character stands for itself */
    {IN("\\c\\q\\.\\\"\\8\\ "), 8, 1, {F("cq.\"8 ")}},
    {IN("\\X41"), 8, 1, {F("X41")}},
    /* bytes that are not escapes pass through, UTF-8 included */
    {IN("\xc3\xa5\t\x01\x7f\xff"), 8, 2, {F("\xc3\xa5"), F("\x01\x7f\xff")}},
    /* an escape cut off at the end */
    {IN("\\"), 8, -1, {{0}}},
    {IN("abc\\"), 8, -1, {{0}}},
    {IN("a\tb\\"), 8, -1, {{0}}},
    {IN("abc\\\n"), 8, -1, {{0}}},
    {IN("\\\\\\"), 8, -1, {{0}}},
    /* the field limit: exactly max is fine, one more is not */
    {IN("a\tb\tc"), 3, 3, {F("a"), F("b"), F("c")}},
    {IN("a\tb\tc"), 2, -1, {{0}}},
    {IN("a\tb\tc\n"), 2, -1, {{0}}},
    {IN("\t"), 1, -1, {{0}}},
    {IN(""), 1, 1, {F("")}},
    {IN(""), 0, -1, {{0}}},
    {IN("\\N"), 1, 1, {NUL}},
};

/* The byte after the row: neither ends the row nor may be read. */
static const char sentinels[] = {'\t', '\\'};

/* Splits c->in in a buffer of exactly len + 1 bytes; fields exactly max. */
static int split(const split_case *c, char sentinel, char **line,
                 copytext_field **fields)
{
    *line = malloc(c->len + 1);
    *fields = malloc((c->max ? c->max : 1) * sizeof **fields);
    ck_assert(*line && *fields);
    memcpy(*line, c->in, c->len);
    (*line)[c->len] = sentinel;
    return copytext_split(*line, c->len, *fields, c->max);
}

/* Every field lies inside the row, NUL-terminated, in order, apart. */
static void check_places(const char *line, size_t len,
                         const copytext_field *f, int n)
{
    const char *prev_end = NULL;
    for (int i = 0; i < n; i++) {
        ck_assert_ptr_nonnull(f[i].data);
        ck_assert(f[i].data >= line);
        ck_assert(f[i].data + f[i].len <= line + len);
        ck_assert_int_eq(f[i].data[f[i].len], '\0');
        if (prev_end)
            ck_assert(f[i].data > prev_end);
        prev_end = f[i].data + f[i].len;
    }
}

START_TEST(test_split)
{
    const split_case *c = &cases[_i];
    for (size_t s = 0; s < sizeof sentinels; s++) {
        char *line;
        copytext_field *f;
        int n = split(c, sentinels[s], &line, &f);
        ck_assert_msg(n == c->n, "case %d: %d fields, want %d", _i, n, c->n);
        check_places(line, c->len, f, n);
        for (int i = 0; i < n; i++) {
            const want_field *w = &c->want[i];
            ck_assert_msg(f[i].null == w->null, "case %d field %d: null %d",
                          _i, i, f[i].null);
            if (w->null)
                continue;
            ck_assert_msg(f[i].len == w->len, "case %d field %d: len %u, "
                          "want %u", _i, i, f[i].len, w->len);
            ck_assert_msg(memcmp(f[i].data, w->data, w->len) == 0,
                          "case %d field %d: wrong bytes", _i, i);
        }
        free(line);
        free(f);
    }
}
END_TEST

/* ---- every byte, every spelling -------------------------------------------- */

/*
 * How COPY TO writes a byte in text format (CopyAttributeOutText): the
 * named escapes, a backslash doubled, everything else as it is.
 */
static size_t copy_out_byte(unsigned char b, char *out)
{
    static const char from[] = "\b\f\n\r\t\v\\", to[] = "bfnrtv\\";
    const char *p = b ? strchr(from, b) : NULL;
    if (p) {
        out[0] = '\\';
        out[1] = to[p - from];
        return 2;
    }
    out[0] = (char)b;
    return 1;
}

/* Splits a row of one field that must give the one byte b. */
static void expect_byte(const char *row, size_t len, unsigned char b)
{
    char *line = malloc(len + 1);
    copytext_field f[1];
    ck_assert_ptr_nonnull(line);
    memcpy(line, row, len);
    line[len] = '\\';
    int n = copytext_split(line, len, f, 1);
    ck_assert_msg(n == 1, "byte %u as \"%.*s\": %d fields", b, (int)len, row,
                  n);
    ck_assert_msg(f[0].len == 1 && (unsigned char)f[0].data[0] == b,
                  "byte %u as \"%.*s\": got %u bytes, first %u", b, (int)len,
                  row, f[0].len, (unsigned char)f[0].data[0]);
    ck_assert(!f[0].null);
    free(line);
}

START_TEST(test_every_byte)
{
    char row[8];
    for (unsigned b = 1; b < 256; b++) {
        expect_byte(row, copy_out_byte((unsigned char)b, row),
                    (unsigned char)b);
        expect_byte(row, (size_t)snprintf(row, sizeof row, "\\%o", b),
                    (unsigned char)b);
        expect_byte(row, (size_t)snprintf(row, sizeof row, "\\%03o", b),
                    (unsigned char)b);
        expect_byte(row, (size_t)snprintf(row, sizeof row, "\\x%x", b),
                    (unsigned char)b);
        expect_byte(row, (size_t)snprintf(row, sizeof row, "\\x%02X", b),
                    (unsigned char)b);
    }
}
END_TEST

/* A row as COPY TO writes it, of every byte in turn, splits back. */
START_TEST(test_copy_out_row)
{
    char row[3 * 256 * 2 + 2];
    size_t len = 0;
    for (unsigned b = 1; b < 256; b++) {
        len += copy_out_byte((unsigned char)b, row + len);
        row[len++] = '\t';
        memcpy(row + len, "\\N\t", 3);
        len += 3;
    }
    row[len - 1] = '\n';
    char *line = malloc(len + 1);
    copytext_field *f = malloc(510 * sizeof *f);
    ck_assert(line && f);
    memcpy(line, row, len);
    line[len] = '\t';
    ck_assert_int_eq(copytext_split(line, len, f, 510), 510);
    check_places(line, len, f, 510);
    for (unsigned b = 1; b < 256; b++) {
        const copytext_field *v = &f[2 * (b - 1)], *null = v + 1;
        ck_assert_msg(!v->null && v->len == 1 &&
                      (unsigned char)v->data[0] == b, "byte %u", b);
        ck_assert(null->null);
    }
    free(line);
    free(f);
}
END_TEST

/* The widest row PostgreSQL makes: 1664 columns, all empty. */
START_TEST(test_widest_row)
{
    enum { COLS = 1664 };
    char *line = malloc(COLS + 1);
    copytext_field *f = malloc(COLS * sizeof *f);
    ck_assert(line && f);
    memset(line, '\t', COLS - 1);
    line[COLS - 1] = '\n';
    ck_assert_int_eq(copytext_split(line, COLS, f, COLS), COLS);
    check_places(line, COLS - 1, f, COLS);
    for (int i = 0; i < COLS; i++)
        ck_assert(f[i].len == 0 && !f[i].null);
    memset(line, '\t', COLS - 1);
    line[COLS - 1] = '\n';
    ck_assert_int_eq(copytext_split(line, COLS, f, COLS - 1), -1);
    free(line);
    free(f);
}
END_TEST

static Suite *copytext_suite(void)
{
    Suite *s = suite_create("copytext");
    TCase *tc = tcase_create("split");
    tcase_add_loop_test(tc, test_split, 0, sizeof cases / sizeof cases[0]);
    tcase_add_test(tc, test_every_byte);
    tcase_add_test(tc, test_copy_out_row);
    tcase_add_test(tc, test_widest_row);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(copytext_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
