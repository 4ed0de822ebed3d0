/* source: control and replication connections; see source.h. */
#include "daemon/source.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <netinet/in.h>

#include <libpq-fe.h>

#include "common/clock.h"
#include "common/dbconn.h"
#include "common/log.h"
#include "daemon/binfmt.h"
#include "daemon/snapshot.h"
#include "daemon/stream.h"
#include "decoder/frame.h"
#include "decoder/pgoutput.h"
#include "sinks/sink.h"

/*
 * The protocol cleave reads: version 2 brings streamed transactions; the
 * later versions add two-phase decoding and parallel apply, which cleave
 * does not ask for.
 */
#define SOURCE_PROTO_WANTED 2

/* The replication socket's receive buffer, from a source on this host. */
#define LOOPBACK_RCVBUF (64 << 10)
#define LOOPBACK_RCVBUF_NAME "64kB"   /* as the log says it */

/* How often a stream the server filters looks for an origin not cleave's. */
#define ORIGIN_CHECK_MS 5000

struct source {
    const cfg *config;       /* the services: which tables to publish */
    const cfg_source *settings;
    PGconn *control;
    PGconn *repl;
    char *copybuf;           /* the last message handed out */
    snap *created;           /* the slot made by prepare, snapshot held */
    int server_version;
    int proto;
    /* The server filters origins: a foreign one is looked for now and then. */
    bool origin_none;
    int64_t next_origin_check;
    /* Values in binary form: allowed by the pipeline, and checked. */
    bool binary_allowed;
    binfmt *bin;
    bool bin_missing;        /* text because a target lacked a table */
    bool small_window;       /* the loopback receive buffer was set */
    /* Sticky: once the server invalidated the slot, it is never remade. */
    bool slot_lost;
    char lost_reason[128];
    bool no_new_slot;        /* source_forbid_new_slot */
    source_new_slot_fn *new_slot_fn;
    void *new_slot_arg;
    /* Per service: its move is complete, its tables left the publication. */
    atomic_bool *left;
};

source *source_new(const cfg *config, const cfg_source *settings)
{
    source *src = calloc(1, sizeof *src);
    size_t n = config->n_services ? config->n_services : 1;
    if (src && !(src->left = calloc(n, sizeof *src->left))) {
        free(src);
        return NULL;
    }
    if (src) {
        src->config = config;
        src->settings = settings;
        src->binary_allowed = true;
    }
    return src;
}

void source_free(source *src)
{
    if (!src)
        return;
    source_stop(src);
    binfmt_free(src->bin);
    snap_release(src->created);
    PQfinish(src->control);
    free(src->left);
    free(src);
}

static void set_err(char *err, size_t errlen, const char *what, PGconn *conn)
{
    const char *msg = conn ? PQerrorMessage(conn) : "out of memory";
    snprintf(err, errlen, "%s: %.*s", what, (int)strcspn(msg, "\n"), msg);
}

static bool loopback_peer(int fd)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;
    if (getpeername(fd, (struct sockaddr *)&sa, &len) != 0)
        return false;
    if (sa.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    return sa.ss_family == AF_INET6 &&
           IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)&sa)->sin6_addr);
}

/*
 * In a catch-up the walsender sends one message per change, each through
 * the whole TCP stack while the window is open. Over loopback a small
 * window closes while the reader pauses (pipeline.c), and the sends
 * gather into large segments: the walsender's CPU fell by a tenth to a
 * third in bench/kafka.sh. Across a network the same window would cap
 * the rate at one window per round trip, so only a source on this host
 * gets it. True when it was set.
 */
static bool size_receive_buffer(PGconn *conn)
{
    int fd = PQsocket(conn), size = LOOPBACK_RCVBUF;
    if (fd < 0 || !loopback_peer(fd))
        return false;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size) == 0)
        return true;
    log_warning("event=rcvbuf_failed error=\"%s\"", strerror(errno));
    return false;
}

static PGconn *connect_source(const source *src, bool replication)
{
    return dbconn_connect(src->settings->dsn, "cleave",
                          replication ? DBCONN_REPLICATION : DBCONN_PLAIN);
}

/* Runs a statement with text parameters; the result or NULL (err set). */
static PGresult *query(PGconn *conn, const char *sql, int nparams,
                       const char *const *params, char *err, size_t errlen)
{
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    set_err(err, errlen, sql, conn);
    PQclear(res);
    return NULL;
}

static bool ensure_control(source *src, char *err, size_t errlen)
{
    if (src->control && PQstatus(src->control) == CONNECTION_OK)
        return true;
    PQfinish(src->control);
    src->control = connect_source(src, false);
    if (!src->control || PQstatus(src->control) != CONNECTION_OK) {
        set_err(err, errlen, "cannot connect to the source", src->control);
        PQfinish(src->control);
        src->control = NULL;
        return false;
    }
    src->server_version = PQserverVersion(src->control);
    int best = pgo_proto_for_server(src->server_version);
    src->proto = best < SOURCE_PROTO_WANTED ? best : SOURCE_PROTO_WANTED;
    if (src->proto == 0) {
        snprintf(err, errlen, "the source runs PostgreSQL %d, which has no "
                 "pgoutput; 10 or later is needed", src->server_version / 10000);
        return false;
    }
    return true;
}

int source_proto_version(const source *src)
{
    return src->proto;
}

/* "s1"."t1", "s2"."t2", ... for every owned table; NULL on error. */
void source_leave(source *src, size_t svc)
{
    atomic_store(&src->left[svc], true);
}

void source_on_new_slot(source *src, source_new_slot_fn *fn, void *arg)
{
    src->new_slot_fn = fn;
    src->new_slot_arg = arg;
}

void source_forbid_new_slot(source *src)
{
    src->no_new_slot = true;
}

bool source_left(const source *src, size_t svc)
{
    return atomic_load(&src->left[svc]);
}

static bool publishes(source *src, size_t svc)
{
    return !source_left(src, svc);
}

static char *table_list(source *src)
{
    PGconn *conn = src->control;
    const cfg *config = src->config;
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    bool ok = out != NULL;
    const char *sep = "";
    for (size_t i = 0; ok && i < config->n_services; i++) {
        const cfg_service *svc = &config->services[i];
        if (!publishes(src, i))
            continue;
        for (size_t j = 0; ok && j < svc->n_owned; j++) {
            const cfg_table *t = &svc->owned[j];
            char *s = PQescapeIdentifier(conn, t->schema, strlen(t->schema));
            char *n = PQescapeIdentifier(conn, t->name, strlen(t->name));
            ok = s && n;
            if (ok)
                fprintf(out, "%s%s.%s", sep, s, n);
            sep = ", ";
            PQfreemem(s);
            PQfreemem(n);
        }
    }
    if (out)
        fclose(out);
    if (!ok) {
        free(buf);
        return NULL;
    }
    return buf;
}

/*
 * Whether the publication holds table t, and whether t is partitioned;
 * false with err where the catalog has no table of t's name.
 * pg_publication_tables lists a partitioned table by its partitions
 * unless the publication publishes via the root, so t or any member of
 * its partition tree (pg_partition_tree has none for a plain table)
 * counts.
 */
static bool table_membership(source *src, const char *pub, const cfg_table *t,
                             bool *member, bool *partitioned, char *err,
                             size_t errlen)
{
    const char *params[] = {pub, t->schema, t->name};
    PGresult *res = query(src->control,
        "SELECT EXISTS (SELECT 1 FROM (SELECT r.oid AS relid UNION"
        "  SELECT relid FROM pg_catalog.pg_partition_tree(r.oid)) pt"
        "  JOIN pg_catalog.pg_class c ON c.oid = pt.relid"
        "  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        "  JOIN pg_catalog.pg_publication_tables p ON p.pubname = $1"
        "   AND p.schemaname = n.nspname AND p.tablename = c.relname),"
        " coalesce((SELECT relkind = 'p' FROM pg_catalog.pg_class"
        "  WHERE oid = r.oid), false), r.oid IS NOT NULL "
        "FROM (SELECT pg_catalog.to_regclass(pg_catalog.format('%I.%I',"
        "  $2::text, $3::text)) AS oid) r", 3, params, err, errlen);
    if (!res)
        return false;
    *member = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    *partitioned = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
    bool exists = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
    PQclear(res);
    if (!exists)
        snprintf(err, errlen, "owned table %s.%s is not in the source "
                 "database (renamed, moved or dropped?): rename the "
                 "service's table the same way and put its name now in the "
                 "configuration, then reload, or give it back its name",
                 t->schema, t->name);
    return exists;
}

/* Runs "ALTER PUBLICATION pub " followed by what, the names quoted. */
static bool alter_publication(source *src, const char *pub, const char *what,
                              const cfg_table *t, char *err, size_t errlen)
{
    PGconn *c = src->control;
    char *p = PQescapeIdentifier(c, pub, strlen(pub));
    char *s = t ? PQescapeIdentifier(c, t->schema, strlen(t->schema)) : NULL;
    char *n = t ? PQescapeIdentifier(c, t->name, strlen(t->name)) : NULL;
    char *sql = NULL;
    if (p && (!t || (s && n)) &&
        asprintf(&sql, "ALTER PUBLICATION %s %s%s%s%s", p, what, t ? s : "",
                 t ? "." : "", t ? n : "") < 0)
        sql = NULL;
    PQfreemem(p);
    PQfreemem(s);
    PQfreemem(n);
    PGresult *res = sql ? query(c, sql, 0, NULL, err, errlen) : NULL;
    if (!sql)
        snprintf(err, errlen, "ALTER PUBLICATION %s: out of memory", pub);
    free(sql);
    bool ok = res != NULL;
    PQclear(res);
    return ok;
}

/*
 * Adds owned tables the publication lacks (a table given to a service);
 * *partitioned is set when an owned table is partitioned.
 */
static bool add_missing_tables(source *src, const char *pub, bool *partitioned,
                               char *err, size_t errlen)
{
    const cfg *config = src->config;
    *partitioned = false;
    for (size_t i = 0; i < config->n_services; i++) {
        const cfg_service *svc = &config->services[i];
        if (!publishes(src, i))
            continue;
        for (size_t j = 0; j < svc->n_owned; j++) {
            const cfg_table *t = &svc->owned[j];
            bool member, part;
            if (!table_membership(src, pub, t, &member, &part, err, errlen))
                return false;
            *partitioned |= part;
            if (member)
                continue;
            if (!alter_publication(src, pub, "ADD TABLE ", t, err, errlen))
                return false;
            log_info("event=publication_table_added publication=%s table=%s.%s "
                     "service=%s", pub, t->schema, t->name, svc->name);
        }
    }
    return true;
}

/*
 * Changes to a partitioned table must arrive under its own name, which
 * routes them to its owner, not under its partitions' names (owned by
 * nobody): a publication made elsewhere is switched to publish via the
 * root, as PostgreSQL 13 and later can.
 */
static bool ensure_via_root(source *src, const char *pub, char *err,
                            size_t errlen)
{
    PGresult *res = query(src->control,
                          "SELECT pubviaroot FROM pg_catalog.pg_publication "
                          "WHERE pubname = $1", 1, &pub, err, errlen);
    if (!res)
        return false;
    bool via_root = PQntuples(res) > 0 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (via_root)
        return true;
    if (!alter_publication(src, pub, "SET (publish_via_partition_root = true)",
                           NULL, err, errlen))
        return false;
    log_info("event=publication_altered publication=%s "
             "publish_via_partition_root=true", pub);
    return true;
}

static bool ensure_publication(source *src, char *err, size_t errlen)
{
    const char *pub = src->settings->publication;
    PGresult *res = query(src->control,
                          "SELECT 1 FROM pg_publication WHERE pubname = $1", 1,
                          &pub, err, errlen);
    if (!res)
        return false;
    bool exists = PQntuples(res) > 0, partitioned = false;
    PQclear(res);
    if (exists)
        return add_missing_tables(src, pub, &partitioned, err, errlen) &&
               (!partitioned || src->server_version < 130000 ||
                ensure_via_root(src, pub, err, errlen));
    char *ident = PQescapeIdentifier(src->control, pub, strlen(pub));
    char *tables = table_list(src);
    char *sql = NULL;
    /* Every service's move complete: an empty publication. */
    bool ok = ident && tables &&
              asprintf(&sql, "CREATE PUBLICATION %s%s%s%s", ident,
                       tables[0] ? " FOR TABLE " : "", tables,
                       src->server_version >= 130000
                           ? " WITH (publish_via_partition_root = true)"
                           : "") >= 0;
    PQfreemem(ident);
    free(tables);
    res = ok ? query(src->control, sql, 0, NULL, err, errlen) : NULL;
    free(sql);
    if (!res)
        return false;
    PQclear(res);
    log_info("event=publication_created publication=%s", pub);
    return true;
}

/*
 * The error of an invalidated slot: what happened, why nothing is
 * streamed, and the way back (docs/operations.md, "A lost slot").
 */
static bool slot_lost(source *src, const char *reason, char *err, size_t errlen)
{
    src->slot_lost = true;
    snprintf(src->lost_reason, sizeof src->lost_reason, "%s", reason);
    /* PostgreSQL 18 quotes the cause; the log quotes the reason. */
    for (char *q = src->lost_reason; (q = strchr(q, '"')) != NULL;)
        *q = '\'';
    snprintf(err, errlen, "the source invalidated slot %s (%s): the changes "
             "since cleave last read it are gone, and cleave does not make a "
             "new slot by itself. To recover: stop cleave, run `cleave drop`, "
             "start cleave again (a new slot; the targets' tables are kept as "
             "they are, gap included), then `cleave resync` each service to "
             "copy it anew while the others stream; see A lost slot in "
             "docs/operations.md", src->settings->slot,
             src->lost_reason);
    return false;
}

static bool ensure_slot(source *src, snap_stop_fn *stop, void *arg,
                        char *err, size_t errlen)
{
    const char *params[] = {src->settings->slot};
    PGresult *res = query(src->control,
                          "SELECT plugin, database = current_database() "
                          "FROM pg_replication_slots WHERE slot_name = $1",
                          1, params, err, errlen);
    if (!res)
        return false;
    if (PQntuples(res) > 0) {
        bool ok = strcmp(PQgetvalue(res, 0, 0), "pgoutput") == 0 &&
                  strcmp(PQgetvalue(res, 0, 1), "t") == 0;
        if (!ok)
            snprintf(err, errlen, "slot %s exists but is not a pgoutput slot "
                     "of this database (plugin %s)", params[0],
                     PQgetvalue(res, 0, 0));
        PQclear(res);
        return ok;
    }
    PQclear(res);
    if (src->slot_lost) {
        snprintf(err, errlen, "the source invalidated slot %s (%s) and it has "
                 "since been dropped; cleave does not make a new slot while it "
                 "runs (the targets would miss what the old one lost): with "
                 "the owned tables emptied in every target, restart cleave to "
                 "copy everything anew", params[0], src->lost_reason);
        return false;
    }
    if (src->no_new_slot) {
        snprintf(err, errlen, "slot %s is gone: it was made before the "
                 "cut-over and only `cleave complete` or a rollback removes "
                 "it; cleave does not make it again, since a new slot would "
                 "start after the writes made since it went (see "
                 "docs/cutover.md, \"The reverse slot is gone\")", params[0]);
        return false;
    }
    if (src->new_slot_fn && !src->new_slot_fn(src->new_slot_arg, err, errlen))
        return false;
    snap_release(src->created);
    src->created = snap_create(src->settings, params[0], false, stop, arg, err,
                               errlen);
    /* Tests: a crash right after the slot was made. */
    if (src->created && getenv("CLEAVE_TEST_EXIT_AFTER_SLOT"))
        _exit(EXIT_FAILURE);
    return src->created != NULL;
}

/* FAILOVER slots came with PostgreSQL 17: asked of an older one, refused. */
static bool check_failover_version(const source *src, char *err, size_t errlen)
{
    if (!src->settings->failover_slot || src->server_version >= 170000)
        return true;
    snprintf(err, errlen, "source.failover_slot needs PostgreSQL 17 or later; "
             "the source runs PostgreSQL %d (set failover_slot: false, or "
             "upgrade the source)", src->server_version / 10000);
    return false;
}

bool source_prepare(source *src, snap_stop_fn *stop, void *stop_arg, char *err,
                    size_t errlen)
{
    return ensure_control(src, err, errlen) &&
           check_failover_version(src, err, errlen) &&
           ensure_publication(src, err, errlen) &&
           ensure_slot(src, stop, stop_arg, err, errlen);
}

snap *source_take_snapshot(source *src)
{
    snap *s = src->created;
    src->created = NULL;
    return s;
}

/*
 * Refuses a slot the server invalidated (wal_status 'lost' from PostgreSQL
 * 13 on, invalidation_reason from 17 on) before START_REPLICATION, whose
 * own error varies between versions.
 */
static bool check_slot_valid(source *src, char *err, size_t errlen)
{
    if (src->server_version < 130000)
        return true;
    const char *params[] = {src->settings->slot};
    PGresult *res = query(src->control, src->server_version >= 170000
        ? "SELECT wal_status, invalidation_reason FROM pg_replication_slots "
          "WHERE slot_name = $1"
        : "SELECT wal_status, NULL FROM pg_replication_slots "
          "WHERE slot_name = $1", 1, params, err, errlen);
    if (!res)
        return false;
    bool lost = PQntuples(res) > 0 &&
                (!PQgetisnull(res, 0, 1) ||
                 strcmp(PQgetvalue(res, 0, 0), "lost") == 0);
    char reason[128] = "";
    if (lost)
        snprintf(reason, sizeof reason, "%s%s",
                 PQgetisnull(res, 0, 1) ? "wal_status lost" : "",
                 PQgetvalue(res, 0, 1));
    PQclear(res);
    return lost ? slot_lost(src, reason, err, errlen) : true;
}

/*
 * A slot made before failover_slot was set (or by hand) is switched to
 * FAILOVER on the replication connection, while nothing streams it. A
 * slot with FAILOVER is left so when the key is false: someone chose it.
 */
static bool ensure_failover(source *src, char *err, size_t errlen)
{
    if (!src->settings->failover_slot)
        return true;
    const char *params[] = {src->settings->slot};
    PGresult *res = query(src->control, "SELECT failover FROM "
                          "pg_catalog.pg_replication_slots WHERE slot_name = $1",
                          1, params, err, errlen);
    if (!res)
        return false;
    bool has = PQntuples(res) == 0 || strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (has)
        return true;
    char *slot = PQescapeIdentifier(src->repl, params[0], strlen(params[0]));
    char *cmd = NULL;
    if (slot && asprintf(&cmd, "ALTER_REPLICATION_SLOT %s (FAILOVER true)",
                         slot) < 0)
        cmd = NULL;
    PQfreemem(slot);
    /* A replication connection takes the simple protocol only. */
    res = cmd ? PQexec(src->repl, cmd) : NULL;
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        set_err(err, errlen, "ALTER_REPLICATION_SLOT", cmd ? src->repl : NULL);
    PQclear(res);
    free(cmd);
    if (!ok)
        return false;
    log_info("event=slot_altered slot=%s failover=true", params[0]);
    return true;
}

/*
 * START_REPLICATION's error for an invalidated slot, in the words of
 * PostgreSQL 13 to 18 (the slot may be invalidated after the check).
 */
static bool invalidated_error(const PGresult *res)
{
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    return (msg && (strstr(msg, "can no longer get changes from replication "
                            "slot") ||
                    strstr(msg, "can no longer access replication slot"))) ||
           (detail && strstr(detail, "has been invalidated"));
}

/* 1 with the name of an origin not cleave's, 0 when none, -1 (err). */
static int foreign_origin(source *src, char *name, size_t len, char *err,
                          size_t errlen)
{
    const char *params[] = {CFG_ORIGIN_PREFIX};
    PGresult *res = query(src->control,
        "SELECT roname FROM pg_catalog.pg_replication_origin "
        "WHERE pg_catalog.left(roname, pg_catalog.length($1)) <> $1 LIMIT 1",
        1, params, err, errlen);
    if (!res)
        return -1;
    int found = PQntuples(res) > 0;
    if (found)
        snprintf(name, len, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return found;
}

/*
 * Whether the server may drop origin-tagged transactions itself (origin
 * 'none', PostgreSQL 16 and later), sparing the walsender decoding and
 * sending what the stream would skip. The server drops every origin, the
 * stream only cleave's: so only while the source has no other origin (a
 * subscription of its own, say), asked at each start, and never with a
 * Kafka sink (see stream.h). On any doubt, no.
 */
static bool server_filters_origins(source *src)
{
    if (!src->settings->loop_prevention ||
        !src->settings->server_origin_filter || src->server_version < 160000)
        return false;
    /* A moved service's writes come back under an origin, for its Kafka. */
    if (src->config->has_kafka)
        return false;
    char err[256], name[128];
    int found = foreign_origin(src, name, sizeof name, err, sizeof err);
    if (found < 0)
        log_warning("event=origin_filter_unknown error=\"%s\"", err);
    return found == 0;
}

static const char *origin_filter_name(const source *src, bool server)
{
    return server ? "none" : src->settings->loop_prevention ? "cleave" : "off";
}

void source_allow_binary(source *src, bool allow)
{
    src->binary_allowed = allow;
}

const binfmt *source_binfmt(const source *src)
{
    return src->bin;
}

bool source_binary_missing(const source *src)
{
    return src->bin_missing;
}

/* Checks whether this start may ask for binary values; why not in `why`. */
static void check_binary(source *src, char *why, size_t whylen)
{
    binfmt_free(src->bin);
    src->bin = NULL;
    src->bin_missing = false;
    if (!src->settings->binary_values) {
        snprintf(why, whylen, "source.binary_values is off");
        return;
    }
    if (!src->binary_allowed) {
        snprintf(why, whylen, "a table changed under the binary stream");
        return;
    }
    size_t n = src->config->n_services;
    bool *left = calloc(n ? n : 1, sizeof *left);
    for (size_t i = 0; left && i < n; i++)
        left[i] = source_left(src, i);
    src->bin = left ? binfmt_check(src->control, src->config, left, why,
                                   whylen, &src->bin_missing)
                    : NULL;
    if (!left)
        snprintf(why, whylen, "out of memory");
    free(left);
}

static char *start_command(source *src, bool origin_none)
{
    PGconn *c = src->repl;
    const cfg_source *set = src->settings;
    char *slot = PQescapeIdentifier(c, set->slot, strlen(set->slot));
    char *pub = PQescapeIdentifier(c, set->publication,
                                   strlen(set->publication));
    char *publit = pub ? PQescapeLiteral(c, pub, strlen(pub)) : NULL;
    char *cmd = NULL;
    if (slot && publit &&
        asprintf(&cmd,
                 "START_REPLICATION SLOT %s LOGICAL 0/0 (proto_version '%d', "
                 "publication_names %s%s, messages 'true'%s%s)",
                 slot, src->proto, publit,
                 src->proto >= 2 ? ", streaming 'on'" : "",
                 origin_none ? ", origin 'none'" : "",
                 src->bin ? ", binary 'true'" : "") < 0)
        cmd = NULL;
    PQfreemem(slot);
    PQfreemem(pub);
    PQfreemem(publit);
    return cmd;
}

bool source_start(source *src, char *err, size_t errlen)
{
    source_stop(src);
    if (!ensure_control(src, err, errlen))
        return false;
    src->repl = connect_source(src, true);
    if (!src->repl || PQstatus(src->repl) != CONNECTION_OK) {
        set_err(err, errlen, "cannot open the replication connection", src->repl);
        source_stop(src);
        return false;
    }
    src->small_window = size_receive_buffer(src->repl);
    if (!check_slot_valid(src, err, errlen) ||
        !ensure_failover(src, err, errlen)) {
        source_stop(src);
        return false;
    }
    bool origin_none = server_filters_origins(src);
    src->origin_none = origin_none;
    src->next_origin_check = clock_ms() + ORIGIN_CHECK_MS;
    char text_why[512] = "";
    check_binary(src, text_why, sizeof text_why);
    char *cmd = start_command(src, origin_none);
    PGresult *res = cmd ? PQexec(src->repl, cmd) : NULL;
    bool ok = PQresultStatus(res) == PGRES_COPY_BOTH;
    if (!ok && invalidated_error(res))
        slot_lost(src, PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL)
                  ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL)
                  : PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY), err, errlen);
    else if (!ok)
        set_err(err, errlen, "START_REPLICATION", src->repl);
    PQclear(res);
    free(cmd);
    if (!ok) {
        source_stop(src);
        return false;
    }
    log_info("event=streaming slot=%s publication=%s proto_version=%d "
             "server_version=%d origin_filter=%s failover=%s "
             "receive_buffer=%s values=%s%s%s%s",
             src->settings->slot, src->settings->publication,
             src->proto, src->server_version,
             origin_filter_name(src, origin_none),
             src->settings->failover_slot ? "true" : "false",
             src->small_window ? LOOPBACK_RCVBUF_NAME : "auto",
             src->bin ? "binary" : "text", src->bin ? "" : " text_why=\"",
             src->bin ? "" : text_why, src->bin ? "" : "\"");
    return true;
}

void source_stop(source *src)
{
    PQfreemem(src->copybuf);
    src->copybuf = NULL;
    PQfinish(src->repl);
    src->repl = NULL;
}

const char *source_slot_lost(const source *src)
{
    return src->slot_lost ? src->lost_reason : NULL;
}

bool source_small_window(const source *src)
{
    return src->repl && src->small_window;
}

bool source_streaming(const source *src)
{
    return src->repl != NULL;
}

int source_fd(const source *src)
{
    return src->repl ? PQsocket(src->repl) : -1;
}

int source_read(source *src, const uint8_t **buf, size_t *len, char *err,
                size_t errlen)
{
    PQfreemem(src->copybuf);
    src->copybuf = NULL;
    if (!src->repl)
        return -1;
    int n = PQgetCopyData(src->repl, &src->copybuf, 1);
    if (n == 0) {
        if (!PQconsumeInput(src->repl)) {
            set_err(err, errlen, "replication connection lost", src->repl);
            return -1;
        }
        n = PQgetCopyData(src->repl, &src->copybuf, 1);
    }
    if (n > 0) {
        *buf = (const uint8_t *)src->copybuf;
        *len = (size_t)n;
        return 1;
    }
    if (n == 0)
        return 0;
    if (n == -1) {
        PGresult *res = PQgetResult(src->repl);
        set_err(err, errlen, "the server ended the replication stream",
                src->repl);
        PQclear(res);
    } else {
        set_err(err, errlen, "replication connection lost", src->repl);
    }
    return -1;
}

static int64_t now_pg_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return frame_pgtime_from_unix_us((int64_t)tv.tv_sec * 1000000 + tv.tv_usec);
}

/*
 * While the server filters origins, an origin not cleave's that appears
 * (a subscription made on the source, say) has its transactions dropped
 * by the server too: said loudly, and the stream stops, to start again
 * without the filter. What it applied before this saw it may be missing.
 */
static bool origins_still_cleaves(source *src)
{
    if (!src->origin_none || clock_ms() < src->next_origin_check)
        return true;
    src->next_origin_check = clock_ms() + ORIGIN_CHECK_MS;
    char err[256], name[128];
    int found = foreign_origin(src, name, sizeof name, err, sizeof err);
    if (found <= 0)
        return true;
    log_error("event=origin_filter_dropped slot=%s origin=%s error=\"the "
              "source has a replication origin that is not cleave's while the "
              "server filtered every origin: what was applied under it before "
              "now may be missing from the targets (run cleave verify); the "
              "stream starts again without the server's filter\"",
              src->settings->slot, name);
    source_stop(src);
    return false;
}

bool source_send_status(source *src, lsn_t written, lsn_t flushed,
                        bool reply_requested)
{
    if (!src->repl || !origins_still_cleaves(src))
        return false;
    uint8_t msg[FRAME_STATUS_LEN];
    frame_encode_status(msg, written, flushed, flushed, now_pg_us(),
                        reply_requested);
    return PQputCopyData(src->repl, (const char *)msg, sizeof msg) == 1 &&
           PQflush(src->repl) == 0;
}

bool source_heartbeat(source *src, char *err, size_t errlen)
{
    if (!ensure_control(src, err, errlen))
        return false;
    PGresult *res = query(src->control,
                          "SELECT pg_logical_emit_message(false, '"
                          STREAM_HEARTBEAT_PREFIX "', '')",
                          0, NULL, err, errlen);
    if (!res) {
        /* A broken control connection is reopened on the next beat. */
        PQfinish(src->control);
        src->control = NULL;
        return false;
    }
    PQclear(res);
    return true;
}

bool source_mark_primary_key(source *src, sink_rel *rel, char *err,
                             size_t errlen)
{
    char oid[16];
    snprintf(oid, sizeof oid, "%u", rel->oid);
    const char *params[] = {oid};
    if (!ensure_control(src, err, errlen))
        return false;
    PGresult *res = query(src->control,
                          "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
                          "ON a.attrelid = i.indrelid AND a.attnum = ANY "
                          "(i.indkey::int2[]) WHERE i.indrelid = $1::oid AND "
                          "i.indisprimary", 1, params, err, errlen);
    if (!res)
        return false;
    for (int r = 0; r < PQntuples(res); r++)
        for (uint16_t i = 0; i < rel->ncols; i++)
            if (strcmp(rel->cols[i].name, PQgetvalue(res, r, 0)) == 0)
                rel->cols[i].pk = true;
    PQclear(res);
    return true;
}

/* The oid that t's configured name has in the catalog now, 0 for none. */
static bool owned_oid(source *src, const cfg_table *t, uint32_t *oid,
                      char *err, size_t errlen)
{
    const char *params[] = {t->schema, t->name};
    PGresult *res = query(src->control,
                          "SELECT pg_catalog.to_regclass(pg_catalog.format("
                          "'%I.%I', $1::text, $2::text))::oid", 2, params,
                          err, errlen);
    if (!res)
        return false;
    *oid = PQgetisnull(res, 0, 0)
               ? 0 : (uint32_t)strtoul(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return true;
}

bool source_owner_of(source *src, uint32_t oid, source_owner *out, char *err,
                     size_t errlen)
{
    *out = (source_owner){.service = -1, .missing_service = -1};
    if (!ensure_control(src, err, errlen))
        return false;
    const cfg *c = src->config;
    for (size_t i = 0; i < c->n_services; i++) {
        for (size_t j = 0; publishes(src, i) && j < c->services[i].n_owned;
             j++) {
            const cfg_table *t = &c->services[i].owned[j];
            uint32_t now;
            if (!owned_oid(src, t, &now, err, errlen))
                return false;
            if (now == oid) {
                *out = (source_owner){.service = (int)i, .table = t,
                                      .missing_service = -1};
                return true;
            }
            if (now == 0 && !out->missing) {
                out->missing_service = (int)i;
                out->missing = t;
            }
        }
    }
    return true;
}
