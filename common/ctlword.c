/* ctlword: percent-encoded words of a control request; see ctlword.h. */
#include "common/ctlword.h"

#include <stdlib.h>
#include <string.h>

static bool plain(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

char *ctlword_encode(const char *text)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = malloc(3 * strlen(text) + 1), *o = out;
    for (const unsigned char *t = (const unsigned char *)text; out && *t; t++) {
        if (plain(*t)) {
            *o++ = (char)*t;
            continue;
        }
        *o++ = '%';
        *o++ = hex[*t >> 4];
        *o++ = hex[*t & 15];
    }
    if (out)
        *o = '\0';
    return out;
}

static int hex_value(char c)
{
    return c >= '0' && c <= '9' ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

bool ctlword_decode(const char *word, char *out, size_t outlen)
{
    size_t n = 0;
    for (const char *w = word; *w; w++) {
        int c = (unsigned char)*w;
        if (c == '%') {
            int hi = hex_value(w[1]), lo = hi < 0 ? -1 : hex_value(w[2]);
            if (lo < 0 || (hi | lo) == 0)
                return false;
            c = hi << 4 | lo;
            w += 2;
        }
        if (n + 1 >= outlen)
            return false;
        out[n++] = (char)c;
    }
    if (n >= outlen)
        return false;
    out[n] = '\0';
    return true;
}
