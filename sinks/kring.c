/* kring: the Kafka sink's transactions in flight; see kring.h. */
#include "sinks/kring.h"

#include <stdlib.h>

static kring_txn *at(kring *r, uint64_t seq)
{
    if (seq < r->first || seq - r->first >= r->n)
        return NULL;
    return &r->v[(r->head + (seq - r->first)) % r->cap];
}

static bool grow(kring *r)
{
    size_t ncap = r->cap ? r->cap * 2 : 64;
    kring_txn *v = malloc(ncap * sizeof *v);
    if (!v)
        return false;
    for (size_t i = 0; i < r->n; i++)
        v[i] = r->v[(r->head + i) % r->cap];
    free(r->v);
    r->v = v;
    r->cap = ncap;
    r->head = 0;
    return true;
}

bool kring_push(kring *r, lsn_t commit)
{
    if (r->n == r->cap && !grow(r))
        return false;
    r->seq = r->first + r->n;
    r->v[(r->head + r->n++) % r->cap] = (kring_txn){.commit = commit};
    r->msgs = 0;
    return true;
}

void kring_close(kring *r, lsn_t end)
{
    kring_txn *t = at(r, r->seq);
    if (t && !t->closed) {
        t->pending += (int64_t)r->msgs;
        t->end = end;
        t->closed = true;
    }
    r->msgs = 0;
}

kring_txn *kring_find(kring *r, uint64_t low, uint64_t mask)
{
    return at(r, r->first + ((low - r->first) & mask));
}

void kring_report(kring_txn *t, bool refused)
{
    t->pending--;
    t->refused |= refused;
}

void kring_advance(kring *r)
{
    while (r->n > 0) {
        kring_txn *t = &r->v[r->head];
        if (!t->closed || t->pending > 0 || t->refused)
            return;
        if (t->end > r->acked) {
            r->acked = t->end;
            r->acked_commit = t->commit;
        }
        r->head = (r->head + 1) % r->cap;
        r->n--;
        r->first++;
    }
}

void kring_reset(kring *r)
{
    r->first += r->n;
    r->n = r->head = 0;
}

void kring_free(kring *r)
{
    free(r->v);
    *r = (kring){0};
}
