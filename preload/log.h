/*
 * The agent's only voice: one line per message on stderr, written with a single write(2)
 * so that it cannot interleave with the host's output mid-line, and never through stdio
 * (the host owns stdio's buffers and locks).
 */
#ifndef PYPROF_LOG_H
#define PYPROF_LOG_H

enum pyprof_log_level {
    PYPROF_LOG_QUIET = 0,
    PYPROF_LOG_WARN = 1,
    PYPROF_LOG_DEBUG = 2,
};

/* Set once at start-up by the agent (default WARN). */
void pyprof_log_set_level(enum pyprof_log_level level);

void pyprof_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void pyprof_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
