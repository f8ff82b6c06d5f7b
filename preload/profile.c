#include "profile.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* ---- append-only chunked tables --------------------------------------------------------
 * Entries never move: chunks are allocated as the table grows and the chunk pointer array
 * is sized for the table's maximum up front. The writer fills an entry, then publishes it
 * by storing count with release order; readers load count with acquire order. */

struct table {
    size_t elem;
    uint32_t shift, max, nchunks;
    void **chunks;
    _Atomic uint32_t count;
};

static int table_init(struct table *t, size_t elem, uint32_t shift, uint32_t max)
{
    t->elem = elem;
    t->shift = shift;
    t->max = max;
    t->nchunks = (uint32_t)(((uint64_t)max + (1u << shift) - 1) >> shift);
    t->chunks = calloc(t->nchunks, sizeof(void *));
    atomic_init(&t->count, 0);
    return t->chunks ? 0 : -ENOMEM;
}

static void table_destroy(struct table *t)
{
    for (uint32_t i = 0; i < t->nchunks && t->chunks; i++)
        free(t->chunks[i]);
    free(t->chunks);
}

static void *table_at(const struct table *t, uint32_t i)
{
    return (char *)t->chunks[i >> t->shift] + (size_t)(i & ((1u << t->shift) - 1)) * t->elem;
}

static uint32_t table_len(const struct table *t)
{
    return atomic_load_explicit(&((struct table *)t)->count, memory_order_acquire);
}

/* Make room for `n` consecutive entries starting at the returned index, all in one chunk.
 * Entries skipped to reach a fresh chunk stay zero and are never referenced. */
static uint32_t table_reserve(struct table *t, uint32_t n)
{
    uint32_t i = atomic_load_explicit(&t->count, memory_order_relaxed);
    uint32_t per_chunk = 1u << t->shift;
    if (n == 0 || n > per_chunk)
        return PYPROF_ID_NONE;
    if ((i & (per_chunk - 1)) + n > per_chunk)
        i = (i | (per_chunk - 1)) + 1;
    if ((uint64_t)i + n > t->max)
        return PYPROF_ID_NONE;
    uint32_t c = i >> t->shift;
    if (t->chunks[c] == NULL && (t->chunks[c] = calloc(per_chunk, t->elem)) == NULL)
        return PYPROF_ID_NONE;
    return i;
}

static void table_publish(struct table *t, uint32_t end)
{
    atomic_store_explicit(&t->count, end, memory_order_release);
}

/* ---- writer-only hash index from content to id ------------------------------------------ */

struct slot { uint32_t id, hash; };
struct index { struct slot *slots; uint32_t cap, used; };

static int index_init(struct index *ix)
{
    ix->cap = 1024;
    ix->used = 0;
    ix->slots = malloc(ix->cap * sizeof(*ix->slots));
    if (ix->slots == NULL)
        return -ENOMEM;
    memset(ix->slots, 0xff, ix->cap * sizeof(*ix->slots));
    return 0;
}

static int index_grow(struct index *ix)
{
    uint32_t cap = ix->cap * 2;
    struct slot *slots = malloc(cap * sizeof(*slots));
    if (slots == NULL)
        return -ENOMEM;
    memset(slots, 0xff, cap * sizeof(*slots));
    for (uint32_t i = 0; i < ix->cap; i++) {
        if (ix->slots[i].id == PYPROF_ID_NONE)
            continue;
        uint32_t j = ix->slots[i].hash & (cap - 1);
        while (slots[j].id != PYPROF_ID_NONE)
            j = (j + 1) & (cap - 1);
        slots[j] = ix->slots[i];
    }
    free(ix->slots);
    ix->slots = slots;
    ix->cap = cap;
    return 0;
}

struct pyprof_profile;
typedef int (*equal_fn)(const struct pyprof_profile *p, uint32_t id, const void *key);

/* The slot holding an equal entry, or the empty slot where it would go. */
static struct slot *index_probe(const struct index *ix, uint32_t hash, equal_fn eq,
                                const struct pyprof_profile *p, const void *key)
{
    uint32_t j = hash & (ix->cap - 1);
    for (;;) {
        struct slot *s = &ix->slots[j];
        if (s->id == PYPROF_ID_NONE || (s->hash == hash && eq(p, s->id, key)))
            return s;
        j = (j + 1) & (ix->cap - 1);
    }
}

static uint32_t hash_bytes(uint64_t h, const void *data, size_t len)
{
    const uint8_t *b = data;
    for (size_t i = 0; i < len; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return (uint32_t)(h ^ (h >> 32));
}

#define HASH_SEED 0xcbf29ce484222325ull

/* Fixed-size keys (functions, locations, threads) hash as 64-bit words: much cheaper than
 * a byte loop on the sampling path. */
static uint32_t hash_words(const uint64_t *words, size_t n)
{
    uint64_t h = HASH_SEED;
    for (size_t i = 0; i < n; i++) {
        h ^= words[i];
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 33;
    }
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
    return (uint32_t)h;
}

/* ---- the profile --------------------------------------------------------------------------- */

struct string_entry { const char *s; uint32_t len; };
struct function_entry { uint32_t name, filename; int64_t start_line; };
struct location_entry { uint32_t function; int64_t line; };
struct thread_entry { int64_t tid; uint32_t name; };
struct stack_entry {
    uint32_t thread, flags, depth, frames;  /* frames: first index in the frame table */
    _Atomic uint64_t count, weight;
};

#define ARENA_BLOCK 65536u
#define MAX_STRING 4095u

struct pyprof_profile {
    struct table strings, functions, locations, threads, stacks, frames;
    struct index strings_ix, functions_ix, locations_ix, threads_ix, stacks_ix;
    char **blocks;             /* string bytes; a string never straddles two blocks */
    uint32_t nblocks, max_blocks, block_used;
    uint32_t truncated_stack;
    _Atomic uint64_t samples, weight, truncated;
    _Atomic uint64_t index_bytes, arena_bytes;   /* what the indexes and strings hold */
};

static int string_equal(const struct pyprof_profile *p, uint32_t id, const void *key)
{
    const struct string_entry *e = table_at(&p->strings, id), *k = key;
    return e->len == k->len && memcmp(e->s, k->s, k->len) == 0;
}

/* index_init(), counted in what the indexes hold. */
static int init_index(struct pyprof_profile *p, struct index *ix)
{
    int rc = index_init(ix);
    if (rc == 0)
        atomic_fetch_add_explicit(&p->index_bytes, (uint64_t)ix->cap * sizeof(struct slot),
                                  memory_order_relaxed);
    return rc;
}

/* index_grow(), counted: the old slots are freed, twice as many allocated. */
static int grow_index(struct pyprof_profile *p, struct index *ix)
{
    uint64_t before = (uint64_t)ix->cap * sizeof(struct slot);
    int rc = index_grow(ix);
    if (rc == 0)
        atomic_fetch_add_explicit(&p->index_bytes, before, memory_order_relaxed);
    return rc;
}

static uint64_t table_bytes(const struct table *t)
{
    uint64_t per_chunk = 1ull << t->shift, used = table_len(t);
    return (used + per_chunk - 1) / per_chunk * per_chunk * t->elem + t->nchunks * sizeof(void *);
}

static const char *arena_copy(struct pyprof_profile *p, const char *s, uint32_t len)
{
    if (p->nblocks == 0 || p->block_used + len + 1 > ARENA_BLOCK) {
        if (p->nblocks == p->max_blocks)
            return NULL;
        char *block = malloc(ARENA_BLOCK);
        if (block == NULL)
            return NULL;
        atomic_fetch_add_explicit(&p->arena_bytes, ARENA_BLOCK, memory_order_relaxed);
        p->blocks[p->nblocks++] = block;
        p->block_used = 0;
    }
    char *dst = p->blocks[p->nblocks - 1] + p->block_used;
    memcpy(dst, s, len);
    dst[len] = '\0';
    p->block_used += len + 1;
    return dst;
}

/* Insert `entry` (already known to be absent) into `t` and its index slot. */
static uint32_t insert(struct pyprof_profile *p, struct table *t, struct index *ix, uint32_t hash,
                       const void *entry, equal_fn eq)
{
    if (ix->used * 2 >= ix->cap && grow_index(p, ix) != 0)
        return PYPROF_ID_NONE;
    uint32_t id = table_reserve(t, 1);
    if (id == PYPROF_ID_NONE)
        return id;
    memcpy(table_at(t, id), entry, t->elem);
    table_publish(t, id + 1);
    struct slot *s = index_probe(ix, hash, eq, p, entry);
    s->id = id;
    s->hash = hash;
    ix->used++;
    return id;
}

uint32_t pyprof_profile_string(struct pyprof_profile *p, const char *s)
{
    size_t len = strlen(s);
    struct string_entry key = {s, (uint32_t)(len > MAX_STRING ? MAX_STRING : len)};
    uint32_t hash = hash_bytes(HASH_SEED, s, key.len);
    struct slot *slot = index_probe(&p->strings_ix, hash, string_equal, p, &key);
    if (slot->id != PYPROF_ID_NONE)
        return slot->id;
    if ((key.s = arena_copy(p, s, key.len)) == NULL)
        return PYPROF_ID_NONE;
    return insert(p, &p->strings, &p->strings_ix, hash, &key, string_equal);
}

static int function_equal(const struct pyprof_profile *p, uint32_t id, const void *key)
{
    const struct function_entry *e = table_at(&p->functions, id), *k = key;
    return e->name == k->name && e->filename == k->filename && e->start_line == k->start_line;
}

uint32_t pyprof_profile_function(struct pyprof_profile *p, uint32_t name, uint32_t filename,
                                 int64_t start_line)
{
    if (name == PYPROF_ID_NONE || filename == PYPROF_ID_NONE)
        return PYPROF_ID_NONE;
    struct function_entry key = {name, filename, start_line};
    uint64_t words[2] = {(uint64_t)name << 32 | filename, (uint64_t)start_line};
    uint32_t hash = hash_words(words, 2);
    struct slot *slot = index_probe(&p->functions_ix, hash, function_equal, p, &key);
    if (slot->id != PYPROF_ID_NONE)
        return slot->id;
    return insert(p, &p->functions, &p->functions_ix, hash, &key, function_equal);
}

static int location_equal(const struct pyprof_profile *p, uint32_t id, const void *key)
{
    const struct location_entry *e = table_at(&p->locations, id), *k = key;
    return e->function == k->function && e->line == k->line;
}

uint32_t pyprof_profile_location(struct pyprof_profile *p, uint32_t function, int64_t line)
{
    if (function == PYPROF_ID_NONE)
        return PYPROF_ID_NONE;
    struct location_entry key;
    memset(&key, 0, sizeof(key));
    key.function = function;
    key.line = line;
    uint64_t words[2] = {function, (uint64_t)line};
    uint32_t hash = hash_words(words, 2);
    struct slot *slot = index_probe(&p->locations_ix, hash, location_equal, p, &key);
    if (slot->id != PYPROF_ID_NONE)
        return slot->id;
    return insert(p, &p->locations, &p->locations_ix, hash, &key, location_equal);
}

static int thread_equal(const struct pyprof_profile *p, uint32_t id, const void *key)
{
    const struct thread_entry *e = table_at(&p->threads, id), *k = key;
    return e->tid == k->tid && e->name == k->name;
}

uint32_t pyprof_profile_thread(struct pyprof_profile *p, int64_t tid, uint32_t name)
{
    if (name == PYPROF_ID_NONE)
        return PYPROF_ID_NONE;
    struct thread_entry key;
    memset(&key, 0, sizeof(key));
    key.tid = tid;
    key.name = name;
    uint64_t words[2] = {(uint64_t)tid, name};
    uint32_t hash = hash_words(words, 2);
    struct slot *slot = index_probe(&p->threads_ix, hash, thread_equal, p, &key);
    if (slot->id != PYPROF_ID_NONE)
        return slot->id;
    return insert(p, &p->threads, &p->threads_ix, hash, &key, thread_equal);
}

struct stack_key { uint32_t thread, flags, depth; const uint32_t *locations; };

static int stack_equal(const struct pyprof_profile *p, uint32_t id, const void *key)
{
    const struct stack_entry *e = table_at(&p->stacks, id);
    const struct stack_key *k = key;
    if (e->thread != k->thread || e->flags != k->flags || e->depth != k->depth)
        return 0;
    return k->depth == 0 ||
           memcmp(table_at(&p->frames, e->frames), k->locations, k->depth * sizeof(uint32_t)) == 0;
}

static uint32_t stack_hash(const struct stack_key *k)
{
    uint64_t h = ((uint64_t)k->thread << 32 | k->flags) ^ ((uint64_t)k->depth << 48);
    uint32_t d = 0;
    for (; d + 2 <= k->depth; d += 2) {
        h ^= (uint64_t)k->locations[d] << 32 | k->locations[d + 1];
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 33;
    }
    uint64_t tail[2] = {h, d < k->depth ? k->locations[d] : 0};
    return hash_words(tail, 2);
}

static uint32_t stack_insert(struct pyprof_profile *p, const struct stack_key *k, uint32_t hash,
                             struct slot *slot)
{
    if (p->stacks_ix.used * 2 >= p->stacks_ix.cap) {
        if (grow_index(p, &p->stacks_ix) != 0)
            return PYPROF_ID_NONE;
        slot = index_probe(&p->stacks_ix, hash, stack_equal, p, k);
    }
    uint32_t frames = k->depth ? table_reserve(&p->frames, k->depth) : 0;
    uint32_t id = table_reserve(&p->stacks, 1);
    if (frames == PYPROF_ID_NONE || id == PYPROF_ID_NONE)
        return PYPROF_ID_NONE;
    if (k->depth) {
        memcpy(table_at(&p->frames, frames), k->locations, k->depth * sizeof(uint32_t));
        table_publish(&p->frames, frames + k->depth);
    }
    struct stack_entry *e = table_at(&p->stacks, id);
    e->thread = k->thread;
    e->flags = k->flags;
    e->depth = k->depth;
    e->frames = frames;
    table_publish(&p->stacks, id + 1);
    slot->id = id;
    slot->hash = hash;
    p->stacks_ix.used++;
    return id;
}

static void count(struct pyprof_profile *p, uint32_t stack, uint64_t weight)
{
    struct stack_entry *e = table_at(&p->stacks, stack);
    atomic_fetch_add_explicit(&e->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&e->weight, weight, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->samples, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->weight, weight, memory_order_relaxed);
}

uint32_t pyprof_profile_add(struct pyprof_profile *p, uint32_t thread, uint32_t flags,
                            const uint32_t *locations, uint32_t depth, uint64_t weight)
{
    struct stack_key key = {thread, flags, depth, locations};
    uint32_t id = thread == PYPROF_ID_NONE ? PYPROF_ID_NONE : 0;
    for (uint32_t i = 0; i < depth && id == 0; i++)
        if (locations[i] == PYPROF_ID_NONE)
            id = PYPROF_ID_NONE;
    if (id == 0) {
        uint32_t hash = stack_hash(&key);
        struct slot *slot = index_probe(&p->stacks_ix, hash, stack_equal, p, &key);
        id = slot->id != PYPROF_ID_NONE ? slot->id : stack_insert(p, &key, hash, slot);
    }
    if (id == PYPROF_ID_NONE)
        id = p->truncated_stack;
    pyprof_profile_add_to(p, id, weight);
    return id;
}

void pyprof_profile_add_to(struct pyprof_profile *p, uint32_t stack, uint64_t weight)
{
    count(p, stack, weight);
    if (stack == p->truncated_stack)
        atomic_fetch_add_explicit(&p->truncated, 1, memory_order_relaxed);
}

static int make_truncated_stack(struct pyprof_profile *p)
{
    uint32_t name = pyprof_profile_string(p, "[truncated]");
    uint32_t fn = pyprof_profile_function(p, name, pyprof_profile_string(p, ""), 0);
    uint32_t loc = pyprof_profile_location(p, fn, 0);
    uint32_t thread = pyprof_profile_thread(p, 0, pyprof_profile_string(p, ""));
    struct stack_key key = {thread, 0, 1, &loc};
    if (loc == PYPROF_ID_NONE || thread == PYPROF_ID_NONE)
        return -ENOMEM;
    uint32_t hash = stack_hash(&key);
    p->truncated_stack =
        stack_insert(p, &key, hash, index_probe(&p->stacks_ix, hash, stack_equal, p, &key));
    return p->truncated_stack == PYPROF_ID_NONE ? -ENOMEM : 0;
}

struct pyprof_profile *pyprof_profile_new(uint32_t max_stacks)
{
    struct pyprof_profile *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    /* Everything else is bounded in proportion to the stacks. */
    uint32_t max_locations = max_stacks * 4 + 4096;
    int rc = 0;
    rc |= table_init(&p->strings, sizeof(struct string_entry), 12, max_locations * 2);
    rc |= table_init(&p->functions, sizeof(struct function_entry), 12, max_locations);
    rc |= table_init(&p->locations, sizeof(struct location_entry), 12, max_locations);
    rc |= table_init(&p->threads, sizeof(struct thread_entry), 10, 65536);
    rc |= table_init(&p->stacks, sizeof(struct stack_entry), 12, max_stacks + 1);
    rc |= table_init(&p->frames, sizeof(uint32_t), 16, max_stacks * 64 + 65536);
    rc |= init_index(p, &p->strings_ix) | init_index(p, &p->functions_ix);
    rc |= init_index(p, &p->locations_ix) | init_index(p, &p->threads_ix);
    rc |= init_index(p, &p->stacks_ix);
    p->max_blocks = max_locations / 16 + 64;   /* ~ 64 KiB blocks: 4 bytes per location */
    p->blocks = calloc(p->max_blocks, sizeof(char *));
    if (rc != 0 || p->blocks == NULL || pyprof_profile_string(p, "") != 0 ||
        make_truncated_stack(p) != 0) {
        pyprof_profile_free(p);
        return NULL;
    }
    return p;
}

void pyprof_profile_free(struct pyprof_profile *p)
{
    if (p == NULL)
        return;
    struct table *tables[] = {&p->strings, &p->functions, &p->locations, &p->threads,
                              &p->stacks, &p->frames};
    struct index *indexes[] = {&p->strings_ix, &p->functions_ix, &p->locations_ix,
                               &p->threads_ix, &p->stacks_ix};
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
        table_destroy(tables[i]);
    for (size_t i = 0; i < sizeof(indexes) / sizeof(indexes[0]); i++)
        free(indexes[i]->slots);
    for (uint32_t i = 0; i < p->nblocks; i++)
        free(p->blocks[i]);
    free(p->blocks);
    free(p);
}

void pyprof_profile_totals(const struct pyprof_profile *p, struct pyprof_profile_totals *out)
{
    struct pyprof_profile *q = (struct pyprof_profile *)p;
    out->samples = atomic_load_explicit(&q->samples, memory_order_relaxed);
    out->weight = atomic_load_explicit(&q->weight, memory_order_relaxed);
    out->truncated = atomic_load_explicit(&q->truncated, memory_order_relaxed);
    out->stacks = table_len(&p->stacks) - 1;   /* the [truncated] stack is not a real one */
    out->bytes = sizeof(*p) + table_bytes(&p->strings) + table_bytes(&p->functions) +
                 table_bytes(&p->locations) + table_bytes(&p->threads) +
                 table_bytes(&p->stacks) + table_bytes(&p->frames) +
                 atomic_load_explicit(&q->index_bytes, memory_order_relaxed) +
                 atomic_load_explicit(&q->arena_bytes, memory_order_relaxed) +
                 p->max_blocks * sizeof(char *);
}

/* ---- pprof ------------------------------------------------------------------------------ */

/* Extra strings the pprof message needs beyond the profile's own, appended after them. */
enum extra {
    X_SAMPLES, X_COUNT, X_WEIGHT, X_NANOSECONDS, X_THREAD_ID, X_THREAD_NAME, X_GIL, X_GC, X_IDLE,
    X_COMMENT0
};

/* A consistent cut of the live tables: counts are read referrers first (stacks, then
 * locations, functions, strings), so that everything a counted entry refers to, published
 * before it, is counted too. */
struct builder {
    Perftools__Profiles__Profile *prof;
    uint32_t nstacks, nlocations, nfunctions;
    uint32_t nstrings;   /* the profile's own strings; extras follow */
};

static int64_t extra(const struct builder *b, enum extra x)
{
    return (int64_t)b->nstrings + x;
}

static int build_strings(struct builder *b, const struct pyprof_profile *p,
                         const struct pyprof_profile_meta *meta)
{
    const char *extras[X_COMMENT0 + 8] = {"samples", "count", meta->mode, "nanoseconds",
                                          "thread_id", "thread_name", "gil", "gc", "idle"};
    size_t ncomments = 0;
    while (ncomments < 8 && meta->comments[ncomments])
        extras[X_COMMENT0 + ncomments] = meta->comments[ncomments], ncomments++;
    size_t nextra = X_COMMENT0 + ncomments;
    Perftools__Profiles__Profile *prof = b->prof;

    prof->string_table = malloc((b->nstrings + nextra) * sizeof(char *));
    prof->comment = malloc((ncomments + 1) * sizeof(int64_t));
    if (prof->string_table == NULL || prof->comment == NULL)
        return -ENOMEM;
    for (uint32_t i = 0; i < b->nstrings; i++)
        prof->string_table[i] = (char *)((const struct string_entry *)table_at(&p->strings, i))->s;
    for (size_t i = 0; i < nextra; i++)
        prof->string_table[b->nstrings + i] = (char *)extras[i];
    prof->n_string_table = b->nstrings + nextra;
    for (size_t i = 0; i < ncomments; i++)
        prof->comment[i] = extra(b, X_COMMENT0) + (int64_t)i;
    prof->n_comment = ncomments;
    return 0;
}

static int build_functions(struct builder *b, const struct pyprof_profile *p)
{
    Perftools__Profiles__Profile *prof = b->prof;
    uint32_t n = b->nfunctions;
    Perftools__Profiles__Function *fns = calloc(n ? n : 1, sizeof(*fns));
    prof->function = malloc((n ? n : 1) * sizeof(*prof->function));
    if (fns == NULL || prof->function == NULL) {
        free(fns);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++) {
        const struct function_entry *e = table_at(&p->functions, i);
        perftools__profiles__function__init(&fns[i]);
        fns[i].id = i + 1;
        fns[i].name = fns[i].system_name = e->name;
        fns[i].filename = e->filename;
        fns[i].start_line = e->start_line;
        prof->function[i] = &fns[i];
    }
    prof->n_function = n;
    return 0;
}

static int build_locations(struct builder *b, const struct pyprof_profile *p)
{
    Perftools__Profiles__Profile *prof = b->prof;
    uint32_t n = b->nlocations;
    size_t m = n ? n : 1;
    Perftools__Profiles__Location *locs = calloc(m, sizeof(*locs));
    Perftools__Profiles__Line *lines = calloc(m, sizeof(*lines));
    Perftools__Profiles__Line **line_ptrs = calloc(m, sizeof(*line_ptrs));
    prof->location = malloc(m * sizeof(*prof->location));
    if (!locs || !lines || !line_ptrs || !prof->location) {
        free(locs), free(lines), free(line_ptrs);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++) {
        const struct location_entry *e = table_at(&p->locations, i);
        perftools__profiles__location__init(&locs[i]);
        perftools__profiles__line__init(&lines[i]);
        lines[i].function_id = e->function + 1;
        lines[i].line = e->line;
        line_ptrs[i] = &lines[i];
        locs[i].id = i + 1;
        locs[i].n_line = 1;
        locs[i].line = &line_ptrs[i];
        prof->location[i] = &locs[i];
    }
    prof->n_location = n;
    return 0;
}

#define MAX_LABELS 5

static void sample_labels(const struct builder *b, const struct pyprof_profile *p,
                          const struct stack_entry *e, Perftools__Profiles__Label *labels,
                          Perftools__Profiles__Label **ptrs, size_t *n)
{
    const struct thread_entry *t = table_at(&p->threads, e->thread);
    *n = 0;
    for (int i = 0; i < MAX_LABELS; i++)
        perftools__profiles__label__init(&labels[i]);
    if (t->tid != 0) {
        labels[*n].key = extra(b, X_THREAD_ID);
        labels[*n].num = t->tid;
        ptrs[*n] = &labels[*n], (*n)++;
        labels[*n].key = extra(b, X_THREAD_NAME);
        labels[*n].str = t->name;
        ptrs[*n] = &labels[*n], (*n)++;
    }
    static const struct { uint32_t flag; enum extra key; } flags[] = {
        {PYPROF_SAMPLE_GIL, X_GIL}, {PYPROF_SAMPLE_GC, X_GC}, {PYPROF_SAMPLE_IDLE, X_IDLE}};
    for (size_t i = 0; i < 3; i++) {
        if (!(e->flags & flags[i].flag))
            continue;
        labels[*n].key = extra(b, flags[i].key);
        labels[*n].num = 1;
        ptrs[*n] = &labels[*n], (*n)++;
    }
}

/* One allocation per sample keeps pyprof_pprof_free() simple: the Sample, its values,
 * location ids, labels and label pointers live in one block. */
struct sample_block {
    Perftools__Profiles__Sample sample;
    int64_t values[2];
    Perftools__Profiles__Label labels[MAX_LABELS];
    Perftools__Profiles__Label *label_ptrs[MAX_LABELS];
    uint64_t location_ids[];
};

static int build_samples(struct builder *b, const struct pyprof_profile *p)
{
    Perftools__Profiles__Profile *prof = b->prof;
    uint32_t n = b->nstacks;
    prof->sample = calloc(n ? n : 1, sizeof(*prof->sample));
    if (prof->sample == NULL)
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        const struct stack_entry *e = table_at(&p->stacks, i);
        uint64_t cnt = atomic_load_explicit(&((struct stack_entry *)e)->count, memory_order_relaxed);
        if (cnt == 0)
            continue;
        struct sample_block *s = malloc(sizeof(*s) + e->depth * sizeof(uint64_t));
        if (s == NULL)
            return -ENOMEM;
        perftools__profiles__sample__init(&s->sample);
        const uint32_t *frames = e->depth ? table_at(&p->frames, e->frames) : NULL;
        for (uint32_t d = 0; d < e->depth; d++)
            s->location_ids[d] = (uint64_t)frames[d] + 1;
        s->values[0] = (int64_t)cnt;
        s->values[1] = (int64_t)atomic_load_explicit(&((struct stack_entry *)e)->weight,
                                                     memory_order_relaxed);
        s->sample.n_location_id = e->depth;
        s->sample.location_id = s->location_ids;
        s->sample.n_value = 2;
        s->sample.value = s->values;
        sample_labels(b, p, e, s->labels, s->label_ptrs, &s->sample.n_label);
        s->sample.label = s->label_ptrs;
        prof->sample[prof->n_sample++] = &s->sample;
    }
    return 0;
}

static int build_types(struct builder *b, const struct pyprof_profile_meta *meta)
{
    Perftools__Profiles__Profile *prof = b->prof;
    Perftools__Profiles__ValueType *types = calloc(3, sizeof(*types));
    prof->sample_type = malloc(2 * sizeof(*prof->sample_type));
    if (types == NULL || prof->sample_type == NULL) {
        free(types);
        return -ENOMEM;
    }
    for (int i = 0; i < 3; i++)
        perftools__profiles__value_type__init(&types[i]);
    types[0].type = extra(b, X_SAMPLES);
    types[0].unit = extra(b, X_COUNT);
    types[1].type = types[2].type = extra(b, X_WEIGHT);
    types[1].unit = types[2].unit = extra(b, X_NANOSECONDS);
    prof->sample_type[0] = &types[0];
    prof->sample_type[1] = &types[1];
    prof->n_sample_type = 2;
    prof->period_type = &types[2];
    prof->period = (int64_t)meta->interval_ns;
    prof->time_nanos = (int64_t)meta->start_ns;
    prof->duration_nanos = (int64_t)meta->duration_ns;
    prof->default_sample_type = extra(b, X_WEIGHT);
    return 0;
}

int pyprof_profile_to_pprof(const struct pyprof_profile *p, const struct pyprof_profile_meta *meta,
                            Perftools__Profiles__Profile **out)
{
    struct builder b = {0};
    b.prof = calloc(1, sizeof(*b.prof));
    if (b.prof == NULL)
        return -ENOMEM;
    perftools__profiles__profile__init(b.prof);
    b.nstacks = table_len(&p->stacks);
    b.nlocations = table_len(&p->locations);
    b.nfunctions = table_len(&p->functions);
    b.nstrings = table_len(&p->strings);
    int rc = build_samples(&b, p);
    if (rc == 0) rc = build_locations(&b, p);
    if (rc == 0) rc = build_functions(&b, p);
    if (rc == 0) rc = build_strings(&b, p, meta);
    if (rc == 0) rc = build_types(&b, meta);
    if (rc != 0) {
        pyprof_pprof_free(b.prof);
        return rc;
    }
    *out = b.prof;
    return 0;
}

void pyprof_pprof_free(Perftools__Profiles__Profile *prof)
{
    if (prof == NULL)
        return;
    for (size_t i = 0; i < prof->n_sample; i++)
        free(prof->sample[i]);   /* the sample is the first member of its block */
    free(prof->sample);
    if (prof->n_location > 0) {
        Perftools__Profiles__Line **line_ptrs = prof->location[0]->line;
        free(line_ptrs[0]);   /* the lines array */
        free(line_ptrs);
        free(prof->location[0]);
    }
    free(prof->location);
    if (prof->n_function > 0)
        free(prof->function[0]);
    free(prof->function);
    if (prof->n_sample_type > 0)
        free(prof->sample_type[0]);
    free(prof->sample_type);
    free(prof->string_table);
    free(prof->comment);
    free(prof);
}
