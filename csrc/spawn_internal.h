/* Helpers shared by the parent and child halves of spawn. */
#ifndef NSFAST_SPAWN_INTERNAL_H
#define NSFAST_SPAWN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "rawsys.h"

int nsf_child_main(void *arg);

/* Start fn(arg) in a new process on [stack, stack + stack_size): clone3 when
 * use_clone3 (with CLONE_INTO_CGROUP when cgroup_fd >= 0), the legacy clone
 * otherwise.  Returns the pid (the pidfd in *pidfd with CLONE_PIDFD) or
 * -errno.  Raw syscalls only: safe in a CLONE_VM child (csrc/spawn_clone.c). */
long nsf_clone_on_stack(int use_clone3, uint64_t flags, int exit_signal, int cgroup_fd,
                        void *stack, size_t stack_size, int (*fn)(void *), void *arg,
                        int *pidfd);
long nsf_clone3_run(struct nsf_clone_args *args, size_t size, int (*fn)(void *), void *arg);
long nsf_clone_run(unsigned long flags, void *stack_top, int (*fn)(void *), void *arg,
                   int *parent_tid);

static inline long nsf_strlen(const char *s)
{
    long n = 0;
    while (s[n])
        n++;
    return n;
}

/* v in decimal at out (at most 20 characters, no NUL); returns how many. */
static inline int nsf_decimal(char *out, unsigned long long v)
{
    char digits[20];
    int d = 0, n = 0;
    do {
        digits[d++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (d)
        out[n++] = digits[--d];
    return n;
}

/* execve each candidate path in turn (a PATH search done ahead); returns
 * only when none could be run, with the error to report: as subprocess, the
 * first that is not "not here", and in *index the path it came from. */
static inline long nsf_exec_candidates(char *const *paths, long n, char *const *argv,
                                       char *const *envp, int *index)
{
    long saved = 0, last = -ENOENT;
    *index = 0;
    for (long i = 0; i < n && paths[i]; i++) {
        last = nsf_sys3(__NR_execve, paths[i], argv, envp);
        if (saved == 0 && last != -ENOENT && last != -ENOTDIR) {
            saved = last;
            *index = (int)i;
        }
    }
    return saved ? saved : last;
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
