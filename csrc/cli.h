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
    char **program;                 /* NULL-terminated, maybe empty */
};

/* What nsf_enter_run chose, for the messages about a child that failed. */
struct nsf_enter_plan {
    const char *prog;
    const char *program;            /* what is exec'd: argv[0], or the shell */
    const char *root, *cwd;         /* the directories asked for, or NULL */
    char root_path[64], cwd_path[64];
    int joined;                     /* CLONE_NEW* of every kind joined */
    long long uid, gid;             /* after the user namespace defaults */
};

/* `nsfast enter ARGS`: argv[0] is "enter" or "nsenter".  Returns the exit
 * status (the program's, 128+N for signal N, 1 for an error). */
int nsf_enter_main(int argc, char **argv);
/* Join, exec and wait for the program; the exit status. */
int nsf_enter_run(struct nsf_enter_opts *o);

struct nsf_record;
/* A failure the spawn child reported, as one line; the exit status (127 or
 * 126 for a program that cannot be executed, else 1). */
int nsf_enter_report(const struct nsf_enter_plan *p, const struct nsf_record *rec);
/* Wait for the program, passing TERM/HUP/USR1/USR2 on; its exit status. */
int nsf_enter_wait(const char *prog, int pidfd, pid_t pid);

#endif
