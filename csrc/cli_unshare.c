/* `nsfast unshare`: util-linux unshare(1) (2.38, and the newer
 * --forward-signals and --clear-env) in C.  As unshare(1) does, it calls
 * unshare(2) in this process and execs the program here; it forks only for
 * -f, --kill-child and --forward-signals.  So `unshare -p prog` makes prog's
 * first child pid 1, and `unshare -n prog & PID=$!` names prog itself.
 *
 * The options that need nsfast's Python (cgroup limits, --meta, --init,
 * --bind/--ro-bind/--tmpfs, --netns, a namespace persisted on =FILE) make
 * nsf_unshare_main return NSF_TO_PYTHON: cli_main.c hands the whole command
 * line to nsfast/cli/unshare.py. */
#include "cli.h"
#include "compat.h"
#include "nscore.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef NSFAST_VERSION
#define NSFAST_VERSION "unknown"
#endif

static const char prog[] = "nsfast unshare";

enum {
    OPT_MAP_USER = 256, OPT_MAP_GROUP, OPT_MAP_USERS, OPT_MAP_GROUPS, OPT_MAP_AUTO,
    OPT_SETGROUPS, OPT_MOUNT_PROC, OPT_PROPAGATION, OPT_KILL_CHILD, OPT_FORWARD,
    OPT_KEEP_CAPS, OPT_MONOTONIC, OPT_BOOTTIME, OPT_CLEAR_ENV, OPT_KEEP_ENV, OPT_HOSTNAME,
    OPT_PYTHON,
};

static const char optstring[] = "+fhVmuinpCTUrcR:w:S:G:";

/* alphabetical, so that getopt lists an ambiguous abbreviation's
 * possibilities sorted; OPT_PYTHON: nsfast's own, done in Python */
static const struct option longopts[] = {
    {"bind", optional_argument, 0, OPT_PYTHON},
    {"boottime", required_argument, 0, OPT_BOOTTIME},
    {"cgroup", optional_argument, 0, 'C'},
    {"clear-env", no_argument, 0, OPT_CLEAR_ENV},
    {"cpu", optional_argument, 0, OPT_PYTHON},
    {"cpu-time", optional_argument, 0, OPT_PYTHON},
    {"fork", no_argument, 0, 'f'},
    {"forward-signals", no_argument, 0, OPT_FORWARD},
    {"help", no_argument, 0, 'h'},
    {"hostname", required_argument, 0, OPT_HOSTNAME},
    {"init", optional_argument, 0, OPT_PYTHON},
    {"ipc", optional_argument, 0, 'i'},
    {"keep-caps", no_argument, 0, OPT_KEEP_CAPS},
    {"kill-child", optional_argument, 0, OPT_KILL_CHILD},
    {"map-auto", no_argument, 0, OPT_MAP_AUTO},
    {"map-current-user", no_argument, 0, 'c'},
    {"map-group", required_argument, 0, OPT_MAP_GROUP},
    {"map-groups", required_argument, 0, OPT_MAP_GROUPS},
    {"map-root-user", no_argument, 0, 'r'},
    {"map-user", required_argument, 0, OPT_MAP_USER},
    {"map-users", required_argument, 0, OPT_MAP_USERS},
    {"memory", optional_argument, 0, OPT_PYTHON},
    {"meta", optional_argument, 0, OPT_PYTHON},
    {"monotonic", required_argument, 0, OPT_MONOTONIC},
    {"mount", optional_argument, 0, 'm'},
    {"mount-proc", optional_argument, 0, OPT_MOUNT_PROC},
    {"net", optional_argument, 0, 'n'},
    {"netns", optional_argument, 0, OPT_PYTHON},
    {"pid", optional_argument, 0, 'p'},
    {"pids", optional_argument, 0, OPT_PYTHON},
    {"propagation", required_argument, 0, OPT_PROPAGATION},
    {"rlimit", optional_argument, 0, OPT_PYTHON},
    {"ro-bind", optional_argument, 0, OPT_PYTHON},
    {"root", required_argument, 0, 'R'},
    {"setgid", required_argument, 0, 'G'},
    {"setgroups", required_argument, 0, OPT_SETGROUPS},
    {"setuid", required_argument, 0, 'S'},
    {"time", optional_argument, 0, 'T'},
    {"tmpfs", optional_argument, 0, OPT_PYTHON},
    {"user", optional_argument, 0, 'U'},
    {"uts", optional_argument, 0, 'u'},
    {"version", no_argument, 0, 'V'},
    {"wall-time", optional_argument, 0, OPT_PYTHON},
    {"wd", required_argument, 0, 'w'},
    {"whitelist-env", required_argument, 0, OPT_KEEP_ENV},
    {0, 0, 0, 0},
};

static const char help[] =
    "usage: nsfast unshare [options] [--] [<program> [<argument>...]]\n"
    "\n"
    "Run a program with some namespaces unshared from the parent.\n"
    "\n"
    " -m, --mount[=<file>]      unshare mounts namespace\n"
    " -u, --uts[=<file>]        unshare UTS namespace (hostname etc)\n"
    " -i, --ipc[=<file>]        unshare System V IPC namespace\n"
    " -n, --net[=<file>]        unshare network namespace\n"
    " -p, --pid[=<file>]        unshare pid namespace\n"
    " -U, --user[=<file>]       unshare user namespace\n"
    " -C, --cgroup[=<file>]     unshare cgroup namespace\n"
    " -T, --time[=<file>]       unshare time namespace\n"
    "\n"
    " -f, --fork                fork before launching <program>\n"
    "     --kill-child[=<signame>]  when dying, kill the forked child (implies --fork)\n"
    "     --forward-signals     forward SIGTERM and SIGINT to the child (implies --fork)\n"
    " -r, --map-root-user       map current user to root (implies --user)\n"
    " -c, --map-current-user    map current user to itself (implies --user)\n"
    "     --map-user=<uid>|<name>   map current user to uid (implies --user)\n"
    "     --map-group=<gid>|<name>  map current group to gid (implies --user)\n"
    "     --map-users=<inner>:<outer>:<count>|auto  map a range of uids (implies --user)\n"
    "     --map-groups=<inner>:<outer>:<count>|auto map a range of gids (implies --user)\n"
    "     --map-auto            map users and groups automatically (implies --user)\n"
    "     --mount-proc[=<dir>]  mount proc filesystem first (implies --mount)\n"
    "     --propagation slave|shared|private|unchanged\n"
    "                           modify mount propagation in mount namespace\n"
    "     --setgroups allow|deny  control the setgroups syscall in user namespaces\n"
    "     --keep-caps           retain capabilities granted in user namespaces\n"
    "     --clear-env           clear the environment\n"
    "     --whitelist-env <name>[,...]  clear the environment but for these variables\n"
    " -R, --root=<dir>          run the command with root directory set to <dir>\n"
    " -w, --wd=<dir>            change working directory to <dir>\n"
    " -S, --setuid <uid>        set uid in entered namespace\n"
    " -G, --setgid <gid>        set gid in entered namespace\n"
    "     --monotonic <offset>  set clock monotonic offset (seconds) in time namespaces\n"
    "     --boottime <offset>   set clock boottime offset (seconds) in time namespaces\n"
    "\n"
    "nsfast's own (these run through nsfast's Python):\n"
    "     --hostname=NAME       hostname inside (implies -u; done in C)\n"
    "     --netns=NAME          join the named network namespace /run/netns/NAME\n"
    "     --init                a C init as pid 1 (implies -p)\n"
    "     --bind SRC DST, --ro-bind SRC DST, --tmpfs DST   mounts (need -m)\n"
    "     --memory=SIZE, --pids=N, --cpu=SHARE, --cpu-time=S, --wall-time=S,\n"
    "     --rlimit NAME=VALUE   resource limits (a cgroup, rlimits, a watcher)\n"
    "     --meta=FILE           how it ended, in isolate's --meta format\n"
    "\n"
    " -h, --help                display this help\n"
    " -V, --version             display version\n";

struct unshare_opts {
    int flags;
    int fork, forward, kill_sig;
    long long map_uid, map_gid;            /* single maps of our ids; -1: none */
    struct nsf_id_ranges uids, gids;      /* --map-users, --map-groups */
    const char *setgroups;                 /* "allow", "deny" or NULL */
    const char *proc;                      /* --mount-proc's directory */
    unsigned long propagation;             /* 0: unchanged */
    long long uid, gid;                    /* -S, -G; -1: not given */
    const char *root, *wd, *hostname;
    long long monotonic, boottime;
    int has_monotonic, has_boottime, keep_caps, clear_env;
    char *keep_env[64];                    /* --whitelist-env: NAME=VALUE to set again */
    int n_keep_env;
};

static long long offset_seconds(const char *text, const char *what)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (!*text || *end || errno)
        nsf_cli_die(prog, "failed to parse %s offset: '%s'", what, text);
    return v;
}

/* --map-user=NAME|UID, --map-group=NAME|GID */
static long long user_id(const char *text, int group)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (*text && !*end && !errno && text[0] != '-' && v <= 0xfffffffeUL)
        return (long long)v;
    if (group) {
        struct group *g = getgrnam(text);
        if (g)
            return g->gr_gid;
        nsf_cli_die(prog, "unknown group %s", text);
    }
    struct passwd *p = getpwnam(text);
    if (p)
        return p->pw_uid;
    nsf_cli_die(prog, "unknown user %s", text);
}

static unsigned long propagation_flags(const char *text)
{
    static const struct {
        const char *name;
        unsigned long flags;
    } modes[] = {
        {"slave", MS_REC | MS_SLAVE},
        {"private", MS_REC | MS_PRIVATE},
        {"shared", MS_REC | MS_SHARED},
        {"unchanged", 0},
    };
    for (unsigned i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (strcmp(text, modes[i].name) == 0)
            return modes[i].flags;
    nsf_cli_die(prog, "unsupported propagation mode: %s", text);
}

static int signal_number(const char *text)
{
    if (!text)
        return SIGKILL;
    if (*text >= '0' && *text <= '9') {
        long long v = nsf_cli_u32(prog, text, "signal");
        if (v > 0 && v < NSIG)
            return (int)v;
    }
    const char *name = strncasecmp(text, "SIG", 3) == 0 ? text + 3 : text;
    for (int sig = 1; sig < NSIG; sig++) {
        const char *abbrev = sigabbrev_np(sig);
        if (abbrev && strcasecmp(abbrev, name) == 0)
            return sig;
    }
    nsf_cli_die(prog, "unknown signal: %s", text);
}

/* --whitelist-env A,B: the environment is cleared but for these, whose
 * values are read now (before anything changes them). */
static void keep_env(struct unshare_opts *o, const char *names)
{
    char *copy = strdup(names), *save = 0;
    if (!copy)
        nsf_cli_die(prog, "out of memory");
    o->clear_env = 1;
    for (char *name = strtok_r(copy, ",", &save); name; name = strtok_r(0, ",", &save)) {
        const char *value = getenv(name);
        if (!value)
            continue;
        if (o->n_keep_env == (int)(sizeof o->keep_env / sizeof o->keep_env[0]))
            nsf_cli_die(prog, "too many --whitelist-env variables");
        if (asprintf(&o->keep_env[o->n_keep_env++], "%s=%s", name, value) < 0)
            nsf_cli_die(prog, "out of memory");
    }
    free(copy);
}

/* One option; NSF_TO_PYTHON for one that Python does. */
static int apply(struct unshare_opts *o, int c, const char *value)
{
    for (int k = 0; k < NSF_KINDS; k++) {
        if (nsf_kinds[k].letter != c)
            continue;
        if (value)   /* persisting on a file: nsfast/cli/unshare.py does it */
            return NSF_TO_PYTHON;
        o->flags |= nsf_kinds[k].flag;
        return 0;
    }
    switch (c) {
    case OPT_PYTHON:
        return NSF_TO_PYTHON;
    case 'h':
        fputs(help, stdout);
        exit(0);
    case 'V':
        printf("%s (nsfast %s, util-linux 2.38 flags)\n", prog, NSFAST_VERSION);
        exit(0);
    case 'f':
        o->fork = 1;
        break;
    case OPT_KILL_CHILD:
        o->fork = 1;
        o->kill_sig = signal_number(value);
        break;
    case OPT_FORWARD:
        o->fork = o->forward = 1;
        break;
    case OPT_MOUNT_PROC:
        o->flags |= CLONE_NEWNS;
        o->proc = value ? value : "/proc";
        break;
    case 'r':
        o->flags |= CLONE_NEWUSER;
        o->map_uid = o->map_gid = 0;
        break;
    case 'c':
        o->flags |= CLONE_NEWUSER;
        o->map_uid = geteuid();
        o->map_gid = getegid();
        break;
    case OPT_MAP_USER:
        o->flags |= CLONE_NEWUSER;
        o->map_uid = user_id(value, 0);
        break;
    case OPT_MAP_GROUP:
        o->flags |= CLONE_NEWUSER;
        o->map_gid = user_id(value, 1);
        break;
    case OPT_MAP_USERS:
        o->flags |= CLONE_NEWUSER;
        nsf_ranges_add(&o->uids, value, 0);
        break;
    case OPT_MAP_GROUPS:
        o->flags |= CLONE_NEWUSER;
        nsf_ranges_add(&o->gids, value, 1);
        break;
    case OPT_MAP_AUTO:
        o->flags |= CLONE_NEWUSER;
        nsf_ranges_add(&o->uids, "auto", 0);
        nsf_ranges_add(&o->gids, "auto", 1);
        break;
    case OPT_SETGROUPS:
        if (strcmp(value, "allow") != 0 && strcmp(value, "deny") != 0)
            nsf_cli_die(prog, "unsupported --setgroups argument '%s'", value);
        o->setgroups = value;
        break;
    case OPT_PROPAGATION:
        o->propagation = propagation_flags(value);
        break;
    case OPT_KEEP_CAPS:
        o->keep_caps = 1;
        break;
    case OPT_CLEAR_ENV:
        o->clear_env = 1;
        break;
    case OPT_KEEP_ENV:
        keep_env(o, value);
        break;
    case OPT_HOSTNAME:
        if (strlen(value) > 64)
            nsf_cli_die(prog, "hostname '%s' is longer than 64 bytes", value);
        o->flags |= CLONE_NEWUTS;
        o->hostname = value;
        break;
    case 'S':
        o->uid = nsf_cli_u32(prog, value, "uid");
        break;
    case 'G':
        o->gid = nsf_cli_u32(prog, value, "gid");
        break;
    case 'R':
        o->root = value;
        break;
    case 'w':
        o->wd = value;
        break;
    case OPT_MONOTONIC:
        o->monotonic = offset_seconds(value, "monotonic");
        o->has_monotonic = 1;
        break;
    case OPT_BOOTTIME:
        o->boottime = offset_seconds(value, "boottime");
        o->has_boottime = 1;
        break;
    }
    return 0;
}

static pid_t forward_to;

static void forward_signal(int sig)
{
    int saved = errno;
    if (forward_to > 0)
        kill(forward_to, sig);
    errno = saved;
}

/* -f: the parent waits for the program and leaves as it did; the child
 * returns.  Without --forward-signals the parent blocks INT and TERM (the
 * terminal's ^C reaches the program, which decides), as unshare(1). */
static void fork_program(const struct unshare_opts *o)
{
    sigset_t block, old;
    int parent_fd = -1;
    sigemptyset(&block);
    if (o->forward) {
        struct sigaction sa = {0};
        sa.sa_handler = forward_signal;
        sa.sa_flags = SA_RESTART;
        sigaction(SIGTERM, &sa, 0);
        sigaction(SIGINT, &sa, 0);
    } else {
        sigaddset(&block, SIGINT);
        sigaddset(&block, SIGTERM);
    }
    sigprocmask(SIG_BLOCK, &block, &old);
    if (o->kill_sig) {
        parent_fd = nsf_pidfd_open(getpid(), 0);
        if (parent_fd < 0)
            nsf_cli_die(prog, "pidfd_open failed: %s", strerror(-parent_fd));
    }
    pid_t pid = fork();
    if (pid < 0)
        nsf_cli_die(prog, "fork failed: %s", strerror(errno));
    if (pid) {
        forward_to = pid;
        int status;
        while (waitpid(pid, &status, 0) < 0)
            if (errno != EINTR)
                nsf_cli_die(prog, "waitpid failed: %s", strerror(errno));
        nsf_cli_exit_as(prog, status);
    }
    if (o->forward) {
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
    }
    sigprocmask(SIG_SETMASK, &old, 0);
    if (o->kill_sig) {
        if (prctl(PR_SET_PDEATHSIG, o->kill_sig) < 0)
            nsf_cli_die(prog, "prctl failed: %s", strerror(errno));
        /* the parent may have died before the prctl: then it never fires */
        struct pollfd pfd = {.fd = parent_fd, .events = POLLIN};
        if (poll(&pfd, 1, 0) != 0)
            exit(1);
        close(parent_fd);
    }
}

static void set_time_offset(int clock, long long seconds)
{
    char text[64];
    snprintf(text, sizeof text, "%d %lld 0", clock, seconds);
    nsf_cli_write_file(prog, "/proc/self/timens_offsets", text);
}

/* After unshare(2) and the fork: what unshare(1) does in the program's
 * process, in its order. */
static void set_up(const struct unshare_opts *o, unsigned euid, unsigned egid)
{
    char text[64];
    if (o->map_uid >= 0 && !o->uids.n) {
        snprintf(text, sizeof text, "%lld %u 1", o->map_uid, euid);
        nsf_cli_write_file(prog, "/proc/self/uid_map", text);
    }
    if (o->map_gid >= 0 && !o->gids.n) {
        nsf_cli_write_file(prog, "/proc/self/setgroups", "deny");
        snprintf(text, sizeof text, "%lld %u 1", o->map_gid, egid);
        nsf_cli_write_file(prog, "/proc/self/gid_map", text);
    }
    if (o->setgroups)
        nsf_cli_write_file(prog, "/proc/self/setgroups", o->setgroups);
    if ((o->flags & CLONE_NEWNS) && o->propagation &&
        mount("none", "/", 0, o->propagation, 0) < 0)
        nsf_cli_die(prog, "cannot change root filesystem propagation: %s", strerror(errno));
    if (o->hostname && sethostname(o->hostname, strlen(o->hostname)) < 0)
        nsf_cli_die(prog, "sethostname failed: %s", strerror(errno));
    const char *wd = o->wd;
    if (o->root) {
        if (chroot(o->root) < 0)
            nsf_cli_die(prog, "cannot change root directory to '%s': %s", o->root,
                        strerror(errno));
        wd = wd ? wd : "/";
    }
    if (wd && chdir(wd) < 0)
        nsf_cli_die(prog, "cannot change directory to %s: %s", wd, strerror(errno));
    if (o->proc) {
        /* a proc mount already there would otherwise keep its propagation */
        if (!o->root && o->propagation != (MS_PRIVATE | MS_REC) &&
            mount("none", o->proc, 0, MS_PRIVATE | MS_REC, 0) < 0 && errno != EINVAL)
            nsf_cli_die(prog, "cannot change %s filesystem propagation: %s", o->proc,
                        strerror(errno));
        if (mount("proc", o->proc, "proc", MS_NOSUID | MS_NOEXEC | MS_NODEV, 0) < 0)
            nsf_cli_die(prog, "mount %s failed: %s%s", o->proc, strerror(errno),
                        errno == EPERM && (o->flags & CLONE_NEWUSER)
                            ? " (hint: a user namespace may mount proc only with a new pid "
                              "namespace, and not over a masked /proc)" : "");
    }
    if (o->gid >= 0) {
        if (setgroups(0, 0) < 0)
            nsf_cli_die(prog, "setgroups failed: %s", strerror(errno));
        if (setgid((gid_t)o->gid) < 0)
            nsf_cli_die(prog, "setgid() failed: %s%s", strerror(errno),
                        errno == EINVAL ? " (hint: that gid is not mapped there)" : "");
    }
    if (o->uid >= 0 && setuid((uid_t)o->uid) < 0)
        nsf_cli_die(prog, "setuid() failed: %s%s", strerror(errno),
                    errno == EINVAL ? " (hint: that uid is not mapped there)" : "");
    if (o->keep_caps && (o->flags & CLONE_NEWUSER))
        nsf_cli_keep_caps(prog);
    if (o->clear_env)
        clearenv();
    for (int i = 0; i < o->n_keep_env; i++)
        putenv(o->keep_env[i]);
}

int nsf_unshare_main(int argc, char **argv)
{
    struct unshare_opts o = {.map_uid = -1, .map_gid = -1, .uid = -1, .gid = -1,
                             .propagation = MS_REC | MS_PRIVATE};
    struct {
        int c;
        char *value;
    } *found = calloc((size_t)argc + 1, sizeof *found);
    int n = 0, c;
    if (!found)
        nsf_cli_die(prog, "out of memory");
    argv[0] = (char *)prog;
    /* every option is read before any is acted on: one that Python does
     * hands the whole command line over before anything happened */
    while ((c = getopt_long(argc, argv, optstring, longopts, 0)) != -1) {
        if (c == '?')
            return 1;   /* getopt said why, as `nsfast unshare: ...` */
        if (c == OPT_PYTHON)
            return NSF_TO_PYTHON;
        found[n].c = c;
        found[n++].value = optarg;
    }
    for (int i = 0; i < n; i++)
        if (apply(&o, found[i].c, found[i].value) == NSF_TO_PYTHON)
            return NSF_TO_PYTHON;
    free(found);
    if ((o.has_monotonic || o.has_boottime) && !(o.flags & CLONE_NEWTIME))
        nsf_cli_die(prog, "options --monotonic and --boottime require unsharing of a time "
                    "namespace (-T)");
    if (o.map_gid >= 0 && !o.gids.n && o.setgroups && strcmp(o.setgroups, "allow") == 0)
        nsf_cli_die(prog, "options --setgroups=allow and --map-group are mutually exclusive "
                    "(-r, -c and --map-group deny setgroups, so that the gid map can be "
                    "written)");

    unsigned euid = geteuid(), egid = getegid();
    nsf_ranges_merge_single(&o.uids, o.uids.n ? o.map_uid : -1, euid);
    nsf_ranges_merge_single(&o.gids, o.gids.n ? o.map_gid : -1, egid);
    signal(SIGCHLD, SIG_DFL);   /* as unshare(1): clear what we inherited */
    pid_t helper = 0;
    int release = nsf_map_helper_start(&o.uids, &o.gids, &helper);
    if (unshare(o.flags) < 0)
        nsf_cli_die(prog, "unshare failed: %s%s", strerror(errno),
                    errno == EPERM ? " (hint: namespaces other than user need "
                                     "CAP_SYS_ADMIN; -r adds a user namespace that grants it)"
                                   : "");
    nsf_map_helper_release(release, helper);
    if (o.has_boottime)
        set_time_offset(CLOCK_BOOTTIME, o.boottime);
    if (o.has_monotonic)
        set_time_offset(CLOCK_MONOTONIC, o.monotonic);
    if (o.fork)
        fork_program(&o);
    set_up(&o, euid, egid);
    nsf_cli_exec(prog, argv + optind);
}
