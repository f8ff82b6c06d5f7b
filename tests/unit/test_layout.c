/*
 * The per-version CPython layout units (preload/python/).
 *
 * 3.9-3.12 are static tables: check that each is internally consistent for its version.
 * 3.13/3.14 read _Py_DebugOffsets from the interpreter: feed them a fake table built here,
 * word by word, from the CPython headers' field order (written independently of the units),
 * and check what they make of it, and that they refuse what they should.
 * If PYPROF_GEN_LAYOUT names scripts/gen-layout and pyenv headers exist, also run
 * `gen-layout --check`, which compares the tables with the real headers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "python/layout.h"

#define NO PYPROF_NO_FIELD

/* ---- invariants every layout must satisfy ------------------------------------------------- */

static void assert_field_within(ptrdiff_t off, size_t width, size_t read_size)
{
    if (off == NO)
        return;
    assert_true(off >= 0);
    assert_true((size_t)off + width <= read_size);
}

/* Field presence by version, read sizes covering every field, sane object offsets. */
static void assert_invariants(const struct pyprof_py_layout *l, int minor)
{
    int interp_frames = minor >= 11;

    assert_int_equal(l->major, 3);
    assert_int_equal(l->minor, minor);
    assert_int_equal(l->frame_kind, interp_frames ? PYPROF_FRAME_INTERP : PYPROF_FRAME_OBJECT);
    assert_int_equal(l->line_kind, minor == 9    ? PYPROF_LINE_LNOTAB
                                   : minor == 10 ? PYPROF_LINE_LINETABLE
                                                 : PYPROF_LINE_LOCATIONS);
    assert_int_equal(l->instr_kind, minor == 9    ? PYPROF_INSTR_LASTI_BYTES
                                    : minor == 10 ? PYPROF_INSTR_LASTI_UNITS
                                                  : PYPROF_INSTR_POINTER);

    /* Where the GIL holder comes from: the runtime up to 3.11, the interpreter after. */
    assert_true(l->runtime_interp_head > 0);
    assert_true(l->runtime_finalizing > 0);
    assert_true((l->runtime_tstate_current != NO) == (minor <= 11));
    assert_true((l->interp_gil != NO) == (minor >= 12));
    assert_true((l->gil_locked != NO) == (minor >= 12));
    assert_true((l->gil_last_holder != NO) == (minor >= 12));
    assert_true(l->interp_tstate_head >= 0);
    assert_true(l->interp_gc_collecting > 0);

    /* Threads and how to reach their innermost frame. */
    assert_int_equal(l->tstate_next, 8); /* PyThreadState opens with prev, next */
    assert_true(l->tstate_frame > 0);
    assert_true((l->cframe_current_frame != NO) == (minor == 11 || minor == 12));
    assert_true(l->tstate_thread_id > 0);
    assert_true((l->tstate_native_thread_id != NO) == interp_frames);
    assert_true((l->tstate_datastack_chunk != NO) == interp_frames);
    if (interp_frames)
        assert_int_equal(l->tstate_datastack_top, l->tstate_datastack_chunk + 8);
    else
        assert_int_equal(l->tstate_datastack_top, NO);

    /* Frames: one read of frame_read_size bytes must cover every field. */
    assert_true(l->frame_read_size > 0);
    assert_field_within(l->frame_back, 8, l->frame_read_size);
    assert_field_within(l->frame_code, 8, l->frame_read_size);
    assert_field_within(l->frame_instr, interp_frames ? 8 : 4, l->frame_read_size);
    assert_true((l->frame_owner != NO) == interp_frames);
    assert_field_within(l->frame_owner, 1, l->frame_read_size);
    assert_true(l->frame_back != l->frame_code && l->frame_code != l->frame_instr);
    if (minor >= 14) {
        assert_true(l->frame_code_mask != ~(uintptr_t)0);
        assert_int_equal(~l->frame_code_mask & ~(uintptr_t)7, 0); /* only low tag bits */
    } else {
        assert_true(l->frame_code_mask == ~(uintptr_t)0);
    }
    assert_int_equal(l->frame_owner_cstack, minor <= 11 ? -1 : minor <= 13 ? 3 : 4);
    assert_int_equal(l->frame_owner_interpreter, minor >= 14 ? 3 : -1);

    /* Code objects: the same for code_read_size. */
    assert_true(l->code_read_size > 0);
    assert_field_within(l->code_filename, 8, l->code_read_size);
    assert_field_within(l->code_name, 8, l->code_read_size);
    assert_field_within(l->code_qualname, 8, l->code_read_size);
    assert_field_within(l->code_firstlineno, 4, l->code_read_size);
    assert_field_within(l->code_linetable, 8, l->code_read_size);
    assert_field_within(l->code_adaptive, 0, l->code_read_size);
    assert_true((l->code_qualname != NO) == interp_frames);
    assert_true((l->code_adaptive != NO) == interp_frames);
    assert_true(l->code_filename != NO && l->code_name != NO && l->code_linetable != NO);

    /* Strings and bytes: header fields after PyObject, data after the header. */
    assert_int_equal(l->object_type, 8);
    assert_true(l->unicode_length >= 16 && l->unicode_state >= 16);
    assert_true((size_t)l->unicode_state + 4 <= l->unicode_ascii_size);
    assert_true(l->unicode_compact_size > l->unicode_ascii_size);
    assert_true(l->bytes_size >= 16 && l->bytes_data > l->bytes_size);
}

static void test_static_tables(void **state)
{
    (void)state;
    for (int minor = 9; minor <= 12; minor++) {
        struct pyprof_py_layout l;

        memset(&l, 0xa5, sizeof(l));
        /* Tables need neither a runtime nor a reader. */
        assert_int_equal(pyprof_py_layout_get(minor, 0, NULL, &l), 0);
        assert_invariants(&l, minor);
    }
}

static void test_unsupported_versions(void **state)
{
    const int minors[] = {-1, 0, 8, 15, 100};
    struct pyprof_py_layout l;

    (void)state;
    for (size_t i = 0; i < sizeof(minors) / sizeof(minors[0]); i++)
        assert_int_equal(pyprof_py_layout_get(minors[i], 0, NULL, &l), -ENOTSUP);
}

/* ---- a fake _Py_DebugOffsets -------------------------------------------------------------- */

/* Word index (one uint64_t each) of the fields the units read, in the table of each version.
   Counted from Include/internal/pycore_runtime.h (3.13) and pycore_debug_offsets.h (3.14). */
struct dbg_words {
    int words; /* the table up to and including the gc group */
    int rt_size, rt_finalizing, rt_head;
    int in_size, in_threads_head, in_gc, in_ceval_gil, in_gil, in_gil_locked, in_gil_holder;
    int ts_size, ts_prev, ts_next, ts_frame, ts_thread_id, ts_native, ts_chunk;
    int fr_size, fr_previous, fr_exec, fr_instr, fr_owner;
    int co_size, co_filename, co_name, co_qualname, co_linetable, co_firstlineno, co_adaptive;
    int ob_size, ob_type;
    int by_size, by_ob_size, by_sval;
    int un_size, un_state, un_length, un_ascii;
    int gc_size, gc_collecting;
};

static const struct dbg_words words313 = {
    .words = 73,
    .rt_size = 3, .rt_finalizing = 4, .rt_head = 5,
    .in_size = 6, .in_threads_head = 9, .in_gc = 10, .in_ceval_gil = 14, .in_gil = 15,
    .in_gil_locked = 17, .in_gil_holder = 18,
    .ts_size = 19, .ts_prev = 20, .ts_next = 21, .ts_frame = 23, .ts_thread_id = 24,
    .ts_native = 25, .ts_chunk = 26,
    .fr_size = 28, .fr_previous = 29, .fr_exec = 30, .fr_instr = 31, .fr_owner = 33,
    .co_size = 34, .co_filename = 35, .co_name = 36, .co_qualname = 37, .co_linetable = 38,
    .co_firstlineno = 39, .co_adaptive = 43,
    .ob_size = 44, .ob_type = 45,
    /* type 46-49, tuple 50-52, list 53-55, dict 56-58, float 59-60, long 61-63 */
    .by_size = 64, .by_ob_size = 65, .by_sval = 66,
    .un_size = 67, .un_state = 68, .un_length = 69, .un_ascii = 70,
    .gc_size = 71, .gc_collecting = 72,
};

/* 3.14 adds threads_main, code_object_generation, tlbc_generation (interpreter), stackpointer,
   tlbc_index (frame), co_tlbc (code) and a set group between list and dict. */
static const struct dbg_words words314 = {
    .words = 83,
    .rt_size = 3, .rt_finalizing = 4, .rt_head = 5,
    .in_size = 6, .in_threads_head = 9, .in_gc = 11, .in_ceval_gil = 15, .in_gil = 16,
    .in_gil_locked = 18, .in_gil_holder = 19,
    .ts_size = 22, .ts_prev = 23, .ts_next = 24, .ts_frame = 26, .ts_thread_id = 27,
    .ts_native = 28, .ts_chunk = 29,
    .fr_size = 31, .fr_previous = 32, .fr_exec = 33, .fr_instr = 34, .fr_owner = 36,
    .co_size = 39, .co_filename = 40, .co_name = 41, .co_qualname = 42, .co_linetable = 43,
    .co_firstlineno = 44, .co_adaptive = 48,
    .ob_size = 50, .ob_type = 51,
    /* type 52-55, tuple 56-58, list 59-61, set 62-65, dict 66-68, float 69-70, long 71-73 */
    .by_size = 74, .by_ob_size = 75, .by_sval = 76,
    .un_size = 77, .un_state = 78, .un_length = 79, .un_ascii = 80,
    .gc_size = 81, .gc_collecting = 82,
};

/* The fake _PyRuntime the reader serves, and what it was last asked for. Tests only. */
static uint64_t fake[128];
static size_t fake_read_len;

static int fake_read(void *dst, uintptr_t addr, size_t len)
{
    uintptr_t base = (uintptr_t)fake;

    if (addr < base || addr - base > sizeof(fake) || len > sizeof(fake) - (addr - base))
        return -EFAULT;
    memcpy(dst, (const void *)addr, len);
    fake_read_len = len;
    return 0;
}

static int failing_read(void *dst, uintptr_t addr, size_t len)
{
    (void)dst, (void)addr, (void)len;
    return -EFAULT;
}

/* A plausible release-build table with distinct made-up numbers, so that a unit reading the
   wrong word shows up as a wrong value. */
static void make_table(const struct dbg_words *w, uint64_t version)
{
    memset(fake, 0, sizeof(fake));
    memcpy(&fake[0], "xdebugpy", 8);
    fake[1] = version;
    fake[2] = 0; /* free_threaded */

    fake[w->rt_size] = 300000;
    fake[w->rt_finalizing] = 1016;
    fake[w->rt_head] = 1040;

    fake[w->in_size] = 200000;
    fake[w->in_threads_head] = 7344;
    fake[w->in_gc] = 7500;
    fake[w->in_ceval_gil] = 24;
    fake[w->in_gil] = 9000;
    fake[w->in_gil_locked] = 9020;
    fake[w->in_gil_holder] = 9008;

    fake[w->ts_size] = 320;
    fake[w->ts_prev] = 0;
    fake[w->ts_next] = 8;
    fake[w->ts_frame] = 72;
    fake[w->ts_thread_id] = 152;
    fake[w->ts_native] = 160;
    fake[w->ts_chunk] = 232;

    fake[w->fr_size] = 88;
    fake[w->fr_previous] = 8;
    fake[w->fr_exec] = 0;
    fake[w->fr_instr] = 56;
    fake[w->fr_owner] = 74;

    fake[w->co_size] = 224;
    fake[w->co_filename] = 112;
    fake[w->co_name] = 120;
    fake[w->co_qualname] = 128;
    fake[w->co_linetable] = 136;
    fake[w->co_firstlineno] = 68;
    fake[w->co_adaptive] = 208;

    fake[w->ob_size] = 16;
    fake[w->ob_type] = 8;

    fake[w->by_size] = 40;
    fake[w->by_ob_size] = 16;
    fake[w->by_sval] = 32;

    fake[w->un_size] = 64;
    fake[w->un_state] = 32;
    fake[w->un_length] = 16;
    fake[w->un_ascii] = 40;

    fake[w->gc_size] = 240;
    fake[w->gc_collecting] = 100;
}

static int get(int minor, struct pyprof_py_layout *l)
{
    fake_read_len = 0;
    return pyprof_py_layout_get(minor, (uintptr_t)fake, fake_read, l);
}

static void assert_from_table(const struct pyprof_py_layout *l, int minor,
                              const struct dbg_words *w)
{
    assert_invariants(l, minor);
    /* The unit read exactly the table up to the gc group. */
    assert_int_equal(fake_read_len, (size_t)w->words * 8);

    assert_int_equal(l->runtime_interp_head, 1040);
    assert_int_equal(l->runtime_finalizing, 1016);
    assert_int_equal(l->runtime_tstate_current, NO);

    assert_int_equal(l->interp_tstate_head, 7344);
    assert_int_equal(l->interp_gc_collecting, 7500 + 100);
    assert_int_equal(l->interp_gil, 24);
    assert_int_equal(l->gil_locked, 20);     /* given from the interpreter, wanted from _gil */
    assert_int_equal(l->gil_last_holder, 8);

    assert_int_equal(l->tstate_next, 8);
    assert_int_equal(l->tstate_frame, 72);
    assert_int_equal(l->cframe_current_frame, NO);
    assert_int_equal(l->tstate_thread_id, 152);
    assert_int_equal(l->tstate_native_thread_id, 160);
    assert_int_equal(l->tstate_datastack_chunk, 232);
    assert_int_equal(l->tstate_datastack_top, 240);

    assert_int_equal(l->frame_back, 8);
    assert_int_equal(l->frame_code, 0);
    assert_int_equal(l->frame_instr, 56);
    assert_int_equal(l->frame_owner, 74);
    assert_int_equal(l->frame_read_size, 75);

    assert_int_equal(l->code_filename, 112);
    assert_int_equal(l->code_name, 120);
    assert_int_equal(l->code_qualname, 128);
    assert_int_equal(l->code_firstlineno, 68);
    assert_int_equal(l->code_linetable, 136);
    assert_int_equal(l->code_adaptive, 208);
    assert_int_equal(l->code_read_size, 208);

    assert_int_equal(l->unicode_length, 16);
    assert_int_equal(l->unicode_state, 32);
    assert_int_equal(l->unicode_ascii_size, 40);
    assert_int_equal(l->unicode_compact_size, 56);
    assert_int_equal(l->bytes_size, 16);
    assert_int_equal(l->bytes_data, 32);
    assert_int_equal(l->object_type, 8);
}

static void test_debug_offsets_313(void **state)
{
    struct pyprof_py_layout l;

    (void)state;
    make_table(&words313, 0x030d00f0); /* 3.13.0 final */
    assert_int_equal(get(13, &l), 0);
    assert_from_table(&l, 13, &words313);
    assert_true(l.frame_code_mask == ~(uintptr_t)0);

    make_table(&words313, 0x030d0cc1); /* a later patch release candidate is fine */
    assert_int_equal(get(13, &l), 0);
}

static void test_debug_offsets_314(void **state)
{
    struct pyprof_py_layout l;

    (void)state;
    make_table(&words314, 0x030e00f0); /* 3.14.0 final */
    assert_int_equal(get(14, &l), 0);
    assert_from_table(&l, 14, &words314);
    /* f_executable is a tagged _PyStackRef: the mask clears the tag, keeps the pointer. */
    assert_true((((uintptr_t)0x7f0012345670 | 1) & l.frame_code_mask) == 0x7f0012345670);
    assert_true((((uintptr_t)0x7f0012345670 | 3) & l.frame_code_mask) == 0x7f0012345670);
}

/* Each way a table can be refused, for both versions; `out` stays untouched. */
static void assert_refused(int minor, const struct dbg_words *w, uint64_t version)
{
    struct pyprof_py_layout l, before;

    memset(&before, 0x5a, sizeof(before));
    l = before;

    make_table(w, version);
    memcpy(&fake[0], "xdebugpx", 8);
    assert_int_equal(get(minor, &l), -EINVAL);

    make_table(w, version);
    fake[2] = 1; /* free-threaded */
    assert_int_equal(get(minor, &l), -ENOTSUP);

    make_table(w, version - 0x10000); /* the previous minor's interpreter */
    assert_int_equal(get(minor, &l), -EINVAL);
    make_table(w, version + 0x10000); /* the next one */
    assert_int_equal(get(minor, &l), -EINVAL);
    make_table(w, version + 0x01000000); /* 4.x */
    assert_int_equal(get(minor, &l), -EINVAL);
    make_table(w, (version & ~(uint64_t)0xff) | 0xb2); /* a beta: table shape not final */
    assert_int_equal(get(minor, &l), -EINVAL);

    make_table(w, version);
    fake[w->fr_owner] = fake[w->fr_size]; /* a field past the end of its structure */
    assert_int_equal(get(minor, &l), -EINVAL);

    make_table(w, version);
    fake[w->ob_size] = 32; /* words shifted: not the table we know */
    assert_int_equal(get(minor, &l), -EINVAL);

    make_table(w, version);
    fake[w->in_size] = UINT64_MAX; /* garbage */
    assert_int_equal(get(minor, &l), -EINVAL);

    make_table(w, version);
    assert_int_equal(pyprof_py_layout_get(minor, (uintptr_t)fake, failing_read, &l), -EFAULT);
    assert_int_equal(pyprof_py_layout_get(minor, 0, fake_read, &l), -EINVAL);
    assert_int_equal(pyprof_py_layout_get(minor, (uintptr_t)fake, NULL, &l), -EINVAL);

    assert_memory_equal(&l, &before, sizeof(l));
}

static void test_debug_offsets_refused(void **state)
{
    (void)state;
    assert_refused(13, &words313, 0x030d00f0);
    assert_refused(14, &words314, 0x030e00f0);

    /* A 3.14 table handed to the 3.13 unit, and the other way round. */
    struct pyprof_py_layout l;
    make_table(&words314, 0x030e00f0);
    assert_int_equal(get(13, &l), -EINVAL);
    make_table(&words313, 0x030d00f0);
    assert_int_equal(get(14, &l), -EINVAL);
}

/* ---- the tables against the real headers -------------------------------------------------- */

static int pyenv_headers_present(void)
{
    const char *root = getenv("PYENV_ROOT");
    char pattern[4096];
    glob_t g;
    int found;

    if (root == NULL || *root == '\0') {
        const char *home = getenv("HOME");
        snprintf(pattern, sizeof(pattern), "%s/.pyenv", home ? home : "");
    } else {
        snprintf(pattern, sizeof(pattern), "%s", root);
    }
    strncat(pattern, "/versions/3.*/include/python3.*/internal/pycore_runtime.h",
            sizeof(pattern) - strlen(pattern) - 1);
    found = glob(pattern, 0, NULL, &g) == 0 && g.gl_pathc > 0;
    globfree(&g);
    return found;
}

static void test_gen_layout_check(void **state)
{
    const char *script = getenv("PYPROF_GEN_LAYOUT");
    char cmd[4096];
    int rc;

    (void)state;
    if (script == NULL || *script == '\0') {
        print_message("skipped: PYPROF_GEN_LAYOUT is not set (path to scripts/gen-layout)\n");
        skip();
    }
    if (!pyenv_headers_present()) {
        print_message("skipped: no pyenv CPython headers to check the tables against\n");
        skip();
    }
    assert_null(strchr(script, '\'')); /* quoted below */
    snprintf(cmd, sizeof(cmd), "'%s' --check", script);
    rc = system(cmd);
    assert_true(rc != -1 && WIFEXITED(rc));
    assert_int_equal(WEXITSTATUS(rc), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_static_tables),
        cmocka_unit_test(test_unsupported_versions),
        cmocka_unit_test(test_debug_offsets_313),
        cmocka_unit_test(test_debug_offsets_314),
        cmocka_unit_test(test_debug_offsets_refused),
        cmocka_unit_test(test_gen_layout_check),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
