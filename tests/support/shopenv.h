/*
 * shopenv: the shop fixtures set up for an end-to-end run of cleave.
 *
 * A source database with the shop schema (cross-service foreign keys
 * included) on one cluster, five service databases with the schema
 * without cross-service keys on another, a cleave.yaml mapping them as
 * config/examples/shop.yaml does, and the real cleave binary started and
 * stopped as a process. Tables are compared row for row (as multisets)
 * between the source and the owning service's database.
 */
#ifndef CLEAVE_TESTS_SHOPENV_H
#define CLEAVE_TESTS_SHOPENV_H

#include <check.h>
#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#include "tests/support/pgcluster.h"

#define SHOP_NSERVICES 5
#define SHOP_NTABLES 14

typedef struct shop_env {
    pgc_cluster *src;
    pgc_cluster *tgt;
    char name[32];            /* instance: databases, slot, state dir */
    char srcdb[64];
    char dbs[SHOP_NSERVICES][64];
    char config[512];
    char state_dir[512];
    char log[512];
    pid_t pid;                /* the running cleave, or 0 */
    long log_mark;            /* the log's size when it was started */
} shop_env;

extern const char *const shop_services[SHOP_NSERVICES];
extern const char *const shop_tables[SHOP_NTABLES];
/* The index of the service owning shop_tables[i]. */
int shop_owner(int table);

/*
 * Creates the databases (schema only) and writes the configuration;
 * `service_yaml` is appended under each service (e.g.
 * "    on_conflict: apply\n"), `source_yaml` under source: (e.g.
 * "  heartbeat_interval: 200ms\n"); either may be NULL. The slot is not
 * created: cleave does that at start.
 */
bool shop_setup(shop_env *env, pgc_cluster *src, pgc_cluster *tgt,
                const char *name, const char *source_yaml,
                const char *service_yaml);
/*
 * The same for an initial sync: the source holds the shop data at `scale`
 * (cross-service keys included), the five service databases are empty.
 */
bool shop_setup_copy(shop_env *env, pgc_cluster *src, pgc_cluster *tgt,
                     const char *name, int scale, const char *source_yaml,
                     const char *service_yaml);
/* The log's size now: a mark for counting what a later run logs. */
long shop_log_size(const shop_env *env);
/* Lines of the log from byte `from` on that contain text. */
int shop_log_count(const shop_env *env, const char *text, long from);
/* Waits until such a line appears. */
bool shop_wait_log(const shop_env *env, const char *text, long from,
                   double timeout_s);
/* Appends text to the configuration (another service, say). */
bool shop_config_append(shop_env *env, const char *yaml);
/* Starts `cleave run` on the configuration, logging to env->log. */
bool shop_start(shop_env *env);
/* Sends sig and waits up to timeout_s; the exit status (128+n if killed). */
int shop_stop(shop_env *env, int sig, double timeout_s);
/* Waits until the slot exists and a walsender streams it. */
bool shop_wait_streaming(shop_env *env, double timeout_s);
/*
 * The running cleave's status, asked as users ask: `cleave status -c
 * CONFIG --json`. NULL while it cannot say (not listening yet, stopped);
 * the caller json_decref's it.
 */
json_t *shop_status_json(const shop_env *env);
/*
 * Waits until pred(status, arg) holds on a fresh shop_status_json, asked
 * every 100 ms; false at the deadline.
 */
bool shop_wait_status(const shop_env *env, bool (*pred)(json_t *, void *),
                      void *arg, double timeout_s);
/*
 * Waits until every service of the running cleave streams (its initial
 * sync and the replay of what it held are over: `cleave status --json`
 * says streaming for each), then until cleave has confirmed everything
 * the source has written so far (the slot's confirmed flush LSN passes
 * the current WAL LSN).
 */
bool shop_wait_caught_up(shop_env *env, double timeout_s);
/* Compares one table; false with the first difference described in diff. */
bool shop_table_equal(shop_env *env, int table, char *diff, size_t difflen);
/* Every table; prints what differs to stderr. */
bool shop_all_equal(shop_env *env);
/* Prints the tail of cleave's log to stderr (for failing tests). */
void shop_log_tail(const shop_env *env, int lines);
/* Whether cleave's log contains text. */
bool shop_log_contains(const shop_env *env, const char *text);
/* Stops cleave if running, drops the slot. */
void shop_teardown(shop_env *env);
/* Monotonic seconds, for deadlines. */
double shop_now_s(void);
/*
 * Assertions (Check) the integration suites share; each shows the log's
 * tail before it fails.
 */
/* Set up with the copy, started, caught up within timeout_s. */
void shop_start_caught_up(shop_env *env, pgc_cluster *src, pgc_cluster *tgt,
                          const char *name, double timeout_s);
/* Caught up within timeout_s, and every target equal to its source. */
void shop_assert_caught_up_and_equal(shop_env *env, double timeout_s);
/* SIGTERM ends cleave with exit 0; then shop_teardown. */
void shop_stop_cleanly(shop_env *env);

/* As shop_wait_log, for either of two texts. */
bool shop_wait_log_either(const shop_env *env, const char *a, const char *b,
                          long from, double timeout_s);
/*
 * An owned table renamed on the source (warehouses to depots, a row
 * inserted under the new name): the stream stops at it, or, where it
 * read the rename before the catalog showed it, sends the row on under
 * the configured name. Then the walsender is ended, and a start must
 * say the table is gone. False with the log's tail when one is missing.
 */
bool shop_rename_warehouses(shop_env *env, long from, double timeout_s);
/* Adds one test, in a case of its own with its own timeout (seconds). */
void shop_add_case(Suite *s, const char *name, const TTest *test,
                   double timeout_s);
/*
 * As shop_add_case, for a long case whose code the sanitizer run takes
 * through other cases: tagged `unsanitized`, which `tests/run.sh
 * --sanitize` leaves out (CK_EXCLUDE_TAGS), to keep CI short.
 */
void shop_add_long_case(Suite *s, const char *name, const TTest *test,
                        double timeout_s);
/*
 * Starts the two clusters into *src and *tgt (`tgt_settings` for the
 * target, may be NULL), runs the suite, stops them; the exit status.
 */
int shop_run_suite(Suite *s, const char *const *tgt_settings,
                   pgc_cluster **src, pgc_cluster **tgt);

/* The cleave binary under test (CLEAVE_BIN, else the build dir's cleave). */
const char *shop_cleave_bin(void);

#endif
