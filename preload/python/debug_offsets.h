/*
 * The part of a _Py_DebugOffsets table (CPython 3.13+) that pyprof reads, in a shape of its
 * own, and how it becomes a struct pyprof_py_layout. Each version's unit (py313.c,
 * py314.c) reads its own table layout, copies the fields into a struct pyprof_dbg and adds
 * what the table does not say; the checks and the mapping live here, once.
 *
 * 3.13 starts _PyRuntime with a table meant for out-of-process debuggers: the cookie
 * "xdebugpy", PY_VERSION_HEX, a free-threaded flag, then one uint64_t per field, grouped by
 * structure, each group led by that structure's size. Taking offsets from the running process
 * rather than from a table built into pyprof means a build with other configure options cannot
 * fool us, and lets us refuse (free-threaded) builds we do not handle.
 */
#ifndef PYPROF_PYTHON_DEBUG_OFFSETS_H
#define PYPROF_PYTHON_DEBUG_OFFSETS_H

#include <stdint.h>

#include "layout.h"

struct pyprof_dbg {
    char cookie[8];
    uint64_t version;
    uint64_t free_threaded;
    struct { uint64_t size, finalizing, interpreters_head; } runtime;
    struct { uint64_t size, threads_head, gc, ceval_gil, gil, gil_locked, gil_holder; } interp;
    struct {
        uint64_t size, prev, next, current_frame, thread_id, native_thread_id, datastack_chunk;
    } tstate;
    struct { uint64_t size, previous, executable, instr_ptr, owner; } frame;
    struct {
        uint64_t size, filename, name, qualname, linetable, firstlineno, code_adaptive;
    } code;
    struct { uint64_t size, ob_type; } object;
    struct { uint64_t size, ob_size, ob_sval; } bytes;
    struct { uint64_t size, state, length, ascii_size; } unicode;
    struct { uint64_t size, collecting; } gc;
};

/* What a version's table does not say. */
struct pyprof_dbg_version {
    int minor;                 /* 13, 14 */
    uintptr_t code_mask;       /* applied to f_executable (3.14 tags it) */
    int owner_cstack;          /* FRAME_OWNED_BY_CSTACK */
    int owner_interpreter;     /* FRAME_OWNED_BY_INTERPRETER, or -1 */
    ptrdiff_t code_framesize;  /* offsetof(PyCodeObject, co_framesize) (not in the table),
                                  or PYPROF_NO_FIELD where not verified */
};

/* Copy the fields pyprof reads from a version's own table `d` (a struct whose groups and
 * members carry the same names) into `n`. A macro because each version's table is a type
 * of its own. Needs <string.h>. */
#define PYPROF_DBG_COPY(n, d)                                                          \
    do {                                                                                \
        memcpy((n)->cookie, (d)->cookie, sizeof((n)->cookie));                          \
        (n)->version = (d)->version;                                                    \
        (n)->free_threaded = (d)->free_threaded;                                        \
        (n)->runtime.size = (d)->runtime.size;                                          \
        (n)->runtime.finalizing = (d)->runtime.finalizing;                              \
        (n)->runtime.interpreters_head = (d)->runtime.interpreters_head;                \
        (n)->interp.size = (d)->interp.size;                                            \
        (n)->interp.threads_head = (d)->interp.threads_head;                            \
        (n)->interp.gc = (d)->interp.gc;                                                \
        (n)->interp.ceval_gil = (d)->interp.ceval_gil;                                  \
        (n)->interp.gil = (d)->interp.gil;                                              \
        (n)->interp.gil_locked = (d)->interp.gil_locked;                                \
        (n)->interp.gil_holder = (d)->interp.gil_holder;                                \
        (n)->tstate.size = (d)->tstate.size;                                            \
        (n)->tstate.prev = (d)->tstate.prev;                                            \
        (n)->tstate.next = (d)->tstate.next;                                            \
        (n)->tstate.current_frame = (d)->tstate.current_frame;                          \
        (n)->tstate.thread_id = (d)->tstate.thread_id;                                  \
        (n)->tstate.native_thread_id = (d)->tstate.native_thread_id;                    \
        (n)->tstate.datastack_chunk = (d)->tstate.datastack_chunk;                      \
        (n)->frame.size = (d)->frame.size;                                              \
        (n)->frame.previous = (d)->frame.previous;                                      \
        (n)->frame.executable = (d)->frame.executable;                                  \
        (n)->frame.instr_ptr = (d)->frame.instr_ptr;                                    \
        (n)->frame.owner = (d)->frame.owner;                                            \
        (n)->code.size = (d)->code.size;                                                \
        (n)->code.filename = (d)->code.filename;                                        \
        (n)->code.name = (d)->code.name;                                                \
        (n)->code.qualname = (d)->code.qualname;                                        \
        (n)->code.linetable = (d)->code.linetable;                                      \
        (n)->code.firstlineno = (d)->code.firstlineno;                                  \
        (n)->code.code_adaptive = (d)->code.code_adaptive;                              \
        (n)->object.size = (d)->object.size;                                            \
        (n)->object.ob_type = (d)->object.ob_type;                                      \
        (n)->bytes.size = (d)->bytes.size;                                              \
        (n)->bytes.ob_size = (d)->bytes.ob_size;                                        \
        (n)->bytes.ob_sval = (d)->bytes.ob_sval;                                        \
        (n)->unicode.size = (d)->unicode.size;                                          \
        (n)->unicode.state = (d)->unicode.state;                                        \
        (n)->unicode.length = (d)->unicode.length;                                      \
        (n)->unicode.ascii_size = (d)->unicode.ascii_size;                              \
        (n)->gc.size = (d)->gc.size;                                                    \
        (n)->gc.collecting = (d)->gc.collecting;                                        \
    } while (0)

/* Check the table (cookie, version, build flavour, every offset inside its structure) and
 * fill `out`. 0, -EINVAL for a table of another shape or version, -ENOTSUP for a
 * free-threaded build. Pure. */
int pyprof_dbg_layout(const struct pyprof_dbg *d, const struct pyprof_dbg_version *v,
                      struct pyprof_py_layout *out);

#endif
