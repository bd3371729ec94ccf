"""Network namespace ids (netnsid) over a bare rtnetlink socket, for
`nsfast netns list`, `set` and `list-id`: three small requests, so the command
does not import pyroute2 for them.

The ids are those the calling thread's network namespace gives to others
(RTM_NEWNSID / RTM_GETNSID, linux/net_namespace.h).
"""
from __future__ import annotations

import errno
import os
import socket
import struct
from typing import Iterator, Optional

RTM_NEWNSID, RTM_GETNSID = 88, 90
NETNSA_NSID, NETNSA_FD, NETNSA_TARGET_NSID, NETNSA_CURRENT_NSID = 1, 3, 4, 5
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
_HEADER = struct.Struct("=IHHII")      # nlmsghdr
_RTGEN = struct.Struct("=Bxxx")        # rtgenmsg, padded to 4


def _attr(kind: int, value: int) -> bytes:
    return struct.pack("=HHi", 8, kind, value)


def _request(kind: int, flags: int, attrs: bytes = b"") -> Iterator[tuple[int, dict]]:
    """Send one request; yield (message type, {attribute: int}) of each reply."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                       socket.NETLINK_ROUTE) as sock:
        body = _RTGEN.pack(socket.AF_UNSPEC) + attrs
        sock.send(_HEADER.pack(_HEADER.size + len(body), kind, flags, 1, 0) + body)
        while True:
            data = sock.recv(65536)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, mtype, _, _, _ = _HEADER.unpack_from(data, offset)
                payload = data[offset + _HEADER.size:offset + length]
                offset += (length + 3) & ~3
                if mtype == NLMSG_DONE:
                    return
                if mtype == NLMSG_ERROR:
                    (err,) = struct.unpack_from("=i", payload)
                    if err:
                        raise OSError(-err, os.strerror(-err))
                    return
                yield mtype, _attributes(payload[_RTGEN.size:])
            if not flags & NLM_F_DUMP:
                return


def _attributes(data: bytes) -> dict:
    found, offset = {}, 0
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            break
        if length >= 8:
            (found[kind],) = struct.unpack_from("=i", data, offset + 4)
        offset += (length + 3) & ~3
    return found


def nsid_of(fd: int) -> Optional[int]:
    """The id our network namespace gives to the one fd names; None: none yet."""
    try:
        for _, attrs in _request(RTM_GETNSID, NLM_F_REQUEST, _attr(NETNSA_FD, fd)):
            nsid = attrs.get(NETNSA_NSID, -1)
            return nsid if nsid >= 0 else None
    except OSError:
        return None
    return None


def set_nsid(fd: int, nsid: int) -> None:
    """Give the network namespace fd names the id nsid (-1: the kernel picks)."""
    for _ in _request(RTM_NEWNSID, NLM_F_REQUEST | NLM_F_ACK,
                      _attr(NETNSA_FD, fd) + _attr(NETNSA_NSID, nsid)):
        pass


def all_nsids(target: Optional[int] = None) -> Iterator[tuple[int, Optional[int]]]:
    """(nsid, current-nsid or None) of each id our namespace has given, in the
    kernel's order; with target (target-nsid), ids as that namespace sees them."""
    attrs = _attr(NETNSA_TARGET_NSID, target) if target is not None else b""
    try:
        for mtype, found in _request(RTM_GETNSID, NLM_F_REQUEST | NLM_F_DUMP, attrs):
            if mtype == RTM_NEWNSID and NETNSA_NSID in found:
                yield found[NETNSA_NSID], found.get(NETNSA_CURRENT_NSID)
    except OSError as e:
        if e.errno != errno.EOPNOTSUPP:
            raise
