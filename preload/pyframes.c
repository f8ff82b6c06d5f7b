#include "pyframes.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "prefetch.h"
#include "saferead.h"

#define TSTATE_BLOCK 1024    /* bytes of PyThreadState we copy; every field we use is below */
#define MAX_CHUNK_COPY (1u << 20)
#define MAX_STRING_CHARS 1024

/* Pointers read from a moving interpreter can be anything. Objects and frames live in the
 * lower half of the x86-64 user address space and are 8-byte aligned; anything else is
 * torn data, and must not even take part in address arithmetic. */
int pyprof_plausible_ptr(uintptr_t p)
{
    return p >= 4096 && p < ((uintptr_t)1 << 47) && (p & 7) == 0;
}

static uintptr_t load_ptr(const uint8_t *base, ptrdiff_t off)
{
    uintptr_t v;
    memcpy(&v, base + off, sizeof(v));
    return v;
}

static int load_int(const uint8_t *base, ptrdiff_t off)
{
    int v;
    memcpy(&v, base + off, sizeof(v));
    return v;
}

/* Read several pointer-sized fields of one structure in one call (or from the tick's
 * prefetched copy). Fields that do not exist in this version are left zero. */
static int read_fields(struct pyprof_prefetch *pf, uintptr_t base, const ptrdiff_t *offsets,
                       uintptr_t *values, int n)
{
    struct iovec local[8], remote[8];
    int k = 0;
    for (int i = 0; i < n; i++) {
        values[i] = 0;
        if (offsets[i] == PYPROF_NO_FIELD)
            continue;
        local[k].iov_base = &values[i];
        local[k].iov_len = sizeof(values[i]);
        remote[k].iov_base = (void *)(base + (uintptr_t)offsets[i]);
        remote[k].iov_len = sizeof(values[i]);
        k++;
    }
    return k ? pyprof_prefetch_read(pf, local, remote, k, 1) : 0;
}

int pyprof_py_interp_state(const struct pyprof_py *py, struct pyprof_prefetch *pf,
                           struct pyprof_interp_state *out)
{
    const struct pyprof_py_layout *L = &py->layout;
    uintptr_t rt[3], in[3], gil[2];
    int rc;
    memset(out, 0, sizeof(*out));
    const ptrdiff_t rt_fields[3] = {L->runtime_interp_head, L->runtime_finalizing,
                                    L->runtime_tstate_current};
    if ((rc = read_fields(pf, py->runtime, rt_fields, rt, 3)) != 0)
        return rc;
    out->interp = rt[0];
    out->finalizing = rt[1] != 0;
    out->gil_holder = rt[2];
    if (out->interp == 0)
        return -ESRCH;
    /* gc.collecting is an int: read it as the low half of a word (little-endian). */
    const ptrdiff_t in_fields[3] = {L->interp_tstate_head, L->interp_gc_collecting, L->interp_gil};
    if ((rc = read_fields(pf, out->interp, in_fields, in, 3)) != 0)
        return rc;
    out->tstate_head = in[0];
    out->gc_collecting = (int)(uint32_t)in[1] != 0;
    if (L->runtime_tstate_current == PYPROF_NO_FIELD && in[2] != 0) {
        /* 3.12+: the GIL is per interpreter; its holder is last_holder while locked. */
        const ptrdiff_t gil_fields[2] = {L->gil_locked, L->gil_last_holder};
        if (read_fields(pf, in[2], gil_fields, gil, 2) == 0 && (int)(uint32_t)gil[0] != 0)
            out->gil_holder = gil[1];
    }
    return 0;
}

static int thread_native_tid(const struct pyprof_py *py, struct pyprof_prefetch *pf,
                             const uint8_t *ts, unsigned long pthread_id)
{
    const struct pyprof_py_layout *L = &py->layout;
    int tid = 0;
    if (L->tstate_native_thread_id != PYPROF_NO_FIELD)
        return (int)load_ptr(ts, L->tstate_native_thread_id);
    /* 3.9/3.10 keep only the pthread_t: the tid is inside glibc's struct pthread. */
    if (py->pthread_tid_offset < 0 || pthread_id == 0)
        return 0;
    if (pyprof_prefetch_read1(pf, &tid, pthread_id + (uintptr_t)py->pthread_tid_offset,
                              sizeof(tid), 1) != 0)
        return 0;
    return tid > 0 ? tid : 0;
}

static uintptr_t load_field(const uint8_t *base, ptrdiff_t off)
{
    return off == PYPROF_NO_FIELD ? 0 : load_ptr(base, off);
}

/* How much of a PyThreadState covers every field we use. */
static size_t tstate_span(const struct pyprof_py_layout *L)
{
    const ptrdiff_t fields[] = {L->tstate_next, L->tstate_frame, L->tstate_thread_id,
                                L->tstate_native_thread_id, L->tstate_datastack_chunk,
                                L->tstate_datastack_top};
    ptrdiff_t end = 0;
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (fields[i] != PYPROF_NO_FIELD && fields[i] + 8 > end)
            end = fields[i] + 8;
    return (size_t)end;
}

int pyprof_py_threads(const struct pyprof_py *py, struct pyprof_prefetch *pf,
                      const struct pyprof_interp_state *is, struct pyprof_thread_ref *out,
                      int max)
{
    const struct pyprof_py_layout *L = &py->layout;
    uint8_t ts[TSTATE_BLOCK];
    uintptr_t tstate = is->tstate_head;
    size_t span = tstate_span(L);
    int n = 0, rc;
    if (span > sizeof(ts))
        return -EINVAL;
    while (tstate != 0 && n < max) {
        if ((rc = pyprof_prefetch_read1(pf, ts, tstate, span, 1)) != 0)
            return rc;
        struct pyprof_thread_ref *r = &out[n++];
        r->tstate = tstate;
        r->pthread_id = (unsigned long)load_ptr(ts, L->tstate_thread_id);
        r->native_tid = thread_native_tid(py, pf, ts, r->pthread_id);
        r->frame = load_ptr(ts, L->tstate_frame);
        r->chunk = load_field(ts, L->tstate_datastack_chunk);
        r->chunk_top = load_field(ts, L->tstate_datastack_top);
        uintptr_t next = load_ptr(ts, L->tstate_next);
        if (next == tstate)
            return -ELOOP;
        tstate = next;
    }
    return n;
}

void pyprof_walk_buf_free(struct pyprof_walk_buf *buf)
{
    for (int i = 0; i < PYPROF_OLD_CHUNKS; i++)
        free(buf->old[i].data);
    free(buf->chunk);
    free(buf->seen);
    free(buf->verify);
    free(buf->hints);
    free(buf->ahead);
    free(buf->ahead_addr);
    memset(buf, 0, sizeof(*buf));
}

/* Make a chunk copy's buffer hold at least `len` bytes (doubling: stacks grow). */
static int reserve(uint8_t **data, size_t *cap, size_t len)
{
    if (*cap >= len)
        return 0;
    size_t bigger = *cap ? *cap : 16384;
    while (bigger < len)
        bigger *= 2;
    uint8_t *p = realloc(*data, bigger);
    if (p == NULL)
        return -ENOMEM;
    *data = p;
    *cap = bigger;
    return 0;
}

#define CHUNK_SLACK 4096   /* how much further than its top a chunk is prefetched */

/* For the next tick: the frame pointer's place, and the chunk a little beyond its top,
 * where a growing stack will be (never beyond the chunk: its header says how large). */
static void remember_first_frame(const struct pyprof_py *py, struct pyprof_walk_buf *buf,
                                 const struct pyprof_thread_ref *t, const struct iovec *local,
                                 const struct iovec *remote, int n)
{
    ptrdiff_t size_at = py->layout.chunk_size;
    for (int i = 0; i < n; i++) {
        size_t len = remote[i].iov_len;
        if ((uintptr_t)remote[i].iov_base == t->chunk && local[i].iov_base == buf->chunk &&
            size_at != PYPROF_NO_FIELD && len >= (size_t)size_at + sizeof(uintptr_t)) {
            uintptr_t size;
            memcpy(&size, buf->chunk + size_at, sizeof(size));
            len = size > len + CHUNK_SLACK ? len + CHUNK_SLACK : size > len ? size : len;
        }
        pyprof_prefetch_remember(buf->prefetch, (uintptr_t)remote[i].iov_base, len);
    }
}

/*
 * Find the innermost frame and, on 3.11+, copy the used part of the thread's current
 * data-stack chunk (where most of its frames live) in the same read. [*lo, *hi) is the
 * copied address range, empty when there is none: frames are then read one by one.
 */
static int first_frame(const struct pyprof_py *py, struct pyprof_walk_buf *buf,
                       const struct pyprof_thread_ref *t, uintptr_t *frame, uintptr_t *lo,
                       uintptr_t *hi)
{
    const struct pyprof_py_layout *L = &py->layout;
    struct iovec local[2], remote[2];
    int n = 0;
    *frame = t->frame;
    *lo = *hi = 0;
    if (L->cframe_current_frame != PYPROF_NO_FIELD) {
        /* 3.11/3.12: tstate->cframe lives on the eval loop's C stack. */
        if (t->frame == 0)
            return 0;
        local[n].iov_base = frame;
        local[n].iov_len = sizeof(*frame);
        remote[n].iov_base = (void *)(t->frame + (uintptr_t)L->cframe_current_frame);
        remote[n].iov_len = sizeof(*frame);
        n++;
    } else if (L->tstate_datastack_chunk != PYPROF_NO_FIELD) {
        /* 3.13+: the frame pointer is in the thread state; read it again with the chunk,
         * so that the two are of one moment. */
        local[n].iov_base = frame;
        local[n].iov_len = sizeof(*frame);
        remote[n].iov_base = (void *)(t->tstate + (uintptr_t)L->tstate_frame);
        remote[n].iov_len = sizeof(*frame);
        n++;
    }
    size_t len = t->chunk_top > t->chunk ? t->chunk_top - t->chunk : 0;
    if (t->chunk != 0 && len > 0 && len <= MAX_CHUNK_COPY && reserve(&buf->chunk, &buf->chunk_cap, len) == 0) {
        local[n].iov_base = buf->chunk;
        local[n].iov_len = len;
        remote[n].iov_base = (void *)t->chunk;
        remote[n].iov_len = len;
        n++;
        *lo = t->chunk;
        *hi = t->chunk_top;
    }
    int rc = n ? pyprof_prefetch_read(buf->prefetch, local, remote, n, 0) : 0;
    if (rc != 0) {
        *lo = *hi = 0;
        return rc;
    }
    remember_first_frame(py, buf, t, local, remote, n);
    buf->nold = 0;
    buf->next_old = 0;
    if (*hi > *lo && L->chunk_previous != PYPROF_NO_FIELD &&
        *hi - *lo >= (size_t)L->chunk_previous + sizeof(uintptr_t))
        buf->next_old = load_ptr(buf->chunk, L->chunk_previous);
    return 0;
}

/* Copy the chunk at buf->next_old (3.11+): its header, then its frames in use (older
 * chunks keep their `top` up to date). Both reads are remembered: the next tick finds
 * them in its prefetched copy. 0 or -errno; nothing is added when it does not hold `frame`
 * (a generator's frame lives elsewhere: a later frame may still be in this chunk). */
static int copy_old_chunk(const struct pyprof_py *py, struct pyprof_walk_buf *buf, uintptr_t frame)
{
    const struct pyprof_py_layout *L = &py->layout;
    uintptr_t chunk = buf->next_old, head[3];
    const ptrdiff_t fields[3] = {L->chunk_previous, L->chunk_size, L->chunk_top};
    int rc;
    if (!pyprof_plausible_ptr(chunk) || buf->nold == PYPROF_OLD_CHUNKS)
        return -ELOOP;
    if ((rc = read_fields(buf->prefetch, chunk, fields, head, 3)) != 0)
        return rc;
    uintptr_t used = (uintptr_t)L->chunk_data + head[2] * sizeof(void *);
    if (head[2] > MAX_CHUNK_COPY / sizeof(void *) || used > head[1] || used > MAX_CHUNK_COPY)
        return -ELOOP;   /* not a chunk header: torn */
    if (frame < chunk + (uintptr_t)L->chunk_data || frame >= chunk + used)
        return 0;
    struct pyprof_chunk_copy *c = &buf->old[buf->nold];
    if ((rc = reserve(&c->data, &c->cap, used)) != 0)
        return rc;
    if ((rc = pyprof_prefetch_read1(buf->prefetch, c->data, chunk, used, 1)) != 0)
        return rc;
    c->lo = chunk;
    c->hi = chunk + used;
    buf->nold++;
    buf->next_old = head[0];
    return 0;
}

/* `frame` in the older chunks copied so far: its copy (*which = 2 + the copy's index,
 * *end = where the copy's frames end), or NULL. */
static const uint8_t *old_chunk_frame(const struct pyprof_walk_buf *buf, uintptr_t frame,
                                      size_t size, int *which, uintptr_t *end)
{
    for (int i = 0; i < buf->nold; i++) {
        const struct pyprof_chunk_copy *c = &buf->old[i];
        if (frame >= c->lo && frame < c->hi && c->hi - frame >= size) {
            *which = 2 + i;
            *end = c->hi;
            return c->data + (frame - c->lo);
        }
    }
    return NULL;
}

/* Where `frame` is among the copied chunks: its copy, and *which = 1 (the current chunk)
 * or 2... (older ones, copied as the walk reaches them); NULL (and *which = 0) outside. */
static const uint8_t *chunk_frame(const struct pyprof_py *py, struct pyprof_walk_buf *buf,
                                  uintptr_t frame, uintptr_t lo, uintptr_t hi, int *which,
                                  uintptr_t *end, int *rc)
{
    size_t size = py->layout.frame_read_size;
    const uint8_t *f;
    *which = 0;
    *end = 0;
    if (frame >= lo && frame < hi && hi - frame >= size) {
        *which = 1;
        *end = hi;
        return buf->chunk + (frame - lo);
    }
    if ((f = old_chunk_frame(buf, frame, size, which, end)) != NULL || buf->next_old == 0)
        return f;
    if ((*rc = copy_old_chunk(py, buf, frame)) != 0) {
        buf->next_old = 0;   /* unreadable: its frames are read one by one */
        if (*rc != -ENOMEM && *rc != -ELOOP)
            *rc = 0;
        return NULL;
    }
    return old_chunk_frame(buf, frame, size, which, end);
}

static int frame_offset(const struct pyprof_py_layout *L, const uint8_t *f, uintptr_t code)
{
    if (L->instr_kind == PYPROF_INSTR_POINTER) {
        uintptr_t instr = load_ptr(f, L->frame_instr);
        uintptr_t start = code + (uintptr_t)L->code_adaptive;
        if (instr < start || instr - start > (1u << 26))
            return -1;   /* not started yet (prev_instr one unit before the code) */
        return (int)(instr - start);
    }
    int lasti = load_int(f, L->frame_instr);
    if (lasti < 0)
        return -1;
    return L->instr_kind == PYPROF_INSTR_LASTI_UNITS ? lasti * 2 : lasti;
}

static int skip_owner(const struct pyprof_py_layout *L, const uint8_t *f)
{
    if (L->frame_owner == PYPROF_NO_FIELD)
        return 0;
    int owner = (int)(signed char)f[L->frame_owner];
    return owner == L->frame_owner_cstack || owner == L->frame_owner_interpreter;
}

/* 3.9/3.10: a frame object in a live chain has the frame type and a reference count. A
 * frame that was freed while we walked (onto a code object's "zombie" slot or the free
 * list, which is linked through f_back) has a count of zero: following it would splice
 * stale frames into the stack. */
static int live_frame_object(const struct pyprof_py *py, const uint8_t *f)
{
    ptrdiff_t refcnt;
    memcpy(&refcnt, f, sizeof(refcnt));   /* ob_refcnt is the first field of every object */
    if (refcnt <= 0 || refcnt > ((ptrdiff_t)1 << 40))
        return 0;
    return py->frame_type == 0 || load_ptr(f, py->layout.object_type) == py->frame_type;
}

#define VERIFY_BATCH 512
#define AHEAD_MAX VERIFY_BATCH
#define HINT_SLOTS 8192u   /* a power of two */

static struct pyprof_frame_hint *hint_slot(struct pyprof_walk_buf *buf, uintptr_t frame)
{
    /* Frames are at least 64 bytes apart: the low bits say nothing. */
    return &buf->hints[((frame >> 6) * 0x9E3779B1u) & (HINT_SLOTS - 1)];
}

static uintptr_t hint_back(struct pyprof_walk_buf *buf, uintptr_t frame)
{
    const struct pyprof_frame_hint *h = hint_slot(buf, frame);
    return h->addr == frame ? h->back : 0;
}

/* Read `frame` and, in the same call, the callers it had last time (as far as the hints
 * go, outside the copied chunk [lo, hi)). Falls back to `frame` alone if a hinted
 * address cannot be read. buf->ahead[0] is then `frame`. */
static int read_ahead(const struct pyprof_py *py, struct pyprof_walk_buf *buf, uintptr_t frame,
                      uintptr_t lo, uintptr_t hi, int budget)
{
    size_t size = py->layout.frame_read_size;
    struct iovec local[AHEAD_MAX], remote[AHEAD_MAX];
    int n = 0;
    if (budget > buf->ahead_window)
        budget = buf->ahead_window;
    for (uintptr_t at = frame; n < budget && n < AHEAD_MAX; at = hint_back(buf, at)) {
        if (!pyprof_plausible_ptr(at) || (at >= lo && at < hi))
            break;
        buf->ahead_addr[n] = at;
        local[n].iov_base = buf->ahead + (size_t)n * size;
        local[n].iov_len = size;
        remote[n].iov_base = (void *)at;
        remote[n].iov_len = size;
        n++;
    }
    if (n == 0)
        return -ELOOP;
    int rc = pyprof_prefetch_read(buf->prefetch, local, remote, n, 1);
    if (rc != 0 && n > 1)
        rc = pyprof_prefetch_read(buf->prefetch, local, remote, n = 1, 1);
    buf->ahead_count = rc == 0 ? n : 0;
    buf->ahead_next = 0;
    return rc;
}

/* A frame outside the chunk: from the frames read ahead if it is the next of them, else
 * read now (with its hinted callers). NULL with *rc set on failure. */
static const uint8_t *frame_outside(const struct pyprof_py *py, struct pyprof_walk_buf *buf,
                                    uintptr_t frame, uintptr_t lo, uintptr_t hi, int budget,
                                    int *rc)
{
    size_t size = py->layout.frame_read_size;
    if (buf->ahead_next >= buf->ahead_count || buf->ahead_addr[buf->ahead_next] != frame) {
        if (buf->ahead_next < buf->ahead_count)   /* the hinted chain went wrong here */
            buf->ahead_window = buf->ahead_next * 2 > 2 ? buf->ahead_next * 2 : 2;
        else if (buf->ahead_count > 0 && buf->ahead_window < AHEAD_MAX)
            buf->ahead_window *= 2;
        if ((*rc = read_ahead(py, buf, frame, lo, hi, budget)) != 0)
            return NULL;
    }
    return buf->ahead + (size_t)buf->ahead_next++ * size;
}

/* Frames read one by one (all of them on 3.9/3.10; those outside the copied chunk on
 * 3.11+), even those prefetched together (one read is not one instant: the kernel copies
 * while the thread runs), can belong to different moments. Read them all again, with the
 * thread's frame pointer last, in one call: if any frame's link or code changed, or the
 * innermost frame is no longer the one we started from, the stack moved under us and the
 * walk is thrown away (-ELOOP: torn). */
static int check_torn(const struct pyprof_py *py, struct pyprof_walk_buf *buf,
                      const struct pyprof_thread_ref *thread, uintptr_t top, int nseen)
{
    const struct pyprof_py_layout *L = &py->layout;
    int via_cframe = L->cframe_current_frame != PYPROF_NO_FIELD;
    size_t size = L->frame_read_size;
    struct iovec local[VERIFY_BATCH], remote[VERIFY_BATCH];
    uintptr_t frame_now = 0, cframe_now = 0;
    for (int start = 0;; start += VERIFY_BATCH - 2) {
        int count = nseen - start < VERIFY_BATCH - 2 ? nseen - start : VERIFY_BATCH - 2;
        int last = start + count == nseen, k = count;
        for (int i = 0; i < count; i++) {
            local[i].iov_base = buf->verify + (size_t)i * size;
            local[i].iov_len = size;
            remote[i].iov_base = (void *)buf->seen[start + i].addr;
            remote[i].iov_len = size;
        }
        if (last) {   /* the frame pointer, as it is after the frames were read again */
            local[k].iov_base = via_cframe ? &cframe_now : &frame_now;
            local[k].iov_len = sizeof(uintptr_t);
            remote[k].iov_base = (void *)(thread->tstate + (uintptr_t)L->tstate_frame);
            remote[k++].iov_len = sizeof(uintptr_t);
            if (via_cframe) {   /* 3.11/3.12: through the cframe we started from */
                local[k].iov_base = &frame_now;
                local[k].iov_len = sizeof(uintptr_t);
                remote[k].iov_base = (void *)(thread->frame + (uintptr_t)L->cframe_current_frame);
                remote[k++].iov_len = sizeof(uintptr_t);
            }
        }
        if (pyprof_saferead_many(local, remote, k) != 0)
            return -ELOOP;
        for (int i = 0; i < count; i++) {
            const uint8_t *f = buf->verify + (size_t)i * size;
            const struct pyprof_seen_frame *was = &buf->seen[start + i];
            if (load_ptr(f, L->frame_back) != was->back || load_ptr(f, L->frame_code) != was->code)
                return -ELOOP;
        }
        if (last)
            break;
    }
    if (via_cframe && cframe_now != thread->frame)
        return -ELOOP;
    return frame_now == top ? 0 : -ELOOP;
}

static int ensure_buffers(const struct pyprof_py *py, struct pyprof_walk_buf *buf)
{
    if (buf->seen == NULL)
        buf->seen = malloc(PYPROF_MAX_DEPTH * 2 * sizeof(*buf->seen));
    if (buf->verify == NULL)
        buf->verify = malloc(VERIFY_BATCH * py->layout.frame_read_size);
    if (buf->hints == NULL)
        buf->hints = calloc(HINT_SLOTS, sizeof(*buf->hints));
    if (buf->ahead == NULL)
        buf->ahead = malloc(AHEAD_MAX * py->layout.frame_read_size);
    if (buf->ahead_addr == NULL)
        buf->ahead_addr = malloc(AHEAD_MAX * sizeof(*buf->ahead_addr));
    buf->ahead_count = buf->ahead_next = 0;
    buf->ahead_window = AHEAD_MAX;   /* a stack that did not change is read in one call */
    return buf->seen && buf->verify && buf->hints && buf->ahead && buf->ahead_addr ? 0 : -ENOMEM;
}

/* A frame of a chunk copy with no caller must be the thread's first: at the start of the
 * first chunk (whose `previous` is NULL), in its first or second slot (CPython skips the
 * first word of a thread's first chunk so that popping never frees it). Any other was
 * caught being pushed (its caller not linked yet) in a copy of another moment. */
static int thread_root(const struct pyprof_py *py, const struct pyprof_walk_buf *buf,
                       uintptr_t frame, const uint8_t *f, int in_chunk)
{
    const struct pyprof_py_layout *L = &py->layout;
    const uint8_t *head = in_chunk == 1 ? buf->chunk : buf->old[in_chunk - 2].data;
    uintptr_t base = in_chunk == 1 ? frame - (uintptr_t)(f - buf->chunk)
                                   : buf->old[in_chunk - 2].lo;
    if (L->chunk_data == PYPROF_NO_FIELD)
        return 1;
    uintptr_t data = base + (uintptr_t)L->chunk_data;
    return (frame == data || frame == data + sizeof(void *)) &&
           load_ptr(head, L->chunk_previous) == 0;
}

int pyprof_py_walk(const struct pyprof_py *py, struct pyprof_walk_buf *buf,
                   const struct pyprof_thread_ref *thread, struct pyprof_raw_frame *out, int max)
{
    const struct pyprof_py_layout *L = &py->layout;
    uintptr_t frame, top, lo, hi;
    int rc, n = 0, steps = 0, nseen = 0, skipped = 0;

    if ((rc = ensure_buffers(py, buf)) != 0)
        return rc;
    if ((rc = first_frame(py, buf, thread, &frame, &lo, &hi)) != 0)
        return rc;
    top = frame;

    while (frame != 0) {
        const uint8_t *f;
        if (++steps > PYPROF_MAX_DEPTH * 2 || !pyprof_plausible_ptr(frame))
            return -ELOOP;
        int in_chunk;
        uintptr_t chunk_end;
        rc = 0;
        if ((f = chunk_frame(py, buf, frame, lo, hi, &in_chunk, &chunk_end, &rc)) == NULL) {
            if (rc != 0)
                return rc;   /* out of memory, or an older chunk's header is garbage: torn */
            f = frame_outside(py, buf, frame, lo, hi, PYPROF_MAX_DEPTH * 2 - steps + 1, &rc);
            if (f == NULL)
                return rc;
            uintptr_t back = load_ptr(f, L->frame_back);
            buf->seen[nseen++] = (struct pyprof_seen_frame){frame, back, load_ptr(f, L->frame_code)};
            *hint_slot(buf, frame) = (struct pyprof_frame_hint){frame, back};
        }
        if (L->frame_kind == PYPROF_FRAME_OBJECT && !live_frame_object(py, f))
            return -ELOOP;
        uintptr_t back = load_ptr(f, L->frame_back);
        if (back == frame || (back == 0 && in_chunk && !thread_root(py, buf, frame, f, in_chunk)))
            return -ELOOP;
        if (!skip_owner(L, f)) {
            if (n == max)
                break;   /* deeper than we keep: the innermost frames are recorded */
            uintptr_t code = load_ptr(f, L->frame_code) & L->frame_code_mask;
            if (n > 0)
                out[n - 1].caller_next = !skipped;
            out[n].code = code;
            out[n].offset = frame_offset(L, f, code);
            out[n].addr = frame;
            out[n].in_chunk = in_chunk;
            out[n].chunk_end = chunk_end;
            out[n].caller_next = 0;
            n++;
            skipped = 0;
        } else {
            skipped = 1;
        }
        frame = back;
    }
    if (nseen > 0 && (rc = check_torn(py, buf, thread, top, nseen)) != 0)
        return rc;
    return n;
}

int pyprof_py_code_parse(const struct pyprof_py *py, const uint8_t *header,
                         struct pyprof_code_raw *out)
{
    const struct pyprof_py_layout *L = &py->layout;
    if (load_ptr(header, L->object_type) != py->code_type)
        return -EINVAL;
    out->filename = load_ptr(header, L->code_filename);
    out->name = load_ptr(header, L->code_name);
    out->qualname = L->code_qualname != PYPROF_NO_FIELD ? load_ptr(header, L->code_qualname) : 0;
    out->linetable = load_ptr(header, L->code_linetable);
    out->firstlineno = load_int(header, L->code_firstlineno);
    out->framesize = 0;
    if (L->code_framesize != PYPROF_NO_FIELD)
        out->framesize = load_int(header, L->code_framesize);
    else if (L->code_nlocalsplus != PYPROF_NO_FIELD)
        out->framesize = load_int(header, L->code_nlocalsplus) +
                         load_int(header, L->code_stacksize) + L->frame_specials;
    return 0;
}

int pyprof_py_torn_chunk(const struct pyprof_raw_frame *out, const struct pyprof_code_raw *raw,
                         int n)
{
    for (int i = 0; i + 1 < n; i++) {
        const struct pyprof_raw_frame *callee = &out[i], *caller = &out[i + 1];
        int size = raw[i + 1].framesize;
        if (!callee->caller_next || !callee->in_chunk || !caller->in_chunk || size <= 0)
            continue;
        uintptr_t end = caller->addr + (uintptr_t)size * sizeof(void *);
        if (callee->in_chunk == caller->in_chunk ? callee->addr != end : caller->chunk_end != end)
            return 1;
    }
    return 0;
}

/* Append one code point as UTF-8 if it fits. */
static size_t put_utf8(char *out, size_t pos, size_t size, uint32_t cp)
{
    char tmp[4];
    size_t n;
    if (cp < 0x80) {
        tmp[0] = (char)cp; n = 1;
    } else if (cp < 0x800) {
        tmp[0] = (char)(0xC0 | (cp >> 6)); tmp[1] = (char)(0x80 | (cp & 0x3F)); n = 2;
    } else if (cp < 0x10000) {
        if (cp >= 0xD800 && cp <= 0xDFFF)
            cp = 0xFFFD;   /* lone surrogate: not representable */
        tmp[0] = (char)(0xE0 | (cp >> 12)); tmp[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        tmp[2] = (char)(0x80 | (cp & 0x3F)); n = 3;
    } else {
        if (cp > 0x10FFFF)
            cp = 0xFFFD;
        tmp[0] = (char)(0xF0 | (cp >> 18)); tmp[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        tmp[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); tmp[3] = (char)(0x80 | (cp & 0x3F)); n = 4;
    }
    if (cp == 0xFFFD && n != 3) {
        tmp[0] = (char)0xEF; tmp[1] = (char)0xBF; tmp[2] = (char)0xBD; n = 3;
    }
    if (pos + n >= size)
        return 0;
    memcpy(out + pos, tmp, n);
    return n;
}

int pyprof_py_string(const struct pyprof_py *py, uintptr_t str, char *out, size_t size)
{
    const struct pyprof_py_layout *L = &py->layout;
    uint8_t head[128], data[MAX_STRING_CHARS * 4];
    size_t head_len = L->unicode_compact_size;
    int rc;
    if (size == 0 || head_len > sizeof(head))
        return -EINVAL;
    if ((rc = pyprof_saferead(head, str, head_len)) != 0)
        return rc;
    ptrdiff_t length;
    uint32_t state;
    memcpy(&length, head + L->unicode_length, sizeof(length));
    memcpy(&state, head + L->unicode_state, sizeof(state));
    unsigned kind = (state >> 2) & 7, compact = (state >> 5) & 1, ascii = (state >> 6) & 1;
    if (!compact || (kind != 1 && kind != 2 && kind != 4) || length < 0)
        return -EINVAL;
    size_t chars = (size_t)length > MAX_STRING_CHARS ? MAX_STRING_CHARS : (size_t)length;
    uintptr_t at = str + (ascii ? L->unicode_ascii_size : L->unicode_compact_size);
    if ((rc = pyprof_saferead(data, at, chars * kind)) != 0)
        return rc;
    size_t pos = 0;
    for (size_t i = 0; i < chars; i++) {
        uint32_t cp = kind == 1 ? data[i] : kind == 2 ? ((const uint16_t *)data)[i]
                                                      : ((const uint32_t *)data)[i];
        size_t n = put_utf8(out, pos, size, cp);
        if (n == 0)
            break;
        pos += n;
    }
    out[pos] = '\0';
    return (int)pos;
}

int pyprof_py_bytes(const struct pyprof_py *py, uintptr_t bytes, uint8_t **out, size_t cap)
{
    const struct pyprof_py_layout *L = &py->layout;
    ptrdiff_t size;
    int rc = pyprof_saferead(&size, bytes + (uintptr_t)L->bytes_size, sizeof(size));
    if (rc != 0)
        return rc;
    if (size < 0 || (size_t)size > cap)
        return -E2BIG;
    uint8_t *copy = malloc(size ? (size_t)size : 1);
    if (copy == NULL)
        return -ENOMEM;
    if ((rc = pyprof_saferead(copy, bytes + (uintptr_t)L->bytes_data, (size_t)size)) != 0) {
        free(copy);
        return rc;
    }
    *out = copy;
    return (int)size;
}

/* 3.9 co_lnotab: (byte increment, signed line increment) pairs. */
static int line_lnotab(const uint8_t *t, size_t len, int line, int offset)
{
    int addr = 0;
    for (size_t i = 0; i + 1 < len; i += 2) {
        addr += t[i];
        if (addr > offset)
            break;
        line += (signed char)t[i + 1];
    }
    return line;
}

/* 3.10 co_linetable: (byte length, signed line delta) ranges; -128 means no line. */
static int line_linetable(const uint8_t *t, size_t len, int first, int offset)
{
    int start = 0, end = 0, computed = first, line = -1;
    for (size_t i = 0; i + 1 < len; i += 2) {
        start = end;
        end = start + t[i];
        int delta = (signed char)t[i + 1];
        if (delta == -128) {
            line = -1;
        } else {
            computed += delta;
            line = computed;
        }
        if (offset >= start && offset < end)
            return line;
    }
    return -1;
}

static unsigned read_varint(const uint8_t *t, size_t len, size_t *i)
{
    unsigned value = 0, shift = 0;
    while (*i < len) {
        uint8_t b = t[(*i)++];
        value |= (unsigned)(b & 63) << shift;
        if (!(b & 64) || shift > 24)
            break;
        shift += 6;
    }
    return value;
}

static int read_svarint(const uint8_t *t, size_t len, size_t *i)
{
    unsigned u = read_varint(t, len, i);
    return (u & 1) ? -(int)(u >> 1) : (int)(u >> 1);
}

/* 3.11+ location table: entries of (code units, line delta, columns...). */
static int line_locations(const uint8_t *t, size_t len, int line, int offset)
{
    int unit = offset / 2, addr = 0;
    size_t i = 0;
    while (i < len) {
        uint8_t b = t[i++];
        if (!(b & 0x80))
            return -1;   /* not at the start of an entry: the table is not what we think */
        int code = (b >> 3) & 15, units = (b & 7) + 1, delta = 0;
        if (code == 14) {
            delta = read_svarint(t, len, &i);
            read_varint(t, len, &i);   /* end line delta */
            read_varint(t, len, &i);   /* column + 1 */
            read_varint(t, len, &i);   /* end column + 1 */
        } else if (code == 13) {
            delta = read_svarint(t, len, &i);
        } else if (code >= 10 && code <= 12) {
            delta = code - 10;
            i += 2;
        } else if (code < 10) {
            i += 1;
        }
        line += delta;
        if (unit >= addr && unit < addr + units)
            return code == 15 ? -1 : line;
        addr += units;
    }
    return -1;
}

int pyprof_py_line(const struct pyprof_py *py, const uint8_t *table, size_t len, int firstlineno,
                   int offset)
{
    if (offset < 0)
        return firstlineno;
    switch (py->layout.line_kind) {
    case PYPROF_LINE_LNOTAB:
        return line_lnotab(table, len, firstlineno, offset);
    case PYPROF_LINE_LINETABLE:
        return line_linetable(table, len, firstlineno, offset);
    case PYPROF_LINE_LOCATIONS:
        return line_locations(table, len, firstlineno, offset);
    }
    return -1;
}

ptrdiff_t pyprof_pthread_tid_offset(unsigned long self, int tid)
{
    const uint8_t *p = (const uint8_t *)self;
    for (ptrdiff_t off = 0; off < 2048; off += 4) {
        int v;
        if (pyprof_saferead(&v, (uintptr_t)(p + off), sizeof(v)) != 0)
            return -1;
        if (v == tid)
            return off;
    }
    return -1;
}
