/* spool: a streamed transaction's messages on disk; see spool.h. */
#include "daemon/spool.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A record's length (4 bytes) and the message's LSN (8), big-endian. */
#define SPOOL_HDR 12

typedef struct subxact {
    uint32_t xid;
    uint64_t offset;
} subxact;

struct spool {
    uint32_t xid;
    char *path;
    FILE *f;
    uint64_t size;
    subxact *subs;
    size_t nsubs, cap;
    uint64_t read_pos;       /* spool_next's position */
    uint8_t *buf;            /* spool_next's message */
    size_t buf_cap;
};

spool *spool_open(const char *dir, uint32_t xid, char *err, size_t errlen)
{
    spool *sp = calloc(1, sizeof *sp);
    if (!sp || asprintf(&sp->path, "%s/spool-%u", dir, xid) < 0) {
        free(sp);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    sp->xid = xid;
    sp->f = fopen(sp->path, "w+");
    if (!sp->f) {
        snprintf(err, errlen, "cannot create %s: %s", sp->path, strerror(errno));
        free(sp->path);
        free(sp);
        return NULL;
    }
    /* Big writes: a streamed transaction is megabytes at least. */
    setvbuf(sp->f, NULL, _IOFBF, 1 << 16);
    return sp;
}

uint32_t spool_xid(const spool *sp)
{
    return sp->xid;
}

uint64_t spool_size(const spool *sp)
{
    return sp->size;
}

static bool note_subxact(spool *sp, uint32_t xid)
{
    if (xid == sp->xid)
        return true;
    for (size_t i = 0; i < sp->nsubs; i++)
        if (sp->subs[i].xid == xid)
            return true;
    if (sp->nsubs == sp->cap) {
        size_t ncap = sp->cap ? sp->cap * 2 : 16;
        subxact *n = realloc(sp->subs, ncap * sizeof *n);
        if (!n)
            return false;
        sp->subs = n;
        sp->cap = ncap;
    }
    sp->subs[sp->nsubs++] = (subxact){xid, sp->size};
    return true;
}

static void put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

bool spool_append(spool *sp, uint32_t xid, lsn_t lsn, const uint8_t *msg,
                  size_t len)
{
    if (len > UINT32_MAX || !note_subxact(sp, xid))
        return false;
    uint8_t hdr[SPOOL_HDR];
    put_be(hdr, len, 4);
    put_be(hdr + 4, lsn, 8);
    if (fwrite(hdr, 1, SPOOL_HDR, sp->f) != SPOOL_HDR ||
        fwrite(msg, 1, len, sp->f) != len)
        return false;
    sp->size += SPOOL_HDR + len;
    return true;
}

bool spool_abort_sub(spool *sp, uint32_t subxid)
{
    size_t i = 0;
    while (i < sp->nsubs && sp->subs[i].xid != subxid)
        i++;
    if (i == sp->nsubs)
        return true;  /* it wrote nothing that reached us */
    uint64_t cut = sp->subs[i].offset;
    sp->nsubs = i;
    if (fflush(sp->f) != 0 || ftruncate(fileno(sp->f), (off_t)cut) != 0 ||
        fseeko(sp->f, (off_t)cut, SEEK_SET) != 0)
        return false;
    sp->size = cut;
    return true;
}

bool spool_rewind(spool *sp)
{
    sp->read_pos = 0;
    return fflush(sp->f) == 0 && fseeko(sp->f, 0, SEEK_SET) == 0;
}

int spool_next(spool *sp, const uint8_t **msg, size_t *len, lsn_t *lsn)
{
    if (sp->read_pos >= sp->size)
        return 0;
    uint8_t hdr[SPOOL_HDR];
    if (fread(hdr, 1, SPOOL_HDR, sp->f) != SPOOL_HDR)
        return -1;
    size_t n = (size_t)get_be(hdr, 4);
    if (n > sp->buf_cap) {
        uint8_t *nb = realloc(sp->buf, n);
        if (!nb)
            return -1;
        sp->buf = nb;
        sp->buf_cap = n;
    }
    if (fread(sp->buf, 1, n, sp->f) != n)
        return -1;
    sp->read_pos += SPOOL_HDR + n;
    *msg = sp->buf;
    *len = n;
    *lsn = get_be(hdr + 4, 8);
    return 1;
}

void spool_discard(spool *sp)
{
    if (!sp)
        return;
    fclose(sp->f);
    unlink(sp->path);
    free(sp->path);
    free(sp->subs);
    free(sp->buf);
    free(sp);
}

void spool_clean_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "spool-", 6) != 0)
            continue;
        char *path;
        if (asprintf(&path, "%s/%s", dir, e->d_name) >= 0) {
            unlink(path);
            free(path);
        }
    }
    closedir(d);
}
