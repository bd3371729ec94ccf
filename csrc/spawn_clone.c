/* Starting a process on a stack of our own, without glibc's clone(): the
 * spawn parent uses it for the child, and the child for its own children, so
 * that no libc function ever runs in a process that shares the caller's
 * memory.  A raw clone returns in the new process on the new stack, where no
 * C frame exists, so each entry is a few lines of assembly that call fn(arg)
 * there and exit with its result. */
#include "spawn_internal.h"

/* long nsf_clone3_run(struct nsf_clone_args *, size_t, int (*fn)(void *), void *)
 * long nsf_clone_run(unsigned long flags, void *stack_top, int (*fn)(void *), void *,
 *                    int *parent_tid)     (the legacy clone(2), for kernels before 5.3) */
#if defined(__x86_64__)
__asm__(".text\n"
        ".globl nsf_clone3_run\n"
        ".hidden nsf_clone3_run\n"
        ".type nsf_clone3_run,@function\n"
        "nsf_clone3_run:\n"
        "  mov %rdx, %r8\n"
        "  mov %rcx, %r9\n"
        "  mov $435, %eax\n"
        "  syscall\n"
        "  test %rax, %rax\n"
        "  jz 1f\n"
        "  ret\n"
        "1:\n"
        "  xor %ebp, %ebp\n"
        "  mov %r9, %rdi\n"
        "  call *%r8\n"
        "  mov %eax, %edi\n"
        "  mov $231, %eax\n"
        "  syscall\n"
        "  hlt\n"
        ".size nsf_clone3_run, .-nsf_clone3_run\n"
        "\n"
        ".globl nsf_clone_run\n"
        ".hidden nsf_clone_run\n"
        ".type nsf_clone_run,@function\n"
        "nsf_clone_run:\n"
        /* fn and arg go on the new stack: the syscall needs the registers */
        "  and $-16, %rsi\n"
        "  sub $16, %rsi\n"
        "  mov %rdx, (%rsi)\n"
        "  mov %rcx, 8(%rsi)\n"
        "  mov %r8, %rdx\n"        /* parent_tid: the pidfd with CLONE_PIDFD */
        "  xor %r10d, %r10d\n"
        "  xor %r8d, %r8d\n"
        "  mov $56, %eax\n"
        "  syscall\n"
        "  test %rax, %rax\n"
        "  jz 1f\n"
        "  ret\n"
        "1:\n"
        "  xor %ebp, %ebp\n"
        "  pop %rax\n"
        "  pop %rdi\n"
        "  call *%rax\n"
        "  mov %eax, %edi\n"
        "  mov $231, %eax\n"
        "  syscall\n"
        "  hlt\n"
        ".size nsf_clone_run, .-nsf_clone_run\n");
#elif defined(__aarch64__)
__asm__(".text\n"
        ".globl nsf_clone3_run\n"
        ".hidden nsf_clone3_run\n"
        ".type nsf_clone3_run,%function\n"
        "nsf_clone3_run:\n"
        "  mov x10, x2\n"
        "  mov x11, x3\n"
        "  mov x8, #435\n"
        "  svc #0\n"
        "  cbz x0, 1f\n"
        "  ret\n"
        "1:\n"
        "  mov x29, xzr\n"
        "  mov x0, x11\n"
        "  blr x10\n"
        "  mov x8, #94\n"
        "  svc #0\n"
        ".size nsf_clone3_run, .-nsf_clone3_run\n"
        "\n"
        ".globl nsf_clone_run\n"
        ".hidden nsf_clone_run\n"
        ".type nsf_clone_run,%function\n"
        "nsf_clone_run:\n"
        "  and x1, x1, #-16\n"
        "  sub x1, x1, #16\n"
        "  stp x2, x3, [x1]\n"
        "  mov x2, x4\n"            /* parent_tid */
        "  mov x3, xzr\n"
        "  mov x4, xzr\n"
        "  mov x8, #220\n"
        "  svc #0\n"
        "  cbz x0, 1f\n"
        "  ret\n"
        "1:\n"
        "  mov x29, xzr\n"
        "  ldp x10, x0, [sp], #16\n"
        "  blr x10\n"
        "  mov x8, #94\n"
        "  svc #0\n"
        ".size nsf_clone_run, .-nsf_clone_run\n");
#else
#error "nsfast's spawn needs a clone entry for this architecture (csrc/spawn_clone.c)"
#endif

long nsf_clone_on_stack(int use_clone3, uint64_t flags, int exit_signal, int cgroup_fd,
                        void *stack, size_t stack_size, int (*fn)(void *), void *arg,
                        int *pidfd)
{
    if (use_clone3) {
        /* no initialiser: a struct copy may become a memset call */
        struct nsf_clone_args ca;
        uint64_t *w = (uint64_t *)&ca;
        for (unsigned i = 0; i < sizeof ca / sizeof *w; i++)
            w[i] = 0;
        ca.flags = flags;
        ca.pidfd = (uint64_t)(uintptr_t)pidfd;
        ca.exit_signal = (uint64_t)(unsigned)exit_signal;
        ca.stack = (uint64_t)(uintptr_t)stack;
        ca.stack_size = stack_size;
        if (cgroup_fd >= 0) {
            ca.flags |= CLONE_INTO_CGROUP;
            ca.cgroup = (uint64_t)cgroup_fd;
        }
        return nsf_clone3_run(&ca, sizeof ca, fn, arg);
    }
    /* the legacy call takes no cgroup, and its flags word has 32 bits */
    if (cgroup_fd >= 0 || (flags >> 32))
        return -ENOSYS;
    return nsf_clone_run((unsigned long)flags | (unsigned)exit_signal,
                         (char *)stack + stack_size, fn, arg, pidfd);
}
