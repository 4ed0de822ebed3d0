/*
 * A source and a target of other database encodings (UTF8 and LATIN1,
 * both ways): the initial copy, in COPY's binary format (`words`) and in
 * text (`labels`, a domain), and the stream give the same characters on
 * both sides, compared as UTF8 bytes, and `cleave verify` finds them
 * equal. A character the target's encoding cannot hold stops that
 * service with the reason in the status, and the other service goes on.
 * A SQL_ASCII source (which analyze warns about) passes its bytes on as
 * UTF-8; a LATIN1 source's Kafka events are UTF-8. The test's own
 * connections speak each database's encoding, so every SQL text here is
 * ASCII (U&'' escapes) and every comparison is of convert_to(...,
 * 'UTF8').
 */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/kafka.h"
#include "tests/support/runcmd.h"
#include "tests/support/shopenv.h"

static pgc_cluster *src, *tgt;

#define WAIT_S 120

/* café, naïve, Größe (all in LATIN1), in a printf format. */
#define WORD(g) "(ARRAY[U&'caf\\00E9', U&'na\\00EFve', U&'Gr\\00F6\\00DFe'])" \
                "[(" g ") %% 3 + 1]"

static const char SCHEMA[] =
    "CREATE DOMAIN label AS text;"
    "CREATE TABLE words (id int PRIMARY KEY, t text, vc varchar(40),"
    "  ta text[], jb jsonb);"
    "CREATE TABLE labels (id int PRIMARY KEY, l label, t text, ta text[],"
    "  jb jsonb);"
    "CREATE TABLE tags (t text, ta text[]);"
    "ALTER TABLE tags REPLICA IDENTITY FULL;"
    "CREATE TABLE notes (id int PRIMARY KEY, t text);";

/* Rows lo to hi of each table but notes. */
static void insert_rows(const shop_env *env, int lo, int hi)
{
    char sql[2048];
    snprintf(sql, sizeof sql,
             "INSERT INTO words SELECT g, " WORD("g") ", " WORD("g + 1")
             " || ' ' || g, ARRAY[" WORD("g + 2") ", NULL, ''],"
             " jsonb_build_object('w', " WORD("g") ", 'a',"
             " jsonb_build_array(" WORD("g + 1") ", g))"
             " FROM generate_series(%d, %d) g;"
             "INSERT INTO labels SELECT id, t, vc, ta, jb FROM words"
             " WHERE id BETWEEN %d AND %d;"
             "INSERT INTO tags SELECT t || id, ARRAY[vc] FROM words"
             " WHERE id BETWEEN %d AND %d;", lo, hi, lo, hi, lo, hi);
    ck_assert(pgc_exec(env->src, env->srcdb, sql));
}

static const char UPDATES[] =
    "UPDATE words SET t = t || U&' \\00E0 la carte',"
    "  jb = jb || jsonb_build_object('u', U&'\\00FCber') WHERE id % 10 = 0;"
    "UPDATE labels SET l = l || U&' \\00C6', ta = ta || U&'\\00D8'::text"
    "  WHERE id % 7 = 0;"
    "UPDATE tags SET t = U&'Stra\\00DFe ' || t WHERE t LIKE 'caf%1';"
    "DELETE FROM words WHERE id % 17 = 0;";

/* A database in `encoding`, or in the cluster's UTF8 when NULL. */
static void create_db(pgc_cluster *c, const char *db, const char *encoding)
{
    char sql[256];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s ENCODING '%s' "
             "LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0", db,
             encoding ? encoding : "");
    ck_assert(encoding ? pgc_exec(c, "postgres", sql) : pgc_createdb(c, db));
}

/*
 * The source database in src_enc, service `words_svc` (words, labels,
 * tags) into a database in tgt_enc, `notes_svc` (notes) into a UTF8 one;
 * the configuration; words_svc publishes to Kafka instead when `brokers`.
 * A LATIN1 target's DSN asks for client_encoding=LATIN1: a user's
 * setting cleave must override.
 */
static void setup_kafka(shop_env *env, const char *name, const char *src_enc,
                        const char *tgt_enc, const char *brokers)
{
    bool tgt_latin1 = tgt_enc && strcmp(tgt_enc, "LATIN1") == 0;
    memset(env, 0, sizeof *env);
    env->src = src;
    env->tgt = tgt;
    snprintf(env->name, sizeof env->name, "%s", name);
    snprintf(env->srcdb, sizeof env->srcdb, "%s_src", name);
    snprintf(env->dbs[0], sizeof env->dbs[0], "%s_words", name);
    snprintf(env->dbs[1], sizeof env->dbs[1], "%s_notes", name);
    snprintf(env->state_dir, sizeof env->state_dir, "%s/state_%s", src->root,
             name);
    snprintf(env->config, sizeof env->config, "%s/%s.yaml", src->root, name);
    snprintf(env->log, sizeof env->log, "%s/%s.log", src->root, name);
    create_db(src, env->srcdb, src_enc);
    ck_assert(pgc_exec(src, env->srcdb, SCHEMA));
    create_db(tgt, env->dbs[0], tgt_enc);
    create_db(tgt, env->dbs[1], NULL);
    char *sdsn = pgc_dsn(src, env->srcdb);
    char *wdsn = pgc_dsn(tgt, env->dbs[0]);
    char *ndsn = pgc_dsn(tgt, env->dbs[1]);
    FILE *f = fopen(env->config, "w");
    ck_assert(f);
    fprintf(f, "name: %s\nsource:\n  dsn: \"%s\"\nstate_dir: %s\n"
            "status_socket: %s/status.sock\nlog_level: debug\nservices:\n"
            "  words_svc:\n    owned_tables: [words, labels, tags]\n"
            "    target:\n", name, sdsn, env->state_dir, env->state_dir);
    if (brokers)
        fprintf(f, "      kafka: true\n");
    else
        fprintf(f, "      postgres: \"%s%s\"\n", wdsn,
                tgt_latin1 ? " client_encoding=LATIN1" : "");
    fprintf(f, "  notes_svc:\n    owned_tables: [notes]\n    target:\n"
            "      postgres: \"%s\"\n", ndsn);
    if (brokers)
        fprintf(f, "kafka:\n  brokers: \"%s\"\n"
                "  properties: {message.timeout.ms: \"20000\"}\n", brokers);
    ck_assert(fclose(f) == 0);
    free(sdsn);
    free(wdsn);
    free(ndsn);
}

static void setup(shop_env *env, const char *name, const char *src_enc,
                  const char *tgt_enc)
{
    setup_kafka(env, name, src_enc, tgt_enc, NULL);
}

/* A table's rows as UTF8 bytes, in byte order, as one digest. */
static char *digest(const pgc_cluster *c, const char *db, const char *table)
{
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT count(*) || ' ' || coalesce(md5("
             "string_agg(r, '\\x7c'::bytea ORDER BY r)), '-') FROM (SELECT "
             "convert_to(x::text, 'UTF8') AS r FROM %s x) s", table);
    char *v = pgc_query_value(c, db, sql);
    ck_assert_msg(v != NULL, "%s", sql);
    return v;
}

static void assert_same(shop_env *env, int service, const char *table)
{
    char *want = digest(src, env->srcdb, table);
    char *got = digest(tgt, env->dbs[service], table);
    if (strcmp(want, got) != 0)
        shop_log_tail(env, 40);
    ck_assert_msg(strcmp(want, got) == 0, "%s: source %s, target %s", table,
                  want, got);
    free(want);
    free(got);
}

/* The characters themselves, in the target, where the source put them. */
static void assert_characters(shop_env *env)
{
    char *v = pgc_query_value(tgt, env->dbs[0],
        "SELECT t = U&'caf\\00E9' AND vc = U&'na\\00EFve 3' AND"
        " ta[1] = U&'Gr\\00F6\\00DFe' AND jb->>'w' = t AND"
        " (SELECT l = U&'caf\\00E9' FROM labels WHERE id = 3)"
        " FROM words WHERE id = 3");
    ck_assert_msg(v && strcmp(v, "t") == 0, "row 3 reads otherwise in the "
                  "target: %s", v ? v : "NULL");
    free(v);
}

/* Lines of the log saying table was copied in format. */
static int copied_as(const shop_env *env, const char *table,
                     const char *format)
{
    char want[160];
    snprintf(want, sizeof want, "table=public.%s ", table);
    FILE *f = fopen(env->log, "r");
    char line[4096];
    int n = 0;
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, "event=table_copied") && strstr(line, want) &&
             strstr(line, format);
    if (f)
        fclose(f);
    return n;
}

static void assert_all_same(shop_env *env)
{
    if (!shop_wait_caught_up(env, WAIT_S)) {
        shop_log_tail(env, 60);
        ck_abort_msg("%s: cleave did not catch up", env->name);
    }
    assert_same(env, 0, "words");
    assert_same(env, 0, "labels");
    assert_same(env, 0, "tags");
    assert_characters(env);
}

/* Copied (binary and text), then streamed: the same characters. */
static void copy_and_stream(shop_env *env)
{
    insert_rows(env, 1, 200);
    ck_assert(shop_start(env));
    assert_all_same(env);
    ck_assert_int_eq(copied_as(env, "words", "format=binary"), 1);
    ck_assert_int_eq(copied_as(env, "labels", "format=text"), 1);
    insert_rows(env, 201, 260);
    ck_assert(pgc_exec(src, env->srcdb, UPDATES));
    assert_all_same(env);
}

/* analyze's encoding item: its status, and its detail names `text`. */
static void expect_encoding_item(const shop_env *env, const char *status,
                                 const char *text)
{
    char *argv[] = {(char *)shop_cleave_bin(), "analyze", "-c",
                    (char *)env->config, "--json", NULL};
    rc_result r;
    ck_assert(rc_run(argv, &r));
    json_t *root = json_loads(r.out, 0, NULL);
    ck_assert_msg(root && r.status == 0, "analyze exit %d: %s", r.status,
                  r.err);
    const char *got = "none", *detail = "";
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(root, "settings"), i, item) {
        const char *check = json_string_value(json_object_get(item, "check"));
        if (check && strcmp(check, "encoding") == 0) {
            got = json_string_value(json_object_get(item, "status"));
            detail = json_string_value(json_object_get(item, "detail"));
        }
    }
    printf("analyze: encoding %s: %s\n", got, detail);   /* the test's log */
    ck_assert_str_eq(got, status);
    ck_assert_msg(strstr(detail, text), "no '%s' in '%s'", text, detail);
    json_decref(root);
    rc_free(&r);
}

/* Whether verify's report has a line "ok SERVICE public.TABLE ...". */
static bool reported_ok(const char *out, const char *table)
{
    char want[64];
    snprintf(want, sizeof want, " public.%s ", table);
    for (const char *p = out; *p;) {
        size_t len = strcspn(p, "\n");
        const char *at = strstr(p, want);
        if (strncmp(p, "ok ", 3) == 0 && at && at < p + len)
            return true;
        p += len + (p[len] == '\n');
    }
    return false;
}

/* `cleave verify` of the configuration, its output in the test's log. */
static void run_verify(const shop_env *env, rc_result *r)
{
    char *argv[] = {(char *)shop_cleave_bin(), "verify", "-c",
                    (char *)env->config, NULL};
    ck_assert(rc_run(argv, r));
    printf("verify: exit %d\n%s%s", r->status, r->out, r->err);
    fflush(stdout);
}

/* `cleave verify` finds the tables equal, keyed and keyless. */
static void assert_verified(const shop_env *env)
{
    rc_result r;
    run_verify(env, &r);
    ck_assert_msg(r.status == 0, "verify exit %d", r.status);
    const char *tables[] = {"words", "labels", "tags", "notes"};
    for (size_t i = 0; i < sizeof tables / sizeof *tables; i++)
        ck_assert_msg(reported_ok(r.out, tables[i]), "verify: %s not ok",
                      tables[i]);
    rc_free(&r);
}

/* É for é in one row of the LATIN1 target: verify names that row. */
static void assert_difference_found(const shop_env *env)
{
    ck_assert(pgc_exec(tgt, env->dbs[0], "SET session_replication_role = "
                       "replica; UPDATE words SET t = U&'caf\\00C9'"
                       " WHERE id = 3"));
    rc_result r;
    run_verify(env, &r);
    ck_assert_msg(r.status == 3, "verify exit %d, want 3", r.status);
    ck_assert_msg(strstr(r.out, "different: id=3\n") &&
                  strstr(r.out, "1 difference(s)"), "verify did not name "
                  "words id=3 alone");
    rc_free(&r);
}

START_TEST(utf8_source_latin1_target)
{
    shop_env env;
    setup(&env, "to_latin1", NULL, "LATIN1");
    copy_and_stream(&env);
    assert_verified(&env);
    assert_difference_found(&env);
    shop_stop_cleanly(&env);
}
END_TEST

START_TEST(latin1_source_utf8_target)
{
    shop_env env;
    setup(&env, "from_latin1", "LATIN1", NULL);
    expect_encoding_item(&env, "ok", "LATIN1");
    copy_and_stream(&env);
    assert_verified(&env);
    shop_stop_cleanly(&env);
}
END_TEST

/* The service's state, and its first sink's last error (or ""). */
static const char *service_state(json_t *st, const char *service,
                                 const char **why)
{
    size_t i;
    json_t *svc;
    *why = "";
    json_array_foreach(json_object_get(st, "services"), i, svc) {
        const char *name = json_string_value(json_object_get(svc, "name"));
        if (!name || strcmp(name, service) != 0)
            continue;
        json_t *sink = json_array_get(json_object_get(svc, "sinks"), 0);
        const char *e = json_string_value(json_object_get(sink, "last_error"));
        *why = e ? e : "";
        const char *state = json_string_value(json_object_get(svc, "state"));
        return state ? state : "";
    }
    return "";
}

/* words_svc in error for a reason naming `arg`, notes_svc streaming. */
static bool words_refused(json_t *st, void *arg)
{
    const char *why, *notes_why;
    return strcmp(service_state(st, "words_svc", &why), "error") == 0 &&
           strstr(why, (const char *)arg) &&
           strcmp(service_state(st, "notes_svc", &notes_why),
                  "streaming") == 0;
}

/*
 * After rows 1000 on of words that the target must refuse: words_svc
 * stops in error naming `what`, none of them is stored, and notes_svc
 * streams on (a row of notes written after them arrives).
 */
static void assert_refused(shop_env *env, const char *what)
{
    ck_assert(pgc_exec(src, env->srcdb, "INSERT INTO notes VALUES (1, 'on')"));
    if (!shop_wait_status(env, words_refused, (void *)what, WAIT_S)) {
        shop_log_tail(env, 60);
        ck_abort_msg("words_svc not in error over %s while notes_svc "
                     "streams", what);
    }
    json_t *st = shop_status_json(env);
    const char *why;
    service_state(st, "words_svc", &why);
    printf("words_svc stopped: %s\n", why);   /* in the test's log */
    json_decref(st);
    ck_assert(pgc_wait_until(tgt, env->dbs[1], "SELECT EXISTS (SELECT FROM"
                             " notes WHERE t = 'on')", WAIT_S));
    char *n = pgc_query_value(tgt, env->dbs[0],
                              "SELECT count(*) FROM words WHERE id >= 1000");
    ck_assert_str_eq(n ? n : "NULL", "0");
    free(n);
}

/*
 * € and 日本 are not in LATIN1: the LATIN1 target refuses the change
 * (nothing stored otherwise), its service stops in error saying so, the
 * other service streams on.
 */
START_TEST(unrepresentable_stops_the_service)
{
    shop_env env;
    setup(&env, "no_euro", NULL, "LATIN1");
    insert_rows(&env, 1, 30);
    ck_assert(shop_start(&env));
    assert_all_same(&env);
    ck_assert(pgc_exec(src, env.srcdb, "INSERT INTO words (id, t) VALUES"
                       " (1000, U&'5 \\20AC'), (1001, U&'\\65E5\\672C')"));
    assert_refused(&env, "LATIN1");
    shop_stop_cleanly(&env);
}
END_TEST

/*
 * A SQL_ASCII source, which PostgreSQL never converts: analyze warns;
 * UTF-8 bytes in it reach a LATIN1 target as their characters; a byte
 * that is not UTF-8 is refused there, stopping that service alone (not
 * the stream: the walsender, asked for UTF8, would refuse to send it to
 * anyone).
 */
START_TEST(sql_ascii_source)
{
    shop_env env;
    setup(&env, "raw", "SQL_ASCII", "LATIN1");
    expect_encoding_item(&env, "warn", "SQL_ASCII");
    ck_assert(pgc_exec(src, env.srcdb, "INSERT INTO words (id, t) VALUES"
                       " (3, E'caf\\xc3\\xa9')"));
    ck_assert(shop_start(&env));
    if (!shop_wait_caught_up(&env, WAIT_S)) {
        shop_log_tail(&env, 60);
        ck_abort_msg("raw: cleave did not catch up");
    }
    char *v = pgc_query_value(tgt, env.dbs[0],
                              "SELECT t = U&'caf\\00E9' FROM words WHERE id = 3");
    ck_assert_str_eq(v ? v : "NULL", "t");
    free(v);
    ck_assert(pgc_exec(src, env.srcdb, "INSERT INTO words (id, t) VALUES"
                       " (1000, E'caf\\xe9')"));
    assert_refused(&env, "UTF8");
    shop_stop_cleanly(&env);
}
END_TEST

/* Whether s has U+FFFD, which a byte that was not UTF-8 would have become. */
static bool has_replacement(const char *s)
{
    return s && strstr(s, "\xef\xbf\xbd") != NULL;
}

/*
 * A LATIN1 source into Kafka: each event of words, copied (op r) or
 * streamed (op c), is JSON in UTF-8, as Debezium's, with the source's
 * characters (é was U+FFFD: the source's LATIN1 byte is not UTF-8).
 */
START_TEST(latin1_source_into_kafka)
{
    kt_mock *mock = kt_mock_start(NULL);
    ck_assert(mock);
    shop_env env;
    setup_kafka(&env, "k_latin1", "LATIN1", NULL, kt_mock_bootstrap(mock));
    insert_rows(&env, 1, 30);
    ck_assert(shop_start(&env));
    insert_rows(&env, 31, 40);
    kt_set set = {0};
    char err[512];
    bool got = kt_wait_count(kt_mock_bootstrap(mock), "k_latin1.public.words",
                             40, WAIT_S * 1000, &set, err, sizeof err);
    if (!got)
        shop_log_tail(&env, 60);
    ck_assert_msg(got, "%zu of 40 events of words: %s", set.n, err);
    int checked = 0;
    for (size_t i = 0; i < set.n; i++) {
        json_t *v = json_loadb(set.r[i].value, set.r[i].value_len, 0, NULL);
        ck_assert_msg(v, "not JSON in UTF-8: %.*s", (int)set.r[i].value_len,
                      set.r[i].value);
        ck_assert_msg(!has_replacement(set.r[i].value), "U+FFFD in %s",
                      set.r[i].value);
        json_t *after = json_object_get(v, "after");
        json_int_t id = json_integer_value(json_object_get(after, "id"));
        const char *t = json_string_value(json_object_get(after, "t"));
        const char *vc = json_string_value(json_object_get(after, "vc"));
        if (id == 3 || id == 33) {   /* copied, streamed: both café */
            ck_assert_str_eq(t ? t : "NULL", "caf\xc3\xa9");
            ck_assert_str_eq(vc ? vc : "NULL", id == 3 ? "na\xc3\xafve 3"
                                                        : "na\xc3\xafve 33");
            checked++;
        }
        json_decref(v);
    }
    ck_assert_int_eq(checked, 2);
    kt_set_free(&set);
    shop_stop_cleanly(&env);
    ck_assert_int_eq(kt_mock_stop(mock), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("encoding");
    shop_add_case(s, "utf8_source_latin1_target", utf8_source_latin1_target,
                  300);
    shop_add_case(s, "latin1_source_utf8_target", latin1_source_utf8_target,
                  300);
    shop_add_case(s, "unrepresentable_stops_the_service",
                  unrepresentable_stops_the_service, 300);
    shop_add_case(s, "sql_ascii_source", sql_ascii_source, 300);
    shop_add_case(s, "latin1_source_into_kafka", latin1_source_into_kafka,
                  300);
    return shop_run_suite(s, NULL, &src, &tgt);
}
