#include "pbuild.h"

#include "pprof_find.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Growable array of pointers. */
struct vec {
    void **items;
    size_t n, cap;
};

static int vec_push(struct vec *v, void *item)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        void **items = realloc(v->items, cap * sizeof(*items));
        if (items == NULL)
            return -ENOMEM;
        v->items = items;
        v->cap = cap;
    }
    v->items[v->n++] = item;
    return 0;
}

struct pyprof_pbuild {
    struct vec strings, functions, locations, samples, comments;
    json_t *string_ids, *function_ids, *location_ids;   /* key -> id (json as a hash map) */
    Perftools__Profiles__Profile *prof;
    int failed;
};

static int64_t intern_string(struct pyprof_pbuild *b, const char *s)
{
    json_t *known = json_object_get(b->string_ids, s);
    if (known)
        return json_integer_value(known);
    char *copy = strdup(s);
    int64_t id = (int64_t)b->strings.n;
    if (copy == NULL || vec_push(&b->strings, copy) != 0) {
        free(copy);
        b->failed = 1;
        return 0;
    }
    json_object_set_new(b->string_ids, s, json_integer(id));
    return id;
}

static Perftools__Profiles__ValueType *value_type(struct pyprof_pbuild *b, const char *type,
                                                  const char *unit)
{
    Perftools__Profiles__ValueType *v = malloc(sizeof(*v));
    if (v == NULL) {
        b->failed = 1;
        return NULL;
    }
    perftools__profiles__value_type__init(v);
    v->type = intern_string(b, type);
    v->unit = intern_string(b, unit);
    return v;
}

struct pyprof_pbuild *pyprof_pbuild_new(const char *weight_type, int64_t period)
{
    struct pyprof_pbuild *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    b->prof = malloc(sizeof(*b->prof));
    b->string_ids = json_object();
    b->function_ids = json_object();
    b->location_ids = json_object();
    if (!b->prof || !b->string_ids || !b->function_ids || !b->location_ids) {
        free(b->prof);
        b->prof = NULL;
        pyprof_pbuild_free(b);
        return NULL;
    }
    perftools__profiles__profile__init(b->prof);
    intern_string(b, "");
    b->prof->sample_type = malloc(2 * sizeof(*b->prof->sample_type));
    if (b->prof->sample_type) {
        b->prof->sample_type[0] = value_type(b, "samples", "count");
        b->prof->sample_type[1] = value_type(b, weight_type, "nanoseconds");
        b->prof->n_sample_type = 2;
    }
    b->prof->period_type = value_type(b, weight_type, "nanoseconds");
    b->prof->period = period;
    b->prof->default_sample_type = intern_string(b, weight_type);
    if (b->failed || b->prof->sample_type == NULL || !b->prof->sample_type[0] ||
        !b->prof->sample_type[1] || !b->prof->period_type) {
        pyprof_pbuild_free(b);
        return NULL;
    }
    return b;
}

static void free_vec(struct vec *v, void (*fn)(void *))
{
    for (size_t i = 0; i < v->n; i++)
        fn(v->items[i]);
    free(v->items);
    v->items = NULL;
    v->n = v->cap = 0;
}

static void free_message(void *m)
{
    protobuf_c_message_free_unpacked(m, NULL);
}

void pyprof_pbuild_free(struct pyprof_pbuild *b)
{
    if (b == NULL)
        return;
    free_vec(&b->strings, free);
    free_vec(&b->functions, free_message);
    free_vec(&b->locations, free_message);
    free_vec(&b->samples, free_message);
    free(b->comments.items);
    json_decref(b->string_ids);
    json_decref(b->function_ids);
    json_decref(b->location_ids);
    if (b->prof)
        perftools__profiles__profile__free_unpacked(b->prof, NULL);
    free(b);
}

static uint64_t function_id(struct pyprof_pbuild *b, const char *name, const char *file,
                            int64_t start_line)
{
    char *key = NULL;
    if (asprintf(&key, "%s\t%s\t%lld", name, file, (long long)start_line) < 0)
        return 0;
    json_t *known = json_object_get(b->function_ids, key);
    uint64_t id = known ? (uint64_t)json_integer_value(known) : 0;
    if (id == 0) {
        Perftools__Profiles__Function *fn = malloc(sizeof(*fn));
        if (fn == NULL || vec_push(&b->functions, fn) != 0) {
            free(fn);
            free(key);
            return 0;
        }
        perftools__profiles__function__init(fn);
        fn->id = id = b->functions.n;
        fn->name = fn->system_name = intern_string(b, name);
        fn->filename = intern_string(b, file);
        fn->start_line = start_line;
        json_object_set_new(b->function_ids, key, json_integer((json_int_t)id));
    }
    free(key);
    return id;
}

uint64_t pyprof_pbuild_location(struct pyprof_pbuild *b, const char *name, const char *file,
                                int64_t start_line, int64_t line)
{
    uint64_t fn = function_id(b, name, file, start_line);
    char key[64];
    if (fn == 0)
        return 0;
    snprintf(key, sizeof(key), "%llu:%lld", (unsigned long long)fn, (long long)line);
    json_t *known = json_object_get(b->location_ids, key);
    if (known)
        return (uint64_t)json_integer_value(known);
    Perftools__Profiles__Location *loc = malloc(sizeof(*loc));
    Perftools__Profiles__Line *ln = malloc(sizeof(*ln));
    Perftools__Profiles__Line **lines = malloc(sizeof(*lines));
    if (!loc || !ln || !lines || vec_push(&b->locations, loc) != 0) {
        free(loc), free(ln), free(lines);
        return 0;
    }
    perftools__profiles__location__init(loc);
    perftools__profiles__line__init(ln);
    ln->function_id = fn;
    ln->line = line;
    lines[0] = ln;
    loc->id = b->locations.n;
    loc->line = lines;
    loc->n_line = 1;
    json_object_set_new(b->location_ids, key, json_integer((json_int_t)loc->id));
    return loc->id;
}

static int set_labels(struct pyprof_pbuild *b, Perftools__Profiles__Sample *s,
                      const struct pyprof_pbuild_label *labels, size_t n)
{
    if (n == 0)
        return 0;
    s->label = calloc(n, sizeof(*s->label));
    if (s->label == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        Perftools__Profiles__Label *l = malloc(sizeof(*l));
        if (l == NULL)
            return -ENOMEM;
        perftools__profiles__label__init(l);
        l->key = intern_string(b, labels[i].key);
        if (labels[i].str)
            l->str = intern_string(b, labels[i].str);
        else
            l->num = labels[i].num;
        s->label[s->n_label++] = l;
    }
    return 0;
}

int pyprof_pbuild_sample(struct pyprof_pbuild *b, const uint64_t *locations, size_t n,
                         int64_t count, int64_t weight_ns,
                         const struct pyprof_pbuild_label *labels, size_t nlabels)
{
    Perftools__Profiles__Sample *s = malloc(sizeof(*s));
    if (s == NULL || vec_push(&b->samples, s) != 0) {
        free(s);
        return -ENOMEM;
    }
    perftools__profiles__sample__init(s);
    s->location_id = malloc((n ? n : 1) * sizeof(uint64_t));
    s->value = malloc(2 * sizeof(int64_t));
    if (s->location_id == NULL || s->value == NULL)
        return -ENOMEM;
    memcpy(s->location_id, locations, n * sizeof(uint64_t));
    s->n_location_id = n;
    s->value[0] = count;
    s->value[1] = weight_ns;
    s->n_value = 2;
    return set_labels(b, s, labels, nlabels);
}

int pyprof_pbuild_comment(struct pyprof_pbuild *b, const char *text)
{
    return vec_push(&b->comments, (void *)(intptr_t)intern_string(b, text));
}

void pyprof_pbuild_times(struct pyprof_pbuild *b, int64_t time_nanos, int64_t duration_nanos)
{
    b->prof->time_nanos = time_nanos;
    b->prof->duration_nanos = duration_nanos;
}

/* Move a vector's items into a repeated field. */
#define TAKE(field, count, vec)                                                    \
    do {                                                                           \
        (field) = (void *)(vec).items;                                             \
        (count) = (vec).n;                                                         \
        (vec).items = NULL;                                                        \
        (vec).n = (vec).cap = 0;                                                   \
    } while (0)

Perftools__Profiles__Profile *pyprof_pbuild_finish(struct pyprof_pbuild *b)
{
    Perftools__Profiles__Profile *p = b->prof;
    if (b->failed) {
        pyprof_pbuild_free(b);
        return NULL;
    }
    p->comment = malloc((b->comments.n ? b->comments.n : 1) * sizeof(int64_t));
    if (p->comment == NULL) {
        pyprof_pbuild_free(b);
        return NULL;
    }
    for (size_t i = 0; i < b->comments.n; i++)
        p->comment[i] = (int64_t)(intptr_t)b->comments.items[i];
    p->n_comment = b->comments.n;
    TAKE(p->string_table, p->n_string_table, b->strings);
    TAKE(p->function, p->n_function, b->functions);
    TAKE(p->location, p->n_location, b->locations);
    TAKE(p->sample, p->n_sample, b->samples);
    b->prof = NULL;
    pyprof_pbuild_free(b);
    return p;
}

void pyprof_pbuild_free_profile(Perftools__Profiles__Profile *p)
{
    if (p)
        perftools__profiles__profile__free_unpacked(p, NULL);
}

/* ---- merging ------------------------------------------------------------------------------ */

/* Translate one source location (its innermost line: pyprof never inlines) to ours. */
static uint64_t copy_location(struct pyprof_pbuild *b, const Perftools__Profiles__Profile *src,
                              uint64_t id)
{
    const Perftools__Profiles__Location *loc = pyprof_pprof_location(src, id);
    if (loc == NULL || loc->n_line == 0)
        return 0;
    const Perftools__Profiles__Function *fn = pyprof_pprof_function(src, loc->line[0]->function_id);
    const char *name = fn ? pyprof_pprof_string(src, fn->name) : NULL;
    const char *file = fn ? pyprof_pprof_string(src, fn->filename) : NULL;
    if (name == NULL || file == NULL)
        return 0;
    return pyprof_pbuild_location(b, name, file, fn->start_line, loc->line[0]->line);
}

static int copy_sample(struct pyprof_pbuild *b, const Perftools__Profiles__Profile *src,
                       const Perftools__Profiles__Sample *s, uint64_t root,
                       const struct pyprof_pbuild_label *extra, size_t nextra)
{
    if (s->n_value != src->n_sample_type || s->n_value < 1)
        return -EINVAL;
    size_t n = s->n_location_id + (root ? 1 : 0), nlabels = s->n_label + nextra;
    uint64_t *locs = malloc((n ? n : 1) * sizeof(*locs));
    struct pyprof_pbuild_label *labels = calloc(nlabels ? nlabels : 1, sizeof(*labels));
    int rc = locs && labels ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < s->n_location_id; i++)
        if ((locs[i] = copy_location(b, src, s->location_id[i])) == 0)
            rc = -EINVAL;
    if (root && locs)
        locs[n - 1] = root;
    for (size_t i = 0; rc == 0 && i < s->n_label; i++) {
        labels[i].key = pyprof_pprof_string(src, s->label[i]->key);
        labels[i].str = s->label[i]->str ? pyprof_pprof_string(src, s->label[i]->str) : NULL;
        labels[i].num = s->label[i]->num;
        if (labels[i].key == NULL)
            rc = -EINVAL;
    }
    if (rc == 0) {
        memcpy(labels + s->n_label, extra, nextra * sizeof(*extra));
        rc = pyprof_pbuild_sample(b, locs, n, s->value[0], s->n_value > 1 ? s->value[1] : 0,
                                  labels, nlabels);
    }
    free(locs);
    free(labels);
    return rc;
}

int pyprof_pbuild_append(struct pyprof_pbuild *b, const Perftools__Profiles__Profile *src,
                         const char *root, const struct pyprof_pbuild_label *labels,
                         size_t nlabels)
{
    uint64_t root_loc = root ? pyprof_pbuild_location(b, root, "", 0, 0) : 0;
    if (root && root_loc == 0)
        return -ENOMEM;
    for (size_t i = 0; i < src->n_sample; i++) {
        int rc = copy_sample(b, src, src->sample[i], root_loc, labels, nlabels);
        if (rc != 0)
            return rc;
    }
    return 0;
}
