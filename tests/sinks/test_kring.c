/*
 * test_kring: the Kafka sink's transactions in flight. The acknowledged
 * position moves in commit order over whole transactions whatever order
 * the reports come in, never past a transaction with a refused message,
 * and reports are found by their tags after the ring wraps and grows.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "sinks/kring.h"

/* The tag the sink gives a message: other bits above the sequence's. */
#define MASK ((uint64_t)-1 >> 12)
#define TAG(seq) (((uint64_t)7 << 52) | ((seq) & MASK))

/* One transaction of n messages, closed at end; returns its sequence. */
static uint64_t txn(kring *r, lsn_t commit, int n, lsn_t end)
{
    ck_assert(kring_push(r, commit));
    uint64_t seq = r->seq;
    r->msgs += (uint64_t)n;
    kring_close(r, end);
    return seq;
}

static void report(kring *r, uint64_t seq, bool refused)
{
    kring_txn *t = kring_find(r, TAG(seq), MASK);
    ck_assert_ptr_nonnull(t);
    kring_report(t, refused);
}

START_TEST(test_in_commit_order)
{
    kring r = {.acked = 0x50};
    uint64_t a = txn(&r, 0x100, 2, 0x128);
    uint64_t b = txn(&r, 0x200, 1, 0x228);
    report(&r, b, false);           /* another partition answered first */
    kring_advance(&r);
    ck_assert_uint_eq(r.acked, 0x50);
    report(&r, a, false);
    kring_advance(&r);
    ck_assert_uint_eq(r.acked, 0x50);          /* one of a's still out */
    report(&r, a, false);
    kring_advance(&r);
    ck_assert_uint_eq(r.acked, 0x228);
    ck_assert_uint_eq(r.n, 0);
    ck_assert_ptr_null(kring_find(&r, TAG(a), MASK));
    kring_free(&r);
}
END_TEST

/*
 * A refused message holds the position before its transaction, also when
 * every message of it and after it has been reported: the report of the
 * refusal may be served by another worker while this one settles.
 */
START_TEST(test_refused_holds)
{
    kring r = {.acked = 0x50};
    uint64_t a = txn(&r, 0x100, 1, 0x128);
    uint64_t b = txn(&r, 0x200, 2, 0x228);
    uint64_t c = txn(&r, 0x300, 1, 0x328);
    report(&r, a, false);
    report(&r, b, false);
    report(&r, b, true);
    report(&r, c, false);
    kring_advance(&r);
    ck_assert_uint_eq(r.acked, 0x128);
    kring_advance(&r);
    ck_assert_uint_eq(r.acked, 0x128);
    ck_assert_uint_eq(r.n, 2);
    /* A reopened sink starts afresh: the old tags find nothing. */
    kring_reset(&r);
    ck_assert_ptr_null(kring_find(&r, TAG(b), MASK));
    ck_assert_uint_eq(r.acked, 0x128);
    kring_free(&r);
}
END_TEST

/* An entry rolled back (end 0) moves nothing, yet does not block. */
START_TEST(test_rolled_back)
{
    kring r = {0};
    uint64_t a = txn(&r, 0x100, 1, 0);
    uint64_t b = txn(&r, 0x100, 1, 0x128);
    report(&r, a, false);
    kring_advance(&r);
    ck_assert_uint_eq(r.acked, 0);
    report(&r, b, false);
    kring_advance(&r);
    ck_assert_uint_eq(r.acked, 0x128);
    /* An open entry waits for its close, whatever was reported. */
    ck_assert(kring_push(&r, 0x200));
    r.msgs = 1;
    kring_advance(&r);
    ck_assert_uint_eq(r.n, 1);
    kring_close(&r, 0x228);
    report(&r, r.seq, false);
    kring_advance(&r);
    ck_assert_uint_eq(r.acked, 0x228);
    kring_free(&r);
}
END_TEST

/* Many entries, wrapping and growing, reported newest first. */
START_TEST(test_wraps_and_grows)
{
    kring r = {0};
    for (int round = 0; round < 3; round++) {
        uint64_t seqs[300];
        lsn_t base = (lsn_t)(round + 1) << 20;
        for (int i = 0; i < 300; i++)
            seqs[i] = txn(&r, base + (lsn_t)i * 16, 1, base + (lsn_t)i * 16 + 8);
        for (int i = 299; i >= 1; i--)
            report(&r, seqs[i], false);
        kring_advance(&r);
        ck_assert_uint_eq(r.n, 300);
        report(&r, seqs[0], false);
        kring_advance(&r);
        ck_assert_uint_eq(r.n, 0);
        ck_assert_uint_eq(r.acked, base + 299 * 16 + 8);
    }
    kring_free(&r);
}
END_TEST

static Suite *kring_suite(void)
{
    Suite *s = suite_create("kring");
    TCase *tc = tcase_create("kring");
    tcase_add_test(tc, test_in_commit_order);
    tcase_add_test(tc, test_refused_holds);
    tcase_add_test(tc, test_rolled_back);
    tcase_add_test(tc, test_wraps_and_grows);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(kring_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
