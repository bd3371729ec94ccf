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

/* N from `prog N ARGS...`, or FLOOR_SERVE for `prog serve ARGS...`. */
#define FLOOR_SERVE (-1)

static inline int floor_count(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s N|serve ARGS...\n", argv[0]);
        exit(2);
    }
    return strcmp(argv[1], "serve") == 0 ? FLOOR_SERVE : atoi(argv[1]);
}

typedef long long (*floor_sample_fn)(void *ctx);

/* Take the samples: print n of them, one per line; or, when n is FLOOR_SERVE,
 * take one per byte read on stdin and answer each with its ns as 8 bytes on
 * stdout, until EOF.  Served, a floor is sampled in turn with the Python
 * contenders (A B floor A B floor ...), so it meets the same machine state
 * as they do: the deferred teardown of a peer's namespaces, cold caches. */
static inline int floor_emit(int n, floor_sample_fn one, void *ctx)
{
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

#endif
