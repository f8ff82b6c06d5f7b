/*
 * The agent's own native threads (sampler, server, start-up probes): started with every
 * signal blocked, so that the host's handlers never run on them, and joined until the
 * kernel has forgotten them.
 *
 * Why the second part: pthread_join() returns when the thread's tid is cleared, a little
 * before the kernel removes the task from the process's thread count. CPython 3.12+
 * counts threads in /proc/self/stat right after fork() to warn about forking a
 * multi-threaded process; a fork just after a join could still see ours there (seen: 15
 * of 2000 joins on this VM, and 2 of 6 early forks on 3.13 in CI).
 *
 * Ownership: the caller owns the struct; one thread starts and joins it.
 */
#ifndef PYPROF_THREAD_H
#define PYPROF_THREAD_H

#include <pthread.h>
#include <stdatomic.h>

struct pyprof_thread {
    pthread_t handle;
    _Atomic int tid;          /* the kernel's id, set by the thread itself */
    void *(*main)(void *);
    void *arg;
};

/* Start main(arg) on a new thread with all signals blocked. 0 or -errno. */
int pyprof_thread_start(struct pyprof_thread *t, void *(*main)(void *), void *arg);

/* Join the thread, then wait (at most about 100 ms) until the kernel no longer lists it
 * among the process's threads. */
void pyprof_thread_join(struct pyprof_thread *t);

#endif
