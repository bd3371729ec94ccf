"""nsfast run: the Sandbox from the command line and from a TOML file,
witnessed by what the payload reports about itself."""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import tempfile

import pytest

from conftest import run_cli


def test_defaults_and_exit_status():
    r = run_cli("run", "--", "sh", "-c",
                "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; touch /x; exit 7")
    assert r.returncode == 7
    out = r.stdout.decode().split()
    assert out == ["NoNewPrivs:", "1", "Seccomp:", "2"]
    assert b"Read-only file system" in r.stderr


def test_program_flags_after_the_program_are_its_own():
    r = run_cli("run", "ls", "-d", "/proc/1")
    assert r.returncode == 0 and r.stdout == b"/proc/1\n"


def test_flags_turn_defaults_off():
    r = run_cli("run", "--no-seccomp", "--net", "host", "--env", "X=y", "--",
                "sh", "-c", "grep ^Seccomp: /proc/self/status; echo $X; ip -o link | wc -l")
    lines = r.stdout.decode().split("\n")
    assert lines[0].split() == ["Seccomp:", "0"] and lines[1] == "y"
    with open("/proc/net/dev") as f:
        host_links = len(f.readlines()) - 2
    assert int(lines[2]) == host_links


@pytest.fixture
def shared_dir():
    """A directory the sandbox's range-mapped ids may read (pytest's tmp_path
    is 0700, root's: closed to them, as it should be)."""
    d = tempfile.mkdtemp(prefix="nsfast-run-", dir="/var/tmp")
    os.chmod(d, 0o755)
    yield pathlib.Path(d)
    shutil.rmtree(d)


def test_config_file_and_mounts(tmp_path, shared_dir):
    (shared_dir / "data").write_bytes(b"payload data\n")
    os.chmod(shared_dir / "data", 0o644)
    cfg = tmp_path / "box.toml"
    cfg.write_text('tmp_size = 1048576\nhostname = "box"\n'
                   f'[[mounts]]\ntype = "bind"\nsrc = "{shared_dir}/data"\ndst = "/tmp/data"\n'
                   'readonly = true\n')
    r = run_cli("run", "--config", str(cfg), "--tmpfs", "/tmp/t:2M", "--", "sh", "-c",
                "hostname; cat /tmp/data; df -k /tmp /tmp/t | tail -2 | tr -s ' ' | "
                "cut -d' ' -f2; echo x > /tmp/data")
    out = r.stdout.decode().split("\n")
    assert out[:4] == ["box", "payload data", "1024", "2048"], r.stderr
    assert r.returncode != 0 and b"Read-only" in r.stderr


@pytest.mark.parametrize("text,word", [
    ("bogus = 1\n", "bogus"),
    ('[[mounts]]\ntype = "bind"\nsrc = "/"\ndst = "/mnt"\nro = true\n', "ro"),
    ('[seccomp]\ndefault = "errno"\nallowed = ["read"]\n', "allowed"),
    ("tmp_size = \n", "box.toml"),
])
def test_config_errors_are_one_line_before_anything(tmp_path, text, word):
    cfg = tmp_path / "box.toml"
    cfg.write_text(text)
    r = run_cli("run", "--config", str(cfg), "--", "touch", str(tmp_path / "ran"))
    assert r.returncode == 1 and not (tmp_path / "ran").exists()
    err = r.stderr.decode()
    assert err.count("\n") == 1 and word in err and "Traceback" not in err


def test_seccomp_file(tmp_path):
    policy = tmp_path / "filter.toml"
    policy.write_text('deny = ["getppid"]\nerrno = 13\n')
    r = run_cli("run", "--seccomp", str(policy), "--", "python3", "-c",
                "import ctypes; l = ctypes.CDLL(None, use_errno=True); "
                "print(l.syscall(110), ctypes.get_errno())")
    assert r.stdout == b"-1 13\n", r.stderr


def _meta(path) -> dict:
    return dict(line.split(":", 1) for line in path.read_text().splitlines())


def test_meta_and_timeout(tmp_path):
    """--meta in isolate's format; --timeout kills from outside (124), a
    --wall-time (or --time) limit from inside (status TO, killed)."""
    meta = tmp_path / "meta"
    r = run_cli("run", "--timeout", "0.3", "--meta", str(meta), "--", "sleep", "10")
    assert r.returncode == 124
    assert _meta(meta)["exitsig"] == "9"
    run_cli("run", "--meta", str(meta), "--", "true", check=True)
    seen = _meta(meta)
    assert seen["exitcode"] == "0" and "status" not in seen and "cg-mem" in seen
    r = run_cli("run", "--wall-time", "0.3", "--meta", str(meta), "--", "sleep", "10")
    seen = _meta(meta)
    assert (seen["status"], seen["killed"]) == ("TO", "1"), seen
    r = run_cli("run", "--time", "0.3", "--meta", str(meta), "--", "sleep", "10")
    assert _meta(meta)["status"] == "TO" and float(_meta(meta)["time-wall"]) < 5
    r = run_cli("run", "--no-limits", "--meta", str(meta), "--", "sh", "-c", "exit 3")
    assert r.returncode == 3 and _meta(meta)["status"] == "RE"


def test_limit_flags_and_the_limits_table(tmp_path):
    r = run_cli("run", "--pids", "32", "--rlimit", "NOFILE=40", "--", "sh", "-c", "ulimit -n")
    assert r.stdout == b"40\n", r.stderr
    config = tmp_path / "box.toml"
    config.write_text('[limits]\nnofile = 48\n')
    r = run_cli("run", "--config", str(config), "--", "sh", "-c", "ulimit -n")
    assert r.stdout == b"48\n", r.stderr
    config.write_text('[limits]\nbogus = 1\n')
    r = run_cli("run", "--config", str(config), "--", "true")
    assert r.returncode != 0 and len(r.stderr.splitlines()) == 1


def test_overlay_needs_a_root(tmp_path):
    r = run_cli("run", "--overlay", "--", "true")
    assert r.returncode == 1 and b"root=DIR" in r.stderr and r.stderr.count(b"\n") == 1
