/* relcache: OID-keyed tables owning their entries; see relcache.h. */
#include "decoder/relcache.h"

#include <stdlib.h>

#define RELCACHE_MIN_CAP 16

void relcache_init(relcache *c)
{
    *c = (relcache){0};
}

void relcache_clear(relcache *c)
{
    for (size_t i = 0; i < c->cap; i++) {
        free(c->entries[i]);
        c->entries[i] = NULL;
    }
    c->n = 0;
}

void relcache_free(relcache *c)
{
    relcache_clear(c);
    free(c->oids);
    free(c->entries);
    relcache_init(c);
}

/*
 * Fibonacci hashing: the top bits of the product mix every bit of the
 * OID, so runs and strides of OIDs spread alike.
 */
static size_t slot_of(uint32_t oid, size_t cap)
{
    unsigned bits = (unsigned)__builtin_ctzll(cap);
    return (size_t)((uint32_t)(oid * UINT32_C(2654435769)) >> (32 - bits));
}

/* The slot holding oid, or the free slot where it would go. */
static size_t find(const relcache *c, uint32_t oid)
{
    size_t i = slot_of(oid, c->cap);
    while (c->entries[i] && c->oids[i] != oid)
        i = (i + 1) & (c->cap - 1);
    return i;
}

void *relcache_get(const relcache *c, uint32_t oid)
{
    if (c->n == 0)
        return NULL;
    return c->entries[find(c, oid)];
}

/* Rehash into a table twice the size; on failure the old one stays. */
static bool grow(relcache *c)
{
    size_t ncap = c->cap ? c->cap * 2 : RELCACHE_MIN_CAP;
    relcache bigger = {
        .oids = malloc(ncap * sizeof(uint32_t)),
        .entries = calloc(ncap, sizeof(void *)),
        .cap = ncap,
        .n = c->n,
    };
    if (!bigger.oids || !bigger.entries) {
        free(bigger.oids);
        free(bigger.entries);
        return false;
    }
    for (size_t i = 0; i < c->cap; i++) {
        if (!c->entries[i])
            continue;
        size_t j = find(&bigger, c->oids[i]);
        bigger.oids[j] = c->oids[i];
        bigger.entries[j] = c->entries[i];
    }
    free(c->oids);
    free(c->entries);
    *c = bigger;
    return true;
}

bool relcache_put(relcache *c, uint32_t oid, void *entry)
{
    /* Keep the load under one half so probes stay short. */
    if ((c->n + 1) * 2 > c->cap && !grow(c))
        return false;
    size_t i = find(c, oid);
    if (c->entries[i])
        free(c->entries[i]);
    else
        c->n++;
    c->oids[i] = oid;
    c->entries[i] = entry;
    return true;
}
