/* log: leveled key=value lines on stderr; see log.h. */
#include "common/log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static log_level current = LOG_LEVEL_INFO;

static const char *const names[] = {"debug", "info", "warning", "error"};
/* sd-daemon(3) priorities: debug 7, info 6, warning 4, error 3. */
static const int priorities[] = {7, 6, 4, 3};

void log_set_level(log_level level)
{
    current = level;
}

log_level log_get_level(void)
{
    return current;
}

void log_write(log_level level, const char *fmt, ...)
{
    if (level < current)
        return;
    char line[2048];
    int off;
    if (getenv("JOURNAL_STREAM")) {
        off = snprintf(line, sizeof line, "<%d>level=%s ", priorities[level],
                       names[level]);
    } else {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        off = snprintf(line, sizeof line,
                       "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s ",
                       tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                       tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                       names[level]);
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + off, sizeof line - (size_t)off, fmt, ap);
    va_end(ap);
    /* One write per line, so lines from threads never interleave. */
    fprintf(stderr, "%s\n", line);
}
