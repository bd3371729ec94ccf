/* `nsfast enter`, after parsing: pick the namespaces, open them, and hand
 * the join and the exec to the spawn core (the same nsf_spawn_* that
 * nsfast.enter_and_exec uses), then wait for the program, passing signals on.
 * The rules, and the wording of every error, are those of the Python command
 * this replaced (enter_and_exec and spawn() in nsfast/enter.py, spawn.py). */
#include "cli.h"
#include "compat.h"
#include "nscore.h"
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

extern char **environ;

static const char ptrace_hint[] =
    "reading another process's namespaces needs ptrace access to it "
    "(CAP_SYS_PTRACE and every capability it holds)";

/* What the run opened and chose, for the error messages after the spawn. */
struct run {
    const struct nsf_enter_opts *o;
    const char *program;            /* what is exec'd: argv[0], or the shell */
    char root_path[64], cwd_path[64];
    const char *root, *cwd;         /* the directories asked for, or NULL */
    int joined;                     /* CLONE_NEW* of every kind joined */
    long long uid, gid;             /* after the user namespace defaults */
};

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* -a: every kind this kernel has, except a user namespace we are already in
 * (joining it is EINVAL). */
static void add_all_kinds(struct nsf_enter_opts *o)
{
    char path[64];
    for (int k = 0; k < NSF_KINDS; k++) {
        int have = 0;
        for (int i = 0; i < o->n_ns; i++)
            have |= o->ns[i].kind == k;
        snprintf(path, sizeof path, "/proc/self/ns/%s", nsf_kinds[k].proc);
        if (have || !exists(path))
            continue;
        if (nsf_kinds[k].flag == CLONE_NEWUSER) {
            struct stat theirs, ours;
            snprintf(path, sizeof path, "/proc/%lld/ns/user", o->target);
            if (stat(path, &theirs) < 0) {
                if (errno == ENOENT)
                    nsf_cli_die(o->prog, "/proc/%lld: No such process", o->target);
                nsf_cli_die(o->prog, "%s: %s", path, strerror(errno));
            }
            if (stat("/proc/self/ns/user", &ours) == 0 && same_file(&theirs, &ours))
                continue;
        }
        o->ns[o->n_ns].kind = k;
        o->ns[o->n_ns++].path = 0;
    }
}

/* An O_CLOEXEC fd on the namespace of kind k: the FILE given, or the
 * target's; it must be of that kind. */
static int open_ns(const struct nsf_enter_opts *o, int k, const char *file)
{
    const struct nsf_kind *kind = &nsf_kinds[k];
    char own[64];
    const char *path = file;
    if (!path) {
        snprintf(own, sizeof own, "/proc/%lld/ns/%s", o->target, kind->proc);
        path = own;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        char dir[32], mine[64];
        if (file || (e != ENOENT && e != EACCES && e != EPERM))
            nsf_cli_die(o->prog, "%s: %s", path, strerror(e));
        if (e != ENOENT)
            nsf_cli_die(o->prog, "%s: %s (hint: %s)", path, strerror(e), ptrace_hint);
        snprintf(dir, sizeof dir, "/proc/%lld", o->target);
        snprintf(mine, sizeof mine, "/proc/self/ns/%s", kind->proc);
        if (!exists(dir))
            nsf_cli_die(o->prog, "%s: no process %lld", path, o->target);
        if (exists(mine)) /* a zombie keeps its /proc directory, not its namespaces */
            nsf_cli_die(o->prog, "%s: process %lld has exited", path, o->target);
        nsf_cli_die(o->prog, "%s: %s (hint: this kernel has no %s namespaces)", path,
                    strerror(ENOENT), kind->proc);
    }
    int type = nsf_ns_ioctl(fd, NS_GET_NSTYPE);
    if (type < 0)
        nsf_cli_die(o->prog, "%s: NS_GET_NSTYPE: %s (hint: not a namespace file)", path,
                    strerror(-type));
    if (type != kind->flag)
        nsf_cli_die(o->prog, "%s: %s (hint: it is a %s namespace, not %s)", path,
                    strerror(EINVAL), nsf_kind_name(type), kind->proc);
    return fd;
}

/* -r/-w: a directory opened now, in our mount namespace, as nsenter opens it
 * before joining. */
static int open_dir(struct run *r, const char *dir, int own, const char *which,
                    char *buf, size_t size, const char **path)
{
    if (!dir && !own)
        return -1;
    if (own) {
        snprintf(buf, size, "/proc/%lld/%s", r->o->target, which);
        dir = buf;
    }
    *path = dir;
    int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        nsf_cli_die(r->o->prog, "%s: %s", dir, strerror(errno));
    return fd;
}

/* The candidates to execve, searched in PATH as subprocess searches it. */
static char **exec_paths(const char *program)
{
    const char *path = getenv("PATH");
    size_t n = 1, len = strlen(program);
    if (strchr(program, '/'))
        path = "";
    else if (!path)
        path = "/bin:/usr/bin";
    for (const char *p = path; *p; p++)
        n += *p == ':';
    char **v = calloc(n + 1, sizeof *v);
    if (!v)
        return 0;
    for (size_t i = 0; i < n; i++) {
        const char *end = strchrnul(path, ':');
        size_t dlen = (size_t)(end - path);
        v[i] = malloc(dlen + len + 2);
        if (!v[i])
            return 0;
        memcpy(v[i], path, dlen);
        if (dlen && path[dlen - 1] != '/')
            v[i][dlen++] = '/';
        memcpy(v[i] + dlen, program, len + 1);
        path = *end ? end + 1 : end;
    }
    return v;
}

/* The child's failure as the Python command worded it; the exit status. */
static int report(const struct run *r, const struct nsf_record *rec)
{
    const char *prog = r->o->prog, *err = strerror(rec->err);
    const char *einval_hint = rec->err == EINVAL
        ? " (hint: the id must be mapped in the joined user namespace)" : "";
    const char *name = nsf_step_name(rec->step);
    switch (rec->step) {
    case NSF_STEP_EXEC:
        if (rec->err == ENOENT || rec->err == EACCES) {
            nsf_cli_say(prog, "failed to execute %s: %s", r->program, err);
            return rec->err == ENOENT ? 127 : 126;
        }
        nsf_cli_die(prog, "%s: %s", r->program, err);
    case NSF_STEP_JOIN: {
        char names[64] = "";
        int mask = rec->index ? rec->index : r->joined;
        for (int k = 0; k < NSF_KINDS; k++) {
            if (!(mask & nsf_kinds[k].flag))
                continue;
            if (names[0])
                strcat(names, ",");
            strcat(names, nsf_kinds[k].proc);
        }
        nsf_cli_die(prog, "joining %s namespace: %s", names[0] ? names : "?", err);
    }
    case NSF_STEP_ROOT:
        nsf_cli_die(prog, "%s: %s", r->root, err);
    case NSF_STEP_CWD:
        nsf_cli_die(prog, "%s: %s", r->cwd, err);
    case NSF_STEP_GROUPS:
        nsf_cli_die(prog, "groups([]): %s%s", err, einval_hint);
    case NSF_STEP_SETGID:
        nsf_cli_die(prog, "setgid(%lld): %s%s", r->gid, err, einval_hint);
    case NSF_STEP_SETUID:
        nsf_cli_die(prog, "setuid(%lld): %s%s", r->uid, err, einval_hint);
    }
    if (name)
        nsf_cli_die(prog, "child step %s: %s", name, err);
    nsf_cli_die(prog, "child step %d: %s", rec->step, err);
}

static int forward_pidfd = -1;
static pid_t forward_pid;

static void forward(int sig)
{
    int saved = errno;
    if (forward_pidfd >= 0)
        nsf_pidfd_send_signal(forward_pidfd, sig);
    else
        kill(forward_pid, sig); /* our own child: its pid cannot be reused unwaited */
    errno = saved;
}

/* Wait for the program.  The terminal's ^C and ^\ reach it directly; a
 * TERM, HUP, USR1 or USR2 sent to us is passed on, so that we leave with its
 * status: the program's, or 128+N for a signal N. */
static int wait_forwarding(const char *prog, int pidfd, pid_t pid)
{
    static const int passed[] = {SIGTERM, SIGHUP, SIGUSR1, SIGUSR2};
    struct sigaction sa = {0};
    siginfo_t info = {0};

    forward_pidfd = pidfd;
    forward_pid = pid;
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    sa.sa_handler = forward;
    sa.sa_flags = SA_RESTART;
    for (unsigned i = 0; i < sizeof passed / sizeof passed[0]; i++)
        sigaction(passed[i], &sa, 0);
    idtype_t by = pidfd >= 0 ? (idtype_t)P_PIDFD : P_PID;
    while (waitid(by, pidfd >= 0 ? (id_t)pidfd : (id_t)pid, &info, WEXITED) < 0)
        if (errno != EINTR)
            nsf_cli_die(prog, "waiting for the program: %s", strerror(errno));
    return info.si_code == CLD_EXITED ? info.si_status : 128 + info.si_status;
}

int nsf_enter_run(struct nsf_enter_opts *o)
{
    struct run r = {.o = o, .uid = o->uid, .gid = o->gid};
    int fds[NSF_KINDS], kinds[NSF_KINDS];
    static const int no_groups[1];

    if (o->all) {
        if (!o->target)
            nsf_cli_die(o->prog, "no target PID specified for --all");
        add_all_kinds(o);
    }
    if (!o->n_ns)
        nsf_cli_die(o->prog, "no namespace specified (give -t PID with -a or -n, -m, ...)");
    for (int i = 0; i < o->n_ns; i++)
        if (!o->ns[i].path && !o->target)
            nsf_cli_die(o->prog, "no target PID specified");
    if ((o->root_own || o->wd_own) && !o->target)
        nsf_cli_die(o->prog, "neither filename nor target pid supplied for %s",
                    o->root_own ? "root" : "cwd");

    /* no program: $SHELL as a login shell, as nsenter starts it */
    char **argv = o->program, *shell_argv[2] = {0, 0};
    r.program = argv[0];
    if (!argv[0]) {
        const char *shell = getenv("SHELL"), *base;
        r.program = shell && *shell ? shell : "/bin/sh";
        base = strrchr(r.program, '/');
        base = base ? base + 1 : r.program;
        if (asprintf(&shell_argv[0], "-%s", base) < 0)
            nsf_cli_die(o->prog, "out of memory");
        argv = shell_argv;
    }

    /* a time namespace that is already ours is not joined: that changes
     * nothing, and the spawn child could not join it (it shares our mm) */
    for (int i = 0; i < o->n_ns; i++) {
        fds[i] = -1;
        r.joined |= nsf_kinds[o->ns[i].kind].flag;
    }
    for (int i = 0; i < o->n_ns; i++) {
        struct stat theirs, ours;
        if (nsf_kinds[o->ns[i].kind].flag != CLONE_NEWTIME)
            continue;
        fds[i] = open_ns(o, o->ns[i].kind, o->ns[i].path);
        if (fstat(fds[i], &theirs) == 0 && stat("/proc/thread-self/ns/time", &ours) == 0 &&
            same_file(&theirs, &ours)) {
            close(fds[i]);
            r.joined &= ~CLONE_NEWTIME;
            o->n_ns--;
            memmove(&o->ns[i], &o->ns[i + 1], (size_t)(o->n_ns - i) * sizeof o->ns[0]);
            memmove(&fds[i], &fds[i + 1], (size_t)(o->n_ns - i) * sizeof fds[0]);
        }
        break;
    }

    /* after joining a user namespace: root inside, no supplementary groups */
    if ((r.joined & CLONE_NEWUSER) && !o->preserve_credentials) {
        r.uid = r.uid < 0 ? 0 : r.uid;
        r.gid = r.gid < 0 ? 0 : r.gid;
    }
    int root_fd = open_dir(&r, o->root, o->root_own, "root", r.root_path,
                           sizeof r.root_path, &r.root);
    int cwd_fd = open_dir(&r, o->wd, o->wd_own, "cwd", r.cwd_path, sizeof r.cwd_path, &r.cwd);
    if (r.uid >= 1LL << 31)
        nsf_cli_die(o->prog, "uid %lld is out of range", r.uid);
    if (r.gid >= 1LL << 31)
        nsf_cli_die(o->prog, "gid %lld is out of range", r.gid);
    for (int i = 0; i < o->n_ns; i++) {
        if (fds[i] < 0)
            fds[i] = open_ns(o, o->ns[i].kind, o->ns[i].path);
        kinds[i] = nsf_kinds[o->ns[i].kind].flag;
    }

    /* what spawn(join=..., uid=, gid=, extra_groups=, root_fd=, cwd_fd=,
     * fork_for_pid=) puts in the struct, with spawn()'s defaults for the rest */
    struct nsf_spawn sp;
    memset(&sp, 0, sizeof sp);
    sp.exec_paths = (const char *const *)exec_paths(r.program);
    if (!sp.exec_paths)
        nsf_cli_die(o->prog, "out of memory");
    sp.argv = argv;
    sp.envp = environ;
    sp.join.count = o->n_ns;
    sp.join.fds = fds;
    sp.join.kinds = kinds;
    sp.join.setgroups_first = (r.joined & CLONE_NEWUSER) && geteuid() == 0;
    sp.fork_after_unshare = (r.joined & CLONE_NEWPID) && o->fork;
    sp.pdeathsig = SIGKILL;
    sp.parent_pid = getpid();
    /* pdeathsig in a pid namespace: getppid() is 0 there, the sync pipe
     * tells the child that we died */
    sp.need_sync = (r.joined & CLONE_NEWPID) != 0;
    for (int i = 0; i < 3; i++)
        sp.std_fds[i] = -1;
    sp.max_fd = 1024;
    if (!nsf_probe_close_range()) {
        long max = sysconf(_SC_OPEN_MAX);
        sp.max_fd = max > 0 ? (int)max : 65536;
    }
    sp.cgroup_fd = -1;
    sp.use_clone3 = nsf_probe_clone3();
    sp.n_groups = r.gid >= 0 ? 0 : -1;
    sp.groups = no_groups;
    /* the groups were cleared before the user namespace was joined: a
     * refusal inside (setgroups denied there) changes nothing */
    sp.groups_best_effort = sp.join.setgroups_first && sp.n_groups == 0;
    sp.gid = (long)r.gid;
    sp.uid = (long)r.uid;
    sp.root_fd = root_fd;
    sp.cwd_fd = cwd_fd;

    struct nsf_spawn_state st;
    struct nsf_record rec;
    int status = 0, err = nsf_spawn_clone(&sp, &st);
    if (err < 0)
        nsf_cli_die(o->prog, "clone(no new namespaces): %s", strerror(-err));
    if (sp.need_sync && (err = nsf_spawn_release(&st)) < 0) {
        nsf_spawn_abort(&st);
        nsf_cli_die(o->prog, "child step sync: %s", strerror(-err));
    }
    if (nsf_spawn_finish(&st, &rec, &status))
        return report(&r, &rec);
    for (int i = 0; i < o->n_ns; i++)
        close(fds[i]);
    if (root_fd >= 0)
        close(root_fd);
    if (cwd_fd >= 0)
        close(cwd_fd);
    return wait_forwarding(o->prog, st.pidfd, st.pid);
}
