/* nsfast-runtime's create in C (csrc/cli_oci_create*.c): config.json, read
 * with json-c, turned into one struct nsf_spawn and cloned through the same
 * child as every spawn.
 *
 * nsfast/oci (Python) stays the reference: a translator here returns
 * OCI_FALLBACK for anything it does not handle exactly as Python does (a
 * field, a value, a malformed config), before create has changed anything,
 * and create then hands the whole command line to Python, which runs it or
 * names the error.  So every refusal message stays Python's, in one place,
 * and the C path only ever has to be right, never complete.
 * tests/test_oci_create_c.py compares what both make of the same bundles. */
#ifndef NSFAST_CLI_OCI_CREATE_H
#define NSFAST_CLI_OCI_CREATE_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <json-c/json.h>

#include "cli_oci.h"
#include "spawn.h"

#define OCI_FALLBACK 1      /* not handled here: Python's create takes over */

/* A cgroup hierarchy mounted at its root, as nsfast/oci/cgroup.py mounted()
 * names it: a v1 one by its sorted controllers and name= option
 * ("cpu,cpuacct", "memory", "name=systemd"), v2 as "unified". */
struct oci_hierarchy {
    char name[128];
    char mount[PATH_MAX];
};
#define OCI_MAX_HIERARCHIES OCI_MAX_CGROUPS

/* A growing list of mount steps; every string in it is malloc'd. */
struct oci_steps {
    struct nsf_mount_step *v;
    int n, cap;
};

/* ---- cli_oci_create_plan.c: the first phase, which changes nothing */
/* Everything the first phase builds; the child reads it (it shares this
 * memory) until it execs, after this process has exited */
struct oci_create_plan {
    const char *bundle_arg, *pid_file, *id;
    const char *env_path;            /* process.env's PATH, or NULL */
    const char *console_socket;      /* where the pty's master goes (process.terminal) */
    int terminal;
    char bundle[PATH_MAX], rootfs[PATH_MAX], config_path[PATH_MAX];
    char cgroups_path[PATH_MAX];     /* config's, or /nsfast-runtime/ID */
    struct json_object *config, *annotations, *resources;
    struct oci_hierarchy hier[OCI_MAX_HIERARCHIES];
    int n_hier;
    struct nsf_spawn sp;
    struct oci_steps steps;
    struct nsf_op ops[8];
    int n_ops;
    char **argv, **envp;
    const char **exec_paths;
    int groups[256];
    int join_fds[8], join_kinds[8];
    const char *join_paths[8];
    unsigned char *bpf;
    size_t bpf_len;
    struct { int resource; unsigned long long soft, hard; } rlimits[16];
    int n_rlimits;
    int oom_score_adj, has_oom_score_adj;
};

/* The command line (after `create`) and the bundle's config.json read, and
 * the whole spawn built in p (zeroed before): 0, or OCI_FALLBACK for what
 * Python's create is to run. */
int oci_create_plan(struct oci_create_plan *p, int argc, char **argv);
/* The parts exec shares (cli_oci_exec.c): the spawn's defaults; a
 * process object (process.* of config.json, or exec's process.json) into
 * p, as config.py process_options() reads it, and its rlimits and
 * oomScoreAdj, which create applies; linux.seccomp's program and
 * no_new_privs; a JSON object file read as Python's json.load reads it.
 * Each 0 or OCI_FALLBACK. */
void oci_plan_init(struct nsf_spawn *sp);
/* A flag with a value of create's and exec's command lines: "-f V",
 * "--flag V" or "--flag=V" into its slot.  1 when argv[*i] was one (*i
 * advanced past its value), 0 when not, -1 when its value is missing. */
struct oci_flag {
    const char *flag;
    const char **slot;
};
int oci_value_flag(const struct oci_flag *flags, int n_flags, int argc, char **argv, int *i);
int oci_plan_process(struct oci_create_plan *p, struct json_object *proc);
int oci_plan_seccomp(struct oci_create_plan *p, struct json_object *linux_config);
int oci_read_json(const char *path, struct json_object **out);

/* ---- cli_oci_create.c: making and recording the held child (exec too) */
/* The child's ready byte, with its pid as seen here (SCM_CREDENTIALS): the
 * process that will exec.  0 at end of file (the child failed). */
pid_t oci_wait_held(int sock);
/* process.terminal: a pty whose slave is the child's std streams and its
 * new session's controlling terminal; the master in *master.  0 or -1. */
int oci_open_terminal(struct nsf_spawn *sp, int *master);
/* The master to the console socket over SCM_RIGHTS, as runc sends it.  0 or -1. */
int oci_send_console(const char *path, int master);
/* Clone p's spawn into c's cgroups (the child joins them itself, first
 * thing), held before exec until a byte comes on go (EOF: it exits), and
 * wait until it holds.  Its pid as seen here, or 0 when it could not be
 * made or failed before it held (then it is reaped). */
pid_t oci_spawn_held(struct oci_create_plan *p, const struct oci_container *c, int go,
                     struct nsf_spawn_state *st);
/* The pid file, written whole and renamed into place.  0 or -errno. */
int oci_write_pid_file(const char *path, pid_t pid);

/* ---- cli_oci_json.c: the config's values as Python reads them */
/* obj.get(key): NULL when it is absent or null, or obj is no object. */
struct json_object *oci_json_get(struct json_object *obj, const char *key);
/* Python's bool() of the value json.load makes of v (NULL: None). */
int oci_json_truthy(struct json_object *v);
/* Python's bool(obj.get(key)): whether the config gives the field. */
int oci_json_given(struct json_object *obj, const char *key);
/* 0 when obj (NULL: absent) is an object with no key outside names (a
 * NULL-terminated list), else OCI_FALLBACK. */
int oci_json_only_keys(struct json_object *obj, const char *const *names);

/* ---- cli_oci_cgmake.c: the container's cgroups, made at create */
/* The hierarchies of /proc/self/mountinfo, in its order, as mounted() finds
 * them (the first mount of each name).  How many, or -errno. */
int oci_hierarchies(struct oci_hierarchy *out, int max);
/* OCI_FALLBACK unless linux.resources (NULL: absent) holds only what
 * oci_cgroup_make writes exactly as nsfast/oci/cgroup.py does, on these
 * hierarchies; else 0. */
int oci_resources_check(struct json_object *resources, const struct oci_hierarchy *h, int n);
/* Make the container's cgroup under each hierarchy at cgroups_path (the
 * config's, or "/nsfast-runtime/ID"), record the parents it made in
 * ROOT/cgroup-parents (under its flock, as cgroup.Parents does), write the
 * limits of resources, and fill c->cgroups / c->n_cgroups.  0, or -1 with
 * a one-line message in err (what was made is removed again). */
int oci_cgroup_make(const char *root, const char *cgroups_path,
                    struct json_object *resources, const struct oci_hierarchy *h, int n,
                    struct oci_container *c, char *err, size_t err_size);

/* ---- cli_oci_mounts.c: the child's mount steps */
/* The steps nsfast/oci/config.py mount_steps(config, rootfs, cgroup_rel)
 * makes, the same ones in the same order, appended to out: the rootfs bound
 * on itself, the config's mounts, the default devices, linux.devices (none
 * here: OCI_FALLBACK), masked and read-only paths, the read-only root, the
 * pivot.  cgroup_rel is "/" + the cgroups path without slashes around it.
 * 0, OCI_FALLBACK, or -errno. */
int oci_mount_steps(struct json_object *config, const char *rootfs, const char *cgroup_rel,
                    const struct oci_hierarchy *h, int n, struct oci_steps *out);
/* 0 when config.py check_program() would pass argv0 (env_path: the PATH of
 * process.env, or NULL), OCI_FALLBACK when it would raise. */
int oci_check_program(struct json_object *config, const char *rootfs, const char *argv0,
                      const char *env_path);
/* Print the steps one a line, as tests/test_oci_create_c.py prints
 * Python's: "KIND RO FLAGS SRC DST DATA", KIND the number, FLAGS in hex
 * (0x...), a missing string "-", bytes outside 0x21-0x7e as \xHH. */
void oci_print_steps(FILE *f, const struct oci_steps *s);
void oci_steps_free(struct oci_steps *s);

/* ---- cli_oci_seccomp.c: linux.seccomp through libseccomp */
/* The BPF program nsfast/oci/seccomp.py compile_profile() makes of the
 * profile, byte for byte (malloc'd into *prog, *len bytes), 0; OCI_FALLBACK
 * for what it does not handle as Python does; -errno when libseccomp fails. */
int oci_seccomp_bpf(struct json_object *profile, unsigned char **prog, size_t *len);
/* cli_oci_seccomp_cache.c: oci_seccomp_bpf's program, kept between creates
 * (root's /run/nsfast-runtime.seccomp); the same returns. */
int oci_seccomp_program(struct json_object *profile, unsigned char **prog, size_t *len);

#endif
