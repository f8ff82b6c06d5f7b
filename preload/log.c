#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

static volatile int log_level = PYPROF_LOG_WARN;

void pyprof_log_set_level(enum pyprof_log_level level)
{
    log_level = level;
}

static void log_line(const char *fmt, va_list ap)
{
    char line[512];
    int n = snprintf(line, sizeof(line), "pyprof[%d]: ", (int)getpid());
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, len);
    (void)ignored;
}

void pyprof_warn(const char *fmt, ...)
{
    if (log_level < PYPROF_LOG_WARN)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_line(fmt, ap);
    va_end(ap);
}

void pyprof_debug(const char *fmt, ...)
{
    if (log_level < PYPROF_LOG_DEBUG)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_line(fmt, ap);
    va_end(ap);
}
