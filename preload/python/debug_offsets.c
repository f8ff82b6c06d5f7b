#include "debug_offsets.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

#define PY_LEVEL_GAMMA 0xc          /* release candidates: the ABI, and this table, are final */
#define STRUCT_SIZE_MAX (1u << 24)  /* far above any real structure; rejects garbage */

/* PyThreadState has datastack_top right after datastack_chunk (3.13 and 3.14 headers). */
#define DATASTACK_TOP_AFTER_CHUNK 8
/* _PyStackChunk is {previous, size, top, data[]} (3.11 to 3.14 headers; not in the table). */
#define STACK_CHUNK_PREVIOUS 0
#define STACK_CHUNK_SIZE 8
#define STACK_CHUNK_TOP 16
#define STACK_CHUNK_DATA 24
/* PyCompactUnicodeObject is PyASCIIObject + Py_ssize_t utf8_length + char *utf8. */
#define COMPACT_AFTER_ASCII 16

/* A field of `width` bytes at `off` inside a structure of `size` bytes. */
struct span {
    uint64_t off, width, size;
};

static int span_fits(const struct span *s)
{
    return s->size <= STRUCT_SIZE_MAX && s->off <= s->size && s->width <= s->size - s->off;
}

static int spans_fit(const struct span *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!span_fits(&s[i]))
            return 0;
    return 1;
}

static size_t spans_end(const struct span *s, size_t n)
{
    size_t end = 0;

    for (size_t i = 0; i < n; i++)
        if (s[i].off + s[i].width > end)
            end = (size_t)(s[i].off + s[i].width);
    return end;
}

/* The frame and code fields pyprof reads; their furthest end is the read size. */
static void frame_spans(const struct pyprof_dbg *d, struct span s[4])
{
    uint64_t n = d->frame.size;

    s[0] = (struct span){d->frame.previous, 8, n};
    s[1] = (struct span){d->frame.executable, 8, n};
    s[2] = (struct span){d->frame.instr_ptr, 8, n};
    s[3] = (struct span){d->frame.owner, 1, n};
}

static void code_spans(const struct pyprof_dbg *d, struct span s[6])
{
    uint64_t n = d->code.size;

    s[0] = (struct span){d->code.filename, 8, n};
    s[1] = (struct span){d->code.name, 8, n};
    s[2] = (struct span){d->code.qualname, 8, n};
    s[3] = (struct span){d->code.firstlineno, 4, n};
    s[4] = (struct span){d->code.linetable, 8, n};
    s[5] = (struct span){d->code.code_adaptive, 0, n};
}

/* Cookie, version and build flavour: is this a table we know how to read at all? */
static int check_identity(const struct pyprof_dbg *d, const struct pyprof_dbg_version *v)
{
    if (memcmp(d->cookie, "xdebugpy", sizeof(d->cookie)) != 0)
        return -EINVAL;
    /* Alphas and betas may carry an earlier shape of the table. */
    if ((d->version >> 16) != (uint64_t)(0x0300 | v->minor) || ((d->version >> 4) & 0xf) < PY_LEVEL_GAMMA)
        return -EINVAL;
    if (d->free_threaded != 0)
        return -ENOTSUP; /* every object field moves, and there is no GIL to report */
    return 0;
}

/* Every offset we use must lie inside its structure, and a few fixed points must be where
   every build has them. A table that fails this is not the one we expect. */
static int check_offsets(const struct pyprof_dbg *d)
{
    const struct span fields[] = {
        {d->runtime.finalizing, 8, d->runtime.size},
        {d->runtime.interpreters_head, 8, d->runtime.size},
        {d->interp.threads_head, 8, d->interp.size},
        {d->interp.ceval_gil, 8, d->interp.size},
        {d->interp.gil_locked, 4, d->interp.size},
        {d->interp.gil_holder, 8, d->interp.size},
        {d->interp.gc, d->gc.size, d->interp.size},
        {d->gc.collecting, 4, d->gc.size},
        {d->tstate.next, 8, d->tstate.size},
        {d->tstate.current_frame, 8, d->tstate.size},
        {d->tstate.thread_id, 8, d->tstate.size},
        {d->tstate.native_thread_id, 8, d->tstate.size},
        {d->tstate.datastack_chunk, DATASTACK_TOP_AFTER_CHUNK + 8, d->tstate.size},
        {d->bytes.ob_size, 8, d->bytes.size},
        {d->bytes.ob_sval, 0, d->bytes.size},
        {d->unicode.length, 8, d->unicode.size},
        {d->unicode.state, 4, d->unicode.size},
        {0, d->unicode.ascii_size, d->unicode.size},
    };
    struct span frame[4], code[6];

    frame_spans(d, frame);
    code_spans(d, code);
    if (!spans_fit(fields, sizeof(fields) / sizeof(fields[0])) || !spans_fit(frame, 4) ||
        !spans_fit(code, 6))
        return -EINVAL;
    /* The GIL fields are given from the interpreter; we want them from the GIL struct. */
    if (d->interp.gil_locked < d->interp.gil || d->interp.gil_holder < d->interp.gil)
        return -EINVAL;
    /* The table opens _PyRuntime, so the runtime's own fields come after its header. */
    if (d->runtime.finalizing < 24 || d->runtime.interpreters_head < 24)
        return -EINVAL;
    /* PyThreadState opens with prev, and a GIL build's PyObject is {refcount, type}. */
    if (d->tstate.prev != 0 || d->object.size != 16 || d->object.ob_type != 8)
        return -EINVAL;
    return 0;
}

static void fill(const struct pyprof_dbg *d, const struct pyprof_dbg_version *v,
                 struct pyprof_py_layout *l)
{
    struct span frame[4], code[6];

    frame_spans(d, frame);
    code_spans(d, code);
    *l = (struct pyprof_py_layout){
        .major = 3,
        .minor = v->minor,
        .frame_kind = PYPROF_FRAME_INTERP,
        .line_kind = PYPROF_LINE_LOCATIONS,
        .instr_kind = PYPROF_INSTR_POINTER,

        .runtime_interp_head = (ptrdiff_t)d->runtime.interpreters_head,
        .runtime_finalizing = (ptrdiff_t)d->runtime.finalizing,
        .runtime_tstate_current = PYPROF_NO_FIELD,

        .interp_tstate_head = (ptrdiff_t)d->interp.threads_head,
        .interp_gc_collecting = (ptrdiff_t)(d->interp.gc + d->gc.collecting),
        .interp_gil = (ptrdiff_t)d->interp.ceval_gil,
        .gil_locked = (ptrdiff_t)(d->interp.gil_locked - d->interp.gil),
        .gil_last_holder = (ptrdiff_t)(d->interp.gil_holder - d->interp.gil),

        .tstate_next = (ptrdiff_t)d->tstate.next,
        .tstate_frame = (ptrdiff_t)d->tstate.current_frame,
        .cframe_current_frame = PYPROF_NO_FIELD,
        .tstate_thread_id = (ptrdiff_t)d->tstate.thread_id,
        .tstate_native_thread_id = (ptrdiff_t)d->tstate.native_thread_id,
        .tstate_datastack_chunk = (ptrdiff_t)d->tstate.datastack_chunk,
        .tstate_datastack_top = (ptrdiff_t)(d->tstate.datastack_chunk + DATASTACK_TOP_AFTER_CHUNK),
        .chunk_previous = STACK_CHUNK_PREVIOUS,
        .chunk_size = STACK_CHUNK_SIZE,
        .chunk_top = STACK_CHUNK_TOP,
        .chunk_data = STACK_CHUNK_DATA,

        .frame_back = (ptrdiff_t)d->frame.previous,
        .frame_code = (ptrdiff_t)d->frame.executable, /* maybe not code; maybe tagged */
        .frame_instr = (ptrdiff_t)d->frame.instr_ptr,
        .frame_owner = (ptrdiff_t)d->frame.owner,
        .frame_read_size = spans_end(frame, 4),
        .frame_code_mask = v->code_mask,
        .frame_owner_cstack = v->owner_cstack,
        .fork_counts_threads_late = 1,
        .frame_owner_interpreter = v->owner_interpreter,

        .code_filename = (ptrdiff_t)d->code.filename,
        .code_name = (ptrdiff_t)d->code.name,
        .code_qualname = (ptrdiff_t)d->code.qualname,
        .code_firstlineno = (ptrdiff_t)d->code.firstlineno,
        .code_linetable = (ptrdiff_t)d->code.linetable,
        .code_adaptive = (ptrdiff_t)d->code.code_adaptive,
        .code_framesize = v->code_framesize,
        .code_nlocalsplus = PYPROF_NO_FIELD,
        .code_stacksize = PYPROF_NO_FIELD,
        .frame_specials = 0,
        .code_read_size = spans_end(code, 6),

        .unicode_length = (ptrdiff_t)d->unicode.length,
        .unicode_state = (ptrdiff_t)d->unicode.state,
        .unicode_ascii_size = (size_t)d->unicode.ascii_size,
        .unicode_compact_size = (size_t)d->unicode.ascii_size + COMPACT_AFTER_ASCII,

        .bytes_size = (ptrdiff_t)d->bytes.ob_size,
        .bytes_data = (ptrdiff_t)d->bytes.ob_sval,

        .object_type = (ptrdiff_t)d->object.ob_type,
    };
}

int pyprof_dbg_layout(const struct pyprof_dbg *d, const struct pyprof_dbg_version *v,
                      struct pyprof_py_layout *out)
{
    int rc = check_identity(d, v);
    if (rc == 0)
        rc = check_offsets(d);
    if (rc == 0)
        fill(d, v, out);
    return rc;
}
