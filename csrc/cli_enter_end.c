/* The end of `nsfast enter`: the exit status the program leaves, and the
 * message for a child that failed before exec, worded as the Python command
 * this replaced worded them (spawn.py's _failure_to_error). */
#include "cli.h"
#include "compat.h"
#include "nscore.h"
#include "spawn.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* The child's failure, worded from the step table (spawn_child.c) as
 * nsfast.spawn words it; the exit status. */
int nsf_enter_report(const struct nsf_enter_plan *r, const struct nsf_record *rec)
{
    const char *prog = r->prog, *err = strerror(rec->err);
    const struct nsf_step_info *info = nsf_step_row(rec->step);
    char subject[128] = "";
    switch (rec->step) {
    case NSF_STEP_EXEC:
        if (rec->err == ENOENT || rec->err == EACCES) {
            nsf_cli_say(prog, "failed to execute %s: %s", r->program, err);
            return rec->err == ENOENT ? 127 : 126;
        }
        snprintf(subject, sizeof subject, "%s", r->program);
        break;
    case NSF_STEP_JOIN: {
        int mask = rec->index ? rec->index : r->joined;
        for (int k = 0; k < NSF_KINDS; k++) {
            if (!(mask & nsf_kinds[k].flag))
                continue;
            if (subject[0])
                strcat(subject, ",");
            strcat(subject, nsf_kinds[k].proc);
        }
        if (!subject[0])
            strcpy(subject, "?");
        break;
    }
    case NSF_STEP_ROOT:
        snprintf(subject, sizeof subject, "%s", r->root);
        break;
    case NSF_STEP_CWD:
        snprintf(subject, sizeof subject, "%s", r->cwd);
        break;
    case NSF_STEP_GROUPS:
        strcpy(subject, "[]");
        break;
    case NSF_STEP_SETGID:
        snprintf(subject, sizeof subject, "%lld", r->gid);
        break;
    case NSF_STEP_SETUID:
        snprintf(subject, sizeof subject, "%lld", r->uid);
        break;
    }
    if (!info)
        nsf_cli_die(prog, "child step %d: %s", rec->step, err);
    if (!info->what)
        nsf_cli_die(prog, "%s: %s", subject, err);
    char what[256];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    snprintf(what, sizeof what, info->what, subject);
#pragma GCC diagnostic pop
    if (info->hint && info->hint_errno == rec->err)
        nsf_cli_die(prog, "%s: %s (hint: %s)", what, err, info->hint);
    nsf_cli_die(prog, "%s: %s", what, err);
}

static int forward_pidfd = -1;
static pid_t forward_pid;

static void forward(int sig)
{
    int saved = errno;
    if (forward_pidfd >= 0)
        nsf_pidfd_send_signal(forward_pidfd, sig);
    else
        kill(forward_pid, sig); /* our own child: its pid cannot be reused unwaited */
    errno = saved;
}

/* Wait for the program.  The terminal's ^C and ^\ reach it directly; a
 * TERM, HUP, USR1 or USR2 sent to us is passed on, so that we leave with its
 * status: the program's, or 128+N for a signal N. */
int nsf_enter_wait(const char *prog, int pidfd, pid_t pid)
{
    static const int passed[] = {SIGTERM, SIGHUP, SIGUSR1, SIGUSR2};
    struct sigaction sa = {0};
    siginfo_t info = {0};

    forward_pidfd = pidfd;
    forward_pid = pid;
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    sa.sa_handler = forward;
    sa.sa_flags = SA_RESTART;
    for (unsigned i = 0; i < sizeof passed / sizeof passed[0]; i++)
        sigaction(passed[i], &sa, 0);
    idtype_t by = pidfd >= 0 ? (idtype_t)P_PIDFD : P_PID;
    while (waitid(by, pidfd >= 0 ? (id_t)pidfd : (id_t)pid, &info, WEXITED) < 0)
        if (errno != EINTR)
            nsf_cli_die(prog, "waiting for the program: %s", strerror(errno));
    return info.si_code == CLD_EXITED ? info.si_status : 128 + info.si_status;
}
