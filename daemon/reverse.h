/*
 * reverse: what a service's reverse stream is made of (PRODUCT.md §8).
 * After a cut-over the service's own database is a source: its slot and
 * publication, decoded by the same daemon, applied into the shared
 * database's copies of its owned tables under an origin of its own (so
 * the forward stream skips it, and the reverse stream skips what the
 * forward one applied).
 *
 * The reverse stream is an ordinary pipeline over a configuration made
 * here: the service's database as the source, one service owning the
 * same tables with the shared database as its target.
 */
#ifndef CLEAVE_DAEMON_REVERSE_H
#define CLEAVE_DAEMON_REVERSE_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "config/config.h"

/*
 * Service svc's reverse configuration: named <name>_reverse (so its
 * origin is cleave_<name>_reverse_<service>), slot and publication
 * <slot>_rev_<service> (lower case, at most 63 bytes), state under
 * state_dir/reverse-<service>. It streams back the service's owned
 * tables but those left_out marks (per owned table; NULL: none). NULL
 * when out of memory. Free it with reverse_cfg_free, never cfg_free: it
 * borrows from config.
 */
cfg *reverse_cfg_new(const cfg *config, size_t svc, const bool *left_out);
void reverse_cfg_free(cfg *rc);
/*
 * The origin service svc's reverse stream applies under (malloc'd; NULL
 * when out of memory): the forward stream reads its transactions as the
 * moved service's own writes.
 */
char *reverse_origin_name(const cfg *config, size_t svc);
/* Its slot's name, in the service's database (malloc'd; NULL: no memory). */
char *reverse_slot_name(const cfg *config, size_t svc);

/*
 * Makes the publication and the slot on the service's database when
 * missing (the same way the forward source does), before anything is
 * blocked: the slot's start must precede the switch. False with err.
 */
bool reverse_prepare(const cfg *rc, char *err, size_t errlen);
/*
 * Removes the reverse stream's slot and publication (from svcdb) and its
 * origin (from shared); what is already gone is fine. The reverse
 * pipeline must be stopped. False with err.
 */
bool reverse_drop(const cfg *rc, PGconn *svcdb, PGconn *shared, char *err,
                  size_t errlen);

#endif
