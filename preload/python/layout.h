/*
 * What the sampler needs to know about one CPython minor version.
 *
 * This header and the units beside it (py39.c ... py314.c) are the only place in pyprof
 * that knows how CPython lays out its runtime, threads, frames, code objects and strings.
 * Everything else reads memory through the offsets below.
 *
 * All offsets are in bytes, relative to the start of the named structure, for x86-64 Linux
 * release builds (not debug, not free-threaded). An offset of PYPROF_NO_FIELD means the
 * field does not exist in that version.
 */
#ifndef PYPROF_PYTHON_LAYOUT_H
#define PYPROF_PYTHON_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#define PYPROF_NO_FIELD ((ptrdiff_t)-1)

/* Read `len` bytes at `addr` in this process into `dst`; 0 or -errno (-EFAULT on a bad
 * address). Never faults. Provided by preload/saferead.c. */
typedef int (*pyprof_read_fn)(void *dst, uintptr_t addr, size_t len);

enum pyprof_frame_kind {
    PYPROF_FRAME_OBJECT = 1, /* 3.9, 3.10: PyFrameObject chain through f_back */
    PYPROF_FRAME_INTERP = 2, /* 3.11+: _PyInterpreterFrame chain through previous */
};

enum pyprof_line_kind {
    PYPROF_LINE_LNOTAB = 1,    /* 3.9 co_lnotab, byte offsets */
    PYPROF_LINE_LINETABLE = 2, /* 3.10 co_linetable, byte offsets */
    PYPROF_LINE_LOCATIONS = 3, /* 3.11+ location table, code units */
};

enum pyprof_instr_kind {
    PYPROF_INSTR_LASTI_BYTES = 1, /* 3.9: int f_lasti, byte offset of last instruction */
    PYPROF_INSTR_LASTI_UNITS = 2, /* 3.10: int f_lasti, index in 2-byte code units */
    PYPROF_INSTR_POINTER = 3,     /* 3.11+: pointer into co_code_adaptive (prev_instr /
                                     instr_ptr); offset = ptr - (code + code_adaptive) */
};

struct pyprof_py_layout {
    int major, minor;          /* 3, 9..14 */
    enum pyprof_frame_kind frame_kind;
    enum pyprof_line_kind line_kind;
    enum pyprof_instr_kind instr_kind;

    /* _PyRuntime (the address comes from dlsym("_PyRuntime")) */
    ptrdiff_t runtime_interp_head;    /* PyInterpreterState *interpreters.head */
    ptrdiff_t runtime_finalizing;     /* PyThreadState *_finalizing: non-NULL once finalizing */
    ptrdiff_t runtime_tstate_current; /* 3.9-3.11 gilstate.tstate_current (GIL holder) */

    /* PyInterpreterState */
    ptrdiff_t interp_tstate_head;     /* PyThreadState *tstate_head / threads.head */
    ptrdiff_t interp_gc_collecting;   /* int gc.collecting (offset from interp start) */
    ptrdiff_t interp_gil;             /* 3.12+: struct _gil_runtime_state *ceval.gil */
    ptrdiff_t gil_locked;             /* 3.12+: int locked, inside struct _gil_runtime_state */
    ptrdiff_t gil_last_holder;        /* 3.12+: PyThreadState *last_holder, same struct */

    /* PyThreadState */
    ptrdiff_t tstate_next;
    ptrdiff_t tstate_frame;           /* 3.9/3.10 frame; 3.11/3.12 cframe; 3.13+ current_frame */
    ptrdiff_t cframe_current_frame;   /* 3.11/3.12: _PyCFrame.current_frame; else NO_FIELD */
    ptrdiff_t tstate_thread_id;       /* unsigned long thread_id (pthread_t) */
    ptrdiff_t tstate_native_thread_id;/* 3.11+: unsigned long native_thread_id (tid) */
    ptrdiff_t tstate_datastack_chunk; /* 3.11+: _PyStackChunk *datastack_chunk */
    ptrdiff_t tstate_datastack_top;   /* 3.11+: PyObject **datastack_top */

    /* _PyStackChunk (3.11+): the header of a data-stack chunk; else NO_FIELD */
    ptrdiff_t chunk_previous;         /* _PyStackChunk *previous: the chunk before this one */
    ptrdiff_t chunk_size;             /* size_t size: bytes of the whole chunk */
    ptrdiff_t chunk_top;              /* size_t top: words of data[] in use, kept up to date
                                         once a newer chunk is pushed */
    ptrdiff_t chunk_data;             /* PyObject *data[]: where frames start */

    /* The frame: PyFrameObject (3.9/3.10) or _PyInterpreterFrame (3.11+) */
    ptrdiff_t frame_back;             /* f_back / previous */
    ptrdiff_t frame_code;             /* f_code / f_executable */
    ptrdiff_t frame_instr;            /* f_lasti (int) / prev_instr / instr_ptr */
    ptrdiff_t frame_owner;            /* 3.11+: char owner; else NO_FIELD */
    size_t frame_read_size;           /* bytes to read to cover every frame field above */
    uintptr_t frame_code_mask;        /* AND-mask applied to the code pointer (3.14: ~7 for
                                         _PyStackRef tags; else ~0) */
    int frame_owner_cstack;           /* owner value of C-stack shim frames to skip, or -1 */
    int frame_owner_interpreter;      /* 3.14: FRAME_OWNED_BY_INTERPRETER (skip), or -1 */

    /* PyCodeObject */
    ptrdiff_t code_filename;          /* PyObject * (str) */
    ptrdiff_t code_name;              /* PyObject * (str) */
    ptrdiff_t code_qualname;          /* 3.11+: PyObject * (str); else NO_FIELD */
    ptrdiff_t code_firstlineno;       /* int */
    ptrdiff_t code_linetable;         /* PyObject * (bytes): co_lnotab / co_linetable */
    ptrdiff_t code_adaptive;          /* 3.11+: offset of co_code_adaptive[] (inline) */
    /* How many words a frame of this code takes on the data stack (3.11+), where the next
     * frame starts: int co_framesize (3.12, 3.13), or, in 3.11, int co_nlocalsplus + int
     * co_stacksize + frame_specials words. NO_FIELD where unknown (3.9, 3.10, 3.14). */
    ptrdiff_t code_framesize;
    ptrdiff_t code_nlocalsplus;
    ptrdiff_t code_stacksize;
    int frame_specials;
    size_t code_read_size;            /* bytes to read to cover every code field above */

    /* PyUnicodeObject (compact forms only) */
    ptrdiff_t unicode_length;         /* Py_ssize_t length */
    ptrdiff_t unicode_state;          /* the state bit-field word (interned:2 kind:3
                                         compact:1 ascii:1 ..., least significant bit first) */
    size_t unicode_ascii_size;        /* sizeof(PyASCIIObject): compact ASCII data follows */
    size_t unicode_compact_size;      /* sizeof(PyCompactUnicodeObject): other compact data */

    /* PyBytesObject */
    ptrdiff_t bytes_size;             /* Py_ssize_t ob_size */
    ptrdiff_t bytes_data;             /* char ob_sval[] */

    /* PyObject */
    ptrdiff_t object_type;            /* PyTypeObject *ob_type */

    /* Behaviour */
    int fork_counts_threads_late;     /* 3.13+: os.fork() counts the process's threads for
                                         its "multi-threaded" warning after running the
                                         after_in_parent hooks, so the agent must not
                                         restart its threads from that hook */
};

/*
 * Fill `out` for CPython 3.`minor`. `runtime` is the address of _PyRuntime and `read` a
 * fault-tolerant reader: 3.13+ read their offsets from _Py_DebugOffsets at the start of
 * _PyRuntime (and check its cookie and version); earlier versions use built-in tables.
 * Returns 0, -ENOTSUP for a version pyprof does not support, or -EINVAL when the
 * interpreter's debug offsets do not match what this build expects.
 * Thread-safety: pure, may be called from any thread.
 */
int pyprof_py_layout_get(int minor, uintptr_t runtime, pyprof_read_fn read,
                         struct pyprof_py_layout *out);

/* One unit per version; pyprof_py_layout_get() dispatches to them. */
int pyprof_py39_layout(uintptr_t runtime, pyprof_read_fn read, struct pyprof_py_layout *out);
int pyprof_py310_layout(uintptr_t runtime, pyprof_read_fn read, struct pyprof_py_layout *out);
int pyprof_py311_layout(uintptr_t runtime, pyprof_read_fn read, struct pyprof_py_layout *out);
int pyprof_py312_layout(uintptr_t runtime, pyprof_read_fn read, struct pyprof_py_layout *out);
int pyprof_py313_layout(uintptr_t runtime, pyprof_read_fn read, struct pyprof_py_layout *out);
int pyprof_py314_layout(uintptr_t runtime, pyprof_read_fn read, struct pyprof_py_layout *out);

#endif
