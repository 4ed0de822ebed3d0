/*
 * pgcluster: a throwaway PostgreSQL cluster for integration tests.
 *
 * pgc_start() runs initdb into a new directory under $TMPDIR, configures
 * wal_level=logical on a free loopback port with a private socket
 * directory, and starts the server (as the `postgres` user when run as
 * root, since PostgreSQL refuses to run as root). Every cluster started is
 * stopped and removed at exit, on SIGINT/SIGTERM/SIGALRM/SIGHUP, and a
 * cluster left behind by a killed test run is removed by the next start.
 * Forked children (Check runs each test in one) never tear down their
 * parent's cluster.
 */
#ifndef CLEAVE_TESTS_PGCLUSTER_H
#define CLEAVE_TESTS_PGCLUSTER_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

typedef struct pgc_cluster {
    char root[256];      /* the temporary directory holding it all */
    char datadir[300];
    char sockdir[300];
    char bindir[256];    /* the server's programs */
    char clientdir[256]; /* psql, pgbench, pg_dump: Debian's newest */
    int major;           /* the running server's major version */
    int port;
    bool as_postgres;    /* run server commands through runuser */
} pgc_cluster;

/*
 * Starts a cluster; `settings` is NULL or a NULL-terminated list of
 * "name = value" lines added to postgresql.conf. NULL on failure, with the
 * reason (and the server log's tail) on stderr.
 */
pgc_cluster *pgc_start(const char *const *settings);
/*
 * The same with PostgreSQL `major` (14 to 18; 0 for pgc_start's default,
 * the newest Debian packages): Debian's own programs if present, else
 * those tests/setup-pg.sh installed (see there). NULL when that version
 * is not installed or the server started reports another one. Such a
 * cluster runs Debian's psql and pgbench, which speak to any server;
 * Debian's pg_dump refuses servers newer than itself and the packaged
 * servers ship none, so no test dumps a newer server.
 */
pgc_cluster *pgc_start_version(int major, const char *const *settings);
/* Stops the server at once and removes its directory. */
void pgc_stop(pgc_cluster *c);

/* Restarts the server (fast shutdown), as an outage a client must ride out. */
bool pgc_restart(pgc_cluster *c);
/* Runs a pgbench workload of the shop fixtures in the background. */
int pgc_pgbench_start(const pgc_cluster *c, const char *dbname, int clients,
                      int transactions, int scale, const char *const *scripts);
/* Waits for it; true when pgbench succeeded. */
bool pgc_pgbench_wait(int pid);

/* A libpq connection string for dbname as the superuser. Caller frees. */
char *pgc_dsn(const pgc_cluster *c, const char *dbname);
/* A connection, or NULL with the reason on stderr. */
PGconn *pgc_connect(const pgc_cluster *c, const char *dbname);

/* Runs SQL (several statements allowed); false with the error on stderr. */
bool pgc_exec(const pgc_cluster *c, const char *dbname, const char *sql);
/* The first column of the first row, or NULL. Caller frees. */
char *pgc_query_value(const pgc_cluster *c, const char *dbname,
                      const char *sql);
/* Polls a boolean query until it answers true or timeout_s passes. */
bool pgc_wait_until(const pgc_cluster *c, const char *dbname,
                    const char *sql, double timeout_s);

bool pgc_createdb(const pgc_cluster *c, const char *dbname);
/*
 * Runs a file through psql with ON_ERROR_STOP; `vars` is NULL or a
 * NULL-terminated list of "name=value" psql variables.
 */
bool pgc_psql_file(const pgc_cluster *c, const char *dbname,
                   const char *path, const char *const *vars);
/*
 * Creates dbname and loads tests/fixtures/shop (schema, then data at
 * `scale`, 0 for schema only); cross-service foreign keys only when asked.
 */
bool pgc_load_shop(const pgc_cluster *c, const char *dbname, int scale,
                   bool cross_service_fks);

/* The directory holding shop/: CLEAVE_FIXTURES, else tests/fixtures in the
 * source tree. */
const char *pgc_fixtures_dir(void);
/* The source root (CLEAVE_SRCDIR, else "."). */
const char *pgc_srcdir(void);

#endif
