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

#include "debug_offsets.h"
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

/* header: enum _frameowner, FRAME_OWNED_BY_CSTACK (entry shims on the C stack). */
#define OWNED_BY_CSTACK 3
/* header: offsetof(PyCodeObject, co_framesize). */
#define CODE_FRAMESIZE 76

int pyprof_py313_layout(uintptr_t runtime, pyprof_read_fn read, struct pyprof_py_layout *out)
{
    struct dbg313 d;
    int rc;

    if (runtime == 0 || read == NULL)
        return -EINVAL;
    rc = read(&d, runtime, sizeof(d));
    if (rc != 0)
        return rc;
    struct pyprof_dbg n;
    PYPROF_DBG_COPY(&n, &d);
    static const struct pyprof_dbg_version v = {13, ~(uintptr_t)0, OWNED_BY_CSTACK, -1,
                                                CODE_FRAMESIZE};
    return pyprof_dbg_layout(&n, &v, out);
}
