/* reverse: a service's reverse stream; see reverse.h. */
#include "daemon/reverse.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "daemon/snapshot.h"
#include "daemon/source.h"

#define NAMEDATALEN_MAX 63
#define SLOT_RELEASE_WAIT_MS 10000   /* a stopped walsender lets go */

typedef struct reverse_block {
    cfg c;                   /* first: reverse_cfg_free takes the cfg */
    cfg_service svc;
    cfg_table *kept;         /* the owned tables it streams back */
} reverse_block;

/* Lower case letters, digits and '_' (what a slot name may hold). */
static char *slot_name(const char *slot, const char *service)
{
    char *name;
    if (asprintf(&name, "%s_rev_%s", slot, service) < 0)
        return NULL;
    for (char *p = name; *p; p++)
        *p = isalnum((unsigned char)*p) ? (char)tolower((unsigned char)*p)
                                        : '_';
    if (strlen(name) > NAMEDATALEN_MAX)
        name[NAMEDATALEN_MAX] = '\0';
    return name;
}

/* A directory name: the service's name with anything odd made '_'. */
static char *state_dir_of(const char *dir, const char *service)
{
    char *path;
    if (asprintf(&path, "%s/reverse-%s", dir, service) < 0)
        return NULL;
    for (char *p = path + strlen(dir) + 1; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
            *p = '_';
    return path;
}

/* The owned tables not left out, borrowed from s. */
static bool keep_tables(reverse_block *b, const cfg_service *s,
                        const bool *left_out)
{
    b->kept = calloc(s->n_owned ? s->n_owned : 1, sizeof *b->kept);
    if (!b->kept)
        return false;
    b->svc.n_owned = 0;
    for (size_t j = 0; j < s->n_owned; j++)
        if (!left_out || !left_out[j])
            b->kept[b->svc.n_owned++] = s->owned[j];
    b->svc.owned = b->kept;
    return true;
}

cfg *reverse_cfg_new(const cfg *config, size_t svc, const bool *left_out)
{
    const cfg_service *s = &config->services[svc];
    reverse_block *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    cfg *c = &b->c;
    *c = *config;
    b->svc = *s;
    if (!keep_tables(b, s, left_out)) {
        free(b);
        return NULL;
    }
    b->svc.target_postgres = config->source.dsn;
    b->svc.target_kafka = false;
    b->svc.n_messages = 0;
    c->services = &b->svc;
    c->n_services = 1;
    c->has_kafka = false;
    c->source.dsn = s->target_postgres;
    c->source.loop_prevention = true;
    /*
     * source.failover_slot is about the shared database's standbys; the
     * service's database may run a version without failover slots (16 or
     * older), and the reverse slot lives only until `complete`.
     */
    c->source.failover_slot = false;
    c->name = NULL;
    if (asprintf(&c->name, "%s_reverse", config->name) < 0)
        c->name = NULL;
    c->source.slot = slot_name(config->source.slot, s->name);
    c->source.publication = c->source.slot ? strdup(c->source.slot) : NULL;
    c->state_dir = state_dir_of(config->state_dir, s->name);
    if (!c->name || !c->source.slot || !c->source.publication ||
        !c->state_dir) {
        reverse_cfg_free(c);
        return NULL;
    }
    return c;
}

char *reverse_origin_name(const cfg *config, size_t svc)
{
    cfg *rc = reverse_cfg_new(config, svc, NULL);
    char *name = rc ? cfg_origin_name(rc, rc->services) : NULL;
    reverse_cfg_free(rc);
    return name;
}

char *reverse_slot_name(const cfg *config, size_t svc)
{
    return slot_name(config->source.slot, config->services[svc].name);
}

void reverse_cfg_free(cfg *rc)
{
    if (!rc)
        return;
    free(rc->name);
    free(rc->source.slot);
    free(rc->source.publication);
    free(rc->state_dir);
    free(((reverse_block *)rc)->kept);
    free(rc);
}

static bool never_stop(void *arg)
{
    (void)arg;
    return false;
}

bool reverse_prepare(const cfg *rc, char *err, size_t errlen)
{
    source *src = source_new(rc, &rc->source);
    if (!src) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    bool ok = source_prepare(src, never_stop, NULL, err, errlen);
    snap_release(source_take_snapshot(src));
    source_free(src);
    return ok;
}

/* One statement; false with err naming `what`. */
static bool run(PGconn *c, const char *sql, const char *param,
                const char *what, char *err, size_t errlen)
{
    PGresult *res = PQexecParams(c, sql, param ? 1 : 0, NULL, &param, NULL,
                                 NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        snprintf(err, errlen, "%s: %s", what, PQerrorMessage(c));
    PQclear(res);
    return ok;
}

/* The walsender of a stopped stream may still hold the slot a moment. */
static bool drop_slot(PGconn *c, const char *slot, char *err, size_t errlen)
{
    int64_t deadline = clock_ms() + SLOT_RELEASE_WAIT_MS;
    for (;;) {
        if (run(c, "SELECT pg_drop_replication_slot(slot_name) FROM "
                "pg_replication_slots WHERE slot_name = $1", slot,
                "dropping the reverse slot", err, errlen))
            return true;
        if (clock_ms() > deadline)
            return false;
        struct timespec ts = {0, 50 * 1000000};
        nanosleep(&ts, NULL);  /* retried: the server gives no wake-up */
    }
}

bool reverse_drop(const cfg *rc, PGconn *svcdb, PGconn *shared, char *err,
                  size_t errlen)
{
    const char *pub = rc->source.publication;
    char *ident = PQescapeIdentifier(svcdb, pub, strlen(pub));
    char *sql = NULL;
    if (!ident || asprintf(&sql, "DROP PUBLICATION IF EXISTS %s", ident) < 0)
        sql = NULL;
    PQfreemem(ident);
    char *origin = cfg_origin_name(rc, &rc->services[0]);
    bool ok = sql && origin &&
              drop_slot(svcdb, rc->source.slot, err, errlen) &&
              run(svcdb, sql, NULL, "dropping the reverse publication", err,
                  errlen) &&
              run(shared, "SELECT pg_replication_origin_drop(roname) FROM "
                  "pg_replication_origin WHERE roname = $1", origin,
                  "dropping the reverse origin", err, errlen);
    if (!sql || !origin)
        snprintf(err, errlen, "out of memory");
    free(sql);
    free(origin);
    if (ok)
        log_info("event=reverse_dropped slot=%s", rc->source.slot);
    return ok;
}
