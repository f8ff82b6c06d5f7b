/*
 * CPython 3.14 layout, read from the interpreter's own _Py_DebugOffsets.
 *
 * Same scheme as py313.c (see there for why): the table at the start of _PyRuntime gives the
 * offsets, and the few things it lacks are constants marked "source:" below. 3.14 is not
 * installed on the build machine, so struct dbg314 and those constants were derived by reading
 * the CPython 3.14 sources (Include/internal/pycore_debug_offsets.h, pycore_interpframe_structs.h,
 * pycore_stackref.h, cpython/pystate.h, cpython/unicodeobject.h) rather than by compiling
 * against them, and no 3.14 process has been read with it yet. The checks in check_offsets()
 * exist so that a table of another shape is refused (-EINVAL) instead of read as garbage.
 *
 * What changed since 3.13, for the part pyprof reads: the interpreter group gained
 * threads_main, code_object_generation and tlbc_generation; the frame group gained
 * stackpointer and tlbc_index; the code group gained co_tlbc; a set-object group sits between
 * the list and dict groups. f_executable became a tagged _PyStackRef, and the frame owners
 * gained FRAME_OWNED_BY_INTERPRETER.
 */
#include <errno.h>
#include <string.h>

#include "debug_offsets.h"
#include "layout.h"

/* What pyprof reads of 3.14's _Py_DebugOffsets: the groups up to and including gc (the
   generator, llist and remote-debugger groups that follow are not needed). Groups it does not
   use are kept as anonymous words so that the later ones land where they belong. */
struct dbg314 {
    char cookie[8];
    uint64_t version;
    uint64_t free_threaded;
    struct {
        uint64_t size, finalizing, interpreters_head;
    } runtime;
    struct {
        uint64_t size, id, next, threads_head, threads_main, gc, imports_modules, sysdict;
        uint64_t builtins, ceval_gil, gil, gil_enabled, gil_locked, gil_holder; /* from interp */
        uint64_t code_object_generation, tlbc_generation;
    } interp;
    struct {
        uint64_t size, prev, next, interp, current_frame, thread_id, native_thread_id;
        uint64_t datastack_chunk, status;
    } tstate;
    struct {
        uint64_t size, previous, executable, instr_ptr, localsplus, owner, stackpointer;
        uint64_t tlbc_index;
    } frame;
    struct {
        uint64_t size, filename, name, qualname, linetable, firstlineno, argcount;
        uint64_t localsplusnames, localspluskinds, code_adaptive, tlbc;
    } code;
    struct {
        uint64_t size, ob_type;
    } object;
    uint64_t type_tuple_list_set_dict_float_long[4 + 3 + 3 + 4 + 3 + 2 + 3];
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

_Static_assert(sizeof(struct dbg314) == 83 * sizeof(uint64_t), "3.14 debug table prefix");

/* source: enum _frameowner (pycore_interpframe_structs.h). Both kinds are shims, not Python
   calls: INTERPRETER is the entry frame _PyEval_EvalFrameDefault pushes, CSTACK the
   trampolines. */
#define OWNED_BY_INTERPRETER 3
#define OWNED_BY_CSTACK 4

/* source: pycore_stackref.h. A GIL build tags a _PyStackRef in its two low bits (Py_TAG_REFCNT
   is 1, tagged ints are 3; Py_TAG_BITS is 1 or 3 depending on the 3.14 snapshot). Objects are
   at least 8-byte aligned, so clearing both bits gives the pointer whichever it is. */
#define STACKREF_MASK (~(uintptr_t)3)

int pyprof_py314_layout(uintptr_t runtime, pyprof_read_fn read, struct pyprof_py_layout *out)
{
    struct dbg314 d;
    int rc;

    if (runtime == 0 || read == NULL)
        return -EINVAL;
    rc = read(&d, runtime, sizeof(d));
    if (rc != 0)
        return rc;
    struct pyprof_dbg n;
    PYPROF_DBG_COPY(&n, &d);
    /* co_framesize's place is not verified for 3.14 (no headers here): the sampler then
       skips its check that frames in the data-stack copy are contiguous. */
    static const struct pyprof_dbg_version v = {14, STACKREF_MASK, OWNED_BY_CSTACK,
                                                OWNED_BY_INTERPRETER, PYPROF_NO_FIELD};
    return pyprof_dbg_layout(&n, &v, out);
}
