/*
 * backoff: how long to wait before trying again after a failure, the same
 * rule everywhere: the wait doubles from a minimum to a maximum, and each
 * wait is shortened by a random part of up to a quarter, so that many
 * clients failing together (every sink of a restarted database, say) do
 * not come back in step.
 */
#ifndef CLEAVE_COMMON_BACKOFF_H
#define CLEAVE_COMMON_BACKOFF_H

#include <stdint.h>

typedef struct backoff {
    int min_ms;
    int max_ms;
    int step_ms;        /* the next wait before jitter */
    uint32_t seed;
} backoff;

/* Retries of cleave's connections: 1 s doubling to a minute. */
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000

void backoff_init(backoff *b, int min_ms, int max_ms);
/* After a success: the next failure waits the minimum again. */
void backoff_reset(backoff *b);
/* The wait after this failure, in ms; the one after it will be longer. */
int backoff_next(backoff *b);

#endif
