/*
 * Where an agent's control socket lives. Shared by the agent (which creates it) and
 * pyprofctl (which finds it), so that both sides agree on one naming rule:
 *
 *   $PYPROF_DIR/pyprof.<pid>.sock        when PYPROF_DIR is set
 *   $XDG_RUNTIME_DIR/pyprof/...          else when XDG_RUNTIME_DIR is set
 *   /tmp/pyprof-<uid>/...                otherwise
 *
 * Pure string and file-system helpers; no globals. Thread-safe.
 */
#ifndef PYPROF_PROTO_ENDPOINT_H
#define PYPROF_PROTO_ENDPOINT_H

#include <stddef.h>
#include <sys/types.h>

/* Longest socket path we accept: sun_path is 108 bytes including the NUL. */
#define PYPROF_SOCKET_PATH_MAX 108

/* The directory for this user. `pyprof_dir` is $PYPROF_DIR (may be NULL or empty),
 * `xdg_dir` is $XDG_RUNTIME_DIR (may be NULL). 0 or -ENAMETOOLONG. */
int pyprof_socket_dir(const char *pyprof_dir, const char *xdg_dir, char *out, size_t size);

/* "<dir>/pyprof.<pid>.sock". 0 or -ENAMETOOLONG (the result must fit in sun_path). */
int pyprof_socket_path(const char *dir, pid_t pid, char *out, size_t size);

/* Parse a directory entry name "pyprof.<pid>.sock". 0 with *pid, or -EINVAL. */
int pyprof_socket_name_pid(const char *name, pid_t *pid);

/*
 * Make sure `dir` is a private directory of this user: create it (mode 0700) if it is
 * missing and `create` is set; refuse a symlink (-ELOOP), a non-directory (-ENOTDIR), a
 * directory owned by another user (-EPERM), or one that group or others can write (-EACCES).
 */
int pyprof_socket_dir_check(const char *dir, int create);

#endif
