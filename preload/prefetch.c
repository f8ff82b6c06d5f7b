#include "prefetch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "saferead.h"

#define MAX_RANGES 1024         /* process_vm_readv takes at most IOV_MAX remote ranges */
#define MAX_PLAN 4096           /* remembered per tick, before overlapping ones merge */
#define MAX_BYTES (4u << 20)    /* prefetched per tick */
#define MAX_RETRIES 4           /* ranges skipped after a fault before giving up the rest */

struct range {
    uintptr_t addr;
    size_t len;   /* 0: not read (it faulted) */
    size_t off;   /* where its copy starts in buf */
};

struct pyprof_prefetch {
    struct range *plan;   /* remembered this tick, for the next */
    int nplan;
    size_t plan_bytes;
    struct range *have;   /* read at this tick's start: sorted, disjoint */
    int nhave;
    uint8_t *buf;
    size_t cap;
    struct iovec remote[MAX_RANGES];
    uint64_t misses;   /* reads that went to memory */
};

struct pyprof_prefetch *pyprof_prefetch_new(void)
{
    struct pyprof_prefetch *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->plan = calloc(MAX_PLAN, sizeof(*p->plan));
    p->have = calloc(MAX_RANGES, sizeof(*p->have));
    if (p->plan == NULL || p->have == NULL) {
        pyprof_prefetch_free(p);
        return NULL;
    }
    return p;
}

void pyprof_prefetch_free(struct pyprof_prefetch *p)
{
    if (p == NULL)
        return;
    free(p->plan);
    free(p->have);
    free(p->buf);
    free(p);
}

static int range_compare(const void *a, const void *b)
{
    uintptr_t x = ((const struct range *)a)->addr, y = ((const struct range *)b)->addr;
    return x < y ? -1 : x > y;
}

/* The plan, sorted and with overlapping or touching ranges merged, becomes `have`. */
static size_t merge_plan(struct pyprof_prefetch *p)
{
    size_t total = 0;
    p->nhave = 0;
    if (p->nplan == 0)
        return 0;
    qsort(p->plan, (size_t)p->nplan, sizeof(*p->plan), range_compare);
    for (int i = 0; i < p->nplan; i++) {
        const struct range *r = &p->plan[i];
        struct range *last = p->nhave ? &p->have[p->nhave - 1] : NULL;
        if (last != NULL && r->addr <= last->addr + last->len) {
            uintptr_t end = r->addr + r->len;
            if (end > last->addr + last->len) {
                total += end - (last->addr + last->len);
                last->len = end - last->addr;
            }
            continue;
        }
        if (p->nhave == MAX_RANGES)
            break;
        p->have[p->nhave++] = (struct range){r->addr, r->len, 0};
        total += r->len;
    }
    return total;
}

static int grow(struct pyprof_prefetch *p, size_t size)
{
    if (size <= p->cap)
        return 0;
    uint8_t *bigger = realloc(p->buf, size);
    if (bigger == NULL)
        return -ENOMEM;
    p->buf = bigger;
    p->cap = size;
    return 0;
}

/* Read `have` into buf; on a fault, skip the range that faulted and go on with the rest,
 * a few times at most. What could not be read gets len 0. */
static void read_ranges(struct pyprof_prefetch *p)
{
    size_t off = 0;
    for (int i = 0; i < p->nhave; i++) {
        p->have[i].off = off;
        off += p->have[i].len;
    }
    int from = 0;
    for (int attempt = 0; from < p->nhave && attempt <= MAX_RETRIES; attempt++) {
        int n = p->nhave - from;
        for (int i = 0; i < n; i++) {
            p->remote[i].iov_base = (void *)p->have[from + i].addr;
            p->remote[i].iov_len = p->have[from + i].len;
        }
        ssize_t got = pyprof_saferead_gather(p->buf + p->have[from].off, p->remote, n);
        size_t done = got > 0 ? (size_t)got : 0;
        while (from < p->nhave && p->have[from].len <= done) {
            done -= p->have[from].len;
            from++;
        }
        if (from < p->nhave)
            p->have[from++].len = 0;   /* the range that faulted */
    }
    for (; from < p->nhave; from++)
        p->have[from].len = 0;
}

void pyprof_prefetch_begin(struct pyprof_prefetch *p)
{
    size_t total = merge_plan(p);
    p->nplan = 0;
    p->plan_bytes = 0;
    if (total == 0 || grow(p, total) != 0) {
        p->nhave = 0;
        return;
    }
    read_ranges(p);
}

/* The copy of [addr, addr + len) if it was prefetched whole, else NULL. */
static const uint8_t *lookup(const struct pyprof_prefetch *p, uintptr_t addr, size_t len)
{
    int lo = 0, hi = p->nhave - 1, found = -1;
    while (lo <= hi) {   /* the last range starting at or below addr */
        int mid = lo + (hi - lo) / 2;
        if (p->have[mid].addr <= addr) {
            found = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    if (found < 0)
        return NULL;
    const struct range *r = &p->have[found];
    if (addr - r->addr > r->len || len > r->len - (addr - r->addr))
        return NULL;
    return p->buf + r->off + (addr - r->addr);
}

int pyprof_prefetch_copy(struct pyprof_prefetch *p, void *dst, uintptr_t addr, size_t len)
{
    const uint8_t *copy = p ? lookup(p, addr, len) : NULL;
    if (copy == NULL) {
        if (p != NULL)
            p->misses++;
        return -ENOENT;
    }
    memcpy(dst, copy, len);
    return 0;
}

void pyprof_prefetch_remember(struct pyprof_prefetch *p, uintptr_t addr, size_t len)
{
    if (p == NULL || len == 0 || p->nplan == MAX_PLAN || p->plan_bytes + len > MAX_BYTES)
        return;
    p->plan[p->nplan++] = (struct range){addr, len, 0};
    p->plan_bytes += len;
}

int pyprof_prefetch_read(struct pyprof_prefetch *p, const struct iovec *local,
                         const struct iovec *remote, int n, int remember)
{
    int rc = 0, served = 0;
    while (p != NULL && served < n) {
        const uint8_t *copy = lookup(p, (uintptr_t)remote[served].iov_base,
                                     remote[served].iov_len);
        if (copy == NULL)
            break;
        memcpy(local[served].iov_base, copy, remote[served].iov_len);
        served++;
    }
    if (served < n) {   /* all read again: never half from the copy, half from memory */
        rc = pyprof_saferead_many(local, remote, n);
        if (p != NULL)
            p->misses++;
    }
    for (int i = 0; rc == 0 && remember && i < n; i++)
        pyprof_prefetch_remember(p, (uintptr_t)remote[i].iov_base, remote[i].iov_len);
    return rc;
}

uint64_t pyprof_prefetch_misses(const struct pyprof_prefetch *p)
{
    return p ? p->misses : 0;
}
