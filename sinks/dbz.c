/*
 * dbz: change events in Debezium's PostgreSQL JSON format; see dbz.h.
 *
 * Values arrive as the text pgoutput sends (the type's output function
 * under DateStyle ISO) and straight from the network: every parser here
 * works on (pointer, length), never past it, never on a terminating NUL,
 * and anything it does not recognise becomes the value's text as a JSON
 * string rather than an error. The only NULL a builder returns means out
 * of memory.
 */
#include "sinks/dbz.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Built-in type OIDs (PostgreSQL's catalog/pg_type.dat). */
#define DBZ_BOOLOID 16
#define DBZ_BYTEAOID 17
#define DBZ_CHAROID 18
#define DBZ_NAMEOID 19
#define DBZ_INT8OID 20
#define DBZ_INT2OID 21
#define DBZ_INT4OID 23
#define DBZ_TEXTOID 25
#define DBZ_OIDOID 26
#define DBZ_JSONOID 114
#define DBZ_XMLOID 142
#define DBZ_CIDROID 650
#define DBZ_FLOAT4OID 700
#define DBZ_FLOAT8OID 701
#define DBZ_MONEYOID 790
#define DBZ_MACADDROID 829
#define DBZ_INETOID 869
#define DBZ_BPCHAROID 1042
#define DBZ_VARCHAROID 1043
#define DBZ_DATEOID 1082
#define DBZ_TIMEOID 1083
#define DBZ_TIMESTAMPOID 1114
#define DBZ_TIMESTAMPTZOID 1184
#define DBZ_INTERVALOID 1186
#define DBZ_TIMETZOID 1266
#define DBZ_NUMERICOID 1700
#define DBZ_UUIDOID 2950
#define DBZ_JSONBOID 3802

/* Their array types. */
#define DBZ_JSONARRAYOID 199
#define DBZ_XMLARRAYOID 143
#define DBZ_CIDRARRAYOID 651
#define DBZ_MONEYARRAYOID 791
#define DBZ_BOOLARRAYOID 1000
#define DBZ_BYTEAARRAYOID 1001
#define DBZ_CHARARRAYOID 1002
#define DBZ_NAMEARRAYOID 1003
#define DBZ_INT2ARRAYOID 1005
#define DBZ_INT4ARRAYOID 1007
#define DBZ_TEXTARRAYOID 1009
#define DBZ_BPCHARARRAYOID 1014
#define DBZ_VARCHARARRAYOID 1015
#define DBZ_INT8ARRAYOID 1016
#define DBZ_FLOAT4ARRAYOID 1021
#define DBZ_FLOAT8ARRAYOID 1022
#define DBZ_OIDARRAYOID 1028
#define DBZ_MACADDRARRAYOID 1040
#define DBZ_INETARRAYOID 1041
#define DBZ_TIMESTAMPARRAYOID 1115
#define DBZ_DATEARRAYOID 1182
#define DBZ_TIMEARRAYOID 1183
#define DBZ_TIMESTAMPTZARRAYOID 1185
#define DBZ_INTERVALARRAYOID 1187
#define DBZ_NUMERICARRAYOID 1231
#define DBZ_TIMETZARRAYOID 1270
#define DBZ_UUIDARRAYOID 2951
#define DBZ_JSONBARRAYOID 3807

#define DBZ_ARRAY_MAXDIM 6          /* PostgreSQL's MAXDIM */
#define DBZ_TOPIC_MAX 249           /* Kafka's limit on a topic name */
#define DBZ_FLOAT_MAX 64            /* longer is no float8out output */
#define DBZ_STACK_B64 256           /* base64 of small bytea on the stack */

/* ---- text --------------------------------------------------------------- */

/*
 * Bytes in the well-formed UTF-8 sequence at p (RFC 3629: no overlongs,
 * surrogates or code points past U+10FFFF, as jansson checks), 0 if none.
 */
static size_t dbz_utf8_len(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    size_t k;
    uint32_t cp, min;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        k = 2, cp = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        k = 3, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        k = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < k)
        return 0;
    for (size_t i = 1; i < k; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return k;
}

static bool dbz_utf8_valid(const char *s, size_t n)
{
    const uint8_t *p = (const uint8_t *)s;
    for (size_t i = 0, k; i < n; i += k)
        if ((k = dbz_utf8_len(p + i, n - i)) == 0)
            return false;
    return true;
}

/* s with every byte that is not part of valid UTF-8 as U+FFFD; malloc'd. */
static char *dbz_utf8_fix(const char *s, size_t n, size_t *out_len)
{
    const uint8_t *p = (const uint8_t *)s;
    char *out = malloc(n * 3 + 1);
    size_t o = 0;
    if (!out)
        return NULL;
    for (size_t i = 0, k; i < n; i += k) {
        k = dbz_utf8_len(p + i, n - i);
        if (k) {
            memcpy(out + o, p + i, k);
            o += k;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            k = 1;
        }
    }
    out[o] = '\0';
    *out_len = o;
    return out;
}

/*
 * Text as a JSON string. Text from a UTF8 database is valid and takes the
 * first call; an SQL_ASCII database can hold anything, and jansson refuses
 * invalid UTF-8 rather than emit JSON nobody can parse.
 */
static json_t *dbz_text(const char *s, size_t n)
{
    json_t *j = json_stringn(s, n);
    size_t fixed_len;
    char *fixed;
    if (j || dbz_utf8_valid(s, n))
        return j;
    fixed = dbz_utf8_fix(s, n, &fixed_len);
    if (!fixed)
        return NULL;
    j = json_stringn(fixed, fixed_len);
    free(fixed);
    return j;
}

/* A C string (names from the catalog, configuration) or null. */
static json_t *dbz_str(const char *s)
{
    return s ? dbz_text(s, strlen(s)) : json_null();
}

/* Sets a literal, known-good key; steals v (NULL: failure). */
static bool dbz_put(json_t *obj, const char *key, json_t *v)
{
    return json_object_set_new_nocheck(obj, key, v) == 0;
}

/* Sets a key from the source (a column name), mending invalid UTF-8. */
static bool dbz_put_name(json_t *obj, const char *key, json_t *v)
{
    size_t n = strlen(key), fixed_len;
    char *fixed;
    bool ok;
    if (dbz_utf8_valid(key, n))
        return dbz_put(obj, key, v);
    fixed = dbz_utf8_fix(key, n, &fixed_len);
    if (!fixed) {
        json_decref(v);
        return false;
    }
    ok = dbz_put(obj, fixed, v);
    free(fixed);
    return ok;
}

/* ---- base64 ------------------------------------------------------------- */

static const char dbz_b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* k (1 to 3) bytes of in as 4 characters, '=' padded. */
static void dbz_b64_block(const uint8_t *in, size_t k, char *out)
{
    uint32_t v = (uint32_t)in[0] << 16;
    if (k > 1)
        v |= (uint32_t)in[1] << 8;
    if (k > 2)
        v |= in[2];
    out[0] = dbz_b64_alphabet[v >> 18];
    out[1] = dbz_b64_alphabet[(v >> 12) & 0x3F];
    out[2] = k > 1 ? dbz_b64_alphabet[(v >> 6) & 0x3F] : '=';
    out[3] = k > 2 ? dbz_b64_alphabet[v & 0x3F] : '=';
}

char *dbz_base64(const uint8_t *data, size_t len)
{
    size_t blocks = len / 3 + (len % 3 != 0);
    char *out;
    if (blocks > (SIZE_MAX - 1) / 4)
        return NULL;
    out = malloc(blocks * 4 + 1);
    if (!out)
        return NULL;
    for (size_t i = 0; i < blocks; i++) {
        size_t k = len - i * 3 < 3 ? len - i * 3 : 3;
        dbz_b64_block(data + i * 3, k, out + i * 4);
    }
    out[blocks * 4] = '\0';
    return out;
}

/* ---- scalars ------------------------------------------------------------ */

/* Decimal digits only, no sign, no padding: int8out's form. */
static bool dbz_parse_int(const char *s, size_t n, int64_t *out)
{
    bool neg = n > 0 && s[0] == '-';
    size_t i = neg;
    uint64_t v = 0;
    if (i == n || n - i > 19)       /* 19 digits cannot wrap a uint64 */
        return false;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX + neg)
        return false;
    *out = neg ? -(int64_t)(v - 1) - 1 : (int64_t)v;
    return true;
}

static json_t *dbz_int(const char *s, size_t n)
{
    int64_t v;
    return dbz_parse_int(s, n, &v) ? json_integer(v) : dbz_text(s, n);
}

static json_t *dbz_bool(const char *s, size_t n)
{
    if (n == 1 && s[0] == 't')
        return json_true();
    if (n == 1 && s[0] == 'f')
        return json_false();
    return dbz_text(s, n);
}

/*
 * float4 too is read as a double: its shortest text form ("0.1") then
 * survives as the double nearest it, where the float's own value would
 * print as 0.10000000149011612. NaN and the infinities, which JSON has no
 * numbers for, stay strings, as Debezium writes them. cleave never calls
 * setlocale, so strtod reads '.' as the decimal point.
 */
static json_t *dbz_float(const char *s, size_t n)
{
    char buf[DBZ_FLOAT_MAX], *end;
    double d;
    if (n == 0 || n >= sizeof buf)
        goto text;
    for (size_t i = 0; i < n; i++)  /* no hex floats, no "inf", no blanks */
        if (!strchr("0123456789+-.eE", s[i]) || s[i] == '\0')
            goto text;
    memcpy(buf, s, n);
    buf[n] = '\0';
    d = strtod(buf, &end);
    if (end != buf + n || !isfinite(d))
        goto text;
    return json_real(d);
text:
    return dbz_text(s, n);
}

static int dbz_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* k bytes from 2k hex digits; false on a bad digit. */
static bool dbz_unhex(const char *s, size_t k, uint8_t *out)
{
    for (size_t i = 0; i < k; i++) {
        int hi = dbz_hex(s[2 * i]), lo = dbz_hex(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

/*
 * bytea's hex form "\x0102ff" straight to base64, three bytes at a time,
 * with no buffer for the bytes between. The escape form (bytea_output =
 * escape) is left as its text.
 */
static json_t *dbz_bytea(const char *s, size_t n)
{
    char stack[DBZ_STACK_B64], *out = stack;
    size_t bytes, blocks;
    json_t *j = NULL;
    if (n < 2 || s[0] != '\\' || s[1] != 'x' || (n - 2) % 2)
        return dbz_text(s, n);
    bytes = (n - 2) / 2;
    blocks = bytes / 3 + (bytes % 3 != 0);
    if (blocks == 0)
        return json_string_nocheck("");
    if (blocks * 4 > sizeof stack && !(out = malloc(blocks * 4)))
        return NULL;
    for (size_t i = 0; i < blocks; i++) {
        uint8_t b[3] = {0};
        size_t k = bytes - i * 3 < 3 ? bytes - i * 3 : 3;
        if (!dbz_unhex(s + 2 + i * 6, k, b))
            goto done;
        dbz_b64_block(b, k, out + i * 4);
    }
    j = json_stringn_nocheck(out, blocks * 4);
done:
    if (out != stack)
        free(out);
    return j ? j : dbz_text(s, n);
}

/* ---- timestamps --------------------------------------------------------- */

/* timestamp[tz]_out under DateStyle ISO, taken apart. */
typedef struct dbz_ts {
    int64_t year;
    int mon, day, hour, min, sec;
    const char *frac;        /* the digits after '.', as written */
    size_t frac_len;         /* 0: none */
    int32_t off;             /* seconds east of UTC */
} dbz_ts;

typedef struct dbz_cur {
    const char *p, *end;
} dbz_cur;

static bool dbz_eat(dbz_cur *c, char ch)
{
    if (c->p == c->end || *c->p != ch)
        return false;
    c->p++;
    return true;
}

/* Between min and max decimal digits into *v. */
static bool dbz_digits(dbz_cur *c, size_t min, size_t max, int64_t *v)
{
    size_t n = 0;
    *v = 0;
    while (c->p < c->end && n < max && *c->p >= '0' && *c->p <= '9') {
        *v = *v * 10 + (*c->p++ - '0');
        n++;
    }
    return n >= min;
}

/* Exactly two digits, at most max. */
static bool dbz_two(dbz_cur *c, int max, int *v)
{
    int64_t x;
    if (!dbz_digits(c, 2, 2, &x) || x > max)
        return false;
    *v = (int)x;
    return true;
}

static bool dbz_leap(int64_t y)
{
    return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

static int dbz_month_days(int64_t y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30,
                                 31, 31, 30, 31, 30, 31};
    return m == 2 && dbz_leap(y) ? 29 : days[m - 1];
}

/* "+HH", "+HH:MM" or "+HH:MM:SS" (or '-'), as timestamptz_out writes. */
static bool dbz_parse_offset(dbz_cur *c, int32_t *off)
{
    int sign, h, m = 0, s = 0;
    if (dbz_eat(c, '+'))
        sign = 1;
    else if (dbz_eat(c, '-'))
        sign = -1;
    else
        return false;
    if (!dbz_two(c, 15, &h))        /* PostgreSQL's limit is 15:59:59 */
        return false;
    if (dbz_eat(c, ':') && (!dbz_two(c, 59, &m) ||
                            (dbz_eat(c, ':') && !dbz_two(c, 59, &s))))
        return false;
    *off = sign * (h * 3600 + m * 60 + s);
    return true;
}

/*
 * "YYYY-MM-DD HH:MM:SS[.f...]" and, with tz, an offset. Anything else
 * (infinity, BC years, another DateStyle) is refused and stays text.
 */
static bool dbz_parse_ts(const char *s, size_t n, bool tz, dbz_ts *t)
{
    dbz_cur c = {s, s + n};
    int64_t frac;
    if (!dbz_digits(&c, 4, 7, &t->year) || !dbz_eat(&c, '-') ||
        !dbz_two(&c, 12, &t->mon) || t->mon < 1 || !dbz_eat(&c, '-') ||
        !dbz_two(&c, 31, &t->day) || t->day < 1 ||
        t->day > dbz_month_days(t->year, t->mon) || !dbz_eat(&c, ' ') ||
        !dbz_two(&c, 23, &t->hour) || !dbz_eat(&c, ':') ||
        !dbz_two(&c, 59, &t->min) || !dbz_eat(&c, ':') ||
        !dbz_two(&c, 59, &t->sec))
        return false;
    t->frac = NULL;
    t->frac_len = 0;
    if (dbz_eat(&c, '.')) {
        t->frac = c.p;
        if (!dbz_digits(&c, 1, 9, &frac))
            return false;
        t->frac_len = (size_t)(c.p - t->frac);
    }
    t->off = 0;
    if (tz && !dbz_parse_offset(&c, &t->off))
        return false;
    return c.p == c.end;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's). */
static int64_t dbz_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void dbz_civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* The instant in UTC; false when it falls before year 1 (BC). */
static bool dbz_ts_to_utc(dbz_ts *t)
{
    int64_t secs = dbz_days_from_civil(t->year, t->mon, t->day) * 86400 +
                   t->hour * 3600 + t->min * 60 + t->sec - t->off;
    int64_t days = (secs >= 0 ? secs : secs - 86399) / 86400;
    int64_t sod = secs - days * 86400;
    dbz_civil_from_days(days, &t->year, &t->mon, &t->day);
    t->hour = (int)(sod / 3600);
    t->min = (int)(sod / 60 % 60);
    t->sec = (int)(sod % 60);
    t->off = 0;
    return t->year >= 1;
}

/*
 * isostring: "2024-01-31T09:00:00.5Z". A timestamp without time zone is
 * taken as UTC, as Debezium does; the fraction keeps the digits given.
 */
#define DBZ_ISO_MAX 64               /* an isostring timestamp fits */

/* Two decimal digits of v (0 to 99). */
static char *dbz_two_out(char *p, int v)
{
    *p++ = (char)('0' + v / 10);
    *p++ = (char)('0' + v % 10);
    return p;
}

/*
 * The isostring form into buf (DBZ_ISO_MAX bytes), its length; 0 when s
 * is no timestamp (its text is the value then). Formatted by hand: this
 * runs for every timestamp column of every event.
 */
static bool dbz_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* The number in s's n digits (checked by the caller). */
static int dbz_num(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

/*
 * dbz_iso of a timestamp as PostgreSQL writes it in UTC: "2024-01-31
 * 09:00:00.5", with "+00" after it when it has a time zone. Its isostring
 * is its own text with 'T' and 'Z', no conversion needed; 0 for any other
 * text (dbz_iso's general way then).
 */
static size_t dbz_iso_utc(const char *s, size_t n, bool tz, char *buf)
{
    static const char shape[] = "dddd-dd-dd dd:dd:dd";
    size_t end = n - (tz ? 3 : 0), i;
    int year, mon, day;
    if (n < 19 + (tz ? 3u : 0u) || end > 29 ||
        (tz && memcmp(s + end, "+00", 3) != 0) ||
        (end > 19 && (s[19] != '.' || end == 20)))
        return 0;
    for (i = 0; i < end; i++)
        if (i < 19 && shape[i] != 'd' ? s[i] != shape[i]
                                      : i != 19 && !dbz_is_digit(s[i]))
            return 0;
    year = dbz_num(s, 4);
    mon = dbz_num(s + 5, 2);
    day = dbz_num(s + 8, 2);
    if (year < 1 || mon < 1 || mon > 12 || day < 1 ||
        day > dbz_month_days(year, mon) || dbz_num(s + 11, 2) > 23 ||
        dbz_num(s + 14, 2) > 59 || dbz_num(s + 17, 2) > 59)
        return 0;
    memcpy(buf, s, end);
    buf[10] = 'T';
    buf[end] = 'Z';
    return end + 1;
}

static size_t dbz_iso(const char *s, size_t n, bool tz, char *buf)
{
    dbz_ts t;
    char *p = buf;
    size_t fast = dbz_iso_utc(s, n, tz, buf);
    if (fast)
        return fast;
    if (!dbz_parse_ts(s, n, tz, &t) || (tz && !dbz_ts_to_utc(&t)))
        return 0;
    if (t.year < 0 || t.year > 9999 || t.frac_len > DBZ_ISO_MAX - 24) {
        int len = snprintf(buf, DBZ_ISO_MAX,
                           "%04" PRId64 "-%02d-%02dT%02d:%02d:%02d%s%.*sZ",
                           t.year, t.mon, t.day, t.hour, t.min, t.sec,
                           t.frac_len ? "." : "", (int)t.frac_len,
                           t.frac ? t.frac : "");
        return len < 0 || len >= DBZ_ISO_MAX ? 0 : (size_t)len;
    }
    p = dbz_two_out(dbz_two_out(p, (int)(t.year / 100)), (int)(t.year % 100));
    *p++ = '-';
    p = dbz_two_out(p, t.mon);
    *p++ = '-';
    p = dbz_two_out(p, t.day);
    *p++ = 'T';
    p = dbz_two_out(p, t.hour);
    *p++ = ':';
    p = dbz_two_out(p, t.min);
    *p++ = ':';
    p = dbz_two_out(p, t.sec);
    if (t.frac_len) {
        *p++ = '.';
        memcpy(p, t.frac, t.frac_len);
        p += t.frac_len;
    }
    *p++ = 'Z';
    return (size_t)(p - buf);
}

static json_t *dbz_timestamp(const char *s, size_t n, bool tz)
{
    char buf[DBZ_ISO_MAX];
    size_t len = dbz_iso(s, n, tz, buf);
    return len ? json_stringn_nocheck(buf, len) : dbz_text(s, n);
}

/* ---- adaptive times (kafka.schemas) ------------------------------------- */

#define DBZ_USEC INT64_C(1000000)
#define DBZ_DAY_USEC (INT64_C(86400) * DBZ_USEC)
#define DBZ_TS_MAX_YEAR 294276      /* PostgreSQL's last timestamp year */

/* The first six digits of a fraction as microseconds (zeros appended). */
static int64_t dbz_frac_us(const char *frac, size_t n)
{
    int64_t us = 0;
    for (size_t i = 0; i < 6; i++)
        us = us * 10 + (i < n ? frac[i] - '0' : 0);
    return us;
}

/* time(p) and timestamp(p) with p <= 3 are Debezium's millisecond types. */
static bool dbz_millis(int32_t typmod)
{
    return typmod >= 0 && typmod <= 3;
}

/* "YYYY-MM-DD" as io.debezium.time.Date: days since 1970-01-01. */
static json_t *dbz_date_days(const char *s, size_t n)
{
    dbz_cur c = {s, s + n};
    int64_t y;
    int m, d;
    if (!dbz_digits(&c, 4, 7, &y) || !dbz_eat(&c, '-') ||
        !dbz_two(&c, 12, &m) || m < 1 || !dbz_eat(&c, '-') ||
        !dbz_two(&c, 31, &d) || d < 1 || d > dbz_month_days(y, m) ||
        c.p != c.end)
        return dbz_text(s, n);
    return json_integer(dbz_days_from_civil(y, m, d));
}

/* "HH:MM:SS[.f]" (time_out writes 24:00:00 too) as microseconds. */
static bool dbz_parse_time(dbz_cur *c, int64_t *us)
{
    int h, m, sec;
    int64_t frac;
    const char *f;
    if (!dbz_two(c, 24, &h) || !dbz_eat(c, ':') || !dbz_two(c, 59, &m) ||
        !dbz_eat(c, ':') || !dbz_two(c, 59, &sec))
        return false;
    *us = ((int64_t)h * 3600 + m * 60 + sec) * DBZ_USEC;
    if (!dbz_eat(c, '.'))
        return true;
    f = c->p;
    if (!dbz_digits(c, 1, 9, &frac))
        return false;
    *us += dbz_frac_us(f, (size_t)(c->p - f));
    return true;
}

/* io.debezium.time.MicroTime, or Time (ms) for time(0) to time(3). */
static json_t *dbz_time_num(const char *s, size_t n, int32_t typmod)
{
    dbz_cur c = {s, s + n};
    int64_t us;
    if (!dbz_parse_time(&c, &us) || c.p != c.end)
        return dbz_text(s, n);
    return json_integer(dbz_millis(typmod) ? us / 1000 : us);
}

/* io.debezium.time.ZonedTime: the time in UTC, "10:15:30.5Z". */
static json_t *dbz_timetz_utc(const char *s, size_t n)
{
    dbz_cur c = {s, s + n};
    int64_t us, secs;
    int32_t off;
    char buf[32], frac[8];
    int len;
    if (!dbz_parse_time(&c, &us) || !dbz_parse_offset(&c, &off) ||
        c.p != c.end)
        return dbz_text(s, n);
    us = ((us - off * DBZ_USEC) % DBZ_DAY_USEC + DBZ_DAY_USEC) % DBZ_DAY_USEC;
    secs = us / DBZ_USEC;
    snprintf(frac, sizeof frac, ".%06" PRId64, us % DBZ_USEC);
    for (len = 6; len > 0 && frac[len] == '0'; len--)
        frac[len] = '\0';
    len = snprintf(buf, sizeof buf, "%02d:%02d:%02d%sZ", (int)(secs / 3600),
                   (int)(secs / 60 % 60), (int)(secs % 60),
                   us % DBZ_USEC ? frac : "");
    return json_stringn_nocheck(buf, (size_t)len);
}

/*
 * io.debezium.time.MicroTimestamp, or Timestamp (ms) for timestamp(0) to
 * timestamp(3): the wall-clock time read as UTC, as Debezium reads it.
 */
static json_t *dbz_timestamp_num(const char *s, size_t n, int32_t typmod)
{
    dbz_ts t;
    int64_t us;
    if (!dbz_parse_ts(s, n, false, &t) || t.year > DBZ_TS_MAX_YEAR)
        return dbz_text(s, n);
    us = (dbz_days_from_civil(t.year, t.mon, t.day) * 86400 + t.hour * 3600 +
          t.min * 60 + t.sec) * DBZ_USEC + dbz_frac_us(t.frac, t.frac_len);
    return json_integer(dbz_millis(typmod) ? us / 1000 : us);
}

/* An interval's parts, as interval_out (IntervalStyle postgres) writes. */
typedef struct dbz_ival {
    double months, days, secs;
} dbz_ival;

/* "N unit" after the number: year(s), mon(s) or day(s). */
static bool dbz_ival_unit(dbz_cur *c, double v, dbz_ival *iv)
{
    static const struct {
        const char *word;
        double months, days;
    } units[] = {{"years", 12, 0}, {"year", 12, 0}, {"mons", 1, 0},
                 {"mon", 1, 0}, {"days", 0, 1}, {"day", 0, 1}};
    size_t left = (size_t)(c->end - c->p);
    if (!dbz_eat(c, ' '))
        return false;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        size_t k = strlen(units[i].word);
        if (left > k && strncmp(c->p, units[i].word, k) == 0 &&
            (left == k + 1 || c->p[k] == ' ')) {
            c->p += k;
            iv->months += v * units[i].months;
            iv->days += v * units[i].days;
            return true;
        }
    }
    return false;
}

/* "[-+]H:MM:SS[.f]" after its hours, which can run past 24. */
static bool dbz_ival_clock(dbz_cur *c, double sign, int64_t h, dbz_ival *iv)
{
    int m, sec;
    int64_t frac;
    const char *f;
    double s;
    if (!dbz_eat(c, ':') || !dbz_two(c, 59, &m) || !dbz_eat(c, ':') ||
        !dbz_two(c, 59, &sec))
        return false;
    s = (double)h * 3600 + m * 60 + sec;
    if (dbz_eat(c, '.')) {
        f = c->p;
        if (!dbz_digits(c, 1, 9, &frac))
            return false;
        s += (double)dbz_frac_us(f, (size_t)(c->p - f)) / 1e6;
    }
    iv->secs += sign * s;
    return true;
}

/*
 * io.debezium.time.MicroDuration: microseconds with Debezium's average
 * month of 365.25 / 12 days, computed in double as Debezium computes it.
 */
static json_t *dbz_interval_us(const char *s, size_t n)
{
    dbz_cur c = {s, s + n};
    dbz_ival iv = {0, 0, 0};
    while (c.p < c.end) {
        double sign = 1;
        int64_t v;
        bool ok;
        if (c.p != s && !dbz_eat(&c, ' '))
            return dbz_text(s, n);
        if (dbz_eat(&c, '-'))
            sign = -1;
        else
            dbz_eat(&c, '+');
        if (!dbz_digits(&c, 1, 10, &v))
            return dbz_text(s, n);
        ok = c.p < c.end && *c.p == ':'
                 ? dbz_ival_clock(&c, sign, v, &iv)
                 : dbz_ival_unit(&c, sign * (double)v, &iv);
        if (!ok)
            return dbz_text(s, n);
    }
    if (n == 0)
        return dbz_text(s, n);
    return json_integer((json_int_t)(((iv.months * (365.25 / 12.0) + iv.days) *
                                      86400 + iv.secs) * 1e6));
}

/* ---- decimals (kafka.decimal_handling) ---------------------------------- */

#define DBZ_MONEY_SCALE 2           /* Debezium's money.fraction.digits */

/* numeric_out's "-123.4500" taken apart. */
typedef struct dbz_dec {
    bool neg;
    char *digits;            /* integer and fraction digits, no point */
    size_t n, scale;         /* how many digits, how many after the point */
} dbz_dec;

bool dbz_numeric_typmod(int32_t typmod, int *precision, int *scale)
{
    if (typmod < 4)                 /* VARHDRSZ: no (p,s) declared */
        return false;
    *precision = ((typmod - 4) >> 16) & 0xFFFF;
    /* PostgreSQL 15 on: an 11-bit signed scale (numeric(3,-2)) */
    *scale = (((typmod - 4) & 0x7FF) ^ 1024) - 1024;
    return true;
}

/*
 * Digits, '.' and a sign; money's '$', ',' and "(...)" too when money is
 * set (money_out under a lc_monetary whose point is '.'). False when it is
 * no such text (NaN, Infinity); d->digits is malloc'd otherwise.
 */
static bool dbz_parse_dec(const char *s, size_t n, bool money, dbz_dec *d)
{
    bool point = false;
    *d = (dbz_dec){false, malloc(n + 1), 0, 0};
    if (!d->digits)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch >= '0' && ch <= '9') {
            d->digits[d->n++] = ch;
            d->scale += point;
        } else if (ch == '.' && !point) {
            point = true;
        } else if (ch == '-' && (money || i == 0)) {
            d->neg = true;
        } else if (!(money && (ch == '(' || ch == ')' || ch == ',' ||
                               ch == '$' || ch == ' '))) {
            d->n = 0;
            break;
        }
        d->neg |= money && ch == '(';
    }
    if (d->n > 0)
        return true;
    free(d->digits);
    return false;
}

/* Moves the point so that scale digits follow it (appends or drops). */
static bool dbz_dec_rescale(dbz_dec *d, int scale)
{
    if (scale < 0) {
        size_t drop = d->scale + (size_t)-scale;
        d->n = d->n > drop ? d->n - drop : 0;
    } else if ((size_t)scale < d->scale) {
        size_t drop = d->scale - (size_t)scale;
        d->n = d->n > drop ? d->n - drop : 0;
    } else {
        size_t add = (size_t)scale - d->scale;
        char *more = realloc(d->digits, d->n + add + 1);
        if (!more)
            return false;
        d->digits = more;
        memset(d->digits + d->n, '0', add);
        d->n += add;
    }
    d->scale = scale < 0 ? 0 : (size_t)scale;
    return true;
}

/*
 * The unscaled value as Java's BigInteger.toByteArray gives it (what
 * Connect's Decimal holds): big-endian two's complement, shortest form
 * that keeps the sign bit. Base64, or NULL when out of memory.
 */
static json_t *dbz_dec_bytes(const dbz_dec *d)
{
    size_t cap = d->n / 2 + 2, len = 0;
    uint8_t *le = calloc(cap, 1), *be;
    json_t *j = NULL;
    char *b64;
    if (!le)
        return NULL;
    for (size_t i = 0; i < d->n; i++) {
        unsigned carry = (unsigned)(d->digits[i] - '0');
        for (size_t k = 0; k < len; k++, carry >>= 8)
            le[k] = (uint8_t)(carry += le[k] * 10u);
        if (carry)
            le[len++] = (uint8_t)carry;
    }
    len++;                           /* room for the sign bit */
    if (d->neg) {
        unsigned carry = 1;
        for (size_t k = 0; k < len; k++, carry >>= 8)
            le[k] = (uint8_t)(carry += (uint8_t)~le[k]);
    }
    while (len > 1 && ((le[len - 1] == 0 && !(le[len - 2] & 0x80)) ||
                       (le[len - 1] == 0xFF && (le[len - 2] & 0x80))))
        len--;
    if ((be = malloc(len))) {
        for (size_t k = 0; k < len; k++)
            be[k] = le[len - 1 - k];
        if ((b64 = dbz_base64(be, len)))
            j = json_string_nocheck(b64);
        free(b64);
        free(be);
    }
    free(le);
    return j;
}

/* io.debezium.data.VariableScaleDecimal: {"scale", "value"}. */
static json_t *dbz_dec_variable(const dbz_dec *d)
{
    json_t *o = json_object();
    if (o && dbz_put(o, "scale", json_integer((json_int_t)d->scale)) &&
        dbz_put(o, "value", dbz_dec_bytes(d)))
        return o;
    json_decref(o);
    return NULL;
}

/* The plain decimal text of d, "-1234.50"; malloc'd, NUL-terminated. */
static char *dbz_dec_plain(const dbz_dec *d, size_t *len)
{
    size_t k = d->n > d->scale ? d->n - d->scale : 0, i = 0;
    char *buf = malloc(d->n + d->scale + 4);
    if (!buf)
        return NULL;
    if (d->neg)
        buf[i++] = '-';
    if (k == 0)
        buf[i++] = '0';
    memcpy(buf + i, d->digits, k);
    i += k;
    if (d->scale) {
        buf[i++] = '.';
        for (size_t z = d->n - k; z < d->scale; z++)
            buf[i++] = '0';
        memcpy(buf + i, d->digits + k, d->n - k);
        i += d->n - k;
    }
    buf[i] = '\0';
    *len = i;
    return buf;
}

/* As decimal.handling.mode=string (money) or double. */
static json_t *dbz_dec_plain_json(const dbz_dec *d, bool dbl)
{
    size_t len;
    char *buf = dbz_dec_plain(d, &len);
    json_t *j;
    if (!buf)
        return NULL;
    j = dbl ? json_real(strtod(buf, NULL)) : json_stringn_nocheck(buf, len);
    free(buf);
    return j;
}

/*
 * A numeric or money under the decimal mode; scale < 0 with !has_scale:
 * none declared. NaN and the infinities, which Connect's Decimal cannot
 * hold, are null in precise mode and their text otherwise.
 */
static json_t *dbz_decimal_value(const dbz_mode *m, bool money, bool has_scale,
                                 int scale, const char *s, size_t n)
{
    dbz_dec d;
    json_t *j;
    if (!money && m->decimal == DBZ_DECIMAL_STRING)
        return dbz_text(s, n);      /* numeric_out's text is the string */
    if (!dbz_parse_dec(s, n, money, &d))
        return m->decimal == DBZ_DECIMAL_PRECISE ? json_null()
                                                 : dbz_text(s, n);
    if (has_scale && !dbz_dec_rescale(&d, scale)) {
        free(d.digits);
        return NULL;
    }
    if (m->decimal == DBZ_DECIMAL_PRECISE)
        j = has_scale ? dbz_dec_bytes(&d) : dbz_dec_variable(&d);
    else
        j = dbz_dec_plain_json(&d, m->decimal == DBZ_DECIMAL_DOUBLE);
    free(d.digits);
    return j;
}

/* ---- arrays ------------------------------------------------------------- */

/* The element type of the array types rendered as JSON arrays; 0: text. */
static uint32_t dbz_array_elem(uint32_t type_oid)
{
    switch (type_oid) {
    case DBZ_BOOLARRAYOID: return DBZ_BOOLOID;
    case DBZ_BYTEAARRAYOID: return DBZ_BYTEAOID;
    case DBZ_CHARARRAYOID: return DBZ_CHAROID;
    case DBZ_NAMEARRAYOID: return DBZ_NAMEOID;
    case DBZ_INT2ARRAYOID: return DBZ_INT2OID;
    case DBZ_INT4ARRAYOID: return DBZ_INT4OID;
    case DBZ_INT8ARRAYOID: return DBZ_INT8OID;
    case DBZ_OIDARRAYOID: return DBZ_OIDOID;
    case DBZ_TEXTARRAYOID: return DBZ_TEXTOID;
    case DBZ_BPCHARARRAYOID: return DBZ_BPCHAROID;
    case DBZ_VARCHARARRAYOID: return DBZ_VARCHAROID;
    case DBZ_FLOAT4ARRAYOID: return DBZ_FLOAT4OID;
    case DBZ_FLOAT8ARRAYOID: return DBZ_FLOAT8OID;
    case DBZ_NUMERICARRAYOID: return DBZ_NUMERICOID;
    case DBZ_MONEYARRAYOID: return DBZ_MONEYOID;
    case DBZ_DATEARRAYOID: return DBZ_DATEOID;
    case DBZ_TIMEARRAYOID: return DBZ_TIMEOID;
    case DBZ_TIMETZARRAYOID: return DBZ_TIMETZOID;
    case DBZ_TIMESTAMPARRAYOID: return DBZ_TIMESTAMPOID;
    case DBZ_TIMESTAMPTZARRAYOID: return DBZ_TIMESTAMPTZOID;
    case DBZ_INTERVALARRAYOID: return DBZ_INTERVALOID;
    case DBZ_UUIDARRAYOID: return DBZ_UUIDOID;
    case DBZ_JSONARRAYOID: return DBZ_JSONOID;
    case DBZ_JSONBARRAYOID: return DBZ_JSONBOID;
    case DBZ_XMLARRAYOID: return DBZ_XMLOID;
    case DBZ_INETARRAYOID: return DBZ_INETOID;
    case DBZ_CIDRARRAYOID: return DBZ_CIDROID;
    case DBZ_MACADDRARRAYOID: return DBZ_MACADDROID;
    default: return 0;
    }
}

/*
 * An array literal being read: every type listed above uses ',' between
 * elements, and array_out never pads with blanks, so a blank outside
 * quotes is not its output and the whole literal stays text.
 */
typedef struct dbz_arr {
    dbz_cur c;
    const dbz_mode *m;
    uint32_t elem;
    int32_t typmod;          /* the column's: its elements' */
    char *scratch;           /* an unescaped element; as long as the rest */
    bool oom;
} dbz_arr;

/* An element from its text; quoted-NULL and NULL have been told apart. */
static json_t *dbz_arr_value(dbz_arr *a, const char *s, size_t n)
{
    json_t *v = dbz_value_typed(a->m, a->elem, a->typmod, s, (uint32_t)n);
    if (!v)
        a->oom = true;
    return v;
}

/* "..." with backslash escapes; unescaped only when there are any. */
static json_t *dbz_arr_quoted(dbz_arr *a)
{
    const char *s = ++a->c.p, *q = s;
    size_t escapes = 0, n = 0;
    while (q < a->c.end && *q != '"') {
        if (*q == '\\') {
            escapes++;
            if (++q == a->c.end)
                return NULL;
        }
        q++;
    }
    if (q == a->c.end)
        return NULL;
    a->c.p = q + 1;
    if (!escapes)
        return dbz_arr_value(a, s, (size_t)(q - s));
    /* sized for this element and any after it: allocated once */
    if (!a->scratch && !(a->scratch = malloc((size_t)(a->c.end - s)))) {
        a->oom = true;
        return NULL;
    }
    for (const char *p = s; p < q; p++)
        a->scratch[n++] = *p == '\\' ? *++p : *p;
    return dbz_arr_value(a, a->scratch, n);
}

/* array_out quotes any element holding one of these (or blanks). */
static bool dbz_arr_special(char ch)
{
    return strchr(",{}\"\\ \t\n\r\v\f", ch) != NULL;
}

/* A scalar element: quoted, or bare (bare NULL is SQL NULL). */
static json_t *dbz_arr_scalar(dbz_arr *a)
{
    const char *s = a->c.p;
    size_t n;
    if (*s == '"')
        return dbz_arr_quoted(a);
    while (a->c.p < a->c.end && !dbz_arr_special(*a->c.p))
        a->c.p++;
    n = (size_t)(a->c.p - s);
    if (n == 0)
        return NULL;
    if (n == 4 && strncasecmp(s, "NULL", 4) == 0)
        return json_null();
    return dbz_arr_value(a, s, n);
}

/*
 * "{...}" at depth (1 outermost): all elements scalars or all sub-arrays,
 * never deeper than PostgreSQL allows, so the recursion is bounded.
 * NULL when malformed (or a->oom).
 */
static json_t *dbz_arr_list(dbz_arr *a, int depth)
{
    json_t *list;
    int nested = -1;
    if (depth > DBZ_ARRAY_MAXDIM || !dbz_eat(&a->c, '{'))
        return NULL;
    if (!(list = json_array())) {
        a->oom = true;
        return NULL;
    }
    if (dbz_eat(&a->c, '}'))
        return list;
    for (;;) {
        json_t *e;
        bool sub;
        if (a->c.p == a->c.end)
            break;
        sub = *a->c.p == '{';
        if (nested >= 0 && nested != sub)
            break;
        nested = sub;
        e = sub ? dbz_arr_list(a, depth + 1) : dbz_arr_scalar(a);
        if (!e)
            break;
        if (json_array_append_new(list, e) != 0) {
            a->oom = true;
            break;
        }
        if (dbz_eat(&a->c, '}'))
            return list;
        if (!dbz_eat(&a->c, ','))
            break;
    }
    json_decref(list);
    return NULL;
}

/* array_out's "[lo:hi][lo:hi]=" before non-default bounds: skipped. */
static bool dbz_arr_dims(dbz_arr *a)
{
    int64_t v;
    if (a->c.p == a->c.end || *a->c.p != '[')
        return true;
    while (dbz_eat(&a->c, '[')) {
        dbz_eat(&a->c, '-');
        if (!dbz_digits(&a->c, 1, 10, &v) || !dbz_eat(&a->c, ':'))
            return false;
        dbz_eat(&a->c, '-');
        if (!dbz_digits(&a->c, 1, 10, &v) || !dbz_eat(&a->c, ']'))
            return false;
    }
    return dbz_eat(&a->c, '=');
}

static json_t *dbz_array(const dbz_mode *m, uint32_t elem, int32_t typmod,
                         const char *s, size_t n)
{
    dbz_arr a = {{s, s + n}, m, elem, typmod, NULL, false};
    json_t *j = NULL;
    if (dbz_arr_dims(&a))
        j = dbz_arr_list(&a, 1);
    if (j && a.c.p != a.c.end) {
        json_decref(j);
        j = NULL;
    }
    free(a.scratch);
    if (j || a.oom)
        return j;
    return dbz_text(s, n);
}

/* ---- values and rows ---------------------------------------------------- */

json_t *dbz_value(uint32_t type_oid, const char *text, uint32_t len)
{
    return dbz_value_typed(NULL, type_oid, -1, text, len);
}

/* Types whose rendering the mode decides; NULL when it is not one. */
static json_t *dbz_value_moded(const dbz_mode *m, uint32_t type_oid,
                               int32_t typmod, const char *text, size_t len,
                               bool *handled)
{
    int precision, scale;
    bool has_scale;
    *handled = true;
    switch (type_oid) {
    case DBZ_NUMERICOID:
        has_scale = dbz_numeric_typmod(typmod, &precision, &scale);
        return dbz_decimal_value(m, false, has_scale, has_scale ? scale : 0,
                                 text, len);
    case DBZ_MONEYOID:
        if (m->adaptive || m->decimal != DBZ_DECIMAL_STRING)
            return dbz_decimal_value(m, true, true, DBZ_MONEY_SCALE, text, len);
        break;
    case DBZ_TIMESTAMPOID:
        if (m->adaptive)
            return dbz_timestamp_num(text, len, typmod);
        return dbz_timestamp(text, len, false);
    case DBZ_DATEOID:
        if (m->adaptive)
            return dbz_date_days(text, len);
        break;
    case DBZ_TIMEOID:
        if (m->adaptive)
            return dbz_time_num(text, len, typmod);
        break;
    case DBZ_TIMETZOID:
        if (m->adaptive)
            return dbz_timetz_utc(text, len);
        break;
    case DBZ_INTERVALOID:
        if (m->adaptive)
            return dbz_interval_us(text, len);
        break;
    }
    *handled = false;
    return NULL;
}

json_t *dbz_value_typed(const dbz_mode *m, uint32_t type_oid, int32_t typmod,
                        const char *text, uint32_t len)
{
    static const dbz_mode dflt = {DBZ_DECIMAL_STRING, false};
    uint32_t elem;
    bool handled;
    json_t *j;
    if (!m)
        m = &dflt;
    if (!text)
        text = "", len = 0;
    j = dbz_value_moded(m, type_oid, typmod, text, len, &handled);
    if (handled)
        return j;
    switch (type_oid) {
    case DBZ_INT2OID:
    case DBZ_INT4OID:
    case DBZ_INT8OID:
    case DBZ_OIDOID:
        return dbz_int(text, len);
    case DBZ_BOOLOID:
        return dbz_bool(text, len);
    case DBZ_FLOAT4OID:
    case DBZ_FLOAT8OID:
        return dbz_float(text, len);
    case DBZ_BYTEAOID:
        return dbz_bytea(text, len);
    case DBZ_TIMESTAMPTZOID:
        return dbz_timestamp(text, len, true);
    default:
        /* money (string), date, time, interval, json, uuid, ... without
         * the adaptive mode: their text, as Debezium sends it */
        elem = dbz_array_elem(type_oid);
        return elem ? dbz_array(m, elem, typmod, text, len)
                    : dbz_text(text, len);
    }
}

/* Unchanged TOAST: Debezium's placeholder, as bytes in a bytes field. */
static json_t *dbz_unavailable(const dbz_mode *m, uint32_t type_oid)
{
    static const char b64[] = "X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ==";
    if (m && m->adaptive && type_oid == DBZ_BYTEAOID)
        return json_string_nocheck(b64);
    return json_string(DBZ_UNAVAILABLE);
}

static json_t *dbz_col_value(const dbz_mode *m, const struct sink_col *col,
                             const sink_value *v)
{
    switch (v->kind) {
    case 't':
        return dbz_value_typed(m, col->type_oid, col->typmod, v->data, v->len);
    case 'u':
        return dbz_unavailable(m, col->type_oid);
    default:
        return json_null();
    }
}

json_t *dbz_row(const sink_rel *rel, const sink_value *vals, bool key_only)
{
    return dbz_row_typed(NULL, rel, vals, key_only);
}

json_t *dbz_row_typed(const dbz_mode *m, const sink_rel *rel,
                      const sink_value *vals, bool key_only)
{
    json_t *row;
    if (!vals)                       /* no tuple of that kind was sent */
        return json_null();
    if (!(row = json_object()))
        return NULL;
    for (uint16_t i = 0; i < rel->ncols; i++) {
        const struct sink_col *col = &rel->cols[i];
        if (key_only && !dbz_key_col(rel, col))
            continue;
        if (!dbz_put_name(row, col->name, dbz_col_value(m, col, &vals[i]))) {
            json_decref(row);
            return NULL;
        }
    }
    return row;
}

/*
 * FULL flags every column as identity, which is no key: as Debezium does,
 * such a table is keyed by its primary key, and by null without one.
 */
bool dbz_key_col(const sink_rel *rel, const struct sink_col *col)
{
    return rel->replident == 'f' ? col->pk : col->key;
}

bool dbz_has_key(const sink_rel *rel)
{
    bool any = false;
    for (uint16_t i = 0; i < rel->ncols && !any; i++)
        any = dbz_key_col(rel, &rel->cols[i]);
    return any;
}

json_t *dbz_key(const sink_rel *rel, const sink_value *vals)
{
    return dbz_key_typed(NULL, rel, vals);
}

json_t *dbz_key_typed(const dbz_mode *m, const sink_rel *rel,
                      const sink_value *vals)
{
    return dbz_has_key(rel) ? dbz_row_typed(m, rel, vals, true) : json_null();
}

/* ---- Kafka Connect schemas (kafka.schemas) ------------------------------ */

/*
 * A field's schema in the JsonConverter's key order: type, fields or
 * items, optional, name, version, doc, parameters; steals params (NULL:
 * none). Named (semantic) types are all version 1.
 */
static json_t *dbz_sch(const char *type, bool optional, const char *name,
                       json_t *params)
{
    return json_pack("{s:s, s:b, s:s*, s:o*, s:o*}", "type", type,
                     "optional", optional, "name", name, "version",
                     name ? json_integer(1) : NULL, "parameters", params);
}

/* Connect's Decimal with its scale (and precision, when known). */
static json_t *dbz_sch_decimal(bool optional, int scale, int precision)
{
    char s[16], p[16];
    snprintf(s, sizeof s, "%d", scale);
    snprintf(p, sizeof p, "%d", precision);
    return dbz_sch("bytes", optional, "org.apache.kafka.connect.data.Decimal",
                   json_pack("{s:s, s:s*}", "scale", s,
                             "connect.decimal.precision",
                             precision > 0 ? p : NULL));
}

static json_t *dbz_sch_variable_decimal(bool optional)
{
    return json_pack("{s:s, s:[{s:s, s:b, s:s}, {s:s, s:b, s:s}], s:b, s:s, "
                     "s:i, s:s}", "type", "struct", "fields",
                     "type", "int32", "optional", false, "field", "scale",
                     "type", "bytes", "optional", false, "field", "value",
                     "optional", optional,
                     "name", "io.debezium.data.VariableScaleDecimal",
                     "version", 1, "doc", "Variable scaled decimal");
}

/* numeric and money under decimal.handling.mode. */
static json_t *dbz_sch_numeric(const dbz_mode *m, bool optional,
                               uint32_t type_oid, int32_t typmod)
{
    int precision = 0, scale = DBZ_MONEY_SCALE;
    if (m->decimal == DBZ_DECIMAL_STRING)
        return dbz_sch("string", optional, NULL, NULL);
    if (m->decimal == DBZ_DECIMAL_DOUBLE)
        return dbz_sch("double", optional, NULL, NULL);
    if (type_oid == DBZ_MONEYOID ||
        dbz_numeric_typmod(typmod, &precision, &scale))
        return dbz_sch_decimal(optional, scale, precision);
    return dbz_sch_variable_decimal(optional);
}

/* Dates and times: their adaptive types, or isostring's strings. */
static json_t *dbz_sch_time(const dbz_mode *m, bool optional,
                            uint32_t type_oid, int32_t typmod)
{
    bool ms = dbz_millis(typmod);
    if (type_oid == DBZ_TIMESTAMPTZOID)
        return dbz_sch("string", optional, "io.debezium.time.ZonedTimestamp",
                       NULL);
    if (!m->adaptive)
        return dbz_sch("string", optional, NULL, NULL);
    switch (type_oid) {
    case DBZ_DATEOID:
        return dbz_sch("int32", optional, "io.debezium.time.Date", NULL);
    case DBZ_TIMEOID:
        return ms ? dbz_sch("int32", optional, "io.debezium.time.Time", NULL)
                  : dbz_sch("int64", optional, "io.debezium.time.MicroTime",
                            NULL);
    case DBZ_TIMETZOID:
        return dbz_sch("string", optional, "io.debezium.time.ZonedTime", NULL);
    case DBZ_INTERVALOID:
        return dbz_sch("int64", optional, "io.debezium.time.MicroDuration",
                       NULL);
    default:                         /* timestamp */
        return ms ? dbz_sch("int64", optional, "io.debezium.time.Timestamp",
                            NULL)
                  : dbz_sch("int64", optional,
                            "io.debezium.time.MicroTimestamp", NULL);
    }
}

/* The Connect type of the scalar types with no semantic name. */
static const char *dbz_plain_type(uint32_t type_oid)
{
    switch (type_oid) {
    case DBZ_BOOLOID: return "boolean";
    case DBZ_INT2OID: return "int16";
    case DBZ_INT4OID: return "int32";
    case DBZ_INT8OID:
    case DBZ_OIDOID: return "int64";
    case DBZ_FLOAT4OID: return "float";
    case DBZ_FLOAT8OID: return "double";
    case DBZ_BYTEAOID: return "bytes";
    default: return "string";
    }
}

/* Strings with a semantic name; NULL for none. */
static const char *dbz_string_name(uint32_t type_oid)
{
    switch (type_oid) {
    case DBZ_JSONOID:
    case DBZ_JSONBOID: return "io.debezium.data.Json";
    case DBZ_XMLOID: return "io.debezium.data.Xml";
    case DBZ_UUIDOID: return "io.debezium.data.Uuid";
    default: return NULL;
    }
}

json_t *dbz_type_schema(const dbz_mode *m, uint32_t type_oid, int32_t typmod,
                        bool optional, const char *allowed)
{
    static const dbz_mode dflt = {DBZ_DECIMAL_STRING, false};
    uint32_t elem;
    if (!m)
        m = &dflt;
    if (allowed)
        return dbz_sch("string", optional, "io.debezium.data.Enum",
                       json_pack("{s:s}", "allowed", allowed));
    switch (type_oid) {
    case DBZ_NUMERICOID:
    case DBZ_MONEYOID:
        return dbz_sch_numeric(m, optional, type_oid, typmod);
    case DBZ_DATEOID:
    case DBZ_TIMEOID:
    case DBZ_TIMETZOID:
    case DBZ_TIMESTAMPOID:
    case DBZ_TIMESTAMPTZOID:
    case DBZ_INTERVALOID:
        return dbz_sch_time(m, optional, type_oid, typmod);
    }
    if ((elem = dbz_array_elem(type_oid)))
        return json_pack("{s:s, s:o, s:b}", "type", "array", "items",
                         dbz_type_schema(m, elem, typmod, true, NULL),
                         "optional", optional);
    return dbz_sch(dbz_plain_type(type_oid), optional,
                   dbz_string_name(type_oid), NULL);
}

/* Sets "field" last, as a struct's fields have it; steals f. */
static json_t *dbz_field(json_t *f, const char *name)
{
    if (f && dbz_put(f, "field", dbz_str(name)))
        return f;
    json_decref(f);
    return NULL;
}

/*
 * A row's struct: key columns required (PostgreSQL keeps them NOT NULL),
 * every other column optional, as pgoutput does not say which are.
 */
static json_t *dbz_row_schema(const dbz_mode *m, const char *name,
                              const sink_rel *rel, bool key_only,
                              const char *const *allowed)
{
    json_t *fields = json_array();
    for (uint16_t i = 0; fields && i < rel->ncols; i++) {
        const struct sink_col *c = &rel->cols[i];
        json_t *f;
        if (key_only && !dbz_key_col(rel, c))
            continue;
        f = dbz_type_schema(m, c->type_oid, c->typmod, !dbz_key_col(rel, c),
                            allowed ? allowed[i] : NULL);
        if (json_array_append_new(fields, dbz_field(f, c->name)) != 0) {
            json_decref(fields);
            fields = NULL;
        }
    }
    return json_pack("{s:s, s:o, s:b, s:s}", "type", "struct", "fields",
                     fields, "optional", !key_only, "name", name);
}

/* "<server>.<schema>.<table>.<what>", Debezium's schema names. */
static char *dbz_schema_name(const char *server, const sink_rel *rel,
                             const char *what)
{
    char *s = NULL;
    if (asprintf(&s, "%s.%s.%s.%s", server ? server : "", rel->schema,
                 rel->name, what) < 0)
        return NULL;
    return s;
}

json_t *dbz_key_schema(const dbz_mode *m, const char *server,
                       const sink_rel *rel, const char *const *allowed)
{
    char *name;
    json_t *j;
    if (!dbz_has_key(rel))
        return json_null();
    if (!(name = dbz_schema_name(server, rel, "Key")))
        return NULL;
    j = dbz_row_schema(m, name, rel, true, allowed);
    free(name);
    return j;
}

/* io.debezium.connector.postgresql.Source, as cleave fills it. */
static json_t *dbz_source_schema(void)
{
    return json_pack(
        "{s:s, s:[{s:s, s:b, s:s}, {s:s, s:b, s:s}, {s:s, s:b, s:s},"
        " {s:s, s:b, s:s}, {s:s, s:b, s:s, s:i, s:{s:s}, s:s, s:s},"
        " {s:s, s:b, s:s}, {s:s, s:b, s:s}, {s:s, s:b, s:s}, {s:s, s:b, s:s},"
        " {s:s, s:b, s:s}, {s:s, s:b, s:s}], s:b, s:s, s:s}",
        "type", "struct", "fields",
        "type", "string", "optional", false, "field", "version",
        "type", "string", "optional", false, "field", "connector",
        "type", "string", "optional", false, "field", "name",
        "type", "int64", "optional", false, "field", "ts_ms",
        "type", "string", "optional", true, "name", "io.debezium.data.Enum",
        "version", 1, "parameters", "allowed", "true,last,false,incremental",
        "default", "false", "field", "snapshot",
        "type", "string", "optional", false, "field", "db",
        "type", "string", "optional", true, "field", "sequence",
        "type", "string", "optional", false, "field", "schema",
        "type", "string", "optional", false, "field", "table",
        "type", "int64", "optional", true, "field", "txId",
        "type", "int64", "optional", true, "field", "lsn",
        "optional", false, "name", "io.debezium.connector.postgresql.Source",
        "field", "source");
}

/* The transaction block (provide.transaction.metadata): event.block. */
static json_t *dbz_txblock_schema(void)
{
    return json_pack(
        "{s:s, s:[{s:s, s:b, s:s}, {s:s, s:b, s:s}, {s:s, s:b, s:s}],"
        " s:b, s:s, s:i, s:s}", "type", "struct", "fields",
        "type", "string", "optional", false, "field", "id",
        "type", "int64", "optional", false, "field", "total_order",
        "type", "int64", "optional", false, "field", "data_collection_order",
        "optional", true, "name", "event.block", "version", 1,
        "field", "transaction");
}

static json_t *dbz_envelope_fields(const dbz_mode *m, const char *server,
                                   const sink_rel *rel,
                                   const char *const *allowed)
{
    char *name = dbz_schema_name(server, rel, "Value");
    json_t *before, *after;
    if (!name)
        return NULL;
    before = dbz_field(dbz_row_schema(m, name, rel, false, allowed), "before");
    after = dbz_field(dbz_row_schema(m, name, rel, false, allowed), "after");
    free(name);
    return json_pack("[o, o, o, {s:s, s:b, s:s}, {s:s, s:b, s:s}, o]",
                     before, after, dbz_source_schema(),
                     "type", "string", "optional", false, "field", "op",
                     "type", "int64", "optional", true, "field", "ts_ms",
                     dbz_txblock_schema());
}

json_t *dbz_envelope_schema(const dbz_mode *m, const char *server,
                            const sink_rel *rel, const char *const *allowed)
{
    char *name = dbz_schema_name(server, rel, "Envelope");
    json_t *j;
    if (!name)
        return NULL;
    j = json_pack("{s:s, s:o, s:b, s:s, s:i}", "type", "struct", "fields",
                  dbz_envelope_fields(m, server, rel, allowed), "optional",
                  false, "name", name, "version", 1);
    free(name);
    return j;
}

/* The message events' key and value (op m), Debezium's names. */
static json_t *dbz_message_schemas(bool key)
{
    if (key)
        return json_pack("{s:s, s:[{s:s, s:b, s:s}], s:b, s:s}", "type",
                         "struct", "fields", "type", "string", "optional",
                         true, "field", "prefix", "optional", false, "name",
                         "io.debezium.connector.postgresql.MessageKey");
    return json_pack(
        "{s:s, s:[{s:s, s:b, s:s}, {s:s, s:b, s:s}, o,"
        " {s:s, s:[{s:s, s:b, s:s}, {s:s, s:b, s:s}], s:b, s:s, s:s}],"
        " s:b, s:s}", "type", "struct", "fields",
        "type", "string", "optional", false, "field", "op",
        "type", "int64", "optional", true, "field", "ts_ms",
        dbz_source_schema(),
        "type", "struct", "fields",
        "type", "string", "optional", true, "field", "prefix",
        "type", "bytes", "optional", true, "field", "content",
        "optional", false, "name", "io.debezium.connector.postgresql.Message",
        "field", "message",
        "optional", false, "name",
        "io.debezium.connector.postgresql.MessageValue");
}

/* The transaction topic's BEGIN and END events. */
static json_t *dbz_txn_schemas(bool key)
{
    if (key)
        return json_pack("{s:s, s:[{s:s, s:b, s:s}], s:b, s:s}", "type",
                         "struct", "fields", "type", "string", "optional",
                         false, "field", "id", "optional", false, "name",
                         "io.debezium.connector.common.TransactionMetadataKey");
    return json_pack(
        "{s:s, s:[{s:s, s:b, s:s}, {s:s, s:b, s:s}, {s:s, s:b, s:s},"
        " {s:s, s:{s:s, s:[{s:s, s:b, s:s}, {s:s, s:b, s:s}], s:b}, s:b,"
        " s:s}, {s:s, s:b, s:s}], s:b, s:s}", "type", "struct", "fields",
        "type", "string", "optional", false, "field", "status",
        "type", "string", "optional", false, "field", "id",
        "type", "int64", "optional", true, "field", "event_count",
        "type", "array", "items", "type", "struct", "fields",
        "type", "string", "optional", false, "field", "data_collection",
        "type", "int64", "optional", false, "field", "event_count",
        "optional", false, "optional", true, "field", "data_collections",
        "type", "int64", "optional", false, "field", "ts_ms",
        "optional", false, "name",
        "io.debezium.connector.common.TransactionMetadataValue");
}

json_t *dbz_fixed_schema(dbz_fixed which)
{
    switch (which) {
    case DBZ_SCHEMA_MESSAGE_KEY: return dbz_message_schemas(true);
    case DBZ_SCHEMA_MESSAGE: return dbz_message_schemas(false);
    case DBZ_SCHEMA_TXN_KEY: return dbz_txn_schemas(true);
    default: return dbz_txn_schemas(false);
    }
}

json_t *dbz_connect(json_t *schema, json_t *payload)
{
    if (!payload)
        return NULL;
    return json_pack("{s:O, s:o}", "schema", schema, "payload", payload);
}

/* ---- events ------------------------------------------------------------- */

/*
 * source.sequence: a string holding a JSON array of two decimal strings,
 * the last commit's LSN (null before any) and this event's.
 */
static json_t *dbz_sequence(lsn_t last_commit, lsn_t lsn)
{
    char buf[64];
    if (last_commit)
        snprintf(buf, sizeof buf, "[\"%" PRIu64 "\",\"%" PRIu64 "\"]",
                 last_commit, lsn);
    else
        snprintf(buf, sizeof buf, "[null,\"%" PRIu64 "\"]", lsn);
    return json_string_nocheck(buf);
}

static json_t *dbz_source_new(const dbz_source *src)
{
    json_t *s = json_object();
    if (!s)
        return NULL;
    if (dbz_put(s, "version", dbz_str(src->version)) &&
        dbz_put(s, "connector", json_string_nocheck("postgresql")) &&
        dbz_put(s, "name", dbz_str(src->name)) &&
        dbz_put(s, "ts_ms", json_integer(src->ts_ms)) &&
        dbz_put(s, "snapshot", dbz_str(src->snapshot)) &&
        dbz_put(s, "db", dbz_str(src->db)) &&
        dbz_put(s, "sequence", dbz_sequence(src->last_commit_lsn, src->lsn)) &&
        dbz_put(s, "schema", dbz_str(src->schema)) &&
        dbz_put(s, "table", dbz_str(src->table)) &&
        dbz_put(s, "txId", json_integer(src->txid)) &&
        dbz_put(s, "lsn", json_integer((json_int_t)src->lsn)))
        return s;
    json_decref(s);
    return NULL;
}

static json_t *dbz_txinfo_new(const dbz_txinfo *tx)
{
    json_t *t = json_object();
    if (!t)
        return NULL;
    if (dbz_put(t, "id", dbz_str(tx->id)) &&
        dbz_put(t, "total_order", json_integer(tx->total_order)) &&
        dbz_put(t, "data_collection_order",
                json_integer(tx->data_collection_order)))
        return t;
    json_decref(t);
    return NULL;
}

json_t *dbz_source_json(const dbz_source *src)
{
    return dbz_source_new(src);
}

json_t *dbz_envelope(char op, json_t *before, json_t *after,
                     const dbz_source *src, const dbz_txinfo *tx,
                     int64_t ts_ms)
{
    return dbz_envelope_src(op, before, after, dbz_source_new(src), tx, ts_ms);
}

json_t *dbz_envelope_src(char op, json_t *before, json_t *after,
                         json_t *source, const dbz_txinfo *tx, int64_t ts_ms)
{
    json_t *ev = json_object();
    char ops[2] = {op, '\0'};
    bool ok;
    if (!ev) {
        json_decref(before);
        json_decref(after);
        json_decref(source);
        return NULL;
    }
    /* all three are stolen whatever happens, so they are put first */
    ok = dbz_put(ev, "before", before ? before : json_null());
    ok = dbz_put(ev, "after", after ? after : json_null()) && ok;
    ok = dbz_put(ev, "source", source) && ok;
    ok = ok &&
         dbz_put(ev, "op", json_string(ops)) &&
         dbz_put(ev, "ts_ms", json_integer(ts_ms)) &&
         (!tx || dbz_put(ev, "transaction", dbz_txinfo_new(tx)));
    if (ok)
        return ev;
    json_decref(ev);
    return NULL;
}

json_t *dbz_message_key(const char *prefix)
{
    json_t *k = json_object();
    if (k && !dbz_put(k, "prefix", dbz_str(prefix))) {
        json_decref(k);
        return NULL;
    }
    return k;
}

static json_t *dbz_message_body(const char *prefix, const uint8_t *content,
                                 uint32_t len)
{
    char *b64 = dbz_base64(content, len);
    json_t *m = b64 ? json_object() : NULL;
    bool ok = m && dbz_put(m, "prefix", dbz_str(prefix)) &&
              dbz_put(m, "content", json_string_nocheck(b64));
    free(b64);
    if (ok)
        return m;
    json_decref(m);
    return NULL;
}

json_t *dbz_message(const char *prefix, const uint8_t *content, uint32_t len,
                    const dbz_source *src, int64_t ts_ms)
{
    json_t *ev = json_object();
    if (!ev)
        return NULL;
    if (dbz_put(ev, "op", json_string_nocheck("m")) &&
        dbz_put(ev, "ts_ms", json_integer(ts_ms)) &&
        dbz_put(ev, "source", dbz_source_new(src)) &&
        dbz_put(ev, "message", dbz_message_body(prefix, content, len)))
        return ev;
    json_decref(ev);
    return NULL;
}

/* ---- transaction metadata ----------------------------------------------- */

json_t *dbz_txn_key(const char *id)
{
    json_t *k = json_object();
    if (k && !dbz_put(k, "id", dbz_str(id))) {
        json_decref(k);
        return NULL;
    }
    return k;
}

/* BEGIN and END share a shape; BEGIN has nulls for the counts. */
static json_t *dbz_txn(const char *status, const char *id, int64_t ts_ms,
                       json_t *count, json_t *colls)
{
    json_t *t = json_object();
    bool ok;
    if (!t) {
        json_decref(count);
        json_decref(colls);
        return NULL;
    }
    /* every put runs, so count and colls are stolen whatever happens */
    ok = dbz_put(t, "status", json_string_nocheck(status));
    ok = dbz_put(t, "id", dbz_str(id)) && ok;
    ok = dbz_put(t, "event_count", count) && ok;
    ok = dbz_put(t, "data_collections", colls) && ok;
    ok = dbz_put(t, "ts_ms", json_integer(ts_ms)) && ok;
    if (ok)
        return t;
    json_decref(t);
    return NULL;
}

json_t *dbz_txn_begin(const char *id, int64_t ts_ms)
{
    return dbz_txn("BEGIN", id, ts_ms, json_null(), json_null());
}

static json_t *dbz_collection(const char *name, int64_t count)
{
    json_t *c = json_object();
    if (c && dbz_put(c, "data_collection", dbz_str(name)) &&
        dbz_put(c, "event_count", json_integer(count)))
        return c;
    json_decref(c);
    return NULL;
}

json_t *dbz_txn_end(const char *id, int64_t ts_ms, int64_t event_count,
                    const char *const *collections, const int64_t *counts,
                    size_t n_colls)
{
    json_t *colls = json_array();
    if (!colls)
        return NULL;
    for (size_t i = 0; i < n_colls; i++) {
        if (json_array_append_new(colls,
                                  dbz_collection(collections[i], counts[i]))) {
            json_decref(colls);
            return NULL;
        }
    }
    return dbz_txn("END", id, ts_ms, json_integer(event_count), colls);
}

/* ---- topics and output -------------------------------------------------- */

/* Kafka allows [A-Za-z0-9._-] in a topic name. */
static char dbz_topic_char(char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
        (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-')
        return ch;
    return '_';
}

char *dbz_topic(const char *tmpl, const char *name, const char *service,
                const char *schema, const char *table)
{
    const struct {
        const char *tag;
        const char *value;
    } subs[] = {
        {"{name}", name}, {"{service}", service},
        {"{schema}", schema}, {"{table}", table},
    };
    enum { DBZ_NSUBS = sizeof subs / sizeof subs[0] };
    char *out = malloc(DBZ_TOPIC_MAX + 1);
    size_t n = 0;
    if (!out)
        return NULL;
    for (const char *p = tmpl ? tmpl : ""; *p && n < DBZ_TOPIC_MAX;) {
        const char *value = NULL;
        for (size_t i = 0; *p == '{' && i < DBZ_NSUBS; i++) {
            size_t tag_len = strlen(subs[i].tag);
            if (strncmp(p, subs[i].tag, tag_len) == 0) {
                value = subs[i].value ? subs[i].value : "";
                p += tag_len;
                break;
            }
        }
        if (!value) {
            out[n++] = dbz_topic_char(*p++);
            continue;
        }
        for (; *value && n < DBZ_TOPIC_MAX; value++)
            out[n++] = dbz_topic_char(*value);
    }
    out[n] = '\0';
    return out;
}

/* ---- events written straight into a buffer ----------------------------- */

/*
 * Grows the buffer to room for n more bytes and a NUL; false (sticky)
 * when out of memory. Out of line: the writes below check the room they
 * have inline and come here only when it runs out, rarely once the
 * reused buffer has grown to the size of an event.
 */
static bool dbz_out_grow(dbz_out *o, size_t n)
{
    size_t cap = o->cap ? o->cap : 1024;
    char *data;
    if (o->oom)
        return false;
    while (n >= cap - o->len) {
        if (cap > SIZE_MAX / 2)
            return !(o->oom = true);
        cap *= 2;
    }
    if (!(data = realloc(o->data, cap)))
        return !(o->oom = true);
    o->data = data;
    o->cap = cap;
    return true;
}

/* Room for n more bytes and a NUL; false (sticky) when out of memory. */
static inline bool dbz_out_room(dbz_out *o, size_t n)
{
    return n < o->cap - o->len ? !o->oom : dbz_out_grow(o, n);
}

/* n bytes; inline, as most writes are a few bytes of a literal. */
static inline void dbz_out_bytes(dbz_out *o, const char *s, size_t n)
{
    if (!dbz_out_room(o, n))
        return;
    memcpy(o->data + o->len, s, n);
    o->len += n;
}

static inline void dbz_out_ch(dbz_out *o, char c)
{
    if (dbz_out_room(o, 1))
        o->data[o->len++] = c;
}

void dbz_out_raw(dbz_out *o, const char *s, size_t n)
{
    dbz_out_bytes(o, s, n);
}

/* A string literal, its length known at compile time. */
#define dbz_out_lit(o, s) dbz_out_bytes((o), "" s, sizeof(s) - 1)

/* u in decimal, after a '-' when negative: printf's, without printf. */
static void dbz_out_digits(dbz_out *o, uint64_t u, bool negative)
{
    char buf[24], *p = buf + sizeof buf;
    do
        *--p = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (negative)
        *--p = '-';
    dbz_out_bytes(o, p, (size_t)(buf + sizeof buf - p));
}

/* jansson's "%lld". */
static void dbz_out_int(dbz_out *o, int64_t v)
{
    dbz_out_digits(o, v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v, v < 0);
}

/* An ASCII byte jansson escapes, as it escapes it. */
static void dbz_out_escape(dbz_out *o, uint8_t c)
{
    static const char hex[] = "0123456789ABCDEF";
    char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xF]};
    switch (c) {
    case '\\': dbz_out_bytes(o, "\\\\", 2); return;
    case '"': dbz_out_bytes(o, "\\\"", 2); return;
    case '\b': dbz_out_bytes(o, "\\b", 2); return;
    case '\f': dbz_out_bytes(o, "\\f", 2); return;
    case '\n': dbz_out_bytes(o, "\\n", 2); return;
    case '\r': dbz_out_bytes(o, "\\r", 2); return;
    case '\t': dbz_out_bytes(o, "\\t", 2); return;
    default: dbz_out_bytes(o, u, sizeof u);
    }
}

/* A byte written as it is, in a string. */
static bool dbz_out_plain_byte(uint8_t c)
{
    return c >= 0x20 && c != '"' && c != '\\' && c < 0x80;
}

/* The rest of dbz_out_str from s[i], the first byte that is not plain. */
static void dbz_out_str_from(dbz_out *o, const char *s, size_t n, size_t i)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t run = 0, k;
    dbz_out_ch(o, '"');
    while (i < n) {
        uint8_t c = p[i];
        if (dbz_out_plain_byte(c)) {
            i++;
            continue;
        }
        dbz_out_bytes(o, s + run, i - run);
        if (c < 0x80) {
            dbz_out_escape(o, c);
            k = 1;
        } else if ((k = dbz_utf8_len(p + i, n - i)) != 0) {
            dbz_out_bytes(o, s + i, k);
        } else {
            dbz_out_bytes(o, "\xEF\xBF\xBD", 3);
            k = 1;
        }
        run = i += k;
    }
    dbz_out_bytes(o, s + run, n - run);
    dbz_out_ch(o, '"');
}

/*
 * A JSON string as dbz_text and jansson's compact dump make it: '"', '\'
 * and control characters escaped, other UTF-8 as it is, every byte that
 * is not part of valid UTF-8 as U+FFFD.
 */
/*
 * Whether none of 8 bytes needs a look: none below 0x20, none '"' or '\\',
 * none from 0x80 (a byte >= 0x80 sets its own top bit in x and clears it
 * in the tests, so they need not care about carries out of it).
 */
static bool dbz_plain8(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
    uint64_t quote = x ^ (ones * '"'), bslash = x ^ (ones * '\\');
    uint64_t bad = (x - ones * 0x20) | (quote - ones) | (bslash - ones) | x;
    return (bad & high) == 0;
}

/* The length of s's prefix of bytes written as they are. */
static size_t dbz_plain_len(const char *s, size_t n)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    uint64_t x;
    for (; i + 8 <= n; i += 8) {
        memcpy(&x, p + i, 8);
        if (!dbz_plain8(x))
            break;
    }
    while (i < n && dbz_out_plain_byte(p[i]))
        i++;
    return i;
}

static void dbz_out_str(dbz_out *o, const char *s, size_t n)
{
    size_t i = dbz_plain_len(s, n);
    if (i < n) {
        dbz_out_str_from(o, s, n, i);
    } else if (dbz_out_room(o, n + 2)) {
        /* the common case, nothing to escape: one write */
        char *d = o->data + o->len;
        d[0] = '"';
        memcpy(d + 1, s, n);
        d[n + 1] = '"';
        o->len += n + 2;
    }
}

static void dbz_out_cstr(dbz_out *o, const char *s)
{
    if (s)
        dbz_out_str(o, s, strlen(s));
    else
        dbz_out_lit(o, "null");
}

/* '"key":' after '{' (first) or ','; key a known-good literal. */
#define dbz_out_key(o, key, first) \
    dbz_out_bytes((o), (first) ? "{\"" key "\":" : ",\"" key "\":", \
                sizeof(key) + 3)

static int dbz_out_put(const char *s, size_t n, void *arg)
{
    dbz_out *o = arg;
    dbz_out_bytes(o, s, n);
    return o->oom ? -1 : 0;
}

/* A jansson value, dumped as dbz_dump does; steals j (NULL: no memory). */
static void dbz_out_json(dbz_out *o, json_t *j)
{
    if (!j || json_dump_callback(j, dbz_out_put, o,
                                 JSON_COMPACT | JSON_ENCODE_ANY) != 0)
        o->oom = true;
    json_decref(j);
}

/*
 * The values whose rendering needs no jansson value: integers, booleans,
 * timestamps as isostring and every type whose value is its text. false:
 * not one of them (floats, bytea, arrays, the modes' numbers and objects).
 */
static bool dbz_out_plain(dbz_out *o, const dbz_mode *m, uint32_t type_oid,
                          const char *text, size_t len)
{
    char iso[DBZ_ISO_MAX];
    size_t n;
    int64_t v;
    switch (type_oid) {
    case DBZ_INT2OID:
    case DBZ_INT4OID:
    case DBZ_INT8OID:
    case DBZ_OIDOID:
        if (!dbz_parse_int(text, len, &v))
            break;
        if (text[text[0] == '-'] != '0' || len == 1)
            dbz_out_bytes(o, text, len);     /* already as printed */
        else
            dbz_out_int(o, v);
        return true;
    case DBZ_BOOLOID:
        if (len != 1 || (text[0] != 't' && text[0] != 'f'))
            break;
        if (text[0] == 't')
            dbz_out_lit(o, "true");
        else
            dbz_out_lit(o, "false");
        return true;
    case DBZ_TIMESTAMPOID:
    case DBZ_TIMESTAMPTZOID:
        if (m->adaptive && type_oid == DBZ_TIMESTAMPOID)
            return false;
        if (!(n = dbz_iso(text, len, type_oid == DBZ_TIMESTAMPTZOID, iso)))
            break;
        dbz_out_ch(o, '"');
        dbz_out_bytes(o, iso, n);
        dbz_out_ch(o, '"');
        return true;
    case DBZ_NUMERICOID:
        if (m->decimal != DBZ_DECIMAL_STRING)
            return false;
        break;
    case DBZ_MONEYOID:
        if (m->adaptive || m->decimal != DBZ_DECIMAL_STRING)
            return false;
        break;
    case DBZ_DATEOID:
    case DBZ_TIMEOID:
    case DBZ_TIMETZOID:
    case DBZ_INTERVALOID:
        if (m->adaptive)
            return false;
        break;
    case DBZ_FLOAT4OID:
    case DBZ_FLOAT8OID:
    case DBZ_BYTEAOID:
        return false;
    default:
        if (dbz_array_elem(type_oid))
            return false;
    }
    dbz_out_str(o, text, len);
    return true;
}

/* One column's value, as dbz_col_value renders it. */
static void dbz_out_col(dbz_out *o, const dbz_mode *m,
                        const struct sink_col *col, const sink_value *v)
{
    const char *text = v->data ? v->data : "";
    size_t len = v->data ? v->len : 0;
    switch (v->kind) {
    case 't':
        if (!dbz_out_plain(o, m, col->type_oid, text, len))
            dbz_out_json(o, dbz_value_typed(m, col->type_oid, col->typmod,
                                            text, (uint32_t)len));
        return;
    case 'u':
        dbz_out_json(o, dbz_unavailable(m, col->type_oid));
        return;
    default:
        dbz_out_lit(o, "null");
    }
}

void dbz_out_row(dbz_out *o, const dbz_mode *m, const sink_rel *rel,
                 const sink_value *vals, bool key_only)
{
    static const dbz_mode dflt = {DBZ_DECIMAL_STRING, false};
    bool first = true;
    if (!vals) {
        dbz_out_lit(o, "null");
        return;
    }
    dbz_out_ch(o, '{');
    for (uint16_t i = 0; i < rel->ncols; i++) {
        const struct sink_col *col = &rel->cols[i];
        if (key_only && !dbz_key_col(rel, col))
            continue;
        dbz_out_bytes(o, ",", !first);
        dbz_out_cstr(o, col->name);
        dbz_out_ch(o, ':');
        dbz_out_col(o, m ? m : &dflt, col, &vals[i]);
        first = false;
    }
    dbz_out_ch(o, '}');
}

void dbz_out_key_row(dbz_out *o, const dbz_mode *m, const sink_rel *rel,
                     const sink_value *vals)
{
    if (dbz_has_key(rel))
        dbz_out_row(o, m, rel, vals, true);
    else
        dbz_out_lit(o, "null");
}

/*
 * The source block up to the event's LSN in source.sequence: what comes
 * before the LSN's first place, the same for every event of a table in
 * one transaction.
 */
static void out_source_head(dbz_out *o, const dbz_source *src)
{
    dbz_out_key(o, "version", true);
    dbz_out_cstr(o, src->version);
    dbz_out_lit(o, ",\"connector\":\"postgresql\",\"name\":");
    dbz_out_cstr(o, src->name);
    dbz_out_key(o, "ts_ms", false);
    dbz_out_int(o, src->ts_ms);
    dbz_out_key(o, "snapshot", false);
    dbz_out_cstr(o, src->snapshot);
    dbz_out_key(o, "db", false);
    dbz_out_cstr(o, src->db);
    dbz_out_key(o, "sequence", false);
    /* dbz_sequence's string as its JSON */
    dbz_out_bytes(o, "\"[", 2);
    if (src->last_commit_lsn) {
        dbz_out_bytes(o, "\\\"", 2);
        dbz_out_digits(o, src->last_commit_lsn, false);
        dbz_out_bytes(o, "\\\"", 2);
    } else {
        dbz_out_lit(o, "null");
    }
    dbz_out_bytes(o, ",\\\"", 3);
}

/* From the end of source.sequence to the LSN's second place (source.lsn). */
static void out_source_mid(dbz_out *o, const dbz_source *src)
{
    dbz_out_bytes(o, "\\\"]\"", 4);
    dbz_out_key(o, "schema", false);
    dbz_out_cstr(o, src->schema);
    dbz_out_key(o, "table", false);
    dbz_out_cstr(o, src->table);
    dbz_out_key(o, "txId", false);
    dbz_out_int(o, src->txid);
    dbz_out_key(o, "lsn", false);
}

void dbz_out_source(dbz_out *o, const dbz_source *src)
{
    out_source_head(o, src);
    dbz_out_digits(o, src->lsn, false);
    out_source_mid(o, src);
    dbz_out_int(o, (int64_t)src->lsn);
    dbz_out_ch(o, '}');
}

void dbz_srcblock_set(dbz_srcblock *b, const dbz_source *src)
{
    b->text.len = 0;
    b->text.oom = false;
    out_source_head(&b->text, src);
    b->cut = b->text.len;
    out_source_mid(&b->text, src);
}

void dbz_out_srcblock(dbz_out *o, const dbz_srcblock *b, lsn_t lsn)
{
    dbz_out_bytes(o, b->text.data, b->cut);
    dbz_out_digits(o, lsn, false);
    dbz_out_bytes(o, b->text.data + b->cut, b->text.len - b->cut);
    dbz_out_int(o, (int64_t)lsn);
    dbz_out_ch(o, '}');
}

void dbz_out_envelope(dbz_out *o, const dbz_mode *m, char op,
                      const sink_rel *rel, const sink_value *before,
                      const sink_value *after, const dbz_srcblock *src,
                      lsn_t lsn, const dbz_txinfo *tx, int64_t ts_ms)
{
    char ops[2] = {op, '\0'};
    dbz_out_key(o, "before", true);
    dbz_out_row(o, m, rel, before, false);
    dbz_out_key(o, "after", false);
    dbz_out_row(o, m, rel, after, false);
    dbz_out_key(o, "source", false);
    dbz_out_srcblock(o, src, lsn);
    dbz_out_key(o, "op", false);
    dbz_out_cstr(o, ops);
    dbz_out_key(o, "ts_ms", false);
    dbz_out_int(o, ts_ms);
    if (tx) {
        dbz_out_key(o, "transaction", false);
        dbz_out_key(o, "id", true);
        dbz_out_cstr(o, tx->id);
        dbz_out_key(o, "total_order", false);
        dbz_out_int(o, tx->total_order);
        dbz_out_key(o, "data_collection_order", false);
        dbz_out_int(o, tx->data_collection_order);
        dbz_out_ch(o, '}');
    }
    dbz_out_ch(o, '}');
}

void dbz_out_free(dbz_out *o)
{
    free(o->data);
    *o = (dbz_out){0};
}

char *dbz_dump(const json_t *j, size_t *len)
{
    /* jansson keeps objects in insertion order: Debezium's field order */
    dbz_out o = {0};
    if (!j || !dbz_out_room(&o, 0) ||
        json_dump_callback(j, dbz_out_put, &o,
                           JSON_COMPACT | JSON_ENCODE_ANY) != 0) {
        free(o.data);
        return NULL;
    }
    o.data[o.len] = '\0';            /* dbz_out_room always leaves room */
    if (len)
        *len = o.len;
    return o.data;
}
