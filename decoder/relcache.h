/*
 * relcache: the decoder's tables keyed by OID (relations from Relation
 * messages, types from Type messages).
 *
 * Open addressing with linear probing. Entries are single heap blocks the
 * table owns: putting an entry for an OID already present frees the old
 * block, so a replaced Relation is one pointer swap. Nothing is ever
 * removed on its own, which keeps probing free of tombstones.
 */
#ifndef CLEAVE_DECODER_RELCACHE_H
#define CLEAVE_DECODER_RELCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct relcache {
    uint32_t *oids;
    void **entries;     /* NULL marks a free slot (OID 0 is a valid key) */
    size_t cap;         /* 0 or a power of two */
    size_t n;
} relcache;

void relcache_init(relcache *c);
/* Frees every entry; keeps the table for reuse. */
void relcache_clear(relcache *c);
/* Frees every entry and the table. */
void relcache_free(relcache *c);
/* The entry for oid, or NULL. */
void *relcache_get(const relcache *c, uint32_t oid);
/*
 * Stores entry (a malloc'd block) for oid, freeing the one it replaces.
 * On false (out of memory) the cache is unchanged and entry is still the
 * caller's.
 */
bool relcache_put(relcache *c, uint32_t oid, void *entry);

#endif
