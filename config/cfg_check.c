/*
 * cfg_check: the rules that look at more than one value: every service has
 * somewhere to send its changes, kafka: true has a kafka section to use,
 * and no table has two owners (two services applying the same rows would
 * fight over them).
 */
#include <string.h>

#include "config/cfg_internal.h"

bool cfg_check_target(cfg_loader *ld, const cfg_section *sec, void *base,
                      const char *label, const yaml_node_t *map,
                      const cfg_seen *seen)
{
    const cfg_service *svc = base;
    const yaml_node_t *kafka = seen->key[cfg_key_index(sec, "kafka")];

    if (!svc->target_postgres && !svc->target_kafka)
        return cfg_fail(ld, cfg_node_pos(map), "service '%s' has no target; "
                        "expected postgres: <connection string> and/or "
                        "kafka: true in %s", svc->name, label);
    if (svc->target_kafka && !ld->c->has_kafka)
        return cfg_fail(ld, cfg_node_pos(kafka), "service '%s' publishes to "
                        "Kafka but there is no top-level kafka section; "
                        "expected a kafka: section with brokers",
                        svc->name);
    return true;
}

/* The first owner of c->services[si].owned[ti] before that entry, if any. */
static const cfg_table *earlier_owner(const cfg *c, size_t si, size_t ti,
                                      const cfg_service **who)
{
    const cfg_table *t = &c->services[si].owned[ti];

    for (size_t s = 0; s <= si; s++) {
        const cfg_service *svc = &c->services[s];
        size_t end = (s == si) ? ti : svc->n_owned;
        for (size_t i = 0; i < end; i++)
            if (strcmp(svc->owned[i].schema, t->schema) == 0 &&
                strcmp(svc->owned[i].name, t->name) == 0) {
                *who = svc;
                return &svc->owned[i];
            }
    }
    return NULL;
}

bool cfg_check_owners(cfg_loader *ld, const cfg_section *sec, void *base,
                      const char *label, const yaml_node_t *map,
                      const cfg_seen *seen)
{
    const cfg *c = base;
    char shown[2 * 2 * CFG_NAME_MAX + 8];

    (void)sec;
    (void)label;
    (void)map;
    (void)seen;
    for (size_t s = 0; s < c->n_services; s++)
        for (size_t i = 0; i < c->services[s].n_owned; i++) {
            const cfg_table *t = &c->services[s].owned[i];
            const cfg_service *who;
            const cfg_table *first = earlier_owner(c, s, i, &who);
            if (!first)
                continue;
            cfg_name_show(shown, sizeof shown, t->schema, t->name);
            return cfg_fail(ld, t->pos, "table %s is already owned by "
                            "service '%s' (line %d); expected each table "
                            "to have one owner", shown, who->name,
                            first->pos.line);
        }
    return true;
}

/* Whether some message prefix matches both patterns (see messages:). */
static bool patterns_overlap(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    bool wa = na > 0 && a[na - 1] == '*', wb = nb > 0 && b[nb - 1] == '*';
    if (wa)
        na--;
    if (wb)
        nb--;
    if (!wa && !wb)
        return strcmp(a, b) == 0;
    /* A wildcard's stem must begin the other pattern (or its stem). */
    size_t n = wa && wb ? (na < nb ? na : nb) : wa ? na : nb;
    if ((wa && !wb && nb < na) || (wb && !wa && na < nb))
        return false;
    return strncmp(a, b, n) == 0;
}

/*
 * Messages go to Kafka only: a service that claims a prefix must publish
 * there, and no two services may claim the same message (it would be
 * published twice).
 */
bool cfg_check_messages(cfg_loader *ld, const cfg_section *sec, void *base,
                        const char *label, const yaml_node_t *map,
                        const cfg_seen *seen)
{
    const cfg_service *svc = base;
    const yaml_node_t *key = seen->key[cfg_key_index(sec, "messages")];

    (void)map;
    if (svc->n_messages > 0 && !svc->target_kafka)
        return cfg_fail(ld, cfg_node_pos(key), "%s.messages: service '%s' "
                        "does not publish to Kafka; expected kafka: true in "
                        "its target, or no messages", label, svc->name);
    for (const cfg_service *o = ld->c->services; o < svc; o++)
        for (size_t i = 0; i < o->n_messages; i++)
            for (size_t j = 0; j < svc->n_messages; j++)
                if (patterns_overlap(o->messages[i], svc->messages[j]))
                    return cfg_fail(ld, cfg_node_pos(key), "%s.messages: "
                                    "prefix '%s' is already published by "
                                    "service '%s' ('%s'); expected each "
                                    "prefix in one service", label,
                                    svc->messages[j], o->name,
                                    o->messages[i]);
    return true;
}
