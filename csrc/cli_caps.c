/* --keep-caps of unshare(1) and nsenter(1): the capabilities a new or
 * joined user namespace gives are dropped by exec unless they are ambient. */
#include "cli.h"

#include <errno.h>
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#endif

static int last_cap(void)
{
    int last = 40;
    FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
    if (f) {
        if (fscanf(f, "%d", &last) != 1)
            last = 40;
        fclose(f);
    }
    return last;
}

void nsf_cli_keep_caps(const char *prog)
{
    struct __user_cap_header_struct head = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &head, data) < 0)
        nsf_cli_die(prog, "capget failed: %s", strerror(errno));
    /* a capability can be ambient only when it is also inheritable */
    data[0].inheritable = data[0].permitted;
    data[1].inheritable = data[1].permitted;
    if (syscall(SYS_capset, &head, data) < 0)
        nsf_cli_die(prog, "capset failed: %s", strerror(errno));
    int last = last_cap();
    for (int cap = 0; cap <= last && cap < 64; cap++) {
        if (!(data[cap / 32].permitted & (1u << (cap % 32))))
            continue;
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
            nsf_cli_die(prog, "prctl(PR_CAP_AMBIENT) failed: %s", strerror(errno));
    }
}
