/*
 * `pyprofctl top`: the hottest functions of a live process over the last interval, like
 * `py-spy top`. Each refresh takes a dump (without resetting the profile, so that other
 * users of the agent are not disturbed) and shows what grew since the previous one.
 */
#ifndef PYPROF_CTL_TOP_H
#define PYPROF_CTL_TOP_H

#include <stdio.h>

#include "profile.pb-c.h"

struct pyprof_top;

/* NULL on allocation failure. `samples`: rank by sample counts instead of time. */
struct pyprof_top *pyprof_top_new(int samples);
void pyprof_top_free(struct pyprof_top *t);

/* Account a new cumulative snapshot of the profile. 0, -EINVAL (inconsistent), -ENOMEM. */
int pyprof_top_update(struct pyprof_top *t, const Perftools__Profiles__Profile *p);

/* Print the `rows` hottest functions by self value over the last update's window. */
void pyprof_top_print(const struct pyprof_top *t, int rows, const char *heading, FILE *out);

/* The functions whose self share of the total changed most between two profiles, each
 * accounted once with pyprof_top_update(). */
void pyprof_top_diff_print(const struct pyprof_top *before, const struct pyprof_top *after,
                           int rows, FILE *out);

#endif
