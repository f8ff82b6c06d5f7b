#include "duration.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int pyprof_parse_duration(const char *text, uint64_t *ns)
{
    static const struct { const char *unit; double scale; } units[] = {
        {"ns", 1}, {"us", 1e3}, {"ms", 1e6}, {"s", 1e9}, {"m", 60e9},
    };
    if (text == NULL || *text == '\0')
        return -EINVAL;
    char *end = NULL;
    errno = 0;
    double value = strtod(text, &end);
    if (errno != 0 || end == text || !(value >= 0) || value > 1e12)
        return -EINVAL;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].unit) == 0) {
            double scaled = value * units[i].scale;
            if (scaled > 1e18)
                return -EINVAL;
            *ns = (uint64_t)(scaled + 0.5);
            return 0;
        }
    }
    return -EINVAL;
}
