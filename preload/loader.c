/*
 * libpyprof.so: what users put in LD_PRELOAD. It depends on libc alone and does nothing
 * in a process that is not CPython. In CPython it loads the real agent,
 * libpyprof-agent.so from the same directory, with RTLD_LOCAL: the agent's own
 * dependencies (libuv) then stay out of the process's global symbol scope, where they
 * could capture the calls of an extension that bundles another copy (uvloop).
 */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define AGENT_NAME "libpyprof-agent.so"

/* Set by the agent once it serves a socket: os._exit() skips atexit and destructors, so
 * this is the only chance to remove it. Must be async-signal-safe (it runs in _exit). */
static void (*volatile exit_hook)(void);
/* Found once in the constructor: _exit() may run in a forked child whose other threads
 * held the dynamic loader's lock, so it must not call dlsym() itself. */
static void (*real_exit)(int);

__attribute__((visibility("default"))) void pyprof_loader_set_exit_hook(void (*hook)(void))
{
    exit_hook = hook;
}

/* _exit() as every process sees it: the agent's hook, then the real one. In a process
 * without the agent, the hook is NULL and this is a plain call through. */
__attribute__((visibility("default"), noreturn)) void _exit(int status)
{
    void (*hook)(void) = exit_hook;
    if (hook != NULL)
        hook();
    if (real_exit != NULL)
        real_exit(status);
    for (;;)
        syscall(SYS_exit_group, status);
}

static void say(const char *what, const char *detail)
{
    const char *level = getenv("PYPROF_LOG");
    if (level != NULL && strcmp(level, "quiet") == 0)
        return;
    char line[PATH_MAX + 256];
    int n = snprintf(line, sizeof(line), "pyprof[%d]: %s: %s; pyprof is off\n", (int)getpid(),
                     what, detail);
    if (n > 0) {
        ssize_t ignored = write(STDERR_FILENO, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
        (void)ignored;
    }
}

static int agent_path(char *out, size_t size)
{
    Dl_info info;
    if (dladdr((void *)agent_path, &info) == 0 || info.dli_fname == NULL)
        return -1;
    const char *slash = strrchr(info.dli_fname, '/');
    int dir_len = slash ? (int)(slash - info.dli_fname) : 1;
    const char *dir = slash ? info.dli_fname : ".";
    int n = snprintf(out, size, "%.*s/%s", dir_len, dir, AGENT_NAME);
    return n > 0 && (size_t)n < size ? 0 : -1;
}

__attribute__((constructor)) static void pyprof_loader_init(void)
{
    real_exit = (void (*)(int))dlsym(RTLD_NEXT, "_exit");
    /* Not CPython (a shell, a compiler...): leave no trace at all. */
    if (dlsym(RTLD_DEFAULT, "Py_IsInitialized") == NULL)
        return;
    char path[PATH_MAX];
    if (agent_path(path, sizeof(path)) != 0) {
        say("cannot locate " AGENT_NAME, "dladdr failed");
        return;
    }
    void *agent = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (agent == NULL) {
        say("cannot load the agent", dlerror());
        return;
    }
    void (*start)(void) = (void (*)(void))dlsym(agent, "pyprof_agent_start");
    if (start == NULL) {
        say("the agent has no entry point", path);
        return;
    }
    start();
}
