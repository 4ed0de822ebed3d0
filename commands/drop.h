/*
 * drop: the clean-up after a cut-over (PRODUCT.md §6): the slot and the
 * publication on the source, and with `origins` the replication origins
 * cleave made in the service databases.
 */
#ifndef CLEAVE_COMMANDS_DROP_H
#define CLEAVE_COMMANDS_DROP_H

#include <stdbool.h>

#include "config/config.h"

/*
 * Asks for confirmation on the terminal unless `yes`; refuses while a
 * `cleave run` streams the slot. Returns 0 when done (or nothing was
 * there), 1 on refusal or failure (why on stderr).
 */
int drop_run(const cfg *config, bool yes, bool origins);

/*
 * Asks "QUESTION [y/N] " on stdout and reads the answer from stdin: true
 * for y or yes (any case). End of input is no. A piped answer is read
 * too, and the line ended since it is not echoed. `complete` asks so.
 */
bool drop_ask(const char *question);

#endif
