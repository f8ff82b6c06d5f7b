/*
 * Writing a profile out in the format a user asked for, by name (-f) or by the output
 * file's extension. The profile is pprof's message, as the agent sends it.
 */
#ifndef PYPROF_CTL_OUTPUT_H
#define PYPROF_CTL_OUTPUT_H

#include <stddef.h>
#include <stdint.h>

#include "collapsed.h"
#include "profile.pb-c.h"

enum pyprof_format {
    PYPROF_FORMAT_COLLAPSED = 1,
    PYPROF_FORMAT_PPROF,       /* gzip-compressed profile.proto */
    PYPROF_FORMAT_PPROF_RAW,   /* uncompressed */
    PYPROF_FORMAT_SPEEDSCOPE,  /* speedscope's JSON file format */
    PYPROF_FORMAT_SVG,         /* interactive flamegraph */
};

/* How to render, beyond the format. */
struct pyprof_render_options {
    struct pyprof_collapsed_options stacks;   /* functions, threads, samples */
    int icicle;                               /* svg: root at the top */
};

/* "collapsed", "pprof", "pprof-raw", "speedscope", "svg" -> format; 0 when unknown. */
enum pyprof_format pyprof_format_by_name(const char *name);
/* From a file name's extension; collapsed for anything unknown. */
enum pyprof_format pyprof_format_by_path(const char *path);

/* Write to `path`, or stdout when path is NULL or "-". 0 or -errno; a one-line reason in
 * err. */
int pyprof_output_write(const Perftools__Profiles__Profile *profile, enum pyprof_format format,
                        const struct pyprof_render_options *options, const char *path,
                        char *err, size_t errlen);

/* Read a profile file that pyprof wrote: pprof (gzip-compressed or not) or collapsed
 * stacks. 0 with *out (free with pyprof_output_free), or -errno with a one-line reason. */
int pyprof_output_read(const char *path, Perftools__Profiles__Profile **out, char *err,
                       size_t errlen);
/* The same from bytes in memory (the file's content, compressed or not); `name` is used in
 * the reason only. */
int pyprof_output_read_buffer(const uint8_t *data, size_t len, const char *name,
                              Perftools__Profiles__Profile **out, char *err, size_t errlen);
void pyprof_output_free(Perftools__Profiles__Profile *profile);

#endif
