/* backoff: doubling waits with jitter; see backoff.h. */
#include "common/backoff.h"

#include <stdint.h>
#include <time.h>

void backoff_init(backoff *b, int min_ms, int max_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    b->min_ms = min_ms;
    b->max_ms = max_ms;
    b->step_ms = min_ms;
    /* Two backoffs made in the same instant still differ by address. */
    b->seed = (uint32_t)ts.tv_nsec ^ (uint32_t)(uintptr_t)b;
    if (b->seed == 0)
        b->seed = 1;
}

void backoff_reset(backoff *b)
{
    b->step_ms = b->min_ms;
}

/* xorshift32: no shared state, so any thread may hold a backoff. */
static uint32_t next_random(backoff *b)
{
    uint32_t x = b->seed;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return b->seed = x;
}

int backoff_next(backoff *b)
{
    int step = b->step_ms;
    int quarter = step / 4;
    int jitter = quarter > 0 ? (int)(next_random(b) % (uint32_t)quarter) : 0;
    b->step_ms = step > b->max_ms / 2 ? b->max_ms : step * 2;
    return step - jitter;
}
