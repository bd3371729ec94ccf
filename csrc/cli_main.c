/* The nsfast command.  The drop-ins for the tools that exec in place,
 * `nsfast enter` (alias nsenter), `nsfast unshare` and `nsfast netns exec`,
 * run here, in C, and exec the program in this process as nsenter(1),
 * unshare(1) and `ip netns exec` do; so do `netns add`, `del`, `list` and
 * `identify`, and
 * `nsfast ls` (lsns(8)), whose cost would otherwise be Python's start-up.
 * Every other command line (and an unshare whose options need nsfast's
 * Python) is the Python CLI's, started as
 * `<python> -I -c '<run nsfast.cli.main>' ARGS...`.
 *
 * <python> is python3 (then python) in the directory this program is in
 * (a virtual environment's bin/, or a prefix's), else $NSFAST_PYTHON, else
 * the interpreter that built it (NSFAST_BUILD_PYTHON, set by setup.py). */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef NSFAST_BUILD_PYTHON
#define NSFAST_BUILD_PYTHON "/usr/bin/python3"
#endif

/* python3 or python beside this program, in buf; 0 when neither is there. */
static const char *python_beside_us(char *buf, size_t size, char *dir, size_t dirsize)
{
    static const char *const names[] = {"python3", "python"};
    ssize_t n = readlink("/proc/self/exe", dir, dirsize - 1);
    if (n <= 0)
        return 0;
    dir[n] = 0;
    char *slash = strrchr(dir, '/');
    if (!slash)
        return 0;
    *slash = 0;
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(buf, size, "%s/%s", dir, names[i]);
        if (access(buf, X_OK) == 0)
            return buf;
    }
    return 0;
}

void nsf_cli_run_python(int argc, char **argv)
{
    char buf[PATH_MAX + 16], dir[PATH_MAX] = "?";
    const char *python = python_beside_us(buf, sizeof buf, dir, sizeof dir);
    const char *fallback = getenv("NSFAST_PYTHON");
    if (!fallback || !*fallback)
        fallback = NSFAST_BUILD_PYTHON;
    if (!python) {
        if (access(fallback, X_OK) < 0)
            nsf_cli_die("nsfast", "no Python to run this command with: no python3 or python "
                        "in %s, and %s: %s (set NSFAST_PYTHON to an interpreter that has "
                        "nsfast installed)", dir, fallback, strerror(errno));
        python = fallback;
    }
    char **args = calloc((size_t)argc + 4, sizeof *args);
    if (!args)
        nsf_cli_die("nsfast", "out of memory");
    args[0] = (char *)python;
    /* -I: neither the working directory (a root command must not import
     * whatever nsfast/ or pyroute2.py lies there) nor PYTHON* variables nor
     * the user's site-packages decide what runs, and start-up is shorter;
     * from_launcher: Python must not hand the command back to us */
    args[1] = "-I";
    args[2] = "-c";
    args[3] = "import sys; from nsfast.cli import main; sys.exit(main(from_launcher=True))";
    memcpy(args + 4, argv + 1, (size_t)(argc - 1) * sizeof *args);
    execv(python, args);
    nsf_cli_die("nsfast", "cannot run %s: %s", python, strerror(errno));
}

int main(int argc, char **argv)
{
    const char *name = strrchr(argv[0], '/');
    if (strcmp(name ? name + 1 : argv[0], "nsfast-runtime") == 0)
        return nsf_oci_main(argc, argv);
    if (argc > 1 && strcmp(argv[1], "oci") == 0)
        return nsf_oci_main(argc - 1, argv + 1);
    if (argc > 1 && (strcmp(argv[1], "enter") == 0 || strcmp(argv[1], "nsenter") == 0))
        return nsf_enter_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "ls") == 0)
        return nsf_ls_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "unshare") == 0) {
        /* getopt permutes nothing ('+'), but it sets argv[0]: keep ours */
        char *name = argv[1];
        int status = nsf_unshare_main(argc - 1, argv + 1);
        if (status != NSF_TO_PYTHON)
            return status;
        argv[1] = name;
    }
    if (argc > 2 && strcmp(argv[1], "netns") == 0) {
        if (strcmp(argv[2], "exec") == 0)
            return nsf_netns_exec_main(argc - 2, argv + 2);
        if (strcmp(argv[2], "add") == 0 || strcmp(argv[2], "del") == 0 ||
            strcmp(argv[2], "delete") == 0)
            return nsf_netns_add_main(argc - 2, argv + 2);
        if (strcmp(argv[2], "list") == 0 || strcmp(argv[2], "identify") == 0)
            return nsf_netns_list_main(argc - 2, argv + 2);
    }
    nsf_cli_run_python(argc, argv);
}
