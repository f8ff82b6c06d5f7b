#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "duration.h"
#include "endpoint.h"

const char *pyprof_mode_name(enum pyprof_mode mode)
{
    return mode == PYPROF_MODE_WALL ? "wall" : "cpu";
}

static void warnf(pyprof_warn_fn warn, int *count, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void warnf(pyprof_warn_fn warn, int *count, const char *fmt, ...)
{
    char line[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    (*count)++;
    if (warn != NULL)
        warn(line);
}

/* Values shown in warnings are cut short so that a hostile value cannot flood stderr. */
#define SHOWN "%.64s"

static void load_log(struct pyprof_config *cfg, pyprof_env_fn env, pyprof_warn_fn warn, int *n)
{
    const char *v = env("PYPROF_LOG");
    cfg->log_level = PYPROF_LOG_WARN;
    if (v == NULL || *v == '\0' || strcasecmp(v, "warn") == 0)
        return;
    if (strcasecmp(v, "quiet") == 0)
        cfg->log_level = PYPROF_LOG_QUIET;
    else if (strcasecmp(v, "debug") == 0)
        cfg->log_level = PYPROF_LOG_DEBUG;
    else
        warnf(warn, n, "PYPROF_LOG='" SHOWN "' is not quiet, warn or debug; using warn", v);
}

static void load_interval(struct pyprof_config *cfg, pyprof_env_fn env, pyprof_warn_fn warn,
                          int *n)
{
    const char *v = env("PYPROF_INTERVAL");
    uint64_t ns;
    cfg->interval_ns = PYPROF_DEFAULT_INTERVAL_NS;
    if (v == NULL || *v == '\0')
        return;
    if (pyprof_parse_duration(v, &ns) != 0)
        warnf(warn, n, "PYPROF_INTERVAL='" SHOWN "' is not a duration such as 10ms or 500us; "
              "using 10ms", v);
    else if (ns < PYPROF_MIN_INTERVAL_NS || ns > PYPROF_MAX_INTERVAL_NS)
        warnf(warn, n, "PYPROF_INTERVAL='" SHOWN "' is outside 50us..60s; using 10ms", v);
    else
        cfg->interval_ns = ns;
}

static void load_mode(struct pyprof_config *cfg, pyprof_env_fn env, pyprof_warn_fn warn, int *n)
{
    const char *v = env("PYPROF_MODE");
    cfg->mode = PYPROF_MODE_CPU;
    if (v == NULL || *v == '\0' || strcasecmp(v, "cpu") == 0)
        return;
    if (strcasecmp(v, "wall") == 0)
        cfg->mode = PYPROF_MODE_WALL;
    else
        warnf(warn, n, "PYPROF_MODE='" SHOWN "' is not cpu or wall; using cpu", v);
}

static void load_start(struct pyprof_config *cfg, pyprof_env_fn env, pyprof_warn_fn warn, int *n)
{
    const char *v = env("PYPROF_START");
    cfg->start = 1;
    if (v == NULL || *v == '\0' || strcmp(v, "1") == 0)
        return;
    if (strcmp(v, "0") == 0)
        cfg->start = 0;
    else
        warnf(warn, n, "PYPROF_START='" SHOWN "' is not 0 or 1; using 1", v);
}

static void load_max_stacks(struct pyprof_config *cfg, pyprof_env_fn env, pyprof_warn_fn warn,
                            int *n)
{
    const char *v = env("PYPROF_MAX_STACKS");
    cfg->max_stacks = PYPROF_DEFAULT_MAX_STACKS;
    if (v == NULL || *v == '\0')
        return;
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || v[0] == '-' || value < 16 ||
        value > PYPROF_MAX_MAX_STACKS)
        warnf(warn, n, "PYPROF_MAX_STACKS='" SHOWN "' is not a number in 16..%u; using %u", v,
              PYPROF_MAX_MAX_STACKS, PYPROF_DEFAULT_MAX_STACKS);
    else
        cfg->max_stacks = (uint32_t)value;
}

static void load_paths(struct pyprof_config *cfg, pyprof_env_fn env, pyprof_warn_fn warn, int *n)
{
    const char *dir = env("PYPROF_DIR");
    if (pyprof_socket_dir(dir, env("XDG_RUNTIME_DIR"), cfg->dir, sizeof(cfg->dir)) != 0) {
        warnf(warn, n, "PYPROF_DIR is too long; using the default directory");
        pyprof_socket_dir(NULL, env("XDG_RUNTIME_DIR"), cfg->dir, sizeof(cfg->dir));
    }
    const char *out = env("PYPROF_OUTPUT");
    cfg->output[0] = '\0';
    if (out != NULL && *out != '\0') {
        if (strlen(out) >= sizeof(cfg->output))
            warnf(warn, n, "PYPROF_OUTPUT is too long; no profile will be written at exit");
        else
            strcpy(cfg->output, out);
    }
}

int pyprof_config_load(struct pyprof_config *cfg, pyprof_env_fn env, pyprof_warn_fn warn)
{
    int n = 0;
    memset(cfg, 0, sizeof(*cfg));
    load_log(cfg, env, warn, &n);
    load_interval(cfg, env, warn, &n);
    load_mode(cfg, env, warn, &n);
    load_start(cfg, env, warn, &n);
    load_max_stacks(cfg, env, warn, &n);
    load_paths(cfg, env, warn, &n);
    return n;
}
