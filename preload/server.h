/*
 * The control socket: a libuv loop on its own thread (all signals blocked), serving one
 * request per connection on a Unix socket. Only peers with our uid (or root) are served.
 * A peer that announces an oversized frame, or stalls half-way through one, is dropped;
 * a malformed request gets an error response. Nothing a peer sends can reach the host.
 *
 * The handler runs on the server thread and fills the response; the server owns the
 * request and frees it afterwards. Start and stop are called from one thread at a time.
 */
#ifndef PYPROF_SERVER_H
#define PYPROF_SERVER_H

#include "pyprof.pb-c.h"

struct pyprof_server;

/* Fill `resp` (already initialised, version set). `cleanup` is called after the response
 * has been encoded, to free what the handler attached to it. */
struct pyprof_handler {
    void (*handle)(void *ctx, const Pyprof__Request *req, Pyprof__Response *resp);
    void (*cleanup)(void *ctx, Pyprof__Response *resp);
    void *ctx;
};

/* Bind `path` (removing a stale socket of ours first), chmod it 0600 and start serving.
 * 0 or -errno; on error nothing is left behind. */
int pyprof_server_start(struct pyprof_server **out, const char *path,
                        const struct pyprof_handler *handler);

/* Stop the thread, close every connection, remove the socket file. NULL is a no-op. */
void pyprof_server_stop(struct pyprof_server *server);

#endif
