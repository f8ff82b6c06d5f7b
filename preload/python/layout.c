/*
 * pyprof_py_layout_get(): pick the layout unit for a CPython 3.x minor version.
 *
 * The caller has already established that the interpreter is CPython 3 (Py_Version or
 * Py_GetVersion()); only the minor number selects a unit. Each unit fills the layout with
 * major = 3, and the 3.13+ units also check the major/minor in the interpreter's own
 * _Py_DebugOffsets, so a mismatch between the caller's idea and the process is caught there.
 */
#include <errno.h>

#include "layout.h"

typedef int (*layout_unit)(uintptr_t runtime, pyprof_read_fn read,
                           struct pyprof_py_layout *out);

static const layout_unit units[] = {
    [9] = pyprof_py39_layout,
    [10] = pyprof_py310_layout,
    [11] = pyprof_py311_layout,
    [12] = pyprof_py312_layout,
    [13] = pyprof_py313_layout,
    [14] = pyprof_py314_layout,
};

int pyprof_py_layout_get(int minor, uintptr_t runtime, pyprof_read_fn read,
                         struct pyprof_py_layout *out)
{
    if (minor < 0 || (size_t)minor >= sizeof(units) / sizeof(units[0]) || units[minor] == NULL)
        return -ENOTSUP;
    return units[minor](runtime, read, out);
}
