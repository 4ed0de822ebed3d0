/*
 * capture_fixtures: regenerates tests/decoder/streams from the scenarios
 * in tests/capture on a throwaway cluster.
 *   capture_fixtures OUTDIR SCENARIO.sql...
 */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/capture.h"

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: capture_fixtures OUTDIR SCENARIO.sql...\n");
        return 2;
    }
    pgc_cluster *c = pgc_start(NULL);
    if (!c)
        return 1;
    int failed = 0;
    for (int i = 2; i < argc; i++) {
        char *copy = strdup(argv[i]);
        char out[1024];
        char *base = basename(copy);
        snprintf(out, sizeof out, "%s/%.*s.stream", argv[1],
                 (int)strcspn(base, "."), base);
        free(copy);
        bool ok = cap_scenario(c, argv[i], out);
        printf("%s %s\n", ok ? "captured" : "FAILED", out);
        failed += !ok;
    }
    pgc_stop(c);
    return failed ? 1 : 0;
}
