/* capture: record a walsender's frames for a scenario; see capture.h. */
#include "tests/support/capture.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>

#include "decoder/frame.h"
#include "tests/support/streamfile.h"

typedef struct scenario {
    char name[64];
    char *text;
    char *setup;          /* before "-- capture" */
    char *workload;       /* after it */
    char options[512];    /* key=value ... */
    bool twophase;
    char work_mem[32];
} scenario;

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, n, mem);
    fclose(f);
    fclose(mem);
    return buf;
}

static void header_value(const char *text, const char *key, char *out,
                         size_t len)
{
    const char *p = strstr(text, key);
    out[0] = '\0';
    if (!p)
        return;
    p += strlen(key);
    p += strspn(p, " ");
    snprintf(out, len, "%.*s", (int)strcspn(p, "\n"), p);
}

static bool load_scenario(const char *path, scenario *s)
{
    *s = (scenario){0};
    s->text = read_file(path);
    char *marker = s->text ? strstr(s->text, "\n-- capture\n") : NULL;
    if (!marker) {
        fprintf(stderr, "capture: %s: no \"-- capture\" line\n", path);
        free(s->text);
        return false;
    }
    char *copy = strdup(path);
    char *base = basename(copy);
    snprintf(s->name, sizeof s->name, "%.*s", (int)strcspn(base, "."), base);
    free(copy);
    s->setup = strndup(s->text, (size_t)(marker - s->text) + 1);
    s->workload = strdup(marker + 1);
    header_value(s->text, "-- options:", s->options, sizeof s->options);
    char tp[16];
    header_value(s->text, "-- twophase:", tp, sizeof tp);
    s->twophase = strcmp(tp, "true") == 0;
    header_value(s->text, "-- work_mem:", s->work_mem, sizeof s->work_mem);
    return true;
}

static void free_scenario(scenario *s)
{
    free(s->text);
    free(s->setup);
    free(s->workload);
}

/* "a=1 b=x" -> "a '1', b 'x'" for START_REPLICATION. */
static void sql_options(const char *kv, char *out, size_t len)
{
    size_t used = 0;
    out[0] = '\0';
    for (const char *p = kv; *p;) {
        p += strspn(p, " ");
        size_t w = strcspn(p, " ");
        const char *eq = memchr(p, '=', w);
        if (w && eq)
            used += (size_t)snprintf(out + used, len - used, "%s%.*s '%.*s'",
                                     used ? ", " : "", (int)(eq - p), p,
                                     (int)(w - (size_t)(eq - p) - 1), eq + 1);
        p += w;
        if (used >= len)
            break;
    }
}

static bool run_sql_part(const pgc_cluster *c, const scenario *s,
                         const char *sql)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.part.sql", c->root, s->name);
    FILE *f = fopen(path, "w");
    if (!f)
        return false;
    fputs(sql, f);
    fclose(f);
    return pgc_psql_file(c, s->name, path, NULL);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static bool send_status(PGconn *conn, bool reply)
{
    uint8_t msg[FRAME_STATUS_LEN];
    /* Zero positions: the slot must not move, so captures can repeat. */
    frame_encode_status(msg, 0, 0, 0, 0, reply);
    return PQputCopyData(conn, (const char *)msg, sizeof msg) == 1 &&
           PQflush(conn) == 0;
}

/*
 * Reads frames until a keepalive shows the walsender has sent everything
 * up to `until` (its end-of-WAL is the position decoding has reached).
 */
static bool record_frames(PGconn *conn, lsn_t until, FILE *out)
{
    /* A deadline for silence, not for the whole capture: big ones take long. */
    double deadline = now_s() + 60;
    for (;;) {
        char *buf = NULL;
        int n = PQgetCopyData(conn, &buf, 1);
        if (n == 0) {
            if (now_s() > deadline) {
                fprintf(stderr, "capture: timed out waiting for the stream\n");
                return false;
            }
            fd_set rd;
            FD_ZERO(&rd);
            FD_SET(PQsocket(conn), &rd);
            struct timeval tv = {1, 0};
            if (select(PQsocket(conn) + 1, &rd, NULL, NULL, &tv) < 0 &&
                errno != EINTR)
                return false;
            if (!PQconsumeInput(conn))
                return false;
            continue;
        }
        if (n < 0) {
            fprintf(stderr, "capture: stream ended: %s", PQerrorMessage(conn));
            return false;
        }
        deadline = now_s() + 60;
        frame fr;
        rb_error err;
        bool ok = frame_decode(buf, (size_t)n, &fr, &err);
        if (ok)
            sf_write_frame(out, buf, (size_t)n);
        PQfreemem(buf);
        if (!ok) {
            fprintf(stderr, "capture: bad frame: %s\n", err.msg);
            return false;
        }
        if (fr.kind == FRAME_KEEPALIVE && fr.reply_requested &&
            !send_status(conn, false))
            return false;
        if (fr.kind == FRAME_KEEPALIVE && fr.wal_end >= until)
            return true;
    }
}

static PGconn *replication_connect(const pgc_cluster *c, const char *dbname,
                                   const char *work_mem)
{
    char *dsn = pgc_dsn(c, dbname);
    char *full = NULL;
    if (!dsn || asprintf(&full,
                         "%s replication=database options='-c "
                         "logical_decoding_work_mem=%s'",
                         dsn, work_mem && *work_mem ? work_mem : "64MB") < 0)
        full = NULL;
    free(dsn);
    PGconn *conn = full ? PQconnectdb(full) : NULL;
    free(full);
    if (!conn || PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "capture: replication connection: %s",
                conn ? PQerrorMessage(conn) : "out of memory\n");
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

bool cap_record(const pgc_cluster *c, const char *dbname, const char *slot,
                const char *options, const char *work_mem, FILE *out)
{
    char *until_text = pgc_query_value(c, dbname, "SELECT pg_current_wal_lsn()");
    lsn_t until;
    bool ok = until_text && lsn_parse(until_text, &until);
    free(until_text);
    PGconn *conn = ok ? replication_connect(c, dbname, work_mem) : NULL;
    if (!conn)
        return false;
    char opts[600], cmd[800];
    sql_options(options, opts, sizeof opts);
    snprintf(cmd, sizeof cmd, "START_REPLICATION SLOT %s LOGICAL 0/0 (%s)",
             slot, opts);
    PGresult *res = PQexec(conn, cmd);
    ok = PQresultStatus(res) == PGRES_COPY_BOTH;
    if (!ok)
        fprintf(stderr, "capture: %s: %s", cmd, PQerrorMessage(conn));
    PQclear(res);
    ok = ok && record_frames(conn, until, out);
    PQfinish(conn);
    return ok;
}

static void write_header(FILE *out, const pgc_cluster *c, const scenario *s)
{
    char *version = pgc_query_value(c, s->name, "SHOW server_version");
    fprintf(out,
            "# cleave captured replication stream: %s\n"
            "# PostgreSQL %s, one CopyData frame from the walsender a line\n"
            "# options: %s\n"
            "# made by tests/capture/%s.sql:\n",
            s->name, version ? version : "?", s->options, s->name);
    free(version);
    for (const char *p = s->text; *p;) {
        size_t w = strcspn(p, "\n");
        fprintf(out, "#   %.*s\n", (int)w, p);
        p += w + (p[w] == '\n');
    }
}

/* Sets up, makes the slot, runs the workload and records the stream. */
static bool capture(const pgc_cluster *c, const scenario *s, FILE *out)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT pg_create_logical_replication_slot('cap_%s', "
             "'pgoutput', false, %s)",
             s->name, s->twophase ? "true" : "false");
    if (!pgc_createdb(c, s->name) || !run_sql_part(c, s, s->setup) ||
        !pgc_exec(c, s->name, sql) || !run_sql_part(c, s, s->workload))
        return false;
    char slot[80];
    snprintf(slot, sizeof slot, "cap_%s", s->name);
    write_header(out, c, s);
    bool ok = cap_record(c, s->name, slot, s->options, s->work_mem, out);
    snprintf(sql, sizeof sql,
             "SELECT NOT active FROM pg_replication_slots WHERE slot_name = "
             "'cap_%s'",
             s->name);
    if (ok && pgc_wait_until(c, s->name, sql, 30)) {
        snprintf(sql, sizeof sql, "SELECT pg_drop_replication_slot('cap_%s')",
                 s->name);
        pgc_exec(c, s->name, sql);
    }
    return ok;
}

bool cap_scenario(const pgc_cluster *c, const char *sql_path,
                  const char *out_path)
{
    scenario s;
    if (!load_scenario(sql_path, &s))
        return false;
    FILE *out = fopen(out_path, "w");
    bool ok = out && capture(c, &s, out);
    if (out && fclose(out) != 0)
        ok = false;
    if (!out)
        fprintf(stderr, "capture: %s: %s\n", out_path, strerror(errno));
    free_scenario(&s);
    return ok;
}
