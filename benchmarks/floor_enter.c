/* C floor for the enter cases.  `floor_enter N MODE ARGS...` prints N samples in ns;
 * `floor_enter serve MODE ARGS...` serves them one at a time (floor_common.h).
 *   pair KIND PATH          setns into PATH's namespace and back to the thread's own
 *                           (what `with nsfast.enter(ns)` does: two setns calls)
 *   pidfd PID MASK KINDS..  setns(pidfd of PID, MASK), then back with one setns per
 *                           kind to the thread's own fds (enter(pid, kinds))
 *   fds PID KINDS..         one setns per kind into PID's fds, then back per kind
 *   exec PID MASK           fork, setns(pidfd of PID, MASK), fork, exec /bin/true, wait
 *                           (what `nsenter -t PID -a true` does) */
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

struct enter {
    int home[MAX_KINDS], there[MAX_KINDS], flags[MAX_KINDS], nk;
    int pidfd, mask, pid;
};

static long long pair_one(void *ctx)
{
    struct enter *e = ctx;
    long long t0 = floor_now_ns();
    must_setns(e->there[0], e->flags[0]);
    must_setns(e->home[0], e->flags[0]);
    return floor_now_ns() - t0;
}

/* pidfd and fds: into the namespaces (one setns of a pidfd opened for the
 * sample, as enter(pid, kinds) must, when there is a pid; else one per
 * kind), then back per kind, in reverse order */
static long long enter_one(void *ctx)
{
    struct enter *e = ctx;
    long long t0 = floor_now_ns();
    if (e->pid > 0) {
        int pidfd = (int)syscall(SYS_pidfd_open, e->pid, 0);
        if (pidfd < 0)
            floor_die("pidfd_open");
        must_setns(pidfd, e->mask);
        close(pidfd);
    } else
        for (int k = 0; k < e->nk; k++)
            must_setns(e->there[k], e->flags[k]);
    for (int k = e->nk - 1; k >= 0; k--)
        must_setns(e->home[k], e->flags[k]);
    return floor_now_ns() - t0;
}

static long long exec_one(void *ctx)
{
    struct enter *e = ctx;
    long long t0 = floor_now_ns();
    pid_t child = fork();
    if (child < 0)
        floor_die("fork");
    if (child == 0) {
        if (setns(e->pidfd, e->mask) < 0)
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
        exit(1);
    }
    return floor_now_ns() - t0;
}

int main(int argc, char **argv)
{
    int n = floor_count(argc, argv);
    if (argc < 3) {
        fprintf(stderr, "usage: %s N|serve pair|pidfd|fds|exec ARGS...\n", argv[0]);
        return 2;
    }
    const char *mode = argv[2];
    /* static: an in-process floor samples after main returns */
    static struct enter e;
    e = (struct enter){.nk = 0, .pidfd = -1, .mask = 0, .pid = 0};

    if (strcmp(mode, "pair") == 0 && argc == 5) {
        e.flags[0] = kind_flag(argv[3]);
        e.home[0] = open_ns("thread-self", argv[3]);
        e.there[0] = open(argv[4], O_RDONLY | O_CLOEXEC);
        if (e.there[0] < 0)
            floor_die(argv[4]);
        return floor_emit(n, pair_one, &e);
    }
    if ((strcmp(mode, "pidfd") == 0 && argc >= 6) || (strcmp(mode, "fds") == 0 && argc >= 5)) {
        int first = strcmp(mode, "pidfd") == 0 ? 5 : 4;
        for (int a = first; a < argc && e.nk < MAX_KINDS; a++, e.nk++) {
            e.flags[e.nk] = kind_flag(argv[a]);
            e.home[e.nk] = open_ns("thread-self", argv[a]);
            e.there[e.nk] = first == 4 ? open_ns(argv[3], argv[a]) : -1;
        }
        if (first == 5) {
            e.pid = atoi(argv[3]);
            e.mask = (int)strtol(argv[4], NULL, 0);
        }
        return floor_emit(n, enter_one, &e);
    }
    if (strcmp(mode, "exec") == 0 && argc == 5) {
        e.pidfd = (int)syscall(SYS_pidfd_open, atoi(argv[3]), 0);
        if (e.pidfd < 0)
            floor_die("pidfd_open");
        e.mask = (int)strtol(argv[4], NULL, 0);
        return floor_emit(n, exec_one, &e);
    }
    fprintf(stderr, "bad mode or arguments\n");
    return 2;
}
