/* nsfast-runtime's C commands (csrc/cli_oci*.c): what the OCI runtime's
 * frequent calls need, shared between the command line (cli_oci.c), the
 * container's state directory (cli_oci_state.c) and its cgroups
 * (cli_oci_cgroup.c). */
#ifndef NSFAST_CLI_OCI_H
#define NSFAST_CLI_OCI_H

#include <limits.h>
#include <sys/types.h>

#define OCI_PROG "nsfast-runtime"
#define OCI_VERSION "1.0.2"
#define OCI_MAX_CGROUPS 32

/* Print the error as one line on stderr and into --log (in the shim's
 * format), then exit status 1, as runc does. */
__attribute__((noreturn, format(printf, 1, 2))) void oci_fail(const char *fmt, ...);

/* One container's directory ROOT/ID and its fixed-form `state` file, which
 * nsfast/oci/state.py writes (see its docstring for the format). */
struct oci_container {
    const char *root, *id;
    char dir[PATH_MAX];
    int exists;                     /* the state file is there */
    pid_t pid;                      /* 0 while creating */
    unsigned long long start_time;  /* field 22 of /proc/PID/stat at create */
    int n_cgroups;
    struct {
        char name[128];             /* "memory", "cpu,cpuacct", "unified", ... */
        char path[PATH_MAX];
    } cgroups[OCI_MAX_CGROUPS];
    char hooks[256];                /* " KIND KIND ": the hook kinds it has */
    int lock_fd;
};

/* Whether id is a usable directory name (runc's rule); oci_check_id exits
 * 1 with the error when it is not. */
int oci_id_ok(const char *id);
void oci_check_id(const char *id);
/* Read ROOT/ID/state into c (c->exists 0 when it is not there). */
void oci_load(struct oci_container *c, const char *root, const char *id);
/* Take the container's lock (blocking): commands that change it run one at a
 * time; then read its state anew.  0 when a delete has removed it meanwhile. */
int oci_lock(struct oci_container *c);
/* creating, created, running, paused or stopped, as the runtime spec names them. */
const char *oci_status(const struct oci_container *c);
/* Whether the container's process still runs (the same one: its start time). */
int oci_alive(const struct oci_container *c);
/* The start time of pid, 0 when it is gone or a zombie. */
unsigned long long oci_start_time(pid_t pid);
/* Whether the container has hooks of this kind (poststart, ...). */
int oci_has_hooks(const struct oci_container *c, const char *kind);
/* Write ROOT/ID/state from c (pid and start_time when pid is set, the
 * cgroups, the hook kinds), whole, renamed into place.  0 or -errno. */
int oci_save_state(const struct oci_container *c);
/* Remove ROOT/ID and the files the runtime keeps in it. */
void oci_remove_dir(const struct oci_container *c);
/* path of a file in the container's directory */
const char *oci_file(const struct oci_container *c, const char *name, char *buf, size_t size);

/* delete [--force]: kill what runs, remove the cgroups and the directory
 * (cli_oci.c) */
void oci_delete(struct oci_container *c, int force);
/* create (cli_oci_create.c): 0 when done, OCI_FALLBACK when Python's create
 * is to run the command line instead */
int oci_create(const char *root, int argc, char **argv);
/* exec (cli_oci_exec.c): exits with the process's status (0 detached), or
 * returns OCI_FALLBACK when Python's exec is to run the command line */
int oci_exec(const char *root, int argc, char **argv);

/* cli_oci_cgroup.c */
/* Whether a hierarchy's name ("cpu,cpuacct") has controller ("cpu"). */
int oci_cgroup_has(const char *name, const char *controller);
/* The cgroup directory of the hierarchy that has controller, or NULL. */
const char *oci_cgroup_dir(const struct oci_container *c, const char *controller);
/* The pids in the container's cgroup (of the first hierarchy that has the
 * freezer, pids, memory or v2), into pids; how many (at most max). */
int oci_cgroup_pids(const struct oci_container *c, pid_t *pids, int max);
/* Whether the v1 freezer holds the container frozen. */
int oci_frozen(const struct oci_container *c);
/* The freezer to FROZEN (on) or THAWED, waiting for FREEZING to end (nothing
 * without a freezer hierarchy). */
void oci_freeze(const struct oci_container *c, int on);
/* sig to every process in the container's cgroup (frozen meanwhile for SIGKILL). */
void oci_signal_all(const struct oci_container *c, int sig);
/* Kill what is left in the cgroups and remove them (deepest first). */
void oci_cgroup_remove(const struct oci_container *c);
/* Remove the parent cgroups the runtime made (ROOT/cgroup-parents) that no
 * container uses any more. */
void oci_sweep_parents(const char *root);
/* ROOT/cgroup-parents open and flock'ed, the file still at path (the last
 * holder unlinks it when its list is empty, as cgroup.Parents does); the
 * fd, or -1 with errno.  Unlock: close it, unlinking the file if empty. */
int oci_parents_lock(const char *path);
void oci_parents_unlock(int fd, const char *path);

#endif
