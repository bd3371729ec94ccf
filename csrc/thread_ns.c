/* See thread_ns.h.  The state is a __thread struct, so each thread reads its
 * own without a lock; a pthread key whose destructor closes the homes is
 * set once per thread, when it opens its first one. */
#include "thread_ns.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include "kinds.h"
#include "nscore.h"

struct thread_ns {
    int home[NSF_KINDS];            /* valid where the bit of `opened` is set */
    int depth[NSF_KINDS];           /* open enter() blocks */
    unsigned int opened;            /* bit k: home[k] is this thread's fd */
    int registered;                 /* the key's destructor will close them */
};

static __thread struct thread_ns state;
static pthread_key_t closer;
static pthread_once_t closer_once = PTHREAD_ONCE_INIT;
static int closer_made;

static void close_homes(void *arg)
{
    struct thread_ns *s = arg;

    for (int k = 0; k < NSF_KINDS; k++)
        if (s->opened & 1u << k)
            close(s->home[k]);
    s->opened = 0;
}

static void make_closer(void) { closer_made = pthread_key_create(&closer, close_homes) == 0; }

static int index_of(int kind)
{
    for (int k = 0; k < NSF_KINDS; k++)
        if (nsf_kinds[k].flag == kind)
            return k;
    return -1;
}

static int home(int k)
{
    char path[64];
    int fd;

    if (state.opened & 1u << k)
        return state.home[k];
    if (!state.registered) {
        /* without it the thread's homes would outlive it */
        pthread_once(&closer_once, make_closer);
        if (!closer_made || pthread_setspecific(closer, &state) != 0)
            return -ENOMEM;
        state.registered = 1;
    }
    snprintf(path, sizeof path, "/proc/thread-self/ns/%s", nsf_kinds[k].proc);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    state.home[k] = fd;
    state.opened |= 1u << k;
    return fd;
}

int nsf_thread_push(int kind, int *back)
{
    int k = index_of(kind), fd = -1;

    if (k < 0)
        return -EINVAL;
    if (state.depth[k] == 0 && (fd = home(k)) < 0)
        return fd;
    state.depth[k]++;
    *back = fd;
    return 0;
}

int nsf_thread_pop(int kind)
{
    int k = index_of(kind);

    if (k < 0)
        return -EINVAL;
    if (state.depth[k] > 0)
        state.depth[k]--;
    return 0;
}

int nsf_thread_enter(int fd, int kind)
{
    int k = index_of(kind), r;

    if (k < 0)
        return -EINVAL;
    if (state.depth[k] || !(kind & NSF_PER_THREAD))
        return 0;
    if ((r = home(k)) < 0 || (r = nsf_setns(fd, kind)) < 0)
        return r;
    state.depth[k] = 1;
    return 1;
}

int nsf_thread_leave(int kind)
{
    int r = nsf_thread_pop(kind), k = index_of(kind);

    if (r < 0)
        return r;
    if (!(state.opened & 1u << k))
        return -EBADF;
    return nsf_setns(state.home[k], kind);
}

int nsf_thread_setns(int fd, int kind)
{
    int r;

    if (index_of(kind) < 0)
        return -EINVAL;
    if (!(kind & NSF_PER_THREAD))
        return 0;
    if ((r = nsf_setns(fd, kind)) < 0)
        return r;
    nsf_thread_forget(kind);
    return 1;
}

void nsf_thread_forget(int kinds)
{
    for (int k = 0; k < NSF_KINDS; k++)
        if (nsf_kinds[k].flag & kinds && state.opened & 1u << k && state.depth[k] == 0) {
            close(state.home[k]);
            state.opened &= ~(1u << k);
        }
}
