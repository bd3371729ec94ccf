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

struct range {
    unsigned inner, outer, count;
};

#define MAX_RANGES 16

struct unshare_opts {
    int flags;
    int fork, forward, kill_sig;
    long long map_uid, map_gid;            /* single maps of our ids; -1: none */
    struct range uids[MAX_RANGES], gids[MAX_RANGES];
    int n_uids, n_gids;
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

static long long unsigned_number(const char *text, const char *what)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (!*text || *end || errno || text[0] == '-' || v > 0xffffffffULL)
        nsf_cli_die(prog, "failed to parse %s: '%s'", what, text);
    return (long long)v;
}

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

/* The first range of /etc/subuid or /etc/subgid for our user (by name or
 * uid), mapped from 0 inside, as --map-users=auto reads it. */
static struct range subid_range(const char *file)
{
    uid_t euid = geteuid();
    struct passwd *pw = getpwuid(euid);
    char line[512], uid_text[16];
    FILE *f = fopen(file, "re");
    snprintf(uid_text, sizeof uid_text, "%u", (unsigned)euid);
    if (!f)
        nsf_cli_die(prog, "cannot open %s: %s", file, strerror(errno));
    while (fgets(line, sizeof line, f)) {
        char *name = strtok(line, ":\n"), *start = strtok(0, ":\n"), *count = strtok(0, ":\n");
        if (!name || !start || !count)
            continue;
        if (strcmp(name, uid_text) != 0 && !(pw && strcmp(name, pw->pw_name) == 0))
            continue;
        fclose(f);
        return (struct range){0, (unsigned)unsigned_number(start, file),
                              (unsigned)unsigned_number(count, file)};
    }
    fclose(f);
    nsf_cli_die(prog, "no line matching user \"%s\" in %s", pw ? pw->pw_name : uid_text, file);
}

/* INNER:OUTER:COUNT (newer util-linux), OUTER,INNER,COUNT (2.38), or auto */
static void add_range(struct range *ranges, int *n, const char *text, int group)
{
    const char *option = group ? "--map-groups" : "--map-users";
    unsigned a, b, c;
    int used = 0;
    if (*n == MAX_RANGES)
        nsf_cli_die(prog, "too many %s ranges", option);
    if (strcmp(text, "auto") == 0) {
        ranges[(*n)++] = subid_range(group ? "/etc/subgid" : "/etc/subuid");
        return;
    }
    if (sscanf(text, "%u:%u:%u%n", &a, &b, &c, &used) == 3 && !text[used]) {
        ranges[(*n)++] = (struct range){a, b, c};
        return;
    }
    if (sscanf(text, "%u,%u,%u%n", &b, &a, &c, &used) == 3 && !text[used]) {
        ranges[(*n)++] = (struct range){a, b, c};
        return;
    }
    nsf_cli_die(prog, "%s takes INNER:OUTER:COUNT or auto, not '%s'", option, text);
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
        long long v = unsigned_number(text, "signal");
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
        add_range(o->uids, &o->n_uids, value, 0);
        break;
    case OPT_MAP_GROUPS:
        o->flags |= CLONE_NEWUSER;
        add_range(o->gids, &o->n_gids, value, 1);
        break;
    case OPT_MAP_AUTO:
        o->flags |= CLONE_NEWUSER;
        add_range(o->uids, &o->n_uids, "auto", 0);
        add_range(o->gids, &o->n_gids, "auto", 1);
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
        o->uid = unsigned_number(value, "uid");
        break;
    case 'G':
        o->gid = unsigned_number(value, "gid");
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

/* A single map beside ranges becomes one more line, and the ranges give up
 * the inner id it takes, as util-linux merges them. */
static void merge_single(struct range *ranges, int *n, long long single, unsigned ours)
{
    if (!*n || single < 0)
        return;
    struct range out[MAX_RANGES * 2 + 1];
    int m = 0;
    for (int i = 0; i < *n; i++) {
        struct range r = ranges[i];
        unsigned id = (unsigned)single;
        if (id < r.inner || id >= r.inner + r.count || m + 2 > MAX_RANGES * 2) {
            out[m++] = r;
            continue;
        }
        /* below the single id, then above it (one outer id fewer) */
        if (id > r.inner)
            out[m++] = (struct range){r.inner, r.outer, id - r.inner};
        if (r.inner + r.count - id - 1 > 0)
            out[m++] = (struct range){id + 1, r.outer + (id - r.inner), r.inner + r.count - id - 1};
    }
    out[m++] = (struct range){(unsigned)single, ours, 1};
    if (m > MAX_RANGES)
        nsf_cli_die(prog, "too many id map ranges");
    memcpy(ranges, out, (size_t)m * sizeof *out);
    *n = m;
}

static void write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        nsf_cli_die(prog, "cannot open %s: %s", path, strerror(errno));
    ssize_t n = write(fd, text, strlen(text));
    if (n != (ssize_t)strlen(text))
        nsf_cli_die(prog, "write failed %s: %s", path, n < 0 ? strerror(errno) : "short write");
    close(fd);
}

/* The helper that writes the range maps of pid (root writes the files;
 * others run newuidmap and newgidmap), once pid has unshared. */
static void write_ranges(pid_t pid, const char *which, const struct range *r, int n)
{
    char path[64], text[MAX_RANGES * 40] = "";
    size_t len = 0;
    if (!n)
        return;
    if (geteuid() == 0) {
        for (int i = 0; i < n; i++)
            len += (size_t)snprintf(text + len, sizeof text - len, "%u %u %u\n", r[i].inner,
                                    r[i].outer, r[i].count);
        snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, which);
        write_file(path, text);
        return;
    }
    const char *tool = strcmp(which, "uid_map") == 0 ? "newuidmap" : "newgidmap";
    char *argv[3 + 3 * MAX_RANGES], numbers[1 + 3 * MAX_RANGES][16];
    int a = 0;
    argv[a++] = (char *)tool;
    snprintf(numbers[0], sizeof numbers[0], "%d", (int)pid);
    argv[a++] = numbers[0];
    for (int i = 0; i < n; i++) {
        unsigned v[3] = {r[i].inner, r[i].outer, r[i].count};
        for (int j = 0; j < 3; j++) {
            snprintf(numbers[1 + 3 * i + j], sizeof numbers[0], "%u", v[j]);
            argv[a++] = numbers[1 + 3 * i + j];
        }
    }
    argv[a] = 0;
    pid_t child = fork();
    if (child < 0)
        nsf_cli_die(prog, "fork failed: %s", strerror(errno));
    if (child == 0) {
        execvp(tool, argv);
        nsf_cli_exec_failed(prog, tool);
    }
    int status;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status))
        exit(1);   /* newuidmap said why */
}

/* Fork the helper before unshare(2); it waits on a pipe.  The fd to
 * release it with, or -1 when there are no ranges. */
static int start_map_helper(const struct unshare_opts *o, pid_t *helper)
{
    int p[2];
    char byte;
    if (!o->n_uids && !o->n_gids)
        return -1;
    if (pipe2(p, O_CLOEXEC) < 0)
        nsf_cli_die(prog, "pipe failed: %s", strerror(errno));
    pid_t parent = getpid();
    *helper = fork();
    if (*helper < 0)
        nsf_cli_die(prog, "fork failed: %s", strerror(errno));
    if (*helper) {
        close(p[0]);
        return p[1];
    }
    close(p[1]);
    if (read(p[0], &byte, 1) != 1)
        _exit(1);   /* the parent failed before unshare, and said why */
    write_ranges(parent, "uid_map", o->uids, o->n_uids);
    write_ranges(parent, "gid_map", o->gids, o->n_gids);
    _exit(0);
}

static void release_map_helper(int fd, pid_t helper)
{
    int status;
    if (fd < 0)
        return;
    if (write(fd, "x", 1) != 1)
        nsf_cli_die(prog, "releasing the id map helper: %s", strerror(errno));
    close(fd);
    while (waitpid(helper, &status, 0) < 0)
        if (errno != EINTR)
            nsf_cli_die(prog, "waitpid failed: %s", strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status))
        nsf_cli_die(prog, "writing the id maps failed");
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
    write_file("/proc/self/timens_offsets", text);
}

/* After unshare(2) and the fork: what unshare(1) does in the program's
 * process, in its order. */
static void set_up(const struct unshare_opts *o, unsigned euid, unsigned egid)
{
    char text[64];
    if (o->map_uid >= 0 && !o->n_uids) {
        snprintf(text, sizeof text, "%lld %u 1", o->map_uid, euid);
        write_file("/proc/self/uid_map", text);
    }
    if (o->map_gid >= 0 && !o->n_gids) {
        write_file("/proc/self/setgroups", "deny");
        snprintf(text, sizeof text, "%lld %u 1", o->map_gid, egid);
        write_file("/proc/self/gid_map", text);
    }
    if (o->setgroups)
        write_file("/proc/self/setgroups", o->setgroups);
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
    if (o.map_gid >= 0 && !o.n_gids && o.setgroups && strcmp(o.setgroups, "allow") == 0)
        nsf_cli_die(prog, "options --setgroups=allow and --map-group are mutually exclusive "
                    "(-r, -c and --map-group deny setgroups, so that the gid map can be "
                    "written)");

    unsigned euid = geteuid(), egid = getegid();
    merge_single(o.uids, &o.n_uids, o.n_uids ? o.map_uid : -1, euid);
    merge_single(o.gids, &o.n_gids, o.n_gids ? o.map_gid : -1, egid);
    signal(SIGCHLD, SIG_DFL);   /* as unshare(1): clear what we inherited */
    pid_t helper = 0;
    int release = start_map_helper(&o, &helper);
    if (unshare(o.flags) < 0)
        nsf_cli_die(prog, "unshare failed: %s%s", strerror(errno),
                    errno == EPERM ? " (hint: namespaces other than user need "
                                     "CAP_SYS_ADMIN; -r adds a user namespace that grants it)"
                                   : "");
    release_map_helper(release, helper);
    if (o.has_boottime)
        set_time_offset(CLOCK_BOOTTIME, o.boottime);
    if (o.has_monotonic)
        set_time_offset(CLOCK_MONOTONIC, o.monotonic);
    if (o.fork)
        fork_program(&o);
    set_up(&o, euid, egid);
    nsf_cli_exec(prog, argv + optind);
}
