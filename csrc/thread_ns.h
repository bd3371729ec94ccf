/* The per-thread state of nsfast.enter(), kept here and nowhere else: for
 * each namespace kind, the fd of the namespace the calling thread returns to
 * when its outermost enter() block of that kind ends (its "home", opened on
 * first use and closed when the thread ends), and how many enter() blocks of
 * that kind are open in the thread.
 *
 * kind is one CLONE_NEW* value.  Every function returns a non-negative value
 * or -errno (-EINVAL for a kind that is not one of nsf_kinds). */
#ifndef NSFAST_THREAD_NS_H
#define NSFAST_THREAD_NS_H

#include "compat.h"   /* CLONE_NEW* */

/* The kinds a thread switches on its own; the others (user, mnt, pid, time)
 * belong to the whole process. */
#define NSF_PER_THREAD (CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP)

/* One more enter() block of kind; *back is the home fd when the block is
 * the outermost one, -1 when it is nested (the caller keeps its own way
 * back).  Nothing is counted on failure. */
int nsf_thread_push(int kind, int *back);

/* One enter() block of kind fewer. */
int nsf_thread_pop(int kind);

/* The outermost enter() block of a per-thread kind, in one call: setns(fd,
 * kind) and count the block.  1 when entered; 0, with nothing done, when a
 * block of kind is open already or kind is not one of NSF_PER_THREAD (the
 * caller does those cases itself). */
int nsf_thread_enter(int fd, int kind);

/* The end of the block nsf_thread_enter began: setns back to the home and
 * count the block out (also when the setns fails). */
int nsf_thread_leave(int kind);

/* setns(fd, kind) for a per-thread kind, outside enter(): the thread's home
 * for kind is forgotten unless a block holds it.  1 when done; 0, with
 * nothing done, when kind is not one of NSF_PER_THREAD. */
int nsf_thread_setns(int fd, int kind);

/* The thread moved by other means: close the homes of the kinds in the
 * CLONE_NEW* mask kinds that no enter() block holds, so that the next
 * enter() reads where the thread is now. */
void nsf_thread_forget(int kinds);

#endif
