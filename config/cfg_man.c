/*
 * cfg_man: cleave.yaml(5), the manual page of the configuration, printed
 * from the key table (`cleave check --keys --man`) as docs/configuration.md
 * is, so the page and the parser cannot disagree.
 *
 * The sections' prose is written in a small part of Markdown (paragraphs,
 * "- " lists, ``` blocks, `code`, **bold**, [links](to)); this turns that
 * part into man(7) requests and leaves everything else as text.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "config/cfg_internal.h"

/* Where the conversion stands, across the lines of one text. */
typedef struct man_out {
    FILE *f;
    bool code;        /* inside `...` */
    bool bold;        /* inside **...** */
    bool line_start;  /* nothing written on this output line yet */
} man_out;

static void put_char(man_out *m, char c)
{
    /* A line starting with . or ' would be read as a request. */
    if (m->line_start && (c == '.' || c == '\''))
        fputs("\\&", m->f);
    if (c == '\\')
        fputs("\\e", m->f);
    else if (c == '-' && m->code)
        fputs("\\-", m->f);  /* a minus, so options copy as typed */
    else
        fputc(c, m->f);
    m->line_start = c == '\n';
}

static void put_font(man_out *m)
{
    /* \\% : a path or an option is not hyphenated */
    fputs(m->code ? "\\fB\\%" : m->bold ? "\\fB" : "\\fR", m->f);
    m->line_start = false;
}

/* [text](target): the length of the whole link, or 0 if s is not one. */
static size_t link_len(const char *s, size_t n, size_t *text_len)
{
    const char *close = memchr(s, ']', n);
    if (!close || (size_t)(close - s) + 1 >= n || close[1] != '(')
        return 0;
    const char *end = memchr(close, ')', n - (size_t)(close - s));
    if (!end)
        return 0;
    *text_len = (size_t)(close - s) - 1;
    return (size_t)(end - s) + 1;
}

/* Inline Markdown of n bytes; a link keeps its text, its target is dropped. */
static void put_inline(man_out *m, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t text = 0, whole = 0;
        if (s[i] == '`') {
            m->code = !m->code;
            put_font(m);
        } else if (!m->code && s[i] == '*' && i + 1 < n && s[i + 1] == '*') {
            m->bold = !m->bold;
            put_font(m);
            i++;
        } else if (!m->code && s[i] == '[' &&
                   (whole = link_len(s + i, n - i, &text)) > 0) {
            put_inline(m, s + i + 1, text);
            i += whole - 1;
        } else {
            put_char(m, s[i]);
        }
    }
}

/* One line of a ``` block: as it is, only escaped. */
static void put_literal(man_out *m, const char *s, size_t n)
{
    bool code = m->code;
    m->code = true;
    for (size_t i = 0; i < n; i++)
        put_char(m, s[i]);
    m->code = code;
    put_char(m, '\n');
}

/* A section's prose, line by line; a blank line starts a paragraph. */
static void put_prose(man_out *m, const char *doc)
{
    bool fence = false, para = false;
    for (const char *s = doc; *s;) {
        const char *nl = strchr(s, '\n');
        size_t n = nl ? (size_t)(nl - s) : strlen(s);
        if (strncmp(s, "```", 3) == 0) {
            fputs(fence ? ".EE\n.RE\n" : para ? ".PP\n.RS 4\n.EX\n"
                                               : ".RS 4\n.EX\n", m->f);
            fence = !fence;
            para = false;
        } else if (fence) {
            put_literal(m, s, n);
        } else if (n == 0) {
            para = true;
        } else {
            if (strncmp(s, "- ", 2) == 0) {
                fputs(".IP \\(bu 2\n", m->f);
                s += 2, n -= 2;
            } else if (para) {
                fputs(".PP\n", m->f);
            }
            para = false;
            for (; n > 0 && *s == ' '; s++, n--)
                ;
            put_inline(m, s, n);
            put_char(m, '\n');
        }
        s += n + (nl != NULL);
    }
}

/* A key: its name as the tag, then type, default and help. */
static void put_key(man_out *m, const cfg_key *k)
{
    fprintf(m->f, ".TP\n.B %s\n\\fI%s", k->name, cfg_type_name(k->type));
    for (size_t i = 0; k->choices && k->choices[i]; i++)
        fprintf(m->f, "%s%s", i ? " | " : ": ", k->choices[i]);
    fputs("\\fR; ", m->f);
    m->line_start = false;
    if (k->required) {
        fputs("required", m->f);
    } else if (k->def) {
        fputs("default ", m->f);
        put_inline(m, "`", 1);
        put_inline(m, k->def, strlen(k->def));
        put_inline(m, "`", 1);
    } else {
        fputs("no default", m->f);
    }
    fputs(k->reloadable ? "; reloadable.\n.br\n" : ".\n.br\n", m->f);
    m->line_start = true;
    put_inline(m, k->help, strlen(k->help));
    put_char(m, '\n');
}

/* Its title without the Markdown: a heading is bold already. */
static void put_heading(man_out *m, const char *title)
{
    fputs(".SS \"", m->f);
    for (const char *c = title; *c; c++)
        if (*c != '`')
            fputc(*c, m->f);
    fputs("\"\n", m->f);
    m->line_start = true;
}

static void put_section(man_out *m, const cfg_section *sec)
{
    if (*sec->path)
        put_heading(m, sec->title);
    put_prose(m, sec->doc);
    for (size_t i = 0; i < sec->n_keys; i++)
        put_key(m, &sec->keys[i]);
    for (size_t i = 0; i < sec->n_keys; i++)
        if (sec->keys[i].sub)
            put_section(m, sec->keys[i].sub);
}

static const char man_head[] =
    ".\\\" Generated by `cleave check --keys --man` from the key table in\n"
    ".\\\" config/cfg_keys.c: edit it there and regenerate; the cli test\n"
    ".\\\" fails while this file differs.\n"
    ".TH CLEAVE.YAML 5 \"\" \"cleave\" \"File Formats\"\n"
    /* Ragged right, unhyphenated: justifying around paths and names
     * that must not break opens wide gaps. */
    ".ad l\n"
    ".nh\n"
    ".SH NAME\n"
    "cleave.yaml \\- configuration of cleave, the change-data-capture "
    "daemon\n"
    ".SH SYNOPSIS\n"
    ".I /etc/cleave/cleave.yaml\n"
    ".SH DESCRIPTION\n";

static const char man_tail[] =
    ".SH FILES\n"
    ".TP\n"
    ".I /etc/cleave/cleave.yaml\n"
    "The configuration the systemd unit starts\n"
    ".B cleave run\n"
    "with.\n"
    ".TP\n"
    ".I /usr/share/doc/cleave/cleave.yaml.example\n"
    "A complete, commented example (the shop fixture's five services).\n"
    ".SH SEE ALSO\n"
    ".BR cleave (1),\n"
    ".BR systemctl (1);\n"
    "libpq's connection strings:\n"
    ".UR https://www.postgresql.org/docs/current/libpq-connect.html\n"
    ".UE\n";

void cfg_describe_man(FILE *out)
{
    man_out m = {.f = out, .line_start = true};
    fputs(man_head, out);
    put_section(&m, &cfg_top_section);
    fputs(man_tail, out);
}
