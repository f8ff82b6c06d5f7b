#include "output.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

enum pyprof_format pyprof_format_by_name(const char *name)
{
    if (strcmp(name, "collapsed") == 0 || strcmp(name, "folded") == 0)
        return PYPROF_FORMAT_COLLAPSED;
    if (strcmp(name, "pprof") == 0)
        return PYPROF_FORMAT_PPROF;
    if (strcmp(name, "pprof-raw") == 0)
        return PYPROF_FORMAT_PPROF_RAW;
    return 0;
}

enum pyprof_format pyprof_format_by_path(const char *path)
{
    if (path == NULL)
        return PYPROF_FORMAT_COLLAPSED;
    if (ends_with(path, ".pb.gz") || ends_with(path, ".pprof"))
        return PYPROF_FORMAT_PPROF;
    if (ends_with(path, ".pb"))
        return PYPROF_FORMAT_PPROF_RAW;
    return PYPROF_FORMAT_COLLAPSED;
}

static int write_pprof(const Perftools__Profiles__Profile *p, int gzip, FILE *out)
{
    size_t len = perftools__profiles__profile__get_packed_size(p);
    uint8_t *buf = malloc(len ? len : 1);
    int rc = 0;
    if (buf == NULL)
        return -ENOMEM;
    perftools__profiles__profile__pack(p, buf);
    if (!gzip) {
        rc = fwrite(buf, 1, len, out) == len ? 0 : -EIO;
        free(buf);
        return rc;
    }
    /* gzip stream into memory, then one write: works the same for files and pipes. */
    z_stream z = {0};
    uLong cap = compressBound(len) + 64;
    uint8_t *gz = malloc(cap);
    if (gz == NULL || deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(gz);
        free(buf);
        return -ENOMEM;
    }
    z.next_in = buf;
    z.avail_in = (uInt)len;
    z.next_out = gz;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END)
        rc = -EIO;
    else if (fwrite(gz, 1, z.total_out, out) != z.total_out)
        rc = -EIO;
    deflateEnd(&z);
    free(gz);
    free(buf);
    return rc;
}

int pyprof_output_write(const Perftools__Profiles__Profile *p, enum pyprof_format format,
                        const struct pyprof_collapsed_options *o, const char *path, char *err,
                        size_t errlen)
{
    int to_stdout = path == NULL || strcmp(path, "-") == 0;
    FILE *out = to_stdout ? stdout : fopen(path, format == PYPROF_FORMAT_COLLAPSED ? "w" : "wb");
    if (out == NULL) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return -errno;
    }
    int rc = format == PYPROF_FORMAT_COLLAPSED ? pyprof_collapsed_write(p, o, out)
                                               : write_pprof(p, format == PYPROF_FORMAT_PPROF, out);
    if (fflush(out) != 0 && rc == 0)
        rc = -EIO;
    if (!to_stdout && fclose(out) != 0 && rc == 0)
        rc = -EIO;
    if (rc != 0)
        snprintf(err, errlen, "cannot write %s: %s", to_stdout ? "stdout" : path,
                 rc == -EINVAL ? "the profile is inconsistent" : strerror(-rc));
    return rc;
}

#define MAX_PROFILE_FILE (512u << 20)

int pyprof_output_read_pprof(const char *path, Perftools__Profiles__Profile **out, char *err,
                             size_t errlen)
{
    /* gzread reads uncompressed files transparently too. */
    gzFile gz = gzopen(path, "rb");
    if (gz == NULL) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno ? errno : ENOMEM));
        return -ENOENT;
    }
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc(cap);
    int n = 0;
    while (buf != NULL && (n = gzread(gz, buf + len, (unsigned)(cap - len))) > 0) {
        len += (size_t)n;
        if (len == cap) {
            uint8_t *bigger = cap < MAX_PROFILE_FILE ? realloc(buf, cap * 2) : NULL;
            if (bigger == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    int bad = n < 0 || buf == NULL;
    gzclose(gz);
    if (bad) {
        free(buf);
        snprintf(err, errlen, "%s: truncated or corrupt compressed data", path);
        return -EBADMSG;
    }
    *out = perftools__profiles__profile__unpack(NULL, len, buf);
    free(buf);
    if (*out == NULL) {
        snprintf(err, errlen, "%s: not a pprof profile", path);
        return -EBADMSG;
    }
    return 0;
}
