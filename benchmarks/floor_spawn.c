/* The C floor of spawn-and-wait: what nsfast.spawn does, with nothing else.
 *
 *   floor_spawn N|serve CLONE_FLAGS UNSHARE_FLAGS MAP_ROOT
 *
 * Each sample: clone(CLONE_VM | CLONE_PIDFD | CLONE_FLAGS) onto a child stack;
 * with MAP_ROOT the child waits on a pipe while the parent writes uid_map,
 * setgroups and gid_map into /proc/<pid>/ (uid 0 -> our uid); the child runs
 * unshare(UNSHARE_FLAGS) (a time namespace: offsets go in before it is used),
 * makes / private recursively in a new mount namespace (nsfast's default)
 * and execs /bin/true with this environment (nsfast.spawn passes the
 * caller's by default, and ld.so's start-up cost depends on it); the parent
 * reads the CLOEXEC error pipe to EOF and waits.  As nsfast, the parent blocks
 * signals around the clone and the child resets every disposition, unblocks
 * and closes the fds above 2 before exec: the same work, done from C.
 * Prints N samples in ns, or serves them one at a time (floor_common.h). */
#include "floor_common.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

#define STACK_SIZE (64 * 1024)

struct child_args {
    int sync_r, sync_w, err_w;
    int unshare_flags;
    int private_root;
    char *const *argv;
};

/* What any correct spawner does between clone and exec, as nsfast's child
 * does: no handler of the parent may survive, no signal stays blocked, no fd
 * but 0-2 (and the CLOEXEC error pipe) leaks into the program. */
static void child_hygiene(int err_w)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < 65; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &dfl, 0);
    if (err_w > 3)
        syscall(SYS_close_range, 3, err_w - 1, 0);
    syscall(SYS_close_range, err_w + 1, ~0U, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, 0);
}

static int child(void *p)
{
    struct child_args *a = p;
    char byte;
    if (a->sync_r >= 0) {
        close(a->sync_w);
        if (read(a->sync_r, &byte, 1) != 1)
            _exit(127);
    }
    if (a->unshare_flags && unshare(a->unshare_flags) < 0)
        goto fail;
    /* as nsfast (and unshare(1)) by default: a new mount namespace gets a
     * private / so that nothing propagates back */
    if (a->private_root && mount("none", "/", 0, MS_REC | MS_PRIVATE, 0) < 0)
        goto fail;
    child_hygiene(a->err_w);
    execve("/bin/true", a->argv, environ);
fail:;
    int e = errno;
    if (write(a->err_w, &e, sizeof e) < 0)
        _exit(126);
    _exit(127);
}

static void write_file(pid_t pid, const char *name, const char *text)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, name);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        floor_die(path);
    if (write(fd, text, strlen(text)) != (ssize_t)strlen(text))
        floor_die(path);
    close(fd);
}

struct floor_spawn {
    int clone_flags, unshare_flags, map_root;
    char uid_map[64], gid_map[64];
    char *const *argv;
    char *stack;
};

static long long spawn_one(void *p)
{
    struct floor_spawn *f = p;
    long long t0 = floor_now_ns();
    int errp[2], syncp[2] = {-1, -1}, pidfd = -1;
    if (pipe2(errp, O_CLOEXEC) < 0 || (f->map_root && pipe2(syncp, O_CLOEXEC) < 0))
        floor_die("pipe2");
    struct child_args a = {syncp[0], syncp[1], errp[1], f->unshare_flags,
                           (f->clone_flags & CLONE_NEWNS) != 0, f->argv};
    /* as nsfast: nothing of ours may run in the child sharing our memory */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = clone(child, f->stack + STACK_SIZE,
                      CLONE_VM | CLONE_PIDFD | f->clone_flags | SIGCHLD, &a, &pidfd);
    pthread_sigmask(SIG_SETMASK, &old, 0);
    if (pid < 0)
        floor_die("clone");
    close(errp[1]);
    if (f->map_root) {
        close(syncp[0]);
        write_file(pid, "uid_map", f->uid_map);
        write_file(pid, "setgroups", "deny");
        write_file(pid, "gid_map", f->gid_map);
        if (write(syncp[1], "x", 1) != 1)
            floor_die("release");
        close(syncp[1]);
    }
    int err = 0;
    if (read(errp[0], &err, sizeof err) > 0) {
        errno = err;
        floor_die("child");
    }
    close(errp[0]);
    int status;
    if (waitpid(pid, &status, 0) < 0 || status != 0)
        floor_die("waitpid");
    close(pidfd);
    return floor_now_ns() - t0;
}

int main(int argc, char **argv)
{
    int n = floor_count(argc, argv);
    if (argc < 5) {
        fprintf(stderr, "usage: %s N|serve CLONE_FLAGS UNSHARE_FLAGS MAP_ROOT\n", argv[0]);
        return 2;
    }
    static char *const child_argv[] = {"true", NULL};
    /* static: an in-process floor samples after main returns */
    static struct floor_spawn f;
    f = (struct floor_spawn){
        .clone_flags = (int)strtol(argv[2], 0, 0),
        .unshare_flags = (int)strtol(argv[3], 0, 0),
        .map_root = atoi(argv[4]),
        .argv = child_argv,
    };
    snprintf(f.uid_map, sizeof f.uid_map, "0 %d 1\n", (int)geteuid());
    snprintf(f.gid_map, sizeof f.gid_map, "0 %d 1\n", (int)getegid());
    static char *stack;   /* one for the life of the process, prepared again or not */
    if (!stack) {
        stack = mmap(0, STACK_SIZE, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (stack == MAP_FAILED) {
            stack = 0;
            floor_die("mmap");
        }
    }
    f.stack = stack;
    return floor_emit(n, spawn_one, &f);
}
