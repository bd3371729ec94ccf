/* C floors for the mounts cases, run inside the benchmark's throwaway mount
 * namespace:
 *   floor_mounts N setattr PATH   recursive propagation toggle (shared/private)
 *                                 with one mount_setattr(AT_RECURSIVE) call
 *   floor_mounts N mount PATH     the same with mount(2) and MS_REC
 *   floor_mounts N unshare        a new mount namespace (copy of the table)
 *   floor_mounts N read           read /proc/self/mountinfo whole (no parsing)
 */
#include "floor_common.h"

#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

struct attr {
    uint64_t set, clr, propagation, userns_fd;
};

static unsigned long mode_of(int i) { return (i & 1) ? MS_SHARED : MS_PRIVATE; }

static void propagation(int n, const char *path, int use_setattr)
{
    for (int i = 0; i < n; i++) {
        long long t0 = floor_now_ns();
        if (use_setattr) {
            struct attr a = {0, 0, mode_of(i), 0};
            if (syscall(SYS_mount_setattr, AT_FDCWD, path, AT_RECURSIVE, &a, sizeof a) < 0)
                floor_die("mount_setattr");
        } else if (mount("none", path, NULL, mode_of(i) | MS_REC, NULL) < 0) {
            floor_die("mount");
        }
        printf("%lld\n", floor_now_ns() - t0);
    }
}

static void new_namespace(int n)
{
    for (int i = 0; i < n; i++) {
        long long t0 = floor_now_ns();
        if (unshare(CLONE_NEWNS) < 0)
            floor_die("unshare");
        printf("%lld\n", floor_now_ns() - t0);
    }
}

static void read_mountinfo(int n)
{
    static char buf[1 << 20];
    for (int i = 0; i < n; i++) {
        long long t0 = floor_now_ns();
        int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            floor_die("open");
        while (read(fd, buf, sizeof buf) > 0)
            ;
        close(fd);
        printf("%lld\n", floor_now_ns() - t0);
    }
}

int main(int argc, char **argv)
{
    int n = floor_count(argc, argv);
    const char *what = argc > 2 ? argv[2] : "";
    if (!strcmp(what, "setattr") && argc > 3)
        propagation(n, argv[3], 1);
    else if (!strcmp(what, "mount") && argc > 3)
        propagation(n, argv[3], 0);
    else if (!strcmp(what, "unshare"))
        new_namespace(n);
    else if (!strcmp(what, "read"))
        read_mountinfo(n);
    else {
        fprintf(stderr, "usage: %s N setattr|mount PATH | N unshare | N read\n", argv[0]);
        return 2;
    }
    return 0;
}
