/* `nsfast netns exec NAME PROGRAM [ARGS]`: `ip netns exec` in C.  As ip
 * does, this process joins /run/netns/NAME, unshares a mount namespace (a
 * slave of ours), mounts a sysfs of that network namespace on /sys, binds
 * each /etc/netns/NAME/FILE on /etc/FILE, and execs the program in place:
 * `nsfast netns exec NAME prog & PID=$!` names prog, inside NAME. */
#include "cli.h"
#include "compat.h"
#include "nscore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

static const char prog[] = "nsfast netns";

/* Each /etc/netns/NAME/FILE on /etc/FILE; a failure is said and skipped,
 * as ip does. */
static void bind_etc(const char *name)
{
    char dir_path[PATH_MAX], from[PATH_MAX + NAME_MAX + 2], to[NAME_MAX + 8];
    snprintf(dir_path, sizeof dir_path, "/etc/netns/%s", name);
    DIR *dir = opendir(dir_path);
    if (!dir)
        return;
    for (struct dirent *e; (e = readdir(dir));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(from, sizeof from, "%s/%s", dir_path, e->d_name);
        snprintf(to, sizeof to, "/etc/%s", e->d_name);
        if (mount(from, to, "none", MS_BIND, 0) < 0)
            nsf_cli_say(prog, "bind %s -> %s failed: %s", from, to, strerror(errno));
    }
    closedir(dir);
}

/* Into NAME, with its own /sys and /etc files (iproute2's netns_switch). */
static void switch_to(const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "/run/netns/%s", name);
    /* O_NONBLOCK: NAME may be a symlink to a fifo, which must not block us */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        nsf_cli_die(prog, "%s: cannot open network namespace \"%s\": %s", path, name,
                    strerror(errno));
    int type = nsf_ns_ioctl(fd, NS_GET_NSTYPE);
    if (type < 0)
        nsf_cli_die(prog, "%s: %s (hint: not a network namespace; an add that was killed "
                    "leaves an empty file, which `nsfast netns del %s` removes)", path,
                    strerror(EINVAL), name);
    if (type != CLONE_NEWNET)
        nsf_cli_die(prog, "%s: %s (hint: a %s namespace, not a network namespace)", path,
                    strerror(EINVAL), nsf_kind_name(type));
    if (setns(fd, CLONE_NEWNET) < 0)
        nsf_cli_die(prog, "setting the network namespace \"%s\" failed: %s", name,
                    strerror(errno));
    close(fd);
    if (unshare(CLONE_NEWNS) < 0)
        nsf_cli_die(prog, "unshare failed: %s", strerror(errno));
    /* nothing mounted here may propagate back to us */
    if (mount("", "/", "none", MS_SLAVE | MS_REC, 0) < 0)
        nsf_cli_die(prog, "\"mount --make-rslave /\" failed: %s", strerror(errno));
    unsigned long flags = 0;
    struct statvfs st;
    /* a sysfs that cannot be detached is shadowed, read-only if it was */
    if (umount2("/sys", MNT_DETACH) < 0 && statvfs("/sys", &st) == 0 && (st.f_flag & ST_RDONLY))
        flags = MS_RDONLY;
    if (mount(name, "/sys", "sysfs", flags, 0) < 0)
        nsf_cli_die(prog, "mount of /sys failed: %s", strerror(errno));
    bind_etc(name);
}

int nsf_netns_exec_main(int argc, char **argv)
{
    int i = 1;
    if (i < argc && strcmp(argv[i], "--") == 0)
        i++;
    if (i >= argc)
        nsf_cli_die(prog, "no netns name specified (usage: nsfast netns exec NAME PROGRAM "
                    "[ARGS...])");
    if (i + 1 >= argc)
        nsf_cli_die(prog, "no command specified (usage: nsfast netns exec NAME PROGRAM "
                    "[ARGS...])");
    nsf_netns_check_name(argv[i]);
    switch_to(argv[i]);
    fflush(stdout);
    nsf_cli_exec(prog, argv + i + 1);
}
