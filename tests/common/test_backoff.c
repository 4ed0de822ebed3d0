/* backoff: waits double up to the cap, jitter only shortens, reset. */
#include <check.h>
#include <stdlib.h>

#include "common/backoff.h"

START_TEST(doubles_to_the_cap_with_jitter)
{
    backoff b;
    backoff_init(&b, 1000, 60000);
    int step = 1000;
    for (int i = 0; i < 12; i++) {
        int wait = backoff_next(&b);
        ck_assert_int_le(wait, step);
        ck_assert_int_gt(wait, step - step / 4 - 1);
        step = step * 2 > 60000 ? 60000 : step * 2;
    }
    ck_assert_int_le(backoff_next(&b), 60000);
}
END_TEST

START_TEST(jitter_spreads_the_waits)
{
    backoff b;
    backoff_init(&b, 60000, 60000);
    int first = backoff_next(&b), differ = 0;
    for (int i = 0; i < 20; i++)
        differ += backoff_next(&b) != first;
    ck_assert_int_gt(differ, 0);
}
END_TEST

START_TEST(reset_starts_again)
{
    backoff b;
    backoff_init(&b, 1000, 60000);
    for (int i = 0; i < 5; i++)
        backoff_next(&b);
    backoff_reset(&b);
    ck_assert_int_le(backoff_next(&b), 1000);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("backoff");
    TCase *tc = tcase_create("backoff");
    tcase_add_test(tc, doubles_to_the_cap_with_jitter);
    tcase_add_test(tc, jitter_spreads_the_waits);
    tcase_add_test(tc, reset_starts_again);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
