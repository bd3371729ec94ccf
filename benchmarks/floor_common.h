/* Shared by the C floor programs: a monotonic clock in ns and sample output.
 * Each floor program is `prog N ARGS...` and prints N samples, one per line. */
#ifndef NSFAST_FLOOR_COMMON_H
#define NSFAST_FLOOR_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE  /* the suite also passes -D_GNU_SOURCE */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline long long floor_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline void floor_die(const char *what)
{
    perror(what);
    exit(1);
}

static inline int floor_count(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s N ARGS...\n", argv[0]);
        exit(2);
    }
    return atoi(argv[1]);
}

#endif
