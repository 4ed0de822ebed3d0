/* keeper: fences and sequences between moves; see keeper.h. */
#include "daemon/keeper.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "common/dbconn.h"
#include "common/log.h"
#include "sinks/pgfence.h"
#include "sinks/pgseq.h"

typedef struct keep_state {
    PGconn *svcdb;
    char **seqs;
    size_t nseqs;
    bool seqs_known;
    char last_error[512];
} keep_state;

struct keeper {
    const cfg *config;
    PGconn *shared;
    keep_state *svc;
};

keeper *keeper_new(const cfg *config)
{
    keeper *k = calloc(1, sizeof *k);
    size_t n = config->n_services ? config->n_services : 1;
    if (!k || !(k->svc = calloc(n, sizeof *k->svc))) {
        free(k);
        return NULL;
    }
    k->config = config;
    return k;
}

void keeper_free(keeper *k)
{
    if (!k)
        return;
    for (size_t i = 0; i < k->config->n_services; i++) {
        PQfinish(k->svc[i].svcdb);
        pgseq_free_names(k->svc[i].seqs, k->svc[i].nseqs);
    }
    PQfinish(k->shared);
    free(k->svc);
    free(k);
}

/* A connection kept open, remade when it broke. */
static PGconn *kept(PGconn **c, const char *dsn, char *err, size_t errlen)
{
    if (*c && PQstatus(*c) == CONNECTION_OK)
        return *c;
    PQfinish(*c);
    *c = dbconn_open(dsn, "cleave-keeper", "a database to keep", err, errlen);
    if (*c && !dbconn_lock_timeout(*c, KEEPER_LOCK_TIMEOUT_MS, err, errlen)) {
        PQfinish(*c);
        *c = NULL;
    }
    return *c;
}

/*
 * Looked at each turn, not once: a fence lost since (dropped or disabled
 * by hand, or a partition made since) is set again. Set only when not
 * all there: setting takes SHARE ROW EXCLUSIVE table by table, which
 * would queue the sink behind it. `on` is fenced for writes to `owner`.
 */
static bool keep_fence(const cfg_service *s, const cfg_table *t, size_t n,
                       PGconn *on, PGconn *owner, char *err, size_t errlen)
{
    if (n == 0 || pgfence_state(on, t, n, err, errlen) == PGFENCE_ALL)
        return true;
    if (!pgfence_set(on, t, n, PQdb(owner), err, errlen))
        return false;
    log_info("event=fenced service=%s database=%s", s->name, PQdb(on));
    return true;
}

static bool among(const cfg_table *t, const cfg_service *moved)
{
    for (size_t i = 0; i < moved->n_owned; i++)
        if (strcmp(t->schema, moved->owned[i].schema) == 0 &&
            strcmp(t->name, moved->owned[i].name) == 0)
            return true;
    return false;
}

/*
 * After a cut-over: the moved tables fenced on the shared side, those
 * given to the service since (written there) in its own database.
 */
static bool keep_reverse_fences(const cfg_service *s, const cfg_service *moved,
                                PGconn *own, PGconn *shared, char *err,
                                size_t errlen)
{
    cfg_table *given = calloc(s->n_owned ? s->n_owned : 1, sizeof *given);
    size_t n = 0;
    for (size_t i = 0; given && i < s->n_owned; i++)
        if (!among(&s->owned[i], moved))
            given[n++] = s->owned[i];
    bool ok = given &&
              keep_fence(s, moved->owned, moved->n_owned, shared, own, err,
                         errlen) &&
              keep_fence(s, given, n, own, shared, err, errlen);
    if (!given)
        snprintf(err, errlen, "out of memory");
    free(given);
    return ok;
}

static bool keep_one(keeper *k, size_t svc, const cfg_service *moved,
                     char *err, size_t errlen)
{
    const cfg_service *s = &k->config->services[svc];
    keep_state *ks = &k->svc[svc];
    PGconn *shared = kept(&k->shared, k->config->source.dsn, err, errlen);
    PGconn *own = shared ? kept(&ks->svcdb, s->target_postgres, err, errlen)
                         : NULL;
    if (!own || !(moved ? keep_reverse_fences(s, moved, own, shared, err,
                                              errlen)
                        : keep_fence(s, s->owned, s->n_owned, own, shared, err,
                                     errlen)))
        return false;
    if (!ks->seqs_known &&
        !(ks->seqs_known = pgseq_of_tables(shared, s->owned, s->n_owned,
                                           &ks->seqs, &ks->nseqs, err, errlen)))
        return false;
    int raised;
    return pgseq_sync(moved ? own : shared, moved ? shared : own, ks->seqs,
                      ks->nseqs, &raised, err, errlen);
}

void keeper_keep(keeper *k, size_t svc, const cfg_service *moved)
{
    char err[1024] = "";
    keep_state *ks = &k->svc[svc];
    if (!keep_one(k, svc, moved, err, sizeof err) &&
        strcmp(err, ks->last_error) != 0)
        log_warning("event=keep_failed service=%s error=\"%s\"",
                    k->config->services[svc].name, err);
    snprintf(ks->last_error, sizeof ks->last_error, "%s", err);
}
