/* Raw system calls that return -errno instead of setting errno.
 *
 * Why: code that runs in a CLONE_VM child shares the parent thread's TLS, so
 * libc's errno there is the parent's errno; writing it from the child races
 * with the parent.  These wrappers never touch errno or any libc state, which
 * also makes them async-signal-safe.  On architectures without an inline
 * version we fall back to syscall(2) and accept that race.
 */
#ifndef NSFAST_RAWSYS_H
#define NSFAST_RAWSYS_H

#include "compat.h"
#include <errno.h>

#if defined(__x86_64__)
static inline long nsf_sys6(long n, long a, long b, long c, long d, long e, long f)
{
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}
#define NSF_HAVE_RAW_SYSCALL 1
#elif defined(__aarch64__)
static inline long nsf_sys6(long n, long a, long b, long c, long d, long e, long f)
{
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    register long x5 __asm__("x5") = f;
    __asm__ volatile("svc 0"
                     : "+r"(x0)
                     : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                     : "memory");
    return x0;
}
#define NSF_HAVE_RAW_SYSCALL 1
#else
#include <errno.h>
#include <unistd.h>
static inline long nsf_sys6(long n, long a, long b, long c, long d, long e, long f)
{
    long r = syscall(n, a, b, c, d, e, f);
    return r == -1 ? -errno : r;
}
#define NSF_HAVE_RAW_SYSCALL 0
#endif

#define nsf_sys0(n) nsf_sys6((n), 0, 0, 0, 0, 0, 0)
#define nsf_sys1(n, a) nsf_sys6((n), (long)(a), 0, 0, 0, 0, 0)
#define nsf_sys2(n, a, b) nsf_sys6((n), (long)(a), (long)(b), 0, 0, 0, 0)
#define nsf_sys3(n, a, b, c) nsf_sys6((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define nsf_sys4(n, a, b, c, d) nsf_sys6((n), (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define nsf_sys5(n, a, b, c, d, e) \
    nsf_sys6((n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)

#endif
