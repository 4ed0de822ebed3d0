/* pgcluster: throwaway PostgreSQL clusters for tests; see pgcluster.h. */
#include "tests/support/pgcluster.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLUSTERS 16

/* What the exit and signal paths need: plain data, safe to read anywhere. */
struct live_cluster {
    pgc_cluster *c;
    pid_t postmaster;
};
static struct live_cluster live[MAX_CLUSTERS];
static pid_t owner_pid;
static bool hooks_installed;

static const char *tmpdir(void)
{
    const char *t = getenv("TMPDIR");
    return t && *t ? t : "/tmp";
}

const char *pgc_srcdir(void)
{
    const char *s = getenv("CLEAVE_SRCDIR");
    return s && *s ? s : ".";
}

const char *pgc_fixtures_dir(void)
{
    static char buf[512];
    const char *f = getenv("CLEAVE_FIXTURES");
    if (f && *f)
        return f;
    snprintf(buf, sizeof buf, "%s/tests/fixtures", pgc_srcdir());
    return buf;
}

/* Runs argv, optionally as postgres; returns the exit status or -1. */
static int run(bool as_postgres, char *const argv[], const char *out_path)
{
    fflush(NULL);  /* or the child's exit path would print them twice */
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        if (out_path) {
            int fd = open(out_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
                _exit(127);
        }
        if (as_postgres) {
            char *wrapped[64] = {"runuser", "-u", "postgres", "--"};
            int i = 0;
            for (; argv[i] && i < 59; i++)
                wrapped[4 + i] = argv[i];
            wrapped[4 + i] = NULL;
            execvp("runuser", wrapped);
        } else {
            execvp(argv[0], argv);
        }
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void remove_tree(const char *path)
{
    char *argv[] = {"rm", "-rf", (char *)path, NULL};
    run(false, argv, NULL);
}

/* The highest /usr/lib/postgresql/N/bin, unless CLEAVE_PG_BINDIR says. */
static void find_bindir(char *out, size_t len)
{
    const char *env = getenv("CLEAVE_PG_BINDIR");
    if (env && *env) {
        snprintf(out, len, "%s", env);
        return;
    }
    glob_t g;
    int best = -1;
    out[0] = '\0';
    if (glob("/usr/lib/postgresql/*/bin/postgres", 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++) {
            int v = atoi(g.gl_pathv[i] + strlen("/usr/lib/postgresql/"));
            if (v > best) {
                best = v;
                snprintf(out, len, "%.*s", (int)(strlen(g.gl_pathv[i]) - 9),
                         g.gl_pathv[i]);
            }
        }
        globfree(&g);
    }
}

/*
 * The server programs of `major`: Debian's own, else those tests/setup-pg.sh
 * installed into $CLEAVE_PG_CACHE (default /var/cache/cleave-pg). False
 * when neither has them.
 */
static bool find_version_bindir(int major, char *out, size_t len)
{
    const char *cache = getenv("CLEAVE_PG_CACHE");
    char path[400];
    snprintf(out, len, "/usr/lib/postgresql/%d/bin", major);
    snprintf(path, sizeof path, "%s/postgres", out);
    if (access(path, X_OK) == 0)
        return true;
    snprintf(out, len, "%s/%d/bin",
             cache && *cache ? cache : "/var/cache/cleave-pg", major);
    snprintf(path, sizeof path, "%s/postgres", out);
    return access(path, X_OK) == 0;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/*
 * A program of the cluster's server version when its directory has it,
 * else the client's: the packaged servers ship no psql, pgbench or
 * pg_dump, and Debian's psql and pgbench speak to any server.
 */
static void pg_bin(const pgc_cluster *c, const char *tool, char *out,
                   size_t len)
{
    snprintf(out, len, "%s/%s", c->bindir, tool);
    if (c->bindir[0] && access(out, X_OK) == 0)
        return;
    if (c->clientdir[0])
        snprintf(out, len, "%s/%s", c->clientdir, tool);
    else
        snprintf(out, len, "%s", tool);
}

static void stop_server(const char *bindir, const char *datadir,
                        bool as_postgres)
{
    char pgctl[300];
    snprintf(pgctl, sizeof pgctl, "%s%spg_ctl", bindir, bindir[0] ? "/" : "");
    char *argv[] = {pgctl, "-D", (char *)datadir, "-m", "immediate", "-w",
                    "stop", NULL};
    run(as_postgres, argv, "/dev/null");
}

/*
 * A directory without its owner's pid may be a sibling suite's, made a
 * moment ago and not yet stamped: only an old one is abandoned.
 */
static bool recently_made(const char *dir)
{
    struct stat st;
    return stat(dir, &st) == 0 && time(NULL) - st.st_mtime < 600;
}

/* Removes clusters whose test process died without tearing them down. */
static void reap_stale(const char *bindir, bool as_postgres)
{
    char pattern[512];
    snprintf(pattern, sizeof pattern, "%s/cleave-pgc-*", tmpdir());
    glob_t g;
    if (glob(pattern, 0, NULL, &g) != 0)
        return;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/owner.pid", g.gl_pathv[i]);
        FILE *f = fopen(path, "r");
        long pid = 0;
        if (f) {
            if (fscanf(f, "%ld", &pid) != 1)
                pid = 0;
            fclose(f);
        }
        if (pid > 0 && (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
            continue;
        if (pid <= 0 && recently_made(g.gl_pathv[i]))
            continue;
        snprintf(path, sizeof path, "%s/data", g.gl_pathv[i]);
        stop_server(bindir, path, as_postgres);
        remove_tree(g.gl_pathv[i]);
    }
    globfree(&g);
}

/* Exit path: stop what this process started; never in forked children. */
static void teardown_all(void)
{
    if (getpid() != owner_pid)
        return;
    for (int i = 0; i < MAX_CLUSTERS; i++)
        if (live[i].c)
            pgc_stop(live[i].c);
}

/* Signal path: only async-signal-safe calls; the next start removes dirs. */
static void on_signal(int sig)
{
    if (getpid() == owner_pid)
        for (int i = 0; i < MAX_CLUSTERS; i++)
            if (live[i].postmaster > 0)
                kill(live[i].postmaster, SIGQUIT);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_hooks(void)
{
    if (hooks_installed)
        return;
    hooks_installed = true;
    owner_pid = getpid();
    atexit(teardown_all);
    int sigs[] = {SIGINT, SIGTERM, SIGALRM, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        signal(sigs[i], on_signal);
}

static bool write_conf(const pgc_cluster *c, const char *const *settings)
{
    char path[400];
    snprintf(path, sizeof path, "%s/postgresql.conf", c->datadir);
    FILE *f = fopen(path, "a");
    if (!f)
        return false;
    fprintf(f,
            "\n# throwaway test cluster\n"
            "port = %d\n"
            "listen_addresses = '127.0.0.1'\n"
            "unix_socket_directories = '%s'\n"
            "wal_level = logical\n"
            "max_replication_slots = 32\n"
            "max_wal_senders = 32\n"
            "max_prepared_transactions = 16\n"
            "max_connections = 100\n"
            "fsync = off\n"
            "full_page_writes = off\n"
            "shared_buffers = 128MB\n"
            "log_min_messages = warning\n",
            c->port, c->sockdir);
    for (int i = 0; settings && settings[i]; i++)
        fprintf(f, "%s\n", settings[i]);
    return fclose(f) == 0;
}

static void print_log_tail(const pgc_cluster *c)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "tail -n 30 '%s/server.log' >&2", c->root);
    if (system(cmd) != 0)
        fprintf(stderr, "pgcluster: no server log\n");
}

static pid_t read_postmaster_pid(const pgc_cluster *c)
{
    char path[400];
    snprintf(path, sizeof path, "%s/postmaster.pid", c->datadir);
    FILE *f = fopen(path, "r");
    long pid = 0;
    if (f) {
        if (fscanf(f, "%ld", &pid) != 1)
            pid = 0;
        fclose(f);
    }
    return (pid_t)pid;
}

/* Makes the directories and hands them to postgres when running as root. */
static bool make_dirs(pgc_cluster *c)
{
    snprintf(c->root, sizeof c->root, "%s/cleave-pgc-XXXXXX", tmpdir());
    if (!mkdtemp(c->root))
        return false;
    chmod(c->root, 0755);
    snprintf(c->datadir, sizeof c->datadir, "%s/data", c->root);
    snprintf(c->sockdir, sizeof c->sockdir, "%s/sock", c->root);
    char path[400];
    snprintf(path, sizeof path, "%s/owner.pid", c->root);
    FILE *f = fopen(path, "w");
    if (!f)
        return false;
    fprintf(f, "%ld\n", (long)getpid());
    fclose(f);
    if (mkdir(c->sockdir, 0755) != 0)
        return false;
    if (!c->as_postgres)
        return true;
    struct passwd *pw = getpwnam("postgres");
    snprintf(path, sizeof path, "%s/server.log", c->root);
    FILE *log = fopen(path, "a");
    if (log)
        fclose(log);
    return pw && chown(c->sockdir, pw->pw_uid, pw->pw_gid) == 0 &&
           chown(c->root, pw->pw_uid, pw->pw_gid) == 0 &&
           chown(path, pw->pw_uid, pw->pw_gid) == 0;
}

static bool register_live(pgc_cluster *c)
{
    for (int i = 0; i < MAX_CLUSTERS; i++) {
        if (!live[i].c) {
            live[i].c = c;
            live[i].postmaster = read_postmaster_pid(c);
            return true;
        }
    }
    return false;
}

/* Where the server programs and the client programs come from. */
static bool choose_bindirs(pgc_cluster *c, int major)
{
    find_bindir(c->clientdir, sizeof c->clientdir);
    if (major == 0) {
        snprintf(c->bindir, sizeof c->bindir, "%s", c->clientdir);
        return true;
    }
    if (find_version_bindir(major, c->bindir, sizeof c->bindir))
        return true;
    fprintf(stderr,
            "pgcluster: PostgreSQL %d is not installed: run "
            "tests/setup-pg.sh %d\n", major, major);
    return false;
}

/* The running server's major version; a mismatch with the asked one fails. */
static bool check_version(pgc_cluster *c, int major)
{
    char *num = pgc_query_value(c, "postgres", "SHOW server_version_num");
    c->major = num ? atoi(num) / 10000 : 0;
    free(num);
    if (c->major > 0 && (major == 0 || c->major == major))
        return true;
    fprintf(stderr, "pgcluster: %s/postgres runs version %d, not %d\n",
            c->bindir, c->major, major);
    return false;
}

static bool init_and_start(pgc_cluster *c, const char *const *settings)
{
    char initdb[300], pgctl[300], logpath[400];
    pg_bin(c, "initdb", initdb, sizeof initdb);
    pg_bin(c, "pg_ctl", pgctl, sizeof pgctl);
    snprintf(logpath, sizeof logpath, "%s/server.log", c->root);
    char *init_argv[] = {initdb, "-D", c->datadir, "-U", "postgres", "-A",
                         "trust", "-E", "UTF8", "--locale=C.UTF-8",
                         "--no-sync", NULL};
    char *start_argv[] = {pgctl, "-D", c->datadir, "-l", logpath, "-w",
                          "-t", "60", "start", NULL};
    return run(c->as_postgres, init_argv, logpath) == 0 &&
           write_conf(c, settings) &&
           run(c->as_postgres, start_argv, "/dev/null") == 0 &&
           register_live(c);
}

pgc_cluster *pgc_start_version(int major, const char *const *settings)
{
    install_hooks();
    pgc_cluster *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->as_postgres = geteuid() == 0;
    if (!choose_bindirs(c, major)) {
        free(c);
        return NULL;
    }
    reap_stale(c->bindir, c->as_postgres);
    c->port = free_port();
    if (c->port < 0 || !make_dirs(c)) {
        fprintf(stderr, "pgcluster: cannot prepare %s: %s\n", c->root,
                strerror(errno));
        free(c);
        return NULL;
    }
    if (!init_and_start(c, settings)) {
        fprintf(stderr, "pgcluster: cannot start a cluster in %s\n", c->root);
        print_log_tail(c);
        stop_server(c->bindir, c->datadir, c->as_postgres);
        remove_tree(c->root);
        free(c);
        return NULL;
    }
    if (!check_version(c, major)) {
        pgc_stop(c);
        return NULL;
    }
    return c;
}

pgc_cluster *pgc_start(const char *const *settings)
{
    return pgc_start_version(0, settings);
}

void pgc_stop(pgc_cluster *c)
{
    if (!c)
        return;
    for (int i = 0; i < MAX_CLUSTERS; i++)
        if (live[i].c == c)
            live[i] = (struct live_cluster){0};
    stop_server(c->bindir, c->datadir, c->as_postgres);
    remove_tree(c->root);
    free(c);
}

bool pgc_restart(pgc_cluster *c)
{
    char pgctl[300], logpath[400];
    pg_bin(c, "pg_ctl", pgctl, sizeof pgctl);
    snprintf(logpath, sizeof logpath, "%s/server.log", c->root);
    char *argv[] = {pgctl, "-D", c->datadir, "-l", logpath, "-m", "fast", "-w",
                    "-t", "60", "restart", NULL};
    bool ok = run(c->as_postgres, argv, "/dev/null") == 0;
    for (int i = 0; i < MAX_CLUSTERS; i++)
        if (live[i].c == c)
            live[i].postmaster = read_postmaster_pid(c);
    if (!ok)
        print_log_tail(c);
    return ok;
}

int pgc_pgbench_start(const pgc_cluster *c, const char *dbname, int clients,
                      int transactions, int scale, const char *const *scripts)
{
    char pgbench[300], port[16], nclients[16], ntx[16], nscale[16];
    pg_bin(c, "pgbench", pgbench, sizeof pgbench);
    snprintf(port, sizeof port, "%d", c->port);
    snprintf(nclients, sizeof nclients, "%d", clients);
    snprintf(ntx, sizeof ntx, "%d", transactions);
    snprintf(nscale, sizeof nscale, "%d", scale);
    char *argv[64] = {pgbench, "-n", "-h", (char *)c->sockdir, "-p", port,
                      "-U", "postgres", "-c", nclients, "-j", "2", "-t", ntx,
                      "-s", nscale, "--random-seed=42"};
    int n = 17;
    char files[16][600];
    for (int i = 0; scripts && scripts[i] && i < 16; i++) {
        snprintf(files[i], sizeof files[i], "%s/shop/workload/%s",
                 pgc_fixtures_dir(), scripts[i]);
        argv[n++] = "-f";
        argv[n++] = files[i];
    }
    argv[n++] = (char *)dbname;
    argv[n] = NULL;
    char log[400];
    snprintf(log, sizeof log, "%s/pgbench.log", c->root);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
            _exit(127);
        execvp(argv[0], argv);
        _exit(127);
    }
    return (int)pid;
}

bool pgc_pgbench_wait(int pid)
{
    int st;
    while (waitpid((pid_t)pid, &st, 0) < 0)
        if (errno != EINTR)
            return false;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

char *pgc_dsn(const pgc_cluster *c, const char *dbname)
{
    char *dsn = NULL;
    if (asprintf(&dsn, "host=%s port=%d dbname=%s user=postgres", c->sockdir,
                 c->port, dbname) < 0)
        return NULL;
    return dsn;
}

PGconn *pgc_connect(const pgc_cluster *c, const char *dbname)
{
    char *dsn = pgc_dsn(c, dbname);
    PGconn *conn = dsn ? PQconnectdb(dsn) : NULL;
    free(dsn);
    if (!conn || PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "pgcluster: connect to %s: %s", dbname,
                conn ? PQerrorMessage(conn) : "out of memory\n");
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

bool pgc_exec(const pgc_cluster *c, const char *dbname, const char *sql)
{
    PGconn *conn = pgc_connect(c, dbname);
    if (!conn)
        return false;
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "pgcluster: %s: %s", sql, PQerrorMessage(conn));
    PQclear(res);
    PQfinish(conn);
    return ok;
}

char *pgc_query_value(const pgc_cluster *c, const char *dbname,
                      const char *sql)
{
    PGconn *conn = pgc_connect(c, dbname);
    if (!conn)
        return NULL;
    PGresult *res = PQexec(conn, sql);
    char *value = NULL;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0 &&
        !PQgetisnull(res, 0, 0))
        value = strdup(PQgetvalue(res, 0, 0));
    else if (PQresultStatus(res) != PGRES_TUPLES_OK)
        fprintf(stderr, "pgcluster: %s: %s", sql, PQerrorMessage(conn));
    PQclear(res);
    PQfinish(conn);
    return value;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

bool pgc_wait_until(const pgc_cluster *c, const char *dbname,
                    const char *sql, double timeout_s)
{
    double deadline = now_s() + timeout_s;
    for (;;) {
        char *v = pgc_query_value(c, dbname, sql);
        bool done = v && strcmp(v, "t") == 0;
        free(v);
        if (done)
            return true;
        if (now_s() > deadline)
            return false;
        /* Polling interval of a condition wait, not a synchronisation sleep. */
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

bool pgc_createdb(const pgc_cluster *c, const char *dbname)
{
    PGconn *conn = pgc_connect(c, "postgres");
    if (!conn)
        return false;
    char *ident = PQescapeIdentifier(conn, dbname, strlen(dbname));
    char *sql = NULL;
    bool ok = ident && asprintf(&sql, "CREATE DATABASE %s", ident) >= 0;
    PQfreemem(ident);
    PQfinish(conn);
    ok = ok && pgc_exec(c, "postgres", sql);
    free(sql);
    return ok;
}

bool pgc_psql_file(const pgc_cluster *c, const char *dbname,
                   const char *path, const char *const *vars)
{
    char psql[300], port[16];
    pg_bin(c, "psql", psql, sizeof psql);
    snprintf(port, sizeof port, "%d", c->port);
    char *argv[64] = {psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h",
                      (char *)c->sockdir, "-p", port, "-U", "postgres",
                      "-d", (char *)dbname};
    int n = 13;
    for (int i = 0; vars && vars[i] && n < 58; i++) {
        argv[n++] = "-v";
        argv[n++] = (char *)vars[i];
    }
    argv[n++] = "-f";
    argv[n++] = (char *)path;
    argv[n] = NULL;
    char log[400];
    snprintf(log, sizeof log, "%s/psql.log", c->root);
    int st = run(false, argv, log);
    if (st != 0) {
        char cmd[600];
        fprintf(stderr, "pgcluster: psql -f %s failed (%d)\n", path, st);
        snprintf(cmd, sizeof cmd, "tail -n 20 '%s' >&2", log);
        if (system(cmd) != 0)
            fprintf(stderr, "pgcluster: no psql log\n");
    }
    return st == 0;
}

bool pgc_load_shop(const pgc_cluster *c, const char *dbname, int scale,
                   bool cross_service_fks)
{
    char schema[600], data[600], scalevar[32];
    snprintf(schema, sizeof schema, "%s/shop/schema.sql", pgc_fixtures_dir());
    snprintf(data, sizeof data, "%s/shop/data.sql", pgc_fixtures_dir());
    snprintf(scalevar, sizeof scalevar, "scale=%d", scale);
    const char *no_fks[] = {"no_cross_service_fks=1", NULL};
    const char *scale_vars[] = {scalevar, NULL};
    if (!pgc_createdb(c, dbname) ||
        !pgc_psql_file(c, dbname, schema, cross_service_fks ? NULL : no_fks))
        return false;
    return scale <= 0 || pgc_psql_file(c, dbname, data, scale_vars);
}
