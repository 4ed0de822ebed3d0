/*
 * capture_shop: records a large real replication stream for the decoder
 * benchmark: the shop fixtures' data load at a scale, then the standard
 * pgbench mix, all through one slot, on a throwaway cluster.
 *   capture_shop OUT.stream [SCALE [TRANSACTIONS]]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/capture.h"

static bool run_pgbench(const pgc_cluster *c, int scale, int transactions)
{
    const char *w = pgc_fixtures_dir();
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "'%s%spgbench' -n -h '%s' -p %d -U postgres -c 4 -j 2 -t %d "
             "-s %d --random-seed=42 -f '%s/shop/workload/new_order.sql@4' "
             "-f '%s/shop/workload/user_update.sql@3' "
             "-f '%s/shop/workload/inventory.sql@3' "
             "-f '%s/shop/workload/notification.sql@2' "
             "-f '%s/shop/workload/refund.sql@1' shop >/dev/null",
             c->bindir, c->bindir[0] ? "/" : "", c->sockdir, c->port,
             transactions, scale, w, w, w, w, w);
    return system(cmd) == 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: capture_shop OUT.stream [SCALE [TRANSACTIONS]]\n");
        return 2;
    }
    int scale = argc > 2 ? atoi(argv[2]) : 1;
    int transactions = argc > 3 ? atoi(argv[3]) : 5000;
    pgc_cluster *c = pgc_start(NULL);
    if (!c)
        return 1;
    FILE *out = fopen(argv[1], "w");
    bool ok = out && pgc_load_shop(c, "shop", 0, true) &&
              pgc_exec(c, "shop", "CREATE PUBLICATION cap FOR ALL TABLES") &&
              pgc_exec(c, "shop",
                       "SELECT pg_create_logical_replication_slot('cap', "
                       "'pgoutput')");
    char scalevar[32], data[600];
    snprintf(scalevar, sizeof scalevar, "scale=%d", scale);
    snprintf(data, sizeof data, "%s/shop/data.sql", pgc_fixtures_dir());
    const char *vars[] = {scalevar, NULL};
    ok = ok && pgc_psql_file(c, "shop", data, vars) &&
         run_pgbench(c, scale, transactions);
    if (ok)
        fprintf(out, "# shop data at scale %d, then %d pgbench transactions x 4 clients\n"
                     "# options: proto_version=2 publication_names=cap\n",
                scale, transactions);
    ok = ok && cap_record(c, "shop", "cap", "proto_version=2 publication_names=cap",
                          NULL, out);
    if (out && fclose(out) != 0)
        ok = false;
    pgc_stop(c);
    if (!ok)
        fprintf(stderr, "capture_shop: failed\n");
    return ok ? 0 : 1;
}
