/* A container's state directory, read by the C commands of nsfast-runtime.
 * nsfast/oci/state.py writes it (create); the format of its `state` file
 * (one "KEY VALUE" a line: pid, start_time, cgroup NAME PATH, hooks KINDS)
 * is described there.  The status rules are runc's: a recorded pid whose
 * start time no longer matches is a stopped container, not another process. */
#include "cli_oci.h"
#include "compat.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

int oci_id_ok(const char *id)
{
    size_t n = strlen(id);
    int ok = n > 0 && n <= 1024;
    for (size_t i = 0; ok && i < n; i++) {
        char ch = id[i];
        int alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9');
        ok = alnum || (i > 0 && strchr("_.+-", ch) && ch);
    }
    return ok;
}

void oci_check_id(const char *id)
{
    if (!oci_id_ok(id))
        oci_fail("invalid container id '%.64s': use letters, digits and _.+- (not "
                 "starting with one of those)", id);
}

const char *oci_file(const struct oci_container *c, const char *name, char *buf, size_t size)
{
    if ((size_t)snprintf(buf, size, "%s/%s", c->dir, name) >= size)
        oci_fail("state directory path too long: %s", c->dir);
    return buf;
}

/* The whole of a small file, NUL-terminated, in buf; -1 with errno. */
static ssize_t read_small(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t got = 0;
    while (got < size - 1) {
        ssize_t n = read(fd, buf + got, size - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = 0;
    return (ssize_t)got;
}

static unsigned long long number(const char *text, const char *what, const char *path)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (!*text || *end || errno || *text == '-')
        oci_fail("%s: bad %s '%.32s' (the state file is damaged)", path, what, text);
    return v;
}

void oci_load(struct oci_container *c, const char *root, const char *id)
{
    static char data[OCI_MAX_CGROUPS * (PATH_MAX + 160) + 512];
    char path[PATH_MAX];
    memset(c, 0, sizeof *c);
    c->root = root;
    c->id = id;
    c->lock_fd = -1;
    oci_check_id(id);
    if ((size_t)snprintf(c->dir, sizeof c->dir, "%s/%s", root, id) >= sizeof c->dir)
        oci_fail("--root %s: path too long", root);
    oci_file(c, "state", path, sizeof path);
    if (read_small(path, data, sizeof data) < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return;
        oci_fail("%s: %s", path, strerror(errno));
    }
    c->exists = 1;
    strcpy(c->hooks, " ");
    for (char *line = data, *next; *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        else
            next = line + strlen(line);
        char *value = strchr(line, ' ');
        if (!value)
            continue;
        *value++ = 0;
        if (strcmp(line, "pid") == 0) {
            unsigned long long pid = number(value, "pid", path);
            if (pid > 0x7fffffff)
                oci_fail("%s: bad pid %llu (the state file is damaged)", path, pid);
            c->pid = (pid_t)pid;
        } else if (strcmp(line, "start_time") == 0) {
            c->start_time = number(value, "start time", path);
        } else if (strcmp(line, "cgroup") == 0) {
            char *dir = strchr(value, ' ');
            if (!dir || c->n_cgroups == OCI_MAX_CGROUPS ||
                (size_t)(dir - value) >= sizeof c->cgroups[0].name || dir[1] != '/')
                oci_fail("%s: bad cgroup line (the state file is damaged)", path);
            *dir++ = 0;
            strcpy(c->cgroups[c->n_cgroups].name, value);
            snprintf(c->cgroups[c->n_cgroups].path, PATH_MAX, "%s", dir);
            c->n_cgroups++;
        } else if (strcmp(line, "hooks") == 0) {
            snprintf(c->hooks, sizeof c->hooks, " %s ", value);
        }
    }
}

int oci_lock(struct oci_container *c)
{
    char path[PATH_MAX];
    int fd = open(oci_file(c, "lock", path, sizeof path), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 && errno == ENOENT)
        return 0;   /* its directory has just been removed */
    if (fd < 0)
        oci_fail("%s: %s", path, strerror(errno));
    while (flock(fd, LOCK_EX) < 0)
        if (errno != EINTR)
            oci_fail("locking %s: %s", path, strerror(errno));
    /* the state as it is now that no other command changes it */
    oci_load(c, c->root, c->id);
    c->lock_fd = fd;
    return c->exists;
}

/* Whether another command holds the container's lock now. */
static int locked_by_another(const struct oci_container *c)
{
    char path[PATH_MAX];
    int fd = open(oci_file(c, "lock", path, sizeof path), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    int busy = flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
    close(fd);
    return busy;
}

unsigned long long oci_start_time(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (read_small(path, buf, sizeof buf) <= 0)
        return 0;
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X')
        return 0;
    p += 2;
    /* p is field 3 (state); the start time is field 22 */
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (!p)
            return 0;
        p++;
    }
    return strtoull(p, NULL, 10);
}

int oci_alive(const struct oci_container *c)
{
    return c->pid > 0 && c->start_time > 0 && oci_start_time(c->pid) == c->start_time;
}

const char *oci_status(const struct oci_container *c)
{
    char path[PATH_MAX];
    if (c->pid == 0)
        /* create holds the lock until it is done: a free lock means it died */
        return c->lock_fd < 0 && locked_by_another(c) ? "creating" : "stopped";
    if (!oci_alive(c))
        return "stopped";
    if (access(oci_file(c, "exec.fifo", path, sizeof path), F_OK) == 0)
        return "created";
    if (oci_frozen(c))
        return "paused";
    return "running";
}

int oci_has_hooks(const struct oci_container *c, const char *kind)
{
    char word[64];
    snprintf(word, sizeof word, " %s ", kind);
    return strstr(c->hooks, word) != NULL;
}

void oci_remove_dir(const struct oci_container *c)
{
    /* the files nsfast/oci/state.py names, all of them ours */
    static const char *const names[] = {"exec.fifo", "state", "state.tmp", "state.json",
                                        "state.json.tmp", "hooks.json", "lock"};
    char path[PATH_MAX];
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
        if (unlink(oci_file(c, names[i], path, sizeof path)) < 0 && errno != ENOENT)
            oci_fail("removing %s: %s", path, strerror(errno));
    if (rmdir(c->dir) < 0 && errno != ENOENT)
        oci_fail("removing %s: %s", c->dir, strerror(errno));
}

int oci_save_state(const struct oci_container *c)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    oci_file(c, "state", path, sizeof path);
    FILE *f = fopen(oci_file(c, "state.tmp", tmp, sizeof tmp), "we");
    if (!f)
        return -errno;
    if (c->pid)
        fprintf(f, "pid %d\nstart_time %llu\n", (int)c->pid, c->start_time);
    for (int i = 0; i < c->n_cgroups; i++)
        fprintf(f, "cgroup %s %s\n", c->cgroups[i].name, c->cgroups[i].path);
    const char *kinds = c->hooks + strspn(c->hooks, " ");   /* " KIND KIND " */
    size_t n = strlen(kinds);
    while (n && kinds[n - 1] == ' ')
        n--;
    if (n)
        fprintf(f, "hooks %.*s\n", (int)n, kinds);
    if (fclose(f) != 0 || rename(tmp, path) < 0)
        return -errno;
    return 0;
}
