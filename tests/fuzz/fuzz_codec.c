/*
 * libFuzzer target: bytes from a peer on the control socket, as the agent's server and
 * pyprofctl's client read them. The input is a stream of frames; each complete payload is
 * decoded as a request (when within the agent's limit) and as a response. Beyond not
 * crashing, a decoded message must encode into a frame that decodes to the same result and
 * the same bytes again, and a dump response's profile goes through every renderer, as
 * `pyprofctl dump` would write it.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "render.h"

/* Which decode results exist, and that a message comes back exactly when the bytes parsed. */
static void check_result(int rc, const void *msg)
{
    FUZZ_CHECK(rc == 0 || rc == -EBADMSG || rc == -EPROTO || rc == -EOPNOTSUPP);
    FUZZ_CHECK((rc == -EBADMSG) == (msg == NULL));
}

/* The frame's header must announce its payload, within the limit of that direction. */
static const uint8_t *check_frame(const uint8_t *frame, size_t len, size_t max)
{
    size_t payload = 0;
    FUZZ_CHECK(pyprof_frame_peek(frame, len, max, &payload) == 1);
    FUZZ_CHECK(len == PYPROF_FRAME_HEADER + payload);
    return frame + PYPROF_FRAME_HEADER;
}

/* The codec is typed; these let one set of checks serve both directions, by the
 * message's descriptor. */
static int is_request(const ProtobufCMessage *msg)
{
    return msg->descriptor == &pyprof__request__descriptor;
}

static int decode(int request, const uint8_t *payload, size_t len, ProtobufCMessage **msg)
{
    Pyprof__Request *req = NULL;
    Pyprof__Response *resp = NULL;
    int rc = request ? pyprof_request_decode(payload, len, &req)
                     : pyprof_response_decode(payload, len, &resp);
    *msg = req ? &req->base : resp ? &resp->base : NULL;
    return rc;
}

static int encode(const ProtobufCMessage *msg, uint8_t **frame, size_t *len)
{
    return is_request(msg) ? pyprof_request_encode((const Pyprof__Request *)msg, frame, len)
                           : pyprof_response_encode((const Pyprof__Response *)msg, frame, len);
}

static void release(ProtobufCMessage *msg)
{
    if (msg != NULL && is_request(msg))
        pyprof_request_free((Pyprof__Request *)msg);
    else
        pyprof_response_free((Pyprof__Response *)msg);
}

/*
 * Decode a payload; a message that decoded (even one refused for its version or op, which
 * the agent answers with) must encode into a frame that decodes to the same result and
 * encodes to the same bytes again. Returns the decode result, the message in *msg.
 */
static int decode_checked(int request, const uint8_t *payload, size_t len,
                          ProtobufCMessage **msg)
{
    size_t max = request ? PYPROF_MAX_REQUEST : PYPROF_MAX_RESPONSE, n, n2;
    uint8_t *frame, *frame2;
    ProtobufCMessage *again;
    int rc = decode(request, payload, len, msg);
    check_result(rc, *msg);
    if (*msg == NULL || encode(*msg, &frame, &n) != 0)
        return rc;
    FUZZ_CHECK(decode(request, check_frame(frame, n, max), n - PYPROF_FRAME_HEADER, &again) == rc);
    FUZZ_CHECK(encode(again, &frame2, &n2) == 0);
    FUZZ_CHECK(n2 == n && memcmp(frame, frame2, n) == 0);
    free(frame2);
    release(again);
    free(frame);
    return rc;
}

static void fuzz_request(const uint8_t *payload, size_t len)
{
    ProtobufCMessage *msg;
    decode_checked(1, payload, len, &msg);
    if (msg != NULL)
        pyprof_op_name(((Pyprof__Request *)msg)->op);
    release(msg);
}

static void fuzz_response(const uint8_t *payload, size_t len)
{
    ProtobufCMessage *msg;
    int rc = decode_checked(0, payload, len, &msg);
    FUZZ_CHECK(rc != -EOPNOTSUPP);   /* responses carry no op */
    /* pyprofctl renders whatever profile a version-matched agent sent. */
    if (rc == 0 && ((Pyprof__Response *)msg)->profile != NULL)
        fuzz_render(((Pyprof__Response *)msg)->profile);
    release(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t len;
    /* A frame the agent refuses (-EMSGSIZE) may still be one the client accepts. */
    while (pyprof_frame_peek(data, size, PYPROF_MAX_RESPONSE, &len) == 1 &&
           len <= size - PYPROF_FRAME_HEADER) {
        size_t req_len = 0;
        int req = pyprof_frame_peek(data, size, PYPROF_MAX_REQUEST, &req_len);
        FUZZ_CHECK(req == (len <= PYPROF_MAX_REQUEST ? 1 : -EMSGSIZE));
        if (req == 1)
            fuzz_request(data + PYPROF_FRAME_HEADER, len);
        fuzz_response(data + PYPROF_FRAME_HEADER, len);
        data += PYPROF_FRAME_HEADER + len;
        size -= PYPROF_FRAME_HEADER + len;
    }
    return 0;
}
