/*
 * Unit tests for proto/codec.c: framing, size limits, and how decode treats valid,
 * foreign, truncated and hostile payloads.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

/* ---- helpers ---------------------------------------------------------------------------- */

/* Deterministic bytes: the same garbage on every run and every machine. */
static uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

/* A decode result is coherent: a message exactly when the bytes parsed. */
static void assert_decode_coherent(int rc, const void *msg)
{
    assert_true(rc == 0 || rc == -EBADMSG || rc == -EPROTO || rc == -EOPNOTSUPP);
    if (rc == -EBADMSG)
        assert_null(msg);
    else
        assert_non_null(msg);
}

/* Encode, check the frame header against the payload, decode the payload. */
static int request_roundtrip(const Pyprof__Request *in, Pyprof__Request **out)
{
    uint8_t *frame = NULL;
    size_t frame_len = 0, payload_len = 0;
    int rc;

    assert_int_equal(pyprof_request_encode(in, &frame, &frame_len), 0);
    assert_int_equal(pyprof_frame_peek(frame, frame_len, PYPROF_MAX_REQUEST, &payload_len), 1);
    assert_int_equal(frame_len, PYPROF_FRAME_HEADER + payload_len);
    rc = pyprof_request_decode(frame + PYPROF_FRAME_HEADER, payload_len, out);
    free(frame);
    return rc;
}

static int response_roundtrip(const Pyprof__Response *in, Pyprof__Response **out)
{
    uint8_t *frame = NULL;
    size_t frame_len = 0, payload_len = 0;
    int rc;

    assert_int_equal(pyprof_response_encode(in, &frame, &frame_len), 0);
    assert_int_equal(pyprof_frame_peek(frame, frame_len, PYPROF_MAX_RESPONSE, &payload_len), 1);
    assert_int_equal(frame_len, PYPROF_FRAME_HEADER + payload_len);
    rc = pyprof_response_decode(frame + PYPROF_FRAME_HEADER, payload_len, out);
    free(frame);
    return rc;
}

/* Payload bytes of a message, without the frame header; the caller frees. */
static uint8_t *request_payload(const Pyprof__Request *req, size_t *len)
{
    uint8_t *buf = malloc(pyprof__request__get_packed_size(req) + 1);

    assert_non_null(buf);
    *len = pyprof__request__pack(req, buf);
    return buf;
}

static uint8_t *response_payload(const Pyprof__Response *resp, size_t *len)
{
    uint8_t *buf = malloc(pyprof__response__get_packed_size(resp) + 1);

    assert_non_null(buf);
    *len = pyprof__response__pack(resp, buf);
    return buf;
}

/* ---- a small pprof Profile, built from static storage ----------------------------------- */

/*
 * Two Python functions, main -> work, sampled three times on two threads. Everything lives
 * in one struct so the test can build it on the stack without freeing anything.
 */
struct fixture {
    Pyprof__Status status;
    Pyprof__Response resp;
    Perftools__Profiles__Profile profile;
    Perftools__Profiles__ValueType sample_type[2], period_type;
    Perftools__Profiles__ValueType *sample_type_p[2];
    Perftools__Profiles__Function function[2];
    Perftools__Profiles__Function *function_p[2];
    Perftools__Profiles__Line line[3];
    Perftools__Profiles__Line *loc1_lines[1], *loc2_lines[2];
    Perftools__Profiles__Location location[2];
    Perftools__Profiles__Location *location_p[2];
    Perftools__Profiles__Mapping mapping;
    Perftools__Profiles__Mapping *mapping_p[1];
    Perftools__Profiles__Label label[3];
    Perftools__Profiles__Label *s0_labels[1], *s1_labels[2], *s2_labels[1];
    Perftools__Profiles__Sample sample[3];
    Perftools__Profiles__Sample *sample_p[3];
    uint64_t s0_locs[2], s1_locs[1], s2_locs[2];
    int64_t s0_vals[2], s1_vals[2], s2_vals[2];
    int64_t comment[1];
};

static char *profile_strings[] = {
    "", "samples", "count", "wall", "nanoseconds", "main", "work", "/srv/app.py",
    "thread", "MainThread", "worker-1", "bytes", "python", "pyprof comment",
};
enum { S_EMPTY, S_SAMPLES, S_COUNT, S_WALL, S_NS, S_MAIN, S_WORK, S_FILE, S_THREAD,
       S_MAINTHREAD, S_WORKER, S_BYTES, S_PYTHON, S_COMMENT, S_N };

static void fixture_status(struct fixture *f)
{
    Pyprof__Status *st = &f->status;

    pyprof__status__init(st);
    st->pid = 4242;
    st->cmdline = "python3 -m app --port 8080";
    st->python_version = "3.12.1";
    st->sampling = 1;
    st->mode = "wall";
    st->interval_us = 10000;
    st->ticks = 1234567;
    st->thread_samples = 2345678;
    st->dropped = 3;
    st->torn = 4;
    st->truncated = 5;
    st->stacks = 6;
    st->max_stacks = 65536;
    st->achieved_hz = 99.75;
    st->sampler_cpu_percent = 0.125;
    st->profile_start_ns = UINT64_C(1700000000123456789);
    st->total_weight = UINT64_MAX;
    st->sampler_cpu_ns = 987654321;
    st->sample_cost_ns = 1500;
}

static void fixture_tables(struct fixture *f)
{
    Perftools__Profiles__Profile *p = &f->profile;

    for (int i = 0; i < 2; i++) {
        perftools__profiles__function__init(&f->function[i]);
        f->function[i].id = (uint64_t)i + 1;
        f->function[i].name = i == 0 ? S_MAIN : S_WORK;
        f->function[i].system_name = f->function[i].name;
        f->function[i].filename = S_FILE;
        f->function[i].start_line = i == 0 ? 1 : 40;
        f->function_p[i] = &f->function[i];
    }
    for (int i = 0; i < 3; i++)
        perftools__profiles__line__init(&f->line[i]);
    f->line[0].function_id = 1, f->line[0].line = 12;
    f->line[1].function_id = 2, f->line[1].line = 44, f->line[1].column = 7;
    f->line[2].function_id = 1, f->line[2].line = 13;

    perftools__profiles__mapping__init(&f->mapping);
    f->mapping.id = 1;
    f->mapping.filename = S_PYTHON;
    f->mapping.has_functions = 1;
    f->mapping.has_filenames = 1;
    f->mapping.has_line_numbers = 1;
    f->mapping_p[0] = &f->mapping;

    /* Location 2 carries two lines, as an inlined frame would. */
    f->loc1_lines[0] = &f->line[0];
    f->loc2_lines[0] = &f->line[1];
    f->loc2_lines[1] = &f->line[2];
    for (int i = 0; i < 2; i++) {
        perftools__profiles__location__init(&f->location[i]);
        f->location[i].id = (uint64_t)i + 1;
        f->location[i].mapping_id = 1;
        f->location[i].address = UINT64_C(0x7f0000001000) + (uint64_t)i;
        f->location_p[i] = &f->location[i];
    }
    f->location[0].n_line = 1, f->location[0].line = f->loc1_lines;
    f->location[1].n_line = 2, f->location[1].line = f->loc2_lines;
    f->location[1].is_folded = 1;

    p->n_function = 2, p->function = f->function_p;
    p->n_location = 2, p->location = f->location_p;
    p->n_mapping = 1, p->mapping = f->mapping_p;
    p->n_string_table = S_N, p->string_table = profile_strings;
}

static void fixture_samples(struct fixture *f)
{
    Perftools__Profiles__Profile *p = &f->profile;

    for (int i = 0; i < 3; i++)
        perftools__profiles__label__init(&f->label[i]);
    f->label[0].key = S_THREAD, f->label[0].str = S_MAINTHREAD;
    f->label[1].key = S_THREAD, f->label[1].str = S_WORKER;
    f->label[2].key = S_BYTES, f->label[2].num = -4096, f->label[2].num_unit = S_BYTES;
    f->s0_labels[0] = &f->label[0];
    f->s1_labels[0] = &f->label[1];
    f->s1_labels[1] = &f->label[2];
    f->s2_labels[0] = &f->label[0];

    f->s0_locs[0] = 2, f->s0_locs[1] = 1;
    f->s1_locs[0] = 1;
    f->s2_locs[0] = 2, f->s2_locs[1] = 1;
    f->s0_vals[0] = 3, f->s0_vals[1] = 30000000;
    f->s1_vals[0] = 1, f->s1_vals[1] = 10000000;
    f->s2_vals[0] = 2, f->s2_vals[1] = INT64_MAX;

    uint64_t *locs[3] = { f->s0_locs, f->s1_locs, f->s2_locs };
    size_t n_locs[3] = { 2, 1, 2 };
    int64_t *vals[3] = { f->s0_vals, f->s1_vals, f->s2_vals };
    Perftools__Profiles__Label **labels[3] = { f->s0_labels, f->s1_labels, f->s2_labels };
    size_t n_labels[3] = { 1, 2, 1 };

    for (int i = 0; i < 3; i++) {
        perftools__profiles__sample__init(&f->sample[i]);
        f->sample[i].n_location_id = n_locs[i], f->sample[i].location_id = locs[i];
        f->sample[i].n_value = 2, f->sample[i].value = vals[i];
        f->sample[i].n_label = n_labels[i], f->sample[i].label = labels[i];
        f->sample_p[i] = &f->sample[i];
    }
    p->n_sample = 3, p->sample = f->sample_p;
}

static void fixture_init(struct fixture *f)
{
    Perftools__Profiles__Profile *p = &f->profile;

    memset(f, 0, sizeof(*f));
    fixture_status(f);
    perftools__profiles__profile__init(p);
    fixture_tables(f);
    fixture_samples(f);

    for (int i = 0; i < 2; i++) {
        perftools__profiles__value_type__init(&f->sample_type[i]);
        f->sample_type_p[i] = &f->sample_type[i];
    }
    f->sample_type[0].type = S_SAMPLES, f->sample_type[0].unit = S_COUNT;
    f->sample_type[1].type = S_WALL, f->sample_type[1].unit = S_NS;
    p->n_sample_type = 2, p->sample_type = f->sample_type_p;

    perftools__profiles__value_type__init(&f->period_type);
    f->period_type.type = S_WALL, f->period_type.unit = S_NS;
    p->period_type = &f->period_type;
    p->period = 10000000;
    p->time_nanos = 1700000000123456789;
    p->duration_nanos = 5000000000;
    p->default_sample_type = S_WALL;
    p->drop_frames = 0;
    p->keep_frames = 0;
    f->comment[0] = S_COMMENT;
    p->n_comment = 1, p->comment = f->comment;

    pyprof__response__init(&f->resp);
    f->resp.version = PYPROF_PROTOCOL_VERSION;
    f->resp.status = &f->status;
    f->resp.profile = p;
}

/* ---- field-by-field comparison --------------------------------------------------------- */

static void assert_status_equal(const Pyprof__Status *a, const Pyprof__Status *b)
{
    assert_non_null(b);
    assert_int_equal(a->pid, b->pid);
    assert_string_equal(a->cmdline, b->cmdline);
    assert_string_equal(a->python_version, b->python_version);
    assert_int_equal(a->sampling, b->sampling);
    assert_string_equal(a->mode, b->mode);
    assert_true(a->interval_us == b->interval_us);
    assert_true(a->ticks == b->ticks);
    assert_true(a->thread_samples == b->thread_samples);
    assert_true(a->dropped == b->dropped);
    assert_true(a->torn == b->torn);
    assert_true(a->truncated == b->truncated);
    assert_true(a->stacks == b->stacks);
    assert_true(a->max_stacks == b->max_stacks);
    assert_true(a->achieved_hz == b->achieved_hz);
    assert_true(a->sampler_cpu_percent == b->sampler_cpu_percent);
    assert_true(a->profile_start_ns == b->profile_start_ns);
    assert_true(a->total_weight == b->total_weight);
    assert_true(a->sampler_cpu_ns == b->sampler_cpu_ns);
    assert_true(a->sample_cost_ns == b->sample_cost_ns);
}

static void assert_value_type_equal(const Perftools__Profiles__ValueType *a,
                                    const Perftools__Profiles__ValueType *b)
{
    assert_non_null(b);
    assert_true(a->type == b->type);
    assert_true(a->unit == b->unit);
}

static void assert_sample_equal(const Perftools__Profiles__Sample *a,
                                const Perftools__Profiles__Sample *b)
{
    assert_int_equal(a->n_location_id, b->n_location_id);
    for (size_t i = 0; i < a->n_location_id; i++)
        assert_true(a->location_id[i] == b->location_id[i]);
    assert_int_equal(a->n_value, b->n_value);
    for (size_t i = 0; i < a->n_value; i++)
        assert_true(a->value[i] == b->value[i]);
    assert_int_equal(a->n_label, b->n_label);
    for (size_t i = 0; i < a->n_label; i++) {
        assert_true(a->label[i]->key == b->label[i]->key);
        assert_true(a->label[i]->str == b->label[i]->str);
        assert_true(a->label[i]->num == b->label[i]->num);
        assert_true(a->label[i]->num_unit == b->label[i]->num_unit);
    }
}

static void assert_location_equal(const Perftools__Profiles__Location *a,
                                  const Perftools__Profiles__Location *b)
{
    assert_true(a->id == b->id);
    assert_true(a->mapping_id == b->mapping_id);
    assert_true(a->address == b->address);
    assert_int_equal(a->is_folded, b->is_folded);
    assert_int_equal(a->n_line, b->n_line);
    for (size_t i = 0; i < a->n_line; i++) {
        assert_true(a->line[i]->function_id == b->line[i]->function_id);
        assert_true(a->line[i]->line == b->line[i]->line);
        assert_true(a->line[i]->column == b->line[i]->column);
    }
}

static void assert_function_equal(const Perftools__Profiles__Function *a,
                                  const Perftools__Profiles__Function *b)
{
    assert_true(a->id == b->id);
    assert_true(a->name == b->name);
    assert_true(a->system_name == b->system_name);
    assert_true(a->filename == b->filename);
    assert_true(a->start_line == b->start_line);
}

static void assert_mapping_equal(const Perftools__Profiles__Mapping *a,
                                 const Perftools__Profiles__Mapping *b)
{
    assert_true(a->id == b->id);
    assert_true(a->memory_start == b->memory_start);
    assert_true(a->memory_limit == b->memory_limit);
    assert_true(a->file_offset == b->file_offset);
    assert_true(a->filename == b->filename);
    assert_true(a->build_id == b->build_id);
    assert_int_equal(a->has_functions, b->has_functions);
    assert_int_equal(a->has_filenames, b->has_filenames);
    assert_int_equal(a->has_line_numbers, b->has_line_numbers);
    assert_int_equal(a->has_inline_frames, b->has_inline_frames);
}

static void assert_profile_equal(const Perftools__Profiles__Profile *a,
                                 const Perftools__Profiles__Profile *b)
{
    assert_non_null(b);
    assert_int_equal(a->n_sample_type, b->n_sample_type);
    for (size_t i = 0; i < a->n_sample_type; i++)
        assert_value_type_equal(a->sample_type[i], b->sample_type[i]);
    assert_int_equal(a->n_sample, b->n_sample);
    for (size_t i = 0; i < a->n_sample; i++)
        assert_sample_equal(a->sample[i], b->sample[i]);
    assert_int_equal(a->n_mapping, b->n_mapping);
    for (size_t i = 0; i < a->n_mapping; i++)
        assert_mapping_equal(a->mapping[i], b->mapping[i]);
    assert_int_equal(a->n_location, b->n_location);
    for (size_t i = 0; i < a->n_location; i++)
        assert_location_equal(a->location[i], b->location[i]);
    assert_int_equal(a->n_function, b->n_function);
    for (size_t i = 0; i < a->n_function; i++)
        assert_function_equal(a->function[i], b->function[i]);
    assert_int_equal(a->n_string_table, b->n_string_table);
    for (size_t i = 0; i < a->n_string_table; i++)
        assert_string_equal(a->string_table[i], b->string_table[i]);
    assert_true(a->drop_frames == b->drop_frames);
    assert_true(a->keep_frames == b->keep_frames);
    assert_true(a->time_nanos == b->time_nanos);
    assert_true(a->duration_nanos == b->duration_nanos);
    assert_value_type_equal(a->period_type, b->period_type);
    assert_true(a->period == b->period);
    assert_int_equal(a->n_comment, b->n_comment);
    for (size_t i = 0; i < a->n_comment; i++)
        assert_true(a->comment[i] == b->comment[i]);
    assert_true(a->default_sample_type == b->default_sample_type);
}

/* ---- op names and framing -------------------------------------------------------------- */

/* Every op has its short name; anything else, including OP_UNKNOWN, reads "unknown". */
static void test_op_name(void **state)
{
    (void)state;
    assert_string_equal(pyprof_op_name(PYPROF__OP__OP_STATUS), "status");
    assert_string_equal(pyprof_op_name(PYPROF__OP__OP_START), "start");
    assert_string_equal(pyprof_op_name(PYPROF__OP__OP_STOP), "stop");
    assert_string_equal(pyprof_op_name(PYPROF__OP__OP_RESET), "reset");
    assert_string_equal(pyprof_op_name(PYPROF__OP__OP_DUMP), "dump");
    assert_string_equal(pyprof_op_name(PYPROF__OP__OP_UNKNOWN), "unknown");
    assert_string_equal(pyprof_op_name(99), "unknown");
    assert_string_equal(pyprof_op_name(-1), "unknown");
}

/* Fewer than four bytes is "need more", whatever they are, and leaves *payload_len alone. */
static void test_frame_peek_short(void **state)
{
    (void)state;
    const uint8_t buf[4] = { 0, 0, 0, 1 };
    size_t n = 777;

    for (size_t len = 0; len < PYPROF_FRAME_HEADER; len++)
        assert_int_equal(pyprof_frame_peek(buf, len, PYPROF_MAX_REQUEST, &n), 0);
    assert_int_equal(n, 777);
}

/* An exact header is complete; the length is big-endian; extra bytes do not matter. */
static void test_frame_peek_exact_header(void **state)
{
    (void)state;
    const uint8_t buf[8] = { 0x00, 0x01, 0x02, 0x03, 0xaa, 0xbb, 0xcc, 0xdd };
    size_t n = 0;

    assert_int_equal(pyprof_frame_peek(buf, 4, PYPROF_MAX_RESPONSE, &n), 1);
    assert_int_equal(n, 0x010203);
    n = 0;
    assert_int_equal(pyprof_frame_peek(buf, sizeof(buf), PYPROF_MAX_RESPONSE, &n), 1);
    assert_int_equal(n, 0x010203);
}

/* A zero-length payload is a legal frame (an empty proto3 message). */
static void test_frame_peek_zero(void **state)
{
    (void)state;
    const uint8_t buf[4] = { 0, 0, 0, 0 };
    size_t n = 777;

    assert_int_equal(pyprof_frame_peek(buf, 4, PYPROF_MAX_REQUEST, &n), 1);
    assert_int_equal(n, 0);
}

/* Announced lengths over the limit are refused before anyone allocates them. */
static void test_frame_peek_oversized(void **state)
{
    (void)state;
    const uint8_t huge[4] = { 0xff, 0xff, 0xff, 0xff };
    uint8_t hdr[4];
    size_t n = 0;

    assert_int_equal(pyprof_frame_peek(huge, 4, PYPROF_MAX_REQUEST, &n), -EMSGSIZE);
    assert_int_equal(pyprof_frame_peek(huge, 4, PYPROF_MAX_RESPONSE, &n), -EMSGSIZE);
    pyprof_frame_header(hdr, PYPROF_MAX_RESPONSE);
    assert_int_equal(pyprof_frame_peek(hdr, 4, PYPROF_MAX_REQUEST, &n), -EMSGSIZE);
    pyprof_frame_header(hdr, 1);
    assert_int_equal(pyprof_frame_peek(hdr, 4, 0, &n), -EMSGSIZE);
}

/* The limit itself is allowed and one past it is not, for both directions. */
static void test_frame_peek_boundary(void **state)
{
    (void)state;
    const size_t limits[] = { PYPROF_MAX_REQUEST, PYPROF_MAX_RESPONSE };
    uint8_t hdr[4];
    size_t n;

    for (size_t i = 0; i < 2; i++) {
        n = 0;
        pyprof_frame_header(hdr, (uint32_t)limits[i]);
        assert_int_equal(pyprof_frame_peek(hdr, 4, limits[i], &n), 1);
        assert_int_equal(n, limits[i]);
        pyprof_frame_header(hdr, (uint32_t)limits[i] + 1);
        assert_int_equal(pyprof_frame_peek(hdr, 4, limits[i], &n), -EMSGSIZE);
    }
}

/* frame_header writes big-endian and frame_peek reads back the same value. */
static void test_frame_header_roundtrip(void **state)
{
    (void)state;
    const uint32_t values[] = { 0, 1, 0xff, 0x100, 0x01020304, 0x7fffffff, 0xffffffff };
    uint8_t hdr[4];
    size_t n;

    pyprof_frame_header(hdr, 0x01020304);
    assert_int_equal(hdr[0], 0x01);
    assert_int_equal(hdr[1], 0x02);
    assert_int_equal(hdr[2], 0x03);
    assert_int_equal(hdr[3], 0x04);
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        pyprof_frame_header(hdr, values[i]);
        assert_int_equal(pyprof_frame_peek(hdr, 4, SIZE_MAX, &n), 1);
        assert_int_equal(n, values[i]);
    }
}

/* ---- round trips ------------------------------------------------------------------------ */

/* Every known op, with and without reset_after, survives encode + frame + decode. */
static void test_request_roundtrip_each_op(void **state)
{
    (void)state;
    const Pyprof__Op ops[] = { PYPROF__OP__OP_STATUS, PYPROF__OP__OP_START,
                               PYPROF__OP__OP_STOP, PYPROF__OP__OP_RESET,
                               PYPROF__OP__OP_DUMP };

    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        for (int reset = 0; reset <= 1; reset++) {
            Pyprof__Request req = PYPROF__REQUEST__INIT;
            Pyprof__Request *out = NULL;

            req.version = PYPROF_PROTOCOL_VERSION;
            req.op = ops[i];
            req.reset_after = reset;
            assert_int_equal(request_roundtrip(&req, &out), 0);
            assert_non_null(out);
            assert_int_equal(out->version, PYPROF_PROTOCOL_VERSION);
            assert_int_equal(out->op, ops[i]);
            assert_int_equal(out->reset_after, reset);
            pyprof_request_free(out);
        }
    }
}

/* A dump response with a status and a small pprof Profile comes back field for field. */
static void test_response_roundtrip_profile(void **state)
{
    (void)state;
    struct fixture f;
    Pyprof__Response *out = NULL;

    fixture_init(&f);
    assert_int_equal(response_roundtrip(&f.resp, &out), 0);
    assert_non_null(out);
    assert_int_equal(out->version, PYPROF_PROTOCOL_VERSION);
    assert_int_equal(out->error, 0);
    assert_string_equal(out->message, "");
    assert_status_equal(&f.status, out->status);
    assert_profile_equal(&f.profile, out->profile);
    pyprof_response_free(out);
}

/* An error response without a profile keeps its errno and text, and has no profile. */
static void test_response_roundtrip_error(void **state)
{
    (void)state;
    struct fixture f;
    Pyprof__Response *out = NULL;

    fixture_init(&f);
    f.resp.error = EBUSY;
    f.resp.message = "already sampling";
    f.resp.profile = NULL;
    f.status.sampling = 0;
    f.status.mode = "cpu";
    assert_int_equal(response_roundtrip(&f.resp, &out), 0);
    assert_int_equal(out->error, EBUSY);
    assert_string_equal(out->message, "already sampling");
    assert_null(out->profile);
    assert_status_equal(&f.status, out->status);
    pyprof_response_free(out);
}

/* Freeing NULL is a no-op, so error paths can free unconditionally. */
static void test_free_null(void **state)
{
    (void)state;
    pyprof_request_free(NULL);
    pyprof_response_free(NULL);
}

/* ---- size limits on encode -------------------------------------------------------------- */

/*
 * Pads a request with one unknown length-delimited field (number 100) so that its payload
 * is exactly `target` bytes; requests have no field that could grow on its own.
 */
static void pad_request(Pyprof__Request *req, ProtobufCMessageUnknownField *uf,
                        uint8_t *data, size_t target)
{
    for (size_t body = target - 16; body <= target; body++) {
        size_t hdr = 0;

        /* data holds the length varint then the body: protobuf-c emits it verbatim. */
        for (size_t v = body; ; v >>= 7) {
            data[hdr++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
            if (v <= 0x7f)
                break;
        }
        memset(data + hdr, 'x', body);
        uf->tag = 100;
        uf->wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
        uf->len = hdr + body;
        uf->data = data;
        req->base.n_unknown_fields = 1;
        req->base.unknown_fields = uf;
        if (pyprof__request__get_packed_size(req) == target)
            return;
    }
    fail_msg("could not pad a request to %zu bytes", target);
}

/* A request payload of exactly PYPROF_MAX_REQUEST encodes (and decodes); one more byte is
 * -EMSGSIZE with nothing allocated. */
static void test_request_encode_limit(void **state)
{
    (void)state;
    Pyprof__Request req = PYPROF__REQUEST__INIT;
    ProtobufCMessageUnknownField uf;
    Pyprof__Request *out = NULL;
    uint8_t *data = malloc(PYPROF_MAX_REQUEST + 16);
    uint8_t *frame = NULL;
    size_t frame_len = 0;

    assert_non_null(data);
    req.version = PYPROF_PROTOCOL_VERSION;
    req.op = PYPROF__OP__OP_DUMP;

    pad_request(&req, &uf, data, PYPROF_MAX_REQUEST);
    assert_int_equal(request_roundtrip(&req, &out), 0);
    assert_int_equal(out->op, PYPROF__OP__OP_DUMP);
    pyprof_request_free(out);

    pad_request(&req, &uf, data, PYPROF_MAX_REQUEST + 1);
    assert_int_equal(pyprof_request_encode(&req, &frame, &frame_len), -EMSGSIZE);
    assert_null(frame);
    assert_int_equal(frame_len, 0);
    free(data);
}

/* A response whose payload would pass PYPROF_MAX_RESPONSE is refused before allocating it;
 * one shared 1 MiB string repeated in string_table keeps the test's own memory small. */
static void test_response_encode_limit(void **state)
{
    (void)state;
    const size_t chunk = 1024 * 1024;
    const size_t count = PYPROF_MAX_RESPONSE / chunk + 1;
    struct fixture f;
    char *big = malloc(chunk + 1);
    char **table = malloc(count * sizeof(*table));
    uint8_t *frame = NULL;
    size_t frame_len = 0;

    assert_non_null(big);
    assert_non_null(table);
    memset(big, 's', chunk);
    big[chunk] = '\0';
    for (size_t i = 0; i < count; i++)
        table[i] = big;

    fixture_init(&f);
    f.profile.n_string_table = count;
    f.profile.string_table = table;
    assert_true(pyprof__response__get_packed_size(&f.resp) > PYPROF_MAX_RESPONSE);
    assert_int_equal(pyprof_response_encode(&f.resp, &frame, &frame_len), -EMSGSIZE);
    assert_null(frame);
    assert_int_equal(frame_len, 0);
    free(table);
    free(big);
}

/* ---- version and op checks ------------------------------------------------------------- */

/* A request or response from another protocol version is -EPROTO but still handed back,
 * so that the caller can name both versions. */
static void test_decode_wrong_version(void **state)
{
    (void)state;
    const uint32_t versions[] = { 0, PYPROF_PROTOCOL_VERSION + 1, UINT32_MAX };

    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
        Pyprof__Request req = PYPROF__REQUEST__INIT;
        Pyprof__Request *rout = NULL;
        struct fixture f;
        Pyprof__Response *sout = NULL;

        req.version = versions[i];
        req.op = PYPROF__OP__OP_STATUS;
        assert_int_equal(request_roundtrip(&req, &rout), -EPROTO);
        assert_non_null(rout);
        assert_int_equal(rout->version, versions[i]);
        assert_int_equal(rout->op, PYPROF__OP__OP_STATUS);
        pyprof_request_free(rout);

        fixture_init(&f);
        f.resp.version = versions[i];
        assert_int_equal(response_roundtrip(&f.resp, &sout), -EPROTO);
        assert_non_null(sout);
        assert_int_equal(sout->version, versions[i]);
        assert_status_equal(&f.status, sout->status);
        pyprof_response_free(sout);
    }
}

/* An op this agent does not know (a newer client's, or 0) is -EOPNOTSUPP and still handed
 * back with its number intact. */
static void test_decode_unknown_op(void **state)
{
    (void)state;
    const int ops[] = { 99, PYPROF__OP__OP_UNKNOWN, PYPROF__OP__OP_DUMP + 1, -7 };

    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        Pyprof__Request req = PYPROF__REQUEST__INIT;
        Pyprof__Request *out = NULL;

        req.version = PYPROF_PROTOCOL_VERSION;
        req.op = (Pyprof__Op)ops[i];
        assert_int_equal(request_roundtrip(&req, &out), -EOPNOTSUPP);
        assert_non_null(out);
        assert_true((int)out->op == ops[i]); /* the enum is unsigned underneath */
        assert_int_equal(out->version, PYPROF_PROTOCOL_VERSION);
        pyprof_request_free(out);
    }
}

/* The version check comes first: wrong version and unknown op together is -EPROTO. */
static void test_decode_version_before_op(void **state)
{
    (void)state;
    Pyprof__Request req = PYPROF__REQUEST__INIT;
    Pyprof__Request *out = NULL;

    req.version = PYPROF_PROTOCOL_VERSION + 1;
    req.op = (Pyprof__Op)99;
    assert_int_equal(request_roundtrip(&req, &out), -EPROTO);
    assert_non_null(out);
    assert_int_equal(out->op, 99);
    pyprof_request_free(out);
}

/* An empty payload is a valid proto3 message with every field zero: version 0, -EPROTO. */
static void test_decode_empty_payload(void **state)
{
    (void)state;
    const uint8_t none[1] = { 0 };
    Pyprof__Request *req = NULL;
    Pyprof__Response *resp = NULL;

    assert_int_equal(pyprof_request_decode(none, 0, &req), -EPROTO);
    assert_non_null(req);
    assert_int_equal(req->version, 0);
    assert_int_equal(req->op, PYPROF__OP__OP_UNKNOWN);
    pyprof_request_free(req);

    assert_int_equal(pyprof_request_decode(NULL, 0, &req), -EPROTO);
    pyprof_request_free(req);

    assert_int_equal(pyprof_response_decode(none, 0, &resp), -EPROTO);
    assert_non_null(resp);
    assert_int_equal(resp->version, 0);
    assert_null(resp->status);
    assert_null(resp->profile);
    pyprof_response_free(resp);
}

/* Unknown fields from a newer peer are skipped, not treated as corruption. */
static void test_decode_unknown_field(void **state)
{
    (void)state;
    /* version=1, op=STATUS, field 15 varint 5, field 16 string "hi" */
    const uint8_t bytes[] = { 0x08, 0x01, 0x10, 0x01, 0x78, 0x05, 0x82, 0x01, 0x02, 'h', 'i' };
    Pyprof__Request *out = NULL;

    assert_int_equal(pyprof_request_decode(bytes, sizeof(bytes), &out), 0);
    assert_int_equal(out->op, PYPROF__OP__OP_STATUS);
    pyprof_request_free(out);
}

/* ---- hostile and damaged input ---------------------------------------------------------- */

/* Hand-made malformed encodings are all -EBADMSG with nothing returned. */
static void test_decode_garbage_patterns(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        uint8_t bytes[16];
        size_t len;
    } cases[] = {
        { "field number 0", { 0x00 }, 1 },
        { "field number 0 with value", { 0x00, 0x01 }, 2 },
        /* protobuf-c keeps a zero tag spelled in two bytes as an unknown field (found by
         * fuzz_codec: it re-encodes into one byte, which then does not decode) */
        { "field number 0, long tag", { 0x08, 0x01, 0x80, 0x00, 0x00 }, 5 },
        { "field number 0, long tag, after a valid message", { 0x08, 0x01, 0x10, 0x01, 0x80,
                                                               0x80, 0x00, 0x05 }, 8 },
        { "all ones", { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }, 8 },
        { "tag without value", { 0x08 }, 1 },
        { "unterminated varint", { 0x08, 0x80, 0x80, 0x80 }, 4 },
        { "varint over 10 bytes", { 0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                                    0x80, 0x80, 0x01 }, 12 },
        { "length past the end", { 0x1a, 0x05, 'a', 'b' }, 4 },
        { "huge length", { 0x1a, 0xff, 0xff, 0xff, 0xff, 0x0f }, 6 },
        { "end group without start", { 0x0c }, 1 },
        { "wire type 7", { 0x0f, 0x00 }, 2 },
        { "truncated fixed64", { 0x09, 0x01, 0x02, 0x03 }, 4 },
        { "truncated fixed32", { 0x0d, 0x01, 0x02 }, 3 },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        /* Poisoned, so that a decoder which forgot to clear *out is caught. */
        Pyprof__Request *req = (Pyprof__Request *)&req;
        Pyprof__Response *resp = (Pyprof__Response *)&resp;
        int rc;

        rc = pyprof_request_decode(cases[i].bytes, cases[i].len, &req);
        if (rc != -EBADMSG || req != NULL)
            fail_msg("request, %s: rc %d", cases[i].what, rc);
        rc = pyprof_response_decode(cases[i].bytes, cases[i].len, &resp);
        if (rc != -EBADMSG || resp != NULL)
            fail_msg("response, %s: rc %d", cases[i].what, rc);
    }
}

/* A submessage field that arrives with the wrong wire type or broken contents is
 * rejected as a whole, not half-decoded. */
static void test_decode_bad_submessage(void **state)
{
    (void)state;
    /* version=1, then status (field 4) as a varint instead of length-delimited */
    const uint8_t wrong_type[] = { 0x08, 0x01, 0x20, 0x05 };
    /* version=1, status of 2 bytes holding a tag whose value is missing */
    const uint8_t broken_inner[] = { 0x08, 0x01, 0x22, 0x02, 0x08, 0x80 };
    /* version=1, profile (field 5) whose sample (field 2) overruns the profile */
    const uint8_t overrun[] = { 0x08, 0x01, 0x2a, 0x03, 0x12, 0x05, 0x08 };
    /* version=1, profile whose sample holds a field number 0 in a long tag */
    const uint8_t zero_deep[] = { 0x08, 0x01, 0x2a, 0x07, 0x12, 0x05, 0x08, 0x01, 0x80, 0x00,
                                  0x00 };
    Pyprof__Response *resp = NULL;

    assert_int_equal(pyprof_response_decode(wrong_type, sizeof(wrong_type), &resp), -EBADMSG);
    assert_null(resp);
    assert_int_equal(pyprof_response_decode(broken_inner, sizeof(broken_inner), &resp),
                     -EBADMSG);
    assert_null(resp);
    assert_int_equal(pyprof_response_decode(overrun, sizeof(overrun), &resp), -EBADMSG);
    assert_null(resp);
    assert_int_equal(pyprof_response_decode(zero_deep, sizeof(zero_deep), &resp), -EBADMSG);
    assert_null(resp);
}

/* Every prefix of a request either stops on a field boundary (and decodes to what was
 * there so far) or cuts a field (-EBADMSG). */
static void test_decode_truncated_request(void **state)
{
    (void)state;
    Pyprof__Request req = PYPROF__REQUEST__INIT;
    Pyprof__Request *out = NULL;
    size_t len;
    uint8_t *buf;

    req.version = PYPROF_PROTOCOL_VERSION;
    req.op = PYPROF__OP__OP_DUMP;
    req.reset_after = 1;
    buf = request_payload(&req, &len);
    assert_int_equal(len, 6); /* three one-byte tags, three one-byte values */

    for (size_t n = 0; n <= len; n++) {
        int rc = pyprof_request_decode(buf, n, &out);

        switch (n) {
        case 0: assert_int_equal(rc, -EPROTO); break;       /* nothing: version 0 */
        case 2: assert_int_equal(rc, -EOPNOTSUPP); break;   /* version only: op 0 */
        case 4: assert_int_equal(rc, 0);                    /* reset_after not yet */
                assert_int_equal(out->reset_after, 0); break;
        case 6: assert_int_equal(rc, 0);
                assert_int_equal(out->reset_after, 1); break;
        default: assert_int_equal(rc, -EBADMSG); break;     /* tag without its value */
        }
        assert_decode_coherent(rc, out);
        pyprof_request_free(out);
    }
    free(buf);
}

static size_t varint_len(uint64_t v)
{
    size_t n = 1;

    while (v > 0x7f) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Every prefix of a dump response decodes coherently, and any cut inside the trailing
 * profile field is -EBADMSG: a short read can never pass for a smaller profile. */
static void test_decode_truncated_response(void **state)
{
    (void)state;
    struct fixture f;
    Pyprof__Response *out = NULL;
    size_t len, profile_field, rejected = 0;
    uint8_t *buf;

    fixture_init(&f);
    buf = response_payload(&f.resp, &len);
    /* protobuf-c writes fields in number order, so profile (field 5) comes last. */
    profile_field = perftools__profiles__profile__get_packed_size(&f.profile);
    profile_field += 1 + varint_len(profile_field);
    assert_true(profile_field < len);

    for (size_t n = 0; n <= len; n++) {
        int rc = pyprof_response_decode(buf, n, &out);

        assert_decode_coherent(rc, out);
        if (n > len - profile_field && n < len)
            assert_int_equal(rc, -EBADMSG);
        if (n == len - profile_field) {
            assert_int_equal(rc, 0);
            assert_null(out->profile);
            assert_status_equal(&f.status, out->status);
        }
        if (n == len) {
            assert_int_equal(rc, 0);
            assert_profile_equal(&f.profile, out->profile);
        }
        rejected += rc == -EBADMSG;
        pyprof_response_free(out);
    }
    assert_true(rejected >= profile_field - 1);
    free(buf);
}

/* Seeded random byte strings never crash either decoder and always yield a coherent
 * result (run under ASan/UBSan to make "never crash" mean something). */
static void test_decode_random_bytes(void **state)
{
    (void)state;
    uint64_t seed = UINT64_C(0x9e3779b97f4a7c15);
    uint8_t buf[256];
    size_t bad = 0;

    for (int iter = 0; iter < 20000; iter++) {
        size_t len = xorshift64(&seed) % sizeof(buf);
        Pyprof__Request *req = NULL;
        Pyprof__Response *resp = NULL;
        int rc;

        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)xorshift64(&seed);
        rc = pyprof_request_decode(buf, len, &req);
        assert_decode_coherent(rc, req);
        pyprof_request_free(req);
        bad += rc == -EBADMSG;

        rc = pyprof_response_decode(buf, len, &resp);
        assert_decode_coherent(rc, resp);
        pyprof_response_free(resp);
    }
    assert_true(bad > 0); /* the loop did exercise the failure path */
}

/* A valid dump response with a few random bytes overwritten never crashes the decoder;
 * this reaches the nested Profile parsers that pure noise rarely gets into. */
static void test_decode_mutated_response(void **state)
{
    (void)state;
    uint64_t seed = 42;
    struct fixture f;
    uint8_t *good, *buf;
    size_t len;

    fixture_init(&f);
    good = response_payload(&f.resp, &len);
    buf = malloc(len);
    assert_non_null(buf);

    for (int iter = 0; iter < 20000; iter++) {
        Pyprof__Response *out = NULL;
        int flips = 1 + (int)(xorshift64(&seed) % 4);
        size_t cut = len - (size_t)(xorshift64(&seed) % 8);
        int rc;

        memcpy(buf, good, len);
        while (flips-- > 0)
            buf[xorshift64(&seed) % len] = (uint8_t)xorshift64(&seed);
        rc = pyprof_response_decode(buf, cut, &out);
        assert_decode_coherent(rc, out);
        pyprof_response_free(out);
    }
    free(buf);
    free(good);
}

/* Bad arguments are -EINVAL rather than a crash. */
static void test_bad_arguments(void **state)
{
    (void)state;
    Pyprof__Request *req = NULL;
    uint8_t *frame = NULL;
    size_t frame_len = 0;

    assert_int_equal(pyprof_request_decode(NULL, 4, &req), -EINVAL);
    assert_null(req);
    assert_int_equal(pyprof_request_encode(NULL, &frame, &frame_len), -EINVAL);
    assert_int_equal(pyprof_response_encode(NULL, &frame, &frame_len), -EINVAL);
    assert_null(frame);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_op_name),
        cmocka_unit_test(test_frame_peek_short),
        cmocka_unit_test(test_frame_peek_exact_header),
        cmocka_unit_test(test_frame_peek_zero),
        cmocka_unit_test(test_frame_peek_oversized),
        cmocka_unit_test(test_frame_peek_boundary),
        cmocka_unit_test(test_frame_header_roundtrip),
        cmocka_unit_test(test_request_roundtrip_each_op),
        cmocka_unit_test(test_response_roundtrip_profile),
        cmocka_unit_test(test_response_roundtrip_error),
        cmocka_unit_test(test_free_null),
        cmocka_unit_test(test_request_encode_limit),
        cmocka_unit_test(test_response_encode_limit),
        cmocka_unit_test(test_decode_wrong_version),
        cmocka_unit_test(test_decode_unknown_op),
        cmocka_unit_test(test_decode_version_before_op),
        cmocka_unit_test(test_decode_empty_payload),
        cmocka_unit_test(test_decode_unknown_field),
        cmocka_unit_test(test_decode_garbage_patterns),
        cmocka_unit_test(test_decode_bad_submessage),
        cmocka_unit_test(test_decode_truncated_request),
        cmocka_unit_test(test_decode_truncated_response),
        cmocka_unit_test(test_decode_random_bytes),
        cmocka_unit_test(test_decode_mutated_response),
        cmocka_unit_test(test_bad_arguments),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
