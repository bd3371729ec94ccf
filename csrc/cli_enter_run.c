/* `nsfast enter`, after parsing: pick the namespaces, open them, join them
 * in this process (the setns loop of nscore.c), and exec the program in
 * place as nsenter(1) does: a fork only for a pid namespace (-F: none).
 * The checks before any setns word their errors as the Python command this
 * replaced did (nsfast/enter.py). */
#include "cli.h"
#include "compat.h"
#include "nscore.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <grp.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>

static const char ptrace_hint[] =
    "reading another process's namespaces needs ptrace access to it "
    "(CAP_SYS_PTRACE and every capability it holds)";

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* -a: every kind this kernel has, except a user namespace we are already in
 * (joining it is EINVAL). */
static void add_all_kinds(struct nsf_enter_opts *o)
{
    char path[64];
    for (int k = 0; k < NSF_KINDS; k++) {
        int have = 0;
        for (int i = 0; i < o->n_ns; i++)
            have |= o->ns[i].kind == k;
        snprintf(path, sizeof path, "/proc/self/ns/%s", nsf_kinds[k].proc);
        if (have || !exists(path))
            continue;
        if (nsf_kinds[k].flag == CLONE_NEWUSER) {
            struct stat theirs, ours;
            snprintf(path, sizeof path, "/proc/%lld/ns/user", o->target);
            if (stat(path, &theirs) < 0) {
                if (errno == ENOENT)
                    nsf_cli_die(o->prog, "/proc/%lld: No such process", o->target);
                nsf_cli_die(o->prog, "%s: %s", path, strerror(errno));
            }
            if (stat("/proc/self/ns/user", &ours) == 0 && same_file(&theirs, &ours))
                continue;
        }
        o->ns[o->n_ns].kind = k;
        o->ns[o->n_ns++].path = 0;
    }
}

/* An O_CLOEXEC fd on the namespace of kind k: the FILE given, or the
 * target's; it must be of that kind. */
static int open_ns(const struct nsf_enter_opts *o, int k, const char *file)
{
    const struct nsf_kind *kind = &nsf_kinds[k];
    char own[64];
    const char *path = file;
    if (!path) {
        snprintf(own, sizeof own, "/proc/%lld/ns/%s", o->target, kind->proc);
        path = own;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        char dir[32], mine[64];
        if (file || (e != ENOENT && e != EACCES && e != EPERM))
            nsf_cli_die(o->prog, "%s: %s", path, strerror(e));
        if (e != ENOENT)
            nsf_cli_die(o->prog, "%s: %s (hint: %s)", path, strerror(e), ptrace_hint);
        snprintf(dir, sizeof dir, "/proc/%lld", o->target);
        snprintf(mine, sizeof mine, "/proc/self/ns/%s", kind->proc);
        if (!exists(dir))
            nsf_cli_die(o->prog, "%s: no process %lld", path, o->target);
        if (exists(mine)) /* a zombie keeps its /proc directory, not its namespaces */
            nsf_cli_die(o->prog, "%s: process %lld has exited", path, o->target);
        nsf_cli_die(o->prog, "%s: %s (hint: this kernel has no %s namespaces)", path,
                    strerror(ENOENT), kind->proc);
    }
    int type = nsf_ns_ioctl(fd, NS_GET_NSTYPE);
    if (type < 0)
        nsf_cli_die(o->prog, "%s: NS_GET_NSTYPE: %s (hint: not a namespace file)", path,
                    strerror(-type));
    if (type != kind->flag)
        nsf_cli_die(o->prog, "%s: %s (hint: it is a %s namespace, not %s)", path,
                    strerror(EINVAL), nsf_kind_name(type), kind->proc);
    return fd;
}

/* -r/-w: a directory opened now, in our mount namespace, as nsenter opens it
 * before joining: DIR, or with own the target's (/proc/PID/root or cwd).
 * -1 when not asked; *path is what it names, for messages. */
static int open_dir(const struct nsf_enter_opts *o, const char *dir, int own,
                    const char *which, char *buf, size_t size, const char **path)
{
    if (!dir && !own)
        return -1;
    if (own) {
        snprintf(buf, size, "/proc/%lld/%s", o->target, which);
        dir = buf;
    }
    *path = dir;
    int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        nsf_cli_die(o->prog, "%s: %s", dir, strerror(errno));
    return fd;
}

/* The command line's own contradictions, as cli/enter.py checked them;
 * -a becomes the kinds it means. */
static void check_request(struct nsf_enter_opts *o)
{
    if (o->all) {
        if (!o->target)
            nsf_cli_die(o->prog, "no target PID specified for --all");
        add_all_kinds(o);
    }
    if (!o->n_ns && o->net_socket < 0)
        nsf_cli_die(o->prog, "no namespace specified (give -t PID with -a or -n, -m, ...)");
    if (o->net_socket >= 0 && !o->target)
        nsf_cli_die(o->prog, "no target PID specified for --net-socket");
    for (int i = 0; i < o->n_ns; i++)
        if (!o->ns[i].path && !o->target)
            nsf_cli_die(o->prog, "no target PID specified");
    if ((o->root_own || o->wd_own) && !o->target)
        nsf_cli_die(o->prog, "neither filename nor target pid supplied for %s",
                    o->root_own ? "root" : "cwd");
}

/* A time namespace that is already ours is not joined: that changes nothing,
 * and setns refuses it.  It is opened first, as enter_and_exec did; fds[]
 * keeps it for the join otherwise. */
static void drop_own_time(struct nsf_enter_opts *o, int *joined, int *fds)
{
    for (int i = 0; i < o->n_ns; i++) {
        struct stat theirs, ours;
        if (nsf_kinds[o->ns[i].kind].flag != CLONE_NEWTIME)
            continue;
        fds[i] = open_ns(o, o->ns[i].kind, o->ns[i].path);
        if (fstat(fds[i], &theirs) == 0 && stat("/proc/thread-self/ns/time", &ours) == 0 &&
            same_file(&theirs, &ours)) {
            close(fds[i]);
            *joined &= ~CLONE_NEWTIME;
            o->n_ns--;
            memmove(&o->ns[i], &o->ns[i + 1], (size_t)(o->n_ns - i) * sizeof o->ns[0]);
            memmove(&fds[i], &fds[i + 1], (size_t)(o->n_ns - i) * sizeof fds[0]);
        }
        return;
    }
}


/* --net-socket FD: the network namespace of the socket that is FD in the
 * target process (pidfd_getfd, then SIOCGSKNS), as nsenter(1) finds it. */
static int open_socket_netns(const struct nsf_enter_opts *o)
{
    int pidfd = nsf_pidfd_open((int)o->target, 0);
    if (pidfd < 0)
        nsf_cli_die(o->prog, "pidfd_open(%lld): %s", o->target, strerror(-pidfd));
    int sock = (int)syscall(__NR_pidfd_getfd, pidfd, o->net_socket, 0);
    if (sock < 0)
        nsf_cli_die(o->prog, "pidfd_getfd(%lld, %d): %s (hint: %s)", o->target,
                    o->net_socket, strerror(errno), ptrace_hint);
    close(pidfd);
    int fd = ioctl(sock, SIOCGSKNS);
    if (fd < 0)
        nsf_cli_die(o->prog, "fd %d of process %lld: SIOCGSKNS: %s (hint: not a socket)",
                    o->net_socket, o->target, strerror(errno));
    close(sock);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
}

/* After the join: the root, then the working directory (the one we had,
 * -w's, or -W's, which is looked up inside), as nsenter(1) orders them. */
static void change_dirs(const struct nsf_enter_opts *o, int root_fd, int cwd_fd)
{
    if (root_fd >= 0 && cwd_fd < 0 && !o->wdns) {
        cwd_fd = open(".", O_RDONLY | O_CLOEXEC);
        if (cwd_fd < 0)
            nsf_cli_die(o->prog, "cannot open current working directory: %s", strerror(errno));
    }
    if (root_fd >= 0) {
        if (fchdir(root_fd) < 0 || chroot(".") < 0 || chdir("/") < 0)
            nsf_cli_die(o->prog, "chroot to %s failed: %s", o->root ? o->root : "the target's "
                        "root", strerror(errno));
        close(root_fd);
    }
    if (o->wdns) {
        if (cwd_fd >= 0)
            close(cwd_fd);
        cwd_fd = open(o->wdns, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (cwd_fd < 0)
            nsf_cli_die(o->prog, "%s: %s", o->wdns, strerror(errno));
    }
    if (cwd_fd >= 0) {
        if (fchdir(cwd_fd) < 0)
            nsf_cli_die(o->prog, "change directory by working directory file descriptor "
                        "failed: %s", strerror(errno));
        close(cwd_fd);
    }
}

/* -S, -G, and what joining a user namespace implies (uid and gid 0, no
 * supplementary groups), after the fork as nsenter(1) does it.  setgroups
 * was tried before the join as well: only both failing is an error. */
static void set_credentials(const struct nsf_enter_opts *o, int joined, int groups_failed)
{
    int user = (joined & CLONE_NEWUSER) && !o->preserve_credentials;
    groups_failed |= !user; /* nothing was tried before */
    long long uid = o->uid >= 0 ? o->uid : (user ? 0 : -1);
    long long gid = o->gid >= 0 ? o->gid : (user ? 0 : -1);
    if (gid >= 0) {
        if (setgroups(0, 0) < 0 && groups_failed)
            nsf_cli_die(o->prog, "setgroups failed: %s", strerror(errno));
        if (setgid((gid_t)gid) < 0)
            nsf_cli_die(o->prog, "setgid(%lld) failed: %s%s", gid, strerror(errno),
                        errno == EINVAL ? " (hint: that gid is not mapped there)" : "");
    }
    if (uid >= 0 && setuid((uid_t)uid) < 0)
        nsf_cli_die(o->prog, "setuid(%lld) failed: %s%s", uid, strerror(errno),
                    errno == EINVAL ? " (hint: that uid is not mapped there)" : "");
}

int nsf_enter_run(struct nsf_enter_opts *o)
{
    int fds[NSF_KINDS + 1], kinds[NSF_KINDS + 1], joined = 0, failed = 0;
    char root_path[64], cwd_path[64];
    const char *root = 0, *cwd = 0;

    check_request(o);
    for (int i = 0; i < o->n_ns; i++) {
        fds[i] = -1;
        joined |= nsf_kinds[o->ns[i].kind].flag;
    }
    drop_own_time(o, &joined, fds);
    if (o->uid >= 1LL << 31)
        nsf_cli_die(o->prog, "uid %lld is out of range", o->uid);
    if (o->gid >= 1LL << 31)
        nsf_cli_die(o->prog, "gid %lld is out of range", o->gid);
    for (int i = 0; i < o->n_ns; i++) {
        if (fds[i] < 0)
            fds[i] = open_ns(o, o->ns[i].kind, o->ns[i].path);
        kinds[i] = nsf_kinds[o->ns[i].kind].flag;
    }
    int n = o->n_ns;
    if (o->net_socket >= 0) {
        int i = 0;
        while (i < n && kinds[i] != CLONE_NEWNET)
            i++;
        if (i == n)
            n++;
        else
            close(fds[i]);
        fds[i] = open_socket_netns(o);
        kinds[i] = CLONE_NEWNET;
        joined |= CLONE_NEWNET;
    }
    int root_fd = open_dir(o, o->root, o->root_own, "root", root_path, sizeof root_path, &root);
    int cwd_fd = open_dir(o, o->wd, o->wd_own, "cwd", cwd_path, sizeof cwd_path, &cwd);

    /* until exec, the namespaces' root could read us through /proc/PID/mem:
     * not dumpable (exec makes the program dumpable again) */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if ((joined & CLONE_NEWUSER) && !o->preserve_credentials && setgroups(0, 0) < 0)
        failed = 1;
    struct nsf_join join = {.count = n, .fds = fds, .kinds = kinds};
    int kind, err = nsf_join_run(&join, &kind);
    if (err < 0)
        nsf_cli_die(o->prog, "reassociate to namespace 'ns/%s' failed: %s", nsf_kind_name(kind),
                    strerror(-err));
    for (int i = 0; i < n; i++)
        close(fds[i]);
    change_dirs(o, root_fd, cwd_fd);
    if ((joined & CLONE_NEWPID) && o->fork)
        nsf_cli_continue_as_child(o->prog);
    set_credentials(o, joined, failed);
    if (o->keep_caps && (joined & CLONE_NEWUSER))
        nsf_cli_keep_caps(o->prog);
    nsf_cli_exec(o->prog, o->program);
}
