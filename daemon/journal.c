/* journal: each service's move, in state_dir; see journal.h. */
#include "daemon/journal.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/statefile.h"

struct journal {
    const cfg *config;
    char *path;
    journal_entry *e;
    json_t **moved;          /* per service: a completed move's tables */
};

static const char *const dir_names[] = {"forward", "reverse", "complete"};
static const char *const move_names[] = {"idle", "cutover", "rollback",
                                           "complete"};
static const char *const step_names[] = {"prepare", "switch", "unfence"};

const char *journal_dir_name(journal_dir d)
{
    return dir_names[d];
}

const char *journal_move_name(journal_move m)
{
    return move_names[m];
}

/* The index of `name` in names, or `none` when absent or unknown. */
static int lookup(json_t *o, const char *key, const char *const *names,
                  int n, int none)
{
    const char *v = json_string_value(json_object_get(o, key));
    for (int i = 0; v && i < n; i++)
        if (strcmp(v, names[i]) == 0)
            return i;
    return none;
}

static void load_entry(journal_entry *e, json_t *o)
{
    e->dir = (journal_dir)lookup(o, "direction", dir_names, 3, 0);
    e->move = (journal_move)lookup(o, "move", move_names, 4, 0);
    e->step = (journal_step)lookup(o, "step", step_names, 3, 0);
    json_t *p = json_object_get(o, "pause_ms");
    e->pause_ms = json_is_number(p) ? json_number_value(p) : -1;
}

static bool load(journal *j, char *err, size_t errlen)
{
    json_error_t je;
    json_t *doc = json_load_file(j->path, 0, &je);
    if (!doc) {
        if (access(j->path, F_OK) != 0 && errno == ENOENT)
            return true;
        snprintf(err, errlen, "%s: %s", j->path, je.text);
        return false;
    }
    json_t *svcs = json_object_get(doc, "services");
    for (size_t i = 0; i < j->config->n_services; i++) {
        json_t *o = json_object_get(svcs, j->config->services[i].name);
        if (!o)
            continue;
        load_entry(&j->e[i], o);
        json_t *moved = json_object_get(o, "moved_tables");
        if (json_is_array(moved))
            j->moved[i] = json_incref(moved);
    }
    json_decref(doc);
    return true;
}

journal *journal_open(const cfg *config, char *err, size_t errlen)
{
    journal *j = calloc(1, sizeof *j);
    if (!j || asprintf(&j->path, "%s/moves.json", config->state_dir) < 0 ||
        !(j->e = calloc(config->n_services + 1, sizeof *j->e)) ||
        !(j->moved = calloc(config->n_services + 1, sizeof *j->moved))) {
        snprintf(err, errlen, "out of memory");
        if (j)
            j->path = NULL;
        journal_free(j);
        return NULL;
    }
    j->config = config;
    for (size_t i = 0; i < config->n_services; i++)
        j->e[i].pause_ms = -1;
    if (!load(j, err, errlen)) {
        journal_free(j);
        return NULL;
    }
    return j;
}

void journal_free(journal *j)
{
    if (!j)
        return;
    for (size_t i = 0; j->moved && j->config && i < j->config->n_services;
         i++)
        json_decref(j->moved[i]);
    free(j->path);
    free(j->e);
    free(j->moved);
    free(j);
}

journal_entry journal_get(const journal *j, size_t svc)
{
    return j->e[svc];
}

static json_t *entry_json(const journal_entry *e, json_t *moved)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:o}", "direction",
                          dir_names[e->dir], "move", move_names[e->move],
                          "step", step_names[e->step], "pause_ms",
                          e->pause_ms >= 0 ? json_real(e->pause_ms)
                                           : json_null());
    if (o && moved && json_object_set(o, "moved_tables", moved) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* svc's owned tables as [{"schema": S, "table": T}, ...]; NULL: no memory. */
static json_t *owned_json(const cfg_service *s)
{
    json_t *a = json_array();
    for (size_t k = 0; a && k < s->n_owned; k++)
        if (json_array_append_new(a, json_pack("{s:s, s:s}", "schema",
                                               s->owned[k].schema, "table",
                                               s->owned[k].name)) != 0) {
            json_decref(a);
            a = NULL;
        }
    return a;
}

static bool was_moved(json_t *moved, const cfg_table *t)
{
    size_t k;
    json_t *rec;
    json_array_foreach(moved, k, rec) {
        const char *s = json_string_value(json_object_get(rec, "schema"));
        const char *n = json_string_value(json_object_get(rec, "table"));
        if (s && n && strcmp(s, t->schema) == 0 && strcmp(n, t->name) == 0)
            return true;
    }
    return false;
}

const cfg_table *journal_not_moved(const journal *j, size_t svc, size_t *from,
                                   char *why, size_t len)
{
    const cfg_service *s = &j->config->services[svc];
    const cfg_table *t = NULL;
    for (; !t && j->e[svc].dir == JOURNAL_COMPLETE && j->moved[svc] &&
           *from < s->n_owned; (*from)++)
        if (!was_moved(j->moved[svc], &s->owned[*from]))
            t = &s->owned[*from];
    if (t)
        snprintf(why, len, "%s.%s was given to %s after its move was "
                 "complete: cleave cannot move another table into it (its "
                 "database is the only writer of what moved), and copies "
                 "none; take the table out of its owned_tables, or give it "
                 "to a service whose move is not complete", t->schema,
                 t->name, s->name);
    return t;
}

static char *render(const journal *j)
{
    json_t *svcs = json_object();
    for (size_t i = 0; svcs && i < j->config->n_services; i++)
        if (json_object_set_new(svcs, j->config->services[i].name,
                                entry_json(&j->e[i], j->moved[i])) != 0) {
            json_decref(svcs);
            svcs = NULL;
        }
    json_t *doc = svcs ? json_pack("{s:o}", "services", svcs) : NULL;
    char *text = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    json_decref(doc);
    return text;
}

/*
 * The tables a move switches are its owned tables when the direction
 * leaves forward (a journal written before it kept them only at
 * complete: then); a rollback forgets them.
 */
static json_t *moved_after(const journal *j, size_t svc, journal_dir from,
                           journal_dir to, bool *changed)
{
    bool leaving = from == JOURNAL_FORWARD && to != JOURNAL_FORWARD;
    bool older = to == JOURNAL_COMPLETE && from != JOURNAL_COMPLETE &&
                 !j->moved[svc];
    *changed = leaving || older || (to == JOURNAL_FORWARD && j->moved[svc]);
    if (!*changed)
        return j->moved[svc];
    return to == JOURNAL_FORWARD ? NULL
                                 : owned_json(&j->config->services[svc]);
}

bool journal_set(journal *j, size_t svc, journal_entry e, char *err,
                 size_t errlen)
{
    journal_entry old = j->e[svc];
    json_t *old_moved = j->moved[svc];
    bool changed;
    json_t *moved = moved_after(j, svc, old.dir, e.dir, &changed);
    j->e[svc] = e;
    j->moved[svc] = moved;
    char *text = changed && e.dir != JOURNAL_FORWARD && !moved ? NULL
                                                               : render(j);
    bool ok = text && statefile_write(j->path, text, strlen(text), err, errlen);
    if (!text)
        snprintf(err, errlen, "out of memory");
    if (!ok) {
        j->e[svc] = old;
        if (changed)
            json_decref(moved);
        j->moved[svc] = old_moved;
    } else if (changed) {
        json_decref(old_moved);
    }
    free(text);
    return ok;
}

int journal_moved(const journal *j, size_t svc, const cfg_table *t)
{
    if (j->e[svc].dir == JOURNAL_FORWARD || !j->moved[svc])
        return -1;
    return was_moved(j->moved[svc], t);
}
