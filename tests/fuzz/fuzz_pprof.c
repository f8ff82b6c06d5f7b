/*
 * libFuzzer target: the content of a file given to `pyprofctl convert` or `diff`, read by
 * pyprof_output_read_buffer (gzip-compressed or raw profile.proto, or collapsed stacks),
 * then everything pyprofctl writes from it. A refusal must come with a one-line reason.
 */
#include <stdint.h>
#include <string.h>

#include "output.h"
#include "render.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Perftools__Profiles__Profile *p = NULL;
    char err[512] = "";
    int rc = pyprof_output_read_buffer(data, size, "fuzz.pb.gz", &p, err, sizeof(err));
    if (rc != 0) {
        FUZZ_CHECK(rc < 0 && p == NULL);
        FUZZ_CHECK(err[0] != '\0' && strchr(err, '\n') == NULL);
        return 0;
    }
    FUZZ_CHECK(p != NULL);
    fuzz_render(p);
    pyprof_output_free(p);
    return 0;
}
