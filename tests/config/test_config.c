/*
 * test_config: the configuration loader against the shipped example, the
 * SQL name grammar, every bad configuration under tests/config/bad/ (each
 * carries its expected error in its first line), connection-string
 * redaction, the key reference and names chosen to break naive quoting.
 *
 * Bad files: the first line is "# expect: LINE:COL: <part of the message>";
 * optional "# absent: <text>" lines name text the message must not contain
 * (passwords).
 */
#include <check.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "config/cfg_internal.h"
#include "config/config.h"

static const char *srcdir(void)
{
    const char *d = getenv("CLEAVE_SRCDIR");
    return d ? d : ".";
}

static cfg *parse_ok(const char *text)
{
    char err[512];
    cfg *c = cfg_parse(text, strlen(text), "test.yaml", err, sizeof err);

    ck_assert_msg(c != NULL, "unexpected error: %s", err);
    return c;
}

static const cfg_service *service(const cfg *c, const char *name)
{
    for (size_t i = 0; i < c->n_services; i++)
        if (strcmp(c->services[i].name, name) == 0)
            return &c->services[i];
    ck_abort_msg("no service %s", name);
    return NULL;
}

/* ------------------------------------------------------------------ diff */

static const char diff_base[] =
    "name: shop\n"
    "source: {dsn: \"dbname=shared\", heartbeat_interval: 0}\n"
    "log_level: info\n"
    "kafka: {brokers: \"b:9092\", properties: {linger.ms: \"5\"}}\n"
    "services:\n"
    "  orders:\n"
    "    owned_tables: [orders]\n"
    "    target: {postgres: \"dbname=o\", kafka: true}\n";

typedef struct diff_seen {
    char keys[512];
    int reloadable;
} diff_seen;

static void saw_change(const char *key, bool reloadable, void *arg)
{
    diff_seen *d = arg;
    strcat(d->keys, key);
    strcat(d->keys, ";");
    d->reloadable += reloadable;
}

static diff_seen diff_of(const char *from, const char *find, const char *to)
{
    char text[1024];
    const char *at = strstr(from, find);
    ck_assert_ptr_nonnull(at);
    snprintf(text, sizeof text, "%.*s%s%s", (int)(at - from), from, to,
             at + strlen(find));
    cfg *a = parse_ok(from), *b = parse_ok(text);
    diff_seen d = {.keys = ""};
    ck_assert_uint_eq(cfg_diff(a, a, saw_change, &d), 0);
    cfg_diff(a, b, saw_change, &d);
    cfg_free(a);
    cfg_free(b);
    return d;
}

/* Every key a reload changes is named, by the key table's paths. */
START_TEST(diff_names_each_key)
{
    static const struct {
        const char *find, *to, *keys;
        int reloadable;
    } cases[] = {
        {"log_level: info", "log_level: debug", "log_level;", 1},
        {"heartbeat_interval: 0", "heartbeat_interval: 5s",
         "source.heartbeat_interval;", 0},
        {"\"5\"", "\"50\"", "kafka.properties;", 0},
        {"[orders]", "[orders, items]", "services.orders.owned_tables;", 0},
        {"kafka: true", "kafka: false", "services.orders.target.kafka;", 0},
        {"  orders:", "  sales:", "services;", 0},
        {"log_level: info\n", "log_level: info\nstatus_socket: /tmp/x.sock\n",
         "status_socket;", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        diff_seen d = diff_of(diff_base, cases[i].find, cases[i].to);
        ck_assert_msg(strcmp(d.keys, cases[i].keys) == 0, "%s -> %s: got %s",
                      cases[i].find, cases[i].to, d.keys);
        ck_assert_int_eq(d.reloadable, cases[i].reloadable);
    }
}
END_TEST

/* ---------------------------------------------------------------- example */

static cfg *load_example(void)
{
    char path[PATH_MAX], err[512];
    cfg *c;

    snprintf(path, sizeof path, "%s/config/examples/shop.yaml", srcdir());
    c = cfg_load(path, err, sizeof err);
    ck_assert_msg(c != NULL, "example does not load: %s", err);
    return c;
}

START_TEST(example_top_level)
{
    cfg *c = load_example();

    ck_assert_str_eq(c->name, "shop");
    ck_assert_str_eq(c->source.dsn, "dbname=shop");
    ck_assert_str_eq(c->source.slot, "cleave_shop");
    ck_assert_str_eq(c->source.publication, "cleave_shop");
    ck_assert_int_eq(c->source.heartbeat_interval_ms, 10000);
    ck_assert_str_eq(c->state_dir, "/var/lib/cleave");
    ck_assert_str_eq(c->status_socket, "/run/cleave/status.sock");
    ck_assert_str_eq(c->copy_split_size, "268435456");
    ck_assert_int_eq(c->log_level, CFG_LOG_INFO);
    ck_assert(c->has_kafka);
    ck_assert_str_eq(c->kafka.brokers, "localhost:9092");
    ck_assert_str_eq(c->kafka.topic, "{name}.{schema}.{table}");
    ck_assert_uint_eq(c->kafka.n_props, 2);
    ck_assert_str_eq(c->kafka.props[0].key, "compression.type");
    ck_assert_str_eq(c->kafka.props[0].value, "lz4");
    ck_assert_str_eq(c->kafka.props[1].key, "linger.ms");
    ck_assert_str_eq(c->kafka.props[1].value, "50");
    cfg_free(c);
}
END_TEST

START_TEST(example_services)
{
    static const char *const names[] = {"user_service", "order_service",
        "payment_service", "inventory_service", "notification_service"};
    cfg *c = load_example();
    char dsn[64];

    ck_assert_uint_eq(c->n_services, 5);
    for (size_t i = 0; i < 5; i++) {
        const cfg_service *s = &c->services[i];
        ck_assert_str_eq(s->name, names[i]);
        snprintf(dsn, sizeof dsn, "dbname=%s_db", names[i]);
        ck_assert_str_eq(s->target_postgres, dsn);
        ck_assert(s->target_kafka == (i == 1));
        ck_assert_int_eq(s->on_conflict, CFG_CONFLICT_ERROR);
        ck_assert_uint_eq(s->n_shared, 0);
        ck_assert_int_eq(s->pos.col, 3);
    }
    const cfg_service *pay = service(c, "payment_service");
    ck_assert_uint_eq(pay->n_refs, 2);
    ck_assert_str_eq(pay->refs[0].table.schema, "public");
    ck_assert_str_eq(pay->refs[0].table.name, "orders");
    ck_assert_str_eq(pay->refs[0].column, "id");
    ck_assert_str_eq(pay->refs[1].table.name, "users");
    ck_assert_uint_eq(service(c, "user_service")->n_refs, 0);
    ck_assert_uint_eq(service(c, "inventory_service")->n_owned, 3);
    ck_assert_uint_eq(service(c, "notification_service")->n_owned, 2);
    cfg_free(c);
}
END_TEST

START_TEST(example_owners)
{
    static const char *const owned[][2] = {
        {"users", "user_service"}, {"user_preferences", "user_service"},
        {"user_sessions", "user_service"}, {"orders", "order_service"},
        {"order_items", "order_service"},
        {"shipping_addresses", "order_service"},
        {"payments", "payment_service"}, {"refunds", "payment_service"},
        {"payment_methods", "payment_service"},
        {"products", "inventory_service"}, {"inventory", "inventory_service"},
        {"warehouses", "inventory_service"},
        {"notifications", "notification_service"},
        {"notification_templates", "notification_service"},
    };
    cfg *c = load_example();
    size_t total = 0;

    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++) {
        const cfg_service *s = cfg_owner(c, "public", owned[i][0]);
        ck_assert_msg(s != NULL, "%s has no owner", owned[i][0]);
        ck_assert_str_eq(s->name, owned[i][1]);
    }
    for (size_t i = 0; i < c->n_services; i++)
        total += c->services[i].n_owned;
    ck_assert_uint_eq(total, 14);
    ck_assert_ptr_null(cfg_owner(c, "public", "nope"));
    ck_assert_ptr_null(cfg_owner(c, "other", "users"));
    ck_assert_ptr_null(cfg_owner(c, "public", "Users"));
    ck_assert_int_eq(c->services[0].owned[0].pos.line, 42);
    cfg_free(c);
}
END_TEST

/* ------------------------------------------------------ defaults, values */

START_TEST(defaults)
{
    cfg *c = parse_ok("name: My-Shop.v2\n"
                      "source: {dsn: 'dbname=x'}\n"
                      "services:\n"
                      "  s1:\n"
                      "    owned_tables: [t]\n"
                      "    target: {postgres: 'dbname=y'}\n");
    const cfg_service *s = &c->services[0];

    ck_assert_str_eq(c->source.slot, "cleave_my_shop_v2");
    ck_assert_str_eq(c->source.publication, "cleave_my_shop_v2");
    ck_assert_int_eq(c->source.heartbeat_interval_ms, 0);
    ck_assert(c->source.loop_prevention);
    ck_assert(!c->source.failover_slot);
    ck_assert_str_eq(c->state_dir, "/var/lib/cleave");
    ck_assert_str_eq(c->status_socket, "/run/cleave/status.sock");
    ck_assert_int_eq(c->log_level, CFG_LOG_INFO);
    ck_assert(!c->has_kafka);
    ck_assert_ptr_null(c->kafka.brokers);
    ck_assert_ptr_null(c->kafka.topic);
    ck_assert(!s->target_kafka);
    ck_assert_int_eq(s->on_conflict, CFG_CONFLICT_ERROR);
    ck_assert_uint_eq(s->n_shared + s->n_refs, 0);
    cfg_free(c);
}
END_TEST

START_TEST(explicit_values)
{
    cfg *c = parse_ok("name: s\n"
                      "source:\n"
                      "  dsn: 'dbname=x'\n"
                      "  slot: my_slot_1\n"
                      "  publication: '\"My Pub\"'\n"
                      "  heartbeat_interval: 500ms\n"
                      "log_level: warning\n"
                      "kafka:\n"
                      "  brokers: 'a:1,b:2'\n"
                      "  topic: 'cdc.{service}.{table}'\n"
                      "services:\n"
                      "  s1:\n"
                      "    owned_tables: [t]\n"
                      "    on_conflict: apply\n"
                      "    target: {kafka: TRUE}\n");

    ck_assert_str_eq(c->source.slot, "my_slot_1");
    ck_assert_str_eq(c->source.publication, "My Pub");
    ck_assert_int_eq(c->source.heartbeat_interval_ms, 500);
    ck_assert_int_eq(c->log_level, CFG_LOG_WARNING);
    ck_assert_str_eq(c->kafka.topic, "cdc.{service}.{table}");
    ck_assert_uint_eq(c->kafka.n_props, 0);
    ck_assert(c->services[0].target_kafka);
    ck_assert_ptr_null(c->services[0].target_postgres);
    ck_assert_int_eq(c->services[0].on_conflict, CFG_CONFLICT_APPLY);
    cfg_free(c);
}
END_TEST

/* Values are stored in key-table order, not file order: a kafka section
 * after the services still counts for their kafka: true. */
START_TEST(kafka_after_services)
{
    cfg *c = parse_ok("name: s\n"
                      "source: {dsn: 'dbname=x'}\n"
                      "services:\n"
                      "  s1: {owned_tables: [t], target: {kafka: true}}\n"
                      "kafka: {brokers: 'b:9092'}\n");

    ck_assert(c->has_kafka && c->services[0].target_kafka);
    cfg_free(c);
}
END_TEST

/* The Kafka keys cleave added for Debezium's optional events. */
START_TEST(kafka_defaults)
{
    cfg *c = parse_ok("name: shop\n"
                      "source: {dsn: 'dbname=x'}\n"
                      "kafka: {brokers: 'b:9092'}\n"
                      "services:\n"
                      "  s1: {owned_tables: [t], target: {kafka: true}}\n");

    ck_assert(c->kafka.tombstones);
    ck_assert(!c->kafka.truncate_events);
    ck_assert(!c->kafka.transaction_metadata);
    ck_assert_str_eq(c->kafka.transaction_topic, "{name}.transaction");
    ck_assert_str_eq(c->kafka.message_topic, "{name}.message");
    ck_assert_uint_eq(c->services[0].n_messages, 0);
    ck_assert_ptr_null(c->services[0].messages);
    cfg_free(c);
}
END_TEST

START_TEST(kafka_explicit)
{
    cfg *c = parse_ok("name: shop\n"
                      "source: {dsn: 'dbname=x'}\n"
                      "kafka:\n"
                      "  brokers: 'b:9092'\n"
                      "  tombstones: false\n"
                      "  truncate_events: TRUE\n"
                      "  transaction_metadata: true\n"
                      "  transaction_topic: 'cdc.{service}.tx'\n"
                      "  message_topic: '{name}.{service}.outbox'\n"
                      "services:\n"
                      "  s1: {owned_tables: [t], target: {kafka: true}}\n");

    ck_assert(!c->kafka.tombstones);
    ck_assert(c->kafka.truncate_events);
    ck_assert(c->kafka.transaction_metadata);
    ck_assert_str_eq(c->kafka.transaction_topic, "cdc.{service}.tx");
    ck_assert_str_eq(c->kafka.message_topic, "{name}.{service}.outbox");
    cfg_free(c);
}
END_TEST

START_TEST(messages_parsed)
{
    cfg *c = parse_ok("name: shop\n"
                      "source: {dsn: 'dbname=x'}\n"
                      "kafka: {brokers: 'b:9092'}\n"
                      "services:\n"
                      "  orders:\n"
                      "    owned_tables: [orders]\n"
                      "    messages:\n"
                      "      - outbox.order\n"
                      "      - 'outbox.payment.*'\n"
                      "      - \"none\"\n"
                      "      - \"with space \\u00e9\"\n"
                      "    target: {kafka: true, postgres: 'dbname=o'}\n"
                      "  users:\n"
                      "    owned_tables: [users]\n"
                      "    messages: [none]\n"
                      "    target: {kafka: true}\n"
                      "  plain:\n"
                      "    owned_tables: [p]\n"
                      "    messages: []\n"
                      "    target: {postgres: 'dbname=p'}\n");
    const cfg_service *o = service(c, "orders");

    ck_assert_uint_eq(o->n_messages, 4);
    ck_assert_str_eq(o->messages[0], "outbox.order");
    ck_assert_str_eq(o->messages[1], "outbox.payment.*");
    ck_assert_str_eq(o->messages[2], "none");     /* quoted: a prefix */
    ck_assert_str_eq(o->messages[3], "with space \xc3\xa9");
    ck_assert_uint_eq(service(c, "users")->n_messages, 0);
    ck_assert_uint_eq(service(c, "plain")->n_messages, 0);
    ck_assert(cfg_wants_message(o, "outbox.order"));
    ck_assert(cfg_wants_message(o, "outbox.payment.refund"));
    ck_assert(!cfg_wants_message(o, "outbox.payment"));
    ck_assert(cfg_wants_message(o, "none"));
    ck_assert(!cfg_wants_message(service(c, "users"), "none"));
    ck_assert(!cfg_wants_message(service(c, "plain"), "outbox.order"));
    cfg_free(c);
}
END_TEST

/* Patterns (NULL-terminated), a prefix, whether the service wants it. */
static const struct {
    const char *patterns[4];
    const char *prefix;
    bool wanted;
} wants[] = {
    /* exact */
    {{"outbox.order"}, "outbox.order", true},
    {{"outbox.order"}, "outbox.orders", false},
    {{"outbox.order"}, "outbox.orde", false},
    {{"outbox.order"}, "Outbox.order", false},
    {{"outbox.order"}, "", false},
    /* a trailing * : starts with */
    {{"outbox.*"}, "outbox.", true},
    {{"outbox.*"}, "outbox.order", true},
    {{"outbox.*"}, "outbox.*", true},
    {{"outbox.*"}, "outbox", false},
    {{"outbox.*"}, "xoutbox.order", false},
    {{"outbox*"}, "outbox", true},
    {{"outbox*"}, "outboxes", true},
    /* only a trailing * is special */
    {{"a*b"}, "a*b", true},
    {{"a*b"}, "axb", false},
    {{"*b"}, "ab", false},
    {{"**"}, "*x", true},
    {{"**"}, "x", false},
    /* * alone: every prefix, the empty one too */
    {{"*"}, "", true},
    {{"*"}, "anything at all", true},
    /* any of several */
    {{"a", "b*", "c"}, "b", true},
    {{"a", "b*", "c"}, "c", true},
    {{"a", "b*", "c"}, "d", false},
    {{"a", "b*", "c"}, "ab", false},
    /* none */
    {{NULL}, "x", false},
    {{NULL}, "", false},
};

START_TEST(wants_message)
{
    cfg_service svc = {.name = "s"};
    char *patterns[4];

    while (svc.n_messages < 4 && wants[_i].patterns[svc.n_messages]) {
        patterns[svc.n_messages] = (char *)wants[_i].patterns[svc.n_messages];
        svc.n_messages++;
    }
    svc.messages = svc.n_messages ? patterns : NULL;
    ck_assert_msg(cfg_wants_message(&svc, wants[_i].prefix) ==
                  wants[_i].wanted, "'%s' against '%s'...: want %d",
                  wants[_i].prefix, wants[_i].patterns[0]
                  ? wants[_i].patterns[0] : "(none)", wants[_i].wanted);
}
END_TEST

static const struct { const char *text; int ms; } durations[] = {
    {"500ms", 500}, {"10s", 10000}, {"1m", 60000}, {"1h", 3600000},
    {"7", 7000}, {"0", 0}, {"0ms", 0}, {"596h", 596 * 3600000},
    {"2147483647ms", 2147483647},
    {"", -1}, {"-1s", -1}, {"10sec", -1}, {"1.5s", -1}, {"s", -1},
    {"10 s", -1}, {"597h", -1}, {"99999999999", -1}, {"1d", -1},
    {"2147483648ms", -1}, {"10S", -1},
};

START_TEST(duration_values)
{
    cfg_why why;
    int ms = -7;
    bool ok = cfg_parse_duration(durations[_i].text, &ms, &why);

    if (durations[_i].ms < 0) {
        ck_assert_msg(!ok, "'%s' accepted", durations[_i].text);
        ck_assert_ptr_nonnull(strstr(why.msg, "expected"));
    } else {
        ck_assert_msg(ok, "'%s' refused: %s", durations[_i].text, why.msg);
        ck_assert_int_eq(ms, durations[_i].ms);
    }
}
END_TEST

/* copy_split_size: PostgreSQL's units, stored in bytes; NULL: refused. */
static const struct { const char *text, *bytes; } sizes[] = {
    {"256MB", "268435456"}, {"1GB", "1073741824"}, {"64kB", "65536"},
    {"0", "0"}, {"1048576GB", "1125899906842624"},
    {"", NULL}, {"5", NULL}, {"1.5GB", NULL}, {"1 GB", NULL}, {"1mb", NULL},
    {"MB", NULL}, {"-1MB", NULL}, {"1TB", NULL}, {"1099511627776kB", NULL},
};

START_TEST(size_values)
{
    cfg_why why;
    char *out = NULL;
    const char *text = sizes[_i].text;
    bool ok = cfg_take_size(text, strlen(text), &out, &why);

    if (!sizes[_i].bytes) {
        ck_assert_msg(!ok, "'%s' accepted as %s", text, out);
        ck_assert_ptr_nonnull(strstr(why.msg, "expected"));
    } else {
        ck_assert_msg(ok, "'%s' refused: %s", text, why.msg);
        ck_assert_str_eq(out, sizes[_i].bytes);
    }
    free(out);
}
END_TEST

START_TEST(bool_values)
{
    static const char *const yes[] = {"true", "TRUE", "True"};
    static const char *const no[] = {"false", "FALSE", "fAlSe"};
    static const char *const bad[] = {"yes", "no", "1", "0", "on", "", "t"};
    cfg_why why;
    bool v;

    for (size_t i = 0; i < 3; i++) {
        ck_assert(cfg_parse_bool(yes[i], &v, &why) && v);
        ck_assert(cfg_parse_bool(no[i], &v, &why) && !v);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(!cfg_parse_bool(bad[i], &v, &why), "%s", bad[i]);
}
END_TEST

START_TEST(log_level_names)
{
    ck_assert_str_eq(cfg_log_level_name(CFG_LOG_DEBUG), "debug");
    ck_assert_str_eq(cfg_log_level_name(CFG_LOG_INFO), "info");
    ck_assert_str_eq(cfg_log_level_name(CFG_LOG_WARNING), "warning");
    ck_assert_str_eq(cfg_log_level_name(CFG_LOG_ERROR), "error");
    ck_assert_str_eq(cfg_log_level_name((cfg_log_level)42), "unknown");
}
END_TEST

/* ------------------------------------------------------------ name grammar */

#define LONG63 \
    "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijk"

/* A NULL schema means the name must be refused, with `name` in the reason
 * and the offending byte at `at` (-1: no particular byte). */
static const struct {
    const char *text, *schema, *name;
    long at;
} names[] = {
    {"users", "public", "users", 0},
    {"Users", "public", "users", 0},
    {"USERS", "public", "users", 0},
    {"Sales.Orders", "sales", "orders", 0},
    {"\"Users\"", "public", "Users", 0},
    {"\"Patient Notes\"", "public", "Patient Notes", 0},
    {"\"a\"\"b\"", "public", "a\"b", 0},
    {"\"\"\"\"", "public", "\"", 0},
    {"\"Sales\".\"Order Items\"", "Sales", "Order Items", 0},
    {"sales.\"Order Items\"", "sales", "Order Items", 0},
    {"\"my.schema\".t", "my.schema", "t", 0},
    {"_x$1", "public", "_x$1", 0},
    {"\xc3\x91" "AME", "public", "\xc3\x91" "ame", 0},
    {"\"select\"", "public", "select", 0},
    {"select", "public", "select", 0},
    {LONG63, "public", LONG63, 0},
    {"\"" LONG63 "\"", "public", LONG63, 0},
    {"", NULL, "empty name", -1},
    {"\"\"", NULL, "empty quoted name", 0},
    {"a.\"\"", NULL, "empty quoted name", 2},
    {"a.b.c", NULL, "too many dotted parts", 3},
    {"users.", NULL, "missing after '.'", 6},
    {".users", NULL, "cannot start with '.'", 0},
    {"public..users", NULL, "cannot start with '.'", 7},
    {"1users", NULL, "cannot start with '1'", 0},
    {"$x", NULL, "cannot start with '$'", 0},
    {"user-sessions", NULL, "unexpected '-'", 4},
    {"a b", NULL, "unexpected a space", 1},
    {"\"unterminated", NULL, "unterminated quoted name", 0},
    {"s.\"a\"\"", NULL, "unterminated quoted name", 2},
    {"\"x\"y", NULL, "unexpected 'y'", 3},
    {LONG63 "x", NULL, "64 bytes long", 0},
    {"s.\"" LONG63 "x\"", NULL, "64 bytes long", 2},
    {"a;drop", NULL, "unexpected ';'", 1},
};

START_TEST(name_grammar)
{
    cfg_table t = {0};
    cfg_why why;
    bool ok = cfg_table_from(names[_i].text, strlen(names[_i].text), &t,
                             &why);

    if (names[_i].schema) {
        ck_assert_msg(ok, "'%s' refused: %s", names[_i].text, why.msg);
        ck_assert_str_eq(t.schema, names[_i].schema);
        ck_assert_str_eq(t.name, names[_i].name);
        cfg_table_clear(&t);
        return;
    }
    ck_assert_msg(!ok, "'%s' accepted", names[_i].text);
    ck_assert_msg(strstr(why.msg, names[_i].name), "'%s': %s",
                  names[_i].text, why.msg);
    ck_assert_int_eq(why.at, names[_i].at);
}
END_TEST

START_TEST(name_public_api)
{
    cfg_table t;
    char err[256];

    ck_assert(cfg_table_parse("Sales.\"Order Items\"", &t, err, sizeof err));
    ck_assert_str_eq(t.schema, "sales");
    ck_assert_str_eq(t.name, "Order Items");
    cfg_table_clear(&t);
    ck_assert(!cfg_table_parse("a.b.c", &t, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "too many dotted parts"));
    ck_assert_ptr_null(t.schema);
}
END_TEST

START_TEST(reference_grammar)
{
    cfg_ref r;
    cfg_why why;

    ck_assert(cfg_ref_from("users.id", 8, &r, &why));
    ck_assert_str_eq(r.table.schema, "public");
    ck_assert_str_eq(r.table.name, "users");
    ck_assert_str_eq(r.column, "id");
    cfg_table_clear(&r.table);
    free(r.column);
    ck_assert(cfg_ref_from("Sales.Orders.\"ID\"", 17, &r, &why));
    ck_assert_str_eq(r.table.schema, "sales");
    ck_assert_str_eq(r.table.name, "orders");
    ck_assert_str_eq(r.column, "ID");
    cfg_table_clear(&r.table);
    free(r.column);
    ck_assert(!cfg_ref_from("users", 5, &r, &why));
    ck_assert_ptr_nonnull(strstr(why.msg, "expected at least 2"));
    ck_assert(!cfg_ref_from("a.b.c.d", 7, &r, &why));
    ck_assert_int_eq(why.at, 5);
    ck_assert(!cfg_ref_from("users.\"\"", 8, &r, &why));
}
END_TEST

START_TEST(name_show)
{
    char buf[300];

    cfg_name_show(buf, sizeof buf, "public", "users");
    ck_assert_str_eq(buf, "public.users");
    cfg_name_show(buf, sizeof buf, "Sales", "a\"b c");
    ck_assert_str_eq(buf, "\"Sales\".\"a\"\"b c\"");
}
END_TEST

/* ------------------------------------------------------- hostile names */

static const char hostile[] =
    "name: hostile\n"
    "source: {dsn: 'dbname=shop'}\n"
    "services:\n"
    "  weird:\n"
    "    owned_tables:\n"
    "      - '\"Patient Notes\"'\n"
    "      - '\"Robert''); DROP TABLE students;--\"'\n"
    "      - '\"SELECT\"'\n"
    "      - select\n"
    "      - '\"MixedCase\"'\n"
    "      - MixedCase\n"
    "      - '\"sch ema\".\"ta\"\"ble\"'\n"
    "      - \xc3\x84" "BC\n"
    "      - '\"\xe6\x97\xa5\xe6\x9c\xac\"'\n"
    "      - '\"a.b\"'\n"
    "      - \"\\\"with\\ttab\\\"\"\n"
    "    shared_tables: ['none']\n"
    "    references: ['\"Other Schema\".\"T\".\"Col \"\"x\"\"\"']\n"
    "    target: {postgres: 'dbname=weird_db'}\n";

START_TEST(hostile_names)
{
    static const char *const want[][2] = {
        {"public", "Patient Notes"},
        {"public", "Robert'); DROP TABLE students;--"},
        {"public", "SELECT"}, {"public", "select"},
        {"public", "MixedCase"}, {"public", "mixedcase"},
        {"sch ema", "ta\"ble"}, {"public", "\xc3\x84" "bc"},
        {"public", "\xe6\x97\xa5\xe6\x9c\xac"}, {"public", "a.b"},
        {"public", "with\ttab"},
    };
    cfg *c = parse_ok(hostile);
    const cfg_service *s = &c->services[0];

    ck_assert_uint_eq(s->n_owned, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < s->n_owned; i++) {
        ck_assert_str_eq(s->owned[i].schema, want[i][0]);
        ck_assert_str_eq(s->owned[i].name, want[i][1]);
        ck_assert_ptr_eq(cfg_owner(c, want[i][0], want[i][1]), s);
    }
    ck_assert_uint_eq(s->n_shared, 1);   /* a quoted 'none' is a table */
    ck_assert_str_eq(s->shared[0].name, "none");
    ck_assert_str_eq(s->refs[0].table.schema, "Other Schema");
    ck_assert_str_eq(s->refs[0].table.name, "T");
    ck_assert_str_eq(s->refs[0].column, "Col \"x\"");
    cfg_free(c);
}
END_TEST

/* ------------------------------------------------------------ bad files */

#define MAX_BAD 128
static char *bad_files[MAX_BAD];
static int n_bad;

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list_bad_files(void)
{
    char dir[PATH_MAX];
    DIR *d;
    struct dirent *e;

    snprintf(dir, sizeof dir, "%s/tests/config/bad", srcdir());
    d = opendir(dir);
    if (!d)
        return;
    while ((e = readdir(d)) && n_bad < MAX_BAD) {
        size_t n = strlen(e->d_name);
        if (n > 5 && strcmp(e->d_name + n - 5, ".yaml") == 0 &&
            asprintf(&bad_files[n_bad], "%s/%s", dir, e->d_name) > 0)
            n_bad++;
    }
    closedir(d);
    qsort(bad_files, (size_t)n_bad, sizeof bad_files[0], by_name);
}

START_TEST(enough_bad_files)
{
    ck_assert_int_ge(n_bad, 20);
}
END_TEST

/* Reads "# expect: L:C: text" and "# absent: text" lines from the top. */
static void read_expectations(const char *path, cfg_pos *pos, char *text,
                              char absent[4][128])
{
    char line[512];
    FILE *f = fopen(path, "r");
    int n_abs = 0;

    ck_assert_msg(f != NULL, "cannot open %s", path);
    ck_assert_msg(fgets(line, sizeof line, f) &&
                  sscanf(line, "# expect: %d:%d: %255[^\n]", &pos->line,
                         &pos->col, text) == 3,
                  "%s: no '# expect: L:C: text' first line", path);
    while (n_abs < 4 && fgets(line, sizeof line, f) &&
           sscanf(line, "# absent: %127[^\n]", absent[n_abs]) == 1)
        n_abs++;
    fclose(f);
}

START_TEST(bad_file)
{
    const char *path = bad_files[_i];
    char text[256], absent[4][128] = {{0}}, prefix[PATH_MAX + 40];
    char err[1024];
    cfg_pos pos;
    cfg *c;

    read_expectations(path, &pos, text, absent);
    c = cfg_load(path, err, sizeof err);
    ck_assert_msg(c == NULL, "%s loaded", path);
    snprintf(prefix, sizeof prefix, "%s:%d:%d: ", path, pos.line, pos.col);
    ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0,
                  "want prefix '%s', got '%s'", prefix, err);
    ck_assert_msg(strstr(err, text), "want '%s' in '%s'", text, err);
    ck_assert_msg(!strchr(err, '\n'), "message spans lines: %s", err);
    for (int i = 0; i < 4 && absent[i][0]; i++)
        ck_assert_msg(!strstr(err, absent[i]), "'%s' leaked: %s", absent[i],
                      err);
}
END_TEST

START_TEST(unreadable_files)
{
    char err[512], dir[PATH_MAX + 32];

    ck_assert_ptr_null(cfg_load("/nonexistent/cleave.yaml", err, sizeof err));
    ck_assert_str_eq(err, "/nonexistent/cleave.yaml: cannot read: "
                          "No such file or directory");
    snprintf(dir, sizeof dir, "%s/tests/config", srcdir());
    ck_assert_ptr_null(cfg_load(dir, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, ": cannot read: Is a directory"));
    /* No buffer for the message: still just NULL. */
    ck_assert_ptr_null(cfg_parse("[", 1, "x", NULL, 0));
}
END_TEST

START_TEST(empty_inputs)
{
    static const char *const texts[] = {"", "# only a comment\n", "---\n",
                                        "\n\n"};
    char err[512];

    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        ck_assert_ptr_null(cfg_parse(texts[i], strlen(texts[i]), "e.yaml",
                                     err, sizeof err));
        ck_assert_msg(strncmp(err, "e.yaml:1:1: the file holds no "
                              "configuration", 41) == 0, "%s", err);
    }
}
END_TEST

START_TEST(password_never_in_errors)
{
    static const char *const dsns[] = {
        "host=db password=hunter2 hunter3",
        "password='hunter2 hunter3",
        "postgresql://u:hunter2@[::1/db",
        "postgres://u:hunter2@db/x?sslmode=hunter3&bad",
        "postgresql://u:hunter2@db/x?hunter3=1",
    };
    char text[512], err[1024];

    for (size_t i = 0; i < sizeof dsns / sizeof dsns[0]; i++) {
        snprintf(text, sizeof text, "name: x\nsource:\n  dsn: \"%s\"\n",
                 dsns[i]);
        ck_assert_ptr_null(cfg_parse(text, strlen(text), "p.yaml", err,
                                     sizeof err));
        ck_assert_msg(strncmp(err, "p.yaml:3:8: source.dsn: ", 24) == 0,
                      "%s", err);
        ck_assert_msg(!strstr(err, "hunter"), "leaked: %s", err);
    }
}
END_TEST

/* ------------------------------------------------------------ redaction */

static bool has_word(const char *s, const char *w)
{
    size_t n = strlen(w);

    for (const char *p = strstr(s, w); p; p = strstr(p + 1, w))
        if ((p == s || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
            return true;
    return false;
}

START_TEST(redact_keywords)
{
    char *r = cfg_dsn_redacted("host=db port=5433 dbname=shop user=cleave "
                               "password=hunter2 sslpassword=keypass");

    ck_assert_ptr_nonnull(r);
    ck_assert_msg(!strstr(r, "hunter2") && !strstr(r, "keypass"), "%s", r);
    ck_assert(has_word(r, "password=********"));
    ck_assert(has_word(r, "sslpassword=********"));
    ck_assert(has_word(r, "host=db") && has_word(r, "port=5433"));
    ck_assert(has_word(r, "dbname=shop") && has_word(r, "user=cleave"));
    free(r);
    r = cfg_dsn_redacted("dbname=shop");
    ck_assert_str_eq(r, "dbname=shop");
    free(r);
}
END_TEST

START_TEST(redact_uri)
{
    char *r = cfg_dsn_redacted("postgresql://cleave:hunter2@db.example:5433"
                               "/shop?sslmode=require");

    ck_assert_msg(!strstr(r, "hunter2"), "%s", r);
    ck_assert(has_word(r, "password=********"));
    ck_assert(has_word(r, "host=db.example") && has_word(r, "port=5433"));
    ck_assert(has_word(r, "dbname=shop") && has_word(r, "user=cleave"));
    ck_assert(has_word(r, "sslmode=require"));
    free(r);
}
END_TEST

/* Values with spaces and quotes come back quoted so libpq reads them the
 * same; an unparsable string gives nothing of itself away. */
START_TEST(redact_quoting)
{
    char *r = cfg_dsn_redacted("application_name='my app' dbname='it\\'s' "
                               "options='a\\\\b' password='x y'");
    PQconninfoOption *o = PQconninfoParse(r, NULL);

    ck_assert_msg(o != NULL, "redacted string does not parse: %s", r);
    for (PQconninfoOption *p = o; p->keyword; p++) {
        if (strcmp(p->keyword, "application_name") == 0)
            ck_assert_str_eq(p->val, "my app");
        if (strcmp(p->keyword, "dbname") == 0)
            ck_assert_str_eq(p->val, "it's");
        if (strcmp(p->keyword, "options") == 0)
            ck_assert_str_eq(p->val, "a\\b");
        if (strcmp(p->keyword, "password") == 0)
            ck_assert_str_eq(p->val, "********");
    }
    PQconninfoFree(o);
    free(r);
    r = cfg_dsn_redacted("host=db password=hunter2 hunter3");
    ck_assert_str_eq(r, "(unparsable connection string)");
    free(r);
}
END_TEST

/* ------------------------------------------------------------- describe */

START_TEST(describe_mentions_every_key)
{
    static const char *const keys[] = {
        "name", "source", "state_dir", "status_socket", "log_level", "kafka",
        "services", "dsn", "slot", "publication", "heartbeat_interval",
        "brokers", "topic", "properties", "owned_tables", "shared_tables",
        "references", "target", "on_conflict", "postgres", "copy_workers",
        "copy_split_size",
        "loop_prevention", "failover_slot", "tombstones", "truncate_events",
        "transaction_metadata", "transaction_topic", "message_topic",
        "messages",
    };
    char *out = NULL, want[64];
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);

    cfg_describe(f);
    fclose(f);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        snprintf(want, sizeof want, "| `%s` |", keys[i]);
        ck_assert_msg(strstr(out, want), "%s missing from:\n%s", keys[i],
                      out);
    }
    ck_assert_ptr_nonnull(strstr(out, "`log_level` | enum: debug"));
    ck_assert_ptr_nonnull(strstr(out, "| `info` | yes |"));
    ck_assert_ptr_nonnull(strstr(out, "| `/var/lib/cleave` | no |"));
    ck_assert_ptr_nonnull(strstr(out, "`cleave_<name>`"));
    ck_assert_ptr_nonnull(strstr(out, "| `services.<service>.target` | "
                                      "`kafka` | bool | `false` |"));
    ck_assert_ptr_nonnull(strstr(out, "| `kafka` | `tombstones` | bool | "
                                      "`true` |"));
    ck_assert_ptr_nonnull(strstr(out, "| `kafka` | `transaction_topic` | "
                                      "string | `{name}.transaction` |"));
    ck_assert_ptr_nonnull(strstr(out, "| `services.<service>` | `messages` | "
                                      "list of strings | `[none]` |"));
    free(out);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("load");

    tcase_add_test(tc, example_top_level);
    tcase_add_test(tc, example_services);
    tcase_add_test(tc, example_owners);
    tcase_add_test(tc, defaults);
    tcase_add_test(tc, explicit_values);
    tcase_add_test(tc, kafka_after_services);
    tcase_add_test(tc, kafka_defaults);
    tcase_add_test(tc, kafka_explicit);
    tcase_add_test(tc, messages_parsed);
    tcase_add_loop_test(tc, wants_message, 0, sizeof wants / sizeof wants[0]);
    tcase_add_loop_test(tc, duration_values, 0,
                        sizeof durations / sizeof durations[0]);
    tcase_add_loop_test(tc, size_values, 0, sizeof sizes / sizeof sizes[0]);
    tcase_add_test(tc, bool_values);
    tcase_add_test(tc, log_level_names);
    tcase_add_test(tc, hostile_names);
    suite_add_tcase(s, tc);

    tc = tcase_create("names");
    tcase_add_loop_test(tc, name_grammar, 0, sizeof names / sizeof names[0]);
    tcase_add_test(tc, name_public_api);
    tcase_add_test(tc, reference_grammar);
    tcase_add_test(tc, name_show);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_test(tc, enough_bad_files);
    tcase_add_loop_test(tc, bad_file, 0, n_bad);
    tcase_add_test(tc, unreadable_files);
    tcase_add_test(tc, empty_inputs);
    tcase_add_test(tc, password_never_in_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("dsn_describe");
    tcase_add_test(tc, redact_keywords);
    tcase_add_test(tc, redact_uri);
    tcase_add_test(tc, redact_quoting);
    tcase_add_test(tc, describe_mentions_every_key);
    tcase_add_test(tc, diff_names_each_key);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr;
    int failed;

    list_bad_files();
    sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    for (int i = 0; i < n_bad; i++)
        free(bad_files[i]);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
