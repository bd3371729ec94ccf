/* The end of every drop-in command: exec the program in this very process,
 * as unshare(1), nsenter(1) and `ip netns exec` do, and the fork they make
 * where a namespace applies only to children.  Open fds without O_CLOEXEC
 * are the program's: nothing here closes them. */
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

void nsf_cli_exec(const char *prog, char **program)
{
    if (program && program[0]) {
        execvp(program[0], program);
        nsf_cli_exec_failed(prog, program[0]);
    }
    /* no program: the user's shell as a login shell ("-sh"), as exec_shell()
     * of util-linux starts it */
    const char *shell = getenv("SHELL");
    if (!shell || !*shell)
        shell = "/bin/sh";
    const char *base = strrchr(shell, '/');
    base = base ? base + 1 : shell;
    char *arg0;
    if (asprintf(&arg0, "-%s", base) < 0)
        nsf_cli_die(prog, "out of memory");
    execl(shell, arg0, (char *)0);
    nsf_cli_exec_failed(prog, shell);
}

void nsf_cli_exec_failed(const char *prog, const char *program)
{
    int e = errno;
    nsf_cli_say(prog, "failed to execute %s: %s", program, strerror(e));
    exit(e == ENOENT ? 127 : 126);
}

void nsf_cli_exit_as(const char *prog, int status)
{
    if (WIFEXITED(status))
        exit(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        sigset_t only;
        /* the program's core, if any, is the one that matters: none of ours */
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        signal(sig, SIG_DFL);
        sigemptyset(&only);
        sigaddset(&only, sig);
        sigprocmask(SIG_UNBLOCK, &only, 0);
        kill(getpid(), sig);
        /* a signal whose default is to be ignored cannot have killed it */
        nsf_cli_die(prog, "the program died of signal %d, which does not kill us", sig);
    }
    nsf_cli_die(prog, "the program ended with wait status %#x", status);
}

int nsf_cli_wait(const char *prog, pid_t pid)
{
    int status;
    for (;;) {
        pid_t r = waitpid(pid, &status, WUNTRACED);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            nsf_cli_die(prog, "waitpid failed: %s", strerror(errno));
        }
        if (!WIFSTOPPED(status))
            return status;
        /* the program was suspended (^Z): so are we, and we resume it */
        kill(getpid(), SIGSTOP);
        kill(pid, SIGCONT);
    }
}

void nsf_cli_continue_as_child(const char *prog)
{
    signal(SIGCHLD, SIG_DFL);
    pid_t pid = fork();
    if (pid < 0)
        nsf_cli_die(prog, "fork failed: %s", strerror(errno));
    if (pid == 0)
        return;
    nsf_cli_exit_as(prog, nsf_cli_wait(prog, pid));
}
