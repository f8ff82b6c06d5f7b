/*
 * A self-contained interactive SVG flamegraph (no network): hover for name, file:line,
 * value and share; click to zoom into a frame, "Reset zoom" to come back; "Search" to
 * highlight frames matching a regular expression and see their share. Frames are coloured
 * by where the code lives: application, standard library, third-party packages, or
 * interpreter/pseudo frames ([idle], [native], [truncated]).
 *
 * The tree is built from the same frame labels as the collapsed output, so the two always
 * agree. Frames narrower than a tenth of a pixel are merged into their parent rather than
 * drawn, which keeps very large profiles small and responsive.
 */
#ifndef PYPROF_CTL_FLAMEGRAPH_H
#define PYPROF_CTL_FLAMEGRAPH_H

#include <stdio.h>

#include "collapsed.h"
#include "profile.pb-c.h"

struct pyprof_flamegraph_options {
    struct pyprof_collapsed_options stacks;  /* functions, threads, samples */
    const char *title;                       /* NULL: from the profile's comments */
    int icicle;                              /* root at the top */
    int width;                               /* pixels; 0: 1200 */
    /* Differential flamegraph: draw `profile` coloured by how each frame's share of the
     * total changed since `diff_base` (red grew, blue shrank); NULL for a plain one. */
    const Perftools__Profiles__Profile *diff_base;
};

/* 0, -EINVAL for an inconsistent profile, -ENOMEM, -EIO. */
int pyprof_flamegraph_write(const Perftools__Profiles__Profile *profile,
                            const struct pyprof_flamegraph_options *options, FILE *out);

#endif
