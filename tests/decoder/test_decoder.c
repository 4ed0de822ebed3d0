/*
 * test_decoder: the decoder against hand-built messages (every message
 * kind, every semantic check, the state kept between messages), LSN text,
 * replication frames, and the real streams captured from PostgreSQL 15.
 *
 * Message tables are hex specs (testlib.h); a decoded message is checked
 * by its one-line dump, which prints every field.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "decoder/frame.h"
#include "decoder/lsn.h"
#include "decoder/pgoutput.h"
#include "tests/decoder/testlib.h"
#include "tests/support/streamfile.h"

/* public.t (OID 16384): id int4 (key), v text; replica identity default. */
#define REL "52 00004000 'public' 00 't' 00 64 0002 " \
            "01 'id' 00 00000017 ffffffff 00 'v' 00 00000019 ffffffff"
/* The same relation sent inside a streamed block. */
#define REL_X "52 000002da 00004000 'public' 00 't' 00 64 0002 " \
              "01 'id' 00 00000017 ffffffff 00 'v' 00 00000019 ffffffff"
#define START "53 000002da 01"
#define LSNS "0000000100000000 0000000100000030 0000000000000064"
#define GID "000002da 'g1' 00"

/* Decodes one spec; the bytes live in *buf so values can point into it. */
static bool decode_spec(pgo_decoder *dec, const char *spec, uint8_t *buf,
                        size_t cap, pgo_msg *m, rb_error *err)
{
    long n = tl_bytes(spec, buf, cap);
    ck_assert_msg(n >= 0, "bad spec %s", spec);
    memset(err, 0, sizeof *err);
    return pgo_decode(dec, buf, (size_t)n, m, err);
}

/* Feeds "|"-separated specs that must all decode. */
static void feed(pgo_decoder *dec, const char *prelude)
{
    static uint8_t buf[8192];
    char *copy = strdup(prelude ? prelude : "");
    char *save = NULL;
    for (char *s = strtok_r(copy, "|", &save); s; s = strtok_r(NULL, "|", &save)) {
        pgo_msg m;
        rb_error err;
        ck_assert_msg(decode_spec(dec, s, buf, sizeof buf, &m, &err),
                      "prelude %s: %s", s, err.msg);
    }
    free(copy);
}

static pgo_decoder *new_decoder(int proto, bool abort_info)
{
    pgo_options o = {.proto_version = proto, .abort_info = abort_info};
    pgo_decoder *dec = pgo_new(&o);
    ck_assert_ptr_nonnull(dec);
    return dec;
}

/* ---- every message kind decodes to its fields --------------------------- */

typedef struct ok_case {
    int proto;
    bool abort_info;
    const char *prelude;
    const char *spec;
    const char *dump;
} ok_case;

static const ok_case ok_cases[] = {
    {1, 0, NULL, "42 0000000100000000 0000000000000064 000002da",
     "B xid=730 final=1/0 time=100"},
    {1, 0, NULL, "43 00 " LSNS, "C xid=0 flags=0 lsn=1/0 end=1/30 time=100"},
    {1, 0, NULL, "4f 0000000012345678 'other' 00",
     "O xid=0 lsn=0/12345678 name=\"other\""},
    {1, 0, NULL, REL,
     "R xid=0 oid=16384 \"public\".\"t\" ident=d cols=2 [1 \"id\" 23 -1] "
     "[0 \"v\" 25 -1]"},
    {1, 0, NULL, "52 00004001 00 'pg_class' 00 6e 0000",
     "R xid=0 oid=16385 \"pg_catalog\".\"pg_class\" ident=n cols=0"},
    {1, 0, NULL, "52 00004001 'a' 00 'b' 00 66 0001 01 'c' 00 00000413 00000018",
     "R xid=0 oid=16385 \"a\".\"b\" ident=f cols=1 [1 \"c\" 1043 24]"},
    {1, 0, NULL, "52 00004001 'a' 00 'b' 00 69 0000",
     "R xid=0 oid=16385 \"a\".\"b\" ident=i cols=0"},
    {1, 0, NULL, "59 00004002 'public' 00 'mood' 00",
     "Y xid=0 oid=16386 \"public\".\"mood\""},
    {1, 0, NULL, "59 00000017 00 'int4' 00",
     "Y xid=0 oid=23 \"pg_catalog\".\"int4\""},
    {1, 0, REL, "49 00004000 4e 0002 74 00000001 '1' 6e",
     "I xid=0 rel=16384 new(2)[t\"1\" n]"},
    {1, 0, REL, "49 00004000 4e 0002 62 00000002 0001 75",
     "I xid=0 rel=16384 new(2)[b\"\\x00\\x01\" u]"},
    {1, 0, REL, "55 00004000 4e 0002 74 00000001 '1' 74 00000000",
     "U xid=0 rel=16384 new(2)[t\"1\" t\"\"]"},
    {1, 0, REL,
     "55 00004000 4b 0002 74 00000001 '1' 6e 4e 0002 74 00000001 '2' "
     "74 00000001 'x'",
     "U xid=0 rel=16384 key(2)[t\"1\" n] new(2)[t\"2\" t\"x\"]"},
    {1, 0, REL,
     "55 00004000 4f 0002 74 00000001 '1' 74 00000001 'a' 4e 0002 "
     "74 00000001 '1' 75",
     "U xid=0 rel=16384 old(2)[t\"1\" t\"a\"] new(2)[t\"1\" u]"},
    {1, 0, REL, "44 00004000 4b 0002 74 00000001 '1' 6e",
     "D xid=0 rel=16384 key(2)[t\"1\" n]"},
    {1, 0, REL, "44 00004000 4f 0002 74 00000001 '1' 74 00000001 'a'",
     "D xid=0 rel=16384 old(2)[t\"1\" t\"a\"]"},
    {1, 0, REL, "54 00000002 03 00004000 00004000",
     "T xid=0 options=3 rels=16384,16384"},
    {1, 0, REL, "54 00000001 01 00004000", "T xid=0 options=1 rels=16384"},
    {1, 0, NULL, "54 00000000 00", "T xid=0 options=0 rels="},
    {1, 0, NULL, "4d 01 0000000000000010 'pfx' 00 00000003 'abc'",
     "M xid=0 flags=1 lsn=0/10 prefix=\"pfx\" \"abc\""},
    {1, 0, NULL, "4d 00 0000000000000010 00 00000000",
     "M xid=0 flags=0 lsn=0/10 prefix=\"\" \"\""},
    /* Streaming (protocol 2): changes inside a block carry an xid. */
    {2, 0, NULL, START, "S xid=730 first=1"},
    {2, 0, NULL, "53 000002da 00", "S xid=730 first=0"},
    {2, 0, START, "45", "E xid=0 streamed"},
    {2, 0, START, REL_X,
     "R xid=730 streamed oid=16384 \"public\".\"t\" ident=d cols=2 "
     "[1 \"id\" 23 -1] [0 \"v\" 25 -1]"},
    {2, 0, START, "59 000002da 00004002 'public' 00 'mood' 00",
     "Y xid=730 streamed oid=16386 \"public\".\"mood\""},
    {2, 0, REL "|" START, "49 000002db 00004000 4e 0002 74 00000001 '1' 6e",
     "I xid=731 streamed rel=16384 new(2)[t\"1\" n]"},
    {2, 0, REL "|" START,
     "55 000002da 00004000 4b 0002 74 00000001 '1' 6e 4e 0002 6e 6e",
     "U xid=730 streamed rel=16384 key(2)[t\"1\" n] new(2)[n n]"},
    {2, 0, REL "|" START, "44 000002da 00004000 4b 0002 74 00000001 '1' 6e",
     "D xid=730 streamed rel=16384 key(2)[t\"1\" n]"},
    {2, 0, REL "|" START, "54 000002da 00000001 02 00004000",
     "T xid=730 streamed options=2 rels=16384"},
    {2, 0, START, "4d 000002da 01 0000000000000010 'p' 00 00000001 'x'",
     "M xid=730 streamed flags=1 lsn=0/10 prefix=\"p\" \"x\""},
    {2, 0, START, "4f 0000000000000000 'o' 00",
     "O xid=0 streamed lsn=0/0 name=\"o\""},
    {2, 0, NULL, "63 000002da 00 " LSNS,
     "c xid=730 flags=0 lsn=1/0 end=1/30 time=100"},
    {2, 0, NULL, "41 000002da 000002db", "A xid=730 subxid=731 lsn=0/0 time=0"},
    {4, 0, NULL, "41 000002da 000002da", "A xid=730 subxid=730 lsn=0/0 time=0"},
    {4, 1, NULL, "41 000002da 000002da 0000000100000000 0000000000000064",
     "A xid=730 subxid=730 lsn=1/0 time=100"},
    /* Two-phase (protocol 3). */
    {3, 0, NULL, "62 " LSNS " " GID,
     "b xid=730 flags=0 lsn=1/0 end=1/30 time=100 gid=\"g1\""},
    {3, 0, NULL, "50 00 " LSNS " " GID,
     "P xid=730 flags=0 lsn=1/0 end=1/30 time=100 gid=\"g1\""},
    {3, 0, NULL, "4b 00 " LSNS " " GID,
     "K xid=730 flags=0 lsn=1/0 end=1/30 time=100 gid=\"g1\""},
    {3, 0, NULL,
     "72 00 0000000100000030 0000000100000060 0000000000000064 "
     "00000000000000c8 " GID,
     "r xid=730 flags=0 prep_end=1/30 rb_end=1/60 ptime=100 rtime=200 "
     "gid=\"g1\""},
    {3, 0, NULL, "70 00 " LSNS " " GID,
     "p xid=730 flags=0 lsn=1/0 end=1/30 time=100 gid=\"g1\""},
};

START_TEST(test_message_ok)
{
    const ok_case *c = &ok_cases[_i];
    pgo_decoder *dec = new_decoder(c->proto, c->abort_info);
    feed(dec, c->prelude);
    uint8_t buf[1024];
    pgo_msg m;
    rb_error err;
    ck_assert_msg(decode_spec(dec, c->spec, buf, sizeof buf, &m, &err),
                  "%s: %s", c->spec, err.msg);
    char *dump = tl_dump_str(&m);
    dump[strcspn(dump, "\n")] = '\0';
    ck_assert_str_eq(dump, c->dump);
    free(dump);
    pgo_free(dec);
}
END_TEST

/* ---- every failure names the message, the place and the reason --------- */

typedef struct err_case {
    int proto;
    bool abort_info;
    const char *prelude;
    const char *spec;
    const char *error;
    size_t offset;
} err_case;

static const err_case err_cases[] = {
    {1, 0, NULL, "", "pgoutput message: message ends at offset 0, 1 more "
     "byte(s) needed", 0},
    {1, 0, NULL, "5a", "unknown pgoutput message type 'Z'", 0},
    {1, 0, NULL, "00", "unknown pgoutput message type 0x00", 0},
    /* flags that must be 0 */
    {1, 0, NULL, "43 01 " LSNS, "Commit: unrecognized flags 1", 1},
    {2, 0, NULL, "63 000002da 02 " LSNS, "Stream Commit: unrecognized flags 2", 5},
    {3, 0, NULL, "50 04 " LSNS " " GID, "Prepare: unrecognized flags 4", 1},
    {3, 0, NULL, "4b 01 " LSNS " " GID, "Commit Prepared: unrecognized flags 1", 1},
    {3, 0, NULL, "72 01 " LSNS " 0000000000000001 " GID,
     "Rollback Prepared: unrecognized flags 1", 1},
    {3, 0, NULL, "70 80 " LSNS " " GID, "Stream Prepare: unrecognized flags 128", 1},
    {1, 0, NULL, "4d 02 0000000000000010 00 00000000",
     "Message: unrecognized flags 2", 1},
    {1, 0, REL, "54 00000001 04 00004000", "Truncate: unrecognized options 4", 5},
    /* LSNs PostgreSQL refuses as 0 */
    {1, 0, NULL, "42 0000000000000000 0000000000000064 000002da",
     "Begin: final LSN not set", 1},
    {3, 0, NULL, "62 0000000000000000 0000000100000030 0000000000000064 " GID,
     "Begin Prepare: prepare LSN not set", 1},
    {3, 0, NULL, "50 00 0000000100000000 0000000000000000 0000000000000064 " GID,
     "Prepare: end LSN not set", 10},
    /* tuple actions */
    {1, 0, REL, "49 00004000 4b 0002 6e 6e", "Insert: expected new tuple 'N', got 'K'", 5},
    {1, 0, REL, "55 00004000 58 0002 6e 6e", "Update: expected 'K', 'O' or 'N', got 'X'", 5},
    {1, 0, REL, "55 00004000 4b 0002 74 00000001 '1' 6e 4b 0002 6e 6e",
     "Update: expected new tuple 'N', got 'K'", 15},
    {1, 0, REL, "44 00004000 4e 0002 6e 6e", "Delete: expected 'K' or 'O', got 'N'", 5},
    {1, 0, REL, "44 00004000 00", "Delete: expected 'K' or 'O', got 0x00", 5},
    /* TupleData */
    {1, 0, REL, "49 00004000 4e 0002 78 6e",
     "Insert: column 1: unrecognized data representation type 'x'", 8},
    {1, 0, REL, "49 00004000 4e 0002 6e 01",
     "Insert: column 2: unrecognized data representation type 0x01", 9},
    {1, 0, REL, "49 00004000 4e 0001 6e",
     "Insert: tuple has 1 column(s), relation public.t (OID 16384) has 2", 6},
    {1, 0, REL, "49 00004000 4e 0003 6e 6e 6e",
     "Insert: tuple has 3 column(s), relation public.t (OID 16384) has 2", 6},
    {1, 0, REL, "55 00004000 4f 0001 6e 4e 0002 6e 6e",
     "Update: tuple has 1 column(s)", 6},
    {1, 0, REL, "49 00004000 4e 0002 74 ffffffff 6e",
     "Insert: column 1: negative value length -1", 9},
    {1, 0, REL, "49 00004000 4e 0002 62 80000000 6e",
     "Insert: column 1: negative value length -2147483648", 9},
    {1, 0, REL, "49 00004000 4e 0002 74 00000010 'ab'",
     "Insert: message ends at offset 13, 14 more byte(s) needed", 13},
    {1, 0, REL, "49 00004000 4e 0002 74 0000",
     "Insert: message ends at offset 9, 2 more byte(s) needed", 9},
    {1, 0, REL, "49 00004000 4e 0002 6e",
     "Insert: message ends at offset 9, 1 more byte(s) needed", 9},
    /* relations */
    {1, 0, NULL, "52 00004000 'public' 00 't' 00 78 0000",
     "Relation: unrecognized replica identity 'x'", 14},
    {1, 0, NULL, "52 00004000 'public' 00 't' 00 00 0000",
     "Relation: unrecognized replica identity 0x00", 14},
    {1, 0, NULL, "52 00004000 'public' 00 't' 00 64 0681",
     "Relation: 1665 columns, more than the 1664 allowed", 15},
    {1, 0, NULL, "52 00004000 'public' 00 't' 00 64 ffff",
     "Relation: 65535 columns, more than the 1664 allowed", 15},
    {1, 0, NULL, "52 00004000 'public' 00 't' 00 64 0001 02 'id' 00 00000017 ffffffff",
     "Relation: column 1: unrecognized flags 2", 17},
    {1, 0, NULL, "52 00004000 'public' 00 't' 00 64 0002 01 'id' 00 00000017 ffffffff",
     "Relation: message ends at offset 29, 1 more byte(s) needed", 29},
    {1, 0, NULL, "52 00004000 'public' 00 't'",
     "Relation: message ends at offset 12, 1 more byte(s) needed", 12},
    /* unknown relations */
    {1, 0, REL, "49 00004001 4e 0000", "Insert: unknown relation OID 16385", 1},
    {1, 0, NULL, "55 00004000 4e 0000", "Update: unknown relation OID 16384", 1},
    {1, 0, REL, "44 00000000 4b 0000", "Delete: unknown relation OID 0", 1},
    {1, 0, REL, "54 00000002 00 00004000 00004001",
     "Truncate: unknown relation OID 16385", 10},
    {1, 0, REL, "54 ffffffff 00 00004000",
     "Truncate: message ends at offset 6, 17179869176 more byte(s) needed", 6},
    {1, 0, REL, "54 00000002 00 00004000",
     "Truncate: message ends at offset 6, 4 more byte(s) needed", 6},
    /* whole message consumed */
    {1, 0, NULL, "42 0000000100000000 0000000000000064 000002da ff",
     "Begin: 1 unexpected trailing byte(s)", 21},
    {1, 0, REL, "49 00004000 4e 0002 6e 6e 0000",
     "Insert: 2 unexpected trailing byte(s)", 10},
    {1, 0, NULL, REL " 00", "Relation: 1 unexpected trailing byte(s)", 40},
    {2, 0, START, "45 00", "Stream Stop: 1 unexpected trailing byte(s)", 1},
    {2, 0, NULL, "41 000002da 000002da 0000000100000000",
     "Stream Abort: 8 unexpected trailing byte(s)", 9},
    {4, 1, NULL, "41 000002da 000002da",
     "Stream Abort: message ends at offset 9, 8 more byte(s) needed", 9},
    {1, 0, NULL, "4d 00 0000000000000010 'p' 00 ffffffff",
     "Message: negative content length -1", 12},
    {1, 0, NULL, "4d 00 0000000000000010 'p' 00 00000004 'abc'",
     "Message: message ends at offset 16, 1 more byte(s) needed", 16},
    {1, 0, NULL, "4f 0000000000000001 'abc'",
     "Origin: message ends at offset 9, 1 more byte(s) needed", 9},
    {3, 0, NULL, "62 " LSNS " 000002da 'g1'",
     "Begin Prepare: message ends at offset 29, 1 more byte(s) needed", 29},
    /* the streamed block */
    {2, 0, START, "53 000002da 00", "Stream Start: inside a streamed block", 0},
    {2, 0, NULL, "45", "Stream Stop: outside a streamed block", 0},
    {2, 0, START, "63 000002da 00 " LSNS, "Stream Commit: inside a streamed block", 0},
    {2, 0, START, "41 000002da 000002da", "Stream Abort: inside a streamed block", 0},
    {3, 0, START, "70 00 " LSNS " " GID, "Stream Prepare: inside a streamed block", 0},
    {2, 0, START, "42 0000000100000000 0000000000000064 000002da",
     "Begin: inside a streamed block", 0},
    {2, 0, START, "43 00 " LSNS, "Commit: inside a streamed block", 0},
    {2, 0, START, "49 0000", "Insert: message ends at offset 1, 2 more byte(s) needed", 1},
    /* the same Insert without its xid: the OID is read as the xid */
    {2, 0, REL "|" START, "49 00004000 4e 0002 6e 6e",
     "Insert: unknown relation OID 1308623470", 5},
    /* messages newer than the negotiated protocol */
    {1, 0, NULL, START, "Stream Start: not part of protocol version 1 (needs 2)", 0},
    {1, 0, NULL, "63 000002da 00 " LSNS, "Stream Commit: not part of protocol version 1", 0},
    {2, 0, NULL, "62 " LSNS " " GID, "Begin Prepare: not part of protocol version 2 (needs 3)", 0},
};

START_TEST(test_message_error)
{
    const err_case *c = &err_cases[_i];
    pgo_decoder *dec = new_decoder(c->proto, c->abort_info);
    feed(dec, c->prelude);
    uint8_t buf[1024];
    pgo_msg m;
    rb_error err;
    ck_assert_msg(!decode_spec(dec, c->spec, buf, sizeof buf, &m, &err),
                  "%s decoded", c->spec);
    ck_assert_msg(strncmp(err.msg, c->error, strlen(c->error)) == 0,
                  "%s: got \"%s\", want \"%s\"", c->spec, err.msg, c->error);
    ck_assert_uint_eq(err.offset, c->offset);
    pgo_free(dec);
}
END_TEST

/* ---- the state kept between messages ------------------------------------- */

START_TEST(test_relation_replaced)
{
    pgo_decoder *dec = new_decoder(1, false);
    feed(dec, REL "|52 00004000 'app' 00 't2' 00 66 0001 00 'x' 00 00000014 ffffffff");
    const pgo_relation *rel = pgo_relation_get(dec, 16384);
    ck_assert_ptr_nonnull(rel);
    ck_assert_str_eq(rel->nspname, "app");
    ck_assert_str_eq(rel->relname, "t2");
    ck_assert_int_eq(rel->replident, 'f');
    ck_assert_uint_eq(rel->ncols, 1);
    ck_assert_str_eq(rel->cols[0].name, "x");
    /* A tuple in the old shape is now wrong. */
    uint8_t buf[256];
    pgo_msg m;
    rb_error err;
    ck_assert(!decode_spec(dec, "49 00004000 4e 0002 6e 6e", buf, sizeof buf,
                           &m, &err));
    ck_assert(decode_spec(dec, "49 00004000 4e 0001 6e", buf, sizeof buf, &m, &err));
    ck_assert_ptr_eq(m.change.rel, rel);
    pgo_free(dec);
}
END_TEST

START_TEST(test_failed_relation_keeps_cache)
{
    pgo_decoder *dec = new_decoder(1, false);
    feed(dec, REL);
    const pgo_relation *before = pgo_relation_get(dec, 16384);
    uint8_t buf[256];
    pgo_msg m;
    rb_error err;
    /* Fails only in its last byte, after every column was read. */
    ck_assert(!decode_spec(dec, "52 00004000 'x' 00 'y' 00 64 0000 00", buf,
                           sizeof buf, &m, &err));
    ck_assert(!decode_spec(dec, "52 00004001 'x' 00 'y' 00 64 0000 00", buf,
                           sizeof buf, &m, &err));
    ck_assert_ptr_eq(pgo_relation_get(dec, 16384), before);
    ck_assert_str_eq(before->relname, "t");
    ck_assert_ptr_null(pgo_relation_get(dec, 16385));
    ck_assert(!decode_spec(dec, "59 00004002 'a' 00 'b' 00 00", buf, sizeof buf,
                           &m, &err));
    ck_assert(!pgo_type_get(dec, 16386, NULL, NULL));
    pgo_free(dec);
}
END_TEST

START_TEST(test_failed_stream_start_keeps_state)
{
    pgo_decoder *dec = new_decoder(2, false);
    uint8_t buf[64];
    pgo_msg m;
    rb_error err;
    ck_assert(!decode_spec(dec, "53 000002da", buf, sizeof buf, &m, &err));
    ck_assert(!decode_spec(dec, "53 000002da 01 00", buf, sizeof buf, &m, &err));
    ck_assert(!decode_spec(dec, "45", buf, sizeof buf, &m, &err));
    ck_assert(decode_spec(dec, START, buf, sizeof buf, &m, &err));
    ck_assert(!decode_spec(dec, "45 00", buf, sizeof buf, &m, &err));
    ck_assert(decode_spec(dec, "45", buf, sizeof buf, &m, &err));
    pgo_free(dec);
}
END_TEST

START_TEST(test_type_cache)
{
    pgo_decoder *dec = new_decoder(1, false);
    feed(dec, "59 00004002 'public' 00 'mood' 00|59 00000017 00 'int4' 00");
    const char *nsp, *name;
    ck_assert(pgo_type_get(dec, 16386, &nsp, &name));
    ck_assert_str_eq(nsp, "public");
    ck_assert_str_eq(name, "mood");
    ck_assert(pgo_type_get(dec, 23, &nsp, &name));
    ck_assert_str_eq(nsp, "pg_catalog");
    feed(dec, "59 00004002 'app' 00 'feeling' 00");
    ck_assert(pgo_type_get(dec, 16386, &nsp, &name));
    ck_assert_str_eq(name, "feeling");
    ck_assert(!pgo_type_get(dec, 16387, &nsp, &name));
    pgo_free(dec);
}
END_TEST

START_TEST(test_reset)
{
    pgo_decoder *dec = new_decoder(2, false);
    feed(dec, REL "|59 00004002 'public' 00 'mood' 00|" START);
    pgo_reset(dec);
    ck_assert_ptr_null(pgo_relation_get(dec, 16384));
    ck_assert(!pgo_type_get(dec, 16386, NULL, NULL));
    uint8_t buf[64];
    pgo_msg m;
    rb_error err;
    ck_assert(!decode_spec(dec, "45", buf, sizeof buf, &m, &err));
    feed(dec, REL "|" START "|45");
    pgo_free(dec);
}
END_TEST

/* Values point into the input; tuples reuse the decoder's scratch. */
START_TEST(test_values_in_place)
{
    pgo_decoder *dec = new_decoder(1, false);
    feed(dec, REL);
    uint8_t buf[256], buf2[256];
    pgo_msg m;
    rb_error err;
    ck_assert(decode_spec(dec,
                          "55 00004000 4f 0002 74 00000001 '1' 6e 4e 0002 "
                          "74 00000002 'ab' 6e",
                          buf, sizeof buf, &m, &err));
    ck_assert_ptr_eq(m.change.old_tuple.cols[0].data, buf + 13);
    ck_assert_ptr_eq(m.change.new_tuple.cols[0].data, buf + 23);
    ck_assert_ptr_ne(m.change.old_tuple.cols, m.change.new_tuple.cols);
    const pgo_value *cols = m.change.new_tuple.cols;
    ck_assert(decode_spec(dec, "49 00004000 4e 0002 6e 74 00000001 'z'", buf2,
                          sizeof buf2, &m, &err));
    ck_assert_ptr_eq(m.change.new_tuple.cols, cols);
    ck_assert_ptr_eq(m.change.new_tuple.cols[1].data, buf2 + 14);
    ck_assert_uint_eq(m.change.new_tuple.cols[1].len, 1);
    pgo_free(dec);
}
END_TEST

/* Appends a Relation of n int4 columns for OID 16390. */
static size_t wide_relation(uint8_t *p, unsigned n)
{
    size_t len = (size_t)tl_bytes("52 00004006 'public' 00 'wide' 00 64", p, 64);
    p[len++] = (uint8_t)(n >> 8);
    p[len++] = (uint8_t)n;
    for (unsigned i = 0; i < n; i++)
        len += (size_t)tl_bytes("00 'c' 00 00000017 ffffffff", p + len, 16);
    return len;
}

START_TEST(test_widest_relation)
{
    pgo_decoder *dec = new_decoder(1, false);
    static uint8_t buf[1664 * 16 + 64];
    pgo_msg m;
    rb_error err;
    size_t len = wide_relation(buf, 1664);
    ck_assert_msg(pgo_decode(dec, buf, len, &m, &err), "%s", err.msg);
    ck_assert_uint_eq(m.relation->ncols, 1664);
    len = (size_t)tl_bytes("49 00004006 4e 0680", buf, 16);
    memset(buf + len, 'n', 1664);
    ck_assert_msg(pgo_decode(dec, buf, len + 1664, &m, &err), "%s", err.msg);
    ck_assert_uint_eq(m.change.new_tuple.ncols, 1664);
    ck_assert_int_eq(m.change.new_tuple.cols[1663].kind, 'n');
    pgo_free(dec);
}
END_TEST

/* Enough relations to grow the cache several times, OIDs in strides. */
START_TEST(test_many_relations)
{
    pgo_decoder *dec = new_decoder(1, false);
    uint8_t buf[64];
    pgo_msg m;
    rb_error err;
    long n = tl_bytes("52 00000000 'public' 00 't' 00 64 0000", buf, sizeof buf);
    for (uint32_t i = 0; i < 3000; i++) {
        uint32_t oid = i * 4096 + (i & 7);
        buf[1] = (uint8_t)(oid >> 24);
        buf[2] = (uint8_t)(oid >> 16);
        buf[3] = (uint8_t)(oid >> 8);
        buf[4] = (uint8_t)oid;
        buf[14] = i % 2 ? 'f' : 'd';
        ck_assert_msg(pgo_decode(dec, buf, (size_t)n, &m, &err), "%s", err.msg);
    }
    for (uint32_t i = 0; i < 3000; i++) {
        const pgo_relation *rel = pgo_relation_get(dec, i * 4096 + (i & 7));
        ck_assert_ptr_nonnull(rel);
        ck_assert_int_eq(rel->replident, i % 2 ? 'f' : 'd');
    }
    ck_assert_ptr_null(pgo_relation_get(dec, 1));
    pgo_free(dec);
}
END_TEST

START_TEST(test_new_options)
{
    pgo_options o = {.proto_version = 0};
    ck_assert_ptr_null(pgo_new(&o));
    o.proto_version = 5;
    ck_assert_ptr_null(pgo_new(&o));
    o = (pgo_options){.proto_version = 3, .abort_info = true};
    ck_assert_ptr_null(pgo_new(&o));
    ck_assert_ptr_null(pgo_new(NULL));
    for (int v = PGO_PROTO_MIN; v <= PGO_PROTO_MAX; v++) {
        o = (pgo_options){.proto_version = v};
        pgo_decoder *dec = pgo_new(&o);
        ck_assert_ptr_nonnull(dec);
        pgo_free(dec);
    }
    pgo_free(NULL);
}
END_TEST

START_TEST(test_kind_names)
{
    static const struct { int kind; const char *name; } names[] = {
        {'B', "Begin"}, {'C', "Commit"}, {'O', "Origin"}, {'R', "Relation"},
        {'Y', "Type"}, {'I', "Insert"}, {'U', "Update"}, {'D', "Delete"},
        {'T', "Truncate"}, {'M', "Message"}, {'S', "Stream Start"},
        {'E', "Stream Stop"}, {'c', "Stream Commit"}, {'A', "Stream Abort"},
        {'b', "Begin Prepare"}, {'P', "Prepare"}, {'K', "Commit Prepared"},
        {'r', "Rollback Prepared"}, {'p', "Stream Prepare"}, {'Z', "unknown"},
        {0, "unknown"}, {-1, "unknown"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        ck_assert_str_eq(pgo_kind_name(names[i].kind), names[i].name);
}
END_TEST

START_TEST(test_proto_for_server)
{
    static const int table[][2] = {
        {0, 0}, {90624, 0}, {100000, 1}, {130012, 1}, {140000, 2},
        {149999, 2}, {150000, 3}, {150020, 3}, {160000, 4}, {170004, 4},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        ck_assert_int_eq(pgo_proto_for_server(table[i][0]), table[i][1]);
}
END_TEST

/* ---- LSN text ------------------------------------------------------------ */

START_TEST(test_lsn_both_ways)
{
    static const struct { lsn_t lsn; const char *text; } table[] = {
        {0, "0/0"}, {0x16B3748, "0/16B3748"}, {UINT64_C(0x100000000), "1/0"},
        {UINT64_C(0xFFFFFFFFFFFFFFFF), "FFFFFFFF/FFFFFFFF"},
        {UINT64_C(0xA00000000000000B), "A0000000/B"},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        char buf[LSN_STRLEN];
        lsn_t back = 1;
        ck_assert_str_eq(lsn_format(table[i].lsn, buf), table[i].text);
        ck_assert(lsn_parse(table[i].text, &back));
        ck_assert_uint_eq(back, table[i].lsn);
    }
    lsn_t v = 0;
    ck_assert(lsn_parse("a/bcdef", &v));
    ck_assert_uint_eq(v, (UINT64_C(0xa) << 32) | 0xbcdef);
    ck_assert(lsn_parse("00000001/00000002", &v));
    ck_assert_uint_eq(v, (UINT64_C(1) << 32) | 2);
}
END_TEST

START_TEST(test_lsn_rejects)
{
    static const char *const bad[] = {
        "", "0/", "/0", "123456789/0", "0/123456789", "0/0x", "G/0", "0/G",
        " 0/0", "0/0 ", "0//0", "0", "-1/0", "0x1/0", "1/2/3",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lsn_t v = 42;
        ck_assert_msg(!lsn_parse(bad[i], &v), "accepted \"%s\"", bad[i]);
        ck_assert_uint_eq(v, 42);
    }
    lsn_t v;
    ck_assert(!lsn_parse(NULL, &v));
}
END_TEST

/* ---- replication frames ---------------------------------------------------- */

START_TEST(test_frame_xlogdata)
{
    uint8_t buf[64];
    long n = tl_bytes("77 0000000100000000 0000000100000100 0000000000000064 "
                      "45", buf, sizeof buf);
    frame f;
    rb_error err;
    ck_assert(frame_decode(buf, (size_t)n, &f, &err));
    ck_assert_int_eq(f.kind, FRAME_XLOGDATA);
    ck_assert_uint_eq(f.wal_start, UINT64_C(0x100000000));
    ck_assert_uint_eq(f.wal_end, UINT64_C(0x100000100));
    ck_assert_int_eq(f.send_time, 100);
    ck_assert_ptr_eq(f.data, buf + 25);
    ck_assert_uint_eq(f.data_len, 1);
    ck_assert(!f.reply_requested);
}
END_TEST

START_TEST(test_frame_keepalive)
{
    uint8_t buf[64];
    long n = tl_bytes("6b 0000000100000100 ffffffffffffff9c 01", buf, sizeof buf);
    frame f;
    rb_error err;
    ck_assert(frame_decode(buf, (size_t)n, &f, &err));
    ck_assert_int_eq(f.kind, FRAME_KEEPALIVE);
    ck_assert_uint_eq(f.wal_end, UINT64_C(0x100000100));
    ck_assert_int_eq(f.send_time, -100);
    ck_assert(f.reply_requested);
    buf[17] = 0;
    ck_assert(frame_decode(buf, (size_t)n, &f, &err));
    ck_assert(!f.reply_requested);
}
END_TEST

static const struct {
    const char *spec;
    const char *error;
    size_t offset;
} frame_errors[] = {
    {"", "replication frame: message ends at offset 0, 1 more byte(s) needed", 0},
    {"78 00", "unknown replication frame type 0x78", 0},
    {"72 00", "unknown replication frame type 0x72", 0},
    {"77 0000000100000000 00000000",
     "XLogData header: message ends at offset 9, 4 more byte(s) needed", 9},
    {"77 0000000100000000 0000000100000100 0000000000000064",
     "XLogData without a payload", 25},
    {"6b 0000000100000100 0000000000000064",
     "primary keepalive: message ends at offset 17, 1 more byte(s) needed", 17},
    {"6b 0000000100000100 00000000",
     "primary keepalive: message ends at offset 9, 4 more byte(s) needed", 9},
    {"6b 0000000100000100 0000000000000064 02",
     "primary keepalive: reply flag 2 is not 0 or 1", 17},
    {"6b 0000000100000100 0000000000000064 00 00",
     "primary keepalive: 1 unexpected trailing byte(s)", 18},
};

START_TEST(test_frame_error)
{
    uint8_t buf[64];
    long n = tl_bytes(frame_errors[_i].spec, buf, sizeof buf);
    frame f;
    rb_error err = {0};
    ck_assert(!frame_decode(buf, (size_t)n, &f, &err));
    ck_assert_msg(strncmp(err.msg, frame_errors[_i].error,
                          strlen(frame_errors[_i].error)) == 0,
                  "got \"%s\"", err.msg);
    ck_assert_uint_eq(err.offset, frame_errors[_i].offset);
}
END_TEST

START_TEST(test_frame_status)
{
    uint8_t out[FRAME_STATUS_LEN], want[FRAME_STATUS_LEN];
    ck_assert_uint_eq(frame_encode_status(out, UINT64_C(0x100000300),
                                          UINT64_C(0x100000200),
                                          UINT64_C(0x100000100),
                                          INT64_C(0x0102030405060708), true),
                      FRAME_STATUS_LEN);
    ck_assert_int_eq(tl_bytes("72 0000000100000300 0000000100000200 "
                              "0000000100000100 0102030405060708 01",
                              want, sizeof want),
                     FRAME_STATUS_LEN);
    ck_assert_mem_eq(out, want, FRAME_STATUS_LEN);
    frame_encode_status(out, 0, 0, 0, -1, false);
    ck_assert_int_eq(out[0], 'r');
    ck_assert_int_eq(out[25], 0xff);
    ck_assert_int_eq(out[32], 0xff);
    ck_assert_int_eq(out[33], 0);
}
END_TEST

START_TEST(test_frame_times)
{
    ck_assert_int_eq(frame_pgtime_from_unix_us(INT64_C(946684800000000)), 0);
    ck_assert_int_eq(frame_pgtime_to_unix_us(0), INT64_C(946684800000000));
    ck_assert_int_eq(frame_pgtime_to_unix_us(frame_pgtime_from_unix_us(123)), 123);
    /* 'infinity' off the wire: saturates, no signed overflow (UBSan). */
    ck_assert_int_eq(frame_pgtime_to_unix_us(INT64_MAX), INT64_MAX);
}
END_TEST

/* ---- real streams captured from PostgreSQL 15 ---------------------------- */

/* What decoding a whole stream saw. */
typedef struct stream_seen {
    size_t w_frames, k_frames;
    size_t kinds[256];       /* messages by kind */
    size_t values[256];      /* tuple values by kind */
    size_t streamed_changes; /* changes read inside a streamed block */
    char *dump;              /* every message, one line each */
} stream_seen;

static void count_values(stream_seen *seen, const pgo_tuple *t)
{
    for (unsigned i = 0; i < t->ncols; i++)
        seen->values[(uint8_t)t->cols[i].kind]++;
}

static void note_message(stream_seen *seen, const pgo_msg *m, FILE *dump)
{
    seen->kinds[(uint8_t)m->kind]++;
    tl_dump(dump, m);
    if (m->kind != PGO_INSERT && m->kind != PGO_UPDATE && m->kind != PGO_DELETE)
        return;
    if (m->streamed) {
        seen->streamed_changes++;
        ck_assert_uint_ne(m->xid, 0);
    }
    if (m->change.old_kind)
        count_values(seen, &m->change.old_tuple);
    if (m->kind != PGO_DELETE)
        count_values(seen, &m->change.new_tuple);
}

/* Decodes every frame of the stream at path; any error fails the test. */
static void decode_stream(const char *path, stream_seen *seen)
{
    sf_stream s;
    char errbuf[512];
    ck_assert_msg(sf_load(path, &s, errbuf, sizeof errbuf), "%s", errbuf);
    ck_assert_msg(s.n > 0, "%s: no frames", path);
    pgo_options o = tl_stream_options(&s);
    pgo_decoder *dec = pgo_new(&o);
    ck_assert_ptr_nonnull(dec);
    *seen = (stream_seen){0};
    size_t dumplen;
    FILE *dump = open_memstream(&seen->dump, &dumplen);
    for (size_t i = 0; i < s.n; i++) {
        frame f;
        pgo_msg m;
        rb_error err;
        ck_assert_msg(frame_decode(s.frames[i].data, s.frames[i].len, &f, &err),
                      "%s frame %zu: %s", path, i, err.msg);
        if (f.kind == FRAME_KEEPALIVE) {
            seen->k_frames++;
            continue;
        }
        seen->w_frames++;
        ck_assert_msg(pgo_decode(dec, f.data, f.data_len, &m, &err),
                      "%s frame %zu at %zu: %s", path, i, err.offset, err.msg);
        note_message(seen, &m, dump);
    }
    fclose(dump);
    pgo_free(dec);
    sf_free(&s);
}

START_TEST(test_streams_decode)
{
    char **paths = tl_stream_paths();
    ck_assert_msg(paths[0], "no captured streams in tests/decoder/streams");
    for (char **p = paths; *p; p++) {
        stream_seen seen;
        decode_stream(*p, &seen);
        ck_assert_msg(seen.w_frames > 0, "%s: no XLogData", *p);
        free(seen.dump);
    }
    tl_free_paths(paths);
}
END_TEST

/* What one captured stream must contain. */
typedef struct stream_expect {
    const char *name;
    const char *kinds;        /* message kinds that must appear */
    const char *values;       /* tuple value kinds that must appear */
    const char *const *lines; /* substrings of the dump */
} stream_expect;

static const char *const dml_lines[] = {
    "Y xid=0 oid=", "\"public\".\"mood\"",
    "\"public\".\"t_types\" ident=d cols=21 [1 \"id\" 20 -1] [0 \"i2\" 21 -1]",
    "[0 \"n\" 1700 786438]",
    "new(21)[t\"1\" t\"-32768\" t\"2147483647\" t\"12345.67\" t\"NaN\" "
    "t\"-Infinity\" t\"t\" t\"h\\xc3\\xa9llo \\x22q\\x22 \\x5c x\"",
    "key(21)[t\"2\" n n", "new(21)[t\"10\" n n",
    "\"public\".\"t_full\" ident=f cols=2 [1 \"a\" 23 -1] [1 \"b\" 25 -1]",
    "old(2)[t\"1\" t\"a\"] new(2)[t\"1\" t\"b\"]", "old(2)[t\"2\" n]\n",
    "\"public\".\"t_toast\" ident=d", "new(3)[t\"1\" u t\"2\"]",
    "\"public\".\"t_nothing\" ident=n cols=1",
    "\"public\".\"t_idx\" ident=i cols=3 [1 \"a\" 23 -1] [1 \"b\" 23 -1] [0 \"c\" 25 -1]",
    "key(3)[t\"1\" t\"2\" n] new(3)[t\"1\" t\"3\" t\"d\"]",
    "\"public\".\"we;ird \\x22Tab\\x22 \\xc3\\xb1\" ident=d cols=2 [1 \"Sel ect\" 23 -1]",
    "new(2)[t\"3\" t\"kept\"]", "T xid=0 options=0 rels=", "T xid=0 options=3 rels=",
    NULL,
};
static const char *const binary_lines[] = {
    "\"public\".\"t_bin\" ident=d cols=14",
    "new(14)[b\"\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x01\" b\"\\x00\\x07\" "
    "b\"\\xff\\xff\\xff\\xf9\"",
    "b\"text\"", "b\"more\"", "key(14)[b\"\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\" n",
    NULL,
};
static const char *const message_lines[] = {
    "M xid=0 flags=0 lsn=", "prefix=\"cleave_test\" \"non-transactional\"",
    "flags=1 lsn=", "prefix=\"outbox\" \"{\\x22event\\x22: \\x22created\\x22",
    "prefix=\"outbox\" \"\\x00\\x01\\x02\\x03\"",
    "O xid=0 lsn=0/12345678 name=\"cleave_other\"",
    "new(2)[t\"2\" t\"from elsewhere\"]", NULL,
};
static const char *const streamed_lines[] = {
    "S xid=", " first=1", " first=0", "E xid=0 streamed",
    "I xid=", " streamed rel=", "new(2)[t\"4001\" t\"after\"]",
    "new(2)[t\"5001\" t\"small\"]", NULL,
};
static const char *const twophase_lines[] = {
    "gid=\"gid_commit\"", "gid=\"gid_rollback\"", "gid=\"gid_streamed\"",
    "new(2)[t\"1\" t\"commit me\"]", "r xid=", "p xid=", NULL,
};

static const stream_expect expects[] = {
    {"dml_v1", "BCRYIUDT", "ntu", dml_lines},
    {"binary_v2", "BCRYIUD", "nb", binary_lines},
    {"message_origin_v2", "BCRIMO", "t", message_lines},
    {"streamed_v2", "SEcARIBC", "t", streamed_lines},
    {"twophase_v3", "bPKrpSERI", "t", twophase_lines},
};

START_TEST(test_stream_contents)
{
    const stream_expect *e = &expects[_i];
    char path[4096];
    const char *src = getenv("CLEAVE_SRCDIR");
    snprintf(path, sizeof path, "%s/tests/decoder/streams/%s.stream",
             src ? src : ".", e->name);
    stream_seen seen;
    decode_stream(path, &seen);
    for (const char *k = e->kinds; *k; k++)
        ck_assert_msg(seen.kinds[(uint8_t)*k] > 0, "%s: no %s message",
                      e->name, pgo_kind_name(*k));
    for (const char *v = e->values; *v; v++)
        ck_assert_msg(seen.values[(uint8_t)*v] > 0, "%s: no '%c' value",
                      e->name, *v);
    for (const char *const *l = e->lines; *l; l++)
        ck_assert_msg(strstr(seen.dump, *l), "%s: no \"%s\" in\n%.2000s",
                      e->name, *l, seen.dump);
    free(seen.dump);
}
END_TEST

/* Stream-specific counts the dump alone does not show well. */
START_TEST(test_streamed_details)
{
    char path[4096];
    const char *src = getenv("CLEAVE_SRCDIR");
    snprintf(path, sizeof path, "%s/tests/decoder/streams/streamed_v2.stream",
             src ? src : ".");
    stream_seen seen;
    decode_stream(path, &seen);
    /* 600 + 600 aborted + 600 + 600 rolled back to a savepoint + 1 */
    ck_assert_uint_ge(seen.streamed_changes, 1200);
    ck_assert_uint_eq(seen.kinds['S'], seen.kinds['E']);
    ck_assert_uint_eq(seen.kinds['c'], 2);
    ck_assert_uint_ge(seen.kinds['A'], 2);
    /* The savepoint rollback aborts a subtransaction: subxid != xid. */
    char *line = seen.dump;
    bool whole = false, sub = false;
    while ((line = strstr(line, "\nA xid="))) {
        unsigned xid, subxid;
        ck_assert_int_eq(sscanf(line, "\nA xid=%u subxid=%u", &xid, &subxid), 2);
        whole |= xid == subxid;
        sub |= xid != subxid;
        line++;
    }
    ck_assert(whole && sub);
    free(seen.dump);
}
END_TEST

static Suite *decoder_suite(void)
{
    Suite *s = suite_create("decoder");
    TCase *tc = tcase_create("messages");
    tcase_add_loop_test(tc, test_message_ok, 0, sizeof ok_cases / sizeof ok_cases[0]);
    tcase_add_loop_test(tc, test_message_error, 0,
                        sizeof err_cases / sizeof err_cases[0]);
    suite_add_tcase(s, tc);

    tc = tcase_create("state");
    tcase_add_test(tc, test_relation_replaced);
    tcase_add_test(tc, test_failed_relation_keeps_cache);
    tcase_add_test(tc, test_failed_stream_start_keeps_state);
    tcase_add_test(tc, test_type_cache);
    tcase_add_test(tc, test_reset);
    tcase_add_test(tc, test_values_in_place);
    tcase_add_test(tc, test_widest_relation);
    tcase_add_test(tc, test_many_relations);
    tcase_add_test(tc, test_new_options);
    tcase_add_test(tc, test_kind_names);
    tcase_add_test(tc, test_proto_for_server);
    suite_add_tcase(s, tc);

    tc = tcase_create("lsn_frame");
    tcase_add_test(tc, test_lsn_both_ways);
    tcase_add_test(tc, test_lsn_rejects);
    tcase_add_test(tc, test_frame_xlogdata);
    tcase_add_test(tc, test_frame_keepalive);
    tcase_add_loop_test(tc, test_frame_error, 0,
                        sizeof frame_errors / sizeof frame_errors[0]);
    tcase_add_test(tc, test_frame_status);
    tcase_add_test(tc, test_frame_times);
    suite_add_tcase(s, tc);

    tc = tcase_create("streams");
    tcase_add_test(tc, test_streams_decode);
    tcase_add_loop_test(tc, test_stream_contents, 0,
                        sizeof expects / sizeof expects[0]);
    tcase_add_test(tc, test_streamed_details);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(decoder_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
