/*
 * Durations as people write them ("10ms", "500us", "1.5s", "30s", "2m"), for the agent's
 * PYPROF_INTERVAL and pyprofctl's --duration alike.
 */
#ifndef PYPROF_PROTO_DURATION_H
#define PYPROF_PROTO_DURATION_H

#include <stdint.h>

/* -> nanoseconds. 0 or -EINVAL. A unit is required (ns, us, ms, s, m): a bare number is
 * too easy to misread. */
int pyprof_parse_duration(const char *text, uint64_t *ns);

#endif
