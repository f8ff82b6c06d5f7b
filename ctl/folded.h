/*
 * Reading collapsed ("folded") stacks back into a Profile, for `pyprofctl convert`:
 * one `frame;frame;leaf VALUE` line per stack, frames `name (file:line)`, `name (file)` or
 * `name`. VALUE is taken as microseconds of weight (pyprof's default unit); each line counts
 * as one sample.
 */
#ifndef PYPROF_CTL_FOLDED_H
#define PYPROF_CTL_FOLDED_H

#include <stddef.h>

#include "profile.pb-c.h"

/* 0 with *out (free with pyprof_pbuild_free_profile), or -EINVAL with the line number of
 * the first bad line in *bad_line, or -ENOMEM. */
int pyprof_folded_parse(const char *text, size_t len, Perftools__Profiles__Profile **out,
                        size_t *bad_line);

/* Does this buffer look like collapsed stacks (text lines ending in a number)? */
int pyprof_folded_detect(const char *text, size_t len);

#endif
