/*
 * CPython 3.13 layout, read from the interpreter's own _Py_DebugOffsets.
 *
 * 3.13 starts _PyRuntime with a table meant for out-of-process debuggers: the cookie
 * "xdebugpy", PY_VERSION_HEX, a free-threaded flag, then one uint64_t per field, grouped by
 * structure, each group led by that structure's size. Taking offsets from the running process
 * rather than from a table built into pyprof means a build with other configure options cannot
 * fool us, and lets us refuse (free-threaded) builds we do not handle.
 *
 * The table's shape is stable within a minor version only. struct dbg313 follows the order of
 * the 3.13 headers (Include/internal/pycore_runtime.h). The few values the table lacks are
 * marked "header:" below; they were derived from the 3.13.0 headers, and
 * `scripts/gen-layout --check` compares the complete result, through the real
 * libpython3.13.so, with the headers.
 */
#include <errno.h>
#include <string.h>

#include "layout.h"

/* What pyprof reads of 3.13's _Py_DebugOffsets: the groups up to and including gc. Groups it
   does not use are kept as anonymous words so that the later ones land where they belong. */
struct dbg313 {
    char cookie[8];
    uint64_t version;
    uint64_t free_threaded;
    struct {
        uint64_t size, finalizing, interpreters_head;
    } runtime;
    struct {
        uint64_t size, id, next, threads_head, gc, imports_modules, sysdict, builtins;
        uint64_t ceval_gil, gil, gil_enabled, gil_locked, gil_holder; /* gil*: from interp */
    } interp;
    struct {
        uint64_t size, prev, next, interp, current_frame, thread_id, native_thread_id;
        uint64_t datastack_chunk, status;
    } tstate;
    struct {
        uint64_t size, previous, executable, instr_ptr, localsplus, owner;
    } frame;
    struct {
        uint64_t size, filename, name, qualname, linetable, firstlineno, argcount;
        uint64_t localsplusnames, localspluskinds, code_adaptive;
    } code;
    struct {
        uint64_t size, ob_type;
    } object;
    uint64_t type_tuple_list_dict_float_long[4 + 3 + 3 + 3 + 2 + 3];
    struct {
        uint64_t size, ob_size, ob_sval;
    } bytes;
    struct {
        uint64_t size, state, length, ascii_size;
    } unicode;
    struct {
        uint64_t size, collecting;
    } gc;
};

_Static_assert(sizeof(struct dbg313) == 73 * sizeof(uint64_t), "3.13 debug table prefix");

#define PY313_MAJOR_MINOR 0x030d
#define PY_LEVEL_GAMMA 0xc          /* release candidates: the ABI, and this table, are final */
#define STRUCT_SIZE_MAX (1u << 24)  /* far above any real structure; rejects garbage */

/* header: PyThreadState has datastack_top right after datastack_chunk. */
#define DATASTACK_TOP_AFTER_CHUNK 8
/* header: PyCompactUnicodeObject is PyASCIIObject + Py_ssize_t utf8_length + char *utf8. */
#define COMPACT_AFTER_ASCII 16
/* header: enum _frameowner, FRAME_OWNED_BY_CSTACK (entry shims on the C stack). */
#define OWNED_BY_CSTACK 3

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
static void frame_spans(const struct dbg313 *d, struct span s[4])
{
    uint64_t n = d->frame.size;

    s[0] = (struct span){d->frame.previous, 8, n};
    s[1] = (struct span){d->frame.executable, 8, n};
    s[2] = (struct span){d->frame.instr_ptr, 8, n};
    s[3] = (struct span){d->frame.owner, 1, n};
}

static void code_spans(const struct dbg313 *d, struct span s[6])
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
static int check_identity(const struct dbg313 *d)
{
    if (memcmp(d->cookie, "xdebugpy", sizeof(d->cookie)) != 0)
        return -EINVAL;
    /* Alphas and betas may carry an earlier shape of the table. */
    if ((d->version >> 16) != PY313_MAJOR_MINOR || ((d->version >> 4) & 0xf) < PY_LEVEL_GAMMA)
        return -EINVAL;
    if (d->free_threaded != 0)
        return -ENOTSUP; /* every object field moves, and there is no GIL to report */
    return 0;
}

/* Every offset we use must lie inside its structure, and a few fixed points must be where
   every 3.13 build has them. A table that fails this is not the one struct dbg313 describes. */
static int check_offsets(const struct dbg313 *d)
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
    /* The table itself opens _PyRuntime, so the runtime's own fields come after it. */
    if (d->runtime.finalizing < sizeof(*d) || d->runtime.interpreters_head < sizeof(*d))
        return -EINVAL;
    /* PyThreadState opens with prev, and a GIL build's PyObject is {refcount, type}. */
    if (d->tstate.prev != 0 || d->object.size != 16 || d->object.ob_type != 8)
        return -EINVAL;
    return 0;
}

static void fill(const struct dbg313 *d, struct pyprof_py_layout *l)
{
    struct span frame[4], code[6];

    frame_spans(d, frame);
    code_spans(d, code);
    *l = (struct pyprof_py_layout){
        .major = 3,
        .minor = 13,
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

        .frame_back = (ptrdiff_t)d->frame.previous,
        .frame_code = (ptrdiff_t)d->frame.executable, /* a plain PyObject *, maybe not code */
        .frame_instr = (ptrdiff_t)d->frame.instr_ptr,
        .frame_owner = (ptrdiff_t)d->frame.owner,
        .frame_read_size = spans_end(frame, 4),
        .frame_code_mask = ~(uintptr_t)0,
        .frame_owner_cstack = OWNED_BY_CSTACK,
        .fork_counts_threads_late = 1,
        .frame_owner_interpreter = -1,

        .code_filename = (ptrdiff_t)d->code.filename,
        .code_name = (ptrdiff_t)d->code.name,
        .code_qualname = (ptrdiff_t)d->code.qualname,
        .code_firstlineno = (ptrdiff_t)d->code.firstlineno,
        .code_linetable = (ptrdiff_t)d->code.linetable,
        .code_adaptive = (ptrdiff_t)d->code.code_adaptive,
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

int pyprof_py313_layout(uintptr_t runtime, pyprof_read_fn read, struct pyprof_py_layout *out)
{
    struct dbg313 d;
    int rc;

    if (runtime == 0 || read == NULL)
        return -EINVAL;
    rc = read(&d, runtime, sizeof(d));
    if (rc != 0)
        return rc;
    rc = check_identity(&d);
    if (rc == 0)
        rc = check_offsets(&d);
    if (rc == 0)
        fill(&d, out);
    return rc;
}
