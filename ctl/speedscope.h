/*
 * speedscope's file format (https://www.speedscope.app/file-format-schema.json): one
 * "sampled" profile per thread over a shared frame table, so that speedscope opens a pyprof
 * dump with a thread selector.
 */
#ifndef PYPROF_CTL_SPEEDSCOPE_H
#define PYPROF_CTL_SPEEDSCOPE_H

#include <stdio.h>

#include "collapsed.h"
#include "profile.pb-c.h"

/* Uses `functions` (one frame per function) and `samples` (counts instead of time) from
 * the options; `threads` is implied. 0, -EINVAL for an inconsistent profile, -ENOMEM, -EIO. */
int pyprof_speedscope_write(const Perftools__Profiles__Profile *profile,
                            const struct pyprof_collapsed_options *options, FILE *out);

#endif
