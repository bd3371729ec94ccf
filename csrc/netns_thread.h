/* Network-namespace work done on a short-lived helper thread, so that the
 * caller's own thread never changes namespace (net is per thread, which is
 * what makes this legal in a threaded process).  Each call creates one
 * pthread with every signal blocked, runs the syscalls there, joins it and
 * returns a non-negative value or -errno. */
#ifndef NSFAST_NETNS_THREAD_H
#define NSFAST_NETNS_THREAD_H

/* unshare(CLONE_NEWNET) on the helper, then bind-mount its
 * /proc/thread-self/ns/net onto target; the namespace lives on in the mount. */
int nsf_netns_new_bound(const char *target);

/* unshare(CLONE_NEWNET) on the helper; an O_CLOEXEC fd of the new namespace. */
int nsf_netns_new_fd(void);

/* setns(nsfd, CLONE_NEWNET) on the helper, then socket(family, type, proto)
 * there: a socket that belongs to that namespace, returned as an fd. */
int nsf_netns_socket(int nsfd, int family, int type, int proto);

#endif
