/*
 * cfg_keys: the one table of cleave.yaml's keys, section by section.
 *
 * Everything about a key lives in its row: its type, default, whether it
 * is required or reloadable, what a value must look like, its help text and
 * where it is stored; a section's prose for the reference sits with it.
 * The loader (cfg_yaml.c) parses by these rows, error messages list their
 * names, and cfg_describe and cfg_describe_page print them (`cleave check
 * --keys`, docs/configuration.md), so the three cannot drift apart.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "config/cfg_internal.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Enums are stored through an int *, so they must be int-sized. */
_Static_assert(sizeof(cfg_log_level) == sizeof(int), "enum size");
_Static_assert(sizeof(cfg_conflict) == sizeof(int), "enum size");
_Static_assert(sizeof(cfg_decimal) == sizeof(int), "enum size");

/* In the order of the enums in config.h. */
const char *const cfg_log_level_names[] = {
    "debug", "info", "warning", "error", NULL,
};

static const char *const conflict_names[] = {"error", "apply", NULL};

static const char *const decimal_names[] = {"string", "double", "precise",
                                            NULL};

static const cfg_key target_keys[] = {
    {.name = "postgres", .type = CFG_T_STRING,
     .off = offsetof(cfg_service, target_postgres), .take = cfg_take_dsn,
     .expect = "a libpq connection string",
     .help = "connection string of the service's own database; its owned "
             "tables are created, copied and kept in sync there"},
    {.name = "kafka", .type = CFG_T_BOOL, .def = "false",
     .off = offsetof(cfg_service, target_kafka),
     .help = "also publish the owned tables' changes to Kafka (needs the "
             "top-level kafka section)"},
};

static const cfg_section target_section = {
    .path = "services.<service>.target", .title = "`services.<service>.target`",
    .doc = "Where a service's changes go: its own PostgreSQL database, Kafka "
           "or both\n(at least one).\n",
    .keys = target_keys,
    .n_keys = ARRAY_LEN(target_keys), .finish = cfg_check_target,
};

static const cfg_key service_keys[] = {
    {.name = "owned_tables", .type = CFG_T_TABLES, .required = true,
     .nonempty = true, .off = offsetof(cfg_service, owned),
     .n_off = offsetof(cfg_service, n_owned),
     .help = "tables this service owns, [schema.]table as in SQL; each "
             "table has exactly one owner"},
    {.name = "shared_tables", .type = CFG_T_TABLES, .def = "[none]",
     .off = offsetof(cfg_service, shared),
     .n_off = offsetof(cfg_service, n_shared),
     .help = "tables the service uses but does not own; read by "
             "`cleave analyze`"},
    {.name = "references", .type = CFG_T_REFS, .def = "[none]",
     .off = offsetof(cfg_service, refs),
     .n_off = offsetof(cfg_service, n_refs),
     .help = "columns of other services' tables this service points at, "
             "[schema.]table.column; read by `cleave analyze`"},
    {.name = "target", .type = CFG_T_SECTION, .required = true,
     .off = CFG_NOWHERE, .sub = &target_section,
     .help = "where the changes go: postgres, kafka or both"},
    {.name = "on_conflict", .type = CFG_T_ENUM, .def = "error",
     .choices = conflict_names, .off = offsetof(cfg_service, on_conflict),
     .help = "a change the target refuses: error stops the service and "
             "says why; apply upserts and skips missing rows, counting "
             "them"},
    {.name = "messages", .type = CFG_T_STRLIST, .def = "[none]",
     .off = offsetof(cfg_service, messages),
     .n_off = offsetof(cfg_service, n_messages),
     .help = "prefixes of logical messages (pg_logical_emit_message, the "
             "outbox pattern) published to Kafka as op m events; a "
             "trailing * matches any prefix starting so; needs kafka: true"},
};

static const cfg_section service_section = {
    .path = "services.<service>", .title = "`services.<service>`",
    .doc = "One entry per service under `services:`, named "
           "`[A-Za-z_][A-Za-z0-9_]*`.\nEach owns its tables alone: a table "
           "owned by two services is an error.\n`shared_tables` and "
           "`references` take the same names as the design\ndocuments "
           "that map data ownership, and `cleave analyze` checks them\n"
           "against the source catalog.\n",
    .keys = service_keys,
    .n_keys = ARRAY_LEN(service_keys), .finish = cfg_check_messages,
};

static const cfg_key source_keys[] = {
    {.name = "dsn", .type = CFG_T_STRING, .required = true,
     .off = offsetof(cfg, source.dsn), .take = cfg_take_dsn,
     .expect = "a libpq connection string",
     .help = "connection string of the shared database (keywords or URI; "
             "libpq's passfile and PG* variables apply; every connection "
             "cleave makes, to the targets too, has connect_timeout=10 "
             "unless its DSN sets one)"},
    {.name = "slot", .type = CFG_T_STRING, .def = "cleave_<name>",
     .derive = cfg_derive_object_name, .off = offsetof(cfg, source.slot),
     .take = cfg_take_slot, .expect = "a replication slot name",
     .help = "logical replication slot (pgoutput), created if missing; "
             "`[a-z0-9_]` only"},
    {.name = "publication", .type = CFG_T_STRING, .def = "cleave_<name>",
     .derive = cfg_derive_object_name,
     .off = offsetof(cfg, source.publication), .take = cfg_take_ident,
     .expect = "an SQL identifier",
     .help = "publication, created FOR TABLE all owned tables if missing"},
    {.name = "heartbeat_interval", .type = CFG_T_DURATION, .def = "0",
     .off = offsetof(cfg, source.heartbeat_interval_ms),
     .help = "how often to write a heartbeat message to the source so an "
             "idle publication does not hold WAL back; 0 is off"},
    {.name = "receive_timeout", .type = CFG_T_DURATION, .def = "60s",
     .off = offsetof(cfg, source.receive_timeout_ms),
     .help = "how long the replication stream may stay silent while cleave "
             "waits to read it before the connection is taken for lost and "
             "made again (after half of it cleave asks the server for a "
             "keepalive), as PostgreSQL's wal_receiver_timeout; 0 waits "
             "for ever, leaving it to TCP, which takes many minutes"},
    {.name = "loop_prevention", .type = CFG_T_BOOL, .def = "true",
     .off = offsetof(cfg, source.loop_prevention),
     .help = "skip transactions applied under a cleave_ replication origin, "
             "so instances running in opposite directions do not loop"},
    {.name = "server_origin_filter", .type = CFG_T_BOOL, .def = "false",
     .off = offsetof(cfg, source.server_origin_filter),
     .help = "with loop_prevention, let PostgreSQL 16 or later drop "
             "origin-tagged transactions itself (origin 'none'), sparing "
             "their decoding; the server drops every origin, not only "
             "cleave's, so it is used only while the source has no other "
             "origin, and a subscription into the source created later "
             "loses what it applies in the seconds before cleave notices: "
             "turn it on only where nothing else replicates into the source; "
             "not used with Kafka, whose topics get a moved service's writes "
             "back through the reverse stream's origin"},
    {.name = "binary_values", .type = CFG_T_BOOL, .def = "true",
     .off = offsetof(cfg, source.binary_values),
     .help = "ask pgoutput for column values in their binary form "
             "(PostgreSQL 14 or later) where every target can take them: "
             "no Kafka, every target of the source's major version, and "
             "every column of a built-in type (or an enum, or a domain "
             "over one) the same in the target; this spares both servers "
             "the types' text output and input; otherwise text"},
    {.name = "failover_slot", .type = CFG_T_BOOL, .def = "false",
     .off = offsetof(cfg, source.failover_slot),
     .help = "create the slot with FAILOVER (PostgreSQL 17 or later), so "
             "it is synchronised to standbys and survives a promotion; an "
             "existing slot is switched to it; false leaves a slot as it is"},
};

static const cfg_section source_section = {
    .path = "source", .title = "`source`",
    .doc = "The shared database: cleave reads its changes through one "
           "logical\nreplication slot and one publication. The user needs "
           "the REPLICATION\nright and the right to create the publication "
           "(or it is created\nbeforehand).\n",
    .keys = source_keys, .n_keys = ARRAY_LEN(source_keys),
};

static const cfg_key kafka_keys[] = {
    {.name = "brokers", .type = CFG_T_STRING, .required = true,
     .off = offsetof(cfg, kafka.brokers), .expect = "host:port[,host:port]",
     .help = "bootstrap brokers, host:port separated by commas"},
    {.name = "topic", .type = CFG_T_STRING, .def = "{name}.{schema}.{table}",
     .off = offsetof(cfg, kafka.topic), .take = cfg_take_topic,
     .expect = "a topic template",
     .help = "topic per table; placeholders {name} {service} {schema} "
             "{table}; characters Kafka forbids become _"},
    {.name = "properties", .type = CFG_T_STRMAP,
     .off = offsetof(cfg, kafka.props), .n_off = offsetof(cfg, kafka.n_props),
     .help = "librdkafka settings, handed over as strings; cleave's "
             "defaults: enable.idempotence true, acks all, "
             "compression.type lz4, linger.ms 5"},
    {.name = "tombstones", .type = CFG_T_BOOL, .def = "true",
     .off = offsetof(cfg, kafka.tombstones),
     .help = "follow each delete with a tombstone (same key, null value) "
             "so compacted topics drop the row"},
    {.name = "truncate_events", .type = CFG_T_BOOL, .def = "false",
     .off = offsetof(cfg, kafka.truncate_events),
     .help = "publish TRUNCATE as an op t event (null key) on the table's "
             "topic"},
    {.name = "transaction_metadata", .type = CFG_T_BOOL, .def = "false",
     .off = offsetof(cfg, kafka.transaction_metadata),
     .help = "publish BEGIN and END events per source transaction and add "
             "a transaction block to every event (Debezium's "
             "provide.transaction.metadata)"},
    {.name = "transaction_topic", .type = CFG_T_STRING,
     .def = "{name}.transaction", .off = offsetof(cfg, kafka.transaction_topic),
     .take = cfg_take_topic_plain, .expect = "a topic template",
     .help = "topic of the transaction events; {name} {service}"},
    {.name = "message_topic", .type = CFG_T_STRING, .def = "{name}.message",
     .off = offsetof(cfg, kafka.message_topic), .take = cfg_take_topic_plain,
     .expect = "a topic template",
     .help = "topic of the logical message events; {name} {service}"},
    {.name = "schemas", .type = CFG_T_BOOL, .def = "false",
     .off = offsetof(cfg, kafka.schemas),
     .help = "wrap keys and values in Kafka Connect's JSON converter "
             "envelope {schema, payload} with Debezium's field types (and "
             "its time.precision.mode=adaptive values), for Kafka Connect "
             "sinks"},
    {.name = "decimal_handling", .type = CFG_T_ENUM, .def = "string",
     .choices = decimal_names, .off = offsetof(cfg, kafka.decimal_handling),
     .help = "numeric and money as Debezium's decimal.handling.mode: "
             "string, double, or precise (Connect's Decimal: base64 of the "
             "unscaled value)"},
};

static const cfg_section kafka_section = {
    .path = "kafka", .title = "`kafka`",
    .doc = "Needed when some service has `kafka: true` in its target. The "
           "events are\nDebezium's ([kafka.md](kafka.md)).\n",
    .keys = kafka_keys, .n_keys = ARRAY_LEN(kafka_keys),
};

/* Order matters: name before source (derived defaults), kafka before
 * services (a service's kafka: true needs the kafka section). */
static const cfg_key top_keys[] = {
    {.name = "name", .type = CFG_T_STRING, .required = true,
     .off = offsetof(cfg, name), .take = cfg_take_instance_name,
     .expect = "1 to 63 letters, digits, '_', '-' or '.'",
     .help = "instance name: default slot and publication, Kafka "
             "source.name"},
    {.name = "source", .type = CFG_T_SECTION, .required = true,
     .off = CFG_NOWHERE, .sub = &source_section,
     .help = "the shared database the changes are read from"},
    {.name = "state_dir", .type = CFG_T_STRING, .def = "/var/lib/cleave",
     .off = offsetof(cfg, state_dir), .expect = "a directory",
     .help = "local state: the initial sync's progress and held changes, "
             "spooled streamed transactions, Kafka checkpoints"},
    {.name = "copy_workers", .type = CFG_T_COUNT, .def = "2",
     .off = offsetof(cfg, copy_workers),
     .help = "tables copied at the same time during the initial sync "
             "(each a connection to the source and one to a target)"},
    {.name = "copy_split_size", .type = CFG_T_STRING, .def = "256MB",
     .off = offsetof(cfg, copy_split_size), .take = cfg_take_size,
     .expect = "a size such as 256MB, or 0",
     .help = "a table whose heap is larger is copied in block ranges of "
             "this size, loaded by several copy workers at once; 0 never "
             "splits"},
    {.name = "status_socket", .type = CFG_T_STRING,
     .def = "/run/cleave/status.sock", .off = offsetof(cfg, status_socket),
     .take = cfg_take_socket, .expect = "a socket path",
     .help = "Unix socket `cleave status` asks (at most 107 bytes)"},
    {.name = "log_level", .type = CFG_T_ENUM, .def = "info",
     .reloadable = true, .choices = cfg_log_level_names,
     .off = offsetof(cfg, log_level),
     .help = "least important message logged"},
    {.name = "kafka", .type = CFG_T_SECTION, .off = offsetof(cfg, has_kafka),
     .sub = &kafka_section,
     .help = "Kafka, needed only when a service has kafka: true"},
    {.name = "services", .type = CFG_T_SERVICES, .required = true,
     .off = offsetof(cfg, services), .n_off = offsetof(cfg, n_services),
     .sub = &service_section,
     .help = "the services, by name (`[A-Za-z_][A-Za-z0-9_]*`): which "
             "tables each owns and where their changes go"},
};

/* The page's opening: what holds for every key, then the top level. */
static const char top_doc[] =
    "One YAML file, `/etc/cleave/cleave.yaml` under systemd;\n"
    "[`config/examples/shop.yaml`](../config/examples/shop.yaml) is a "
    "complete,\ncommented example. `cleave check -c FILE` validates a file "
    "without\nconnecting to any database. The shape:\n\n"
    "```yaml\n"
    "name: shop                         # instance name\n"
    "source:\n"
    "  dsn: \"host=/var/run/postgresql dbname=shared_db user=cleave\"\n"
    "state_dir: /var/lib/cleave\n"
    "status_socket: /run/cleave/status.sock\n"
    "kafka:                             # only where a service publishes "
    "to Kafka\n"
    "  brokers: \"localhost:9092\"\n"
    "services:\n"
    "  user_service:\n"
    "    owned_tables: [users, user_preferences, user_sessions]\n"
    "    target:\n"
    "      postgres: \"dbname=user_service_db\"\n"
    "  order_service:\n"
    "    owned_tables: [orders, order_items, shipping_addresses]\n"
    "    references: [users.id]\n"
    "    target:\n"
    "      postgres: \"dbname=order_service_db\"\n"
    "      kafka: true\n"
    "```\n\n"
    "What holds for every key:\n\n"
    "- **Table names** are written as in SQL: unquoted names fold to lower "
    "case;\n  double-quoted names keep case, spaces and punctuation (in "
    "YAML:\n  `'\"Patient Notes\"'`, with `\"\"` for a quote inside); "
    "`schema.table`\n  qualifies, unqualified means `public`. A part longer "
    "than 63 bytes is\n  refused rather than truncated as PostgreSQL "
    "would.\n"
    "- **Lists** that may be empty (`shared_tables`, `references`, "
    "`messages`)\n  take the design documents' `[none]` as the empty "
    "list.\n"
    "- **Durations** are a whole number with `ms`, `s`, `m` or `h` (`500ms`, "
    "`10s`);\n  a bare number means seconds, 0 means off. **Counts** are "
    "1 to 64.\n"
    "- **Errors.** An unknown or duplicate key, a wrong type, a missing "
    "required\n  key, an empty `owned_tables`, a table owned twice, a "
    "service without a\n  target, `kafka: true` without a `kafka:` "
    "section, a bad connection\n  string or a missing file is an error "
    "naming the file, line and column\n  and what was expected; the first "
    "one found is reported, and every\n  command that reads the file "
    "exits 78 before doing anything else.\n"
    "- **Passwords.** Connection strings are printed with the password "
    "replaced\n  by `********`. Keep passwords out of the file: libpq's "
    "passfile\n  (`~/.pgpass`, `PGPASSFILE`) and the `PG*` environment "
    "variables work as\n  usual.\n"
    "- **Reloading.** On SIGHUP cleave reads the file again and compares "
    "it key\n  by key. A key marked reloadable takes effect at once; a "
    "change to any\n  other key makes cleave stop cleanly and start again "
    "in the same process\n  (same pid), so a table given to a service is "
    "copied and joins the\n  stream and every new setting holds. The log "
    "names the keys that changed.\n  A file that does not load is refused "
    "and the running configuration\n  kept.\n\n"
    "The keys at the top of the file:\n";

const cfg_section cfg_top_section = {
    .path = "", .title = "The file", .doc = top_doc,
    .keys = top_keys, .n_keys = ARRAY_LEN(top_keys),
    .finish = cfg_check_owners,
};

size_t cfg_key_index(const cfg_section *sec, const char *name)
{
    size_t i = 0;

    while (i < sec->n_keys && strcmp(sec->keys[i].name, name) != 0)
        i++;
    return i;
}

const char *cfg_type_name(cfg_type type)
{
    static const char *const names[] = {
        [CFG_T_STRING] = "string",
        [CFG_T_BOOL] = "bool",
        [CFG_T_DURATION] = "duration",
        [CFG_T_COUNT] = "count",
        [CFG_T_ENUM] = "enum",
        [CFG_T_TABLES] = "list of tables",
        [CFG_T_REFS] = "list of references",
        [CFG_T_SECTION] = "map",
        [CFG_T_SERVICES] = "map of services",
        [CFG_T_STRMAP] = "map of strings",
        [CFG_T_STRLIST] = "list of strings",
    };
    return names[type];
}

static void describe_type(FILE *out, const cfg_key *k)
{
    fputs(cfg_type_name(k->type), out);
    for (size_t i = 0; k->choices && k->choices[i]; i++)
        fprintf(out, "%s%s", i ? " \\| " : ": ", k->choices[i]);
}

/* A key's row from its type on: the columns both renderings share. */
static void describe_key(FILE *out, const cfg_key *k)
{
    describe_type(out, k);
    if (k->required)
        fputs(" | required", out);
    else if (k->def)
        fprintf(out, " | `%s`", k->def);
    else
        fputs(" | (none)", out);
    fprintf(out, " | %s | %s |\n", k->reloadable ? "yes" : "no", k->help);
}

static void describe_section(FILE *out, const cfg_section *sec)
{
    for (size_t i = 0; i < sec->n_keys; i++) {
        const cfg_key *k = &sec->keys[i];
        if (*sec->path)
            fprintf(out, "| `%s` | `%s` | ", sec->path, k->name);
        else
            fprintf(out, "| (top) | `%s` | ", k->name);
        describe_key(out, k);
    }
    for (size_t i = 0; i < sec->n_keys; i++)
        if (sec->keys[i].sub)
            describe_section(out, sec->keys[i].sub);
}

void cfg_describe(FILE *out)
{
    fputs("| Section | Key | Type | Default | Reloadable | Description |\n"
          "|---|---|---|---|---|---|\n", out);
    describe_section(out, &cfg_top_section);
}

/* A section of the page: heading, prose, its keys; then its subsections. */
static void describe_page_section(FILE *out, const cfg_section *sec)
{
    fprintf(out, "\n## %s\n\n%s\n", sec->title, sec->doc);
    fputs("| Key | Type | Default | Reloadable | Description |\n"
          "|---|---|---|---|---|\n", out);
    for (size_t i = 0; i < sec->n_keys; i++) {
        fprintf(out, "| `%s` | ", sec->keys[i].name);
        describe_key(out, &sec->keys[i]);
    }
    for (size_t i = 0; i < sec->n_keys; i++)
        if (sec->keys[i].sub)
            describe_page_section(out, sec->keys[i].sub);
}

void cfg_describe_page(FILE *out)
{
    fputs("<!-- Generated by `cleave check --keys --markdown` from the key "
          "table in\n     config/cfg_keys.c: edit it there and regenerate; "
          "the cli test fails\n     while this file differs. -->\n"
          "# Configuration reference\n", out);
    describe_page_section(out, &cfg_top_section);
}
