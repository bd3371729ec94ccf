/* `nsfast netns list` and `nsfast netns identify [PID]` in C, so that they
 * start as fast as `ip netns` does, and print what it prints:
 * - list: the names under /run/netns in directory order, each with
 *   " (id: N)" when our network namespace has given it an id; then, on
 *   stderr, a line for each empty file a killed add left (its status stays
 *   0, as ip's);
 * - identify: the last name, in directory order, of PID's network namespace
 *   (this process's without PID), or an empty line when none is. */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/netlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static const char prog[] = "nsfast netns";
static const char run_dir[] = "/run/netns";

/* The entries of the run directory, in directory order; NULL when it is
 * missing.  fd: the directory, for openat. */
static DIR *open_run_dir(int *fd)
{
    DIR *d = opendir(run_dir);
    if (!d) {
        if (errno == ENOENT)
            return 0;
        nsf_cli_die(prog, "%s: %s", run_dir, strerror(errno));
    }
    *fd = dirfd(d);
    return d;
}

static int is_entry(const struct dirent *e)
{
    return strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
}

static int list(void)
{
    int dir = -1;
    DIR *d = open_run_dir(&dir);
    if (!d)
        return 0;
    /* shared: no add is between its create and its flock meanwhile, so an
     * empty file seen here is one a killed add left */
    flock(dir, LOCK_SH);
    int sock = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    char **stale = 0;
    size_t n_stale = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!is_entry(e))
            continue;
        int fd = openat(dir, e->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK |
                        O_NOCTTY);
        int nsid = fd >= 0 && sock >= 0 ? nsf_netnsid_of(sock, fd) : -1;
        if (nsid >= 0)
            printf("%s (id: %d)\n", e->d_name, nsid);
        else
            printf("%s\n", e->d_name);
        if (fd >= 0 && nsf_netns_file_is_stale(fd)) {
            char **more = realloc(stale, (n_stale + 1) * sizeof *stale);
            if (!more || !(more[n_stale] = strdup(e->d_name)))
                nsf_cli_die(prog, "out of memory");
            stale = more;
            n_stale++;
        }
        if (fd >= 0)
            close(fd);
    }
    if (fflush(stdout) != 0 && errno != EPIPE)
        nsf_cli_die(prog, "writing the list: %s", strerror(errno));
    for (size_t i = 0; i < n_stale; i++)
        nsf_cli_say(prog, "%s/%s: an empty file, not a network namespace (an add was "
                    "killed); `nsfast netns del` or the next add of that name removes it",
                    run_dir, stale[i]);
    return 0;
}

/* PID as nsfast/cli/netns.py's _pid reads it (Python's int(): blanks and a
 * sign allowed), or exit 1 with "'TEXT' is not a pid". */
static long parse_pid(const char *text)
{
    char *end;
    errno = 0;
    long pid = strtol(text, &end, 10);
    while (*end == ' ' || (*end >= '\t' && *end <= '\r'))
        end++;
    if (end == text || *end || errno || pid <= 0 || pid > INT_MAX)
        nsf_cli_die(prog, "'%s' is not a pid", text);
    return pid;
}

static int identify(int argc, char **argv)
{
    if (argc > 2)
        nsf_cli_die(prog, "usage: nsfast netns identify [PID]");
    char path[64];
    if (argc == 2)
        snprintf(path, sizeof path, "/proc/%ld/ns/net", parse_pid(argv[1]));
    else
        snprintf(path, sizeof path, "/proc/self/ns/net");
    struct stat want, st;
    if (stat(path, &want) < 0)
        nsf_cli_die(prog, "%s: %s", path, strerror(errno));
    char found[NAME_MAX + 1] = "";
    int dir = -1;
    DIR *d = open_run_dir(&dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (is_entry(e) && fstatat(dir, e->d_name, &st, 0) == 0 && st.st_dev == want.st_dev &&
            st.st_ino == want.st_ino)
            snprintf(found, sizeof found, "%s", e->d_name);
    printf("%s\n", found);
    return 0;
}

int nsf_netns_list_main(int argc, char **argv)
{
    if (strcmp(argv[0], "identify") == 0)
        return identify(argc, argv);
    if (argc != 1)
        nsf_cli_die(prog, "usage: nsfast netns list");
    return list();
}
