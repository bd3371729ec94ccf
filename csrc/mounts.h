/* In-place mount operations for nsfast.mounts: propagation changes with
 * mount_setattr or mount(2), and pivot_root.  Return 0 or -errno. */
#ifndef NSFAST_MOUNTS_H
#define NSFAST_MOUNTS_H

enum nsf_propagation_method {
    NSF_PROP_AUTO = 0,       /* mount_setattr, mount(2) where it is missing */
    NSF_PROP_SETATTR = 1,    /* mount_setattr only (ENOSYS on old kernels) */
    NSF_PROP_MOUNT = 2,      /* mount(2) only */
};

/* ms_type: MS_PRIVATE, MS_SHARED, MS_SLAVE or MS_UNBINDABLE. */
int nsf_set_propagation(const char *path, unsigned long ms_type, int recursive, int method);
int nsf_pivot_root(const char *new_root, const char *put_old);

#endif
