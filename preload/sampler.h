/*
 * The sampler: a native thread that wakes on a jittered interval and records, for every
 * thread of the main interpreter, its Python stack and the CPU (or wall) time it used since
 * the previous tick. It never takes the GIL, never calls into the interpreter and never
 * uses signals: all it reads goes through saferead.
 *
 * Ownership: the agent owns the sampler; the sampler owns its thread and its current
 * profile. Only one thread (the agent's socket thread) may call pyprof_sampler_swap()
 * and pyprof_sampler_profile(); the other calls are thread-safe.
 */
#ifndef PYPROF_SAMPLER_H
#define PYPROF_SAMPLER_H

#include <stdint.h>

#include "config.h"
#include "profile.h"
#include "pyframes.h"

struct pyprof_sampler;

struct pyprof_sampler_options {
    uint64_t interval_ns;
    enum pyprof_mode mode;
    uint32_t max_stacks;
    int enabled;           /* sample from the start */
    /* Called on the sampler thread, which then ends, once every thread of the host is
     * gone but ours: the interpreter has no thread left and the main thread has exited
     * (pthread_exit; a process forked from a non-main thread ends that way). Our threads
     * must end too, or the process would never exit. */
    void (*orphaned)(void);
};

struct pyprof_sampler_stats {
    int enabled;
    uint64_t ticks;          /* since the profile was (re)started */
    uint64_t dropped;        /* thread samples lost to unreadable memory */
    uint64_t torn;           /* thread samples lost to a stack that moved under us */
    uint64_t sampler_cpu_ns; /* the sampler thread's own CPU time since it started */
    uint64_t record_cpu_ns;  /* of which spent in ticks (walking and recording threads) */
    uint64_t record_samples; /* thread stacks walked in that time */
    uint64_t profile_start_ns;     /* CLOCK_REALTIME */
    uint64_t profile_elapsed_ns;   /* CLOCK_MONOTONIC since then */
    uint64_t started_monotonic_ns; /* when the sampler thread started */
};

/* NULL on failure. `py` is copied. */
struct pyprof_sampler *pyprof_sampler_create(const struct pyprof_py *py,
                                             const struct pyprof_sampler_options *options);
/* Start the thread (all signals blocked in it). 0 or -errno. */
int pyprof_sampler_start(struct pyprof_sampler *s);
/* Ask the thread to finish and join it; safe to call when it is not running. */
void pyprof_sampler_join(struct pyprof_sampler *s);
void pyprof_sampler_destroy(struct pyprof_sampler *s);

/* Pause or resume recording (the thread keeps running, idle). Waits for a tick that is
 * recording: once paused, the profile and the counters stay as they are. */
void pyprof_sampler_set_enabled(struct pyprof_sampler *s, int enabled);

/* Replace the profile with `fresh` and return the old one, which the sampler no longer
 * touches: the caller frees it. Waits at most for the tick in progress. */
struct pyprof_profile *pyprof_sampler_swap(struct pyprof_sampler *s, struct pyprof_profile *fresh);
/* The live profile (read-only, concurrent with the sampler). */
const struct pyprof_profile *pyprof_sampler_profile(struct pyprof_sampler *s);

void pyprof_sampler_stats(struct pyprof_sampler *s, struct pyprof_sampler_stats *out);

#endif
