/*
 * cleave's command line (PRODUCT.md §2): picks the subcommand, reads its
 * options, and turns what the subcommand returns into the exit code.
 *   0 success, 1 runtime failure, 2 usage, 3 analyze/verify found a
 *   problem, 78 configuration error.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "commands/analyze.h"
#include "commands/drop.h"
#include "commands/move.h"
#include "common/exitcode.h"
#include "common/log.h"
#include "daemon/journal.h"
#include "daemon/run.h"
#include "commands/statuscli.h"
#include "commands/verify.h"
#include "commands/vtable.h"

typedef struct cli_args {
    const char *config;
    const char *socket;
    const char *service;
    const char *table;
    bool json;
    bool metrics;
    bool keys;
    bool markdown;
    bool man;
    bool services;             /* check: the service names, one a line */
    bool tables;               /* check: the owned tables, one a line */
    bool yes;
    bool origins;
    const char *name;          /* the SERVICE argument */
    const char *lag_limit;
    const char *lock_timeout;
    const char *pause_budget;
    const char *archive;
    bool drop_tables;
} cli_args;

typedef struct cli_command {
    const char *name;
    const char *synopsis;
    const char *summary;
    const char *shortopts;     /* what getopt accepts for this command */
    bool needs_config;
    bool takes_service;        /* one SERVICE argument, and -s beside -c */
    int (*run)(const cli_args *args);
} cli_command;

static int cmd_check(const cli_args *args);
static int cmd_run(const cli_args *args);
static int cmd_status(const cli_args *args);
static int cmd_verify(const cli_args *args);
static int cmd_analyze(const cli_args *args);
static int cmd_drop(const cli_args *args);
static int cmd_cutover(const cli_args *args);
static int cmd_rollback(const cli_args *args);
static int cmd_complete(const cli_args *args);
static int cmd_resync(const cli_args *args);

static const cli_command commands[] = {
    {"run", "run -c FILE", "the daemon, in the foreground", "c:", true,
     false, cmd_run},
    {"status", "status [-c FILE | -s SOCK] [--json | --metrics]",
     "lag and state of a running daemon", "c:s:jm", false, false,
     cmd_status},
    {"analyze", "analyze -c FILE [--json]",
     "the mapping against the source catalog", "c:j", true, false,
     cmd_analyze},
    {"verify", "verify -c FILE [--service S] [--table T]",
     "compare source and targets", "c:S:T:", true, false, cmd_verify},
    {"check", "check -c FILE [--services | --tables [--service S]] | "
     "--keys [--markdown | --man]",
     "validate the configuration only; --keys lists every key",
     "c:kMNeS:b", false, false, cmd_check},
    {"drop", "drop -c FILE [--yes] [--origins]",
     "remove slot and publication (clean-up)", "c:yo", true, false,
     cmd_drop},
    {"cutover", "cutover -c FILE SERVICE [--lag-limit BYTES] "
     "[--lock-timeout MS] [--pause-budget MS] [-s SOCK] [--json]",
     "move SERVICE's writes to its own database", "c:s:jL:K:P:", true, true,
     cmd_cutover},
    {"rollback", "rollback -c FILE SERVICE [--lag-limit BYTES] "
     "[--lock-timeout MS] [--pause-budget MS] [-s SOCK] [--json]",
     "move them back to the shared database", "c:s:jL:K:P:", true, true,
     cmd_rollback},
    {"complete", "complete -c FILE SERVICE [--yes] [--archive FILE] "
     "[--drop-tables] [-s SOCK]",
     "end the move: reverse stream removed, shared copies frozen",
     "c:s:yA:D", true, true, cmd_complete},
    {"resync", "resync -c FILE SERVICE [--table T] [-s SOCK] [--json]",
     "copy SERVICE (or one table) again while the others stream",
     "c:s:jT:", true, true, cmd_resync},
};

static const struct option long_options[] = {
    {"config", required_argument, NULL, 'c'},
    {"socket", required_argument, NULL, 's'},
    {"service", required_argument, NULL, 'S'},
    {"table", required_argument, NULL, 'T'},
    {"json", no_argument, NULL, 'j'},
    {"metrics", no_argument, NULL, 'm'},
    {"keys", no_argument, NULL, 'k'},
    {"markdown", no_argument, NULL, 'M'},
    {"man", no_argument, NULL, 'N'},
    {"yes", no_argument, NULL, 'y'},
    {"origins", no_argument, NULL, 'o'},
    {"lag-limit", required_argument, NULL, 'L'},
    {"lock-timeout", required_argument, NULL, 'K'},
    {"pause-budget", required_argument, NULL, 'P'},
    {"archive", required_argument, NULL, 'A'},
    {"drop-tables", no_argument, NULL, 'D'},
    {"services", no_argument, NULL, 'e'},
    {"tables", no_argument, NULL, 'b'},
    {NULL, 0, NULL, 0},
};

static const char *current_command;

static void usage(FILE *out)
{
    fprintf(out, "cleave %s: one shared PostgreSQL database, a database per "
                 "service, by change data capture\n\nusage:\n",
            CLEAVE_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        const char *syn = commands[i].synopsis;
        /* A long synopsis takes its own line; the summary goes under it. */
        if (strlen(syn) > 48)
            fprintf(out, "  cleave %s\n  %55s", syn, "");
        else
            fprintf(out, "  cleave %-48s", syn);
        fprintf(out, " %s\n", commands[i].summary);
    }
    fprintf(out, "  cleave %-48s %s\n", "--version | --help",
            "this program's version, this text");
    fprintf(out, "\nexit codes: 0 success, 1 runtime failure (cutover, "
                 "rollback: nothing was changed), 2 usage,\n3 analyze/verify "
                 "found a problem, 78 configuration error\n");
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "cleave%s%s: ", current_command ? " " : "",
            current_command ? current_command : "");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'cleave --help'.\n");
    return EXITCODE_USAGE;
}

static const cli_command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* Reads the options a command takes; anything else is a usage error. */
static int parse_args(const cli_command *cmd, int argc, char **argv,
                      cli_args *args)
{
    int opt, longindex = -1;
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, cmd->shortopts, long_options,
                              &longindex)) != -1) {
        if (opt == '?' || opt == ':')
            return usage_error("unknown or incomplete option '%s'",
                               argv[optind - 1]);
        if (!strchr(cmd->shortopts, opt)) {
            /* Named as written: argv[optind - 1] may be its value. */
            char name[64] = {'-', (char)opt, '\0'};
            if (longindex >= 0)
                snprintf(name, sizeof name, "--%s",
                         long_options[longindex].name);
            return usage_error("option '%s' is not one this command takes",
                               name);
        }
        longindex = -1;
        switch (opt) {
        case 'c': args->config = optarg; break;
        case 's': args->socket = optarg; break;
        case 'S': args->service = optarg; break;
        case 'T': args->table = optarg; break;
        case 'j': args->json = true; break;
        case 'm': args->metrics = true; break;
        case 'k': args->keys = true; break;
        case 'M': args->markdown = true; break;
        case 'N': args->man = true; break;
        case 'y': args->yes = true; break;
        case 'o': args->origins = true; break;
        case 'L': args->lag_limit = optarg; break;
        case 'K': args->lock_timeout = optarg; break;
        case 'P': args->pause_budget = optarg; break;
        case 'A': args->archive = optarg; break;
        case 'D': args->drop_tables = true; break;
        case 'e': args->services = true; break;
        case 'b': args->tables = true; break;
        }
    }
    if (cmd->takes_service && optind < argc)
        args->name = argv[optind++];
    else if (cmd->takes_service)
        return usage_error("%s", "SERVICE is required");
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (cmd->needs_config && !args->config)
        return usage_error("%s", "-c FILE is required");
    if (args->json && args->metrics)
        return usage_error("%s", "--json and --metrics exclude each other");
    if (args->config && args->socket && !cmd->takes_service)
        return usage_error("%s", "-c and -s exclude each other");
    return EXITCODE_OK;
}

/* Loads the configuration or prints why not; the caller exits 78. */
static cfg *load_config(const char *path)
{
    char err[1024];
    cfg *c = cfg_load(path, err, sizeof err);
    if (!c)
        fprintf(stderr, "%s\n", err);
    return c;
}

static void print_summary(const cfg *c)
{
    size_t tables = 0;
    for (size_t i = 0; i < c->n_services; i++)
        tables += c->services[i].n_owned;
    printf("%s: ok: instance %s, %zu service(s), %zu owned table(s), "
           "slot %s, publication %s\n",
           c->path, c->name, c->n_services, tables, c->source.slot,
           c->source.publication);
    for (size_t i = 0; i < c->n_services; i++) {
        const cfg_service *s = &c->services[i];
        char *dsn = s->target_postgres ? cfg_dsn_redacted(s->target_postgres)
                                       : NULL;
        printf("  %-22s %zu table(s)  postgres: %s  kafka: %s\n", s->name,
               s->n_owned, dsn ? dsn : "-", s->target_kafka ? "yes" : "no");
        free(dsn);
    }
}

/*
 * A table given to a service whose move is complete, as state_dir's
 * journal of moves tells without a database: `run` refuses it. A journal
 * check cannot read (another user's state_dir) says nothing.
 */
static int check_moves(const cfg *c)
{
    char why[512];
    journal *j = journal_open(c, why, sizeof why);
    int rc = EXITCODE_OK;
    for (size_t i = 0; j && i < c->n_services; i++) {
        const cfg_table *t;
        for (size_t from = 0;
             (t = journal_not_moved(j, i, &from, why, sizeof why));) {
            fprintf(stderr, "%s:%d:%d: %s\n", c->path, t->pos.line,
                    t->pos.col, why);
            rc = EXITCODE_CONFIG;
        }
    }
    journal_free(j);
    return rc;
}

/* The combinations check refuses, said; EXITCODE_OK when none. */
static int check_usage(const cli_args *args)
{
    if (args->markdown && !args->keys)
        return usage_error("%s", "--markdown goes with --keys");
    if (args->man && !args->keys)
        return usage_error("%s", "--man goes with --keys");
    if (args->man && args->markdown)
        return usage_error("%s", "--markdown and --man exclude each other");
    if (args->keys && (args->services || args->tables))
        return usage_error("%s", "--keys excludes --services and --tables");
    if (args->services && args->tables)
        return usage_error("%s", "--services and --tables exclude each other");
    if (args->service && !args->tables)
        return usage_error("%s", "--service goes with --tables");
    if (!args->keys && !args->config)
        return usage_error("%s", "-c FILE or --keys is required");
    return EXITCODE_OK;
}

/* A table as the configuration writes it: public's without the schema. */
static void print_table(const cfg_table *t)
{
    if (strcmp(t->schema, "public") != 0) {
        vtable_put_name(stdout, t->schema);
        putchar('.');
    }
    vtable_put_name(stdout, t->name);
    putchar('\n');
}

/*
 * check --services, --tables: names one a line, for scripts and the shell
 * completion (completion/cleave.bash). 2 for a --service the file lacks.
 */
static int print_names(const cfg *c, const cli_args *args)
{
    bool found = false;
    for (size_t i = 0; i < c->n_services; i++) {
        const cfg_service *s = &c->services[i];
        if (args->services)
            printf("%s\n", s->name);
        if (!args->tables ||
            (args->service && strcmp(args->service, s->name) != 0))
            continue;
        found = true;
        for (size_t t = 0; t < s->n_owned; t++)
            print_table(&s->owned[t]);
    }
    if (!args->service || found)
        return EXITCODE_OK;
    fprintf(stderr, "cleave check: %s has no service '%s'\n", c->path,
            args->service);
    return EXITCODE_USAGE;
}

static int cmd_check(const cli_args *args)
{
    int rc = check_usage(args);
    if (rc != EXITCODE_OK)
        return rc;
    if (args->keys) {
        /* --markdown: the whole page, docs/configuration.md; --man:
         * docs/cleave.yaml.5 */
        (args->markdown ? cfg_describe_page
         : args->man    ? cfg_describe_man
                        : cfg_describe)(stdout);
        return EXITCODE_OK;
    }
    cfg *c = load_config(args->config);
    if (!c)
        return EXITCODE_CONFIG;
    if (args->services || args->tables)
        rc = print_names(c, args);
    else if ((rc = check_moves(c)) == EXITCODE_OK)
        print_summary(c);
    cfg_free(c);
    return rc;
}

static int cmd_run(const cli_args *args)
{
    return run_daemon(args->config);
}

/* The socket: -s, else the configuration's status_socket, else the default. */
static int cmd_status(const cli_args *args)
{
    statuscli_format format = args->json      ? STATUSCLI_JSON
                              : args->metrics ? STATUSCLI_METRICS
                                              : STATUSCLI_TABLE;
    if (!args->config)
        return statuscli_run(args->socket ? args->socket
                                          : STATUSCLI_DEFAULT_SOCKET,
                             format);
    cfg *c = load_config(args->config);
    if (!c)
        return EXITCODE_CONFIG;
    int rc = statuscli_run(c->status_socket ? c->status_socket
                                            : STATUSCLI_DEFAULT_SOCKET,
                           format);
    cfg_free(c);
    return rc;
}

static int cmd_analyze(const cli_args *args)
{
    cfg *c = load_config(args->config);
    if (!c)
        return EXITCODE_CONFIG;
    int rc = analyze_run(c, args->json);
    cfg_free(c);
    return rc;
}

static int cmd_drop(const cli_args *args)
{
    cfg *c = load_config(args->config);
    if (!c)
        return EXITCODE_CONFIG;
    int rc = drop_run(c, args->yes, args->origins);
    cfg_free(c);
    return rc;
}

static int cmd_verify(const cli_args *args)
{
    cfg *c = load_config(args->config);
    if (!c)
        return EXITCODE_CONFIG;
    int rc = verify_run(c, args->service, args->table);
    cfg_free(c);
    return rc;
}

/*
 * An option's whole number, from min to max; -1 when not given. False
 * after the usage error.
 */
static bool parse_number(const char *option, const char *text, long long min,
                         long long max, long long *out)
{
    *out = -1;
    if (!text)
        return true;
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno == 0 && end != text && *end == '\0' && v >= min && v <= max) {
        *out = v;
        return true;
    }
    char msg[256];
    snprintf(msg, sizeof msg, "%s takes a whole number from %lld to %lld, "
             "not '%.64s'", option, min, max, text);
    usage_error("%s", msg);
    return false;
}

/* The socket: -s, else the configuration's status_socket, else the default. */
static const char *socket_of(const cli_args *args, const cfg *c)
{
    return args->socket          ? args->socket
           : c->status_socket    ? c->status_socket
                                 : STATUSCLI_DEFAULT_SOCKET;
}

static int cmd_move(const cli_args *args, move_verb verb)
{
    move_limits l;
    if (!parse_number("--lag-limit", args->lag_limit, 0, LLONG_MAX,
                      &l.lag_limit_bytes) ||
        !parse_number("--lock-timeout", args->lock_timeout, 1, INT_MAX,
                      &l.lock_timeout_ms) ||
        !parse_number("--pause-budget", args->pause_budget, 1, INT_MAX,
                      &l.pause_budget_ms))
        return EXITCODE_USAGE;
    cfg *c = load_config(args->config);
    if (!c)
        return EXITCODE_CONFIG;
    int rc = move_run(c, socket_of(args, c), verb, args->name, &l,
                      args->json);
    cfg_free(c);
    return rc;
}

static int cmd_cutover(const cli_args *args)
{
    return cmd_move(args, MOVE_CUTOVER);
}

static int cmd_rollback(const cli_args *args)
{
    return cmd_move(args, MOVE_ROLLBACK);
}

static int cmd_complete(const cli_args *args)
{
    cfg *c = load_config(args->config);
    if (!c)
        return EXITCODE_CONFIG;
    move_complete_opts o = {args->yes, args->archive, args->drop_tables};
    int rc = move_complete(c, socket_of(args, c), args->name, &o);
    cfg_free(c);
    return rc;
}

static int cmd_resync(const cli_args *args)
{
    cfg *c = load_config(args->config);
    if (!c)
        return EXITCODE_CONFIG;
    int rc = move_resync(c, socket_of(args, c), args->name, args->table,
                         args->json);
    cfg_free(c);
    return rc;
}

/*
 * For the shell completion (completion/cleave.bash), so that it offers
 * what this very binary takes: `--commands` the commands, one a line;
 * `--options CMD` the long options CMD takes, one a line, those that take
 * a value ending in '=', then SERVICE when CMD takes one.
 */
static int list_words(int argc, char **argv)
{
    bool options = strcmp(argv[1], "--options") == 0;
    const cli_command *cmd = argc == 3 ? find_command(argv[2]) : NULL;
    if (argc != (options ? 3 : 2))
        return usage_error("%s", options ? "--options takes a COMMAND"
                                         : "--commands takes no argument");
    if (options && !cmd)
        return usage_error("unknown command '%s'", argv[2]);
    for (size_t i = 0; !options && i < sizeof commands / sizeof *commands;
         i++)
        printf("%s\n", commands[i].name);
    for (const struct option *o = long_options; options && o->name; o++)
        if (strchr(cmd->shortopts, o->val))
            printf("--%s%s\n", o->name, o->has_arg ? "=" : "");
    if (options && cmd->takes_service)
        printf("SERVICE\n");
    return EXITCODE_OK;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXITCODE_USAGE;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
        printf("cleave %s\n", CLEAVE_VERSION);
        return EXITCODE_OK;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return EXITCODE_OK;
    }
    if (strcmp(argv[1], "--commands") == 0 ||
        strcmp(argv[1], "--options") == 0)
        return list_words(argc, argv);
    run_keep_argv(argv);
    const cli_command *cmd = find_command(argv[1]);
    if (!cmd)
        return usage_error("unknown command '%s'", argv[1]);
    current_command = cmd->name;
    cli_args args = {0};
    int rc = parse_args(cmd, argc - 1, argv + 1, &args);
    return rc != EXITCODE_OK ? rc : cmd->run(&args);
}
