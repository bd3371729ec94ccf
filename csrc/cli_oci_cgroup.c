/* A container's cgroups for nsfast-runtime's C commands: signalling every
 * process in them (kill --all, delete --force), the v1 freezer, removing
 * them, and sweeping the parents the runtime made.  nsfast/oci/cgroup.py
 * makes them at create and keeps the freezer for pause and resume. */
#include "cli_oci.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int oci_cgroup_has(const char *name, const char *controller)
{
    size_t n = strlen(controller);
    for (const char *p = name; (p = strstr(p, controller)); p++)
        if ((p == name || p[-1] == ',') && (p[n] == ',' || p[n] == 0))
            return 1;
    return 0;
}

const char *oci_cgroup_dir(const struct oci_container *c, const char *controller)
{
    for (int i = 0; i < c->n_cgroups; i++)
        if (oci_cgroup_has(c->cgroups[i].name, controller))
            return c->cgroups[i].path;
    return NULL;
}

/* A cgroup file's contents (first line), "" when it is not there. */
static void read_line(const char *path, char *buf, size_t size)
{
    buf[0] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
    buf[strcspn(buf, "\n")] = 0;
}

int oci_frozen(const struct oci_container *c)
{
    const char *dir = oci_cgroup_dir(c, "freezer");
    char path[PATH_MAX], state[64];
    if (!dir)
        return 0;
    snprintf(path, sizeof path, "%s/freezer.state", dir);
    read_line(path, state, sizeof state);
    return state[0] && strcmp(state, "THAWED") != 0;
}

void oci_freeze(const struct oci_container *c, int on)
{
    const char *dir = oci_cgroup_dir(c, "freezer");
    char path[PATH_MAX], state[64];
    const char *want = on ? "FROZEN" : "THAWED";
    if (!dir)
        return;
    snprintf(path, sizeof path, "%s/freezer.state", dir);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, want, strlen(want)) < 0)
        oci_fail("writing %s to %s: %s", want, path, strerror(errno));
    close(fd);
    for (int i = 0; i < 2000; i++) {
        read_line(path, state, sizeof state);
        if (strcmp(state, "FREEZING") != 0)
            return;
        pause_ms(1);
    }
    oci_fail("the container's freezer stays FREEZING (%s)", path);
}

int oci_cgroup_pids(const struct oci_container *c, pid_t *pids, int max)
{
    static const char *const controllers[] = {"freezer", "pids", "memory", "unified"};
    static char buf[1 << 16];
    for (unsigned i = 0; i < sizeof controllers / sizeof controllers[0]; i++) {
        const char *dir = oci_cgroup_dir(c, controllers[i]);
        if (!dir)
            continue;
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/cgroup.procs", dir);
        int fd = open(path, O_RDONLY | O_CLOEXEC), n = 0;
        if (fd < 0)
            return 0;
        ssize_t got = read(fd, buf, sizeof buf - 1);
        close(fd);
        buf[got > 0 ? got : 0] = 0;
        for (char *p = buf, *end; *p && n < max; p = end) {
            long pid = strtol(p, &end, 10);
            if (end == p)
                break;
            if (pid > 0)
                pids[n++] = (pid_t)pid;
        }
        return n;
    }
    return 0;
}

void oci_signal_all(const struct oci_container *c, int sig)
{
    pid_t pids[4096];
    /* frozen, nothing in the cgroup can fork between the read and the kills */
    int freezer = sig == SIGKILL && oci_cgroup_dir(c, "freezer") != NULL;
    if (freezer)
        oci_freeze(c, 1);
    int n = oci_cgroup_pids(c, pids, (int)(sizeof pids / sizeof pids[0]));
    for (int i = 0; i < n; i++)
        kill(pids[i], sig);   /* ESRCH: it has just ended */
    if (freezer)
        oci_freeze(c, 0);
}

void oci_cgroup_remove(const struct oci_container *c)
{
    pid_t pids[1];
    double deadline = now() + 5.0;
    if (c->n_cgroups == 0)
        return;
    while (oci_cgroup_pids(c, pids, 1) > 0 && now() < deadline) {
        oci_signal_all(c, SIGKILL);
        pause_ms(10);
    }
    for (int i = 0; i < c->n_cgroups; i++) {
        const char *path = c->cgroups[i].path;
        while (rmdir(path) < 0 && errno != ENOENT) {
            if (now() > deadline)
                oci_fail("removing the cgroup %s: %s", path, strerror(errno));
            pause_ms(10);
        }
    }
}

static int longer_first(const void *a, const void *b)
{
    size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);
    return la < lb ? 1 : la > lb ? -1 : 0;
}

int oci_parents_lock(const char *path)
{
    for (;;) {
        struct stat named, held;
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
            return -1;
        while (flock(fd, LOCK_EX) < 0)
            if (errno != EINTR) {
                int e = errno;
                close(fd);
                errno = e;
                return -1;
            }
        if (stat(path, &named) == 0 && fstat(fd, &held) == 0 && named.st_ino == held.st_ino)
            return fd;
        int e = errno;
        close(fd);
        if (e != ENOENT) {   /* Python retries only on FileNotFoundError */
            errno = e;
            return -1;
        }
    }
}

void oci_parents_unlock(int fd, const char *path)
{
    struct stat st;
    /* an empty list leaves no file: the state directory is empty again */
    if (fstat(fd, &st) == 0 && st.st_size == 0)
        unlink(path);
    close(fd);
}

void oci_sweep_parents(const char *root)
{
    static char data[1 << 16];
    char path[PATH_MAX], *paths[1024];
    int fd, n = 0;
    if ((size_t)snprintf(path, sizeof path, "%s/cgroup-parents", root) >= sizeof path)
        oci_fail("--root %s: path too long", root);
    if ((fd = oci_parents_lock(path)) < 0)
        oci_fail("locking %s: %s", path, strerror(errno));
    ssize_t got = pread(fd, data, sizeof data - 1, 0);
    data[got > 0 ? got : 0] = 0;
    for (char *line = strtok(data, "\n"); line && n < 1024; line = strtok(NULL, "\n"))
        paths[n++] = line;
    qsort(paths, (size_t)n, sizeof paths[0], longer_first);
    size_t kept = 0;
    static char left[sizeof data];
    for (int i = 0; i < n; i++) {
        if (rmdir(paths[i]) == 0 || errno == ENOENT)
            continue;
        size_t len = strlen(paths[i]);
        memcpy(left + kept, paths[i], len);
        left[kept + len] = '\n';
        kept += len + 1;
    }
    if (ftruncate(fd, 0) < 0 || (kept && pwrite(fd, left, kept, 0) != (ssize_t)kept))
        oci_fail("writing %s: %s", path, strerror(errno));
    oci_parents_unlock(fd, path);
}
