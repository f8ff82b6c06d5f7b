#include "top.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "pprof_find.h"

/* Per function ("name (file)"): cumulative self and total values of the last snapshot,
 * and their growth over the last window. */
struct entry {
    char *name;
    int64_t self, total, dself, dtotal;
};

struct pyprof_top {
    int samples;
    json_t *index;          /* name -> position in entries */
    struct entry *entries;
    size_t n, cap;
    int64_t window_total;   /* all samples' growth over the window */
    int64_t last_total;
};

struct pyprof_top *pyprof_top_new(int samples)
{
    struct pyprof_top *t = calloc(1, sizeof(*t));
    if (t == NULL || (t->index = json_object()) == NULL) {
        free(t);
        return NULL;
    }
    t->samples = samples;
    return t;
}

void pyprof_top_free(struct pyprof_top *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->entries[i].name);
    free(t->entries);
    json_decref(t->index);
    free(t);
}

static struct entry *entry_for(struct pyprof_top *t, const char *name)
{
    json_t *known = json_object_get(t->index, name);
    if (known)
        return &t->entries[json_integer_value(known)];
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        struct entry *e = realloc(t->entries, cap * sizeof(*e));
        if (e == NULL)
            return NULL;
        t->entries = e;
        t->cap = cap;
    }
    struct entry *e = &t->entries[t->n];
    memset(e, 0, sizeof(*e));
    if ((e->name = strdup(name)) == NULL)
        return NULL;
    json_object_set_new(t->index, name, json_integer((json_int_t)t->n));
    t->n++;
    return e;
}

/* "qualname (file)" of a location's innermost line. */
static int function_name(const Perftools__Profiles__Profile *p, uint64_t location, char *buf,
                         size_t size)
{
    const Perftools__Profiles__Location *loc = pyprof_pprof_location(p, location);
    if (loc == NULL || loc->n_line == 0)
        return -EINVAL;
    const Perftools__Profiles__Function *fn = pyprof_pprof_function(p, loc->line[0]->function_id);
    const char *name = fn ? pyprof_pprof_string(p, fn->name) : NULL;
    const char *file = fn ? pyprof_pprof_string(p, fn->filename) : NULL;
    if (name == NULL || file == NULL)
        return -EINVAL;
    snprintf(buf, size, file[0] ? "%s (%s)" : "%s", name, file);
    return 0;
}

/* Add one sample's value: self to its leaf, total once to every distinct function. */
static int add_sample(struct pyprof_top *t, const Perftools__Profiles__Profile *p,
                      const Perftools__Profiles__Sample *s, json_t *seen)
{
    if (s->n_value != p->n_sample_type || s->n_value < 1)
        return -EINVAL;
    int64_t v = t->samples || s->n_value < 2 ? s->value[0] : s->value[1] / 1000;
    char name[1024];
    if (v <= 0)
        return 0;   /* as in the renderers: nothing to show */
    /* Self and total values are parts of the total: checking it covers them. */
    if (__builtin_add_overflow(t->last_total, v, &t->last_total))
        return -EINVAL;
    json_object_clear(seen);
    for (size_t i = 0; i < s->n_location_id; i++) {
        if (function_name(p, s->location_id[i], name, sizeof(name)) != 0)
            return -EINVAL;
        struct entry *e = entry_for(t, name);
        if (e == NULL)
            return -ENOMEM;
        if (i == 0)
            e->self += v;
        if (json_object_get(seen, name) == NULL) {
            e->total += v;
            json_object_set_new(seen, name, json_true());
        }
    }
    return 0;
}

int pyprof_top_update(struct pyprof_top *t, const Perftools__Profiles__Profile *p)
{
    int64_t previous_total = t->last_total;
    /* Keep the previous snapshot's values to difference against. */
    for (size_t i = 0; i < t->n; i++) {
        t->entries[i].dself = -t->entries[i].self;
        t->entries[i].dtotal = -t->entries[i].total;
        t->entries[i].self = t->entries[i].total = 0;
    }
    t->last_total = 0;
    json_t *seen = json_object();
    int rc = seen ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < p->n_sample; i++)
        rc = add_sample(t, p, p->sample[i], seen);
    json_decref(seen);
    int reset = t->last_total < previous_total;   /* someone reset the profile meanwhile */
    t->window_total = reset ? t->last_total : t->last_total - previous_total;
    for (size_t i = 0; i < t->n; i++) {
        struct entry *e = &t->entries[i];
        e->dself = reset ? e->self : e->dself + e->self;
        e->dtotal = reset ? e->total : e->dtotal + e->total;
    }
    return rc;
}

static int by_self(const void *a, const void *b)
{
    const struct entry *x = *(const struct entry *const *)a, *y = *(const struct entry *const *)b;
    if (x->dself != y->dself)
        return x->dself < y->dself ? 1 : -1;
    return x->dtotal < y->dtotal ? 1 : x->dtotal > y->dtotal ? -1 : 0;
}

void pyprof_top_print(const struct pyprof_top *t, int rows, const char *heading, FILE *out)
{
    const struct entry **order = malloc((t->n ? t->n : 1) * sizeof(*order));
    if (order == NULL)
        return;
    for (size_t i = 0; i < t->n; i++)
        order[i] = &t->entries[i];
    qsort(order, t->n, sizeof(*order), by_self);
    double total = t->window_total > 0 ? (double)t->window_total : 1.0;
    double scale = t->samples ? 1.0 : 1e-3;
    fprintf(out, "%s\n\n%7s %7s %10s %10s  %s\n", heading, "%Self", "%Total",
            t->samples ? "Self" : "Self(ms)", t->samples ? "Total" : "Total(ms)", "Function");
    int shown = 0;
    for (size_t i = 0; i < t->n && shown < rows; i++) {
        const struct entry *e = order[i];
        if (e->dtotal <= 0)
            continue;
        fprintf(out, "%6.1f%% %6.1f%% %10.1f %10.1f  %s\n", 100.0 * (double)e->dself / total,
                100.0 * (double)e->dtotal / total, (double)e->dself * scale,
                (double)e->dtotal * scale, e->name);
        shown++;
    }
    if (shown == 0)
        fprintf(out, "(no samples in this window: is the process busy, or stopped?)\n");
    free(order);
}

struct change {
    const char *name;
    double before, after;   /* self shares, percent */
};

static int by_change(const void *a, const void *b)
{
    const struct change *x = a, *y = b;
    double dx = x->after - x->before, dy = y->after - y->before;
    dx = dx < 0 ? -dx : dx;
    dy = dy < 0 ? -dy : dy;
    return dx < dy ? 1 : dx > dy ? -1 : strcmp(x->name, y->name);
}

static double self_share(const struct pyprof_top *t, const char *name)
{
    json_t *known = json_object_get(t->index, name);
    double total = t->last_total > 0 ? (double)t->last_total : 1.0;
    return known ? 100.0 * (double)t->entries[json_integer_value(known)].self / total : 0.0;
}

void pyprof_top_diff_print(const struct pyprof_top *before, const struct pyprof_top *after,
                           int rows, FILE *out)
{
    size_t n = 0, cap = before->n + after->n;
    struct change *c = malloc((cap ? cap : 1) * sizeof(*c));
    if (c == NULL)
        return;
    for (size_t i = 0; i < after->n; i++)
        c[n++] = (struct change){after->entries[i].name, 0, 0};
    for (size_t i = 0; i < before->n; i++)
        if (json_object_get(after->index, before->entries[i].name) == NULL)
            c[n++] = (struct change){before->entries[i].name, 0, 0};
    for (size_t i = 0; i < n; i++) {
        c[i].before = self_share(before, c[i].name);
        c[i].after = self_share(after, c[i].name);
    }
    qsort(c, n, sizeof(*c), by_change);
    fprintf(out, "%8s %8s %8s  %s\n", "before", "after", "change", "Function (self share)");
    for (size_t i = 0; i < n && (int)i < rows; i++) {
        if (c[i].after == c[i].before)
            break;
        fprintf(out, "%7.2f%% %7.2f%% %+7.2f%%  %s\n", c[i].before, c[i].after,
                c[i].after - c[i].before, c[i].name);
    }
    free(c);
}
