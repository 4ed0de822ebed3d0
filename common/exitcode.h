/*
 * exitcode: what every command exits with, by name (the command line's
 * contract; README "Command line").
 */
#ifndef CLEAVE_COMMON_EXITCODE_H
#define CLEAVE_COMMON_EXITCODE_H

#include "config/config.h"

typedef enum exitcode {
    EXITCODE_OK = 0,
    /* A runtime failure; cutover and rollback: nothing was changed. */
    EXITCODE_RUNTIME = 1,
    EXITCODE_USAGE = 2,
    /* analyze found a blocking problem, verify a difference. */
    EXITCODE_FOUND = 3,
    /* A bad configuration (sysexits' EX_CONFIG). */
    EXITCODE_CONFIG = CFG_EXIT_CONFIG,
} exitcode;

#endif
