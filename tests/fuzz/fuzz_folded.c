/*
 * libFuzzer target: collapsed stacks (pyprof_folded_parse), whether or not they look like
 * it to pyprof_folded_detect, then everything pyprofctl writes from them. Collapsed ->
 * profile -> collapsed must be stable after one pass: `convert a.folded` twice in a row
 * gives the same text.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collapsed.h"
#include "folded.h"
#include "pbuild.h"
#include "render.h"

/* The collapsed text of a profile, malloc'd; NULL if the renderer refused it. */
static char *collapsed(const Perftools__Profiles__Profile *p, size_t *len)
{
    struct pyprof_collapsed_options o = {0, 0, 0};
    char *text = NULL;
    FILE *mem = open_memstream(&text, len);
    FUZZ_CHECK(mem != NULL);
    int rc = pyprof_collapsed_write(p, &o, mem);
    FUZZ_CHECK(fclose(mem) == 0);
    if (rc != 0) {
        free(text);
        return NULL;
    }
    return text;
}

/* The line an error names must be there and hold something: not an empty line. */
static int names_a_line(const uint8_t *data, size_t size, size_t line)
{
    size_t at = 0;
    for (size_t n = 1; n < line; n++) {
        const uint8_t *nl = memchr(data + at, '\n', size - at);
        if (nl == NULL)
            return 0;
        at = (size_t)(nl - data) + 1;
    }
    const uint8_t *nl = memchr(data + at, '\n', size - at);
    size_t len = (nl ? (size_t)(nl - data) : size) - at;
    return len > (len && data[at + len - 1] == '\r' ? 1u : 0u);
}

/* Lines that were folded together may add up past what one line can hold
 * (INT64_MAX nanoseconds, in microseconds): the one refusal a second parse may make.
 * `text` is the renderer's, NUL-terminated, every line ending in " VALUE\n". */
static int value_too_large(const char *text, size_t line)
{
    for (size_t n = 1; n < line; n++)
        text = strchr(text, '\n') + 1;
    const char *end = strchr(text, '\n'), *value = end;
    while (value > text && value[-1] != ' ')
        value--;
    return strtoll(value, NULL, 10) > INT64_MAX / 1000;
}

/* Parse and render again what the first parse rendered: the same text must come out. */
static void check_stable(const char *text, size_t len)
{
    Perftools__Profiles__Profile *p;
    size_t bad = 0, len2;
    int rc = pyprof_folded_parse(text, len, &p, &bad);
    FUZZ_CHECK(rc == 0 || (rc == -EINVAL && value_too_large(text, bad)));
    if (rc != 0)
        return;
    char *text2 = collapsed(p, &len2);
    FUZZ_CHECK(text2 != NULL && len2 == len && memcmp(text, text2, len) == 0);
    free(text2);
    pyprof_pbuild_free_profile(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Perftools__Profiles__Profile *p = NULL;
    size_t bad = 0, len;
    pyprof_folded_detect((const char *)data, size);
    int rc = pyprof_folded_parse((const char *)data, size, &p, &bad);
    if (rc != 0) {
        FUZZ_CHECK(rc == -EINVAL || rc == -ENOMEM);
        FUZZ_CHECK(rc != -EINVAL || (bad >= 1 && names_a_line(data, size, bad)));
        return 0;
    }
    fuzz_render(p);
    char *text = collapsed(p, &len);
    FUZZ_CHECK(text != NULL);   /* the parser's own profiles always hold together */
    check_stable(text, len);
    free(text);
    pyprof_pbuild_free_profile(p);
    return 0;
}
