/*
 * Framing and validation for the pyprof control protocol; see codec.h.
 *
 * Everything here works on caller-owned memory and locals only, so both the agent's event
 * loop and pyprofctl can call it from any thread. protobuf-c does the wire format; this file
 * adds the frame header, the size limits and the checks protobuf-c does not make (version,
 * op), so that the two programs never have to reason about a half-valid message.
 */
#include <errno.h>
#include <stdlib.h>

#include "codec.h"

static uint32_t load_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

int pyprof_frame_peek(const uint8_t *buf, size_t len, size_t max_payload, size_t *payload_len)
{
    uint32_t n;

    if (len < PYPROF_FRAME_HEADER)
        return 0;

    /* Refuse before the caller allocates: the length is the peer's claim, not a fact. */
    n = load_be32(buf);
    if (n > max_payload)
        return -EMSGSIZE;

    *payload_len = n;
    return 1;
}

void pyprof_frame_header(uint8_t out[PYPROF_FRAME_HEADER], uint32_t payload_len)
{
    out[0] = (uint8_t)(payload_len >> 24);
    out[1] = (uint8_t)(payload_len >> 16);
    out[2] = (uint8_t)(payload_len >> 8);
    out[3] = (uint8_t)payload_len;
}

/*
 * Size first, then one allocation for header and payload, so that the caller can hand the
 * frame to a single write and free it in one go.
 */
static int frame_encode(const ProtobufCMessage *msg, size_t max_payload,
                        uint8_t **out, size_t *out_len)
{
    uint8_t *buf;
    size_t n;
    int rc;

    if (msg == NULL || out == NULL || out_len == NULL)
        return -EINVAL;

    /* The limit is checked against the encoded size so the peer never sees a frame it
     * would have to reject; the limits fit in the 32-bit header by construction. */
    n = protobuf_c_message_get_packed_size(msg);
    if (n > max_payload)
        return -EMSGSIZE;

    buf = malloc(PYPROF_FRAME_HEADER + n);
    if (buf == NULL)
        return -ENOMEM;

    pyprof_frame_header(buf, (uint32_t)n);
    if (protobuf_c_message_pack(msg, buf + PYPROF_FRAME_HEADER) != n) {
        rc = -EINVAL; /* a message mutated under us, or a corrupt one */
        goto cleanup;
    }

    *out = buf;
    *out_len = PYPROF_FRAME_HEADER + n;
    return 0;

cleanup:
    free(buf);
    return rc;
}

int pyprof_request_encode(const Pyprof__Request *req, uint8_t **out, size_t *out_len)
{
    return frame_encode(req ? &req->base : NULL, PYPROF_MAX_REQUEST, out, out_len);
}

int pyprof_response_encode(const Pyprof__Response *resp, uint8_t **out, size_t *out_len)
{
    return frame_encode(resp ? &resp->base : NULL, PYPROF_MAX_RESPONSE, out, out_len);
}

static int op_known(int op)
{
    switch (op) {
    case PYPROF__OP__OP_STATUS:
    case PYPROF__OP__OP_START:
    case PYPROF__OP__OP_STOP:
    case PYPROF__OP__OP_RESET:
    case PYPROF__OP__OP_DUMP:
        return 1;
    default:
        return 0; /* OP_UNKNOWN too: a zero op is what an empty or foreign message carries */
    }
}

/*
 * Field number 0 does not exist, and protobuf-c refuses it as a one-byte tag but keeps it,
 * as an unknown field, when the tag is spelled in more bytes than it needs ("80 00"):
 * such a message would encode into one that no longer decodes. Refused here, at any depth
 * (our messages nest a few levels: response, profile, sample...).
 */
static int has_field_zero(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        if (m->unknown_fields[i].tag == 0)
            return 1;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *at = (const char *)m + f->offset;
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
            ProtobufCMessage *const *items = *(ProtobufCMessage *const *const *)at;
            for (size_t k = 0; k < n; k++)
                if (has_field_zero(items[k]))
                    return 1;
        } else {
            const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)at;
            if (sub != NULL && has_field_zero(sub))
                return 1;
        }
    }
    return 0;
}

/*
 * protobuf-c returns NULL both for malformed bytes and for a failed allocation; with the
 * default allocator the two cannot be told apart, and the caller's answer (drop the
 * connection) is the same, so both are -EBADMSG. Neither schema is recursive, so hostile
 * input cannot nest deeper than the message definitions do.
 */
int pyprof_request_decode(const uint8_t *payload, size_t len, Pyprof__Request **out)
{
    Pyprof__Request *req;

    *out = NULL;
    if (payload == NULL && len > 0)
        return -EINVAL;

    req = pyprof__request__unpack(NULL, len, payload);
    if (req == NULL)
        return -EBADMSG;
    if (has_field_zero(&req->base)) {
        pyprof__request__free_unpacked(req, NULL);
        return -EBADMSG;
    }

    /* Returned even when refused: the caller answers with both versions, or the op. */
    *out = req;
    if (req->version != PYPROF_PROTOCOL_VERSION)
        return -EPROTO;
    if (!op_known(req->op))
        return -EOPNOTSUPP;
    return 0;
}

int pyprof_response_decode(const uint8_t *payload, size_t len, Pyprof__Response **out)
{
    Pyprof__Response *resp;

    *out = NULL;
    if (payload == NULL && len > 0)
        return -EINVAL;

    resp = pyprof__response__unpack(NULL, len, payload);
    if (resp == NULL)
        return -EBADMSG;
    if (has_field_zero(&resp->base)) {
        pyprof__response__free_unpacked(resp, NULL);
        return -EBADMSG;
    }

    *out = resp;
    if (resp->version != PYPROF_PROTOCOL_VERSION)
        return -EPROTO;
    return 0;
}

void pyprof_request_free(Pyprof__Request *req)
{
    if (req != NULL)
        pyprof__request__free_unpacked(req, NULL);
}

void pyprof_response_free(Pyprof__Response *resp)
{
    if (resp != NULL)
        pyprof__response__free_unpacked(resp, NULL);
}

const char *pyprof_op_name(int op)
{
    switch (op) {
    case PYPROF__OP__OP_STATUS:
        return "status";
    case PYPROF__OP__OP_START:
        return "start";
    case PYPROF__OP__OP_STOP:
        return "stop";
    case PYPROF__OP__OP_RESET:
        return "reset";
    case PYPROF__OP__OP_DUMP:
        return "dump";
    default:
        return "unknown";
    }
}
