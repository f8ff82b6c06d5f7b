/*
 * What pyprofctl does with a profile once it has one (read from a file, or sent by an
 * agent): every output format, the differential flamegraph and `diff`'s table, and the
 * merge of `dump --all`. Shared by the fuzz targets; all output goes to /dev/null.
 */
#ifndef PYPROF_FUZZ_RENDER_H
#define PYPROF_FUZZ_RENDER_H

#include "profile.pb-c.h"

/* Results are not checked: refusing a hostile profile is fine, crashing is not. */
void fuzz_render(const Perftools__Profiles__Profile *p);

/* Abort (so that libFuzzer saves the input) when a property does not hold. */
#define FUZZ_CHECK(cond)                                                                   \
    do {                                                                                   \
        if (!(cond))                                                                       \
            fuzz_fail(__FILE__, __LINE__, #cond);                                          \
    } while (0)
void fuzz_fail(const char *file, int line, const char *what) __attribute__((noreturn));

#endif
