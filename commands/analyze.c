/*
 * analyze: see analyze.h.
 *
 * The catalog is read once into a JSON report (the --json output); the
 * checklist is printed from that same report, so both say the same thing.
 * Every item carries a status: "ok", "warn", or "block" (what stops run).
 */
#include "commands/analyze.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "common/exitcode.h"
#include "common/dbconn.h"

/* User tables (ordinary, partitioned; not partitions) with their identity. */
static const char TABLES_SQL[] =
    "SELECT n.nspname, c.relname, c.relreplident,"
    " EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid"
    "         AND i.indisprimary),"
    " CASE WHEN c.relkind = 'p' THEN (SELECT coalesce(sum("
    "   pg_total_relation_size(t.relid)), 0) FROM pg_partition_tree(c.oid) t)"
    "  ELSE pg_total_relation_size(c.oid) END,"
    " format('ALTER TABLE %I.%I REPLICA IDENTITY FULL;', n.nspname, c.relname)"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition"
    " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
    " AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'"
    " ORDER BY 1, 2";

/*
 * The leaf partitions of every partitioned table with their identity: an
 * UPDATE or DELETE is checked against the partition holding the row, so
 * each needs a usable identity of its own, whatever the root's.
 */
static const char PARTITIONS_SQL[] =
    "SELECT n.nspname, c.relname, pn.nspname, p.relname, p.relreplident,"
    " EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = p.oid"
    "         AND i.indisprimary),"
    " format('ALTER TABLE %I.%I REPLICA IDENTITY FULL;', pn.nspname, p.relname)"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " CROSS JOIN LATERAL pg_partition_tree(c.oid) t"
    " JOIN pg_class p ON p.oid = t.relid"
    " JOIN pg_namespace pn ON pn.oid = p.relnamespace"
    " WHERE c.relkind = 'p' AND NOT c.relispartition AND t.isleaf"
    " AND p.relkind = 'r'"
    " ORDER BY 1, 2, 3, 4";

/*
 * Foreign keys between user tables, columns as JSON arrays in key order;
 * the columns are analyze.h's ANALYZE_FK_*.
 */
static const char FKEYS_SQL[] =
    "SELECT con.conname, fn.nspname, fc.relname, tn.nspname, tc.relname,"
    " array_to_json(ARRAY(SELECT a.attname FROM unnest(con.conkey)"
    "  WITH ORDINALITY k(num, ord) JOIN pg_attribute a ON"
    "  a.attrelid = con.conrelid AND a.attnum = k.num ORDER BY k.ord))::text,"
    " array_to_json(ARRAY(SELECT a.attname FROM unnest(con.confkey)"
    "  WITH ORDINALITY k(num, ord) JOIN pg_attribute a ON"
    "  a.attrelid = con.confrelid AND a.attnum = k.num ORDER BY k.ord))::text,"
    " format('ALTER TABLE %I.%I DROP CONSTRAINT %I;', fn.nspname, fc.relname,"
    "  con.conname)"
    " FROM pg_constraint con"
    " JOIN pg_class fc ON fc.oid = con.conrelid"
    " JOIN pg_namespace fn ON fn.oid = fc.relnamespace"
    " JOIN pg_class tc ON tc.oid = con.confrelid"
    " JOIN pg_namespace tn ON tn.oid = tc.relnamespace"
    " WHERE con.contype = 'f' AND con.conparentid = 0"
    " ORDER BY 2, 3, 1";

static const char SERVER_SQL[] =
    "SELECT current_setting('wal_level'),"
    " current_setting('max_replication_slots')::int,"
    " (SELECT count(*) FROM pg_replication_slots),"
    " current_setting('max_wal_senders')::int,"
    " (SELECT count(*) FROM pg_stat_replication),"
    " (SELECT rolreplication OR rolsuper FROM pg_roles"
    "  WHERE rolname = current_user),"
    " current_user, current_database()";

static const char SLOT_SQL[] =
    "SELECT slot_type, coalesce(plugin, ''), coalesce(database, ''),"
    " coalesce(database, '') = current_database()"
    " FROM pg_replication_slots WHERE slot_name = $1";

static const char PUB_SQL[] =
    "SELECT pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication"
    " WHERE pubname = $1";

/*
 * The tables a publication holds, a partition counted as its partitioned
 * table: without publish_via_partition_root the view lists partitions.
 */
static const char PUB_TABLES_SQL[] =
    "SELECT DISTINCT rn.nspname, rc.relname FROM pg_publication_tables p"
    " JOIN pg_namespace n ON n.nspname = p.schemaname"
    " JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = p.tablename"
    " JOIN pg_class rc ON rc.oid = coalesce(pg_partition_root(c.oid), c.oid)"
    " JOIN pg_namespace rn ON rn.oid = rc.relnamespace"
    " WHERE p.pubname = $1 ORDER BY 1, 2";

/* Whether the publication lists partitions under their own names. */
static const char PUB_PARTITIONS_SQL[] =
    "SELECT string_agg(DISTINCT format('%s.%s', rn.nspname, rc.relname), ', ')"
    " FROM pg_publication pb"
    " JOIN pg_publication_tables p ON p.pubname = pb.pubname"
    " JOIN pg_namespace n ON n.nspname = p.schemaname"
    " JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = p.tablename"
    " JOIN pg_class rc ON rc.oid = pg_partition_root(c.oid)"
    " JOIN pg_namespace rn ON rn.oid = rc.relnamespace"
    " WHERE pb.pubname = $1 AND NOT pb.pubviaroot";

/*
 * Tables whose definition needs a word: partitioned ones (their key,
 * their partitions, any that is not a table), and generated columns
 * (VIRTUAL ones named; whether any is STORED).
 */
static const char DEFINITIONS_SQL[] =
    "SELECT n.nspname, c.relname, c.relkind = 'p',"
    " CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,"
    " (SELECT count(*) FROM pg_partition_tree(c.oid) t WHERE t.level > 0),"
    " (SELECT string_agg(format('%s.%s (relkind ''%s'')', pn.nspname,"
    "   p.relname, p.relkind), ', ') FROM pg_partition_tree(c.oid) t"
    "   JOIN pg_class p ON p.oid = t.relid"
    "   JOIN pg_namespace pn ON pn.oid = p.relnamespace"
    "   WHERE t.level > 0 AND p.relkind NOT IN ('r', 'p')),"
    " (SELECT string_agg(a.attname, ', ' ORDER BY a.attnum) FROM pg_attribute a"
    "   WHERE a.attrelid = c.oid AND a.attgenerated = 'v'"
    "   AND NOT a.attisdropped),"
    " EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid"
    "   AND a.attgenerated = 's' AND NOT a.attisdropped)"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition"
    " AND (c.relkind = 'p' OR EXISTS (SELECT 1 FROM pg_attribute a"
    "   WHERE a.attrelid = c.oid AND a.attgenerated <> ''"
    "   AND NOT a.attisdropped))"
    " ORDER BY 1, 2";

/* Publication options PostgreSQL 18 added (generated columns). */
static const char PUB_GENCOLS_SQL[] =
    "SELECT pubgencols = 's' FROM pg_publication WHERE pubname = $1";

typedef struct report {
    json_t *root;
    int blocking;
    int warnings;
    bool stored_generated;   /* an owned table has a STORED generated column */
} report;

/* ------------------------------------------------------------ helpers */

static PGresult *query(PGconn *conn, const char *sql, const char *param)
{
    const char *params[1] = {param};
    PGresult *res = PQexecParams(conn, sql, param ? 1 : 0, NULL, params, NULL,
                                 NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        return res;
    const char *msg = PQerrorMessage(conn);
    fprintf(stderr, "cleave analyze: reading the source catalog: %.*s\n",
            (int)strcspn(msg, "\n"), msg);
    PQclear(res);
    return NULL;
}

static bool is_true(const PGresult *res, int row, int col)
{
    return strcmp(PQgetvalue(res, row, col), "t") == 0;
}

/* "schema.table" as the report names a table. */
static char *qualified(const char *schema, const char *name)
{
    char *s = NULL;
    if (asprintf(&s, "%s.%s", schema, name) < 0)
        return NULL;
    return s;
}

/* Appends an item with its status, counting what blocks and warns. */
static void add_item(report *r, json_t *list, json_t *item, const char *status)
{
    json_object_set_new(item, "status", json_string(status));
    json_array_append_new(list, item);
    if (strcmp(status, "block") == 0)
        r->blocking++;
    else if (strcmp(status, "warn") == 0)
        r->warnings++;
}

/* Sizes as pg_size_pretty prints them. */
static void pretty_size(int64_t bytes, char *out, size_t outlen)
{
    static const char *const units[] = {"bytes", "kB", "MB", "GB", "TB", "PB"};
    int64_t v = bytes;
    size_t u = 0;
    while (u + 1 < sizeof units / sizeof *units && (v >= 10240 || v <= -10240)) {
        v = (v + (v >= 0 ? 512 : -512)) / 1024;
        u++;
    }
    snprintf(out, outlen, "%" PRId64 " %s", v, units[u]);
}

static bool config_lists(const cfg_table *v, size_t n, const char *schema,
                         const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].schema, schema) == 0 && strcmp(v[i].name, name) == 0)
            return true;
    return false;
}

static bool is_shared(const cfg *c, const char *schema, const char *name)
{
    for (size_t s = 0; s < c->n_services; s++)
        if (config_lists(c->services[s].shared, c->services[s].n_shared,
                         schema, name))
            return true;
    return false;
}

/* ------------------------------------------------------------ tables */

/*
 * A table (or one partition of it) that cannot replicate UPDATE and
 * DELETE: identity NOTHING, or DEFAULT without a primary key.
 */
static void check_identity(report *r, json_t *list, const char *table,
                           const char *partition, char ri, bool pk,
                           const char *fix)
{
    if (ri != 'n' && (ri != 'd' || pk))
        return;
    const char *what = ri == 'n' ? "REPLICA IDENTITY NOTHING"
                                 : "no primary key, REPLICA IDENTITY DEFAULT";
    char *problem = NULL;
    if (asprintf(&problem, "%s%s%s%s", partition ? "partition " : "",
                 partition ? partition : "", partition ? ": " : "", what) < 0)
        problem = NULL;
    json_t *item = json_pack("{s:s, s:s, s:s, s:s}", "table", table ? table : "",
                             "replica_identity", ri == 'n' ? "nothing" : "default",
                             "problem", problem ? problem : "", "fix", fix);
    if (partition)
        json_object_set_new(item, "partition", json_string(partition));
    add_item(r, list, item, "block");
    free(problem);
}

/* Tables and their owners, replica identity, sizes per service. */
static bool check_tables(const cfg *c, report *r, PGresult *tabs)
{
    json_t *tables = json_array(), *ident = json_array(), *sizes = json_array();
    int64_t *bytes = calloc(c->n_services ? c->n_services : 1, sizeof *bytes);
    if (!bytes)
        return false;
    for (int i = 0; i < PQntuples(tabs); i++) {
        const char *schema = PQgetvalue(tabs, i, 0), *name = PQgetvalue(tabs, i, 1);
        char *qn = qualified(schema, name);
        const cfg_service *owner = cfg_owner(c, schema, name);
        bool shared = is_shared(c, schema, name);
        json_t *t = json_pack("{s:s, s:o, s:b}", "table", qn ? qn : "",
                              "owner", owner ? json_string(owner->name)
                                             : json_null(),
                              "shared", shared);
        add_item(r, tables, t, owner || shared ? "ok" : "block");
        if (owner) {
            bytes[owner - c->services] += strtoll(PQgetvalue(tabs, i, 4), NULL, 10);
            check_identity(r, ident, qn, NULL, PQgetvalue(tabs, i, 2)[0],
                           is_true(tabs, i, 3), PQgetvalue(tabs, i, 5));
        }
        free(qn);
    }
    /* What the configuration names that the source does not have. */
    json_t *missing = json_array();
    for (size_t s = 0; s < c->n_services; s++) {
        const cfg_service *svc = &c->services[s];
        for (int kind = 0; kind < 2; kind++) {
            const cfg_table *v = kind ? svc->shared : svc->owned;
            size_t n = kind ? svc->n_shared : svc->n_owned;
            for (size_t k = 0; k < n; k++) {
                bool found = false;
                for (int i = 0; i < PQntuples(tabs) && !found; i++)
                    found = strcmp(PQgetvalue(tabs, i, 0), v[k].schema) == 0 &&
                            strcmp(PQgetvalue(tabs, i, 1), v[k].name) == 0;
                if (found)
                    continue;
                char *qn = qualified(v[k].schema, v[k].name);
                add_item(r, missing,
                         json_pack("{s:s, s:s, s:s}", "table", qn ? qn : "",
                                   "service", svc->name, "listed_as",
                                   kind ? "shared" : "owned"),
                         kind ? "warn" : "block");
                free(qn);
            }
        }
    }
    for (size_t s = 0; s < c->n_services; s++) {
        char pretty[64];
        pretty_size(bytes[s], pretty, sizeof pretty);
        json_array_append_new(sizes, json_pack("{s:s, s:I, s:s, s:I}",
                              "service", c->services[s].name,
                              "bytes", (json_int_t)bytes[s], "pretty", pretty,
                              "tables", (json_int_t)c->services[s].n_owned));
    }
    free(bytes);
    json_object_set_new(r->root, "tables", tables);
    json_object_set_new(r->root, "missing_tables", missing);
    json_object_set_new(r->root, "replica_identity", ident);
    json_object_set_new(r->root, "sizes", sizes);
    return true;
}

/* Every partition of an owned partitioned table, checked as a table. */
static bool check_partitions(PGconn *conn, const cfg *c, report *r)
{
    PGresult *res = query(conn, PARTITIONS_SQL, NULL);
    if (!res)
        return false;
    json_t *ident = json_object_get(r->root, "replica_identity");
    for (int i = 0; i < PQntuples(res); i++) {
        const char *schema = PQgetvalue(res, i, 0), *name = PQgetvalue(res, i, 1);
        if (!cfg_owner(c, schema, name))
            continue;
        char *qn = qualified(schema, name);
        char *part = qualified(PQgetvalue(res, i, 2), PQgetvalue(res, i, 3));
        check_identity(r, ident, qn, part ? part : "", PQgetvalue(res, i, 4)[0],
                       is_true(res, i, 5), PQgetvalue(res, i, 6));
        free(qn);
        free(part);
    }
    PQclear(res);
    return true;
}

/* ------------------------------------------------------------ foreign keys */

/* Whether every referenced column is in the from-service's references. */
static bool fk_declared(const cfg_service *from, const char *schema,
                        const char *table, json_t *cols)
{
    size_t i;
    json_t *col;
    json_array_foreach(cols, i, col) {
        bool found = false;
        for (size_t k = 0; k < from->n_refs && !found; k++) {
            const cfg_ref *ref = &from->refs[k];
            found = strcmp(ref->table.schema, schema) == 0 &&
                    strcmp(ref->table.name, table) == 0 &&
                    strcmp(ref->column, json_string_value(col)) == 0;
        }
        if (!found)
            return false;
    }
    return true;
}

PGresult *analyze_foreign_keys(PGconn *conn, char *err, size_t errlen)
{
    PGresult *res = PQexec(conn, FKEYS_SQL);
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        return res;
    const char *msg = PQerrorMessage(conn);
    snprintf(err, errlen, "reading the foreign keys: %.*s",
             (int)strcspn(msg, "\n"), msg);
    PQclear(res);
    return NULL;
}

static bool check_fkeys(PGconn *conn, const cfg *c, report *r)
{
    char err[512];
    PGresult *res = analyze_foreign_keys(conn, err, sizeof err);
    if (!res) {
        fprintf(stderr, "cleave analyze: %s\n", err);
        return false;
    }
    json_t *fks = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        const char *fs = PQgetvalue(res, i, ANALYZE_FK_FROM_SCHEMA);
        const char *ft = PQgetvalue(res, i, ANALYZE_FK_FROM_TABLE);
        const char *ts = PQgetvalue(res, i, ANALYZE_FK_TO_SCHEMA);
        const char *tt = PQgetvalue(res, i, ANALYZE_FK_TO_TABLE);
        const cfg_service *from = cfg_owner(c, fs, ft), *to = cfg_owner(c, ts, tt);
        if (!from || !to || from == to)
            continue;
        json_t *fcols = json_loads(
            PQgetvalue(res, i, ANALYZE_FK_FROM_COLUMNS), 0, NULL);
        json_t *tcols = json_loads(
            PQgetvalue(res, i, ANALYZE_FK_TO_COLUMNS), 0, NULL);
        if (!fcols || !tcols) {
            json_decref(fcols);
            json_decref(tcols);
            continue;
        }
        char *fq = qualified(fs, ft), *tq = qualified(ts, tt);
        bool declared = fk_declared(from, ts, tt, tcols);
        add_item(r, fks,
                 json_pack("{s:s, s:s, s:O, s:s, s:s, s:O, s:s, s:b, s:s}",
                           "name", PQgetvalue(res, i, ANALYZE_FK_NAME),
                           "from_table", fq ? fq : "", "from_columns", fcols,
                           "from_service", from->name,
                           "to_table", tq ? tq : "", "to_columns", tcols,
                           "to_service", to->name, "declared", declared,
                           "drop", PQgetvalue(res, i, ANALYZE_FK_DROP)),
                 "warn");
        json_decref(fcols);
        json_decref(tcols);
        free(fq);
        free(tq);
    }
    PQclear(res);
    json_object_set_new(r->root, "foreign_keys", fks);
    return true;
}

/* ------------------------------------------------------------ definitions */

enum { DF_SCHEMA, DF_NAME, DF_PARTITIONED, DF_KEY, DF_NPARTS, DF_BAD_PARTS,
       DF_VIRTUAL, DF_STORED };

static void add_definition(report *r, json_t *list, const char *table,
                           const char *status, const char *detail)
{
    add_item(r, list, json_pack("{s:s, s:s}", "table", table, "detail",
                                detail), status);
}

/* One owned table's partitions and generated columns, as run makes them. */
static void check_definition(report *r, json_t *list, const PGresult *res,
                             int i)
{
    char *qn = qualified(PQgetvalue(res, i, DF_SCHEMA),
                         PQgetvalue(res, i, DF_NAME));
    const char *table = qn ? qn : "";
    char detail[1024];
    if (is_true(res, i, DF_PARTITIONED) && !PQgetisnull(res, i, DF_BAD_PARTS)) {
        snprintf(detail, sizeof detail, "%s has partitions that are not "
                 "tables, which cleave cannot create: %s; detach them or "
                 "leave the table out", table, PQgetvalue(res, i, DF_BAD_PARTS));
        add_definition(r, list, table, "block", detail);
    } else if (is_true(res, i, DF_PARTITIONED)) {
        snprintf(detail, sizeof detail, "%s is partitioned by %s: created "
                 "with its %s partition(s), replicated as the table",
                 table, PQgetvalue(res, i, DF_KEY),
                 PQgetvalue(res, i, DF_NPARTS));
        add_definition(r, list, table, "ok", detail);
    }
    if (!PQgetisnull(res, i, DF_VIRTUAL)) {
        snprintf(detail, sizeof detail, "%s has VIRTUAL generated column(s) "
                 "%s: created VIRTUAL in a PostgreSQL 18 target, STORED in "
                 "an older one; never written as data", table,
                 PQgetvalue(res, i, DF_VIRTUAL));
        add_definition(r, list, table, "ok", detail);
    }
    r->stored_generated |= is_true(res, i, DF_STORED);
    free(qn);
}

static bool check_definitions(PGconn *conn, const cfg *c, report *r)
{
    PGresult *res = query(conn, DEFINITIONS_SQL, NULL);
    if (!res)
        return false;
    json_t *list = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        if (cfg_owner(c, PQgetvalue(res, i, DF_SCHEMA),
                      PQgetvalue(res, i, DF_NAME)))
            check_definition(r, list, res, i);
    PQclear(res);
    json_object_set_new(r->root, "definitions", list);
    return true;
}

/* ------------------------------------------------------------ server */

static void add_setting(report *r, json_t *list, const char *name,
                        const char *status, const char *detail)
{
    add_item(r, list, json_pack("{s:s, s:s}", "check", name, "detail", detail),
             status);
}

/* The slot cleave would use; sets *exists. */
static bool check_slot(PGconn *conn, const cfg *c, report *r, json_t *list,
                       bool *exists)
{
    PGresult *res = query(conn, SLOT_SQL, c->source.slot);
    if (!res)
        return false;
    char detail[512];
    *exists = PQntuples(res) > 0;
    if (!*exists) {
        snprintf(detail, sizeof detail, "%s does not exist; run creates it",
                 c->source.slot);
        add_setting(r, list, "slot", "ok", detail);
    } else if (strcmp(PQgetvalue(res, 0, 0), "logical") != 0 ||
               strcmp(PQgetvalue(res, 0, 1), "pgoutput") != 0 ||
               !is_true(res, 0, 3)) {
        snprintf(detail, sizeof detail,
                 "%s exists but is %s, plugin '%s', database '%s'; cleave "
                 "needs a logical pgoutput slot in this database: drop it "
                 "(SELECT pg_drop_replication_slot('%s')) or configure "
                 "another slot",
                 c->source.slot, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
                 PQgetvalue(res, 0, 2), c->source.slot);
        add_setting(r, list, "slot", "block", detail);
    } else {
        snprintf(detail, sizeof detail, "%s exists (logical, pgoutput); run "
                 "resumes from it", c->source.slot);
        add_setting(r, list, "slot", "ok", detail);
    }
    PQclear(res);
    return true;
}

/* Any target service: PostgreSQL sinks compute generated columns. */
static bool any_postgres_target(const cfg *c)
{
    for (size_t s = 0; s < c->n_services; s++)
        if (c->services[s].target_postgres)
            return true;
    return false;
}

/*
 * How an existing publication sends partitioned tables and generated
 * columns (PostgreSQL 18's publish_generated_columns).
 */
static bool check_publication_columns(PGconn *conn, const cfg *c, report *r,
                                      json_t *list)
{
    const char *pub = c->source.publication;
    char detail[1024];
    PGresult *res = query(conn, PUB_PARTITIONS_SQL, pub);
    if (!res)
        return false;
    if (!PQgetisnull(res, 0, 0)) {
        snprintf(detail, sizeof detail, "%s publishes the partitions of %s "
                 "under their own names; run sets publish_via_partition_root "
                 "= true, so that changes arrive as the table's", pub,
                 PQgetvalue(res, 0, 0));
        add_setting(r, list, "publication_partitions", "warn", detail);
    }
    PQclear(res);
    if (PQserverVersion(conn) < 180000 || !r->stored_generated ||
        !any_postgres_target(c))
        return true;
    if (!(res = query(conn, PUB_GENCOLS_SQL, pub)))
        return false;
    if (PQntuples(res) > 0 && is_true(res, 0, 0)) {
        snprintf(detail, sizeof detail, "%s publishes STORED generated "
                 "columns, which a PostgreSQL target computes itself and "
                 "refuses as data: ALTER PUBLICATION %s SET "
                 "(publish_generated_columns = none)", pub, pub);
        add_setting(r, list, "publication_generated_columns", "block", detail);
    }
    PQclear(res);
    return true;
}

static bool check_publication(PGconn *conn, const cfg *c, report *r,
                              json_t *list)
{
    const char *pub = c->source.publication;
    PGresult *res = query(conn, PUB_SQL, pub);
    if (!res)
        return false;
    char detail[1024];
    if (PQntuples(res) == 0) {
        snprintf(detail, sizeof detail, "%s does not exist; run creates it", pub);
        add_setting(r, list, "publication", "ok", detail);
        PQclear(res);
        return true;
    }
    static const char *const actions[] = {"insert", "update", "delete",
                                          "truncate"};
    char lacking[64] = "";
    for (int a = 0; a < 4; a++)
        if (!is_true(res, 0, a))
            snprintf(lacking + strlen(lacking), sizeof lacking - strlen(lacking),
                     "%s%s", *lacking ? ", " : "", actions[a]);
    PQclear(res);
    if (*lacking) {
        snprintf(detail, sizeof detail, "%s does not publish %s: ALTER "
                 "PUBLICATION ... SET (publish = 'insert, update, delete, "
                 "truncate')", pub, lacking);
        add_setting(r, list, "publication", "block", detail);
    }
    if (!check_publication_columns(conn, c, r, list))
        return false;
    if (!(res = query(conn, PUB_TABLES_SQL, pub)))
        return false;
    size_t lacks = 0;
    for (size_t s = 0; s < c->n_services; s++)
        for (size_t k = 0; k < c->services[s].n_owned; k++) {
            const cfg_table *t = &c->services[s].owned[k];
            bool found = false;
            for (int i = 0; i < PQntuples(res) && !found; i++)
                found = strcmp(PQgetvalue(res, i, 0), t->schema) == 0 &&
                        strcmp(PQgetvalue(res, i, 1), t->name) == 0;
            lacks += !found;
        }
    if (lacks) {
        snprintf(detail, sizeof detail, "%s lacks %zu owned table(s); run "
                 "adds them", pub, lacks);
        add_setting(r, list, "publication_tables", "warn", detail);
    }
    for (int i = 0; i < PQntuples(res); i++) {
        const char *schema = PQgetvalue(res, i, 0), *name = PQgetvalue(res, i, 1);
        if (cfg_owner(c, schema, name))
            continue;
        snprintf(detail, sizeof detail, "%s publishes %s.%s, which no service "
                 "owns", pub, schema, name);
        add_setting(r, list, "publication_tables", "warn", detail);
    }
    if (!*lacking && !lacks)
        add_setting(r, list, "publication", "ok", "exists, publishes every "
                    "owned table and every action");
    PQclear(res);
    return true;
}

/* source.failover_slot asks for what PostgreSQL 17 brought. */
static void check_failover(PGconn *conn, const cfg *c, report *r, json_t *list)
{
    if (!c->source.failover_slot)
        return;
    int major = PQserverVersion(conn) / 10000;
    bool ok = major >= 17;
    char detail[256];
    snprintf(detail, sizeof detail, ok
             ? "the slot fails over (FAILOVER, PostgreSQL %d)"
             : "source.failover_slot needs PostgreSQL 17 or later; the "
               "source runs PostgreSQL %d", major);
    add_setting(r, list, "failover_slot", ok ? "ok" : "block", detail);
}

/*
 * The source's encoding. cleave reads and writes UTF8 (dbconn.h) and the
 * servers convert, but from SQL_ASCII PostgreSQL converts nothing: its
 * bytes go on as they are and are taken for UTF-8.
 */
static void check_encoding(PGconn *conn, report *r, json_t *list)
{
    const char *enc = PQparameterStatus(conn, "server_encoding");
    bool raw = enc && strcmp(enc, "SQL_ASCII") == 0;
    char detail[512];
    if (raw)
        snprintf(detail, sizeof detail, "the source's encoding is SQL_ASCII, "
                 "which PostgreSQL never converts: its bytes are taken for "
                 "UTF-8, a target of another encoding refuses those that are "
                 "not (the service stops), Kafka gets U+FFFD for them, a "
                 "SQL_ASCII target stores them as they are");
    else
        snprintf(detail, sizeof detail, "the source's encoding is %s; cleave "
                 "speaks UTF8 to every server and each converts: a target "
                 "of another encoding gets the same characters, and refuses "
                 "one it cannot hold (the service stops)", enc ? enc : "?");
    add_setting(r, list, "encoding", raw ? "warn" : "ok", detail);
}

static bool check_server(PGconn *conn, const cfg *c, report *r)
{
    PGresult *res = query(conn, SERVER_SQL, NULL);
    if (!res)
        return false;
    json_t *list = json_array();
    json_object_set_new(r->root, "settings", list);
    char detail[512];
    bool logical = strcmp(PQgetvalue(res, 0, 0), "logical") == 0;
    if (logical)
        snprintf(detail, sizeof detail, "wal_level is logical");
    else
        snprintf(detail, sizeof detail, "wal_level is %.64s; set wal_level = "
                 "logical and restart the server", PQgetvalue(res, 0, 0));
    add_setting(r, list, "wal_level", logical ? "ok" : "block", detail);

    bool slot_exists = false;
    if (!check_slot(conn, c, r, list, &slot_exists)) {
        PQclear(res);
        return false;
    }
    static const struct {
        const char *name, *what;
        int max_col, used_col;
    } room[] = {
        {"max_replication_slots", "replication slots", 1, 2},
        {"max_wal_senders", "WAL senders", 3, 4},
    };
    for (size_t k = 0; k < 2; k++) {
        long max = strtol(PQgetvalue(res, 0, room[k].max_col), NULL, 10);
        long used = strtol(PQgetvalue(res, 0, room[k].used_col), NULL, 10);
        bool ok = slot_exists || used < max;
        snprintf(detail, sizeof detail, "%ld of %ld %s in use%s", used, max,
                 room[k].what, ok ? "" : "; raise it and restart the server");
        add_setting(r, list, room[k].name, ok ? "ok" : "block", detail);
    }
    bool repl = is_true(res, 0, 5);
    snprintf(detail, sizeof detail, "role %s %s", PQgetvalue(res, 0, 6),
             repl ? "may replicate"
                  : "lacks REPLICATION: ALTER ROLE ... WITH REPLICATION");
    add_setting(r, list, "replication_right", repl ? "ok" : "block", detail);
    check_failover(conn, c, r, list);
    check_encoding(conn, r, list);
    PQclear(res);
    return check_publication(conn, c, r, list);
}

/* ------------------------------------------------------------ text */

static void print_marker(const json_t *item)
{
    const char *st = json_string_value(json_object_get(item, "status"));
    printf("  %-8s", strcmp(st, "ok") == 0 ? "[ok]"
                     : strcmp(st, "warn") == 0 ? "[warn]" : "[block]");
}

static const char *str(const json_t *item, const char *key)
{
    const char *s = json_string_value(json_object_get(item, key));
    return s ? s : "";
}

static void print_columns(const json_t *cols)
{
    size_t i;
    json_t *col;
    printf("(");
    json_array_foreach(cols, i, col)
        printf("%s%s", i ? ", " : "", json_string_value(col));
    printf(")");
}

static void print_tables(const report *r)
{
    json_t *tables = json_object_get(r->root, "tables"), *t;
    json_t *missing = json_object_get(r->root, "missing_tables");
    size_t i;
    printf("Tables (%zu in the source)\n", json_array_size(tables));
    json_array_foreach(tables, i, t) {
        print_marker(t);
        json_t *owner = json_object_get(t, "owner");
        if (json_is_string(owner))
            printf("%s: owned by %s\n", str(t, "table"), json_string_value(owner));
        else if (json_is_true(json_object_get(t, "shared")))
            printf("%s: shared\n", str(t, "table"));
        else
            printf("%s: owned by no service; add it to owned_tables or "
                   "shared_tables\n", str(t, "table"));
    }
    json_array_foreach(missing, i, t) {
        print_marker(t);
        printf("%s: in %s of %s, missing from the source\n", str(t, "table"),
               strcmp(str(t, "listed_as"), "owned") == 0 ? "owned_tables"
                                                         : "shared_tables",
               str(t, "service"));
    }
}

static void print_fkeys(const report *r)
{
    json_t *fks = json_object_get(r->root, "foreign_keys"), *f;
    size_t i;
    printf("\nCross-service foreign keys (%zu)\n", json_array_size(fks));
    if (!json_array_size(fks))
        printf("  [ok]    none\n");
    json_array_foreach(fks, i, f) {
        print_marker(f);
        printf("%s: %s ", str(f, "name"), str(f, "from_table"));
        print_columns(json_object_get(f, "from_columns"));
        printf(" -> %s ", str(f, "to_table"));
        print_columns(json_object_get(f, "to_columns"));
        printf(", %s -> %s, %s\n", str(f, "from_service"), str(f, "to_service"),
               json_is_true(json_object_get(f, "declared"))
                   ? "declared in references"
                   : "not declared in references");
        printf("          %s\n", str(f, "drop"));
    }
}

static void print_rest(const report *r)
{
    json_t *ident = json_object_get(r->root, "replica_identity"), *t;
    size_t i;
    printf("\nReplica identity (UPDATE and DELETE)\n");
    if (!json_array_size(ident))
        printf("  [ok]    every owned table can replicate UPDATE and DELETE\n");
    json_array_foreach(ident, i, t) {
        print_marker(t);
        printf("%s: %s\n          %s\n", str(t, "table"), str(t, "problem"),
               str(t, "fix"));
    }
    printf("\nTable definitions\n");
    if (!json_array_size(json_object_get(r->root, "definitions")))
        printf("  [ok]    nothing partitioned or generated to note\n");
    json_array_foreach(json_object_get(r->root, "definitions"), i, t) {
        print_marker(t);
        printf("%s\n", str(t, "detail"));
    }
    printf("\nServer settings\n");
    json_array_foreach(json_object_get(r->root, "settings"), i, t) {
        print_marker(t);
        printf("%s: %s\n", str(t, "check"), str(t, "detail"));
    }
    printf("\nData to copy\n");
    json_array_foreach(json_object_get(r->root, "sizes"), i, t)
        printf("  %-24s %10s in %" JSON_INTEGER_FORMAT " table(s)\n",
               str(t, "service"), str(t, "pretty"),
               json_integer_value(json_object_get(t, "tables")));
}

static void print_text(const report *r, const char *dsn)
{
    printf("cleave analyze: source %s\n\n", dsn ? dsn : "");
    print_tables(r);
    print_fkeys(r);
    print_rest(r);
    printf("\n");
    if (r->blocking)
        printf("run would be blocked by %d problem(s)", r->blocking);
    else
        printf("nothing blocks run");
    printf(", %d warning(s)\n", r->warnings);
}

/* ------------------------------------------------------------ entry */

int analyze_run(const cfg *config, bool json)
{
    char err[1024];
    PGconn *conn = dbconn_open(config->source.dsn, "cleave analyze",
                               "the source", err, sizeof err);
    if (!conn) {
        fprintf(stderr, "cleave analyze: %s\n", err);
        return EXITCODE_RUNTIME;
    }
    char *dsn = cfg_dsn_redacted(config->source.dsn);
    report r = {.root = json_object()};
    PGresult *tabs = query(conn, TABLES_SQL, NULL);
    bool ok = tabs && check_tables(config, &r, tabs) &&
              check_partitions(conn, config, &r) &&
              check_fkeys(conn, config, &r) &&
              check_definitions(conn, config, &r) &&
              check_server(conn, config, &r);
    PQclear(tabs);
    PQfinish(conn);
    int rc = EXITCODE_RUNTIME;
    if (ok) {
        json_object_set_new(r.root, "source", json_string(dsn ? dsn : ""));
        json_object_set_new(r.root, "blocking", json_integer(r.blocking));
        json_object_set_new(r.root, "warnings", json_integer(r.warnings));
        if (json) {
            json_dumpf(r.root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
            printf("\n");
        } else {
            print_text(&r, dsn);
        }
        rc = r.blocking ? EXITCODE_FOUND : EXITCODE_OK;
    }
    json_decref(r.root);
    free(dsn);
    return rc;
}
