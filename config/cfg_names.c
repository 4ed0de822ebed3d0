/*
 * cfg_names: table, column and publication names read the way PostgreSQL's
 * parser reads identifiers, so that a name in cleave.yaml means exactly the
 * object SQL would find.
 *
 * Unquoted parts fold ASCII letters to lower case; double-quoted parts keep
 * everything, with "" standing for one ". Where PostgreSQL would silently
 * truncate a part longer than 63 bytes we refuse it: a truncated name could
 * quietly point at a different table.
 */
#include <stdlib.h>
#include <string.h>

#include "config/cfg_internal.h"

static bool ident_start(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           ch == '_' || ch >= 0x80;
}

static bool ident_cont(unsigned char ch)
{
    return ident_start(ch) || (ch >= '0' && ch <= '9') || ch == '$';
}

/* A character for a message: printable ASCII as is, anything else as hex. */
static const char *show_char(char buf[8], unsigned char ch)
{
    if (ch > 0x20 && ch < 0x7f)
        snprintf(buf, 8, "'%c'", ch);
    else if (ch == ' ')
        snprintf(buf, 8, "a space");
    else
        snprintf(buf, 8, "\\x%02X", ch);
    return buf;
}

static bool too_long(size_t n, size_t start, cfg_why *why)
{
    return cfg_whyf(why, (long)start,
                    "a name part is %zu bytes long; expected at most %d "
                    "(PostgreSQL would truncate it)", n, CFG_NAME_MAX);
}

static bool read_quoted(const char *s, size_t len, size_t *i, char **out,
                        cfg_why *why)
{
    size_t start = *i, j = start + 1, n = 0;
    char *buf = malloc(len - start);

    if (!buf)
        return cfg_whyf(why, -1, "out of memory");
    for (;;) {
        if (j >= len) {
            free(buf);
            return cfg_whyf(why, (long)start, "unterminated quoted name; "
                            "expected a closing '\"' (write \"\" for a "
                            "quote inside)");
        }
        if (s[j] == '"' && j + 1 < len && s[j + 1] == '"') {
            buf[n++] = '"';
            j += 2;
        } else if (s[j] == '"') {
            j++;
            break;
        } else {
            buf[n++] = s[j++];
        }
    }
    buf[n] = '\0';
    if (n == 0 || n > CFG_NAME_MAX) {
        free(buf);
        if (n == 0)
            return cfg_whyf(why, (long)start, "empty quoted name \"\"; "
                            "expected at least one character between the "
                            "quotes");
        return too_long(n, start, why);
    }
    *out = buf;
    *i = j;
    return true;
}

static bool read_plain(const char *s, size_t len, size_t *i, char **out,
                       cfg_why *why)
{
    size_t start = *i, j = start;
    char cb[8];

    if (j >= len)
        return cfg_whyf(why, (long)j, "a name is missing after '.'; "
                        "expected a name part");
    if (!ident_start((unsigned char)s[j]))
        return cfg_whyf(why, (long)j, "a name cannot start with %s; "
                        "expected a letter, '_' or a double-quoted name",
                        show_char(cb, (unsigned char)s[j]));
    while (j < len && ident_cont((unsigned char)s[j]))
        j++;
    if (j - start > CFG_NAME_MAX)
        return too_long(j - start, start, why);
    char *buf = malloc(j - start + 1);
    if (!buf)
        return cfg_whyf(why, -1, "out of memory");
    for (size_t k = start; k < j; k++) {
        char ch = s[k];
        buf[k - start] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a')
                                                  : ch;
    }
    buf[j - start] = '\0';
    *out = buf;
    *i = j;
    return true;
}

static void free_parts(char **parts, int n)
{
    for (int k = 0; k < n; k++) {
        free(parts[k]);
        parts[k] = NULL;
    }
}

/* After a part: the end, or a '.' and room for another part. */
static bool after_part(const char *s, size_t *i, int n, int max,
                       cfg_why *why)
{
    char cb[8];

    if (s[*i] != '.')
        return cfg_whyf(why, (long)*i, "unexpected %s in a name; expected "
                        "letters, digits, '_', '$', '.' between parts, or "
                        "a double-quoted name",
                        show_char(cb, (unsigned char)s[*i]));
    if (n == max)
        return cfg_whyf(why, (long)*i, "too many dotted parts; expected "
                        "at most %d", max);
    (*i)++;
    return true;
}

int cfg_name_split(const char *s, size_t len, char **parts, int min,
                   int max, cfg_why *why)
{
    size_t i = 0;
    int n = 0;

    if (len == 0) {
        cfg_whyf(why, -1, "empty name; expected a name");
        return -1;
    }
    if (memchr(s, '\0', len)) {
        cfg_whyf(why, -1, "a name contains a NUL character; expected text");
        return -1;
    }
    for (;;) {
        bool quoted = i < len && s[i] == '"';
        bool ok = quoted ? read_quoted(s, len, &i, &parts[n], why)
                         : read_plain(s, len, &i, &parts[n], why);
        if (!ok)
            break;
        n++;
        if (i == len) {
            if (n >= min)
                return n;
            cfg_whyf(why, -1, "only %d dotted part%s; expected at least %d",
                     n, n == 1 ? "" : "s", min);
            break;
        }
        if (!after_part(s, &i, n, max, why))
            break;
    }
    free_parts(parts, n);
    return -1;
}

bool cfg_table_from(const char *s, size_t len, cfg_table *out, cfg_why *why)
{
    char *parts[2] = {NULL, NULL};
    int n = cfg_name_split(s, len, parts, 1, 2, why);

    if (n < 0)
        return false;
    if (n == 1) {
        parts[1] = parts[0];
        parts[0] = strdup("public");
        if (!parts[0]) {
            free(parts[1]);
            return cfg_whyf(why, -1, "out of memory");
        }
    }
    out->schema = parts[0];
    out->name = parts[1];
    return true;
}

bool cfg_ref_from(const char *s, size_t len, cfg_ref *out, cfg_why *why)
{
    char *parts[3] = {NULL, NULL, NULL};
    int n = cfg_name_split(s, len, parts, 2, 3, why);

    if (n < 0)
        return false;
    if (n == 2) {
        parts[2] = parts[1];
        parts[1] = parts[0];
        parts[0] = strdup("public");
        if (!parts[0]) {
            free(parts[1]);
            free(parts[2]);
            return cfg_whyf(why, -1, "out of memory");
        }
    }
    out->table.schema = parts[0];
    out->table.name = parts[1];
    out->column = parts[2];
    return true;
}

bool cfg_table_parse(const char *text, cfg_table *out, char *err,
                     size_t errlen)
{
    cfg_why why;

    memset(out, 0, sizeof *out);
    if (cfg_table_from(text, strlen(text), out, &why))
        return true;
    if (err && errlen)
        snprintf(err, errlen, "%s", why.msg);
    return false;
}

void cfg_table_clear(cfg_table *t)
{
    free(t->schema);
    free(t->name);
    t->schema = t->name = NULL;
}

/* Does this part read back as itself without quotes? */
static bool plain_ok(const char *p)
{
    if (!(*p == '_' || (*p >= 'a' && *p <= 'z')))
        return false;
    for (; *p; p++)
        if (!(*p == '_' || *p == '$' || (*p >= 'a' && *p <= 'z') ||
              (*p >= '0' && *p <= '9')))
            return false;
    return true;
}

static size_t show_part(char *buf, size_t size, size_t at, const char *p)
{
    bool q = !plain_ok(p);

    if (q && at + 1 < size)
        buf[at++] = '"';
    for (; *p && at + 1 < size; p++) {
        if (*p == '"' && at + 2 < size)
            buf[at++] = '"';
        buf[at++] = *p;
    }
    if (q && at + 1 < size)
        buf[at++] = '"';
    buf[at] = '\0';
    return at;
}

void cfg_name_show(char *buf, size_t size, const char *schema,
                   const char *name)
{
    size_t at;

    if (size == 0)
        return;
    at = show_part(buf, size, 0, schema);
    if (at + 1 < size)
        buf[at++] = '.';
    show_part(buf, size, at, name);
}

char *cfg_origin_name(const cfg *c, const cfg_service *service)
{
    char *name = NULL;
    if (asprintf(&name, CFG_ORIGIN_PREFIX "%s_%s", c->name ? c->name : "",
                 service->name ? service->name : "") < 0)
        return NULL;
    return name;
}

bool cfg_origin_is_cleave(const char *origin)
{
    return strncmp(origin, CFG_ORIGIN_PREFIX, strlen(CFG_ORIGIN_PREFIX)) == 0;
}
