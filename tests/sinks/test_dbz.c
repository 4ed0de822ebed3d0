/*
 * test_dbz: Debezium JSON events, compared byte for byte.
 *
 * Every type mapping from pgoutput's text form (tables of type, text and
 * the JSON expected), arrays well and badly formed, rows and keys for each
 * replica identity, whole envelopes, logical messages, transaction
 * metadata, topic names, base64 (RFC 4648's vectors) and invalid UTF-8.
 * Random and mutated literals of every type must give a value that dumps
 * to JSON jansson reads back; values are passed in buffers of exactly
 * their length, so a sanitizer build catches any read past the end.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinks/dbz.h"
#include "sinks/sink.h"

/* OIDs from pg_type.dat, spelled out so the tables read as SQL types. */
enum {
    BOOL = 16, BYTEA = 17, CHAR = 18, NAME = 19, INT8 = 20, INT2 = 21,
    INT4 = 23, TEXT = 25, OID = 26, JSON = 114, XML = 142, CIDR = 650,
    FLOAT4 = 700, FLOAT8 = 701, MONEY = 790, MACADDR = 829, INET = 869,
    BPCHAR = 1042, VARCHAR = 1043, DATE = 1082, TIME = 1083,
    TIMESTAMP = 1114, TIMESTAMPTZ = 1184, INTERVAL = 1186, TIMETZ = 1266,
    NUMERIC = 1700, UUID = 2950, JSONB = 3802, POINT = 600, TSVECTOR = 3614,
    JSON_A = 199, BOOL_A = 1000, BYTEA_A = 1001, CHAR_A = 1002, NAME_A = 1003,
    INT2_A = 1005, INT4_A = 1007, TEXT_A = 1009, BPCHAR_A = 1014,
    VARCHAR_A = 1015, INT8_A = 1016, BOX_A = 1020, FLOAT4_A = 1021,
    FLOAT8_A = 1022, OID_A = 1028, INET_A = 1041, TIMESTAMP_A = 1115,
    DATE_A = 1182, TIME_A = 1183, TIMESTAMPTZ_A = 1185, INTERVAL_A = 1187,
    NUMERIC_A = 1231, UUID_A = 2951, JSONB_A = 3807,
};

typedef struct vcase {
    uint32_t oid;
    const char *text;
    const char *want;        /* compact JSON */
} vcase;

/* The value dumped; the text is copied to a buffer of exactly its length. */
static char *render(uint32_t oid, const char *text, size_t len)
{
    char *buf = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(buf);
    memcpy(buf, text, len);
    json_t *j = dbz_value(oid, buf, (uint32_t)len);
    free(buf);
    ck_assert_ptr_nonnull(j);
    size_t n;
    char *s = dbz_dump(j, &n);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(n, strlen(s));
    json_decref(j);
    return s;
}

static void check_cases(const vcase *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char *s = render(cases[i].oid, cases[i].text, strlen(cases[i].text));
        ck_assert_msg(strcmp(s, cases[i].want) == 0,
                      "type %u, \"%s\": got %s, want %s", cases[i].oid,
                      cases[i].text, s, cases[i].want);
        free(s);
    }
}

#define CHECK_CASES(c) check_cases((c), sizeof(c) / sizeof((c)[0]))

static void check_dump(json_t *j, const char *want)
{
    ck_assert_ptr_nonnull(j);
    char *s = dbz_dump(j, NULL);
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(s, want);
    free(s);
    json_decref(j);
}

/* ---- scalars ------------------------------------------------------------ */

START_TEST(test_numbers)
{
    static const vcase cases[] = {
        {INT2, "-32768", "-32768"},
        {INT2, "32767", "32767"},
        {INT4, "0", "0"},
        {INT4, "-2147483648", "-2147483648"},
        {INT8, "9223372036854775807", "9223372036854775807"},
        {INT8, "-9223372036854775808", "-9223372036854775808"},
        {INT8, "9223372036854775808", "\"9223372036854775808\""},
        {INT8, "-9223372036854775809", "\"-9223372036854775809\""},
        {INT8, "99999999999999999999", "\"99999999999999999999\""},
        {OID, "4294967295", "4294967295"},
        {INT4, "12a", "\"12a\""},
        {INT4, "-0", "0"},
        {INT4, "007", "7"},
        {INT8, "-012", "-12"},
        {INT4, "-", "\"-\""},
        {INT4, "", "\"\""},
        {INT4, " 1", "\" 1\""},
        {BOOL, "t", "true"},
        {BOOL, "f", "false"},
        {BOOL, "true", "\"true\""},
        {FLOAT8, "1.5", "1.5"},
        {FLOAT8, "-0.25", "-0.25"},
        {FLOAT8, "3", "3.0"},
        {FLOAT8, "1e+100", "1e100"},
        {FLOAT8, "NaN", "\"NaN\""},
        {FLOAT8, "Infinity", "\"Infinity\""},
        {FLOAT8, "-Infinity", "\"-Infinity\""},
        {FLOAT4, "NaN", "\"NaN\""},
        {FLOAT4, "Infinity", "\"Infinity\""},
        {FLOAT4, "-Infinity", "\"-Infinity\""},
        /* jansson prints 17 digits: the same double as Debezium's 0.1 */
        {FLOAT4, "0.1", "0.10000000000000001"},
        {FLOAT4, "2.5", "2.5"},
        {FLOAT8, "0x10", "\"0x10\""},
        {FLOAT8, "inf", "\"inf\""},
        {FLOAT8, "1e999", "\"1e999\""},
        {FLOAT8, "1.5 ", "\"1.5 \""},
        {NUMERIC, "123.4500", "\"123.4500\""},
        {NUMERIC, "-0.000001", "\"-0.000001\""},
        {NUMERIC, "NaN", "\"NaN\""},
        {NUMERIC, "Infinity", "\"Infinity\""},
        {MONEY, "$1,234.50", "\"$1,234.50\""},
        {MONEY, "-$0.01", "\"-$0.01\""},
    };
    CHECK_CASES(cases);
}
END_TEST

START_TEST(test_times)
{
    static const vcase cases[] = {
        {DATE, "2024-01-31", "\"2024-01-31\""},
        {DATE, "infinity", "\"infinity\""},
        {DATE, "0044-03-15 BC", "\"0044-03-15 BC\""},
        {TIME, "10:00:00.123", "\"10:00:00.123\""},
        {TIMETZ, "10:00:00+02", "\"10:00:00+02\""},
        {INTERVAL, "1 year 2 mons 3 days 04:05:06.5",
         "\"1 year 2 mons 3 days 04:05:06.5\""},
        {TIMESTAMP, "2024-01-31 10:00:00.123456",
         "\"2024-01-31T10:00:00.123456Z\""},
        {TIMESTAMP, "2024-01-31 10:00:00", "\"2024-01-31T10:00:00Z\""},
        {TIMESTAMP, "0001-01-01 00:00:00", "\"0001-01-01T00:00:00Z\""},
        {TIMESTAMP, "infinity", "\"infinity\""},
        {TIMESTAMP, "-infinity", "\"-infinity\""},
        {TIMESTAMP, "0044-03-15 12:00:00 BC", "\"0044-03-15 12:00:00 BC\""},
        {TIMESTAMP, "2023-02-29 10:00:00", "\"2023-02-29 10:00:00\""},
        {TIMESTAMP, "2024-01-31 10:00:00+01", "\"2024-01-31 10:00:00+01\""},
        {TIMESTAMP, "2024-01-31T10:00:00", "\"2024-01-31T10:00:00\""},
        {TIMESTAMPTZ, "2024-01-31 10:00:00.5+01",
         "\"2024-01-31T09:00:00.5Z\""},
        {TIMESTAMPTZ, "2024-01-31 10:00:00+00", "\"2024-01-31T10:00:00Z\""},
        /* back over midnight and the year */
        {TIMESTAMPTZ, "2024-01-01 03:00:00.000001+05:30",
         "\"2023-12-31T21:30:00.000001Z\""},
        /* forward over midnight and the year, seconds in the offset */
        {TIMESTAMPTZ, "2023-12-31 22:00:00-03:00:15",
         "\"2024-01-01T01:00:15Z\""},
        {TIMESTAMPTZ, "2024-02-28 23:30:00-01", "\"2024-02-29T00:30:00Z\""},
        {TIMESTAMPTZ, "2023-02-28 23:30:00-01", "\"2023-03-01T00:30:00Z\""},
        {TIMESTAMPTZ, "2100-02-28 23:30:00-01", "\"2100-03-01T00:30:00Z\""},
        {TIMESTAMPTZ, "2000-03-01 00:30:00+01", "\"2000-02-29T23:30:00Z\""},
        {TIMESTAMPTZ, "1969-12-31 23:00:00-02", "\"1970-01-01T01:00:00Z\""},
        {TIMESTAMPTZ, "10000-01-01 00:00:00+00", "\"10000-01-01T00:00:00Z\""},
        {TIMESTAMPTZ, "294276-12-31 23:59:59.999999+00",
         "\"294276-12-31T23:59:59.999999Z\""},
        {TIMESTAMPTZ, "infinity", "\"infinity\""},
        {TIMESTAMPTZ, "-infinity", "\"-infinity\""},
        /* UTC would be 1 BC */
        {TIMESTAMPTZ, "0001-01-01 00:30:00+01",
         "\"0001-01-01 00:30:00+01\""},
        {TIMESTAMPTZ, "0044-03-15 12:00:00+00 BC",
         "\"0044-03-15 12:00:00+00 BC\""},
        {TIMESTAMPTZ, "2024-01-31 10:00:00", "\"2024-01-31 10:00:00\""},
        {TIMESTAMPTZ, "2024-01-31 10:00:00+1", "\"2024-01-31 10:00:00+1\""},
        {TIMESTAMPTZ, "2024-01-31 10:00:00+01:",
         "\"2024-01-31 10:00:00+01:\""},
        {TIMESTAMPTZ, "2024-01-31 10:00:00.+01",
         "\"2024-01-31 10:00:00.+01\""},
        {TIMESTAMPTZ, "2024-13-01 10:00:00+01", "\"2024-13-01 10:00:00+01\""},
        {TIMESTAMPTZ, "2024-01-31 24:00:00+01", "\"2024-01-31 24:00:00+01\""},
        {TIMESTAMPTZ, "Wed Jan 31 10:00:00 2024 CET",
         "\"Wed Jan 31 10:00:00 2024 CET\""},
        /* in UTC already: the text itself, when it is a timestamp */
        {TIMESTAMPTZ, "2024-02-29 10:00:00.123456789+00",
         "\"2024-02-29T10:00:00.123456789Z\""},
        {TIMESTAMPTZ, "9999-12-31 23:59:59.9+00",
         "\"9999-12-31T23:59:59.9Z\""},
        {TIMESTAMPTZ, "2024-01-31 10:00:00.1234567890+00",
         "\"2024-01-31 10:00:00.1234567890+00\""},
        {TIMESTAMPTZ, "2024-01-31 10:00:00.+00",
         "\"2024-01-31 10:00:00.+00\""},
        {TIMESTAMPTZ, "2023-02-29 10:00:00+00", "\"2023-02-29 10:00:00+00\""},
        {TIMESTAMPTZ, "2024-04-31 10:00:00+00", "\"2024-04-31 10:00:00+00\""},
        {TIMESTAMPTZ, "2024-00-10 10:00:00+00", "\"2024-00-10 10:00:00+00\""},
        {TIMESTAMPTZ, "2024-01-00 10:00:00+00", "\"2024-01-00 10:00:00+00\""},
        {TIMESTAMPTZ, "2024-01-31 24:00:00+00", "\"2024-01-31 24:00:00+00\""},
        {TIMESTAMPTZ, "2024-01-31 23:60:00+00", "\"2024-01-31 23:60:00+00\""},
        {TIMESTAMPTZ, "2024-01-31 23:59:60+00", "\"2024-01-31 23:59:60+00\""},
        {TIMESTAMPTZ, "2024-01-31 1a:00:00+00", "\"2024-01-31 1a:00:00+00\""},
        {TIMESTAMPTZ, "2024-01-31 10:00:00+0000",
         "\"2024-01-31 10:00:00+0000\""},
        {TIMESTAMPTZ, "0000-01-01 00:00:00+00", "\"0000-01-01 00:00:00+00\""},
        {TIMESTAMP, "0000-01-01 00:00:00", "\"0000-01-01T00:00:00Z\""},
        {TIMESTAMP, "2024-01-31 10:00:00.5+00",
         "\"2024-01-31 10:00:00.5+00\""},
    };
    CHECK_CASES(cases);
}
END_TEST

START_TEST(test_text_types)
{
    static const vcase cases[] = {
        {TEXT, "plain", "\"plain\""},
        {TEXT, "", "\"\""},
        {TEXT, "a \"quoted\"\\ line\n\ttab",
         "\"a \\\"quoted\\\"\\\\ line\\n\\ttab\""},
        {TEXT, "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80",
         "\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\""},
        {VARCHAR, "v", "\"v\""},
        {BPCHAR, "ab  ", "\"ab  \""},
        {CHAR, "x", "\"x\""},
        {NAME, "pg_class", "\"pg_class\""},
        {JSON, "{\"a\": [1, 2]}", "\"{\\\"a\\\": [1, 2]}\""},
        {JSONB, "{\"a\": 1}", "\"{\\\"a\\\": 1}\""},
        {XML, "<a>b</a>", "\"<a>b</a>\""},
        {UUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
         "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\""},
        {INET, "192.168.0.1/24", "\"192.168.0.1/24\""},
        {CIDR, "10.0.0.0/8", "\"10.0.0.0/8\""},
        {MACADDR, "08:00:2b:01:02:03", "\"08:00:2b:01:02:03\""},
        {POINT, "(1,2)", "\"(1,2)\""},
        {TSVECTOR, "'a' 'b'", "\"'a' 'b'\""},
        {99999, "user type", "\"user type\""},
    };
    CHECK_CASES(cases);
}
END_TEST

START_TEST(test_bytea)
{
    static const vcase cases[] = {
        {BYTEA, "\\x0102ff", "\"AQL/\""},
        {BYTEA, "\\x", "\"\""},
        {BYTEA, "\\x66", "\"Zg==\""},
        {BYTEA, "\\x666F", "\"Zm8=\""},
        {BYTEA, "\\x666f6f626172", "\"Zm9vYmFy\""},
        /* the escape form, odd digits, bad digits: left as text */
        {BYTEA, "abc\\000", "\"abc\\\\000\""},
        {BYTEA, "\\x0", "\"\\\\x0\""},
        {BYTEA, "\\x0g", "\"\\\\x0g\""},
        {BYTEA, "\\x0102zz", "\"\\\\x0102zz\""},
        {BYTEA, "\\", "\"\\\\\""},
        {BYTEA, "", "\"\""},
    };
    CHECK_CASES(cases);

    /* past the stack buffer: the same as dbz_base64 of the bytes */
    enum { N = 1000 };
    uint8_t bytes[N];
    char hex[2 + 2 * N + 1] = "\\x";
    for (int i = 0; i < N; i++) {
        bytes[i] = (uint8_t)(i * 37 + 11);
        snprintf(hex + 2 + 2 * i, 3, "%02x", bytes[i]);
    }
    char *b64 = dbz_base64(bytes, N);
    ck_assert_ptr_nonnull(b64);
    char *want = malloc(strlen(b64) + 3);
    ck_assert_ptr_nonnull(want);
    sprintf(want, "\"%s\"", b64);
    char *got = render(BYTEA, hex, strlen(hex));
    ck_assert_str_eq(got, want);
    free(got);
    free(want);
    free(b64);
}
END_TEST

START_TEST(test_base64)
{
    static const char *const vectors[][2] = {
        {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
    };
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        char *s = dbz_base64((const uint8_t *)vectors[i][0],
                             strlen(vectors[i][0]));
        ck_assert_ptr_nonnull(s);
        ck_assert_str_eq(s, vectors[i][1]);
        free(s);
    }
    static const uint8_t all[] = {0x00, 0xff, 0xfe, 0x80, 0x7f};
    char *s = dbz_base64(all, sizeof all);
    ck_assert_str_eq(s, "AP/+gH8=");
    free(s);
}
END_TEST

START_TEST(test_invalid_utf8)
{
    static const vcase cases[] = {
        {TEXT, "a\xFF" "b", "\"a\xEF\xBF\xBD" "b\""},
        /* overlong '/', a surrogate, a cut-off sequence, past U+10FFFF */
        {TEXT, "\xC0\xAF", "\"\xEF\xBF\xBD\xEF\xBF\xBD\""},
        {TEXT, "\xED\xA0\x80",
         "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\""},
        {TEXT, "x\xE2\x82", "\"x\xEF\xBF\xBD\xEF\xBF\xBD\""},
        {TEXT, "\xF4\x90\x80\x80",
         "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\""},
        {TEXT, "ok \xE2\x82\xAC \x80", "\"ok \xE2\x82\xAC \xEF\xBF\xBD\""},
        {INT4, "1\xFF", "\"1\xEF\xBF\xBD\""},
        {TEXT_A, "{\"\xFF\",b}", "[\"\xEF\xBF\xBD\",\"b\"]"},
        {TIMESTAMPTZ, "\xFF", "\"\xEF\xBF\xBD\""},
    };
    CHECK_CASES(cases);

    /* a NUL inside a value is text like any other */
    char *s = render(TEXT, "a\0b", 3);
    ck_assert_str_eq(s, "\"a\\u0000b\"");
    free(s);
}
END_TEST

/* ---- arrays ------------------------------------------------------------- */

START_TEST(test_arrays)
{
    static const vcase cases[] = {
        {INT4_A, "{1,2,NULL}", "[1,2,null]"},
        {INT4_A, "{{1,2},{3,4}}", "[[1,2],[3,4]]"},
        {INT4_A, "{{{1},{2}},{{3},{4}}}", "[[[1],[2]],[[3],[4]]]"},
        {INT4_A, "{}", "[]"},
        {INT4_A, "[0:1]={1,2}", "[1,2]"},
        {INT4_A, "[-1:0][1:2]={{1,2},{3,4}}", "[[1,2],[3,4]]"},
        {INT2_A, "{-32768,32767}", "[-32768,32767]"},
        {INT8_A, "{9223372036854775807,null}", "[9223372036854775807,null]"},
        {OID_A, "{1,4294967295}", "[1,4294967295]"},
        {TEXT_A, "{\"a b\",\"x\\\"y\",NULL,\"NULL\",plain,\"back\\\\slash\"}",
         "[\"a b\",\"x\\\"y\",null,\"NULL\",\"plain\",\"back\\\\slash\"]"},
        {TEXT_A, "{\"\",\"{,}\"}", "[\"\",\"{,}\"]"},
        {TEXT_A, "{\"\\\\\",\"\\\"\"}", "[\"\\\\\",\"\\\"\"]"},
        {VARCHAR_A, "{a,\"b c\"}", "[\"a\",\"b c\"]"},
        {BPCHAR_A, "{\"a \",b}", "[\"a \",\"b\"]"},
        {CHAR_A, "{a,\"\\\\\"}", "[\"a\",\"\\\\\"]"},
        {NAME_A, "{pg_class}", "[\"pg_class\"]"},
        {BOOL_A, "{t,f,NULL}", "[true,false,null]"},
        {FLOAT8_A, "{1.5,NaN,-Infinity}", "[1.5,\"NaN\",\"-Infinity\"]"},
        {FLOAT4_A, "{2.5}", "[2.5]"},
        {NUMERIC_A, "{1.50,NaN}", "[\"1.50\",\"NaN\"]"},
        {DATE_A, "{2024-01-31,infinity}", "[\"2024-01-31\",\"infinity\"]"},
        {TIME_A, "{10:00:00}", "[\"10:00:00\"]"},
        {INTERVAL_A, "{\"1 day\"}", "[\"1 day\"]"},
        {TIMESTAMP_A, "{\"2024-01-31 10:00:00\"}",
         "[\"2024-01-31T10:00:00Z\"]"},
        {TIMESTAMPTZ_A, "{\"2024-01-31 10:00:00+01\",NULL}",
         "[\"2024-01-31T09:00:00Z\",null]"},
        {UUID_A, "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
         "[\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"]"},
        {JSONB_A, "{\"{\\\"a\\\": 1}\",\"[]\"}",
         "[\"{\\\"a\\\": 1}\",\"[]\"]"},
        {JSON_A, "{\"{}\"}", "[\"{}\"]"},
        {BYTEA_A, "{\"\\\\x0102ff\",NULL}", "[\"AQL/\",null]"},
        {INET_A, "{10.0.0.1,::1}", "[\"10.0.0.1\",\"::1\"]"},
        /* six dimensions is PostgreSQL's most */
        {INT4_A, "{{{{{{1}}}}}}", "[[[[[[1]]]]]]"},
        /* types not listed: their text */
        {BOX_A, "{(1,1),(0,0);(2,2),(1,1)}",
         "\"{(1,1),(0,0);(2,2),(1,1)}\""},
    };
    CHECK_CASES(cases);
}
END_TEST

START_TEST(test_arrays_malformed)
{
    static const char *const bad[] = {
        "", "{", "}", "{1,2", "{1,,2}", "{,1}", "{1,}", "{1,2}x", "x{1}",
        "{\"a}", "{\"a\\}", "{\"a\"b}", "{{1},2}", "{1,{2}}", "{{1}",
        "[0:1={1}", "[0:1]{1}", "[a:1]={1}", "[0:1]=", "[", "=", "{\\1}",
        "{{{{{{{1}}}}}}}", "{1}}", "{{1}}}", "{ }", "{\"}", "{1 }", "{a b}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *want_j = json_string(bad[i]);
        char *want = dbz_dump(want_j, NULL);
        char *got = render(INT4_A, bad[i], strlen(bad[i]));
        ck_assert_msg(strcmp(got, want) == 0, "%s: got %s", bad[i], got);
        free(got);
        free(want);
        json_decref(want_j);
    }
}
END_TEST

/* ---- rows and keys ------------------------------------------------------ */

static struct sink_col cols3[] = {
    {.name = "id", .type_oid = INT4, .typmod = -1, .key = true},
    {.name = "name", .type_oid = TEXT, .typmod = -1},
    {.name = "body", .type_oid = TEXT, .typmod = -1},
};

static sink_rel rel3(char replident, bool key)
{
    sink_rel r = {.schema = "public", .name = "orders",
                  .replident = replident, .ncols = 3, .cols = cols3};
    cols3[0].key = key;
    cols3[1].key = false;
    cols3[2].key = replident == 'f';
    cols3[0].pk = cols3[1].pk = cols3[2].pk = false;
    if (replident == 'f')
        cols3[0].key = cols3[1].key = true;
    return r;
}

static const sink_value row3[] = {
    {'t', 2, "42"}, {'t', 3, "Ann"}, {'u', 0, NULL},
};

START_TEST(test_rows)
{
    sink_rel r = rel3('d', true);
    check_dump(dbz_row(&r, row3, false),
               "{\"id\":42,\"name\":\"Ann\","
               "\"body\":\"__debezium_unavailable_value\"}");
    check_dump(dbz_row(&r, row3, true), "{\"id\":42}");
    check_dump(dbz_row(&r, NULL, false), "null");

    static const sink_value nulls[] = {
        {'n', 0, NULL}, {'n', 0, NULL}, {'n', 0, NULL},
    };
    check_dump(dbz_row(&r, nulls, false),
               "{\"id\":null,\"name\":null,\"body\":null}");

    /* a column name from an SQL_ASCII database */
    struct sink_col odd[] = {{.name = "n\xE9", .type_oid = BOOL}};
    sink_rel ro = {.replident = 'd', .ncols = 1, .cols = odd};
    static const sink_value t[] = {{'t', 1, "t"}};
    check_dump(dbz_row(&ro, t, false), "{\"n\xEF\xBF\xBD\":true}");
}
END_TEST

START_TEST(test_keys)
{
    sink_rel r = rel3('d', true);
    check_dump(dbz_key(&r, row3), "{\"id\":42}");

    /* a delete's old key tuple: the others are 'n' */
    static const sink_value old[] = {
        {'t', 1, "7"}, {'n', 0, NULL}, {'n', 0, NULL},
    };
    check_dump(dbz_key(&r, old), "{\"id\":7}");

    /* a key column missing from the tuple renders null */
    static const sink_value none[] = {
        {'n', 0, NULL}, {'t', 1, "x"}, {'n', 0, NULL},
    };
    check_dump(dbz_key(&r, none), "{\"id\":null}");

    /* USING INDEX on two columns */
    struct sink_col cols[] = {
        {.name = "a", .type_oid = TEXT, .key = true},
        {.name = "v", .type_oid = INT4},
        {.name = "b", .type_oid = DATE, .key = true},
    };
    sink_rel ri = {.replident = 'i', .ncols = 3, .cols = cols};
    static const sink_value vals[] = {
        {'t', 1, "x"}, {'t', 1, "1"}, {'t', 10, "2024-01-31"},
    };
    check_dump(dbz_key(&ri, vals), "{\"a\":\"x\",\"b\":\"2024-01-31\"}");

    /* FULL with a primary key: keyed by it, as Debezium does */
    r = rel3('f', true);
    cols3[0].pk = true;
    ck_assert(dbz_has_key(&r));
    check_dump(dbz_key(&r, row3), "{\"id\":42}");
    check_dump(dbz_row(&r, row3, true), "{\"id\":42}");

    /* FULL, no key at all (DEFAULT without a primary key, NOTHING) */
    r = rel3('f', false);
    ck_assert(!dbz_has_key(&r));
    check_dump(dbz_key(&r, row3), "null");
    r = rel3('d', false);
    check_dump(dbz_key(&r, row3), "null");
    r = rel3('n', false);
    check_dump(dbz_key(&r, row3), "null");
}
END_TEST

/* ---- events ------------------------------------------------------------- */

static const dbz_source src = {
    .version = "0.1.0", .name = "shop", .db = "app", .schema = "public",
    .table = "orders", .ts_ms = 1706695200000, .snapshot = "false",
    .txid = 571, .lsn = 24023128, .last_commit_lsn = 24023000,
};

#define SOURCE_JSON                                                         \
    "\"source\":{\"version\":\"0.1.0\",\"connector\":\"postgresql\","       \
    "\"name\":\"shop\",\"ts_ms\":1706695200000,\"snapshot\":\"false\","     \
    "\"db\":\"app\",\"sequence\":\"[\\\"24023000\\\",\\\"24023128\\\"]\","  \
    "\"schema\":\"public\",\"table\":\"orders\",\"txId\":571,"              \
    "\"lsn\":24023128}"

START_TEST(test_envelope)
{
    sink_rel r = rel3('d', true);
    static const sink_value after[] = {
        {'t', 2, "42"}, {'t', 3, "Bob"}, {'t', 1, "b"},
    };
    check_dump(dbz_envelope('c', NULL, dbz_row(&r, after, false), &src, NULL,
                            1706695200123),
               "{\"before\":null,\"after\":{\"id\":42,\"name\":\"Bob\","
               "\"body\":\"b\"}," SOURCE_JSON ",\"op\":\"c\","
               "\"ts_ms\":1706695200123}");
    check_dump(dbz_envelope('u', dbz_row(&r, row3, false),
                            dbz_row(&r, after, false), &src, NULL, 5),
               "{\"before\":{\"id\":42,\"name\":\"Ann\","
               "\"body\":\"__debezium_unavailable_value\"},"
               "\"after\":{\"id\":42,\"name\":\"Bob\",\"body\":\"b\"},"
               SOURCE_JSON ",\"op\":\"u\",\"ts_ms\":5}");
    check_dump(dbz_envelope('d', dbz_row(&r, row3, true), NULL, &src, NULL, 6),
               "{\"before\":{\"id\":42},\"after\":null," SOURCE_JSON
               ",\"op\":\"d\",\"ts_ms\":6}");
}
END_TEST

START_TEST(test_envelope_transaction)
{
    dbz_source first = src;
    first.last_commit_lsn = 0;
    first.snapshot = "last";
    first.lsn = (lsn_t)0x16B3748 << 8;
    dbz_txinfo tx = {"571:24023128", 3, 2};
    check_dump(dbz_envelope('r', NULL, json_object(), &first, &tx, 7),
               "{\"before\":null,\"after\":{},\"source\":{\"version\":"
               "\"0.1.0\",\"connector\":\"postgresql\",\"name\":\"shop\","
               "\"ts_ms\":1706695200000,\"snapshot\":\"last\",\"db\":\"app\","
               "\"sequence\":\"[null,\\\"6093752320\\\"]\",\"schema\":"
               "\"public\",\"table\":\"orders\",\"txId\":571,"
               "\"lsn\":6093752320},\"op\":\"r\",\"ts_ms\":7,"
               "\"transaction\":{\"id\":\"571:24023128\",\"total_order\":3,"
               "\"data_collection_order\":2}}");
}
END_TEST

START_TEST(test_message)
{
    dbz_source msrc = src;
    msrc.schema = "";
    msrc.table = "";
    check_dump(dbz_message_key("outbox"), "{\"prefix\":\"outbox\"}");
    check_dump(dbz_message("outbox", (const uint8_t *)"hello", 5, &msrc, 9),
               "{\"op\":\"m\",\"ts_ms\":9,\"source\":{\"version\":\"0.1.0\","
               "\"connector\":\"postgresql\",\"name\":\"shop\","
               "\"ts_ms\":1706695200000,\"snapshot\":\"false\","
               "\"db\":\"app\",\"sequence\":"
               "\"[\\\"24023000\\\",\\\"24023128\\\"]\",\"schema\":\"\","
               "\"table\":\"\",\"txId\":571,\"lsn\":24023128},"
               "\"message\":{\"prefix\":\"outbox\","
               "\"content\":\"aGVsbG8=\"}}");
    json_t *empty = dbz_message("p", NULL, 0, &msrc, 9);
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(empty, "message"), "content")), "");
    json_decref(empty);
}
END_TEST

START_TEST(test_txn)
{
    check_dump(dbz_txn_key("571:24023128"), "{\"id\":\"571:24023128\"}");
    check_dump(dbz_txn_begin("571:24023128", 1),
               "{\"status\":\"BEGIN\",\"id\":\"571:24023128\","
               "\"event_count\":null,\"data_collections\":null,\"ts_ms\":1}");
    const char *const colls[] = {"public.orders", "public.items"};
    const int64_t counts[] = {2, 1};
    check_dump(dbz_txn_end("571:24023128", 2, 3, colls, counts, 2),
               "{\"status\":\"END\",\"id\":\"571:24023128\",\"event_count\":3,"
               "\"data_collections\":[{\"data_collection\":\"public.orders\","
               "\"event_count\":2},{\"data_collection\":\"public.items\","
               "\"event_count\":1}],\"ts_ms\":2}");
    check_dump(dbz_txn_end("1:2", 2, 0, NULL, NULL, 0),
               "{\"status\":\"END\",\"id\":\"1:2\",\"event_count\":0,"
               "\"data_collections\":[],\"ts_ms\":2}");
}
END_TEST

/* ---- topics ------------------------------------------------------------- */

static void check_topic(const char *tmpl, const char *table, const char *want)
{
    char *t = dbz_topic(tmpl, "shop", "orders-svc", "public", table);
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(t, want);
    free(t);
}

START_TEST(test_topic)
{
    check_topic("{name}.{schema}.{table}", "orders", "shop.public.orders");
    check_topic("{name}.{schema}.{table}", "Order Items",
                "shop.public.Order_Items");
    check_topic("{service}.{table}", "caf\xC3\xA9", "orders-svc.caf__");
    check_topic("{name}/{unknown}.{table", "t", "shop__unknown_._table");
    check_topic("{name}{name}", "t", "shopshop");
    check_topic("", "t", "");
    check_topic("cdc.{table}", "a\"b$c{d}", "cdc.a_b_c_d_");

    char *t = dbz_topic("{name}.{table}", NULL, NULL, NULL, NULL);
    ck_assert_str_eq(t, ".");
    free(t);

    char longname[400];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    t = dbz_topic("{name}.{table}", "shop", NULL, NULL, longname);
    ck_assert_uint_eq(strlen(t), 249);
    ck_assert(strncmp(t, "shop.aaa", 8) == 0);
    free(t);
    t = dbz_topic(longname, "shop", NULL, NULL, NULL);
    ck_assert_uint_eq(strlen(t), 249);
    free(t);
}
END_TEST

/* ---- hostile input ------------------------------------------------------ */

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}

static const uint32_t fuzz_types[] = {
    BOOL, BYTEA, INT2, INT4, INT8, OID, FLOAT4, FLOAT8, NUMERIC, TEXT,
    DATE, TIMESTAMP, TIMESTAMPTZ, JSONB, BOOL_A, BYTEA_A, CHAR_A, NAME_A,
    INT2_A, INT4_A, TEXT_A, BPCHAR_A, VARCHAR_A, INT8_A, FLOAT4_A, FLOAT8_A,
    OID_A, INET_A, TIMESTAMP_A, DATE_A, TIME_A, TIMESTAMPTZ_A, INTERVAL_A,
    NUMERIC_A, UUID_A, JSONB_A, JSON_A, BOX_A,
};

/* Valid literals to mutate, so the parsers get past their first byte. */
static const char *const seeds[] = {
    "{1,2,NULL}", "{{1,2},{3,4}}", "[0:1]={\"a b\",\"x\\\"y\"}",
    "{\"\\\\x0102ff\",NULL}", "2024-01-31 10:00:00.5+05:30",
    "{\"2023-12-31 22:00:00-03:00:15\"}", "\\x0102ff", "{t,f}",
    "{1.5,NaN,-Infinity}", "-9223372036854775808", "{{{{{{1}}}}}}",
};

static size_t fuzz_input(char *buf, size_t cap)
{
    static const char alphabet[] = "{}\",\\NUL[]:=-+.0123456789 x:tfT";
    size_t n;
    if (rng() % 2) {
        n = rng() % cap;
        for (size_t i = 0; i < n; i++)
            buf[i] = rng() % 3 ? alphabet[rng() % (sizeof alphabet - 1)]
                               : (char)rng();
        return n;
    }
    const char *seed = seeds[rng() % (sizeof seeds / sizeof seeds[0])];
    n = strlen(seed);
    memcpy(buf, seed, n);
    for (int k = 1 + rng() % 3; k > 0 && n > 0; k--) {
        size_t at = rng() % n;
        switch (rng() % 3) {
        case 0:
            buf[at] = rng() % 2 ? alphabet[rng() % (sizeof alphabet - 1)]
                                : (char)rng();
            break;
        case 1:
            n = at;                                  /* cut */
            break;
        default:
            if (n + 1 < cap) {                       /* insert */
                memmove(buf + at + 1, buf + at, n - at);
                buf[at] = alphabet[rng() % (sizeof alphabet - 1)];
                n++;
            }
        }
    }
    return n;
}

START_TEST(test_hostile)
{
    char buf[64];
    for (int i = 0; i < 4000; i++) {
        size_t n = fuzz_input(buf, sizeof buf);
        for (size_t t = 0; t < sizeof fuzz_types / sizeof fuzz_types[0]; t++) {
            char *s = render(fuzz_types[t], buf, n);
            json_error_t err;
            json_t *back =
                json_loads(s, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
            ck_assert_msg(back != NULL, "type %u: %s: %s", fuzz_types[t], s,
                          err.text);
            json_decref(back);
            free(s);
        }
    }
}
END_TEST


/* ---- Kafka Connect schemas and typed values (kafka.schemas) ------------- */

enum { MONEY_A = 791, TIMETZ_A = 1270 };

/* numeric(p,s)'s typmod, as PostgreSQL stores it. */
#define NUMTYPMOD(p, s) ((int32_t)((((p) << 16) | ((s) & 0x7FF)) + 4))

static const dbz_mode adaptive = {DBZ_DECIMAL_STRING, true};
static const dbz_mode as_double = {DBZ_DECIMAL_DOUBLE, true};
static const dbz_mode precise = {DBZ_DECIMAL_PRECISE, true};
static const dbz_mode precise_iso = {DBZ_DECIMAL_PRECISE, false};

typedef struct tcase {
    const dbz_mode *m;
    uint32_t oid;
    int32_t typmod;
    const char *text;
    const char *want;
} tcase;

static char *render_typed(const dbz_mode *m, uint32_t oid, int32_t typmod,
                          const char *text, size_t len)
{
    char *buf = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(buf);
    memcpy(buf, text, len);
    json_t *j = dbz_value_typed(m, oid, typmod, buf, (uint32_t)len);
    free(buf);
    ck_assert_ptr_nonnull(j);
    char *s = dbz_dump(j, NULL);
    ck_assert_ptr_nonnull(s);
    json_decref(j);
    return s;
}

static void check_typed(const tcase *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const tcase *c = &cases[i];
        char *s = render_typed(c->m, c->oid, c->typmod, c->text,
                               strlen(c->text));
        ck_assert_msg(strcmp(s, c->want) == 0,
                      "type %u(%d), \"%s\": got %s, want %s", c->oid,
                      c->typmod, c->text, s, c->want);
        free(s);
    }
}

#define CHECK_TYPED(c) check_typed((c), sizeof(c) / sizeof((c)[0]))

/*
 * time.precision.mode=adaptive as Debezium's PostgreSQL connector
 * documents it: date io.debezium.time.Date (days since the epoch),
 * time(1-3) Time (ms past midnight), time(4-6) and time MicroTime (µs),
 * timestamp(1-3) Timestamp (ms since the epoch), timestamp(4-6) and
 * timestamp MicroTimestamp (µs), timestamptz ZonedTimestamp and timetz
 * ZonedTime (strings in UTC), interval MicroDuration (µs, a month of
 * 365.25 / 12 days).
 */
START_TEST(test_adaptive_times)
{
    static const tcase cases[] = {
        {&adaptive, DATE, -1, "2024-01-31", "19753"},
        {&adaptive, DATE, -1, "1970-01-01", "0"},
        {&adaptive, DATE, -1, "1969-12-31", "-1"},
        {&adaptive, DATE, -1, "2000-02-29", "11016"},
        {&adaptive, DATE, -1, "infinity", "\"infinity\""},
        {&adaptive, TIME, -1, "10:15:30.5", "36930500000"},
        {&adaptive, TIME, 6, "00:00:00.000001", "1"},
        {&adaptive, TIME, 3, "10:15:30.5", "36930500"},
        {&adaptive, TIME, 0, "10:15:30", "36930000"},
        {&adaptive, TIME, -1, "24:00:00", "86400000000"},
        {&adaptive, TIMETZ, -1, "10:15:30+02", "\"08:15:30Z\""},
        {&adaptive, TIMETZ, -1, "00:30:00.25-01:30", "\"02:00:00.25Z\""},
        {&adaptive, TIMETZ, -1, "01:00:00+02", "\"23:00:00Z\""},
        {&adaptive, TIMESTAMP, -1, "2024-01-31 10:00:00.5",
         "1706695200500000"},
        {&adaptive, TIMESTAMP, 3, "2024-01-31 10:00:00.5", "1706695200500"},
        {&adaptive, TIMESTAMP, -1, "1969-12-31 23:59:59.999999", "-1"},
        {&adaptive, TIMESTAMP, -1, "infinity", "\"infinity\""},
        {&adaptive, TIMESTAMPTZ, -1, "2024-01-31 10:00:00+02",
         "\"2024-01-31T08:00:00Z\""},
        {&adaptive, INTERVAL, -1, "1 year 2 mons 3 days 04:05:06.5",
         "37091106500000"},
        {&adaptive, INTERVAL, -1, "-1 days +02:00:00", "-79200000000"},
        {&adaptive, INTERVAL, -1, "-00:00:01.5", "-1500000"},
        {&adaptive, INTERVAL, -1, "00:00:00", "0"},
        {&adaptive, INTERVAL, -1, "1 mon", "2629800000000"},
        {&adaptive, INTERVAL, -1, "100:00:00", "360000000000"},
        {&adaptive, INTERVAL, -1, "1 fortnight", "\"1 fortnight\""},
        {&adaptive, TIMESTAMP_A, -1, "{\"2024-01-31 10:00:00.5\",NULL}",
         "[1706695200500000,null]"},
        {&adaptive, DATE_A, -1, "{1970-01-02}", "[1]"},
        /* without the adaptive mode: as before, isostring */
        {&precise_iso, DATE, -1, "2024-01-31", "\"2024-01-31\""},
        {&precise_iso, TIMESTAMP, -1, "2024-01-31 10:00:00.5",
         "\"2024-01-31T10:00:00.5Z\""},
    };
    CHECK_TYPED(cases);
}
END_TEST

/*
 * decimal.handling.mode: string as numeric_out writes it; double a JSON
 * number; precise Connect's Decimal, the base64 of the unscaled value as
 * Java's BigInteger.toByteArray (big-endian two's complement, shortest),
 * or io.debezium.data.VariableScaleDecimal {"scale", "value"} for numeric
 * without a declared scale. money as a decimal of scale 2 (Debezium's
 * money.fraction.digits).
 */
START_TEST(test_decimal_modes)
{
    const int32_t n12_2 = NUMTYPMOD(12, 2);
    const tcase cases[] = {
        {&adaptive, NUMERIC, n12_2, "157.40", "\"157.40\""},
        {&adaptive, NUMERIC, -1, "NaN", "\"NaN\""},
        {&as_double, NUMERIC, n12_2, "157.40", "157.40000000000001"},
        {&as_double, NUMERIC, -1, "-0.5", "-0.5"},
        {&as_double, NUMERIC, -1, "NaN", "\"NaN\""},
        {&precise, NUMERIC, n12_2, "157.40", "\"PXw=\""},
        {&precise, NUMERIC, n12_2, "-157.40", "\"woQ=\""},
        {&precise, NUMERIC, n12_2, "-1.00", "\"nA==\""},
        {&precise, NUMERIC, n12_2, "0.00", "\"AA==\""},
        {&precise, NUMERIC, n12_2, "1.28", "\"AIA=\""},
        {&precise, NUMERIC, n12_2, "-1.28", "\"gA==\""},
        {&precise, NUMERIC, n12_2, "-1.29", "\"/38=\""},
        {&precise, NUMERIC, NUMTYPMOD(30, 2), "12345678901234567890.12",
         "\"Qu0SOwvYIDoU\""},
        {&precise, NUMERIC, NUMTYPMOD(5, -2), "12300", "\"ew==\""},
        {&precise, NUMERIC, -1, "1.50", "{\"scale\":2,\"value\":\"AJY=\"}"},
        {&precise, NUMERIC, -1, "-7", "{\"scale\":0,\"value\":\"+Q==\"}"},
        {&precise, NUMERIC, -1, "NaN", "null"},
        {&precise, NUMERIC, n12_2, "Infinity", "null"},
        {&adaptive, MONEY, -1, "$1,234.50", "\"1234.50\""},
        {&adaptive, MONEY, -1, "-$0.01", "\"-0.01\""},
        {&as_double, MONEY, -1, "$1,234.50", "1234.5"},
        {&precise, MONEY, -1, "$1,234.50", "\"AeI6\""},
        {&precise, MONEY, -1, "-$1.00", "\"nA==\""},
        {&precise, NUMERIC_A, n12_2, "{1.50,NULL,-1.00}",
         "[\"AJY=\",null,\"nA==\"]"},
        {&precise, MONEY_A, -1, "{\"$1,234.50\"}", "[\"AeI6\"]"},
        /* kafka.schemas off, string: money stays money_out's text */
        {NULL, MONEY, -1, "$1,234.50", "\"$1,234.50\""},
        {&precise_iso, NUMERIC, n12_2, "157.40", "\"PXw=\""},
    };
    CHECK_TYPED(cases);
}
END_TEST

typedef struct scase {
    const dbz_mode *m;
    uint32_t oid;
    int32_t typmod;
    const char *allowed;
    const char *want;
} scase;

#define OPT "\"optional\":true"
#define NAMED(n) "\"name\":\"" n "\",\"version\":1"

/*
 * Each type's field schema against Debezium's PostgreSQL data type
 * mapping (literal type, semantic type and its parameters).
 */
START_TEST(test_type_schemas)
{
    const scase cases[] = {
        {&adaptive, BOOL, -1, NULL, "{\"type\":\"boolean\"," OPT "}"},
        {&adaptive, INT2, -1, NULL, "{\"type\":\"int16\"," OPT "}"},
        {&adaptive, INT4, -1, NULL, "{\"type\":\"int32\"," OPT "}"},
        {&adaptive, INT8, -1, NULL, "{\"type\":\"int64\"," OPT "}"},
        {&adaptive, OID, -1, NULL, "{\"type\":\"int64\"," OPT "}"},
        {&adaptive, FLOAT4, -1, NULL, "{\"type\":\"float\"," OPT "}"},
        {&adaptive, FLOAT8, -1, NULL, "{\"type\":\"double\"," OPT "}"},
        {&adaptive, TEXT, -1, NULL, "{\"type\":\"string\"," OPT "}"},
        {&adaptive, VARCHAR, 124, NULL, "{\"type\":\"string\"," OPT "}"},
        {&adaptive, BPCHAR, 7, NULL, "{\"type\":\"string\"," OPT "}"},
        {&adaptive, INET, -1, NULL, "{\"type\":\"string\"," OPT "}"},
        {&adaptive, BYTEA, -1, NULL, "{\"type\":\"bytes\"," OPT "}"},
        {&adaptive, UUID, -1, NULL,
         "{\"type\":\"string\"," OPT "," NAMED("io.debezium.data.Uuid") "}"},
        {&adaptive, JSON, -1, NULL,
         "{\"type\":\"string\"," OPT "," NAMED("io.debezium.data.Json") "}"},
        {&adaptive, JSONB, -1, NULL,
         "{\"type\":\"string\"," OPT "," NAMED("io.debezium.data.Json") "}"},
        {&adaptive, XML, -1, NULL,
         "{\"type\":\"string\"," OPT "," NAMED("io.debezium.data.Xml") "}"},
        {&adaptive, TIMESTAMPTZ, -1, NULL,
         "{\"type\":\"string\"," OPT ","
         NAMED("io.debezium.time.ZonedTimestamp") "}"},
        {&adaptive, TIMETZ, -1, NULL,
         "{\"type\":\"string\"," OPT "," NAMED("io.debezium.time.ZonedTime")
         "}"},
        {&adaptive, DATE, -1, NULL,
         "{\"type\":\"int32\"," OPT "," NAMED("io.debezium.time.Date") "}"},
        {&adaptive, TIME, -1, NULL,
         "{\"type\":\"int64\"," OPT "," NAMED("io.debezium.time.MicroTime")
         "}"},
        {&adaptive, TIME, 3, NULL,
         "{\"type\":\"int32\"," OPT "," NAMED("io.debezium.time.Time") "}"},
        {&adaptive, TIMESTAMP, -1, NULL,
         "{\"type\":\"int64\"," OPT ","
         NAMED("io.debezium.time.MicroTimestamp") "}"},
        {&adaptive, TIMESTAMP, 2, NULL,
         "{\"type\":\"int64\"," OPT "," NAMED("io.debezium.time.Timestamp")
         "}"},
        {&adaptive, INTERVAL, -1, NULL,
         "{\"type\":\"int64\"," OPT ","
         NAMED("io.debezium.time.MicroDuration") "}"},
        {&adaptive, NUMERIC, NUMTYPMOD(12, 2), NULL,
         "{\"type\":\"string\"," OPT "}"},
        {&as_double, NUMERIC, NUMTYPMOD(12, 2), NULL,
         "{\"type\":\"double\"," OPT "}"},
        {&precise, NUMERIC, NUMTYPMOD(12, 2), NULL,
         "{\"type\":\"bytes\"," OPT ","
         NAMED("org.apache.kafka.connect.data.Decimal") ",\"parameters\":"
         "{\"scale\":\"2\",\"connect.decimal.precision\":\"12\"}}"},
        {&precise, NUMERIC, -1, NULL,
         "{\"type\":\"struct\",\"fields\":["
         "{\"type\":\"int32\",\"optional\":false,\"field\":\"scale\"},"
         "{\"type\":\"bytes\",\"optional\":false,\"field\":\"value\"}],"
         OPT "," NAMED("io.debezium.data.VariableScaleDecimal")
         ",\"doc\":\"Variable scaled decimal\"}"},
        {&adaptive, MONEY, -1, NULL, "{\"type\":\"string\"," OPT "}"},
        {&as_double, MONEY, -1, NULL, "{\"type\":\"double\"," OPT "}"},
        {&precise, MONEY, -1, NULL,
         "{\"type\":\"bytes\"," OPT ","
         NAMED("org.apache.kafka.connect.data.Decimal")
         ",\"parameters\":{\"scale\":\"2\"}}"},
        {&adaptive, TEXT_A, -1, NULL,
         "{\"type\":\"array\",\"items\":{\"type\":\"string\"," OPT "},"
         OPT "}"},
        {&adaptive, INT4_A, -1, NULL,
         "{\"type\":\"array\",\"items\":{\"type\":\"int32\"," OPT "},"
         OPT "}"},
        {&precise, NUMERIC_A, NUMTYPMOD(12, 2), NULL,
         "{\"type\":\"array\",\"items\":{\"type\":\"bytes\"," OPT ","
         NAMED("org.apache.kafka.connect.data.Decimal") ",\"parameters\":"
         "{\"scale\":\"2\",\"connect.decimal.precision\":\"12\"}}," OPT "}"},
        /* an enum whose labels are known; a domain or an enum that is
         * not: its text, a plain string */
        {&adaptive, 16385, -1, "pending,paid,shipped",
         "{\"type\":\"string\"," OPT "," NAMED("io.debezium.data.Enum")
         ",\"parameters\":{\"allowed\":\"pending,paid,shipped\"}}"},
        {&adaptive, 16390, -1, NULL, "{\"type\":\"string\"," OPT "}"},
        /* a key column */
        {&adaptive, INT8, -1, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const scase *c = &cases[i];
        bool key = c->want == NULL;
        json_t *j = dbz_type_schema(c->m, c->oid, c->typmod, !key, c->allowed);
        ck_assert_ptr_nonnull(j);
        char *s = dbz_dump(j, NULL);
        const char *want =
            key ? "{\"type\":\"int64\",\"optional\":false}" : c->want;
        ck_assert_msg(strcmp(s, want) == 0, "type %u(%d): got %s, want %s",
                      c->oid, c->typmod, s, want);
        free(s);
        json_decref(j);
    }
}
END_TEST

/*
 * The shop fixture's orders table (tests/fixtures/shop/schema.sql) with a
 * column of every other type the fixture uses: the key and envelope
 * schemas whole, and an insert's key and value in the envelope, values
 * rendered to match.
 */
static struct sink_col shop_cols[] = {
    {.name = "id", .type_oid = INT8, .typmod = -1, .key = true},
    {.name = "order_uuid", .type_oid = UUID, .typmod = -1},
    {.name = "status", .type_oid = 16385, .typmod = -1,
     .type_name = "\"public\".\"order_status\""},
    {.name = "total_amount", .type_oid = NUMERIC, .typmod = NUMTYPMOD(12, 2)},
    {.name = "currency", .type_oid = BPCHAR, .typmod = 7},
    {.name = "item_count", .type_oid = INT2, .typmod = -1},
    {.name = "shipping_address_id", .type_oid = INT4, .typmod = -1},
    {.name = "placed_at", .type_oid = TIMESTAMPTZ, .typmod = -1},
    {.name = "shipped_on", .type_oid = DATE, .typmod = -1},
    {.name = "email", .type_oid = 16390, .typmod = -1,
     .type_name = "\"public\".\"email_address\""},
    {.name = "avatar", .type_oid = BYTEA, .typmod = -1},
    {.name = "is_active", .type_oid = BOOL, .typmod = -1},
    {.name = "tags", .type_oid = TEXT_A, .typmod = -1},
    {.name = "settings", .type_oid = JSONB, .typmod = -1},
    {.name = "provider_response", .type_oid = JSON, .typmod = -1},
    {.name = "ip_address", .type_oid = INET, .typmod = -1},
    {.name = "quiet_from", .type_oid = TIME, .typmod = -1},
    {.name = "retention", .type_oid = INTERVAL, .typmod = -1},
    {.name = "weight", .type_oid = FLOAT4, .typmod = -1},
    {.name = "score", .type_oid = FLOAT8, .typmod = -1},
};

#define NCOLS(a) ((uint16_t)(sizeof(a) / sizeof((a)[0])))

static const char *const shop_allowed[NCOLS(shop_cols)] = {
    [2] = "pending,paid,shipped,delivered,cancelled",
};

#define SHOP_FIELDS                                                           \
    "{\"type\":\"int64\",\"optional\":false,\"field\":\"id\"},"               \
    "{\"type\":\"string\"," OPT "," NAMED("io.debezium.data.Uuid")            \
    ",\"field\":\"order_uuid\"},"                                             \
    "{\"type\":\"string\"," OPT "," NAMED("io.debezium.data.Enum")            \
    ",\"parameters\":{\"allowed\":"                                           \
    "\"pending,paid,shipped,delivered,cancelled\"},\"field\":\"status\"},"    \
    "{\"type\":\"bytes\"," OPT ","                                            \
    NAMED("org.apache.kafka.connect.data.Decimal") ",\"parameters\":"         \
    "{\"scale\":\"2\",\"connect.decimal.precision\":\"12\"},"                 \
    "\"field\":\"total_amount\"},"                                            \
    "{\"type\":\"string\"," OPT ",\"field\":\"currency\"},"                   \
    "{\"type\":\"int16\"," OPT ",\"field\":\"item_count\"},"                  \
    "{\"type\":\"int32\"," OPT ",\"field\":\"shipping_address_id\"},"         \
    "{\"type\":\"string\"," OPT ","                                           \
    NAMED("io.debezium.time.ZonedTimestamp") ",\"field\":\"placed_at\"},"     \
    "{\"type\":\"int32\"," OPT "," NAMED("io.debezium.time.Date")             \
    ",\"field\":\"shipped_on\"},"                                             \
    "{\"type\":\"string\"," OPT ",\"field\":\"email\"},"                      \
    "{\"type\":\"bytes\"," OPT ",\"field\":\"avatar\"},"                      \
    "{\"type\":\"boolean\"," OPT ",\"field\":\"is_active\"},"                 \
    "{\"type\":\"array\",\"items\":{\"type\":\"string\"," OPT "}," OPT        \
    ",\"field\":\"tags\"},"                                                   \
    "{\"type\":\"string\"," OPT "," NAMED("io.debezium.data.Json")            \
    ",\"field\":\"settings\"},"                                               \
    "{\"type\":\"string\"," OPT "," NAMED("io.debezium.data.Json")            \
    ",\"field\":\"provider_response\"},"                                      \
    "{\"type\":\"string\"," OPT ",\"field\":\"ip_address\"},"                 \
    "{\"type\":\"int64\"," OPT "," NAMED("io.debezium.time.MicroTime")        \
    ",\"field\":\"quiet_from\"},"                                             \
    "{\"type\":\"int64\"," OPT "," NAMED("io.debezium.time.MicroDuration")    \
    ",\"field\":\"retention\"},"                                              \
    "{\"type\":\"float\"," OPT ",\"field\":\"weight\"},"                      \
    "{\"type\":\"double\"," OPT ",\"field\":\"score\"}"

#define SHOP_SOURCE_SCHEMA                                                    \
    "{\"type\":\"struct\",\"fields\":["                                       \
    "{\"type\":\"string\",\"optional\":false,\"field\":\"version\"},"         \
    "{\"type\":\"string\",\"optional\":false,\"field\":\"connector\"},"       \
    "{\"type\":\"string\",\"optional\":false,\"field\":\"name\"},"            \
    "{\"type\":\"int64\",\"optional\":false,\"field\":\"ts_ms\"},"            \
    "{\"type\":\"string\"," OPT "," NAMED("io.debezium.data.Enum")            \
    ",\"parameters\":{\"allowed\":\"true,last,false,incremental\"},"          \
    "\"default\":\"false\",\"field\":\"snapshot\"},"                          \
    "{\"type\":\"string\",\"optional\":false,\"field\":\"db\"},"              \
    "{\"type\":\"string\"," OPT ",\"field\":\"sequence\"},"                   \
    "{\"type\":\"string\",\"optional\":false,\"field\":\"schema\"},"          \
    "{\"type\":\"string\",\"optional\":false,\"field\":\"table\"},"           \
    "{\"type\":\"int64\"," OPT ",\"field\":\"txId\"},"                        \
    "{\"type\":\"int64\"," OPT ",\"field\":\"lsn\"}],"                        \
    "\"optional\":false,\"name\":\"io.debezium.connector.postgresql.Source\"," \
    "\"field\":\"source\"}"

START_TEST(test_shop_schemas)
{
    sink_rel r = {.schema = "public", .name = "orders", .replident = 'd',
                  .ncols = NCOLS(shop_cols), .cols = shop_cols};
    check_dump(dbz_key_schema(&precise, "shop", &r, shop_allowed),
               "{\"type\":\"struct\",\"fields\":["
               "{\"type\":\"int64\",\"optional\":false,\"field\":\"id\"}],"
               "\"optional\":false,\"name\":\"shop.public.orders.Key\"}");
    check_dump(dbz_envelope_schema(&precise, "shop", &r, shop_allowed),
               "{\"type\":\"struct\",\"fields\":["
               "{\"type\":\"struct\",\"fields\":[" SHOP_FIELDS "]," OPT
               ",\"name\":\"shop.public.orders.Value\",\"field\":\"before\"},"
               "{\"type\":\"struct\",\"fields\":[" SHOP_FIELDS "]," OPT
               ",\"name\":\"shop.public.orders.Value\",\"field\":\"after\"},"
               SHOP_SOURCE_SCHEMA ","
               "{\"type\":\"string\",\"optional\":false,\"field\":\"op\"},"
               "{\"type\":\"int64\"," OPT ",\"field\":\"ts_ms\"},"
               "{\"type\":\"struct\",\"fields\":["
               "{\"type\":\"string\",\"optional\":false,\"field\":\"id\"},"
               "{\"type\":\"int64\",\"optional\":false,"
               "\"field\":\"total_order\"},"
               "{\"type\":\"int64\",\"optional\":false,"
               "\"field\":\"data_collection_order\"}]," OPT ","
               NAMED("event.block") ",\"field\":\"transaction\"}],"
               "\"optional\":false,"
               "\"name\":\"shop.public.orders.Envelope\",\"version\":1}");

    /* no key: no key schema, as the key itself is null */
    sink_rel full = r;
    full.replident = 'f';
    check_dump(dbz_key_schema(&precise, "shop", &full, NULL), "null");
}
END_TEST

START_TEST(test_shop_event)
{
    sink_rel r = {.schema = "public", .name = "orders", .replident = 'd',
                  .ncols = NCOLS(shop_cols), .cols = shop_cols};
    static const char *const text[] = {
        "42", "0b5d2a0e-4c1e-4f53-9a3c-1f0e8c6b2a11", "paid", "157.40", "EUR",
        "3", "7", "2024-01-31 10:00:00+00", "2024-02-02", "ann@example.com",
        "\\x0102ff", "t", "{a,NULL,\"b c\"}", "{\"k\": 1}", "{ \"ok\" : true }",
        "10.0.0.1", "22:30:00", "30 days", "0.5", "NaN",
    };
    sink_value vals[NCOLS(shop_cols)];
    for (size_t i = 0; i < NCOLS(shop_cols); i++)
        vals[i] = (sink_value){'t', (uint32_t)strlen(text[i]), text[i]};
    vals[6] = (sink_value){'n', 0, NULL};       /* shipping_address_id */
    vals[10] = (sink_value){'u', 0, NULL};      /* avatar: unchanged TOAST */

    json_t *kschema = dbz_key_schema(&precise, "shop", &r, shop_allowed);
    json_t *vschema = dbz_envelope_schema(&precise, "shop", &r, shop_allowed);
    ck_assert_ptr_nonnull(kschema);
    ck_assert_ptr_nonnull(vschema);
    json_t *key = dbz_connect(kschema, dbz_key_typed(&precise, &r, vals));
    char *ks = dbz_dump(key, NULL);
    char *kwant = NULL;
    char *sk = dbz_dump(kschema, NULL);
    ck_assert_int_gt(asprintf(&kwant, "{\"schema\":%s,\"payload\":{\"id\":42}}",
                              sk), 0);
    ck_assert_str_eq(ks, kwant);

    json_t *ev = dbz_connect(vschema, dbz_envelope(
        'c', NULL, dbz_row_typed(&precise, &r, vals, false), &src, NULL, 7));
    ck_assert_ptr_nonnull(ev);
    ck_assert_ptr_eq(json_object_get(ev, "schema"), vschema);
    check_dump(json_incref(json_object_get(json_object_get(ev, "payload"),
                                           "after")),
               "{\"id\":42,"
               "\"order_uuid\":\"0b5d2a0e-4c1e-4f53-9a3c-1f0e8c6b2a11\","
               "\"status\":\"paid\",\"total_amount\":\"PXw=\","
               "\"currency\":\"EUR\",\"item_count\":3,"
               "\"shipping_address_id\":null,"
               "\"placed_at\":\"2024-01-31T10:00:00Z\",\"shipped_on\":19755,"
               "\"email\":\"ann@example.com\","
               "\"avatar\":\"X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ==\","
               "\"is_active\":true,\"tags\":[\"a\",null,\"b c\"],"
               "\"settings\":\"{\\\"k\\\": 1}\","
               "\"provider_response\":\"{ \\\"ok\\\" : true }\","
               "\"ip_address\":\"10.0.0.1\",\"quiet_from\":81000000000,"
               "\"retention\":2592000000000,\"weight\":0.5,\"score\":\"NaN\"}");
    free(ks);
    free(kwant);
    free(sk);
    json_decref(key);
    json_decref(ev);
    json_decref(kschema);
    json_decref(vschema);
}
END_TEST

/* Hostile text under the typed modes: never past the end, always JSON. */
static const uint32_t typed_fuzz_types[] = {
    NUMERIC, MONEY, DATE, TIME, TIMETZ, TIMESTAMP, INTERVAL, NUMERIC_A,
    MONEY_A, TIMETZ_A, INTERVAL_A,
};
static const char *const typed_seeds[] = {
    "1 year 2 mons -3 days -04:05:06.5", "-$1,234.56", "($5.00)",
    "-12345678901234567890.123", "10:15:30.123456+05:30", "24:00:00",
    "{1.5,NULL,-0.25}", "2024-02-29 23:59:59.999999",
};

START_TEST(test_hostile_typed)
{
    const dbz_mode *modes[] = {&adaptive, &as_double, &precise};
    const int32_t typmods[] = {-1, 3, NUMTYPMOD(12, 2), NUMTYPMOD(3, -2)};
    char buf[64];
    for (int i = 0; i < 3000; i++) {
        size_t n = fuzz_input(buf, sizeof buf);
        if (i % 2) {
            const char *seed = typed_seeds[rng() % (sizeof typed_seeds /
                                                    sizeof typed_seeds[0])];
            n = strlen(seed);
            memcpy(buf, seed, n);
            if (n && rng() % 2)
                buf[rng() % n] = "-.:$,(0 9{}"[rng() % 11];
            n = rng() % 4 ? n : rng() % (n + 1);
        }
        for (size_t t = 0; t < sizeof typed_fuzz_types / sizeof(uint32_t);
             t++) {
            char *s = render_typed(modes[rng() % 3], typed_fuzz_types[t],
                                   typmods[rng() % 4], buf, n);
            json_error_t err;
            json_t *back =
                json_loads(s, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
            ck_assert_msg(back != NULL, "type %u: %s: %s",
                          typed_fuzz_types[t], s, err.text);
            json_decref(back);
            free(s);
        }
    }
}
END_TEST

/* ---- the direct writer (dbz_out), against the jansson trees ------------- */

/* dbz_out's bytes, NUL-terminated, and the buffer emptied for reuse. */
static char *out_take(dbz_out *o)
{
    ck_assert(!o->oom);
    char *s = strndup(o->data ? o->data : "", o->len);
    ck_assert_ptr_nonnull(s);
    o->len = 0;
    return s;
}

/* j dumped, then released. */
static char *dump_free(json_t *j)
{
    char *s = dbz_dump(j, NULL);
    json_decref(j);
    return s;
}

/* One column of every kind under a mode: the same bytes both ways. */
static void check_out_value(dbz_out *o, const dbz_mode *m, uint32_t oid,
                            int32_t typmod, const char *text, size_t n,
                            char kind)
{
    char *buf = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(buf);
    memcpy(buf, text, n);
    struct sink_col col = {.name = "c\"\x01\xE9", .type_oid = oid,
                           .typmod = typmod, .key = true};
    sink_rel r = {.replident = 'd', .ncols = 1, .cols = &col};
    sink_value v = {kind, kind == 't' ? (uint32_t)n : 0,
                    kind == 't' ? buf : NULL};
    char *want = dump_free(dbz_row_typed(m, &r, &v, false));
    dbz_out_row(o, m, &r, &v, false);
    char *got = out_take(o);
    ck_assert_ptr_nonnull(want);
    ck_assert_msg(strcmp(got, want) == 0, "type %u(%d) kind %c: got %s, "
                  "want %s", oid, typmod, kind, got, want);
    free(want);
    free(got);
    free(buf);
}

START_TEST(test_out_values)
{
    const dbz_mode *modes[] = {NULL, &adaptive, &as_double, &precise,
                               &precise_iso};
    static const uint32_t extra[] = {
        TIMESTAMPTZ, UUID, MONEY, TEXT, VARCHAR, BPCHAR, NAME, CHAR, JSON,
        XML, CIDR, INET, MACADDR, TIME, TIMETZ, INTERVAL, POINT, TSVECTOR,
    };
    static const char *const texts[] = {
        "", "0", "-0", "9223372036854775807", "-9223372036854775808",
        "9223372036854775808", "t", "f", "true", "1.5e300", "NaN",
        "2024-01-31 10:00:00.123456+05:30", "0001-01-01 00:30:00+01",
        "12345-06-07 08:09:10", "infinity", "a\"b\\c\n\t\x01\x1f\x7f/",
        "caf\xC3\xA9 \xF0\x9F\x98\x80", "bad \xC3 \xED\xA0\x80 \xFF",
        "\\x0102ff", "{1,2,NULL}", "$1,234.56", "1 year 2 mons", "007",
        "-012",
    };
    const int32_t typmods[] = {-1, 3, NUMTYPMOD(12, 2)};
    dbz_out o = {0};
    char buf[64];
    for (size_t mi = 0; mi < sizeof modes / sizeof modes[0]; mi++)
        for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++)
            for (size_t k = 0; k < sizeof extra / sizeof extra[0]; k++)
                check_out_value(&o, modes[mi], extra[k], typmods[t % 3],
                                texts[t], strlen(texts[t]), 't');
    for (int i = 0; i < 1500; i++) {
        size_t n = fuzz_input(buf, sizeof buf);
        const dbz_mode *m = modes[rng() % 5];
        char kind = "tttttnu"[rng() % 7];
        for (size_t t = 0; t < sizeof fuzz_types / sizeof fuzz_types[0]; t++)
            check_out_value(&o, m, fuzz_types[t], typmods[rng() % 3], buf, n,
                            kind);
        for (size_t t = 0; t < sizeof typed_fuzz_types / sizeof(uint32_t);
             t++)
            check_out_value(&o, m, typed_fuzz_types[t], typmods[rng() % 3],
                            buf, n, kind);
    }
    dbz_out_free(&o);
}
END_TEST

/*
 * Every byte value at every place of a text longer than the writer's
 * 8-byte look at plain runs: escaped, kept or replaced as jansson does.
 */
START_TEST(test_out_strings)
{
    char text[21];
    dbz_out o = {0};
    for (int b = 1; b < 256; b++)
        for (size_t at = 0; at < sizeof text - 1; at++) {
            memset(text, 'a', sizeof text - 1);
            text[at] = (char)b;
            check_out_value(&o, NULL, TEXT, -1, text, sizeof text - 1, 't');
            text[sizeof text - 2] = '\xC3';   /* and a truncated sequence */
            check_out_value(&o, NULL, TEXT, -1, text, sizeof text - 1, 't');
        }
    dbz_out_free(&o);
}
END_TEST

/* Keys and whole envelopes, with and without transaction metadata. */
START_TEST(test_out_events)
{
    sink_rel r = {.schema = "public", .name = "orders", .replident = 'd',
                  .ncols = NCOLS(shop_cols), .cols = shop_cols};
    sink_rel full = r;
    full.replident = 'f';
    static const char *const text[] = {
        "42", "0b5d2a0e-4c1e-4f53-9a3c-1f0e8c6b2a11", "paid", "157.40", "EUR",
        "3", "7", "2024-01-31 10:00:00+00", "2024-02-02", "ann@example.com",
        "\\x0102ff", "t", "{a,NULL,\"b c\"}", "{\"k\": 1}", "{ \"ok\" : true }",
        "10.0.0.1", "22:30:00", "30 days", "0.5", "NaN",
    };
    sink_value vals[NCOLS(shop_cols)];
    for (size_t i = 0; i < NCOLS(shop_cols); i++)
        vals[i] = (sink_value){'t', (uint32_t)strlen(text[i]), text[i]};
    vals[6] = (sink_value){'n', 0, NULL};
    vals[10] = (sink_value){'u', 0, NULL};
    dbz_source odd = src;
    odd.db = "d\"b\xFF";
    odd.last_commit_lsn = 0;
    const dbz_source *srcs[] = {&src, &odd};
    const dbz_txinfo tx = {.id = "571:24023128", .total_order = 3,
                           .data_collection_order = 2};
    const dbz_mode *modes[] = {NULL, &precise};
    dbz_out o = {0}, so = {0};
    dbz_srcblock sb = {0};
    for (int i = 0; i < 16; i++) {
        const dbz_mode *m = modes[i & 1];
        const sink_rel *rel = i & 2 ? &full : &r;
        const sink_value *before = i & 4 ? vals : NULL;
        const dbz_txinfo *t = i & 8 ? &tx : NULL;
        char *want = dump_free(dbz_key_typed(m, rel, vals));
        dbz_out_key_row(&o, m, rel, vals);
        char *got = out_take(&o);
        ck_assert_str_eq(got, want);
        free(got);
        free(want);

        /* One block per table and transaction, each event its own LSN. */
        dbz_source ev_src = *srcs[(i >> 2) & 1];
        ev_src.lsn += (lsn_t)i * 40;
        dbz_srcblock_set(&sb, srcs[(i >> 2) & 1]);
        dbz_out_envelope(&o, m, "cud"[i % 3], rel, before, vals, &sb,
                         ev_src.lsn, t, 1706695200123 + i);
        want = dump_free(dbz_envelope("cud"[i % 3],
                                      before ? dbz_row_typed(m, rel, before,
                                                             false) : NULL,
                                      dbz_row_typed(m, rel, vals, false),
                                      &ev_src, t, 1706695200123 + i));
        got = out_take(&o);
        dbz_out_source(&so, &ev_src);
        char *block = out_take(&so);
        ck_assert_ptr_nonnull(strstr(got, block));
        free(block);
        ck_assert_str_eq(got, want);
        free(got);
        free(want);
    }
    dbz_out_free(&o);
    dbz_out_free(&so);
    dbz_out_free(&sb.text);
}
END_TEST

static Suite *dbz_suite(void)
{
    Suite *s = suite_create("dbz");
    TCase *tc = tcase_create("dbz");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_numbers);
    tcase_add_test(tc, test_times);
    tcase_add_test(tc, test_text_types);
    tcase_add_test(tc, test_bytea);
    tcase_add_test(tc, test_base64);
    tcase_add_test(tc, test_invalid_utf8);
    tcase_add_test(tc, test_arrays);
    tcase_add_test(tc, test_arrays_malformed);
    tcase_add_test(tc, test_rows);
    tcase_add_test(tc, test_keys);
    tcase_add_test(tc, test_envelope);
    tcase_add_test(tc, test_envelope_transaction);
    tcase_add_test(tc, test_message);
    tcase_add_test(tc, test_txn);
    tcase_add_test(tc, test_topic);
    tcase_add_test(tc, test_hostile);
    tcase_add_test(tc, test_adaptive_times);
    tcase_add_test(tc, test_decimal_modes);
    tcase_add_test(tc, test_type_schemas);
    tcase_add_test(tc, test_shop_schemas);
    tcase_add_test(tc, test_shop_event);
    tcase_add_test(tc, test_hostile_typed);
    tcase_add_test(tc, test_out_values);
    tcase_add_test(tc, test_out_strings);
    tcase_add_test(tc, test_out_events);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(dbz_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
