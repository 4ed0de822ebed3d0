/*
 * cfg_yaml: walks the node tree libyaml loaded and stores each value where
 * its row in the key table (cfg_keys.c) says, checking node types, unknown
 * and duplicate keys (libyaml accepts duplicates) and required keys.
 *
 * Keys are first indexed in file order, so an unknown or repeated key is
 * reported where it stands; values are then stored in table order, which
 * lets later keys rely on earlier ones (the slot default on name).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/cfg_internal.h"

#define AT(base, off, type) ((type *)((char *)(base) + (off)))

/*
 * Copies a message, escaping control characters: values quoted in messages
 * may hold newlines or terminal escapes, and an error is one line.
 */
static void copy_escaped(char *out, size_t size, const char *msg)
{
    size_t o = 0;

    for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
        int n = (*p < 0x20 || *p == 0x7f)
                    ? snprintf(out + o, size - o, "\\x%02X", *p)
                    : snprintf(out + o, size - o, "%c", *p);
        if (n < 0 || (size_t)n >= size - o)
            break;
        o += (size_t)n;
    }
}

bool cfg_fail(cfg_loader *ld, cfg_pos pos, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    int n;

    if (ld->failed || !ld->err || ld->errlen == 0) {
        ld->failed = true;
        return false;
    }
    ld->failed = true;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    n = snprintf(ld->err, ld->errlen, "%s:%d:%d: ", ld->path, pos.line,
                 pos.col);
    if (n >= 0 && (size_t)n < ld->errlen)
        copy_escaped(ld->err + n, ld->errlen - (size_t)n, msg);
    return false;
}

cfg_pos cfg_node_pos(const yaml_node_t *node)
{
    return (cfg_pos){(int)node->start_mark.line + 1,
                     (int)node->start_mark.column + 1};
}

/* libyaml counts columns in characters, not bytes. */
static int chars_in(const char *s, long n)
{
    int c = 0;

    for (long i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

/*
 * Only plain and single-quoted scalars on one line map value offsets to
 * columns simply: plain ones are the value itself, single-quoted ones add
 * the opening quote and one more ' for each doubled ''.
 */
cfg_pos cfg_value_pos(const yaml_node_t *node, long at)
{
    cfg_pos pos = cfg_node_pos(node);
    const char *v;

    if (at < 0 || node->type != YAML_SCALAR_NODE ||
        node->start_mark.line != node->end_mark.line ||
        (size_t)at > node->data.scalar.length)
        return pos;
    v = (const char *)node->data.scalar.value;
    if (node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        pos.col += chars_in(v, at);
    } else if (node->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE) {
        pos.col += 1 + chars_in(v, at);
        for (long i = 0; i < at; i++)
            pos.col += v[i] == '\'';
    }
    return pos;
}

static bool is_empty(const yaml_node_t *n)
{
    static const char *const nulls[] = {"~", "null", "Null", "NULL"};
    const char *v;

    if (n->type != YAML_SCALAR_NODE)
        return false;
    v = (const char *)n->data.scalar.value;
    if (n->data.scalar.length == 0)
        return true;
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    for (size_t i = 0; i < sizeof nulls / sizeof nulls[0]; i++)
        if (strcmp(v, nulls[i]) == 0)
            return true;
    return false;
}

static const char *kind(const yaml_node_t *n)
{
    if (n->type == YAML_MAPPING_NODE)
        return "a mapping";
    if (n->type == YAML_SEQUENCE_NODE)
        return "a list";
    return is_empty(n) ? "nothing" : "a single value";
}

static void key_path(char *buf, size_t size, const char *label,
                     const char *key)
{
    /* Labels are short (service names have at most 63 bytes), so a cut
     * here can only shorten a message. */
    if (snprintf(buf, size, "%s%s%s", label ? label : "", label ? "." : "",
                 key) >= (int)size)
        buf[size - 1] = '\0';
}

static void where(char *buf, size_t size, const char *label)
{
    if (label)
        snprintf(buf, size, "in %s", label);
    else
        snprintf(buf, size, "at the top level");
}

/* What a value of this key should be, in words. */
static const char *expect(const cfg_key *k, char *buf, size_t size)
{
    static const char *const phrases[] = {
        [CFG_T_STRING] = "a string",
        [CFG_T_BOOL] = "true or false",
        [CFG_T_DURATION] = "a duration such as 500ms, 10s or 1m",
        [CFG_T_COUNT] = "a whole number from 1 to 64",
        [CFG_T_ENUM] = "one of",
        [CFG_T_TABLES] = "a list of table names",
        [CFG_T_REFS] = "a list of [schema.]table.column references",
        [CFG_T_SECTION] = "a mapping",
        [CFG_T_SERVICES] = "a mapping of service names to services",
        [CFG_T_STRMAP] = "a mapping of names to values",
        [CFG_T_STRLIST] = "a list of strings",
    };
    size_t n;

    if (k->expect)
        return k->expect;
    n = (size_t)snprintf(buf, size, "%s", phrases[k->type]);
    for (size_t i = 0; k->choices && k->choices[i] && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s%s", i ? ", " : ": ",
                              k->choices[i]);
    return buf;
}

/* The node must be of `type` (and, for scalars, not empty). */
static bool expect_node(cfg_loader *ld, const cfg_key *k, yaml_node_t *node,
                        yaml_node_type_t type, const char *path)
{
    char eb[160];

    if (is_empty(node))
        return cfg_fail(ld, cfg_node_pos(node), "empty value for %s; "
                        "expected %s", path, expect(k, eb, sizeof eb));
    if (node->type != type)
        return cfg_fail(ld, cfg_node_pos(node), "wrong type for %s; "
                        "expected %s, found %s", path,
                        expect(k, eb, sizeof eb), kind(node));
    if (type == YAML_SCALAR_NODE &&
        memchr(node->data.scalar.value, '\0', node->data.scalar.length))
        return cfg_fail(ld, cfg_node_pos(node), "%s contains a NUL "
                        "character; expected text", path);
    return true;
}

static bool parse_enum(const cfg_key *k, const char *s, int *out,
                       cfg_why *why)
{
    char eb[160];

    for (int i = 0; k->choices[i]; i++)
        if (strcmp(s, k->choices[i]) == 0) {
            *out = i;
            return true;
        }
    return cfg_whyf(why, -1, "'%s' is not a valid choice; expected %s", s,
                    expect(k, eb, sizeof eb));
}

/* Text (from the file or a default) into the key's field. */
static bool convert(const cfg_key *k, const char *s, size_t len, void *base,
                    cfg_why *why)
{
    char **str = AT(base, k->off, char *);

    switch (k->type) {
    case CFG_T_STRING:
        if (k->take)
            return k->take(s, len, str, why);
        *str = strndup(s, len);
        return *str ? true : cfg_whyf(why, -1, "out of memory");
    case CFG_T_BOOL:
        return cfg_parse_bool(s, AT(base, k->off, bool), why);
    case CFG_T_DURATION:
        return cfg_parse_duration(s, AT(base, k->off, int), why);
    case CFG_T_COUNT:
        return cfg_parse_count(s, AT(base, k->off, int), why);
    case CFG_T_ENUM:
        return parse_enum(k, s, AT(base, k->off, int), why);
    default:
        return true;   /* lists and maps default to empty */
    }
}

static bool store_scalar(cfg_loader *ld, const cfg_key *k, yaml_node_t *node,
                         void *base, const char *path)
{
    cfg_why why;

    if (!expect_node(ld, k, node, YAML_SCALAR_NODE, path))
        return false;
    if (!convert(k, (const char *)node->data.scalar.value,
                 node->data.scalar.length, base, &why))
        return cfg_fail(ld, cfg_value_pos(node, why.at), "%s: %s", path,
                        why.msg);
    return true;
}

static bool store_default(cfg_loader *ld, const cfg_key *k,
                          const yaml_node_t *map, void *base,
                          const char *path)
{
    cfg_why why;
    char *text;
    bool ok;

    if (!k->derive)
        return !k->def || convert(k, k->def, strlen(k->def), base, &why) ||
               cfg_fail(ld, cfg_node_pos(map), "%s: %s", path, why.msg);
    text = k->derive(ld->c);
    if (!text)
        return cfg_fail(ld, cfg_node_pos(map), "out of memory");
    ok = convert(k, text, strlen(text), base, &why);
    free(text);
    return ok || cfg_fail(ld, cfg_node_pos(map), "%s (by default %s, "
                          "from name): %s; set it explicitly or shorten "
                          "name", path, k->def, why.msg);
}

static yaml_node_t *node_at(cfg_loader *ld, int index)
{
    return yaml_document_get_node(ld->doc, index);
}

static size_t n_pairs(const yaml_node_t *map)
{
    return (size_t)(map->data.mapping.pairs.top -
                    map->data.mapping.pairs.start);
}

/* A mapping key must be a non-empty scalar. */
static bool key_text(cfg_loader *ld, yaml_node_t *key, const char *label,
                     const char **s)
{
    char wb[200];

    where(wb, sizeof wb, label);
    if (key->type != YAML_SCALAR_NODE || is_empty(key) ||
        memchr(key->data.scalar.value, '\0', key->data.scalar.length))
        return cfg_fail(ld, cfg_node_pos(key), "a key %s is %s; expected "
                        "a name", wb, kind(key));
    *s = (const char *)key->data.scalar.value;
    return true;
}

/* The line of an earlier pair with the same key, or 0. */
static int earlier_key(cfg_loader *ld, const yaml_node_t *map, size_t i)
{
    yaml_node_pair_t *pairs = map->data.mapping.pairs.start;
    yaml_node_t *key = node_at(ld, pairs[i].key);

    for (size_t j = 0; j < i; j++) {
        yaml_node_t *other = node_at(ld, pairs[j].key);
        if (other->type == YAML_SCALAR_NODE &&
            other->data.scalar.length == key->data.scalar.length &&
            memcmp(other->data.scalar.value, key->data.scalar.value,
                   key->data.scalar.length) == 0)
            return cfg_node_pos(other).line;
    }
    return 0;
}

static bool duplicate(cfg_loader *ld, const yaml_node_t *map, size_t i,
                      const char *label)
{
    yaml_node_t *key = node_at(ld, map->data.mapping.pairs.start[i].key);
    int first = earlier_key(ld, map, i);
    char wb[200];

    if (first == 0)
        return false;
    where(wb, sizeof wb, label);
    cfg_fail(ld, cfg_node_pos(key), "duplicate key '%s' %s (first at line "
             "%d); expected each key once", key->data.scalar.value, wb,
             first);
    return true;
}

static bool unknown_key(cfg_loader *ld, const cfg_section *sec,
                        yaml_node_t *key, const char *label)
{
    char wb[200], names[400];
    size_t n = 0;

    where(wb, sizeof wb, label);
    names[0] = '\0';
    for (size_t i = 0; i < sec->n_keys && n < sizeof names; i++)
        n += (size_t)snprintf(names + n, sizeof names - n, "%s%s",
                              i ? ", " : "", sec->keys[i].name);
    return cfg_fail(ld, cfg_node_pos(key), "unknown key '%s' %s; expected "
                    "one of: %s", key->data.scalar.value, wb, names);
}

static bool index_keys(cfg_loader *ld, const cfg_section *sec,
                       const yaml_node_t *map, const char *label,
                       cfg_seen *seen)
{
    yaml_node_pair_t *pairs = map->data.mapping.pairs.start;

    for (size_t i = 0; i < n_pairs(map); i++) {
        yaml_node_t *key = node_at(ld, pairs[i].key);
        const char *name;
        if (!key_text(ld, key, label, &name))
            return false;
        size_t k = cfg_key_index(sec, name);
        if (k == sec->n_keys)
            return unknown_key(ld, sec, key, label);
        if (duplicate(ld, map, i, label))
            return false;
        seen->key[k] = key;
        seen->value[k] = node_at(ld, pairs[i].value);
    }
    return true;
}

static bool is_none(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE &&
           n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           strcmp((const char *)n->data.scalar.value, "none") == 0;
}

/* One entry of a list of tables or references, into slot i. */
static bool store_name(cfg_loader *ld, const cfg_key *k, yaml_node_t *item,
                       void *arr, size_t i, bool alone, const char *path)
{
    bool refs = k->type == CFG_T_REFS;
    const char *what = refs ? "reference" : "table name";
    cfg_table *t = refs ? &((cfg_ref *)arr)[i].table : &((cfg_table *)arr)[i];
    const char *s;
    cfg_why why;
    bool ok;

    if (item->type != YAML_SCALAR_NODE || is_empty(item))
        return cfg_fail(ld, cfg_node_pos(item), "an entry of %s is %s; "
                        "expected a %s", path, kind(item), what);
    s = (const char *)item->data.scalar.value;
    if (is_none(item) && !alone)
        return cfg_fail(ld, cfg_node_pos(item), "none in %s stands for an "
                        "empty list; expected [none] alone, or 'none' "
                        "quoted for a table called none", path);
    ok = refs ? cfg_ref_from(s, item->data.scalar.length,
                             &((cfg_ref *)arr)[i], &why)
              : cfg_table_from(s, item->data.scalar.length, t, &why);
    if (!ok)
        return cfg_fail(ld, cfg_value_pos(item, why.at), "%s: bad %s '%s': "
                        "%s", path, what, s, why.msg);
    t->pos = cfg_node_pos(item);
    return true;
}

static bool store_list(cfg_loader *ld, const cfg_key *k, yaml_node_t *node,
                       void *base, const char *path)
{
    bool refs = k->type == CFG_T_REFS;
    yaml_node_item_t *items;
    size_t n;
    void *arr;

    if (!expect_node(ld, k, node, YAML_SEQUENCE_NODE, path))
        return false;
    items = node->data.sequence.items.start;
    n = (size_t)(node->data.sequence.items.top - items);
    if (n == 1 && is_none(node_at(ld, items[0])))
        n = 0;
    if (n == 0)
        return !k->nonempty ||
               cfg_fail(ld, cfg_node_pos(node), "%s is empty; expected at "
                        "least one table", path);
    arr = calloc(n, refs ? sizeof(cfg_ref) : sizeof(cfg_table));
    if (!arr)
        return cfg_fail(ld, cfg_node_pos(node), "out of memory");
    if (refs)
        *AT(base, k->off, cfg_ref *) = arr;
    else
        *AT(base, k->off, cfg_table *) = arr;
    *AT(base, k->n_off, size_t) = n;
    for (size_t i = 0; i < n; i++)
        if (!store_name(ld, k, node_at(ld, items[i]), arr, i, n == 1, path))
            return false;
    return true;
}

/* kafka.properties: scalar to scalar, kept as text for librdkafka. */
static bool store_strmap(cfg_loader *ld, const cfg_key *k, yaml_node_t *node,
                         void *base, const char *path)
{
    yaml_node_pair_t *pairs;
    size_t n;
    cfg_kv *kv;

    if (!expect_node(ld, k, node, YAML_MAPPING_NODE, path))
        return false;
    pairs = node->data.mapping.pairs.start;
    n = n_pairs(node);
    if (n == 0)
        return true;
    kv = calloc(n, sizeof *kv);
    if (!kv)
        return cfg_fail(ld, cfg_node_pos(node), "out of memory");
    *AT(base, k->off, cfg_kv *) = kv;
    *AT(base, k->n_off, size_t) = n;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *key = node_at(ld, pairs[i].key);
        yaml_node_t *val = node_at(ld, pairs[i].value);
        const char *name;
        if (!key_text(ld, key, path, &name) || duplicate(ld, node, i, path))
            return false;
        if (val->type != YAML_SCALAR_NODE || is_empty(val))
            return cfg_fail(ld, cfg_node_pos(val), "%s.%s is %s; expected a "
                            "single value (handed to librdkafka as text)",
                            path, name, kind(val));
        kv[i].key = strdup(name);
        kv[i].value = strdup((const char *)val->data.scalar.value);
        if (!kv[i].key || !kv[i].value)
            return cfg_fail(ld, cfg_node_pos(val), "out of memory");
    }
    return true;
}

/* A list of plain strings (message prefixes); [none] is empty. */
static bool store_strlist(cfg_loader *ld, const cfg_key *k, yaml_node_t *node,
                          void *base, const char *path)
{
    yaml_node_item_t *items;
    size_t n;
    char **arr;

    if (!expect_node(ld, k, node, YAML_SEQUENCE_NODE, path))
        return false;
    items = node->data.sequence.items.start;
    n = (size_t)(node->data.sequence.items.top - items);
    if (n == 1 && is_none(node_at(ld, items[0])))
        n = 0;
    if (n == 0)
        return true;
    arr = calloc(n, sizeof *arr);
    if (!arr)
        return cfg_fail(ld, cfg_node_pos(node), "out of memory");
    *AT(base, k->off, char **) = arr;
    *AT(base, k->n_off, size_t) = n;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = node_at(ld, items[i]);
        if (item->type != YAML_SCALAR_NODE || is_empty(item) ||
            item->data.scalar.length == 0)
            return cfg_fail(ld, cfg_node_pos(item), "an entry of %s is %s; "
                            "expected a non-empty string", path,
                            item->data.scalar.length == 0 &&
                            item->type == YAML_SCALAR_NODE ? "empty"
                                                           : kind(item));
        if (memchr(item->data.scalar.value, '\0', item->data.scalar.length))
            return cfg_fail(ld, cfg_node_pos(item), "an entry of %s contains "
                            "a NUL character; expected text", path);
        arr[i] = strdup((const char *)item->data.scalar.value);
        if (!arr[i])
            return cfg_fail(ld, cfg_node_pos(item), "out of memory");
    }
    return true;
}

static bool store_service(cfg_loader *ld, const cfg_key *k, yaml_node_t *map,
                          size_t i, cfg_service *svc, const char *path)
{
    yaml_node_pair_t *pair = &map->data.mapping.pairs.start[i];
    yaml_node_t *key = node_at(ld, pair->key);
    yaml_node_t *val = node_at(ld, pair->value);
    const char *name;
    char label[256];
    cfg_why why;

    if (!key_text(ld, key, path, &name) || duplicate(ld, map, i, path))
        return false;
    if (!cfg_check_service_name(name, key->data.scalar.length, &why))
        return cfg_fail(ld, cfg_value_pos(key, why.at), "%s", why.msg);
    svc->name = strdup(name);
    if (!svc->name)
        return cfg_fail(ld, cfg_node_pos(key), "out of memory");
    svc->pos = cfg_node_pos(key);
    key_path(label, sizeof label, path, name);
    if (val->type != YAML_MAPPING_NODE)
        return cfg_fail(ld, cfg_node_pos(val), "%s is %s; expected a "
                        "mapping with owned_tables and target", label,
                        kind(val));
    return cfg_walk_section(ld, k->sub, val, svc, label);
}

static bool store_services(cfg_loader *ld, const cfg_key *k,
                           yaml_node_t *node, void *base, const char *path)
{
    cfg_service *svcs;
    size_t n;

    if (!expect_node(ld, k, node, YAML_MAPPING_NODE, path))
        return false;
    n = n_pairs(node);
    if (n == 0)
        return cfg_fail(ld, cfg_node_pos(node), "%s is empty; "
                        "expected at least one service", path);
    svcs = calloc(n, sizeof *svcs);
    if (!svcs)
        return cfg_fail(ld, cfg_node_pos(node), "out of memory");
    *AT(base, k->off, cfg_service *) = svcs;
    *AT(base, k->n_off, size_t) = n;
    for (size_t i = 0; i < n; i++)
        if (!store_service(ld, k, node, i, &svcs[i], path))
            return false;
    return true;
}

static bool store_section(cfg_loader *ld, const cfg_key *k,
                          yaml_node_t *node, void *base, const char *path)
{
    if (!expect_node(ld, k, node, YAML_MAPPING_NODE, path))
        return false;
    if (k->off != CFG_NOWHERE)
        *AT(base, k->off, bool) = true;
    return cfg_walk_section(ld, k->sub, node, base, path);
}

static bool store_value(cfg_loader *ld, const cfg_key *k, yaml_node_t *node,
                        void *base, const char *path)
{
    switch (k->type) {
    case CFG_T_TABLES:
    case CFG_T_REFS:
        return store_list(ld, k, node, base, path);
    case CFG_T_STRMAP:
        return store_strmap(ld, k, node, base, path);
    case CFG_T_STRLIST:
        return store_strlist(ld, k, node, base, path);
    case CFG_T_SERVICES:
        return store_services(ld, k, node, base, path);
    case CFG_T_SECTION:
        return store_section(ld, k, node, base, path);
    default:
        return store_scalar(ld, k, node, base, path);
    }
}

static bool missing(cfg_loader *ld, const cfg_key *k, const yaml_node_t *map,
                    const char *label)
{
    char wb[200], eb[160];

    where(wb, sizeof wb, label);
    return cfg_fail(ld, cfg_node_pos(map), "missing required key '%s' %s; "
                    "expected %s: %s", k->name, wb, k->name,
                    expect(k, eb, sizeof eb));
}

bool cfg_walk_section(cfg_loader *ld, const cfg_section *sec,
                      yaml_node_t *map, void *base, const char *label)
{
    cfg_seen seen;

    memset(&seen, 0, sizeof seen);
    if (sec->n_keys > CFG_MAX_KEYS)
        return cfg_fail(ld, cfg_node_pos(map), "internal error: section "
                        "%s has too many keys", sec->path);
    if (!index_keys(ld, sec, map, label, &seen))
        return false;
    for (size_t i = 0; i < sec->n_keys; i++) {
        const cfg_key *k = &sec->keys[i];
        char path[256];
        bool ok;
        key_path(path, sizeof path, label, k->name);
        if (seen.value[i])
            ok = store_value(ld, k, seen.value[i], base, path);
        else if (k->required)
            ok = missing(ld, k, map, label);
        else
            ok = store_default(ld, k, map, base, path);
        if (!ok)
            return false;
    }
    return !sec->finish || sec->finish(ld, sec, base, label, map, &seen);
}
