/*
 * cfg_internal: what the config module's files share and the unit tests
 * reach into; not for the rest of cleave (config.h is the interface).
 *
 * The loader walks libyaml's node tree section by section, driven by the
 * key tables of cfg_keys.c. Every check reports through cfg_fail, which
 * writes the one error message a load returns and makes all later calls
 * no-ops, so the first problem found is the one the user sees.
 */
#ifndef CLEAVE_CONFIG_CFG_INTERNAL_H
#define CLEAVE_CONFIG_CFG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <yaml.h>

#include "config/config.h"

/* PostgreSQL's NAMEDATALEN - 1: longer names would be truncated silently. */
#define CFG_NAME_MAX 63

/* One load in progress. */
typedef struct cfg_loader {
    const char *path;
    yaml_document_t *doc;
    cfg *c;                 /* the configuration being built */
    char *err;
    size_t errlen;
    bool failed;
} cfg_loader;

/*
 * Why a value was refused, as a checker sees it: the message ("what was
 * wrong; what was expected") and, when it is known, the byte offset of the
 * offending character within the value (-1 otherwise).
 */
typedef struct cfg_why {
    char msg[320];
    long at;
} cfg_why;

/* Fills *why and returns false, so checkers can `return cfg_whyf(...)`. */
bool cfg_whyf(cfg_why *why, long at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records the load's error (only the first one counts); returns false. */
bool cfg_fail(cfg_loader *ld, cfg_pos pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

cfg_pos cfg_node_pos(const yaml_node_t *node);
/* The position of byte `at` of a scalar's value, when it can be known. */
cfg_pos cfg_value_pos(const yaml_node_t *node, long at);

/* ---- the key tables (cfg_keys.c) ---- */

typedef enum cfg_type {
    CFG_T_STRING,
    CFG_T_BOOL,
    CFG_T_DURATION,
    CFG_T_COUNT,      /* a whole number from 1 to 64 */
    CFG_T_ENUM,
    CFG_T_TABLES,     /* list of table names */
    CFG_T_REFS,       /* list of [schema.]table.column */
    CFG_T_SECTION,    /* map with keys of its own */
    CFG_T_SERVICES,   /* map of service name to service section */
    CFG_T_STRMAP,     /* map of scalar keys to scalar values */
    CFG_T_STRLIST,    /* list of non-empty strings */
} cfg_type;

/* Turns a string value into what is stored (malloc'ed), or refuses it. */
typedef bool cfg_take_fn(const char *s, size_t len, char **out, cfg_why *why);

struct cfg_section;

/* One key of a section: parsing, messages and cfg_describe all read it. */
typedef struct cfg_key {
    const char *name;
    cfg_type type;
    const char *def;          /* default as written in YAML; NULL: none */
    bool required;
    bool reloadable;
    bool nonempty;            /* lists: [] and [none] are refused */
    size_t off;               /* where the value goes; SECTION: a bool set
                                 when present, or CFG_NOWHERE */
    size_t n_off;             /* lists and maps: where the length goes */
    cfg_take_fn *take;        /* strings: check and convert; NULL keeps text */
    char *(*derive)(const cfg *c);  /* default computed from other keys */
    const char *const *choices;     /* enums, NULL-terminated */
    const struct cfg_section *sub;  /* SECTION, SERVICES: the inner keys */
    const char *expect;       /* what a value should be, for messages */
    const char *help;
} cfg_key;

#define CFG_NOWHERE ((size_t)-1)
#define CFG_MAX_KEYS 16

/* The key and value nodes found for each key of a section (NULL: absent). */
typedef struct cfg_seen {
    yaml_node_t *key[CFG_MAX_KEYS];
    yaml_node_t *value[CFG_MAX_KEYS];
} cfg_seen;

typedef struct cfg_section {
    const char *path;         /* as cfg_describe shows it; "" at the top */
    const char *title;        /* its heading in docs/configuration.md */
    const char *doc;          /* Markdown above its table there */
    const cfg_key *keys;
    size_t n_keys;
    /* Checks that span the section's keys, once they are all stored. */
    bool (*finish)(cfg_loader *ld, const struct cfg_section *sec,
                   void *base, const char *label, const yaml_node_t *map,
                   const cfg_seen *seen);
} cfg_section;

extern const cfg_section cfg_top_section;
extern const char *const cfg_log_level_names[];

/* The index of `name` in sec's keys (it must be there). */
size_t cfg_key_index(const cfg_section *sec, const char *name);
const char *cfg_type_name(cfg_type type);

/* ---- walking the YAML tree (cfg_yaml.c) ---- */

/*
 * Parses the mapping `map` into `base` by sec's keys. `label` is the dotted
 * path of the section ("source", "services.orders"), NULL at the top.
 */
bool cfg_walk_section(cfg_loader *ld, const cfg_section *sec,
                      yaml_node_t *map, void *base, const char *label);

/* ---- checks across keys (cfg_check.c): sections' finish hooks ---- */

bool cfg_check_target(cfg_loader *ld, const cfg_section *sec, void *base,
                      const char *label, const yaml_node_t *map,
                      const cfg_seen *seen);
bool cfg_check_messages(cfg_loader *ld, const cfg_section *sec, void *base,
                        const char *label, const yaml_node_t *map,
                        const cfg_seen *seen);
bool cfg_check_owners(cfg_loader *ld, const cfg_section *sec, void *base,
                      const char *label, const yaml_node_t *map,
                      const cfg_seen *seen);

/* ---- value rules (cfg_values.c) ---- */

bool cfg_parse_bool(const char *s, bool *out, cfg_why *why);
bool cfg_parse_duration(const char *s, int *ms, cfg_why *why);
bool cfg_parse_count(const char *s, int *n, cfg_why *why);
cfg_take_fn cfg_take_instance_name;
cfg_take_fn cfg_take_slot;
cfg_take_fn cfg_take_ident;
cfg_take_fn cfg_take_dsn;
cfg_take_fn cfg_take_socket;
cfg_take_fn cfg_take_size;
cfg_take_fn cfg_take_topic;
cfg_take_fn cfg_take_topic_plain;
bool cfg_check_service_name(const char *s, size_t len, cfg_why *why);
/* cleave_<name>, lower-cased, '-' and '.' turned into '_'. */
char *cfg_derive_object_name(const cfg *c);

/* ---- SQL names (cfg_names.c) ---- */

/*
 * Splits a dotted SQL name into between min and max parts, unquoting and
 * folding each. parts[] receives malloc'ed raw names; returns the count,
 * or -1 with *why filled (and nothing left allocated).
 */
int cfg_name_split(const char *s, size_t len, char **parts, int min,
                   int max, cfg_why *why);
bool cfg_table_from(const char *s, size_t len, cfg_table *out, cfg_why *why);
bool cfg_ref_from(const char *s, size_t len, cfg_ref *out, cfg_why *why);
/* A name as SQL would write it: parts quoted only when they need it. */
void cfg_name_show(char *buf, size_t size, const char *schema,
                   const char *name);

/* ---- connection strings (cfg_dsn.c) ---- */

/* libpq's verdict on a connection string, never echoing a password. */
bool cfg_dsn_check(const char *dsn, cfg_why *why);

#endif
