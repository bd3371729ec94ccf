/* The parent side of a spawn: map the child stacks, clone, write the id maps
 * into /proc/<pid>, release the child and read its report. */
#include "spawn.h"
#include "spawn_internal.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

/* Each stack only holds the child's own frames (no libc, no Python). */
#define NSF_ONE_STACK (64 * 1024)

/* clone3 returns in the child on the new stack, so it needs a trampoline in
 * assembly that calls fn(arg) there and exits with its result.
 * int nsf_clone3_run(struct nsf_clone_args *, size_t, int (*fn)(void *), void *) */
#if defined(__x86_64__)
__asm__(".text\n"
        ".globl nsf_clone3_run\n"
        ".hidden nsf_clone3_run\n"
        ".type nsf_clone3_run,@function\n"
        "nsf_clone3_run:\n"
        "  mov %rdx, %r8\n"
        "  mov %rcx, %r9\n"
        "  mov $435, %eax\n"
        "  syscall\n"
        "  test %rax, %rax\n"
        "  jz 1f\n"
        "  ret\n"
        "1:\n"
        "  xor %ebp, %ebp\n"
        "  mov %r9, %rdi\n"
        "  call *%r8\n"
        "  mov %eax, %edi\n"
        "  mov $231, %eax\n"
        "  syscall\n"
        "  hlt\n"
        ".size nsf_clone3_run, .-nsf_clone3_run\n");
#define NSF_HAVE_CLONE3_TRAMPOLINE 1
#elif defined(__aarch64__)
__asm__(".text\n"
        ".globl nsf_clone3_run\n"
        ".hidden nsf_clone3_run\n"
        ".type nsf_clone3_run,%function\n"
        "nsf_clone3_run:\n"
        "  mov x10, x2\n"
        "  mov x11, x3\n"
        "  mov x8, #435\n"
        "  svc #0\n"
        "  cbz x0, 1f\n"
        "  ret\n"
        "1:\n"
        "  mov x29, xzr\n"
        "  mov x0, x11\n"
        "  blr x10\n"
        "  mov x8, #94\n"
        "  svc #0\n"
        ".size nsf_clone3_run, .-nsf_clone3_run\n");
#define NSF_HAVE_CLONE3_TRAMPOLINE 1
#else
#define NSF_HAVE_CLONE3_TRAMPOLINE 0
#endif

#if NSF_HAVE_CLONE3_TRAMPOLINE
long nsf_clone3_run(struct nsf_clone_args *args, size_t size, int (*fn)(void *), void *arg);
#endif

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        nsf_sys1(__NR_close, *fd);
        *fd = -1;
    }
}

/* A pipe whose ends are both >= 3, so that the child's dup2 onto 0-2 cannot
 * clobber them. */
static long make_pipe(int p[2])
{
    long r = nsf_sys2(__NR_pipe2, p, O_CLOEXEC);
    if (r < 0)
        return r;
    for (int i = 0; i < 2; i++) {
        if (p[i] < 3) {
            long fd = nsf_sys3(__NR_fcntl, p[i], F_DUPFD_CLOEXEC, 3);
            nsf_sys1(__NR_close, p[i]);
            if (fd < 0)
                return fd;
            p[i] = (int)fd;
        }
    }
    return 0;
}

static int caller_ignores_sigchld(void)
{
    struct {
        void *handler;
        unsigned long flags;
        void *restorer;
        uint64_t mask;
    } old;
    if (nsf_sys4(__NR_rt_sigaction, SIGCHLD, 0, &old, 8) < 0)
        return 0;
    return old.handler == SIG_IGN || (old.flags & SA_NOCLDWAIT);
}

/* Stacks of finished spawns, kept for the next ones: a fresh mapping costs
 * an mmap, page faults in the child and an munmap whose TLB shootdown
 * reaches the CPU the child ran on.  Slots are taken and filled with atomic
 * exchanges, so that spawning threads need no lock. */
#define NSF_STACK_CACHE 8
static void *stack_cache[NSF_STACK_CACHE];

static void *stack_get(size_t size)
{
    for (int i = 0; i < NSF_STACK_CACHE; i++) {
        void *s = __atomic_exchange_n(&stack_cache[i], (void *)0, __ATOMIC_ACQUIRE);
        if (s)
            return s;
    }
    void *s = mmap(0, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
    return s == MAP_FAILED ? 0 : s;
}

static void stack_put(void *s, size_t size)
{
    for (int i = 0; i < NSF_STACK_CACHE; i++) {
        void *empty = 0;
        if (__atomic_compare_exchange_n(&stack_cache[i], &empty, s, 0, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED))
            return;
    }
    munmap(s, size);
}

int nsf_spawn_clone(const struct nsf_spawn *sp, struct nsf_spawn_state *st)
{
    int errpipe[2] = {-1, -1}, syncpipe[2] = {-1, -1};
    long r;

    struct nsf_child_ctx *ctx = &st->ctx;
    st->pid = st->first_pid = -1;
    st->pidfd = st->errpipe_r = st->sync_w = -1;
    ctx->errpipe_w = ctx->sync_r = ctx->sync_w = -1;
    ctx->sp = sp;
    st->keep_stack = sp->init;
    st->stack = 0;
    /* With SIGCHLD ignored the kernel reaps children itself and their status
     * is lost; a child with exit signal 0 is not auto-reaped (waited with
     * __WALL).  That holds until execve, which resets the exit signal to
     * SIGCHLD: it keeps a failed child and a C init waitable, and the payload's
     * status comes from the pidfd (process.py). */
    st->exit_signal = caller_ignores_sigchld() ? 0 : SIGCHLD;

    r = make_pipe(errpipe);
    if (r < 0)
        return (int)r;
    st->errpipe_r = errpipe[0];
    ctx->errpipe_w = errpipe[1];
    if (sp->need_sync) {
        r = make_pipe(syncpipe);
        if (r < 0)
            goto fail;
        ctx->sync_r = syncpipe[0];
        st->sync_w = ctx->sync_w = syncpipe[1];
    }
    ctx->one_stack = NSF_ONE_STACK;
    st->stack_size = 3 * NSF_ONE_STACK;
    st->stack = stack_get(st->stack_size);
    if (!st->stack) {
        r = -ENOMEM;
        goto fail;
    }
#if defined(__SANITIZE_ADDRESS__)
    /* A child leaves by exit, not by return, so its frames stay poisoned in
     * the shadow memory; a later mapping at the same address inherits that. */
    ASAN_UNPOISON_MEMORY_REGION(st->stack, st->stack_size);
#endif
    ctx->stack2 = (char *)st->stack + NSF_ONE_STACK;
    ctx->stack3 = (char *)st->stack + 2 * NSF_ONE_STACK;

    /* No handler of the interpreter may run in the child, which shares its
     * memory: block everything around the clone; the child resets the
     * dispositions and unblocks before exec. */
    uint64_t all = ~0ULL, old = 0;
    nsf_sys4(__NR_rt_sigprocmask, SIG_SETMASK, &all, &old, 8);
    int pidfd = -1;
    uint64_t flags = (uint64_t)(unsigned)sp->clone_flags | CLONE_VM | CLONE_PIDFD;
#if NSF_HAVE_CLONE3_TRAMPOLINE
    if (sp->use_clone3) {
        struct nsf_clone_args ca = {0};
        ca.flags = flags;
        ca.pidfd = (uint64_t)(uintptr_t)&pidfd;
        ca.exit_signal = (uint64_t)st->exit_signal;
        ca.stack = (uint64_t)(uintptr_t)st->stack;
        ca.stack_size = NSF_ONE_STACK;
        if (sp->cgroup_fd >= 0) {
            ca.flags |= CLONE_INTO_CGROUP;
            ca.cgroup = (uint64_t)sp->cgroup_fd;
        }
        r = nsf_clone3_run(&ca, sizeof ca, nsf_child_main, ctx);
    } else
#endif
    {
        if (sp->cgroup_fd >= 0)
            r = -ENOSYS;
        else {
            r = clone(nsf_child_main, (char *)st->stack + NSF_ONE_STACK,
                      (int)flags | st->exit_signal, ctx, &pidfd);
            if (r < 0)
                r = -errno;
        }
    }
    nsf_sys4(__NR_rt_sigprocmask, SIG_SETMASK, &old, 0, 8);
    if (r < 0)
        goto fail;
    st->pid = st->first_pid = (pid_t)r;
    st->pidfd = pidfd;
    /* the parent's copies; ctx keeps the numbers, which the child still reads */
    nsf_sys1(__NR_close, ctx->errpipe_w);
    if (ctx->sync_r >= 0)
        nsf_sys1(__NR_close, ctx->sync_r);
    return 0;

fail:
    close_fd(&st->errpipe_r);
    close_fd(&ctx->errpipe_w);
    close_fd(&ctx->sync_r);
    close_fd(&st->sync_w);
    nsf_spawn_free_stack(st);
    return (int)r;
}

static long read_record(int fd, struct nsf_record *rec)
{
    long r;
    do
        r = nsf_sys3(__NR_read, fd, rec, sizeof *rec);
    while (r == -EINTR);
    return r;
}

static void reap(pid_t pid, int *status)
{
    long r;
    int st = 0;
    do
        r = nsf_sys4(__NR_wait4, pid, &st, __WALL, 0);
    while (r == -EINTR);
    if (status)
        *status = st;
}

static void finish_failed(struct nsf_spawn_state *st, int *status)
{
    close_fd(&st->errpipe_r);
    close_fd(&st->sync_w);
    reap(st->pid, status);
    if (st->first_pid != st->pid)
        reap(st->first_pid, 0);
    close_fd(&st->pidfd);
    nsf_spawn_free_stack(st);
}

int nsf_spawn_wait_ready(struct nsf_spawn_state *st, struct nsf_record *rec)
{
    long r = read_record(st->errpipe_r, rec);
    if (r == (long)sizeof *rec && rec->step == NSF_MSG_READY)
        return 0;
    if (r != (long)sizeof *rec) {
        rec->step = NSF_STEP_SYNC;
        rec->err = r < 0 ? (int)-r : EPIPE;
        rec->index = 0;
    }
    finish_failed(st, 0);
    return 1;
}

int nsf_proc_write(pid_t pid, const char *name, const char *text, size_t len)
{
    char path[64];
    int n = 0;
    const char prefix[] = "/proc/";
    for (const char *p = prefix; *p; p++)
        path[n++] = *p;
    char digits[16];
    int d = 0;
    unsigned v = (unsigned)pid;
    do {
        digits[d++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (d)
        path[n++] = digits[--d];
    path[n++] = '/';
    for (const char *p = name; *p && n < (int)sizeof path - 1; p++)
        path[n++] = *p;
    path[n] = 0;
    long fd = nsf_sys3(__NR_openat, AT_FDCWD, path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return (int)fd;
    /* a map file takes exactly one write */
    long r = nsf_sys3(__NR_write, fd, text, len);
    nsf_sys1(__NR_close, fd);
    if (r >= 0 && (size_t)r != len)
        r = -EIO;
    return r < 0 ? (int)r : 0;
}

int nsf_spawn_release(struct nsf_spawn_state *st)
{
    char byte = 1;
    long r = nsf_sys3(__NR_write, st->sync_w, &byte, 1);
    close_fd(&st->sync_w);
    return r < 0 ? (int)r : 0;
}

int nsf_spawn_finish(struct nsf_spawn_state *st, struct nsf_record *rec, int *status)
{
    for (;;) {
        long r = read_record(st->errpipe_r, rec);
        if (r == 0)
            break;
        if (r != (long)sizeof *rec) {
            rec->step = NSF_STEP_SYNC;
            rec->err = r < 0 ? (int)-r : EPIPE;
            rec->index = 0;
            nsf_spawn_abort(st);
            return 1;
        }
        if (rec->step == NSF_MSG_PID) {
            /* the grandchild is our child too (CLONE_PARENT) and cannot be
             * reaped by anyone else, so its pid is stable for pidfd_open */
            reap(st->first_pid, 0);
            st->first_pid = st->pid = rec->value;
            close_fd(&st->pidfd);
            long fd = nsf_sys2(__NR_pidfd_open, st->pid, 0);
            st->pidfd = fd < 0 ? -1 : (int)fd;
            continue;
        }
        if (rec->step == NSF_MSG_READY)
            continue;
        /* A failure.  After a fork step the grandchild can fail before the
         * intermediate has sent its pid: read on to EOF (both writers end
         * now) so that the grandchild is reaped too. */
        struct nsf_record more;
        while (read_record(st->errpipe_r, &more) == (long)sizeof more)
            if (more.step == NSF_MSG_PID && st->pid == st->first_pid)
                st->pid = more.value;
        finish_failed(st, status);
        return 1;
    }
    close_fd(&st->errpipe_r);
    close_fd(&st->sync_w);
    if (!st->keep_stack)
        nsf_spawn_free_stack(st);
    return 0;
}

void nsf_spawn_abort(struct nsf_spawn_state *st)
{
    if (st->pidfd >= 0)
        nsf_sys4(__NR_pidfd_send_signal, st->pidfd, SIGKILL, 0, 0);
    else if (st->pid > 0)
        nsf_sys2(__NR_kill, st->pid, SIGKILL);
    if (st->first_pid > 0 && st->first_pid != st->pid)
        nsf_sys2(__NR_kill, st->first_pid, SIGKILL);
    finish_failed(st, 0);
}

void nsf_spawn_free_stack(struct nsf_spawn_state *st)
{
    /* callers free a stack only once no child runs on it: after exec (the
     * error pipe's EOF) or after reaping */
    if (st->stack) {
        stack_put(st->stack, st->stack_size);
        st->stack = 0;
    }
}
