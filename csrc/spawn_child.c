/* The child side of a spawn.  It runs on a stack the parent mapped, usually
 * sharing the parent's memory (CLONE_VM), and so may only make raw syscalls
 * and read memory the parent prepared before the clone.  A failing step
 * writes one {step, errno, index} record on the CLOEXEC error pipe and exits
 * 127.
 *
 * This file is compiled freestanding (setup.py, CHILD_FLAGS): no builtin
 * may become a libc call, and tests/test_escape.py fails on any
 * undefined symbol that is not nsfast's own.  No allocation, no writes to
 * memory outside this stack. */
#include "spawn.h"
#include "spawn_internal.h"
#include "rawsys.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <net/if.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <sys/prctl.h>
#include <sys/mman.h>

#ifndef MNT_DETACH
#define MNT_DETACH 2
#endif

struct kernel_sigaction {
    void *handler;
    unsigned long flags;
    void *restorer;
    uint64_t mask;
};

static void send_record(int fd, int step, int err, int index, int value)
{
    struct nsf_record r;
    r.step = step;
    r.err = err;
    r.index = index;
    r.value = value;
    nsf_sys3(__NR_write, fd, &r, sizeof r);
}

static __attribute__((noreturn)) void child_exit(int code)
{
    for (;;)
        nsf_sys1(__NR_exit_group, code);
}

static __attribute__((noreturn)) void fail(const struct nsf_child_ctx *st, int step,
                                           long err, int index)
{
    send_record(st->errpipe_w, step, (int)-err, index, 0);
    child_exit(127);
}

#define CHECK(expr, step, index)                  \
    do {                                          \
        long r_ = (expr);                         \
        if (r_ < 0)                               \
            fail(st, (step), r_, (index));        \
    } while (0)

/* The signals subprocess (restore_signals=True) puts back to their default,
 * which Python ignores for itself; SIGCHLD too, so that a caller ignoring it
 * does not make the payload's children vanish unwaited. */
static int reset_even_if_ignored(int sig)
{
    return sig == SIGPIPE || sig == SIGXFSZ || sig == SIGCHLD;
}

/* As subprocess does: handlers become SIG_DFL (the interpreter's must never
 * run here: the parent blocked every signal before the clone), ignored
 * signals stay ignored but for the three above, so that `nohup` works.
 * CLONE_CLEAR_SIGHAND has done the first part where the kernel has it. */
static void reset_signal_dispositions(const struct nsf_child_ctx *st)
{
    struct kernel_sigaction dfl = {SIG_DFL, 0, 0, 0};
    for (int sig = 1; sig < 65; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        if (!reset_even_if_ignored(sig)) {
            if (st->sighand_cleared)
                continue;
            struct kernel_sigaction old;
            if (nsf_sys4(__NR_rt_sigaction, sig, 0, &old, 8) == 0 &&
                (old.handler == SIG_DFL || old.handler == SIG_IGN))
                continue;
        }
        nsf_sys4(__NR_rt_sigaction, sig, &dfl, 0, 8);
    }
}

/* The spawning thread's own mask, as subprocess leaves it to its child. */
static void restore_signal_mask(const struct nsf_child_ctx *st)
{
    nsf_sys4(__NR_rt_sigprocmask, SIG_SETMASK, &st->sigmask, 0, 8);
}

static long set_inheritable(int fd) { return nsf_sys3(__NR_fcntl, fd, F_SETFD, 0); }

static long mount_bind(const struct nsf_mount_step *m)
{
    long r = nsf_sys5(__NR_mount, m->src, m->dst, 0, MS_BIND | (m->flags & MS_REC), 0);
    if (r < 0 || !m->readonly)
        return r;
    /* A bind mount ignores MS_RDONLY; it takes a second step.  mount_setattr
     * makes the whole tree read-only at once and keeps the locked flags. */
    struct nsf_mount_attr attr = {MOUNT_ATTR_RDONLY, 0, 0, 0};
    r = nsf_sys5(__NR_mount_setattr, AT_FDCWD, m->dst,
                 (m->flags & MS_REC) ? AT_RECURSIVE : 0, &attr, sizeof attr);
    if (r != -ENOSYS)
        return r;
    struct statfs sfs;
    r = nsf_sys2(__NR_statfs, m->dst, &sfs);
    if (r < 0)
        return r;
    /* ST_* flags have the values of the MS_* flags they mirror. */
    unsigned long keep = sfs.f_flags & (MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME |
                                        MS_NODIRATIME | MS_RELATIME);
    return nsf_sys5(__NR_mount, 0, m->dst, 0, MS_REMOUNT | MS_BIND | MS_RDONLY | keep, 0);
}

static long pivot_into(const char *new_root, unsigned long flags)
{
    long r;
    /* pivot_root wants the new root to be a mount point; a confined root
     * is one already (NSF_PIVOT_MOUNTED), and a second copy of its tree
     * would cost as much as the first */
    if (!(flags & NSF_PIVOT_MOUNTED)) {
        r = nsf_sys5(__NR_mount, new_root, new_root, 0, MS_BIND | MS_REC, 0);
        if (r < 0)
            return r;
    }
    r = nsf_sys1(__NR_chdir, new_root);
    if (r < 0)
        return r;
    /* pivot_root(".", ".") stacks the old root on top of the new one, which
     * a lazy unmount then removes: no put_old directory is needed. */
    r = nsf_sys2(__NR_pivot_root, ".", ".");
    if (r < 0)
        return r;
    r = nsf_sys2(__NR_umount2, ".", MNT_DETACH);
    if (r < 0)
        return r;
    return nsf_sys1(__NR_chdir, "/");
}

/* The next decimal number of *s (spaces skipped), or -1 without one. */
static long long next_number(const char **s)
{
    const char *p = *s;
    long long v = 0;
    while (*p == ' ')
        p++;
    if (*p < '0' || *p > '9')
        return -1;
    while (*p >= '0' && *p <= '9')
        v = v * 10 + (*p++ - '0');
    *s = p;
    return v;
}

/* A device node (OCI linux.devices) with exactly its mode and owner: the
 * umask would take bits off mknod's. */
static long make_node(const struct nsf_mount_step *m)
{
    const char *p = m->data;
    long long major = next_number(&p), minor = next_number(&p);
    long long uid = next_number(&p), gid = next_number(&p);
    if (major < 0 || minor < 0 || uid < 0 || gid < 0)
        return -EINVAL;
    long r = nsf_sys4(__NR_mknodat, AT_FDCWD, m->dst, m->flags,
                      makedev((unsigned)major, (unsigned)minor));
    if (r < 0)
        return r;
    r = nsf_sys4(__NR_fchmodat, AT_FDCWD, m->dst, m->flags & 07777, 0);
    if (r < 0)
        return r;
    return nsf_sys5(__NR_fchownat, AT_FDCWD, m->dst, uid, gid, AT_SYMLINK_NOFOLLOW);
}

static long run_mount_step(const struct nsf_mount_step *m)
{
    long r;
    switch (m->kind) {
    case NSF_MOUNT_BIND:
        return mount_bind(m);
    case NSF_MOUNT_TMPFS:
        r = nsf_sys5(__NR_mount, "tmpfs", m->dst, "tmpfs", m->flags, m->data);
        if (r < 0 || !m->readonly)
            return r;
        return nsf_sys5(__NR_mount, 0, m->dst, 0, MS_REMOUNT | MS_RDONLY | m->flags, m->data);
    case NSF_MOUNT_PROC:
        return nsf_sys5(__NR_mount, "proc", m->dst, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, 0);
    case NSF_MOUNT_SYSFS:
        /* as ip-netns exec: the old /sys shows the old netns's devices */
        nsf_sys2(__NR_umount2, m->dst, MNT_DETACH);
        return nsf_sys5(__NR_mount, "sysfs", m->dst, "sysfs", m->flags, 0);
    case NSF_MOUNT_MKDIR:
        r = nsf_sys2(__NR_mkdir, m->dst, 0755);
        return r == -EEXIST ? 0 : r;
    case NSF_MOUNT_PIVOT:
        return pivot_into(m->src, m->flags);
    case NSF_MOUNT_FILE:
        /* an existing file stays as it is: opening it for writing would be
         * refused on the read-only root, or by its unmapped owner's mode */
        if (nsf_sys4(__NR_faccessat, AT_FDCWD, m->dst, F_OK, 0) == 0)
            return 0;
        r = nsf_sys4(__NR_openat, AT_FDCWD, m->dst,
                     O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (r >= 0)
            nsf_sys1(__NR_close, r);
        return r == -EEXIST ? 0 : (r < 0 ? r : 0);
    case NSF_MOUNT_SYMLINK:
        r = nsf_sys3(__NR_symlinkat, m->src, AT_FDCWD, m->dst);
        return r == -EEXIST ? 0 : r;
    case NSF_MOUNT_FS:
        return nsf_sys5(__NR_mount, m->src, m->dst, m->src, m->flags, m->data);
    case NSF_MOUNT_NODE:
        return make_node(m);
    }
    return -EINVAL;
}

static long loopback_up(void)
{
    struct ifreq ifr = {0};
    long fd = nsf_sys3(__NR_socket, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fd;
    ifr.ifr_name[0] = 'l';
    ifr.ifr_name[1] = 'o';
    long r = nsf_sys3(__NR_ioctl, fd, SIOCGIFFLAGS, &ifr);
    if (r == 0) {
        ifr.ifr_flags |= IFF_UP;
        r = nsf_sys3(__NR_ioctl, fd, SIOCSIFFLAGS, &ifr);
    }
    nsf_sys1(__NR_close, fd);
    return r;
}

/* The bounding set first, while the child still has CAP_SETPCAP: a uid
 * other than 0 no longer has it once it takes its ids. */
static long drop_bounding(uint64_t keep)
{
    for (int cap = 0; cap < 64; cap++) {
        if (keep & (1ULL << cap))
            continue;
        long r = nsf_sys2(__NR_prctl, PR_CAPBSET_DROP, cap);
        if (r == -EINVAL)
            break; /* past the last capability this kernel knows */
        if (r < 0)
            return r;
    }
    return 0;
}

/* effective = permitted = inheritable = keep, then the ambient ones raised
 * (they must be in permitted and inheritable): what a uid other than 0
 * keeps through exec, where root gets its bounding set back anyway. */
static long set_capabilities(uint64_t keep, uint64_t ambient)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    for (int i = 0; i < 2; i++) {
        uint32_t half = (uint32_t)(keep >> (32 * i));
        data[i].effective = data[i].permitted = data[i].inheritable = half;
    }
    /* ambient capabilities must be a subset of the new sets */
    nsf_sys5(__NR_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    long r = nsf_sys2(__NR_capset, &hdr, data);
    for (int cap = 0; r == 0 && cap < 64; cap++)
        if (ambient & (1ULL << cap))
            r = nsf_sys5(__NR_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0);
    return r;
}

/* The fds of nsfast's own that the child needs until exec (all CLOEXEC):
 * the error pipe, the init program and the caller's pidfd; sorted, -1 left
 * out.  Returns how many. */
static int internal_fds(const struct nsf_child_ctx *st, int out[3])
{
    int n = 0, fds[3] = {st->errpipe_w, st->sp->init_fd, st->parent_pidfd};
    for (int i = 0; i < 3; i++) {
        if (fds[i] < 0)
            continue;
        int j = n++;
        while (j > 0 && out[j - 1] > fds[i]) {
            out[j] = out[j - 1];
            j--;
        }
        out[j] = fds[i];
    }
    return n;
}

/* Put the std fds in place and close everything but them, the pass_fds and
 * nsfast's own fds (which are CLOEXEC and so close at exec). */
static void setup_fds(const struct nsf_child_ctx *st, const struct nsf_spawn *sp)
{
    int src[3];
    for (int i = 0; i < 3; i++) {
        src[i] = sp->std_fds[i];
        /* a source below 3 may be overwritten by an earlier dup2: move it up */
        if (src[i] >= 0 && src[i] < 3 && src[i] != i) {
            long r = nsf_sys3(__NR_fcntl, src[i], F_DUPFD_CLOEXEC, 3);
            CHECK(r, NSF_STEP_FDS, i);
            src[i] = (int)r;
        }
    }
    for (int i = 0; i < 3; i++) {
        if (src[i] == i)
            CHECK(set_inheritable(i), NSF_STEP_FDS, i);
        else if (src[i] >= 0)
            CHECK(nsf_sys3(__NR_dup3, src[i], i, 0), NSF_STEP_FDS, i);
    }
    for (int i = 0; i < sp->n_keep_fds; i++)
        CHECK(set_inheritable(sp->keep_fds[i]), NSF_STEP_FDS, 3 + i);

    /* close the gaps between the two sorted lists of fds that stay */
    int own[3], n_own = internal_fds(st, own);
    int lo = 3, k = 0, o = 0;
    for (;;) {
        int next;
        if (k < sp->n_keep_fds && (o >= n_own || sp->keep_fds[k] < own[o]))
            next = sp->keep_fds[k++];
        else if (o < n_own)
            next = own[o++];
        else
            break;
        if (next < lo)
            continue;
        if (next > lo && close_range_or_loop(lo, next - 1, sp->max_fd) < 0)
            fail(st, NSF_STEP_FDS, -EBADF, -1);
        lo = next + 1;
    }
    close_range_or_loop(lo, ~0U, sp->max_fd);
}

/* chroot into a directory fd opened by the parent before any namespace was
 * joined (a path would resolve in the joined mount namespace).  As nsenter
 * does, the working directory stays where it was unless one is given. */
static void chroot_fd(const struct nsf_child_ctx *st, const struct nsf_spawn *sp)
{
    long keep = -1;
    if (sp->cwd_fd < 0 && !sp->cwd)
        keep = nsf_sys4(__NR_openat, AT_FDCWD, ".", O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
    CHECK(nsf_sys1(__NR_fchdir, sp->root_fd), NSF_STEP_ROOT, 0);
    CHECK(nsf_sys1(__NR_chroot, "."), NSF_STEP_ROOT, 0);
    CHECK(nsf_sys1(__NR_chdir, "/"), NSF_STEP_ROOT, 0);
    if (keep >= 0) {
        nsf_sys1(__NR_fchdir, keep);
        nsf_sys1(__NR_close, keep);
    }
}

/* groups, then gid, then uid: each later step needs the privilege the
 * earlier ones still have.  set*id on all three ids, so that nothing of the
 * caller's (kernel) ids is left: inside a new user namespace with a range
 * map, the caller's own ids may not even be mapped. */
static void set_ids(const struct nsf_child_ctx *st, const struct nsf_spawn *sp)
{
    if (sp->use_caps && sp->uid > 0) {
        /* its capabilities survive the change of uid (step_caps then sets
         * them), and the bounding set is dropped while it still may be */
        CHECK(drop_bounding(sp->caps_keep), NSF_STEP_CAPS, 0);
        CHECK(nsf_sys5(__NR_prctl, PR_SET_KEEPCAPS, 1, 0, 0, 0), NSF_STEP_CAPS, 0);
    }
    if (sp->n_groups >= 0) {
        long r = nsf_sys2(__NR_setgroups, sp->n_groups, sp->groups);
        if (r < 0 && !sp->groups_best_effort)
            fail(st, NSF_STEP_GROUPS, r, 0);
    }
    if (sp->gid >= 0)
        CHECK(nsf_sys3(__NR_setresgid, sp->gid, sp->gid, sp->gid), NSF_STEP_SETGID, 0);
    if (sp->uid >= 0)
        CHECK(nsf_sys3(__NR_setresuid, sp->uid, sp->uid, sp->uid), NSF_STEP_SETUID, 0);
    /* A change of ids makes the mm non-dumpable, and in a CLONE_VM child
     * that mm is the caller's: put the caller's flag back (the parent does
     * too, once the last such child is done: spawn_parent.c). */
    if (st->restore_dumpable >= 0)
        nsf_sys5(__NR_prctl, PR_SET_DUMPABLE, st->restore_dumpable, 0, 0, 0);
}

/* ---------------------------------------------------------------- the steps
 * One function a row, run in the table's order after the parent's release;
 * each does nothing unless the spawn asks for it, and fails through CHECK
 * with its own step. */

/* ids from a new user namespace's maps come first: with a range map the
 * caller's own ids are unmapped inside, and files made by the mount steps
 * need a mapped owner (EOVERFLOW otherwise) */
static void step_ids_early(const struct nsf_child_ctx *st, const struct nsf_spawn *sp)
{
    if (sp->ids_early)
        set_ids(st, sp);
}

static void step_hostname(const struct nsf_child_ctx *st, const struct nsf_spawn *sp)
{
    if (sp->hostname)
        CHECK(nsf_sys2(__NR_sethostname, sp->hostname, nsf_strlen(sp->hostname)),
              NSF_STEP_HOSTNAME, 0);
}

static void step_domainname(const struct nsf_child_ctx *st, const struct nsf_spawn *sp)
{
    if (sp->domainname)
        CHECK(nsf_sys2(__NR_setdomainname, sp->domainname, nsf_strlen(sp->domainname)),
              NSF_STEP_DOMAINNAME, 0);
}

static void step_propagation(const struct nsf_child_ctx *st, const struct nsf_spawn *sp)
{
    if (sp->propagation)
        CHECK(nsf_sys5(__NR_mount, "none", "/", 0, sp->propagation, 0), NSF_STEP_PROPAGATION, 0);
}

static void hold(const struct nsf_child_ctx *st, const struct nsf_spawn *sp, int mounted);

static void step_mounts(const struct nsf_child_ctx *st, const struct nsf_spawn *sp)
{
    for (int i = 0; i < sp->n_mounts; i++) {
        if (sp->mounts[i].kind == NSF_MOUNT_HOLD)
            hold(st, sp, 1);
        else
            CHECK(run_mount_step(&sp->mounts[i]), NSF_STEP_MOUNT, i);
    }
}

static void step_loopback(const struct nsf_child_ctx *st, const struct nsf_spawn *sp)
{
    if (sp->loopback_up)
        CHECK(loopback_up(), NSF_STEP_LOOPBACK, 0);
}

static void step_root(const struct nsf_child_ctx *st, const struct nsf_spawn *sp)
{
    if (sp->root) {
        CHECK(nsf_sys1(__NR_chroot, sp->root), NSF_STEP_ROOT, 0);
        CHECK(nsf_sys1(__NR_chdir, "/"), NSF_STEP_ROOT, 0);
    }
}

/* after the chroot, as unshare -R DIR --mount-proc: proc_target is a path
 * inside the new root */
static void step_mount_proc(const struct nsf_child_ctx *st, const struct nsf_spawn *sp)
{
    if (sp->proc_target)
        CHECK(nsf_sys5(__NR_mount, "proc", sp->proc_target, "proc",
                       MS_NOSUID | MS_NODEV | MS_NOEXEC, 0),
              NSF_STEP_MOUNT_PROC, 0);
    if (sp->root_fd >= 0)
        chroot_fd(st, sp);
}

static void step_cwd(const struct nsf_child_ctx *st, const struct nsf_spawn *sp)
{
    if (sp->cwd)
        CHECK(nsf_sys1(__NR_chdir, sp->cwd), NSF_STEP_CWD, 0);
    if (sp->cwd_fd >= 0)
        CHECK(nsf_sys1(__NR_fchdir, sp->cwd_fd), NSF_STEP_CWD, 0);
}

static void step_setsid(const struct nsf_child_ctx *st, const struct nsf_spawn *sp)
{
    if (sp->new_session)
        CHECK(nsf_sys0(__NR_setsid), NSF_STEP_SETSID, 0);
}

static void step_ctty(const struct nsf_child_ctx *st, const struct nsf_spawn *sp)
{
    if (sp->controlling_tty)
        CHECK(nsf_sys3(__NR_ioctl, 0, TIOCSCTTY, 0), NSF_STEP_CTTY, 0);
}

static void ready_and_wait(const struct nsf_child_ctx *st);

/* The user namespace of a user_last spawn: everything the payload gets from
 * the caller's privilege (mounts, loopback, hostname) is in place, and the
 * namespaces it lives in stay the caller's, so that even root in the user
 * namespace can change none of them.  A new one gets its maps from the
 * parent now; a joined one (user_fd) has them. */
static void step_user_last(const struct nsf_child_ctx *st, const struct nsf_spawn *sp)
{
    if (!st->user_last)
        return;
    if (sp->user_fd >= 0)   /* one made ahead, maps and sysctls written */
        CHECK(nsf_sys2(__NR_setns, sp->user_fd, CLONE_NEWUSER), NSF_STEP_USER_LAST, 0);
    else if (sp->new_kinds & CLONE_NEWUSER)
        CHECK(nsf_sys1(__NR_unshare, CLONE_NEWUSER), NSF_STEP_USER_LAST, 0);
    ready_and_wait(st);
}

static void step_ids(const struct nsf_child_ctx *st, const struct nsf_spawn *sp)
{
    if (!sp->ids_early)
        set_ids(st, sp);
}

static void step_caps(const struct nsf_child_ctx *st, const struct nsf_spawn *sp)
{
    if (!sp->use_caps)
        return;
    if (sp->uid <= 0)   /* else set_ids dropped it, before the uid changed */
        CHECK(drop_bounding(sp->caps_keep), NSF_STEP_CAPS, 0);
    CHECK(set_capabilities(sp->caps_keep, sp->caps_ambient), NSF_STEP_CAPS, 0);
}

static void step_no_new_privs(const struct nsf_child_ctx *st, const struct nsf_spawn *sp)
{
    if (sp->no_new_privs)
        CHECK(nsf_sys5(__NR_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), NSF_STEP_NO_NEW_PRIVS, 0);
}

static void op_umask(const struct nsf_child_ctx *st, const struct nsf_op *op)
{
    (void)st;
    nsf_sys1(__NR_umask, op->a);   /* cannot fail */
}

/* Limits the payload inherits through exec and fork (Limits in
 * nsfast/limits.py): lowering needs no privilege, raising a hard limit
 * needs CAP_SYS_RESOURCE, hence after the ids but before exec. */
static void op_rlimit(const struct nsf_child_ctx *st, const struct nsf_op *op)
{
    uint64_t lim[2] = {(uint64_t)op->b, (uint64_t)op->c};
    CHECK(nsf_sys4(__NR_prlimit64, 0, op->a, lim, 0), NSF_STEP_RLIMITS, (int)op->a);
}

/* A number written into a /proc/sys file from inside the new user
 * namespace: the per-namespace sysctls (user.max_user_namespaces) are those
 * of the writer's user namespace, whatever proc mount it goes through. */
static void op_sysctl(const struct nsf_child_ctx *st, const struct nsf_op *op)
{
    /* a sysctl of the user namespace must wait for it: before, it is the
     * caller's (the plan never asks for this) */
    if (st->user_last)
        fail(st, NSF_STEP_SYSCTL, -EINVAL, 0);
    char text[24];
    int n = nsf_decimal(text, op->a < 0 ? 0 : (unsigned long long)op->a);
    text[n++] = '\n';
    long fd = nsf_sys4(__NR_openat, AT_FDCWD, op->s, O_WRONLY | O_CLOEXEC, 0);
    CHECK(fd, NSF_STEP_SYSCTL, 0);
    long r = nsf_sys3(__NR_write, fd, text, n);
    nsf_sys1(__NR_close, fd);
    CHECK(r, NSF_STEP_SYSCTL, 0);
}

/* seccomp(SET_MODE_FILTER) with the program of a seccomp op, if any: after
 * it the child makes only the calls of before_exec and the exec, which the
 * filter must allow (nsfast.Seccomp adds execve and execveat to custom ones). */
static void install_seccomp(const struct nsf_child_ctx *st, const struct nsf_spawn *sp)
{
    for (int k = 0; k < sp->n_ops; k++) {
        if (sp->ops[k].step != NSF_STEP_SECCOMP)
            continue;
        struct {
            unsigned short len;
            const void *filter;
        } prog = {(unsigned short)sp->ops[k].a, sp->ops[k].s};
        CHECK(nsf_sys3(__NR_seccomp, 1 /* SECCOMP_SET_MODE_FILTER */, 0, &prog),
              NSF_STEP_SECCOMP, k);
    }
}

static void set_pdeathsig(const struct nsf_child_ctx *st, const struct nsf_spawn *sp);

/* Wait to be started (an OCI runtime's create, then start): everything but
 * the seccomp filter and the exec is done.  Tell the holder by a byte on
 * fd a, then block reading fd b; one byte goes on, end of file (the holder
 * gave up) ends the child.  Neither fd reaches the program.  The hold ops
 * with c = 1 wait at a mount step instead (mounted = 1): the holder runs
 * in the namespaces as they are before the root is entered (an OCI
 * runtime's createContainer hooks); their fds stay for the later hold. */
static void hold(const struct nsf_child_ctx *st, const struct nsf_spawn *sp, int mounted)
{
    for (int k = 0; k < sp->n_ops; k++) {
        const struct nsf_op *op = &sp->ops[k];
        if (op->step != NSF_STEP_HOLD || op->c != mounted)
            continue;
        char byte = 'r';
        long r;
        if (op->a >= 0) {
            do
                r = nsf_sys3(__NR_write, op->a, &byte, 1);
            while (r == -EINTR);
            CHECK(r, NSF_STEP_HOLD, k);
            if (!mounted)
                nsf_sys1(__NR_close, op->a);
        }
        do
            r = nsf_sys3(__NR_read, op->b, &byte, 1);
        while (r == -EINTR);
        CHECK(r, NSF_STEP_HOLD, k);
        if (r == 0)
            child_exit(127);
        if (!mounted)
            nsf_sys1(__NR_close, op->b);
    }
}

/* The last thing before exec.  Every credential change (a joined user
 * namespace, the ids, capabilities raised) clears the parent-death signal,
 * so it is armed once more here; and the parent may have died before any
 * arming, which getppid() cannot tell in a new pid namespace (it is 0
 * there): the caller's pidfd, readable once it has exited, tells. */
static void before_exec(const struct nsf_child_ctx *st, const struct nsf_spawn *sp)
{
    if (sp->pdeathsig) {
        set_pdeathsig(st, sp);
        if (st->parent_pidfd >= 0) {
            struct {
                int fd;
                short events, revents;
            } pfd = {st->parent_pidfd, 1 /* POLLIN */, 0};
            long ts[2] = {0, 0};
            if (nsf_sys5(__NR_ppoll, &pfd, 1, ts, 0, 8) != 0)
                child_exit(127);
        }
    }
    restore_signal_mask(st);
    hold(st, sp, 0);
    install_seccomp(st, sp);
}

/* pid 1 of a new pid namespace is a program of its own (csrc/init.c), exec'd
 * from the sealed memfd the caller opened: nothing the payload can see then
 * shares the caller's memory.  It inherits the error pipe to report the
 * payload's exec. */
static void step_init(const struct nsf_child_ctx *st, const struct nsf_spawn *sp)
{
    if (!sp->init)
        return;
    before_exec(st, sp);
    CHECK(set_inheritable(st->errpipe_w), NSF_STEP_INIT, 0);
    long r = nsf_sys5(__NR_execveat, sp->init_fd, "", st->init_argv, sp->envp, AT_EMPTY_PATH);
    fail(st, NSF_STEP_INIT, r, 0);
}

static void step_exec(const struct nsf_child_ctx *st, const struct nsf_spawn *sp)
{
    int index;
    before_exec(st, sp);
    long r = nsf_exec_candidates((char *const *)sp->exec_paths, -1UL >> 1, sp->argv,
                                 sp->envp, &index);
    fail(st, NSF_STEP_EXEC, r, index);
}

/* ---------------------------------------------------------------- the table */

struct step_row {
    struct nsf_step_info info;
    /* run after the parent's release, in this order: */
    void (*run)(const struct nsf_child_ctx *, const struct nsf_spawn *);
    void (*run_op)(const struct nsf_child_ctx *, const struct nsf_op *);
};

#define ID_HINT "the id must be mapped in the joined user namespace"

static const struct step_row steps[NSF_STEP_COUNT] = {
    [NSF_STEP_NONE] = {{"none", 0, 0, 0}, 0, 0},
    [NSF_STEP_PDEATHSIG] = {{"pdeathsig", "setting the parent-death signal", 0, 0}, 0, 0},
    [NSF_STEP_CGROUP] = {{"cgroup", "joining the sandbox's cgroups", 0, 0}, 0, 0},
    [NSF_STEP_JOIN] = {{"join", "joining %s namespace", 0, 0}, 0, 0},
    [NSF_STEP_UNSHARE] = {{"unshare", "unshare(%s)", 0, 0}, 0, 0},
    [NSF_STEP_SYNC] = {{"sync", "waiting for the parent", 0, 0}, 0, 0},
    [NSF_STEP_FORK] = {{"fork", "forking into the pid namespace", 0, 0}, 0, 0},
    [NSF_STEP_IDS_EARLY] = {{"ids_early", "taking the ids", 0, 0}, step_ids_early, 0},
    [NSF_STEP_HOSTNAME] = {{"hostname", "setting hostname", 0, 0}, step_hostname, 0},
    [NSF_STEP_DOMAINNAME] = {{"domainname", "setting domainname", 0, 0}, step_domainname, 0},
    [NSF_STEP_PROPAGATION] = {{"propagation", "changing the propagation of /", 0, 0},
                              step_propagation, 0},
    [NSF_STEP_SYSCTL] = {{"sysctl", "writing a sysctl", 0, 0}, 0, op_sysctl},
    [NSF_STEP_MOUNT] = {{"mount", "mount step %s", 0, 0}, step_mounts, 0},
    [NSF_STEP_LOOPBACK] = {{"loopback", "bringing lo up", 0, 0}, step_loopback, 0},
    [NSF_STEP_ROOT] = {{"root", 0, 0, 0}, step_root, 0},
    [NSF_STEP_MOUNT_PROC] = {{"mount_proc", "mounting proc", EPERM,
                              "proc can be refused in a user namespace when the host's "
                              "/proc has over-mounted paths"}, step_mount_proc, 0},
    [NSF_STEP_USER_LAST] = {{"user_last", "making the user namespace", 0, 0},
                            step_user_last, 0},
    [NSF_STEP_CWD] = {{"cwd", 0, 0, 0}, step_cwd, 0},
    [NSF_STEP_FDS] = {{"fds", "setting up fd %s", 0, 0}, setup_fds, 0},
    [NSF_STEP_SETSID] = {{"setsid", "starting a new session", 0, 0}, step_setsid, 0},
    [NSF_STEP_CTTY] = {{"ctty", "making stdin the controlling terminal", ENOTTY,
                        "controlling_tty needs stdin to be a terminal"}, step_ctty, 0},
    [NSF_STEP_IDS] = {{"ids", "taking the ids", 0, 0}, step_ids, 0},
    [NSF_STEP_CAPS] = {{"capabilities", "dropping capabilities", 0, 0}, step_caps, 0},
    [NSF_STEP_NO_NEW_PRIVS] = {{"no_new_privs", "setting no_new_privs", 0, 0},
                               step_no_new_privs, 0},
    [NSF_STEP_UMASK] = {{"umask", "setting the umask", 0, 0}, 0, op_umask},
    [NSF_STEP_RLIMITS] = {{"rlimits", "setting rlimit %s", EPERM,
                           "raising a hard limit needs CAP_SYS_RESOURCE"}, 0, op_rlimit},
    [NSF_STEP_SECCOMP] = {{"seccomp", "installing the seccomp filter", EACCES,
                           "seccomp needs no_new_privs=True (or CAP_SYS_ADMIN)"}, 0, 0},
    [NSF_STEP_INIT] = {{"init", "starting the init program", 0, 0}, step_init, 0},
    [NSF_STEP_EXEC] = {{"exec", 0, 0, 0}, step_exec, 0},
    [NSF_STEP_GROUPS] = {{"groups", "groups(%s)", EINVAL, ID_HINT}, 0, 0},
    [NSF_STEP_SETGID] = {{"setgid", "setgid(%s)", EINVAL, ID_HINT}, 0, 0},
    [NSF_STEP_SETUID] = {{"setuid", "setuid(%s)", EINVAL, ID_HINT}, 0, 0},
    [NSF_STEP_HOLD] = {{"hold", "waiting to be started", 0, 0}, 0, 0},
};

const struct nsf_step_info *nsf_step_row(int step)
{
    return step >= 0 && step < NSF_STEP_COUNT ? &steps[step].info : 0;
}

const char *nsf_step_name(int step)
{
    return step >= 0 && step < NSF_STEP_COUNT ? steps[step].info.name : 0;
}

/* Everything after the parent's release (and the second fork), row by row. */
static int child_rest(void *arg)
{
    const struct nsf_child_ctx *st = arg;
    const struct nsf_spawn *sp = st->sp;
    for (int i = NSF_STEP_IDS_EARLY; i <= NSF_STEP_EXEC; i++) {
        if (steps[i].run)
            steps[i].run(st, sp);
        if (steps[i].run_op)
            for (int k = 0; k < sp->n_ops; k++)
                if (sp->ops[k].step == i)
                    steps[i].run_op(st, &sp->ops[k]);
    }
    return 127;   /* step_exec does not return */
}

static void set_pdeathsig(const struct nsf_child_ctx *st, const struct nsf_spawn *sp)
{
    CHECK(nsf_sys2(__NR_prctl, PR_SET_PDEATHSIG, sp->pdeathsig), NSF_STEP_PDEATHSIG, 0);
    /* The parent may have died before the prctl.  getppid() tells, except
     * in a new pid namespace, where it is 0: there the sync pipe and, before
     * exec, the caller's pidfd tell. */
    long ppid = nsf_sys0(__NR_getppid);
    if (ppid != 0 && ppid != sp->parent_pid)
        child_exit(127);
}

/* Tell the parent the namespaces are made (it writes the maps then), and
 * wait for its release. */
static void ready_and_wait(const struct nsf_child_ctx *st)
{
    if (st->need_ready)
        send_record(st->errpipe_w, NSF_MSG_READY, 0, 0, 0);
    if (st->need_sync) {
        char byte;
        long r;
        do
            r = nsf_sys3(__NR_read, st->sync_r, &byte, 1);
        while (r == -EINTR);
        if (r != 1)
            child_exit(127); /* the parent died or gave up */
        nsf_sys1(__NR_close, st->sync_r);
    }
}

/* The sandbox's cgroups, joined by the child itself before any namespace
 * (a cgroup namespace made later has the sandbox's cgroup as its root): a
 * write of "0" moves the writer, which costs no pid lookup, and into a v1
 * "tasks" file takes no global lock; nor does the parent wait for it.  The
 * kernel checks the credentials of the caller, who opened the files. */
static void join_cgroups(const struct nsf_child_ctx *st, const struct nsf_spawn *sp)
{
    for (int i = 0; i < sp->n_cgroup_procs; i++)
        CHECK(nsf_sys3(__NR_write, sp->cgroup_procs_fds[i], "0", 1), NSF_STEP_CGROUP, i);
}

static int grandchild_main(void *arg)
{
    const struct nsf_child_ctx *st = arg;
    if (st->sp->pdeathsig)
        set_pdeathsig(st, st->sp);
    return child_rest(arg);
}

/* A time namespace can only be joined by the sole user of an mm (EUSERS
 * otherwise), which a CLONE_VM child is not: it is joined after a clone that
 * copies the memory, in the grandchild below.  Only joins of a time
 * namespace pay for that copy. */
struct time_join {
    const struct nsf_child_ctx *st;
    int fd;                          /* nsfs fd or pidfd */
};

static int time_grandchild_main(void *arg)
{
    const struct time_join *tj = arg;
    const struct nsf_child_ctx *st = tj->st;
    CHECK(nsf_sys2(__NR_setns, tj->fd, CLONE_NEWTIME), NSF_STEP_JOIN, CLONE_NEWTIME);
    return grandchild_main((void *)st);
}

/* The join without its time namespace, in arrays on this stack; returns the
 * fd to join the time namespace with, or -1. */
static int split_time_join(const struct nsf_join *j, struct nsf_join *rest, int *fds, int *kinds)
{
    int time_fd = -1, n = 0;
    for (int i = 0; i < j->count && i < 16; i++) {
        int k = j->kinds[i];
        if (k & CLONE_NEWTIME) {
            time_fd = j->fds[i];
            k &= ~CLONE_NEWTIME;
            if (!j->use_pidfd || !k)
                continue;
        }
        fds[n] = j->fds[i];
        kinds[n++] = k;
    }
    *rest = *j;
    rest->count = n;
    rest->fds = fds;
    rest->kinds = kinds;
    return time_fd;
}

int nsf_child_main(void *arg)
{
    const struct nsf_child_ctx *st = arg;
    const struct nsf_spawn *sp = st->sp;
    int failed_kind = 0;
    struct time_join tj;
    tj.st = st;
    tj.fd = -1;

    /* Before anything else, and before any join above all: a process that
     * enters a namespace others live in must not be readable or ptraceable
     * by that namespace's root (runc, CVE-2016-9962).  Only a child with an
     * mm of its own may do this: the flag belongs to the mm. */
    if (st->own_mm)
        nsf_sys5(__NR_prctl, PR_SET_DUMPABLE, 0, 0, 0, 0);
    reset_signal_dispositions(st);
    if (sp->pdeathsig)
        set_pdeathsig(st, sp);
    if (st->sync_w >= 0)
        nsf_sys1(__NR_close, st->sync_w); /* so that the parent's death is EOF */
    join_cgroups(st, sp);
    if (sp->join.count) {
        struct nsf_join rest;
        int fds[16], kinds[16];
        tj.fd = split_time_join(&sp->join, &rest, fds, kinds);
        long r = rest.count ? nsf_join_run(&rest, &failed_kind) : 0;
        if (r < 0)
            fail(st, NSF_STEP_JOIN, r, failed_kind);
    }
    if (st->unshare_flags)
        CHECK(nsf_sys1(__NR_unshare, st->unshare_flags), NSF_STEP_UNSHARE, 0);
    if (!st->user_last)
        ready_and_wait(st);
    if (st->late_unshare)
        CHECK(nsf_sys1(__NR_unshare, st->late_unshare), NSF_STEP_UNSHARE, 0);
    if (st->fork_after || tj.fd >= 0) {
        /* Joined or new pid and time namespaces apply to children only.
         * CLONE_PARENT makes the grandchild the caller's own child. */
        long pid = tj.fd >= 0
            ? nsf_clone_on_stack(st->use_clone3, CLONE_PARENT, 0, -1, st->stack2,
                                 st->one_stack, time_grandchild_main, (void *)&tj, 0)
            : nsf_clone_on_stack(st->use_clone3, CLONE_VM | CLONE_PARENT, 0, -1, st->stack2,
                                 st->one_stack, grandchild_main, (void *)st, 0);
        if (pid < 0)
            fail(st, NSF_STEP_FORK, pid, 0);
        send_record(st->errpipe_w, NSF_MSG_PID, 0, 0, (int)pid);
        child_exit(0);
    }
    return child_rest(arg);
}
