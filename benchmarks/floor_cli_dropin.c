/* The floor of the drop-in commands (cases_cli_dropin.py): what a command
 * must do at least, with no command line to read and no program of its own
 * to start.  Served (it forks).
 *
 *   unshare      -Urmpiuf --mount-proc true: fork; the child unshares user,
 *                mnt, pid, ipc, uts, maps root, forks pid 1, which makes /
 *                private, mounts proc and execs true
 *   netns NAME   netns add NAME; netns exec NAME true; netns del NAME: a
 *                bind of a new netns on /run/netns/NAME, a child that joins
 *                it, unshares mnt, mounts its sysfs and execs true, the
 *                unmount and unlink */
#include "floor_common.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

static void write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
        _exit(125);
    close(fd);
}

static int wait_ok(pid_t pid)
{
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) < 0)
        return 0;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static long long unshare_one(void *ctx)
{
    (void)ctx;
    long long t0 = floor_now_ns();
    char map[32];
    uid_t uid = geteuid();
    gid_t gid = getegid();
    pid_t child = fork();
    if (child == 0) {
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS) < 0)
            _exit(126);
        snprintf(map, sizeof map, "0 %u 1", (unsigned)uid);
        write_file("/proc/self/uid_map", map);
        write_file("/proc/self/setgroups", "deny");
        snprintf(map, sizeof map, "0 %u 1", (unsigned)gid);
        write_file("/proc/self/gid_map", map);
        pid_t init = fork();
        if (init == 0) {
            if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
                mount("proc", "/proc", "proc", MS_NOSUID | MS_NOEXEC | MS_NODEV, NULL) < 0)
                _exit(124);
            execl("/bin/true", "true", (char *)NULL);
            _exit(127);
        }
        _exit(wait_ok(init) ? 0 : 1);
    }
    if (!wait_ok(child)) {
        fprintf(stderr, "unshare floor: child failed\n");
        exit(1);
    }
    return floor_now_ns() - t0;
}

static long long netns_one(void *ctx)
{
    const char *path = ctx;
    long long t0 = floor_now_ns();
    /* add: a child unshares the netns and binds it (ip forks for it too) */
    int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
    if (fd < 0)
        floor_die(path);
    close(fd);
    pid_t child = fork();
    if (child == 0) {
        if (unshare(CLONE_NEWNET) < 0 || mount("/proc/self/ns/net", path, "none", MS_BIND, NULL))
            _exit(1);
        _exit(0);
    }
    if (!wait_ok(child))
        floor_die("netns add");
    /* exec: join, a mount namespace with the netns's sysfs, exec true */
    child = fork();
    if (child == 0) {
        int ns = open(path, O_RDONLY | O_CLOEXEC);
        if (ns < 0 || setns(ns, CLONE_NEWNET) < 0 || unshare(CLONE_NEWNS) < 0 ||
            mount("", "/", "none", MS_SLAVE | MS_REC, NULL) < 0)
            _exit(1);
        umount2("/sys", MNT_DETACH);
        if (mount("floor", "/sys", "sysfs", 0, NULL) < 0)
            _exit(1);
        execl("/bin/true", "true", (char *)NULL);
        _exit(127);
    }
    if (!wait_ok(child))
        floor_die("netns exec");
    /* del */
    if (umount2(path, MNT_DETACH) < 0 || unlink(path) < 0)
        floor_die("netns del");
    return floor_now_ns() - t0;
}

int main(int argc, char **argv)
{
    int n = floor_count(argc, argv);
    static char path[256];
    if (argc == 3 && strcmp(argv[2], "unshare") == 0)
        return floor_emit(n, unshare_one, NULL);
    if (argc == 4 && strcmp(argv[2], "netns") == 0) {
        mkdir("/run/netns", 0755);
        snprintf(path, sizeof path, "/run/netns/%s", argv[3]);
        return floor_emit(n, netns_one, path);
    }
    fprintf(stderr, "usage: %s N|serve unshare | netns NAME\n", argv[0]);
    return 2;
}
