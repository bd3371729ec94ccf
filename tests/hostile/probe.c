/* The hostile payload: one attack per run, named by argv[1], reported on
 * stdout as one line: "ok" when the attack did what it tried, "errno N"
 * when the kernel refused it, "read N" for the bytes a read got, "entries N"
 * for what a directory listing showed.  Built static by the tests
 * (tests/hostile/conftest.py), so that it needs nothing from the sandbox's
 * root.  Every attack is bounded: a count, a size, or (spin) the CPU
 * limit the driver sets around it. */
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
#include <sys/mman.h>
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

/* forkbomb N: fork up to N children that wait to be killed; "forked K
 * errno E" at the first refusal (or "forked N"); then the children go. */
static int fork_bomb(long n)
{
    static pid_t kids[10000];
    long k = 0;
    int err = 0;
    if (n > 10000)
        n = 10000;
    for (; k < n; k++) {
        pid_t pid = fork();
        if (pid < 0) {
            err = errno;
            break;
        }
        if (pid == 0) {
            pause();
            _exit(0);
        }
        kids[k] = pid;
    }
    if (err)
        printf("forked %ld errno %d\n", k, err);
    else
        printf("forked %ld\n", k);
    for (long i = 0; i < k; i++)
        kill(kids[i], SIGKILL);
    return 0;
}

/* memhog MB: map and touch MB MiB in 64 MiB steps, saying how far it got
 * (the line before the last step is what survives a kill). */
static int mem_hog(long mb)
{
    long done = 0;
    while (done < mb) {
        size_t step = 64UL << 20;
        char *p = mmap(0, step, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            printf("touched %ld errno %d\n", done, errno);
            return 0;
        }
        for (size_t i = 0; i < step; i += 4096)
            p[i] = 1;
        done += 64;
        printf("touched %ld\n", done);
    }
    return 0;
}

/* fill PATH MB: write MB MiB into PATH in 1 MiB blocks: "wrote K errno E"
 * at the first refusal, or "wrote MB". */
static int fill(const char *path, long mb)
{
    static char block[1 << 20];
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return report(-1);
    signal(SIGXFSZ, SIG_IGN);   /* EFBIG instead of a death */
    memset(block, 'x', sizeof block);
    for (long k = 0; k < mb; k++) {
        if (write(fd, block, sizeof block) != (long)sizeof block) {
            printf("wrote %ld errno %d\n", k, errno);
            return 0;
        }
    }
    printf("wrote %ld\n", mb);
    return 0;
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
    if (!strcmp(a, "forkbomb"))
        return fork_bomb(atol(arg));
    if (!strcmp(a, "memhog"))
        return mem_hog(atol(arg));
    if (!strcmp(a, "fill"))
        return fill(arg, argc > 3 ? atol(argv[3]) : 1);
    if (!strcmp(a, "spin")) {
        /* until a limit ends it: bounded by the limit under test, and by
         * the driver's own RLIMIT_CPU */
        for (volatile unsigned long i = 0;; i++)
            ;
    }
    if (!strcmp(a, "kill"))
        /* kill PID SIG; PID -1: everything this process may signal */
        return report(kill(atoi(arg), argc > 3 ? atoi(argv[3]) : 0));
    return 2;
}
