/* C floors for the mounts cases, run inside the benchmark's throwaway mount
 * namespace:
 *   floor_mounts N setattr PATH   recursive propagation round trip (shared, then
 *                                 private), mount_setattr(AT_RECURSIVE) calls
 *   floor_mounts N mount PATH     the same with mount(2) and MS_REC
 *   floor_mounts N unshare        a new mount namespace (copy of the table)
 *   floor_mounts N read           read /proc/self/mountinfo whole (no parsing)
 * N may be `serve` (floor_common.h).
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

/* One sample is a round trip, as in the Python case: the tree made shared,
 * then private again (the two transitions cost differently). */
static long long setattr_one(void *p)
{
    const char *path = p;
    long long t0 = floor_now_ns();
    for (int i = 0; i < 2; i++) {
        struct attr a = {0, 0, i ? MS_PRIVATE : MS_SHARED, 0};
        if (syscall(SYS_mount_setattr, AT_FDCWD, path, AT_RECURSIVE, &a, sizeof a) < 0)
            floor_die("mount_setattr");
    }
    return floor_now_ns() - t0;
}

static long long mount_one(void *p)
{
    const char *path = p;
    long long t0 = floor_now_ns();
    for (int i = 0; i < 2; i++)
        if (mount("none", path, NULL, (i ? MS_PRIVATE : MS_SHARED) | MS_REC, NULL) < 0)
            floor_die("mount");
    return floor_now_ns() - t0;
}

static long long unshare_one(void *p)
{
    (void)p;
    long long t0 = floor_now_ns();
    if (unshare(CLONE_NEWNS) < 0)
        floor_die("unshare");
    return floor_now_ns() - t0;
}

static long long read_one(void *p)
{
    static char buf[1 << 20];
    (void)p;
    long long t0 = floor_now_ns();
    int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        floor_die("open");
    while (read(fd, buf, sizeof buf) > 0)
        ;
    close(fd);
    return floor_now_ns() - t0;
}

int main(int argc, char **argv)
{
    int n = floor_count(argc, argv);
    const char *what = argc > 2 ? argv[2] : "";
    char *path = argc > 3 ? argv[3] : NULL;
    if (!strcmp(what, "setattr") && path)
        return floor_emit(n, setattr_one, path);
    if (!strcmp(what, "mount") && path)
        return floor_emit(n, mount_one, path);
    if (!strcmp(what, "unshare"))
        return floor_emit(n, unshare_one, NULL);
    if (!strcmp(what, "read"))
        return floor_emit(n, read_one, NULL);
    fprintf(stderr, "usage: %s N|serve setattr|mount PATH | N|serve unshare | N|serve read\n",
            argv[0]);
    return 2;
}
