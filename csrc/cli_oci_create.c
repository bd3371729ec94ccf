/* nsfast-runtime create, in C: the container made and held on exec.fifo
 * without starting Python, as nsfast/oci/runtime.py create() makes it.
 *
 * Two phases.  The first reads the command line and config.json and builds
 * the whole spawn (struct nsf_spawn, its mount steps, its seccomp program)
 * in memory, changing nothing: whatever it does not handle exactly as
 * Python does sends the command to Python (OCI_FALLBACK, see
 * cli_oci_create.h).  The second makes the state directory, the cgroups and
 * the fifo, clones the child, which joins its cgroups, makes its namespaces
 * and mounts and holds before exec, and records it.  A failure there is
 * cleaned up as `delete --force` cleans up, and the command is handed to
 * Python, which does it again and says what failed in its words. */
#include "cli.h"
#include "cli_oci_create.h"
#include "compat.h"
#include "nscore.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* everything the first phase builds; the child reads it (it shares this
 * memory) until it execs, after this process has exited */
struct create_plan {
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

#define NOT_HERE(...) return OCI_FALLBACK

/* a string without NUL bytes, or NULL */
static const char *string_of(struct json_object *v)
{
    if (!v || !json_object_is_type(v, json_type_string))
        return NULL;
    const char *s = json_object_get_string(v);
    return strlen(s) == (size_t)json_object_get_string_len(v) ? s : NULL;
}

/* an integer in [lo, hi] into *out; 0 or OCI_FALLBACK */
static int integer_of(struct json_object *v, long long lo, long long hi, long long *out)
{
    if (!v || !json_object_is_type(v, json_type_int))
        return OCI_FALLBACK;
    errno = 0;
    long long n = json_object_get_int64(v);
    if (errno || n < lo || n > hi)
        return OCI_FALLBACK;
    *out = n;
    return 0;
}

/* ------------------------------------------------------------ command line */

static int parse_args(struct create_plan *p, int argc, char **argv)
{
    p->bundle_arg = ".";
    const struct { const char *flag; const char **slot; } with_value[] = {
        {"--bundle", &p->bundle_arg}, {"-b", &p->bundle_arg}, {"--pid-file", &p->pid_file},
        {"--console-socket", &p->console_socket}};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], **value = NULL;
        size_t n = 0;
        for (unsigned k = 0; k < sizeof with_value / sizeof with_value[0]; k++) {
            n = strlen(with_value[k].flag);
            if (strncmp(a, with_value[k].flag, n) == 0 &&
                (a[n] == 0 || (a[n] == '=' && a[1] == '-'))) {
                value = with_value[k].slot;
                break;
            }
        }
        if (value) {
            if (a[n] == '=')
                *value = a + n + 1;
            else if (i + 1 < argc && argv[i + 1][0] != '-')
                *value = argv[++i];
            else
                NOT_HERE("a flag without its value");
        } else if (strcmp(a, "--no-pivot") == 0 || strcmp(a, "--no-new-keyring") == 0 ||
                   strcmp(a, "--preserve-fds=0") == 0) {
            continue;
        } else if (a[0] == '-' || p->id) {
            NOT_HERE("a flag or argument of Python's parser alone");
        } else {
            p->id = a;
        }
    }
    if (!p->id || !*p->bundle_arg)
        NOT_HERE("no id");
    /* runc's id rule (state.py check_id) */
    size_t n = strlen(p->id);
    if (n > 1024)
        NOT_HERE("id too long");
    for (size_t i = 0; i < n; i++) {
        char ch = p->id[i];
        int alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9');
        if (!(alnum || (i > 0 && ch && strchr("_.+-", ch))))
            NOT_HERE("bad id");
    }
    return 0;
}

/* ------------------------------------------------------------ config.json */

static int read_config(struct create_plan *p)
{
    if (!realpath(p->bundle_arg, p->bundle))
        NOT_HERE("no bundle");
    if ((size_t)snprintf(p->config_path, sizeof p->config_path, "%s/config.json",
                         p->bundle) >= sizeof p->config_path)
        NOT_HERE("path too long");
    int fd = open(p->config_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        NOT_HERE("no config.json");
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_size > (64 << 20)) {
        close(fd);
        NOT_HERE("too large");
    }
    char *text = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (text && got < (size_t)st.st_size) {
        ssize_t r = read(fd, text + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (!text || got != (size_t)st.st_size) {
        free(text);
        NOT_HERE("unreadable");
    }
    text[got] = 0;
    /* json-c cuts a key at an escaped NUL, Python keeps it whole; it
     * reads a lone surrogate as U+FFFD, Python as that code point */
    int odd = strstr(text, "\\u0000") != NULL;
    for (const char *u = strstr(text, "\\u"); u && !odd; u = strstr(u + 2, "\\u"))
        odd = (u[2] == 'd' || u[2] == 'D') && strchr("89abcdefABCDEF", u[3]) && u[3];
    if (odd) {
        free(text);
        NOT_HERE("an escaped NUL");
    }
    struct json_tokener *tok = json_tokener_new();
    if (!tok) {
        free(text);
        NOT_HERE("no memory");
    }
    /* strict: what Python's json module refuses is refused here */
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    p->config = json_tokener_parse_ex(tok, text, (int)got);
    int whole = json_tokener_get_error(tok) == json_tokener_success &&
                tok->char_offset == (int)got;
    json_tokener_free(tok);
    free(text);
    if (!p->config || !whole || !json_object_is_type(p->config, json_type_object))
        NOT_HERE("not a JSON object");
    return 0;
}

static const char *const top_keys[] = {"ociVersion", "process", "root", "hostname",
    "domainname", "mounts", "hooks", "linux", "annotations", NULL};
static const char *const process_keys[] = {"terminal", "consoleSize", "user", "args", "env",
    "cwd", "capabilities", "rlimits", "noNewPrivileges", "oomScoreAdj", "apparmorProfile",
    "selinuxLabel", NULL};
static const char *const user_keys[] = {"uid", "gid", "umask", "additionalGids",
    "username", NULL};
static const char *const root_keys[] = {"path", "readonly", NULL};
static const char *const linux_keys[] = {"namespaces", "uidMappings", "gidMappings",
    "resources", "cgroupsPath", "seccomp", "maskedPaths", "readonlyPaths", "devices",
    "sysctl", "rootfsPropagation", "mountLabel", NULL};
static const char *const hook_keys[] = {"prestart", "createRuntime", "createContainer",
    "startContainer", "poststart", "poststop", NULL};

/* plan.py _capability_names(), by number */
static const char *const cap_names[] = {"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER",
    "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE",
    "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE",
    "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE",
    "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
    "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE"};

/* a capability list -> its mask; absent is 0 (*present 0) */
static int cap_set(struct json_object *caps, const char *name, uint64_t *mask, int *present)
{
    struct json_object *list = oci_json_get(caps, name);
    *mask = 0;
    *present = list != NULL;
    if (!list)
        return 0;
    if (!json_object_is_type(list, json_type_array))
        NOT_HERE("not a list");
    for (size_t i = 0; i < json_object_array_length(list); i++) {
        const char *s = string_of(json_object_array_get_idx(list, i));
        if (!s || strncmp(s, "CAP_", 4) != 0)
            NOT_HERE("not a capability name");
        unsigned k = 0;
        while (k < sizeof cap_names / sizeof cap_names[0] && strcmp(s + 4, cap_names[k]) != 0)
            k++;
        if (k == sizeof cap_names / sizeof cap_names[0])
            NOT_HERE("unknown capability");
        *mask |= 1ULL << k;
    }
    return 0;
}

/* config.py _capabilities(): bounding kept in every set, ambient raised */
static int capabilities(struct create_plan *p, struct json_object *caps, long long uid)
{
    static const char *const sets[] = {"bounding", "effective", "permitted", "inheritable",
                                       "ambient", NULL};
    uint64_t m[5];
    int present[5];
    if (oci_json_only_keys(caps, sets) || !json_object_is_type(caps, json_type_object))
        NOT_HERE("capability sets");
    for (int i = 0; i < 5; i++)
        if (cap_set(caps, sets[i], &m[i], &present[i]))
            return OCI_FALLBACK;
    for (int i = 1; i < 5; i++)
        if (m[i] & ~m[0])
            NOT_HERE("outside the bounding set");
    for (int i = 2; i < 4; i++)   /* permitted, inheritable: ambient among them */
        if (present[i] && (m[4] & ~m[i]))
            NOT_HERE("ambient not permitted or inheritable");
    p->sp.use_caps = 1;
    p->sp.caps_keep = m[0];
    p->sp.caps_ambient = m[4];
    if (uid != 0)
        p->sp.no_new_privs = 1;
    return 0;
}

static const struct { const char *name; int resource; } rlimit_names[] = {
    {"RLIMIT_CPU", RLIMIT_CPU}, {"RLIMIT_FSIZE", RLIMIT_FSIZE}, {"RLIMIT_DATA", RLIMIT_DATA},
    {"RLIMIT_STACK", RLIMIT_STACK}, {"RLIMIT_CORE", RLIMIT_CORE}, {"RLIMIT_RSS", RLIMIT_RSS},
    {"RLIMIT_NPROC", RLIMIT_NPROC}, {"RLIMIT_NOFILE", RLIMIT_NOFILE},
    {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK}, {"RLIMIT_AS", RLIMIT_AS},
    {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE}, {"RLIMIT_NICE", RLIMIT_NICE},
    {"RLIMIT_RTPRIO", RLIMIT_RTPRIO}, {"RLIMIT_RTTIME", RLIMIT_RTTIME},
    {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
};

static int rlimits(struct create_plan *p, struct json_object *list)
{
    if (!list)
        return 0;
    if (!json_object_is_type(list, json_type_array) ||
        json_object_array_length(list) > sizeof p->rlimits / sizeof p->rlimits[0])
        NOT_HERE("rlimits");
    for (size_t i = 0; i < json_object_array_length(list); i++) {
        struct json_object *r = json_object_array_get_idx(list, i);
        const char *type = string_of(oci_json_get(r, "type"));
        long long soft, hard;
        unsigned k = 0;
        while (type && k < sizeof rlimit_names / sizeof rlimit_names[0] &&
               strcmp(type, rlimit_names[k].name) != 0)
            k++;
        if (!type || k == sizeof rlimit_names / sizeof rlimit_names[0] ||
            integer_of(oci_json_get(r, "soft"), 0, INT64_MAX, &soft) ||
            integer_of(oci_json_get(r, "hard"), 0, INT64_MAX, &hard) || soft > hard)
            NOT_HERE("an rlimit");
        p->rlimits[p->n_rlimits].resource = rlimit_names[k].resource;
        p->rlimits[p->n_rlimits].soft = (unsigned long long)soft;
        p->rlimits[p->n_rlimits].hard = (unsigned long long)hard;
        p->n_rlimits++;
    }
    return 0;
}

/* process.env as Python's dict makes it: a name once, at its first place,
 * with its last value */
static int environment(struct create_plan *p, struct json_object *env, const char **path)
{
    size_t n = env ? json_object_array_length(env) : 0;
    if (env && !json_object_is_type(env, json_type_array))
        NOT_HERE("env");
    p->envp = calloc(n + 1, sizeof *p->envp);
    if (!p->envp)
        NOT_HERE("memory");
    size_t out = 0;
    *path = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *item = string_of(json_object_array_get_idx(env, i));
        const char *eq = item ? strchr(item, '=') : NULL;
        if (!eq || eq == item)
            NOT_HERE("an env entry without a name");
        size_t klen = (size_t)(eq - item) + 1;
        size_t k = 0;
        while (k < out && strncmp(p->envp[k], item, klen) != 0)
            k++;
        p->envp[k] = (char *)item;
        if (k == out)
            out++;
    }
    for (size_t k = 0; k < out; k++)
        if (strncmp(p->envp[k], "PATH=", 5) == 0)
            *path = p->envp[k] + 5;
    return 0;
}

/* plan.py _exec_paths: the program itself when it has a slash, else each
 * directory of PATH (os.defpath without one) joined with it */
static int exec_paths(struct create_plan *p, const char *program, const char *path)
{
    if (strchr(program, '/')) {
        p->exec_paths = calloc(2, sizeof *p->exec_paths);
        if (!p->exec_paths)
            NOT_HERE("memory");
        p->exec_paths[0] = program;
        return 0;
    }
    if (!path)
        path = "/bin:/usr/bin";
    size_t n = 1;
    for (const char *c = path; *c; c++)
        n += *c == ':';
    p->exec_paths = calloc(n + 1, sizeof *p->exec_paths);
    if (!p->exec_paths)
        NOT_HERE("memory");
    const char *start = path;
    for (size_t i = 0; i < n; i++) {
        size_t len = strcspn(start, ":");
        char *joined = malloc(len + strlen(program) + 2);
        if (!joined)
            NOT_HERE("memory");
        if (len == 0)
            strcpy(joined, program);   /* os.path.join("", program) */
        else if (start[len - 1] == '/')
            sprintf(joined, "%.*s%s", (int)len, start, program);
        else
            sprintf(joined, "%.*s/%s", (int)len, start, program);
        p->exec_paths[i] = joined;
        start += len + (start[len] == ':');
    }
    return 0;
}

static int process(struct create_plan *p, struct json_object *proc)
{
    if (!proc || oci_json_only_keys(proc, process_keys))
        NOT_HERE("process");
    if (oci_json_given(proc, "apparmorProfile") || oci_json_given(proc, "selinuxLabel"))
        NOT_HERE("an LSM");
    /* without a console socket Python names the error */
    p->terminal = oci_json_given(proc, "terminal");
    if (p->terminal && !(p->console_socket && *p->console_socket))
        NOT_HERE("a terminal without --console-socket");
    struct json_object *args = oci_json_get(proc, "args");
    if (!args || !json_object_is_type(args, json_type_array) ||
        json_object_array_length(args) == 0)
        NOT_HERE("args");
    size_t n = json_object_array_length(args);
    p->argv = calloc(n + 1, sizeof *p->argv);
    if (!p->argv)
        NOT_HERE("memory");
    for (size_t i = 0; i < n; i++)
        if (!(p->argv[i] = (char *)string_of(json_object_array_get_idx(args, i))))
            NOT_HERE("an argument");
    if (!p->argv[0][0])
        NOT_HERE("an empty program");
    if (environment(p, oci_json_get(proc, "env"), &p->env_path) ||
        exec_paths(p, p->argv[0], p->env_path))
        return OCI_FALLBACK;
    struct json_object *cwd = oci_json_get(proc, "cwd");
    p->sp.cwd = oci_json_truthy(cwd) ? string_of(cwd) : "/";
    if (!p->sp.cwd)
        NOT_HERE("cwd");
    struct json_object *user = oci_json_get(proc, "user");
    long long uid = 0, gid = 0, umask_value;
    if (oci_json_only_keys(user, user_keys) || oci_json_given(user, "username"))
        NOT_HERE("user");
    struct json_object *uid_v = oci_json_get(user, "uid"), *gid_v = oci_json_get(user, "gid");
    if ((uid_v && integer_of(uid_v, 0, 0xfffffffeLL, &uid)) ||
        (gid_v && integer_of(gid_v, 0, 0xfffffffeLL, &gid)))
        NOT_HERE("uid, gid");
    p->sp.uid = (long)uid;
    p->sp.gid = (long)gid;
    struct json_object *groups = oci_json_get(user, "additionalGids");
    p->sp.n_groups = 0;
    if (groups) {
        if (!json_object_is_type(groups, json_type_array) ||
            json_object_array_length(groups) > sizeof p->groups / sizeof p->groups[0])
            NOT_HERE("additionalGids");
        for (size_t i = 0; i < json_object_array_length(groups); i++) {
            long long g;
            if (integer_of(json_object_array_get_idx(groups, i), 0, 0xfffffffeLL, &g))
                NOT_HERE("a gid");
            p->groups[p->sp.n_groups++] = (int)g;
        }
    }
    p->sp.groups = p->groups;
    if (oci_json_get(user, "umask")) {
        if (integer_of(oci_json_get(user, "umask"), 0, 0777, &umask_value))
            NOT_HERE("umask");
        p->ops[p->n_ops++] = (struct nsf_op){.step = NSF_STEP_UMASK, .a = umask_value};
    }
    struct json_object *nnp = oci_json_get(proc, "noNewPrivileges");
    if (nnp && !json_object_is_type(nnp, json_type_boolean))
        NOT_HERE("noNewPrivileges");
    p->sp.no_new_privs = oci_json_truthy(nnp);
    struct json_object *caps = oci_json_get(proc, "capabilities");
    if (caps && capabilities(p, caps, uid))
        return OCI_FALLBACK;
    if (rlimits(p, oci_json_get(proc, "rlimits")))
        return OCI_FALLBACK;
    struct json_object *oom = oci_json_get(proc, "oomScoreAdj");
    long long adj;
    if (oom) {
        if (integer_of(oom, -1000, 1000, &adj))
            NOT_HERE("oomScoreAdj");
        p->oom_score_adj = (int)adj;
        p->has_oom_score_adj = 1;
    }
    return 0;
}

static const struct { const char *type; int flag; } kinds[] = {
    {"pid", CLONE_NEWPID}, {"network", CLONE_NEWNET}, {"ipc", CLONE_NEWIPC},
    {"uts", CLONE_NEWUTS}, {"mount", CLONE_NEWNS}, {"cgroup", CLONE_NEWCGROUP},
    {"time", CLONE_NEWTIME},
};

/* a namespace joined through its path: opened now, and checked to be of
 * its kind, as targets.open_namespace does */
static int join_path(struct create_plan *p, const char *path, int kind)
{
    if (!path || path[0] != '/' || p->sp.join.count == 8)
        NOT_HERE("a join Python would refuse or word");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || nsf_ns_ioctl(fd, NS_GET_NSTYPE) != kind) {
        if (fd >= 0)
            close(fd);
        NOT_HERE("not a namespace of that kind");
    }
    p->join_paths[p->sp.join.count] = path;
    p->join_fds[p->sp.join.count] = fd;
    p->join_kinds[p->sp.join.count] = kind;
    p->sp.join.count++;
    p->sp.join.fds = p->join_fds;
    p->sp.join.kinds = p->join_kinds;
    return 0;
}

static int namespaces(struct create_plan *p, struct json_object *list)
{
    int seen = 0;
    if (list && !json_object_is_type(list, json_type_array))
        NOT_HERE("namespaces");
    for (size_t i = 0; list && i < json_object_array_length(list); i++) {
        struct json_object *ns = json_object_array_get_idx(list, i);
        const char *type = string_of(oci_json_get(ns, "type"));
        unsigned k = 0;
        while (type && k < sizeof kinds / sizeof kinds[0] && strcmp(type, kinds[k].type) != 0)
            k++;
        /* a user namespace (its maps, the ids inside) is Python's */
        if (!type || k == sizeof kinds / sizeof kinds[0] || (seen & kinds[k].flag))
            NOT_HERE("a namespace of Python's, or one given twice");
        seen |= kinds[k].flag;
        if (!oci_json_given(ns, "path"))
            p->sp.new_kinds |= kinds[k].flag;
        else if (join_path(p, string_of(oci_json_get(ns, "path")), kinds[k].flag))
            return OCI_FALLBACK;
    }
    if (!(p->sp.new_kinds & CLONE_NEWNS))
        NOT_HERE("no new mount namespace");
    return 0;
}

static int uts_name(struct create_plan *p, const char *key, const char **out)
{
    struct json_object *v = oci_json_get(p->config, key);
    if (!oci_json_truthy(v))
        return 0;
    const char *s = string_of(v);
    if (!s || strlen(s) > 64 || !(p->sp.new_kinds & CLONE_NEWUTS))
        NOT_HERE("hostname");
    *out = s;
    return 0;
}

/* a path Python would write into state.json as this text (no escapes) */
static int plain_text(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            return 0;
    return 1;
}

static int translate(struct create_plan *p)
{
    struct json_object *cfg = p->config, *lx = oci_json_get(cfg, "linux");
    if (oci_json_only_keys(cfg, top_keys) ||
        oci_json_only_keys(oci_json_get(cfg, "root"), root_keys) ||
        oci_json_only_keys(lx, linux_keys) ||
        oci_json_only_keys(oci_json_get(cfg, "hooks"), hook_keys))
        NOT_HERE("a field Python refuses");
    struct json_object *all_hooks = oci_json_get(cfg, "hooks");
    if (all_hooks) {
        json_object_object_foreach(all_hooks, kind, hooks) {
            (void)kind;
            if (oci_json_truthy(hooks))
                NOT_HERE("hooks");
        }
    }
    const char *root = string_of(oci_json_get(oci_json_get(cfg, "root"), "path"));
    char joined[PATH_MAX];
    if (!root || !*root)
        NOT_HERE("root.path");
    if ((size_t)snprintf(joined, sizeof joined, "%s/%s", root[0] == '/' ? "" : p->bundle,
                         root) >= sizeof joined || !realpath(joined, p->rootfs))
        NOT_HERE("rootfs");
    if (!plain_text(p->bundle) || !plain_text(p->rootfs))
        NOT_HERE("a path state.json would escape");
    struct json_object *ro = oci_json_get(oci_json_get(cfg, "root"), "readonly");
    if (ro && !json_object_is_type(ro, json_type_boolean))
        NOT_HERE("root.readonly");
    if (process(p, oci_json_get(cfg, "process")))
        return OCI_FALLBACK;
    if (oci_json_given(lx, "mountLabel") || oci_json_given(lx, "uidMappings") ||
        oci_json_given(lx, "gidMappings") || oci_json_given(lx, "sysctl") ||
        oci_json_given(lx, "devices"))
        NOT_HERE("a linux field of Python's");
    if (namespaces(p, oci_json_get(lx, "namespaces")) ||
        uts_name(p, "hostname", &p->sp.hostname) ||
        uts_name(p, "domainname", &p->sp.domainname))
        return OCI_FALLBACK;
    static const struct { const char *name; unsigned long flags; } propagations[] = {
        {"rprivate", MS_PRIVATE}, {"private", MS_PRIVATE}, {"rslave", MS_SLAVE},
        {"slave", MS_SLAVE}, {"rshared", MS_SHARED}, {"shared", MS_SHARED}};
    struct json_object *prop = oci_json_get(lx, "rootfsPropagation");
    const char *prop_name = oci_json_truthy(prop) ? string_of(prop) : "rslave";
    unsigned k = 0;
    while (prop_name && k < sizeof propagations / sizeof propagations[0] &&
           strcmp(prop_name, propagations[k].name) != 0)
        k++;
    if (!prop_name || k == sizeof propagations / sizeof propagations[0])
        NOT_HERE("rootfsPropagation");
    p->sp.propagation = propagations[k].flags | MS_REC;
    p->annotations = oci_json_get(cfg, "annotations");
    if (p->annotations && !json_object_is_type(p->annotations, json_type_object))
        NOT_HERE("annotations");
    /* cgroups */
    p->resources = oci_json_get(lx, "resources");
    if (p->resources && !json_object_is_type(p->resources, json_type_object))
        NOT_HERE("resources");
    struct json_object *cgp = oci_json_get(lx, "cgroupsPath");
    const char *cg = oci_json_truthy(cgp) ? string_of(cgp) : NULL;
    if (oci_json_truthy(cgp) && !cg)
        NOT_HERE("cgroupsPath");
    if ((size_t)(cg ? snprintf(p->cgroups_path, sizeof p->cgroups_path, "%s", cg)
                    : snprintf(p->cgroups_path, sizeof p->cgroups_path, "/nsfast-runtime/%s",
                               p->id)) >= sizeof p->cgroups_path - 64)
        NOT_HERE("cgroupsPath too long");
    int below_root = 0;   /* a part other than "" and ".": not the root cgroup */
    for (const char *part = p->cgroups_path; *part; part += strcspn(part, "/")) {
        part += strspn(part, "/");
        size_t n = strcspn(part, "/");
        below_root |= n && !(n == 1 && part[0] == '.');
    }
    if (!below_root)
        NOT_HERE("the root cgroup");
    p->n_hier = oci_hierarchies(p->hier, OCI_MAX_HIERARCHIES);
    if (p->n_hier < 0 || oci_resources_check(p->resources, p->hier, p->n_hier))
        NOT_HERE("resources or hierarchies");
    /* mounts: "/" + the cgroups path without slashes around it */
    char rel[PATH_MAX];
    const char *c = p->cgroups_path;
    while (*c == '/')
        c++;
    size_t len = strlen(c);
    while (len && c[len - 1] == '/')
        len--;
    snprintf(rel, sizeof rel, "/%.*s", (int)len, c);
    if (oci_check_program(cfg, p->rootfs, p->argv[0], p->env_path) ||
        oci_mount_steps(cfg, p->rootfs, rel, p->hier, p->n_hier, &p->steps))
        NOT_HERE("mounts or program");
    /* seccomp: the filter wants no_new_privs (config.py seccomp_options) */
    struct json_object *seccomp = oci_json_get(lx, "seccomp");
    if (oci_json_truthy(seccomp)) {
        if (oci_seccomp_program(seccomp, &p->bpf, &p->bpf_len) || p->bpf_len % 8)
            NOT_HERE("seccomp");
        p->ops[p->n_ops++] = (struct nsf_op){.step = NSF_STEP_SECCOMP,
                                             .a = (int64_t)(p->bpf_len / 8),
                                             .s = (const char *)p->bpf};
        p->sp.no_new_privs = 1;
    }
    return 0;
}

/* ------------------------------------------------------------ the plan, printed */

/* bytes outside 0x21-0x7e, and the backslash, as \xHH: as oci_print_steps */
static void print_text(FILE *f, const char *s)
{
    if (!s) {
        fputc('-', f);
        return;
    }
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (*c < 0x21 || *c > 0x7e || *c == '\\')
            fprintf(f, "\\x%02x", *c);
        else
            fputc(*c, f);
}

static void print_list(FILE *f, const char *name, char *const *v)
{
    fputs(name, f);
    for (; v && *v; v++) {
        fputc(' ', f);
        print_text(f, *v);
    }
    fputc('\n', f);
}

/* NSFAST_OCI_PLAN=1: what create would do, printed instead of done, in the
 * form tests/test_oci_create_c.py prints Python's plan */
static void print_plan(FILE *f, const struct create_plan *p)
{
    const struct nsf_spawn *sp = &p->sp;
    fprintf(f, "rootfs ");
    print_text(f, p->rootfs);
    fprintf(f, "\nnew 0x%x\nhostname ", sp->new_kinds);
    print_text(f, sp->hostname);
    fprintf(f, "\ndomainname ");
    print_text(f, sp->domainname);
    for (int i = 0; i < sp->join.count; i++) {
        fprintf(f, "\njoin 0x%x ", sp->join.kinds[i]);
        print_text(f, p->join_paths[i]);
    }
    fprintf(f, "\npropagation 0x%lx\nids %ld %ld groups", sp->propagation, sp->uid, sp->gid);
    for (int i = 0; i < sp->n_groups; i++)
        fprintf(f, " %d", sp->groups[i]);
    fprintf(f, "\ncaps %d 0x%llx 0x%llx\nno_new_privs %d\ncwd ", sp->use_caps,
            (unsigned long long)sp->caps_keep, (unsigned long long)sp->caps_ambient,
            sp->no_new_privs);
    print_text(f, sp->cwd);
    fputc('\n', f);
    print_list(f, "argv", sp->argv);
    print_list(f, "env", sp->envp);
    print_list(f, "exec_paths", (char *const *)p->exec_paths);
    for (int i = 0; i < p->n_ops; i++) {
        const struct nsf_op *op = &p->ops[i];
        if (op->step == NSF_STEP_UMASK)
            fprintf(f, "umask 0%llo\n", (unsigned long long)op->a);
        if (op->step == NSF_STEP_SECCOMP) {
            fprintf(f, "seccomp %lld ", (long long)op->a);
            for (size_t k = 0; k < p->bpf_len; k++)
                fprintf(f, "%02x", p->bpf[k]);
            fputc('\n', f);
        }
    }
    for (int i = 0; i < p->n_rlimits; i++)
        fprintf(f, "rlimit %d %llu %llu\n", p->rlimits[i].resource, p->rlimits[i].soft,
                p->rlimits[i].hard);
    if (p->has_oom_score_adj)
        fprintf(f, "oom_score_adj %d\n", p->oom_score_adj);
    fprintf(f, "cgroups_path ");
    print_text(f, p->cgroups_path);
    fputc('\n', f);
    oci_print_steps(f, &p->steps);
}

/* ------------------------------------------------------------ making it */

/* now as runc writes times (state.py timestamp()) */
static void timestamp(char *out, size_t size)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, size - n, ".%06ldZ", ts.tv_nsec / 1000);
}

/* a whole file, written under NAME.tmp and renamed into place */
static int replace_file(const struct oci_container *c, const char *name, const char *text)
{
    char path[PATH_MAX], tmp[PATH_MAX], tmp_name[64];
    snprintf(tmp_name, sizeof tmp_name, "%s.tmp", name);
    oci_file(c, name, path, sizeof path);
    int fd = open(oci_file(c, tmp_name, tmp, sizeof tmp),
                  O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    size_t len = strlen(text), done = 0;
    while (done < len) {
        ssize_t n = write(fd, text + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            return -e;
        }
        done += (size_t)n;
    }
    return close(fd) < 0 || rename(tmp, path) < 0 ? -errno : 0;
}

/* state.json: the fields of the spec's state that do not change */
static int save_public(const struct oci_container *c, const struct create_plan *p)
{
    char created[64];
    timestamp(created, sizeof created);
    struct json_object *o = json_object_new_object();
    if (!o)
        return -ENOMEM;
    json_object_object_add(o, "bundle", json_object_new_string(p->bundle));
    json_object_object_add(o, "rootfs", json_object_new_string(p->rootfs));
    json_object_object_add(o, "created", json_object_new_string(created));
    json_object_object_add(o, "owner", json_object_new_string(""));
    json_object_object_add(o, "annotations", p->annotations ? json_object_get(p->annotations)
                                                            : json_object_new_object());
    const char *text = json_object_to_json_string_ext(
        o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
    int r = text ? replace_file(c, "state.json", text) : -ENOMEM;
    json_object_put(o);
    return r;
}

static int write_pid_file(const char *path, pid_t pid)
{
    char tmp[PATH_MAX + 32], text[32];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid()) >= sizeof tmp)
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int n = snprintf(text, sizeof text, "%d", (int)pid);
    if (write(fd, text, (size_t)n) != n || close(fd) < 0 || rename(tmp, path) < 0)
        return -errno;
    return 0;
}

/* The child's ready byte, with its pid (as seen here) from SCM_CREDENTIALS:
 * the process that will exec, also after a fork into a pid namespace.
 * The pid, or 0 at end of file (the child failed). */
static pid_t wait_held(int sock)
{
    char byte = 0;
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(struct ucred))];
    } control;
    struct iovec iov = {&byte, 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                         .msg_controllen = sizeof control.buf};
    ssize_t n;
    do
        n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n != 1 || byte != 'r')
        return 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_CREDENTIALS) {
            struct ucred cred;
            memcpy(&cred, CMSG_DATA(cm), sizeof cred);
            return cred.pid;
        }
    return 0;
}

/* process.terminal: a new pty whose slave becomes the container's std
 * streams and its new session's controlling terminal; the master, for the
 * console socket, in *master.  Both ends CLOEXEC here.  0 or -1. */
static int open_terminal(struct nsf_spawn *sp, int *master)
{
    char name[64];
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, name, sizeof name) != 0)
        return -1;
    int slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0)
        return -1;
    *master = m;
    sp->std_fds[0] = sp->std_fds[1] = sp->std_fds[2] = slave;
    sp->new_session = sp->controlling_tty = 1;
    return 0;
}

/* The pty's master to the console socket over SCM_RIGHTS, as runc sends it
 * (runtime.py _send_console).  0 or -1. */
static int send_console(const char *path, int master)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof addr.sun_path)
        return -1;
    strcpy(addr.sun_path, path);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&addr, sizeof addr) < 0) {
        if (s >= 0)
            close(s);
        return -1;
    }
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } control;
    char data[] = "/dev/ptmx";
    struct iovec iov = {data, sizeof data - 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                         .msg_controllen = sizeof control.buf};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &master, sizeof master);
    ssize_t n = sendmsg(s, &msg, MSG_NOSIGNAL);
    close(s);
    return n == (ssize_t)iov.iov_len ? 0 : -1;
}

/* Undo what create made, as Python's create does on failure (delete
 * --force), and let Python's create run the command line. */
static int undo(const char *root, const char *id, int *lock_fd)
{
    static struct oci_container again;
    if (*lock_fd >= 0)
        close(*lock_fd);
    *lock_fd = -1;
    oci_load(&again, root, id);
    oci_delete(&again, 1);
    return OCI_FALLBACK;
}

static int mkdir_parents(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    if ((size_t)snprintf(buf, sizeof buf, "%s", path) >= sizeof buf)
        return -1;
    for (char *s = buf + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            if (mkdir(buf, mode) < 0 && errno != EEXIST)
                return -1;
            *s = '/';
        }
    return mkdir(buf, mode) < 0 && errno != EEXIST ? -1 : 0;
}

static int make(struct create_plan *p, const char *root)
{
    static struct oci_container c;
    static struct nsf_spawn_state st;
    char dir[PATH_MAX], path[PATH_MAX], err[1024];
    int lock_fd = -1, go = -1, sv[2] = {-1, -1}, procs[OCI_MAX_CGROUPS], keep[2], master = -1;
    if ((size_t)snprintf(dir, sizeof dir, "%s/%s", root, p->id) >= sizeof dir ||
        mkdir_parents(root, 0700) < 0 || mkdir(dir, 0700) < 0)
        return OCI_FALLBACK;   /* it exists already, or root is unusable: Python says so */
    oci_load(&c, root, p->id);
    lock_fd = open(oci_file(&c, "lock", path, sizeof path), O_RDWR | O_CREAT | O_CLOEXEC,
                   0600);
    if (lock_fd < 0 || flock(lock_fd, LOCK_EX) < 0 || save_public(&c, p) < 0 ||
        oci_save_state(&c) < 0)
        return undo(root, p->id, &lock_fd);
    if (oci_cgroup_make(root, p->cgroups_path, p->resources, p->hier, p->n_hier, &c, err,
                        sizeof err) < 0 || oci_save_state(&c) < 0)
        return undo(root, p->id, &lock_fd);
    /* exec.fifo: the child blocks reading it until start writes a byte */
    if (mkfifo(oci_file(&c, "exec.fifo", path, sizeof path), 0600) < 0 ||
        (go = open(path, O_RDWR | O_CLOEXEC)) < 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ||
        setsockopt(sv[0], SOL_SOCKET, SO_PASSCRED, &(int){1}, sizeof(int)) < 0 ||
        (p->terminal && open_terminal(&p->sp, &master) < 0))
        return undo(root, p->id, &lock_fd);
    /* the child joins its cgroups itself, first thing (v1 has no
     * CLONE_INTO_CGROUP): it never runs outside them */
    for (int i = 0; i < c.n_cgroups; i++) {
        snprintf(path, sizeof path, "%s/cgroup.procs", c.cgroups[i].path);
        if ((procs[i] = open(path, O_WRONLY | O_CLOEXEC)) < 0)
            return undo(root, p->id, &lock_fd);
    }
    p->ops[p->n_ops++] = (struct nsf_op){.step = NSF_STEP_HOLD, .a = sv[1], .b = go, .c = 0};
    keep[0] = sv[1] < go ? sv[1] : go;
    keep[1] = sv[1] < go ? go : sv[1];
    p->sp.keep_fds = keep;
    p->sp.n_keep_fds = 2;
    p->sp.cgroup_procs_fds = procs;
    p->sp.n_cgroup_procs = c.n_cgroups;
    p->sp.mounts = p->steps.v;
    p->sp.n_mounts = p->steps.n;
    p->sp.ops = p->ops;
    p->sp.n_ops = p->n_ops;
    int r = nsf_spawn_clone(&p->sp, &st);
    close(sv[1]);   /* the child's copy alone now: its end is our end of file */
    for (int i = 0; i < c.n_cgroups; i++)
        close(procs[i]);
    if (r < 0)
        return undo(root, p->id, &lock_fd);
    pid_t pid = wait_held(sv[0]);
    if (!pid) {
        struct nsf_record rec;
        int status;
        nsf_spawn_finish(&st, &rec, &status);   /* reaps it */
        return undo(root, p->id, &lock_fd);
    }
    int failed = 0;
    for (int i = 0; i < p->n_rlimits && !failed; i++) {
        struct rlimit lim = {p->rlimits[i].soft, p->rlimits[i].hard};
        failed = prlimit(pid, p->rlimits[i].resource, &lim, NULL) < 0;
    }
    if (p->has_oom_score_adj && !failed) {
        char text[16];
        int n = snprintf(text, sizeof text, "%d", p->oom_score_adj);
        failed = nsf_proc_write(pid, "oom_score_adj", text, (size_t)n) < 0;
    }
    c.pid = pid;
    c.start_time = oci_start_time(pid);
    if (failed || !c.start_time || oci_save_state(&c) < 0 ||
        (p->pid_file && write_pid_file(p->pid_file, pid) < 0) ||
        (master >= 0 && send_console(p->console_socket, master) < 0)) {
        kill(pid, SIGKILL);   /* held, so still ours: it waits on our fifo */
        return undo(root, p->id, &lock_fd);
    }
    close(lock_fd);
    return 0;
}

static void init_spawn(struct nsf_spawn *sp)
{
    memset(sp, 0, sizeof *sp);
    for (int i = 0; i < 3; i++)
        sp->std_fds[i] = -1;
    sp->max_fd = 1024;
    sp->cgroup_fd = sp->user_fd = sp->init_fd = sp->root_fd = sp->cwd_fd = -1;
    sp->n_groups = -1;
    sp->uid = sp->gid = -1;
    sp->use_clone3 = nsf_probe_clone3() == 1;
    sp->parent_pid = getpid();
}

int oci_create(const char *root, int argc, char **argv)
{
    static struct create_plan plan;
    struct create_plan *p = &plan;
    const char *which = getenv("NSFAST_RUNTIME_CREATE");
    if (which && strcmp(which, "python") == 0)
        return OCI_FALLBACK;   /* the reference, for tests side by side */
    init_spawn(&p->sp);
    if (parse_args(p, argc, argv) || read_config(p) || translate(p))
        return OCI_FALLBACK;
    p->sp.argv = p->argv;
    p->sp.envp = p->envp;
    p->sp.exec_paths = p->exec_paths;
    const char *dry = getenv("NSFAST_OCI_PLAN");
    if (dry && strcmp(dry, "1") == 0) {
        print_plan(stdout, p);
        fflush(stdout);
        _exit(0);
    }
    if (make(p, root))
        return OCI_FALLBACK;
    /* the held child runs on memory this process shares with it (its
     * plan, its stack): leave without exit()'s handlers */
    fflush(NULL);
    _exit(0);
}
