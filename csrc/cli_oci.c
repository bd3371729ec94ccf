/* nsfast-runtime (also `nsfast oci`): runc's command line.  The commands a
 * container manager calls on every container (create, state, start, kill,
 * delete, exec --process, ps, pause, resume, --version) run here, in C,
 * without starting Python; run, features, and a create or exec that C does
 * not handle (csrc/cli_oci_create.h), are nsfast/cli/oci.py's, handed over
 * as `nsfast oci ARGS`.
 *
 *     nsfast-runtime [--root DIR] [--log FILE] [--log-format text|json]
 *                    [--systemd-cgroup] [--debug] [--rootless V] COMMAND ...
 *
 * An error is one line on stderr and, with --log, one record in the log file
 * (JSON with --log-format json, where containerd's shim looks for it; logfmt
 * otherwise, as runc writes), and exit status 1, as runc's. */
#include "cli.h"
#include "cli_oci.h"
#include "compat.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef NSFAST_VERSION
#define NSFAST_VERSION "unknown"
#endif

#define DEFAULT_ROOT "/run/nsfast-runtime"

/* the global flags as given (passed on to Python for the hooks); an error
 * found while they are read is logged as far as they are known */
static const char *root = DEFAULT_ROOT, *log_path, *log_format = "text";

/* text with JSON's string escapes, into f */
static void json_string(FILE *f, const char *text)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void log_error(const char *message)
{
    struct timespec ts;
    struct tm tm;
    char when[64];
    if (!log_path)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof when - n, ".%06ldZ", ts.tv_nsec / 1000);
    FILE *f = fopen(log_path, "ae");
    if (!f)
        return;
    if (strcmp(log_format, "json") == 0) {
        fputs("{\"level\": \"error\", \"msg\": ", f);
        json_string(f, message);
        fprintf(f, ", \"time\": \"%s\"}\n", when);
    } else {
        fprintf(f, "time=\"%s\" level=error msg=", when);
        json_string(f, message);
        fputc('\n', f);
    }
    fclose(f);
}

void oci_fail(const char *fmt, ...)
{
    char msg[4096], line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    nsf_cli_one_line(msg, line, sizeof line);
    log_error(line);
    fprintf(stderr, OCI_PROG ": %s\n", line);
    exit(1);
}

/* --------------------------------------------------------------- signals */

static const struct {
    const char *name;
    int number;
} signals[] = {
    {"HUP", SIGHUP}, {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"ILL", SIGILL},
    {"TRAP", SIGTRAP}, {"ABRT", SIGABRT}, {"IOT", SIGIOT}, {"BUS", SIGBUS},
    {"FPE", SIGFPE}, {"KILL", SIGKILL}, {"USR1", SIGUSR1}, {"SEGV", SIGSEGV},
    {"USR2", SIGUSR2}, {"PIPE", SIGPIPE}, {"ALRM", SIGALRM}, {"TERM", SIGTERM},
    {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD}, {"CLD", SIGCHLD}, {"CONT", SIGCONT},
    {"STOP", SIGSTOP}, {"TSTP", SIGTSTP}, {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU},
    {"URG", SIGURG}, {"XCPU", SIGXCPU}, {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM},
    {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO}, {"POLL", SIGPOLL},
    {"PWR", SIGPWR}, {"SYS", SIGSYS},
};

/* 'KILL', 'SIGKILL', 'kill', '9' or 'RTMIN+3' -> its number, or exit 1. */
static int parse_signal(const char *text)
{
    char name[32];
    long n = -1;
    if (*text && strspn(text, "0123456789") == strlen(text)) {
        n = strlen(text) > 4 ? 1000 : strtol(text, NULL, 10);
    } else {
        size_t len = strlen(text);
        if (len >= sizeof name)
            oci_fail("unknown signal '%.40s'", text);
        for (size_t i = 0; i <= len; i++)
            name[i] = (char)toupper((unsigned char)text[i]);
        const char *bare = strncmp(name, "SIG", 3) == 0 ? name + 3 : name;
        for (unsigned i = 0; i < sizeof signals / sizeof signals[0] && n < 0; i++)
            if (strcmp(bare, signals[i].name) == 0)
                n = signals[i].number;
        if (n < 0 && strncmp(bare, "RTMIN", 5) == 0 &&
            (!bare[5] || (bare[5] == '+' && bare[6] && strlen(bare + 6) <= 2 &&
                          strspn(bare + 6, "0123456789") == strlen(bare + 6))))
            n = SIGRTMIN + (bare[5] ? strtol(bare + 6, NULL, 10) : 0);
        else if (n < 0 && strcmp(bare, "RTMAX") == 0)
            n = SIGRTMAX;
        if (n < 0)
            oci_fail("unknown signal '%s'", text);
    }
    if (n <= 0 || n >= _NSIG)
        oci_fail("signal '%s' is out of range", text);
    return (int)n;
}

/* --------------------------------------------------------------- commands */

/* sig to the container's process, through a pidfd checked to name the same
 * process the state does (no stray signal to a reused pid); ESRCH when it
 * is gone, 0 when sent, else an errno. */
static int signal_container(const struct oci_container *c, int sig)
{
    int fd = (int)syscall(__NR_pidfd_open, c->pid, 0);
    if (fd < 0 && errno != ENOSYS)
        return errno;
    if (oci_start_time(c->pid) != c->start_time) {
        if (fd >= 0)
            close(fd);
        return ESRCH;
    }
    /* no pidfds (before 5.3): the start time was checked just now */
    long r = fd >= 0 ? syscall(__NR_pidfd_send_signal, fd, sig, NULL, 0) : kill(c->pid, sig);
    int err = r < 0 ? errno : 0;
    if (fd >= 0)
        close(fd);
    return err;
}

/* Wait until the container's process has ended (a zombie has). */
static void wait_gone(const struct oci_container *c)
{
    int fd = (int)syscall(__NR_pidfd_open, c->pid, 0);
    if (fd >= 0 && oci_alive(c)) {
        struct pollfd p = {fd, POLLIN, 0};
        while (poll(&p, 1, 10000) < 0 && errno == EINTR)
            ;
    }
    if (fd >= 0)
        close(fd);
    for (int i = 0; i < 2000 && oci_alive(c); i++) {
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    if (oci_alive(c))
        oci_fail("the container's process did not end after SIGKILL");
}

/* `nsfast oci --root ROOT ... hooks KIND ID`: the hooks of one kind, run by
 * nsfast/oci/hooks.py (they need the JSON of state.json and hooks.json); its
 * exit status (1 when a fatal hook failed: it has said why). */
static int run_hooks(const struct oci_container *c, const char *kind)
{
    char *args[] = {"nsfast", "oci", "--root", (char *)root, "--log-format",
                    (char *)log_format, "hooks", (char *)kind, (char *)c->id, NULL, NULL, NULL};
    if (log_path) {
        memmove(args + 6, args + 4, 5 * sizeof args[0]);
        args[4] = "--log";
        args[5] = (char *)log_path;
    }
    int argc = 0;
    while (args[argc])
        argc++;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        oci_fail("running the %s hooks: fork: %s", kind, strerror(errno));
    if (pid == 0)
        nsf_cli_run_python(argc, args);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            oci_fail("running the %s hooks: %s", kind, strerror(errno));
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

static void cmd_state(struct oci_container *c)
{
    static char rest[1 << 20];
    char path[PATH_MAX];
    const char *status = oci_status(c);
    int fd = open(oci_file(c, "state.json", path, sizeof path), O_RDONLY | O_CLOEXEC);
    ssize_t got = fd < 0 ? -1 : read(fd, rest, sizeof rest - 1);
    if (fd >= 0)
        close(fd);
    if (got <= 0 || rest[0] != '{')
        oci_fail("%s: %s", path, got < 0 ? strerror(errno) : "not a JSON object");
    while (got > 0 && (rest[got - 1] == '\n' || rest[got - 1] == ' '))
        got--;
    rest[got] = 0;
    /* state.json holds the fields that do not change (bundle, rootfs, created,
     * owner, annotations); these are the ones that do */
    const char *fields = rest + 1 + strspn(rest + 1, " \n");
    printf("{\n  \"ociVersion\": \"" OCI_VERSION "\",\n  \"id\": \"%s\",\n  \"status\": \"%s\",\n"
           "  \"pid\": %d%s%s", c->id, status, strcmp(status, "stopped") == 0 ? 0 : (int)c->pid,
           *fields == '}' ? "" : ",\n  ", fields);
    putchar('\n');
}

/* Whether pid's command line is there (not while an exec builds it). */
static int has_arguments(pid_t pid)
{
    char path[64], byte;
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 1;   /* gone: nothing to wait for */
    ssize_t n = read(fd, &byte, 1);
    close(fd);
    return n != 0;
}

static void cmd_start(struct oci_container *c)
{
    char path[PATH_MAX];
    if (!oci_lock(c))
        oci_fail("container '%s' does not exist", c->id);
    const char *status = oci_status(c);
    if (strcmp(status, "created") != 0)
        oci_fail("cannot start a container that is %s (only a created one)", status);
    if (oci_has_hooks(c, "startContainer") && run_hooks(c, "startContainer") != 0)
        exit(1);
    /* the program the held process runs now: still the runtime's image */
    char exe[64];
    struct stat held, now;
    snprintf(exe, sizeof exe, "/proc/%d/exe", (int)c->pid);
    int known = stat(exe, &held) == 0;
    int fd = open(oci_file(c, "exec.fifo", path, sizeof path),
                  O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 && errno == ENXIO)
        oci_fail("the container process no longer waits to be started (it has exited)");
    if (fd < 0 || write(fd, "0", 1) != 1)
        oci_fail("%s: %s", path, strerror(errno));
    close(fd);
    unlink(path);
    /* return once it has exec'd (or ended), a fraction of a millisecond: a
     * manager that asks `state` next must find the container's own program
     * running, not the runtime's image about to exec it.  The exec is done
     * when the program changed and the new one has its arguments (the
     * kernel switches the first before it writes the second) */
    for (int i = 0; known && i < 20000 && oci_alive(c); i++) {
        if (stat(exe, &now) < 0)
            break;
        if ((now.st_ino != held.st_ino || now.st_dev != held.st_dev) && has_arguments(c->pid))
            break;
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
    if (oci_has_hooks(c, "poststart"))
        run_hooks(c, "poststart");   /* a failure is only logged, as the spec asks */
}

static void cmd_kill(struct oci_container *c, int sig, int all)
{
    const char *status = oci_status(c);
    if (!all && (strcmp(status, "stopped") == 0 || strcmp(status, "creating") == 0))
        oci_fail("container not running (%s)", status);
    if (all) {
        oci_signal_all(c, sig);
        return;
    }
    int err = signal_container(c, sig);
    if (err == ESRCH)
        oci_fail("container not running");
    if (err)
        oci_fail("kill %s: %s", c->id, strerror(err));
}

void oci_delete(struct oci_container *c, int force)
{
    if (!c->exists) {
        if (!force)
            oci_fail("container '%s' does not exist", c->id);
        /* as runc: nothing to force; a create that died half way may have
         * left its directory */
        if (access(c->dir, F_OK) == 0)
            oci_remove_dir(c);
        return;
    }
    if (!oci_lock(c)) {
        if (!force)
            oci_fail("container '%s' does not exist", c->id);
        return;   /* another delete was first */
    }
    const char *status = oci_status(c);
    int paused = strcmp(status, "paused") == 0;
    if ((paused || strcmp(status, "running") == 0) && !force)
        oci_fail("cannot delete container %s that is not stopped: %s", c->id, status);
    if (strcmp(status, "stopped") != 0) {
        if (paused)
            oci_freeze(c, 0);
        oci_signal_all(c, SIGKILL);
        if (oci_alive(c))
            signal_container(c, SIGKILL);
        wait_gone(c);
    }
    oci_cgroup_remove(c);
    oci_sweep_parents(c->root);
    if (oci_has_hooks(c, "poststop"))
        run_hooks(c, "poststop");    /* a failure is only logged */
    oci_remove_dir(c);
}

static void cmd_pause(struct oci_container *c, int on)
{
    const char *want = on ? "running" : "paused";
    if (!oci_lock(c))
        oci_fail("container '%s' does not exist", c->id);
    const char *status = oci_status(c);
    if (strcmp(status, want) != 0)
        oci_fail("container is %s, not %s", status, want);
    if (!oci_cgroup_dir(c, "freezer"))
        oci_fail("pause and resume need the freezer cgroup controller (cgroup v1)");
    oci_freeze(c, on);
}

/* The container's processes: a table of PID and command line, as runc's
 * (ps's own columns aside), or a JSON list of pids. */
static void cmd_ps(struct oci_container *c, int json)
{
    static pid_t pids[65536];
    int n = oci_cgroup_pids(c, pids, (int)(sizeof pids / sizeof pids[0]));
    if (json) {
        putchar('[');
        for (int i = 0; i < n; i++)
            printf("%s%d", i ? ", " : "", (int)pids[i]);
        puts("]");
        return;
    }
    puts("PID CMD");
    for (int i = 0; i < n; i++) {
        char path[64], cmd[4096];
        snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pids[i]);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;   /* it has ended meanwhile */
        ssize_t got = read(fd, cmd, sizeof cmd - 1);
        close(fd);
        if (got < 0)
            continue;
        for (ssize_t k = 0; k < got; k++)
            if (cmd[k] == 0 || cmd[k] == '\n')
                cmd[k] = ' ';
        while (got > 0 && cmd[got - 1] == ' ')
            got--;
        cmd[got] = 0;
        printf("%d %s\n", (int)pids[i], cmd);
    }
}

/* --------------------------------------------------------------- command line */

static const char usage[] =
    "usage: " OCI_PROG " [--root DIR] [--log FILE] [--log-format text|json] COMMAND ...\n"
    "\n"
    "runc's command line over nsfast (issue #20).  Commands:\n"
    "  create --bundle DIR [--pid-file F] [--console-socket SOCK] ID\n"
    "  start ID | state ID | kill [--all] ID [SIGNAL] | delete [--force] ID\n"
    "  run [--detach] [--keep] ... ID | exec [--process FILE | ARGS] ID\n"
    "  ps [--format table|json] ID | pause ID | resume ID | features | --version\n";

/* The commands nsfast/cli/oci.py runs (with `hooks`, the launcher's own). */
static int python_command(const char *name)
{
    static const char *const names[] = {"create", "run", "exec", "features", "hooks"};
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i]) == 0)
            return 1;
    return 0;
}

/* Whether argv[*i] is the flag -NAME or --NAME (urfave/cli, which runc
 * uses, takes both); for a flag with a value (value not NULL), also
 * --NAME=VALUE, or --NAME VALUE (advancing *i). */
static int take_flag(int argc, char **argv, int *i, const char *name, const char **value)
{
    if (argv[*i][0] != '-')
        return 0;
    const char *a = argv[*i] + (argv[*i][1] == '-' ? 2 : 1);
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return 0;
    if (!a[n]) {
        if (value) {
            if (*i + 1 >= argc)
                oci_fail("flag needs an argument: -%s", name);
            *value = argv[++*i];
        }
        return 1;
    }
    if (a[n] == '=' && value) {
        *value = a + n + 1;
        return 1;
    }
    return 0;
}

int nsf_oci_main(int argc, char **argv)
{
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i], *ignored;
        if (take_flag(argc, argv, &i, "root", &root) ||
            take_flag(argc, argv, &i, "log", &log_path) ||
            take_flag(argc, argv, &i, "log-format", &log_format) ||
            /* accepted as runc does, and without effect here */
            take_flag(argc, argv, &i, "rootless", &ignored) ||
            take_flag(argc, argv, &i, "criu", &ignored) ||
            take_flag(argc, argv, &i, "debug", NULL))
            continue;
        if (take_flag(argc, argv, &i, "systemd-cgroup", NULL)) {
            oci_fail("--systemd-cgroup is not supported: nsfast-runtime manages cgroupfs "
                     "paths (set SystemdCgroup = false, or cgroup_manager = \"cgroupfs\")");
        } else if (strcmp(a, "-v") == 0 || take_flag(argc, argv, &i, "version", NULL)) {
            printf(OCI_PROG " version %s\nspec: " OCI_VERSION "\n", NSFAST_VERSION);
            return 0;
        } else if (strcmp(a, "-h") == 0 || take_flag(argc, argv, &i, "help", NULL)) {
            fputs(usage, stdout);
            return 0;
        } else {
            oci_fail("flag provided but not defined: %s", a);
        }
    }
    if (strcmp(log_format, "text") != 0 && strcmp(log_format, "json") != 0)
        oci_fail("--log-format %s: use text or json", log_format);
    if (i == argc)
        oci_fail("a command is needed: create, start, state, kill, delete, run, exec, ps, "
                 "pause, resume, features");
    const char *command = argv[i];
    if (strcmp(command, "create") == 0 && oci_create(root, argc - i - 1, argv + i + 1) == 0)
        return 0;
    if (strcmp(command, "exec") == 0)
        oci_exec(root, argc - i - 1, argv + i + 1);   /* returns only to hand over */
    if (python_command(command)) {
        /* `nsfast oci` + this whole command line, for nsfast/cli/oci.py */
        char **args = calloc((size_t)argc + 2, sizeof *args);
        if (!args)
            oci_fail("out of memory");
        args[0] = "nsfast";
        args[1] = "oci";
        memcpy(args + 2, argv + 1, (size_t)(argc - 1) * sizeof *args);
        nsf_cli_run_python(argc + 1, args);
    }
    int force = 0, all = 0, n_pos = 0;
    const char *pos[2] = {0, 0}, *format = "table";
    int is_kill = strcmp(command, "kill") == 0, is_delete = strcmp(command, "delete") == 0;
    int is_ps = strcmp(command, "ps") == 0;
    static const char *const ours[] = {"start", "state", "kill", "delete", "ps", "pause",
                                       "resume"};
    int known = 0;
    for (unsigned k = 0; k < sizeof ours / sizeof ours[0]; k++)
        known |= strcmp(command, ours[k]) == 0;
    if (!known)
        oci_fail("unknown command '%s' (create, start, state, kill, delete, run, exec, ps, "
                 "pause, resume, features)", command);
    for (i++; i < argc; i++) {
        const char *a = argv[i];
        if (is_delete && (strcmp(a, "-f") == 0 || take_flag(argc, argv, &i, "force", NULL)))
            force = 1;
        else if (is_ps && (take_flag(argc, argv, &i, "f", &format) ||
                           take_flag(argc, argv, &i, "format", &format))) {
            if (strcmp(format, "table") != 0 && strcmp(format, "json") != 0)
                oci_fail("ps: --format %s: use table or json", format);
        }
        else if (is_kill && (strcmp(a, "-a") == 0 || take_flag(argc, argv, &i, "all", NULL)))
            all = 1;
        else if (a[0] == '-' && a[1] && !(is_kill && n_pos == 1))
            oci_fail("%s: flag provided but not defined: %s", command, a);
        else if (n_pos < (is_kill ? 2 : 1))
            pos[n_pos++] = a;
        else
            oci_fail("%s: too many arguments: %s", command, a);
    }
    if (!pos[0])
        oci_fail("%s needs a container id", command);
    /* bad input is refused before anything is read */
    int sig = is_kill ? parse_signal(pos[1] ? pos[1] : "SIGTERM") : 0;
    static struct oci_container c;
    oci_load(&c, root, pos[0]);
    if (!c.exists && !is_delete)
        oci_fail("container '%s' does not exist", c.id);
    if (is_kill)
        cmd_kill(&c, sig, all);
    else if (is_delete)
        oci_delete(&c, force);
    else if (strcmp(command, "start") == 0)
        cmd_start(&c);
    else if (is_ps)
        cmd_ps(&c, strcmp(format, "json") == 0);
    else if (strcmp(command, "pause") == 0 || strcmp(command, "resume") == 0)
        cmd_pause(&c, strcmp(command, "pause") == 0);
    else
        cmd_state(&c);
    return fflush(stdout) == 0 ? 0 : 1;
}
