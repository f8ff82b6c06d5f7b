#include "pprof_find.h"

#include <stddef.h>

const Perftools__Profiles__Location *pyprof_pprof_location(const Perftools__Profiles__Profile *p,
                                                           uint64_t id)
{
    if (id >= 1 && id <= p->n_location && p->location[id - 1]->id == id)
        return p->location[id - 1];
    for (size_t i = 0; i < p->n_location; i++)
        if (p->location[i]->id == id)
            return p->location[i];
    return NULL;
}

const Perftools__Profiles__Function *pyprof_pprof_function(const Perftools__Profiles__Profile *p,
                                                           uint64_t id)
{
    if (id >= 1 && id <= p->n_function && p->function[id - 1]->id == id)
        return p->function[id - 1];
    for (size_t i = 0; i < p->n_function; i++)
        if (p->function[i]->id == id)
            return p->function[i];
    return NULL;
}

const char *pyprof_pprof_string(const Perftools__Profiles__Profile *p, int64_t index)
{
    return index >= 0 && (uint64_t)index < p->n_string_table ? p->string_table[index] : NULL;
}
