/* lsn: "X/Y" text both ways; see lsn.h. */
#include "decoder/lsn.h"

#include <stdio.h>

char *lsn_format(lsn_t lsn, char buf[LSN_STRLEN])
{
    snprintf(buf, LSN_STRLEN, "%X/%X", (unsigned)(lsn >> 32), (unsigned)lsn);
    return buf;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads 1 to 8 hex digits; returns the position after them or NULL. */
static const char *read_half(const char *p, uint32_t *out)
{
    uint32_t v = 0;
    int n = 0;
    for (int d; (d = hexval(*p)) >= 0; p++) {
        if (++n > 8)
            return NULL;
        v = (v << 4) | (uint32_t)d;
    }
    if (n == 0)
        return NULL;
    *out = v;
    return p;
}

bool lsn_parse(const char *text, lsn_t *out)
{
    uint32_t hi, lo;
    const char *p = text ? read_half(text, &hi) : NULL;
    if (!p || *p != '/')
        return false;
    p = read_half(p + 1, &lo);
    if (!p || *p != '\0')
        return false;
    *out = ((lsn_t)hi << 32) | lo;
    return true;
}
