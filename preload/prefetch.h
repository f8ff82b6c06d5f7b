/*
 * One read per tick: the sampler's reads of a tick, replayed in one call at the start of
 * the next.
 *
 * Each read of interpreter memory is a system call, and on a virtual machine a system
 * call costs a microsecond or more whatever it reads. A tick reads much the same places
 * as the one before (the runtime, the interpreter, each thread's state, the data-stack
 * chunk a busy thread runs in, the code objects on its stack), so the reads a tick makes
 * are remembered, and the next tick starts by reading all of them in one
 * process_vm_readv. A read that lies inside what was prefetched is then served from that
 * copy; any other goes to memory as before.
 *
 * A read of several ranges (the fields of one structure, a frame pointer together with
 * the chunk it points into) is served whole from the copy, or made whole again now: never
 * half from each, so that what belongs together comes from one moment.
 *
 * What was prefetched is as old as the start of the tick, and one read is not one instant
 * (the kernel copies range after range while the host runs): a caller that needs memory
 * as it is now (to check that a stack did not move) reads it directly (saferead.h).
 *
 * Ownership: one per sampler thread; not thread-safe.
 */
#ifndef PYPROF_PREFETCH_H
#define PYPROF_PREFETCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct pyprof_prefetch;

/* NULL when out of memory. */
struct pyprof_prefetch *pyprof_prefetch_new(void);
void pyprof_prefetch_free(struct pyprof_prefetch *p);

/* Start a tick: read every range remembered since the last call, in one call (a range
 * that cannot be read is skipped, and forgotten). */
void pyprof_prefetch_begin(struct pyprof_prefetch *p);

/* Read `n` ranges (remote[i] into local[i]) from this tick's copy if all of them are in
 * it, else from memory, all in one call. With `remember`, the ranges are read again at the
 * next tick's start. 0 or -errno (-EFAULT: unreadable). `p` may be NULL: a plain read. */
int pyprof_prefetch_read(struct pyprof_prefetch *p, const struct iovec *local,
                         const struct iovec *remote, int n, int remember);

static inline int pyprof_prefetch_read1(struct pyprof_prefetch *p, void *dst, uintptr_t addr,
                                        size_t len, int remember)
{
    struct iovec local = {dst, len}, remote = {(void *)addr, len};
    return pyprof_prefetch_read(p, &local, &remote, 1, remember);
}

/* Copy [addr, addr + len) from this tick's copy: 0, or -ENOENT when it was not prefetched
 * (nothing is read from memory then). */
int pyprof_prefetch_copy(struct pyprof_prefetch *p, void *dst, uintptr_t addr, size_t len);

/* Read [addr, addr + len) at the next tick's start (a range larger than the one read now,
 * where the next read is expected to reach further: a stack that grows). */
void pyprof_prefetch_remember(struct pyprof_prefetch *p, uintptr_t addr, size_t len);

/* How many reads went to memory (were not served from the copy) so far. */
uint64_t pyprof_prefetch_misses(const struct pyprof_prefetch *p);

#endif
