/*
 * cleave run into Kafka end to end: the real binary, the shop fixtures in
 * a real PostgreSQL, librdkafka's mock cluster in a process of its own
 * (tests/support/kmock.c), and a real consumer reading every topic back
 * (PRODUCT.md §3 point 5, §5).
 */
#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "decoder/lsn.h"
#include "tests/support/kafka.h"
#include "tests/support/runcmd.h"
#include "tests/support/shopenv.h"

static pgc_cluster *src, *tgt;

#define WAIT_S 180

static const char *const mix[] = {
    "new_order.sql@4", "user_update.sql@3", "inventory.sql@3",
    "notification.sql@2", "refund.sql@1", NULL,
};

/* ---- helpers ------------------------------------------------------------ */

/* Inserts text after the first line equal to `after` in the config. */
static void config_insert(shop_env *env, const char *after, const char *text)
{
    FILE *f = fopen(env->config, "r");
    ck_assert(f);
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *at = strstr(buf, after);
    ck_assert_msg(at, "no '%s' in the configuration", after);
    at += strlen(after);
    f = fopen(env->config, "w");
    ck_assert(f);
    fwrite(buf, 1, (size_t)(at - buf), f);
    fputs(text, f);
    fputs(at, f);
    fclose(f);
}

/* Every service publishes to the mock too; `kafka_yaml` adds keys. */
/* Every service with a Kafka target; `props` are kafka.properties. */
static void setup_props(shop_env *env, kt_mock *mock, const char *name,
                        int scale, const char *kafka_yaml, const char *props)
{
    const char *svc = "      kafka: true\n";
    ck_assert(scale ? shop_setup_copy(env, src, tgt, name, scale, NULL, svc)
                    : shop_setup(env, src, tgt, name, NULL, svc));
    char yaml[1024];
    snprintf(yaml, sizeof yaml, "kafka:\n  brokers: \"%s\"\n"
             "  properties: {%s}\n%s", kt_mock_bootstrap(mock), props,
             kafka_yaml ? kafka_yaml : "");
    ck_assert(shop_config_append(env, yaml));
}

static void setup(shop_env *env, kt_mock *mock, const char *name, int scale,
                  const char *kafka_yaml)
{
    setup_props(env, mock, name, scale, kafka_yaml,
                "message.timeout.ms: \"20000\"");
}

static void topic_of(const shop_env *env, const char *table, char *out,
                     size_t len)
{
    snprintf(out, len, "%s.public.%s", env->name, table);
}

static void read_topic(kt_mock *mock, const char *topic, kt_set *set)
{
    char err[512];
    ck_assert_msg(kt_read_topic(kt_mock_bootstrap(mock), topic, set, err,
                                sizeof err), "%s: %s", topic, err);
}

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *j = text ? json_loads(text, 0, &e) : NULL;
    ck_assert_msg(!text || j, "not JSON (%s): %s", e.text, text);
    return j;
}

static const char *op_of(json_t *v)
{
    return json_string_value(json_object_get(v, "op"));
}

static json_t *field(json_t *v, const char *part, const char *name)
{
    return json_object_get(json_object_get(v, part), name);
}

/*
 * The rows a keyed topic describes once every event is applied in order:
 * key text -> present. Returns the number of keys present. A hash table
 * (open addressing; a NULL key is a free slot): topics hold tens of
 * thousands of events, and a list searched for each made this suite's
 * own CPU its longest cost under the sanitizers.
 */
typedef struct keyset {
    char **keys;
    bool *live;
    size_t n, cap;      /* cap: a power of two, over twice n */
} keyset;

static size_t key_slot(const keyset *ks, const char *key)
{
    uint64_t h = 14695981039346656037u;  /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 1099511628211u;
    size_t i = (size_t)h & (ks->cap - 1);
    while (ks->keys[i] && strcmp(ks->keys[i], key) != 0)
        i = (i + 1) & (ks->cap - 1);
    return i;
}

static void keyset_grow(keyset *ks)
{
    keyset big = {.n = ks->n, .cap = ks->cap ? 2 * ks->cap : 1024};
    big.keys = calloc(big.cap, sizeof *big.keys);
    big.live = calloc(big.cap, sizeof *big.live);
    ck_assert(big.keys && big.live);
    for (size_t i = 0; i < ks->cap; i++)
        if (ks->keys[i]) {
            size_t j = key_slot(&big, ks->keys[i]);
            big.keys[j] = ks->keys[i];
            big.live[j] = ks->live[i];
        }
    free(ks->keys);
    free(ks->live);
    *ks = big;
}

static size_t keyset_apply(keyset *ks, const kt_set *set, size_t *snap_last)
{
    for (size_t i = 0; i < set->n; i++) {
        const kt_rec *r = &set->r[i];
        if (!r->key || !r->value)
            continue;
        json_t *v = parse(r->value);
        const char *op = op_of(v);
        const char *snap = json_string_value(field(v, "source", "snapshot"));
        if (snap && strcmp(snap, "last") == 0)
            (*snap_last)++;
        if ((ks->n + 1) * 2 > ks->cap)
            keyset_grow(ks);
        size_t k = key_slot(ks, r->key);
        if (!ks->keys[k]) {
            ck_assert((ks->keys[k] = strdup(r->key)) != NULL);
            ks->n++;
        }
        ks->live[k] = op && strcmp(op, "d") != 0;
        json_decref(v);
    }
    size_t present = 0;
    for (size_t k = 0; k < ks->cap; k++)
        present += ks->keys[k] && ks->live[k];
    return present;
}

static void keyset_free(keyset *ks)
{
    for (size_t k = 0; k < ks->cap; k++)
        free(ks->keys[k]);
    free(ks->keys);
    free(ks->live);
}

static long query_long(const pgc_cluster *c, const char *db, const char *sql)
{
    char *v = pgc_query_value(c, db, sql);
    ck_assert_msg(v != NULL, "%s", sql);
    long n = atol(v);
    free(v);
    return n;
}

/*
 * Waits until the events of every table with an `id` key, applied in
 * order, give exactly the source's ids: nothing lost, deletes included.
 * Counts the snapshot's "last" markers seen.
 */
static const char *const id_tables[] = {
    "users", "orders", "payments", "refunds", "products", "inventory",
    "notifications", NULL,
};

static bool topics_match_source(shop_env *env, kt_mock *mock, double timeout_s,
                                size_t *snap_last)
{
    double deadline = shop_now_s() + timeout_s;
    for (int t = 0; id_tables[t]; t++) {
        char topic[256], sql[256];
        topic_of(env, id_tables[t], topic, sizeof topic);
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", id_tables[t]);
        for (;;) {
            long want = query_long(src, env->srcdb, sql);
            kt_set set = {0};
            keyset ks = {0};
            size_t last = 0;
            read_topic(mock, topic, &set);
            size_t got = keyset_apply(&ks, &set, &last);
            kt_set_free(&set);
            keyset_free(&ks);
            if ((long)got == want) {
                *snap_last += last;
                break;
            }
            if (shop_now_s() > deadline) {
                fprintf(stderr, "%s: %zu rows from the events, %ld in the "
                        "source\n", topic, got, want);
                return false;
            }
            struct timespec ts = {0, 200 * 1000 * 1000};  /* a deadline poll */
            nanosleep(&ts, NULL);
        }
    }
    return true;
}

static void wait_log_or_abort(shop_env *env, const char *text, long from)
{
    if (!shop_wait_log(env, text, from, WAIT_S)) {
        shop_log_tail(env, 60);
        ck_abort_msg("%s: no '%s' in the log", env->name, text);
    }
}

static void caught_up_or_abort(shop_env *env)
{
    if (!shop_wait_caught_up(env, WAIT_S)) {
        shop_log_tail(env, 80);
        ck_abort_msg("%s: cleave did not catch up", env->name);
    }
}

static void stop_cleanly(shop_env *env, kt_mock *mock)
{
    int rc = shop_stop(env, SIGTERM, 60);
    if (rc != 0)
        shop_log_tail(env, 60);
    ck_assert_msg(rc == 0, "cleave exited %d on SIGTERM", rc);
    shop_teardown(env);
    ck_assert_int_eq(kt_mock_stop(mock), 0);
}

/* Waits until topic has at least n records; returns them. */
static void wait_records(shop_env *env, kt_mock *mock, const char *topic,
                         size_t n, kt_set *set)
{
    char err[512];
    if (!kt_wait_count(kt_mock_bootstrap(mock), topic, n, WAIT_S * 1000, set,
                       err, sizeof err)) {
        shop_log_tail(env, 40);
        ck_abort_msg("%s: %zu records, %zu expected (%s)", topic, set->n, n,
                     err);
    }
}

/* The records of one partition with a given key, in offset order. */
static size_t with_key(const kt_set *set, const char *key, const kt_rec **out,
                       size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < set->n && n < max; i++)
        if ((key == NULL) == (set->r[i].key == NULL) &&
            (!key || strcmp(set->r[i].key, key) == 0))
            out[n++] = &set->r[i];
    return n;
}

/*
 * While the brokers are down, `cleave status` shows a Kafka sink in error
 * with the reason (the PostgreSQL sinks go on).
 */
static void assert_kafka_error_in_status(const shop_env *env)
{
    char *argv[] = {(char *)shop_cleave_bin(), "status", "-c",
                    (char *)env->config, "--json", NULL};
    rc_result r;
    ck_assert(rc_run(argv, &r));
    ck_assert_msg(r.status == 0, "cleave status: %d %s", r.status, r.err);
    json_t *st = parse(r.out);
    bool seen = false;
    size_t i, j;
    json_t *svc, *snk;
    json_array_foreach(json_object_get(st, "services"), i, svc)
        json_array_foreach(json_object_get(svc, "sinks"), j, snk) {
            const char *kind = json_string_value(json_object_get(snk, "kind"));
            const char *state = json_string_value(json_object_get(snk, "state"));
            const char *why = json_string_value(json_object_get(snk, "last_error"));
            if (strcmp(kind, "kafka") == 0 && strcmp(state, "error") == 0) {
                seen = true;
                ck_assert_msg(why && strstr(why, "broker"), "last_error: %s",
                              why ? why : "null");
                ck_assert_str_eq(json_string_value(json_object_get(svc, "state")),
                                 "error");
            }
            if (strcmp(kind, "postgres") == 0)
                ck_assert_str_ne(state, "error");
        }
    ck_assert_msg(seen, "no Kafka sink in error: %s", r.out);
    json_decref(st);
    rc_free(&r);
}

/* An END event for a transaction of two rows, both of public.users. */
static bool end_for_two_users(const kt_set *txns)
{
    bool found = false;
    for (size_t i = 0; i < txns->n && !found; i++) {
        json_t *v = parse(txns->r[i].value);
        const char *st = json_string_value(json_object_get(v, "status"));
        json_t *colls = json_object_get(v, "data_collections");
        if (st && strcmp(st, "END") == 0 &&
            json_integer_value(json_object_get(v, "event_count")) == 2 &&
            json_array_size(colls) == 1)
            found = strcmp(json_string_value(json_object_get(
                json_array_get(colls, 0), "data_collection")),
                "public.users") == 0;
        json_decref(v);
    }
    return found;
}

/*
 * Each change event's source.lsn is its own, as Debezium's: the second
 * half of source.sequence, below its transaction's commit LSN (the
 * transaction.id says it), rising with the offset among a transaction's
 * events in a partition. Returns
 * how many events had an LSN no other event of the set had.
 */
static size_t own_lsns(const kt_set *set)
{
    json_int_t *seen = calloc(set->n + 1, sizeof *seen);
    json_int_t *txid = calloc(set->n + 1, sizeof *txid);
    size_t n = 0, unique = 0;
    ck_assert(seen && txid);
    for (size_t i = 0; i < set->n; i++) {
        json_t *v = parse(set->r[i].value);
        if (!v)
            continue;                       /* a tombstone */
        json_int_t lsn = json_integer_value(field(v, "source", "lsn"));
        const char *seq = json_string_value(field(v, "source", "sequence"));
        const char *id = json_string_value(field(v, "transaction", "id"));
        const char *own = seq ? strrchr(seq, ',') : NULL;
        ck_assert_msg(own && strtoll(own + 2, NULL, 10) == lsn,
                      "sequence %s, lsn %lld", seq ? seq : "-", (long long)lsn);
        ck_assert_msg(!id || lsn < strtoll(strchr(id, ':') + 1, NULL, 10),
                      "lsn %lld past its commit (%s)", (long long)lsn, id);
        txid[i] = json_integer_value(field(v, "source", "txId"));
        for (size_t j = 0; j < i; j++)
            ck_assert(set->r[j].partition != set->r[i].partition ||
                      txid[j] != txid[i] || seen[j] < lsn);
        seen[i] = lsn;
        n++;
        json_decref(v);
    }
    for (size_t i = 0; i < set->n; i++) {
        size_t same = 0;
        for (size_t j = 0; seen[i] && j < set->n; j++)
            same += seen[j] == seen[i];
        unique += same == 1;
    }
    free(seen);
    free(txid);
    ck_assert_uint_gt(n, 0);
    return unique;
}

/* ---- tests -------------------------------------------------------------- */

static const char change_sql[] =
    "BEGIN;"
    "INSERT INTO users (external_id, email, full_name, bio, avatar, birth_date,"
    "  tags, last_login_at, login_count) OVERRIDING SYSTEM VALUE VALUES"
    "  ('6f1c2a5e-0000-4000-8000-000000000001', 'a@x.io', 'A', "
    "   (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 2000) i),"
    "   '\\x0102ff', '1990-05-17', ARRAY['x', NULL, 'a \"b\"'],"
    "   '2024-01-31 23:30:00.5-02', 7),"
    "  ('6f1c2a5e-0000-4000-8000-000000000002', 'b@x.io', 'B', NULL, NULL,"
    "   NULL, NULL, NULL, 0);"
    "SELECT pg_logical_emit_message(true, 'outbox.user', 'hello');"
    "COMMIT;"
    "INSERT INTO user_preferences (user_id, settings) SELECT id, "
    "  '{\"k\": [1, 2]}' FROM users WHERE email = 'a@x.io';"
    "UPDATE users SET login_count = login_count + 1 WHERE email = 'a@x.io';"
    "UPDATE user_preferences SET user_id = (SELECT id FROM users WHERE "
    "  email = 'b@x.io');"
    "DELETE FROM user_preferences;"
    "INSERT INTO user_sessions (session_token, user_id, ip_address, expires_at)"
    "  SELECT '6f1c2a5e-0000-4000-8000-0000000000aa', id, '10.0.0.1',"
    "  '2030-01-01 00:00:00+00' FROM users WHERE email = 'a@x.io';"
    "UPDATE user_sessions SET ip_address = '10.0.0.2';"
    "DELETE FROM user_sessions;"
    "TRUNCATE user_sessions;"
    "SELECT pg_logical_emit_message(false, 'outbox.user', 'lone');"
    "SELECT pg_logical_emit_message(true, 'other', 'not published');"
    "INSERT INTO warehouses (code, name, country_code, latitude, longitude,"
    "  dispatch_cutoff, capacity) VALUES ('W1', 'W', 'DE', 'NaN', "
    "  '-Infinity', '17:30', 10);"
    "INSERT INTO products (sku, name, price, avg_rating, attributes) VALUES"
    "  ('S1', 'P', 12.50, 4.5, '{\"a\": 1}');"
    "INSERT INTO notification_templates (code, channel, body, retry_after)"
    "  VALUES ('t1', 'email', 'b', '1 day 02:00:00');";

/* Every op code, tombstones, the TOAST placeholder, messages, metadata. */
START_TEST(change_events)
{
    shop_env env;
    kt_mock *mock = kt_mock_start(NULL);
    ck_assert(mock);
    setup(&env, mock, "kev", 0, "  truncate_events: true\n"
          "  transaction_metadata: true\n");
    config_insert(&env, "  user_service:\n", "    messages: [\"outbox.*\"]\n");
    /* A pattern that matches cleave's own messages too. */
    config_insert(&env, "  order_service:\n", "    messages: [\"cleave*\"]\n");
    /* Large transactions stream in blocks, spooled until their commit. */
    char alter[256];
    snprintf(alter, sizeof alter, "ALTER DATABASE %s SET "
             "logical_decoding_work_mem = '64kB'", env.srcdb);
    ck_assert(pgc_exec(src, "postgres", alter));
    /* Its own text settings are not the events' (nor the copy's). */
    snprintf(alter, sizeof alter, "ALTER DATABASE %s SET datestyle = "
             "'SQL, DMY'", env.srcdb);
    ck_assert(pgc_exec(src, "postgres", alter));
    snprintf(alter, sizeof alter, "ALTER DATABASE %s SET intervalstyle = "
             "'sql_standard'", env.srcdb);
    ck_assert(pgc_exec(src, "postgres", alter));
    ck_assert(shop_start(&env));
    ck_assert(shop_wait_streaming(&env, WAIT_S));
    ck_assert(pgc_exec(src, env.srcdb, change_sql));

    char topic[256];
    kt_set users = {0}, prefs = {0}, sess = {0}, msgs = {0}, txns = {0},
           wh = {0}, prod = {0}, tmpl = {0};
    topic_of(&env, "users", topic, sizeof topic);
    wait_records(&env, mock, topic, 3, &users);
    topic_of(&env, "user_preferences", topic, sizeof topic);
    /* c, then d + tombstone + c for the key change, then d + tombstone */
    wait_records(&env, mock, topic, 6, &prefs);
    topic_of(&env, "user_sessions", topic, sizeof topic);
    wait_records(&env, mock, topic, 4, &sess);
    topic_of(&env, "warehouses", topic, sizeof topic);
    wait_records(&env, mock, topic, 1, &wh);
    topic_of(&env, "products", topic, sizeof topic);
    wait_records(&env, mock, topic, 1, &prod);
    topic_of(&env, "notification_templates", topic, sizeof topic);
    wait_records(&env, mock, topic, 1, &tmpl);
    snprintf(topic, sizeof topic, "%s.message", env.name);
    wait_records(&env, mock, topic, 2, &msgs);
    snprintf(topic, sizeof topic, "%s.transaction", env.name);
    wait_records(&env, mock, topic, 2, &txns);

    /* users: two creates, then an update leaving bio (TOAST) unchanged. */
    ck_assert_uint_eq(users.n, 3);
    const kt_rec *ua[3];
    json_t *key = parse(users.r[0].key);
    ck_assert(json_integer_value(json_object_get(key, "id")) > 0);
    json_decref(key);
    char akey[64];
    snprintf(akey, sizeof akey, "%s", users.r[0].key);
    json_t *first = parse(users.r[0].value);
    if (strcmp(json_string_value(field(first, "after", "email")), "a@x.io")) {
        json_decref(first);
        first = parse(users.r[1].value);
        snprintf(akey, sizeof akey, "%s", users.r[1].key);
    }
    ck_assert_uint_eq(with_key(&users, akey, ua, 3), 2);
    ck_assert_str_eq(op_of(first), "c");
    ck_assert(json_is_null(json_object_get(first, "before")));
    ck_assert_str_eq(json_string_value(field(first, "after", "avatar")), "AQL/");
    ck_assert_str_eq(json_string_value(field(first, "after", "birth_date")),
                     "1990-05-17");
    ck_assert_str_eq(json_string_value(field(first, "after", "last_login_at")),
                     "2024-02-01T01:30:00.5Z");
    ck_assert_str_eq(json_string_value(field(first, "after", "external_id")),
                     "6f1c2a5e-0000-4000-8000-000000000001");
    ck_assert(json_is_true(field(first, "after", "is_active")));
    ck_assert_int_eq(json_integer_value(field(first, "after", "login_count")), 7);
    json_t *tags = field(first, "after", "tags");
    ck_assert_uint_eq(json_array_size(tags), 3);
    ck_assert(json_is_null(json_array_get(tags, 1)));
    ck_assert_str_eq(json_string_value(json_array_get(tags, 2)), "a \"b\"");
    ck_assert_uint_eq(strlen(json_string_value(field(first, "after", "bio"))),
                      64000);
    json_t *src_block = json_object_get(first, "source");
    ck_assert_str_eq(json_string_value(json_object_get(src_block, "connector")),
                     "postgresql");
    ck_assert_str_eq(json_string_value(json_object_get(src_block, "name")), "kev");
    ck_assert_str_eq(json_string_value(json_object_get(src_block, "db")),
                     env.srcdb);
    ck_assert_str_eq(json_string_value(json_object_get(src_block, "table")),
                     "users");
    ck_assert_str_eq(json_string_value(json_object_get(src_block, "snapshot")),
                     "false");
    ck_assert(json_integer_value(json_object_get(src_block, "lsn")) > 0);
    ck_assert(json_integer_value(json_object_get(src_block, "txId")) > 0);
    ck_assert(json_is_object(json_object_get(first, "transaction")));
    json_t *upd = parse(ua[1]->value);
    ck_assert_str_eq(op_of(upd), "u");
    ck_assert_str_eq(json_string_value(field(upd, "after", "bio")),
                     "__debezium_unavailable_value");
    ck_assert_int_eq(json_integer_value(field(upd, "after", "login_count")), 8);
    json_decref(upd);
    json_decref(first);
    /* The two inserted together have LSNs of their own. */
    ck_assert_uint_eq(own_lsns(&users), 3);

    /* user_preferences: the key change is d, tombstone, c; then d, tombstone. */
    ck_assert_uint_eq(prefs.n, 6);
    const kt_rec *pa[6];
    size_t na = with_key(&prefs, prefs.r[0].key, pa, 6);
    const char *want_a[] = {"c", "d", NULL};
    ck_assert_uint_eq(na, 3);
    for (size_t i = 0; i < na; i++) {
        json_t *v = parse(pa[i]->value);
        if (want_a[i])
            ck_assert_str_eq(op_of(v), want_a[i]);
        else
            ck_assert(v == NULL);
        json_decref(v);
    }
    json_t *c0 = parse(pa[0]->value);
    ck_assert_str_eq(json_string_value(field(c0, "after", "settings")),
                     "{\"k\": [1, 2]}");
    json_decref(c0);

    /* user_sessions: no key (FULL, no primary key), whole old rows. */
    ck_assert_uint_eq(sess.n, 4);
    const char *want_s[] = {"c", "u", "d", "t"};
    for (size_t i = 0; i < 4; i++) {
        ck_assert(sess.r[i].key == NULL);
        json_t *v = parse(sess.r[i].value);
        ck_assert_str_eq(op_of(v), want_s[i]);
        if (i == 1 || i == 2)
            ck_assert_str_eq(json_string_value(field(v, "before", "ip_address")),
                             i == 1 ? "10.0.0.1" : "10.0.0.2");
        json_decref(v);
    }

    /* Floats: NaN and infinities as strings; time as it is. */
    json_t *w = parse(wh.r[0].value);
    ck_assert_str_eq(json_string_value(field(w, "after", "latitude")), "NaN");
    ck_assert_str_eq(json_string_value(field(w, "after", "longitude")),
                     "-Infinity");
    ck_assert_str_eq(json_string_value(field(w, "after", "dispatch_cutoff")),
                     "17:30:00");
    json_decref(w);
    /* numeric as a string, real as a number, jsonb and enum and interval
     * as their text. */
    json_t *p = parse(prod.r[0].value);
    ck_assert_str_eq(json_string_value(field(p, "after", "price")), "12.50");
    ck_assert(json_real_value(field(p, "after", "avg_rating")) == 4.5);
    ck_assert_str_eq(json_string_value(field(p, "after", "attributes")),
                     "{\"a\": 1}");
    json_decref(p);
    json_t *tm = parse(tmpl.r[0].value);
    ck_assert_str_eq(json_string_value(field(tm, "after", "retry_after")),
                     "1 day 02:00:00");
    ck_assert_str_eq(json_string_value(field(tm, "after", "channel")), "email");
    json_decref(tm);

    /* Messages: the two with the claimed prefix, not the other. */
    ck_assert_uint_eq(msgs.n, 2);
    json_t *m0 = parse(msgs.r[0].value), *m1 = parse(msgs.r[1].value);
    ck_assert_str_eq(op_of(m0), "m");
    ck_assert_str_eq(json_string_value(field(m0, "message", "prefix")),
                     "outbox.user");
    ck_assert_str_eq(json_string_value(field(m0, "message", "content")),
                     "aGVsbG8=");
    ck_assert_str_eq(json_string_value(field(m1, "message", "content")),
                     "bG9uZQ==");
    json_decref(m0);
    json_decref(m1);
    /* cleave's own messages (a heartbeat, a cut-over mark) are never
     * published, even where a pattern matches them: the next message
     * published is the one after them. */
    ck_assert(pgc_exec(src, env.srcdb,
        "SELECT pg_logical_emit_message(false, 'cleave_heartbeat', 'h');"
        "SELECT pg_logical_emit_message(false, 'cleave_mark', 'm');"
        "SELECT pg_logical_emit_message(false, 'outbox.user', 'after')"));
    char mtopic[256];
    snprintf(mtopic, sizeof mtopic, "%s.message", env.name);
    /* Confirmed past them: every sink published what it would. */
    caught_up_or_abort(&env);
    kt_set_free(&msgs);
    wait_records(&env, mock, mtopic, 3, &msgs);
    ck_assert_uint_eq(msgs.n, 3);
    json_t *m2 = parse(msgs.r[2].value);
    ck_assert_str_eq(json_string_value(field(m2, "message", "prefix")),
                     "outbox.user");
    json_decref(m2);

    /* Transaction metadata: the first transaction's END counts its rows. */
    double deadline = shop_now_s() + WAIT_S;
    while (!end_for_two_users(&txns) && shop_now_s() < deadline) {
        struct timespec ts = {0, 100 * 1000 * 1000};  /* a deadline poll */
        nanosleep(&ts, NULL);
        kt_set_free(&txns);
        /* All of it: a count met in one partition leaves the others unread. */
        read_topic(mock, topic, &txns);
    }
    ck_assert_msg(end_for_two_users(&txns), "no END for the two users "
                  "inserted");

    /* A streamed transaction, replayed from its spool: the same. */
    ck_assert(pgc_exec(src, env.srcdb, "INSERT INTO users (external_id, "
                       "email, full_name) SELECT gen_random_uuid(), 'bulk' || "
                       "g || '@x.io', 'bulk' FROM generate_series(1, 3000) g"));
    ck_assert_msg(pgc_wait_until(src, env.srcdb, "SELECT stream_txns > 0 FROM "
                                 "pg_stat_replication_slots WHERE slot_name "
                                 "= 'cleave_kev'", WAIT_S),
                  "the transaction was not streamed");
    kt_set_free(&users);
    topic_of(&env, "users", topic, sizeof topic);
    wait_records(&env, mock, topic, 3003, &users);
    ck_assert_uint_eq(own_lsns(&users), 3003);

    kt_set_free(&users);
    kt_set_free(&prefs);
    kt_set_free(&sess);
    kt_set_free(&msgs);
    kt_set_free(&txns);
    kt_set_free(&wh);
    kt_set_free(&prod);
    kt_set_free(&tmpl);
    stop_cleanly(&env, mock);
}
END_TEST

/*
 * REPLICA IDENTITY FULL on a table with a primary key: pgoutput flags
 * every column as identity, yet the events are keyed by the primary key,
 * as Debezium keys them; a key change is d, tombstone, c; a delete is d
 * and a tombstone, both keyed.
 */
START_TEST(full_identity_keyed_by_primary_key)
{
    shop_env env;
    kt_mock *mock = kt_mock_start(NULL);
    ck_assert(mock);
    setup(&env, mock, "kfull", 0, NULL);
    ck_assert(pgc_exec(src, env.srcdb,
        "ALTER TABLE user_preferences REPLICA IDENTITY FULL;"
        "INSERT INTO users (id, external_id, email, full_name) "
        "  OVERRIDING SYSTEM VALUE VALUES "
        "  (901, gen_random_uuid(), 'f1@x.io', 'F1'),"
        "  (902, gen_random_uuid(), 'f2@x.io', 'F2')"));
    ck_assert(shop_start(&env));
    ck_assert(shop_wait_streaming(&env, WAIT_S));
    ck_assert(pgc_exec(src, env.srcdb,
        "INSERT INTO user_preferences (user_id) VALUES (901);"
        "UPDATE user_preferences SET theme = 2;"
        "UPDATE user_preferences SET user_id = 902;"
        "DELETE FROM user_preferences"));
    char topic[256];
    kt_set set = {0};
    topic_of(&env, "user_preferences", topic, sizeof topic);
    /* c, u, then d + tombstone + c (the key change), then d + tombstone */
    wait_records(&env, mock, topic, 7, &set);
    ck_assert_uint_eq(set.n, 7);
    /* Each key's records in offset order (one partition per key). */
    static const char *const keys[] = {"{\"user_id\":901}", "{\"user_id\":902}"};
    static const char *const ops[2][4] = {{"c", "u", "d", NULL},
                                         {"c", "d", NULL, NULL}};
    static const size_t counts[] = {4, 3};
    for (int k = 0; k < 2; k++) {
        const kt_rec *rs[7];
        ck_assert_uint_eq(with_key(&set, keys[k], rs, 7), counts[k]);
        for (size_t i = 0; i < counts[k]; i++) {
            json_t *v = parse(rs[i]->value);
            if (ops[k][i])
                ck_assert_str_eq(op_of(v), ops[k][i]);
            else
                ck_assert_msg(v == NULL, "%s: record %zu is not a tombstone",
                              keys[k], i);
            json_decref(v);
        }
    }
    kt_set_free(&set);
    stop_cleanly(&env, mock);
}
END_TEST

/*
 * The initial copy as "r" events while a workload runs, then the stream:
 * every source row is in its topic, one "last" per service.
 */
START_TEST(initial_copy_then_stream)
{
    shop_env env;
    kt_mock *mock = kt_mock_start(NULL);
    ck_assert(mock);
    setup(&env, mock, "kcopy", 1, NULL);
    int bench = pgc_pgbench_start(src, env.srcdb, 4, 500, 1, mix);
    ck_assert(bench > 0);
    ck_assert(shop_start(&env));
    wait_log_or_abort(&env, "event=initial_sync_done", 0);
    ck_assert(pgc_pgbench_wait(bench));
    caught_up_or_abort(&env);
    size_t last = 0;
    if (!topics_match_source(&env, mock, WAIT_S, &last)) {
        shop_log_tail(&env, 60);
        ck_abort_msg("a topic misses rows of its table");
    }
    /* Every table was copied; one "last" row per service's snapshot. */
    last = 0;
    for (int t = 0; t < SHOP_NTABLES; t++) {
        char topic[256];
        kt_set set = {0};
        topic_of(&env, shop_tables[t], topic, sizeof topic);
        read_topic(mock, topic, &set);
        size_t reads = 0;
        for (size_t i = 0; i < set.n; i++) {
            json_t *v = parse(set.r[i].value);
            const char *snap = json_string_value(field(v, "source", "snapshot"));
            reads += v && strcmp(op_of(v), "r") == 0;
            last += snap && strcmp(snap, "last") == 0;
            json_decref(v);
        }
        ck_assert_msg(reads > 0, "%s: no snapshot events", topic);
        kt_set_free(&set);
    }
    ck_assert_msg(last == SHOP_NSERVICES, "%zu snapshot events marked last",
                  last);
    /* The Kafka loader reads COPY's text rows: no table goes in binary. */
    ck_assert_int_eq(shop_log_count(&env, "format=text", 0), SHOP_NTABLES);
    ck_assert_int_eq(shop_log_count(&env, "format=binary", 0), 0);
    ck_assert(shop_all_equal(&env));
    stop_cleanly(&env, mock);
}
END_TEST

/*
 * Brokers failing requests, then all down, under a workload: the sink
 * reports the error, keeps the slot, and loses nothing.
 */
START_TEST(broker_faults)
{
    shop_env env;
    kt_mock *mock = kt_mock_start(NULL);
    ck_assert(mock);
    setup(&env, mock, "kfault", 1, NULL);
    ck_assert(shop_start(&env));
    caught_up_or_abort(&env);
    long mark = shop_log_size(&env);
    /* Produce (API key 0) refused: NOT_LEADER (6), REQUEST_TIMED_OUT (7). */
    ck_assert(kt_mock_cmd(mock, "errors 0 6 6 7 6 7 6 7"));
    int bench = pgc_pgbench_start(src, env.srcdb, 2, 300, 1, mix);
    ck_assert(bench > 0);
    ck_assert(kt_mock_cmd(mock, "down 1"));
    ck_assert(kt_mock_cmd(mock, "down 2"));
    ck_assert(kt_mock_cmd(mock, "down 3"));
    wait_log_or_abort(&env, "sink=kafka lsn=", mark);
    assert_kafka_error_in_status(&env);
    ck_assert(pgc_pgbench_wait(bench));
    ck_assert(kt_mock_cmd(mock, "up 1"));
    ck_assert(kt_mock_cmd(mock, "up 2"));
    ck_assert(kt_mock_cmd(mock, "up 3"));
    size_t last = 0;
    if (!topics_match_source(&env, mock, WAIT_S, &last)) {
        shop_log_tail(&env, 60);
        ck_abort_msg("rows lost while the brokers failed");
    }
    caught_up_or_abort(&env);
    stop_cleanly(&env, mock);
}
END_TEST

/*
 * The commit LSN of a record's transaction, from its transaction metadata
 * ("<txId>:<commit LSN>"): source.lsn is the change's own, which may lie
 * below an earlier transaction's commit. 0 without metadata.
 */
static lsn_t commit_of(const kt_rec *r)
{
    json_t *v = parse(r->value);
    const char *id = json_string_value(field(v, "transaction", "id"));
    const char *colon = id ? strchr(id, ':') : NULL;
    lsn_t lsn = colon ? strtoull(colon + 1, NULL, 10) : 0;
    json_decref(v);
    return lsn;
}

/*
 * source.sequence's first half: the commit LSN of the transaction before
 * the record's (0 when null).
 */
static lsn_t last_commit_of(const kt_rec *r)
{
    json_t *v = parse(r->value);
    json_t *seq = parse(json_string_value(field(v, "source", "sequence")));
    const char *first = json_string_value(json_array_get(seq, 0));
    lsn_t lsn = first ? strtoull(first, NULL, 10) : 0;
    json_decref(seq);
    json_decref(v);
    return lsn;
}

static lsn_t checkpoint_lsn(const shop_env *env, const char *service)
{
    char path[700];
    snprintf(path, sizeof path, "%s/kafka/%s.json", env->state_dir, service);
    json_error_t e;
    json_t *doc = json_load_file(path, 0, &e);
    ck_assert_msg(doc, "%s: %s", path, e.text);
    lsn_t lsn = 0;
    ck_assert(lsn_parse(json_string_value(json_object_get(doc, "lsn")), &lsn));
    json_decref(doc);
    return lsn;
}

/*
 * SIGKILL under a workload, then a restart: nothing below the checkpoint
 * is produced again, nothing is lost, and each event's source.sequence
 * names a commit before its own (the first after the restart had null).
 */
START_TEST(killed_and_restarted)
{
    shop_env env;
    kt_mock *mock = kt_mock_start(NULL);
    ck_assert(mock);
    setup(&env, mock, "kkill", 1, "  transaction_metadata: true\n");
    ck_assert(shop_start(&env));
    caught_up_or_abort(&env);
    int bench = pgc_pgbench_start(src, env.srcdb, 2, 400, 1, mix);
    ck_assert(bench > 0);
    char topic[256];
    topic_of(&env, "orders", topic, sizeof topic);
    long orders = query_long(src, env.srcdb, "SELECT count(*) FROM orders");
    kt_set set = {0};
    wait_records(&env, mock, topic, (size_t)orders + 100, &set);
    kt_set_free(&set);
    ck_assert_int_eq(shop_stop(&env, SIGKILL, 30), 128 + SIGKILL);
    lsn_t ckpt = checkpoint_lsn(&env, "order_service");
    /* What each partition held when cleave died: later offsets are new. */
    int64_t ends[64] = {0};
    read_topic(mock, topic, &set);
    for (size_t i = 0; i < set.n; i++)
        if (set.r[i].partition < 64 && set.r[i].offset >= ends[set.r[i].partition])
            ends[set.r[i].partition] = set.r[i].offset + 1;
    kt_set_free(&set);
    ck_assert(pgc_pgbench_wait(bench));
    /* Orders after the kill whatever pgbench left: something to produce. */
    ck_assert(pgc_exec(src, env.srcdb, "INSERT INTO orders (order_uuid, "
                       "user_id, status, currency, item_count) SELECT "
                       "gen_random_uuid(), 1, 'pending', 'EUR', 0 "
                       "FROM generate_series(1, 3)"));
    ck_assert(shop_start(&env));
    caught_up_or_abort(&env);
    size_t last = 0;
    if (!topics_match_source(&env, mock, WAIT_S, &last)) {
        shop_log_tail(&env, 60);
        ck_abort_msg("rows lost across the kill");
    }
    read_topic(mock, topic, &set);
    size_t again = 0, fresh = 0;
    for (size_t i = 0; i < set.n; i++) {
        const kt_rec *r = &set.r[i];
        if (!r->value || r->partition >= 64 || r->offset < ends[r->partition])
            continue;
        fresh++;
        lsn_t commit = commit_of(r);
        ck_assert_msg(commit > 0, "no transaction metadata: %s", r->value);
        again += commit < ckpt;
        lsn_t before = last_commit_of(r);
        ck_assert_msg(before > 0 && before < commit, "source.sequence says "
                      "the commit before the one at %llu was at %llu",
                      (unsigned long long)commit,
                      (unsigned long long)before);
    }
    ck_assert_msg(fresh > 0, "nothing produced after the restart");
    kt_set_free(&set);
    ck_assert_msg(again == 0, "%zu events below the checkpoint produced again",
                  again);
    stop_cleanly(&env, mock);
}
END_TEST

/* A message the broker can never take stops that sink, says why, skips
 * nothing; the other sinks go on. */
START_TEST(undeliverable_stops_sink)
{
    shop_env env;
    kt_mock *mock = kt_mock_start(NULL);
    ck_assert(mock);
    setup(&env, mock, "kbig", 0, NULL);
    /* Replace the properties line: a small limit on message size. */
    config_insert(&env, "  properties: {message.timeout.ms: \"20000\"",
                  ", message.max.bytes: \"4000\"");
    ck_assert(shop_start(&env));
    caught_up_or_abort(&env);
    long mark = shop_log_size(&env);
    ck_assert(pgc_exec(src, env.srcdb,
        "INSERT INTO users (external_id, email, full_name, bio) VALUES "
        "(gen_random_uuid(), 'big@x.io', 'Big', (SELECT string_agg(md5(i::text),"
        " '') FROM generate_series(1, 400) i));"
        "INSERT INTO users (external_id, email, full_name) VALUES "
        "(gen_random_uuid(), 'small@x.io', 'Small');"));
    wait_log_or_abort(&env, "sink=kafka lsn=", mark);
    ck_assert(shop_log_count(&env, "too large", mark) > 0);
    /* The PostgreSQL target has both rows; Kafka has neither. */
    ck_assert(pgc_wait_until(tgt, env.dbs[0], "SELECT count(*) = 2 FROM users",
                             WAIT_S));
    char topic[256];
    kt_set set = {0};
    topic_of(&env, "users", topic, sizeof topic);
    read_topic(mock, topic, &set);
    ck_assert_uint_eq(set.n, 0);
    kt_set_free(&set);
    stop_cleanly(&env, mock);
}
END_TEST

/* ---- kafka.schemas ------------------------------------------------------ */

static bool is_base64(const char *s)
{
    size_t n = strlen(s);
    if (n % 4)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                    "0123456789+/", s[i]) && !(s[i] == '=' && i + 2 >= n))
            return false;
    return true;
}

/*
 * Whether payload is what Kafka Connect's JsonConverter reads as schema:
 * the JSON kind of every value its type's (float and double take the
 * strings NaN and the infinities, as Debezium writes them), bytes base64,
 * null only where optional. `where` names the value for the message.
 */
static bool conforms(json_t *schema, json_t *payload, const char *where)
{
    const char *type = json_string_value(json_object_get(schema, "type"));
    bool optional = json_is_true(json_object_get(schema, "optional"));
    bool ok;
    if (!type)
        return fprintf(stderr, "%s: no type\n", where), false;
    if (!payload || json_is_null(payload))
        ok = optional;
    else if (strcmp(type, "struct") == 0) {
        size_t i;
        json_t *f;
        ok = json_is_object(payload);
        json_array_foreach(json_object_get(schema, "fields"), i, f) {
            const char *name =
                json_string_value(json_object_get(f, "field"));
            ok = ok && conforms(f, json_object_get(payload, name), name);
        }
    } else if (strcmp(type, "array") == 0) {
        size_t i;
        json_t *e;
        ok = json_is_array(payload);
        json_array_foreach(payload, i, e)
            ok = ok && conforms(json_object_get(schema, "items"), e, where);
    } else if (strncmp(type, "int", 3) == 0)
        ok = json_is_integer(payload);
    else if (strcmp(type, "float") == 0 || strcmp(type, "double") == 0)
        ok = json_is_number(payload) || json_is_string(payload);
    else if (strcmp(type, "boolean") == 0)
        ok = json_is_boolean(payload);
    else if (strcmp(type, "bytes") == 0)
        ok = json_is_string(payload) &&
             is_base64(json_string_value(payload));
    else
        ok = json_is_string(payload) && strcmp(type, "string") == 0;
    if (!ok) {
        char *p = json_dumps(payload, JSON_ENCODE_ANY);
        fprintf(stderr, "%s: %s is no %s%s\n", where, p ? p : "?", type,
                optional ? "" : " (required)");
        free(p);
    }
    return ok;
}

/* A record's part as {"schema", "payload"}: the payload, checked. */
static json_t *connect_payload(json_t *msg, const char *want_name)
{
    json_t *schema = json_object_get(msg, "schema");
    json_t *payload = json_object_get(msg, "payload");
    ck_assert_msg(json_object_size(msg) == 2 && schema && payload,
                  "not a {schema, payload} envelope");
    ck_assert_str_eq(json_string_value(json_object_get(schema, "name")),
                     want_name);
    ck_assert_msg(conforms(schema, payload, want_name),
                  "%s: payload does not match its schema", want_name);
    return payload;
}

static const char schema_sql[] =
    "INSERT INTO users (external_id, email, full_name, avatar, birth_date,"
    "  tags, last_login_at) VALUES"
    "  ('6f1c2a5e-0000-4000-8000-000000000001', 'a@x.io', 'A', '\\x0102ff',"
    "   '1990-05-17', ARRAY['x', NULL], '2024-01-31 23:30:00.5-02');"
    "INSERT INTO orders (order_uuid, user_id, status, total_amount,"
    "  shipped_on, note) SELECT gen_random_uuid(), id, 'paid', 157.40,"
    "  '2024-02-02', NULL FROM users WHERE email = 'a@x.io';"
    "INSERT INTO warehouses (code, name, country_code, latitude, longitude,"
    "  dispatch_cutoff, capacity) VALUES ('W1', 'W', 'DE', 'NaN', 13.4,"
    "  '17:30', 10);"
    "INSERT INTO products (sku, name, price, avg_rating, tags, attributes,"
    "  thumbnail, list_price) VALUES ('S1', 'P', 12.50, 4.5, '{a,b}',"
    "  '{\"a\": 1}', '\\xff', 12.50);"
    "INSERT INTO notification_templates (code, channel, body, retry_after)"
    "  VALUES ('t1', 'email', 'b', '1 day 02:00:00');"
    "DELETE FROM warehouses WHERE code = 'W1';"
    "SELECT pg_logical_emit_message(true, 'outbox.user', 'hello');";

/*
 * Every record of a table's topic (the copy's and the stream's) in the
 * envelope, and at least one copied row; the after of its one create.
 */
static json_t *check_topic_records(shop_env *env, kt_mock *mock,
                                   const char *table)
{
    char topic[256], kname[300], vname[300];
    kt_set set = {0};
    json_t *after = NULL;
    size_t copied = 0;
    topic_of(env, table, topic, sizeof topic);
    snprintf(kname, sizeof kname, "%s.Key", topic);
    snprintf(vname, sizeof vname, "%s.Envelope", topic);
    read_topic(mock, topic, &set);
    for (size_t i = 0; i < set.n; i++) {
        json_t *k = parse(set.r[i].key), *v = parse(set.r[i].value);
        ck_assert_msg(k, "%s: a null key", topic);
        ck_assert(json_is_integer(json_object_get(connect_payload(k, kname),
                                                  "id")));
        json_t *p = v ? connect_payload(v, vname) : NULL;
        const char *op = p ? op_of(p) : "";
        copied += strcmp(op, "r") == 0;
        if (strcmp(op, "c") == 0) {
            ck_assert_msg(!after, "%s: more than one create", topic);
            after = json_incref(json_object_get(p, "after"));
        }
        json_decref(k);
        json_decref(v);
    }
    kt_set_free(&set);
    ck_assert_msg(copied > 0, "%s: no copied rows", topic);
    ck_assert_ptr_nonnull(after);
    return after;
}

/*
 * The schema of column `col` in the first event of table's topic: its
 * name and parameters, as JSON ("null" when absent).
 */
static void check_field_schema(shop_env *env, kt_mock *mock,
                               const char *table, const char *col,
                               const char *name, const char *params)
{
    char topic[256];
    kt_set set = {0};
    size_t i;
    json_t *f, *found = NULL;
    topic_of(env, table, topic, sizeof topic);
    wait_records(env, mock, topic, 1, &set);
    json_t *v = parse(set.r[0].value);
    json_t *after = json_array_get(json_object_get(json_object_get(v,
                                                                   "schema"),
                                                   "fields"), 1);
    json_array_foreach(json_object_get(after, "fields"), i, f)
        if (strcmp(json_string_value(json_object_get(f, "field")), col) == 0)
            found = f;
    ck_assert_msg(found, "%s: no field %s in the schema", topic, col);
    char *n = json_dumps(json_object_get(found, "name"), JSON_ENCODE_ANY);
    char *p = json_dumps(json_object_get(found, "parameters"),
                         JSON_ENCODE_ANY | JSON_COMPACT);
    ck_assert_str_eq(n ? n : "null", name);
    ck_assert_str_eq(p ? p : "null", params);
    free(n);
    free(p);
    json_decref(v);
    kt_set_free(&set);
}

/* The message or transaction topic: every record in the envelope. */
static void check_fixed_topic(shop_env *env, kt_mock *mock, const char *what,
                              size_t n, const char *kname, const char *vname)
{
    char topic[256];
    kt_set set = {0};
    snprintf(topic, sizeof topic, "%s.%s", env->name, what);
    wait_records(env, mock, topic, n, &set);
    for (size_t i = 0; i < set.n; i++) {
        json_t *k = parse(set.r[i].key), *v = parse(set.r[i].value);
        ck_assert_msg(k && v, "%s: a null key or value", topic);
        connect_payload(k, kname);
        connect_payload(v, vname);
        json_decref(k);
        json_decref(v);
    }
    kt_set_free(&set);
}

/*
 * kafka.schemas with precise decimals: every record of the shop's tables,
 * copied at scale 1 and streamed, read back by a real consumer, is Kafka Connect's {"schema", "payload"}
 * whose payload matches its schema as the JsonConverter reads it, with
 * Debezium's schema names; values as time.precision.mode=adaptive and
 * Connect's Decimal; a delete's tombstone keeps the key's envelope; the
 * message and transaction topics' events too.
 */
START_TEST(schemas_for_connect)
{
    shop_env env;
    kt_mock *mock = kt_mock_start(NULL);
    ck_assert(mock);
    setup(&env, mock, "kschema", 1,
          "  schemas: true\n  decimal_handling: precise\n"
          "  transaction_metadata: true\n");
    config_insert(&env, "  user_service:\n", "    messages: [\"outbox.*\"]\n");
    /* a domain over numeric(12,2): a Decimal, as its base type */
    ck_assert(pgc_exec(src, env.srcdb,
                       "CREATE DOMAIN price12 AS numeric(12,2);"
                       "ALTER TABLE products ADD COLUMN list_price price12;"));
    ck_assert(shop_start(&env));
    wait_log_or_abort(&env, "event=initial_sync_done", 0);
    ck_assert(pgc_exec(src, env.srcdb, schema_sql));
    caught_up_or_abort(&env);

    json_t *u = check_topic_records(&env, mock, "users");
    ck_assert_int_eq(json_integer_value(json_object_get(u, "birth_date")),
                     7441);
    ck_assert_str_eq(json_string_value(json_object_get(u, "last_login_at")),
                     "2024-02-01T01:30:00.5Z");
    ck_assert_str_eq(json_string_value(json_object_get(u, "avatar")), "AQL/");
    json_t *o = check_topic_records(&env, mock, "orders");
    check_field_schema(&env, mock, "orders", "status",
                       "\"io.debezium.data.Enum\"",
                       "{\"allowed\":\"pending,paid,shipped,delivered,"
                       "cancelled\"}");
    /* a domain over varchar: its base type's, a plain string */
    check_field_schema(&env, mock, "users", "email", "null", "null");
    ck_assert_str_eq(json_string_value(json_object_get(o, "total_amount")),
                     "PXw=");
    ck_assert_str_eq(json_string_value(json_object_get(o, "status")), "paid");
    json_t *p = check_topic_records(&env, mock, "products");
    ck_assert_str_eq(json_string_value(json_object_get(p, "price")), "BOI=");
    ck_assert_str_eq(json_string_value(json_object_get(p, "list_price")),
                     "BOI=");
    check_field_schema(&env, mock, "products", "list_price",
                       "\"org.apache.kafka.connect.data.Decimal\"",
                       "{\"scale\":\"2\",\"connect.decimal.precision\":"
                       "\"12\"}");
    json_t *n = check_topic_records(&env, mock, "notification_templates");
    ck_assert_int_eq(json_integer_value(json_object_get(n, "retry_after")),
                     93600000000);
    /* with the delete and its tombstone */
    json_t *w = check_topic_records(&env, mock, "warehouses");
    ck_assert_int_eq(json_integer_value(json_object_get(w,
                                                        "dispatch_cutoff")),
                     63000000000);
    ck_assert_str_eq(json_string_value(json_object_get(w, "latitude")), "NaN");
    check_fixed_topic(&env, mock, "message", 1,
                      "io.debezium.connector.postgresql.MessageKey",
                      "io.debezium.connector.postgresql.MessageValue");
    check_fixed_topic(&env, mock, "transaction", 2,
                      "io.debezium.connector.common.TransactionMetadataKey",
                      "io.debezium.connector.common.TransactionMetadataValue");
    json_decref(u);
    json_decref(o);
    json_decref(p);
    json_decref(n);
    json_decref(w);
    stop_cleanly(&env, mock);
}
END_TEST

/* `cleave VERB -c CONFIG order_service`, which must succeed. */
static void move_ok(shop_env *env, const char *verb)
{
    char *argv[] = {(char *)shop_cleave_bin(), (char *)verb, "-c",
                    env->config, "order_service", NULL};
    rc_result r;
    ck_assert(rc_run(argv, &r));
    if (r.status != 0)
        shop_log_tail(env, 60);
    ck_assert_msg(r.status == 0, "cleave %s exited %d: %s%s", verb, r.status,
                  r.out, r.err);
    rc_free(&r);
}

/* How many events of topic carry `marker`, once at least `want` do. */
static size_t wait_marker(kt_mock *mock, const char *topic,
                          const char *marker, size_t want)
{
    double deadline = shop_now_s() + WAIT_S;
    for (;;) {
        kt_set set = {0};
        read_topic(mock, topic, &set);
        size_t n = 0;
        for (size_t i = 0; i < set.n; i++)
            n += set.r[i].value && strstr(set.r[i].value, marker) != NULL;
        kt_set_free(&set);
        if (n >= want || shop_now_s() > deadline)
            return n;
        struct timespec ts = {0, 200 * 1000 * 1000};  /* a deadline poll */
        nanosleep(&ts, NULL);
    }
}

static void insert_marked(const pgc_cluster *c, const char *db,
                          const char *marker)
{
    char sql[512];
    snprintf(sql, sizeof sql, "INSERT INTO orders (order_uuid, user_id, "
             "status, currency, item_count, note) VALUES (gen_random_uuid(), "
             "1, 'pending', 'EUR', 0, '%s')", marker);
    ck_assert_msg(pgc_exec(c, db, sql), "%s", sql);
}

/* The change, once, on the topic: none lost, none produced twice. */
static void assert_published_once(shop_env *env, kt_mock *mock,
                                  const char *marker)
{
    char topic[256];
    topic_of(env, "orders", topic, sizeof topic);
    size_t n = wait_marker(mock, topic, marker, 1);
    if (n == 0)
        shop_log_tail(env, 60);
    ck_assert_msg(n == 1, "'%s' is on %s %zu times, expected once", marker,
                  topic, n);
}

/*
 * After a cut-over the service writes to its own database; its Kafka
 * topics still get every change (through the shared copies the reverse
 * stream keeps), and again after the rollback, each exactly once.
 */
START_TEST(moved_service_publishes)
{
    shop_env env;
    kt_mock *mock = kt_mock_start(NULL);
    ck_assert(mock);
    setup(&env, mock, "kmove", 1, NULL);
    ck_assert(shop_start(&env));
    caught_up_or_abort(&env);
    insert_marked(src, env.srcdb, "before the cut-over");
    assert_published_once(&env, mock, "before the cut-over");
    move_ok(&env, "cutover");
    insert_marked(tgt, env.dbs[1], "after the cut-over");
    assert_published_once(&env, mock, "after the cut-over");
    move_ok(&env, "rollback");
    insert_marked(src, env.srcdb, "after the rollback");
    assert_published_once(&env, mock, "after the rollback");
    assert_published_once(&env, mock, "after the cut-over");
    stop_cleanly(&env, mock);
}
END_TEST

/* ---- one producer for every service -------------------------------------- */

/* A sink's figures in `cleave status --json`: state, errors, last_error. */
typedef struct sink_fig {
    char state[32];
    long long errors;
    char last_error[512];
} sink_fig;

static void sink_status(const shop_env *env, const char *service,
                        const char *kind, sink_fig *out)
{
    char *argv[] = {(char *)shop_cleave_bin(), "status", "-c",
                    (char *)env->config, "--json", NULL};
    rc_result r;
    size_t i, j;
    json_t *svc, *snk;
    memset(out, 0, sizeof *out);
    ck_assert(rc_run(argv, &r));
    ck_assert_msg(r.status == 0, "cleave status: %d %s", r.status, r.err);
    json_t *st = parse(r.out);
    json_array_foreach(json_object_get(st, "services"), i, svc) {
        if (strcmp(json_string_value(json_object_get(svc, "name")), service))
            continue;
        json_array_foreach(json_object_get(svc, "sinks"), j, snk) {
            const char *why;
            if (strcmp(json_string_value(json_object_get(snk, "kind")), kind))
                continue;
            why = json_string_value(json_object_get(snk, "last_error"));
            snprintf(out->state, sizeof out->state, "%s",
                     json_string_value(json_object_get(snk, "state")));
            out->errors = json_integer_value(json_object_get(snk, "errors"));
            snprintf(out->last_error, sizeof out->last_error, "%s",
                     why ? why : "");
        }
    }
    json_decref(st);
    rc_free(&r);
}

/* Waits until service's Kafka sink has failed at least n times. */
static void wait_kafka_failures(shop_env *env, const char *service, long long n,
                                sink_fig *fig)
{
    double deadline = shop_now_s() + WAIT_S;
    for (;;) {
        sink_status(env, service, "kafka", fig);
        if (fig->errors >= n)
            return;
        if (shop_now_s() > deadline) {
            shop_log_tail(env, 60);
            ck_abort_msg("%s's Kafka sink failed %lld times, not %lld",
                         service, fig->errors, n);
        }
        struct timespec ts = {0, 200 * 1000 * 1000};  /* a deadline poll */
        nanosleep(&ts, NULL);
    }
}

/*
 * The services share one producer: a topic the broker refuses (not
 * authorised in its metadata, which librdkafka 2.0 waits out until the
 * message times out) fails its own service's sink, again at each retry,
 * while
 * another service's sink, through the same producer, publishes its part
 * of the same source transaction and what follows, each exactly once,
 * and never fails.
 */
START_TEST(one_topic_refused)
{
    shop_env env;
    sink_fig fig;
    char users[256];
    kt_mock *mock = kt_mock_start(NULL);
    ck_assert(mock);
    /* Each failure waits out the message timeout: 5 s, not 20, each. */
    setup_props(&env, mock, "kdeny", 0, NULL, "message.timeout.ms: \"5000\"");
    topic_of(&env, "users", users, sizeof users);
    ck_assert(kt_mock_cmd(mock, "topic_error %s TOPIC_AUTHORIZATION_FAILED",
                          users));
    ck_assert(shop_start(&env));
    caught_up_or_abort(&env);
    ck_assert(pgc_exec(src, env.srcdb,
        "BEGIN; INSERT INTO users (external_id, email, full_name) VALUES "
        "(gen_random_uuid(), 'denied@x.io', 'Denied');"
        "INSERT INTO orders (order_uuid, user_id, status, currency, "
        "item_count, note) VALUES (gen_random_uuid(), 1, 'pending', 'EUR', "
        "0, 'beside a refused topic'); COMMIT"));
    wait_kafka_failures(&env, "user_service", 1, &fig);
    ck_assert_msg(strstr(fig.last_error, users), "last_error: %s",
                  fig.last_error);
    insert_marked(src, env.srcdb, "while the other retries");
    assert_published_once(&env, mock, "beside a refused topic");
    assert_published_once(&env, mock, "while the other retries");
    wait_kafka_failures(&env, "user_service", fig.errors + 1, &fig);
    sink_status(&env, "order_service", "kafka", &fig);
    ck_assert_int_eq(fig.errors, 0);
    ck_assert_str_eq(fig.state, "streaming");
    assert_published_once(&env, mock, "beside a refused topic");
    stop_cleanly(&env, mock);
}
END_TEST

/*
 * A partition without a leader keeps its messages in the shared
 * producer's queue until message.timeout.ms: with a queue of 400
 * messages, user_service's thousand events for it stop at its share
 * (100), and order_service's next event is published at once, not after
 * that timeout (60 s).
 */
START_TEST(leaderless_topic_keeps_its_share)
{
    shop_env env;
    char users[256];
    kt_mock *mock = kt_mock_start(NULL);
    ck_assert(mock);
    setup_props(&env, mock, "kshare", 0, NULL, "message.timeout.ms: "
                "\"60000\", queue.buffering.max.messages: \"400\"");
    topic_of(&env, "users", users, sizeof users);
    ck_assert(kt_mock_cmd(mock, "topic %s 1", users));
    ck_assert(kt_mock_cmd(mock, "leader %s 0 -1", users));
    ck_assert(shop_start(&env));
    caught_up_or_abort(&env);
    ck_assert(pgc_exec(src, env.srcdb, "INSERT INTO users (external_id, "
                       "email, full_name) SELECT gen_random_uuid(), 'q' || g "
                       "|| '@x.io', 'Queued' FROM generate_series(1, 1000) g"));
    double t0 = shop_now_s();
    insert_marked(src, env.srcdb, "beside a full share");
    assert_published_once(&env, mock, "beside a full share");
    double waited = shop_now_s() - t0;
    ck_assert_msg(waited < 30, "order_service's event waited %.1f s behind "
                  "user_service's queued ones", waited);
    stop_cleanly(&env, mock);
}
END_TEST

/*
 * The checkpoint is written off the worker's thread, and a write that
 * fails still fails the sink: with state_dir/kafka replaced by a file the
 * Kafka sinks fail, say why in the status, and once the directory is back
 * they resume from their checkpoints and publish what came meanwhile once.
 */
START_TEST(checkpoint_write_fails)
{
    shop_env env;
    sink_fig fig;
    char dir[600], aside[620];
    kt_mock *mock = kt_mock_start(NULL);
    ck_assert(mock);
    setup(&env, mock, "kckpt", 0, NULL);
    ck_assert(shop_start(&env));
    caught_up_or_abort(&env);
    snprintf(dir, sizeof dir, "%s/kafka", env.state_dir);
    snprintf(aside, sizeof aside, "%s.aside", dir);
    ck_assert(rename(dir, aside) == 0);
    FILE *f = fopen(dir, "w");
    ck_assert(f);
    fclose(f);
    /* The shop at scale 0 has no user for the orders to reference. */
    ck_assert(pgc_exec(src, env.srcdb, "INSERT INTO users (external_id, "
                       "email, full_name) VALUES (gen_random_uuid(), "
                       "'ckpt@x.io', 'Ckpt')"));
    insert_marked(src, env.srcdb, "while no checkpoint can be written");
    wait_kafka_failures(&env, "order_service", 1, &fig);
    ck_assert_msg(strstr(fig.last_error, dir), "last_error: %s",
                  fig.last_error);
    ck_assert(unlink(dir) == 0);
    ck_assert(rename(aside, dir) == 0);
    insert_marked(src, env.srcdb, "once the directory is back");
    assert_published_once(&env, mock, "once the directory is back");
    caught_up_or_abort(&env);
    stop_cleanly(&env, mock);
}
END_TEST

/*
 * A key stored out of line (2,500 characters, STORAGE EXTERNAL), left
 * unchanged by an update: the update is a 'u' under the row's own key.
 * The new row says "unchanged" for it, and the event was keyed by the
 * placeholder (another key, another partition), or, where the server
 * sent the old key too, became a delete, a tombstone and a create.
 */
START_TEST(toasted_key_kept)
{
    shop_env env;
    kt_mock *mock = kt_mock_start(NULL);
    ck_assert(mock);
    setup(&env, mock, "ktoast", 0, NULL);
    ck_assert(pgc_exec(src, env.srcdb, "CREATE TABLE toasty (k text PRIMARY "
                       "KEY, v int); ALTER TABLE toasty ALTER COLUMN k SET "
                       "STORAGE EXTERNAL"));
    config_insert(&env, "  user_service:\n    owned_tables: [", "toasty, ");
    ck_assert(shop_start(&env));
    caught_up_or_abort(&env);
    ck_assert(pgc_exec(src, env.srcdb, "INSERT INTO toasty VALUES "
                       "(repeat('k', 2500), 1)"));
    ck_assert(pgc_exec(src, env.srcdb, "UPDATE toasty SET v = 2"));
    char topic[256];
    topic_of(&env, "toasty", topic, sizeof topic);
    ck_assert_uint_ge(wait_marker(mock, topic, "\"v\":2", 1), 1);
    kt_set set = {0};
    read_topic(mock, topic, &set);
    ck_assert_uint_ge(set.n, 2);
    for (size_t i = 0; i < set.n; i++) {
        ck_assert_msg(set.r[i].key && strstr(set.r[i].key, "kkkkkkkk"),
                      "record %zu keyed %.80s", i,
                      set.r[i].key ? set.r[i].key : "(none)");
        json_t *v = parse(set.r[i].value);
        ck_assert_msg(v && strcmp(op_of(v), "d") != 0, "record %zu: %.80s",
                      i, set.r[i].value ? set.r[i].value : "(tombstone)");
        json_decref(v);
    }
    ck_assert_uint_eq(set.n, 2);
    kt_set_free(&set);
    stop_cleanly(&env, mock);
}
END_TEST

/*
 * A message larger than the producer's whole queue can never be queued:
 * the sink fails and says so. It waited for room for good before, the
 * status saying it streamed.
 */
START_TEST(message_larger_than_the_queue)
{
    shop_env env;
    kt_mock *mock = kt_mock_start(NULL);
    ck_assert(mock);
    setup_props(&env, mock, "kqueue", 0, NULL, "message.timeout.ms: "
                "\"20000\", queue.buffering.max.kbytes: \"8\"");
    ck_assert(shop_start(&env));
    caught_up_or_abort(&env);
    long mark = shop_log_size(&env);
    ck_assert(pgc_exec(src, env.srcdb, "INSERT INTO users (external_id, "
                       "email, full_name, bio) VALUES (gen_random_uuid(), "
                       "'big@example.com', 'Big', repeat('x', 20000))"));
    wait_log_or_abort(&env, "is larger than the producer's whole queue", mark);
    sink_fig fig;
    sink_status(&env, "user_service", "kafka", &fig);
    ck_assert_msg(strstr(fig.last_error, "queue.buffering.max.kbytes"),
                  "status says: %s", fig.last_error);
    stop_cleanly(&env, mock);
}
END_TEST

/* The slot dropped while cleave is stopped or streaming (its walsender ended). */
static void drop_slot(shop_env *env)
{
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT count(pg_terminate_backend(active_pid)) "
             ">= 0 AND count(pg_drop_replication_slot(slot_name)) = 1 FROM "
             "(SELECT slot_name, active_pid FROM pg_replication_slots WHERE "
             "slot_name = 'cleave_%s') s", env->name);
    /* cleave may take its slot again between the two: tried until gone. */
    double deadline = shop_now_s() + WAIT_S;
    while (!pgc_exec(src, env->srcdb, sql))
        ck_assert_msg(shop_now_s() < deadline, "slot cleave_%s not dropped",
                      env->name);
}

/* order_service's PostgreSQL origin and Kafka checkpoint set at FF/0. */
static void positions_far_ahead(shop_env *env)
{
    ck_assert(pgc_exec(tgt, env->dbs[1], "SELECT pg_replication_origin_advance"
                       "(roname, 'FF/0') FROM pg_replication_origin WHERE "
                       "roname LIKE '%order_service'"));
    char path[700];
    snprintf(path, sizeof path, "%s/kafka/order_service.json", env->state_dir);
    FILE *f = fopen(path, "w");
    ck_assert(f);
    fprintf(f, "{\"service\": \"order_service\", \"slot\": \"cleave_%s\", "
            "\"lsn\": \"FF/0\"}", env->name);
    fclose(f);
}

/* A row of orders written now reaches the target and the topic once. */
static void new_row_arrives(shop_env *env, kt_mock *mock, const char *marker)
{
    insert_marked(src, env->srcdb, marker);
    assert_published_once(env, mock, marker);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) = 1 FROM orders WHERE "
             "note = '%s'", marker);
    ck_assert_msg(pgc_wait_until(tgt, env->dbs[1], sql, WAIT_S),
                  "'%s' is not once in the target", marker);
}

static void positions_forgotten(shop_env *env, long mark)
{
    wait_log_or_abort(env, "event=position_forgotten service=order_service "
                      "sink=postgres", mark);
    wait_log_or_abort(env, "event=position_forgotten service=order_service "
                      "sink=kafka", mark);
}

/*
 * A new slot's stream starts anew: the positions the sinks hold belong to
 * the old one. Here they stand above anything the source has written (as
 * after the source was restored, or replaced by a cluster whose LSNs are
 * lower), so a sink that kept them passed over every new transaction.
 * First with cleave killed right after it made the slot (a test hook),
 * before it had written anything (the earlier slot's state was then
 * still in force at the next start); then with the slot dropped while
 * cleave streams, which it makes again and restarts in place for.
 */
START_TEST(new_slot_forgets_old_positions)
{
    shop_env env;
    kt_mock *mock = kt_mock_start(NULL);
    ck_assert(mock);
    setup(&env, mock, "kfresh", 1, NULL);
    ck_assert(shop_start(&env));
    caught_up_or_abort(&env);
    ck_assert_int_eq(shop_stop(&env, SIGTERM, 60), 0);
    drop_slot(&env);
    positions_far_ahead(&env);
    long mark = shop_log_size(&env);
    setenv("CLEAVE_TEST_EXIT_AFTER_SLOT", "1", 1);
    ck_assert(shop_start(&env));
    unsetenv("CLEAVE_TEST_EXIT_AFTER_SLOT");
    ck_assert_int_eq(shop_stop(&env, 0, 60), 1);
    ck_assert(shop_start(&env));
    caught_up_or_abort(&env);
    new_row_arrives(&env, mock, "after a new slot");
    positions_forgotten(&env, mark);
    /* Made again while streaming. */
    mark = shop_log_size(&env);
    drop_slot(&env);
    wait_log_or_abort(&env, "event=restarting reason=slot_made_again", mark);
    positions_forgotten(&env, mark);
    caught_up_or_abort(&env);
    new_row_arrives(&env, mock, "after the slot was made again");
    stop_cleanly(&env, mock);
}
END_TEST

/* ---- a resync behind an event still in flight ----------------------------- */

static void exec_on(PGconn *c, const char *sql)
{
    PGresult *res = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK ||
                  PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql,
                  PQerrorMessage(c));
    PQclear(res);
}

static void set_display_name(shop_env *env, const char *name)
{
    char sql[128];
    snprintf(sql, sizeof sql, "UPDATE users SET display_name = '%s' WHERE "
             "id = 1", name);
    ck_assert_msg(pgc_exec(src, env->srcdb, sql), "%s", sql);
}

/* The display_name of user 1 in the last of its events on the topic. */
static char *last_display_name(kt_mock *mock, const char *topic)
{
    kt_set set = {0};
    read_topic(mock, topic, &set);
    char *last = NULL;
    for (size_t i = 0; i < set.n; i++) {
        if (!set.r[i].value || !strstr(set.r[i].value, "\"kv"))
            continue;
        json_t *v = parse(set.r[i].value);
        const char *name = json_string_value(field(v, "after",
                                                   "display_name"));
        free(last);
        last = name ? strdup(name) : NULL;
        json_decref(v);
    }
    kt_set_free(&set);
    return last;
}

/*
 * A resync whose copy sends a row's snapshot event while an older event of
 * the same row is still in flight (its first produce refused, the retry
 * 4 s away): the copy waits for the acknowledgement, so the topic ends
 * with the row as copied. Before, the snapshot event went out through the
 * copy's own producer at once and the older event landed after it: a
 * consumer kept the older value.
 */
START_TEST(resync_after_what_is_in_flight)
{
    shop_env env;
    kt_mock *mock = kt_mock_start(NULL);
    ck_assert(mock);
    setup_props(&env, mock, "kresync", 1, NULL, "message.timeout.ms: "
                "\"20000\", retry.backoff.ms: \"4000\"");
    ck_assert(shop_start(&env));
    caught_up_or_abort(&env);
    char topic[256];
    topic_of(&env, "users", topic, sizeof topic);
    set_display_name(&env, "kv1");
    ck_assert_uint_eq(wait_marker(mock, topic, "kv1", 1), 1);
    /* The copy's snapshot waits for it: kv3 commits before the snapshot. */
    PGconn *open_txn = pgc_connect(src, env.srcdb);
    ck_assert(open_txn != NULL);
    exec_on(open_txn, "BEGIN");
    exec_on(open_txn, "SELECT txid_current()");
    ck_assert(kt_mock_cmd(mock, "errors 0 1 7"));
    set_display_name(&env, "kv2");
    long mark = shop_log_size(&env);
    char *argv[] = {(char *)shop_cleave_bin(), "resync", "-c", env.config,
                    "user_service", "--table", "users", NULL};
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        execv(argv[0], argv);
        _exit(127);
    }
    ck_assert(pid > 0);
    wait_log_or_abort(&env, "event=resync_started", mark);
    set_display_name(&env, "kv3");
    exec_on(open_txn, "COMMIT");
    PQfinish(open_txn);
    int status = 0;
    ck_assert(waitpid(pid, &status, 0) == pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "cleave resync failed: %d", status);
    ck_assert_uint_ge(wait_marker(mock, topic, "kv2", 1), 1);
    ck_assert_uint_ge(wait_marker(mock, topic, "kv3", 1), 1);
    caught_up_or_abort(&env);
    char *last = last_display_name(mock, topic);
    if (!last || strcmp(last, "kv3") != 0)
        shop_log_tail(&env, 60);
    ck_assert_msg(last && strcmp(last, "kv3") == 0, "the topic ends with "
                  "user 1's display_name %s, not the copied kv3",
                  last ? last : "(none)");
    free(last);
    stop_cleanly(&env, mock);
}
END_TEST

int main(void)
{
    static const char *const tgt_settings[] = {"max_replication_slots = 128", NULL};
    Suite *s = suite_create("kafka");
    shop_add_case(s, "change_events", change_events, 300);
    shop_add_case(s, "full_identity_keyed_by_primary_key",
                  full_identity_keyed_by_primary_key, 300);
    shop_add_case(s, "initial_copy_then_stream", initial_copy_then_stream, 600);
    shop_add_case(s, "broker_faults", broker_faults, 600);
    shop_add_case(s, "killed_and_restarted", killed_and_restarted, 600);
    shop_add_case(s, "undeliverable_stops_sink", undeliverable_stops_sink, 300);
    shop_add_long_case(s, "schemas_for_connect", schemas_for_connect, 300);
    shop_add_case(s, "moved_service_publishes", moved_service_publishes, 300);
    shop_add_case(s, "one_topic_refused", one_topic_refused, 300);
    shop_add_case(s, "leaderless_topic_keeps_its_share",
                  leaderless_topic_keeps_its_share, 300);
    shop_add_case(s, "checkpoint_write_fails", checkpoint_write_fails, 300);
    shop_add_case(s, "toasted_key_kept", toasted_key_kept, 300);
    shop_add_case(s, "message_larger_than_the_queue",
                  message_larger_than_the_queue, 300);
    shop_add_case(s, "new_slot_forgets_old_positions",
                  new_slot_forgets_old_positions, 300);
    shop_add_long_case(s, "resync_after_what_is_in_flight",
                       resync_after_what_is_in_flight, 300);
    return shop_run_suite(s, tgt_settings, &src, &tgt);
}
