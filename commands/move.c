/*
 * move: see move.h.
 *
 * The request is one function (move_request): the daemon does the move
 * and bounds each step by its own budgets, so the answer has no deadline
 * of ours; connecting and sending do (STATUSCLI_TIMEOUT_MS). Ctrl-C stops
 * waiting, not the daemon. A line that is not a JSON object ends the
 * command (exit 1); an object with neither "step" nor "result" is passed
 * over, so a newer daemon may say more.
 *
 * What `complete` does in the shared database it does itself, with the
 * configuration's source DSN, after the daemon answered ok: the archive
 * (pg_dump, the tables named by quoted patterns: `"schema"."table"` with
 * `"` doubled, which pg_dump matches literally, no case folding and no
 * wildcards), then the drop (one transaction, the foreign keys checked
 * again under the lock that keeps new ones out).
 */
#include "commands/move.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "commands/analyze.h"
#include "commands/drop.h"
#include "commands/statuscli.h"
#include "common/ctlword.h"
#include "common/dbconn.h"
#include "common/exitcode.h"

#define LINE_MAX_BYTES 65536   /* an answer line longer than this is refused */
#define STEP_WIDTH 24          /* the step name's column */
#define DROP_LOCK_TIMEOUT "5s" /* waiting for readers of the shared copies */
#define ERRLEN 1024
#define FOLLOW_EVERY_MS 500    /* resync: the status asked this often */

static const char *const verb_names[] = {"cutover", "rollback", "complete",
                                         "resync"};
static const char *const verb_nouns[] = {"the cut-over", "the rollback",
                                         "`complete`", "the resync"};

const char *move_verb_name(move_verb verb)
{
    return verb_names[verb];
}

/* ---- the service ---- */

static void list_services(const cfg *config, FILE *out)
{
    for (size_t i = 0; i < config->n_services; i++)
        fprintf(out, "%s%s", i ? ", " : "", config->services[i].name);
}

const cfg_service *move_service(const cfg *config, move_verb verb,
                                const char *name)
{
    for (size_t i = 0; i < config->n_services; i++) {
        const cfg_service *svc = &config->services[i];
        if (strcmp(svc->name, name) != 0)
            continue;
        if (svc->target_postgres)
            return svc;
        fprintf(stderr, "cleave %s: service %s has no PostgreSQL target; "
                "cut-over moves writes between PostgreSQL databases\n",
                verb_names[verb], name);
        return NULL;
    }
    fprintf(stderr, "cleave %s: unknown service '%s'; %s configures: ",
            verb_names[verb], name, config->path);
    list_services(config, stderr);
    fprintf(stderr, "\n");
    return NULL;
}

/* ---- the request ---- */

typedef struct move_answer {
    move_verb verb;
    const char *service;
    const char *socket;
    bool json;
    bool old_daemon;         /* it answered HTTP: it did nothing */
    int rc;                  /* -1 until the result line */
} move_answer;

/* `control VERB SERVICE [key=value ...]\n`; false when it does not fit. */
static bool format_request(char *buf, size_t len, move_verb verb,
                           const char *service, const move_limits *l)
{
    static const char *const keys[] = {"lag_limit_bytes", "lock_timeout_ms",
                                       "pause_budget_ms"};
    const long long vals[] = {l->lag_limit_bytes, l->lock_timeout_ms,
                              l->pause_budget_ms};
    size_t n = (size_t)snprintf(buf, len, "control %s %s", verb_names[verb],
                                service);
    for (size_t i = 0; i < 3 && n < len; i++)
        if (vals[i] >= 0)
            n += (size_t)snprintf(buf + n, len - n, " %s=%lld", keys[i],
                                  vals[i]);
    if (n < len)
        n += (size_t)snprintf(buf + n, len - n, "\n");
    return n < len;
}

/* A daemon's text on one line: control characters blanked. */
static void put_text(FILE *out, const char *s)
{
    for (; *s; s++)
        fputc((unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s, out);
}

static const char *jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* "  lock                      12.3 ms  4 tables" */
static void print_step(const json_t *o)
{
    const char *step = jstr(o, "step"), *detail = jstr(o, "detail");
    json_t *ms = json_object_get(o, "ms");
    size_t len = strlen(step);
    printf("  ");
    put_text(stdout, step);
    printf("%*s", len < STEP_WIDTH ? (int)(STEP_WIDTH - len) : 0, "");
    if (json_is_number(ms))
        printf(" %9.1f ms", json_number_value(ms));
    else
        printf(" %12s", "-");
    if (detail && *detail) {
        printf("  ");
        put_text(stdout, detail);
    }
    printf("\n");
}

/* "cut over order_service: writes paused 41 ms" */
static void print_done(const move_answer *a, const json_t *o)
{
    static const char *const done[] = {"cut over", "rolled back",
                                       "completed", "resync started for"};
    const char *detail = jstr(o, "detail");
    json_t *pause = json_object_get(o, "pause_ms");
    printf("%s %s", done[a->verb], a->service);
    if (json_is_number(pause)) {
        double ms = json_number_value(pause);
        printf(": writes paused %.*f ms", ms < 10 ? 1 : 0, ms);
    }
    if (detail && *detail) {
        printf("%s", json_is_number(pause) ? "; " : ": ");
        put_text(stdout, detail);
    }
    printf("\n");
}

static void print_failed(const move_answer *a, const json_t *o, int rc)
{
    static const char *const not_done[] = {"not cut over", "not rolled back",
                                           "not completed", "not resynced"};
    const char *error = jstr(o, "error");
    /* The switch committed but its last steps wait for a retry. */
    bool changed = json_is_true(json_object_get(o, "changed"));
    fprintf(stderr, "cleave %s: ", verb_names[a->verb]);
    if (rc != EXITCODE_USAGE && !changed)
        fprintf(stderr, "%s %s: ", a->service, not_done[a->verb]);
    put_text(stderr, error ? error : "the daemon gave no reason");
    if (rc == EXITCODE_RUNTIME && a->verb != MOVE_COMPLETE &&
        a->verb != MOVE_RESYNC && !changed)
        fprintf(stderr, "; nothing was changed");
    fprintf(stderr, "\n");
}

/* The exit code a result line carries: 0, or the daemon's 1 or 2. */
static int take_result(const move_answer *a, const json_t *o)
{
    if (strcmp(jstr(o, "result"), "ok") == 0) {
        if (!a->json)
            print_done(a, o);
        return EXITCODE_OK;
    }
    json_t *code = json_object_get(o, "exit");
    int rc = json_integer_value(code) == EXITCODE_USAGE ? EXITCODE_USAGE
                                                        : EXITCODE_RUNTIME;
    if (!a->json)
        print_failed(a, o, rc);
    return rc;
}

/* One line of the answer; false when it is not a JSON object (err). */
static bool take_line(move_answer *a, const char *line, size_t len,
                      char *err, size_t errlen)
{
    if (len == 0)
        return true;
    json_t *o = json_loadb(line, len, 0, NULL);
    if (!json_is_object(o)) {
        int shown = 0;   /* the line is not NUL-terminated */
        while ((size_t)shown < len && shown < 80 && line[shown] != '\r')
            shown++;
        a->old_daemon = strncmp(line, "HTTP/", 5) == 0;
        if (a->old_daemon)   /* a cleave from before the cut-over */
            snprintf(err, errlen, "the daemon on %s takes no control "
                     "requests (it answered \"%.*s\"), an older cleave?",
                     a->socket, shown, line);
        else
            snprintf(err, errlen, "unexpected answer from the daemon: "
                     "\"%.*s\"", shown, line);
        json_decref(o);
        return false;
    }
    if (a->json)
        printf("%.*s\n", (int)len, line);
    if (json_is_string(json_object_get(o, "result")))
        a->rc = take_result(a, o);
    else if (json_is_string(json_object_get(o, "step")) && !a->json)
        print_step(o);
    fflush(stdout);
    json_decref(o);
    return true;
}

/*
 * Hands each complete line of buf[0..*used) to take_line and keeps the
 * unfinished rest at the start; false on a line it refused.
 */
static bool take_lines(move_answer *a, char *buf, size_t *used, char *err,
                       size_t errlen)
{
    size_t start = 0;
    char *nl;
    while (a->rc < 0 && (nl = memchr(buf + start, '\n', *used - start))) {
        if (!take_line(a, buf + start, (size_t)(nl - buf) - start, err,
                       errlen))
            return false;
        start = (size_t)(nl - buf) + 1;
    }
    memmove(buf, buf + start, *used - start);
    *used -= start;
    if (*used == LINE_MAX_BYTES) {
        snprintf(err, errlen, "an answer line longer than %d bytes",
                 LINE_MAX_BYTES);
        return false;
    }
    return true;
}

/* Reads lines until the result, or until the daemon closes or fails. */
static int read_answer(int fd, move_answer *a)
{
    static char buf[LINE_MAX_BYTES];
    char err[ERRLEN] = "";
    size_t used = 0;
    while (a->rc < 0) {
        ssize_t n = recv(fd, buf + used, sizeof buf - used, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, sizeof err, "reading the answer: %s",
                     strerror(errno));
            break;
        }
        used += (size_t)n;
        if (!take_lines(a, buf, &used, err, sizeof err) || a->rc >= 0)
            break;
        if (n == 0) {   /* a last line without its newline still counts */
            if (used && !take_line(a, buf, used, err, sizeof err))
                break;
            if (a->rc < 0)
                snprintf(err, sizeof err, "the daemon closed the connection "
                         "without an answer");
            break;
        }
    }
    if (a->rc >= 0)
        return a->rc;
    fprintf(stderr, "cleave %s: %s; %s\n", verb_names[a->verb], err,
            a->old_daemon ? "nothing was changed"
                          : "run `cleave status` to see the service's "
                            "direction");
    return EXITCODE_RUNTIME;
}

/* Connected, blocking (sends still bounded by SO_SNDTIMEO), or -1. */
static int connect_daemon(const char *socket, move_verb verb)
{
    char err[ERRLEN];
    int fd = statuscli_connect(socket, STATUSCLI_TIMEOUT_MS, err, sizeof err);
    if (fd < 0 && (errno == ENOENT || errno == ECONNREFUSED))
        fprintf(stderr, "cleave %s: cleave is not running (%s %s): the "
                "running daemon carries out %s\n", verb_names[verb],
                errno == ENOENT ? "no socket at" : "nothing listens on",
                socket, verb_nouns[verb]);
    else if (fd < 0)
        fprintf(stderr, "cleave %s: %s\n", verb_names[verb], err);
    else
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
}

static bool send_line(int fd, const char *line)
{
    size_t len = strlen(line);
    while (len > 0) {
        ssize_t n = send(fd, line, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        line += n;
        len -= (size_t)n;
    }
    return true;
}

/* Sends the request line `req` and reads the answer: the exit code. */
static int send_request(const char *socket, move_verb verb,
                        const char *service, const char *req, bool json)
{
    int fd = connect_daemon(socket, verb);
    if (fd < 0)
        return EXITCODE_RUNTIME;
    int rc = EXITCODE_RUNTIME;
    move_answer a = {verb, service, socket, json, false, -1};
    if (send_line(fd, req))
        rc = read_answer(fd, &a);
    else
        fprintf(stderr, "cleave %s: cannot send the request to %s: %s\n",
                verb_names[verb], socket, strerror(errno));
    close(fd);
    return rc;
}

int move_request(const char *socket, move_verb verb, const char *service,
                 const move_limits *limits, bool json)
{
    char req[512];
    if (!format_request(req, sizeof req, verb, service, limits)) {
        fprintf(stderr, "cleave %s: service name too long\n",
                verb_names[verb]);
        return EXITCODE_USAGE;
    }
    return send_request(socket, verb, service, req, json);
}

int move_run(const cfg *config, const char *socket, move_verb verb,
             const char *service, const move_limits *limits, bool json)
{
    if (!move_service(config, verb, service))
        return EXITCODE_USAGE;
    return move_request(socket, verb, service, limits, json);
}

/* ---- resync ---- */

/* svc's owned table written `table`, as a ctlword in *word; 2 when none. */
static int resync_table(const cfg *config, const cfg_service *svc,
                        const char *table, char **word)
{
    cfg_table want = {0};
    char err[256];
    if (!cfg_table_parse(table, &want, err, sizeof err)) {
        fprintf(stderr, "cleave resync: --table '%s': %s\n", table, err);
        return EXITCODE_USAGE;
    }
    bool owned = cfg_owner(config, want.schema, want.name) == svc;
    if (!owned)
        fprintf(stderr, "cleave resync: %s does not own a table %s.%s in %s\n",
                svc->name, want.schema, want.name, config->path);
    cfg_table_clear(&want);
    if (!owned)
        return EXITCODE_USAGE;
    *word = ctlword_encode(table);
    return *word ? EXITCODE_OK : EXITCODE_RUNTIME;
}

static const cfg_service *resync_service(const cfg *config, const char *name)
{
    for (size_t i = 0; i < config->n_services; i++)
        if (strcmp(config->services[i].name, name) == 0)
            return &config->services[i];
    fprintf(stderr, "cleave resync: unknown service '%s'; %s configures: ",
            name, config->path);
    list_services(config, stderr);
    fprintf(stderr, "\n");
    return NULL;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

/* The service's object in the status document, or NULL. */
static json_t *service_status(json_t *doc, const char *service)
{
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(doc, "services"), i, o)
        if (jstr(o, "name") && strcmp(jstr(o, "name"), service) == 0)
            return o;
    return NULL;
}

/* "initial_copy  2/3 tables, 1,234 rows", or the error; into line. */
static void describe(json_t *svc, char *line, size_t len)
{
    const char *state = jstr(svc, "state");
    size_t i, n = (size_t)snprintf(line, len, "%s", state ? state : "?");
    json_t *k;
    json_array_foreach(json_object_get(svc, "sinks"), i, k) {
        json_t *copy = json_object_get(k, "copy");
        const char *error = jstr(k, "last_error");
        const char *kind = jstr(k, "kind") ? jstr(k, "kind") : "?";
        char rows[32];
        if (json_is_object(copy) && n < len)
            n += (size_t)snprintf(line + n, len - n, "  %s: %lld/%lld tables, "
                   "%s rows", kind,
                   json_integer_value(json_object_get(copy, "tables_done")),
                   json_integer_value(json_object_get(copy, "tables_total")),
                   statuscli_fmt_count((uint64_t)json_integer_value(
                       json_object_get(copy, "rows")), rows, sizeof rows));
        else if (state && strcmp(state, "error") == 0 && error && n < len)
            n += (size_t)snprintf(line + n, len - n, "  %s: %s", kind,
                                  error);
    }
}

/* One look at the status; 1 streaming, 0 not yet, -1 no answer (err). */
static int look(const char *socket, const char *service, bool json,
                char *last, size_t lastlen, double started)
{
    char err[ERRLEN], line[1024];
    size_t len;
    char *body = statuscli_fetch(socket, "/status", STATUSCLI_TIMEOUT_MS,
                                 &len, err, sizeof err);
    json_t *doc = body ? json_loadb(body, len, 0, NULL) : NULL;
    json_t *svc = service_status(doc, service);
    free(body);
    if (!svc) {
        fprintf(stderr, "cleave resync: %s; the copy goes on in the daemon: "
                "see `cleave status`\n", doc ? "the status has no such service"
                : err);
        json_decref(doc);
        return -1;
    }
    describe(svc, line, sizeof line);
    if (strcmp(line, last) != 0 && json) {
        json_object_set_new(svc, "seconds", json_real(now_s() - started));
        char *text = json_dumps(svc, JSON_COMPACT);
        printf("%s\n", text ? text : "{}");
        free(text);
    } else if (strcmp(line, last) != 0) {
        printf("  %8.1f s  ", now_s() - started);
        put_text(stdout, line);
        printf("\n");
    }
    fflush(stdout);
    snprintf(last, lastlen, "%s", line);
    const char *state = jstr(svc, "state");
    bool streaming = state && strcmp(state, "streaming") == 0;
    json_decref(doc);
    return streaming;
}

/*
 * Follows the service in the status until it streams again. Ctrl-C ends
 * the command, not the copy.
 */
static int follow(const char *socket, const char *service, bool json)
{
    char last[1024] = "";
    double started = now_s();
    int r;
    if (!json)
        printf("following %s until it streams (Ctrl-C stops following, not "
               "the copy):\n", service);
    while ((r = look(socket, service, json, last, sizeof last, started)) == 0) {
        struct timespec ts = {0, FOLLOW_EVERY_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (r > 0 && !json)
        printf("%s streams again after %.1f s\n", service, now_s() - started);
    return r > 0 ? EXITCODE_OK : EXITCODE_RUNTIME;
}

int move_resync(const cfg *config, const char *socket, const char *service,
                const char *table, bool json)
{
    const cfg_service *svc = resync_service(config, service);
    char *word = NULL;
    int rc = !svc ? EXITCODE_USAGE
           : table ? resync_table(config, svc, table, &word) : EXITCODE_OK;
    char req[1024];
    if (rc == EXITCODE_OK &&
        (size_t)snprintf(req, sizeof req, "control resync %s%s%s\n", service,
                         word ? " table=" : "", word ? word : "") >= sizeof req) {
        fprintf(stderr, "cleave resync: service or table name too long\n");
        rc = EXITCODE_USAGE;
    }
    free(word);
    if (rc == EXITCODE_OK)
        rc = send_request(socket, MOVE_RESYNC, service, req, json);
    return rc == EXITCODE_OK ? follow(socket, service, json) : rc;
}

/* ---- the shared database ---- */

/* Strings, each malloc'd. */
typedef struct strvec {
    char **v;
    size_t n, cap;
} strvec;

/* Appends s (taken over); false, s freed, when s is NULL or no memory. */
static bool strvec_push(strvec *sv, char *s)
{
    if (s && sv->n == sv->cap) {
        size_t cap = sv->cap ? 2 * sv->cap : 16;
        char **v = realloc(sv->v, cap * sizeof *v);
        if (!v) {
            free(s);
            return false;
        }
        sv->v = v;
        sv->cap = cap;
    }
    if (s)
        sv->v[sv->n++] = s;
    return s != NULL;
}

static void strvec_free(strvec *sv)
{
    for (size_t i = 0; i < sv->n; i++)
        free(sv->v[i]);
    free(sv->v);
}

/* `"schema"."table"`: SQL's quoting, and a pattern pg_dump takes literally. */
static char *quoted_table(PGconn *conn, const char *schema, const char *name)
{
    char *s = PQescapeIdentifier(conn, schema, strlen(schema));
    char *t = PQescapeIdentifier(conn, name, strlen(name));
    char *q = NULL;
    if (s && t && asprintf(&q, "%s.%s", s, t) < 0)
        q = NULL;
    PQfreemem(s);
    PQfreemem(t);
    return q;
}

static void set_pq_err(char *err, size_t errlen, const char *what,
                       PGconn *conn)
{
    const char *msg = PQerrorMessage(conn);
    snprintf(err, errlen, "%s: %.*s", what, (int)strcspn(msg, "\n"), msg);
}

/* Runs sql (one text parameter or none); the result or NULL with err. */
static PGresult *run_sql(PGconn *conn, const char *sql, const char *param,
                         char *err, size_t errlen)
{
    PGresult *res = PQexecParams(conn, sql, param ? 1 : 0, NULL, &param,
                                 NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    if (msg)
        snprintf(err, errlen, "%s%s%s", msg, detail ? ": " : "",
                 detail ? detail : "");
    else
        set_pq_err(err, errlen, "the shared database", conn);
    PQclear(res);
    return NULL;
}

static bool run_cmd(PGconn *conn, const char *sql, char *err, size_t errlen)
{
    PGresult *res = run_sql(conn, sql, NULL, err, errlen);
    PQclear(res);
    return res != NULL;
}

static PGconn *open_source(const cfg *config, char *err, size_t errlen)
{
    return dbconn_open(config->source.dsn, "cleave complete",
                       "the shared database", err, errlen);
}

/* ---- foreign keys pointing in ---- */

/* Prints the keys of fks that point at svc's tables from another's. */
static size_t print_fkeys_in(PGresult *fks, const cfg *config,
                             const cfg_service *svc, FILE *out)
{
    size_t n = 0;
    for (int i = 0; i < PQntuples(fks); i++) {
        const char *fs = PQgetvalue(fks, i, ANALYZE_FK_FROM_SCHEMA);
        const char *ft = PQgetvalue(fks, i, ANALYZE_FK_FROM_TABLE);
        const char *ts = PQgetvalue(fks, i, ANALYZE_FK_TO_SCHEMA);
        const char *tt = PQgetvalue(fks, i, ANALYZE_FK_TO_TABLE);
        const cfg_service *from = cfg_owner(config, fs, ft);
        if (cfg_owner(config, ts, tt) != svc || from == svc)
            continue;
        if (n++ == 0)
            fprintf(out, "Foreign keys of other tables point at %s's "
                    "tables:\n", svc->name);
        fprintf(out, "  %s: %s.%s -> %s.%s (%s%s)\n    %s\n",
                PQgetvalue(fks, i, ANALYZE_FK_NAME), fs, ft, ts, tt,
                from ? "owned by " : "", from ? from->name : "not owned",
                PQgetvalue(fks, i, ANALYZE_FK_DROP));
    }
    return n;
}

static bool fkeys_in(PGconn *conn, const cfg *config, const cfg_service *svc,
                     FILE *out, size_t *n, char *err, size_t errlen)
{
    PGresult *fks = analyze_foreign_keys(conn, err, errlen);
    if (!fks)
        return false;
    *n = print_fkeys_in(fks, config, svc, out);
    PQclear(fks);
    return true;
}

bool move_foreign_keys_in(const cfg *config, const cfg_service *svc,
                          FILE *out, size_t *n, char *err, size_t errlen)
{
    PGconn *conn = open_source(config, err, errlen);
    bool ok = conn && fkeys_in(conn, config, svc, out, n, err, errlen);
    PQfinish(conn);
    return ok;
}

/* ---- the archive ---- */

/* path/prog when executable; malloc'd, or NULL. */
static char *executable_in(const char *dir, size_t dirlen, const char *prog)
{
    char *p = NULL;
    if (asprintf(&p, "%.*s/%s", (int)(dirlen ? dirlen : 1),
                 dirlen ? dir : ".", prog) < 0)
        return NULL;
    if (access(p, X_OK) == 0)
        return p;
    free(p);
    return NULL;
}

static char *find_on_path(const char *prog)
{
    const char *path = getenv("PATH");
    for (const char *p = path; p && *p;) {
        size_t len = strcspn(p, ":");
        char *found = executable_in(p, len, prog);
        if (found)
            return found;
        p += len + (p[len] == ':');
    }
    return NULL;
}

/* BINDIR/pg_dump, BINDIR as `pg_config --bindir` says; or NULL. */
static char *pg_config_pg_dump(void)
{
    FILE *p = popen("pg_config --bindir 2>/dev/null", "r");
    if (!p)
        return NULL;
    char dir[4096] = "";
    bool got = fgets(dir, sizeof dir, p) != NULL;
    int st = pclose(p);
    dir[strcspn(dir, "\r\n")] = '\0';
    if (!got || st != 0 || !*dir)
        return NULL;
    return executable_in(dir, strlen(dir), "pg_dump");
}

static char *find_pg_dump(char *err, size_t errlen)
{
    char *p = find_on_path("pg_dump");
    if (!p)
        p = pg_config_pg_dump();
    if (!p)
        snprintf(err, errlen, "pg_dump is neither on PATH nor in `pg_config "
                 "--bindir`; install PostgreSQL's client programs (Debian: "
                 "postgresql-client) to archive");
    return p;
}

/*
 * The tables pg_dump is to dump for svc: each owned table and, for a
 * partitioned one, its partitions (which hold the rows), quoted. False
 * with err when an owned table is not in the shared database.
 */
static bool archive_tables(PGconn *conn, const cfg_service *svc,
                           strvec *tables, char *err, size_t errlen)
{
    for (size_t k = 0; k < svc->n_owned; k++) {
        const cfg_table *t = &svc->owned[k];
        char *q = quoted_table(conn, t->schema, t->name);
        PGresult *res = q ? run_sql(conn,
            "SELECT n.nspname, c.relname FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind IN ('r', 'p') AND (c.oid = to_regclass($1)"
            "  OR c.oid IN (SELECT relid"
            "   FROM pg_partition_tree(to_regclass($1))))"
            " ORDER BY 1, 2",
            q, err, errlen) : NULL;
        int rows = res ? PQntuples(res) : 0;
        if (res && rows == 0)
            snprintf(err, errlen, "%s.%s is not in the shared database",
                     t->schema, t->name);
        for (int i = 0; i < rows; i++)
            if (!strvec_push(tables, quoted_table(conn, PQgetvalue(res, i, 0),
                                                  PQgetvalue(res, i, 1)))) {
                snprintf(err, errlen, "out of memory");
                rows = 0;
            }
        free(q);
        PQclear(res);
        if (rows == 0)
            return false;
    }
    return true;
}

/*
 * The DSN with its password taken out into *password (NULL when none),
 * for pg_dump's command line, which other users of the host can read.
 */
static char *dsn_without_password(const char *dsn, char **password)
{
    PQconninfoOption *opts = PQconninfoParse(dsn, NULL);
    char *out = NULL;
    size_t len = 0;
    FILE *f = opts ? open_memstream(&out, &len) : NULL;
    *password = NULL;
    for (PQconninfoOption *o = opts; f && o->keyword; o++) {
        if (!o->val)
            continue;
        if (strcmp(o->keyword, "password") == 0) {
            *password = strdup(o->val);
            continue;
        }
        fprintf(f, "%s='", o->keyword);
        for (const char *c = o->val; *c; c++)
            fprintf(f, "%s%c", *c == '\'' || *c == '\\' ? "\\" : "", *c);
        fprintf(f, "' ");
    }
    if (f)
        fclose(f);
    PQconninfoFree(opts);
    return out;
}

/* Runs argv[0] with argv; the password in its environment. */
static bool run_program(char *const argv[], const char *password, char *err,
                        size_t errlen)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "cannot start %s: %s", argv[0], strerror(errno));
        return false;
    }
    if (pid == 0) {
        if (password)
            setenv("PGPASSWORD", password, 1);
        umask(077);   /* the archive holds the service's data */
        execv(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return true;
    snprintf(err, errlen, "%s failed (%s %d); its messages are above",
             argv[0], WIFEXITED(st) ? "exit" : "signal",
             WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    return false;
}

/* Moves the whole dump to path, never over a file that appeared there. */
static bool put_in_place(const char *tmp, const char *path, char *err,
                         size_t errlen)
{
    if (link(tmp, path) == 0 ||
        (errno != EEXIST && access(path, F_OK) != 0 &&
         rename(tmp, path) == 0)) {
        unlink(tmp);
        return true;
    }
    snprintf(err, errlen, "cannot put the archive at %s: %s", path,
             strerror(errno));
    unlink(tmp);
    return false;
}

/* pg_dump -t TABLE ... of the tables into tmp. */
static bool dump(const cfg *config, const strvec *tables, const char *pg_dump,
                 const char *tmp, char *err, size_t errlen)
{
    char *password = NULL;
    char *dsn = dsn_without_password(config->source.dsn, &password);
    const char *fixed[] = {pg_dump, "--no-password", "--strict-names", "-d",
                           dsn, "-f", tmp};
    size_t n = sizeof fixed / sizeof fixed[0];
    char **argv = calloc(n + 2 * tables->n + 1, sizeof *argv);
    bool ok = argv && dsn;
    if (ok) {
        memcpy(argv, fixed, sizeof fixed);
        for (size_t i = 0; i < tables->n; i++) {
            argv[n + 2 * i] = "-t";
            argv[n + 2 * i + 1] = tables->v[i];
        }
        ok = run_program(argv, password, err, errlen);
    } else {
        snprintf(err, errlen, "out of memory");
    }
    free(argv);
    free(dsn);
    free(password);
    return ok;
}

bool move_archive(const cfg *config, const cfg_service *svc, const char *path,
                  char *err, size_t errlen)
{
    if (access(path, F_OK) == 0) {
        snprintf(err, errlen, "%s exists; an archive is never overwritten",
                 path);
        return false;
    }
    char *pg_dump = find_pg_dump(err, errlen), *tmp = NULL;
    PGconn *conn = pg_dump ? open_source(config, err, errlen) : NULL;
    strvec tables = {0};
    bool ok = conn && archive_tables(conn, svc, &tables, err, errlen) &&
              asprintf(&tmp, "%s.partial", path) >= 0 &&
              dump(config, &tables, pg_dump, tmp, err, errlen) &&
              put_in_place(tmp, path, err, errlen);
    if (!ok && tmp)
        unlink(tmp);
    PQfinish(conn);
    strvec_free(&tables);
    free(pg_dump);
    free(tmp);
    return ok;
}

/* ---- dropping the shared copies ---- */

/*
 * The owned tables there now, quoted in *tables and by name in shown;
 * says on out which are not there.
 */
static bool existing_tables(PGconn *conn, const cfg_service *svc,
                            strvec *tables, const cfg_table **shown,
                            FILE *out, char *err, size_t errlen)
{
    for (size_t k = 0; k < svc->n_owned; k++) {
        const cfg_table *t = &svc->owned[k];
        char *q = quoted_table(conn, t->schema, t->name);
        PGresult *res = q ? run_sql(conn, "SELECT to_regclass($1) IS NOT NULL",
                                    q, err, errlen) : NULL;
        bool there = res && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
        PQclear(res);
        if (!res) {
            free(q);
            return false;
        }
        if (there) {
            shown[tables->n] = t;
            if (!strvec_push(tables, q))
                return false;
        } else {
            fprintf(out, "  not there: %s.%s\n", t->schema, t->name);
            free(q);
        }
    }
    return true;
}

/* "a, b, c"; malloc'd. */
static char *join(const strvec *sv)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    for (size_t i = 0; f && i < sv->n; i++)
        fprintf(f, "%s%s", i ? ", " : "", sv->v[i]);
    if (f)
        fclose(f);
    return out;
}

/* Runs `fmt` with the table list in it. */
static bool run_on_tables(PGconn *conn, const char *fmt, const strvec *tables,
                          char *err, size_t errlen)
{
    char *list = join(tables), *sql = NULL;
    bool ok = list && asprintf(&sql, fmt, list) >= 0 &&
              run_cmd(conn, sql, err, errlen);
    free(list);
    free(sql);
    return ok;
}

/*
 * Locks the tables (new foreign keys need a lock on the table they point
 * at, so none can appear after the check), checks, drops, commits.
 */
static bool drop_locked(PGconn *conn, const cfg *config,
                        const cfg_service *svc, const strvec *tables,
                        FILE *out, char *err, size_t errlen)
{
    size_t n = 0;
    if (!run_on_tables(conn, "LOCK TABLE %s IN ACCESS EXCLUSIVE MODE", tables,
                       err, errlen)) {
        char why[ERRLEN];
        snprintf(why, sizeof why, "%s", err);
        snprintf(err, errlen, "the shared copies are in use (waited "
                 DROP_LOCK_TIMEOUT " for them): %s", why);
        return false;
    }
    if (!fkeys_in(conn, config, svc, out, &n, err, errlen))
        return false;
    if (n > 0) {
        snprintf(err, errlen, "%zu foreign key(s) of other tables point at "
                 "%s's tables: drop them first (the statements above)",
                 n, svc->name);
        return false;
    }
    return run_on_tables(conn, "DROP TABLE %s", tables, err, errlen) &&
           run_cmd(conn, "COMMIT", err, errlen);
}

int move_drop_tables(const cfg *config, const cfg_service *svc, FILE *out,
                     char *err, size_t errlen)
{
    PGconn *conn = open_source(config, err, errlen);
    strvec tables = {0};
    const cfg_table **shown = calloc(svc->n_owned, sizeof *shown);
    bool ok = conn && shown && run_cmd(conn, "BEGIN", err, errlen) &&
              run_cmd(conn, "SET LOCAL lock_timeout = '" DROP_LOCK_TIMEOUT
                      "'", err, errlen) &&
              existing_tables(conn, svc, &tables, shown, out, err, errlen);
    if (ok && tables.n > 0)
        ok = drop_locked(conn, config, svc, &tables, out, err, errlen);
    if (!shown && conn)
        snprintf(err, errlen, "out of memory");
    for (size_t i = 0; ok && i < tables.n; i++)
        fprintf(out, "  dropped %s.%s\n", shown[i]->schema, shown[i]->name);
    PQfinish(conn);   /* without COMMIT: rolled back */
    strvec_free(&tables);
    free(shown);
    return ok ? EXITCODE_OK : EXITCODE_RUNTIME;
}

/* ---- complete ---- */

/* What can be refused before anything changes; the exit code. */
static int complete_refusals(const cfg *config, const cfg_service *svc,
                             const move_complete_opts *o)
{
    char err[ERRLEN];
    size_t n = 0;
    if (!o->yes && !isatty(STDIN_FILENO)) {
        fprintf(stderr, "cleave complete: stdin is not a terminal, so it "
                "cannot ask; add --yes to complete the move of %s\n",
                svc->name);
        return EXITCODE_USAGE;
    }
    if (o->archive && access(o->archive, F_OK) == 0) {
        fprintf(stderr, "cleave complete: %s exists; an archive is never "
                "overwritten: name another file\n", o->archive);
        return EXITCODE_USAGE;
    }
    char *pg_dump = o->archive ? find_pg_dump(err, sizeof err) : NULL;
    bool ok = !o->archive || pg_dump;
    free(pg_dump);
    if (ok && o->drop_tables)
        ok = move_foreign_keys_in(config, svc, stdout, &n, err, sizeof err);
    if (ok && n > 0)
        snprintf(err, sizeof err, "--drop-tables is refused while %zu "
                 "foreign key(s) of other tables point at %s's tables: drop "
                 "them first (the statements above)", n, svc->name);
    if (ok && n == 0)
        return EXITCODE_OK;
    fprintf(stderr, "cleave complete: %s; nothing was changed\n", err);
    return EXITCODE_RUNTIME;
}

static void show_plan(const cfg *config, const cfg_service *svc,
                      const move_complete_opts *o)
{
    printf("cleave complete: %s, tables ", svc->name);
    for (size_t k = 0; k < svc->n_owned; k++)
        printf("%s%s.%s", k ? ", " : "", svc->owned[k].schema,
               svc->owned[k].name);
    printf("\n  the daemon lets the reverse stream apply what the service's "
           "database holds,\n  removes it (its slot, publication and origin)"
           "\n  and takes the tables out of publication %s\n",
           config->source.publication);
    if (!o->drop_tables)
        printf("  the shared copies stay fenced, frozen as they are\n");
    if (o->archive)
        printf("  then the shared copies are archived to %s (pg_dump)\n",
               o->archive);
    if (o->drop_tables)
        printf("  then the shared copies are dropped\n");
}

/* The archive, then the drop, once the daemon has ended the move. */
static int complete_shared_copies(const cfg *config, const cfg_service *svc,
                                  const move_complete_opts *o)
{
    char err[ERRLEN];
    if (o->archive &&
        !move_archive(config, svc, o->archive, err, sizeof err)) {
        fprintf(stderr, "cleave complete: the move of %s is complete, but "
                "the archive failed: %s; nothing dropped\n", svc->name, err);
        return EXITCODE_RUNTIME;
    }
    if (o->archive)
        printf("archived %s's tables to %s\n", svc->name, o->archive);
    if (o->drop_tables &&
        move_drop_tables(config, svc, stdout, err, sizeof err) != 0) {
        fprintf(stderr, "cleave complete: the move of %s is complete, but "
                "its tables were not dropped: %s; nothing dropped\n",
                svc->name, err);
        return EXITCODE_RUNTIME;
    }
    return EXITCODE_OK;
}

int move_complete(const cfg *config, const char *socket, const char *service,
                  const move_complete_opts *opts)
{
    const cfg_service *svc = move_service(config, MOVE_COMPLETE, service);
    if (!svc)
        return EXITCODE_USAGE;
    int rc = complete_refusals(config, svc, opts);
    if (rc != EXITCODE_OK)
        return rc;
    show_plan(config, svc, opts);
    if (!opts->yes && !drop_ask("Complete the move?")) {
        fprintf(stderr, "cleave complete: not confirmed, nothing changed\n");
        return EXITCODE_RUNTIME;
    }
    move_limits none = MOVE_NO_LIMITS;
    rc = move_request(socket, MOVE_COMPLETE, service, &none, false);
    return rc != EXITCODE_OK ? rc : complete_shared_copies(config, svc, opts);
}
