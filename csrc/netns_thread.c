/* See netns_thread.h.  The helper thread is a plain pthread that never
 * touches Python; the caller waits for it with the GIL released. */
#include "netns_thread.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

enum netns_op { OP_NEW_BOUND, OP_NEW_FD, OP_SOCKET };

struct netns_job {
    enum netns_op op;
    const char *target;
    int nsfd, family, type, proto;
    int result;
};

static void *netns_worker(void *arg)
{
    struct netns_job *job = arg;
    int fd;

    if (job->op == OP_SOCKET) {
        if (setns(job->nsfd, CLONE_NEWNET) < 0)
            goto fail;
        fd = socket(job->family, job->type | SOCK_CLOEXEC, job->proto);
        if (fd < 0)
            goto fail;
        job->result = fd;
        return NULL;
    }
    if (unshare(CLONE_NEWNET) < 0)
        goto fail;
    if (job->op == OP_NEW_FD) {
        fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            goto fail;
        job->result = fd;
        return NULL;
    }
    /* the bind is what keeps the namespace alive once this thread ends */
    if (mount("/proc/thread-self/ns/net", job->target, "none", MS_BIND, NULL) < 0)
        goto fail;
    job->result = 0;
    return NULL;
fail:
    job->result = -errno;
    return NULL;
}

static int run_on_helper(struct netns_job *job)
{
    pthread_t tid;
    sigset_t all, old;
    int r;

    /* the helper inherits this mask: no signal handler may run on it */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    r = pthread_create(&tid, NULL, netns_worker, job);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r != 0)
        return -r;
    pthread_join(tid, NULL);
    return job->result;
}

int nsf_netns_new_bound(const char *target)
{
    struct netns_job job = {.op = OP_NEW_BOUND, .target = target};
    return run_on_helper(&job);
}

int nsf_netns_new_fd(void)
{
    struct netns_job job = {.op = OP_NEW_FD};
    return run_on_helper(&job);
}

int nsf_netns_socket(int nsfd, int family, int type, int proto)
{
    struct netns_job job = {.op = OP_SOCKET, .nsfd = nsfd, .family = family, .type = type,
                            .proto = proto};
    return run_on_helper(&job);
}
