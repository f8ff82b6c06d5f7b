/*
 * Reading Python threads, frames, code objects and strings out of the interpreter's
 * memory, without the GIL, through fault-tolerant reads only (saferead.h). Every pointer
 * read here may be stale: each function validates what it reads and returns an error
 * rather than garbage.
 *
 * Version knowledge comes only from the layout (python/layout.h).
 * Thread-safety: the functions are reentrant; the walker's scratch buffer belongs to
 * the caller (one per sampler thread).
 */
#ifndef PYPROF_PYFRAMES_H
#define PYPROF_PYFRAMES_H

#include <stddef.h>
#include <stdint.h>

#include "python/layout.h"

struct pyprof_py {
    struct pyprof_py_layout layout;
    uintptr_t runtime;    /* &_PyRuntime */
    uintptr_t code_type;  /* &PyCode_Type */
    uintptr_t frame_type; /* &PyFrame_Type (3.9/3.10 frame validation) */
    ptrdiff_t pthread_tid_offset; /* where glibc keeps the tid in struct pthread (3.9/3.10) */
};

#define PYPROF_MAX_THREADS 4096
#define PYPROF_MAX_DEPTH 2048

/* A thread as read at the start of a tick: enough of its PyThreadState to walk it. */
struct pyprof_thread_ref {
    uintptr_t tstate;
    unsigned long pthread_id;
    int native_tid;       /* 0 when unknown */
    uintptr_t frame;      /* the frame field: frame (3.9/3.10), cframe (3.11/3.12),
                             current_frame (3.13+) */
    uintptr_t chunk, chunk_top;   /* 3.11+: the current data-stack chunk and its top */
};

struct pyprof_interp_state {
    uintptr_t interp;     /* the main interpreter */
    uintptr_t tstate_head;
    uintptr_t gil_holder; /* tstate holding the GIL, or 0 */
    int gc_collecting;
    int finalizing;
};

struct pyprof_prefetch;

/* The process-wide state: GIL holder, collection running, finalising, first thread.
 * Two or three reads in all (from the tick's prefetched copy when `pf` has them; `pf` may
 * be NULL). 0 or -errno. */
int pyprof_py_interp_state(const struct pyprof_py *py, struct pyprof_prefetch *pf,
                           struct pyprof_interp_state *out);

/* The main interpreter's threads, at most `max`, one read each (or from `pf`). Count, or
 * -errno. */
int pyprof_py_threads(const struct pyprof_py *py, struct pyprof_prefetch *pf,
                      const struct pyprof_interp_state *is, struct pyprof_thread_ref *out,
                      int max);

struct pyprof_seen_frame {
    uintptr_t addr, back, code;
};

struct pyprof_raw_frame {
    uintptr_t code;   /* code object address (not yet validated) */
    int offset;       /* byte offset of the current instruction; -1 when unknown */
    uintptr_t addr;   /* the frame's own address */
    int in_chunk;     /* 3.11+: read from a data-stack chunk copy (1: the current chunk,
                         2...: older ones); 0: read on its own */
    int caller_next;  /* the next raw frame is this one's caller, none skipped between */
    uintptr_t chunk_end;  /* where the used part of its chunk ends (when in_chunk) */
};

/* Where a frame outside the copied chunk pointed last time it was read: its caller. */
struct pyprof_frame_hint {
    uintptr_t addr, back;
};

/* A copy of an older data-stack chunk of the thread being walked (3.11+). */
struct pyprof_chunk_copy {
    uintptr_t lo, hi;     /* the frames' address range it holds */
    uint8_t *data;
    size_t cap;
};

#define PYPROF_OLD_CHUNKS 8

/* Scratch memory for one walker (owned by the caller, e.g. the sampler thread). */
struct pyprof_walk_buf {
    struct pyprof_prefetch *prefetch; /* the tick's prefetched copy (the caller's), or NULL */
    uint8_t *chunk;       /* copy of the thread's current data-stack chunk (3.11+) */
    size_t chunk_cap;
    struct pyprof_seen_frame *seen;   /* frames read one by one, to verify (see walk) */
    uint8_t *verify;                  /* scratch for re-reading them */
    struct pyprof_frame_hint *hints;  /* direct-mapped by frame address, all threads */
    uint8_t *ahead;                   /* frames read ahead along the hinted chain */
    uintptr_t *ahead_addr;
    int ahead_count, ahead_next;
    int ahead_window;     /* how many frames the next read ahead may take (see walk) */
    struct pyprof_chunk_copy old[PYPROF_OLD_CHUNKS];   /* older chunks, this walk */
    int nold;
    uintptr_t next_old;   /* the chunk before the last one copied: copied when reached */
};
void pyprof_walk_buf_free(struct pyprof_walk_buf *buf);

/*
 * Walk a thread's frames, innermost first, into out[0..max). Returns the number of frames,
 * or -EFAULT (memory gone), -ENOMEM, -ELOOP (the stack was torn: it moved while we read it).
 * On 3.11+ the thread's current data-stack chunk is copied in one read and frames inside
 * it are walked from that copy; so are older chunks (a stack deeper than one chunk), each
 * copied whole when the walk reaches it. Other frames (all of them on 3.9/3.10) cannot be found
 * before their callee is read; so the walker remembers, for every such frame it read,
 * its caller, and reads a frame together with the chain of callers it had last time, in
 * one call: a deep stack whose lower part did not change costs a read or two instead of
 * one per frame (3.9/3.10 even reuse a code object's frame memory for its next call).
 * A frame read ahead is used only if its callee really points to it; a chain that proved
 * wrong shrinks the next read ahead to twice what was right (3.9's frame free list hands
 * a recursion's frames back shifted by one level: every hint is wrong, and reading a full
 * wrong chain at every step made a 500-frame walk cost tens of milliseconds), one that
 * proved right doubles it. Frames read outside
 * the chunk are read again, all in one call, at the end: if any changed, or the innermost
 * frame did, the walk is thrown away.
 */
int pyprof_py_walk(const struct pyprof_py *py, struct pyprof_walk_buf *buf,
                   const struct pyprof_thread_ref *thread, struct pyprof_raw_frame *out, int max);

/* The raw fields of a code object, read in one go: the pointers are kept so that a cache
 * entry can be re-validated cheaply (freed code objects are reused at the same address). */
struct pyprof_code_raw {
    uintptr_t filename, name, qualname, linetable;
    int firstlineno;
    int framesize;    /* words its frames take on the data stack; 0 when unknown */
};

/* On the data stack a frame's callee starts right where the frame ends, and a frame whose
 * callee opened a newer chunk is the last of its own chunk (its end is that chunk's saved
 * top). Frames that break this were copied at different moments (the thread pushed and
 * popped while the kernel copied): 1 when out[0..n) holds such a pair, given each frame's
 * code (raw[i] for out[i]). */
int pyprof_py_torn_chunk(const struct pyprof_raw_frame *out, const struct pyprof_code_raw *raw,
                         int n);

/* Parse a code object header already copied into `header` (layout.code_read_size bytes).
 * -EINVAL when its type is not PyCode_Type. */
int pyprof_py_code_parse(const struct pyprof_py *py, const uint8_t *header,
                         struct pyprof_code_raw *out);

/* Read a str object as UTF-8 (NUL-terminated, cut at `size`-1 bytes on a character
 * boundary). Returns the length or -errno. */
int pyprof_py_string(const struct pyprof_py *py, uintptr_t str, char *out, size_t size);

/* Copy a bytes object into a malloc'd buffer (at most `cap` bytes). Length or -errno. */
int pyprof_py_bytes(const struct pyprof_py *py, uintptr_t bytes, uint8_t **out, size_t cap);

/* Line number for the instruction at byte `offset`, from the code's line table. A
 * negative offset (a frame that has not started) gives firstlineno; no line gives -1. */
int pyprof_py_line(const struct pyprof_py *py, const uint8_t *table, size_t len, int firstlineno,
                   int offset);

/* Could this be a pointer to an object or frame? (User space, lower half, aligned.) */
int pyprof_plausible_ptr(uintptr_t p);

/* Find where glibc stores a thread's kernel tid inside struct pthread, by looking for our
 * own tid in our own pthread_self() (then confirmed on a second thread by the caller). */
ptrdiff_t pyprof_pthread_tid_offset(unsigned long self, int tid);

#endif
