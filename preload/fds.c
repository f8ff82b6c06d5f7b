#include "fds.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define FD_BASE 100
#define FD_BASE_ROOM 200   /* the soft limit that leaves room above the base */

/* Under a soft limit too low for that, the host needs every number it has: ours then take
 * the lowest free ones, as any library's would, but never 0, 1 or 2 (libuv refuses to
 * close those: it aborts). */
int pyprof_fd_base(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < FD_BASE_ROOM)
        return 3;
    return FD_BASE;
}

int pyprof_fd_lift(int fd)
{
    if (fd < 0 || fd >= pyprof_fd_base())
        return fd;
    int high = fcntl(fd, F_DUPFD_CLOEXEC, pyprof_fd_base());
    if (high < 0)
        return fd;
    close(fd);
    return high;
}

void pyprof_fd_fill_low(struct pyprof_fd_fill *fill)
{
    int base = pyprof_fd_base(), max = (int)(sizeof(fill->fds) / sizeof(fill->fds[0]));
    fill->n = 0;
    int first = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (first < 0)
        return;
    if (first >= base) {
        close(first);   /* no free number below the base */
        return;
    }
    fill->fds[fill->n++] = first;
    while (fill->n < max) {
        int fd = fcntl(first, F_DUPFD_CLOEXEC, 0);   /* the lowest free number */
        if (fd < 0)
            break;
        if (fd >= base) {
            close(fd);
            break;
        }
        fill->fds[fill->n++] = fd;
    }
}

void pyprof_fd_fill_release(struct pyprof_fd_fill *fill)
{
    while (fill->n > 0)
        close(fill->fds[--fill->n]);
}

unsigned long long pyprof_fd_open_above_base(void)
{
    int base = pyprof_fd_base();
    unsigned long long open_now = 0;
    for (int i = 0; i < 64; i++)
        if (fcntl(base + i, F_GETFD) >= 0)
            open_now |= 1ull << i;
    return open_now;
}

int pyprof_fd_id_take(struct pyprof_fd_id *id, int fd)
{
    struct stat st;
    id->fd = -1;
    if (fstat(fd, &st) != 0)
        return -errno;
    id->fd = fd;
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    return 0;
}

int pyprof_fd_id_holds(const struct pyprof_fd_id *id)
{
    struct stat st;
    return id->fd >= 0 && fstat(id->fd, &st) == 0 && st.st_dev == id->dev &&
           st.st_ino == id->ino;
}

void pyprof_fd_id_close(struct pyprof_fd_id *id)
{
    if (pyprof_fd_id_holds(id))
        close(id->fd);
    id->fd = -1;
}

int pyprof_fd_guard_add(struct pyprof_fd_guard *g, int fd)
{
    if (g->n == PYPROF_FD_GUARD_MAX)
        return -ENOSPC;
    int rc = pyprof_fd_id_take(&g->e[g->n], fd);
    if (rc == 0)
        g->n++;
    return rc;
}

int pyprof_fd_guard_add_new(struct pyprof_fd_guard *g, unsigned long long before,
                            unsigned long long now)
{
    int base = pyprof_fd_base(), rc = 0;
    for (int i = 0; i < 64 && rc == 0; i++)
        if ((now & ~before) & (1ull << i))
            rc = pyprof_fd_guard_add(g, base + i);
    return rc;
}

int pyprof_fd_guard_intact(const struct pyprof_fd_guard *g)
{
    for (int i = 0; i < g->n; i++)
        if (!pyprof_fd_id_holds(&g->e[i]))
            return 0;
    return 1;
}

int pyprof_fd_guard_holds(const struct pyprof_fd_guard *g, int fd)
{
    for (int i = 0; i < g->n; i++)
        if (g->e[i].fd == fd)
            return pyprof_fd_id_holds(&g->e[i]);
    return 0;
}
