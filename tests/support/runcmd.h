/*
 * runcmd: runs a program to completion and captures what it printed, for
 * tests of the real binary.
 */
#ifndef CLEAVE_TESTS_RUNCMD_H
#define CLEAVE_TESTS_RUNCMD_H

#include <stdbool.h>

typedef struct rc_result {
    int status;      /* exit code; 128 + signal when killed */
    char *out;       /* stdout, NUL-terminated */
    char *err;       /* stderr, NUL-terminated */
} rc_result;

/* Runs argv (argv[0] found on PATH); false when it could not start. */
int rc_run(char *const argv[], rc_result *res);
void rc_free(rc_result *res);

/* Whether a child is still running (not yet exited, reaped or not). */
bool rc_running(int pid);

#endif
