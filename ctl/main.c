/*
 * pyprofctl: list profiled Python processes, control their agents, fetch their profiles.
 * Exit status: 0 success, 1 failure, 2 usage error.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "codec.h"
#include "duration.h"
#include "endpoint.h"
#include "output.h"
#include "flamegraph.h"
#include "pbuild.h"
#include "top.h"

#define EXIT_USAGE 2

extern char **environ;

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *usage;
    const char *help;
};

static const struct command *current;

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "pyprofctl %s: ", current ? current->name : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: pyprofctl %s\n", current ? current->usage : "COMMAND ...");
    return EXIT_USAGE;
}

static void print_help(const struct command *c)
{
    printf("usage: pyprofctl %s\n\n%s", c->usage, c->help);
}

static void socket_dir(char *out, size_t size)
{
    if (pyprof_socket_dir(getenv("PYPROF_DIR"), getenv("XDG_RUNTIME_DIR"), out, size) != 0)
        pyprof_socket_dir(NULL, getenv("XDG_RUNTIME_DIR"), out, size);
}

static int parse_pid(const char *text, pid_t *pid)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v <= 0 || v > INT_MAX)
        return -1;
    *pid = (pid_t)v;
    return 0;
}

/* Send one operation to `pid`; prints the reason on failure. */
static int call(pid_t pid, Pyprof__Op op, int reset_after, Pyprof__Response **resp)
{
    char dir[PATH_MAX], err[512];
    Pyprof__Request req = PYPROF__REQUEST__INIT;
    req.version = PYPROF_PROTOCOL_VERSION;
    req.op = op;
    req.reset_after = reset_after;
    socket_dir(dir, sizeof(dir));
    int rc = pyprof_client_call(dir, pid, &req, resp, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "pyprofctl: %s\n", err);
    return rc;
}

/* ---- list / status ---------------------------------------------------------------------- */

static json_t *status_json(const Pyprof__Status *s)
{
    return json_pack("{s:i, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, "
                     "s:f, s:I, s:I, s:I}",
                     "pid", s->pid, "cmdline", s->cmdline, "python", s->python_version,
                     "state", s->sampling ? "sampling" : "stopped", "mode", s->mode,
                     "interval_us", (json_int_t)s->interval_us, "ticks", (json_int_t)s->ticks,
                     "samples", (json_int_t)s->thread_samples, "dropped", (json_int_t)s->dropped,
                     "torn", (json_int_t)s->torn, "truncated", (json_int_t)s->truncated,
                     "stacks", (json_int_t)s->stacks, "max_stacks", (json_int_t)s->max_stacks,
                     "total_weight_ns", (json_int_t)s->total_weight,
                     "achieved_hz", s->achieved_hz, "sampler_cpu_percent", s->sampler_cpu_percent,
                     "sampler_cpu_ns", (json_int_t)s->sampler_cpu_ns,
                     "sample_cost_ns", (json_int_t)s->sample_cost_ns,
                     "profile_bytes", (json_int_t)s->profile_bytes);
}

static void print_json(json_t *j)
{
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_ENSURE_ASCII);
    if (text != NULL)
        puts(text);
    free(text);
    json_decref(j);
}

static int collect_pids(pid_t **out, size_t *n)
{
    char dir[PATH_MAX];
    socket_dir(dir, sizeof(dir));
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return errno == ENOENT ? 0 : -errno;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        pid_t pid;
        if (pyprof_socket_name_pid(e->d_name, &pid) != 0)
            continue;
        if (*n == cap) {
            pid_t *p = realloc(*out, (cap = cap ? cap * 2 : 16) * sizeof(pid_t));
            if (p == NULL)
                break;
            *out = p;
        }
        (*out)[(*n)++] = pid;
    }
    closedir(d);
    return 0;
}

static int pid_compare(const void *a, const void *b)
{
    return *(const pid_t *)a - *(const pid_t *)b;
}

static int cmd_list(int argc, char **argv)
{
    int json = argc == 2 && strcmp(argv[1], "--json") == 0;
    if (argc > 1 && !json)
        return usage_error("unexpected argument '%s'", argv[1]);
    pid_t *pids;
    size_t n;
    if (collect_pids(&pids, &n) != 0) {
        fprintf(stderr, "pyprofctl: cannot read the socket directory: %s\n", strerror(errno));
        return 1;
    }
    if (n > 1)
        qsort(pids, n, sizeof(*pids), pid_compare);
    json_t *array = json ? json_array() : NULL;
    if (!json)
        printf("%-8s %-8s %-9s %-5s %9s %10s %8s  %s\n", "PID", "PYTHON", "STATE", "MODE",
               "INTERVAL", "SAMPLES", "STACKS", "COMMAND");
    for (size_t i = 0; i < n; i++) {
        Pyprof__Response *r;
        /* A process that vanished or left a stale socket is reported (and cleaned) by call(). */
        if (call(pids[i], PYPROF__OP__OP_STATUS, 0, &r) != 0)
            continue;
        const Pyprof__Status *s = r->status;
        if (s == NULL) {
            pyprof_response_free(r);
            continue;
        }
        if (json) {
            json_array_append_new(array, status_json(s));
        } else {
            char interval[32];
            snprintf(interval, sizeof(interval), s->interval_us % 1000 ? "%lluus" : "%llums",
                     (unsigned long long)(s->interval_us % 1000 ? s->interval_us
                                                                : s->interval_us / 1000));
            printf("%-8d %-8s %-9s %-5s %9s %10llu %8llu  %s\n", s->pid, s->python_version,
                   s->sampling ? "sampling" : "stopped", s->mode, interval,
                   (unsigned long long)s->thread_samples, (unsigned long long)s->stacks,
                   s->cmdline);
        }
        pyprof_response_free(r);
    }
    if (json)
        print_json(array);
    free(pids);
    return 0;
}

static int one_pid_arg(int argc, char **argv, pid_t *pid, int *json)
{
    int have = 0;
    if (json)
        *json = 0;
    for (int i = 1; i < argc; i++) {
        if (json && strcmp(argv[i], "--json") == 0)
            *json = 1;
        else if (!have && parse_pid(argv[i], pid) == 0)
            have = 1;
        else
            return usage_error(have ? "unexpected argument '%s'" : "'%s' is not a process id",
                               argv[i]);
    }
    return have ? 0 : usage_error("a process id is required");
}

static void print_status(const Pyprof__Status *s)
{
    printf("pid:              %d\n", s->pid);
    printf("command:          %s\n", s->cmdline);
    printf("python:           %s\n", s->python_version);
    printf("state:            %s\n", s->sampling ? "sampling" : "stopped");
    printf("mode:             %s\n", s->mode);
    printf("interval:         %lluus\n", (unsigned long long)s->interval_us);
    printf("ticks:            %llu (%.1f Hz achieved)\n", (unsigned long long)s->ticks,
           s->achieved_hz);
    printf("thread samples:   %llu\n", (unsigned long long)s->thread_samples);
    printf("dropped:          %llu\n", (unsigned long long)s->dropped);
    printf("torn:             %llu\n", (unsigned long long)s->torn);
    printf("truncated:        %llu\n", (unsigned long long)s->truncated);
    printf("stacks:           %llu of %llu (profile memory %.1f MiB)\n",
           (unsigned long long)s->stacks, (unsigned long long)s->max_stacks,
           (double)s->profile_bytes / (1024.0 * 1024.0));
    printf("sampler cpu:      %.3f%% of the process (%.1f ms)\n", s->sampler_cpu_percent,
           (double)s->sampler_cpu_ns / 1e6);
    printf("cost per sample:  %.2fus\n", (double)s->sample_cost_ns / 1000.0);
}

static int cmd_status(int argc, char **argv)
{
    pid_t pid;
    int json, rc = one_pid_arg(argc, argv, &pid, &json);
    if (rc != 0)
        return rc;
    Pyprof__Response *r;
    if (call(pid, PYPROF__OP__OP_STATUS, 0, &r) != 0)
        return 1;
    if (r->status == NULL) {
        pyprof_response_free(r);
        fprintf(stderr, "pyprofctl: the agent sent no status\n");
        return 1;
    }
    if (json)
        print_json(status_json(r->status));
    else
        print_status(r->status);
    pyprof_response_free(r);
    return 0;
}

static int simple_op(int argc, char **argv, Pyprof__Op op, const char *done)
{
    pid_t pid;
    int rc = one_pid_arg(argc, argv, &pid, NULL);
    if (rc != 0)
        return rc;
    Pyprof__Response *r;
    if (call(pid, op, 0, &r) != 0)
        return 1;
    fprintf(stderr, "pyprofctl: %d %s\n", (int)pid, done);
    pyprof_response_free(r);
    return 0;
}

static int cmd_start(int argc, char **argv)
{
    return simple_op(argc, argv, PYPROF__OP__OP_START, "sampling");
}

static int cmd_stop(int argc, char **argv)
{
    return simple_op(argc, argv, PYPROF__OP__OP_STOP, "stopped");
}

static int cmd_reset(int argc, char **argv)
{
    return simple_op(argc, argv, PYPROF__OP__OP_RESET, "profile reset");
}

/* ---- dump / run ---------------------------------------------------------------------------- */

struct output_args {
    const char *path;
    enum pyprof_format format;
    struct pyprof_render_options render;
    int reset, all;
    const char *match;
    uint64_t duration_ns;
};

enum { OPT_FUNCTIONS = 256, OPT_THREADS, OPT_SAMPLES, OPT_RESET, OPT_ALL, OPT_MATCH,
       OPT_DURATION, OPT_ICICLE };

enum { ARGS_RUN, ARGS_DUMP, ARGS_CONVERT };

static const struct option output_options[] = {
    {"output", required_argument, NULL, 'o'},
    {"format", required_argument, NULL, 'f'},
    {"functions", no_argument, NULL, OPT_FUNCTIONS},
    {"threads", no_argument, NULL, OPT_THREADS},
    {"samples", no_argument, NULL, OPT_SAMPLES},
    {"reset", no_argument, NULL, OPT_RESET},
    {"all", no_argument, NULL, OPT_ALL},
    {"match", required_argument, NULL, OPT_MATCH},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"icicle", no_argument, NULL, OPT_ICICLE},
    {NULL, 0, NULL, 0},
};

/* Parse the options shared by dump, run and convert; returns the index of the first
 * operand or -1 after a usage error has been printed. For run, options end at the command;
 * --reset, --all, --match and --duration belong to dump alone. */
static int parse_output_args(int argc, char **argv, struct output_args *a, int which)
{
    int is_dump = which == ARGS_DUMP;
    const char *format = NULL;
    int c;
    memset(a, 0, sizeof(*a));
    optind = 0;   /* full re-initialisation of GNU getopt */
    opterr = 0;
    while ((c = getopt_long(argc, argv, which == ARGS_RUN ? "+:o:f:" : ":o:f:", output_options, NULL)) != -1) {
        switch (c) {
        case 'o': a->path = optarg; break;
        case 'f': format = optarg; break;
        case OPT_FUNCTIONS: a->render.stacks.functions = 1; break;
        case OPT_THREADS: a->render.stacks.threads = 1; break;
        case OPT_SAMPLES: a->render.stacks.samples = 1; break;
        case OPT_ICICLE: a->render.icicle = 1; break;
        case OPT_RESET:
        case OPT_ALL:
        case OPT_MATCH:
        case OPT_DURATION:
            if (!is_dump)
                return usage_error("%s only applies to dump", argv[optind - 1]), -1;
            if (c == OPT_RESET)
                a->reset = 1;
            else if (c == OPT_ALL)
                a->all = 1;
            else if (c == OPT_MATCH)
                a->match = optarg;
            else if (pyprof_parse_duration(optarg, &a->duration_ns) != 0 || a->duration_ns == 0)
                return usage_error("--duration '%s' is not a duration such as 30s or 500ms",
                                   optarg), -1;
            break;
        case ':':
            return usage_error("option '%s' needs a value", argv[optind - 1]), -1;
        default:
            return usage_error("unknown option '%s'", argv[optind - 1]), -1;
        }
    }
    a->format = format ? pyprof_format_by_name(format) : pyprof_format_by_path(a->path);
    if (a->format == 0)
        return usage_error("unknown format '%s' (collapsed, pprof, pprof-raw, speedscope, svg)",
                           format), -1;
    if (a->match && !a->all)
        return usage_error("--match goes with --all"), -1;
    return optind;
}

/* Reset, then wait out the duration; a countdown on a terminal, silence when piped. */
static void profile_for(uint64_t ns, const char *what)
{
    int tty = isatty(STDERR_FILENO);
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        uint64_t elapsed = (uint64_t)(now.tv_sec - start.tv_sec) * 1000000000ull +
                           (uint64_t)(now.tv_nsec - start.tv_nsec);
        if (elapsed >= ns)
            break;
        uint64_t left = ns - elapsed;
        if (tty)
            fprintf(stderr, "\rpyprofctl: profiling %s, %.0fs left   ", what,
                    (double)(left + 999999999ull) / 1e9 - 0.5);
        uint64_t step = left < 200000000ull ? left : 200000000ull;
        struct timespec ts = {(time_t)(step / 1000000000ull), (long)(step % 1000000000ull)};
        nanosleep(&ts, NULL);
    }
    if (tty)
        fprintf(stderr, "\r%60s\r", "");
}

static int write_profile(const Perftools__Profiles__Profile *p, const struct output_args *a)
{
    char err[512];
    if (pyprof_output_write(p, a->format, &a->render, a->path, err, sizeof(err)) != 0) {
        fprintf(stderr, "pyprofctl: %s\n", err);
        return 1;
    }
    return 0;
}

static int dump_one(pid_t pid, const struct output_args *a)
{
    Pyprof__Response *r;
    char what[32];
    if (a->duration_ns) {
        if (call(pid, PYPROF__OP__OP_RESET, 0, &r) != 0)
            return 1;
        pyprof_response_free(r);
        snprintf(what, sizeof(what), "%d", (int)pid);
        profile_for(a->duration_ns, what);
    }
    if (call(pid, PYPROF__OP__OP_DUMP, a->reset, &r) != 0)
        return 1;
    int rc = 1;
    if (r->profile == NULL)
        fprintf(stderr, "pyprofctl: the agent sent no profile\n");
    else
        rc = write_profile(r->profile, a);
    pyprof_response_free(r);
    return rc;
}

/* The profiled processes of this user whose command line contains `match` (all if NULL). */
static size_t matching_pids(const char *match, pid_t **out)
{
    pid_t *pids;
    size_t n, kept = 0;
    if (collect_pids(&pids, &n) != 0)
        n = 0;
    if (n > 1)
        qsort(pids, n, sizeof(*pids), pid_compare);
    for (size_t i = 0; i < n; i++) {
        Pyprof__Response *r;
        if (call(pids[i], PYPROF__OP__OP_STATUS, 0, &r) != 0)
            continue;
        if (match == NULL || (r->status && strstr(r->status->cmdline, match)))
            pids[kept++] = pids[i];
        pyprof_response_free(r);
    }
    *out = pids;
    return kept;
}

static const char *comment_value(const Perftools__Profiles__Profile *p, const char *key)
{
    size_t klen = strlen(key);
    for (size_t i = 0; i < p->n_comment; i++) {
        int64_t s = p->comment[i];
        if (s < 0 || (uint64_t)s >= p->n_string_table)
            continue;
        const char *text = p->string_table[s];
        if (strncmp(text, key, klen) == 0 && text[klen] == '=')
            return text + klen + 1;
    }
    return "";
}

/* One profile from every matching process: a root frame and a pid label per process. */
static int dump_all(const struct output_args *a)
{
    pid_t *pids;
    size_t n = matching_pids(a->match, &pids);
    if (n == 0) {
        fprintf(stderr, "pyprofctl: no profiled process%s%s\n", a->match ? " matches " : "",
                a->match ? a->match : "");
        free(pids);
        return 1;
    }
    if (a->duration_ns) {
        for (size_t i = 0; i < n; i++) {
            Pyprof__Response *r;
            if (call(pids[i], PYPROF__OP__OP_RESET, 0, &r) == 0)
                pyprof_response_free(r);
        }
        char what[48];
        snprintf(what, sizeof(what), "%zu processes", n);
        profile_for(a->duration_ns, what);
    }
    struct pyprof_pbuild *b = NULL;
    int rc = 1;
    for (size_t i = 0; i < n; i++) {
        Pyprof__Response *r;
        if (call(pids[i], PYPROF__OP__OP_DUMP, a->reset, &r) != 0 || r->profile == NULL) {
            continue;
        }
        const Perftools__Profiles__Profile *p = r->profile;
        if (b == NULL) {
            const char *mode = comment_value(p, "mode");
            b = pyprof_pbuild_new(strcmp(mode, "wall") == 0 ? "wall" : "cpu", p->period);
            if (b == NULL) {
                pyprof_response_free(r);
                break;
            }
            pyprof_pbuild_times(b, p->time_nanos, p->duration_nanos);
            pyprof_pbuild_comment(b, "cmdline=pyprofctl dump --all");
            char mode_comment[32];
            snprintf(mode_comment, sizeof(mode_comment), "mode=%s", mode);
            pyprof_pbuild_comment(b, mode_comment);
        }
        char root[256];
        snprintf(root, sizeof(root), "process %d: %.200s", (int)pids[i],
                 comment_value(p, "cmdline"));
        struct pyprof_pbuild_label pid_label = {"pid", NULL, pids[i]};
        if (pyprof_pbuild_append(b, p, root, &pid_label, 1) != 0)
            fprintf(stderr, "pyprofctl: the profile of %d is inconsistent; left out\n",
                    (int)pids[i]);
        pyprof_response_free(r);
    }
    Perftools__Profiles__Profile *merged = b ? pyprof_pbuild_finish(b) : NULL;
    if (merged != NULL)
        rc = write_profile(merged, a);
    else
        fprintf(stderr, "pyprofctl: no profile could be fetched\n");
    pyprof_pbuild_free_profile(merged);
    free(pids);
    return rc;
}

static int cmd_dump(int argc, char **argv)
{
    struct output_args a;
    int first = parse_output_args(argc, argv, &a, ARGS_DUMP);
    pid_t pid;
    if (first < 0)
        return EXIT_USAGE;
    if (a.all) {
        if (first != argc)
            return usage_error("--all takes no process id");
        return dump_all(&a);
    }
    if (first != argc - 1)
        return usage_error(first == argc ? "a process id (or --all) is required"
                                         : "too many arguments");
    if (parse_pid(argv[first], &pid) != 0)
        return usage_error("'%s' is not a process id", argv[first]);
    return dump_one(pid, &a);
}

static int top_snapshot(pid_t pid, struct pyprof_top *t, char *heading, size_t size)
{
    Pyprof__Response *r;
    if (call(pid, PYPROF__OP__OP_DUMP, 0, &r) != 0)
        return -1;
    int rc = r->profile ? pyprof_top_update(t, r->profile) : -EINVAL;
    if (r->status)
        snprintf(heading, size, "pyprofctl top %d: %.60s  [python %s, %s mode, %s]", (int)pid,
                 r->status->cmdline, r->status->python_version, r->status->mode,
                 r->status->sampling ? "sampling" : "STOPPED");
    pyprof_response_free(r);
    if (rc != 0)
        fprintf(stderr, "pyprofctl: the agent's profile is inconsistent\n");
    return rc;
}

static int cmd_top(int argc, char **argv)
{
    static const struct option options[] = {
        {"interval", required_argument, NULL, 'i'}, {"once", no_argument, NULL, '1'},
        {"rows", required_argument, NULL, 'n'}, {"samples", no_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    uint64_t interval = 1000000000ull;
    int once = 0, rows = 20, samples = 0, c;
    pid_t pid;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":i:n:", options, NULL)) != -1) {
        if (c == 'i' && (pyprof_parse_duration(optarg, &interval) != 0 || interval < 100000000ull))
            return usage_error("--interval '%s' is not a duration of at least 100ms", optarg);
        else if (c == 'n' && (rows = atoi(optarg)) <= 0)
            return usage_error("--rows takes a positive number");
        else if (c == '1')
            once = 1;
        else if (c == 's')
            samples = 1;
        else if (c == '?' || c == ':')
            return usage_error("unknown option or missing value: '%s'", argv[optind - 1]);
    }
    if (optind != argc - 1 || parse_pid(argv[optind], &pid) != 0)
        return usage_error("a process id is required");
    struct pyprof_top *t = pyprof_top_new(samples);
    char heading[256] = "";
    if (t == NULL || top_snapshot(pid, t, heading, sizeof(heading)) != 0) {
        pyprof_top_free(t);
        return 1;
    }
    int tty = isatty(STDOUT_FILENO) && !once;
    for (;;) {
        struct timespec ts = {(time_t)(interval / 1000000000ull), (long)(interval % 1000000000ull)};
        nanosleep(&ts, NULL);
        if (top_snapshot(pid, t, heading, sizeof(heading)) != 0)
            break;
        if (tty)
            fputs("\033[H\033[2J", stdout);   /* home, clear: a plain refresh */
        pyprof_top_print(t, rows, heading, stdout);
        fflush(stdout);
        if (once) {
            pyprof_top_free(t);
            return 0;
        }
        if (!tty)
            putchar('\n');
    }
    pyprof_top_free(t);
    return 1;
}

static int cmd_diff(int argc, char **argv)
{
    struct output_args a;
    int first = parse_output_args(argc, argv, &a, ARGS_CONVERT);
    if (first < 0)
        return EXIT_USAGE;
    if (first != argc - 2)
        return usage_error("two profiles are required: BEFORE AFTER");
    if (a.path != NULL && a.format != PYPROF_FORMAT_SVG)
        return usage_error("-o takes an .svg file (the differential flamegraph)");
    Perftools__Profiles__Profile *before = NULL, *after = NULL;
    char err[512];
    int rc = 1;
    if (pyprof_output_read(argv[first], &before, err, sizeof(err)) != 0 ||
        pyprof_output_read(argv[first + 1], &after, err, sizeof(err)) != 0) {
        fprintf(stderr, "pyprofctl: %s\n", err);
        goto out;
    }
    struct pyprof_top *tb = pyprof_top_new(a.render.stacks.samples);
    struct pyprof_top *ta = pyprof_top_new(a.render.stacks.samples);
    if (tb == NULL || ta == NULL || pyprof_top_update(tb, before) != 0 ||
        pyprof_top_update(ta, after) != 0) {
        fprintf(stderr, "pyprofctl: a profile is inconsistent\n");
    } else {
        pyprof_top_diff_print(tb, ta, 20, stdout);
        rc = 0;
    }
    pyprof_top_free(tb);
    pyprof_top_free(ta);
    if (rc == 0 && a.path != NULL) {
        struct pyprof_flamegraph_options fg = {a.render.stacks, "Differential flamegraph: "
                                               "red grew, blue shrank (share of the total)",
                                               a.render.icicle, 0, before};
        FILE *f = fopen(a.path, "w");
        rc = f && pyprof_flamegraph_write(after, &fg, f) == 0 ? 0 : 1;
        if (f && fclose(f) != 0)
            rc = 1;
        if (rc != 0)
            fprintf(stderr, "pyprofctl: cannot write %s\n", a.path);
        else
            fprintf(stderr, "pyprofctl: differential flamegraph written to %s\n", a.path);
    }
out:
    pyprof_output_free(before);
    pyprof_output_free(after);
    return rc;
}

static int cmd_convert(int argc, char **argv)
{
    struct output_args a;
    int first = parse_output_args(argc, argv, &a, ARGS_CONVERT);
    if (first < 0)
        return EXIT_USAGE;
    if (first != argc - 1)
        return usage_error(first == argc ? "an input file is required" : "too many arguments");
    Perftools__Profiles__Profile *p;
    char err[512];
    if (pyprof_output_read(argv[first], &p, err, sizeof(err)) != 0) {
        fprintf(stderr, "pyprofctl: %s\n", err);
        return 1;
    }
    int rc = write_profile(p, &a);
    pyprof_output_free(p);
    return rc;
}

static int find_library(char *out, size_t size)
{
    const char *lib = getenv("PYPROF_LIB");
    if (lib != NULL && *lib)
        return snprintf(out, size, "%s", lib) < (int)size ? 0 : -1;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash == NULL)
        return -1;
    *slash = '\0';
    int len = snprintf(out, size, "%s/../lib/libpyprof.so", exe);
    if (len < 0 || (size_t)len >= size)
        return -1;
    return access(out, R_OK) == 0 ? 0 : -1;
}

static int set_preload(const char *lib)
{
    const char *old = getenv("LD_PRELOAD");
    char value[PATH_MAX * 2];
    if (old != NULL && *old)
        snprintf(value, sizeof(value), "%s:%s", old, lib);   /* an ASan runtime must stay first */
    else
        snprintf(value, sizeof(value), "%s", lib);
    return setenv("LD_PRELOAD", value, 1);
}

static int wait_child(pid_t child)
{
    int status;
    /* The child is profiled, not us: let Ctrl-C reach it and wait for it to finish. */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    while (waitpid(child, &status, 0) < 0)
        if (errno != EINTR)
            return 1;
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

static int cmd_run(int argc, char **argv)
{
    struct output_args a;
    int first = parse_output_args(argc, argv, &a, ARGS_RUN);
    char lib[PATH_MAX], tmp[] = "/tmp/pyprof-run-XXXXXX.pb";
    if (first < 0)
        return EXIT_USAGE;
    if (first >= argc)
        return usage_error("a command to run is required (pyprofctl run [-o FILE] -- CMD ...)");
    if (find_library(lib, sizeof(lib)) != 0) {
        fprintf(stderr, "pyprofctl: cannot find libpyprof.so next to pyprofctl; set PYPROF_LIB\n");
        return 1;
    }
    if (a.path != NULL) {
        int fd = mkstemps(tmp, 3);
        if (fd < 0) {
            fprintf(stderr, "pyprofctl: cannot create a temporary file: %s\n", strerror(errno));
            return 1;
        }
        close(fd);
        setenv("PYPROF_OUTPUT", tmp, 1);
    }
    set_preload(lib);
    pid_t child;
    int rc = posix_spawnp(&child, argv[first], NULL, NULL, argv + first, environ);
    if (rc != 0) {
        fprintf(stderr, "pyprofctl: cannot run %s: %s\n", argv[first], strerror(rc));
        if (a.path)
            unlink(tmp);
        return 127;
    }
    int status = wait_child(child);
    if (a.path != NULL) {
        Perftools__Profiles__Profile *p;
        char err[512];
        if (pyprof_output_read(tmp, &p, err, sizeof(err)) != 0) {
            fprintf(stderr, "pyprofctl: no profile was written (%s); was it a Python 3.9+ "
                            "program?\n", err);
            status = status ? status : 1;
        } else {
            if (pyprof_output_write(p, a.format, &a.render, a.path, err, sizeof(err)) != 0) {
                fprintf(stderr, "pyprofctl: %s\n", err);
                status = status ? status : 1;
            } else {
                fprintf(stderr, "pyprofctl: profile written to %s\n", a.path);
            }
            pyprof_output_free(p);
        }
        unlink(tmp);
    }
    return status;
}

/* ---- dispatch ------------------------------------------------------------------------------ */

#define OUTPUT_HELP                                                                           \
    "  -o, --output FILE   write there instead of stdout; the format follows the extension\n"  \
    "                      (.pb.gz/.pprof: pprof; .pb: raw pprof; .json: speedscope;\n"     \
    "                      .svg: interactive flamegraph; anything else: collapsed)\n"      \
    "  -f, --format NAME   collapsed (default), pprof, pprof-raw, speedscope, svg\n"            \
    "      --functions     one frame per function (no line numbers)\n"                        \
    "      --threads       a root frame per thread\n"                                         \
    "      --samples       sample counts instead of microseconds\n"                           \
    "      --icicle        svg: draw top-down, root at the top\n"

static const struct command commands[] = {
    {"list", cmd_list, "list [--json]",
     "Every profiled Python process of this user: pid, Python version, state, mode,\n"
     "interval, samples, distinct stacks and command line. Stale sockets are removed.\n"},
    {"status", cmd_status, "status PID [--json]",
     "The agent's state and self-measurement: ticks and achieved rate, thread samples,\n"
     "dropped and torn samples, stacks, the sampler's own CPU share and cost per sample.\n"},
    {"start", cmd_start, "start PID", "Start (or resume) sampling.\n"},
    {"stop", cmd_stop, "stop PID", "Stop sampling; the profile is kept.\n"},
    {"reset", cmd_reset, "reset PID", "Discard the profile collected so far.\n"},
    {"dump", cmd_dump,
     "dump (PID | --all [--match TEXT]) [--duration D] [--reset] [-o FILE] [-f FORMAT] [...]",
     "Fetch the profile. Collapsed stacks go to stdout unless -o is given.\n\n"
     "      --duration D    reset, wait D (30s, 500ms, 2m), then dump: profile for D\n"
     "      --reset         reset the profile atomically after taking it\n"
     "      --all           one profile merged from every profiled process of this user,\n"
     "                      with a root frame and a pid label per process\n"
     "      --match TEXT    with --all: only processes whose command line contains TEXT\n"
     OUTPUT_HELP},
    {"top", cmd_top, "top PID [--interval D] [--rows N] [--samples] [--once]",
     "The hottest functions over the last interval (default 1s), by self share, with their\n"
     "total share: a refreshing view like py-spy top. The profile is not reset.\n\n"
     "      --interval D    refresh every D (at least 100ms)\n"
     "      --rows N        show N functions (20)\n"
     "      --samples       rank by sample counts instead of time\n"
     "      --once          one interval, print, exit (for scripts)\n"},
    {"diff", cmd_diff, "diff BEFORE AFTER [-o DIFF.svg] [--functions] [--samples] [--icicle]",
     "Compare two profiles (any format pyprof writes): print the functions whose self share\n"
     "of the total changed most, and with -o draw AFTER as a flamegraph coloured by each\n"
     "frame's change in share since BEFORE (red grew, blue shrank).\n"},
    {"convert", cmd_convert, "convert IN [-o OUT] [-f FORMAT] [--functions] [--threads] [--samples]",
     "Convert a profile that pyprof wrote (pprof, .pb.gz or .pb, or collapsed stacks) to\n"
     "another format. Collapsed input values are taken as microseconds.\n\n" OUTPUT_HELP},
    {"run", cmd_run, "run [-o FILE] [-f FORMAT] [--functions] [--threads] [--samples] -- CMD [ARGS...]",
     "Run CMD with the profiler preloaded (libpyprof.so next to pyprofctl, ../lib, or\n"
     "$PYPROF_LIB). With -o, write the profile when CMD exits. Exits with CMD's status.\n\n"
     OUTPUT_HELP},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void print_usage(FILE *out)
{
    fprintf(out, "usage: pyprofctl COMMAND [ARGS]\n\n"
                 "The companion of libpyprof.so, the in-process sampling profiler for CPython.\n\n"
                 "commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %s\n", commands[i].usage);
    fprintf(out, "\n'pyprofctl COMMAND --help' tells more. Sockets live in $PYPROF_DIR,\n"
                 "else $XDG_RUNTIME_DIR/pyprof, else /tmp/pyprof-$UID.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        print_usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strcmp(argv[1], commands[i].name) != 0)
            continue;
        current = &commands[i];
        for (int j = 2; j < argc && strcmp(argv[j], "--") != 0; j++) {
            if (strcmp(argv[j], "--help") == 0 || strcmp(argv[j], "-h") == 0) {
                print_help(current);
                return 0;
            }
        }
        return current->run(argc - 1, argv + 1);
    }
    fprintf(stderr, "pyprofctl: unknown command '%s'\n", argv[1]);
    print_usage(stderr);
    return EXIT_USAGE;
}
