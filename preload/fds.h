/*
 * The agent's own file descriptors, kept out of the host's way.
 *
 * A program sees every descriptor of its process: it may expect the lowest free numbers
 * for itself (a child started with 0, 1 or 2 closed reopens them; tests of `pass_fds`
 * list what is open), and it may close descriptors it does not know (os.closerange() when
 * a daemon detaches), after which their numbers come back for files of its own.
 *
 * So the agent's descriptors live at or above pyprof_fd_base(): its own are lifted there
 * as they are made; a library's (libuv's loop) are made while every free number below the
 * base is filled. And a component that must never act on a descriptor the host has
 * closed and reused (libuv aborts on a closed epoll or eventfd; a write to a reused
 * number would land in the host's file) keeps their identities in a pyprof_fd_guard and
 * checks them first.
 *
 * Thread-safety: every function may be called from any thread; a guard or a fill belongs
 * to its caller.
 */
#ifndef PYPROF_FDS_H
#define PYPROF_FDS_H

#include <sys/types.h>

#define PYPROF_FD_GUARD_MAX 16

/* The lowest number the agent's descriptors take: 100, or 3 under a soft RLIMIT_NOFILE
 * below 200. */
int pyprof_fd_base(void);

/* Move `fd` to the lowest free number at or above the base (close-on-exec) and close the
 * original. The new descriptor, or `fd` itself when it cannot be moved (it still works). */
int pyprof_fd_lift(int fd);

/* Every free number below the base, held (duplicates of one /dev/null descriptor) so that
 * the next descriptors anyone makes land above it. */
struct pyprof_fd_fill {
    int fds[128];
    int n;
};
void pyprof_fd_fill_low(struct pyprof_fd_fill *fill);
void pyprof_fd_fill_release(struct pyprof_fd_fill *fill);

/* A descriptor by identity (the device and inode of what it refers to). Files, pipes and
 * sockets have inodes of their own; every epoll and eventfd descriptor shares one
 * anonymous inode, so a host that closes ours and makes one of the same kind at the same
 * number goes unnoticed (closing alone is noticed). */
struct pyprof_fd_id {
    int fd;
    dev_t dev;
    ino_t ino;
};

/* Remember what `fd` refers to now. 0 or -errno (id->fd is then -1). */
int pyprof_fd_id_take(struct pyprof_fd_id *id, int fd);
/* 1 when id->fd is still open and refers to the same file. */
int pyprof_fd_id_holds(const struct pyprof_fd_id *id);
/* Close id->fd if it is still ours (never a descriptor the host reused); id->fd = -1. */
void pyprof_fd_id_close(struct pyprof_fd_id *id);

/* The descriptors of one component. */
struct pyprof_fd_guard {
    int n;
    struct pyprof_fd_id e[PYPROF_FD_GUARD_MAX];
};

/* Which descriptors at or above the base are open now (a bitmap of the next 64 numbers):
 * taken before and after a library call, it tells which ones the call made. */
unsigned long long pyprof_fd_open_above_base(void);

/* Remember `fd`. -ENOSPC when the guard is full, -errno when fstat fails. */
int pyprof_fd_guard_add(struct pyprof_fd_guard *g, int fd);
/* Remember every descriptor in `now` that is not in `before` (bitmaps as above). */
int pyprof_fd_guard_add_new(struct pyprof_fd_guard *g, unsigned long long before,
                            unsigned long long now);
/* 1 when every remembered descriptor is still open and refers to the same file. */
int pyprof_fd_guard_intact(const struct pyprof_fd_guard *g);
/* 1 when `fd` is remembered and still refers to the same file. */
int pyprof_fd_guard_holds(const struct pyprof_fd_guard *g, int fd);

#endif
