/*
 * log: one line per event on stderr, `key=value` fields after the level.
 * Under systemd (JOURNAL_STREAM set) lines carry sd-daemon priority
 * prefixes instead of a timestamp, so the journal files them by level.
 * Callers never pass a password: connection strings go through
 * cfg_dsn_redacted() first.
 */
#ifndef CLEAVE_COMMON_LOG_H
#define CLEAVE_COMMON_LOG_H

typedef enum log_level {
    LOG_LEVEL_DEBUG = 0,
    LOG_LEVEL_INFO,
    LOG_LEVEL_WARNING,
    LOG_LEVEL_ERROR,
} log_level;

void log_set_level(log_level level);
log_level log_get_level(void);
void log_write(log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_write(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...) log_write(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warning(...) log_write(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_error(...) log_write(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
