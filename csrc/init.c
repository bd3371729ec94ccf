/* nsfast-init: pid 1 of a sandbox's pid namespace (spawn(init=True)).
 *
 * It is a program of its own, exec'd by the spawn child from a sealed memfd,
 * because pid 1 is visible to the payload: a process that shared the
 * caller's memory there would let the payload read (and, as its namespace's
 * root, write) the caller through /proc/1/mem.  This one holds nothing but
 * its arguments.  It is static and freestanding (no libc), so that it runs
 * in any root the sandbox was given.
 *
 *   nsfast-init ERRFD NCAND CANDIDATE... ARGV...
 *
 * It starts ARGV[0] from the first CANDIDATE path that execve takes, reports
 * a failed exec as a {step, errno, index} record on ERRFD (the spawn's error
 * pipe, whose end of file tells the caller that the exec happened), keeps no
 * other fd, forwards the usual termination signals to the payload, reaps
 * every orphan, and exits with the payload's status (128+N for signal N). */
#include "spawn.h"
#include "spawn_internal.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#if defined(__x86_64__)
__asm__(".text\n"
        ".globl _start\n"
        "_start:\n"
        "  xor %ebp, %ebp\n"
        "  mov %rsp, %rdi\n"
        "  and $-16, %rsp\n"
        "  call init_main\n"
        "  hlt\n");
#elif defined(__aarch64__)
__asm__(".text\n"
        ".globl _start\n"
        "_start:\n"
        "  mov x29, xzr\n"
        "  mov x0, sp\n"
        "  bl init_main\n");
#endif

static __attribute__((noreturn)) void leave(int code)
{
    for (;;)
        nsf_sys1(__NR_exit_group, code);
}

static void report(int fd, int step, long err, int index)
{
    struct nsf_record r;
    r.step = step;
    r.err = (int)-err;
    r.index = index;
    r.value = 0;
    nsf_sys3(__NR_write, fd, &r, sizeof r);
}

static long parse_count(const char *s)
{
    long v = 0;
    if (!s || !*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > 1000000)
            return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

static __attribute__((noreturn)) void start_payload(int errfd, char **cand, long ncand,
                                                     char **argv, char **envp,
                                                     const uint64_t *mask)
{
    int index;
    nsf_sys4(__NR_rt_sigprocmask, SIG_SETMASK, mask, 0, 8);
    nsf_sys3(__NR_fcntl, errfd, F_SETFD, FD_CLOEXEC);
    long r = nsf_exec_candidates(cand, ncand, argv, envp, &index);
    report(errfd, NSF_STEP_EXEC, r, index);
    leave(127);
}

__attribute__((used, noreturn)) void init_main(long *stack)
{
    static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
    long argc = stack[0];
    char **argv = (char **)(stack + 1);
    char **envp = argv + argc + 1;
    long errfd = argc > 3 ? parse_count(argv[1]) : -1;
    long ncand = argc > 3 ? parse_count(argv[2]) : -1;
    if (errfd < 0 || ncand < 1 || 3 + ncand >= argc)
        leave(127);

    nsf_sys5(__NR_prctl, PR_SET_NAME, "nsfast-init", 0, 0, 0);
    uint64_t waitset = 1ULL << (SIGCHLD - 1), start_mask = 0;
    for (unsigned i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
        waitset |= 1ULL << (forwarded[i] - 1);
    /* blocked, not handled: pid 1 would otherwise drop them (it gets no
     * default actions), and sigtimedwait collects them */
    nsf_sys4(__NR_rt_sigprocmask, SIG_BLOCK, &waitset, &start_mask, 8);

    /* a plain fork: this process's memory is its own and small */
    long payload = nsf_sys5(__NR_clone, SIGCHLD, 0, 0, 0, 0);
    if (payload == 0)
        start_payload((int)errfd, argv + 3, ncand, argv + 3 + ncand, envp, &start_mask);
    if (payload < 0) {
        report((int)errfd, NSF_STEP_INIT, payload, 0);
        leave(127);
    }
    /* the payload has the std fds and the passed ones; pid 1 keeps none */
    if (nsf_sys3(__NR_close_range, 0, ~0U, 0) < 0)
        for (long fd = 0; fd < 1024; fd++)
            nsf_sys1(__NR_close, fd);

    for (;;) {
        siginfo_t info;
        long sig = nsf_sys4(__NR_rt_sigtimedwait, &waitset, &info, 0, 8);
        if (sig < 0)
            continue;
        if (sig != SIGCHLD) {
            nsf_sys2(__NR_kill, payload, sig);
            continue;
        }
        for (;;) {
            int status = 0;
            long r = nsf_sys4(__NR_wait4, -1, &status, WNOHANG | __WALL, 0);
            if (r <= 0)
                break;
            if (r == payload) {
                if (WIFEXITED(status))
                    leave(WEXITSTATUS(status));
                leave(128 + WTERMSIG(status));
            }
        }
    }
}
