/*
 * The few CPython C-API functions the agent calls, found with dlsym() at run time: the
 * agent never links against libpython, so that one build serves every interpreter and a
 * non-Python process never needs Python symbols.
 *
 * These are used only from the host's main thread while it holds the GIL (inside a pending
 * call or a hook the interpreter calls), never from the agent's own threads, except
 * Py_IsInitialized and Py_AddPendingCall, which need no GIL.
 */
#ifndef PYPROF_PYAPI_H
#define PYPROF_PYAPI_H

#include <stdint.h>

struct pyprof_pyapi {
    int major, minor, micro;
    char version[32];          /* "3.12.1" */
    uintptr_t runtime;         /* &_PyRuntime */
    uintptr_t code_type;       /* &PyCode_Type */
    uintptr_t frame_type;      /* &PyFrame_Type */
    int (*is_initialized)(void);
    int (*add_pending_call)(int (*fn)(void *), void *arg);
};

/* Find the interpreter. 0; -ENOENT when this is not a CPython process (nothing to do);
 * -ENOTSUP when it is, but a symbol pyprof needs is missing. */
int pyprof_pyapi_load(struct pyprof_pyapi *api);

/* C callbacks the interpreter will call in its main thread, GIL held. */
struct pyprof_hooks {
    void (*at_exit)(void);         /* atexit: early in finalisation */
    void (*before_fork)(void);     /* os.register_at_fork(before=) */
    void (*after_fork_parent)(void);
    void (*after_fork_child)(void);
};

/* Register the hooks with atexit and os.register_at_fork. Main thread, GIL held.
 * Imports only built-in modules (atexit, posix) and clears any error it causes.
 * 0 or -EIO. */
int pyprof_pyapi_register_hooks(const struct pyprof_hooks *hooks);

#endif
