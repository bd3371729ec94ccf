/* Namespace syscalls for the Python layer.  Every function returns a
 * non-negative value on success and -errno on failure; none sets errno. */
#ifndef NSFAST_NSCORE_H
#define NSFAST_NSCORE_H

#include <stdint.h>
#include <sys/types.h>

int nsf_unshare(int flags);
int nsf_setns(int fd, int nstype);
int nsf_pidfd_open(int pid, unsigned int flags);
int nsf_pidfd_send_signal(int pidfd, int sig);
/* One of NS_GET_USERNS / NS_GET_PARENT / NS_GET_NSTYPE on an nsfs fd. */
int nsf_ns_ioctl(int fd, unsigned long request);
int nsf_ns_owner_uid(int fd, uint32_t *uid);
/* An fd on the network namespace of socket `fd` of the process `pidfd`
 * names (pidfd_getfd 5.6+, then SIOCGSKNS); needs ptrace access to it. */
int nsf_socket_netns(int pidfd, int fd);

/* Feature probes: 1 = available, 0 = not. */
int nsf_probe_clone3(void);
int nsf_probe_pidfd_open(void);
int nsf_probe_mount_setattr(void);
int nsf_probe_close_range(void);

/* The setns loop: join a set of namespaces in the order the kernel needs.
 * Targets are (fd, kind) pairs; with use_pidfd, fds[0] is a pidfd and
 * kinds[0] the CLONE_NEW* mask of all kinds to join at once.  On failure
 * *failed_kind is the kind being joined.  A user namespace fd naming the
 * caller's own user namespace is skipped (joining it is EINVAL); with a pidfd
 * the caller leaves CLONE_NEWUSER out of the mask in that case.  EPERM in the
 * first pass is retried after the user namespace when one is joined.
 * Async-signal-safe. */
struct nsf_join {
    int count;
    int use_pidfd;
    int setgroups_first;     /* setgroups(0, NULL) before joining a user ns */
    const int *fds;
    const int *kinds;
};
int nsf_join_run(const struct nsf_join *j, int *failed_kind);

/* mount(2), umount2(2) and mount_setattr(2), for the Python layer.
 * mount_setattr with a path: dirfd AT_FDCWD. */
int nsf_mount(const char *src, const char *target, const char *fstype, unsigned long flags,
              const char *data);
int nsf_umount2(const char *target, int flags);
int nsf_mount_setattr(const char *path, unsigned int at_flags, uint64_t attr_set,
                      uint64_t attr_clr, uint64_t propagation);

#endif
