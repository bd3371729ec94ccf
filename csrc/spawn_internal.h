/* Helpers shared by the parent and child halves of spawn. */
#ifndef NSFAST_SPAWN_INTERNAL_H
#define NSFAST_SPAWN_INTERNAL_H

#include "rawsys.h"

int nsf_child_main(void *arg);

static inline long nsf_strlen(const char *s)
{
    long n = 0;
    while (s[n])
        n++;
    return n;
}

/* close_range(2), or a close loop up to max_fd where the kernel lacks it. */
static inline long close_range_or_loop(unsigned lo, unsigned hi, int max_fd)
{
    long r = nsf_sys3(__NR_close_range, lo, hi, 0);
    if (r != -ENOSYS)
        return r;
    for (long fd = lo; fd <= (long)hi && fd < max_fd; fd++)
        nsf_sys1(__NR_close, fd);
    return 0;
}

#endif
