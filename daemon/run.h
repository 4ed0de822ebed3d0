/*
 * run: `cleave run -c FILE`, the daemon (PRODUCT.md §3).
 */
#ifndef CLEAVE_DAEMON_RUN_H
#define CLEAVE_DAEMON_RUN_H

/* Runs until SIGTERM/SIGINT; returns the exit code (0, 1 or 78). */
int run_daemon(const char *config_path);
/*
 * The command line, for starting again in the same process (exec) when a
 * reload changes what the daemon replicates.
 */
void run_keep_argv(char **argv);

#endif
