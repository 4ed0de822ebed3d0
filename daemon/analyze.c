/* analyze: see analyze.h. */
#include "daemon/analyze.h"

#include <stdio.h>

int analyze_run(const cfg *config, bool json)
{
    (void)config;
    (void)json;
    fprintf(stderr, "cleave analyze: not implemented yet\n");
    return 1;
}
