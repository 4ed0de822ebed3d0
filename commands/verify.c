/*
 * verify: `cleave verify`; see verify.h. This file picks the tables,
 * orders them (largest first, so the parallel workers end together), runs
 * copy_workers threads over them (each table on two connections of its
 * own, vtable.c), prints each table's block as it finishes, progress on
 * stderr, and the summary.
 */
#include "commands/verify.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "common/clock.h"
#include "common/exitcode.h"
#include "common/dbconn.h"
#include "commands/vtable.h"
#include "daemon/journal.h"
#include "daemon/reverse.h"

enum { PROGRESS_MS = 3000 };

typedef struct vjob {
    const cfg_service *svc;
    const cfg_table *t;
    vtable_follow follow;  /* its origin and slot are the job's */
    double estimate;       /* reltuples: the bigger, the sooner */
    size_t order;          /* the configuration's order, for ties */
    double seconds;
    vtable_result res;
} vjob;

typedef struct vrun {
    const cfg *config;
    journal *moves;                /* NULL: none readable, all forward */
    vtable_env env;
    vjob *jobs;
    size_t n;
    const cfg_service **skipped;   /* services without a PostgreSQL target */
    size_t n_skipped;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t next, finished;         /* under mu */
    size_t ok, differ, failed, diffs;
} vrun;

/* ------------------------------------------------------------ selection */

static const cfg_service *find_service(const cfg *c, const char *name)
{
    for (size_t i = 0; i < c->n_services; i++)
        if (strcmp(c->services[i].name, name) == 0)
            return &c->services[i];
    return NULL;
}

static bool same_table(const cfg_table *a, const cfg_table *b)
{
    return strcmp(a->schema, b->schema) == 0 && strcmp(a->name, b->name) == 0;
}

/*
 * Which side follows: the target, unless the service was cut over (its
 * move committed, or complete), when the shared database follows the
 * service's through the reverse stream.
 */
static bool set_follow(vrun *r, const cfg_service *svc, vtable_follow *f)
{
    size_t i = (size_t)(svc - r->config->services);
    journal_dir dir = r->moves ? journal_get(r->moves, i).dir
                               : JOURNAL_FORWARD;
    f->reversed = dir != JOURNAL_FORWARD;
    f->frozen = dir == JOURNAL_COMPLETE;
    if (!f->reversed) {
        f->origin = cfg_origin_name(r->config, svc);
        f->slot = strdup(r->config->source.slot);
        return f->origin && f->slot;
    }
    f->origin = reverse_origin_name(r->config, i);
    f->slot = reverse_slot_name(r->config, i);
    return f->origin && f->slot;
}

static void free_follow(vtable_follow *f)
{
    free((char *)f->origin);
    free((char *)f->slot);
}

static bool add_job(vrun *r, const cfg_service *svc, const cfg_table *t)
{
    vjob *j = &r->jobs[r->n];
    *j = (vjob){.svc = svc, .t = t, .order = r->n};
    if (!set_follow(r, svc, &j->follow)) {
        free_follow(&j->follow);
        return false;
    }
    r->n++;
    return true;
}

/* The tables of one service (all, or the one asked for). */
static bool add_service(vrun *r, const cfg_service *svc, const cfg_table *only)
{
    if (!svc->target_postgres) {
        r->skipped[r->n_skipped++] = svc;
        return true;
    }
    for (size_t i = 0; i < svc->n_owned; i++)
        if ((!only || same_table(only, &svc->owned[i])) &&
            !add_job(r, svc, &svc->owned[i]))
            return false;
    return true;
}

/*
 * The jobs for --service and --table; 2 (said on stderr) for a service or
 * table the configuration does not have, 1 when out of memory.
 */
static int select_jobs(vrun *r, const char *service, const char *table)
{
    const cfg *c = r->config;
    const cfg_service *svc = service ? find_service(c, service) : NULL;
    if (service && !svc) {
        fprintf(stderr, "cleave verify: %s has no service '%s'\n", c->path,
                service);
        return EXITCODE_USAGE;
    }
    cfg_table want = {0};
    char err[256];
    if (table && !cfg_table_parse(table, &want, err, sizeof err)) {
        fprintf(stderr, "cleave verify: --table '%s': %s\n", table, err);
        return EXITCODE_USAGE;
    }
    const cfg_service *owner = table ? cfg_owner(c, want.schema, want.name)
                                     : NULL;
    int rc = EXITCODE_OK;
    if (table && (!owner || (svc && owner != svc))) {
        fprintf(stderr, "cleave verify: %s.%s is not a table %s owns in %s\n",
                want.schema, want.name, svc ? svc->name : "any service",
                c->path);
        rc = EXITCODE_USAGE;
    }
    size_t tables = 0;
    for (size_t i = 0; i < c->n_services; i++)
        tables += c->services[i].n_owned;
    r->jobs = calloc(tables + 1, sizeof *r->jobs);
    r->skipped = calloc(c->n_services + 1, sizeof *r->skipped);
    if (rc == EXITCODE_OK && (!r->jobs || !r->skipped))
        rc = EXITCODE_RUNTIME;
    if (owner && !svc)
        svc = owner;
    for (size_t i = 0; rc == EXITCODE_OK && i < c->n_services; i++)
        if ((!svc || svc == &c->services[i]) &&
            !add_service(r, &c->services[i], table ? &want : NULL))
            rc = EXITCODE_RUNTIME;
    cfg_table_clear(&want);
    return rc;
}

/* ------------------------------------------------------------ the source */

static PGconn *source_connect(const cfg *c)
{
    char err[1024];
    PGconn *conn = dbconn_open(c->source.dsn, "cleave verify", "the source",
                               err, sizeof err);
    if (!conn)
        fprintf(stderr, "cleave verify: %s\n", err);
    return conn;
}

/* reltuples of each table, -1 when unknown; a missing table is vtable's. */
static void read_estimates(vrun *r, PGconn *conn)
{
    for (size_t i = 0; i < r->n; i++) {
        const cfg_table *t = r->jobs[i].t;
        const char *params[] = {t->schema, t->name};
        PGresult *res = PQexecParams(conn,
            "SELECT c.reltuples FROM pg_class c JOIN pg_namespace n"
            " ON n.oid = c.relnamespace"
            " WHERE n.nspname = $1 AND c.relname = $2",
            2, NULL, params, NULL, NULL, 0);
        r->jobs[i].estimate = PQresultStatus(res) == PGRES_TUPLES_OK &&
                                      PQntuples(res) == 1
                                  ? strtod(PQgetvalue(res, 0, 0), NULL)
                                  : -1;
        PQclear(res);
    }
}

/*
 * Whether a cleave run streams the slot now: without one the targets do
 * not move, so a differing chunk is not waited for.
 */
static bool slot_streamed(const cfg *c, PGconn *conn)
{
    const char *params[] = {c->source.slot};
    PGresult *res = PQexecParams(conn,
        "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active",
        1, NULL, params, NULL, NULL, 0);
    bool on = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    PQclear(res);
    return on;
}

static int by_size(const void *a, const void *b)
{
    const vjob *x = a, *y = b;
    if (x->estimate != y->estimate)
        return x->estimate > y->estimate ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* ------------------------------------------------------------ output */

static const char *const KIND_TEXT[] = {
    [VTABLE_MISSING] = "missing in target",
    [VTABLE_EXTRA] = "extra in target",
    [VTABLE_DIFFERENT] = "different",
};

static void print_line(const char *state, const vjob *j, const char *rest)
{
    char name[512];
    FILE *f = fmemopen(name, sizeof name, "w");
    if (f) {
        vtable_put_name(f, j->t->schema);
        fputc('.', f);
        vtable_put_name(f, j->t->name);
        fclose(f);
        name[sizeof name - 1] = '\0';
    }
    printf("%-8s %-22s %-28s %s\n", state, j->svc->name, f ? name : "?", rest);
}

static void print_job(const vjob *j)
{
    const vtable_result *res = &j->res;
    char rest[256];
    if (res->failed) {
        print_line("error", j, res->error);
    } else if (res->n_diffs == 0) {
        int n = snprintf(rest, sizeof rest, "%lld rows", (long long)res->rows);
        if (res->rechecked && n > 0 && (size_t)n < sizeof rest)
            snprintf(rest + n, sizeof rest - (size_t)n,
                     ", %zu chunk(s) re-checked", res->rechecked);
        print_line("ok", j, rest);
    } else {
        snprintf(rest, sizeof rest, "%lld rows, %zu difference(s)",
                 (long long)res->rows, res->n_diffs);
        print_line("differs", j, rest);
        for (size_t i = 0; i < res->n_shown; i++)
            printf("  %s: %s\n", KIND_TEXT[res->diffs[i].kind],
                   res->diffs[i].what);
        if (res->n_diffs > res->n_shown)
            printf("  ... and %zu more\n", res->n_diffs - res->n_shown);
    }
    if (res->unsettled)
        printf("  unsettled: %zu row(s) changed between every two looks at "
               "the source: not compared, run verify again\n", res->unsettled);
    if (res->note[0])
        printf("  note: %s\n", res->note);
    fflush(stdout);
}

static void tally(vrun *r, const vjob *j)
{
    if (j->res.n_diffs) {
        r->differ++;
        r->diffs += j->res.n_diffs;
    } else if (j->res.failed) {
        r->failed++;
    } else {
        r->ok++;
    }
}

/* ------------------------------------------------------------ the run */

static void *worker(void *arg)
{
    vrun *r = arg;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        vjob *j = r->next < r->n ? &r->jobs[r->next++] : NULL;
        pthread_mutex_unlock(&r->mu);
        if (!j)
            return NULL;
        double start = clock_s();
        vtable_compare(&r->env, j->svc->target_postgres, &j->follow, j->t,
                       &j->res);
        j->seconds = clock_s() - start;
        pthread_mutex_lock(&r->mu);
        print_job(j);
        tally(r, j);
        r->finished++;
        pthread_cond_signal(&r->cv);
        pthread_mutex_unlock(&r->mu);
    }
}

/* Waits for the workers, saying how far they are every PROGRESS_MS. */
static void watch(vrun *r, double start)
{
    struct timespec next;
    clock_gettime(CLOCK_REALTIME, &next);
    pthread_mutex_lock(&r->mu);
    while (r->finished < r->n) {
        next.tv_sec += PROGRESS_MS / 1000;
        while (r->finished < r->n &&
               pthread_cond_timedwait(&r->cv, &r->mu, &next) == 0)
            ;
        if (r->finished < r->n)
            fprintf(stderr, "verify: %zu of %zu table(s) done, %llu rows "
                    "compared, %.0f s\n", r->finished, r->n,
                    (unsigned long long)atomic_load(&r->env.rows),
                    clock_s() - start);
    }
    pthread_mutex_unlock(&r->mu);
}

static size_t run_workers(vrun *r, double start)
{
    size_t want = r->config->copy_workers > 0 ? (size_t)r->config->copy_workers
                                              : 1;
    if (want > r->n)
        want = r->n;
    pthread_t *th = calloc(want + 1, sizeof *th);
    size_t started = 0;
    while (th && started < want &&
           pthread_create(&th[started], NULL, worker, r) == 0)
        started++;
    if (started == 0 && r->n) {
        fprintf(stderr, "cleave verify: cannot start a thread\n");
        free(th);
        return 0;
    }
    watch(r, start);
    for (size_t i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    free(th);
    return started;
}

static void print_summary(const vrun *r, double seconds)
{
    unsigned long long rows = atomic_load(&r->env.rows);
    printf("summary: %zu table(s): %zu ok, %zu differ (%zu difference(s)), "
           "%zu failed; %zu service(s) skipped; %llu source rows in %.1f s "
           "(%.0f rows/s)\n", r->n, r->ok, r->differ, r->diffs, r->failed,
           r->n_skipped, rows, seconds, seconds > 0 ? rows / seconds : 0.0);
}

static int compare_all(vrun *r, PGconn *src)
{
    const cfg *c = r->config;
    double start = clock_s();
    read_estimates(r, src);
    qsort(r->jobs, r->n, sizeof *r->jobs, by_size);
    bool streamed = slot_streamed(c, src);
    atomic_store(&r->env.no_catchup, !streamed);
    printf("verify: %zu table(s), %d at a time, chunks of %d rows\n", r->n,
           c->copy_workers, VERIFY_CHUNK_ROWS);
    if (!streamed)
        printf("note: no cleave run streams slot %s now: a difference is "
               "reported as the target stands, without waiting for it to "
               "catch up\n", c->source.slot);
    for (size_t i = 0; i < r->n_skipped; i++)
        printf("%-8s %-22s %s\n", "skipped", r->skipped[i]->name,
               "no PostgreSQL target");
    fflush(stdout);
    if (r->n && run_workers(r, start) == 0)
        return EXITCODE_RUNTIME;
    print_summary(r, clock_s() - start);
    return r->differ   ? EXITCODE_FOUND
           : r->failed ? EXITCODE_RUNTIME
                       : EXITCODE_OK;
}

static void free_run(vrun *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free_follow(&r->jobs[i].follow);
        vtable_result_clear(&r->jobs[i].res);
    }
    free(r->jobs);
    free(r->skipped);
    journal_free(r->moves);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
}

int verify_run(const cfg *config, const char *service, const char *table)
{
    vrun r = {.config = config};
    char why[512];
    r.env.source_dsn = config->source.dsn;
    /* A journal verify cannot read says nothing: every service forward. */
    r.moves = journal_open(config, why, sizeof why);
    atomic_init(&r.env.rows, 0);
    atomic_init(&r.env.no_catchup, false);
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    int rc = select_jobs(&r, service, table);
    PGconn *src = rc == 0 ? source_connect(config) : NULL;
    if (rc == 0)
        rc = src ? compare_all(&r, src) : 1;
    PQfinish(src);
    free_run(&r);
    return rc;
}
