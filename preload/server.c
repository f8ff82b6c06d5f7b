#include "server.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "codec.h"
#include "endpoint.h"
#include "fds.h"
#include "log.h"
#include "thread.h"

#define STALL_TIMEOUT_MS 5000   /* a peer has this long to send a whole request */
#define MAX_WAIT_MS 1000        /* the server thread looks at its descriptors this often */

struct pyprof_server {
    uv_loop_t loop;
    uv_poll_t accepting;        /* the listening socket (ours, not libuv's) */
    uv_pipe_t primer;           /* the first stream: libuv opens its reserve fd for it */
    int listen_fd, wake_fd;     /* both ours, lifted above the host's descriptors */
    struct pyprof_fd_guard guard;   /* the loop's descriptors and ours */
    _Atomic int quit;
    int loop_ready;             /* uv_loop_init succeeded: the loop must be closed */
    int broken;                 /* the host closed one of our descriptors: touch nothing */
    struct pyprof_thread thread;
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

static int peer_allowed(struct pyprof_server *s, int fd)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
        return 0;
    return cred.uid == s->uid || cred.uid == 0;
}

/* One connection, accepted by us (so that its descriptor can be lifted before libuv
 * owns it). */
static void serve_connection(struct pyprof_server *s, int fd)
{
    if (!peer_allowed(s, fd)) {
        pyprof_debug("refused a connection from another user");
        close(fd);
        return;
    }
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        return;
    }
    c->server = s;
    uv_pipe_init(&s->loop, &c->pipe, 0);
    uv_timer_init(&s->loop, &c->timer);
    c->pipe.data = c->timer.data = c;
    fd = pyprof_fd_lift(fd);
    if (uv_pipe_open(&c->pipe, fd) != 0) {
        close(fd);
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, stall_cb, STALL_TIMEOUT_MS, 0);
    uv_read_start((uv_stream_t *)&c->pipe, alloc_cb, read_cb);
}

#define ACCEPT_BATCH 64

static void accept_cb(uv_poll_t *poll, int status, int events)
{
    struct pyprof_server *s = poll->data;
    (void)events;
    if (status != 0)
        return;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
            return;   /* EAGAIN: all taken; anything else: the peer is gone */
        serve_connection(s, fd);
    }
}

static void close_any(uv_handle_t *handle, void *arg)
{
    (void)arg;
    if (uv_is_closing(handle))
        return;
    if (handle->type == UV_NAMED_PIPE && handle->data != NULL) {
        conn_close(handle->data);
        return;
    }
    if (handle->type == UV_TIMER && handle->data != NULL)
        return;   /* closed with its connection */
    uv_close(handle, NULL);
}

/*
 * libuv's loop, driven from outside: wait in poll() on its backend descriptor and our wake
 * descriptor, then let it run what is ready. Before every run, check that the host has
 * not closed any descriptor of ours (os.closerange() in a daemon): libuv aborts the
 * process on a closed epoll descriptor. If it did, stop serving for good and never touch
 * the loop again.
 */
static void *server_main(void *arg)
{
    struct pyprof_server *s = arg;
    struct pollfd fds[2] = {{uv_backend_fd(&s->loop), POLLIN, 0}, {s->wake_fd, POLLIN, 0}};
    while (!atomic_load(&s->quit)) {
        int timeout = uv_backend_timeout(&s->loop);
        poll(fds, 2, timeout >= 0 && timeout < MAX_WAIT_MS ? timeout : MAX_WAIT_MS);
        if (atomic_load(&s->quit))
            break;
        if (!pyprof_fd_guard_intact(&s->guard)) {
            s->broken = 1;
            pyprof_warn("the program closed a file descriptor of the agent; the control "
                        "socket %s is off (sampling goes on)", s->path);
            return NULL;
        }
        uint64_t drained;
        if (fds[1].revents & POLLIN && read(s->wake_fd, &drained, sizeof(drained)) < 0)
            continue;
        uv_run(&s->loop, UV_RUN_NOWAIT);
    }
    return NULL;   /* the stopping thread closes the loop */
}

/* "DIR/pyprof.PID.sock" -> "DIR/pyprof.PID.bind": where the socket is made ready. */
static int bind_path(const char *path, char *out, size_t size)
{
    size_t len = strlen(path);
    if (len < 5 || len >= size || strcmp(path + len - 5, ".sock") != 0)
        return -EINVAL;
    memcpy(out, path, len - 5);
    memcpy(out + len - 5, ".bind", 6);
    return 0;
}

/*
 * The socket takes its name only once it listens: it is bound and made private under a
 * temporary name beside it, then renamed into place (atomically replacing any stale
 * leftover: our pid is in the name). A client that finds the name but is refused
 * (ECONNREFUSED) takes it for a dead agent's leftover and removes it; bound under its
 * real name, the socket refused connections until listen(), and a client polling then
 * (around a fork, when the parent serves again) removed the live agent's socket: the
 * agent then failed ("cannot serve ...: No such file or directory; pyprof is off") or
 * listened on a name nobody could find. libuv unlinks the bound (temporary) name when
 * the listener closes; pyprof_server_stop() removes the real one first.
 */
static int bind_socket(struct pyprof_server *s)
{
    char tmp[PYPROF_SOCKET_PATH_MAX];
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int rc;
    if ((rc = bind_path(s->path, tmp, sizeof(tmp))) != 0)
        return rc;
    if (strlen(tmp) >= sizeof(addr.sun_path))
        return -ENAMETOOLONG;
    strcpy(addr.sun_path, tmp);
    unlink(tmp);   /* a leftover of a process killed right here */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    s->listen_fd = pyprof_fd_lift(fd);
    if (bind(s->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) != 0)
        return -errno;
    if (chmod(tmp, 0600) != 0 || listen(s->listen_fd, 64) != 0 || rename(tmp, s->path) != 0) {
        rc = -errno;
        unlink(tmp);
        return rc;
    }
    return 0;
}

/* The loop, with every free descriptor below the base held while libuv makes its own
 * (epoll, signal pipes, eventfd, and the /dev/null it keeps in reserve from its first
 * stream on): they land above it; the guard learns them. */
static int init_loop(struct pyprof_server *s)
{
    struct pyprof_fd_fill fill;
    pyprof_fd_fill_low(&fill);
    unsigned long long before = pyprof_fd_open_above_base();
    int rc = uv_loop_init(&s->loop);
    if (rc == 0) {
        uv_pipe_init(&s->loop, &s->primer, 0);
        uv_close((uv_handle_t *)&s->primer, NULL);
    }
    unsigned long long after = pyprof_fd_open_above_base();
    pyprof_fd_fill_release(&fill);
    if (rc != 0)
        return rc;
    s->loop_ready = 1;
    s->loop.data = s;
    return pyprof_fd_guard_add_new(&s->guard, before, after);
}

static int init_wake(struct pyprof_server *s)
{
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0)
        return -errno;
    s->wake_fd = pyprof_fd_lift(fd);
    return pyprof_fd_guard_add(&s->guard, s->wake_fd);
}

/* Close what start made, in reverse; the loop and our descriptors only while they are
 * still ours. */
static void teardown(struct pyprof_server *s)
{
    int ours = !s->broken && pyprof_fd_guard_intact(&s->guard);
    if (s->loop_ready && ours) {
        uv_walk(&s->loop, close_any, NULL);
        uv_run(&s->loop, UV_RUN_DEFAULT);
        uv_loop_close(&s->loop);
    }
    if (s->listen_fd >= 0 && (ours || pyprof_fd_guard_holds(&s->guard, s->listen_fd)))
        close(s->listen_fd);
    if (s->wake_fd >= 0 && (ours || pyprof_fd_guard_holds(&s->guard, s->wake_fd)))
        close(s->wake_fd);
    free(s);
}

int pyprof_server_start(struct pyprof_server **out, const char *path,
                        const struct pyprof_handler *handler)
{
    struct pyprof_server *s = calloc(1, sizeof(*s));
    int rc;
    if (s == NULL)
        return -ENOMEM;
    s->listen_fd = s->wake_fd = -1;
    if (strlen(path) >= sizeof(s->path)) {
        free(s);
        return -ENAMETOOLONG;
    }
    strcpy(s->path, path);
    s->handler = *handler;
    s->uid = getuid();
    if ((rc = init_loop(s)) != 0 || (rc = init_wake(s)) != 0 || (rc = bind_socket(s)) != 0 ||
        (rc = pyprof_fd_guard_add(&s->guard, s->listen_fd)) != 0)
        goto fail;
    uv_poll_init(&s->loop, &s->accepting, s->listen_fd);
    s->accepting.data = s;
    if ((rc = uv_poll_start(&s->accepting, UV_READABLE, accept_cb)) != 0 ||
        (rc = pyprof_thread_start(&s->thread, server_main, s)) != 0)
        goto fail;
    *out = s;
    return 0;
fail:
    unlink(s->path);
    teardown(s);
    return rc;
}

void pyprof_server_stop(struct pyprof_server *s)
{
    if (s == NULL)
        return;
    unlink(s->path);   /* first: the name never points to a socket that stopped listening */
    atomic_store(&s->quit, 1);
    uint64_t one = 1;
    /* A number the host reused is not ours to write to: the thread then wakes at its next
     * timer, or has already stopped (it checks before every run). */
    if (pyprof_fd_guard_holds(&s->guard, s->wake_fd) && write(s->wake_fd, &one, sizeof(one)) < 0)
        pyprof_debug("cannot wake the server thread: %s", strerror(errno));
    pyprof_thread_join(&s->thread);
    s->loop_ready = s->loop_ready && !s->broken;
    teardown(s);
}
