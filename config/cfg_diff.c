/*
 * cfg_diff: which keys differ between two configurations, walked by the
 * key table, so that a reload can apply what is reloadable and name what
 * needs a restart, and a new key cannot be forgotten.
 */
#include <stdio.h>
#include <string.h>

#include "config/cfg_internal.h"

#define AT(base, off, type) ((const type *)((const char *)(base) + (off)))

typedef struct differ {
    cfg_changed_fn *fn;
    void *arg;
    size_t n;
} differ;

static bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool same_table(const cfg_table *a, const cfg_table *b)
{
    return same_str(a->schema, b->schema) && same_str(a->name, b->name);
}

static bool same_list(const cfg_key *k, const void *a, const void *b)
{
    size_t n = *AT(a, k->n_off, size_t);
    if (n != *AT(b, k->n_off, size_t))
        return false;
    for (size_t i = 0; i < n; i++) {
        bool same;
        if (k->type == CFG_T_TABLES) {
            same = same_table(&(*AT(a, k->off, cfg_table *))[i],
                              &(*AT(b, k->off, cfg_table *))[i]);
        } else if (k->type == CFG_T_REFS) {
            const cfg_ref *x = &(*AT(a, k->off, cfg_ref *))[i];
            const cfg_ref *y = &(*AT(b, k->off, cfg_ref *))[i];
            same = same_table(&x->table, &y->table) &&
                   same_str(x->column, y->column);
        } else if (k->type == CFG_T_STRMAP) {
            const cfg_kv *x = &(*AT(a, k->off, cfg_kv *))[i];
            const cfg_kv *y = &(*AT(b, k->off, cfg_kv *))[i];
            same = same_str(x->key, y->key) && same_str(x->value, y->value);
        } else {
            same = same_str((*AT(a, k->off, char **))[i],
                            (*AT(b, k->off, char **))[i]);
        }
        if (!same)
            return false;
    }
    return true;
}

static bool same_value(const cfg_key *k, const void *a, const void *b)
{
    switch (k->type) {
    case CFG_T_STRING:
        return same_str(*AT(a, k->off, char *), *AT(b, k->off, char *));
    case CFG_T_BOOL:
        return *AT(a, k->off, bool) == *AT(b, k->off, bool);
    case CFG_T_DURATION: case CFG_T_COUNT: case CFG_T_ENUM:
        return *AT(a, k->off, int) == *AT(b, k->off, int);
    case CFG_T_SECTION:
        return k->off == CFG_NOWHERE ||
               *AT(a, k->off, bool) == *AT(b, k->off, bool);
    default:
        return same_list(k, a, b);
    }
}

static void changed(differ *d, const char *path, const cfg_key *k)
{
    char key[256];
    snprintf(key, sizeof key, "%s%s%s", path, *path ? "." : "", k->name);
    d->fn(key, k->reloadable, d->arg);
    d->n++;
}

static void diff_section(differ *d, const cfg_section *sec, const char *path,
                         const void *a, const void *b);

static void diff_services(differ *d, const cfg_key *k, const void *a,
                          const void *b)
{
    size_t n = *AT(a, k->n_off, size_t);
    const cfg_service *x = *AT(a, k->off, cfg_service *);
    const cfg_service *y = *AT(b, k->off, cfg_service *);
    bool same_names = n == *AT(b, k->n_off, size_t);
    for (size_t i = 0; same_names && i < n; i++)
        same_names = same_str(x[i].name, y[i].name);
    if (!same_names) {
        changed(d, "", k);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        char path[128];
        snprintf(path, sizeof path, "services.%s", x[i].name);
        diff_section(d, k->sub, path, &x[i], &y[i]);
    }
}

static void diff_section(differ *d, const cfg_section *sec, const char *path,
                         const void *a, const void *b)
{
    for (size_t i = 0; i < sec->n_keys; i++) {
        const cfg_key *k = &sec->keys[i];
        if (k->type == CFG_T_SERVICES) {
            diff_services(d, k, a, b);
            continue;
        }
        if (!same_value(k, a, b))
            changed(d, path, k);
        if (k->type == CFG_T_SECTION) {
            char sub[160];
            snprintf(sub, sizeof sub, "%s%s%s", path, *path ? "." : "",
                     k->name);
            diff_section(d, k->sub, sub, a, b);
        }
    }
}

size_t cfg_diff(const cfg *a, const cfg *b, cfg_changed_fn *fn, void *arg)
{
    differ d = {.fn = fn, .arg = arg};
    diff_section(&d, &cfg_top_section, "", a, b);
    return d.n;
}
