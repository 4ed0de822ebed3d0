/* pgrun: the PostgreSQL sink's open runs; see pgrun.h. */
#include "sinks/pgrun.h"

#include <string.h>

_Static_assert(PGRUN_ROWS <= 64, "a run's rows are bits of a uint64_t");

/* FNV-1a over the key columns' text, each ended by a byte no text has. */
uint64_t pgrun_key(const sink_event *ev)
{
    const sink_value *v = ev->old_vals ? ev->old_vals : ev->new_vals;
    uint64_t h = 1469598103934665603ULL;
    for (uint16_t i = 0; i < ev->rel->ncols; i++) {
        if (!ev->rel->cols[i].key)
            continue;
        for (uint32_t j = 0; j < v[i].len; j++)
            h = (h ^ (unsigned char)v[i].data[j]) * 1099511628211ULL;
        h = (h ^ 0x100) * 1099511628211ULL;
    }
    return h;
}

/*
 * Changes of other keys commute: a statement of one kind cannot meet the
 * row a statement of another kind changes. Without a key (FULL,
 * NOTHING) two changes may meet one row unseen.
 */
bool pgrun_keyed(const sink_rel *rel)
{
    return rel->replident == 'd' || rel->replident == 'i';
}

pgrun *pgrun_find(pgrun_set *s, const sink_rel *rel, char op)
{
    for (int i = 0; s->open > 0 && i < PGRUN_OPEN; i++)
        if (s->runs[i].rel == rel && s->runs[i].op == op)
            return &s->runs[i];
    return NULL;
}

bool pgrun_has_key(const pgrun *r, uint64_t key)
{
    for (uint16_t i = 0; i < r->n; i++)
        if (r->keys[i] == key)
            return true;
    return false;
}

static bool older(const pgrun *a, const pgrun *than)
{
    return !than || a->seq < than->seq;
}

pgrun *pgrun_in_the_way(pgrun_set *s, const sink_rel *rel, char op,
                        uint64_t key)
{
    bool keyed = pgrun_keyed(rel);
    pgrun *found = NULL;
    for (int i = 0; s->open > 0 && i < PGRUN_OPEN; i++) {
        pgrun *r = &s->runs[i];
        if (r->rel == rel && r->op != op && older(r, found) &&
            (!keyed || pgrun_has_key(r, key)))
            found = r;
    }
    return found;
}

pgrun *pgrun_oldest(pgrun_set *s, const sink_rel *rel)
{
    pgrun *found = NULL;
    for (int i = 0; s->open > 0 && i < PGRUN_OPEN; i++) {
        pgrun *r = &s->runs[i];
        if (r->rel && (!rel || r->rel == rel) && older(r, found))
            found = r;
    }
    return found;
}

bool pgrun_other_version(const pgrun_set *s, const sink_rel *rel)
{
    for (int i = 0; s->open > 0 && i < PGRUN_OPEN; i++) {
        const sink_rel *r = s->runs[i].rel;
        if (r && r != rel && (r->oid == rel->oid ||
                              (strcmp(r->name, rel->name) == 0 &&
                               strcmp(r->schema, rel->schema) == 0)))
            return true;
    }
    return false;
}

pgrun *pgrun_open(pgrun_set *s, sink_rel *rel, char op, struct pgstmt *st,
                  bool owned)
{
    for (int i = 0; i < PGRUN_OPEN; i++) {
        pgrun *r = &s->runs[i];
        if (r->rel)
            continue;
        r->rel = rel;
        r->st = st;
        r->op = op;
        r->owned = owned;
        r->n = 0;
        r->seq = s->seq++;
        s->open++;
        return r;
    }
    return NULL;
}

void pgrun_add(pgrun_set *s, pgrun *r, sink_event *row, uint64_t key)
{
    if (r->owned) {
        r->mine |= (uint64_t)1 << r->n;
        s->owned_bytes += row->size;
    }
    r->rows[r->n] = row;
    r->keys[r->n++] = key;
}

int pgrun_key_at(const pgrun *r, uint64_t key)
{
    for (int i = r->n - 1; i >= 0; i--)
        if (r->keys[i] == key)
            return i;
    return -1;
}

static void drop_row(pgrun_set *s, pgrun *r, int i)
{
    if (!(r->mine & (uint64_t)1 << i))
        return;
    s->owned_bytes -= r->rows[i]->size;
    sink_event_free(r->rows[i]);
}

void pgrun_replace(pgrun_set *s, pgrun *r, int at, sink_event *row)
{
    drop_row(s, r, at);
    r->rows[at] = row;
    r->mine |= (uint64_t)1 << at;
    s->owned_bytes += row->size;
}

void pgrun_close(pgrun_set *s, pgrun *r)
{
    for (int i = 0; i < r->n; i++)
        drop_row(s, r, i);
    r->mine = 0;
    r->rel = NULL;
    r->st = NULL;
    r->n = 0;
    s->open--;
}

void pgrun_clear(pgrun_set *s)
{
    for (int i = 0; s->open > 0 && i < PGRUN_OPEN; i++)
        if (s->runs[i].rel)
            pgrun_close(s, &s->runs[i]);
}
