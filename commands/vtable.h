/*
 * vtable: one table of `cleave verify` (verify.h), the source against the
 * owning service's PostgreSQL target, on two connections of its own.
 *
 * Both sessions print values the same way whatever the servers' defaults
 * (DateStyle, TimeZone, extra_float_digits, IntervalStyle, bytea_output,
 * lc_monetary, search_path), so a row's text, and its md5, is the same on
 * both sides when the row is; servers of two encodings hash that text's
 * UTF8 bytes (slower: md5 where one encoding allows a cheaper hash). Key
 * ranges use each key column's own collation on both sides: a target made
 * with another collation for a text key would see other ranges, and so
 * would one whose encoding orders its characters otherwise.
 */
#ifndef CLEAVE_COMMANDS_VTABLE_H
#define CLEAVE_COMMANDS_VTABLE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config/config.h"

/* Differences kept for printing per table; the rest are only counted. */
#define VTABLE_SHOW 100

typedef enum vtable_diff_kind {
    VTABLE_MISSING,     /* in the source, not in the target */
    VTABLE_EXTRA,       /* in the target, not in the source */
    VTABLE_DIFFERENT,   /* same key, other values */
} vtable_diff_kind;

typedef struct vtable_diff {
    vtable_diff_kind kind;
    char *what;         /* "id=17", a keyless row's columns, "the table" */
} vtable_diff;

typedef struct vtable_result {
    bool failed;
    char error[512];     /* why, when failed */
    int64_t rows;        /* source rows compared */
    size_t n_diffs;      /* every difference that remained */
    vtable_diff diffs[VTABLE_SHOW];
    size_t n_shown;
    size_t rechecked;    /* chunks compared again, row by row */
    size_t unsettled;    /* rows that changed at every look: not compared */
    char note[256];      /* e.g. that the target did not catch up */
} vtable_result;

/* What every table of one verify run shares. */
typedef struct vtable_env {
    const char *source_dsn;
    atomic_uint_fast64_t rows;   /* source rows compared so far, all tables */
    /*
     * Set once a wait for the target gave up (no cleave run streams the
     * slot, or it fell too far behind): later tables do not wait again.
     */
    atomic_bool no_catchup;
} vtable_env;

/*
 * Which side follows the other, so a difference is waited for on the
 * side that trails. Normally the target follows the source: `origin` is
 * the one cleave records the service's position with in the target,
 * `slot` the source's. After a cut-over the shared database follows the
 * service's (`reversed`): `origin` is the reverse stream's, in the
 * source, and `slot` its slot in the target. After `complete` nothing
 * follows (`frozen`): the shared copies are compared as they stand.
 */
typedef struct vtable_follow {
    bool reversed;
    bool frozen;
    const char *origin;
    const char *slot;
} vtable_follow;

/*
 * Compares `t` of the source with its copy in the PostgreSQL target at
 * `target_dsn`, into *out (which the caller zeroed).
 */
void vtable_compare(vtable_env *env, const char *target_dsn,
                    const vtable_follow *follow, const cfg_table *t,
                    vtable_result *out);
void vtable_result_clear(vtable_result *r);

/*
 * A name as SQL would read it back: bare when it is a plain lower-case
 * identifier, else in double quotes (with "" for ").
 */
void vtable_put_name(FILE *f, const char *name);

#endif
