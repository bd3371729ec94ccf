/* `nsfast enter`, after parsing: pick the namespaces, open them, and hand
 * the join and the exec to the spawn core (the same nsf_spawn_* that
 * nsfast.enter_and_exec uses), then wait for the program (cli_enter_end.c).
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
#include <unistd.h>

extern char **environ;

static const char ptrace_hint[] =
    "reading another process's namespaces needs ptrace access to it "
    "(CAP_SYS_PTRACE and every capability it holds)";

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
 * before joining: DIR, or with own the target's (/proc/PID/root or cwd).
 * -1 when not asked; *path is what it names, for messages. */
static int open_dir(const struct nsf_enter_opts *o, const char *dir, int own,
                    const char *which, char *buf, size_t size, const char **path)
{
    if (!dir && !own)
        return -1;
    if (own) {
        snprintf(buf, size, "/proc/%lld/%s", o->target, which);
        dir = buf;
    }
    *path = dir;
    int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        nsf_cli_die(o->prog, "%s: %s", dir, strerror(errno));
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

/* The command line's own contradictions, as cli/enter.py checked them;
 * -a becomes the kinds it means. */
static void check_request(struct nsf_enter_opts *o)
{
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
}

/* The program's argv; without one, $SHELL (or /bin/sh) as a login shell
 * (argv[0] "-sh"), as nsenter starts it.  p->program is what is exec'd. */
static char **program_argv(const struct nsf_enter_opts *o, struct nsf_enter_plan *p,
                           char *shell_argv[2])
{
    const char *shell = getenv("SHELL"), *base;
    if (o->program[0]) {
        p->program = o->program[0];
        return o->program;
    }
    p->program = shell && *shell ? shell : "/bin/sh";
    base = strrchr(p->program, '/');
    base = base ? base + 1 : p->program;
    if (asprintf(&shell_argv[0], "-%s", base) < 0)
        nsf_cli_die(o->prog, "out of memory");
    shell_argv[1] = 0;
    return shell_argv;
}

/* A time namespace that is already ours is not joined: that changes nothing,
 * and the spawn child could not join it (it shares our mm).  It is opened
 * first, as enter_and_exec did; fds[] keeps it for the join otherwise. */
static void drop_own_time(struct nsf_enter_opts *o, struct nsf_enter_plan *p, int *fds)
{
    for (int i = 0; i < o->n_ns; i++) {
        struct stat theirs, ours;
        if (nsf_kinds[o->ns[i].kind].flag != CLONE_NEWTIME)
            continue;
        fds[i] = open_ns(o, o->ns[i].kind, o->ns[i].path);
        if (fstat(fds[i], &theirs) == 0 && stat("/proc/thread-self/ns/time", &ours) == 0 &&
            same_file(&theirs, &ours)) {
            close(fds[i]);
            p->joined &= ~CLONE_NEWTIME;
            o->n_ns--;
            memmove(&o->ns[i], &o->ns[i + 1], (size_t)(o->n_ns - i) * sizeof o->ns[0]);
            memmove(&fds[i], &fds[i + 1], (size_t)(o->n_ns - i) * sizeof fds[0]);
        }
        return;
    }
}

/* What spawn(join=..., uid=, gid=, extra_groups=, root_fd=, cwd_fd=,
 * fork_for_pid=) put in the struct, with spawn()'s defaults for the rest. */
static void fill_spawn(struct nsf_spawn *sp, const struct nsf_enter_opts *o,
                       const struct nsf_enter_plan *p, char **argv, const int *fds,
                       const int *kinds)
{
    static const int no_groups[1];
    memset(sp, 0, sizeof *sp);
    sp->exec_paths = (const char *const *)exec_paths(p->program);
    if (!sp->exec_paths)
        nsf_cli_die(o->prog, "out of memory");
    sp->argv = argv;
    sp->envp = environ;
    sp->join.count = o->n_ns;
    sp->join.fds = fds;
    sp->join.kinds = kinds;
    sp->join.setgroups_first = (p->joined & CLONE_NEWUSER) && geteuid() == 0;
    sp->fork_after_unshare = (p->joined & CLONE_NEWPID) && o->fork;
    sp->pdeathsig = SIGKILL;
    sp->parent_pid = getpid();
    /* pdeathsig in a pid namespace: getppid() is 0 there, so the sync pipe
     * tells the child that we died */
    sp->need_sync = (p->joined & CLONE_NEWPID) != 0;
    for (int i = 0; i < 3; i++)
        sp->std_fds[i] = -1;
    sp->max_fd = 1024;
    if (!nsf_probe_close_range()) {
        long max = sysconf(_SC_OPEN_MAX);
        sp->max_fd = max > 0 ? (int)max : 65536;
    }
    sp->cgroup_fd = sp->root_fd = sp->cwd_fd = sp->init_fd = -1;
    sp->use_clone3 = nsf_probe_clone3();
    sp->n_groups = p->gid >= 0 ? 0 : -1;
    sp->groups = no_groups;
    /* the groups were cleared before the user namespace was joined: a
     * refusal inside (setgroups denied there) changes nothing */
    sp->groups_best_effort = sp->join.setgroups_first && sp->n_groups == 0;
    sp->gid = (long)p->gid;
    sp->uid = (long)p->uid;
}

int nsf_enter_run(struct nsf_enter_opts *o)
{
    struct nsf_enter_plan p = {.prog = o->prog, .uid = o->uid, .gid = o->gid};
    int fds[NSF_KINDS], kinds[NSF_KINDS];
    char *shell_argv[2];
    struct nsf_spawn sp;

    check_request(o);
    char **argv = program_argv(o, &p, shell_argv);
    for (int i = 0; i < o->n_ns; i++) {
        fds[i] = -1;
        p.joined |= nsf_kinds[o->ns[i].kind].flag;
    }
    drop_own_time(o, &p, fds);
    /* after joining a user namespace: root inside, no supplementary groups */
    if ((p.joined & CLONE_NEWUSER) && !o->preserve_credentials) {
        p.uid = p.uid < 0 ? 0 : p.uid;
        p.gid = p.gid < 0 ? 0 : p.gid;
    }
    int root_fd = open_dir(o, o->root, o->root_own, "root", p.root_path, sizeof p.root_path,
                           &p.root);
    int cwd_fd = open_dir(o, o->wd, o->wd_own, "cwd", p.cwd_path, sizeof p.cwd_path, &p.cwd);
    if (p.uid >= 1LL << 31)
        nsf_cli_die(o->prog, "uid %lld is out of range", p.uid);
    if (p.gid >= 1LL << 31)
        nsf_cli_die(o->prog, "gid %lld is out of range", p.gid);
    for (int i = 0; i < o->n_ns; i++) {
        if (fds[i] < 0)
            fds[i] = open_ns(o, o->ns[i].kind, o->ns[i].path);
        kinds[i] = nsf_kinds[o->ns[i].kind].flag;
    }
    fill_spawn(&sp, o, &p, argv, fds, kinds);
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
        return nsf_enter_report(&p, &rec);
    /* the program has exec'd: what it needed is in the kernel's hands now */
    for (int i = 0; i < o->n_ns; i++)
        close(fds[i]);
    if (root_fd >= 0)
        close(root_fd);
    if (cwd_fd >= 0)
        close(cwd_fd);
    return nsf_enter_wait(o->prog, st.pidfd, st.pid);
}
