#include "server.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "codec.h"
#include "endpoint.h"
#include "log.h"

#define STALL_TIMEOUT_MS 5000   /* a peer has this long to send a whole request */

struct pyprof_server {
    uv_loop_t loop;
    uv_pipe_t listener;
    uv_async_t stop;
    pthread_t thread;
    struct pyprof_handler handler;
    char path[PYPROF_SOCKET_PATH_MAX];
    uid_t uid;
};

struct conn {
    uv_pipe_t pipe;
    uv_timer_t timer;
    struct pyprof_server *server;
    uint8_t *buf;
    size_t len, cap;
    int closing, replied;
};

static void conn_free_cb(uv_handle_t *handle)
{
    struct conn *c = handle->data;
    /* Two handles close; the second one frees. */
    if (++c->closing == 3) {
        free(c->buf);
        free(c);
    }
}

static void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    uv_read_stop((uv_stream_t *)&c->pipe);
    uv_close((uv_handle_t *)&c->timer, conn_free_cb);
    uv_close((uv_handle_t *)&c->pipe, conn_free_cb);
}

static void stall_cb(uv_timer_t *timer)
{
    conn_close(timer->data);
}

struct write_req {
    uv_write_t req;
    uint8_t *frame;
};

static void write_cb(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    struct conn *c = req->data;
    (void)status;
    free(w->frame);
    free(w);
    conn_close(c);
}

static void send_response(struct conn *c, Pyprof__Response *resp)
{
    uint8_t *frame = NULL;
    size_t len = 0;
    int rc = pyprof_response_encode(resp, &frame, &len);
    if (rc != 0) {
        /* Too big or no memory: say so rather than leave the client waiting. */
        Pyprof__Response fallback = PYPROF__RESPONSE__INIT;
        fallback.version = PYPROF_PROTOCOL_VERSION;
        fallback.error = -rc;
        fallback.message = (char *)"the response could not be encoded (profile too large?)";
        if (pyprof_response_encode(&fallback, &frame, &len) != 0) {
            conn_close(c);
            return;
        }
    }
    struct write_req *w = malloc(sizeof(*w));
    if (w == NULL) {
        free(frame);
        conn_close(c);
        return;
    }
    w->frame = frame;
    w->req.data = c;
    uv_buf_t buf = uv_buf_init((char *)frame, (unsigned)len);
    c->replied = 1;
    uv_read_stop((uv_stream_t *)&c->pipe);
    if (uv_write(&w->req, (uv_stream_t *)&c->pipe, &buf, 1, write_cb) != 0) {
        free(frame);
        free(w);
        conn_close(c);
    }
}

static void reply_error(struct conn *c, int error, const char *message)
{
    Pyprof__Response resp = PYPROF__RESPONSE__INIT;
    resp.version = PYPROF_PROTOCOL_VERSION;
    resp.error = error;
    resp.message = (char *)message;
    send_response(c, &resp);
}

static void handle_request(struct conn *c, const uint8_t *payload, size_t len)
{
    Pyprof__Request *req = NULL;
    int rc = pyprof_request_decode(payload, len, &req);
    if (rc == -EPROTO) {
        reply_error(c, EPROTO, "protocol version mismatch");
    } else if (rc == -EOPNOTSUPP) {
        reply_error(c, EOPNOTSUPP, "unknown operation");
    } else if (rc != 0) {
        reply_error(c, EBADMSG, "malformed request");
    } else {
        Pyprof__Response resp = PYPROF__RESPONSE__INIT;
        resp.version = PYPROF_PROTOCOL_VERSION;
        struct pyprof_handler *h = &c->server->handler;
        h->handle(h->ctx, req, &resp);
        send_response(c, &resp);
        if (h->cleanup)
            h->cleanup(h->ctx, &resp);
    }
    pyprof_request_free(req);
}

static void alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = handle->data;
    (void)suggested;
    if (c->cap - c->len < 4096) {
        size_t cap = c->cap ? c->cap * 2 : 8192;
        uint8_t *p = cap <= PYPROF_MAX_REQUEST + 2 * 8192 ? realloc(c->buf, cap) : NULL;
        if (p == NULL) {
            *buf = uv_buf_init(NULL, 0);   /* read_cb gets UV_ENOBUFS and drops the peer */
            return;
        }
        c->buf = p;
        c->cap = cap;
    }
    *buf = uv_buf_init((char *)c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = stream->data;
    (void)buf;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    c->len += (size_t)nread;
    size_t payload = 0;
    int rc = pyprof_frame_peek(c->buf, c->len, PYPROF_MAX_REQUEST, &payload);
    if (rc < 0) {
        pyprof_debug("dropping a client that announced an oversized request");
        conn_close(c);
    } else if (rc == 1 && c->len >= PYPROF_FRAME_HEADER + payload) {
        handle_request(c, c->buf + PYPROF_FRAME_HEADER, payload);
    }
}

static int peer_allowed(struct pyprof_server *s, uv_pipe_t *pipe)
{
    uv_os_fd_t fd;
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (uv_fileno((uv_handle_t *)pipe, &fd) != 0 ||
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
        return 0;
    return cred.uid == s->uid || cred.uid == 0;
}

static void connection_cb(uv_stream_t *listener, int status)
{
    struct pyprof_server *s = listener->data;
    if (status != 0)
        return;
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->server = s;
    uv_pipe_init(&s->loop, &c->pipe, 0);
    uv_timer_init(&s->loop, &c->timer);
    c->pipe.data = c->timer.data = c;
    if (uv_accept(listener, (uv_stream_t *)&c->pipe) != 0 || !peer_allowed(s, &c->pipe)) {
        pyprof_debug("refused a connection from another user");
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, stall_cb, STALL_TIMEOUT_MS, 0);
    uv_read_start((uv_stream_t *)&c->pipe, alloc_cb, read_cb);
}

static void close_any(uv_handle_t *handle, void *arg)
{
    (void)arg;
    if (uv_is_closing(handle))
        return;
    if (handle->type == UV_NAMED_PIPE && handle->data != NULL &&
        handle->data != (void *)handle->loop->data) {
        conn_close(handle->data);
        return;
    }
    if (handle->type == UV_TIMER)
        return;   /* closed with its connection */
    uv_close(handle, NULL);
}

static void stop_cb(uv_async_t *async)
{
    uv_walk(async->loop, close_any, NULL);
}

static void *server_main(void *arg)
{
    struct pyprof_server *s = arg;
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return NULL;
}

static int bind_socket(struct pyprof_server *s)
{
    int rc;
    unlink(s->path);   /* our pid is in the name: anything there is a stale leftover */
    if ((rc = uv_pipe_init(&s->loop, &s->listener, 0)) != 0)
        return rc;
    s->listener.data = s;
    if ((rc = uv_pipe_bind(&s->listener, s->path)) != 0)
        return rc;
    if (chmod(s->path, 0600) != 0)
        return -errno;
    return uv_listen((uv_stream_t *)&s->listener, 64, connection_cb);
}

int pyprof_server_start(struct pyprof_server **out, const char *path,
                        const struct pyprof_handler *handler)
{
    struct pyprof_server *s = calloc(1, sizeof(*s));
    int rc;
    if (s == NULL)
        return -ENOMEM;
    if (strlen(path) >= sizeof(s->path)) {
        free(s);
        return -ENAMETOOLONG;
    }
    strcpy(s->path, path);
    s->handler = *handler;
    s->uid = getuid();
    if ((rc = uv_loop_init(&s->loop)) != 0) {
        free(s);
        return rc;
    }
    s->loop.data = s;
    uv_async_init(&s->loop, &s->stop, stop_cb);
    s->stop.data = s;
    if ((rc = bind_socket(s)) != 0)
        goto fail;

    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = -pthread_create(&s->thread, NULL, server_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        goto fail;
    *out = s;
    return 0;
fail:
    uv_walk(&s->loop, close_any, NULL);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    uv_loop_close(&s->loop);
    unlink(s->path);
    free(s);
    return rc;
}

void pyprof_server_stop(struct pyprof_server *s)
{
    if (s == NULL)
        return;
    uv_async_send(&s->stop);
    pthread_join(s->thread, NULL);
    uv_loop_close(&s->loop);
    unlink(s->path);
    free(s);
}
