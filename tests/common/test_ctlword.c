/* ctlword: any text through a control request's word and back. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "common/ctlword.h"

static const struct {
    const char *text, *word;
} cases[] = {
    {"orders", "orders"},
    {"public.order_items", "public.order_items"},
    {"sales.\"Order Items\"", "sales.%22Order%20Items%22"},
    {"a%b=c", "a%25b%3Dc"},
    {"tab\there", "tab%09here"},
    {"caf\xc3\xa9", "caf%C3%A9"},
    {"", ""},
};

START_TEST(round_trip)
{
    char *word = ctlword_encode(cases[_i].text);
    ck_assert_ptr_nonnull(word);
    ck_assert_str_eq(word, cases[_i].word);
    ck_assert_ptr_null(strchr(word, ' '));
    char back[64];
    ck_assert(ctlword_decode(word, back, sizeof back));
    ck_assert_str_eq(back, cases[_i].text);
    free(word);
}
END_TEST

START_TEST(refuses_what_is_not_a_word)
{
    char out[8];
    ck_assert(!ctlword_decode("a%2", out, sizeof out));
    ck_assert(!ctlword_decode("a%zz", out, sizeof out));
    ck_assert(!ctlword_decode("a%00b", out, sizeof out));
    ck_assert(!ctlword_decode("toolongword", out, sizeof out));
    ck_assert(ctlword_decode("%41%62", out, sizeof out));
    ck_assert_str_eq(out, "Ab");
    ck_assert(ctlword_decode("1234567", out, sizeof out));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ctlword");
    TCase *tc = tcase_create("ctlword");
    tcase_add_loop_test(tc, round_trip, 0, sizeof cases / sizeof cases[0]);
    tcase_add_test(tc, refuses_what_is_not_a_word);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
