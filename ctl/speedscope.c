#include "speedscope.h"

#include "pprof_find.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

struct ctx {
    const Perftools__Profiles__Profile *p;
    const struct pyprof_collapsed_options *o;
    json_t *frames;       /* the shared frame table */
    json_t *frame_index;  /* "name\tfile\tline" -> index in frames */
    json_t *profiles;     /* thread key -> {"samples": [...], "weights": [...], ...} */
};

static const char *str(const struct ctx *c, int64_t i)
{
    return pyprof_pprof_string(c->p, i);
}

/* Index of the frame for one pprof line in the shared table, added if new; -1 if invalid. */
static json_int_t frame_for(struct ctx *c, const Perftools__Profiles__Line *line)
{
    const Perftools__Profiles__Function *fn = pyprof_pprof_function(c->p, line->function_id);
    const char *name = fn ? str(c, fn->name) : NULL, *file = fn ? str(c, fn->filename) : NULL;
    if (name == NULL || file == NULL)
        return -1;
    long long lineno = c->o->functions ? fn->start_line : line->line;
    char *key = NULL;
    if (asprintf(&key, "%s\t%s\t%lld", name, file, lineno) < 0)
        return -1;
    json_t *known = json_object_get(c->frame_index, key);
    json_int_t index;
    if (known != NULL) {
        index = json_integer_value(known);
    } else {
        index = (json_int_t)json_array_size(c->frames);
        json_t *frame = file[0] ? json_pack("{s:s, s:s, s:I}", "name", name, "file", file,
                                            "line", (json_int_t)lineno)
                                : json_pack("{s:s}", "name", name);
        json_array_append_new(c->frames, frame);
        json_object_set_new(c->frame_index, key, json_integer(index));
    }
    free(key);
    return index;
}

static json_t *thread_profile(struct ctx *c, const Perftools__Profiles__Sample *s)
{
    const char *name = NULL;
    long long tid = 0;
    for (size_t i = 0; i < s->n_label; i++) {
        const char *key = str(c, s->label[i]->key);
        if (key && strcmp(key, "thread_name") == 0)
            name = str(c, s->label[i]->str);
        else if (key && strcmp(key, "thread_id") == 0)
            tid = (long long)s->label[i]->num;
    }
    char title[160];
    snprintf(title, sizeof(title), "%s (%lld)", name ? name : "thread", tid);
    json_t *prof = json_object_get(c->profiles, title);
    if (prof == NULL) {
        prof = json_pack("{s:s, s:s, s:s, s:i, s:I, s:[], s:[]}", "type", "sampled", "name",
                         title, "unit", c->o->samples ? "none" : "microseconds", "startValue",
                         0, "endValue", (json_int_t)0, "samples", "weights");
        json_object_set_new(c->profiles, title, prof);
    }
    return prof;
}

static int add_sample(struct ctx *c, const Perftools__Profiles__Sample *s)
{
    if (s->n_value != c->p->n_sample_type || s->n_value < 1)
        return -EINVAL;
    int64_t value = c->o->samples || s->n_value < 2 ? s->value[0] : s->value[1] / 1000;
    if (value <= 0 || s->n_location_id == 0)
        return 0;
    json_t *stack = json_array();
    for (size_t i = s->n_location_id; i-- > 0;) {   /* speedscope wants the root first */
        const Perftools__Profiles__Location *loc = pyprof_pprof_location(c->p, s->location_id[i]);
        if (loc == NULL || loc->n_line > PYPROF_MAX_STACK_FRAMES - json_array_size(stack)) {
            json_decref(stack);
            return -EINVAL;
        }
        for (size_t j = loc->n_line; j-- > 0;) {
            json_int_t f = frame_for(c, loc->line[j]);
            if (f < 0) {
                json_decref(stack);
                return -EINVAL;
            }
            json_array_append_new(stack, json_integer(f));
        }
    }
    json_t *prof = thread_profile(c, s);
    json_t *end = json_object_get(prof, "endValue");
    json_int_t total;
    if (__builtin_add_overflow(json_integer_value(end), value, &total)) {
        json_decref(stack);
        return -EINVAL;   /* values no profiler measured */
    }
    json_array_append_new(json_object_get(prof, "samples"), stack);
    json_array_append_new(json_object_get(prof, "weights"), json_integer(value));
    json_integer_set(end, total);
    return 0;
}

static const char *comment(const struct ctx *c, const char *key)
{
    size_t klen = strlen(key);
    for (size_t i = 0; i < c->p->n_comment; i++) {
        const char *s = str(c, c->p->comment[i]);
        if (s && strncmp(s, key, klen) == 0 && s[klen] == '=')
            return s + klen + 1;
    }
    return NULL;
}

int pyprof_speedscope_write(const Perftools__Profiles__Profile *p,
                            const struct pyprof_collapsed_options *o, FILE *out)
{
    struct ctx c = {p, o, json_array(), json_object(), json_object()};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < p->n_sample; i++)
        rc = add_sample(&c, p->sample[i]);
    if (rc == 0) {
        json_t *list = json_array();
        const char *key;
        json_t *value;
        json_object_foreach(c.profiles, key, value)
            json_array_append(list, value);
        const char *cmd = comment(&c, "cmdline"), *pid = comment(&c, "pid");
        char name[512];
        snprintf(name, sizeof(name), "pyprof %s%s%s", pid ? pid : "", pid ? ": " : "",
                 cmd ? cmd : "");
        json_t *doc = json_pack("{s:s, s:{s:O}, s:o, s:s, s:i, s:s}",
                                "$schema", "https://www.speedscope.app/file-format-schema.json",
                                "shared", "frames", c.frames, "profiles", list, "name", name,
                                "activeProfileIndex", 0, "exporter", "pyprof");
        if (doc == NULL || json_dumpf(doc, out, JSON_COMPACT) != 0)
            rc = doc ? -EIO : -ENOMEM;
        json_decref(doc);
    }
    json_decref(c.frames);
    json_decref(c.frame_index);
    json_decref(c.profiles);
    return rc;
}
