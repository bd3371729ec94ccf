/* `nsfast ls` (csrc/cli_ls*.c): lsns(8) in the launcher.  What the parts
 * share: the command line as parsed, the namespaces found, the rows shown
 * and a growable byte buffer for the output. */
#ifndef NSFAST_CLI_LS_H
#define NSFAST_CLI_LS_H

#include <stddef.h>
#include <sys/types.h>

#define LS_PROG "nsfast ls"
#define LS_MAX_COLUMNS 128

/* a growable byte string (cells, the whole output) */
struct ls_buf {
    char *p;
    size_t n, cap;
};
void ls_put(struct ls_buf *b, const void *data, size_t n);
void ls_puts(struct ls_buf *b, const char *s);
void ls_putc(struct ls_buf *b, char c);
void ls_printf(struct ls_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void *ls_alloc(size_t n);   /* zeroed, or exit 1 */
void *ls_grow(void *p, size_t n);

/* the columns: lsns's in its order (--output-all), then nsfast's own */
enum ls_col {
    COL_NS, COL_TYPE, COL_PATH, COL_NPROCS, COL_PID, COL_PPID, COL_COMMAND, COL_UID,
    COL_USER, COL_NETNSID, COL_NSFS, COL_PNS, COL_ONS, COL_LSNS_COUNT,
    COL_PARENT = COL_LSNS_COUNT, COL_OWNER, COL_FDS, COL_COUNT
};
struct ls_column {
    const char *name;
    char right;     /* right-aligned (unless it draws the tree) */
    char number;    /* a JSON number */
    char hint;      /* libsmartcols's width hint */
};
extern const struct ls_column ls_columns[COL_COUNT];
/* COL_* of a heading, any case; -1 for none */
int ls_column_of(const char *name, size_t len);

/* the kinds in lsns's order, which sorts namespaces of the same inode */
#define LS_KINDS 8
enum { K_MNT, K_NET, K_PID, K_USER, K_UTS, K_IPC, K_CGROUP, K_TIME };
extern const char *const ls_kind_names[LS_KINDS];

enum ls_tree { TREE_NONE, TREE_OWNER, TREE_PARENT, TREE_PROCESS };

struct ls_filter;   /* a compiled -Q expression (cli_ls_filter.c) */

struct ls_args {
    int json, raw, noheadings, nowrap, notruncate, persistent;
    int columns[LS_MAX_COLUMNS];
    int ncolumns;
    unsigned types;                 /* bit per K_*; 0: all */
    long long task;                 /* -p, 0 for none */
    int has_namespace;
    unsigned long long namespace;   /* the NS argument */
    enum ls_tree tree;
    struct ls_filter *filter;
};

/* a process the scan found in at least one namespace */
struct ls_proc {
    int pid;
    uid_t uid;
    int row;                        /* its latest row, -1 for none */
    int member;                     /* in the namespace the NS argument names */
    int ppid_read, ppid;            /* ppid -1: unreadable */
    int cmd_read, has_cmd;
    char *cmd;                      /* argv joined by spaces, else the comm */
    size_t cmd_len;
};

struct ls_holder {
    int pid, fd;
};

struct ls_ns {
    int kind;                       /* K_* */
    unsigned long long ino;
    int *members;                   /* indexes into the processes, in pid order */
    int nprocs, cap;
    char **mounts;                  /* nsfs bind mounts holding it */
    int nmounts;
    struct ls_holder *fds, *sockets;
    int nfds, nsockets;
    unsigned long long parent, owner;   /* 0: none or not told */
    long long uid;                  /* a user namespace's creator, -1: unknown */
    int netnsid;                    /* -1: unassigned */
    int row;                        /* its row in an owner or parent tree, -1 */
};

struct ls_world {
    struct ls_proc *procs;          /* in pid order */
    int nprocs;
    struct ls_ns **ns;              /* in lsns's order: inode, then kind */
    int nns;
};

/* What the listing needs besides the process scan. */
struct ls_needs {
    int relations;                  /* parents and owners */
    int related;                    /* add the user and pid namespaces they name */
    int netnsid;
    int creator;                    /* the creator of a user namespace no process is in */
};

/* cli_ls_scan.c: every namespace of the kinds asked for (all when 0) */
void ls_scan(struct ls_world *w, unsigned kinds, const struct ls_needs *needs);
struct ls_ns *ls_find(struct ls_world *w, int kind, unsigned long long ino);
struct ls_proc *ls_proc_of(struct ls_world *w, int pid);
/* ppid (-1 unreadable) and command line, read once, when shown */
int ls_ppid(struct ls_proc *p);
int ls_command(struct ls_proc *p);

/* cli_ls_rows.c */
struct ls_row {
    struct ls_ns *ns;
    struct ls_proc *proc;           /* the process shown, NULL for none */
    int parent;                     /* a row index, -1 for none */
    int *children;
    int nchildren, cap;
};
struct ls_rows {
    struct ls_row *r;
    int n, cap;
};
void ls_namespace_rows(struct ls_world *w, const struct ls_args *a, struct ls_rows *rows);
void ls_process_rows(struct ls_world *w, struct ls_ns *ns, const struct ls_args *a,
                     struct ls_rows *rows);
/* Drop the rows the filter refuses; a row moves up to its nearest kept ancestor. */
void ls_filter_rows(struct ls_rows *rows, const struct ls_args *a);
/* The text of a cell into out (emptied first); 0 for an empty cell (None). */
int ls_cell(const struct ls_row *row, int col, const struct ls_args *a, struct ls_buf *out);

/* cli_ls_print.c */
void ls_print_table(const struct ls_rows *rows, const struct ls_args *a, struct ls_buf *out);
void ls_print_json(const struct ls_rows *rows, const struct ls_args *a, struct ls_buf *out);

/* cli_ls_filter.c: compile text, or exit 1 with lsns's message */
struct ls_filter *ls_filter_compile(const char *text);
/* whether the filter reads a column */
int ls_filter_uses(const struct ls_filter *f, int col);
int ls_filter_holds(const struct ls_filter *f, const struct ls_row *row,
                    const struct ls_args *a);

#endif
