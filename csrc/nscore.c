/* Namespace syscalls: unshare, setns, pidfds, nsfs ioctls, feature probes and
 * the ordered setns loop.  Raw syscalls only, so that the loop can also run in
 * a CLONE_VM child. */
#include "nscore.h"
#include "rawsys.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>

int nsf_unshare(int flags) { return (int)nsf_sys1(__NR_unshare, flags); }

int nsf_setns(int fd, int nstype) { return (int)nsf_sys2(__NR_setns, fd, nstype); }

int nsf_pidfd_open(int pid, unsigned int flags)
{
    return (int)nsf_sys2(__NR_pidfd_open, pid, flags);
}

int nsf_pidfd_send_signal(int pidfd, int sig)
{
    return (int)nsf_sys4(__NR_pidfd_send_signal, pidfd, sig, 0, 0);
}

int nsf_ns_ioctl(int fd, unsigned long request)
{
    return (int)nsf_sys3(__NR_ioctl, fd, request, 0);
}

int nsf_ns_owner_uid(int fd, uint32_t *uid)
{
    return (int)nsf_sys3(__NR_ioctl, fd, NS_GET_OWNER_UID, uid);
}

int nsf_socket_netns(int pidfd, int fd)
{
    long sock = nsf_sys3(__NR_pidfd_getfd, pidfd, fd, 0);
    if (sock < 0)
        return (int)sock;
    long ns = nsf_sys3(__NR_ioctl, sock, SIOCGSKNS, 0);
    nsf_sys1(__NR_close, sock);
    return (int)ns;
}

int nsf_probe_clone3(void)
{
    /* A NULL argument is EFAULT/EINVAL where clone3 exists, ENOSYS where not. */
    return nsf_sys2(__NR_clone3, 0, 0) != -ENOSYS;
}

int nsf_probe_pidfd_open(void)
{
    long fd = nsf_sys2(__NR_pidfd_open, nsf_sys0(__NR_getpid), 0);
    if (fd < 0)
        return 0;
    nsf_sys1(__NR_close, fd);
    return 1;
}

int nsf_probe_mount_setattr(void)
{
    /* An invalid fd is EBADF where the call exists. */
    return nsf_sys5(__NR_mount_setattr, -1, "", 0, 0, 0) != -ENOSYS;
}

int nsf_probe_close_range(void)
{
    /* first > last is EINVAL where the call exists. */
    return nsf_sys3(__NR_close_range, 2, 1, 0) != -ENOSYS;
}

/* The identity of this task's user namespace, taken before any setns: once a
 * mount namespace is joined, /proc/thread-self may resolve in the target's
 * /proc, where this task is not visible, and the check would be lost. */
struct own_userns {
    int known;
    struct stat st;
};

static void own_userns_get(struct own_userns *o)
{
    o->known = nsf_sys4(__NR_newfstatat, AT_FDCWD, "/proc/thread-self/ns/user", &o->st, 0) == 0;
}

/* Is fd the user namespace this task is in?  Joining it would be EINVAL. */
static int is_own_userns(const struct own_userns *o, int fd)
{
    struct stat a;
    if (!o->known || nsf_sys2(__NR_fstat, fd, &a) < 0)
        return 0;
    return a.st_dev == o->st.st_dev && a.st_ino == o->st.st_ino;
}

int nsf_join_run(const struct nsf_join *j, int *failed_kind)
{
    long r;
    int i, pending = 0, has_user = 0;
    struct own_userns own = {0};
    /* EPERM in the first pass is retried after the user namespace was joined:
     * the privilege to enter them may come from that user namespace. */
    unsigned char retry[16] = {0};

    *failed_kind = 0;
    if (j->use_pidfd) {
        if (j->setgroups_first && (j->kinds[0] & CLONE_NEWUSER))
            nsf_sys2(__NR_setgroups, 0, 0);
        r = nsf_sys2(__NR_setns, j->fds[0], j->kinds[0]);
        if (r < 0)
            *failed_kind = j->kinds[0];
        return (int)r;
    }
    if (j->count > 16)
        return -E2BIG;
    for (i = 0; i < j->count; i++)
        has_user |= j->kinds[i] == CLONE_NEWUSER;
    if (has_user)
        own_userns_get(&own);
    for (i = 0; i < j->count; i++) {
        if (j->kinds[i] == CLONE_NEWUSER)
            continue;
        r = nsf_sys2(__NR_setns, j->fds[i], j->kinds[i]);
        if (r == -EPERM && has_user) {
            retry[i] = 1;
            pending = 1;
        } else if (r < 0) {
            *failed_kind = j->kinds[i];
            return (int)r;
        }
    }
    for (i = 0; i < j->count; i++) {
        if (j->kinds[i] != CLONE_NEWUSER || is_own_userns(&own, j->fds[i]))
            continue;
        if (j->setgroups_first)
            nsf_sys2(__NR_setgroups, 0, 0);
        r = nsf_sys2(__NR_setns, j->fds[i], CLONE_NEWUSER);
        if (r < 0) {
            *failed_kind = CLONE_NEWUSER;
            return (int)r;
        }
    }
    for (i = 0; pending && i < j->count; i++) {
        if (!retry[i])
            continue;
        r = nsf_sys2(__NR_setns, j->fds[i], j->kinds[i]);
        if (r < 0) {
            *failed_kind = j->kinds[i];
            return (int)r;
        }
    }
    return 0;
}

int nsf_mount(const char *src, const char *target, const char *fstype, unsigned long flags,
              const char *data)
{
    return (int)nsf_sys5(__NR_mount, src, target, fstype, flags, data);
}

int nsf_umount2(const char *target, int flags)
{
    return (int)nsf_sys2(__NR_umount2, target, flags);
}

int nsf_mount_setattr(const char *path, unsigned int at_flags, uint64_t attr_set,
                      uint64_t attr_clr, uint64_t propagation)
{
    struct nsf_mount_attr attr = {attr_set, attr_clr, propagation, 0};
    return (int)nsf_sys5(__NR_mount_setattr, AT_FDCWD, path, at_flags, &attr, sizeof attr);
}
