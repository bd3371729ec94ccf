/* Floor of the curves module's anchor case: spawn+exec+wait of a program in C,
 * the way nsfast's CLONE_VM path does it (vfork shares the memory, so its cost
 * does not grow with the caller's size).  Usage: floor_curves N PROGRAM */
#include "floor_common.h"

#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int n = floor_count(argc, argv);
    if (argc < 3) {
        fprintf(stderr, "usage: %s N PROGRAM\n", argv[0]);
        return 2;
    }
    char *child_argv[] = {argv[2], NULL};
    extern char **environ;
    long long *out = calloc((size_t)n, sizeof *out);
    if (!out)
        floor_die("calloc");
    for (int i = 0; i < n; i++) {
        long long t0 = floor_now_ns();
        pid_t pid = vfork();
        if (pid < 0)
            floor_die("vfork");
        if (pid == 0) {
            execve(argv[2], child_argv, environ);
            _exit(127);
        }
        int status;
        if (waitpid(pid, &status, 0) < 0)
            floor_die("waitpid");
        out[i] = floor_now_ns() - t0;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "%s exited with status %#x\n", argv[2], status);
            return 1;
        }
    }
    /* printed only after the loop: no timing includes output */
    for (int i = 0; i < n; i++)
        printf("%lld\n", out[i]);
    free(out);
    return 0;
}
