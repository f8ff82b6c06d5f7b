/*
 * pyprofctl's side of the control socket: find a process's socket, send one request, read
 * one response. Blocking I/O with a time limit; no state kept between calls.
 */
#ifndef PYPROF_CTL_CLIENT_H
#define PYPROF_CTL_CLIENT_H

#include <stddef.h>
#include <sys/types.h>

#include "pyprof.pb-c.h"

/*
 * Ask process `pid` (its socket in `dir`). 0 with *out (free with pyprof_response_free),
 * or -errno with a one-line explanation in `err`:
 *   -ESRCH no such process (a stale socket of it is removed), -ENOENT not profiled,
 *   -EACCES permission denied, -ECONNREFUSED stale socket (removed), -EPROTO protocol
 *   version mismatch, -ETIMEDOUT no answer, -EBADMSG malformed answer.
 */
int pyprof_client_call(const char *dir, pid_t pid, const Pyprof__Request *req,
                       Pyprof__Response **out, char *err, size_t errlen);

#endif
