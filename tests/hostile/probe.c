/* The hostile payload: one attack per run, named by argv[1], reported on
 * stdout as one line: "ok" when the attack did what it tried, "errno N"
 * when the kernel refused it, "read N" for the bytes a read got, "entries N"
 * for what a directory listing showed.  Built static by the tests
 * (tests/hostile/conftest.py), so that it needs nothing from the sandbox's
 * root.  Every attack is bounded: no loops without an end. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

static int report(long r)
{
    if (r < 0)
        printf("errno %d\n", errno);
    else
        printf("ok\n");
    return 0;
}

static int read_file(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return report(-1);
    char buf[4096];
    long total = 0, n;
    while (total < (1L << 20) && (n = read(fd, buf, sizeof buf)) > 0)
        total += n;
    if (n < 0)
        return report(-1);
    printf("read %ld\n", total);
    return 0;
}

static int list_dir(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return report(-1);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 100000)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    printf("entries %d\n", n);
    return 0;
}

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        return report(-1);
    return report(write(fd, text, strlen(text)));
}

int main(int argc, char **argv)
{
    setvbuf(stdout, 0, _IONBF, 0);
    if (argc < 2)
        return 2;
    const char *a = argv[1];
    const char *arg = argc > 2 ? argv[2] : "";
    if (!strcmp(a, "read"))
        return read_file(arg);
    if (!strcmp(a, "list"))
        return list_dir(arg);
    if (!strcmp(a, "write"))
        return write_file(arg, argc > 3 ? argv[3] : "1\n");
    if (!strcmp(a, "tiocsti")) {
        char c = 'x';
        return report(ioctl(0, TIOCSTI, &c));
    }
    if (!strcmp(a, "ctty"))
        return report(open("/dev/tty", O_RDWR));
    if (!strcmp(a, "ptrace"))
        return report(ptrace(PTRACE_ATTACH, atoi(arg), 0, 0));
    if (!strcmp(a, "fd")) {
        struct stat st;
        return report(fstat(atoi(arg), &st));
    }
    if (!strcmp(a, "mount"))
        return report(mount("none", "/tmp", "tmpfs", 0, 0));
    if (!strcmp(a, "userns"))
        return report(unshare(CLONE_NEWUSER));
    if (!strcmp(a, "keyctl"))
        /* KEYCTL_GET_KEYRING_ID of the session keyring */
        return report(syscall(SYS_keyctl, 0, -3, 0));
    if (!strcmp(a, "bpf")) {
        union bpf_attr attr;
        memset(&attr, 0, sizeof attr);
        attr.map_type = BPF_MAP_TYPE_ARRAY;
        attr.key_size = 4;
        attr.value_size = 4;
        attr.max_entries = 1;
        return report(syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr));
    }
    if (!strcmp(a, "perf")) {
        struct perf_event_attr pe;
        memset(&pe, 0, sizeof pe);
        pe.size = sizeof pe;
        pe.type = PERF_TYPE_SOFTWARE;
        pe.config = PERF_COUNT_SW_CPU_CLOCK;
        pe.exclude_kernel = 1;
        return report(syscall(SYS_perf_event_open, &pe, 0, -1, -1, 0));
    }
    if (!strcmp(a, "kill"))
        /* kill PID SIG; PID -1: everything this process may signal */
        return report(kill(atoi(arg), argc > 3 ? atoi(argv[3]) : 0));
    return 2;
}
