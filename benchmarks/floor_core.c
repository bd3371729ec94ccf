/* C floor for the core cases.  `floor_core N MODE ARGS...` prints N samples in ns;
 * `floor_core serve MODE ARGS...` serves them one at a time (floor_common.h).
 *   unshare FLAG          fork a child per sample; the child times unshare(FLAG) and
 *                         reports through a pipe (the same method as the Python side)
 *   setns PATH KIND       setns into PATH's namespace and back to the thread's own
 *   pidfd THERE BACK MASK setns(pidfd of THERE, MASK), then setns(pidfd of BACK, MASK)
 *   scan                  read every process's ns links and stat its /proc directory,
 *                         as a namespace listing must */
#include "floor_common.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const ns_names[] = {"mnt", "net", "pid", "user", "uts", "ipc", "cgroup",
                                       "time"};

static long long unshare_one(void *ctx)
{
    int flag = *(int *)ctx;
    int fds[2];
    long long dt = -1;
    pid_t pid;

    if (pipe(fds) < 0)
        floor_die("pipe");
    pid = fork();
    if (pid < 0)
        floor_die("fork");
    if (pid == 0) {
        long long t0 = floor_now_ns();
        int r = unshare(flag);
        long long t = floor_now_ns() - t0;
        if (r < 0)
            t = -1;
        if (write(fds[1], &t, sizeof t) != sizeof t)
            _exit(2);
        _exit(r < 0);
    }
    close(fds[1]);
    if (read(fds[0], &dt, sizeof dt) != sizeof dt || dt < 0)
        floor_die("unshare in the child");
    close(fds[0]);
    waitpid(pid, NULL, 0);
    return dt;
}

static int kind_flag(const char *name)
{
    static const int flags[] = {CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWPID, CLONE_NEWUSER,
                                CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWCGROUP, 0x80};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        if (strcmp(name, ns_names[i]) == 0)
            return flags[i];
    fprintf(stderr, "unknown kind %s\n", name);
    exit(2);
}

static void scan_once(void)
{
    DIR *proc = opendir("/proc");
    struct dirent *e;
    char path[300], link[64];
    struct stat st;

    if (!proc)
        floor_die("/proc");
    while ((e = readdir(proc)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        for (size_t i = 0; i < sizeof ns_names / sizeof ns_names[0]; i++) {
            snprintf(path, sizeof path, "/proc/%s/ns/%s", e->d_name, ns_names[i]);
            if (readlink(path, link, sizeof link) < 0)
                continue;
        }
        snprintf(path, sizeof path, "/proc/%s", e->d_name);
        stat(path, &st);
    }
    closedir(proc);
}

static long long scan_one(void *ctx)
{
    (void)ctx;
    long long t0 = floor_now_ns();
    scan_once();
    return floor_now_ns() - t0;
}

struct pair {
    int there, back, nstype;
};

/* setns there and back, the sample being the pair, as the Python side does it */
static long long setns_pair_one(void *ctx)
{
    struct pair *p = ctx;
    long long t0 = floor_now_ns();
    if (setns(p->there, p->nstype) < 0 || setns(p->back, p->nstype) < 0)
        floor_die("setns");
    return floor_now_ns() - t0;
}

int main(int argc, char **argv)
{
    int n = floor_count(argc, argv);
    const char *mode = argc > 2 ? argv[2] : "";

    if (strcmp(mode, "unshare") == 0 && argc == 4) {
        static int flag;   /* static: an in-process floor samples after main returns */
        flag = (int)strtol(argv[3], NULL, 0);
        return floor_emit(n, unshare_one, &flag);
    } else if (strcmp(mode, "setns") == 0 && argc == 5) {
        static struct pair p;
        p.nstype = kind_flag(argv[4]);
        char own[64];
        snprintf(own, sizeof own, "/proc/thread-self/ns/%s", argv[4]);
        p.there = open(argv[3], O_RDONLY | O_CLOEXEC);
        p.back = open(own, O_RDONLY | O_CLOEXEC);
        if (p.there < 0 || p.back < 0)
            floor_die("open");
        return floor_emit(n, setns_pair_one, &p);
    } else if (strcmp(mode, "pidfd") == 0 && argc == 6) {
        static struct pair p;
        p.there = (int)syscall(SYS_pidfd_open, atoi(argv[3]), 0);
        p.back = (int)syscall(SYS_pidfd_open, atoi(argv[4]), 0);
        p.nstype = (int)strtol(argv[5], NULL, 0);
        if (p.there < 0 || p.back < 0)
            floor_die("pidfd_open");
        return floor_emit(n, setns_pair_one, &p);
    } else if (strcmp(mode, "scan") == 0) {
        return floor_emit(n, scan_one, NULL);
    }
    fprintf(stderr, "usage: %s N|serve unshare FLAG | setns PATH KIND | pidfd THERE BACK MASK"
                    " | scan\n", argv[0]);
    return 2;
}
