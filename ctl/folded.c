#include "folded.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pbuild.h"

#define MAX_FRAMES 4096

/* Split "name (file:line)" in place. A frame without " (" is a bare name. */
static void split_frame(char *frame, const char **name, const char **file, long long *line)
{
    size_t len = strlen(frame);
    *name = frame;
    *file = "";
    *line = 0;
    if (len < 4 || frame[len - 1] != ')')
        return;
    char *open = NULL;
    for (char *p = frame; (p = strstr(p, " (")) != NULL; p++)
        open = p;
    if (open == NULL)
        return;
    *open = '\0';
    frame[len - 1] = '\0';
    char *where = open + 2, *colon = strrchr(where, ':');
    if (colon != NULL && colon[1] != '\0' && strspn(colon + 1, "0123456789") == strlen(colon + 1)) {
        *colon = '\0';
        *line = atoll(colon + 1);
    }
    *file = where;
}

static int parse_line(struct pyprof_pbuild *b, char *line)
{
    char *space = strrchr(line, ' ');
    if (space == NULL || space == line || space[1] == '\0')
        return -EINVAL;
    char *end;
    long long value = strtoll(space + 1, &end, 10);
    /* Microseconds become nanoseconds below: refuse what would not fit. */
    if (*end != '\0' || value < 0 || value > INT64_MAX / 1000)
        return -EINVAL;
    *space = '\0';
    uint64_t locs[MAX_FRAMES];
    size_t n = 0;
    /* Frames come root first; pprof wants the leaf first: fill from the end, then shift. */
    for (char *save = NULL, *f = strtok_r(line, ";", &save); f; f = strtok_r(NULL, ";", &save)) {
        if (n == MAX_FRAMES)
            return -EINVAL;
        const char *name, *file;
        long long lineno;
        split_frame(f, &name, &file, &lineno);
        if ((locs[n++] = pyprof_pbuild_location(b, name, file, 0, lineno)) == 0)
            return -ENOMEM;
    }
    if (n == 0)
        return -EINVAL;
    for (size_t i = 0; i < n / 2; i++) {
        uint64_t t = locs[i];
        locs[i] = locs[n - 1 - i];
        locs[n - 1 - i] = t;
    }
    return pyprof_pbuild_sample(b, locs, n, 1, value * 1000, NULL, 0);
}

/* The line number of `at` in `text`, from 1. */
static size_t line_of(const char *text, const char *at)
{
    size_t n = 1;
    for (; text < at; text++)
        n += *text == '\n';
    return n;
}

int pyprof_folded_parse(const char *text, size_t len, Perftools__Profiles__Profile **out,
                        size_t *bad_line)
{
    struct pyprof_pbuild *b = pyprof_pbuild_new("cpu", 0);
    char *copy = malloc(len + 1);
    int rc = b && copy ? 0 : -ENOMEM;
    size_t lineno = 0;
    if (rc == 0) {
        memcpy(copy, text, len);
        copy[len] = '\0';
        const char *nul = memchr(copy, '\0', len);
        if (nul != NULL) {
            rc = -EINVAL;   /* binary data */
            lineno = line_of(copy, nul);
        }
    }
    /* Line by line, empty ones included, so that an error names the line an editor shows. */
    for (char *l = rc ? NULL : copy, *next; l && rc == 0; l = next) {
        if ((next = strchr(l, '\n')) != NULL)
            *next++ = '\0';
        lineno++;
        size_t n = strlen(l);
        if (n && l[n - 1] == '\r')
            l[--n] = '\0';
        if (n == 0)
            continue;
        rc = parse_line(b, l);
    }
    free(copy);
    if (rc != 0) {
        *bad_line = lineno;
        pyprof_pbuild_free(b);
        return rc;
    }
    pyprof_pbuild_comment(b, "source=collapsed");
    *out = pyprof_pbuild_finish(b);
    return *out ? 0 : -ENOMEM;
}

int pyprof_folded_detect(const char *text, size_t len)
{
    /* Look at the first line: printable text that ends with " <digits>". */
    const char *nl = memchr(text, '\n', len);
    size_t n = nl ? (size_t)(nl - text) : len;
    if (n < 3)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)text[i] < 0x20 && text[i] != '\t' && text[i] != '\r')
            return 0;
    size_t end = n;
    if (text[end - 1] == '\r')
        end--;
    size_t digits = 0;
    while (digits < end && isdigit((unsigned char)text[end - 1 - digits]))
        digits++;
    return digits > 0 && digits < end && text[end - 1 - digits] == ' ';
}
