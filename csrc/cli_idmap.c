/* The id maps of `nsfast unshare` (cli_unshare.c): --map-users and
 * --map-groups ranges, --map-auto's range from /etc/subuid and /etc/subgid,
 * and the helper that writes them into our maps once we have unshared (a
 * process may not write a range into its own maps; root writes the files,
 * others run newuidmap and newgidmap), as util-linux's unshare does. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char prog[] = "nsfast unshare";

/* The first range of /etc/subuid or /etc/subgid for our user (by name or
 * uid), mapped from 0 inside, as --map-users=auto reads it. */
static struct nsf_id_range subid_range(const char *file)
{
    uid_t euid = geteuid();
    struct passwd *pw = getpwuid(euid);
    char line[512], uid_text[16];
    FILE *f = fopen(file, "re");
    snprintf(uid_text, sizeof uid_text, "%u", (unsigned)euid);
    if (!f)
        nsf_cli_die(prog, "cannot open %s: %s", file, strerror(errno));
    while (fgets(line, sizeof line, f)) {
        char *name = strtok(line, ":\n"), *start = strtok(0, ":\n"), *count = strtok(0, ":\n");
        if (!name || !start || !count)
            continue;
        if (strcmp(name, uid_text) != 0 && !(pw && strcmp(name, pw->pw_name) == 0))
            continue;
        fclose(f);
        return (struct nsf_id_range){0, (unsigned)nsf_cli_u32(prog, start, file),
                                     (unsigned)nsf_cli_u32(prog, count, file)};
    }
    fclose(f);
    nsf_cli_die(prog, "no line matching user \"%s\" in %s", pw ? pw->pw_name : uid_text, file);
}

/* INNER:OUTER:COUNT (newer util-linux), OUTER,INNER,COUNT (2.38), or auto */
void nsf_ranges_add(struct nsf_id_ranges *m, const char *text, int group)
{
    struct nsf_id_range *ranges = m->r;
    int *n = &m->n;
    const char *option = group ? "--map-groups" : "--map-users";
    unsigned a, b, c;
    int used = 0;
    if (*n == NSF_MAX_RANGES)
        nsf_cli_die(prog, "too many %s ranges", option);
    if (strcmp(text, "auto") == 0) {
        ranges[(*n)++] = subid_range(group ? "/etc/subgid" : "/etc/subuid");
        return;
    }
    if (sscanf(text, "%u:%u:%u%n", &a, &b, &c, &used) == 3 && !text[used]) {
        ranges[(*n)++] = (struct nsf_id_range){a, b, c};
        return;
    }
    if (sscanf(text, "%u,%u,%u%n", &b, &a, &c, &used) == 3 && !text[used]) {
        ranges[(*n)++] = (struct nsf_id_range){a, b, c};
        return;
    }
    nsf_cli_die(prog, "%s takes INNER:OUTER:COUNT or auto, not '%s'", option, text);
}

/* A single map beside ranges becomes one more line, and the ranges give up
 * the inner id it takes, as util-linux merges them. */
void nsf_ranges_merge_single(struct nsf_id_ranges *map, long long single, unsigned ours)
{
    struct nsf_id_range *ranges = map->r;
    int *n = &map->n;
    if (!*n || single < 0)
        return;
    struct nsf_id_range out[NSF_MAX_RANGES * 2 + 1];
    int m = 0;
    for (int i = 0; i < *n; i++) {
        struct nsf_id_range r = ranges[i];
        unsigned id = (unsigned)single;
        if (id < r.inner || id >= r.inner + r.count || m + 2 > NSF_MAX_RANGES * 2) {
            out[m++] = r;
            continue;
        }
        /* below the single id, then above it (one outer id fewer) */
        if (id > r.inner)
            out[m++] = (struct nsf_id_range){r.inner, r.outer, id - r.inner};
        if (r.inner + r.count - id - 1 > 0)
            out[m++] = (struct nsf_id_range){id + 1, r.outer + (id - r.inner), r.inner + r.count - id - 1};
    }
    out[m++] = (struct nsf_id_range){(unsigned)single, ours, 1};
    if (m > NSF_MAX_RANGES)
        nsf_cli_die(prog, "too many id map ranges");
    memcpy(ranges, out, (size_t)m * sizeof *out);
    *n = m;
}

/* The helper that writes the range maps of pid (root writes the files;
 * others run newuidmap and newgidmap), once pid has unshared. */
static void write_ranges(pid_t pid, const char *which, const struct nsf_id_ranges *map)
{
    const struct nsf_id_range *r = map->r;
    int n = map->n;
    char path[64], text[NSF_MAX_RANGES * 40] = "";
    size_t len = 0;
    if (!n)
        return;
    if (geteuid() == 0) {
        for (int i = 0; i < n; i++)
            len += (size_t)snprintf(text + len, sizeof text - len, "%u %u %u\n", r[i].inner,
                                    r[i].outer, r[i].count);
        snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, which);
        nsf_cli_write_file(prog, path, text);
        return;
    }
    const char *tool = strcmp(which, "uid_map") == 0 ? "newuidmap" : "newgidmap";
    char *argv[3 + 3 * NSF_MAX_RANGES], numbers[1 + 3 * NSF_MAX_RANGES][16];
    int a = 0;
    argv[a++] = (char *)tool;
    snprintf(numbers[0], sizeof numbers[0], "%d", (int)pid);
    argv[a++] = numbers[0];
    for (int i = 0; i < n; i++) {
        unsigned v[3] = {r[i].inner, r[i].outer, r[i].count};
        for (int j = 0; j < 3; j++) {
            snprintf(numbers[1 + 3 * i + j], sizeof numbers[0], "%u", v[j]);
            argv[a++] = numbers[1 + 3 * i + j];
        }
    }
    argv[a] = 0;
    pid_t child = fork();
    if (child < 0)
        nsf_cli_die(prog, "fork failed: %s", strerror(errno));
    if (child == 0) {
        execvp(tool, argv);
        nsf_cli_exec_failed(prog, tool);
    }
    int status;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status))
        exit(1);   /* newuidmap said why */
}

/* Fork the helper before unshare(2); it waits on a pipe.  The fd to
 * release it with, or -1 when there are no ranges. */
int nsf_map_helper_start(const struct nsf_id_ranges *uids, const struct nsf_id_ranges *gids,
                         pid_t *helper)
{
    int p[2];
    char byte;
    if (!uids->n && !gids->n)
        return -1;
    if (pipe2(p, O_CLOEXEC) < 0)
        nsf_cli_die(prog, "pipe failed: %s", strerror(errno));
    pid_t parent = getpid();
    *helper = fork();
    if (*helper < 0)
        nsf_cli_die(prog, "fork failed: %s", strerror(errno));
    if (*helper) {
        close(p[0]);
        return p[1];
    }
    close(p[1]);
    if (read(p[0], &byte, 1) != 1)
        _exit(1);   /* the parent failed before unshare, and said why */
    write_ranges(parent, "uid_map", uids);
    write_ranges(parent, "gid_map", gids);
    _exit(0);
}

void nsf_map_helper_release(int fd, pid_t helper)
{
    int status;
    if (fd < 0)
        return;
    if (write(fd, "x", 1) != 1)
        nsf_cli_die(prog, "releasing the id map helper: %s", strerror(errno));
    close(fd);
    while (waitpid(helper, &status, 0) < 0)
        if (errno != EINTR)
            nsf_cli_die(prog, "waitpid failed: %s", strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status))
        nsf_cli_die(prog, "writing the id maps failed");
}
