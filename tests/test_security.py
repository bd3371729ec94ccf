"""Security options of spawn, witnessed by /proc/self/status inside the sandbox."""
from __future__ import annotations

import threading

import nsfast

CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_NET_BIND_SERVICE = 12, 21, 10


def _status_inside(**kw) -> dict:
    p = nsfast.spawn(["cat", "/proc/self/status"], stdout=nsfast.PIPE, **kw)
    out, _ = p.communicate(timeout=30)
    assert p.returncode == 0
    fields = {}
    for line in out.decode().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def _caps(fields: dict, key: str) -> int:
    return int(fields[key], 16)


def test_no_new_privs_is_set_only_when_asked():
    assert _status_inside()["NoNewPrivs"] == "0"
    assert _status_inside(no_new_privs=True)["NoNewPrivs"] == "1"


def test_capabilities_keep_only_the_named_ones():
    fields = _status_inside(namespaces="user", map_root=True,
                            capabilities=["CAP_NET_ADMIN", "net_bind_service"])
    keep = (1 << CAP_NET_ADMIN) | (1 << CAP_NET_BIND_SERVICE)
    for key in ("CapInh", "CapPrm", "CapEff", "CapBnd"):
        assert _caps(fields, key) == keep, key
    assert _caps(fields, "CapAmb") == 0


def test_without_capabilities_option_root_keeps_its_set():
    fields = _status_inside(namespaces="user", map_root=True)
    assert _caps(fields, "CapEff") & (1 << CAP_SYS_ADMIN)


def test_empty_capability_list_drops_everything():
    fields = _status_inside(namespaces="user", map_root=True, capabilities=[])
    for key in ("CapPrm", "CapEff", "CapBnd", "CapInh"):
        assert _caps(fields, key) == 0, key


def test_a_uid_other_than_0_keeps_its_ambient_capabilities_through_exec():
    # a uid other than 0 loses its capabilities at exec unless they are ambient
    fields = _status_inside(namespaces="user", uid=1000, gid=1000,
                            uid_map="0 0 2000\n", gid_map="0 0 2000\n",
                            capabilities=["CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE"],
                            ambient_capabilities=["CAP_NET_BIND_SERVICE"])
    assert fields["Uid"].split()[0] == "1000"
    assert _caps(fields, "CapBnd") == (1 << CAP_NET_ADMIN) | (1 << CAP_NET_BIND_SERVICE)
    for key in ("CapAmb", "CapPrm", "CapEff"):
        assert _caps(fields, key) == 1 << CAP_NET_BIND_SERVICE, key


def test_a_uid_other_than_0_without_ambient_capabilities_has_none():
    fields = _status_inside(uid=1000, gid=1000, capabilities=["CAP_NET_ADMIN"])
    assert _caps(fields, "CapBnd") == 1 << CAP_NET_ADMIN
    for key in ("CapAmb", "CapPrm", "CapEff"):
        assert _caps(fields, key) == 0, key


def test_ambient_capabilities_outside_the_kept_ones_are_a_value_error():
    import pytest
    for kept in (None, ["CAP_NET_ADMIN"]):
        with pytest.raises(ValueError, match="ambient_capabilities must be among"):
            nsfast.spawn(["true"], capabilities=kept, ambient_capabilities=["CAP_SYS_ADMIN"])


def test_unknown_capability_is_a_value_error_before_spawning():
    import pytest
    with pytest.raises(ValueError, match="unknown capability"):
        nsfast.spawn(["true"], capabilities=["CAP_MAKE_COFFEE"])


def test_user_namespace_spawn_from_a_process_with_50_threads():
    """The kernel refuses unshare(CLONE_NEWUSER) in a threaded process; spawn does
    it in the child, so 50 extra threads change nothing."""
    stop = threading.Event()
    threads = [threading.Thread(target=stop.wait) for _ in range(50)]
    for t in threads:
        t.start()
    try:
        import os
        assert len(os.listdir("/proc/self/task")) >= 51
        p = nsfast.spawn(["id", "-u"], namespaces="user,mnt,pid", map_root=True,
                         stdout=nsfast.PIPE)
        out, _ = p.communicate(timeout=30)
        assert out == b"0\n" and p.returncode == 0
    finally:
        stop.set()
        for t in threads:
            t.join()


def _tty_nr(**kw) -> int:
    """The payload's controlling terminal as /proc/self/stat shows it (0: none)."""
    p = nsfast.spawn(["cut", "-d", " ", "-f", "7", "/proc/self/stat"], stdout=nsfast.PIPE, **kw)
    return int(p.communicate(timeout=30)[0])


def test_controlling_tty_makes_stdin_the_sessions_terminal():
    import os
    master, slave = os.openpty()
    try:
        assert _tty_nr(stdin=slave, new_session=True, controlling_tty=True) == \
            os.stat(slave).st_rdev
        # a new session alone has no controlling terminal (TIOCSTI's target gone)
        assert _tty_nr(stdin=slave, new_session=True) == 0
    finally:
        os.close(master)
        os.close(slave)


def test_controlling_tty_needs_a_new_session_and_a_terminal():
    import errno
    import pytest
    with pytest.raises(ValueError, match="needs new_session=True"):
        nsfast.spawn(["true"], stdin=nsfast.DEVNULL, controlling_tty=True)
    with pytest.raises(OSError) as e:
        nsfast.spawn(["true"], stdin=nsfast.DEVNULL, new_session=True, controlling_tty=True)
    assert e.value.errno == errno.ENOTTY and "controlling terminal" in str(e.value)
