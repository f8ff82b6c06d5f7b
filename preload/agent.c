#include "agent.h"

#include <dlfcn.h>
#include <limits.h>
#include <spawn.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "codec.h"
#include "collapsed.h"
#include "config.h"
#include "endpoint.h"
#include "log.h"
#include "pyapi.h"
#include "pyframes.h"
#include "saferead.h"
#include "sampler.h"
#include "server.h"
#include "thread.h"

extern char **environ;

static struct {
    struct pyprof_config cfg;
    struct pyprof_pyapi api;
    struct pyprof_py py;
    struct pyprof_sampler *sampler;
    struct pyprof_server *server;
    char socket_path[PYPROF_SOCKET_PATH_MAX];
    char cmdline[1024];
    pid_t pid;                  /* the process the threads belong to */
    int running;                /* sampler and server threads exist in this process */
    int exited;                 /* atexit ran: never start again */
    _Atomic int installed;            /* the start-up audit hook has done its work */
    int final_exit_registered;        /* on_final_exit() will run at Py_FinalizeEx's end */
} agent;

/* ---- configuration warnings: held until PYPROF_LOG is known ------------------------------ */

static char pending_warnings[8][384];
static int npending;

static void hold_warning(const char *line)
{
    if (npending < 8)
        snprintf(pending_warnings[npending++], sizeof(pending_warnings[0]), "%s", line);
}

static const char *env_lookup(const char *name)
{
    return getenv(name);
}

/* ---- the request handler (server thread) --------------------------------------------------- */

static uint64_t clock_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void read_cmdline(void)
{
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    agent.cmdline[0] = '\0';
    if (fd < 0)
        return;
    ssize_t n = read(fd, agent.cmdline, sizeof(agent.cmdline) - 1);
    close(fd);
    if (n <= 0)
        return;
    /* Arguments are NUL-separated; protobuf strings must be UTF-8, argv need not be. */
    for (ssize_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)agent.cmdline[i];
        if (ch == '\0')
            agent.cmdline[i] = ' ';
        else if (ch < 0x20)
            agent.cmdline[i] = ' ';
        else if (ch >= 0x7f)
            agent.cmdline[i] = '?';
    }
    while (n > 0 && agent.cmdline[n - 1] == ' ')
        n--;
    agent.cmdline[n] = '\0';
}

static void fill_status(Pyprof__Status *st)
{
    struct pyprof_sampler_stats ss;
    struct pyprof_profile_totals pt;
    pyprof_sampler_stats(agent.sampler, &ss);
    pyprof_profile_totals(pyprof_sampler_profile(agent.sampler), &pt);
    st->pid = (int32_t)agent.pid;
    st->cmdline = agent.cmdline;
    st->python_version = agent.api.version;
    st->sampling = ss.enabled;
    st->mode = (char *)pyprof_mode_name(agent.cfg.mode);
    st->interval_us = agent.cfg.interval_ns / 1000;
    st->ticks = ss.ticks;
    st->thread_samples = pt.samples;
    st->dropped = ss.dropped;
    st->torn = ss.torn;
    st->truncated = pt.truncated;
    st->stacks = pt.stacks;
    st->profile_bytes = pt.bytes;
    st->max_stacks = agent.cfg.max_stacks;
    st->total_weight = pt.weight;
    st->profile_start_ns = ss.profile_start_ns;
    st->achieved_hz = ss.profile_elapsed_ns ? ss.ticks * 1e9 / (double)ss.profile_elapsed_ns : 0;
    st->sampler_cpu_ns = ss.sampler_cpu_ns;
    uint64_t process_cpu = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    st->sampler_cpu_percent = process_cpu ? 100.0 * (double)ss.sampler_cpu_ns / (double)process_cpu : 0;
    st->sample_cost_ns = ss.record_samples ? ss.record_cpu_ns / ss.record_samples : 0;
}

/* Build the pprof message for `p`; comments carry what renderers put in titles. */
struct dump {
    Perftools__Profiles__Profile *pprof;
    struct pyprof_profile *owned;   /* a profile swapped out by dump --reset */
    char comments[4][1100];
};

static int build_pprof(const struct pyprof_profile *p, struct dump *d)
{
    struct pyprof_sampler_stats ss;
    pyprof_sampler_stats(agent.sampler, &ss);
    struct pyprof_profile_meta meta = {
        .mode = pyprof_mode_name(agent.cfg.mode),
        .interval_ns = agent.cfg.interval_ns,
        .start_ns = ss.profile_start_ns,
        .duration_ns = ss.profile_elapsed_ns,
    };
    snprintf(d->comments[0], sizeof(d->comments[0]), "cmdline=%s", agent.cmdline);
    snprintf(d->comments[1], sizeof(d->comments[1]), "pid=%d", (int)agent.pid);
    snprintf(d->comments[2], sizeof(d->comments[2]), "python=%s", agent.api.version);
    snprintf(d->comments[3], sizeof(d->comments[3]), "mode=%s", meta.mode);
    for (int i = 0; i < 4; i++)
        meta.comments[i] = d->comments[i];
    return pyprof_profile_to_pprof(p, &meta, &d->pprof);
}

static struct pyprof_profile *swap_fresh(void)
{
    struct pyprof_profile *fresh = pyprof_profile_new(agent.cfg.max_stacks);
    return fresh ? pyprof_sampler_swap(agent.sampler, fresh) : NULL;
}

/* The dump being sent; the server handles one request at a time on its thread. */
static struct dump *in_flight;

static int do_dump(const Pyprof__Request *req, Pyprof__Response *resp)
{
    struct dump *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return -ENOMEM;
    const struct pyprof_profile *p = pyprof_sampler_profile(agent.sampler);
    if (req->reset_after)
        p = d->owned = swap_fresh();   /* atomic: no sample falls between dump and reset */
    if (p == NULL || build_pprof(p, d) != 0) {
        pyprof_profile_free(d->owned);
        free(d);
        return -ENOMEM;
    }
    resp->profile = d->pprof;
    in_flight = d;
    return 0;
}

static void handle(void *ctx, const Pyprof__Request *req, Pyprof__Response *resp)
{
    static Pyprof__Status status;
    int rc = 0;
    (void)ctx;
    switch (req->op) {
    case PYPROF__OP__OP_START:
        pyprof_sampler_set_enabled(agent.sampler, 1);
        break;
    case PYPROF__OP__OP_STOP:
        pyprof_sampler_set_enabled(agent.sampler, 0);
        break;
    case PYPROF__OP__OP_RESET: {
        struct pyprof_profile *old = swap_fresh();
        rc = old ? 0 : -ENOMEM;
        pyprof_profile_free(old);
        break;
    }
    case PYPROF__OP__OP_DUMP:
        rc = do_dump(req, resp);
        break;
    default:
        break;
    }
    if (rc != 0) {
        resp->error = -rc;
        resp->message = (char *)"out of memory";
    }
    pyprof__status__init(&status);
    fill_status(&status);
    resp->status = &status;
}

static void cleanup(void *ctx, Pyprof__Response *resp)
{
    (void)ctx, (void)resp;
    if (in_flight == NULL)
        return;
    pyprof_pprof_free(in_flight->pprof);   /* before the profile whose strings it borrows */
    pyprof_profile_free(in_flight->owned);
    free(in_flight);
    in_flight = NULL;
}

/* ---- PYPROF_OUTPUT ---------------------------------------------------------------------- */

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int write_pprof(const char *path, const Perftools__Profiles__Profile *pprof, int gzip)
{
    size_t len = perftools__profiles__profile__get_packed_size(pprof);
    uint8_t *buf = malloc(len ? len : 1);
    int rc = -ENOMEM;
    if (buf == NULL)
        return rc;
    perftools__profiles__profile__pack(pprof, buf);
    if (gzip) {
        gzFile gz = gzopen(path, "wb");
        rc = gz && gzwrite(gz, buf, (unsigned)len) == (int)len ? 0 : -EIO;
        if (gz && gzclose(gz) != Z_OK)
            rc = -EIO;
    } else {
        FILE *f = fopen(path, "wb");
        rc = f && fwrite(buf, 1, len, f) == len ? 0 : -EIO;
        if (f && fclose(f) != 0)
            rc = -EIO;
    }
    free(buf);
    return rc;
}

/* pyprofctl next to the agent: <prefix>/lib/libpyprof-agent.so -> <prefix>/bin/pyprofctl. */
static int find_pyprofctl(char *out, size_t size)
{
    Dl_info info;
    if (dladdr((void *)find_pyprofctl, &info) == 0 || info.dli_fname == NULL)
        return -ENOENT;
    const char *slash = strrchr(info.dli_fname, '/');
    if (slash == NULL)
        return -ENOENT;
    int n = snprintf(out, size, "%.*s/../bin/pyprofctl", (int)(slash - info.dli_fname),
                     info.dli_fname);
    return n > 0 && (size_t)n < size && access(out, X_OK) == 0 ? 0 : -ENOENT;
}

/* Formats the agent does not render itself (svg, speedscope): write raw pprof beside the
 * target, have pyprofctl convert it, remove it. Runs at the very end of the process, after
 * our threads are gone; posix_spawn does not run the host's fork handlers. */
static int write_converted(const char *path, const Perftools__Profiles__Profile *pprof)
{
    char ctl[PATH_MAX], tmp[PATH_MAX + 16];
    if (find_pyprofctl(ctl, sizeof(ctl)) != 0)
        return -ENOENT;
    snprintf(tmp, sizeof(tmp), "%s.%d.pb", path, (int)getpid());
    int rc = write_pprof(tmp, pprof, 0);
    if (rc != 0)
        return rc;
    char *argv[] = {ctl, (char *)"convert", tmp, (char *)"-o", (char *)path, NULL};
    pid_t child;
    int status = 0;
    rc = posix_spawn(&child, ctl, NULL, NULL, argv, environ);
    if (rc == 0) {
        while (waitpid(child, &status, 0) < 0 && errno == EINTR)
            ;
        rc = WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
    } else {
        rc = -rc;
    }
    unlink(tmp);
    return rc;
}

static void write_output(void)
{
    const char *path = agent.cfg.output;
    struct dump d = {0};
    if (path[0] == '\0' || build_pprof(pyprof_sampler_profile(agent.sampler), &d) != 0)
        return;
    int rc;
    if (ends_with(path, ".svg") || ends_with(path, ".json"))
        rc = write_converted(path, d.pprof);
    else if (ends_with(path, ".pb.gz") || ends_with(path, ".pprof"))
        rc = write_pprof(path, d.pprof, 1);
    else if (ends_with(path, ".pb"))
        rc = write_pprof(path, d.pprof, 0);
    else {
        FILE *f = fopen(path, "w");
        struct pyprof_collapsed_options o = {0};
        rc = f ? pyprof_collapsed_write(d.pprof, &o, f) : -errno;
        if (f && fclose(f) != 0 && rc == 0)
            rc = -EIO;
    }
    if (rc != 0)
        pyprof_warn("cannot write PYPROF_OUTPUT=%s: %s", path, strerror(-rc));
    pyprof_pprof_free(d.pprof);
}

/* ---- os._exit ------------------------------------------------------------------------------ */

/* Called by the loader's _exit() wrapper: os._exit() skips atexit and destructors. Only
 * async-signal-safe work here: remove our socket if this process is the one serving it. */
static void on_underscore_exit(void)
{
    if (agent.running && agent.pid == getpid())
        unlink(agent.socket_path);
}

static void register_exit_hook(void)
{
    void (*set)(void (*)(void)) =
        (void (*)(void (*)(void)))dlsym(RTLD_DEFAULT, "pyprof_loader_set_exit_hook");
    if (set != NULL)
        set(on_underscore_exit);
}

/* ---- threads ----------------------------------------------------------------------------- */

static int start_threads(void)
{
    int rc;
    agent.pid = getpid();
    if ((rc = pyprof_socket_dir_check(agent.cfg.dir, 1)) != 0) {
        pyprof_warn("socket directory %s is unsafe or unusable (%s); pyprof is off",
                    agent.cfg.dir, strerror(-rc));
        return rc;
    }
    if ((rc = pyprof_socket_path(agent.cfg.dir, agent.pid, agent.socket_path,
                                 sizeof(agent.socket_path))) != 0) {
        pyprof_warn("socket path in %s is too long; pyprof is off", agent.cfg.dir);
        return rc;
    }
    if ((rc = pyprof_sampler_start(agent.sampler)) != 0) {
        pyprof_warn("cannot start the sampler thread: %s; pyprof is off", strerror(-rc));
        return rc;
    }
    struct pyprof_handler h = {handle, cleanup, NULL};
    if ((rc = pyprof_server_start(&agent.server, agent.socket_path, &h)) != 0) {
        pyprof_warn("cannot serve %s: %s; pyprof is off", agent.socket_path, strerror(-rc));
        pyprof_sampler_join(agent.sampler);
        return rc;
    }
    agent.running = 1;
    pyprof_debug("sampling every %lluus in %s mode; socket %s",
                 (unsigned long long)(agent.cfg.interval_ns / 1000),
                 pyprof_mode_name(agent.cfg.mode), agent.socket_path);
    return 0;
}

static void stop_threads(void)
{
    if (!agent.running || agent.pid != getpid())
        return;
    pyprof_server_stop(agent.server);   /* NULL once the exit hook stopped it */
    agent.server = NULL;
    pyprof_sampler_join(agent.sampler);
    agent.running = 0;
}

/* ---- hooks the interpreter calls in its main thread, GIL held ------------------------------ */

/* The end of Py_FinalizeEx (Py_AtExit): every atexit handler has run, and been sampled.
 * No Python API here: only our own threads and memory. */
static void on_final_exit(void)
{
    if (!agent.running || agent.pid != getpid())
        return;
    pyprof_sampler_join(agent.sampler);
    agent.running = 0;
    write_output();
}

/* Python's atexit, which runs our handler after those registered later: stop serving at
 * once; keep sampling (through the other handlers and finalisation, where the sampler
 * skips its ticks) until on_final_exit() if that is registered, else stop here. */
static void on_exit_hook(void)
{
    if (agent.exited || agent.pid != getpid())
        return;
    agent.exited = 1;
    if (agent.final_exit_registered && agent.running) {
        pyprof_server_stop(agent.server);
        agent.server = NULL;
        return;
    }
    stop_threads();
    write_output();
}

/* The sampler thread, as the host's last thread is gone (see pyprof_sampler_options):
 * serve no more, write the profile; the sampler thread ends after this, and with it the
 * process. */
static void on_orphaned(void)
{
    pyprof_server_stop(agent.server);
    agent.server = NULL;
    write_output();
}

static void before_fork_hook(void)
{
    /* Join our threads so the child does not inherit locks they hold, and so that 3.12+
     * does not warn that the process is multi-threaded. */
    stop_threads();
}

static int restart_pending(void *arg)
{
    (void)arg;
    if (!agent.exited && !agent.running && agent.sampler != NULL)
        start_threads();
    return 0;
}

static void after_fork_parent_hook(void)
{
    /* 3.12 checks for other threads (its "multi-threaded fork" warning) before it runs
     * this hook: the threads can come back at once. 3.13 checks after it: come back at
     * the main thread's next pending-call check instead. */
    if (agent.py.layout.fork_counts_threads_late)
        agent.api.add_pending_call(restart_pending, NULL);
    else
        restart_pending(NULL);
}

static void after_fork_child_hook(void)
{
    struct pyprof_sampler *parent = agent.sampler;
    struct pyprof_sampler_stats ss = {.enabled = agent.cfg.start};
    if (parent != NULL)
        pyprof_sampler_stats(parent, &ss);   /* the child keeps the parent's started state */
    struct pyprof_sampler_options opt = {agent.cfg.interval_ns, agent.cfg.mode,
                                         agent.cfg.max_stacks, ss.enabled, on_orphaned};
    agent.running = 0;
    agent.server = NULL;
    agent.sampler = pyprof_sampler_create(&agent.py, &opt);   /* a fresh profile */
    pyprof_sampler_destroy(parent);   /* its thread was joined before the fork */
    if (agent.sampler != NULL && !agent.exited)
        start_threads();
}

/* Any fork, including those that bypass os.fork (C extensions, subprocess): the child has
 * none of our threads and must read its own memory from now on. */
static void atfork_child(void)
{
    pyprof_saferead_after_fork();
    if (agent.running) {
        /* Threads died with the fork mid-flight: their locks may be held. Forget them. */
        agent.running = 0;
        agent.server = NULL;
        agent.sampler = NULL;
    }
}

/* ---- start-up ------------------------------------------------------------------------------ */

static int is_finalizing(void)
{
    struct pyprof_interp_state is;
    return pyprof_py_interp_state(&agent.py, NULL, &is) == 0 && is.finalizing;
}

static void *tid_offset_main(void *arg)
{
    *(ptrdiff_t *)arg = pyprof_pthread_tid_offset((unsigned long)pthread_self(), gettid());
    return NULL;
}

/* 3.9/3.10 keep only a thread's pthread_t: its tid is found inside glibc's struct pthread.
 * Trust the place found on this thread only if a second thread (started and joined at
 * once, so that none outlives this call) finds it at the same place. -1 when unknown. */
static ptrdiff_t confirmed_tid_offset(void)
{
    ptrdiff_t mine = pyprof_pthread_tid_offset((unsigned long)pthread_self(), gettid()), other = -2;
    struct pyprof_thread thread;
    if (pyprof_thread_start(&thread, tid_offset_main, &other) != 0)
        return -1;
    pyprof_thread_join(&thread);
    return mine == other ? mine : -1;
}

/* Register the hooks and start the threads. GIL held (from the start-up audit hook). */
static void install(void)
{
    if (is_finalizing() || agent.exited)
        return;
    if (agent.py.layout.tstate_native_thread_id == PYPROF_NO_FIELD)
        agent.py.pthread_tid_offset = confirmed_tid_offset();
    struct pyprof_hooks hooks = {on_exit_hook, before_fork_hook, after_fork_parent_hook,
                                 after_fork_child_hook};
    if (pyprof_pyapi_register_hooks(&hooks) != 0) {
        pyprof_warn("cannot register exit and fork hooks; pyprof is off");
        return;
    }
    agent.final_exit_registered = agent.api.at_exit(on_final_exit) == 0;
    struct pyprof_sampler_options opt = {agent.cfg.interval_ns, agent.cfg.mode,
                                         agent.cfg.max_stacks, agent.cfg.start, on_orphaned};
    agent.sampler = pyprof_sampler_create(&agent.py, &opt);
    if (agent.sampler == NULL) {
        pyprof_warn("out of memory; pyprof is off");
        return;
    }
    start_threads();
}

/*
 * Start-up without a thread of our own: CPython calls audit hooks added before
 * initialisation (PySys_AddAuditHook is documented as safe then) for every audit event,
 * in the thread raising it, with the GIL held. The first event once the interpreter is
 * initialised (an import, compile, exec, cpython.run_*, os.fork...) installs the agent;
 * every later one costs one load. Had a start-up thread waited for initialisation instead,
 * a program forking at once would fork while it was alive: 3.12+ would warn that the
 * process is multi-threaded, and a child forked before the set-up would have no agent.
 * An os.fork() that comes first installs the agent in its own audit event, before the
 * fork's hooks run: its child gets an agent too. Never fails the event.
 */
static int on_audit(const char *event, void *args, void *data)
{
    (void)event, (void)args, (void)data;
    if (atomic_load_explicit(&agent.installed, memory_order_relaxed) ||
        !agent.api.is_initialized())
        return 0;
    if (atomic_exchange(&agent.installed, 1) == 0)   /* install()'s own events come back */
        install();
    return 0;
}

static int check_interpreter(void)
{
    int rc = pyprof_pyapi_load(&agent.api);
    if (rc == -ENOENT)
        return rc;   /* not Python after all: stay silent */
    if (rc != 0) {
        pyprof_warn("cannot tell this Python's version; pyprof is off");
        return rc;
    }
    if (agent.api.major != 3 || agent.api.minor < 9 || agent.api.minor > 14) {
        pyprof_warn("Python %s is not supported (3.9 to 3.14 are); pyprof is off",
                    agent.api.version);
        return -ENOTSUP;
    }
    if (pyprof_pyapi_resolve(&agent.api) != 0) {
        pyprof_warn("this Python %s lacks a symbol pyprof needs; pyprof is off",
                    agent.api.version);
        return -ENOTSUP;
    }
    if (pyprof_saferead_init() != 0) {
        pyprof_warn("cannot read memory safely here (process_vm_readv refused, no fallback); "
                    "pyprof is off");
        return -ENOSYS;
    }
    agent.py.runtime = agent.api.runtime;
    agent.py.code_type = agent.api.code_type;
    agent.py.frame_type = agent.api.frame_type;
    agent.py.pthread_tid_offset = -1;
    rc = pyprof_py_layout_get(agent.api.minor, agent.api.runtime, pyprof_saferead,
                              &agent.py.layout);
    if (rc != 0) {
        pyprof_warn("cannot read the layout of Python %s (%s); pyprof is off", agent.api.version,
                    strerror(-rc));
        return rc;
    }
    return 0;
}

/* PySys_AddAuditHook, called before initialisation, allocates its entry with malloc; if
 * the interpreter then switches to a debug allocator (PYTHONMALLOC=*debug, dev mode),
 * finalisation frees that entry through it and the process crashes. Stay out then. */
static int debug_allocator_possible(void)
{
    const char *malloc_env = getenv("PYTHONMALLOC"), *dev = getenv("PYTHONDEVMODE");
    return (malloc_env != NULL && strstr(malloc_env, "debug") != NULL) ||
           (dev != NULL && dev[0] != '\0') || strstr(agent.cmdline, "-X dev") != NULL ||
           strstr(agent.cmdline, "-Xdev") != NULL;
}

void pyprof_agent_start(void)
{
    pyprof_config_load(&agent.cfg, env_lookup, hold_warning);
    pyprof_log_set_level(agent.cfg.log_level);
    for (int i = 0; i < npending; i++)
        pyprof_warn("%s", pending_warnings[i]);
    if (check_interpreter() != 0)
        return;
    read_cmdline();
    if (debug_allocator_possible()) {
        pyprof_debug("a debug memory allocator may be selected (PYTHONMALLOC, PYTHONDEVMODE, "
                     "-X dev); pyprof is off");
        return;
    }
    register_exit_hook();
    pthread_atfork(NULL, NULL, atfork_child);
    if (agent.api.add_audit_hook(on_audit, NULL) != 0)
        pyprof_warn("cannot add the start-up audit hook; pyprof is off");
}

/* exit() paths that skip Python's atexit (an extension calling exit(), say). */
__attribute__((destructor)) static void agent_fini(void)
{
    if (agent.running && agent.pid == getpid())
        stop_threads();
}
