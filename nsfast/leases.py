"""Address leases of a bridge's subnet, shared by every thread and process.

One lease file per bridge under /run/nsfast/bridges/, named after the bridge
and the network namespace it lives in, is a journal of the leases:

    + 10.88.0.2 nsv4f1c09a2be 812
    + 10.88.0.3 nsv0d77e13c55 815
    next 4
    - 10.88.0.2

(`+`: the address, the host end of the sandbox's veth pair and that end's
ifindex; `-`: the lease of that address ended; `next`: where the next search
starts).  Every change happens under an flock of a lock file beside it and
is one append of whole lines, so a process killed in the middle leaves at
most a line without its newline, which the next writer ends and every reader
ignores (only the change of the killed writer, which never returned an
address, is lost).  Appending is what makes an allocation cheap: a file
renamed over another is flushed to disk first by ext4 (auto_da_alloc), some
milliseconds where /run is not a tmpfs.  When the journal has grown well past
the live leases it is compacted once: written anew and renamed over.

A lease lives as long as its veth: the kernel destroys both ends of the pair
when the sandbox's network namespace goes, also when its owner was
SIGKILLed, so an entry whose veth (that name with that ifindex) is gone is
stale.  Each allocation collects the stale entries first.  The veth is made
before its lease is written, so no allocation ever sees a live lease as
stale; an address is handed out again only once its old veth is gone (no
neighbour on the bridge still answers for it).  Addresses are handed out
round-robin (`next`), so a freed one is not reused at once.
"""
from __future__ import annotations

import errno
import fcntl
import ipaddress
import os
from typing import Callable, Dict, Optional, Tuple

from .errors import os_error

LEASE_DIR = "/run/nsfast/bridges"

# (veth name, ifindex) -> whether that link still exists
Alive = Callable[[str, int], bool]
Entry = Tuple[str, int]


def usable_addresses(subnet: ipaddress.IPv4Network) -> Tuple[int, int]:
    """(first, last) offsets in subnet that sandboxes may get: the first host
    address is the bridge's, the network and broadcast addresses no one's.

    >>> usable_addresses(ipaddress.ip_network("10.88.0.0/24"))
    (2, 254)
    """
    return 2, subnet.num_addresses - 2


class LeaseFile:
    """The leases of one bridge's subnet (see the module's docstring).

    >>> import tempfile; where = tempfile.mkdtemp()
    >>> leases = LeaseFile(where, "br0", 4026531840, ipaddress.ip_network("10.88.0.0/29"),
    ...                    lambda veth, index: veth != "nsvGone")
    >>> leases.take("nsvA", 11), leases.take("nsvGone", 12), leases.take("nsvC", 13)
    ('10.88.0.2', '10.88.0.3', '10.88.0.4')
    >>> leases.drop("10.88.0.2"); sorted(leases.live())   # nsvGone's lease is collected
    ['10.88.0.4']
    >>> leases.remove(); os.rmdir(where)
    """

    # compact the journal once it has this many lines more than twice the live leases
    SLACK = 256

    def __init__(self, directory: str, bridge: str, netns_inode: int,
                 subnet: ipaddress.IPv4Network, alive: Alive) -> None:
        self.directory = directory
        base = os.path.join(directory, f"{bridge}.{netns_inode}")
        self.path = base + ".leases"
        self.lock_path = base + ".lock"
        self.subnet = subnet
        self._alive = alive

    # ---- the file
    def _locked(self) -> int:
        """An fd on the lock file holding its exclusive flock (closing it lets go)."""
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                         0o600)
        except OSError as e:
            raise os_error(e.errno, self.lock_path, "the bridge's leases live under "
                           f"{LEASE_DIR}, which needs root" if e.errno in
                           (errno.EACCES, errno.EPERM) else None,
                           what="opening the lease lock") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            st = os.fstat(fd)
            try:
                now = os.lstat(self.lock_path)
                same = (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino)
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if not same:  # remove() unlinked it while we waited: lock the new one
            os.close(fd)
            return self._locked()
        return fd

    def _read(self) -> "_Journal":
        """The journal replayed.  A line that does not parse is skipped: the
        unfinished last line of a killed writer, or a hand edit."""
        journal = _Journal()
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return journal
        journal.torn = bool(data) and not data.endswith(b"\n")
        lines = data.decode("ascii", "replace").split("\n")
        journal.lines = len(lines) - 1
        entries = journal.entries
        for line in lines:   # a torn last line has fewer fields, or a bad number
            fields = line.split()
            try:
                if len(fields) == 4 and fields[0] == "+":
                    entries[fields[1]] = (fields[2], int(fields[3]))
                elif len(fields) == 2 and fields[0] == "-":
                    entries.pop(fields[1], None)
                elif len(fields) == 2 and fields[0] == "next":
                    journal.cursor = int(fields[1])
            except ValueError:
                continue
        return journal

    def _save(self, journal: "_Journal", changes: list) -> None:
        """Append changes (lines without their newline) to the journal, or, when it
        has grown far past the live leases, write it anew with only those."""
        if not changes:
            return
        try:
            if journal.lines + len(changes) > 2 * len(journal.entries) + self.SLACK:
                self._rewrite(journal)
                return
            text = ("\n" if journal.torn else "") + "".join(f"{c}\n" for c in changes)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC |
                         os.O_NOFOLLOW, 0o600)
            try:
                os.write(fd, text.encode("ascii"))
            finally:
                os.close(fd)
        except OSError as e:
            raise os_error(e.errno, self.path, what="writing the leases") from None

    def _rewrite(self, journal: "_Journal") -> None:
        """The journal compacted: the live leases and the cursor, in a new file
        renamed over the old one."""
        text = "".join(f"+ {address} {veth} {index}\n"
                       for address, (veth, index) in journal.entries.items())
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW,
                     0o600)
        try:
            os.write(fd, f"{text}next {journal.cursor}\n".encode("ascii"))
        finally:
            os.close(fd)
        os.replace(tmp, self.path)

    def _collect(self, journal: "_Journal") -> list:
        """Drop the entries whose veth is gone; the journal lines that say so."""
        stale = [a for a, (veth, index) in journal.entries.items()
                 if not self._alive(veth, index)]
        for address in stale:
            del journal.entries[address]
        return [f"- {address}" for address in stale]

    # ---- the public side
    def take(self, veth: str, index: int) -> str:
        """A free address of the subnet, leased to the veth named veth (ifindex
        index) until that veth is gone; OSError(EADDRNOTAVAIL) when every
        address is taken by a live veth."""
        first, last = usable_addresses(self.subnet)
        count = last - first + 1
        lock = self._locked()
        try:
            journal = self._read()
            changes = self._collect(journal)
            base = int(self.subnet.network_address)
            start = journal.cursor if first <= journal.cursor <= last else first
            for i in range(count):
                offset = first + (start - first + i) % count
                address = str(ipaddress.IPv4Address(base + offset))
                if address not in journal.entries:
                    journal.entries[address] = (veth, index)
                    journal.cursor = offset + 1
                    self._save(journal, [*changes, f"+ {address} {veth} {index}",
                                         f"next {offset + 1}"])
                    return address
            self._save(journal, changes)
            raise os_error(errno.EADDRNOTAVAIL, self.path,
                           f"all {count} addresses of {self.subnet} are leased to live "
                           "sandboxes; use a larger subnet", what="leasing an address")
        finally:
            os.close(lock)

    def drop(self, address: str, veth: Optional[str] = None) -> None:
        """End the lease of address now (when veth is given, only if it is
        that veth's), e.g. when its sandbox's wiring failed."""
        lock = self._locked()
        try:
            journal = self._read()
            entry = journal.entries.pop(address, None)
            if entry is not None and (veth is None or entry[0] == veth):
                self._save(journal, [f"- {address}"])
        finally:
            os.close(lock)

    def live(self) -> Dict[str, Entry]:
        """address -> (veth, ifindex) of every live lease; stale ones are collected."""
        lock = self._locked()
        try:
            journal = self._read()
            self._save(journal, self._collect(journal))
            return journal.entries
        finally:
            os.close(lock)

    def remove(self) -> None:
        """Delete the lease file and its lock (the bridge is gone).  A waiter
        that got the unlinked lock sees so and locks a new file (_locked)."""
        lock = self._locked()
        try:
            for path in (self.path, self.lock_path):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
        finally:
            os.close(lock)


class _Journal:
    """A lease file replayed: the live entries, the cursor, how many lines it
    has and whether its last one lacks its newline."""

    def __init__(self) -> None:
        self.cursor = 0
        self.entries: Dict[str, Entry] = {}
        self.lines = 0
        self.torn = False
