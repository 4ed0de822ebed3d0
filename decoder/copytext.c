/* copytext: COPY's text format; see copytext.h. */
#include "decoder/copytext.h"

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * One escape starting after the backslash at in[*i]; writes the byte it
 * stands for and moves *i past it. The rules are COPY's: \b \f \n \r \t
 * \v, up to three octal digits, \x and up to two hex digits, and any
 * other character stands for itself.
 */
static char unescape(const char *in, size_t end, size_t *i)
{
    char c = in[(*i)++];
    static const char from[] = "bfnrtv", to[] = "\b\f\n\r\t\v";
    for (int k = 0; from[k]; k++)
        if (c == from[k])
            return to[k];
    if (c >= '0' && c <= '7') {
        int v = c - '0';
        for (int k = 0; k < 2 && *i < end && in[*i] >= '0' && in[*i] <= '7'; k++)
            v = v * 8 + (in[(*i)++] - '0');
        return (char)v;
    }
    if (c == 'x' && *i < end && hex_digit(in[*i]) >= 0) {
        int v = hex_digit(in[(*i)++]);
        if (*i < end && hex_digit(in[*i]) >= 0)
            v = v * 16 + hex_digit(in[(*i)++]);
        return (char)v;
    }
    return c;
}

int copytext_split(char *line, size_t len, copytext_field *fields, size_t max)
{
    if (len > 0 && line[len - 1] == '\n')
        len--;
    size_t n = 0, i = 0, out = 0;
    for (;;) {
        if (n == max)
            return -1;
        size_t start = out;
        /* Only an unescaped \N alone is NULL; "\\N" is the text \N. */
        bool null = len - i >= 2 && line[i] == '\\' && line[i + 1] == 'N' &&
                    (i + 2 == len || line[i + 2] == '\t');
        while (i < len && line[i] != '\t') {
            if (line[i] != '\\') {
                line[out++] = line[i++];
                continue;
            }
            if (++i == len)
                return -1;
            line[out++] = unescape(line, len, &i);
        }
        bool more = i < len;
        line[out] = '\0';
        fields[n++] = (copytext_field){line + start, (uint32_t)(out - start),
                                       null};
        if (!more)
            return (int)n;
        i++;
        out++;
    }
}
