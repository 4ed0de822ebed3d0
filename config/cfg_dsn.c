/*
 * cfg_dsn: connection strings, checked and redacted with libpq's own parser
 * (PQconninfoParse) so that we accept exactly what libpq will accept, in
 * keyword or URI form, without connecting anywhere.
 *
 * A password must never reach a log or an error message. libpq's parse
 * errors quote pieces of the input ("missing "=" after "..."", the whole
 * URI), so when the string may carry a password those quoted pieces are
 * blanked before the message is used.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libpq-fe.h>

#include "config/cfg_internal.h"

#define REDACTED "********"

static bool is_uri(const char *dsn)
{
    return strncmp(dsn, "postgresql://", 13) == 0 ||
           strncmp(dsn, "postgres://", 11) == 0;
}

/*
 * Keyword strings name the password with the literal keyword (libpq does
 * not unescape keywords); URIs can hide it in user:pass@ or in a
 * percent-encoded query key, so every URI is treated as suspect.
 */
static bool may_hold_password(const char *dsn)
{
    return is_uri(dsn) || strcasestr(dsn, "password") != NULL;
}

/* Syntax tokens libpq quotes in its messages, harmless to keep. */
static bool harmless_quote(const char *q, size_t n)
{
    return n == 1 && strchr("=:/]", q[0]) != NULL;
}

/* Copies msg without its trailing newline, blanking "quoted" input. */
static void scrub(const char *msg, bool blank, char *out, size_t size)
{
    size_t o = 0;

    for (const char *p = msg; *p && o + 1 < size; p++) {
        const char *end = (*p == '"') ? strchr(p + 1, '"') : NULL;
        int n = end ? (int)(end - p - 1) : 0;
        if (!blank || !end)
            out[o++] = *p;
        else if (harmless_quote(p + 1, (size_t)n))
            o += (size_t)snprintf(out + o, size - o, "\"%.*s\"", n, p + 1);
        else
            o += (size_t)snprintf(out + o, size - o, "\"...\"");
        if (end && blank)
            p = end;   /* a quoted piece is handled whole */
        if (o >= size)
            o = size - 1;
    }
    while (o > 0 && isspace((unsigned char)out[o - 1]))
        o--;
    out[o] = '\0';
}

bool cfg_dsn_check(const char *dsn, cfg_why *why)
{
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(dsn, &msg);
    char clean[sizeof why->msg - 64];

    if (opts) {
        PQconninfoFree(opts);
        return true;
    }
    if (!msg)
        return cfg_whyf(why, -1, "out of memory");
    scrub(msg, may_hold_password(dsn), clean, sizeof clean);
    PQfreemem(msg);
    return cfg_whyf(why, -1, "%s; expected a libpq connection string "
                    "(key=value pairs or a postgresql:// URI)", clean);
}

/* libpq's quoting: single quotes, with \ escaping ' and \. */
static bool needs_quotes(const char *v)
{
    if (*v == '\0')
        return true;
    for (; *v; v++)
        if (isspace((unsigned char)*v) || *v == '\'' || *v == '\\')
            return true;
    return false;
}

/* Appends " key=value"; returns the new length, or 0 when out of memory. */
static size_t append_pair(char **buf, size_t len, const char *key,
                          const char *val)
{
    bool q = needs_quotes(val);
    size_t need = len + strlen(key) + 2 * strlen(val) + 6;
    char *nb = realloc(*buf, need);

    if (!nb)
        return 0;
    *buf = nb;
    if (len > 0)
        nb[len++] = ' ';
    len += (size_t)snprintf(nb + len, need - len, "%s=", key);
    if (q)
        nb[len++] = '\'';
    for (; *val; val++) {
        if (q && (*val == '\'' || *val == '\\'))
            nb[len++] = '\\';
        nb[len++] = *val;
    }
    if (q)
        nb[len++] = '\'';
    nb[len] = '\0';
    return len;
}

char *cfg_dsn_redacted(const char *dsn)
{
    PQconninfoOption *opts = PQconninfoParse(dsn ? dsn : "", NULL);
    char *buf = strdup("");
    size_t len = 0;

    if (!opts || !buf) {
        PQconninfoFree(opts);
        free(buf);
        return strdup("(unparsable connection string)");
    }
    for (PQconninfoOption *o = opts; o->keyword && buf; o++) {
        if (!o->val)
            continue;
        /* dispchar "*" is libpq's mark for secrets: password, sslpassword */
        bool secret = o->dispchar && o->dispchar[0] == '*';
        size_t nl = append_pair(&buf, len, o->keyword,
                                secret ? REDACTED : o->val);
        if (nl == 0) {
            free(buf);
            buf = NULL;
        }
        len = nl;
    }
    PQconninfoFree(opts);
    return buf;
}
