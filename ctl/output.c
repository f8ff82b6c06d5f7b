#include "output.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "flamegraph.h"
#include "folded.h"
#include "speedscope.h"

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
    if (strcmp(name, "speedscope") == 0)
        return PYPROF_FORMAT_SPEEDSCOPE;
    if (strcmp(name, "svg") == 0 || strcmp(name, "flamegraph") == 0)
        return PYPROF_FORMAT_SVG;
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
    if (ends_with(path, ".speedscope.json") || ends_with(path, ".json"))
        return PYPROF_FORMAT_SPEEDSCOPE;
    if (ends_with(path, ".svg"))
        return PYPROF_FORMAT_SVG;
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
                        const struct pyprof_render_options *ro, const char *path, char *err,
                        size_t errlen)
{
    int to_stdout = path == NULL || strcmp(path, "-") == 0;
    FILE *out = to_stdout ? stdout : fopen(path, format == PYPROF_FORMAT_COLLAPSED ? "w" : "wb");
    if (out == NULL) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return -errno;
    }
    const struct pyprof_collapsed_options *o = &ro->stacks;
    struct pyprof_flamegraph_options fg = {ro->stacks, NULL, ro->icicle, 0, NULL};
    int rc;
    switch (format) {
    case PYPROF_FORMAT_COLLAPSED:
        rc = pyprof_collapsed_write(p, o, out);
        break;
    case PYPROF_FORMAT_SPEEDSCOPE:
        rc = pyprof_speedscope_write(p, o, out);
        break;
    case PYPROF_FORMAT_SVG:
        rc = pyprof_flamegraph_write(p, &fg, out);
        break;
    default:
        rc = write_pprof(p, format == PYPROF_FORMAT_PPROF, out);
        break;
    }
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

/* Grow a buffer to twice its size, up to MAX_PROFILE_FILE: -EFBIG past it. */
static int grow(uint8_t **buf, size_t *cap)
{
    uint8_t *bigger = *cap < MAX_PROFILE_FILE ? realloc(*buf, *cap * 2) : NULL;
    if (bigger == NULL)
        return *cap < MAX_PROFILE_FILE ? -ENOMEM : -EFBIG;
    *buf = bigger;
    *cap *= 2;
    return 0;
}

/* The whole file, as it is on disk. */
static int slurp(const char *path, uint8_t **out, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -ENOENT;
    }
    size_t cap = 1 << 16, n = 0, got;
    uint8_t *buf = malloc(cap);
    int rc = buf ? 0 : -ENOMEM;
    while (rc == 0 && (got = fread(buf + n, 1, cap - n, f)) > 0)
        if ((n += got) == cap)
            rc = grow(&buf, &cap);
    if (rc == 0 && ferror(f))
        rc = errno ? -errno : -EIO;   /* EISDIR, say */
    fclose(f);
    if (rc != 0) {
        free(buf);
        snprintf(err, errlen, "%s: %s", path, rc == -EFBIG ? "too large" : strerror(-rc));
        return rc;
    }
    *out = buf;
    *len = n;
    return 0;
}

static int is_gzip(const uint8_t *p, size_t len)
{
    return len >= 2 && p[0] == 0x1f && p[1] == 0x8b;
}

/* Inflate gzip members one after another (as `cat a.gz b.gz` makes); bytes after a member
 * that do not start another one are ignored, as gzread does. -EBADMSG for a truncated or
 * corrupt stream, -EFBIG past MAX_PROFILE_FILE. */
static int gunzip(const uint8_t *in, size_t len, uint8_t **out, size_t *outlen)
{
    z_stream z = {0};
    size_t cap = 1 << 16;
    uint8_t *buf = malloc(cap);
    if (buf == NULL || inflateInit2(&z, 15 + 16) != Z_OK) {
        free(buf);
        return -ENOMEM;
    }
    z.next_in = (Bytef *)in;
    z.next_out = buf;
    int rc = 0;
    for (;;) {
        /* zlib counts in uInt: feed and drain at most 1 GiB per call. */
        size_t in_left = len - (size_t)((const uint8_t *)z.next_in - in);
        size_t out_used = (size_t)(z.next_out - buf);
        z.avail_in = (uInt)(in_left < (1u << 30) ? in_left : (1u << 30));
        z.avail_out = (uInt)(cap - out_used < (1u << 30) ? cap - out_used : (1u << 30));
        int zrc = inflate(&z, Z_NO_FLUSH);
        in_left = len - (size_t)((const uint8_t *)z.next_in - in);
        out_used = (size_t)(z.next_out - buf);
        if (zrc == Z_STREAM_END) {
            if (!is_gzip(z.next_in, in_left))
                break;
            inflateReset(&z);
        } else if (zrc == Z_BUF_ERROR && in_left == 0) {
            rc = -EBADMSG;   /* the input ended inside a member */
            break;
        } else if (zrc != Z_OK && zrc != Z_BUF_ERROR) {
            rc = zrc == Z_MEM_ERROR ? -ENOMEM : -EBADMSG;
            break;
        }
        if (out_used == cap && (rc = grow(&buf, &cap)) != 0)
            break;
        z.next_out = buf + out_used;
    }
    *outlen = (size_t)(z.next_out - buf);
    inflateEnd(&z);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    return 0;
}

/* A decoded Profile must hold together before any renderer walks it. */
static int pprof_plausible(const Perftools__Profiles__Profile *p)
{
    if (p->n_string_table == 0 || p->string_table[0][0] != '\0' || p->n_sample_type == 0)
        return 0;
    for (size_t i = 0; i < p->n_sample_type; i++)
        if (p->sample_type[i]->type < 0 || (uint64_t)p->sample_type[i]->type >= p->n_string_table)
            return 0;
    return 1;
}

/* Collapsed stacks or profile.proto, uncompressed. */
static int decode(const uint8_t *buf, size_t len, const char *name,
                  Perftools__Profiles__Profile **out, char *err, size_t errlen)
{
    size_t bad_line = 0;
    int rc;
    if (len == 0) {
        snprintf(err, errlen, "%s: empty file", name);
        return -EBADMSG;
    }
    if (pyprof_folded_detect((const char *)buf, len)) {
        rc = pyprof_folded_parse((const char *)buf, len, out, &bad_line);
        if (rc != 0)
            snprintf(err, errlen, "%s:%zu: not a collapsed-stack line", name, bad_line);
        return rc;
    }
    *out = perftools__profiles__profile__unpack(NULL, len, buf);
    if (*out != NULL && !pprof_plausible(*out)) {
        perftools__profiles__profile__free_unpacked(*out, NULL);
        *out = NULL;
    }
    if (*out == NULL)
        snprintf(err, errlen, "%s: neither a pprof profile nor collapsed stacks", name);
    return *out ? 0 : -EBADMSG;
}

int pyprof_output_read_buffer(const uint8_t *data, size_t len, const char *name,
                              Perftools__Profiles__Profile **out, char *err, size_t errlen)
{
    if (!is_gzip(data, len))
        return decode(data, len, name, out, err, errlen);
    uint8_t *plain;
    size_t plain_len;
    int rc = gunzip(data, len, &plain, &plain_len);
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", name,
                 rc == -EFBIG    ? "too large"
                 : rc == -ENOMEM ? strerror(ENOMEM)
                                 : "truncated or corrupt compressed data");
        return rc;
    }
    rc = decode(plain, plain_len, name, out, err, errlen);
    free(plain);
    return rc;
}

int pyprof_output_read(const char *path, Perftools__Profiles__Profile **out, char *err,
                       size_t errlen)
{
    uint8_t *buf;
    size_t len;
    int rc = slurp(path, &buf, &len, err, errlen);
    if (rc != 0)
        return rc;
    rc = pyprof_output_read_buffer(buf, len, path, out, err, errlen);
    free(buf);
    return rc;
}

void pyprof_output_free(Perftools__Profiles__Profile *profile)
{
    if (profile)
        perftools__profiles__profile__free_unpacked(profile, NULL);
}
