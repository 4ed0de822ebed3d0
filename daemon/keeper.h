/*
 * keeper: between moves, each service's two databases kept ready for the
 * next switch (PRODUCT.md §8). While the shared database takes a service's
 * writes, the service's own database stays fenced and its sequences at or
 * past the shared ones; while its own takes them, the shared copies of
 * the tables it moved stay fenced (a table given to it since stays fenced
 * in its own database) and the shared sequences follow its. A switch then
 * finds nothing left to do but check.
 *
 * Only the mover's thread calls it; it keeps its connections open.
 */
#ifndef CLEAVE_DAEMON_KEEPER_H
#define CLEAVE_DAEMON_KEEPER_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"

/* The lock timeout of the keeper's connections and of a recovery's. */
#define KEEPER_LOCK_TIMEOUT_MS 2000

typedef struct keeper keeper;

keeper *keeper_new(const cfg *config);
void keeper_free(keeper *k);
/*
 * Service svc, whose shared database takes the writes when `moved` is
 * NULL; else its own database takes the writes of moved's tables (a
 * service of the same name, owning those svc's cut-over switched). A
 * failure is logged once until it changes or passes.
 */
void keeper_keep(keeper *k, size_t svc, const cfg_service *moved);

#endif
