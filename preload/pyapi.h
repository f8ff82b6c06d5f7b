/*
 * The few CPython C-API functions the agent calls, found with dlsym() at run time: the
 * agent never links against libpython, so that one build serves every interpreter and a
 * non-Python process never needs Python symbols.
 *
 * They are used only from a host thread that holds the GIL (inside an audit hook, a
 * pending call or a hook the interpreter calls), never from the agent's own threads, except
 * Py_IsInitialized and Py_AddPendingCall, which need no GIL, and PySys_AddAuditHook, which
 * CPython documents as safe before initialisation.
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
    /* PySys_AddAuditHook: the hook runs in whichever thread raises an audit event, GIL
     * held; it must return 0 (non-zero aborts the host's operation). */
    int (*add_audit_hook)(int (*hook)(const char *event, void *args, void *data), void *data);
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
 * Imports only built-in modules (atexit, posix); the thread's error indicator is left as
 * it was found (an audit hook may run while an exception is being handled).
 * 0 or -EIO. */
int pyprof_pyapi_register_hooks(const struct pyprof_hooks *hooks);

#endif
