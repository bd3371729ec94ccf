/* nsfast-runtime exec, in C: one more process in a running container, as
 * nsfast/oci/runtime.py exec_() starts it, for the calls container
 * managers make (`exec --process FILE [--pid-file F] [--detach]
 * [--console-socket S] [--tty] ID`): the container's namespaces joined
 * through a pidfd, its cgroups, its seccomp filter, the process's own ids
 * and capabilities, held until the pid file is written.  Anything else
 * (the ARGS form, a flag more, a user namespace, a process.json C does not
 * read as Python does) is Python's exec (OCI_FALLBACK), which also words
 * every refusal. */
#include "cli_oci_create.h"
#include "kinds.h"
#include "nscore.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOT_HERE(...) return OCI_FALLBACK

struct exec_args {
    const char *process, *pid_file, *console_socket, *id;
    int detach, tty;
};

static int parse_args(struct exec_args *a, int argc, char **argv)
{
    const struct oci_flag with_value[] = {
        {"--process", &a->process}, {"-p", &a->process}, {"--pid-file", &a->pid_file},
        {"--console-socket", &a->console_socket}};
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        int taken = oci_value_flag(with_value, 4, argc, argv, &i);
        if (taken < 0)
            return OCI_FALLBACK;
        if (taken)
            continue;
        if (strcmp(arg, "--detach") == 0 || strcmp(arg, "-d") == 0) {
            a->detach = 1;
        } else if (strcmp(arg, "--tty") == 0 || strcmp(arg, "-t") == 0) {
            a->tty = 1;
        } else if (arg[0] == '-' || a->id) {
            NOT_HERE("a flag or argument of Python's parser alone");
        } else {
            a->id = arg;
        }
    }
    /* runc's id rule (state.py check_id), else Python's words */
    return a->process && *a->process && a->id && oci_id_ok(a->id) ? 0 : OCI_FALLBACK;
}

/* The kinds of namespace (of those this kernel has) in which pid differs
 * from this process, as targets.differing_kinds finds them; -1 when one
 * cannot be compared. */
static int differing_kinds(pid_t pid)
{
    int mask = 0;
    for (int k = 0; k < NSF_KINDS; k++) {
        char theirs[64], ours[64];
        struct stat a, b;
        snprintf(ours, sizeof ours, "/proc/self/ns/%s", nsf_kinds[k].proc);
        if (stat(ours, &b) < 0)
            continue;   /* a kind this kernel does not have */
        snprintf(theirs, sizeof theirs, "/proc/%d/ns/%s", (int)pid, nsf_kinds[k].proc);
        if (stat(theirs, &a) < 0)
            return -1;
        if (a.st_ino != b.st_ino || a.st_dev != b.st_dev)
            mask |= nsf_kinds[k].flag;
    }
    return mask;
}

/* Let a detached exec go once this command has exited: the caller reads
 * the pid file when the runtime has exited and loses the status of a
 * process that ended before (runtime.py _release_after_exit). */
static void release_after_exit(int go_w)
{
    int me = nsf_pidfd_open(getpid(), 0);
    fflush(NULL);
    if (me >= 0 && fork() == 0) {
        struct pollfd pfd = {me, POLLIN, 0};
        poll(&pfd, 1, 30000);
        if (write(go_w, "g", 1) < 0) {
            /* the process has gone: nothing waits for the byte */
        }
        _exit(0);
    }
    if (me >= 0)
        close(me);
}

int oci_exec(const char *root, int argc, char **argv)
{
    static struct oci_create_plan plan;
    static struct oci_container c;
    static struct nsf_spawn_state st;
    struct oci_create_plan *p = &plan;
    struct exec_args a = {0};
    struct json_object *public, *process, *config;
    char path[PATH_MAX];
    if (parse_args(&a, argc, argv))
        return OCI_FALLBACK;
    oci_load(&c, root, a.id);
    if (!c.exists || strcmp(oci_status(&c), "running") != 0)
        NOT_HERE("not running: Python says so");
    if (oci_read_json(oci_file(&c, "state.json", path, sizeof path), &public) ||
        oci_read_json(a.process, &process))
        return OCI_FALLBACK;
    const char *bundle = json_object_get_string(oci_json_get(public, "bundle"));
    const char *rootfs = json_object_get_string(oci_json_get(public, "rootfs"));
    if (!bundle || !rootfs || !*rootfs ||
        (size_t)snprintf(path, sizeof path, "%s/config.json", bundle) >= sizeof path ||
        oci_read_json(path, &config))
        return OCI_FALLBACK;
    if (a.tty)   /* as cli/oci.py _exec_process: --tty asks for a terminal */
        json_object_object_add(process, "terminal", json_object_new_boolean(1));
    p->console_socket = a.console_socket;
    oci_plan_init(&p->sp);
    if (oci_plan_process(p, process) ||
        oci_plan_seccomp(p, oci_json_get(config, "linux")) ||
        oci_check_program(config, rootfs, p->argv[0], p->env_path))
        return OCI_FALLBACK;
    p->sp.argv = p->argv;
    p->sp.envp = p->envp;
    p->sp.exec_paths = p->exec_paths;
    /* every namespace of the container's process that is not ours, through
     * its pidfd, as spawn(join=pid) does; a user namespace is Python's */
    int kinds = differing_kinds(c.pid);
    int pidfd = kinds < 0 || (kinds & CLONE_NEWUSER) ? -1 : nsf_pidfd_open(c.pid, 0);
    if (pidfd < 0 || c.start_time != oci_start_time(c.pid))
        NOT_HERE("a user namespace, or no pidfd of the container's process");
    p->join_fds[0] = pidfd;
    p->join_kinds[0] = kinds;
    p->sp.join = (struct nsf_join){.count = 1, .use_pidfd = 1, .fds = p->join_fds,
                                   .kinds = p->join_kinds};
    int go[2], master = -1;
    if (pipe2(go, O_CLOEXEC) < 0 || (p->terminal && oci_open_terminal(&p->sp, &master) < 0))
        return OCI_FALLBACK;
    /* held before exec until the pid file is written: the caller must know
     * the pid before the process can end */
    pid_t pid = oci_spawn_held(p, &c, go[0], &st);
    close(go[0]);
    if (!pid)
        return OCI_FALLBACK;   /* reaped: Python's exec says what failed */
    struct nsf_record rec;
    int status;
    if ((a.pid_file && oci_write_pid_file(a.pid_file, pid) < 0) ||
        (master >= 0 && oci_send_console(a.console_socket, master) < 0)) {
        kill(pid, SIGKILL);   /* held: it has run nothing of its own */
        nsf_spawn_finish(&st, &rec, &status);
        return OCI_FALLBACK;
    }
    if (a.detach) {
        release_after_exit(go[1]);
        fflush(NULL);
        _exit(0);
    }
    if (write(go[1], "g", 1) != 1 || nsf_spawn_finish(&st, &rec, &status) != 0)
        return OCI_FALLBACK;   /* its exec failed: Python's exec says why */
    while (waitpid(st.pid, &status, 0) < 0)
        if (errno != EINTR)
            return OCI_FALLBACK;
    fflush(NULL);
    _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}
