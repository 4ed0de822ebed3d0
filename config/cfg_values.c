/*
 * cfg_values: the rules for single values (booleans, durations, the
 * instance name, slot and publication names, paths, topic templates).
 * Each rule explains a refusal in the user's terms and, where it can,
 * points at the offending character.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "config/cfg_internal.h"

bool cfg_whyf(cfg_why *why, long at, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why->msg, sizeof why->msg, fmt, ap);
    va_end(ap);
    why->at = at;
    return false;
}

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static bool is_lower_or_digit(char ch)
{
    return (ch >= 'a' && ch <= 'z') || is_digit(ch) || ch == '_';
}

static bool is_alpha(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static bool copy_out(const char *s, size_t len, char **out, cfg_why *why)
{
    *out = strndup(s, len);
    return *out ? true : cfg_whyf(why, -1, "out of memory");
}

bool cfg_parse_bool(const char *s, bool *out, cfg_why *why)
{
    if (strcasecmp(s, "true") == 0 || strcasecmp(s, "false") == 0) {
        *out = (s[0] == 't' || s[0] == 'T');
        return true;
    }
    return cfg_whyf(why, -1, "'%s' is not a boolean; expected true or false",
                    s);
}

static long long unit_ms(const char *unit)
{
    static const struct { const char *name; long long ms; } units[] = {
        {"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000},
    };

    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(unit, units[i].name) == 0)
            return units[i].ms;
    return 0;
}

bool cfg_parse_duration(const char *s, int *ms, cfg_why *why)
{
    long long n = 0, mult;
    size_t i = 0;

    if (!is_digit(s[0]))
        return cfg_whyf(why, 0, "'%s' is not a duration; expected a whole "
                        "number with ms, s, m or h (500ms, 10s, 1m; a bare "
                        "number means seconds, 0 means off)", s);
    for (; is_digit(s[i]); i++) {
        n = n * 10 + (s[i] - '0');
        if (n > INT_MAX)
            return cfg_whyf(why, 0, "duration '%s' is too long; expected "
                            "at most %dms (about 596h)", s, INT_MAX);
    }
    mult = unit_ms(s + i);
    if (mult == 0)
        return cfg_whyf(why, (long)i, "'%s' has an unknown unit '%s'; "
                        "expected ms, s, m or h", s, s + i);
    if (n * mult > INT_MAX)
        return cfg_whyf(why, 0, "duration '%s' is too long; expected at "
                        "most %dms (about 596h)", s, INT_MAX);
    *ms = (int)(n * mult);
    return true;
}

bool cfg_parse_count(const char *s, int *n, cfg_why *why)
{
    int v = 0;
    size_t i = 0;

    for (; is_digit(s[i]) && v <= 64; i++)
        v = v * 10 + (s[i] - '0');
    if (i == 0 || s[i] != '\0' || v < 1 || v > 64)
        return cfg_whyf(why, 0, "'%s' is not a count; expected a whole number "
                        "from 1 to 64", s);
    *n = v;
    return true;
}

bool cfg_take_instance_name(const char *s, size_t len, char **out,
                            cfg_why *why)
{
    for (size_t i = 0; i < len; i++)
        if (!(is_alpha(s[i]) || is_digit(s[i]) || s[i] == '_' ||
              s[i] == '-' || s[i] == '.'))
            return cfg_whyf(why, (long)i, "invalid character in name "
                            "'%.*s'; expected letters, digits, '_', '-' or "
                            "'.'", (int)len, s);
    if (len > CFG_NAME_MAX)
        return cfg_whyf(why, -1, "name is %zu bytes long; expected 1 to %d",
                        len, CFG_NAME_MAX);
    return copy_out(s, len, out, why);
}

/* PostgreSQL's ReplicationSlotValidateName: [a-z0-9_]{1,63}. */
bool cfg_take_slot(const char *s, size_t len, char **out, cfg_why *why)
{
    for (size_t i = 0; i < len; i++)
        if (!is_lower_or_digit(s[i]))
            return cfg_whyf(why, (long)i, "invalid slot name '%.*s'; "
                            "expected lower-case letters, digits and '_' "
                            "only", (int)len, s);
    if (len > CFG_NAME_MAX)
        return cfg_whyf(why, -1, "slot name '%.*s' is %zu bytes long; "
                        "expected at most %d", (int)len, s, len,
                        CFG_NAME_MAX);
    return copy_out(s, len, out, why);
}

/* One SQL identifier, e.g. a publication: stored raw, like a table part. */
bool cfg_take_ident(const char *s, size_t len, char **out, cfg_why *why)
{
    return cfg_name_split(s, len, out, 1, 1, why) == 1;
}

bool cfg_take_dsn(const char *s, size_t len, char **out, cfg_why *why)
{
    return cfg_dsn_check(s, why) && copy_out(s, len, out, why);
}

bool cfg_take_socket(const char *s, size_t len, char **out, cfg_why *why)
{
    size_t max = sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1;

    if (len > max)
        return cfg_whyf(why, -1, "the socket path is %zu bytes long; "
                        "expected at most %zu (the limit of a Unix socket "
                        "path)", len, max);
    return copy_out(s, len, out, why);
}

/*
 * A size as PostgreSQL writes one (a whole number, then kB, MB or GB;
 * 0 alone), stored as its number of bytes in decimal.
 */
bool cfg_take_size(const char *s, size_t len, char **out, cfg_why *why)
{
    static const struct { const char *unit; long long mult; } units[] = {
        {"", 1}, {"kB", 1LL << 10}, {"MB", 1LL << 20}, {"GB", 1LL << 30},
    };
    long long v = 0;
    size_t i = 0;

    for (; i < len && is_digit(s[i]) && v < (1LL << 40); i++)
        v = v * 10 + (s[i] - '0');
    for (size_t u = 0; i > 0 && u < sizeof units / sizeof units[0]; u++) {
        if (strlen(units[u].unit) != len - i ||
            memcmp(s + i, units[u].unit, len - i) != 0 || (u == 0 && v != 0) ||
            v >= (1LL << 40))
            continue;
        char buf[32];
        int n = snprintf(buf, sizeof buf, "%lld", v * units[u].mult);
        return copy_out(buf, (size_t)n, out, why);
    }
    return cfg_whyf(why, 0, "'%.*s' is not a size; expected a whole number "
                    "with kB, MB or GB (such as 256MB), or 0", (int)len, s);
}

/* The first `known` of these are allowed in a template. */
static bool known_placeholder(const char *p, size_t n, size_t known)
{
    static const char *const names[] = {"name", "service", "schema", "table"};

    for (size_t i = 0; i < known; i++)
        if (strlen(names[i]) == n && memcmp(p, names[i], n) == 0)
            return true;
    return false;
}

static bool take_template(const char *s, size_t len, char **out, cfg_why *why,
                          size_t known, const char *expect)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '}')
            return cfg_whyf(why, (long)i, "'}' without '{' in topic "
                            "template; %s", expect);
        if (s[i] != '{')
            continue;
        const char *close = memchr(s + i, '}', len - i);
        if (!close)
            return cfg_whyf(why, (long)i, "unclosed '{' in topic template; "
                            "%s", expect);
        size_t n = (size_t)(close - (s + i + 1));
        if (!known_placeholder(s + i + 1, n, known))
            return cfg_whyf(why, (long)i, "unknown placeholder '{%.*s}' in "
                            "topic template; %s", (int)n, s + i + 1, expect);
        i += n + 1;
    }
    return copy_out(s, len, out, why);
}

bool cfg_take_topic(const char *s, size_t len, char **out, cfg_why *why)
{
    return take_template(s, len, out, why, 4,
                         "expected {name}, {service}, {schema} or {table}");
}

/* Transaction and message topics belong to no table. */
bool cfg_take_topic_plain(const char *s, size_t len, char **out, cfg_why *why)
{
    return take_template(s, len, out, why, 2, "expected {name} or {service}");
}

bool cfg_check_service_name(const char *s, size_t len, cfg_why *why)
{
    for (size_t i = 0; i < len; i++) {
        bool ok = is_alpha(s[i]) || s[i] == '_' || (i > 0 && is_digit(s[i]));
        if (!ok)
            return cfg_whyf(why, (long)i, "invalid service name '%.*s'; "
                            "expected a letter or '_', then letters, "
                            "digits or '_'", (int)len, s);
    }
    if (len > CFG_NAME_MAX)
        return cfg_whyf(why, -1, "service name is %zu bytes long; expected "
                        "at most %d", len, CFG_NAME_MAX);
    return true;
}

char *cfg_derive_object_name(const cfg *c)
{
    size_t n = strlen(c->name);
    char *s = malloc(n + sizeof "cleave_");

    if (!s)
        return NULL;
    memcpy(s, "cleave_", 7);
    for (size_t i = 0; i <= n; i++) {
        char ch = c->name[i];
        if (ch == '-' || ch == '.')
            ch = '_';
        else if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        s[7 + i] = ch;
    }
    return s;
}
