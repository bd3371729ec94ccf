/* Floor of the curves module's anchor case: spawn+exec+wait of a program in C,
 * the way nsfast's CLONE_VM path does it (vfork shares the memory, so its cost
 * does not grow with the caller's size).  Usage: floor_curves N|serve PROGRAM
 * (serve: floor_common.h) */
#include "floor_common.h"

#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static long long spawn_one(void *ctx)
{
    char **child_argv = ctx;
    long long t0 = floor_now_ns();
    pid_t pid = vfork();
    if (pid < 0)
        floor_die("vfork");
    if (pid == 0) {
        execve(child_argv[0], child_argv, environ);
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) < 0)
        floor_die("waitpid");
    long long dt = floor_now_ns() - t0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "%s exited with status %#x\n", child_argv[0], status);
        exit(1);
    }
    return dt;
}

int main(int argc, char **argv)
{
    int n = floor_count(argc, argv);
    if (argc < 3) {
        fprintf(stderr, "usage: %s N|serve PROGRAM\n", argv[0]);
        return 2;
    }
    char *child_argv[] = {argv[2], NULL};
    return floor_emit(n, spawn_one, child_argv);
}
