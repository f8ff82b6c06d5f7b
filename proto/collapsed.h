/*
 * Brendan Gregg's collapsed ("folded") stacks from a pprof Profile: one line per stack,
 * root first, frames joined by ';', then a space and the value.
 *
 * Shared by pyprofctl (dump, convert) and the agent (PYPROF_OUTPUT at exit), so that both
 * write exactly the same text. Pure: writes only to the FILE it is given.
 */
#ifndef PYPROF_PROTO_COLLAPSED_H
#define PYPROF_PROTO_COLLAPSED_H

#include <stdio.h>

#include "profile.pb-c.h"

/* Frames in one sample's stack, beyond which a profile is refused as inconsistent: the
 * agent writes at most 2048 (PYPROF_MAX_DEPTH) and a few roots, collapsed files hold at
 * most 4096. The flamegraph recurses once per frame, and a location's lines multiply the
 * sample's location ids: unchecked, a 14 KB pprof file overflows the stack. */
#define PYPROF_MAX_STACK_FRAMES 8192

struct pyprof_collapsed_options {
    int functions;   /* one frame per function: drop line numbers */
    int threads;     /* a root frame per thread: "thread-name (tid)" */
    int samples;     /* values are sample counts instead of microseconds */
};

/* 0, -EINVAL for a profile whose ids or indexes do not hold together, -EIO on write errors. */
int pyprof_collapsed_write(const Perftools__Profiles__Profile *profile,
                           const struct pyprof_collapsed_options *options, FILE *out);

#endif
