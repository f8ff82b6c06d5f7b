#include "render.h"

#include <stdio.h>
#include <stdlib.h>

#include "flamegraph.h"
#include "output.h"
#include "pbuild.h"
#include "top.h"

void fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: property failed: %s\n", file, line, what);
    abort();
}

/* One stream for the renderers that take a FILE, opened once: a fuzzer runs millions of
 * inputs and a file per input would only measure the kernel. */
static FILE *sink(void)
{
    static FILE *null;
    if (null == NULL && (null = fopen("/dev/null", "w")) == NULL)
        abort();
    return null;
}

/* `pyprofctl convert IN -o OUT`: pyprof_output_write is the whole path, file included. */
static void write_formats(const Perftools__Profiles__Profile *p)
{
    static const struct pyprof_render_options plain = {{0, 0, 0}, 0}, all = {{1, 1, 1}, 1};
    char err[512];
    for (enum pyprof_format f = PYPROF_FORMAT_COLLAPSED; f <= PYPROF_FORMAT_SVG; f++) {
        pyprof_output_write(p, f, &plain, "/dev/null", err, sizeof(err));
        /* The options change nothing in pprof, and deflate is the slow part. */
        if (f != PYPROF_FORMAT_PPROF && f != PYPROF_FORMAT_PPROF_RAW)
            pyprof_output_write(p, f, &all, "/dev/null", err, sizeof(err));
    }
}

/* `pyprofctl diff P P -o diff.svg`: the table and the differential flamegraph. */
static void diff(const Perftools__Profiles__Profile *p)
{
    struct pyprof_top *before = pyprof_top_new(0), *after = pyprof_top_new(1);
    if (before && after && pyprof_top_update(before, p) == 0 && pyprof_top_update(after, p) == 0) {
        pyprof_top_diff_print(before, after, 20, sink());
        pyprof_top_print(after, 20, "fuzz", sink());
        struct pyprof_flamegraph_options fg = {{0, 0, 0}, "diff", 0, 0, p};
        pyprof_flamegraph_write(p, &fg, sink());
    }
    pyprof_top_free(before);
    pyprof_top_free(after);
}

/* `pyprofctl dump --all`: the profile merged under a root frame with a pid label. */
static void merge(const Perftools__Profiles__Profile *p)
{
    struct pyprof_pbuild *b = pyprof_pbuild_new("cpu", p->period);
    struct pyprof_pbuild_label pid = {"pid", NULL, 4242};
    if (b == NULL)
        return;
    pyprof_pbuild_append(b, p, "process 4242: fuzz", &pid, 1);
    Perftools__Profiles__Profile *merged = pyprof_pbuild_finish(b);
    if (merged != NULL) {
        struct pyprof_collapsed_options o = {0, 1, 0};
        pyprof_collapsed_write(merged, &o, sink());
    }
    pyprof_pbuild_free_profile(merged);
}

void fuzz_render(const Perftools__Profiles__Profile *p)
{
    write_formats(p);
    diff(p);
    merge(p);
}
