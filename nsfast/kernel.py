"""The kernel's numbers that nsfast uses, in one place: namespace flags, mount
flags, ioctl and prctl numbers, netlink bits, and the record the spawn child
writes to its parent.

Values that the C code defines are read from _core where it exports them
(the CLONE_NEW* flags come from csrc's kind table through _core.KIND_NAMES);
the rest are the kernel's uapi values, which never change.

>>> CLONE_NEWNET == 0x40000000, MS_BIND | MS_REC
(True, 20480)
"""
from __future__ import annotations

import struct

from . import _core

# ---- namespace kinds (linux/sched.h), from csrc's table: proc name -> flag
_FLAG_OF = {name: flag for flag, name in _core.KIND_NAMES.items()}
CLONE_NEWTIME = _FLAG_OF["time"]
CLONE_NEWNS = _FLAG_OF["mnt"]
CLONE_NEWCGROUP = _FLAG_OF["cgroup"]
CLONE_NEWUTS = _FLAG_OF["uts"]
CLONE_NEWIPC = _FLAG_OF["ipc"]
CLONE_NEWUSER = _FLAG_OF["user"]
CLONE_NEWPID = _FLAG_OF["pid"]
CLONE_NEWNET = _FLAG_OF["net"]

# ---- mount(2) flags (linux/mount.h)
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20

# umount2(2) flags
MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8

# mount_setattr(2)
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1

# ---- ioctls
NS_GET_MNTNS_ID = 0x8008B705   # _IOR(0xb7, 5, __u64): a mount namespace's id (6.8+)
PIDFD_GET_INFO = 0xC040FF0B    # _IOWR(0xFF, 11, struct pidfd_info), 64 bytes (6.13+)
PIDFD_INFO_EXIT = 1 << 3       # pidfd_info.mask: the exit status is filled in (6.15+)
PIDFD_INFO_EXIT_CODE_OFFSET = 60   # offsetof(struct pidfd_info, exit_code)
SIOCGSKNS = 0x894C             # a socket's network namespace, as an fd (4.9+)

# ---- prctl(2)
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4

# ---- waitpid(2): also children whose exit signal is not SIGCHLD
WALL = 0x40000000              # __WALL

# ---- memfd_create(2): an executable memfd where vm.memfd_noexec would refuse (6.3+)
MFD_EXEC = 0x10

# ---- rtnetlink (linux/netlink.h, linux/if.h)
NETLINK_ROUTE = 0
NLMSG_ERROR = 2
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
IFF_LOOPBACK = 0x8
NLMSG_HDR = struct.Struct("=IHHII")   # struct nlmsghdr: len, type, flags, seq, pid
RTM_NEWNSID = 88
RTM_GETNSID = 90
NETNSA_NSID = 1
NETNSA_FD = 3

# ---- the spawn child's record to its parent (csrc/spawn.h, struct nsf_record)
# four int32: step, err, index, value; a message instead of a step number
# carries news from the child, not a failure
RECORD = struct.Struct("=4i")
NSF_MSG_READY = 100   # the child made its namespaces; the parent may write its maps
NSF_MSG_PID = 101     # value: the pid of the grandchild that will exec


def record(step: int, err: int = 0, index: int = 0, value: int = 0) -> bytes:
    """The bytes of one struct nsf_record.

    >>> len(record(NSF_MSG_PID, value=1))
    16
    """
    return RECORD.pack(step, err, index, value)
