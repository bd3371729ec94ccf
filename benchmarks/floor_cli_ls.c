/* The floor of a namespace listing command (benchmarks/cases_cli_ls.py): a
 * fork and exec of this program, which does what any lister must do and no
 * more: read every /proc/PID/ns link, keep each (kind, inode) once with its
 * number of processes, and print one line a namespace to stdout (/dev/null).
 *
 *   floor_cli_ls N|serve list     fork, exec `floor_cli_ls - walk`, wait
 *   floor_cli_ls - walk           the listing itself (the child's program) */
#include "floor_common.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/wait.h>

#define MAX_NS 4096

static const char *const kinds[] = {"mnt", "net", "pid", "user", "uts", "ipc", "cgroup", "time"};

struct ns {
    unsigned long long ino;
    int kind, nprocs, pid;
};

static int walk(void)
{
    static struct ns seen[MAX_NS];
    int n = 0;
    DIR *proc = opendir("/proc");
    if (!proc)
        floor_die("/proc");
    struct dirent *d;
    char path[300], link[64];   /* d_name is at most 255 bytes */
    while ((d = readdir(proc))) {
        if (d->d_name[0] < '0' || d->d_name[0] > '9')
            continue;
        for (int k = 0; k < (int)(sizeof kinds / sizeof kinds[0]); k++) {
            snprintf(path, sizeof path, "/proc/%s/ns/%s", d->d_name, kinds[k]);
            ssize_t len = readlink(path, link, sizeof link - 1);
            if (len <= 0)
                continue;
            link[len] = 0;
            char *open = strchr(link, '[');
            if (!open)
                continue;
            unsigned long long ino = strtoull(open + 1, NULL, 10);
            int i = 0;
            while (i < n && !(seen[i].ino == ino && seen[i].kind == k))
                i++;
            if (i == n && n < MAX_NS)
                seen[n++] = (struct ns){ino, k, 0, atoi(d->d_name)};
            if (i < n)
                seen[i].nprocs++;
        }
    }
    closedir(proc);
    for (int i = 0; i < n; i++)
        printf("%llu %s %d %d\n", seen[i].ino, kinds[seen[i].kind], seen[i].nprocs, seen[i].pid);
    return 0;
}

static long long list_one(void *ctx)
{
    const char *self = ctx;
    long long t0 = floor_now_ns();
    pid_t child = fork();
    if (child < 0)
        floor_die("fork");
    if (child == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null < 0 || dup2(null, 1) < 0)
            _exit(126);
        execl(self, self, "-", "walk", (char *)NULL);
        _exit(127);
    }
    int st;
    waitpid(child, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "list floor: child failed\n");
        exit(1);
    }
    return floor_now_ns() - t0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "-") == 0 && strcmp(argv[2], "walk") == 0)
        return walk();
    int n = floor_count(argc, argv);
    if (argc != 3 || strcmp(argv[2], "list") != 0) {
        fprintf(stderr, "usage: %s N|serve list\n", argv[0]);
        return 2;
    }
    /* static: the path of this program, for the child to exec */
    static char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0)
        floor_die("/proc/self/exe");
    self[len] = 0;
    return floor_emit(n, list_one, self);
}
