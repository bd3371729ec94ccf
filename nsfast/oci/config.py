"""config.json of an OCI bundle -> nsfast.spawn options.

Every field is either turned into a spawn option (the one spawn path:
nsfast/plan.py, the C child) or refused with OciError naming it: a field
is never dropped in silence.  What the child cannot do before exec and the
runtime can do from outside while the child waits (cgroups, rlimits,
oom_score_adj, sysctls) is returned as `Setup` for create to apply.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Optional

from .. import confine
from ..mounts import (_BIND, _FILE, _FS, _FS_ENCODING, _FS_ERRORS, _MKDIR, _NODE, _PIVOT,
                      _SYMLINK, _TMPFS)
from . import cgroup as _cgroup
from .errors import OciError

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_SYNCHRONOUS, MS_REMOUNT, MS_MANDLOCK, MS_DIRSYNC = 16, 32, 64, 128
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 1024, 2048, 4096, 16384
MS_UNBINDABLE, MS_PRIVATE, MS_SLAVE, MS_SHARED = 1 << 17, 1 << 18, 1 << 19, 1 << 20
MS_RELATIME, MS_STRICTATIME = 1 << 21, 1 << 24

# mount option -> (flags to set, flags to clear)
_FLAGS = {"ro": (MS_RDONLY, 0), "rw": (0, MS_RDONLY), "nosuid": (MS_NOSUID, 0),
          "suid": (0, MS_NOSUID), "nodev": (MS_NODEV, 0), "dev": (0, MS_NODEV),
          "noexec": (MS_NOEXEC, 0), "exec": (0, MS_NOEXEC), "sync": (MS_SYNCHRONOUS, 0),
          "async": (0, MS_SYNCHRONOUS), "dirsync": (MS_DIRSYNC, 0),
          "mand": (MS_MANDLOCK, 0), "nomand": (0, MS_MANDLOCK),
          "noatime": (MS_NOATIME, 0), "atime": (0, MS_NOATIME),
          "nodiratime": (MS_NODIRATIME, 0), "diratime": (0, MS_NODIRATIME),
          "relatime": (MS_RELATIME, 0), "norelatime": (0, MS_RELATIME),
          "strictatime": (MS_STRICTATIME, 0), "nostrictatime": (0, MS_STRICTATIME)}
_PROPAGATION = {"private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC,
                "slave": MS_SLAVE, "rslave": MS_SLAVE | MS_REC,
                "shared": MS_SHARED, "rshared": MS_SHARED | MS_REC,
                "unbindable": MS_UNBINDABLE, "runbindable": MS_UNBINDABLE | MS_REC}
_FS_TYPES = ("tmpfs", "proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2")
_KINDS = {"pid": "pid", "network": "net", "ipc": "ipc", "uts": "uts", "mount": "mnt",
          "user": "user", "cgroup": "cgroup", "time": "time"}
# sysctls that belong to a namespace the container has of its own (runc's list)
_SYSCTL_IPC = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
               "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")

KNOWN = {
    "": {"ociVersion", "process", "root", "hostname", "domainname", "mounts", "hooks",
         "linux", "annotations"},
    "process": {"terminal", "consoleSize", "user", "args", "env", "cwd", "capabilities",
                "rlimits", "noNewPrivileges", "oomScoreAdj", "apparmorProfile",
                "selinuxLabel"},
    "process.user": {"uid", "gid", "umask", "additionalGids", "username"},
    "root": {"path", "readonly"},
    "linux": {"namespaces", "uidMappings", "gidMappings", "resources", "cgroupsPath",
              "seccomp", "maskedPaths", "readonlyPaths", "devices", "sysctl",
              "rootfsPropagation", "mountLabel"},
    "hooks": {"prestart", "createRuntime", "createContainer", "startContainer", "poststart",
              "poststop"},
}


@dataclass
class Setup:
    """What create applies from outside while the child waits, and keeps."""
    cgroups_path: str = ""
    resources: dict = field(default_factory=dict)
    rlimits: list = field(default_factory=list)        # (resource, soft, hard)
    oom_score_adj: Optional[int] = None
    sysctl: dict = field(default_factory=dict)
    hooks: dict = field(default_factory=dict)
    terminal: bool = False
    rootfs: str = ""
    new_pid: bool = True


def _known(obj: dict, where: str) -> None:
    extra = set(obj) - KNOWN[where]
    if extra:
        name = f"{where}.{sorted(extra)[0]}" if where else sorted(extra)[0]
        raise OciError(f"config.json: {name} is not supported by nsfast-runtime")


def _b(path: str) -> bytes:
    return path.encode(_FS_ENCODING, _FS_ERRORS)


def load(bundle: str) -> dict:
    import json
    path = os.path.join(bundle, "config.json")
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise OciError(f"{path}: no such file (is --bundle the bundle directory?)") from None
    except ValueError as e:
        raise OciError(f"{path}: not JSON: {e}") from None


def rootfs_of(bundle: str, config: dict) -> str:
    root = (config.get("root") or {}).get("path")
    if not root:
        raise OciError("config.json: root.path is missing")
    return os.path.realpath(os.path.join(bundle, root))


def process_options(proc: dict) -> dict:
    """process.* -> spawn options (argv, env, cwd, ids, capabilities, ...);
    shared by create and exec."""
    _known(proc, "process")
    for key in ("apparmorProfile", "selinuxLabel"):
        if proc.get(key):
            raise OciError(f"config.json: process.{key} is not supported (no LSM here)")
    args = proc.get("args")
    if not args:
        raise OciError("config.json: process.args is empty")
    env = {}
    for item in proc.get("env") or ():
        k, sep, v = item.partition("=")
        if not sep:
            raise OciError(f"process.env entry {item!r} has no '='")
        env[k] = v
    user = proc.get("user") or {}
    _known(user, "process.user")
    if user.get("username"):
        raise OciError("process.user.username is Windows-only")
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    opts: dict = dict(argv=list(args), env=env, cwd=proc.get("cwd") or "/",
                      uid=uid, gid=gid, extra_groups=list(user.get("additionalGids") or ()),
                      no_new_privs=bool(proc.get("noNewPrivileges")), pdeathsig=None)
    if user.get("umask") is not None:
        opts["umask"] = user["umask"]
    caps = proc.get("capabilities")
    if caps is not None:
        opts.update(_capabilities(caps, uid))
    return opts


def _capabilities(caps: dict, uid: int) -> dict:
    """The five sets as nsfast's child takes them: the bounding set dropped
    to its list, effective = permitted = inheritable = that list, then the
    ambient ones raised.  Through exec the kernel's rules decide the rest,
    as for runc: uid 0 gets its bounding set, another uid its ambient set
    (and no_new_privs keeps file capabilities from adding to it)."""
    extra = set(caps) - {"bounding", "effective", "permitted", "inheritable", "ambient"}
    if extra:
        raise OciError(f"process.capabilities.{sorted(extra)[0]} is not a capability set")
    bounding = set(caps.get("bounding") or ())
    for name in ("effective", "permitted", "inheritable", "ambient"):
        if not set(caps.get(name) or ()) <= bounding:
            raise OciError(f"process.capabilities.{name} holds capabilities outside the "
                           f"bounding set")
    ambient = set(caps.get("ambient") or ())
    # the kernel raises an ambient capability only if it is permitted and
    # inheritable: the config must say so, as runc's would fail
    for name in ("permitted", "inheritable"):
        if caps.get(name) is not None and not ambient <= set(caps.get(name) or ()):
            raise OciError(f"process.capabilities.ambient holds capabilities that are not "
                           f"{name}")
    opts: dict = {"capabilities": sorted(bounding)}
    if ambient:
        opts["ambient_capabilities"] = sorted(ambient)
    if uid != 0:
        opts["no_new_privs"] = True
    return opts


def _options(options: list) -> tuple:
    """(flags, propagation flags, data string, bind, rbind) of mount options."""
    flags = 0
    prop = 0
    data = []
    bind = rbind = copyup = False
    for o in options or ():
        if o in _FLAGS:
            on, off = _FLAGS[o]
            flags = (flags | on) & ~off
        elif o in _PROPAGATION:
            prop |= _PROPAGATION[o]
        elif o == "bind":
            bind = True
        elif o == "rbind":
            bind = rbind = True
        elif o == "tmpcopyup":
            copyup = True
        elif o in ("idmap", "ridmap", "copy-symlink", "remount"):
            raise OciError(f"mount option {o!r} is not supported by nsfast-runtime")
        else:
            data.append(o)
    return flags, prop, ",".join(data), bind, rbind, copyup


def secure_join(rootfs: bytes, path: str) -> bytes:
    """rootfs + path with each symlink on the way resolved inside rootfs, as
    if rootfs were /: a link planted in an image (/run -> /etc, or -> /..)
    cannot send a mount outside the container's root.

    >>> secure_join(b"/r", "/a/../b")
    b'/r/b'
    """
    parts = [p for p in _b(path).split(b"/") if p]
    done: list = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == b".":
            continue
        if part == b"..":
            if done:
                done.pop()
            continue
        here = rootfs + b"/" + b"/".join(done + [part])
        if os.path.islink(here):
            hops += 1
            if hops > 40:
                raise OciError(f"too many symlinks in {path!r} inside the rootfs")
            target = os.readlink(here)
            if target.startswith(b"/"):
                done = []
            parts = [p for p in target.split(b"/") if p] + parts
            continue
        done.append(part)
    return rootfs + b"/" + b"/".join(done) if done else rootfs


def _in_root(rootfs: bytes, dst: str) -> bytes:
    return secure_join(rootfs, dst)


def _parents(rootfs: bytes, dst: bytes) -> list:
    """Mkdir steps for the missing directories above dst, outermost first."""
    steps = []
    d = os.path.dirname(dst)
    while len(d) > len(rootfs) and not os.path.isdir(d):
        steps.insert(0, (_MKDIR, False, 0, None, d, None))
        d = os.path.dirname(d)
    return steps


def mount_steps(config: dict, rootfs: str, cgroup_dirs_rel: str) -> list:
    """The child's mount steps: the rootfs bound on itself, the config's
    mounts, the default devices, masked and read-only paths, the read-only
    root, and pivot_root."""
    root = _b(rootfs)
    steps: list = [(_BIND, False, MS_REC, root, root, None)]
    dev_bound = False
    for m in config.get("mounts") or ():
        extra = set(m) - {"destination", "type", "source", "options", "uidMappings",
                          "gidMappings"}
        if extra or m.get("uidMappings") or m.get("gidMappings"):
            raise OciError(f"mounts[]: {sorted(extra or {'uidMappings'})[0]} is not supported")
        dst = _in_root(root, m["destination"])
        flags, prop, data, bind, rbind, copyup = _options(m.get("options"))
        if copyup and os.path.isdir(dst) and os.listdir(dst):
            # crun's tmpcopyup: a tmpfs seeded with what it covers; with
            # nothing to cover it is a plain tmpfs
            raise OciError(f"mount option 'tmpcopyup' on {m['destination']}, which is not "
                           f"empty in the image, is not supported by nsfast-runtime")
        kind = m.get("type") or ("bind" if bind else "")
        if kind == "bind" or bind:
            src = m.get("source") or ""
            if not src.startswith("/"):
                raise OciError(f"bind mount source {src!r} must be an absolute path")
            if os.path.normpath(m["destination"]) == "/dev":
                dev_bound = True
            steps.extend(_parents(root, dst))
            steps.append((_MKDIR if os.path.isdir(src) else _FILE, False, 0, None, dst, None))
            steps.append((_BIND, False, MS_REC if rbind else 0, _b(src), dst, None))
            if flags:
                steps.append((_FS, False, MS_REMOUNT | MS_BIND | flags, None, dst, None))
        elif kind in ("cgroup", "cgroup2"):
            steps.extend(_parents(root, dst))
            steps.extend(_cgroup_steps(dst, flags, cgroup_dirs_rel))
        elif kind in _FS_TYPES:
            steps.extend(_parents(root, dst))
            steps.append((_MKDIR, False, 0, None, dst, None))
            steps.append((_FS, False, flags, _b(kind), dst, _b(data) if data else None))
        else:
            raise OciError(f"mount type {kind!r} at {m['destination']} is not supported by "
                           f"nsfast-runtime (bind, tmpfs, proc, sysfs, devpts, mqueue, cgroup)")
        if prop:
            steps.append((_FS, False, prop, None, dst, None))
    if not dev_bound:
        steps.extend(_default_devices(root))
    linux = config.get("linux") or {}
    steps.extend(device_steps(root, linux))
    # where the parent sees a path as the child will: /proc and /sys show
    # this same kernel when the config mounts them fresh, else the rootfs
    fresh = tuple(os.path.normpath(m["destination"]) + "/" for m in config.get("mounts") or ()
                  if m.get("type") in ("proc", "sysfs"))

    def as_seen(p: str) -> str:
        return p if p.startswith(("/proc/", "/sys/")) and p.startswith(fresh) else rootfs + p

    for p in linux.get("maskedPaths") or ():
        dst = _in_root(root, p)
        seen = as_seen(p)
        if not os.path.lexists(seen):
            continue
        if os.path.isdir(seen):
            steps.append((_TMPFS, True, MS_NOSUID | MS_NODEV | MS_NOEXEC, b"tmpfs", dst,
                          b"mode=0555"))
        else:
            steps.append((_BIND, False, 0, b"/dev/null", dst, None))
    for p in linux.get("readonlyPaths") or ():
        if os.path.lexists(as_seen(p)):
            dst = _in_root(root, p)
            steps.append((_BIND, True, MS_REC, dst, dst, None))
    if (config.get("root") or {}).get("readonly"):
        steps.append((_FS, False, MS_REMOUNT | MS_BIND | MS_RDONLY, None, root, None))
    steps.append((_PIVOT, False, confine._PIVOT_MOUNTED, root, None, None))
    return steps


def _cgroup_steps(dst: bytes, flags: int, rel: str) -> list:
    """/sys/fs/cgroup as runc makes it on v1: a tmpfs with the container's own
    directory of each hierarchy bound in, read-only as the mount asks."""
    steps = [(_MKDIR, False, 0, None, dst, None),
             (_TMPFS, False, MS_NOSUID | MS_NODEV | MS_NOEXEC, b"tmpfs", dst, b"mode=755")]
    ro = bool(flags & MS_RDONLY)
    for name, mount in _cgroup.mounted().items():
        target = dst + b"/" + _b(name.replace("name=", ""))
        steps.append((_MKDIR, False, 0, None, target, None))
        steps.append((_BIND, ro, 0, _b(mount + rel), target, None))
    if ro:
        steps.append((_FS, False, MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY,
                      None, dst, None))
    return steps


_NODE_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def device_steps(root: bytes, linux: dict) -> list:
    """linux.devices: each node made with its mode and owner, as runc makes
    them; in a new user namespace, where mknod is refused, the host's node
    at the same path bound in, as runc does then (it must be the same
    device: a bind cannot change its number, mode or owner)."""
    user_ns = any(n.get("type") == "user" and not n.get("path")
                  for n in linux.get("namespaces") or ())
    steps: list = []
    for d in linux.get("devices") or ():
        extra = set(d) - {"path", "type", "major", "minor", "fileMode", "uid", "gid"}
        if extra:
            raise OciError(f"linux.devices: {sorted(extra)[0]} is not supported")
        path, kind = d.get("path"), d.get("type")
        if not isinstance(path, str) or not path.startswith("/dev/"):
            raise OciError(f"linux.devices: path {path!r} is not under /dev")
        if kind not in _NODE_TYPES:
            raise OciError(f"linux.devices {path}: type {kind!r} is not c, b, u or p")
        major, minor = d.get("major", 0), d.get("minor", 0)
        if kind != "p" and not all(isinstance(v, int) and v >= 0 for v in (major, minor)):
            raise OciError(f"linux.devices {path}: major and minor are needed")
        mode = d.get("fileMode", 0o666)
        uid, gid = d.get("uid", 0), d.get("gid", 0)
        dst = _in_root(root, path)
        steps.extend(_parents(root, dst))
        if not user_ns:
            data = f"{major} {minor} {uid} {gid}".encode()
            steps.append((_NODE, False, _NODE_TYPES[kind] | (mode & 0o7777), None, dst, data))
            continue
        try:
            st = os.stat(path)
        except OSError:
            st = None
        if (st is None or stat.S_IFMT(st.st_mode) != _NODE_TYPES[kind]
                or (kind != "p" and (os.major(st.st_rdev), os.minor(st.st_rdev)) != (major, minor))):
            raise OciError(f"linux.devices {path}: in a new user namespace the node is bound "
                           f"from the host's {path}, which is not that device")
        steps.append((_FILE, False, 0, None, dst, None))
        steps.append((_BIND, False, 0, _b(path), dst, None))
    return steps


def _default_devices(root: bytes) -> list:
    """The devices every container has (the runtime spec's list): the host's
    nodes bound in, and the /dev/fd, std* and ptmx links."""
    dev = root + b"/dev"
    steps: list = [(_MKDIR, False, 0, None, dev, None)]
    for name in (*confine.DEVICES, ):
        target = dev + b"/" + name.encode()
        steps.append((_FILE, False, 0, None, target, None))
        steps.append((_BIND, False, 0, b"/dev/" + name.encode(), target, None))
    for target, name in confine.DEV_LINKS:
        steps.append((_SYMLINK, False, 0, target.encode(), dev + b"/" + name.encode(), None))
    return steps


def namespaces(linux: dict) -> tuple:
    """(new kinds "pid,mnt,...", {kind: path} to join)."""
    new, join = [], {}
    for ns in linux.get("namespaces") or ():
        kind = _KINDS.get(ns.get("type"))
        if kind is None:
            raise OciError(f"linux.namespaces: type {ns.get('type')!r} is not supported")
        if ns.get("path"):
            join[kind] = ns["path"]
        else:
            new.append(kind)
    return new, join


def _id_map(entries: list, what: str) -> str:
    return "".join(f"{e['containerID']} {e['hostID']} {e['size']}\n" for e in entries)


def seccomp_options(linux: dict) -> dict:
    """The spawn options for linux.seccomp (none without a profile)."""
    if not linux.get("seccomp"):
        return {}
    import json
    from .seccomp import OciProfile
    policy = OciProfile(profile=json.dumps(linux["seccomp"], sort_keys=True))
    policy.bpf()   # its errors now, as OciError
    # nsfast's child installs the filter last, after it dropped its
    # capabilities: without CAP_SYS_ADMIN the kernel takes a filter only
    # with no_new_privs.  For uid 0 that changes nothing (its exec gets the
    # bounding set either way); setuid programs no longer raise ids.
    return {"seccomp": policy, "no_new_privs": True}


def check_program(rootfs: str, config: dict, argv0: str, env: dict) -> None:
    """OciError now, at create, when the program is not in the rootfs (the
    child's exec would fail after start, where nobody hears it), in the
    words runc uses, which Podman turns into exit status 127."""
    root = _b(rootfs)
    mounted = [os.path.normpath(m.get("destination", "/")) for m in config.get("mounts") or ()]
    if "/" in argv0:
        candidates = [argv0 if argv0.startswith("/") else
                      os.path.join((config.get("process") or {}).get("cwd") or "/", argv0)]
    else:
        path = env.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        candidates = [os.path.join(d or ".", argv0) for d in path.split(":") if d.startswith("/")]
    for c in candidates:
        if any(c == m or c.startswith(m.rstrip("/") + "/") for m in mounted if m != "/"):
            return   # under a mount: seen only inside
        if os.path.isfile(secure_join(root, c)):
            return
    raise OciError(f"exec: {argv0!r}: executable file not found in $PATH "
                   f"(no such file or directory)")


def spawn_options(bundle: str, config: dict) -> tuple:
    """(spawn options, Setup) for a bundle's config; OciError for what is not supported."""
    _known(config, "")
    rootfs = rootfs_of(bundle, config)
    _known(config.get("root") or {}, "root")
    proc = config.get("process")
    if not proc:
        raise OciError("config.json: process is missing")
    opts = process_options(proc)
    check_program(rootfs, config, opts["argv"][0], opts["env"])
    setup = Setup(rootfs=rootfs, terminal=bool(proc.get("terminal")))
    linux = config.get("linux") or {}
    _known(linux, "linux")
    if linux.get("mountLabel"):
        raise OciError("linux.mountLabel is not supported (no SELinux here)")
    new, join = namespaces(linux)
    if "mnt" not in new:
        raise OciError("nsfast-runtime needs a new mount namespace (linux.namespaces "
                       "'mount' without a path)")
    setup.new_pid = "pid" in new
    opts["namespaces"] = ",".join(new)
    if join:
        opts["join"] = join
    if linux.get("uidMappings") or linux.get("gidMappings"):
        if "user" not in new:
            raise OciError("uidMappings/gidMappings need a new user namespace")
        opts["uid_map"] = _id_map(linux.get("uidMappings") or [], "uid")
        opts["gid_map"] = _id_map(linux.get("gidMappings") or [], "gid")
    for key in ("hostname", "domainname"):
        if config.get(key):
            if "uts" not in new:
                raise OciError(f"{key} needs a new uts namespace")
            opts[key] = config[key]
    prop = linux.get("rootfsPropagation") or "rslave"
    names = {"rprivate": "private", "private": "private", "rslave": "slave",
             "slave": "slave", "rshared": "shared", "shared": "shared"}
    if prop not in names:
        raise OciError(f"linux.rootfsPropagation {prop!r} is not supported")
    opts["propagation"] = names[prop]
    resources = linux.get("resources") or {}
    _cgroup.check_resources(resources)
    setup.resources = resources
    setup.cgroups_path = linux.get("cgroupsPath") or ""
    for key, value in (linux.get("sysctl") or {}).items():
        if not (key.startswith("net.") or key in _SYSCTL_IPC or key.startswith("fs.mqueue.")):
            raise OciError(f"linux.sysctl {key} is not in a namespace of the container's own")
        if key.startswith("net.") and "net" not in new and "net" not in join:
            raise OciError(f"linux.sysctl {key} needs a network namespace")
        setup.sysctl[key] = str(value)
    opts.update(seccomp_options(linux))
    for r in proc.get("rlimits") or ():
        import resource
        res = getattr(resource, r.get("type", ""), None)
        if not isinstance(res, int):
            raise OciError(f"process.rlimits: unknown type {r.get('type')!r}")
        setup.rlimits.append((res, r["soft"], r["hard"]))
    if proc.get("oomScoreAdj") is not None:
        setup.oom_score_adj = int(proc["oomScoreAdj"])
    hooks = config.get("hooks") or {}
    _known(hooks, "hooks")
    setup.hooks = hooks
    return opts, setup


