/* Propagation changes and pivot_root for the Python layer (not the spawn
 * child, which has its own steps in spawn_child.c). */
#include "mounts.h"
#include "rawsys.h"

#include <fcntl.h>

/* -1 unknown, 0 missing, 1 present: probed by the first call, so that an old
 * kernel pays the ENOSYS round trip once. */
static int have_mount_setattr = -1;

int nsf_set_propagation(const char *path, unsigned long ms_type, int recursive, int method)
{
    if (method != NSF_PROP_MOUNT && have_mount_setattr != 0) {
        /* one call changes the whole tree under one namespace lock */
        struct nsf_mount_attr attr = {0, 0, ms_type, 0};
        long r = nsf_sys5(__NR_mount_setattr, AT_FDCWD, path, recursive ? AT_RECURSIVE : 0,
                          &attr, sizeof attr);
        if (r != -ENOSYS) {
            have_mount_setattr = 1;
            return (int)r;
        }
        have_mount_setattr = 0;
        if (method == NSF_PROP_SETATTR)
            return (int)r;
    }
    return (int)nsf_sys5(__NR_mount, "none", path, 0, ms_type | (recursive ? MS_REC : 0), 0);
}

int nsf_pivot_root(const char *new_root, const char *put_old)
{
    return (int)nsf_sys2(__NR_pivot_root, new_root, put_old);
}
