/* `nsfast ls`: util-linux lsns(8), byte for byte, in the launcher, so that
 * a listing costs what lsns's does and no Python start-up.
 *
 * The output is lsns's (its libsmartcols table): the same columns and
 * defaults, the process tree in COMMAND and the owner/parent trees in NS,
 * column widths, escapes, raw and JSON layouts.  Where newer util-linux
 * differs from 2.38 it follows the newer one: namespaces held only by an
 * nsfs bind mount, an open fd or a socket are listed (NPROCS 0), and it
 * takes -Q/--filter and -P/--persistent.  Beyond lsns: the columns PARENT
 * and OWNER (PNS and ONS under other names) and FDS (pid:fd holders).
 *
 * This file: the command line (glibc's getopt_long, which permutes as
 * lsns's does; every option is checked for syntax first, then acted on in
 * order), the byte buffer, and the run.  cli_ls_scan.c finds the
 * namespaces, cli_ls_rows.c makes rows and cells, cli_ls_print.c prints
 * them, cli_ls_filter.c is -Q. */
#include "cli.h"
#include "cli_ls.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#ifndef NSFAST_VERSION
#define NSFAST_VERSION "unknown"
#endif

const struct ls_column ls_columns[COL_COUNT] = {
    [COL_NS] = {"NS", 1, 1, 10},         [COL_TYPE] = {"TYPE", 0, 0, 5},
    [COL_PATH] = {"PATH", 0, 0, 0},      [COL_NPROCS] = {"NPROCS", 1, 1, 5},
    [COL_PID] = {"PID", 1, 1, 5},        [COL_PPID] = {"PPID", 1, 1, 5},
    [COL_COMMAND] = {"COMMAND", 0, 0, 0}, [COL_UID] = {"UID", 1, 1, 0},
    [COL_USER] = {"USER", 0, 0, 0},      [COL_NETNSID] = {"NETNSID", 1, 0, 0},
    [COL_NSFS] = {"NSFS", 0, 0, 0},      [COL_PNS] = {"PNS", 1, 1, 10},
    [COL_ONS] = {"ONS", 1, 1, 10},
    /* nsfast's own, which lsns would refuse: PNS and ONS under the names
     * nsfast ls used first, and the (pid:fd) holders of a namespace */
    [COL_PARENT] = {"PARENT", 1, 1, 0},  [COL_OWNER] = {"OWNER", 1, 1, 0},
    [COL_FDS] = {"FDS", 0, 0, 0},
};

const char *const ls_kind_names[LS_KINDS] = {"mnt", "net", "pid", "user", "uts", "ipc",
                                             "cgroup", "time"};

static const char help[] =
    "\n"
    "Usage:\n"
    " nsfast ls [options] [<namespace>]\n"
    "\n"
    "List system namespaces (the flags and output of lsns(8)).\n"
    "\n"
    "Options:\n"
    " -J, --json             use JSON output format\n"
    " -l, --list             use list format output\n"
    " -n, --noheadings       don't print headings\n"
    " -o, --output <list>    define which output columns to use\n"
    "     --output-all       output all columns\n"
    " -P, --persistent       namespaces without processes\n"
    " -p, --task <pid>       print process namespaces\n"
    " -r, --raw              use the raw output format\n"
    " -u, --notruncate       don't truncate text in columns\n"
    " -W, --nowrap           don't use multi-line representation\n"
    " -t, --type <name>      namespace type (mnt, net, ipc, user, pid, uts, cgroup, time)\n"
    " -T, --tree <rel>       use tree format (parent, owner, or process)\n"
    " -Q, --filter <expr>    print only the rows for which the expression holds\n"
    "                        (libsmartcols filter: NS == 4026531840 && NPROCS > 1)\n"
    "\n"
    " -h, --help             display this help\n"
    " -V, --version          display version\n";

static const char version_line[] = "nsfast ls " NSFAST_VERSION "\n";

/* ---------------------------------------------------------------- memory */

void *ls_alloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (!p)
        nsf_cli_die(LS_PROG, "out of memory");
    return p;
}

void *ls_grow(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        nsf_cli_die(LS_PROG, "out of memory");
    return p;
}

void ls_put(struct ls_buf *b, const void *data, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2 + 64;
        b->p = ls_grow(b->p, b->cap);
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
    b->p[b->n] = 0;
}

void ls_puts(struct ls_buf *b, const char *s)
{
    ls_put(b, s, strlen(s));
}

void ls_putc(struct ls_buf *b, char c)
{
    ls_put(b, &c, 1);
}

void ls_printf(struct ls_buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < (int)sizeof small) {
        ls_put(b, small, (size_t)n);
        return;
    }
    char *big = ls_alloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    ls_put(b, big, (size_t)n);
    free(big);
}

/* ---------------------------------------------------------------- the command line */

int ls_column_of(const char *name, size_t len)
{
    for (int c = 0; c < COL_COUNT; c++)
        if (strlen(ls_columns[c].name) == len && strncasecmp(ls_columns[c].name, name, len) == 0)
            return c;
    return -1;
}

enum { OPT_OUTPUT_ALL = 256 };

/* alphabetical, so that getopt lists an ambiguous abbreviation's
 * possibilities sorted */
static const struct option longopts[] = {
    {"filter", required_argument, 0, 'Q'},
    {"help", no_argument, 0, 'h'},
    {"json", no_argument, 0, 'J'},
    {"list", no_argument, 0, 'l'},
    {"noheadings", no_argument, 0, 'n'},
    {"notruncate", no_argument, 0, 'u'},
    {"nowrap", no_argument, 0, 'W'},
    {"output", required_argument, 0, 'o'},
    {"output-all", no_argument, 0, OPT_OUTPUT_ALL},
    {"persistent", no_argument, 0, 'P'},
    {"raw", no_argument, 0, 'r'},
    {"task", required_argument, 0, 'p'},
    {"tree", optional_argument, 0, 'T'},
    {"type", required_argument, 0, 't'},
    {"version", no_argument, 0, 'V'},
    {0, 0, 0, 0},
};

/* A decimal as lsns reads -p (signed) and the NS argument: digits only (a
 * leading '-' for signed), within [-top-1, top]; else exit 1 with WHAT. */
static unsigned long long number(const char *text, const char *what, int is_signed,
                                 unsigned long long top, int *negative)
{
    const char *digits = is_signed && text[0] == '-' ? text + 1 : text;
    int ok = *digits != 0;
    for (const char *p = digits; *p; p++)
        ok = ok && *p >= '0' && *p <= '9';
    errno = 0;
    unsigned long long v = ok ? strtoull(digits, 0, 10) : 0;
    *negative = digits != text;
    if (!ok || errno || v > top + (*negative ? 1 : 0))
        nsf_cli_die(LS_PROG, "%s: '%s'", what, text);
    return v;
}

static void add_column(struct ls_args *a, int col)
{
    if (a->ncolumns >= LS_MAX_COLUMNS)
        nsf_cli_die(LS_PROG, "too many columns (at most %d)", LS_MAX_COLUMNS);
    a->columns[a->ncolumns++] = col;
}

/* -o LIST: these columns, or with a leading + the current ones and these */
static void column_list(struct ls_args *a, const char *spec)
{
    if (*spec == '+')
        spec++;
    else
        a->ncolumns = 0;
    for (;;) {
        size_t len = strcspn(spec, ",");
        int col = ls_column_of(spec, len);
        if (col < 0)
            nsf_cli_die(LS_PROG, "unknown column: %.*s", (int)len, spec);
        add_column(a, col);
        if (!spec[len])
            return;
        spec += len + 1;
    }
}

static void default_columns(struct ls_args *a, int process)
{
    static const int by_namespace[] = {COL_NS, COL_TYPE, COL_NPROCS, COL_PID, COL_USER};
    static const int by_process[] = {COL_PID, COL_PPID, COL_USER, COL_COMMAND};
    if (process) {
        for (unsigned i = 0; i < sizeof by_process / sizeof *by_process; i++)
            add_column(a, by_process[i]);
        return;
    }
    for (unsigned i = 0; i < sizeof by_namespace / sizeof *by_namespace; i++)
        add_column(a, by_namespace[i]);
    if (a->types & (1u << K_NET)) {   /* -t net: before COMMAND */
        add_column(a, COL_NETNSID);
        add_column(a, COL_NSFS);
    }
    add_column(a, COL_COMMAND);
}

struct found {
    int opt;
    const char *value;
};

/* lsns's getopt_long "JlPp:o:nruhVt:T::WQ:" and its checks, in its order;
 * returns 1 for -h, 2 for -V */
static int parse(int argc, char **argv, struct ls_args *a)
{
    struct found *found = ls_alloc(sizeof *found * (size_t)argc);
    int nfound = 0, c, json = 0, raw = 0;
    argv[0] = LS_PROG;   /* getopt's messages: "nsfast ls: unrecognized option ..." */
    while ((c = getopt_long(argc, argv, "JlPp:o:nruhVt:T::WQ:", longopts, 0)) != -1) {
        if (c == '?' || c == ':')
            exit(1);
        json |= c == 'J';
        raw |= c == 'r';
        found[nfound++] = (struct found){c, optarg};
    }
    if (json && raw)
        nsf_cli_die(LS_PROG, "mutually exclusive arguments: --json --raw");
    const char *output = 0, *filter = 0;
    int force_list = 0, want_help = 0, version = 0, negative;
    for (int i = 0; i < nfound; i++) {
        const char *v = found[i].value;
        switch (found[i].opt) {
        case 'p': {
            /* as lsns: a 32-bit number, and 0 filters nothing */
            unsigned long long n = number(v, "invalid PID argument", 1, 0x7fffffffULL, &negative);
            a->task = negative ? -(long long)n : (long long)n;
            break;
        }
        case 't': {
            int k = 0;
            while (k < LS_KINDS && strcmp(ls_kind_names[k], v) != 0)
                k++;
            if (k == LS_KINDS)
                nsf_cli_die(LS_PROG, "unknown namespace type: %s", v);
            a->types |= 1u << k;
            break;
        }
        case 'T': {
            const char *how = v && *v ? v : "owner";
            if (*how == '=')
                how++;
            if (strcmp(how, "owner") == 0)
                a->tree = TREE_OWNER;
            else if (strcmp(how, "parent") == 0)
                a->tree = TREE_PARENT;
            else if (strcmp(how, "process") == 0)
                a->tree = TREE_PROCESS;
            else
                nsf_cli_die(LS_PROG, "unknown tree type: %s", how);
            break;
        }
        case 'o': output = v; break;
        case OPT_OUTPUT_ALL:
            a->ncolumns = 0;
            for (int col = 0; col < COL_LSNS_COUNT; col++)
                add_column(a, col);
            break;
        case 'l': force_list = 1; break;
        case 'Q': filter = v; break;
        case 'J': a->json = 1; break;
        case 'n': a->noheadings = 1; break;
        case 'r': a->raw = 1; break;
        case 'u': a->notruncate = 1; break;
        case 'W': a->nowrap = 1; break;
        case 'P': a->persistent = 1; break;
        case 'h': want_help = 1; break;
        case 'V': version = 1; break;
        }
    }
    free(found);
    if (a->raw)
        a->nowrap = 1;
    if (optind < argc) {
        if (a->task)
            nsf_cli_die(LS_PROG, "--task is mutually exclusive with <namespace>");
        a->namespace = number(argv[optind], "invalid namespace argument", 0, ~0ULL, &negative);
        a->has_namespace = 1;
        if (a->tree == TREE_NONE && !force_list)
            a->tree = TREE_PROCESS;
        if (!a->ncolumns)
            default_columns(a, 1);
    }
    if (!a->ncolumns) {
        default_columns(a, 0);
        if (a->tree == TREE_NONE && !force_list)
            a->tree = TREE_PROCESS;
    }
    if (output)
        column_list(a, output);
    if (filter)
        a->filter = ls_filter_compile(filter);
    return want_help ? 1 : version ? 2 : 0;
}

/* ---------------------------------------------------------------- the run */

static int uses(const struct ls_args *a, int col)
{
    for (int i = 0; i < a->ncolumns; i++)
        if (a->columns[i] == col)
            return 1;
    return a->filter && ls_filter_uses(a->filter, col);
}

/* Write it all to stdout; a reader that went away ends us quietly (0). */
static int write_out(const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(1, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EPIPE)
            return 0;
        if (w < 0)
            nsf_cli_die(LS_PROG, "write error: %s", strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int nsf_ls_main(int argc, char **argv)
{
    /* a closed pipe is EPIPE, as for the Python command this replaced */
    signal(SIGPIPE, SIG_IGN);
    struct ls_args a = {0};
    switch (parse(argc, argv, &a)) {
    case 1:
        return write_out(help, sizeof help - 1);
    case 2:
        return write_out(version_line, sizeof version_line - 1);
    }
    int by_tree = a.tree == TREE_OWNER || a.tree == TREE_PARENT;
    struct ls_needs needs = {
        .relations = by_tree || uses(&a, COL_PNS) || uses(&a, COL_ONS) ||
                     uses(&a, COL_PARENT) || uses(&a, COL_OWNER),
        .related = by_tree,
        .netnsid = uses(&a, COL_NETNSID),
        .creator = uses(&a, COL_UID) || uses(&a, COL_USER),
    };
    struct ls_world w = {0};
    ls_scan(&w, a.types, &needs);
    struct ls_rows rows = {0};
    if (a.has_namespace) {
        struct ls_ns *match = 0;
        for (int i = 0; i < w.nns && !match; i++)
            if (w.ns[i]->ino == a.namespace)
                match = w.ns[i];
        if (!match)
            nsf_cli_die(LS_PROG, "not found namespace: %llu", a.namespace);
        ls_process_rows(&w, match, &a, &rows);
    } else {
        ls_namespace_rows(&w, &a, &rows);
    }
    if (a.filter)
        ls_filter_rows(&rows, &a);
    struct ls_buf out = {0};
    if (a.json)
        ls_print_json(&rows, &a, &out);
    else if (rows.n)   /* no rows: not even the headings, as lsns */
        ls_print_table(&rows, &a, &out);
    return write_out(out.p, out.n);
}
