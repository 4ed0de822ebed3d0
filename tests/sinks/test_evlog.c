/*
 * test_evlog: the on-disk event log, written and read back.
 *
 * Every event kind and value kind (binary too) round trips byte for byte;
 * ROLLBACK and reopening keep exactly the complete transactions; a torn
 * tail (the file cut at every byte of its last, unsynced transaction, or
 * any of its bytes flipped) is cut off on open; damage in the fsync'd
 * part is an error for both the writer and the reader, at every byte; a
 * message record forged with valid checksums is refused by the reader.
 * Readers follow a writer and never see an unfinished or rolled-back
 * transaction.
 * Files live in a temporary directory under /tmp, removed at the end.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "sinks/evlog.h"
#include "sinks/sink.h"

#define HDR_SIZE 40          /* evlog.c's header */

static char tmpdir[64];

static void dir_setup(void)
{
    strcpy(tmpdir, "/tmp/evlog-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        abort();
    }
}

static void dir_teardown(void)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    char path[512];
    while (d && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(tmpdir);
}

static char *path_of(const char *name)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    return path;
}

static uint8_t *slurp(const char *path, size_t *len)
{
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    uint8_t *buf = malloc((size_t)st.st_size + 1);
    int fd = open(path, O_RDONLY);
    ck_assert(buf && fd >= 0);
    ck_assert_int_eq(read(fd, buf, (size_t)st.st_size), st.st_size);
    close(fd);
    *len = (size_t)st.st_size;
    return buf;
}

static void spill(const char *path, const uint8_t *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert(fd >= 0);
    ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
    close(fd);
}

static off_t file_size(const char *path)
{
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    return st.st_size;
}

/* ---- events ------------------------------------------------------------- */

static sink_rel *mkrel(uint32_t oid, uint64_t version, const char *schema,
                       const char *name, uint16_t ncols)
{
    sink_rel *rel = calloc(1, sizeof *rel);
    ck_assert_ptr_nonnull(rel);
    atomic_init(&rel->refs, 1);
    rel->oid = oid;
    rel->version = version;
    rel->replident = 'd';
    rel->schema = strdup(schema);
    rel->name = strdup(name);
    rel->ncols = ncols;
    rel->cols = calloc(ncols ? ncols : 1, sizeof *rel->cols);
    for (uint16_t i = 0; i < ncols; i++) {
        char n[16];
        snprintf(n, sizeof n, "c%u", i);
        rel->cols[i].name = strdup(n);
        rel->cols[i].type_oid = i == 0 ? 23 : 25;
        rel->cols[i].typmod = i == 2 ? 36 : -1;
        rel->cols[i].key = i == 0;
    }
    return rel;
}

static void set_col(sink_rel *rel, uint16_t i, const char *name,
                    const char *type_name)
{
    free(rel->cols[i].name);
    rel->cols[i].name = strdup(name);
    free(rel->cols[i].type_name);
    rel->cols[i].type_name = type_name ? strdup(type_name) : NULL;
}

static sink_value T(const char *s)
{
    return (sink_value){.kind = 't', .len = (uint32_t)strlen(s), .data = s};
}

static const sink_value N = {.kind = 'n'};
static const sink_value U = {.kind = 'u'};

/* A growing list of events: what is appended and expected back. */
typedef struct evlist {
    sink_event **ev;
    size_t n, cap;
} evlist;

static sink_event *add(evlist *l, sink_event *ev)
{
    ck_assert_ptr_nonnull(ev);
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 32;
        l->ev = realloc(l->ev, l->cap * sizeof *l->ev);
        ck_assert_ptr_nonnull(l->ev);
    }
    return l->ev[l->n++] = ev;
}

static void evlist_free(evlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        sink_event_free(l->ev[i]);
    free(l->ev);
    *l = (evlist){0};
}

static void begin(evlist *l, uint32_t xid, lsn_t lsn)
{
    add(l, sink_event_txn(SINK_BEGIN, xid, lsn, 0, 1000 + xid));
}

static void commit(evlist *l, uint32_t xid, lsn_t lsn)
{
    add(l, sink_event_txn(SINK_COMMIT, xid, lsn, lsn + 0x28, 2000 + xid));
}

static void change(evlist *l, sink_op op, sink_rel *rel, lsn_t lsn,
                   char old_kind, const sink_value *old_vals,
                   const sink_value *new_vals)
{
    add(l, sink_event_change_values(op, rel, lsn, old_kind, old_vals,
                                    new_vals));
}

/* A logical message; sink_event_message leaves the xid to the caller. */
static void message(evlist *l, uint32_t xid, lsn_t commit_lsn, lsn_t msg_lsn,
                    bool transactional, const char *prefix,
                    const void *content, uint32_t len)
{
    add(l, sink_event_message(commit_lsn, msg_lsn, transactional, prefix,
                              content, len))->xid = xid;
}

static void append_all(evlog *log, const evlist *l, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        ck_assert_msg(evlog_append(log, l->ev[i]), "event %zu: %s", i,
                      evlog_error(log));
}

static void check_rel(const sink_rel *want, const sink_rel *got)
{
    ck_assert_ptr_nonnull(got);
    ck_assert_uint_eq(got->oid, want->oid);
    ck_assert_uint_eq(got->version, want->version);
    ck_assert_str_eq(got->schema, want->schema);
    ck_assert_str_eq(got->name, want->name);
    ck_assert_int_eq(got->replident, want->replident);
    ck_assert_uint_eq(got->ncols, want->ncols);
    for (uint16_t i = 0; i < want->ncols; i++) {
        const struct sink_col *a = &want->cols[i], *b = &got->cols[i];
        ck_assert_str_eq(b->name, a->name);
        ck_assert_uint_eq(b->type_oid, a->type_oid);
        ck_assert_int_eq(b->typmod, a->typmod);
        ck_assert_int_eq(b->key, a->key);
        ck_assert_int_eq(b->pk, a->pk);
        if (a->type_name)
            ck_assert_str_eq(b->type_name, a->type_name);
        else
            ck_assert_ptr_null(b->type_name);
    }
}

static void check_values(const sink_value *want, const sink_value *got,
                         uint16_t n)
{
    ck_assert_int_eq(want == NULL, got == NULL);
    for (uint16_t i = 0; want && i < n; i++) {
        ck_assert_int_eq(got[i].kind, want[i].kind);
        if (want[i].kind != 't' && want[i].kind != 'b')
            continue;
        ck_assert_uint_eq(got[i].len, want[i].len);
        ck_assert(memcmp(got[i].data, want[i].data, want[i].len) == 0);
        ck_assert_int_eq(got[i].data[got[i].len], '\0');
    }
}

static void check_event(const sink_event *want, const sink_event *got,
                        size_t i)
{
    ck_assert_msg(got->op == want->op, "event %zu: op %d, want %d", i,
                  (int)got->op, (int)want->op);
    ck_assert_uint_eq(got->xid, want->xid);
    ck_assert_uint_eq(got->commit_lsn, want->commit_lsn);
    ck_assert_uint_eq(got->end_lsn, want->end_lsn);
    ck_assert_int_eq(got->commit_time, want->commit_time);
    ck_assert_int_eq(got->old_kind, want->old_kind);
    ck_assert_int_eq(got->binary, want->binary);
    if (want->rel) {
        check_rel(want->rel, got->rel);
        check_values(want->old_vals, got->old_vals, want->rel->ncols);
        check_values(want->new_vals, got->new_vals, want->rel->ncols);
    } else {
        ck_assert_ptr_null(got->rel);
    }
    ck_assert_uint_eq(got->truncate_options, want->truncate_options);
    ck_assert_uint_eq(got->ntruncate, want->ntruncate);
    for (uint32_t j = 0; j < want->ntruncate; j++)
        check_rel(want->truncate_rels[j], got->truncate_rels[j]);
    ck_assert_int_eq(got->transactional, want->transactional);
    ck_assert_uint_eq(got->lsn, want->lsn);
    ck_assert_uint_eq(got->content_len, want->content_len);
    if (want->prefix) {
        ck_assert_ptr_nonnull(got->prefix);
        ck_assert_str_eq(got->prefix, want->prefix);
        ck_assert_msg(want->content_len == 0 ||
                      memcmp(got->content, want->content,
                             want->content_len) == 0,
                      "event %zu: message content differs", i);
    } else {
        ck_assert_ptr_null(got->prefix);
    }
}

/*
 * Reads want[0..n) and then `last` (0 the end, -1 an error) from the log;
 * the events read are kept in *got when given.
 */
static void read_expect(const char *path, const evlist *want, size_t n,
                        int last, evlist *got)
{
    char err[512];
    evlog_reader *r = evlog_reader_open(path, err, sizeof err);
    ck_assert_msg(r != NULL, "%s", err);
    for (size_t i = 0; i < n; i++) {
        sink_event *ev;
        int rc = evlog_reader_next(r, &ev, err, sizeof err);
        ck_assert_msg(rc == 1, "event %zu: %d %s", i, rc, rc < 0 ? err : "");
        check_event(want->ev[i], ev, i);
        if (got)
            add(got, ev);
        else
            sink_event_free(ev);
    }
    sink_event *ev = NULL;
    int rc = evlog_reader_next(r, &ev, err, sizeof err);
    ck_assert_msg(rc == last, "after %zu events: %d, want %d (%s)", n, rc,
                  last, rc < 0 ? err : ev ? "an event" : "");
    if (last < 0)
        ck_assert_ptr_nonnull(strstr(err, "offset"));
    evlog_reader_close(r);
}

static evlog *open_ok(const char *path, lsn_t start)
{
    char err[512];
    evlog *l = evlog_open(path, start, err, sizeof err);
    ck_assert_msg(l != NULL, "%s", err);
    return l;
}

/* ---- CRC ------------------------------------------------------------------ */

START_TEST(test_crc32c)
{
    const char *s = "123456789";
    ck_assert_uint_eq(evlog_crc32c(0, s, 9), 0xE3069283u);
    ck_assert_uint_eq(evlog_crc32c(0, s, 0), 0);
    for (size_t cut = 0; cut <= 9; cut++)
        ck_assert_uint_eq(evlog_crc32c(evlog_crc32c(0, s, cut), s + cut, 9 - cut),
                          0xE3069283u);
    uint8_t zeros[32] = {0};
    ck_assert_uint_eq(evlog_crc32c(0, zeros, 32), 0x8A9136AAu);
}
END_TEST

/* ---- round trip ---------------------------------------------------------- */

START_TEST(test_roundtrip)
{
    const char *path = path_of("roundtrip");
    sink_rel *r1 = mkrel(16384, 1, "public", "t", 3);
    r1->replident = 'f';
    set_col(r1, 1, "mood", "\"my schema\".\"mood\"");
    sink_rel *r1b = mkrel(16384, 2, "public", "t", 4);
    sink_rel *r0 = mkrel(16390, 1, "public", "empty", 0);
    r0->replident = 'n';
    sink_rel *rh = mkrel(16400, 1, "we\"ird sch ema", "t\xc3\xa5""ble \xe2\x98\x83 \"x\"", 3);
    rh->replident = 'i';
    rh->cols[1].pk = true;      /* a primary key beside the identity index */
    set_col(rh, 0, "a b", NULL);
    set_col(rh, 1, "\"q\"", "\"s p\".\"t\"\"y\"");
    set_col(rh, 2, "\xc3\xbcn\xc3\xaf", NULL);

    size_t big_len = 1 << 20;
    char *big = malloc(big_len + 1);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (char)(i * 7 + 1);
    big[big_len] = '\0';
    const sink_value bigv = {.kind = 't', .len = (uint32_t)big_len, .data = big};
    const sink_value nul = {.kind = 't', .len = 3, .data = "a\0b"};
    const sink_value bin = {.kind = 'b', .len = 5, .data = "\0\1\0\377x"};

    evlist w = {0};
    begin(&w, 700, 0x1000);
    w.ev[0]->end_lsn = 0x1ABC;          /* kept even where unusual */
    w.ev[0]->commit_time = -5;
    change(&w, SINK_INSERT, r1, 0x1000, 0,
           NULL, (sink_value[]){T("1"), N, T("")});
    w.ev[w.n - 1]->xid = 700;
    change(&w, SINK_UPDATE, r1, 0x1000, 'K',
           (sink_value[]){T("1"), N, N}, (sink_value[]){T("2"), U, T("x")});
    w.ev[w.n - 1]->lsn = 0xF40;         /* the change's own LSN, kept */
    change(&w, SINK_DELETE, r1, 0x1000, 'O',
           (sink_value[]){T("2"), nul, T("")}, NULL);
    w.ev[w.n - 1]->lsn = UINT64_MAX - 1;
    change(&w, SINK_INSERT, r0, 0x1000, 0, NULL, (sink_value[]){N});
    change(&w, SINK_DELETE, r0, 0x1000, 'O', (sink_value[]){N}, NULL);
    change(&w, SINK_INSERT, rh, 0x1000, 0, NULL,
           (sink_value[]){bigv, T("\xc3\xbc"), N});
    ck_assert(!w.ev[w.n - 1]->binary);
    change(&w, SINK_UPDATE, rh, 0x1000, 0, NULL, (sink_value[]){U, U, U});
    change(&w, SINK_UPDATE, rh, 0x1000, 'K', (sink_value[]){bin, N, N},
           (sink_value[]){bin, U, bin});
    ck_assert(w.ev[w.n - 1]->binary);     /* what the Kafka sink refuses */
    commit(&w, 700, 0x1000);
    size_t txn2 = w.n;
    begin(&w, 701, 0x2000);
    change(&w, SINK_UPDATE, r1b, 0x2000, 'K',
           (sink_value[]){T("1"), N, N, N}, (sink_value[]){T("1"), T("a"), T("b"), T("")});
    sink_rel *three[] = {r1b, r0, rh};
    add(&w, sink_event_truncate(0x2000, 3, three, 3))->lsn = 0x1F00;
    add(&w, sink_event_truncate(0x2000, 0, three, 0));
    change(&w, SINK_INSERT, r1, 0x2000, 0, NULL, (sink_value[]){T("9"), N, N});
    commit(&w, 701, 0x2000);
    begin(&w, 702, 0x3000);              /* nothing in it */
    commit(&w, 702, 0x3000);

    evlog *l = open_ok(path, 0x500);
    append_all(l, &w, 0, w.n);
    ck_assert_uint_eq(evlog_last_end(l), 0x3028);
    ck_assert(evlog_sync(l));
    ck_assert_uint_eq(evlog_durable(l), 0x3028);
    ck_assert_uint_gt(evlog_bytes(l), big_len);
    ck_assert_int_eq(file_size(path), (off_t)evlog_bytes(l));
    evlog_close(l);

    evlist got = {0};
    read_expect(path, &w, w.n, 0, &got);
    /* Snapshots are shared per (oid, version), and versions kept apart. */
    ck_assert_ptr_eq(got.ev[1]->rel, got.ev[2]->rel);
    ck_assert_ptr_eq(got.ev[1]->rel, got.ev[txn2 + 4]->rel);
    ck_assert_ptr_ne(got.ev[1]->rel, got.ev[txn2 + 1]->rel);
    ck_assert_ptr_eq(got.ev[txn2 + 1]->rel, got.ev[txn2 + 2]->truncate_rels[0]);
    ck_assert_ptr_eq(got.ev[6]->rel, got.ev[txn2 + 2]->truncate_rels[2]);
    ck_assert_ptr_nonnull(got.ev[4]->new_vals);   /* 0 columns, still there */
    ck_assert_ptr_null(got.ev[4]->old_vals);
    evlist_free(&got);
    evlist_free(&w);
    sink_rel_unref(r1);
    sink_rel_unref(r1b);
    sink_rel_unref(r0);
    sink_rel_unref(rh);
    free(big);
}
END_TEST

/*
 * Logical messages: transactional ones among a transaction's changes, a
 * lone one in a transaction of its own; content with NUL bytes, empty,
 * and bigger than the write buffer; kept across a reopen.
 */
START_TEST(test_messages)
{
    const char *path = path_of("messages");
    char err[512];
    sink_rel *r1 = mkrel(16384, 1, "public", "outbox", 2);
    static const uint8_t bin[] = {0, 1, 0xff, 0, 'z', 0};
    size_t big_len = 200 * 1000;
    uint8_t *big = malloc(big_len);
    ck_assert_ptr_nonnull(big);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (uint8_t)(i * 13 + i / 256);

    evlist w = {0}, gone = {0};
    begin(&w, 800, 0x8000);
    change(&w, SINK_INSERT, r1, 0x8000, 0, NULL, (sink_value[]){T("1"), N});
    message(&w, 800, 0x8000, 0x7F10, true, "outbox.order", bin, sizeof bin);
    message(&w, 800, 0x8000, 0x7F20, true, "outbox.empty", "", 0);
    message(&w, 800, 0x8000, 0x7F30, true, "", "x", 1);
    message(&w, 800, 0x8000, 0x7F40, true, "gr\xc3\xb6\xc3\x9f""e \"q\"", big,
            (uint32_t)big_len);
    change(&w, SINK_UPDATE, r1, 0x8000, 'K', (sink_value[]){T("1"), N},
           (sink_value[]){T("1"), T("sent")});
    commit(&w, 800, 0x8000);
    /* A lone message: its transaction ends one past it. */
    add(&w, sink_event_txn(SINK_BEGIN, 0, 0x9000, 0x9001, 0));
    message(&w, 0, 0x9000, 0x9000, false, "audit", "\0", 1);
    add(&w, sink_event_txn(SINK_COMMIT, 0, 0x9000, 0x9001, 0));

    evlog *l = open_ok(path, 0x7000);
    append_all(l, &w, 0, 5);
    uint64_t bytes = evlog_bytes(l);
    append_all(l, &w, 5, 7);
    ck_assert_uint_gt(evlog_bytes(l), bytes + big_len);
    append_all(l, &w, 7, w.n);
    ck_assert_uint_eq(evlog_last_end(l), 0x9001);

    /* Outside a transaction: refused, nothing written. */
    bytes = evlog_bytes(l);
    errno = 0;
    ck_assert(!evlog_append(l, w.ev[2]));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_ptr_nonnull(strstr(evlog_error(l), "outside"));
    /* Rolled back with its transaction. */
    begin(&gone, 801, 0xA000);
    message(&gone, 801, 0xA000, 0x9F00, true, "outbox.order", bin, sizeof bin);
    add(&gone, sink_event_txn(SINK_ROLLBACK, 0, 0, 0, 0));
    append_all(l, &gone, 0, gone.n);
    ck_assert_uint_eq(evlog_bytes(l), bytes);
    ck_assert(evlog_sync(l));
    evlog_close(l);
    read_expect(path, &w, w.n, 0, NULL);

    /* The reopen scans the 'M' records; more append after them. */
    l = evlog_open(path, 0, err, sizeof err);
    ck_assert_msg(l != NULL, "%s", err);
    ck_assert_uint_eq(evlog_last_end(l), 0x9001);
    ck_assert_uint_eq(evlog_bytes(l), bytes);
    ck_assert_uint_eq(evlog_cut_bytes(l), 0);
    size_t c = w.n;
    begin(&w, 802, 0xB000);
    message(&w, 802, 0xB000, 0xAF00, true, "outbox.order", bin, 3);
    commit(&w, 802, 0xB000);
    append_all(l, &w, c, w.n);
    evlog_close(l);

    evlist got = {0};
    read_expect(path, &w, w.n, 0, &got);
    /* Copies of their own, not pointers into the reader's buffer. */
    ck_assert_ptr_ne(got.ev[2]->content, w.ev[2]->content);
    ck_assert_ptr_ne(got.ev[4]->content, got.ev[c + 1]->content);
    ck_assert(memcmp(got.ev[2]->content, bin, sizeof bin) == 0);
    ck_assert(memcmp(got.ev[c + 1]->content, bin, 3) == 0);
    ck_assert_uint_eq(got.ev[3]->content_len, 0);
    ck_assert_str_eq(got.ev[4]->prefix, "");
    ck_assert(!got.ev[9]->transactional && got.ev[9]->lsn == 0x9000);
    evlist_free(&got);
    evlist_free(&w);
    evlist_free(&gone);
    sink_rel_unref(r1);
    free(big);
}
END_TEST

/* ---- rollback, order, positions ---------------------------------------- */

START_TEST(test_rollback)
{
    const char *path = path_of("rollback");
    sink_rel *r1 = mkrel(16384, 1, "public", "a", 2);
    sink_rel *r2 = mkrel(16385, 1, "public", "b", 2);
    evlist w = {0}, gone = {0};
    evlog *l = open_ok(path, 0);
    ck_assert_uint_eq(evlog_last_end(l), 0);
    ck_assert_uint_eq(evlog_durable(l), 0);

    begin(&w, 1, 0x100);
    change(&w, SINK_INSERT, r1, 0x100, 0, NULL, (sink_value[]){T("1"), N});
    append_all(l, &w, 0, 2);
    ck_assert_uint_eq(evlog_last_end(l), 0);      /* not before COMMIT */
    commit(&w, 1, 0x100);
    append_all(l, &w, 2, 3);
    ck_assert_uint_eq(evlog_last_end(l), 0x128);
    ck_assert_uint_eq(evlog_durable(l), 0);       /* not before sync */
    ck_assert(evlog_sync(l));
    ck_assert_uint_eq(evlog_durable(l), 0x128);
    uint64_t bytes = evlog_bytes(l);

    /* Dropped from the buffer, relation record with it. */
    begin(&gone, 2, 0x200);
    change(&gone, SINK_INSERT, r2, 0x200, 0, NULL, (sink_value[]){T("x"), N});
    append_all(l, &gone, 0, 2);
    ck_assert_uint_gt(evlog_bytes(l), bytes);
    sink_event *rb = sink_event_txn(SINK_ROLLBACK, 0, 0, 0, 0);
    ck_assert(evlog_append(l, rb));
    ck_assert_uint_eq(evlog_bytes(l), bytes);
    ck_assert(evlog_append(l, rb));               /* none open: nothing */
    ck_assert_uint_eq(evlog_last_end(l), 0x128);

    /* Out of order or malformed: refused, nothing written, still usable. */
    errno = 0;
    ck_assert(!evlog_append(l, w.ev[1]));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert(!evlog_append(l, w.ev[2]));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_ptr_nonnull(strstr(evlog_error(l), "outside"));
    ck_assert_uint_eq(evlog_bytes(l), bytes);

    size_t c = w.n;
    begin(&w, 3, 0x300);
    append_all(l, &w, c, c + 1);
    ck_assert(!evlog_append(l, w.ev[c]));         /* BEGIN inside */
    sink_value odd[] = {{.kind = 'x', .len = 1, .data = "x"}, N};
    sink_event *bad = sink_event_change_values(SINK_INSERT, r2, 0x300, 0, NULL, odd);
    ck_assert(!evlog_append(l, bad));
    ck_assert_int_eq(errno, EINVAL);
    sink_event_free(bad);
    bad = sink_event_truncate(0x300, 0x80, &r2, 1);   /* the LSN's flag */
    ck_assert(!evlog_append(l, bad));
    ck_assert_int_eq(errno, EINVAL);
    sink_event_free(bad);
    /* r2's record went with the rollback: written again here. */
    change(&w, SINK_UPDATE, r2, 0x300, 'K', (sink_value[]){T("x"), N},
           (sink_value[]){T("y"), N});
    commit(&w, 3, 0x300);
    append_all(l, &w, c + 1, w.n);
    ck_assert_uint_eq(evlog_last_end(l), 0x328);
    ck_assert_uint_eq(evlog_durable(l), 0x128);
    ck_assert(evlog_sync(l));
    ck_assert_uint_eq(evlog_durable(l), 0x328);

    /* Bigger than the buffer and synced half way: cut from the file. */
    bytes = evlog_bytes(l);
    evlist big = {0};
    char value[1024];
    memset(value, 'v', sizeof value - 1);
    value[sizeof value - 1] = '\0';
    begin(&big, 4, 0x400);
    for (int i = 0; i < 200; i++)
        change(&big, SINK_INSERT, r1, 0x400, 0, NULL,
               (sink_value[]){T(value), N});
    append_all(l, &big, 0, big.n);
    ck_assert(evlog_sync(l));
    ck_assert_uint_eq(evlog_durable(l), 0x328);   /* half a transaction */
    ck_assert_int_gt(file_size(path), (off_t)bytes + 200 * 1000);
    ck_assert(evlog_append(l, rb));
    ck_assert_uint_eq(evlog_bytes(l), bytes);
    ck_assert_int_eq(file_size(path), (off_t)bytes);
    ck_assert_uint_eq(evlog_last_end(l), 0x328);

    c = w.n;
    begin(&w, 5, 0x500);
    change(&w, SINK_DELETE, r1, 0x500, 'K', (sink_value[]){T("1"), N}, NULL);
    commit(&w, 5, 0x500);
    append_all(l, &w, c, w.n);
    /* An unfinished transaction is dropped on close. */
    bytes = evlog_bytes(l);
    append_all(l, &gone, 0, 2);
    evlog_close(l);
    ck_assert_int_eq(file_size(path), (off_t)bytes);

    read_expect(path, &w, w.n, 0, NULL);
    sink_event_free(rb);
    evlist_free(&w);
    evlist_free(&gone);
    evlist_free(&big);
    sink_rel_unref(r1);
    sink_rel_unref(r2);
}
END_TEST

/* ---- reopen ---------------------------------------------------------------- */

START_TEST(test_reopen)
{
    const char *path = path_of("reopen");
    sink_rel *r1 = mkrel(16384, 7, "public", "a", 2);
    evlist w = {0};
    for (uint32_t x = 1; x <= 3; x++) {
        begin(&w, x, 0x1000 * x);
        change(&w, SINK_INSERT, r1, 0x1000 * x, 0, NULL,
               (sink_value[]){T("k"), T("v")});
        commit(&w, x, 0x1000 * x);
    }
    evlog *l = open_ok(path, 0x500);
    append_all(l, &w, 0, w.n);
    ck_assert(evlog_sync(l));
    uint64_t bytes = evlog_bytes(l);
    evlog_close(l);

    l = open_ok(path, 0x999);
    ck_assert_uint_eq(evlog_start(l), 0x500);     /* the header's */
    ck_assert_uint_eq(evlog_last_end(l), 0x3028);
    ck_assert_uint_eq(evlog_durable(l), 0x3028);
    ck_assert_uint_eq(evlog_bytes(l), bytes);
    ck_assert_uint_eq(evlog_cut_bytes(l), 0);
    size_t c = w.n;
    begin(&w, 4, 0x4000);
    change(&w, SINK_INSERT, r1, 0x4000, 0, NULL, (sink_value[]){T("k4"), N});
    commit(&w, 4, 0x4000);
    append_all(l, &w, c, w.n);
    evlog_close(l);                               /* written, not synced */

    l = open_ok(path, 0);
    ck_assert_uint_eq(evlog_start(l), 0x500);
    ck_assert_uint_eq(evlog_last_end(l), 0x4028);
    ck_assert_uint_eq(evlog_durable(l), 0x4028);
    evlog_close(l);

    evlist got = {0};
    read_expect(path, &w, w.n, 0, &got);
    /* The relation record was not written again after the reopen. */
    ck_assert_ptr_eq(got.ev[1]->rel, got.ev[c + 1]->rel);
    evlist_free(&got);
    evlist_free(&w);
    sink_rel_unref(r1);
}
END_TEST

/*
 * Hundreds of relations (and versions): each record written once per
 * file, also across a reopen and after a rollback dropped some.
 */
START_TEST(test_many_relations)
{
    const char *path = path_of("manyrels");
    enum { NREL = 300 };
    sink_rel *rels[NREL];
    for (int i = 0; i < NREL; i++)
        rels[i] = mkrel(20000 + (uint32_t)i / 2, (uint64_t)i % 2 + 1,
                        "s", "t", 1);
    evlist w = {0}, gone = {0};
    begin(&w, 1, 0x100);
    for (int i = 0; i < NREL / 2; i++)
        change(&w, SINK_INSERT, rels[i], 0x100, 0, NULL, (sink_value[]){N});
    commit(&w, 1, 0x100);
    begin(&gone, 2, 0x200);
    for (int i = NREL / 2; i < NREL; i++)
        change(&gone, SINK_INSERT, rels[i], 0x200, 0, NULL, (sink_value[]){N});
    add(&gone, sink_event_txn(SINK_ROLLBACK, 0, 0, 0, 0));
    evlog *l = open_ok(path, 0);
    append_all(l, &w, 0, w.n);
    append_all(l, &gone, 0, gone.n);
    size_t c = w.n;
    begin(&w, 3, 0x300);
    for (int i = NREL - 1; i >= NREL / 3; i--)
        change(&w, SINK_INSERT, rels[i], 0x300, 0, NULL, (sink_value[]){U});
    commit(&w, 3, 0x300);
    append_all(l, &w, c, w.n);
    evlog_close(l);

    l = open_ok(path, 0);
    size_t d = w.n;
    begin(&w, 4, 0x400);
    for (int i = 0; i < NREL; i++)
        change(&w, SINK_DELETE, rels[i], 0x400, 'K', (sink_value[]){T("k")},
               NULL);
    commit(&w, 4, 0x400);
    append_all(l, &w, d, w.n);
    evlog_close(l);

    evlist got = {0};
    read_expect(path, &w, w.n, 0, &got);
    /* One snapshot per (oid, version), whichever transaction used it. */
    for (int i = 0; i < NREL; i++) {
        const sink_rel *first = i < NREL / 2 ? got.ev[1 + i]->rel
                                             : got.ev[c + NREL - i]->rel;
        ck_assert_ptr_eq(got.ev[d + 1 + i]->rel, first);
        ck_assert_uint_eq(first->version, (uint64_t)i % 2 + 1);
    }
    evlist_free(&got);
    evlist_free(&w);
    evlist_free(&gone);
    for (int i = 0; i < NREL; i++)
        sink_rel_unref(rels[i]);
}
END_TEST

/* ---- damage ---------------------------------------------------------------- */

/*
 * Three transactions; the first two synced, the third (a new relation) not.
 * The second and third carry logical messages, so damage reaches 'M'
 * records in both parts.
 */
typedef struct damaged {
    evlist w;
    size_t txn3;             /* index of its BEGIN in w */
    uint64_t s2, s3;         /* file offsets: its start and the end */
    uint8_t *bytes;
    size_t len;
    sink_rel *r1, *r2;
} damaged;

static void damaged_build(damaged *d, const char *path, bool sync_all,
                          const char *v3)
{
    *d = (damaged){0};
    d->r1 = mkrel(16384, 1, "public", "a", 2);
    d->r2 = mkrel(16385, 3, "app", "b", 3);
    set_col(d->r2, 2, "c2", "\"app\".\"t\"");
    evlist *w = &d->w;
    begin(w, 1, 0x100);
    change(w, SINK_INSERT, d->r1, 0x100, 0, NULL, (sink_value[]){T("1"), T("one")});
    change(w, SINK_UPDATE, d->r1, 0x100, 'O', (sink_value[]){T("1"), T("one")},
           (sink_value[]){T("1"), U});
    commit(w, 1, 0x100);
    begin(w, 2, 0x200);
    add(w, sink_event_truncate(0x200, 1, &d->r1, 1));
    message(w, 2, 0x200, 0x1F0, true, "outbox", "a\0b\xff", 4);
    commit(w, 2, 0x200);
    d->txn3 = w->n;
    begin(w, 3, 0x300);
    change(w, SINK_INSERT, d->r2, 0x300, 0, NULL, (sink_value[]){T(v3), N, T("")});
    message(w, 3, 0x300, 0x2F0, true, "outbox.x", "\0\0", 2);
    message(w, 3, 0x300, 0x2F8, true, "e", "", 0);
    change(w, SINK_DELETE, d->r1, 0x300, 'K', (sink_value[]){T("1"), N}, NULL);
    commit(w, 3, 0x300);

    unlink(path);
    evlog *l = open_ok(path, 0x50);
    append_all(l, w, 0, d->txn3);
    ck_assert(evlog_sync(l));
    d->s2 = evlog_bytes(l);
    append_all(l, w, d->txn3, w->n);
    d->s3 = evlog_bytes(l);
    if (sync_all)
        ck_assert(evlog_sync(l));
    evlog_close(l);
    d->bytes = slurp(path, &d->len);
    ck_assert_uint_eq(d->len, d->s3);
}

static void damaged_free(damaged *d)
{
    evlist_free(&d->w);
    free(d->bytes);
    sink_rel_unref(d->r1);
    sink_rel_unref(d->r2);
}

/* A reopen cut back to the first two; appending the third again works. */
static void expect_cut_to_two(damaged *d, const char *path, uint64_t had)
{
    char err[512];
    evlog *l = evlog_open(path, 0, err, sizeof err);
    ck_assert_msg(l != NULL, "file of %" PRIu64 " bytes: %s", had, err);
    ck_assert_uint_eq(evlog_start(l), 0x50);
    ck_assert_uint_eq(evlog_last_end(l), 0x228);
    ck_assert_uint_eq(evlog_durable(l), 0x228);
    ck_assert_uint_eq(evlog_bytes(l), d->s2);
    ck_assert_uint_eq(evlog_cut_bytes(l), had - d->s2);
    ck_assert_int_eq(file_size(path), (off_t)d->s2);
    append_all(l, &d->w, d->txn3, d->w.n);
    evlog_close(l);
    read_expect(path, &d->w, d->w.n, 0, NULL);
}

START_TEST(test_torn_tail)
{
    const char *path = path_of("torn");
    damaged d;
    damaged_build(&d, path, false, "2");
    for (uint64_t cut = d.s2; cut < d.s3; cut++) {
        spill(path, d.bytes, (size_t)cut);
        /* A reader sees the first two and no more, before and after. */
        read_expect(path, &d.w, d.txn3, 0, NULL);
        expect_cut_to_two(&d, path, cut);
    }
    /* Inside the synced part: an error, nothing cut. */
    char err[512];
    for (uint64_t cut = d.s2 - 7; cut < d.s2; cut++) {
        spill(path, d.bytes, (size_t)cut);
        ck_assert_ptr_null(evlog_open(path, 0, err, sizeof err));
        ck_assert_ptr_nonnull(strstr(err, "damaged at offset"));
        ck_assert_int_eq(file_size(path), (off_t)cut);
        read_expect(path, &d.w, 4, -1, NULL);     /* the first one, then */
    }
    damaged_free(&d);
}
END_TEST

START_TEST(test_flip_tail)
{
    const char *path = path_of("fliptail");
    damaged d;
    damaged_build(&d, path, false, "2");
    static const uint8_t masks[] = {0xff, 0x01, 0x80};
    for (uint64_t at = d.s2; at < d.s3; at++) {
        for (size_t m = 0; m < sizeof masks; m++) {
            d.bytes[at] ^= masks[m];
            spill(path, d.bytes, d.len);
            d.bytes[at] ^= masks[m];
            /* Before the repair, a reader stops after the first two. */
            char err[512];
            evlog_reader *r = evlog_reader_open(path, err, sizeof err);
            ck_assert_ptr_nonnull(r);
            sink_event *ev;
            for (size_t i = 0; i < d.txn3; i++) {
                ck_assert_int_eq(evlog_reader_next(r, &ev, err, sizeof err), 1);
                check_event(d.w.ev[i], ev, i);
                sink_event_free(ev);
            }
            ck_assert_int_le(evlog_reader_next(r, &ev, err, sizeof err), 0);
            evlog_reader_close(r);
            expect_cut_to_two(&d, path, d.s3);
        }
    }
    damaged_free(&d);
}
END_TEST

/* Damage anywhere in a synced file: refused by open, an error to readers. */
START_TEST(test_flip_synced)
{
    const char *path = path_of("flipsynced");
    damaged d;
    damaged_build(&d, path, true, "2");
    static const uint8_t masks[] = {0xff, 0x01, 0x10};
    char err[512];
    for (size_t at = 0; at < d.len; at++) {
        for (size_t m = 0; m < sizeof masks; m++) {
            d.bytes[at] ^= masks[m];
            spill(path, d.bytes, d.len);
            d.bytes[at] ^= masks[m];
            ck_assert_msg(evlog_open(path, 0, err, sizeof err) == NULL,
                          "flip at %zu opened", at);
            ck_assert_int_eq(file_size(path), (off_t)d.len);
            evlog_reader *r = evlog_reader_open(path, err, sizeof err);
            if (at < 24) {                        /* the fixed header */
                ck_assert_ptr_null(r);
                continue;
            }
            ck_assert_ptr_nonnull(r);
            size_t i = 0;
            int rc;
            sink_event *ev;
            while ((rc = evlog_reader_next(r, &ev, err, sizeof err)) == 1) {
                ck_assert_uint_lt(i, d.w.n);
                check_event(d.w.ev[i], ev, i);
                sink_event_free(ev);
                i++;
            }
            evlog_reader_close(r);
            if (at >= HDR_SIZE) {
                ck_assert_msg(rc == -1, "flip at %zu: %d after %zu", at, rc, i);
                ck_assert_ptr_nonnull(strstr(err, "offset"));
            } else {      /* the synced mark: only needed at a short end */
                ck_assert_int_eq(rc, 0);
                ck_assert_uint_eq(i, d.w.n);
            }
        }
    }
    damaged_free(&d);
}
END_TEST

/*
 * Every record intact but the last transaction pieced together from two
 * writes (as pages of a rolled-back and rewritten tail can come back
 * after a crash): its COMMIT does not match; cut when unsynced, an error
 * when synced.
 */
START_TEST(test_spliced)
{
    char a_path[512];
    snprintf(a_path, sizeof a_path, "%s", path_of("spliceA"));
    const char *b_path = path_of("spliceB");
    for (int synced = 0; synced <= 1; synced++) {
        damaged a, b;
        damaged_build(&b, b_path, synced, "3");
        damaged_build(&a, a_path, synced, "2");
        ck_assert_uint_eq(a.len, b.len);
        size_t commit_len = 4 + 1 + 32 + 4;
        size_t differ = 0;
        for (size_t i = a.s2; i < a.s3 - commit_len; i++) {
            differ += a.bytes[i] != b.bytes[i];
            a.bytes[i] = b.bytes[i];
        }
        ck_assert_uint_gt(differ, 1);
        spill(a_path, a.bytes, a.len);
        read_expect(a_path, &a.w, a.txn3, -1, NULL);
        if (synced) {
            char err[512];
            ck_assert_ptr_null(evlog_open(a_path, 0, err, sizeof err));
            ck_assert_ptr_nonnull(strstr(err, "do not match its COMMIT"));
        } else {
            expect_cut_to_two(&a, a_path, a.s3);
        }
        damaged_free(&a);
        damaged_free(&b);
    }
}
END_TEST

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* The offset of the first record of this type. */
static size_t find_record(const uint8_t *b, size_t len, uint8_t type)
{
    for (size_t off = HDR_SIZE; off + 5 <= len; off += 8 + be32(b + off))
        if (b[off + 4] == type)
            return off;
    ck_abort_msg("no '%c' record", type);
    return 0;
}

/*
 * Recomputes every record's CRC and every COMMIT's chain (the format at
 * the top of evlog.c), so edits made inside a record pass the framing
 * checks and only the reader's own checks of its contents remain.
 */
static void reseal(uint8_t *b, size_t len)
{
    uint32_t chain = 0;
    for (size_t off = HDR_SIZE; off + 5 <= len;) {
        uint32_t rlen = be32(b + off);
        ck_assert_uint_le(off + 8 + rlen, len);
        if (b[off + 4] == 'B')
            chain = 0;
        if (b[off + 4] == 'C')
            put_be32(b + off + 4 + rlen - 4, chain);
        put_be32(b + off + 4 + rlen, evlog_crc32c(0, b + off + 4, rlen));
        uint8_t lc[8];
        memcpy(lc, b + off, 4);
        memcpy(lc + 4, b + off + 4 + rlen, 4);
        chain = evlog_crc32c(chain, lc, 8);
        off += 8 + rlen;
    }
}

/*
 * An 'M' record rewritten with valid checksums but contents no writer
 * makes: the reader refuses it rather than make up a message. Each edit
 * keeps the record's length. Payload: xid 0, commit_lsn 4, msg_lsn 12,
 * transactional 20, prefix length 21, prefix 25 ("outbox"), content
 * length 31, content 35 ("a\0b").
 */
START_TEST(test_message_forged)
{
    const char *path = path_of("forged");
    sink_rel *r1 = mkrel(16384, 1, "public", "a", 1);
    evlist w = {0};
    begin(&w, 9, 0x900);
    change(&w, SINK_INSERT, r1, 0x900, 0, NULL, (sink_value[]){T("1")});
    message(&w, 9, 0x900, 0x8F0, true, "outbox", "a\0b", 3);
    commit(&w, 9, 0x900);
    evlog *l = open_ok(path, 0);
    append_all(l, &w, 0, w.n);
    ck_assert(evlog_sync(l));
    evlog_close(l);
    size_t len;
    uint8_t *clean = slurp(path, &len);
    size_t p = find_record(clean, len, 'M') + 5;
    ck_assert_uint_eq(be32(clean + p + 31), 3);

    static const struct {
        size_t at;           /* in the payload */
        uint8_t value;
        bool ok;             /* read back (as a message, non-transactional) */
    } edits[] = {
        {20, 1, true},       /* as written: the forging itself is sound */
        {20, 0, true},
        {20, 2, false},
        {20, 0xff, false},
        {27, 0, false},      /* a NUL in the prefix */
        {24, 7, false},      /* the prefix runs into the content length */
        {24, 5, false},
        {34, 4, false},      /* the content runs past the record */
        {34, 2, false},      /* a byte left over after it */
        {31, 0x80, false},
    };
    uint8_t *b = malloc(len);
    ck_assert_ptr_nonnull(b);
    for (size_t e = 0; e < sizeof edits / sizeof edits[0]; e++) {
        memcpy(b, clean, len);
        b[p + edits[e].at] = edits[e].value;
        reseal(b, len);
        spill(path, b, len);
        if (edits[e].ok) {
            w.ev[2]->transactional = edits[e].value;
            read_expect(path, &w, w.n, 0, NULL);
        } else {
            read_expect(path, &w, 2, -1, NULL);
        }
    }
    free(b);
    free(clean);
    evlist_free(&w);
    sink_rel_unref(r1);
}
END_TEST

/* ---- readers and a writer ---------------------------------------------- */

static void expect_next(evlog_reader *r, const sink_event *want)
{
    char err[512];
    sink_event *ev = NULL;
    int rc = evlog_reader_next(r, &ev, err, sizeof err);
    ck_assert_msg(rc == (want ? 1 : 0), "%d, want %d (%s)", rc, want ? 1 : 0,
                  rc < 0 ? err : "");
    if (want)
        check_event(want, ev, 0);
    sink_event_free(ev);
}

START_TEST(test_reader_follows)
{
    const char *path = path_of("follows");
    char err[512];
    sink_rel *r1 = mkrel(16384, 1, "public", "a", 2);
    evlist w = {0};
    for (uint32_t x = 1; x <= 7; x++) {
        begin(&w, x, 0x1000 * x);
        change(&w, SINK_INSERT, r1, 0x1000 * x, 0, NULL,
               (sink_value[]){T(x == 7 ? "seven" : "other"), N});
        change(&w, SINK_INSERT, r1, 0x1000 * x, 0, NULL,
               (sink_value[]){T("second"), N});
        commit(&w, x, 0x1000 * x);
    }
    sink_event *rb = sink_event_txn(SINK_ROLLBACK, 0, 0, 0, 0);
    evlog *l = open_ok(path, 0);
    evlog_reader *r = evlog_reader_open(path, err, sizeof err);
    ck_assert_ptr_nonnull(r);
    expect_next(r, NULL);

    append_all(l, &w, 0, 4);                  /* txn 1, in the buffer */
    expect_next(r, NULL);
    ck_assert(evlog_sync(l));
    for (size_t i = 0; i < 4; i++)
        expect_next(r, w.ev[i]);
    expect_next(r, NULL);

    append_all(l, &w, 4, 7);                  /* txn 2 without COMMIT */
    ck_assert(evlog_sync(l));
    expect_next(r, NULL);
    append_all(l, &w, 7, 8);
    expect_next(r, NULL);                     /* COMMIT still buffered */
    ck_assert(evlog_sync(l));
    for (size_t i = 4; i < 8; i++)
        expect_next(r, w.ev[i]);
    expect_next(r, NULL);

    /* Txn 3 half on disk, rolled back; txn 4 written where it was. */
    append_all(l, &w, 8, 10);
    ck_assert(evlog_sync(l));
    expect_next(r, NULL);
    ck_assert(evlog_append(l, rb));
    append_all(l, &w, 12, 16);
    ck_assert(evlog_sync(l));
    for (size_t i = 12; i < 16; i++)
        expect_next(r, w.ev[i]);
    expect_next(r, NULL);

    /*
     * The reader holds txn 5 and the first half of txn 6 in its buffer
     * when txn 6 is rolled back and txn 7, the same size, replaces it: it
     * must notice and read txn 7 afresh.
     */
    append_all(l, &w, 16, 20);
    append_all(l, &w, 20, 22);
    ck_assert(evlog_sync(l));
    expect_next(r, w.ev[16]);
    ck_assert(evlog_append(l, rb));
    append_all(l, &w, 24, 28);
    ck_assert(evlog_sync(l));
    for (size_t i = 17; i < 20; i++)
        expect_next(r, w.ev[i]);
    for (size_t i = 24; i < 28; i++)
        expect_next(r, w.ev[i]);
    expect_next(r, NULL);
    evlog_reader_close(r);
    evlog_close(l);
    sink_event_free(rb);
    evlist_free(&w);
    sink_rel_unref(r1);
}
END_TEST

/* ---- many --------------------------------------------------------------- */

#define MANY 100000

START_TEST(test_many)
{
    const char *path = path_of("many");
    char err[512];
    sink_rel *r1 = mkrel(16384, 1, "public", "a", 3);
    evlog *l = open_ok(path, 0);
    char num[16];
    for (uint32_t x = 0; x < MANY; x++) {
        lsn_t lsn = 0x10000 + (lsn_t)x * 0x100;
        snprintf(num, sizeof num, "%u", x);
        sink_event *ev[3] = {
            sink_event_txn(SINK_BEGIN, x, lsn, 0, x),
            sink_event_change_values(SINK_INSERT, r1, lsn, 0, NULL,
                                     (sink_value[]){T(num), N, T("v")}),
            sink_event_txn(SINK_COMMIT, x, lsn, lsn + 0x28, x),
        };
        for (int i = 0; i < 3; i++) {
            ck_assert(evlog_append(l, ev[i]));
            sink_event_free(ev[i]);
        }
    }
    lsn_t last = 0x10000 + (lsn_t)(MANY - 1) * 0x100 + 0x28;
    ck_assert_uint_eq(evlog_last_end(l), last);
    ck_assert_uint_eq(evlog_durable(l), 0);      /* no fsync on its own */
    ck_assert(evlog_sync(l));
    ck_assert_uint_eq(evlog_durable(l), last);

    evlog_reader *r = evlog_reader_open(path, err, sizeof err);
    ck_assert_ptr_nonnull(r);
    sink_event *ev;
    for (uint32_t x = 0; x < MANY; x++) {
        lsn_t lsn = 0x10000 + (lsn_t)x * 0x100;
        snprintf(num, sizeof num, "%u", x);
        ck_assert_int_eq(evlog_reader_next(r, &ev, err, sizeof err), 1);
        ck_assert(ev->op == SINK_BEGIN && ev->xid == x && ev->commit_lsn == lsn);
        sink_event_free(ev);
        ck_assert_int_eq(evlog_reader_next(r, &ev, err, sizeof err), 1);
        ck_assert(ev->op == SINK_INSERT && ev->rel->oid == 16384);
        ck_assert_str_eq(ev->new_vals[0].data, num);
        sink_event_free(ev);
        ck_assert_int_eq(evlog_reader_next(r, &ev, err, sizeof err), 1);
        ck_assert(ev->op == SINK_COMMIT && ev->end_lsn == lsn + 0x28);
        sink_event_free(ev);
    }
    ck_assert_int_eq(evlog_reader_next(r, &ev, err, sizeof err), 0);
    evlog_reader_close(r);
    evlog_close(l);
    sink_rel_unref(r1);
}
END_TEST

/* ---- files -------------------------------------------------------------- */

START_TEST(test_remove)
{
    char path[512];
    snprintf(path, sizeof path, "%s", path_of("removed"));
    evlist w = {0};
    begin(&w, 1, 0x100);
    commit(&w, 1, 0x100);
    evlog *l = open_ok(path, 0);
    append_all(l, &w, 0, w.n);
    ck_assert(evlog_sync(l));
    ck_assert(access(path, F_OK) == 0);
    ck_assert(evlog_remove(l));
    ck_assert(access(path, F_OK) != 0 && errno == ENOENT);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.new", path);
    ck_assert(access(tmp, F_OK) != 0);
    evlist_free(&w);
}
END_TEST

START_TEST(test_open_errors)
{
    char err[512];
    char path[512];
    snprintf(path, sizeof path, "%s", path_of("no/such/dir/log"));
    ck_assert_ptr_null(evlog_open(path, 0, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, path));
    ck_assert_ptr_nonnull(strstr(err, "No such file"));
    ck_assert_ptr_null(evlog_reader_open(path, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, path));

    snprintf(path, sizeof path, "%s", path_of("garbage"));
    uint8_t junk[64];
    memset(junk, 'x', sizeof junk);
    spill(path, junk, sizeof junk);
    ck_assert_ptr_null(evlog_open(path, 0, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "not a cleave event log"));
    ck_assert_ptr_null(evlog_reader_open(path, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "not a cleave event log"));

    spill(path, (const uint8_t *)"CLEAVEV1", 8);
    ck_assert_ptr_null(evlog_open(path, 0, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "too short"));
    ck_assert_ptr_null(evlog_reader_open(path, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "too short"));
}
END_TEST

static Suite *evlog_suite(void)
{
    Suite *s = suite_create("evlog");
    TCase *tc = tcase_create("evlog");
    tcase_add_unchecked_fixture(tc, dir_setup, dir_teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_crc32c);
    tcase_add_test(tc, test_roundtrip);
    tcase_add_test(tc, test_messages);
    tcase_add_test(tc, test_rollback);
    tcase_add_test(tc, test_reopen);
    tcase_add_test(tc, test_many_relations);
    tcase_add_test(tc, test_torn_tail);
    tcase_add_test(tc, test_flip_tail);
    tcase_add_test(tc, test_flip_synced);
    tcase_add_test(tc, test_spliced);
    tcase_add_test(tc, test_message_forged);
    tcase_add_test(tc, test_reader_follows);
    tcase_add_test(tc, test_many);
    tcase_add_test(tc, test_remove);
    tcase_add_test(tc, test_open_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    log_set_level(LOG_LEVEL_ERROR);      /* the tail cuts are expected */
    SRunner *sr = srunner_create(evlog_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
