/*
 * cutover_client: the clients of bench/cutover.sh, and the reference
 * cut-over built from native logical replication.
 *
 *   cutover_client mover OUT TAG DSN_A DSN_B [INTERVAL_US]
 *     Writes user_service's tables as fast as it can (or one write every
 *     INTERVAL_US) on whichever side
 *     takes writes: single-row INSERTs into users (its identity
 *     sequence), UPDATEs of rows it inserted, INSERTs into
 *     user_preferences (a foreign key into users). On SQLSTATE 25006 (the
 *     fence) it goes to the other side. Every acknowledged write is a
 *     line of OUT: "usec side op key [value]", op I (insert users, key =
 *     id), U (update, value = login_count), P (insert user_preferences),
 *     and the failures: F (fenced), D (duplicate key, 23505), M (the row
 *     written before was not there: an UPDATE of 0 rows or a 23503), E
 *     (any other error: SQLSTATE). Emails are TAG-N, unique per run.
 *
 *   cutover_client probe OUT KIND SCALE DSN [INTERVAL_US]
 *     One write every INTERVAL_US (2000) to another service's table on
 *     the shared database, KIND orders, payments, inventory or
 *     notifications; OUT gets "usec_before usec_after" for every gap
 *     between two acknowledged writes longer than INTERVAL_US + 2 ms, and
 *     a last line "# writes N errors N first_error".
 *
 *   cutover_client native FROM_DSN TO_DSN SUB_FWD SUB_BACK SLOT_BACK
 *                  TABLES SEQUENCES
 *     The stand-in cut-over with native logical replication: FROM takes
 *     the writes, SUB_FWD (on TO) applies FROM into TO, SUB_BACK (on
 *     FROM, disabled) will apply TO into FROM through SLOT_BACK (on TO).
 *     TABLES and SEQUENCES are comma-separated, already quoted. It prints
 *     the steps as `cleave cutover --json` does.
 *
 * Times are CLOCK_REALTIME microseconds, comparable with `date +%s%N`.
 * The mover and the probes stop on SIGTERM or SIGINT.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int64_t usec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("cutover_client: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static PGconn *connect_to(const char *dsn)
{
    PGconn *c = PQconnectdb(dsn);
    if (PQstatus(c) != CONNECTION_OK)
        die("%s: %s", dsn, PQerrorMessage(c));
    return c;
}

static void prepare(PGconn *c, const char *name, const char *sql, int nparams)
{
    PGresult *r = PQprepare(c, name, sql, nparams, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        die("prepare %s: %s", name, PQerrorMessage(c));
    PQclear(r);
}

static const char *sqlstate(const PGresult *r)
{
    const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    return s ? s : "?????";
}

/* ------------------------------------------------------------ mover */

typedef struct {
    PGconn *conn[2];
    const char *dsn[2];
    int side;                /* the side written to now */
    FILE *out;
    const char *tag;
    int64_t *ids;            /* users inserted, in order */
    size_t n_ids, cap_ids, next_pref;
    long serial;
    int fenced_in_a_row;
} mover;

static void mover_prepare(PGconn *c)
{
    prepare(c, "ins",
            "INSERT INTO users (external_id, email, full_name) "
            "VALUES (gen_random_uuid(), $1, 'cut-over bench') RETURNING id", 1);
    prepare(c, "upd",
            "UPDATE users SET login_count = login_count + 1, updated_at = now() "
            "WHERE id = $1 RETURNING login_count", 1);
    prepare(c, "pref", "INSERT INTO user_preferences (user_id) VALUES ($1)", 1);
}

static void remember(mover *m, int64_t id)
{
    if (m->n_ids == m->cap_ids) {
        m->cap_ids = m->cap_ids ? 2 * m->cap_ids : 4096;
        m->ids = realloc(m->ids, m->cap_ids * sizeof *m->ids);
        if (!m->ids)
            die("out of memory");
    }
    m->ids[m->n_ids++] = id;
}

/* The next write: mostly inserts, an update of a random earlier row,
 * preferences for the oldest user without them. op and key filled. */
static PGresult *mover_write(mover *m, char *op, int64_t *key)
{
    char arg[96];
    const char *params[1] = {arg};
    int r = rand() % 100;
    PGconn *c = m->conn[m->side];
    if (r < 25 && m->n_ids > 0) {
        *op = 'U';
        *key = m->ids[(size_t)rand() % m->n_ids];
    } else if (r < 40 && m->next_pref < m->n_ids) {
        *op = 'P';
        *key = m->ids[m->next_pref];
    } else {
        *op = 'I';
        *key = 0;
        snprintf(arg, sizeof arg, "%s-%ld@bench.example", m->tag, ++m->serial);
        return PQexecPrepared(c, "ins", 1, params, NULL, NULL, 0);
    }
    snprintf(arg, sizeof arg, "%lld", (long long)*key);
    return PQexecPrepared(c, *op == 'U' ? "upd" : "pref", 1, params, NULL,
                          NULL, 0);
}

/* An acknowledged write: its line, and what it taught. */
static void mover_acked(mover *m, PGresult *r, char op, int64_t key, int64_t t)
{
    m->fenced_in_a_row = 0;
    if (op == 'I') {
        key = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        remember(m, key);
    } else if (op == 'P') {
        m->next_pref++;
    } else if (PQntuples(r) == 0) {
        fprintf(m->out, "%lld %d M %lld update\n", (long long)t, m->side,
                (long long)key);
        return;
    }
    fprintf(m->out, "%lld %d %c %lld%s%s\n", (long long)t, m->side, op,
            (long long)key, op == 'U' ? " " : "",
            op == 'U' ? PQgetvalue(r, 0, 0) : "");
}

static void mover_reconnect(mover *m)
{
    PQfinish(m->conn[m->side]);
    for (;;) {
        m->conn[m->side] = PQconnectdb(m->dsn[m->side]);
        if (PQstatus(m->conn[m->side]) == CONNECTION_OK || stop)
            break;
        PQfinish(m->conn[m->side]);
        sleep_us(100000);
    }
    if (!stop)
        mover_prepare(m->conn[m->side]);
}

/* A refused write: the fence sends the client to the other side. */
static void mover_failed(mover *m, PGresult *r, char op, int64_t key, int64_t t)
{
    const char *st = sqlstate(r);
    if (strcmp(st, "25006") == 0) {
        fprintf(m->out, "%lld %d F %c\n", (long long)t, m->side, op);
        m->side = 1 - m->side;
        /* Both fenced for a moment during a switch: no busy loop. */
        if (++m->fenced_in_a_row >= 2)
            sleep_us(500);
        if (op == 'P')
            return;
    } else if (strcmp(st, "23505") == 0) {
        fprintf(m->out, "%lld %d D %c %s", (long long)t, m->side, op,
                PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY));
        fputc('\n', m->out);
    } else if (strcmp(st, "23503") == 0) {
        fprintf(m->out, "%lld %d M %lld foreign-key\n", (long long)t, m->side,
                (long long)key);
    } else {
        fprintf(m->out, "%lld %d E %s %s", (long long)t, m->side, st,
                PQerrorMessage(m->conn[m->side]));
        if (PQstatus(m->conn[m->side]) != CONNECTION_OK)
            mover_reconnect(m);
    }
    if (op == 'P')
        m->next_pref++;  /* not retried: the row it needs may be missing */
}

static int run_mover(int argc, char **argv)
{
    if (argc != 6 && argc != 7)
        die("usage: mover OUT TAG DSN_A DSN_B [INTERVAL_US]");
    long interval = argc == 7 ? atol(argv[6]) : 0;
    mover m = {.tag = argv[3], .dsn = {argv[4], argv[5]}};
    m.out = fopen(argv[2], "w");
    if (!m.out)
        die("cannot write %s", argv[2]);
    for (int i = 0; i < 2; i++) {
        m.conn[i] = connect_to(m.dsn[i]);
        mover_prepare(m.conn[i]);
    }
    srand((unsigned)getpid());
    while (!stop) {
        char op;
        int64_t key;
        PGresult *r = mover_write(&m, &op, &key);
        int64_t t = usec();
        if (PQresultStatus(r) == PGRES_TUPLES_OK ||
            PQresultStatus(r) == PGRES_COMMAND_OK)
            mover_acked(&m, r, op, key, t);
        else
            mover_failed(&m, r, op, key, t);
        PQclear(r);
        if (interval > 0)
            sleep_us(interval);
    }
    fclose(m.out);
    return 0;
}

/* ------------------------------------------------------------ probe */

static const char *probe_sql(const char *kind)
{
    if (strcmp(kind, "orders") == 0)
        return "INSERT INTO orders (order_uuid, user_id, status, currency, "
               "item_count) VALUES (gen_random_uuid(), 1 + $1 % (10000 * $2), "
               "'pending', 'EUR', 0)";
    if (strcmp(kind, "payments") == 0)
        return "INSERT INTO payments (payment_uuid, order_id, user_id, amount, "
               "currency, status, provider_ref) VALUES (gen_random_uuid(), "
               "1 + $1 % (20000 * $2), 1 + $1 % (10000 * $2), 1.00, 'EUR', "
               "'pending', 'cut-over probe')";
    if (strcmp(kind, "inventory") == 0)
        return "UPDATE inventory SET quantity = quantity + 1, updated_at = now() "
               "WHERE product_id = 1 + $1 % (1000 * $2) "
               "AND warehouse_id = (1 + $1 % (1000 * $2)) % (10 * $2) + 1";
    if (strcmp(kind, "notifications") == 0)
        return "INSERT INTO notifications (user_id, template_id, channel, payload) "
               "VALUES (1 + $1 % (10000 * $2), 1, 'email', '{}')";
    die("unknown probe kind %s", kind);
    return NULL;
}

static int run_probe(int argc, char **argv)
{
    if (argc != 6 && argc != 7)
        die("usage: probe OUT KIND SCALE DSN [INTERVAL_US]");
    FILE *out = fopen(argv[2], "w");
    long interval = argc == 7 ? atol(argv[6]) : 2000;
    PGconn *c = connect_to(argv[5]);
    prepare(c, "w", probe_sql(argv[3]), 2);
    long writes = 0, errors = 0;
    char first[256] = "", n[32];
    const char *params[2] = {n, argv[4]};
    int64_t last = 0;
    if (!out)
        die("cannot write %s", argv[2]);
    srand((unsigned)getpid());
    while (!stop) {
        snprintf(n, sizeof n, "%d", rand());
        PGresult *r = PQexecPrepared(c, "w", 2, params, NULL, NULL, 0);
        int64_t t = usec();
        if (PQresultStatus(r) == PGRES_COMMAND_OK) {
            if (last && t - last > interval + 2000)
                fprintf(out, "%lld %lld\n", (long long)last, (long long)t);
            last = t;
            writes++;
        } else if (errors++ == 0) {
            snprintf(first, sizeof first, "%s", PQerrorMessage(c));
            first[strcspn(first, "\n")] = '\0';
        }
        PQclear(r);
        sleep_us(interval);
    }
    fprintf(out, "# writes %ld errors %ld %s\n", writes, errors, first);
    fclose(out);
    return 0;
}

/* ------------------------------------------------------------ native */

typedef struct {
    PGconn *from, *to;
    char **argv;             /* FROM TO SUB_FWD SUB_BACK SLOT_BACK TABLES SEQS */
    int64_t t0, lock_start;
    char mark[32];
} native;

#define LOCK_TIMEOUT_MS 2000
#define LOCK_ATTEMPT_MS 100
#define PAUSE_BUDGET_MS 1000

static void step(const char *name, int64_t since, const char *detail)
{
    printf("{\"step\":\"%s\",\"ms\":%.1f%s%s%s}\n", name,
           (double)(usec() - since) / 1000.0, detail ? ",\"detail\":\"" : "",
           detail ? detail : "", detail ? "\"" : "");
    fflush(stdout);
}

static void fail(native *n, const char *what, PGconn *c)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s: %s", what, PQerrorMessage(c));
    for (char *p = msg; *p; p++)
        if (*p == '"' || *p == '\n' || *p == '\\')
            *p = ' ';
    printf("{\"result\":\"failed\",\"exit\":1,\"error\":\"%s\"}\n", msg);
    (void)n;
    exit(1);
}

/* Runs SQL; its first value (or "") in val. */
static bool run(PGconn *c, const char *sql, char *val, size_t len)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (val)
        snprintf(val, len, "%s", ok && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    return ok;
}

static void must(native *n, PGconn *c, const char *sql, char *val, size_t len)
{
    if (!run(c, sql, val, len))
        fail(n, sql, c);
}

/* LOCK in attempts of 100 ms, retried with backoff, as cleave does. */
static void native_lock(native *n)
{
    char sql[1024];
    long backoff = 1000;
    snprintf(sql, sizeof sql, "SET LOCAL lock_timeout = %d; LOCK TABLE %s IN "
             "SHARE ROW EXCLUSIVE MODE", LOCK_ATTEMPT_MS, n->argv[5]);
    for (;;) {
        n->lock_start = usec();
        must(n, n->from, "BEGIN", NULL, 0);
        if (run(n->from, sql, NULL, 0))
            break;
        if (usec() - n->t0 > LOCK_TIMEOUT_MS * 1000L)
            fail(n, "lock", n->from);
        must(n, n->from, "ROLLBACK", NULL, 0);
        sleep_us(backoff);
        backoff *= 2;
    }
    step("lock", n->lock_start, NULL);
}

/* Polls the subscription until it has received (and so applied: the
 * worker applies in order) past the mark. */
static void native_catch_up(native *n)
{
    int64_t t = usec();
    char sql[512], done[8], behind[96], detail[160];
    must(n, n->from, "SELECT pg_current_wal_lsn()", n->mark, sizeof n->mark);
    snprintf(sql, sizeof sql, "SELECT pg_wal_lsn_diff('%s', latest_end_lsn) "
             "FROM pg_stat_subscription WHERE subname = '%s' AND relid IS NULL",
             n->mark, n->argv[2]);
    must(n, n->to, sql, behind, sizeof behind);
    snprintf(detail, sizeof detail, "%s bytes behind the mark at the lock", behind);
    snprintf(sql, sizeof sql, "SELECT coalesce(latest_end_lsn >= '%s', false) "
             "FROM pg_stat_subscription WHERE subname = '%s' AND relid IS NULL",
             n->mark, n->argv[2]);
    for (;;) {
        must(n, n->to, sql, done, sizeof done);
        if (strcmp(done, "t") == 0)
            break;
        if (usec() - n->lock_start > PAUSE_BUDGET_MS * 1000L) {
            printf("{\"result\":\"failed\",\"exit\":1,\"error\":\"catch-up "
                   "past %s not seen within the budget\"}\n", n->mark);
            exit(1);
        }
        sleep_us(1000);
    }
    step("catch-up", t, detail);
}

/* Each sequence of TO set to FROM's value (FROM's writers are locked). */
static void native_sequences(native *n)
{
    int64_t t = usec();
    char *seqs = strdup(n->argv[6]), *save = NULL, sql[512], val[64];
    for (char *s = strtok_r(seqs, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
        snprintf(sql, sizeof sql, "SELECT last_value || ', ' || is_called FROM %s", s);
        must(n, n->from, sql, val, sizeof val);
        snprintf(sql, sizeof sql, "SELECT setval('%s', %s)", s, val);
        must(n, n->to, sql, NULL, 0);
    }
    free(seqs);
    step("sequences", t, NULL);
}

/* fence(c, on): the trigger on every table, or none. */
static void native_fence(native *n, PGconn *c, bool on)
{
    char *tables = strdup(n->argv[5]), *save = NULL, sql[512];
    for (char *s = strtok_r(tables, ", ", &save); s; s = strtok_r(NULL, ", ", &save)) {
        if (on)
            snprintf(sql, sizeof sql, "CREATE TRIGGER bench_fence BEFORE INSERT "
                     "OR UPDATE OR DELETE OR TRUNCATE ON %s FOR EACH STATEMENT "
                     "EXECUTE FUNCTION bench_fence()", s);
        else
            snprintf(sql, sizeof sql, "DROP TRIGGER bench_fence ON %s", s);
        must(n, c, sql, NULL, 0);
    }
    free(tables);
}

/* After the commit: TO unfenced once its forward subscription stopped
 * (PostgreSQL 15 has no origin filter, so the two directions never run
 * at once); the back slot skips what the forward one applied. */
static void native_open(native *n)
{
    int64_t t = usec();
    char sql[512], lsn[32], active[8];
    snprintf(sql, sizeof sql, "ALTER SUBSCRIPTION %s DISABLE", n->argv[2]);
    must(n, n->to, sql, NULL, 0);
    must(n, n->to, "SELECT pg_current_wal_lsn()", lsn, sizeof lsn);
    must(n, n->to, "BEGIN", NULL, 0);
    native_fence(n, n->to, false);
    must(n, n->to, "COMMIT", NULL, 0);
    step("unfence", t, NULL);
    t = usec();
    snprintf(sql, sizeof sql, "SELECT count(*) FILTER (WHERE active) FROM "
             "pg_replication_slots WHERE slot_name = '%s'", n->argv[4]);
    for (int i = 0; i < 5000; i++) {
        must(n, n->to, sql, active, sizeof active);
        if (strcmp(active, "0") == 0)
            break;
        sleep_us(1000);
    }
    snprintf(sql, sizeof sql, "SELECT pg_replication_slot_advance('%s', '%s')",
             n->argv[4], lsn);
    must(n, n->to, sql, NULL, 0);
    snprintf(sql, sizeof sql, "ALTER SUBSCRIPTION %s ENABLE", n->argv[3]);
    must(n, n->from, sql, NULL, 0);
    step("reverse stream", t, NULL);
}

static int run_native(int argc, char **argv)
{
    if (argc != 9)
        die("usage: native FROM_DSN TO_DSN SUB_FWD SUB_BACK SLOT_BACK TABLES SEQS");
    native n = {.argv = argv + 2, .t0 = usec()};
    n.from = connect_to(argv[2]);
    n.to = connect_to(argv[3]);
    native_lock(&n);
    native_catch_up(&n);
    native_sequences(&n);
    int64_t t = usec();
    native_fence(&n, n.from, true);
    step("fence", t, NULL);
    t = usec();
    must(&n, n.from, "COMMIT", NULL, 0);
    double pause = (double)(usec() - n.lock_start) / 1000.0;
    step("commit", t, NULL);
    native_open(&n);
    printf("{\"result\":\"ok\",\"pause_ms\":%.1f}\n", pause);
    PQfinish(n.from);
    PQfinish(n.to);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 2 && strcmp(argv[1], "mover") == 0)
        return run_mover(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "probe") == 0)
        return run_probe(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "native") == 0)
        return run_native(argc, argv);
    die("usage: cutover_client mover|probe|native ...");
    return 2;
}
