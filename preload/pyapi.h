/*
 * The few CPython C-API functions the agent calls, found with dlsym() at run time: the
 * agent never links against libpython, so that one build serves every interpreter and a
 * non-Python process never needs Python symbols.
 *
 * They are used only from the host's main thread while it holds the GIL (inside a pending
 * call or a hook the interpreter calls), never from the agent's own threads, except
 * Py_IsInitialized and Py_AddPendingCall, which need no GIL, and one GIL round trip by the
 * start-up thread (see agent.c).
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
    int (*at_exit)(void (*fn)(void));   /* Py_AtExit: runs at the very end of finalisation */
    int (*gil_ensure)(void);            /* PyGILState_Ensure */
    void (*gil_release)(int state);     /* PyGILState_Release */
};

/* Find the interpreter and its version. 0; -ENOENT when this is not a CPython process
 * (nothing to do); -ENOTSUP when its version cannot be read. */
int pyprof_pyapi_load(struct pyprof_pyapi *api);

/* Find every other symbol the agent needs (call once the version is known to be
 * supported). 0 or -ENOTSUP when one is missing. */
int pyprof_pyapi_resolve(struct pyprof_pyapi *api);

/* C callbacks the interpreter will call with the GIL held (atexit in the main thread). */
struct pyprof_hooks {
    void (*at_exit)(void);         /* atexit: early in finalisation */
    void (*before_fork)(void);     /* os.register_at_fork(before=) */
    void (*after_fork_parent)(void);
    void (*after_fork_child)(void);
};

/* Register the hooks with atexit and os.register_at_fork. GIL held.
 * Imports only built-in modules (atexit, posix) and clears any error it causes.
 * 0 or -EIO. */
int pyprof_pyapi_register_hooks(const struct pyprof_hooks *hooks);

#endif
