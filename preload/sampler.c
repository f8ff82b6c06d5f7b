#include "sampler.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "fds.h"
#include "log.h"
#include "prefetch.h"
#include "saferead.h"
#include "thread.h"

#define CODE_CACHE_WAYS 4u
#define CODE_CACHE_SIZE 4096u        /* 1024 sets of 4 ways, by code object address */
#define MAX_LINETABLE (256u * 1024u)
#define NAME_MAX_BYTES 512
#define IOV_BATCH 512

/* A decoded code object. `raw` holds the pointers it was decoded from: a hit is only a hit
 * if the object at that address still has them (addresses of freed code are reused). */
struct code_entry {
    uintptr_t code;
    struct pyprof_code_raw raw;
    char *name, *filename;
    uint8_t *linetable;
    int linetable_len;
    uint64_t generation;   /* of the profile `function` and `location` belong to */
    uint32_t function;
    int last_offset;       /* the last instruction offset seen, and its location: */
    uint32_t location;     /* frames of callers sit on the same call for a long time */
    uint64_t used;         /* when it was last used (the sampler's use counter) */
};

struct code_ref;

/* What we remember about a thread between ticks. Kept sorted by (tid, tstate). */
struct thread_entry {
    int tid;
    uintptr_t tstate;
    uint64_t cpu_ns, wall_ns;
    uint64_t generation;
    uint32_t record;       /* the profile's thread id in `generation` */
    uint32_t last_stack;   /* the stack it was last seen running, in last_generation's */
    uint64_t last_generation;                       /* profile */
    int idle_looks;        /* consecutive looks that found it quiet (see skip_idle) */
    struct pyprof_fd_id stat;   /* /proc/self/task/<tid>/stat, opened when first needed */
    char name[32];
};

struct pyprof_sampler {
    struct pyprof_py py;
    struct pyprof_sampler_options opt;
    struct pyprof_thread thread;
    int thread_running;

    _Atomic uint32_t quit;       /* a futex word: the sampler sleeps on it */
    _Atomic int enabled;
    _Atomic int restart_baseline;

    /* The profile and its generation change together, under profile_lock; the sampler
     * holds the lock for the recording part of a tick. */
    pthread_mutex_t profile_lock;
    struct pyprof_profile *profile;
    uint64_t generation;
    uint64_t profile_start_real, profile_start_mono;

    _Atomic uint64_t ticks, dropped, torn, sampler_cpu, record_cpu, record_samples;
    uint64_t started_mono;

    /* Sampler-thread-only scratch. */
    struct code_entry *codes;
    struct thread_entry *threads, *threads_next;
    int nthreads;
    struct pyprof_thread_ref *refs;
    struct pyprof_raw_frame *frames;
    struct pyprof_code_raw *raws;  /* the code of each frame, parsed */
    uint32_t *locations, *locations_mem;   /* locations = locations_mem + 1 */
    uint8_t *headers;             /* code object headers, read span by span */
    const uint8_t **header_of;    /* per frame: where its code header is in `headers` */
    struct code_ref *by_address;  /* frames' code addresses, sorted */
    struct pyprof_walk_buf walk;
    uint64_t code_uses;
    int tick_walks;               /* thread stacks walked in this tick */
    uint64_t tick_no;             /* ticks run by this thread */
    struct pyprof_prefetch *prefetch;
    uint64_t pseudo_generation;
    uint32_t idle_location, native_location;
    uint64_t rng;
};

static uint64_t now_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A thread's CPU clock from its kernel tid (what pthread_getcpuclockid computes), so that
 * no pthread_t of a possibly dead thread is ever dereferenced. */
static int thread_cpu_ns(int tid, uint64_t *out)
{
    clockid_t clock = (clockid_t)((~(unsigned)tid) << 3) | 6;
    struct timespec ts;
    if (tid <= 0)
        return -ESRCH;
    if (clock_gettime(clock, &ts) != 0)
        return -errno;
    *out = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    return 0;
}

/* ---- code objects -> locations ------------------------------------------------------------ */

static void code_entry_clear(struct code_entry *e)
{
    free(e->name);
    free(e->filename);
    free(e->linetable);
    memset(e, 0, sizeof(*e));
}

static int code_entry_fill(struct pyprof_sampler *s, struct code_entry *e, uintptr_t code,
                           const struct pyprof_code_raw *raw)
{
    char name[NAME_MAX_BYTES], file[NAME_MAX_BYTES * 2];
    uintptr_t name_obj = raw->qualname ? raw->qualname : raw->name;
    code_entry_clear(e);
    if (pyprof_py_string(&s->py, name_obj, name, sizeof(name)) < 0 ||
        pyprof_py_string(&s->py, raw->filename, file, sizeof(file)) < 0)
        return -EFAULT;
    int len = pyprof_py_bytes(&s->py, raw->linetable, &e->linetable, MAX_LINETABLE);
    if (len < 0)
        return len;
    e->linetable_len = len;
    e->name = strdup(name);
    e->filename = strdup(file);
    if (e->name == NULL || e->filename == NULL) {
        code_entry_clear(e);
        return -ENOMEM;
    }
    e->code = code;
    e->raw = *raw;
    e->generation = 0;
    e->location = PYPROF_ID_NONE;
    return 0;
}

static uint32_t code_location(struct pyprof_sampler *s, struct code_entry *e, int offset)
{
    struct pyprof_profile *p = s->profile;
    if (e->generation != s->generation) {
        e->function = pyprof_profile_function(p, pyprof_profile_string(p, e->name),
                                               pyprof_profile_string(p, e->filename),
                                               e->raw.firstlineno);
        e->generation = s->generation;
        e->location = PYPROF_ID_NONE;
    }
    if (e->location != PYPROF_ID_NONE && e->last_offset == offset)
        return e->location;
    int line = pyprof_py_line(&s->py, e->linetable, (size_t)e->linetable_len, e->raw.firstlineno,
                              offset);
    e->last_offset = offset;
    e->location = pyprof_profile_location(p, e->function, line);
    return e->location;
}

/* The cache entry for `code`: its own if cached, else the least recently used of its set
 * (a direct-mapped cache thrashed on a stack of a few hundred distinct functions, and each
 * miss costs reading two strings and a line table). */
static struct code_entry *code_slot(struct pyprof_sampler *s, uintptr_t code)
{
    uint32_t sets = CODE_CACHE_SIZE / CODE_CACHE_WAYS;
    struct code_entry *set = &s->codes[(((code >> 4) * 0x9E3779B1u) >> 7) % sets * CODE_CACHE_WAYS];
    struct code_entry *victim = set;
    for (unsigned w = 0; w < CODE_CACHE_WAYS; w++) {
        if (set[w].code == code)
            return &set[w];
        if (set[w].used < victim->used)
            victim = &set[w];
    }
    return victim;
}

/* Code objects of one module sit close together in memory, and a recursive stack repeats
 * the same one: sort the stack's code addresses and read overlapping or nearby headers as
 * one span. The kernel's cost is per range read, far more than per byte. */
#define SPAN_GAP 512
#define SPAN_MAX 16384

struct code_ref {
    uintptr_t addr;
    int frame;
};

static int code_ref_compare(const void *a, const void *b)
{
    uintptr_t x = ((const struct code_ref *)a)->addr, y = ((const struct code_ref *)b)->addr;
    return x < y ? -1 : x > y;
}

static void sort_code_refs(struct code_ref *refs, int n)
{
    if (n > 64) {
        qsort(refs, (size_t)n, sizeof(*refs), code_ref_compare);
        return;
    }
    for (int i = 1; i < n; i++) {   /* short stacks: insertion sort beats qsort */
        struct code_ref v = refs[i];
        int j = i;
        for (; j > 0 && refs[j - 1].addr > v.addr; j--)
            refs[j] = refs[j - 1];
        refs[j] = v;
    }
}

/* The code object headers of the stack's frames, read by spans: from the tick's prefetched
 * copy where a span was read at the tick's start (it was on the stack last time), the
 * others in one call. Each span is read again at the next tick's start. */
static int read_code_headers(struct pyprof_sampler *s, int n)
{
    size_t size = s->py.layout.code_read_size, used = 0;
    struct iovec local[IOV_BATCH], remote[IOV_BATCH];
    struct code_ref *refs = s->by_address;
    int nmissing = 0;
    for (int i = 0; i < n; i++) {
        if (!pyprof_plausible_ptr(s->frames[i].code))
            return -ELOOP;   /* torn: never let such a value into the span arithmetic */
        refs[i].addr = s->frames[i].code;
        refs[i].frame = i;
    }
    sort_code_refs(refs, n);
    for (int i = 0; i < n;) {
        uintptr_t start = refs[i].addr, end = start + size;
        int j = i + 1;
        while (j < n && refs[j].addr <= end + SPAN_GAP && refs[j].addr + size - start <= SPAN_MAX) {
            if (refs[j].addr + size > end)
                end = refs[j].addr + size;
            j++;
        }
        uint8_t *copy = s->headers + used;
        if (pyprof_prefetch_copy(s->prefetch, copy, start, end - start) != 0) {
            if (nmissing == IOV_BATCH)
                return -E2BIG;
            local[nmissing].iov_base = copy;
            local[nmissing].iov_len = end - start;
            remote[nmissing].iov_base = (void *)start;
            remote[nmissing].iov_len = end - start;
            nmissing++;
        }
        pyprof_prefetch_remember(s->prefetch, start, end - start);
        for (int k = i; k < j; k++)
            s->header_of[refs[k].frame] = copy + (refs[k].addr - start);
        used += end - start;
        i = j;
    }
    if (nmissing == 0)
        return 0;
    return pyprof_saferead_many(local, remote, nmissing) == 0 ? 0 : -EFAULT;
}

static int resolve_frames(struct pyprof_sampler *s, int n)
{
    int rc = read_code_headers(s, n);
    if (rc != 0)
        return rc == -ELOOP ? -ELOOP : -EFAULT;
    for (int i = 0; i < n; i++)
        if (pyprof_py_code_parse(&s->py, s->header_of[i], &s->raws[i]) != 0)
            return -ELOOP;   /* not a code object any more: the stack moved */
    if (pyprof_py_torn_chunk(s->frames, s->raws, n))
        return -ELOOP;
    for (int i = 0; i < n; i++) {
        const struct pyprof_code_raw *raw = &s->raws[i];
        uintptr_t code = s->frames[i].code;
        struct code_entry *e = code_slot(s, code);
        if (e->code != code || memcmp(&e->raw, raw, sizeof(*raw)) != 0) {
            int rc = code_entry_fill(s, e, code, raw);
            if (rc != 0)
                return rc == -EFAULT ? -ELOOP : rc;
        }
        e->used = ++s->code_uses;
        s->locations[i] = code_location(s, e, s->frames[i].offset);
    }
    return 0;
}

/* Pseudo-frames: [idle] (wall mode, not running) and [native] (a thread with no Python
 * frame, e.g. a C thread that registered with the interpreter). */
static void pseudo_locations(struct pyprof_sampler *s)
{
    if (s->pseudo_generation == s->generation)
        return;
    struct pyprof_profile *p = s->profile;
    uint32_t empty = pyprof_profile_string(p, "");
    s->idle_location = pyprof_profile_location(
        p, pyprof_profile_function(p, pyprof_profile_string(p, "[idle]"), empty, 0), 0);
    s->native_location = pyprof_profile_location(
        p, pyprof_profile_function(p, pyprof_profile_string(p, "[native]"), empty, 0), 0);
    s->pseudo_generation = s->generation;
}

/* ---- threads ----------------------------------------------------------------------------- */

static void thread_name(struct thread_entry *t)
{
    char path[64];
    if (t->tid == getpid()) {
        snprintf(t->name, sizeof(t->name), "MainThread");
        return;
    }
    snprintf(t->name, sizeof(t->name), "thread-%d", t->tid);
    snprintf(path, sizeof(path), "/proc/self/task/%d/comm", t->tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char comm[17];
    ssize_t n = read(fd, comm, sizeof(comm) - 1);
    close(fd);
    if (n <= 0)
        return;
    comm[n] = '\0';
    comm[strcspn(comm, "\n")] = '\0';
    /* Python < 3.14 never names its threads: the process name says nothing new. */
    char self[17] = "";
    fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t m = read(fd, self, sizeof(self) - 1);
        self[m > 0 ? m : 0] = '\0';
        self[strcspn(self, "\n")] = '\0';
        close(fd);
    }
    if (comm[0] != '\0' && strcmp(comm, self) != 0)
        snprintf(t->name, sizeof(t->name), "%s", comm);
}

static int ref_compare(const void *a, const void *b)
{
    const struct pyprof_thread_ref *x = a, *y = b;
    if (x->native_tid != y->native_tid)
        return x->native_tid < y->native_tid ? -1 : 1;
    return x->tstate < y->tstate ? -1 : x->tstate > y->tstate;
}

static void forget_threads(struct thread_entry *threads, int n)
{
    for (int i = 0; i < n; i++)
        if (threads[i].stat.fd >= 0)
            pyprof_fd_id_close(&threads[i].stat);   /* unless the host took the number */
}

/* Carry each live thread's state over from the previous tick (both lists sorted); new
 * threads get an entry with no baseline; the entries of threads that are gone are closed. */
static void merge_threads(struct pyprof_sampler *s, int n)
{
    int j = 0;
    for (int i = 0; i < n; i++) {
        const struct pyprof_thread_ref *r = &s->refs[i];
        while (j < s->nthreads && (s->threads[j].tid < r->native_tid ||
                                   (s->threads[j].tid == r->native_tid &&
                                    s->threads[j].tstate < r->tstate)))
            j++;
        struct thread_entry *t = &s->threads_next[i];
        if (j < s->nthreads && s->threads[j].tid == r->native_tid &&
            s->threads[j].tstate == r->tstate) {
            *t = s->threads[j];
            s->threads[j].stat.fd = -1;   /* moved to the new list */
        } else {
            memset(t, 0, sizeof(*t));
            t->tid = r->native_tid;
            t->tstate = r->tstate;
            t->stat.fd = -1;
            thread_name(t);
        }
    }
    forget_threads(s->threads, s->nthreads);
    struct thread_entry *tmp = s->threads;
    s->threads = s->threads_next;
    s->threads_next = tmp;
    s->nthreads = n;
}

static uint32_t thread_record(struct pyprof_sampler *s, struct thread_entry *t)
{
    if (t->generation != s->generation) {
        t->record = pyprof_profile_thread(s->profile, t->tid,
                                          pyprof_profile_string(s->profile, t->name));
        t->generation = s->generation;
    }
    return t->record;
}

/* Is the thread on a CPU, or runnable, right now? The state letter in
 * /proc/self/task/<tid>/stat (about 1 us to read, through an fd kept open). Its CPU clock
 * cannot tell: read from another thread, it only moves at scheduler ticks. */
static int thread_running(struct thread_entry *t)
{
    char buf[256];
    if (t->stat.fd < 0) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/self/task/%d/stat", t->tid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return 1;   /* cannot tell: take the stack as it is */
        fd = pyprof_fd_lift(fd);   /* kept open: out of the host's way */
        if (pyprof_fd_id_take(&t->stat, fd) != 0) {
            close(fd);
            return 1;
        }
    }
    /* Should the host have closed it and reused the number, pread() reads its file without
     * moving its offset (or fails: a pipe, a socket); the check below then says "running". */
    ssize_t n = pread(t->stat.fd, buf, sizeof(buf) - 1, 0);
    if (n <= 0)
        return 1;
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')');   /* the name may hold spaces and parentheses */
    return paren == NULL || paren[1] != ' ' || paren[2] == 'R';
}

/*
 * CPU mode: a thread that used under 1/IDLE_SHARE of the time since each of its last
 * IDLE_AFTER looks is looked at every IDLE_STRIDE ticks only, unless it holds the GIL (a
 * sleeper that wakes into Python takes the GIL: it is seen at once). Its CPU is not lost,
 * the clock being cumulative: the next look charges all of it, to the stack seen then (or
 * carried to the one last seen running). It saves a system call per quiet thread per tick:
 * a server with a hundred threads that wake every few milliseconds spent most of its
 * sampler's time reading their clocks.
 */
#define IDLE_AFTER 8
#define IDLE_STRIDE 8
#define IDLE_SHARE 20

static int skip_idle(const struct pyprof_sampler *s, const struct thread_entry *t, int holds_gil)
{
    return s->opt.mode == PYPROF_MODE_CPU && !holds_gil && t->idle_looks >= IDLE_AFTER &&
           (s->tick_no + (uint64_t)t->tid) % IDLE_STRIDE != 0;
}

/*
 * Where did the CPU a thread used since the previous tick go? The stack we read is a
 * snapshot of one instant; the CPU time (from the thread's own clock) covers the interval.
 *
 * - The thread runs now (it holds the GIL, or the kernel says it is running): the CPU goes
 *   to the stack seen now.
 * - It is blocked now (asleep, waiting for I/O or for the GIL), yet used CPU since the last
 *   tick: that CPU was used before it blocked, so it goes to the stack it was last seen
 *   running (in this profile); only a thread never seen running gets it on the stack seen
 *   now.
 *
 * So a thread that computes and then sleeps does not make its sleeping stack look hot, and
 * the CPU of work that ends in a GIL wait is not handed to the code that runs after it.
 * Wall mode charges the wall interval to the stack seen now, with [idle] when not running.
 */
static void sample_thread(struct pyprof_sampler *s, struct thread_entry *t,
                          const struct pyprof_thread_ref *ref,
                          const struct pyprof_interp_state *is, uint64_t wall)
{
    uint64_t cpu = 0;
    int holds_gil = is->gil_holder == t->tstate;
    if (skip_idle(s, t, holds_gil))
        return;
    if (thread_cpu_ns(t->tid, &cpu) != 0)
        return;   /* the thread is gone */
    int first = t->wall_ns == 0;
    uint64_t cpu_delta = cpu >= t->cpu_ns ? cpu - t->cpu_ns : 0;
    uint64_t wall_delta = wall - t->wall_ns;
    uint32_t last = t->last_generation == s->generation ? t->last_stack : PYPROF_ID_NONE;
    t->cpu_ns = cpu;
    t->wall_ns = wall;
    t->idle_looks = cpu_delta * IDLE_SHARE < wall_delta ? t->idle_looks + 1 : 0;
    if (first || (s->opt.mode == PYPROF_MODE_CPU && cpu_delta == 0))
        return;   /* no baseline yet, or no CPU used since the last tick: nothing to walk */

    int running = holds_gil || thread_running(t);
    uint64_t weight = s->opt.mode == PYPROF_MODE_CPU ? cpu_delta : wall_delta;
    if (s->opt.mode == PYPROF_MODE_CPU && !running && last != PYPROF_ID_NONE) {
        pyprof_profile_add_to(s->profile, last, weight);
        return;
    }

    s->tick_walks++;
    int n = pyprof_py_walk(&s->py, &s->walk, ref, s->frames, PYPROF_MAX_DEPTH);
    int rc = n < 0 ? n : resolve_frames(s, n);
    if (rc != 0) {
        atomic_fetch_add(rc == -ELOOP ? &s->torn : &s->dropped, 1);
        return;
    }
    uint32_t flags = 0, *locs = s->locations;
    pseudo_locations(s);
    if (n == 0)
        locs[n++] = s->native_location;
    if (holds_gil)
        flags |= PYPROF_SAMPLE_GIL | (is->gc_collecting ? PYPROF_SAMPLE_GC : 0);
    if (s->opt.mode == PYPROF_MODE_WALL && !running) {
        flags |= PYPROF_SAMPLE_IDLE;
        /* locations[] has a spare slot before it for the [idle] leaf. */
        *--locs = s->idle_location;
        n++;
    }
    uint32_t stack = pyprof_profile_add(s->profile, thread_record(s, t), flags, locs,
                                        (uint32_t)n, weight);
    if (running) {
        t->last_stack = stack;
        t->last_generation = s->generation;
    }
}

static void tick(struct pyprof_sampler *s)
{
    struct pyprof_interp_state is;
    s->tick_walks = 0;
    s->tick_no++;
    pyprof_prefetch_begin(s->prefetch);
    if (pyprof_py_interp_state(&s->py, s->prefetch, &is) != 0 || is.finalizing)
        return;
    int n = pyprof_py_threads(&s->py, s->prefetch, &is, s->refs, PYPROF_MAX_THREADS);
    if (n >= 0) {
        qsort(s->refs, (size_t)n, sizeof(*s->refs), ref_compare);
        if (atomic_exchange(&s->restart_baseline, 0)) {
            forget_threads(s->threads, s->nthreads);
            s->nthreads = 0;
        }
        merge_threads(s, n);
    }

    /* Everything this tick counts is counted under the lock, and only while sampling is on:
     * pyprof_sampler_set_enabled(0) takes the lock too, so once it returns, nothing more. */
    uint64_t wall = now_ns(CLOCK_MONOTONIC);
    pthread_mutex_lock(&s->profile_lock);
    if (atomic_load(&s->enabled)) {
        if (n < 0) {
            atomic_fetch_add(&s->dropped, 1);
        } else {
            atomic_fetch_add_explicit(&s->ticks, 1, memory_order_relaxed);
            for (int i = 0; i < s->nthreads; i++)
                sample_thread(s, &s->threads[i], &s->refs[i], &is, wall);
        }
    }
    pthread_mutex_unlock(&s->profile_lock);
}

/* One tick in MEASURE_EVERY measures its own CPU time (two more system calls): the cost
 * per thread stack walked that `pyprofctl status` shows, without paying for it each tick. */
#define MEASURE_EVERY 8

static void measured_tick(struct pyprof_sampler *s)
{
    if (s->tick_no % MEASURE_EVERY != 0) {   /* tick() counts tick_no */
        tick(s);
        return;
    }
    uint64_t cpu0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
    tick(s);
    atomic_fetch_add_explicit(&s->record_cpu, now_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&s->record_samples, (uint64_t)s->tick_walks, memory_order_relaxed);
}

/* Is the host gone, but for our threads? No Python thread left, and the main thread (the
 * thread group's leader, whose state /proc/self/stat shows) a zombie: it called
 * pthread_exit(), and the process lives on only as long as some thread does. */
static int host_gone(struct pyprof_sampler *s)
{
    struct pyprof_interp_state is;
    if (pyprof_py_interp_state(&s->py, NULL, &is) != 0 || is.tstate_head != 0)
        return 0;
    char buf[512];
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')');
    return paren != NULL && paren[1] == ' ' && paren[2] == 'Z';
}

#define HOST_CHECK_NS 100000000ull   /* how often to ask host_gone() */

/* Jitter each sleep by +-10% so that sampling cannot lock onto periodic work. */
static uint64_t next_sleep(struct pyprof_sampler *s)
{
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    uint64_t span = s->opt.interval_ns / 5;
    return s->opt.interval_ns - span / 2 + (span ? s->rng % span : 0);
}

/* Sleep until `deadline` (CLOCK_MONOTONIC) or until asked to quit. 1 when quitting. A
 * futex wait on the quit word itself: one system call per tick (a condition variable
 * took two), and pyprof_sampler_join() wakes it at once. */
static int sleep_until(struct pyprof_sampler *s, uint64_t deadline)
{
    struct timespec ts = {(time_t)(deadline / 1000000000ull), (long)(deadline % 1000000000ull)};
    while (!atomic_load(&s->quit) && now_ns(CLOCK_MONOTONIC) < deadline) {
        long rc = syscall(SYS_futex, &s->quit, FUTEX_WAIT_BITSET_PRIVATE, 0, &ts, NULL,
                          FUTEX_BITSET_MATCH_ANY);
        if (rc != 0 && errno == ETIMEDOUT)
            break;
    }
    return atomic_load(&s->quit) != 0;
}

static void *sampler_main(void *arg)
{
    struct pyprof_sampler *s = arg;
    uint64_t deadline = now_ns(CLOCK_MONOTONIC), host_checked = deadline;
    s->started_mono = deadline;
    for (;;) {
        deadline += next_sleep(s);
        uint64_t now = now_ns(CLOCK_MONOTONIC);
        if (deadline < now)
            deadline = now;   /* we fell behind (host starved us): do not burst */
        if (sleep_until(s, deadline))
            break;
        if (atomic_load_explicit(&s->enabled, memory_order_relaxed))
            measured_tick(s);
        if (deadline - host_checked >= HOST_CHECK_NS) {
            host_checked = deadline;
            if (host_gone(s)) {
                if (s->opt.orphaned)
                    s->opt.orphaned();
                break;
            }
        }
    }
    /* Read live from this thread's clock while it runs (pyprof_sampler_stats); kept now. */
    atomic_store_explicit(&s->sampler_cpu, now_ns(CLOCK_THREAD_CPUTIME_ID), memory_order_relaxed);
    return NULL;
}

/* ---- life cycle ------------------------------------------------------------------------- */

struct pyprof_sampler *pyprof_sampler_create(const struct pyprof_py *py,
                                             const struct pyprof_sampler_options *options)
{
    struct pyprof_sampler *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->py = *py;
    s->opt = *options;
    atomic_init(&s->enabled, options->enabled);
    pthread_mutex_init(&s->profile_lock, NULL);
    s->rng = now_ns(CLOCK_MONOTONIC) | 1;
    s->codes = calloc(CODE_CACHE_SIZE, sizeof(*s->codes));
    s->threads = calloc(PYPROF_MAX_THREADS, sizeof(*s->threads));
    s->threads_next = calloc(PYPROF_MAX_THREADS, sizeof(*s->threads_next));
    s->refs = calloc(PYPROF_MAX_THREADS, sizeof(*s->refs));
    s->frames = calloc(PYPROF_MAX_DEPTH, sizeof(*s->frames));
    s->raws = calloc(PYPROF_MAX_DEPTH, sizeof(*s->raws));
    s->locations_mem = calloc(PYPROF_MAX_DEPTH + 1, sizeof(*s->locations_mem));
    s->headers = calloc(PYPROF_MAX_DEPTH, py->layout.code_read_size + SPAN_GAP);
    s->header_of = calloc(PYPROF_MAX_DEPTH, sizeof(*s->header_of));
    s->by_address = calloc(PYPROF_MAX_DEPTH, sizeof(*s->by_address));
    s->profile = pyprof_profile_new(options->max_stacks);
    s->prefetch = pyprof_prefetch_new();
    s->walk.prefetch = s->prefetch;
    s->generation = 1;
    s->profile_start_real = now_ns(CLOCK_REALTIME);
    s->profile_start_mono = now_ns(CLOCK_MONOTONIC);
    if (!s->codes || !s->threads || !s->threads_next || !s->refs || !s->frames || !s->raws ||
        !s->locations_mem || !s->headers || !s->header_of || !s->by_address || !s->profile ||
        !s->prefetch) {
        pyprof_sampler_destroy(s);
        return NULL;
    }
    s->locations = s->locations_mem + 1;   /* keep locations[-1] for the [idle] leaf */
    return s;
}

int pyprof_sampler_start(struct pyprof_sampler *s)
{
    atomic_store(&s->quit, 0);
    int rc = pyprof_thread_start(&s->thread, sampler_main, s);
    if (rc != 0)
        return rc;
    s->thread_running = 1;
    return 0;
}

void pyprof_sampler_join(struct pyprof_sampler *s)
{
    if (!s->thread_running)
        return;
    atomic_store(&s->quit, 1);
    syscall(SYS_futex, &s->quit, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    pyprof_thread_join(&s->thread);
    s->thread_running = 0;
}

void pyprof_sampler_destroy(struct pyprof_sampler *s)
{
    if (s == NULL)
        return;
    pyprof_sampler_join(s);
    if (s->codes)
        for (unsigned i = 0; i < CODE_CACHE_SIZE; i++)
            code_entry_clear(&s->codes[i]);
    free(s->codes);
    if (s->threads)
        forget_threads(s->threads, s->nthreads);
    free(s->threads);
    free(s->threads_next);
    free(s->refs);
    free(s->frames);
    free(s->raws);
    free(s->locations_mem);
    free(s->headers);
    free(s->header_of);
    free(s->by_address);
    pyprof_walk_buf_free(&s->walk);
    pyprof_prefetch_free(s->prefetch);
    pyprof_profile_free(s->profile);
    pthread_mutex_destroy(&s->profile_lock);
    free(s);
}

void pyprof_sampler_set_enabled(struct pyprof_sampler *s, int enabled)
{
    if (enabled && !atomic_load(&s->enabled))
        atomic_store(&s->restart_baseline, 1);   /* time spent stopped is not attributed */
    atomic_store(&s->enabled, enabled);
    /* A tick that was recording finishes before we return (see tick()): a stop freezes
     * the counts as soon as the client hears back. */
    pthread_mutex_lock(&s->profile_lock);
    pthread_mutex_unlock(&s->profile_lock);
}

struct pyprof_profile *pyprof_sampler_swap(struct pyprof_sampler *s, struct pyprof_profile *fresh)
{
    pthread_mutex_lock(&s->profile_lock);
    struct pyprof_profile *old = s->profile;
    s->profile = fresh;
    s->generation++;
    s->profile_start_real = now_ns(CLOCK_REALTIME);
    s->profile_start_mono = now_ns(CLOCK_MONOTONIC);
    atomic_store(&s->ticks, 0);
    atomic_store(&s->dropped, 0);
    atomic_store(&s->torn, 0);
    pthread_mutex_unlock(&s->profile_lock);
    return old;
}

const struct pyprof_profile *pyprof_sampler_profile(struct pyprof_sampler *s)
{
    return s->profile;
}

void pyprof_sampler_stats(struct pyprof_sampler *s, struct pyprof_sampler_stats *out)
{
    out->enabled = atomic_load(&s->enabled);
    out->ticks = atomic_load(&s->ticks);
    out->dropped = atomic_load(&s->dropped);
    out->torn = atomic_load(&s->torn);
    uint64_t live;
    int tid = atomic_load(&s->thread.tid);
    out->sampler_cpu_ns = s->thread_running && tid > 0 && thread_cpu_ns(tid, &live) == 0
                              ? live
                              : atomic_load(&s->sampler_cpu);
    out->record_cpu_ns = atomic_load(&s->record_cpu);
    out->record_samples = atomic_load(&s->record_samples);
    out->profile_start_ns = s->profile_start_real;
    out->profile_elapsed_ns = now_ns(CLOCK_MONOTONIC) - s->profile_start_mono;
    out->started_monotonic_ns = s->started_mono;
}
