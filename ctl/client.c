#include "client.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "endpoint.h"

#define TIMEOUT_MS 30000

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

static int process_exists(pid_t pid)
{
    return kill(pid, 0) == 0 || errno == EPERM;
}

static int wait_fd(int fd, short events)
{
    struct pollfd p = {fd, events, 0};
    int rc;
    do
        rc = poll(&p, 1, TIMEOUT_MS);
    while (rc < 0 && errno == EINTR);
    return rc > 0 ? 0 : rc == 0 ? -ETIMEDOUT : -errno;
}

static int send_all(int fd, const uint8_t *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int recv_all(int fd, uint8_t *buf, size_t len)
{
    while (len > 0) {
        int rc = wait_fd(fd, POLLIN);
        if (rc != 0)
            return rc;
        ssize_t n = recv(fd, buf, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -ECONNRESET;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The agent serves only its own uid and root, and closes the connection of anyone else
 * without a word: ask the kernel who is listening, so that a refusal can be named. */
static int check_owner(int fd, pid_t pid, int *out, char *err, size_t errlen)
{
    struct ucred peer;
    socklen_t len = sizeof(peer);
    uid_t me = geteuid();
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) == 0 && me != 0 &&
        peer.uid != me) {
        close(fd);
        return fail(err, errlen, -EACCES,
                    "permission denied: process %d belongs to uid %u, pyprofctl runs as uid %u",
                    (int)pid, (unsigned)peer.uid, (unsigned)me);
    }
    *out = fd;
    return 0;
}

static int connect_to(const char *path, pid_t pid, int *out, char *err, size_t errlen)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(addr.sun_path))
        return fail(err, errlen, -ENAMETOOLONG, "socket path too long: %s", path);
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fail(err, errlen, -errno, "socket: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0)
        return check_owner(fd, pid, out, err, errlen);
    int e = errno;
    close(fd);
    if (!process_exists(pid)) {
        if (e != ENOENT)
            unlink(path);
        return fail(err, errlen, -ESRCH, "no such process: %d%s", (int)pid,
                    e != ENOENT ? " (its stale socket was removed)" : "");
    }
    if (e == ENOENT)
        return fail(err, errlen, -ENOENT, "process %d is not profiled (no socket %s)",
                    (int)pid, path);
    if (e == EACCES || e == EPERM)
        return fail(err, errlen, -EACCES, "permission denied: %s", path);
    if (e == ECONNREFUSED) {
        unlink(path);
        return fail(err, errlen, -ECONNREFUSED,
                    "stale socket for process %d (its agent is gone); removed %s", (int)pid, path);
    }
    return fail(err, errlen, -e, "cannot connect to %s: %s", path, strerror(e));
}

static int exchange(int fd, const Pyprof__Request *req, Pyprof__Response **out, char *err,
                    size_t errlen)
{
    uint8_t *frame = NULL, header[PYPROF_FRAME_HEADER];
    size_t len, payload;
    int rc = pyprof_request_encode(req, &frame, &len);
    if (rc != 0)
        return fail(err, errlen, rc, "cannot encode the request: %s", strerror(-rc));
    rc = send_all(fd, frame, len);
    free(frame);
    if (rc == 0)
        rc = recv_all(fd, header, sizeof(header));
    if (rc == -ECONNRESET || rc == -EPIPE)
        return fail(err, errlen, -EACCES,
                    "the agent closed the connection (permission denied, or it is exiting)");
    if (rc != 0)
        return fail(err, errlen, rc, "no answer from the agent: %s", strerror(-rc));
    if (pyprof_frame_peek(header, sizeof(header), PYPROF_MAX_RESPONSE, &payload) != 1)
        return fail(err, errlen, -EBADMSG, "the agent's answer is too large");
    uint8_t *body = malloc(payload ? payload : 1);
    if (body == NULL)
        return fail(err, errlen, -ENOMEM, "out of memory");
    rc = recv_all(fd, body, payload);
    if (rc == 0)
        rc = pyprof_response_decode(body, payload, out);
    free(body);
    if (rc == -EPROTO) {
        unsigned theirs = (*out)->version;
        pyprof_response_free(*out);
        *out = NULL;
        return fail(err, errlen, rc, "protocol version mismatch: agent speaks %u, pyprofctl %u",
                    theirs, PYPROF_PROTOCOL_VERSION);
    }
    if (rc != 0)
        return fail(err, errlen, -EBADMSG, "malformed answer from the agent");
    return 0;
}

int pyprof_client_call(const char *dir, pid_t pid, const Pyprof__Request *req,
                       Pyprof__Response **out, char *err, size_t errlen)
{
    char path[PYPROF_SOCKET_PATH_MAX];
    int fd = -1, rc;
    *out = NULL;
    if (pyprof_socket_path(dir, pid, path, sizeof(path)) != 0)
        return fail(err, errlen, -ENAMETOOLONG, "socket directory path too long: %s", dir);
    if ((rc = connect_to(path, pid, &fd, err, errlen)) != 0)
        return rc;
    rc = exchange(fd, req, out, err, errlen);
    close(fd);
    if (rc == 0 && (*out)->error != 0) {
        rc = fail(err, errlen, -(*out)->error, "process %d: %s", (int)pid,
                  (*out)->message && (*out)->message[0] ? (*out)->message : strerror((*out)->error));
        pyprof_response_free(*out);
        *out = NULL;
    }
    return rc;
}
