#include "saferead.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "fds.h"

enum method { METHOD_NONE, METHOD_VM_READV, METHOD_PIPE };

static enum method method = METHOD_NONE;
/* process_vm_readv() names the process by a task id. The caller's own, rather than the
 * process id: once the main thread has called pthread_exit() (a process forked from a
 * thread ends so), the process id names a zombie task without memory (ESRCH). */
static __thread pid_t reader_tid;

static pid_t self_task(void)
{
    if (reader_tid == 0)
        reader_tid = gettid();
    return reader_tid;
}

/* The pipe fallback serialises readers: one pipe, one lock. It is only used where seccomp
 * forbids process_vm_readv, and only by the sampler thread in practice. */
static pthread_mutex_t pipe_lock = PTHREAD_MUTEX_INITIALIZER;
static int pipe_fds[2] = {-1, -1};
static struct pyprof_fd_guard pipe_guard;

static int vm_read(void *dst, uintptr_t addr, size_t len)
{
    struct iovec local = {dst, len};
    struct iovec remote = {(void *)addr, len};
    ssize_t n = process_vm_readv(self_task(), &local, 1, &remote, 1, 0);
    if (n < 0)
        return -errno;
    return (size_t)n == len ? 0 : -EFAULT;
}

static int pipe_read_locked(void *dst, uintptr_t addr, size_t len)
{
    char *out = dst;
    while (len > 0) {
        /* Keep each step below the pipe's capacity so the write never blocks. */
        size_t step = len > 4096 ? 4096 : len;
        ssize_t w = write(pipe_fds[1], (const void *)addr, step);
        if (w < 0)
            return -errno;
        ssize_t r = read(pipe_fds[0], out, (size_t)w);
        if (r != w)
            return -EIO;
        out += w;
        addr += (uintptr_t)w;
        len -= (size_t)w;
    }
    return 0;
}

static int pipe_read(void *dst, uintptr_t addr, size_t len)
{
    pthread_mutex_lock(&pipe_lock);
    /* Our memory goes through these descriptors: never into a file the host opened at
     * a number it took back from us. */
    int rc = pyprof_fd_guard_intact(&pipe_guard) ? pipe_read_locked(dst, addr, len) : -EBADF;
    pthread_mutex_unlock(&pipe_lock);
    return rc;
}

static int self_test(int (*reader)(void *, uintptr_t, size_t))
{
    static const char probe[] = "pyprof-saferead";
    char copy[sizeof(probe)];
    if (reader(copy, (uintptr_t)probe, sizeof(probe)) != 0 || memcmp(copy, probe, sizeof(probe)))
        return -ENOSYS;
    /* Page zero is never mapped: the read must fail cleanly, not fault. */
    if (reader(copy, 16, sizeof(copy)) == 0)
        return -ENOSYS;
    return 0;
}

int pyprof_saferead_init(void)
{
    if (self_test(vm_read) == 0) {
        method = METHOD_VM_READV;
        return 0;
    }
    if (pipe_fds[0] < 0) {
        if (pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) != 0)
            return -ENOSYS;
        pipe_fds[0] = pyprof_fd_lift(pipe_fds[0]);
        pipe_fds[1] = pyprof_fd_lift(pipe_fds[1]);
        if (pyprof_fd_guard_add(&pipe_guard, pipe_fds[0]) != 0 ||
            pyprof_fd_guard_add(&pipe_guard, pipe_fds[1]) != 0)
            return -ENOSYS;
    }
    if (self_test(pipe_read) == 0) {
        method = METHOD_PIPE;
        return 0;
    }
    return -ENOSYS;
}

void pyprof_saferead_after_fork(void)
{
    reader_tid = 0;   /* the forking thread's: the only one the child has */
}

const char *pyprof_saferead_method(void)
{
    return method == METHOD_VM_READV ? "process_vm_readv" : method == METHOD_PIPE ? "pipe" : "none";
}

int pyprof_saferead(void *dst, uintptr_t addr, size_t len)
{
    if (len == 0)
        return 0;
    if (addr < 4096)
        return -EFAULT;
    switch (method) {
    case METHOD_VM_READV:
        return vm_read(dst, addr, len);
    case METHOD_PIPE:
        return pipe_read(dst, addr, len);
    default:
        return -ENOSYS;
    }
}

int pyprof_saferead_many(const struct iovec *local, const struct iovec *remote, int count)
{
    if (method != METHOD_VM_READV) {
        for (int i = 0; i < count; i++) {
            int rc = pyprof_saferead(local[i].iov_base, (uintptr_t)remote[i].iov_base,
                                     remote[i].iov_len);
            if (rc != 0)
                return rc;
        }
        return 0;
    }
    size_t want = 0;
    for (int i = 0; i < count; i++)
        want += remote[i].iov_len;
    ssize_t n = process_vm_readv(self_task(), local, (unsigned long)count, remote,
                                 (unsigned long)count, 0);
    if (n < 0)
        return -errno;
    return (size_t)n == want ? 0 : -EFAULT;
}

ssize_t pyprof_saferead_gather(void *dst, const struct iovec *remote, int count)
{
    size_t want = 0;
    for (int i = 0; i < count; i++)
        want += remote[i].iov_len;
    if (method != METHOD_VM_READV) {
        size_t done = 0;
        for (int i = 0; i < count; i++) {
            if (pyprof_saferead((uint8_t *)dst + done, (uintptr_t)remote[i].iov_base,
                                remote[i].iov_len) != 0)
                break;
            done += remote[i].iov_len;
        }
        return (ssize_t)done;
    }
    struct iovec local = {dst, want};
    ssize_t n = process_vm_readv(self_task(), &local, 1, remote, (unsigned long)count, 0);
    if (n < 0)
        return errno == EFAULT ? 0 : -errno;
    return n;
}
