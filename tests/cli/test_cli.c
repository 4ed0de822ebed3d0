/*
 * The real cleave binary's command line: exit codes, usage errors, and
 * `check` on good and bad configurations (PRODUCT.md §2).
 */
#include <check.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/runcmd.h"

static const char *cleave_bin;
static char example[1024];

/* Runs cleave with the arguments up to a NULL (at most 7); asserts the
 * exit code. */
static rc_result run_cleave(int expect, ...)
{
    char *argv[9] = {(char *)cleave_bin};
    va_list ap;
    va_start(ap, expect);
    for (size_t i = 1; i < 8 && (argv[i] = va_arg(ap, char *)) != NULL; i++)
        ;
    va_end(ap);
    rc_result r;
    ck_assert_int_eq(rc_run(argv, &r), 1);
    ck_assert_msg(r.status == expect,
                  "cleave %s %s: exit %d, expected %d\nstdout: %s\nstderr: %s",
                  argv[1] ? argv[1] : "", argv[2] ? argv[2] : "", r.status,
                  expect, r.out, r.err);
    return r;
}

START_TEST(version_and_help)
{
    rc_result r = run_cleave(0, "--version", NULL, NULL, NULL);
    ck_assert_msg(strncmp(r.out, "cleave ", 7) == 0, "%s", r.out);
    rc_free(&r);
    r = run_cleave(0, "--help", NULL, NULL, NULL);
    const char *words[] = {"run", "status", "analyze", "verify", "check",
                           "drop", "78"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        ck_assert_msg(strstr(r.out, words[i]), "help lacks %s", words[i]);
    rc_free(&r);
}
END_TEST

START_TEST(usage_errors_exit_2)
{
    rc_result r = run_cleave(2, NULL, NULL, NULL, NULL);
    rc_free(&r);
    r = run_cleave(2, "frobnicate", NULL, NULL, NULL);
    ck_assert_ptr_nonnull(strstr(r.err, "unknown command 'frobnicate'"));
    rc_free(&r);
    r = run_cleave(2, "run", NULL, NULL, NULL);
    ck_assert_ptr_nonnull(strstr(r.err, "-c FILE is required"));
    rc_free(&r);
    r = run_cleave(2, "check", "-c", example, "--metrics", NULL);
    rc_free(&r);
    r = run_cleave(2, "status", "--json", "--metrics", NULL);
    ck_assert_ptr_nonnull(strstr(r.err, "exclude each other"));
    rc_free(&r);
    r = run_cleave(2, "check", "-c", example, "extra", NULL);
    ck_assert_ptr_nonnull(strstr(r.err, "unexpected argument 'extra'"));
    rc_free(&r);
    /* An option of another command is named, not the value it took. */
    r = run_cleave(2, "drop", "-c", example, "--service", "users", NULL);
    ck_assert_msg(strstr(r.err, "option '--service'"), "%s", r.err);
    rc_free(&r);
    r = run_cleave(2, "drop", "-c", example, "-T", "users", NULL);
    ck_assert_msg(strstr(r.err, "option '-T'"), "%s", r.err);
    rc_free(&r);
}
END_TEST

START_TEST(check_example_ok)
{
    rc_result r = run_cleave(0, "check", "-c", example, NULL);
    ck_assert_ptr_nonnull(strstr(r.out, "ok"));
    ck_assert_ptr_nonnull(strstr(r.out, "5 service(s)"));
    ck_assert_ptr_nonnull(strstr(r.out, "14 owned table(s)"));
    rc_free(&r);
}
END_TEST

/* check --services, --tables [--service S]: the names, one a line, as the
 * shell completion reads them. */
START_TEST(check_lists_services_and_tables)
{
    rc_result r = run_cleave(0, "check", "-c", example, "--services", NULL);
    ck_assert_str_eq(r.out, "user_service\norder_service\npayment_service\n"
                            "inventory_service\nnotification_service\n");
    rc_free(&r);
    r = run_cleave(0, "check", "-c", example, "--tables", "--service",
                   "order_service", NULL);
    ck_assert_str_eq(r.out, "orders\norder_items\nshipping_addresses\n");
    rc_free(&r);
    r = run_cleave(0, "check", "-c", example, "--tables", NULL);
    size_t lines = 0;
    for (const char *p = r.out; (p = strchr(p, '\n')); p++)
        lines++;
    ck_assert_uint_eq(lines, 14);
    rc_free(&r);
    r = run_cleave(2, "check", "-c", example, "--tables", "--service",
                   "nosuch", NULL);
    ck_assert_msg(strstr(r.err, "no service 'nosuch'"), "%s", r.err);
    rc_free(&r);
    r = run_cleave(2, "check", "-c", example, "--service", "order_service",
                   NULL);
    ck_assert_msg(strstr(r.err, "--service goes with --tables"), "%s", r.err);
    rc_free(&r);
    r = run_cleave(2, "check", "--keys", "--services", NULL);
    rc_free(&r);
}
END_TEST

/* --commands and --options CMD: the words the shell completion offers,
 * from the table --help prints. */
START_TEST(commands_and_options_listed)
{
    rc_result r = run_cleave(0, "--commands", NULL);
    ck_assert_str_eq(r.out, "run\nstatus\nanalyze\nverify\ncheck\ndrop\n"
                            "cutover\nrollback\ncomplete\nresync\n");
    rc_free(&r);
    r = run_cleave(0, "--options", "resync", NULL);
    ck_assert_str_eq(r.out, "--config=\n--socket=\n--table=\n--json\n"
                            "SERVICE\n");
    rc_free(&r);
    r = run_cleave(0, "--options", "status", NULL);
    ck_assert_str_eq(r.out, "--config=\n--socket=\n--json\n--metrics\n");
    rc_free(&r);
    r = run_cleave(2, "--options", "frobnicate", NULL);
    ck_assert_ptr_nonnull(strstr(r.err, "unknown command 'frobnicate'"));
    rc_free(&r);
    r = run_cleave(2, "--options", NULL);
    rc_free(&r);
}
END_TEST

START_TEST(check_bad_config_exit_78)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/cli/bad-unknown-key.yaml",
             getenv("CLEAVE_SRCDIR"));
    rc_result r = run_cleave(78, "check", "-c", path, NULL);
    char want[1100];
    snprintf(want, sizeof want, "%s:5:3: unknown key 'slott'", path);
    ck_assert_msg(strstr(r.err, want), "stderr: %s", r.err);
    rc_free(&r);
    r = run_cleave(78, "check", "-c", "/nonexistent/cleave.yaml", NULL);
    ck_assert_ptr_nonnull(strstr(r.err, "/nonexistent/cleave.yaml"));
    rc_free(&r);
    /* Commands that read a configuration refuse a bad one the same way. */
    r = run_cleave(78, "run", "-c", path, NULL);
    rc_free(&r);
}
END_TEST

START_TEST(check_keys_lists_every_section)
{
    rc_result r = run_cleave(0, "check", "--keys", NULL, NULL);
    const char *keys[] = {"dsn", "slot", "publication", "owned_tables",
                          "brokers", "on_conflict", "status_socket"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        ck_assert_msg(strstr(r.out, keys[i]), "--keys lacks %s", keys[i]);
    rc_free(&r);
}
END_TEST

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t len = 0;
    if (!f)
        return NULL;
    if (getdelim(&buf, &len, '\0', f) < 0) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

/* The line where a and b first differ, for a message that helps. */
static int first_difference(const char *a, const char *b)
{
    int line = 1;
    for (; *a && *a == *b; a++, b++)
        line += *a == '\n';
    return line;
}

/* docs/configuration.md is what the binary prints from the key table. */
START_TEST(docs_configuration_is_current)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/docs/configuration.md",
             getenv("CLEAVE_SRCDIR"));
    char *doc = read_file(path);
    ck_assert_msg(doc, "cannot read %s", path);
    rc_result r = run_cleave(0, "check", "--keys", "--markdown", NULL);
    ck_assert_ptr_nonnull(strstr(r.out, "| `owned_tables` | list of tables"));
    ck_assert_msg(strcmp(doc, r.out) == 0,
                  "%s differs from `cleave check --keys --markdown` from "
                  "line %d; regenerate it: build/cleave check --keys "
                  "--markdown > docs/configuration.md",
                  path, first_difference(doc, r.out));
    free(doc);
    rc_free(&r);
    r = run_cleave(2, "check", "--markdown", NULL);
    ck_assert_ptr_nonnull(strstr(r.err, "--markdown goes with --keys"));
    rc_free(&r);
}
END_TEST

/* docs/cleave.yaml.5, cleave.yaml(5), is what the binary prints from the
 * key table, as configuration.md is. */
START_TEST(man_page_of_the_configuration_is_current)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/docs/cleave.yaml.5",
             getenv("CLEAVE_SRCDIR"));
    char *page = read_file(path);
    ck_assert_msg(page, "cannot read %s", path);
    rc_result r = run_cleave(0, "check", "--keys", "--man", NULL);
    ck_assert_ptr_nonnull(strstr(r.out, ".TH CLEAVE.YAML 5"));
    ck_assert_ptr_nonnull(strstr(r.out, ".TP\n.B owned_tables\n"));
    ck_assert_msg(strcmp(page, r.out) == 0,
                  "%s differs from `cleave check --keys --man` from line "
                  "%d; regenerate it: build/cleave check --keys --man > "
                  "docs/cleave.yaml.5",
                  path, first_difference(page, r.out));
    free(page);
    rc_free(&r);
    r = run_cleave(2, "check", "--man", NULL);
    ck_assert_ptr_nonnull(strstr(r.err, "--man goes with --keys"));
    rc_free(&r);
    r = run_cleave(2, "check", "--keys", "--man", "--markdown", NULL);
    ck_assert_ptr_nonnull(strstr(r.err, "exclude each other"));
    rc_free(&r);
}
END_TEST

/* Whether the man page has `word` (as written in --help) in its roff
 * form, each - written \-. */
static bool man_has(const char *page, const char *word, size_t len)
{
    char roff[256] = "";
    size_t n = 0;
    for (size_t i = 0; i < len && n + 3 < sizeof roff; i++) {
        if (word[i] == '-')
            roff[n++] = '\\';
        roff[n++] = word[i];
    }
    roff[n] = '\0';
    return strstr(page, roff) != NULL;
}

/* The paragraph of command `cmd` in the man page's COMMANDS: a .TP tag
 * starting with its name. */
static bool man_has_command(const char *page, const char *cmd, size_t len)
{
    char tag[2][80];
    snprintf(tag[0], sizeof tag[0], "\n.TP\n.B %.*s ", (int)len, cmd);
    snprintf(tag[1], sizeof tag[1], "\n.TP\n.BI \"%.*s ", (int)len, cmd);
    return strstr(page, tag[0]) || strstr(page, tag[1]);
}

/* docs/cleave.1 has a paragraph for every command of --help, and every
 * option --help shows. */
START_TEST(man_page_has_every_command_and_option)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/docs/cleave.1", getenv("CLEAVE_SRCDIR"));
    char *page = read_file(path);
    ck_assert_msg(page, "cannot read %s", path);
    rc_result r = run_cleave(0, "--help", NULL);
    size_t commands = 0, options = 0;
    for (const char *l = strstr(r.out, "\n  cleave "); l;
         l = strstr(l + 1, "\n  cleave ")) {
        const char *cmd = l + strlen("\n  cleave ");
        size_t len = strcspn(cmd, " \n");
        if (*cmd == '-')
            continue;  /* --version | --help: options, below */
        commands++;
        ck_assert_msg(man_has_command(page, cmd, len),
                      "%s has no paragraph for `cleave %.*s`", path,
                      (int)len, cmd);
    }
    for (const char *opt = r.out + 1; *opt; opt++) {
        if (*opt != '-' || (opt[-1] != ' ' && opt[-1] != '['))
            continue;  /* an option starts a word: "-c FILE", "[--json" */
        size_t len = strspn(opt, "-abcdefghijklmnopqrstuvwxyzV");
        options++;
        ck_assert_msg(man_has(page, opt, len), "%s lacks the option %.*s",
                      path, (int)len, opt);
    }
    ck_assert_uint_ge(commands, 9);
    ck_assert_uint_ge(options, 20);
    free(page);
    rc_free(&r);
}
END_TEST

/* Names are checked against the configuration before any connection. */
START_TEST(verify_refuses_unknown_names)
{
    rc_result r = run_cleave(2, "verify", "-c", example, "--table", "nosuch",
                             NULL);
    ck_assert_ptr_nonnull(strstr(r.err, "public.nosuch is not a table"));
    rc_free(&r);
    r = run_cleave(2, "verify", "-c", example, "--service", "nosuch", NULL);
    ck_assert_ptr_nonnull(strstr(r.err, "no service 'nosuch'"));
    rc_free(&r);
    r = run_cleave(2, "verify", "-c", example, "--service", "user_service",
                   "--table", "orders", NULL);
    ck_assert_ptr_nonnull(strstr(r.err, "not a table user_service owns"));
    rc_free(&r);
}
END_TEST

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_cli PATH-TO-CLEAVE\n");
        return 2;
    }
    cleave_bin = argv[1];
    snprintf(example, sizeof example, "%s/config/examples/shop.yaml",
             getenv("CLEAVE_SRCDIR") ? getenv("CLEAVE_SRCDIR") : ".");
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("cli");
    tcase_add_test(tc, version_and_help);
    tcase_add_test(tc, usage_errors_exit_2);
    tcase_add_test(tc, check_example_ok);
    tcase_add_test(tc, check_lists_services_and_tables);
    tcase_add_test(tc, commands_and_options_listed);
    tcase_add_test(tc, check_bad_config_exit_78);
    tcase_add_test(tc, check_keys_lists_every_section);
    tcase_add_test(tc, docs_configuration_is_current);
    tcase_add_test(tc, man_page_of_the_configuration_is_current);
    tcase_add_test(tc, man_page_has_every_command_and_option);
    tcase_add_test(tc, verify_refuses_unknown_names);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
