/* nsfast-runtime create, in C: the container made and held on exec.fifo
 * without starting Python, as nsfast/oci/runtime.py create() makes it.
 *
 * Two phases.  The first (cli_oci_create_plan.c) reads the command line and
 * config.json and builds the whole spawn in memory, changing nothing:
 * whatever it does not handle exactly as Python does sends the command to
 * Python (OCI_FALLBACK, see cli_oci_create.h).  The second, here, makes the
 * state directory, the cgroups and the fifo, clones the child, which joins
 * its cgroups, makes its namespaces and mounts and holds before exec, and
 * records it.  A failure there is
 * cleaned up as `delete --force` cleans up, and the command is handed to
 * Python, which does it again and says what failed in its words. */
#include "cli.h"
#include "cli_oci_create.h"
#include "compat.h"
#include "nscore.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ the plan, printed */

/* bytes outside 0x21-0x7e, and the backslash, as \xHH: as oci_print_steps */
static void print_text(FILE *f, const char *s)
{
    if (!s) {
        fputc('-', f);
        return;
    }
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (*c < 0x21 || *c > 0x7e || *c == '\\')
            fprintf(f, "\\x%02x", *c);
        else
            fputc(*c, f);
}

static void print_list(FILE *f, const char *name, char *const *v)
{
    fputs(name, f);
    for (; v && *v; v++) {
        fputc(' ', f);
        print_text(f, *v);
    }
    fputc('\n', f);
}

/* NSFAST_OCI_PLAN=1: what create would do, printed instead of done, in the
 * form tests/test_oci_create_c.py prints Python's plan */
static void print_plan(FILE *f, const struct oci_create_plan *p)
{
    const struct nsf_spawn *sp = &p->sp;
    fprintf(f, "rootfs ");
    print_text(f, p->rootfs);
    fprintf(f, "\nnew 0x%x\nhostname ", sp->new_kinds);
    print_text(f, sp->hostname);
    fprintf(f, "\ndomainname ");
    print_text(f, sp->domainname);
    for (int i = 0; i < sp->join.count; i++) {
        fprintf(f, "\njoin 0x%x ", sp->join.kinds[i]);
        print_text(f, p->join_paths[i]);
    }
    fprintf(f, "\npropagation 0x%lx\nids %ld %ld groups", sp->propagation, sp->uid, sp->gid);
    for (int i = 0; i < sp->n_groups; i++)
        fprintf(f, " %d", sp->groups[i]);
    fprintf(f, "\ncaps %d 0x%llx 0x%llx\nno_new_privs %d\ncwd ", sp->use_caps,
            (unsigned long long)sp->caps_keep, (unsigned long long)sp->caps_ambient,
            sp->no_new_privs);
    print_text(f, sp->cwd);
    fputc('\n', f);
    print_list(f, "argv", sp->argv);
    print_list(f, "env", sp->envp);
    print_list(f, "exec_paths", (char *const *)p->exec_paths);
    for (int i = 0; i < p->n_ops; i++) {
        const struct nsf_op *op = &p->ops[i];
        if (op->step == NSF_STEP_UMASK)
            fprintf(f, "umask 0%llo\n", (unsigned long long)op->a);
        if (op->step == NSF_STEP_SECCOMP) {
            fprintf(f, "seccomp %lld ", (long long)op->a);
            for (size_t k = 0; k < p->bpf_len; k++)
                fprintf(f, "%02x", p->bpf[k]);
            fputc('\n', f);
        }
    }
    for (int i = 0; i < p->n_rlimits; i++)
        fprintf(f, "rlimit %d %llu %llu\n", p->rlimits[i].resource, p->rlimits[i].soft,
                p->rlimits[i].hard);
    if (p->has_oom_score_adj)
        fprintf(f, "oom_score_adj %d\n", p->oom_score_adj);
    fprintf(f, "cgroups_path ");
    print_text(f, p->cgroups_path);
    fputc('\n', f);
    oci_print_steps(f, &p->steps);
}

/* ------------------------------------------------------------ making it */

/* now as runc writes times (state.py timestamp()) */
static void timestamp(char *out, size_t size)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, size - n, ".%06ldZ", ts.tv_nsec / 1000);
}

/* a whole file, written under NAME.tmp and renamed into place */
static int replace_file(const struct oci_container *c, const char *name, const char *text)
{
    char path[PATH_MAX], tmp[PATH_MAX], tmp_name[64];
    snprintf(tmp_name, sizeof tmp_name, "%s.tmp", name);
    oci_file(c, name, path, sizeof path);
    int fd = open(oci_file(c, tmp_name, tmp, sizeof tmp),
                  O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    size_t len = strlen(text), done = 0;
    while (done < len) {
        ssize_t n = write(fd, text + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            return -e;
        }
        done += (size_t)n;
    }
    return close(fd) < 0 || rename(tmp, path) < 0 ? -errno : 0;
}

/* state.json: the fields of the spec's state that do not change */
static int save_public(const struct oci_container *c, const struct oci_create_plan *p)
{
    char created[64];
    timestamp(created, sizeof created);
    struct json_object *o = json_object_new_object();
    if (!o)
        return -ENOMEM;
    json_object_object_add(o, "bundle", json_object_new_string(p->bundle));
    json_object_object_add(o, "rootfs", json_object_new_string(p->rootfs));
    json_object_object_add(o, "created", json_object_new_string(created));
    json_object_object_add(o, "owner", json_object_new_string(""));
    json_object_object_add(o, "annotations", p->annotations ? json_object_get(p->annotations)
                                                            : json_object_new_object());
    const char *text = json_object_to_json_string_ext(
        o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
    int r = text ? replace_file(c, "state.json", text) : -ENOMEM;
    json_object_put(o);
    return r;
}

int oci_write_pid_file(const char *path, pid_t pid)
{
    char tmp[PATH_MAX + 32], text[32];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid()) >= sizeof tmp)
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int n = snprintf(text, sizeof text, "%d", (int)pid);
    if (write(fd, text, (size_t)n) != n || close(fd) < 0 || rename(tmp, path) < 0)
        return -errno;
    return 0;
}

/* The child's ready byte, with its pid (as seen here) from SCM_CREDENTIALS:
 * the process that will exec, also after a fork into a pid namespace.
 * The pid, or 0 at end of file (the child failed). */
pid_t oci_wait_held(int sock)
{
    char byte = 0;
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(struct ucred))];
    } control;
    struct iovec iov = {&byte, 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                         .msg_controllen = sizeof control.buf};
    ssize_t n;
    do
        n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n != 1 || byte != 'r')
        return 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_CREDENTIALS) {
            struct ucred cred;
            memcpy(&cred, CMSG_DATA(cm), sizeof cred);
            return cred.pid;
        }
    return 0;
}

/* process.terminal: a new pty whose slave becomes the container's std
 * streams and its new session's controlling terminal; the master, for the
 * console socket, in *master.  Both ends CLOEXEC here.  0 or -1. */
int oci_open_terminal(struct nsf_spawn *sp, int *master)
{
    char name[64];
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, name, sizeof name) != 0)
        return -1;
    int slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0)
        return -1;
    *master = m;
    sp->std_fds[0] = sp->std_fds[1] = sp->std_fds[2] = slave;
    sp->new_session = sp->controlling_tty = 1;
    return 0;
}

/* The pty's master to the console socket over SCM_RIGHTS, as runc sends it
 * (runtime.py _send_console).  0 or -1. */
int oci_send_console(const char *path, int master)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof addr.sun_path)
        return -1;
    strcpy(addr.sun_path, path);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&addr, sizeof addr) < 0) {
        if (s >= 0)
            close(s);
        return -1;
    }
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } control;
    char data[] = "/dev/ptmx";
    struct iovec iov = {data, sizeof data - 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                         .msg_controllen = sizeof control.buf};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &master, sizeof master);
    ssize_t n = sendmsg(s, &msg, MSG_NOSIGNAL);
    close(s);
    return n == (ssize_t)iov.iov_len ? 0 : -1;
}

pid_t oci_spawn_held(struct oci_create_plan *p, const struct oci_container *c, int go,
                     struct nsf_spawn_state *st)
{
    char path[PATH_MAX];
    int procs[OCI_MAX_CGROUPS], sv[2], keep[2], opened = 0;
    /* the child joins the cgroups itself, first thing (v1 has no
     * CLONE_INTO_CGROUP): it never runs outside them */
    for (; opened < c->n_cgroups; opened++) {
        snprintf(path, sizeof path, "%s/cgroup.procs", c->cgroups[opened].path);
        if ((procs[opened] = open(path, O_WRONLY | O_CLOEXEC)) < 0)
            break;
    }
    int ok = opened == c->n_cgroups &&
             socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0;
    if (ok && setsockopt(sv[0], SOL_SOCKET, SO_PASSCRED, &(int){1}, sizeof(int)) < 0) {
        close(sv[0]);
        close(sv[1]);
        ok = 0;
    }
    if (ok) {
        p->ops[p->n_ops++] = (struct nsf_op){.step = NSF_STEP_HOLD, .a = sv[1], .b = go};
        keep[0] = sv[1] < go ? sv[1] : go;
        keep[1] = sv[1] < go ? go : sv[1];
        p->sp.keep_fds = keep;
        p->sp.n_keep_fds = 2;
        p->sp.cgroup_procs_fds = procs;
        p->sp.n_cgroup_procs = c->n_cgroups;
        p->sp.ops = p->ops;
        p->sp.n_ops = p->n_ops;
        ok = nsf_spawn_clone(&p->sp, st) == 0;
        close(sv[1]);   /* the child's copy alone now: its end is our end of file */
    }
    for (int i = 0; i < opened; i++)
        close(procs[i]);
    if (!ok)
        return 0;
    pid_t pid = oci_wait_held(sv[0]);
    close(sv[0]);
    if (!pid) {
        struct nsf_record rec;
        int status;
        nsf_spawn_finish(st, &rec, &status);   /* reaps it */
    }
    return pid;
}

/* Undo what create made, as Python's create does on failure (delete
 * --force), and let Python's create run the command line. */
static int undo(const char *root, const char *id, int *lock_fd)
{
    static struct oci_container again;
    if (*lock_fd >= 0)
        close(*lock_fd);
    *lock_fd = -1;
    oci_load(&again, root, id);
    oci_delete(&again, 1);
    return OCI_FALLBACK;
}

static int mkdir_parents(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    if ((size_t)snprintf(buf, sizeof buf, "%s", path) >= sizeof buf)
        return -1;
    for (char *s = buf + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            if (mkdir(buf, mode) < 0 && errno != EEXIST)
                return -1;
            *s = '/';
        }
    return mkdir(buf, mode) < 0 && errno != EEXIST ? -1 : 0;
}

static int make(struct oci_create_plan *p, const char *root)
{
    static struct oci_container c;
    static struct nsf_spawn_state st;
    char dir[PATH_MAX], path[PATH_MAX], err[1024];
    int lock_fd = -1, go = -1, master = -1;
    if ((size_t)snprintf(dir, sizeof dir, "%s/%s", root, p->id) >= sizeof dir ||
        mkdir_parents(root, 0700) < 0 || mkdir(dir, 0700) < 0)
        return OCI_FALLBACK;   /* it exists already, or root is unusable: Python says so */
    oci_load(&c, root, p->id);
    lock_fd = open(oci_file(&c, "lock", path, sizeof path), O_RDWR | O_CREAT | O_CLOEXEC,
                   0600);
    if (lock_fd < 0 || flock(lock_fd, LOCK_EX) < 0 || save_public(&c, p) < 0 ||
        oci_save_state(&c) < 0)
        return undo(root, p->id, &lock_fd);
    if (oci_cgroup_make(root, p->cgroups_path, p->resources, p->hier, p->n_hier, &c, err,
                        sizeof err) < 0 || oci_save_state(&c) < 0)
        return undo(root, p->id, &lock_fd);
    /* exec.fifo: the child blocks reading it until start writes a byte */
    if (mkfifo(oci_file(&c, "exec.fifo", path, sizeof path), 0600) < 0 ||
        (go = open(path, O_RDWR | O_CLOEXEC)) < 0 ||
        (p->terminal && oci_open_terminal(&p->sp, &master) < 0))
        return undo(root, p->id, &lock_fd);
    p->sp.mounts = p->steps.v;
    p->sp.n_mounts = p->steps.n;
    pid_t pid = oci_spawn_held(p, &c, go, &st);
    if (!pid)
        return undo(root, p->id, &lock_fd);
    int failed = 0;
    for (int i = 0; i < p->n_rlimits && !failed; i++) {
        struct rlimit lim = {p->rlimits[i].soft, p->rlimits[i].hard};
        failed = prlimit(pid, p->rlimits[i].resource, &lim, NULL) < 0;
    }
    if (p->has_oom_score_adj && !failed) {
        char text[16];
        int n = snprintf(text, sizeof text, "%d", p->oom_score_adj);
        failed = nsf_proc_write(pid, "oom_score_adj", text, (size_t)n) < 0;
    }
    c.pid = pid;
    c.start_time = oci_start_time(pid);
    if (failed || !c.start_time || oci_save_state(&c) < 0 ||
        (p->pid_file && oci_write_pid_file(p->pid_file, pid) < 0) ||
        (master >= 0 && oci_send_console(p->console_socket, master) < 0)) {
        kill(pid, SIGKILL);   /* held, so still ours: it waits on our fifo */
        return undo(root, p->id, &lock_fd);
    }
    close(lock_fd);
    return 0;
}

int oci_create(const char *root, int argc, char **argv)
{
    static struct oci_create_plan plan;
    struct oci_create_plan *p = &plan;
    const char *which = getenv("NSFAST_RUNTIME_CREATE");
    if (which && strcmp(which, "python") == 0)
        return OCI_FALLBACK;   /* the reference, for tests side by side */
    if (oci_create_plan(p, argc, argv))
        return OCI_FALLBACK;
    const char *dry = getenv("NSFAST_OCI_PLAN");
    if (dry && strcmp(dry, "1") == 0) {
        print_plan(stdout, p);
        fflush(stdout);
        _exit(0);
    }
    if (make(p, root))
        return OCI_FALLBACK;
    /* the held child runs on memory this process shares with it (its
     * plan, its stack): leave without exit()'s handlers */
    fflush(NULL);
    _exit(0);
}
