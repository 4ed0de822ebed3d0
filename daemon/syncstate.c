/* syncstate: the initial sync's progress on disk; see syncstate.h. */
#include "daemon/syncstate.h"
#include "common/statefile.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#define STATE_FILE "initial_sync.json"

typedef struct table_rec {
    sync_table_state state;
    lsn_t lsn;
} table_rec;

typedef struct service_rec {
    table_rec *tables;        /* config order */
    bool finished;
    unsigned forget;          /* sink kinds (1 << id) to forget: see .h */
} service_rec;

/* The sink kinds a new slot's services forget, by sink_kind id. */
static const char *const kind_names[] = {"postgres", "kafka"};
#define N_KINDS (sizeof kind_names / sizeof *kind_names)

struct syncstate {
    const cfg *config;
    const char *slot;         /* the progress is this slot's snapshot's */
    char *path;
    pthread_mutex_t mu;
    service_rec *svc;
    atomic_uint_least64_t generation;
};

static const char *state_word(sync_table_state s)
{
    return s == SYNC_DONE ? "done" : s == SYNC_PENDING ? "pending" : "unknown";
}

/* The file's record of one table, or NULL. */
static json_t *find_table(json_t *doc, const char *svc, const cfg_table *t)
{
    json_t *tables = json_object_get(json_object_get(
        json_object_get(doc, "services"), svc), "tables");
    size_t i;
    json_t *rec;
    json_array_foreach(tables, i, rec) {
        const char *s = json_string_value(json_object_get(rec, "schema"));
        const char *n = json_string_value(json_object_get(rec, "table"));
        if (s && n && strcmp(s, t->schema) == 0 && strcmp(n, t->name) == 0)
            return rec;
    }
    return NULL;
}

static void load_service(syncstate *ss, json_t *doc, size_t i)
{
    const cfg_service *svc = &ss->config->services[i];
    bool all_done = true;
    for (size_t j = 0; j < svc->n_owned; j++) {
        json_t *rec = find_table(doc, svc->name, &svc->owned[j]);
        const char *st = json_string_value(json_object_get(rec, "state"));
        const char *lsn = json_string_value(json_object_get(rec, "lsn"));
        table_rec *t = &ss->svc[i].tables[j];
        if (st && strcmp(st, "done") == 0 && lsn && lsn_parse(lsn, &t->lsn))
            t->state = SYNC_DONE;
        else if (st && strcmp(st, "pending") == 0)
            t->state = SYNC_PENDING;
        all_done = all_done && t->state == SYNC_DONE;
    }
    json_t *finished = json_object_get(json_object_get(
        json_object_get(doc, "services"), svc->name), "finished");
    ss->svc[i].finished = all_done && json_is_true(finished);
    json_t *forget = json_object_get(json_object_get(
        json_object_get(doc, "services"), svc->name), "forget");
    size_t k;
    json_t *name;
    json_array_foreach(forget, k, name)
        for (unsigned id = 0; id < N_KINDS; id++)
            if (json_is_string(name) &&
                strcmp(json_string_value(name), kind_names[id]) == 0)
                ss->svc[i].forget |= 1u << id;
}

static bool load(syncstate *ss, char *err, size_t errlen)
{
    json_error_t je;
    json_t *doc = json_load_file(ss->path, 0, &je);
    if (!doc) {
        if (access(ss->path, F_OK) != 0)
            return true;
        snprintf(err, errlen, "%s:%d:%d: %s", ss->path, je.line, je.column,
                 je.text);
        return false;
    }
    const char *slot = json_string_value(json_object_get(doc, "slot"));
    /* Another slot's progress says nothing about this one's stream. */
    if (slot && strcmp(slot, ss->slot) == 0)
        for (size_t i = 0; i < ss->config->n_services; i++)
            load_service(ss, doc, i);
    json_decref(doc);
    return true;
}

static json_t *service_json(const syncstate *ss, size_t i)
{
    const cfg_service *svc = &ss->config->services[i];
    json_t *tables = json_array();
    for (size_t j = 0; j < svc->n_owned; j++) {
        const table_rec *t = &ss->svc[i].tables[j];
        char lsn[LSN_STRLEN];
        json_array_append_new(tables, json_pack("{s:s, s:s, s:s, s:s}",
            "schema", svc->owned[j].schema, "table", svc->owned[j].name,
            "state", state_word(t->state), "lsn", lsn_format(t->lsn, lsn)));
    }
    json_t *forget = json_array();
    for (unsigned id = 0; id < N_KINDS; id++)
        if (ss->svc[i].forget & (1u << id))
            json_array_append_new(forget, json_string(kind_names[id]));
    return json_pack("{s:b, s:o, s:o}", "finished", ss->svc[i].finished,
                     "tables", tables, "forget", forget);
}

/* Under mu. */
static bool save(syncstate *ss, char *err, size_t errlen)
{
    json_t *services = json_object();
    for (size_t i = 0; i < ss->config->n_services; i++)
        json_object_set_new(services, ss->config->services[i].name,
                            service_json(ss, i));
    json_t *doc = json_pack("{s:s, s:o}", "slot", ss->slot,
                            "services", services);
    char *text = doc ? json_dumps(doc, JSON_INDENT(1)) : NULL;
    json_decref(doc);
    if (!text) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    bool ok = statefile_write(ss->path, text, strlen(text), err, errlen);
    free(text);
    atomic_fetch_add(&ss->generation, 1);
    return ok;
}

syncstate *syncstate_open(const cfg *config, const char *slot, bool fresh,
                          char *err, size_t errlen)
{
    syncstate *ss = calloc(1, sizeof *ss);
    if (!ss || asprintf(&ss->path, "%s/%s", config->state_dir, STATE_FILE) < 0 ||
        !(ss->svc = calloc(config->n_services ? config->n_services : 1,
                           sizeof *ss->svc))) {
        snprintf(err, errlen, "out of memory");
        if (ss)
            ss->path = NULL;
        syncstate_free(ss);
        return NULL;
    }
    ss->config = config;
    ss->slot = slot;
    pthread_mutex_init(&ss->mu, NULL);
    for (size_t i = 0; i < config->n_services; i++) {
        ss->svc[i].tables = calloc(config->services[i].n_owned,
                                   sizeof(table_rec));
        if (!ss->svc[i].tables) {
            snprintf(err, errlen, "out of memory");
            syncstate_free(ss);
            return NULL;
        }
    }
    for (size_t i = 0; fresh && i < config->n_services; i++)
        ss->svc[i].forget = (1u << N_KINDS) - 1;
    /* Saved at once: an earlier slot's file must not outlive a new slot. */
    if (fresh ? !save(ss, err, errlen) : !load(ss, err, errlen)) {
        syncstate_free(ss);
        return NULL;
    }
    return ss;
}

void syncstate_free(syncstate *ss)
{
    if (!ss)
        return;
    for (size_t i = 0; ss->svc && ss->config && i < ss->config->n_services; i++)
        free(ss->svc[i].tables);
    free(ss->svc);
    free(ss->path);
    if (ss->config)
        pthread_mutex_destroy(&ss->mu);
    free(ss);
}

sync_table_state syncstate_table(syncstate *ss, size_t svc, size_t table,
                                 lsn_t *lsn)
{
    pthread_mutex_lock(&ss->mu);
    table_rec t = ss->svc[svc].tables[table];
    pthread_mutex_unlock(&ss->mu);
    if (lsn)
        *lsn = t.lsn;
    return t.state;
}

int syncstate_find(const syncstate *ss, size_t svc, const char *schema,
                   const char *name)
{
    const cfg_service *s = &ss->config->services[svc];
    for (size_t j = 0; j < s->n_owned; j++)
        if (strcmp(s->owned[j].schema, schema) == 0 &&
            strcmp(s->owned[j].name, name) == 0)
            return (int)j;
    return -1;
}

bool syncstate_finished(syncstate *ss, size_t svc)
{
    pthread_mutex_lock(&ss->mu);
    bool f = ss->svc[svc].finished;
    pthread_mutex_unlock(&ss->mu);
    return f;
}

uint64_t syncstate_generation(syncstate *ss)
{
    return atomic_load(&ss->generation);
}

bool syncstate_set_table(syncstate *ss, size_t svc, size_t table,
                         sync_table_state state, lsn_t lsn, char *err,
                         size_t errlen)
{
    pthread_mutex_lock(&ss->mu);
    ss->svc[svc].tables[table] = (table_rec){state, lsn};
    if (state != SYNC_DONE)
        ss->svc[svc].finished = false;
    bool ok = save(ss, err, errlen);
    pthread_mutex_unlock(&ss->mu);
    return ok;
}

bool syncstate_set_finished(syncstate *ss, size_t svc, bool finished,
                            char *err, size_t errlen)
{
    pthread_mutex_lock(&ss->mu);
    ss->svc[svc].finished = finished;
    bool ok = save(ss, err, errlen);
    pthread_mutex_unlock(&ss->mu);
    return ok;
}

bool syncstate_must_forget(syncstate *ss, size_t svc, int kind)
{
    pthread_mutex_lock(&ss->mu);
    bool must = kind >= 0 && (unsigned)kind < N_KINDS &&
                (ss->svc[svc].forget & (1u << kind));
    pthread_mutex_unlock(&ss->mu);
    return must;
}

bool syncstate_reset(const cfg *config, const char *slot, char *err,
                     size_t errlen)
{
    syncstate *ss = syncstate_open(config, slot, true, err, errlen);
    bool ok = ss != NULL;
    syncstate_free(ss);
    return ok;
}

bool syncstate_forget_all(syncstate *ss, char *err, size_t errlen)
{
    pthread_mutex_lock(&ss->mu);
    for (size_t i = 0; i < ss->config->n_services; i++)
        ss->svc[i].forget = (1u << N_KINDS) - 1;
    bool ok = save(ss, err, errlen);
    pthread_mutex_unlock(&ss->mu);
    return ok;
}

bool syncstate_forgotten(syncstate *ss, size_t svc, int kind, char *err,
                         size_t errlen)
{
    pthread_mutex_lock(&ss->mu);
    ss->svc[svc].forget &= ~(1u << kind);
    bool ok = save(ss, err, errlen);
    pthread_mutex_unlock(&ss->mu);
    return ok;
}
