/*
 * Framing and validation for the pyprof control protocol (pyprof.proto).
 *
 * A frame is a 4-byte big-endian payload length followed by the payload, one protobuf
 * message. The codec does no I/O and holds no state: callers own every buffer, and
 * decoded messages are owned by the caller and freed with the matching *_free().
 * Thread-safety: every function is reentrant.
 */
#ifndef PYPROF_PROTO_CODEC_H
#define PYPROF_PROTO_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "pyprof.pb-c.h"

#define PYPROF_PROTOCOL_VERSION 1
#define PYPROF_FRAME_HEADER 4
#define PYPROF_MAX_REQUEST (64u * 1024u)          /* payload limit, agent side */
#define PYPROF_MAX_RESPONSE (512u * 1024u * 1024u) /* payload limit, client side */

/*
 * Look at the start of a byte stream. Returns 0 when fewer than PYPROF_FRAME_HEADER bytes
 * are there, 1 with *payload_len set when the header is complete, -EMSGSIZE when the
 * announced payload exceeds `max_payload`. (It does not check that the payload has arrived:
 * the caller compares len with PYPROF_FRAME_HEADER + *payload_len.)
 */
int pyprof_frame_peek(const uint8_t *buf, size_t len, size_t max_payload, size_t *payload_len);

/* Write the 4-byte header for a payload of `payload_len` bytes. */
void pyprof_frame_header(uint8_t out[PYPROF_FRAME_HEADER], uint32_t payload_len);

/*
 * Encode a message as one frame into a malloc'd buffer (*out, *out_len); the caller frees
 * it. 0, -ENOMEM, or -EMSGSIZE past the PYPROF_MAX_* limit for that direction.
 */
int pyprof_request_encode(const Pyprof__Request *req, uint8_t **out, size_t *out_len);
int pyprof_response_encode(const Pyprof__Response *resp, uint8_t **out, size_t *out_len);

/*
 * Decode one payload (without its header). The version field must equal
 * PYPROF_PROTOCOL_VERSION and, for requests, op must be a known operation.
 * 0 with *out set (free with the matching *_free), -EBADMSG for bytes that are not a valid
 * message, -EPROTO for a version mismatch (the message is still returned in *out so that
 * the caller can report both versions), -EOPNOTSUPP for an unknown op (also returned).
 */
int pyprof_request_decode(const uint8_t *payload, size_t len, Pyprof__Request **out);
int pyprof_response_decode(const uint8_t *payload, size_t len, Pyprof__Response **out);
void pyprof_request_free(Pyprof__Request *req);
void pyprof_response_free(Pyprof__Response *resp);

/* A short static name for an op ("status", "dump", ...), "unknown" otherwise. */
const char *pyprof_op_name(int op);

#endif
