/*
 * The agent's configuration, read once from the environment at start-up.
 *
 *   PYPROF_INTERVAL   sampling interval, a duration: 10ms (default), 500us, 1s, 2.5ms
 *   PYPROF_MODE       cpu (default) or wall
 *   PYPROF_START      1 (default): sample from start; 0: wait for `pyprofctl start`
 *   PYPROF_DIR        socket directory (see proto/endpoint.h for the default)
 *   PYPROF_OUTPUT     write the profile to this file at exit (format from the extension)
 *   PYPROF_MAX_STACKS distinct stacks kept (default 65536); more go to [truncated]
 *   PYPROF_LOG        quiet, warn (default) or debug
 *
 * An invalid value never stops the host: it produces one warning naming the variable and
 * the default used instead.
 */
#ifndef PYPROF_CONFIG_H
#define PYPROF_CONFIG_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "duration.h"
#include "log.h"

enum pyprof_mode {
    PYPROF_MODE_CPU = 0,
    PYPROF_MODE_WALL = 1,
};

#define PYPROF_DEFAULT_INTERVAL_NS 10000000ull /* 10 ms */
#define PYPROF_MIN_INTERVAL_NS 50000ull        /* 50 us */
#define PYPROF_MAX_INTERVAL_NS 60000000000ull  /* 60 s */
#define PYPROF_DEFAULT_MAX_STACKS 65536u
#define PYPROF_MAX_MAX_STACKS (16u * 1024u * 1024u)

struct pyprof_config {
    uint64_t interval_ns;
    enum pyprof_mode mode;
    int start;                 /* 1: sample from start */
    char dir[PATH_MAX];        /* socket directory, resolved */
    char output[PATH_MAX];     /* "" when unset */
    uint32_t max_stacks;
    enum pyprof_log_level log_level;
};

/* Looks a variable up; getenv in the agent, a table in tests. */
typedef const char *(*pyprof_env_fn)(const char *name);
/* Receives one complete warning line (without newline). */
typedef void (*pyprof_warn_fn)(const char *line);

/* Fill `cfg` from the environment. Never fails: bad values are replaced by their default
 * after one call to `warn`. Returns the number of warnings issued. */
int pyprof_config_load(struct pyprof_config *cfg, pyprof_env_fn env, pyprof_warn_fn warn);

/* "cpu"/"wall". */
const char *pyprof_mode_name(enum pyprof_mode mode);

#endif
