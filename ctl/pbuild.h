/*
 * Building a pprof Profile from scratch in pyprofctl: for merging the profiles of several
 * processes (dump --all) and for reading collapsed stacks back (convert). Strings,
 * functions and locations are interned; samples are appended.
 *
 * The builder owns everything until pyprof_pbuild_finish() hands the Profile over; free
 * that with pyprof_pbuild_free_profile(). Not thread-safe.
 */
#ifndef PYPROF_CTL_PBUILD_H
#define PYPROF_CTL_PBUILD_H

#include <stddef.h>
#include <stdint.h>

#include "profile.pb-c.h"

struct pyprof_pbuild;

struct pyprof_pbuild_label {
    const char *key;
    const char *str;   /* NULL for a numeric label */
    int64_t num;
};

/* `weight_type` is "cpu" or "wall" (the second sample type, in nanoseconds). */
struct pyprof_pbuild *pyprof_pbuild_new(const char *weight_type, int64_t period);
void pyprof_pbuild_free(struct pyprof_pbuild *b);

/* A location for (name, file, line) with the function's start line; 0 on failure. */
uint64_t pyprof_pbuild_location(struct pyprof_pbuild *b, const char *name, const char *file,
                                int64_t start_line, int64_t line);

/* Append a sample: locations leaf first, values {count, weight_ns}. 0 or -ENOMEM. */
int pyprof_pbuild_sample(struct pyprof_pbuild *b, const uint64_t *locations, size_t n,
                         int64_t count, int64_t weight_ns,
                         const struct pyprof_pbuild_label *labels, size_t nlabels);

/* Add a comment line ("key=value"). */
int pyprof_pbuild_comment(struct pyprof_pbuild *b, const char *text);
void pyprof_pbuild_times(struct pyprof_pbuild *b, int64_t time_nanos, int64_t duration_nanos);

/* Hand over the Profile (NULL on allocation failure); the builder is freed either way. */
Perftools__Profiles__Profile *pyprof_pbuild_finish(struct pyprof_pbuild *b);
void pyprof_pbuild_free_profile(Perftools__Profiles__Profile *p);

/*
 * Copy every sample of `src` into the builder, with an extra root frame `root` (may be
 * NULL) and extra labels. Used to merge profiles. 0, -EINVAL (inconsistent src), -ENOMEM.
 */
int pyprof_pbuild_append(struct pyprof_pbuild *b, const Perftools__Profiles__Profile *src,
                         const char *root, const struct pyprof_pbuild_label *labels,
                         size_t nlabels);

#endif
