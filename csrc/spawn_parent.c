/* The parent side of a spawn: map the child stacks, clone, write the id maps
 * into /proc/<pid>, release the child and read its report. */
#include "spawn.h"
#include "spawn_internal.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

/* Each stack only holds the child's own frames (no libc, no Python). */
#define NSF_ONE_STACK (64 * 1024)

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        nsf_sys1(__NR_close, *fd);
        *fd = -1;
    }
}

/* fd, moved to a number >= lo (CLOEXEC) if it is below. */
static long fd_at_least(int fd, int lo)
{
    if (fd >= lo)
        return fd;
    long moved = nsf_sys3(__NR_fcntl, fd, F_DUPFD_CLOEXEC, lo);
    nsf_sys1(__NR_close, fd);
    return moved;
}

/* A pipe whose ends are both >= lo: above 2, so that the child's dup2 onto
 * 0-2 cannot clobber them, and above every fd the child is to keep, so that
 * a pass_fds number that is not open cannot name our pipe and hand it to the
 * program (as _posixsubprocess skips its error pipe). */
static long make_pipe(int p[2], int lo)
{
    long r = nsf_sys2(__NR_pipe2, p, O_CLOEXEC);
    if (r < 0)
        return r;
    for (int i = 0; i < 2; i++) {
        long fd = fd_at_least(p[i], lo);
        if (fd < 0) {
            if (i == 0)
                nsf_sys1(__NR_close, p[1]);
            else
                nsf_sys1(__NR_close, p[0]);
            return fd;
        }
        p[i] = (int)fd;
    }
    return 0;
}

/* The caller's dumpable flag, guarded while children that change their ids
 * share its mm: each such change makes the mm non-dumpable (the kernel's
 * rule for a credential change), which would stay with the caller for good,
 * and an unprivileged caller could then no longer write a later child's
 * maps.  The flag is read when the first such child starts and put back
 * when the last one is done; each child puts it back itself at once, too. */
static pthread_mutex_t dumpable_lock = PTHREAD_MUTEX_INITIALIZER;
static int dumpable_users, dumpable_saved;

static int dumpable_hold(void)
{
    pthread_mutex_lock(&dumpable_lock);
    if (dumpable_users++ == 0)
        dumpable_saved = (int)nsf_sys5(__NR_prctl, PR_GET_DUMPABLE, 0, 0, 0, 0);
    int v = dumpable_saved;
    pthread_mutex_unlock(&dumpable_lock);
    /* 2 (suid_dumpable) cannot be set back with prctl */
    return v == 0 || v == 1 ? v : -1;
}

static void dumpable_release(struct nsf_spawn_state *st)
{
    if (!st->dumpable_held)
        return;
    st->dumpable_held = 0;
    pthread_mutex_lock(&dumpable_lock);
    if (--dumpable_users == 0 && (dumpable_saved == 0 || dumpable_saved == 1) &&
        nsf_sys5(__NR_prctl, PR_GET_DUMPABLE, 0, 0, 0, 0) != dumpable_saved)
        nsf_sys5(__NR_prctl, PR_SET_DUMPABLE, dumpable_saved, 0, 0, 0);
    pthread_mutex_unlock(&dumpable_lock);
}

/* Does the child join a user or pid namespace?  Then other processes live
 * where it goes, and their root may read or ptrace it until it execs: it
 * gets an mm of its own (a copy, made non-dumpable before the join) instead
 * of sharing the caller's. */
static int joins_lived_in(const struct nsf_join *j)
{
    for (int i = 0; i < j->count; i++)
        if (j->kinds[i] & (CLONE_NEWUSER | CLONE_NEWPID))
            return 1;
    return 0;
}

/* How the namespaces are made, for every caller alike: by the clone itself,
 * unless some are joined first (then by unshare after the joins); a new time
 * namespace always by unshare, since its offsets can only be written before
 * any process is in it; a joined or new pid namespace after a join applies
 * to children only, so a second fork follows.  The child waits for the
 * parent while the parent writes or calls back, and when it needs the sync
 * pipe to see its parent die (getppid() is 0 in a new pid namespace). */
static void namespace_rules(const struct nsf_spawn *sp, struct nsf_child_ctx *ctx)
{
    int joined = 0;
    for (int i = 0; i < sp->join.count; i++)
        joined |= sp->join.kinds[i];
    ctx->user_last = sp->user_last;
    if (ctx->user_last) {
        /* pid, net, uts, ipc by the clone; the mount namespace copies the
         * one joined (a small template) and the cgroup namespace follows
         * the child's own join of its cgroups; the user namespace comes last
         * (step_user_last).  A joined pid or user namespace or a new time
         * namespace would need a second fork: the plan does not ask for them. */
        int later = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWTIME;
        ctx->clone_flags = sp->new_kinds & ~later;
        ctx->unshare_flags = sp->new_kinds & (CLONE_NEWNS | CLONE_NEWCGROUP);
        ctx->fork_after = 0;
        ctx->late_unshare = 0;
        ctx->need_ready = sp->parent_hold;
        ctx->need_sync = sp->parent_hold || (sp->pdeathsig && (sp->new_kinds & CLONE_NEWPID));
        return;
    }
    if (joined) {
        ctx->clone_flags = 0;
        ctx->unshare_flags = sp->new_kinds;
        ctx->fork_after = ((sp->new_kinds | joined) & CLONE_NEWPID) && !sp->no_pid_fork;
    } else {
        ctx->clone_flags = sp->new_kinds & ~CLONE_NEWTIME;
        ctx->unshare_flags = sp->new_kinds & CLONE_NEWTIME;
        ctx->fork_after = 0;
    }
    /* a child that joins cgroups itself (v1 has no CLONE_INTO_CGROUP), or
     * whose parent may move it while it waits, makes a new cgroup namespace
     * after that, so that its root is the sandbox's cgroup and the host's
     * path stays hidden */
    ctx->late_unshare = 0;
    if ((sp->parent_hold || sp->n_cgroup_procs) && (sp->new_kinds & CLONE_NEWCGROUP)) {
        ctx->late_unshare = CLONE_NEWCGROUP;
        ctx->clone_flags &= ~CLONE_NEWCGROUP;
        ctx->unshare_flags &= ~CLONE_NEWCGROUP;
    }
    ctx->need_ready = ctx->unshare_flags && sp->parent_hold;
    ctx->need_sync = sp->parent_hold ||
                     (sp->pdeathsig && ((sp->new_kinds | joined) & CLONE_NEWPID));
}

static long count_strings(const char *const *v)
{
    long n = 0;
    while (v[n])
        n++;
    return n;
}

static void put_number(char *out, long v)
{
    out[nsf_decimal(out, (unsigned long long)v)] = 0;
}

/* nsfast-init's argv (csrc/init.c): ERRFD NCAND CANDIDATES... ARGV... */
static long make_init_argv(const struct nsf_spawn *sp, struct nsf_spawn_state *st, int errfd)
{
    long ncand = count_strings(sp->exec_paths), nargv = count_strings((const char *const *)sp->argv);
    char **v = malloc((size_t)(4 + ncand + nargv) * sizeof *v);
    if (!v)
        return -ENOMEM;
    put_number(st->init_errfd, errfd);
    put_number(st->init_ncand, ncand);
    long n = 0;
    v[n++] = "nsfast-init";
    v[n++] = st->init_errfd;
    v[n++] = st->init_ncand;
    for (long i = 0; i < ncand; i++)
        v[n++] = (char *)sp->exec_paths[i];
    for (long i = 0; i < nargv; i++)
        v[n++] = sp->argv[i];
    v[n] = 0;
    st->init_argv = v;
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
    st->dumpable_held = 0;
    st->init_argv = 0;
    ctx->errpipe_w = ctx->sync_r = ctx->sync_w = ctx->parent_pidfd = -1;
    ctx->sp = sp;
    ctx->use_clone3 = sp->use_clone3;
    ctx->init_argv = 0;
    st->stack = 0;
    /* With SIGCHLD ignored the kernel reaps children itself and their status
     * is lost; a child with exit signal 0 is not auto-reaped (waited with
     * __WALL).  That holds until execve, which resets the exit signal to
     * SIGCHLD: it keeps a failed child and an init waitable, and the payload's
     * status comes from the pidfd (process.py). */
    st->exit_signal = caller_ignores_sigchld() ? 0 : SIGCHLD;
    namespace_rules(sp, ctx);

    /* our fds go above every fd the child keeps */
    int lo = 3;
    if (sp->n_keep_fds > 0 && sp->keep_fds[sp->n_keep_fds - 1] >= lo)
        lo = sp->keep_fds[sp->n_keep_fds - 1] + 1;
    r = make_pipe(errpipe, lo);
    if (r < 0)
        return (int)r;
    st->errpipe_r = errpipe[0];
    ctx->errpipe_w = errpipe[1];
    if (ctx->need_sync) {
        r = make_pipe(syncpipe, lo);
        if (r < 0)
            goto fail;
        ctx->sync_r = syncpipe[0];
        st->sync_w = ctx->sync_w = syncpipe[1];
    }
    if (sp->pdeathsig) {
        /* the child's last look at whether we are alive (spawn_child.c) */
        r = nsf_sys2(__NR_pidfd_open, nsf_sys0(__NR_getpid), 0);
        if (r >= 0)
            r = fd_at_least((int)r, lo);
        if (r >= 0)
            ctx->parent_pidfd = (int)r;
        else if (r != -ENOSYS) /* before 5.3 only getppid() and the sync pipe tell */
            goto fail;
    }
    if (sp->init) {
        r = make_init_argv(sp, st, ctx->errpipe_w);
        if (r < 0)
            goto fail;
        ctx->init_argv = st->init_argv;
    }
    ctx->own_mm = joins_lived_in(&sp->join);
    ctx->restore_dumpable = -1;
    if (!ctx->own_mm && (sp->uid >= 0 || sp->gid >= 0)) {
        ctx->restore_dumpable = dumpable_hold();
        st->dumpable_held = 1;
    }
    ctx->one_stack = NSF_ONE_STACK;
    st->stack_size = 2 * NSF_ONE_STACK;
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

    /* No handler of the interpreter may run in the child, which shares its
     * memory: block everything around the clone; the child resets the
     * dispositions and restores this mask before exec. */
    uint64_t all = ~0ULL, old = 0;
    nsf_sys4(__NR_rt_sigprocmask, SIG_SETMASK, &all, &old, 8);
    ctx->sigmask = old;
    int pidfd = -1;
    uint64_t flags = (uint64_t)(unsigned)ctx->clone_flags | CLONE_PIDFD;
    if (!ctx->own_mm)
        flags |= CLONE_VM;
    /* CLONE_CLEAR_SIGHAND (5.5) resets the handlers in the kernel, so that
     * the child only has a few signals left to look at */
    ctx->sighand_cleared = sp->use_clone3;
    r = nsf_clone_on_stack(sp->use_clone3, flags | (sp->use_clone3 ? CLONE_CLEAR_SIGHAND : 0),
                           st->exit_signal, sp->cgroup_fd, st->stack, NSF_ONE_STACK,
                           nsf_child_main, ctx, &pidfd);
    if (r == -EINVAL && sp->use_clone3) {
        ctx->sighand_cleared = 0;
        r = nsf_clone_on_stack(1, flags, st->exit_signal, sp->cgroup_fd, st->stack,
                               NSF_ONE_STACK, nsf_child_main, ctx, &pidfd);
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
    if (ctx->parent_pidfd >= 0)
        nsf_sys1(__NR_close, ctx->parent_pidfd);
    return 0;

fail:
    close_fd(&st->errpipe_r);
    close_fd(&ctx->errpipe_w);
    close_fd(&ctx->sync_r);
    close_fd(&st->sync_w);
    close_fd(&ctx->parent_pidfd);
    dumpable_release(st);
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
    dumpable_release(st);
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
    if (!st->ctx.need_ready)
        return 0;
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
    n += nsf_decimal(path + n, (unsigned)pid);
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
    if (st->sync_w < 0)
        return 0;
    /* A child that failed has closed its end: the write is EPIPE, and must
     * not be a SIGPIPE that kills a caller (the nsfast command) before it
     * has read and printed the child's error. */
    uint64_t pipe_bit = 1ULL << (SIGPIPE - 1), old = 0, pending = 0;
    nsf_sys4(__NR_rt_sigprocmask, SIG_BLOCK, &pipe_bit, &old, 8);
    nsf_sys2(__NR_rt_sigpending, &pending, 8);
    char byte = 1;
    long r = nsf_sys3(__NR_write, st->sync_w, &byte, 1);
    if (r == -EPIPE && !(pending & pipe_bit) && !(old & pipe_bit)) {
        long zero[2] = {0, 0};
        nsf_sys4(__NR_rt_sigtimedwait, &pipe_bit, 0, zero, 8);
    }
    nsf_sys4(__NR_rt_sigprocmask, SIG_SETMASK, &old, 0, 8);
    close_fd(&st->sync_w);
    /* EPIPE: the child is gone, and nsf_spawn_finish reads why */
    return r < 0 && r != -EPIPE ? (int)r : 0;
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
    dumpable_release(st);
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
    free(st->init_argv);
    st->init_argv = 0;
    if (st->stack) {
        stack_put(st->stack, st->stack_size);
        st->stack = 0;
    }
}
