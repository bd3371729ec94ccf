/* nsfast-runtime create, first phase (csrc/cli_oci_create.c runs the
 * second): the command line and config.json turned into one struct
 * nsf_spawn with its mount steps, seccomp program, cgroups path and
 * rlimits, exactly as nsfast/oci/config.py spawn_options() and SpawnPlan
 * make them, without changing anything.  What it does not handle so is
 * OCI_FALLBACK: Python's create runs the command line (cli_oci_create.h). */
#include "cli.h"
#include "cli_oci_create.h"
#include "compat.h"
#include "nscore.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

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

int oci_value_flag(const struct oci_flag *flags, int n_flags, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    for (int k = 0; k < n_flags; k++) {
        size_t n = strlen(flags[k].flag);
        if (strncmp(a, flags[k].flag, n) != 0)
            continue;
        if (a[n] == '=' && a[1] == '-') {   /* --flag=VALUE, long flags only */
            *flags[k].slot = a + n + 1;
            return 1;
        }
        if (a[n] != 0)
            continue;
        if (*i + 1 >= argc || argv[*i + 1][0] == '-')
            return -1;   /* a flag without its value: Python's parser words it */
        *flags[k].slot = argv[++*i];
        return 1;
    }
    return 0;
}

static int parse_args(struct oci_create_plan *p, int argc, char **argv)
{
    p->bundle_arg = ".";
    const struct oci_flag with_value[] = {
        {"--bundle", &p->bundle_arg}, {"-b", &p->bundle_arg}, {"--pid-file", &p->pid_file},
        {"--console-socket", &p->console_socket}};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int taken = oci_value_flag(with_value, 4, argc, argv, &i);
        if (taken < 0)
            return OCI_FALLBACK;
        if (taken)
            continue;
        if (strcmp(a, "--no-pivot") == 0 || strcmp(a, "--no-new-keyring") == 0 ||
            strcmp(a, "--preserve-fds=0") == 0)
            continue;
        if (a[0] == '-' || p->id)
            NOT_HERE("a flag or argument of Python's parser alone");
        p->id = a;
    }
    /* runc's id rule (state.py check_id), else Python's words */
    if (!p->id || !*p->bundle_arg || !oci_id_ok(p->id))
        NOT_HERE("no id, or a bad one");
    return 0;
}

/* ------------------------------------------------------------ config.json */

int oci_read_json(const char *path, struct json_object **out)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        NOT_HERE("no such file");
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_size > (64 << 20)) {
        close(fd);
        NOT_HERE("too large");
    }
    size_t got;
    char *text = nsf_read_fd(fd, &got);
    close(fd);
    if (!text || got != (size_t)st.st_size) {
        free(text);
        NOT_HERE("unreadable, or changed while read");
    }
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
    *out = json_tokener_parse_ex(tok, text, (int)got);
    int whole = json_tokener_get_error(tok) == json_tokener_success &&
                tok->char_offset == (int)got;
    json_tokener_free(tok);
    free(text);
    if (!*out || !whole || !json_object_is_type(*out, json_type_object))
        NOT_HERE("not a JSON object");
    return 0;
}

static int read_config(struct oci_create_plan *p)
{
    if (!realpath(p->bundle_arg, p->bundle))
        NOT_HERE("no bundle");
    if ((size_t)snprintf(p->config_path, sizeof p->config_path, "%s/config.json",
                         p->bundle) >= sizeof p->config_path)
        NOT_HERE("path too long");
    return oci_read_json(p->config_path, &p->config);
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
static int capabilities(struct oci_create_plan *p, struct json_object *caps, long long uid)
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

static int rlimits(struct oci_create_plan *p, struct json_object *list)
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
static int environment(struct oci_create_plan *p, struct json_object *env, const char **path)
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
static int exec_paths(struct oci_create_plan *p, const char *program, const char *path)
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

int oci_plan_process(struct oci_create_plan *p, struct json_object *proc)
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
static int join_path(struct oci_create_plan *p, const char *path, int kind)
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

static int namespaces(struct oci_create_plan *p, struct json_object *list)
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

static int uts_name(struct oci_create_plan *p, const char *key, const char **out)
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

static int translate(struct oci_create_plan *p)
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
    if (oci_plan_process(p, oci_json_get(cfg, "process")))
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
    if (oci_plan_seccomp(p, lx))
        return OCI_FALLBACK;
    return 0;
}

int oci_plan_seccomp(struct oci_create_plan *p, struct json_object *linux_config)
{
    struct json_object *seccomp = oci_json_get(linux_config, "seccomp");
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

void oci_plan_init(struct nsf_spawn *sp)
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

int oci_create_plan(struct oci_create_plan *p, int argc, char **argv)
{
    oci_plan_init(&p->sp);
    if (parse_args(p, argc, argv) || read_config(p) || translate(p))
        return OCI_FALLBACK;
    p->sp.argv = p->argv;
    p->sp.envp = p->envp;
    p->sp.exec_paths = p->exec_paths;
    return 0;
}
