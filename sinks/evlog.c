/*
 * evlog: sink events on disk; see evlog.h.
 *
 * File layout. Integers are big-endian, as on PostgreSQL's wire.
 *
 *   header, 40 bytes
 *      0  "CLEAVEV1"
 *      8  u32 format version (1)
 *     12  u64 start LSN: the log begins after it
 *     20  u32 CRC-32C of bytes 0..19            (never rewritten)
 *     24  u64 synced: the offset up to which the log is known fsync'd,
 *             always the end of a transaction
 *     32  u32 CRC-32C of bytes 24..31
 *     36  u32 zero
 *   then records
 *         u32 length of type + payload
 *         u8  type
 *             payload
 *         u32 CRC-32C of type + payload
 *
 * Records, in transaction order: B, then any of R I U D T M, then C.
 *   'B' BEGIN     u32 xid, u64 commit_lsn, u64 end_lsn, i64 commit_time
 *   'C' COMMIT    the same, then u32 chain: the CRC-32C, over every
 *                 record of the transaction before this one, of its
 *                 length and CRC fields (8 bytes each, as stored)
 *   'R' relation  u32 oid, u64 version, u8 replident, u16 ncols,
 *                 str schema, str name, then per column: u8 flags (1 key,
 *                 2 a type name follows, 4 primary key), u32 type oid, i32 typmod,
 *                 str name, [str type name]
 *   'I' 'U' 'D'   u32 xid, u64 commit_lsn, u32 oid, u64 version,
 *                 u8 old_kind, u8 has (1 old values, 2 new values,
 *                 4 the change's LSN), u16 ncols, [u64 LSN], then the
 *                 old values, then the new ones:
 *                 u8 kind ('n' null, 'u' unchanged TOAST, 't' text,
 *                 'b' binary), u32 len (0 unless 't' or 'b'), len bytes
 *   'T' TRUNCATE  u32 xid, u64 commit_lsn, u8 options (0x80: the
 *                 TRUNCATE's LSN follows), [u64 LSN], u32 nrels,
 *                 nrels times (u32 oid, u64 version)
 *   'M' message   u32 xid, u64 commit_lsn, u64 message LSN,
 *                 u8 transactional, str prefix, str content
 *   str is u32 len and the bytes, no NUL.
 * The LSN flags came later: a change or TRUNCATE without one (0) is
 * written as before them, so older files read the same.
 * A relation record precedes, inside the same transaction, the first
 * change or TRUNCATE in the file that names its (oid, version).
 *
 * The synced mark is rewritten (not fsync'd) after each fsync, so the
 * header on disk never claims more than was fsync'd. evlog_open cuts
 * damage beyond the mark (a torn tail: the source resends it) and refuses
 * damage before it. The chain in COMMIT makes a reader that raced a
 * writer's rollback notice a transaction pieced together from two writes.
 */
#include "sinks/evlog.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"

#define EVLOG_MAGIC "CLEAVEV1"
#define EVLOG_VERSION 1
#define HDR_FIXED 24
#define HDR_SIZE 40
#define WBUF_SIZE (64 * 1024)
#define RBUF_SIZE (64 * 1024)
#define RBUF_KEEP (1024 * 1024)     /* a bigger read buffer shrinks back */
#define MAX_RECORD ((uint32_t)INT32_MAX)   /* type + payload */
#define TXN_LEN 28                  /* BEGIN's payload; COMMIT's is 4 more */
#define CHANGE_LEN 28               /* a change's payload before values */
#define TRUNCATE_LEN 17
#define MESSAGE_LEN 21              /* a message's payload before its strings */
#define HAS_LSN 4                   /* a change's `has` flag */
#define TRUNCATE_HAS_LSN 0x80       /* a TRUNCATE's options flag */

/* ---- CRC-32C, slicing by 8 -------------------------------------------- */

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^
                              crc_table[0][crc_table[t - 1][i] & 0xff];
}

uint32_t evlog_crc32c(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&crc_once, crc_init);
    const uint8_t *p = data;
    crc = ~crc;
    for (; len >= 8; p += 8, len -= 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 |
                             (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
              crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
              crc_table[3][p[4]] ^ crc_table[2][p[5]] ^
              crc_table[1][p[6]] ^ crc_table[0][p[7]];
    }
    while (len--)
        crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xff];
    return ~crc;
}

/* ---- bytes -------------------------------------------------------------- */

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    put_u16(p, (uint16_t)(v >> 16));
    put_u16(p + 2, (uint16_t)v);
}

static void put_u64(uint8_t *p, uint64_t v)
{
    put_u32(p, (uint32_t)(v >> 32));
    put_u32(p + 4, (uint32_t)v);
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)get_u16(p) << 16 | get_u16(p + 2);
}

static uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) << 32 | get_u32(p + 4);
}

/* A payload being read: every get checks the length; errors stick. */
typedef struct cur {
    const uint8_t *p;
    size_t left;
    bool bad;                /* ran past the end or a malformed field */
    bool oom;
} cur;

static const uint8_t *cur_bytes(cur *c, size_t n)
{
    if (c->bad || n > c->left) {
        c->bad = true;
        return NULL;
    }
    const uint8_t *p = c->p;
    c->p += n;
    c->left -= n;
    return p;
}

static uint8_t cur_u8(cur *c)
{
    const uint8_t *p = cur_bytes(c, 1);
    return p ? p[0] : 0;
}

static uint16_t cur_u16(cur *c)
{
    const uint8_t *p = cur_bytes(c, 2);
    return p ? get_u16(p) : 0;
}

static uint32_t cur_u32(cur *c)
{
    const uint8_t *p = cur_bytes(c, 4);
    return p ? get_u32(p) : 0;
}

static uint64_t cur_u64(cur *c)
{
    const uint8_t *p = cur_bytes(c, 8);
    return p ? get_u64(p) : 0;
}

/* A str as a new C string; NULL when bad (or out of memory: c->oom). */
static char *cur_str(cur *c)
{
    uint32_t len = cur_u32(c);
    const uint8_t *p = cur_bytes(c, len);
    if (!p)
        return NULL;
    if (memchr(p, '\0', len)) {
        c->bad = true;
        return NULL;
    }
    char *s = malloc((size_t)len + 1);
    if (!s) {
        c->oom = c->bad = true;
        return NULL;
    }
    memcpy(s, p, len);
    s[len] = '\0';
    return s;
}

static bool pread_all(int fd, void *buf, size_t n, uint64_t off)
{
    for (size_t done = 0; done < n;) {
        ssize_t got = pread(fd, (char *)buf + done, n - done,
                            (off_t)(off + done));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            if (got == 0)
                errno = ENODATA;
            return false;
        }
        done += (size_t)got;
    }
    return true;
}

static bool pwrite_all(int fd, const void *buf, size_t n, uint64_t off)
{
    for (size_t done = 0; done < n;) {
        ssize_t put = pwrite(fd, (const char *)buf + done, n - done,
                             (off_t)(off + done));
        if (put < 0 && errno == EINTR)
            continue;
        if (put < 0)
            return false;
        done += (size_t)put;
    }
    return true;
}

/* fsyncs the directory holding path, so a create or unlink sticks. */
static bool fsync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t len = slash == path ? 1 : (size_t)(slash - path);
    char *dir = slash ? strndup(path, len) : strdup(".");
    if (!dir) {
        errno = ENOMEM;
        return false;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0)
        return false;
    bool ok = fsync(fd) == 0;
    int e = errno;
    close(fd);
    errno = e;
    return ok;
}

/* ---- the header ---------------------------------------------------------- */

static void hdr_fixed(uint8_t h[HDR_FIXED], lsn_t start)
{
    memcpy(h, EVLOG_MAGIC, 8);
    put_u32(h + 8, EVLOG_VERSION);
    put_u64(h + 12, start);
    put_u32(h + 20, evlog_crc32c(0, h, 20));
}

/* The synced mark, bytes 24..39. */
static void hdr_mark(uint8_t m[HDR_SIZE - HDR_FIXED], uint64_t synced)
{
    put_u64(m, synced);
    put_u32(m + 8, evlog_crc32c(0, m, 8));
    put_u32(m + 12, 0);
}

static const char *hdr_check_fixed(const uint8_t *h, lsn_t *start)
{
    if (memcmp(h, EVLOG_MAGIC, 8) != 0)
        return "not a cleave event log (bad magic)";
    if (get_u32(h + 20) != evlog_crc32c(0, h, 20))
        return "bad header checksum";
    if (get_u32(h + 8) != EVLOG_VERSION)
        return "unsupported format version";
    *start = get_u64(h + 12);
    return NULL;
}

static bool hdr_check_mark(const uint8_t *m, uint64_t *synced)
{
    if (get_u32(m + 8) != evlog_crc32c(0, m, 8) || get_u64(m) < HDR_SIZE ||
        get_u32(m + 12) != 0)
        return false;
    *synced = get_u64(m);
    return true;
}

/* ---- relations by (oid, version) -------------------------------------- */

/*
 * Keyed by oid and version, not by pointer: a freed snapshot's address
 * can come back for another. The writer notes where each relation record
 * starts (to forget those a rollback cuts); the reader keeps a reference.
 */
typedef struct relkey {
    uint32_t oid;
    uint64_t version;
    uint64_t off;
    sink_rel *rel;
} relkey;

typedef struct relset {
    relkey *v;               /* in file order */
    size_t n, cap;
    uint32_t *slot;          /* 1 + index into v; 0 is empty */
    size_t nslot;            /* a power of two, more than twice n */
} relset;

static size_t rel_hash(uint32_t oid, uint64_t version)
{
    uint64_t h = ((uint64_t)oid << 32 ^ version) * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 29);
}

static relkey *relset_find(const relset *s, uint32_t oid, uint64_t version)
{
    size_t mask = s->nslot - 1;
    for (size_t i = s->nslot ? rel_hash(oid, version) & mask : 0; s->nslot;
         i = (i + 1) & mask) {
        uint32_t at = s->slot[i];
        if (at == 0)
            return NULL;
        relkey *k = &s->v[at - 1];
        if (k->oid == oid && k->version == version)
            return k;
    }
    return NULL;
}

static void relset_slot(relset *s, size_t j)
{
    size_t mask = s->nslot - 1;
    size_t i = rel_hash(s->v[j].oid, s->v[j].version) & mask;
    while (s->slot[i])
        i = (i + 1) & mask;
    s->slot[i] = (uint32_t)(j + 1);
}

static bool relset_reindex(relset *s, size_t nslot)
{
    if (nslot != s->nslot) {
        uint32_t *slot = calloc(nslot, sizeof *slot);
        if (!slot)
            return false;
        free(s->slot);
        s->slot = slot;
        s->nslot = nslot;
    } else {
        memset(s->slot, 0, nslot * sizeof *s->slot);
    }
    for (size_t j = 0; j < s->n; j++)
        relset_slot(s, j);
    return true;
}

static bool relset_add(relset *s, uint32_t oid, uint64_t version,
                       uint64_t off, sink_rel *rel)
{
    if (s->n == UINT32_MAX - 1)
        return false;
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 16;
        relkey *v = realloc(s->v, ncap * sizeof *v);
        if (!v)
            return false;
        s->v = v;
        s->cap = ncap;
    }
    if ((s->n + 1) * 2 >= s->nslot &&
        !relset_reindex(s, s->nslot ? s->nslot * 2 : 64))
        return false;
    s->v[s->n] = (relkey){oid, version, off, rel};
    relset_slot(s, s->n++);
    return true;
}

/* Forgets the relations whose records start at or after off. */
static void relset_cut(relset *s, uint64_t off)
{
    size_t n = s->n;
    while (s->n > 0 && s->v[s->n - 1].off >= off)
        s->n--;
    if (s->n != n)
        relset_reindex(s, s->nslot);   /* same size: cannot fail */
}

static void relset_free(relset *s)
{
    for (size_t i = 0; i < s->n; i++)
        sink_rel_unref(s->v[i].rel);
    free(s->v);
    free(s->slot);
    *s = (relset){0};
}

/* ---- reading records ---------------------------------------------------- */

/* A window on the file: bytes [base, base + len) are in buf. */
typedef struct rbuf {
    int fd;
    uint8_t *buf;
    size_t cap, len;
    uint64_t base;
} rbuf;

static bool rbuf_has(const rbuf *b, uint64_t off, size_t n)
{
    return off >= b->base && off - b->base <= b->len &&
           n <= b->len - (size_t)(off - b->base);
}

/* Reads at least [off, off + n), and more if it is there: 1, 0 at EOF, -1. */
static int rbuf_fill(rbuf *b, uint64_t off, size_t n)
{
    if (off >= b->base && off - b->base < b->len) {
        size_t skip = (size_t)(off - b->base);
        memmove(b->buf, b->buf + skip, b->len - skip);
        b->len -= skip;
    } else {
        b->len = 0;
    }
    b->base = off;
    size_t want = n > RBUF_SIZE ? n : RBUF_SIZE;
    if (b->cap < want || (b->cap > RBUF_KEEP && want < b->cap / 2 &&
                          b->len <= want)) {
        uint8_t *nb = realloc(b->buf, want);
        if (!nb) {
            errno = ENOMEM;
            return -1;
        }
        b->buf = nb;
        b->cap = want;
    }
    while (b->len < n) {
        ssize_t got = pread(b->fd, b->buf + b->len, b->cap - b->len,
                            (off_t)(b->base + b->len));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return got < 0 ? -1 : 0;
        b->len += (size_t)got;
    }
    return 1;
}

static int rbuf_need(rbuf *b, uint64_t off, size_t n, const uint8_t **p)
{
    if (!rbuf_has(b, off, n)) {
        int got = rbuf_fill(b, off, n);
        if (got <= 0)
            return got;
    }
    *p = b->buf + (off - b->base);
    return 1;
}

/* Forgets what was read: the file past the last COMMIT may have changed. */
static void rbuf_drop(rbuf *b)
{
    b->len = 0;
}

typedef struct rec {
    uint64_t off;            /* where it starts */
    uint64_t next;           /* where the next one starts */
    uint32_t len;            /* type + payload */
    uint8_t type;
    const uint8_t *payload;  /* in the rbuf, until its next read */
    size_t plen;
    uint32_t crc;
} rec;

enum { REC_IO = -2, REC_BAD = -1, REC_SHORT = 0, REC_OK = 1 };

/* The record at off; REC_SHORT when the file ends inside it. */
static int rec_read(rbuf *b, uint64_t off, rec *r, const char **why)
{
    const uint8_t *p;
    int got = rbuf_need(b, off, 4, &p);
    if (got <= 0)
        return got < 0 ? REC_IO : REC_SHORT;
    uint32_t len = get_u32(p);
    if (len < 1 || len > MAX_RECORD) {
        *why = "bad record length";
        return REC_BAD;
    }
    size_t total = (size_t)len + 8;
    if (!rbuf_has(b, off, total)) {
        /* Know the file holds it before making room for it. */
        struct stat st;
        if (fstat(b->fd, &st) != 0)
            return REC_IO;
        if ((uint64_t)st.st_size < off + total)
            return REC_SHORT;
    }
    got = rbuf_need(b, off, total, &p);
    if (got <= 0)
        return got < 0 ? REC_IO : REC_SHORT;
    r->off = off;
    r->next = off + total;
    r->len = len;
    r->type = p[4];
    r->payload = p + 5;
    r->plen = len - 1;
    r->crc = get_u32(p + 4 + len);
    if (evlog_crc32c(0, p + 4, len) != r->crc) {
        *why = "bad checksum";
        return REC_BAD;
    }
    return REC_OK;
}

static uint32_t chain_add(uint32_t chain, uint32_t len, uint32_t crc)
{
    uint8_t b[8];
    put_u32(b, len);
    put_u32(b + 4, crc);
    return evlog_crc32c(chain, b, 8);
}

/* One transaction's framing, checked without decoding its changes. */
typedef struct scan {
    rbuf *b;
    uint64_t off;            /* in: its BEGIN; out (SCAN_OK): after COMMIT */
    lsn_t end_lsn;           /* its COMMIT's */
    uint64_t bad_at;         /* otherwise: the record that is short or bad */
    const char *why;
    relset *rels;            /* when set: each relation record's key noted */
} scan;

enum { SCAN_IO = -2, SCAN_BAD = -1, SCAN_SHORT = 0, SCAN_OK = 1 };

static int scan_bad(scan *s, uint64_t at, const char *why)
{
    s->bad_at = at;
    s->why = why;
    return SCAN_BAD;
}

static bool scan_note_rel(scan *s, const rec *r)
{
    uint32_t oid = get_u32(r->payload);
    uint64_t version = get_u64(r->payload + 4);
    return !s->rels || relset_find(s->rels, oid, version) ||
           relset_add(s->rels, oid, version, r->off, NULL);
}

static int scan_txn(scan *s)
{
    uint32_t chain = 0;
    for (uint64_t off = s->off;;) {
        rec r;
        int got = rec_read(s->b, off, &r, &s->why);
        s->bad_at = off;
        if (got == REC_IO)
            s->why = strerror(errno);
        if (got != REC_OK)
            return got == REC_IO ? SCAN_IO : got == REC_BAD ? SCAN_BAD
                                                            : SCAN_SHORT;
        if ((off == s->off) != (r.type == 'B'))
            return scan_bad(s, off, off == s->off
                            ? "no BEGIN where a transaction starts"
                            : "BEGIN inside a transaction");
        switch (r.type) {
        case 'B':
            if (r.plen != TXN_LEN)
                return scan_bad(s, off, "bad BEGIN length");
            break;
        case 'R':
            if (r.plen < 12)
                return scan_bad(s, off, "short relation record");
            if (!scan_note_rel(s, &r)) {
                s->why = strerror(ENOMEM);
                return SCAN_IO;
            }
            break;
        case 'I':
        case 'U':
        case 'D':
        case 'T':
        case 'M':
            break;
        case 'C':
            if (r.plen != TXN_LEN + 4)
                return scan_bad(s, off, "bad COMMIT length");
            if (get_u32(r.payload + TXN_LEN) != chain)
                return scan_bad(s, off, "the transaction's records do not "
                                "match its COMMIT");
            s->end_lsn = get_u64(r.payload + 12);
            s->off = r.next;
            return SCAN_OK;
        default:
            return scan_bad(s, off, "unknown record type");
        }
        chain = chain_add(chain, r.len, r.crc);
        off = r.next;
    }
}

/* ---- the writer ---------------------------------------------------------- */

struct evlog {
    char *path;
    int fd;
    lsn_t start;
    lsn_t last_end;
    lsn_t durable;
    uint64_t written;        /* bytes in the file; the buffer comes after */
    uint8_t *buf;
    size_t buf_len;
    uint64_t committed;      /* offset after the last COMMIT */
    uint64_t synced;         /* the header's mark */
    uint64_t cut;            /* torn tail cut off by evlog_open */
    bool dirty;              /* written since the last fsync */
    bool in_txn;
    uint64_t txn_start;      /* its BEGIN */
    uint32_t chain;          /* over its records so far */
    uint32_t rec_crc;        /* the record being written */
    uint64_t rec_left;
    uint32_t rec_len;
    relset rels;             /* relation records in the file */
    bool broken;             /* an I/O error: unusable until reopened */
    int broken_errno;
    char error[512];
};

static uint64_t pos(const evlog *l)
{
    return l->written + l->buf_len;
}

static bool fail_io(evlog *l, const char *what)
{
    int e = errno ? errno : EIO;
    snprintf(l->error, sizeof l->error, "%s %s: %s", what, l->path,
             strerror(e));
    l->broken = true;
    l->broken_errno = e;
    errno = e;
    return false;
}

static bool misuse(evlog *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static bool misuse(evlog *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->error, sizeof l->error, fmt, ap);
    va_end(ap);
    errno = EINVAL;
    return false;
}

static bool flush_buf(evlog *l)
{
    if (l->broken || l->buf_len == 0)
        return !l->broken;
    if (!pwrite_all(l->fd, l->buf, l->buf_len, l->written))
        return fail_io(l, "cannot write");
    l->written += l->buf_len;
    l->buf_len = 0;
    l->dirty = true;
    return true;
}

/* Raw bytes out through the buffer; big ones go straight to the file. */
static void put(evlog *l, const void *p, size_t n)
{
    if (l->broken)
        return;
    if (l->buf_len + n > WBUF_SIZE) {
        if (!flush_buf(l))
            return;
        if (n >= WBUF_SIZE) {
            if (!pwrite_all(l->fd, p, n, l->written)) {
                fail_io(l, "cannot write");
                return;
            }
            l->written += n;
            l->dirty = true;
            return;
        }
    }
    memcpy(l->buf + l->buf_len, p, n);
    l->buf_len += n;
}

/* Payload bytes of the record being written. */
static void out(evlog *l, const void *p, size_t n)
{
    if (n > l->rec_left) {
        errno = EFAULT;
        fail_io(l, "internal error: record longer than sized, in");
        return;
    }
    l->rec_left -= n;
    l->rec_crc = evlog_crc32c(l->rec_crc, p, n);
    put(l, p, n);
}

static void out_u8(evlog *l, uint8_t v)
{
    out(l, &v, 1);
}

static void out_u16(evlog *l, uint16_t v)
{
    uint8_t b[2];
    put_u16(b, v);
    out(l, b, 2);
}

static void out_u32(evlog *l, uint32_t v)
{
    uint8_t b[4];
    put_u32(b, v);
    out(l, b, 4);
}

static void out_u64(evlog *l, uint64_t v)
{
    uint8_t b[8];
    put_u64(b, v);
    out(l, b, 8);
}

static void out_str(evlog *l, const char *s)
{
    size_t n = strlen(s);
    out_u32(l, (uint32_t)n);
    out(l, s, n);
}

/* Starts a record of `len` payload bytes (sized by the caller). */
static void rec_begin(evlog *l, uint8_t type, uint64_t len)
{
    uint8_t h[5];
    put_u32(h, (uint32_t)(len + 1));
    h[4] = type;
    put(l, h, 5);
    l->rec_len = (uint32_t)(len + 1);
    l->rec_crc = evlog_crc32c(0, &type, 1);
    l->rec_left = len;
}

static bool rec_end(evlog *l)
{
    if (!l->broken && l->rec_left != 0) {
        errno = EFAULT;
        fail_io(l, "internal error: record shorter than sized, in");
    }
    uint8_t t[4];
    put_u32(t, l->rec_crc);
    put(l, t, 4);
    l->chain = chain_add(l->chain, l->rec_len, l->rec_crc);
    return !l->broken;
}

static uint64_t str_size(const char *s)
{
    return 4 + (uint64_t)strlen(s);
}

/* A relation record's payload size; 0 when it cannot be written. */
static uint64_t rel_size(const sink_rel *rel)
{
    if (!rel->schema || !rel->name || (rel->ncols && !rel->cols))
        return 0;
    uint64_t n = 15 + str_size(rel->schema) + str_size(rel->name);
    for (uint16_t i = 0; i < rel->ncols; i++) {
        const struct sink_col *c = &rel->cols[i];
        if (!c->name)
            return 0;
        n += 9 + str_size(c->name);
        if (c->type_name)
            n += str_size(c->type_name);
    }
    return n < MAX_RECORD ? n : 0;
}

static void write_rel(evlog *l, const sink_rel *rel, uint64_t size)
{
    rec_begin(l, 'R', size);
    out_u32(l, rel->oid);
    out_u64(l, rel->version);
    out_u8(l, (uint8_t)rel->replident);
    out_u16(l, rel->ncols);
    out_str(l, rel->schema);
    out_str(l, rel->name);
    for (uint16_t i = 0; i < rel->ncols; i++) {
        const struct sink_col *c = &rel->cols[i];
        out_u8(l, (uint8_t)((c->key ? 1 : 0) | (c->type_name ? 2 : 0) |
                            (c->pk ? 4 : 0)));
        out_u32(l, c->type_oid);
        out_u32(l, (uint32_t)c->typmod);
        out_str(l, c->name);
        if (c->type_name)
            out_str(l, c->type_name);
    }
    rec_end(l);
}

/* Checks a relation can be written, before anything is. */
static bool check_rel(evlog *l, const sink_rel *rel)
{
    if (!rel)
        return misuse(l, "a change without a relation");
    if (relset_find(&l->rels, rel->oid, rel->version))
        return true;
    return rel_size(rel) > 0 ||
           misuse(l, "relation %u cannot be written (missing names or too big)",
                  rel->oid);
}

/* Writes rel's record unless the file has it already. */
static void need_rel(evlog *l, const sink_rel *rel)
{
    if (l->broken || relset_find(&l->rels, rel->oid, rel->version))
        return;
    uint64_t at = pos(l);
    write_rel(l, rel, rel_size(rel));
    if (!l->broken && !relset_add(&l->rels, rel->oid, rel->version, at, NULL)) {
        errno = ENOMEM;
        fail_io(l, "out of memory noting a relation of");
    }
}

/* Payload bytes of a row's values; false on a kind that cannot be kept. */
static bool values_size(const sink_value *v, uint16_t n, uint64_t *size)
{
    for (uint16_t i = 0; v && i < n; i++) {
        *size += 5;
        if ((v[i].kind == 't' || v[i].kind == 'b') &&
            (v[i].data || v[i].len == 0))
            *size += v[i].len;
        else if (v[i].kind != 'n' && v[i].kind != 'u')
            return false;
    }
    return true;
}

static void write_values(evlog *l, const sink_value *v, uint16_t n)
{
    for (uint16_t i = 0; v && i < n; i++) {
        bool text = v[i].kind == 't' || v[i].kind == 'b';
        out_u8(l, (uint8_t)v[i].kind);
        out_u32(l, text ? v[i].len : 0);
        if (text && v[i].len)
            out(l, v[i].data, v[i].len);
    }
}

static bool append_change(evlog *l, const sink_event *ev, uint8_t type)
{
    if (!check_rel(l, ev->rel))
        return false;
    uint16_t n = ev->rel->ncols;
    uint64_t size = CHANGE_LEN + (ev->lsn ? 8 : 0);
    if (!values_size(ev->old_vals, n, &size) ||
        !values_size(ev->new_vals, n, &size))
        return misuse(l, "a value of relation %u that cannot be kept "
                      "(text without data)", ev->rel->oid);
    if (size >= MAX_RECORD)
        return misuse(l, "a change of %" PRIu64 " bytes is too big", size);
    need_rel(l, ev->rel);
    rec_begin(l, type, size);
    out_u32(l, ev->xid);
    out_u64(l, ev->commit_lsn);
    out_u32(l, ev->rel->oid);
    out_u64(l, ev->rel->version);
    out_u8(l, (uint8_t)ev->old_kind);
    out_u8(l, (uint8_t)((ev->old_vals ? 1 : 0) | (ev->new_vals ? 2 : 0) |
                        (ev->lsn ? HAS_LSN : 0)));
    out_u16(l, n);
    if (ev->lsn)
        out_u64(l, ev->lsn);
    write_values(l, ev->old_vals, n);
    write_values(l, ev->new_vals, n);
    return rec_end(l);
}

static bool append_truncate(evlog *l, const sink_event *ev)
{
    if (ev->ntruncate && !ev->truncate_rels)
        return misuse(l, "a TRUNCATE without its relations");
    if (ev->truncate_options & TRUNCATE_HAS_LSN)
        return misuse(l, "TRUNCATE options 0x%x", ev->truncate_options);
    uint64_t size = TRUNCATE_LEN + (ev->lsn ? 8 : 0) +
                    12 * (uint64_t)ev->ntruncate;
    if (size >= MAX_RECORD)
        return misuse(l, "a TRUNCATE of %u relations is too big",
                      ev->ntruncate);
    for (uint32_t i = 0; i < ev->ntruncate; i++)
        if (!check_rel(l, ev->truncate_rels[i]))
            return false;
    for (uint32_t i = 0; i < ev->ntruncate; i++)
        need_rel(l, ev->truncate_rels[i]);
    rec_begin(l, 'T', size);
    out_u32(l, ev->xid);
    out_u64(l, ev->commit_lsn);
    out_u8(l, ev->truncate_options | (ev->lsn ? TRUNCATE_HAS_LSN : 0));
    if (ev->lsn)
        out_u64(l, ev->lsn);
    out_u32(l, ev->ntruncate);
    for (uint32_t i = 0; i < ev->ntruncate; i++) {
        out_u32(l, ev->truncate_rels[i]->oid);
        out_u64(l, ev->truncate_rels[i]->version);
    }
    return rec_end(l);
}

static bool append_message(evlog *l, const sink_event *ev)
{
    uint64_t size = MESSAGE_LEN + 8 + strlen(ev->prefix) +
                    (uint64_t)ev->content_len;
    if (size >= MAX_RECORD)
        return misuse(l, "a message of %" PRIu64 " bytes is too big", size);
    rec_begin(l, 'M', size);
    out_u32(l, ev->xid);
    out_u64(l, ev->commit_lsn);
    out_u64(l, ev->lsn);
    out_u8(l, ev->transactional);
    out_str(l, ev->prefix);
    out_u32(l, ev->content_len);
    if (ev->content_len)
        out(l, ev->content, ev->content_len);
    return rec_end(l);
}

/* BEGIN and COMMIT; COMMIT carries the chain of the records before it. */
static bool append_txn(evlog *l, const sink_event *ev, uint8_t type)
{
    rec_begin(l, type, type == 'C' ? TXN_LEN + 4 : TXN_LEN);
    out_u32(l, ev->xid);
    out_u64(l, ev->commit_lsn);
    out_u64(l, ev->end_lsn);
    out_u64(l, (uint64_t)ev->commit_time);
    if (type == 'C')
        out_u32(l, l->chain);
    return rec_end(l);
}

/* Drops the unfinished transaction, from the buffer or from the file. */
static bool drop_txn(evlog *l)
{
    if (!l->in_txn)
        return true;
    uint64_t cut = l->txn_start;
    l->in_txn = false;
    relset_cut(&l->rels, cut);
    if (cut >= l->written) {
        l->buf_len = (size_t)(cut - l->written);
        return true;
    }
    l->buf_len = 0;
    if (ftruncate(l->fd, (off_t)cut) != 0)
        return fail_io(l, "cannot truncate");
    l->written = cut;
    l->dirty = true;
    return true;
}

bool evlog_append(evlog *l, const sink_event *ev)
{
    if (l->broken) {
        errno = l->broken_errno;
        return false;
    }
    switch (ev->op) {
    case SINK_BEGIN:
        if (l->in_txn)
            return misuse(l, "BEGIN inside a transaction");
        l->in_txn = true;
        l->txn_start = pos(l);
        l->chain = 0;
        return append_txn(l, ev, 'B');
    case SINK_INSERT:
    case SINK_UPDATE:
    case SINK_DELETE:
        if (!l->in_txn)
            return misuse(l, "a change outside a transaction");
        return append_change(l, ev, ev->op == SINK_INSERT ? 'I'
                                    : ev->op == SINK_UPDATE ? 'U' : 'D');
    case SINK_TRUNCATE:
        if (!l->in_txn)
            return misuse(l, "TRUNCATE outside a transaction");
        return append_truncate(l, ev);
    case SINK_MESSAGE:
        if (!l->in_txn)
            return misuse(l, "a message outside a transaction");
        return append_message(l, ev);
    case SINK_COMMIT:
        if (!l->in_txn)
            return misuse(l, "COMMIT outside a transaction");
        if (!append_txn(l, ev, 'C'))
            return false;
        l->in_txn = false;
        l->committed = pos(l);
        l->last_end = ev->end_lsn;
        return true;
    case SINK_ROLLBACK:
        return drop_txn(l);
    }
    return misuse(l, "unknown event %d", (int)ev->op);
}

/* Records in the header that the file is fsync'd up to `synced`. */
static bool write_mark(evlog *l, uint64_t synced)
{
    uint8_t m[HDR_SIZE - HDR_FIXED];
    hdr_mark(m, synced);
    if (!pwrite_all(l->fd, m, sizeof m, HDR_FIXED))
        return fail_io(l, "cannot write the header of");
    l->synced = synced;
    return true;
}

bool evlog_sync(evlog *l)
{
    if (l->broken) {
        errno = l->broken_errno;
        return false;
    }
    if (!flush_buf(l))
        return false;
    if (l->dirty && fdatasync(l->fd) != 0)
        return fail_io(l, "cannot fsync");
    l->dirty = false;
    l->durable = l->last_end;
    return l->committed <= l->synced || write_mark(l, l->committed);
}

const char *evlog_error(const evlog *l)
{
    return l->error;
}

lsn_t evlog_start(const evlog *l)
{
    return l->start;
}

lsn_t evlog_last_end(const evlog *l)
{
    return l->last_end;
}

lsn_t evlog_durable(const evlog *l)
{
    return l->durable;
}

uint64_t evlog_bytes(const evlog *l)
{
    return pos(l);
}

uint64_t evlog_cut_bytes(const evlog *l)
{
    return l->cut;
}

static void evlog_free(evlog *l)
{
    if (l->fd >= 0)
        close(l->fd);
    relset_free(&l->rels);
    free(l->buf);
    free(l->path);
    free(l);
}

/* A new file: header written and fsync'd under a temporary name first. */
static bool create(evlog *l, lsn_t start, char *err, size_t errlen)
{
    char *tmp;
    if (asprintf(&tmp, "%s.new", l->path) < 0) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    uint8_t h[HDR_SIZE];
    hdr_fixed(h, start);
    hdr_mark(h + HDR_FIXED, HDR_SIZE);
    const char *what = "cannot create";
    l->fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = l->fd >= 0;
    if (ok && !(ok = pwrite_all(l->fd, h, sizeof h, 0)))
        what = "cannot write";
    if (ok && !(ok = fdatasync(l->fd) == 0))
        what = "cannot fsync";
    if (ok && !(ok = rename(tmp, l->path) == 0))
        what = "cannot rename into place";
    if (ok && !(ok = fsync_dir(l->path)))
        what = "cannot fsync the directory of";
    if (!ok) {
        snprintf(err, errlen, "%s %s: %s", what, l->fd >= 0 ? l->path : tmp,
                 strerror(errno));
        unlink(tmp);
    }
    free(tmp);
    l->start = start;
    l->written = l->committed = l->synced = HDR_SIZE;
    return ok;
}

/* Decides where an existing file's complete transactions end. */
static bool recover_scan(evlog *l, uint64_t size, char *err, size_t errlen)
{
    rbuf b = {.fd = l->fd};
    scan s = {.b = &b, .off = HDR_SIZE, .rels = &l->rels};
    int got;
    uint64_t good = HDR_SIZE;
    while ((got = scan_txn(&s)) == SCAN_OK) {
        good = s.off;
        l->last_end = s.end_lsn;
    }
    free(b.buf);
    relset_cut(&l->rels, good);
    l->written = l->committed = good;
    if (got == SCAN_IO) {
        snprintf(err, errlen, "cannot read %s at offset %" PRIu64 ": %s",
                 l->path, s.bad_at, s.why);
        return false;
    }
    if (good < l->synced) {
        snprintf(err, errlen, "%s is damaged at offset %" PRIu64 ", before "
                 "offset %" PRIu64 " up to which it was fsync'd: %s", l->path,
                 s.bad_at, l->synced, got == SCAN_SHORT ? "the file ends "
                 "early" : s.why);
        return false;
    }
    l->cut = size - good;
    if (l->cut)
        log_warning("event=evlog_tail_cut path=%s offset=%" PRIu64
                    " bytes=%" PRIu64 " reason=\"%s\"", l->path, good, l->cut,
                    got == SCAN_SHORT ? "incomplete transaction" : s.why);
    return true;
}

/* An existing file: header checked, torn tail cut, the rest fsync'd. */
static bool recover(evlog *l, char *err, size_t errlen)
{
    uint8_t h[HDR_SIZE];
    struct stat st;
    if (fstat(l->fd, &st) != 0 || !pread_all(l->fd, h, sizeof h, 0)) {
        snprintf(err, errlen, "cannot read the header of %s: %s", l->path,
                 errno == ENODATA ? "file too short" : strerror(errno));
        return false;
    }
    const char *why = hdr_check_fixed(h, &l->start);
    if (!why && !hdr_check_mark(h + HDR_FIXED, &l->synced))
        why = "bad synced mark in the header";
    if (why) {
        snprintf(err, errlen, "%s: %s", l->path, why);
        return false;
    }
    if (!recover_scan(l, (uint64_t)st.st_size, err, errlen))
        return false;
    if ((l->cut && ftruncate(l->fd, (off_t)l->written) != 0) ||
        fdatasync(l->fd) != 0 || !write_mark(l, l->written)) {
        snprintf(err, errlen, "cannot repair %s: %s", l->path, strerror(errno));
        return false;
    }
    l->durable = l->last_end;
    return true;
}

evlog *evlog_open(const char *path, lsn_t start, char *err, size_t errlen)
{
    evlog *l = calloc(1, sizeof *l);
    if (!l || !(l->path = strdup(path)) || !(l->buf = malloc(WBUF_SIZE))) {
        if (l)
            free(l->path);
        free(l);
        snprintf(err, errlen, "out of memory opening %s", path);
        return NULL;
    }
    l->fd = open(path, O_RDWR | O_CLOEXEC);
    bool ok;
    if (l->fd >= 0) {
        ok = recover(l, err, errlen);
    } else if (errno == ENOENT) {
        ok = create(l, start, err, errlen);
    } else {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        ok = false;
    }
    if (!ok) {
        evlog_free(l);
        return NULL;
    }
    return l;
}

void evlog_close(evlog *l)
{
    if (!l)
        return;
    if (!l->broken && drop_txn(l))
        flush_buf(l);
    evlog_free(l);
}

bool evlog_remove(evlog *l)
{
    close(l->fd);
    l->fd = -1;
    bool ok = unlink(l->path) == 0 && fsync_dir(l->path);
    int e = errno;
    evlog_free(l);
    errno = e;
    return ok;
}

/* ---- the reader -------------------------------------------------------- */

struct evlog_reader {
    char *path;
    rbuf b;
    uint64_t pos;            /* the next record */
    bool in_txn;             /* inside a transaction checked complete */
    relset rels;             /* every snapshot read, by (oid, version) */
    sink_value *vals;        /* a change's values, before copying */
    size_t vals_cap;
};

evlog_reader *evlog_reader_open(const char *path, char *err, size_t errlen)
{
    evlog_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path))) {
        free(r);
        snprintf(err, errlen, "out of memory opening %s", path);
        return NULL;
    }
    r->pos = HDR_SIZE;
    r->b.fd = open(path, O_RDONLY | O_CLOEXEC);
    uint8_t h[HDR_FIXED];
    lsn_t start;
    const char *why = NULL;
    if (r->b.fd < 0 || !pread_all(r->b.fd, h, sizeof h, 0))
        snprintf(err, errlen, "cannot read %s: %s", path,
                 errno == ENODATA ? "file too short" : strerror(errno));
    else if ((why = hdr_check_fixed(h, &start)) != NULL)
        snprintf(err, errlen, "%s: %s", path, why);
    else
        return r;
    evlog_reader_close(r);
    return NULL;
}

void evlog_reader_close(evlog_reader *r)
{
    if (!r)
        return;
    if (r->b.fd >= 0)
        close(r->b.fd);
    relset_free(&r->rels);
    free(r->b.buf);
    free(r->vals);
    free(r->path);
    free(r);
}

static int reader_fail(evlog_reader *r, uint64_t off, const char *why,
                       char *err, size_t errlen)
{
    snprintf(err, errlen, "%s: bad record at offset %" PRIu64 ": %s", r->path,
             off, why);
    return -1;
}

/* The header's synced mark, 0 when it cannot be read as written. */
static uint64_t reader_mark(evlog_reader *r)
{
    uint8_t m[HDR_SIZE - HDR_FIXED];
    uint64_t synced;
    return pread_all(r->b.fd, m, sizeof m, HDR_FIXED) &&
           hdr_check_mark(m, &synced) ? synced : 0;
}

/*
 * Whether the transaction at r->pos is on disk whole: 1, 0 not yet, -1.
 * A failure is looked at again with nothing cached, since what was
 * cached past the last COMMIT may have been cut by the writer's rollback.
 */
static int reader_check_txn(evlog_reader *r, char *err, size_t errlen)
{
    scan s = {.b = &r->b, .off = r->pos};
    int got = scan_txn(&s);
    if (got == SCAN_OK)
        return 1;
    uint64_t synced = reader_mark(r);
    rbuf_drop(&r->b);
    s = (scan){.b = &r->b, .off = r->pos};
    got = scan_txn(&s);
    if (got == SCAN_OK)
        return 1;
    if (got == SCAN_SHORT && s.bad_at >= synced)
        return 0;
    if (got == SCAN_SHORT)
        s.why = "the file ends inside a record it had fsync'd";
    return reader_fail(r, s.bad_at, s.why, err, errlen);
}

static sink_event *read_txn(sink_op op, cur *c)
{
    uint32_t xid = cur_u32(c);
    lsn_t commit_lsn = cur_u64(c);
    lsn_t end_lsn = cur_u64(c);
    int64_t when = (int64_t)cur_u64(c);
    if (op == SINK_COMMIT)
        cur_u32(c);          /* the chain, checked by scan_txn */
    if (c->bad || c->left) {
        c->bad = true;
        return NULL;
    }
    sink_event *ev = sink_event_txn(op, xid, commit_lsn, end_lsn, when);
    c->oom = !ev;
    return ev;
}

/* Reads one column of a relation record into rel->cols[rel->ncols++]. */
static bool read_col(cur *c, sink_rel *rel)
{
    struct sink_col *col = &rel->cols[rel->ncols];
    uint8_t flags = cur_u8(c);
    col->key = flags & 1;
    col->pk = (flags & 4) != 0;
    col->type_oid = cur_u32(c);
    col->typmod = (int32_t)cur_u32(c);
    col->name = cur_str(c);
    if (col->name)
        rel->ncols++;
    if (flags & ~7)
        c->bad = true;
    if (flags & 2)
        col->type_name = cur_str(c);
    return !c->bad;
}

static bool read_rel(evlog_reader *r, cur *c)
{
    sink_rel *rel = calloc(1, sizeof *rel);
    if (!rel) {
        c->oom = true;
        return false;
    }
    atomic_init(&rel->refs, 1);
    rel->oid = cur_u32(c);
    rel->version = cur_u64(c);
    rel->replident = (char)cur_u8(c);
    uint16_t ncols = cur_u16(c);
    rel->schema = cur_str(c);
    rel->name = cur_str(c);
    /* rel->ncols counts the columns read, for sink_rel_unref. */
    if (!c->bad && ncols > c->left / 13)
        c->bad = true;
    if (!c->bad && !(rel->cols = calloc(ncols ? ncols : 1, sizeof *rel->cols)))
        c->oom = c->bad = true;
    while (!c->bad && rel->ncols < ncols)
        read_col(c, rel);
    if (c->bad || c->left) {
        c->bad = true;
        sink_rel_unref(rel);
        return false;
    }
    relkey *k = relset_find(&r->rels, rel->oid, rel->version);
    if (k) {
        sink_rel_unref(k->rel);
        k->rel = rel;
    } else if (!relset_add(&r->rels, rel->oid, rel->version, 0, rel)) {
        c->oom = c->bad = true;
        sink_rel_unref(rel);
        return false;
    }
    return true;
}

static sink_rel *find_rel(evlog_reader *r, cur *c)
{
    uint32_t oid = cur_u32(c);
    uint64_t version = cur_u64(c);
    relkey *k = c->bad ? NULL : relset_find(&r->rels, oid, version);
    if (!k)
        c->bad = true;
    return k ? k->rel : NULL;
}

static bool read_values(cur *c, sink_value *v, uint16_t n)
{
    for (uint16_t i = 0; i < n && !c->bad; i++) {
        v[i].kind = (char)cur_u8(c);
        v[i].len = cur_u32(c);
        v[i].data = NULL;
        if (v[i].kind == 't' || v[i].kind == 'b')
            v[i].data = (const char *)cur_bytes(c, v[i].len);
        else if ((v[i].kind != 'n' && v[i].kind != 'u') || v[i].len != 0)
            c->bad = true;
    }
    return !c->bad;
}

static sink_event *read_change(evlog_reader *r, sink_op op, cur *c)
{
    uint32_t xid = cur_u32(c);
    lsn_t commit_lsn = cur_u64(c);
    sink_rel *rel = find_rel(r, c);
    char old_kind = (char)cur_u8(c);
    uint8_t has = cur_u8(c);
    uint16_t n = cur_u16(c);
    lsn_t lsn = has & HAS_LSN ? cur_u64(c) : 0;
    if (c->bad || (has & ~(3 | HAS_LSN)) || n != rel->ncols) {
        c->bad = true;
        return NULL;
    }
    if (r->vals_cap < 2 * (size_t)n) {
        sink_value *v = realloc(r->vals, 2 * (size_t)n * sizeof *v);
        if (!v) {
            c->oom = c->bad = true;
            return NULL;
        }
        r->vals = v;
        r->vals_cap = 2 * (size_t)n;
    }
    sink_value *old_vals = has & 1 ? r->vals : NULL;
    sink_value *new_vals = has & 2 ? r->vals + n : NULL;
    static const sink_value none[1];
    if ((old_vals && !read_values(c, old_vals, n)) ||
        (new_vals && !read_values(c, new_vals, n)) || c->left) {
        c->bad = true;
        return NULL;
    }
    /* A relation without columns still has (empty) value arrays. */
    sink_event *ev = sink_event_at(sink_event_change_values(
        op, rel, commit_lsn, old_kind,
        old_vals ? (n ? old_vals : none) : NULL,
        new_vals ? (n ? new_vals : none) : NULL), lsn);
    if (ev)
        ev->xid = xid;
    c->oom = !ev;
    return ev;
}

static sink_event *read_truncate(evlog_reader *r, cur *c)
{
    uint32_t xid = cur_u32(c);
    lsn_t commit_lsn = cur_u64(c);
    uint8_t options = cur_u8(c);
    lsn_t lsn = options & TRUNCATE_HAS_LSN ? cur_u64(c) : 0;
    uint32_t n = cur_u32(c);
    if (c->bad || n != c->left / 12 || c->left % 12) {
        c->bad = true;
        return NULL;
    }
    sink_rel **rels = malloc((n ? n : 1) * sizeof *rels);
    if (!rels) {
        c->oom = c->bad = true;
        return NULL;
    }
    for (uint32_t i = 0; i < n && !c->bad; i++)
        rels[i] = find_rel(r, c);
    sink_event *ev = NULL;
    if (!c->bad) {
        ev = sink_event_at(sink_event_truncate(
            commit_lsn, options & ~TRUNCATE_HAS_LSN, rels, n), lsn);
        c->oom = c->bad = !ev;
    }
    if (ev)
        ev->xid = xid;
    free(rels);
    return ev;
}

static sink_event *read_message(cur *c)
{
    uint32_t xid = cur_u32(c);
    lsn_t commit_lsn = cur_u64(c);
    lsn_t msg_lsn = cur_u64(c);
    uint8_t transactional = cur_u8(c);
    char *prefix = cur_str(c);
    uint32_t len = cur_u32(c);
    const uint8_t *content = cur_bytes(c, len);
    sink_event *ev = NULL;
    if (!c->bad && !c->left && transactional <= 1 && prefix) {
        ev = sink_event_message(commit_lsn, msg_lsn, transactional, prefix,
                                content, len);
        c->oom = c->bad = !ev;
    } else {
        c->bad = true;
    }
    if (ev)
        ev->xid = xid;
    free(prefix);
    return ev;
}

/* One record: 1 with *ev, 0 for a relation (no event), -1 bad (*why). */
static int read_record(evlog_reader *r, const rec *rc, sink_event **ev,
                       const char **why)
{
    cur c = {.p = rc->payload, .left = rc->plen};
    switch (rc->type) {
    case 'R':
        if (read_rel(r, &c))
            return 0;
        break;
    case 'B':
        *ev = read_txn(SINK_BEGIN, &c);
        break;
    case 'C':
        *ev = read_txn(SINK_COMMIT, &c);
        break;
    case 'I':
        *ev = read_change(r, SINK_INSERT, &c);
        break;
    case 'U':
        *ev = read_change(r, SINK_UPDATE, &c);
        break;
    case 'D':
        *ev = read_change(r, SINK_DELETE, &c);
        break;
    case 'T':
        *ev = read_truncate(r, &c);
        break;
    case 'M':
        *ev = read_message(&c);
        break;
    }
    if (*ev)
        return 1;
    *why = c.oom ? "out of memory" : rc->type == 'R' ? "malformed relation"
         : memchr("IUD", rc->type, 3) ? "malformed change or unknown relation"
         : "malformed record";
    return -1;
}

int evlog_reader_next(evlog_reader *r, sink_event **ev, char *err,
                      size_t errlen)
{
    *ev = NULL;
    if (!r->in_txn) {
        int got = reader_check_txn(r, err, errlen);
        if (got <= 0)
            return got;
        r->in_txn = true;
    }
    for (;;) {
        rec rc;
        const char *why = "the file changed while being read";
        int got = rec_read(&r->b, r->pos, &rc, &why);
        if (got == REC_IO)
            why = strerror(errno);
        if (got != REC_OK)
            return reader_fail(r, r->pos, why, err, errlen);
        got = read_record(r, &rc, ev, &why);
        if (got < 0)
            return reader_fail(r, rc.off, why, err, errlen);
        r->pos = rc.next;
        if (got > 0) {
            r->in_txn = rc.type != 'C';
            return 1;
        }
    }
}
