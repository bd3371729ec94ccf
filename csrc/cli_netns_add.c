/* `nsfast netns add NAME` and `nsfast netns del NAME...` in C, so that they
 * start as fast as `ip netns` does.  The rules are nsfast.netns's (add,
 * remove, _prepare_run_dir, _is_stale in nsfast/netns.py), and so are the
 * messages: /run/netns is made a shared mount under the directory's flock;
 * NAME is created with O_EXCL and its own flock held until the namespace is
 * bound on it, so that a later add can tell an empty file a killed add left
 * (which it removes) from one an add is binding right now. */
#include "cli.h"
#include "compat.h"
#include "nscore.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef UMOUNT_NOFOLLOW
#define UMOUNT_NOFOLLOW 8
#endif

static const char prog[] = "nsfast netns";
static const char run_dir[] = "/run/netns";

static const char *privilege_hint(int err)
{
    return err == EPERM || err == EACCES
        ? " (hint: named network namespaces live in /run/netns and need root "
          "(CAP_SYS_ADMIN); unprivileged, use spawn(namespaces='user,net') or a "
          "NetnsPool inside a user namespace)" : "";
}

__attribute__((noreturn)) static void fail(const char *path, const char *what, int err)
{
    nsf_cli_die(prog, "%s: %s: %s%s", path, what, strerror(err), privilege_hint(err));
}

void nsf_netns_check_name(const char *name)
{
    if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        nsf_cli_die(prog, "'%s' is not a usable netns name", name);
    if (strchr(name, '/'))
        nsf_cli_die(prog, "a netns name cannot contain '/' or NUL: '%s'", name);
    if (strlen(name) > NAME_MAX)
        nsf_cli_die(prog, "a netns name is at most %d bytes, this one is %zu", NAME_MAX,
                    strlen(name));
}

/* /run/netns exists and is a shared mount; an fd on it holding its flock. */
static int prepare_run_dir(void)
{
    if (mkdir(run_dir, 0755) < 0 && errno != EEXIST)
        fail(run_dir, "creating the netns run directory", errno);
    int fd = open(run_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        fail(run_dir, "opening the netns run directory", errno);
    /* without the lock, parallel adds each bind the directory on itself and
     * the mounts stack without bound */
    while (flock(fd, LOCK_EX) < 0)
        if (errno != EINTR)
            fail(run_dir, "locking the netns run directory", errno);
    for (int made = 0;; made = 1) {
        if (mount(0, run_dir, "none", MS_SHARED | MS_REC, 0) == 0)
            return fd;
        /* EINVAL: not a mount point yet; make it one, then retry once */
        if (errno != EINVAL || made)
            fail(run_dir, "making the run directory shared", errno);
        if (mount(run_dir, run_dir, "none", MS_BIND | MS_REC, 0) < 0)
            fail(run_dir, "bind-mounting the run directory", errno);
    }
}

static int same_file(int fd, const char *path)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && lstat(path, &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
}

int nsf_netns_file_is_stale(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0 &&
           nsf_ns_ioctl(fd, NS_GET_NSTYPE) < 0 && flock(fd, LOCK_EX | LOCK_NB) == 0;
}

/* A stale file at path (nsf_netns_file_is_stale), removed (the directory's
 * flock is held). */
static int remove_if_stale(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return 0;
    int stale = nsf_netns_file_is_stale(fd) && same_file(fd, path) && unlink(path) == 0;
    close(fd);
    return stale;
}

static int create_file(const char *path)
{
    for (int first = 1;; first = 0) {
        int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0);
        if (fd >= 0) {
            /* taken before the directory's flock is let go: a later add sees it */
            flock(fd, LOCK_EX | LOCK_NB);
            return fd;
        }
        if (errno == EEXIST && first && remove_if_stale(path))
            continue;
        if (errno == EEXIST)
            nsf_cli_die(prog, "%s: creating the namespace file: %s (hint: a network "
                        "namespace of that name already exists)", path, strerror(EEXIST));
        fail(path, "creating the namespace file", errno);
    }
}

static int netns_add(const char *name)
{
    char path[PATH_MAX], target[64];
    nsf_netns_check_name(name);
    snprintf(path, sizeof path, "%s/%s", run_dir, name);
    int lock = prepare_run_dir();
    int fd = create_file(path);
    close(lock);
    /* this process is about to exit: its own network namespace is the new one */
    snprintf(target, sizeof target, "/proc/self/fd/%d", fd);
    if (unshare(CLONE_NEWNET) < 0 || mount("/proc/self/ns/net", target, "none", MS_BIND, 0) < 0) {
        int err = errno;
        if (same_file(fd, path))   /* not a file someone made after removing ours */
            unlink(path);
        fail(path, "bind-mounting the namespace", err);
    }
    close(fd);
    return 0;
}

static int netns_del(const char *name)
{
    char path[PATH_MAX];
    nsf_netns_check_name(name);
    snprintf(path, sizeof path, "%s/%s", run_dir, name);
    /* EINVAL: not a mount (an empty file, a symlink): unlinked as it is */
    if (umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) < 0 && errno != EINVAL) {
        if (errno != ENOENT)
            fail(path, "unmounting the namespace", errno);
    } else if (unlink(path) == 0) {
        return 0;
    } else if (errno != ENOENT) {
        fail(path, "removing the namespace file", errno);
    }
    nsf_cli_die(prog, "%s: %s (hint: no network namespace of that name; see nsfast netns "
                "list)", path, strerror(ENOENT));
}

int nsf_netns_add_main(int argc, char **argv)
{
    if (strcmp(argv[0], "add") == 0) {
        if (argc != 2)
            nsf_cli_die(prog, "usage: nsfast netns add NAME");
        return netns_add(argv[1]);
    }
    if (argc < 2)
        nsf_cli_die(prog, "usage: nsfast netns del NAME...");
    for (int i = 1; i < argc; i++)
        netns_del(argv[i]);
    return 0;
}
