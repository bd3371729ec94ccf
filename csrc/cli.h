/* The nsfast command (csrc/cli_*.c): a C launcher, so that `nsfast enter`
 * starts as fast as nsenter(1); every other sub-command is handed to Python. */
#ifndef NSFAST_CLI_H
#define NSFAST_CLI_H

#include <stdarg.h>
#include <sys/types.h>

#include "kinds.h"

/* Print `prog: message` on stderr as one line (whitespace runs, newlines
 * included, become one space, as the Python commands print them). */
void nsf_cli_say(const char *prog, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The same, then exit status 1. */
__attribute__((noreturn)) void nsf_cli_die(const char *prog, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* text as one line into line: runs of white space, newlines included, become
 * one space (what nsf_cli_say prints). */
void nsf_cli_one_line(const char *text, char *line, size_t size);
/* A decimal 0..2^32-1, or exit 1 with "failed to parse WHAT: 'TEXT'". */
long long nsf_cli_u32(const char *prog, const char *text, const char *what);
/* Write text to path in one write(2) (a /proc map file takes one), or exit 1. */
void nsf_cli_write_file(const char *prog, const char *path, const char *text);
/* The whole of what fd (or the file at path) reads until its end, malloc'd
 * and NUL-terminated, its length in *len (if given); NULL with errno. */
char *nsf_read_fd(int fd, size_t *len);
char *nsf_read_file(const char *path, size_t *len);
/* The id our network namespace gives the one fd refers to (RTM_GETNSID on the
 * NETLINK_ROUTE socket sock); -1 when unassigned or not told. */
int nsf_netnsid_of(int sock, int fd);

/* What `nsfast enter` was asked, as nsfast/cli/enter.py's Options were. */
struct nsf_enter_opts {
    const char *prog;               /* "nsfast enter" or "nsfast nsenter" */
    long long target;               /* -t, 0 when not given */
    int all;
    int n_ns;
    struct {
        int kind;                   /* index into nsf_kinds */
        const char *path;           /* =FILE, or NULL for the target's */
    } ns[NSF_KINDS];            /* in the order first given, as a dict keeps */
    long long uid, gid;             /* -S, -G; -1 when not given */
    int preserve_credentials;
    const char *root, *wd;          /* -r DIR, -w DIR, or NULL */
    int root_own, wd_own;           /* -r, -w without DIR: the target's */
    int fork;                       /* 0 with -F */
    const char *wdns;               /* -W DIR: a working directory inside */
    int net_socket;                 /* --net-socket FD of the target, or -1 */
    int keep_caps;
    char **program;                 /* NULL-terminated, maybe empty */
};

/* `nsfast enter ARGS`: argv[0] is "enter" or "nsenter".  Joins, then execs
 * the program in this process; returns only for an error (its status). */
int nsf_enter_main(int argc, char **argv);
__attribute__((noreturn)) int nsf_enter_run(struct nsf_enter_opts *o);

/* `nsfast unshare ARGS` (argv[0] "unshare"), or NSF_TO_PYTHON when an option
 * needs nsfast's Python (cgroup limits, persisting, mounts, an init). */
#define NSF_TO_PYTHON (-1000)
int nsf_unshare_main(int argc, char **argv);
/* `nsfast netns exec NAME PROGRAM...` (argv[0] "exec") */
int nsf_netns_exec_main(int argc, char **argv);
/* `nsfast netns add NAME`, `nsfast netns del|delete NAME...` (argv[0] the verb) */
int nsf_netns_add_main(int argc, char **argv);
/* `nsfast netns list`, `nsfast netns identify [PID]` (argv[0] the verb) */
int nsf_netns_list_main(int argc, char **argv);
/* What a killed add leaves at fd: an empty regular file, no namespace on it,
 * whose flock no add holds (csrc/cli_netns_add.c). */
int nsf_netns_file_is_stale(int fd);
/* `nsfast ls ARGS` (argv[0] "ls"): lsns(8)'s listing (csrc/cli_ls*.c) */
int nsf_ls_main(int argc, char **argv);
/* Exit 1 with nsfast.netns's message unless name is a usable netns name. */
void nsf_netns_check_name(const char *name);

/* Hand the command line (argv[0] aside) to nsfast's Python CLI:
 * `<python> -I -c <nsfast.cli.main> ARGS...`. */
__attribute__((noreturn)) void nsf_cli_run_python(int argc, char **argv);
/* cli_oci.c: nsfast-runtime, runc's command line (argv[0] "nsfast-runtime" or "oci"). */
int nsf_oci_main(int argc, char **argv);

/* cli_exec.c: exec program (NULL-terminated; empty or NULL: $SHELL, else
 * /bin/sh, as a login shell) in this process, searching PATH.  On failure
 * one line and exit status 127 (not found) or 126 (cannot execute). */
__attribute__((noreturn)) void nsf_cli_exec(const char *prog, char **program);
__attribute__((noreturn)) void nsf_cli_exec_failed(const char *prog, const char *program);
/* Leave as a child's wait status says: its exit code, or die of its signal. */
__attribute__((noreturn)) void nsf_cli_exit_as(const char *prog, int status);
/* Wait for our child pid, following it when it stops; its wait status. */
int nsf_cli_wait(const char *prog, pid_t pid);
/* fork: returns in the child; the parent waits and leaves as the child did. */
void nsf_cli_continue_as_child(const char *prog);

/* cli_idmap.c: ranges of ids for --map-users/--map-groups (INNER:OUTER:COUNT,
 * 2.38's OUTER,INNER,COUNT, or auto), and the helper process that writes them
 * into our maps after unshare(2): started before it, released after it. */
struct nsf_id_range {
    unsigned inner, outer, count;
};
#define NSF_MAX_RANGES 16
struct nsf_id_ranges {
    struct nsf_id_range r[NSF_MAX_RANGES];
    int n;
};
void nsf_ranges_add(struct nsf_id_ranges *m, const char *text, int group);
/* -r/-c/--map-user beside ranges: one more line, taken out of the ranges. */
void nsf_ranges_merge_single(struct nsf_id_ranges *m, long long single, unsigned ours);
/* The fd that releases the helper, or -1 when there are no ranges. */
int nsf_map_helper_start(const struct nsf_id_ranges *uids, const struct nsf_id_ranges *gids,
                         pid_t *helper);
void nsf_map_helper_release(int fd, pid_t helper);

/* cli_caps.c: raise every permitted capability into the ambient set, so
 * that the program keeps them across exec (--keep-caps). */
void nsf_cli_keep_caps(const char *prog);

#endif
