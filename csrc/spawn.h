/* The spawn path: clone a child with a private stack and CLONE_VM, let it set
 * up its namespaces and exec.  Everything the child reads lives in struct
 * nsf_spawn, filled in by the caller before the clone. */
#ifndef NSFAST_SPAWN_H
#define NSFAST_SPAWN_H

#include <stdint.h>
#include <sys/types.h>
#include "nscore.h"

/* Steps of a spawn, in the order the child runs them: each is one row of
 * the step table in spawn_child.c (its name, what it was doing for an error
 * message, a hint, its flags, and the function that runs it), which both
 * _core and the nsfast command read.  A failure is reported as {step,
 * errno, index}; index tells which mount, exec path, kind or op.
 *
 * A new step is: its enum line here, its row and function in spawn_child.c,
 * its option in nsfast/plan.py, which hands its values over as an
 * op (struct nsf_op) so that nothing in between changes. */
enum nsf_step {
    NSF_STEP_NONE = 0,
    /* before the parent's release */
    NSF_STEP_PDEATHSIG,
    NSF_STEP_CGROUP,        /* index = which of the cgroup files */
    NSF_STEP_JOIN,          /* index = kind that failed */
    NSF_STEP_UNSHARE,
    NSF_STEP_SYNC,          /* waiting for the parent's release */
    NSF_STEP_FORK,          /* second fork for a joined or unshared pid ns */
    /* after it, one row each, run in this order */
    NSF_STEP_IDS_EARLY,     /* ids from a new user namespace's maps */
    NSF_STEP_HOSTNAME,
    NSF_STEP_DOMAINNAME,
    NSF_STEP_PROPAGATION,
    NSF_STEP_SYSCTL,        /* op: s = a /proc/sys path, a = the number written */
    NSF_STEP_MOUNT,         /* index = position in the mount list */
    NSF_STEP_LOOPBACK,
    NSF_STEP_ROOT,
    NSF_STEP_MOUNT_PROC,    /* after a chroot: a path inside the new root */
    NSF_STEP_USER_LAST,     /* the user namespace, after the mounts (before the
                               fds step, which closes the sync pipe) */
    NSF_STEP_CWD,
    NSF_STEP_FDS,
    NSF_STEP_SETSID,
    NSF_STEP_CTTY,          /* stdin made the new session's controlling terminal */
    NSF_STEP_IDS,           /* ids given for joined namespaces (nsenter -S -G) */
    NSF_STEP_CAPS,
    NSF_STEP_NO_NEW_PRIVS,
    NSF_STEP_UMASK,         /* op: a = the mask */
    NSF_STEP_RLIMITS,       /* op each: a = resource, b = soft, c = hard (-1: infinity) */
    NSF_STEP_SECCOMP,       /* op: s = a BPF program of a instructions, installed
                               by before_exec as the last thing before exec */
    NSF_STEP_INIT,
    NSF_STEP_EXEC,          /* index = position in the exec path list */
    /* names only: what the two ids rows report */
    NSF_STEP_GROUPS,
    NSF_STEP_SETGID,
    NSF_STEP_SETUID,
    /* run by before_exec, after the signal mask and before seccomp */
    NSF_STEP_HOLD,          /* op: a = fd written one byte once the child is set
                               up (-1: none), b = fd read one byte from before it
                               execs (EOF: it exits); both closed then.  c = 1:
                               at a NSF_MOUNT_HOLD step instead, before the root
                               is entered; a and b stay open */
    NSF_STEP_COUNT,         /* not a step: how many there are */
    /* not failures: messages from the child */
    NSF_MSG_READY = 100,    /* child made its namespaces; parent may write maps */
    NSF_MSG_PID = 101,      /* value = pid of the grandchild that will exec */
};

/* A row of the step table, as the error messages need it. */
struct nsf_step_info {
    const char *name;       /* "join", "exec", ... */
    const char *what;       /* what it was doing: a printf format with at most one
                               %s, the subject; NULL: the subject is a path, and
                               the message is "subject: strerror" */
    int hint_errno;         /* the errno the hint is for, or 0 */
    const char *hint;
};

/* The row of a step, or NULL for a number that is no step. */
const struct nsf_step_info *nsf_step_row(int step);
/* Its name ("join", "exec", ...), or NULL. */
const char *nsf_step_name(int step);

/* A step's values when the step has no field of its own in struct nsf_spawn
 * (the steps added since the table): the row it belongs to and up to three
 * numbers and a string.  The child runs a row's ops in the order given. */
struct nsf_op {
    int32_t step;
    int32_t pad;
    int64_t a, b, c;
    const char *s;
};

struct nsf_record {
    int32_t step;
    int32_t err;
    int32_t index;
    int32_t value;
};

enum nsf_mount_kind {
    NSF_MOUNT_BIND = 1,     /* flags: MS_REC for recursive; then optional ro */
    NSF_MOUNT_TMPFS = 2,
    NSF_MOUNT_PROC = 3,
    NSF_MOUNT_MKDIR = 4,    /* make dst if missing */
    NSF_MOUNT_PIVOT = 5,    /* pivot_root into src, detach the old root;
                               flags: NSF_PIVOT_MOUNTED when src is a mount point */
    NSF_MOUNT_SYSFS = 6,
    NSF_MOUNT_FILE = 7,     /* make dst an empty file if missing (a bind target) */
    NSF_MOUNT_SYMLINK = 8,  /* a symlink dst -> src */
    NSF_MOUNT_FS = 9,       /* a new filesystem of type src (devpts, overlay)
                               on dst, data its options */
    NSF_MOUNT_NODE = 10,    /* mknod dst: flags its mode (type and permissions),
                               data "MAJOR MINOR UID GID" in decimal */
    NSF_MOUNT_HOLD = 11,    /* wait as the hold ops with c = 1 say */
};

#define NSF_PIVOT_MOUNTED 1

struct nsf_mount_step {
    int kind;
    int readonly;
    unsigned long flags;
    const char *src;
    const char *dst;
    const char *data;       /* tmpfs options */
};

struct nsf_spawn {
    /* exec */
    const char *const *exec_paths;   /* NULL-terminated candidates */
    char *const *argv;
    char *const *envp;
    const char *cwd;
    const char *root;                /* chroot, or NULL */
    /* namespaces: which to make and which to join; how is decided in one
     * place, nsf_spawn_clone (clone flags, unshare, a second fork) */
    int new_kinds;                   /* CLONE_NEW* to make */
    struct nsf_join join;
    int parent_hold;                 /* the parent writes maps or calls back while
                                        the child waits (then it must wait) */
    int no_pid_fork;                 /* a joined pid ns without the extra fork:
                                        only the program's children enter it */
    int user_last;                   /* the new user namespace last, after the
                                        mounts and all but the ids: the others
                                        are the caller's, so a mount namespace
                                        of the caller's (a template) can be
                                        joined and the payload owns none */
    /* uts */
    const char *hostname;
    const char *domainname;
    /* mounts */
    unsigned long propagation;       /* MS_PRIVATE etc. | MS_REC, 0 = unchanged */
    const struct nsf_mount_step *mounts;
    int n_mounts;
    const char *proc_target;         /* mount a fresh proc here, or NULL */
    int loopback_up;
    /* fds */
    int std_fds[3];                  /* -1 = keep as is */
    const int *keep_fds;             /* sorted, made inheritable */
    int n_keep_fds;
    int max_fd;                      /* for the close loop without close_range */
    /* process */
    int new_session;
    int controlling_tty;             /* stdin, a tty, made the new session's */
    int pdeathsig;
    pid_t parent_pid;
    int no_new_privs;
    int use_caps;
    uint64_t caps_keep;              /* bitmask of capabilities to keep */
    uint64_t caps_ambient;           /* of those, raised into the ambient set */
    int init;                        /* exec the init program as pid 1 */
    int init_fd;                     /* that program (a sealed memfd), or -1 */
    int ids_early;                   /* take uid/gid before the mounts: they come
                                        from a new user namespace's maps */
    const struct nsf_op *ops;        /* values of the steps without a field */
    int n_ops;
    /* clone */
    int cgroup_fd;                   /* CLONE_INTO_CGROUP, or -1 */
    int user_fd;                     /* user_last: join this user namespace (its
                                        maps are written) instead of a new one */
    const int *cgroup_procs_fds;     /* the child writes "0" into each: the
                                        cgroups it joins itself, first thing */
    int n_cgroup_procs;
    int use_clone3;
    /* credentials and directories after joining (nsenter -S -G -r -w) */
    int n_groups;                    /* -1 = keep; else setgroups(n_groups, groups) */
    const int *groups;
    int groups_best_effort;          /* ignore a refusal: the groups were cleared
                                        before a user namespace was joined */
    long gid;                        /* setgid after the groups, -1 = keep */
    long uid;                        /* setuid last, -1 = keep */
    int root_fd;                     /* chroot into this directory fd, or -1 */
    int cwd_fd;                      /* fchdir to this directory fd, or -1 */
};

/* What the child reads: set before the clone and never written after it,
 * since the parent goes on running while the child uses it. */
struct nsf_child_ctx {
    const struct nsf_spawn *sp;
    /* the namespace rules, derived from sp by nsf_spawn_clone */
    int clone_flags;                 /* CLONE_NEW* made by the clone itself */
    int unshare_flags;               /* made by unshare() in the child */
    int fork_after;                  /* pid or time ns joined or unshared: fork again */
    int need_ready;                  /* send NSF_MSG_READY before waiting */
    int need_sync;                   /* wait for the parent's release byte */
    int user_last;                   /* sp->user_last: the ready message and the
                                        release wait for the user namespace */
    int late_unshare;                /* made after the release: a cgroup namespace
                                        whose root is the cgroup the parent put
                                        the child in while it waited */
    int errpipe_w;
    int sync_r;
    int sync_w;                      /* the child closes its copy */
    int parent_pidfd;                /* the caller, to see that it is alive, or -1 */
    int own_mm;                      /* cloned without CLONE_VM: joins a user or
                                        pid namespace that others live in */
    int restore_dumpable;            /* after changing ids in the caller's mm: the
                                        caller's dumpable flag to put back, or -1 */
    int sighand_cleared;             /* CLONE_CLEAR_SIGHAND did the reset */
    int use_clone3;                  /* for the child's own clones */
    uint64_t sigmask;                /* the caller's mask, restored before exec */
    char *const *init_argv;          /* nsfast-init ERRFD NCAND CANDIDATES... ARGV... */
    void *stack2;                    /* grandchild of a fork step */
    size_t one_stack;
};

/* Parent-side state of one spawn. */
struct nsf_spawn_state {
    pid_t pid;                       /* the child we wait for */
    pid_t first_pid;                 /* the clone child (differs after a fork step) */
    int pidfd;
    int errpipe_r;
    int sync_w;
    int exit_signal;                 /* SIGCHLD, or 0 when the caller ignores it */
    int dumpable_held;               /* counted in the caller's dumpable guard */
    char **init_argv;                /* malloc'd for an init, freed at the end */
    char init_errfd[16];             /* its text fields */
    char init_ncand[16];
    void *stack;                     /* one mapping, two stacks */
    size_t stack_size;
    struct nsf_child_ctx ctx;
};

/* Clone the child.  Returns 0 or -errno. */
int nsf_spawn_clone(const struct nsf_spawn *sp, struct nsf_spawn_state *st);
/* Wait for the child's READY message (at once when it sends none).  0,
 * -errno, or 1 with *rec filled when the child failed instead. */
int nsf_spawn_wait_ready(struct nsf_spawn_state *st, struct nsf_record *rec);
/* Write text into /proc/<pid>/<name> in one write.  0 or -errno. */
int nsf_proc_write(pid_t pid, const char *name, const char *text, size_t len);
/* Let the child go on (nothing to do when it does not wait).  0 or -errno. */
int nsf_spawn_release(struct nsf_spawn_state *st);
/* Read the child's report until EOF.  0 = exec happened; 1 = *rec holds the
 * failure (the child is reaped, *status has its wait status).  */
int nsf_spawn_finish(struct nsf_spawn_state *st, struct nsf_record *rec, int *status);
/* Kill and reap the child after a parent-side failure; close everything. */
void nsf_spawn_abort(struct nsf_spawn_state *st);
/* Release the child stack once no child runs on it. */
void nsf_spawn_free_stack(struct nsf_spawn_state *st);

#endif
