/*
 * analyze: the configuration's map of who owns what, checked against the
 * source catalog (PRODUCT.md §6), printed as a checklist a person acts on,
 * or as JSON for scripts.
 */
#ifndef CLEAVE_COMMANDS_ANALYZE_H
#define CLEAVE_COMMANDS_ANALYZE_H

#include <stdbool.h>

#include "config/config.h"

/*
 * Connects to the source, prints the checklist (or JSON) on stdout.
 * Returns 0 when nothing blocks `run`, 3 when something does, 1 when the
 * source cannot be read (why on stderr).
 */
int analyze_run(const cfg *config, bool json);

#endif
