#include "endpoint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int format_into(size_t size, int n)
{
    return (n < 0 || (size_t)n >= size) ? -ENAMETOOLONG : 0;
}

/* "dir/" names what the link "dir" points to, so lstat() would follow it: keep the
 * directory's own name, without trailing slashes (but "/" stays "/"). */
static void strip_trailing_slashes(char *path)
{
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        path[--len] = '\0';
}

int pyprof_socket_dir(const char *pyprof_dir, const char *xdg_dir, char *out, size_t size)
{
    if (pyprof_dir != NULL && pyprof_dir[0] != '\0') {
        int rc = format_into(size, snprintf(out, size, "%s", pyprof_dir));
        if (rc == 0)
            strip_trailing_slashes(out);
        return rc;
    }
    if (xdg_dir != NULL && xdg_dir[0] == '/')
        return format_into(size, snprintf(out, size, "%s/pyprof", xdg_dir));
    return format_into(size, snprintf(out, size, "/tmp/pyprof-%u", (unsigned)getuid()));
}

int pyprof_socket_path(const char *dir, pid_t pid, char *out, size_t size)
{
    if (size > PYPROF_SOCKET_PATH_MAX)
        size = PYPROF_SOCKET_PATH_MAX;
    return format_into(size, snprintf(out, size, "%s/pyprof.%d.sock", dir, (int)pid));
}

int pyprof_socket_name_pid(const char *name, pid_t *pid)
{
    const char *prefix = "pyprof.", *suffix = ".sock";
    size_t len = strlen(name), plen = strlen(prefix), slen = strlen(suffix);
    if (len <= plen + slen || strncmp(name, prefix, plen) != 0 ||
        strcmp(name + len - slen, suffix) != 0)
        return -EINVAL;
    long value = 0;
    for (const char *p = name + plen; p < name + len - slen; p++) {
        if (*p < '0' || *p > '9' || value > 100000000L)
            return -EINVAL;
        value = value * 10 + (*p - '0');
    }
    if (value <= 0)
        return -EINVAL;
    *pid = (pid_t)value;
    return 0;
}

int pyprof_socket_dir_check(const char *dir, int create)
{
    struct stat st;
    if (lstat(dir, &st) != 0) {
        if (errno != ENOENT || !create)
            return -errno;
        if (mkdir(dir, 0700) != 0 && errno != EEXIST)
            return -errno;
        if (lstat(dir, &st) != 0)
            return -errno;
    }
    if (S_ISLNK(st.st_mode))
        return -ELOOP;
    if (!S_ISDIR(st.st_mode))
        return -ENOTDIR;
    if (st.st_uid != getuid())
        return -EPERM;
    if (st.st_mode & (S_IWGRP | S_IWOTH))
        return -EACCES;
    return 0;
}
