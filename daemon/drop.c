/* drop: see drop.h. */
#include "daemon/drop.h"

#include <stdio.h>

int drop_run(const cfg *config, bool yes, bool origins)
{
    (void)config;
    (void)yes;
    (void)origins;
    fprintf(stderr, "cleave drop: not implemented yet\n");
    return 1;
}
