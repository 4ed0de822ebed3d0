/*
 * config: loading cleave.yaml. Reads the file, has libyaml build the node
 * tree (exactly one document), hands it to the key-table walk (cfg_yaml.c)
 * and keeps the result only if everything passed; plus the small public
 * helpers over a loaded configuration.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/cfg_internal.h"

/* A configuration is a few kilobytes; this only stops /dev/zero & co. */
#define CFG_FILE_MAX ((size_t)16 << 20)

static char *read_all(FILE *f, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);

    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (ferror(f) || n > CFG_FILE_MAX) {
            errno = ferror(f) ? errno : EFBIG;
            break;
        }
        if (n < cap) {
            *len = n;
            return buf;
        }
        char *nb = realloc(buf, cap * 2);
        if (!nb)
            break;
        buf = nb;
        cap *= 2;
    }
    int e = errno;
    free(buf);
    errno = e;
    return NULL;
}

cfg *cfg_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    size_t len = 0;
    cfg *c;

    if (f) {
        text = read_all(f, &len);
        int e = errno;
        fclose(f);
        errno = e;
    }
    if (!text) {
        if (err && errlen)
            snprintf(err, errlen, "%s: cannot read: %s", path,
                     strerror(errno));
        return NULL;
    }
    c = cfg_parse(text, len, path, err, errlen);
    free(text);
    return c;
}

/* Reader errors carry a byte offset, not a mark. */
static cfg_pos offset_pos(const char *text, size_t len, size_t off)
{
    cfg_pos pos = {1, 1};

    for (size_t i = 0; i < off && i < len; i++) {
        if (text[i] == '\n')
            pos = (cfg_pos){pos.line + 1, 1};
        else if (((unsigned char)text[i] & 0xC0) != 0x80)
            pos.col++;
    }
    return pos;
}

/* The byte a mark points at (marks count characters), or '\0'. */
static char byte_at(const char *text, size_t len, yaml_mark_t m)
{
    size_t i = 0;

    for (size_t line = 0; line < m.line && i < len; i++)
        line += text[i] == '\n';
    for (size_t col = 0; col < m.column && i < len; col++)
        while (++i < len && ((unsigned char)text[i] & 0xC0) == 0x80)
            ;
    return i < len ? text[i] : '\0';
}

static bool yaml_error(cfg_loader *ld, const yaml_parser_t *p,
                       const char *text, size_t len)
{
    cfg_pos at = {(int)p->problem_mark.line + 1,
                  (int)p->problem_mark.column + 1};
    const char *problem = p->problem ? p->problem : "unknown error";
    /* The usual way to get here: a tab where YAML wants spaces. */
    const char *want = byte_at(text, len, p->problem_mark) == '\t'
        ? "spaces for indentation (YAML does not allow tabs)"
        : "valid YAML";

    if (p->error == YAML_MEMORY_ERROR)
        return cfg_fail(ld, (cfg_pos){1, 1}, "out of memory");
    if (p->error == YAML_READER_ERROR)
        return cfg_fail(ld, offset_pos(text, len, p->problem_offset),
                        "%s; expected UTF-8 text", problem);
    if (p->context)
        return cfg_fail(ld, at, "YAML syntax error: %s (%s that started at "
                        "line %d); expected %s", problem, p->context,
                        (int)p->context_mark.line + 1, want);
    return cfg_fail(ld, at, "YAML syntax error: %s; expected %s", problem,
                    want);
}

/* Loads the one document into *doc; anything after it is an error. */
static bool load_document(cfg_loader *ld, yaml_parser_t *p,
                          yaml_document_t *doc, const char *text, size_t len)
{
    yaml_document_t extra;
    yaml_node_t *root;
    bool more;
    cfg_pos pos;

    if (!yaml_parser_load(p, doc))
        return yaml_error(ld, p, text, len);
    root = yaml_document_get_root_node(doc);
    /* A lone "---" gives a document whose root is an empty scalar. */
    if (!root || (root->type == YAML_SCALAR_NODE &&
                  root->data.scalar.length == 0)) {
        yaml_document_delete(doc);
        return cfg_fail(ld, (cfg_pos){1, 1}, "the file holds no "
                        "configuration (it is empty or only comments); "
                        "expected a mapping with name, source and services");
    }
    if (!yaml_parser_load(p, &extra)) {
        yaml_document_delete(doc);
        return yaml_error(ld, p, text, len);
    }
    more = yaml_document_get_root_node(&extra) != NULL;
    pos = (cfg_pos){(int)extra.start_mark.line + 1,
                    (int)extra.start_mark.column + 1};
    yaml_document_delete(&extra);
    if (!more)
        return true;
    yaml_document_delete(doc);
    return cfg_fail(ld, pos, "a second YAML document starts here; expected "
                    "one document per file");
}

static cfg *build(cfg_loader *ld, yaml_document_t *doc)
{
    yaml_node_t *root = yaml_document_get_root_node(doc);
    cfg *c = calloc(1, sizeof *c);

    if (!c || !(c->path = strdup(ld->path))) {
        free(c);
        cfg_fail(ld, (cfg_pos){1, 1}, "out of memory");
        return NULL;
    }
    ld->c = c;
    ld->doc = doc;
    if (root->type != YAML_MAPPING_NODE)
        cfg_fail(ld, cfg_node_pos(root), "the top level is a %s; expected a "
                 "mapping with name, source and services",
                 root->type == YAML_SEQUENCE_NODE ? "list" : "single value");
    else if (cfg_walk_section(ld, &cfg_top_section, root, c, NULL))
        return c;
    cfg_free(c);
    return NULL;
}

cfg *cfg_parse(const char *text, size_t len, const char *path, char *err,
               size_t errlen)
{
    cfg_loader ld = {.path = path, .err = err, .errlen = errlen};
    yaml_parser_t parser;
    yaml_document_t doc;
    cfg *c = NULL;

    if (err && errlen)
        err[0] = '\0';
    if (!yaml_parser_initialize(&parser)) {
        cfg_fail(&ld, (cfg_pos){1, 1}, "out of memory");
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (load_document(&ld, &parser, &doc, text, len)) {
        c = build(&ld, &doc);
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    return c;
}

static void free_tables(cfg_table *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cfg_table_clear(&t[i]);
    free(t);
}

static void free_service(cfg_service *s)
{
    free(s->name);
    free_tables(s->owned, s->n_owned);
    free_tables(s->shared, s->n_shared);
    for (size_t i = 0; i < s->n_refs; i++) {
        cfg_table_clear(&s->refs[i].table);
        free(s->refs[i].column);
    }
    free(s->refs);
    free(s->target_postgres);
    for (size_t i = 0; i < s->n_messages; i++)
        free(s->messages[i]);
    free(s->messages);
}

void cfg_free(cfg *c)
{
    if (!c)
        return;
    free(c->path);
    free(c->name);
    free(c->source.dsn);
    free(c->source.slot);
    free(c->source.publication);
    free(c->state_dir);
    free(c->copy_split_size);
    free(c->status_socket);
    free(c->kafka.brokers);
    free(c->kafka.topic);
    for (size_t i = 0; i < c->kafka.n_props; i++) {
        free(c->kafka.props[i].key);
        free(c->kafka.props[i].value);
    }
    free(c->kafka.props);
    free(c->kafka.transaction_topic);
    free(c->kafka.message_topic);
    for (size_t i = 0; i < c->n_services; i++)
        free_service(&c->services[i]);
    free(c->services);
    free(c);
}

const cfg_service *cfg_owner(const cfg *c, const char *schema,
                             const char *table)
{
    for (size_t s = 0; s < c->n_services; s++)
        for (size_t i = 0; i < c->services[s].n_owned; i++) {
            const cfg_table *t = &c->services[s].owned[i];
            if (strcmp(t->schema, schema) == 0 && strcmp(t->name, table) == 0)
                return &c->services[s];
        }
    return NULL;
}

const char *cfg_log_level_name(cfg_log_level level)
{
    if ((int)level < CFG_LOG_DEBUG || level > CFG_LOG_ERROR)
        return "unknown";
    return cfg_log_level_names[level];
}

bool cfg_wants_message(const cfg_service *svc, const char *prefix)
{
    for (size_t i = 0; i < svc->n_messages; i++) {
        const char *want = svc->messages[i];
        size_t n = strlen(want);
        if (n > 0 && want[n - 1] == '*' ? strncmp(want, prefix, n - 1) == 0
                                        : strcmp(want, prefix) == 0)
            return true;
    }
    return false;
}
