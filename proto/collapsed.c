#include "collapsed.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct lookup {
    const Perftools__Profiles__Profile *p;
    /* id -> index; pprof ids are arbitrary, ours are dense from 1. */
    uint32_t *function_index, *location_index;
    uint64_t max_function_id, max_location_id;
};

static const char *str(const struct lookup *l, int64_t index)
{
    if (index < 0 || (uint64_t)index >= l->p->n_string_table)
        return NULL;
    return l->p->string_table[index];
}

static int build_index(uint32_t **out, uint64_t *max_id, size_t n, uint64_t (*id_of)(const void *, size_t),
                       const void *items)
{
    uint64_t max = 0;
    for (size_t i = 0; i < n; i++)
        if (id_of(items, i) > max)
            max = id_of(items, i);
    if (max > 4 * (uint64_t)n + 1024)
        return -EINVAL;   /* sparse ids beyond reason: not worth a huge table */
    uint32_t *idx = malloc((size_t)(max + 1) * sizeof(uint32_t));
    if (idx == NULL)
        return -ENOMEM;
    memset(idx, 0xff, (size_t)(max + 1) * sizeof(uint32_t));
    for (size_t i = 0; i < n; i++)
        idx[id_of(items, i)] = (uint32_t)i;
    *out = idx;
    *max_id = max;
    return 0;
}

static uint64_t function_id(const void *items, size_t i)
{
    return ((Perftools__Profiles__Function *const *)items)[i]->id;
}

static uint64_t location_id(const void *items, size_t i)
{
    return ((Perftools__Profiles__Location *const *)items)[i]->id;
}

static const Perftools__Profiles__Location *location(const struct lookup *l, uint64_t id)
{
    if (id > l->max_location_id || l->location_index[id] == UINT32_MAX)
        return NULL;
    return l->p->location[l->location_index[id]];
}

static const Perftools__Profiles__Function *function(const struct lookup *l, uint64_t id)
{
    if (id > l->max_function_id || l->function_index[id] == UINT32_MAX)
        return NULL;
    return l->p->function[l->function_index[id]];
}

/* Folded-stack syntax reserves ';' between frames and the last space before the value;
 * newlines would break lines. Replace them inside names. */
static int put_clean(FILE *out, const char *s)
{
    for (; *s; s++) {
        char ch = (*s == ';' || *s == '\n' || *s == '\r') ? '_' : *s;
        if (fputc(ch, out) == EOF)
            return -EIO;
    }
    return 0;
}

static int put_frame(const struct lookup *l, const Perftools__Profiles__Line *line,
                     const struct pyprof_collapsed_options *o, FILE *out)
{
    const Perftools__Profiles__Function *fn = function(l, line->function_id);
    const char *name = fn ? str(l, fn->name) : NULL;
    const char *file = fn ? str(l, fn->filename) : NULL;
    if (name == NULL || file == NULL)
        return -EINVAL;
    if (put_clean(out, name) != 0)
        return -EIO;
    if (file[0] == '\0') {
        /* Pseudo-frames such as [idle] have no file. A name that would read back as
         * "name (file:line)" keeps an empty location, so that it reads back as itself. */
        if (line->line > 0 && !o->functions)
            return fprintf(out, " (:%lld)", (long long)line->line) < 0 ? -EIO : 0;
        if (name[0] != '\0' && name[strlen(name) - 1] == ')' && strstr(name, " (") != NULL)
            return fputs(" ()", out) == EOF ? -EIO : 0;
        return 0;
    }
    if (fputs(" (", out) == EOF || put_clean(out, file) != 0)
        return -EIO;
    if (o->functions || line->line <= 0)
        return fputc(')', out) == EOF ? -EIO : 0;
    return fprintf(out, ":%lld)", (long long)line->line) < 0 ? -EIO : 0;
}

static int put_thread_root(const struct lookup *l, const Perftools__Profiles__Sample *s, FILE *out)
{
    const char *name = NULL;
    long long tid = 0;
    for (size_t i = 0; i < s->n_label; i++) {
        const char *key = str(l, s->label[i]->key);
        if (key && strcmp(key, "thread_name") == 0)
            name = str(l, s->label[i]->str);
        else if (key && strcmp(key, "thread_id") == 0)
            tid = (long long)s->label[i]->num;
    }
    if (name == NULL && tid == 0)
        return 0;
    if (put_clean(out, name ? name : "thread") != 0 || fprintf(out, " (%lld);", tid) < 0)
        return -EIO;
    return 0;
}

/* Render one sample's stack (without its value) into `out`. 1 when the sample has nothing
 * to show, 0 when rendered, -errno on error. */
static int put_sample(const struct lookup *l, const Perftools__Profiles__Sample *s,
                      const struct pyprof_collapsed_options *o, int64_t *value, FILE *out)
{
    const Perftools__Profiles__Profile *p = l->p;
    if (s->n_value != p->n_sample_type || s->n_value < 1)
        return -EINVAL;
    *value = o->samples || s->n_value < 2 ? s->value[0] : s->value[1] / 1000;
    if (*value <= 0 || s->n_location_id == 0)
        return 1;
    if (o->threads && put_thread_root(l, s, out) != 0)
        return -EIO;
    size_t frames = 0;
    /* pprof lists the leaf first; folded stacks start at the root. A location with several
     * lines (inlining) lists its innermost line first too. */
    for (size_t i = s->n_location_id; i-- > 0;) {
        const Perftools__Profiles__Location *loc = location(l, s->location_id[i]);
        if (loc == NULL || loc->n_line > PYPROF_MAX_STACK_FRAMES - frames)
            return -EINVAL;
        for (size_t j = loc->n_line; j-- > 0;) {
            if (frames++ > 0 && fputc(';', out) == EOF)
                return -EIO;
            int rc = put_frame(l, loc->line[j], o, out);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

/* Samples that differ only in labels (GIL held or not, say) fold into the same line:
 * render every line, sort, and add up equal neighbours. */
struct folded {
    char *stack;
    int64_t value;
};

static int folded_compare(const void *a, const void *b)
{
    return strcmp(((const struct folded *)a)->stack, ((const struct folded *)b)->stack);
}

static int render_all(const struct lookup *l, const struct pyprof_collapsed_options *o,
                      struct folded *lines, size_t *n)
{
    *n = 0;
    for (size_t i = 0; i < l->p->n_sample; i++) {
        char *text = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&text, &len);
        if (mem == NULL)
            return -ENOMEM;
        int rc = put_sample(l, l->p->sample[i], o, &lines[*n].value, mem);
        if (fclose(mem) != 0 && rc == 0)
            rc = -ENOMEM;
        if (rc != 0) {
            free(text);
            if (rc < 0)
                return rc;
            continue;
        }
        lines[(*n)++].stack = text;
    }
    return 0;
}

static int write_folded(struct folded *lines, size_t n, FILE *out)
{
    qsort(lines, n, sizeof(*lines), folded_compare);
    for (size_t i = 0; i < n;) {
        int64_t total = 0;
        size_t j = i;
        for (; j < n && strcmp(lines[j].stack, lines[i].stack) == 0; j++)
            if (__builtin_add_overflow(total, lines[j].value, &total))
                return -EINVAL;   /* values no profiler measured */
        if (fprintf(out, "%s %lld\n", lines[i].stack, (long long)total) < 0)
            return -EIO;
        i = j;
    }
    return 0;
}

int pyprof_collapsed_write(const Perftools__Profiles__Profile *p,
                           const struct pyprof_collapsed_options *o, FILE *out)
{
    struct lookup l = {.p = p};
    int rc = build_index(&l.function_index, &l.max_function_id, p->n_function, function_id,
                         p->function);
    if (rc == 0)
        rc = build_index(&l.location_index, &l.max_location_id, p->n_location, location_id,
                         p->location);
    size_t n = 0;
    struct folded *lines = rc == 0 ? calloc(p->n_sample + 1, sizeof(*lines)) : NULL;
    if (rc == 0 && lines == NULL)
        rc = -ENOMEM;
    if (rc == 0)
        rc = render_all(&l, o, lines, &n);
    if (rc == 0)
        rc = write_folded(lines, n, out);
    for (size_t i = 0; i < n; i++)
        free(lines[i].stack);
    free(lines);
    if (rc == 0 && fflush(out) != 0)
        rc = -EIO;
    free(l.function_index);
    free(l.location_index);
    return rc;
}
