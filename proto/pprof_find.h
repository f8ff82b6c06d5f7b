/*
 * Looking up a pprof Profile's locations and functions by id, for the renderers. pprof ids
 * are arbitrary; pyprof's own profiles number them densely from 1, which is tried first.
 * Pure; NULL when there is no such id.
 */
#ifndef PYPROF_PROTO_PPROF_FIND_H
#define PYPROF_PROTO_PPROF_FIND_H

#include <stdint.h>

#include "profile.pb-c.h"

const Perftools__Profiles__Location *pyprof_pprof_location(const Perftools__Profiles__Profile *p,
                                                           uint64_t id);
const Perftools__Profiles__Function *pyprof_pprof_function(const Perftools__Profiles__Profile *p,
                                                           uint64_t id);
/* string_table[index], or NULL when out of range. */
const char *pyprof_pprof_string(const Perftools__Profiles__Profile *p, int64_t index);

#endif
