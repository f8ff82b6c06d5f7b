/*
 * Fault-tolerant reads of this process's own memory. The sampler reads interpreter state
 * that other threads are changing and freeing under it; a stale pointer must come back as
 * an error, never as a fault.
 *
 * The primary method is process_vm_readv() on the calling thread itself (no privilege
 * needed). Where a seccomp profile refuses it, the fallback writes the range to a pipe,
 * which the kernel also rejects with EFAULT on a bad address.
 *
 * Call pyprof_saferead_init() once before use; after that every function is thread-safe.
 */
#ifndef PYPROF_SAFEREAD_H
#define PYPROF_SAFEREAD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Pick a working method by self-test. 0, or -ENOSYS when no method works. */
int pyprof_saferead_init(void);

/* In a forked child: read the child's memory from now on, not the parent's. Async-signal
 * safe (it is called from a pthread_atfork child handler). */
void pyprof_saferead_after_fork(void);

/* "process_vm_readv" or "pipe". */
const char *pyprof_saferead_method(void);

/* Copy `len` bytes at `addr` into `dst`. 0, -EFAULT (unmapped, short read) or -errno. */
int pyprof_saferead(void *dst, uintptr_t addr, size_t len);

/* Several ranges in one call where the method allows it. Each remote range is copied into
 * the matching local one. 0 only if every byte of every range was read. */
int pyprof_saferead_many(const struct iovec *local, const struct iovec *remote, int count);

/* Copy the remote ranges one after another into `dst` (the sum of their lengths), in one
 * call where the method allows it, stopping at the first byte that cannot be read. Returns
 * the number of bytes copied (a prefix: the ranges before the faulting one are whole), or
 * -errno when the call itself fails. */
ssize_t pyprof_saferead_gather(void *dst, const struct iovec *remote, int count);

/* Read a pointer-sized value. */
static inline int pyprof_saferead_ptr(uintptr_t addr, uintptr_t *out)
{
    return pyprof_saferead(out, addr, sizeof(*out));
}

#endif
