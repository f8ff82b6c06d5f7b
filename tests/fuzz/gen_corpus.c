/*
 * Writes the seed corpus of the fuzz targets (tests/fuzz/gen-corpus runs it once; the
 * output is checked in): real frames from the codec, the profile of a real Python process
 * in every file format pyprofctl reads, and a few edge cases of each.
 *
 *   fuzz_gen_corpus REAL.pb.gz OUTDIR    (OUTDIR/codec, OUTDIR/pprof, OUTDIR/folded exist)
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "codec.h"
#include "output.h"
#include "pbuild.h"

static const char *outdir;

static void die(const char *what)
{
    fprintf(stderr, "fuzz_gen_corpus: %s\n", what);
    exit(1);
}

static void put(const char *target, const char *name, const void *data, size_t len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s/%s", outdir, target, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0)
        die(path);
}

static void put_text(const char *target, const char *name, const char *text)
{
    put(target, name, text, strlen(text));
}

/* A profile in one of pyprofctl's formats, as `pyprofctl convert -o` writes it. */
static void put_format(const char *target, const char *name, const Perftools__Profiles__Profile *p,
                       enum pyprof_format format, int threads)
{
    struct pyprof_render_options ro = {{0, threads, 0}, 0};
    char path[4096], err[512];
    snprintf(path, sizeof(path), "%s/%s/%s", outdir, target, name);
    if (pyprof_output_write(p, format, &ro, path, err, sizeof(err)) != 0)
        die(err);
}

/* ---- codec: frames as they travel on the socket --------------------------------------- */

static void put_request(const char *name, uint32_t version, Pyprof__Op op, int reset_after)
{
    Pyprof__Request req = PYPROF__REQUEST__INIT;
    uint8_t *frame;
    size_t len;
    req.version = version;
    req.op = op;
    req.reset_after = reset_after;
    if (pyprof_request_encode(&req, &frame, &len) != 0)
        die("request_encode");
    put("codec", name, frame, len);
    free(frame);
}

static void put_response(const char *name, int error, Perftools__Profiles__Profile *profile)
{
    Pyprof__Response resp = PYPROF__RESPONSE__INIT;
    Pyprof__Status status = PYPROF__STATUS__INIT;
    uint8_t *frame;
    size_t len;
    status.pid = 4242;
    status.cmdline = "python3 app.py";
    status.python_version = "3.12.1";
    status.sampling = 1;
    status.mode = "cpu";
    status.interval_us = 10000;
    status.ticks = status.thread_samples = 100;
    status.achieved_hz = 99.5;
    resp.version = PYPROF_PROTOCOL_VERSION;
    resp.error = error;
    resp.message = error ? "no such process" : "";
    resp.status = &status;
    resp.profile = profile;
    if (pyprof_response_encode(&resp, &frame, &len) != 0)
        die("response_encode");
    put("codec", name, frame, len);
    free(frame);
}

static void codec_corpus(Perftools__Profiles__Profile *real, Perftools__Profiles__Profile *small)
{
    static const struct { const char *name; Pyprof__Op op; } ops[] = {
        {"req-status", PYPROF__OP__OP_STATUS}, {"req-start", PYPROF__OP__OP_START},
        {"req-stop", PYPROF__OP__OP_STOP},     {"req-reset", PYPROF__OP__OP_RESET},
        {"req-dump", PYPROF__OP__OP_DUMP},
    };
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        put_request(ops[i].name, PYPROF_PROTOCOL_VERSION, ops[i].op, 0);
    put_request("req-dump-reset", PYPROF_PROTOCOL_VERSION, PYPROF__OP__OP_DUMP, 1);
    put_request("req-version-2", 2, PYPROF__OP__OP_STATUS, 0);
    put_request("req-op-99", PYPROF_PROTOCOL_VERSION, (Pyprof__Op)99, 0);
    put_response("resp-status", 0, NULL);
    put_response("resp-error", ESRCH, NULL);
    put_response("resp-dump-small", 0, small);
    put_response("resp-dump-real", 0, real);
    /* Framing edge cases: an empty payload, a header alone, a short payload, a length over
     * the agent's limit, and two frames in one stream. */
    put("codec", "edge-empty-payload", "\0\0\0\0", 4);
    put("codec", "edge-header-only", "\0\0\0\x05", 4);
    put("codec", "edge-oversize", "\0\x01\0\x01\x08\x01\x10\x01", 8);
    put("codec", "edge-two-frames", "\0\0\0\x04\x08\x01\x10\x01\0\0\0\x02\x08\x01", 14);
}

/* ---- pprof: files pyprofctl convert reads ---------------------------------------------- */

/* A small profile with what pyprof writes: threads, labels, comments, a pseudo frame. */
static Perftools__Profiles__Profile *small_profile(void)
{
    struct pyprof_pbuild *b = pyprof_pbuild_new("wall", 10000000);
    if (b == NULL)
        die("pbuild_new");
    uint64_t main_ = pyprof_pbuild_location(b, "<module>", "/srv/app.py", 1, 12);
    uint64_t work = pyprof_pbuild_location(b, "Worker.run", "/srv/app.py", 30, 41);
    uint64_t sleep = pyprof_pbuild_location(b, "[idle]", "", 0, 0);
    uint64_t lib = pyprof_pbuild_location(b, "loads", "/usr/lib/python3.12/json/__init__.py",
                                          299, 346);
    struct pyprof_pbuild_label main_thread[] = {
        {"thread_id", NULL, 4242}, {"thread_name", "MainThread", 0}, {"gil", "held", 0}};
    struct pyprof_pbuild_label worker[] = {
        {"thread_id", NULL, 4243}, {"thread_name", "worker-1", 0}, {"idle", "true", 0}};
    pyprof_pbuild_sample(b, (uint64_t[]){lib, work, main_}, 3, 5, 50000000, main_thread, 3);
    pyprof_pbuild_sample(b, (uint64_t[]){work, main_}, 2, 2, 20000000, main_thread, 3);
    pyprof_pbuild_sample(b, (uint64_t[]){sleep, work}, 2, 7, 70000000, worker, 3);
    pyprof_pbuild_comment(b, "cmdline=python3 /srv/app.py");
    pyprof_pbuild_comment(b, "pid=4242");
    pyprof_pbuild_comment(b, "mode=wall");
    pyprof_pbuild_times(b, 1700000000000000000, 1000000000);
    Perftools__Profiles__Profile *p = pyprof_pbuild_finish(b);
    if (p == NULL)
        die("pbuild_finish");
    return p;
}

static void put_packed(const char *name, const Perftools__Profiles__Profile *p)
{
    size_t len = perftools__profiles__profile__get_packed_size(p);
    uint8_t *buf = malloc(len + 1);
    if (buf == NULL)
        die("malloc");
    perftools__profiles__profile__pack(p, buf);
    put("pprof", name, buf, len);
    free(buf);
}

/* The small profile with its second location carrying two lines (inlining, which pprof
 * allows and pyprof never writes) and sparse ids. */
static void put_unusual(Perftools__Profiles__Profile *p)
{
    Perftools__Profiles__Location *loc = p->location[1];
    Perftools__Profiles__Line **own = loc->line, *inner = own[0], *lines[2], outer = *inner;
    outer.line = 7;
    lines[0] = inner;
    lines[1] = &outer;
    loc->line = lines;
    loc->n_line = 2;
    put_packed("inlined.pb", p);
    loc->line = own;
    loc->n_line = 1;
    /* Ids in a different order and with gaps: the renderers must look them up. */
    uint64_t old = p->location[0]->id;
    p->location[0]->id = 1000;
    for (size_t i = 0; i < p->n_sample; i++)
        for (size_t j = 0; j < p->sample[i]->n_location_id; j++)
            if (p->sample[i]->location_id[j] == old)
                p->sample[i]->location_id[j] = 1000;
    put_packed("sparse-ids.pb", p);
}

/* One location with 2000 lines (inlined frames) in every one of a sample's 2000 location
 * ids: 4 million frames from 14 KB, which overflowed the flamegraph's stack (now refused
 * past PYPROF_MAX_STACK_FRAMES). */
static void put_deep(void)
{
    enum { LINES = 2000, IDS = 2000 };
    Perftools__Profiles__Profile p = PERFTOOLS__PROFILES__PROFILE__INIT;
    Perftools__Profiles__ValueType type = PERFTOOLS__PROFILES__VALUE_TYPE__INIT, *types = &type;
    Perftools__Profiles__Function fn = PERFTOOLS__PROFILES__FUNCTION__INIT, *fns = &fn;
    Perftools__Profiles__Location loc = PERFTOOLS__PROFILES__LOCATION__INIT, *locs = &loc;
    Perftools__Profiles__Line line = PERFTOOLS__PROFILES__LINE__INIT, *lines[LINES];
    Perftools__Profiles__Sample sample = PERFTOOLS__PROFILES__SAMPLE__INIT, *samples = &sample;
    static uint64_t ids[IDS];
    int64_t value = 1;
    char *strings[] = {"", "samples", "count", "f", "x.py"};
    type.type = 1;
    type.unit = 2;
    fn.id = 1;
    fn.name = 3;
    fn.filename = 4;
    line.function_id = 1;
    line.line = 3;
    for (size_t i = 0; i < LINES; i++)
        lines[i] = &line;
    loc.id = 1;
    loc.line = lines;
    loc.n_line = LINES;
    for (size_t i = 0; i < IDS; i++)
        ids[i] = 1;
    sample.location_id = ids;
    sample.n_location_id = IDS;
    sample.value = &value;
    sample.n_value = 1;
    p.sample_type = &types;
    p.n_sample_type = 1;
    p.function = &fns;
    p.n_function = 1;
    p.location = &locs;
    p.n_location = 1;
    p.sample = &samples;
    p.n_sample = 1;
    p.string_table = strings;
    p.n_string_table = sizeof(strings) / sizeof(strings[0]);
    put_packed("deep-stack.pb", &p);
}

/* The first bytes of a gzip file, and two gzip files one after the other. */
static void put_gzip_edges(const char *real_gz)
{
    FILE *f = fopen(real_gz, "rb");
    uint8_t buf[1 << 16];
    size_t n = f ? fread(buf, 1, sizeof(buf), f) : 0;
    if (f == NULL || n == 0 || n == sizeof(buf))
        die("cannot read the real profile (or it is over 64 KiB)");
    fclose(f);
    put("pprof", "cut.pb.gz", buf, n / 2);
    uint8_t *twice = malloc(2 * n);
    if (twice == NULL)
        die("malloc");
    memcpy(twice, buf, n);
    memcpy(twice + n, buf, n);
    put("pprof", "two-members.pb.gz", twice, 2 * n);
    memcpy(twice + n, "trailing garbage", 16);
    put("pprof", "trailing-garbage.pb.gz", twice, n + 16);
    free(twice);
}

static void pprof_corpus(const char *real_gz, Perftools__Profiles__Profile *real)
{
    Perftools__Profiles__Profile *small = small_profile();
    put_format("pprof", "real.pb.gz", real, PYPROF_FORMAT_PPROF, 0);
    put_format("pprof", "real.pb", real, PYPROF_FORMAT_PPROF_RAW, 0);
    put_format("pprof", "small.pb.gz", small, PYPROF_FORMAT_PPROF, 0);
    put_format("pprof", "small.pb", small, PYPROF_FORMAT_PPROF_RAW, 0);
    put_format("pprof", "small.folded", small, PYPROF_FORMAT_COLLAPSED, 1);
    put_unusual(small);
    /* Values whose sums do not fit in 64 bits (they wrapped, undefined, in every renderer). */
    for (size_t i = 0; i < small->n_sample; i++)
        small->sample[i]->value[0] = small->sample[i]->value[1] = INT64_MAX;
    put_packed("sum-overflow.pb", small);
    put_gzip_edges(real_gz);
    put_deep();
    /* The smallest profile pyprof_output_read accepts: string_table [""] and a sample type
     * (fields 6 and 1), then the empty file, and a gzip header over nothing. */
    put("pprof", "minimal.pb", "\x32\x00\x0a\x00", 4);
    put("pprof", "empty.pb", "", 0);
    put("pprof", "gzip-header.pb.gz", "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", 10);
    pyprof_pbuild_free_profile(small);
}

/* ---- folded: collapsed stacks ---------------------------------------------------------- */

static void folded_corpus(const Perftools__Profiles__Profile *real)
{
    put_format("folded", "real.folded", real, PYPROF_FORMAT_COLLAPSED, 0);
    put_format("folded", "real-threads.folded", real, PYPROF_FORMAT_COLLAPSED, 1);
    put_text("folded", "frames.folded",
             "<module> (/srv/app.py:1);main (/srv/app.py:20);handle (/srv/app.py) 1500\n"
             "<module> (/srv/app.py:1);[idle] 300\n"
             "bare;names;only 7\n");
    put_text("folded", "crlf.folded", "a (x.py:1);b (x.py:2) 10\r\n\r\na (x.py:1) 5\r\n");
    put_text("folded", "parens.folded",
             "f (g) (h.py:3);<lambda> (<frozen importlib._bootstrap>:241) 4\n"
             "x (:5);y (a:b:c) 1\n");
    put_text("folded", "spaces.folded", "a frame with spaces;;next  12\n;leading 1\n");
    put_text("folded", "zero.folded", "a;b 0\nc 000000000001\n");
    put_text("folded", "big.folded", "a 9223372036854775\nb 1\n");
    put_text("folded", "bad-line.folded", "a;b 10\nnot a stack line\n");
    put_text("folded", "no-newline.folded", "a;b;c 3");
}

int main(int argc, char **argv)
{
    Perftools__Profiles__Profile *real;
    char err[512];
    if (argc != 3)
        die("usage: fuzz_gen_corpus REAL.pb.gz OUTDIR");
    outdir = argv[2];
    if (pyprof_output_read(argv[1], &real, err, sizeof(err)) != 0)
        die(err);
    Perftools__Profiles__Profile *small = small_profile();
    codec_corpus(real, small);
    pprof_corpus(argv[1], real);
    folded_corpus(real);
    pyprof_pbuild_free_profile(small);
    pyprof_output_free(real);
    return 0;
}
