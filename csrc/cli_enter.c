/* `nsfast enter` (alias nsenter): util-linux nsenter 2.38's command line.
 *
 * Parsed by glibc's getopt_long with a leading '+', as nsenter parses it: an
 * optional FILE or DIR must be attached (-n/run/netns/x, -n=FILE, --net=FILE),
 * the first non-option ends the options, long options may be abbreviated.
 * getopt prints its own errors as `argv[0]: ...`, one line, so argv[0] is set
 * to the command's name.  As in the Python command this replaced, every
 * option is checked for syntax first and then acted on in order. */
#include "cli.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef NSFAST_VERSION
#define NSFAST_VERSION "unknown"
#endif

enum { OPT_PRESERVE = 256, OPT_KEEP_CAPS };

static const char optstring[] = "+ahVFt:S:G:r::w::W::N:U::C::i::u::n::p::m::T::";

/* alphabetical, so that getopt lists an ambiguous abbreviation's
 * possibilities sorted */
static const struct option longopts[] = {
    {"all", no_argument, 0, 'a'},
    {"cgroup", optional_argument, 0, 'C'},
    {"help", no_argument, 0, 'h'},
    {"ipc", optional_argument, 0, 'i'},
    {"keep-caps", no_argument, 0, OPT_KEEP_CAPS},
    {"mount", optional_argument, 0, 'm'},
    {"net", optional_argument, 0, 'n'},
    {"net-socket", required_argument, 0, 'N'},
    {"no-fork", no_argument, 0, 'F'},
    {"pid", optional_argument, 0, 'p'},
    {"preserve-credentials", no_argument, 0, OPT_PRESERVE},
    {"root", optional_argument, 0, 'r'},
    {"setgid", required_argument, 0, 'G'},
    {"setuid", required_argument, 0, 'S'},
    {"target", required_argument, 0, 't'},
    {"time", optional_argument, 0, 'T'},
    {"user", optional_argument, 0, 'U'},
    {"uts", optional_argument, 0, 'u'},
    {"version", no_argument, 0, 'V'},
    {"wd", optional_argument, 0, 'w'},
    {"wdns", optional_argument, 0, 'W'},
    {0, 0, 0, 0},
};

static const char help[] =
    "usage: %s [options] [<program> [<argument>...]]\n"
    "\n"
    "Run a program with namespaces of other processes.\n"
    "\n"
    "options:\n"
    " -a, --all                 enter all namespaces\n"
    " -t, --target <pid>        target process to get namespaces from\n"
    " -m, --mount[=<file>]      enter mount namespace\n"
    " -u, --uts[=<file>]        enter UTS namespace (hostname etc)\n"
    " -i, --ipc[=<file>]        enter System V IPC namespace\n"
    " -n, --net[=<file>]        enter network namespace\n"
    " -N, --net-socket <fd>     enter the network namespace of socket <fd> of the target\n"
    " -p, --pid[=<file>]        enter pid namespace\n"
    " -C, --cgroup[=<file>]     enter cgroup namespace\n"
    " -U, --user[=<file>]       enter user namespace\n"
    " -T, --time[=<file>]       enter time namespace\n"
    " -S, --setuid <uid>        set uid in entered namespace\n"
    " -G, --setgid <gid>        set gid in entered namespace\n"
    "     --preserve-credentials do not touch uids or gids\n"
    " -r, --root[=<dir>]        set the root directory\n"
    " -w, --wd[=<dir>]          set the working directory\n"
    " -W, --wdns <dir>          set the working directory in the namespace\n"
    "     --keep-caps           keep the capabilities in the user namespace\n"
    " -F, --no-fork             do not fork before exec'ing <program>\n"
    " -h, --help                display this help\n"
    " -V, --version             display version\n";

/* A non-negative decimal as Python's int(text, 10) reads one: blanks around,
 * an optional sign, digits.  -1 when it is not one (or too large to hold). */
static long long number(const char *s)
{
    long long v = 0;
    int digits = 0, negative = 0;
    while (*s == ' ' || (*s >= '\t' && *s <= '\r'))
        s++;
    if (*s == '+' || *s == '-')
        negative = *s++ == '-';
    for (; *s >= '0' && *s <= '9'; s++, digits++) {
        if (v > (__LONG_LONG_MAX__ - 9) / 10)
            return -1;
        v = v * 10 + (*s - '0');
    }
    while (*s == ' ' || (*s >= '\t' && *s <= '\r'))
        s++;
    return (*s || !digits || (negative && v)) ? -1 : v;
}

static long long parse_number(const struct nsf_enter_opts *o, const char *text, const char *what)
{
    long long v = number(text);
    if (v < 0)
        nsf_cli_die(o->prog, "failed to parse %s: '%s'", what, text);
    return v;
}

/* -n=FILE as nsenter takes it; an empty value means "the target's". */
static const char *attached(const char *value)
{
    if (value && value[0] == '=')
        value++;
    return value && *value ? value : 0;
}

static void set_kind(struct nsf_enter_opts *o, int kind, const char *path)
{
    for (int i = 0; i < o->n_ns; i++) {
        if (o->ns[i].kind == kind) {
            o->ns[i].path = path;
            return;
        }
    }
    o->ns[o->n_ns].kind = kind;
    o->ns[o->n_ns++].path = path;
}

static int kind_of_letter(int c)
{
    for (int k = 0; k < NSF_KINDS; k++)
        if (nsf_kinds[k].letter == c)
            return k;
    return -1;
}

static void apply(struct nsf_enter_opts *o, int c, const char *value)
{
    int kind = kind_of_letter(c);
    if (kind >= 0) {
        set_kind(o, kind, attached(value));
        return;
    }
    switch (c) {
    case 'h':
        printf(help, o->prog);
        exit(0);
    case 'V':
        printf("%s (nsfast %s, util-linux 2.38 flags)\n", o->prog, NSFAST_VERSION);
        exit(0);
    case 'a':
        o->all = 1;
        break;
    case 't':
        if (o->target)
            nsf_cli_die(o->prog, "option --target may be given only once");
        o->target = parse_number(o, value, "target PID");
        if (!o->target)
            nsf_cli_die(o->prog, "failed to parse target PID: '%s'", value);
        break;
    case 'S':
        o->uid = parse_number(o, value, "uid");
        break;
    case 'G':
        o->gid = parse_number(o, value, "gid");
        break;
    case OPT_PRESERVE:
        o->preserve_credentials = 1;
        break;
    case 'r':
        o->root = attached(value);
        o->root_own = !o->root;
        break;
    case 'w':
        o->wd = attached(value);
        o->wd_own = !o->wd;
        break;
    case 'F':
        o->fork = 0;
        break;
    case 'W':
        o->wdns = attached(value);
        if (!o->wdns)
            nsf_cli_die(o->prog, "option --wdns needs a directory");
        break;
    case 'N': {
        long long fd = parse_number(o, value, "file descriptor");
        if (fd > 0x7fffffff)
            nsf_cli_die(o->prog, "failed to parse file descriptor: '%s'", value);
        o->net_socket = (int)fd;
        break;
    }
    case OPT_KEEP_CAPS:
        o->keep_caps = 1;
        break;
    }
}

int nsf_enter_main(int argc, char **argv)
{
    struct nsf_enter_opts o = {0};
    struct {
        int c;
        char *value;
    } *found = calloc((size_t)argc + 1, sizeof *found);
    int n = 0, c;

    o.prog = strcmp(argv[0], "nsenter") == 0 ? "nsfast nsenter" : "nsfast enter";
    o.uid = o.gid = -1;
    o.fork = 1;
    o.net_socket = -1;
    if (!found)
        nsf_cli_die(o.prog, "out of memory");
    argv[0] = (char *)o.prog;
    while ((c = getopt_long(argc, argv, optstring, longopts, 0)) != -1) {
        if (c == '?')
            return 1; /* getopt said why, as `prog: ...` */
        found[n].c = c;
        found[n++].value = optarg;
    }
    for (int i = 0; i < n; i++)
        apply(&o, found[i].c, found[i].value);
    free(found);
    if (o.wdns && (o.wd || o.wd_own))
        nsf_cli_die(o.prog, "options --wd and --wdns are mutually exclusive");
    o.program = argv + optind;
    nsf_enter_run(&o);
}
