#include "thread.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define GONE_POLL_NS 20000
#define GONE_POLLS 5000   /* 100 ms: far beyond the few microseconds it takes */

static void *trampoline(void *arg)
{
    struct pyprof_thread *t = arg;
    atomic_store(&t->tid, (int)gettid());
    return t->main(t->arg);
}

int pyprof_thread_start(struct pyprof_thread *t, void *(*main)(void *), void *arg)
{
    sigset_t all, old;
    t->main = main;
    t->arg = arg;
    atomic_store(&t->tid, 0);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&t->handle, NULL, trampoline, t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return -rc;
}

/* The task leaves /proc/self/task in the same step that takes it off the thread count. */
static void wait_gone(int tid)
{
    char path[48];
    struct timespec pause = {0, GONE_POLL_NS};
    snprintf(path, sizeof(path), "/proc/self/task/%d", tid);
    for (int i = 0; i < GONE_POLLS && access(path, F_OK) == 0; i++)
        nanosleep(&pause, NULL);
}

void pyprof_thread_join(struct pyprof_thread *t)
{
    pthread_join(t->handle, NULL);
    int tid = atomic_load(&t->tid);
    if (tid > 0)
        wait_gone(tid);
}
