/*
 * The profile: interned strings, functions, locations, threads and stacks with their
 * sample counts and weights, bounded in memory.
 *
 * Ownership and threads: one writer (the sampler thread) and any number of concurrent
 * readers (the socket thread building a dump). Tables are append-only and published with
 * release stores, counters are atomics, so a reader never blocks the writer and never sees
 * a half-written entry. A profile is never cleared: a reset swaps in a new one (agent.c)
 * and frees the old one once the writer has let go of it.
 */
#ifndef PYPROF_PROFILE_H
#define PYPROF_PROFILE_H

#include <stddef.h>
#include <stdint.h>

#include "profile.pb-c.h"

#define PYPROF_ID_NONE UINT32_MAX

/* Sample flags, exported as pprof labels. */
#define PYPROF_SAMPLE_GIL 1u   /* the thread held the GIL */
#define PYPROF_SAMPLE_GC 2u    /* a garbage collection was running in it */
#define PYPROF_SAMPLE_IDLE 4u  /* wall mode: the thread did not run during the interval */

struct pyprof_profile;

/* NULL on allocation failure. */
struct pyprof_profile *pyprof_profile_new(uint32_t max_stacks);
void pyprof_profile_free(struct pyprof_profile *p);

/* ---- writer side: the sampler thread only ------------------------------------------- */

/* Intern; PYPROF_ID_NONE when a table is full or memory ran out. */
uint32_t pyprof_profile_string(struct pyprof_profile *p, const char *s);
uint32_t pyprof_profile_function(struct pyprof_profile *p, uint32_t name, uint32_t filename,
                                 int64_t start_line);
uint32_t pyprof_profile_location(struct pyprof_profile *p, uint32_t function, int64_t line);
uint32_t pyprof_profile_thread(struct pyprof_profile *p, int64_t tid, uint32_t name);

/*
 * Add `weight` (nanoseconds) and one sample to the stack of `depth` locations (leaf first)
 * of `thread` with `flags`. A stack that does not fit (stack table full, or any id is
 * PYPROF_ID_NONE) is counted in the [truncated] stack instead. Returns the stack's id.
 */
uint32_t pyprof_profile_add(struct pyprof_profile *p, uint32_t thread, uint32_t flags,
                            const uint32_t *locations, uint32_t depth, uint64_t weight);

/* One more sample of `weight` for a stack id that pyprof_profile_add() returned. */
void pyprof_profile_add_to(struct pyprof_profile *p, uint32_t stack, uint64_t weight);

/* ---- reader side: any thread ---------------------------------------------------------- */

struct pyprof_profile_totals {
    uint64_t samples;    /* thread samples added, truncated ones included */
    uint64_t weight;     /* sum of their weights */
    uint64_t truncated;  /* samples that went to [truncated] */
    uint64_t stacks;     /* distinct stacks */
    uint64_t bytes;      /* memory the profile holds (tables, indexes, strings), about */
};
void pyprof_profile_totals(const struct pyprof_profile *p, struct pyprof_profile_totals *out);

/* What a dump says about where the profile came from. */
struct pyprof_profile_meta {
    const char *mode;          /* "cpu" or "wall": names the weight's sample type */
    uint64_t interval_ns;      /* the period */
    uint64_t start_ns;         /* CLOCK_REALTIME of the profile's start */
    uint64_t duration_ns;
    const char *comments[8];   /* NULL-terminated: command line, pid, python version... */
};

/*
 * Build a pprof Profile from what is published now. The message and everything it points
 * to is owned by the caller and freed with pyprof_pprof_free(). 0 or -ENOMEM.
 */
int pyprof_profile_to_pprof(const struct pyprof_profile *p, const struct pyprof_profile_meta *meta,
                            Perftools__Profiles__Profile **out);
void pyprof_pprof_free(Perftools__Profiles__Profile *profile);

#endif
