/* streamfile: captured replication streams as hex lines; see streamfile.h. */
#include "tests/support/streamfile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool push_frame(sf_stream *s, size_t *cap, uint8_t *data, size_t len)
{
    if (s->n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        sf_frame *nf = realloc(s->frames, ncap * sizeof *nf);
        if (!nf)
            return false;
        s->frames = nf;
        *cap = ncap;
    }
    s->frames[s->n++] = (sf_frame){data, len};
    return true;
}

/* Decodes one hex line (without its newline) into a new buffer. */
static uint8_t *unhex(const char *line, size_t n, size_t *outlen)
{
    if (n % 2 != 0)
        return NULL;
    uint8_t *buf = malloc(n / 2 ? n / 2 : 1);
    if (!buf)
        return NULL;
    for (size_t i = 0; i < n; i += 2) {
        int hi = hexval((unsigned char)line[i]);
        int lo = hexval((unsigned char)line[i + 1]);
        if (hi < 0 || lo < 0) {
            free(buf);
            return NULL;
        }
        buf[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    *outlen = n / 2;
    return buf;
}

bool sf_load(const char *path, sf_stream *out, char *err, size_t errlen)
{
    *out = (sf_stream){0};
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return false;
    }
    char *line = NULL;
    size_t linecap = 0, cap = 0;
    ssize_t n;
    int lineno = 0;
    bool ok = true;
    while (ok && (n = getline(&line, &linecap, f)) >= 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (strncmp(line, "# options:", 10) == 0) {
            free(out->options);
            out->options = strdup(line + 10 + strspn(line + 10, " "));
            continue;
        }
        if (n == 0 || line[0] == '#')
            continue;
        size_t len;
        uint8_t *data = unhex(line, (size_t)n, &len);
        if (!data || !push_frame(out, &cap, data, len)) {
            free(data);
            snprintf(err, errlen, "%s:%d: not a hex frame", path, lineno);
            ok = false;
        }
    }
    free(line);
    fclose(f);
    if (ok && !out->options)
        out->options = strdup("");
    if (!ok)
        sf_free(out);
    return ok;
}

void sf_free(sf_stream *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->frames[i].data);
    free(s->frames);
    free(s->options);
    *s = (sf_stream){0};
}

char *sf_option(const sf_stream *s, const char *key)
{
    size_t klen = strlen(key);
    for (const char *p = s->options; p && *p;) {
        p += strspn(p, " ");
        size_t wlen = strcspn(p, " ");
        if (wlen > klen && strncmp(p, key, klen) == 0 && p[klen] == '=')
            return strndup(p + klen + 1, wlen - klen - 1);
        p += wlen;
    }
    return NULL;
}

bool sf_write_frame(FILE *f, const void *data, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++) {
        if (putc(digits[p[i] >> 4], f) == EOF ||
            putc(digits[p[i] & 15], f) == EOF)
            return false;
    }
    return putc('\n', f) != EOF;
}
