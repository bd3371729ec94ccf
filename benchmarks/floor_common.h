/* Shared by the C floor programs: a monotonic clock in ns and sample output.
 * Each floor program is `prog N ARGS...` and prints N samples, one per line. */
#ifndef NSFAST_FLOOR_COMMON_H
#define NSFAST_FLOOR_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A netlink attribute appended to msg, a struct that starts with its
 * nlmsghdr and has room after it (the floors that make links); a nested one
 * is closed by floor_rta_end once its attributes are in. */
#include <linux/rtnetlink.h>

static inline struct rtattr *floor_rta_put(void *msg, int type, const void *data, int len)
{
    struct nlmsghdr *nh = msg;
    struct rtattr *a = (struct rtattr *)((char *)nh + NLMSG_ALIGN(nh->nlmsg_len));
    a->rta_type = type;
    a->rta_len = RTA_LENGTH(len);
    if (len)
        memcpy(RTA_DATA(a), data, len);
    nh->nlmsg_len = NLMSG_ALIGN(nh->nlmsg_len) + RTA_ALIGN(a->rta_len);
    return a;
}

static inline void floor_rta_end(void *msg, struct rtattr *nest)
{
    struct nlmsghdr *nh = msg;
    nest->rta_len = (char *)nh + nh->nlmsg_len - (char *)nest;
}

static inline long long floor_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

#ifdef FLOOR_LIBRARY
/* Built as a shared library (Floor.in_process in benchmarks/harness.py):
 * the benchmark process loads it and calls floor_prepare(argc, argv), which
 * runs this program's main (renamed floor_program_main) with N = "inproc",
 * then floor_sample() once per sample.  A failure must not end the benchmark
 * process: floor_die returns to the exported function, which reports -errno.
 * The sample context must outlive main: static, or a pointer into argv,
 * which the caller keeps. */
#include <errno.h>
#include <setjmp.h>
static jmp_buf floor_failed;
static int floor_failed_errno;

static inline void floor_die(const char *what)
{
    (void)what;
    floor_failed_errno = errno ? errno : EIO;
    longjmp(floor_failed, 1);
}
#else
static inline void floor_die(const char *what)
{
    perror(what);
    exit(1);
}
#endif

/* N from `prog N ARGS...`, FLOOR_SERVE for `prog serve ARGS...`, and
 * FLOOR_IN_PROCESS for `inproc` in the library build. */
#define FLOOR_SERVE (-1)
#define FLOOR_IN_PROCESS (-2)

static inline int floor_count(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s N|serve ARGS...\n", argv[0]);
        exit(2);
    }
    if (strcmp(argv[1], "inproc") == 0)
        return FLOOR_IN_PROCESS;
    return strcmp(argv[1], "serve") == 0 ? FLOOR_SERVE : atoi(argv[1]);
}

typedef long long (*floor_sample_fn)(void *ctx);

/* Take the samples: print n of them, one per line; or, when n is FLOOR_SERVE,
 * take one per byte read on stdin and answer each with its ns as 8 bytes on
 * stdout, until EOF.  Served, a floor is sampled in turn with the Python
 * contenders (A B floor A B floor ...), so it meets the same machine state
 * as they do: the deferred teardown of a peer's namespaces, cold caches. */
#ifdef FLOOR_LIBRARY
static floor_sample_fn floor_in_process_fn;
static void *floor_in_process_ctx;
#endif

static inline int floor_emit(int n, floor_sample_fn one, void *ctx)
{
#ifdef FLOOR_LIBRARY
    if (n == FLOOR_IN_PROCESS) {
        floor_in_process_fn = one;
        floor_in_process_ctx = ctx;
        return 0;
    }
#endif
    if (n == FLOOR_SERVE) {
        char byte;
        while (read(0, &byte, 1) == 1) {
            long long ns = one(ctx);
            if (write(1, &ns, sizeof ns) != (ssize_t)sizeof ns)
                return 1;
        }
        return 0;
    }
    long long *samples = calloc((size_t)(n > 0 ? n : 1), sizeof *samples);
    if (!samples)
        floor_die("calloc");
    for (int i = 0; i < n; i++)
        samples[i] = one(ctx);
    for (int i = 0; i < n; i++)
        printf("%lld\n", samples[i]);
    free(samples);
    return 0;
}

#ifdef FLOOR_LIBRARY
int main(int argc, char **argv);   /* floor_program_main: -Dmain=... */

__attribute__((visibility("default"))) int floor_prepare(int argc, char **argv)
{
    floor_in_process_fn = 0;
    if (setjmp(floor_failed))
        return -floor_failed_errno;
    int r = main(argc, argv);
    return r == 0 && floor_in_process_fn ? 0 : -EINVAL;
}

/* One sample in ns, or -errno if it failed. */
__attribute__((visibility("default"))) long long floor_sample(void)
{
    if (setjmp(floor_failed))
        return -floor_failed_errno;
    return floor_in_process_fn(floor_in_process_ctx);
}
#endif

#endif
