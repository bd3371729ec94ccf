/* C floor for the enter cases.  `floor_enter N MODE ARGS...` prints N samples in ns.
 *   pair KIND PATH          setns into PATH's namespace and back to the thread's own
 *                           (what `with nsfast.enter(ns)` does: two setns calls)
 *   pidfd PID MASK KINDS..  setns(pidfd of PID, MASK), then back with one setns per
 *                           kind to the thread's own fds (enter(pid, kinds))
 *   fds PID KINDS..         one setns per kind into PID's fds, then back per kind */
#include "floor_common.h"
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_KINDS 8

static int kind_flag(const char *name)
{
    static const struct { const char *name; int flag; } kinds[] = {
        {"net", CLONE_NEWNET}, {"uts", CLONE_NEWUTS}, {"ipc", CLONE_NEWIPC},
        {"cgroup", CLONE_NEWCGROUP}, {"mnt", CLONE_NEWNS}, {"pid", CLONE_NEWPID},
        {"user", CLONE_NEWUSER}, {"time", 0x80},
    };
    for (unsigned i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(kinds[i].name, name) == 0)
            return kinds[i].flag;
    fprintf(stderr, "unknown kind %s\n", name);
    exit(2);
}

static int open_ns(const char *who, const char *kind)
{
    char path[128];
    snprintf(path, sizeof path, "/proc/%s/ns/%s", who, kind);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        floor_die(path);
    return fd;
}

static void must_setns(int fd, int flag)
{
    if (setns(fd, flag) < 0)
        floor_die("setns");
}

int main(int argc, char **argv)
{
    int n = floor_count(argc, argv);
    if (argc < 3) {
        fprintf(stderr, "usage: %s N pair|pidfd|fds ARGS...\n", argv[0]);
        return 2;
    }
    const char *mode = argv[2];
    int home[MAX_KINDS], there[MAX_KINDS], flags[MAX_KINDS], nk = 0;

    if (strcmp(mode, "pair") == 0 && argc == 5) {
        flags[0] = kind_flag(argv[3]);
        home[0] = open_ns("thread-self", argv[3]);
        there[0] = open(argv[4], O_RDONLY | O_CLOEXEC);
        if (there[0] < 0)
            floor_die(argv[4]);
        for (int i = 0; i < n; i++) {
            long long t0 = floor_now_ns();
            must_setns(there[0], flags[0]);
            must_setns(home[0], flags[0]);
            printf("%lld\n", floor_now_ns() - t0);
        }
        return 0;
    }
    if ((strcmp(mode, "pidfd") == 0 && argc >= 6) || (strcmp(mode, "fds") == 0 && argc >= 5)) {
        int first = strcmp(mode, "pidfd") == 0 ? 5 : 4;
        for (int a = first; a < argc && nk < MAX_KINDS; a++, nk++) {
            flags[nk] = kind_flag(argv[a]);
            home[nk] = open_ns("thread-self", argv[a]);
            there[nk] = first == 4 ? open_ns(argv[3], argv[a]) : -1;
        }
        int pidfd = -1, mask = 0;
        if (first == 5) {
            pidfd = (int)syscall(SYS_pidfd_open, atoi(argv[3]), 0);
            if (pidfd < 0)
                floor_die("pidfd_open");
            mask = (int)strtol(argv[4], NULL, 0);
        }
        for (int i = 0; i < n; i++) {
            long long t0 = floor_now_ns();
            if (pidfd >= 0)
                must_setns(pidfd, mask);
            else
                for (int k = 0; k < nk; k++)
                    must_setns(there[k], flags[k]);
            for (int k = nk - 1; k >= 0; k--)
                must_setns(home[k], flags[k]);
            printf("%lld\n", floor_now_ns() - t0);
        }
        return 0;
    }
    if (strcmp(mode, "exec") == 0 && argc == 5) {
        /* what `nsenter -t PID -a true` does: join every kind at once, fork for
         * the pid namespace, exec, wait */
        int pidfd = (int)syscall(SYS_pidfd_open, atoi(argv[3]), 0);
        if (pidfd < 0)
            floor_die("pidfd_open");
        int mask = (int)strtol(argv[4], NULL, 0);
        for (int i = 0; i < n; i++) {
            long long t0 = floor_now_ns();
            pid_t child = fork();
            if (child < 0)
                floor_die("fork");
            if (child == 0) {
                if (setns(pidfd, mask) < 0)
                    _exit(126);
                pid_t inner = fork();
                if (inner == 0) {
                    execl("/bin/true", "true", (char *)NULL);
                    _exit(127);
                }
                int st;
                waitpid(inner, &st, 0);
                _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 1);
            }
            int st;
            waitpid(child, &st, 0);
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                fprintf(stderr, "exec floor: child failed\n");
                return 1;
            }
            printf("%lld\n", floor_now_ns() - t0);
        }
        return 0;
    }
    fprintf(stderr, "bad mode or arguments\n");
    return 2;
}
