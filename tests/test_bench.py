"""The benchmark suite runs, reports what it promises, and refuses what it must.

No test here asserts a speed: figures are checked for presence and shape only.
The suite runs as `nsfast bench` in a child process, so the pytest process's
namespaces are never touched (the curves unshare in their own workers).
"""
import json
import os
import subprocess
import sys

import pytest

from nsfast._bench import report
from nsfast._bench.__main__ import run_cases
from nsfast._bench.harness import (Case, Config, Curve, Floor, Peer, at_most, command_peer,
                                faster, module_peer, run_case, run_curve, within)
from nsfast._bench.schema import validate
from nsfast.kernel import CLONE_NEWUTS

from conftest import need, need_tool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AREAS = sorted(f[len("cases_"):-3] for f in os.listdir(os.path.join(ROOT, "benchmarks"))
               if f.startswith("cases_") and f.endswith(".py"))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        return False


def _one_line_error(r) -> str:
    err = r.stderr.decode()
    assert r.returncode == 1, (r.returncode, err)
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err


def _assert_complete(doc: dict) -> None:
    assert validate(doc) == [], validate(doc)[:5]
    assert doc["errors"] == []
    for r in doc["results"]:
        assert r["checked"] is True
        assert r["nsfast"]["n"] > 0 and r["nsfast"]["median"] > 0, r["case"]
        assert r["floor"] is not None and r["floor"]["n"] > 0, f"{r['case']} has no floor"
        assert r["ratio_floor"] is not None
        assert len(r["samples"]["nsfast"]) == r["nsfast"]["n"]
        assert len(r["samples"]["floor"]) == r["floor"]["n"]
        for peer in r["peers"]:
            assert len(r["samples"][peer]) == r["peers"][peer]["n"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """`nsfast bench --quick --json` on the cheapest case, as a user would run it."""
    from conftest import run_cli
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    r = run_cli("bench", "--quick", "--only", "curves/spawn-true", "--json", str(out),
                timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    return r, json.loads(out.read_text()), out


@pytest.mark.system   # a benchmark run (nsfast bench --quick)
def test_quick_json_has_every_figure_and_validates(quick_run):
    r, doc, _ = quick_run
    _assert_complete(doc)
    assert [x["case"] for x in doc["results"]] == ["curves/spawn-true"]
    res = doc["results"][0]
    assert set(res["peers"]) == {"os.fork+exec", "subprocess"}
    assert {"median", "p90", "p99"} <= set(res["nsfast"])
    assert doc["quick"] is True and doc["machine"]["kernel"] == os.uname().release
    # the table is printed: a row for the case, with p99, and the targets table
    table = r.stdout.decode()
    assert "| curves/spawn-true " in table and "p99" in table
    assert "| named netns add | at least 3x faster than pyroute2 |" in table


# a whole benchmark run is a soak (thousands of spawns, 5-15 s an area), and
# the mount-table curve counts every mount of the table
@pytest.mark.system
@pytest.mark.parametrize("area", AREAS)
def test_each_area_runs_quick(cli, tmp_path, area):
    """One --quick --only AREA run per cases_<area>.py present: every case and
    curve ends with its figures, the document validates, nothing errs."""
    out = tmp_path / "area.json"
    args = ["bench", "--quick", "--only", area, "--json", str(out)]
    if area == "curves" and _has_matplotlib():
        args += ["--plot", str(tmp_path / "bench.png")]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    r = cli(*args, timeout=300, env=dict(os.environ, TMPDIR=str(scratch)))
    # the mount-table curve works in a mount namespace of its own: nothing stays behind
    assert list(scratch.iterdir()) == []
    with open("/proc/self/mountinfo", "rb") as f:
        assert bytes(scratch) not in f.read()
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    doc = json.loads(out.read_text())
    _assert_complete(doc)
    assert doc["results"] or doc["curves"]
    assert all(x["area"] == area for x in doc["results"] + doc["curves"])
    if area == "curves":
        names = {c["curve"] for c in doc["curves"]}
        assert names == {"curve/spawn-threads", "curve/netns-churn", "curve/mount-table",
                         "curve/spawn-rss"}
        by = {c["curve"]: c for c in doc["curves"]}
        xs = [p["x"] for p in by["curve/spawn-threads"]["panels"][0]["series"][0]["points"]]
        assert xs == [1, 2, 4, 8]
        churn = by["curve/netns-churn"]["panels"][0]["series"][0]["points"]
        assert [p["x"] for p in churn] == list(range(100, 1001, 100))
        rss = {s["label"]: s["points"] for s in by["curve/spawn-rss"]["panels"][0]["series"]}
        assert set(rss) == {"nsfast.spawn", "os.fork+exec", "subprocess"}
        # the callers really were that big: as started, 50 MB and 500 MB resident
        sizes = [p["x"] for p in rss["nsfast.spawn"]]
        assert sizes[0] < 45 and abs(sizes[1] - 50) < 5 and abs(sizes[2] - 500) < 20, sizes
        mounts = [p["x"] for p in by["curve/mount-table"]["panels"][0]["series"][0]["points"]]
        assert mounts[1] - mounts[0] == 100 and mounts[2] - mounts[0] == 500
        if _has_matplotlib():
            for name in names:
                png = tmp_path / f"bench-{name.replace('/', '-')}.png"
                assert png.read_bytes()[:8] == PNG_MAGIC, png
            assert (tmp_path / "bench.png").read_bytes()[:8] == PNG_MAGIC


@pytest.mark.system   # a benchmark run (nsfast bench --quick)
def test_plot_writes_png_files(cli, tmp_path):
    need(_has_matplotlib(), "matplotlib (pip install nsfast[bench])")
    png = tmp_path / "b.png"
    r = cli("bench", "--quick", "--only", "curves/spawn-true", "--plot", str(png), timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    data = png.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000


def test_plot_without_matplotlib_is_one_line(tmp_path):
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "from nsfast.cli import main\n"
            f"sys.exit(main(['bench', '--only', 'curves/spawn-true', '--plot', "
            f"{str(tmp_path / 'x.png')!r}]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=ROOT, timeout=60)
    err = _one_line_error(r)
    assert "pip install nsfast[bench]" in err
    assert b"curves/spawn-true" not in r.stdout   # refused before measuring anything
    assert not (tmp_path / "x.png").exists()


def test_bench_ignores_a_benchmarks_package_in_the_working_directory(tmp_path):
    """The suite is nsfast._bench: a `benchmarks` package where the user stands
    is neither imported nor run, by `python -m nsfast.cli bench` or the module."""
    rogue = tmp_path / "benchmarks"
    rogue.mkdir()
    touched = tmp_path / "imported"
    for name in ("__init__.py", "__main__.py"):
        (rogue / name).write_text(f"open({str(touched)!r}, 'w').close()\nraise SystemExit(9)\n")
    for args in (["-m", "nsfast.cli", "bench", "--list"], ["-m", "nsfast._bench", "--list"]):
        r = subprocess.run([sys.executable, *args], capture_output=True, cwd=tmp_path,
                           timeout=60)
        assert r.returncode == 0, r.stderr.decode()
        assert b"curves/spawn-true\tcurves" in r.stdout
        assert not touched.exists(), args


def test_the_suite_is_installed_inside_nsfast():
    import nsfast
    import nsfast._bench
    from nsfast._bench import harness
    assert nsfast._bench.__name__ == "nsfast._bench" and harness.__package__ == "nsfast._bench"
    # its floors' sources came along (package data), wherever it was installed from
    assert os.path.exists(os.path.join(os.path.dirname(harness.__file__), "floor_spawn.c"))
    assert "benchmarks" not in sys.modules


@pytest.fixture
def floor_cache(tmp_path, monkeypatch):
    """A fresh $XDG_CACHE_HOME, and a build_floor that has built nothing yet."""
    from nsfast._bench import floors
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(floors, "_built", {})
    return tmp_path / "cache" / "nsfast" / "bench"


def test_floors_compile_into_the_cache_not_beside_the_sources(floor_cache):
    from nsfast._bench import floors
    here = os.path.dirname(floors.__file__)
    before = sorted(os.listdir(here))
    prog = floors.build_floor("floor_core.c")
    lib = floors.build_floor("floor_core.c", library=True)
    assert os.path.dirname(prog) == os.path.dirname(lib) == str(floor_cache)
    assert prog != lib and os.access(prog, os.X_OK) and lib.endswith(".so")
    assert sorted(os.listdir(floor_cache)) == sorted([os.path.basename(prog),
                                                      os.path.basename(lib)])
    assert sorted(os.listdir(here)) == before   # no .build beside the sources
    assert os.stat(floor_cache).st_mode & 0o777 == 0o700
    # the binary runs: one sample of unshare(CLONE_NEWUTS), in its own process
    r = subprocess.run([prog, "1", "unshare", hex(CLONE_NEWUTS)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0 and int(r.stdout.split()[0]) > 0, r.stderr


def test_a_changed_floor_or_compiler_builds_a_new_binary(floor_cache, tmp_path, monkeypatch):
    from nsfast._bench import floors
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    here = os.path.dirname(floors.__file__)
    for name in ("floor_core.c", "floor_common.h"):
        (src_dir / name).write_bytes(open(os.path.join(here, name), "rb").read())
    src = str(src_dir / "floor_core.c")
    first = floors.build_floor(src)
    built_at = os.stat(first).st_mtime_ns
    floors._built.clear()   # a later run: the same source finds its binary
    assert floors.build_floor(src) == first and os.stat(first).st_mtime_ns == built_at
    with open(src, "a") as f:
        f.write("/* edited */\n")
    floors._built.clear()
    edited = floors.build_floor(src)
    assert edited != first and os.path.exists(first)
    header = src_dir / "floor_common.h"
    header.write_bytes(b"/* edited */\n" + header.read_bytes())
    floors._built.clear()
    header_edited = floors.build_floor(src)
    assert header_edited not in (first, edited)
    # another compiler ($CC, as make takes it): a wrapper that adds a flag
    cc = tmp_path / "my-cc"
    cc.write_text('#!/bin/sh\nexec cc -DFROM_MY_CC "$@"\n')
    cc.chmod(0o755)
    monkeypatch.setenv("CC", str(cc))
    floors._compiler.cache_clear()
    floors._built.clear()
    try:
        other = floors.build_floor(src)
    finally:
        floors._compiler.cache_clear()
    assert other not in (first, edited, header_edited)
    assert len(os.listdir(floor_cache)) == 4


def test_a_cache_others_can_write_is_refused(floor_cache):
    from nsfast._bench import floors
    floor_cache.mkdir(parents=True)
    floor_cache.chmod(0o777)
    with pytest.raises(RuntimeError, match="writable by another user"):
        floors.build_floor("floor_core.c")
    assert list(floor_cache.iterdir()) == []


@pytest.mark.system   # a benchmark run (nsfast bench --quick)
def test_compare_flags_a_regression(cli, quick_run, tmp_path):
    _, doc, _ = quick_run
    old = json.loads(json.dumps(doc))
    old["results"][0]["nsfast"]["median"] = 1.0   # a doctored past: 1 ns
    old_path = tmp_path / "old.json"
    old_path.write_text(json.dumps(old))
    new_path = tmp_path / "new.json"
    r = cli("bench", "--quick", "--only", "curves/spawn-true", "--compare", str(old_path),
            "--json", str(new_path), timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    new = json.loads(new_path.read_text())
    assert validate(new) == []
    [row] = new["compare"]
    assert row["case"] == "curves/spawn-true" and row["old"] == 1.0 and row["regression"]
    assert "REGRESSION" in r.stdout.decode()
    assert "regression(s) above 10%: curves/spawn-true" in r.stderr.decode()


def test_compare_reads_a_markdown_table_like_the_committed_one(cli, quick_run, tmp_path):
    """The repository keeps a run's table (results/latest.md), not its JSON:
    --compare takes the table --markdown wrote."""
    _, doc, _ = quick_run
    old = json.loads(json.dumps(doc))
    old["results"][0]["nsfast"]["median"] = 1000.0   # a doctored past: 1 us
    old["results"][0].update(noisy=True, reruns=0)   # its name then carries a flag
    old_md = tmp_path / "old.md"
    old_md.write_text(report.full_markdown(old))
    assert "| curves/spawn-true (noisy) | 1.0 |" in old_md.read_text()
    new_path = tmp_path / "new.json"
    r = cli("bench", "--quick", "--only", "curves/spawn-true", "--compare", str(old_md),
            "--json", str(new_path), timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    [row] = json.loads(new_path.read_text())["compare"]
    assert row["case"] == "curves/spawn-true" and row["old"] == 1000.0 and row["regression"]
    assert "regression(s) above 10%: curves/spawn-true" in r.stderr.decode()


def test_the_committed_table_reads_back_as_every_case():
    table = os.path.join(ROOT, "benchmarks", "results", "latest.md")
    with open(table) as f:
        rows = report.medians_from_markdown(f.read())
    assert len(rows) > 20 and all(r["nsfast"]["median"] > 0 for r in rows)
    names = [r["case"] for r in rows]
    assert len(set(names)) == len(names) and "curves/spawn-true" in names
    assert not any("noisy" in n for n in names)   # the flags markdown() appends are off


def test_compare_refuses_a_file_that_is_neither_json_nor_a_table(cli, tmp_path):
    bad = tmp_path / "notes.md"
    bad.write_text("| some | other | table |\n|---|---|---|\n| a | 1 | 2 |\n")
    err = _one_line_error(cli("bench", "--compare", str(bad), timeout=60))
    assert "neither JSON" in err and "--markdown" in err


def test_compare_rules():
    new = [{"case": "a", "nsfast": {"median": 111.0}}, {"case": "b", "nsfast": {"median": 109.0}},
           {"case": "c", "nsfast": {"median": 50.0}}]
    old = {"results": [{"case": "a", "nsfast": {"median": 100.0}},
                       {"case": "b", "nsfast": {"median": 100.0}}]}
    rows = {r["case"]: r for r in report.compare(old, new)}
    assert set(rows) == {"a", "b"}             # c is new: nothing to compare with
    assert rows["a"]["regression"] and not rows["b"]["regression"]
    assert rows["a"]["ratio"] == pytest.approx(1.11)


@pytest.mark.parametrize("args, words", [
    (["--repeat", "0"], "at least 1"),
    (["--no-such-flag"], "unrecognized"),
    (["--only", "no-case-is-called-this"], "no case or curve matches"),
    (["--compare", "/nonexistent/old.json"], "/nonexistent/old.json"),
    (["--json", "/nonexistent/dir/out.json"], "/nonexistent/dir/out.json"),
])
def test_bad_arguments_are_one_line(cli, args, words):
    err = _one_line_error(cli("bench", *args, timeout=60))
    assert err.startswith("nsfast bench: ") and words in err, err


def test_compare_refuses_a_file_of_another_schema(cli, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "something-else"}))
    err = _one_line_error(cli("bench", "--compare", str(bad), timeout=60))
    assert "not an nsfast-bench/1 document" in err


# ---- the harness in-process, on cheap operations (behaviour, not speed)

def _net_inode():
    return os.stat("/proc/self/ns/net").st_ino


def _quick() -> Config:
    return Config(quick=True, case_budget_s=0.05)


def test_run_case_refuses_a_case_without_check():
    with pytest.raises(ValueError, match="no check"):
        run_case(Case("nocheck", _net_inode), _quick())
    with pytest.raises(ValueError, match="no check"):
        run_curve(Curve("curve/nocheck", "t", "x", lambda cfg: []), _quick())


def test_contenders_are_interleaved_after_warmup():
    """Warm-up passes in order, then passes that take every contender once, in
    an order shuffled per pass (the same for every run of the case)."""
    def sequence():
        calls = []
        case = Case("order", lambda: calls.append("A"), check=lambda: None, warmup=3,
                    peers=[Peer("b", lambda: calls.append("B")),
                           Peer("c", lambda: calls.append("C"))], samples=60)
        r = run_case(case, Config())
        n = r["nsfast"]["n"]
        assert n == r["peers"]["b"]["n"] == r["peers"]["c"]["n"] >= 20
        # the kept run is the last one (a run that came out noisy is taken again)
        return [tuple(calls[i:i + 3]) for i in range(0, len(calls), 3)][-(3 + n):]
    passes = sequence()
    assert passes[:3] == [("A", "B", "C")] * 3
    assert all(sorted(p) == ["A", "B", "C"] for p in passes[3:])
    assert len(set(passes[3:])) == 6          # every order occurs
    # each contender comes right after each other one, across passes
    flat = [c for p in passes[3:] for c in p]
    follows = {(a, b) for a, b in zip(flat, flat[1:]) if a != b}
    assert len(follows) == 6
    assert sequence()[3:] == passes[3:]


def test_a_served_floor_is_sampled_in_turn_with_the_contenders():
    """Floor(served=True): the floor program answers one sample per request, so
    it has exactly as many samples as nsfast and each peer, and its process is
    gone when the case ends (also the served spawn floor really spawns: a
    sample of clone+exec+wait of /bin/true takes well over a microsecond)."""
    from conftest import children_of
    before = set(children_of(os.getpid()))
    calls = []
    case = Case("served", lambda: calls.append("A"), check=lambda: None, warmup=2,
                floor=Floor("floor_spawn.c", ["0", "0", "0"], served=True),
                peers=[Peer("b", lambda: calls.append("B"))], samples=40)
    r = run_case(case, Config())
    assert r["floor"]["n"] == r["nsfast"]["n"] == r["peers"]["b"]["n"] >= 20
    assert r["floor"]["min"] > 1000, r["floor"]
    assert set(children_of(os.getpid())) <= before


def _read_syscalls() -> int:
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("syscr:")).split()[1])


def test_an_in_process_floor_runs_in_this_process_in_turn_with_the_contenders():
    """Floor(in_process=True): the floor is loaded as a library and each sample
    is taken here, in the passes: as many samples as nsfast's, no child, and
    this process's own read count grows by the floor's reads of mountinfo."""
    from conftest import children_of
    before = set(children_of(os.getpid()))
    reads = _read_syscalls()
    case = Case("in-process", lambda: None, check=lambda: None, warmup=2,
                floor=Floor("floor_mounts.c", ["read"], in_process=True), samples=40)
    r = run_case(case, Config())
    n = r["floor"]["n"]
    assert n == r["nsfast"]["n"] >= 20
    assert r["floor"]["min"] > 1000, r["floor"]   # a whole mountinfo read, in ns
    assert _read_syscalls() - reads >= 2 * n      # read until EOF: two reads or more each
    assert set(children_of(os.getpid())) <= before


def test_an_in_process_floor_closes_the_fds_it_opened():
    """floor_core's setns floor opens two namespace fds when prepared; they
    are closed with the case, and the thread ends where it started."""
    fds = sorted(os.listdir("/proc/self/fd"), key=int)
    uts = os.stat("/proc/thread-self/ns/uts").st_ino
    case = Case("in-process-fds", lambda: None, check=lambda: None, samples=20,
                floor=Floor("floor_core.c", ["setns", "/proc/thread-self/ns/uts", "uts"],
                            in_process=True))
    r = run_case(case, _quick())
    assert r["floor"]["n"] == r["nsfast"]["n"]
    assert r["floor"]["min"] > 100   # two setns syscalls, in ns
    assert sorted(os.listdir("/proc/self/fd"), key=int) == fds
    assert os.stat("/proc/thread-self/ns/uts").st_ino == uts


def test_an_in_process_floor_that_fails_raises_instead_of_exiting():
    """floor_die in the library build returns to the caller: a RuntimeError
    with the errno's text, and the benchmark process goes on."""
    case = Case("in-process-fails", lambda: None, check=lambda: None,
                floor=Floor("floor_mounts.c", ["setattr", "/nonexistent-nsfast-floor"],
                            in_process=True), samples=20)
    with pytest.raises(RuntimeError, match="No such file or directory"):
        run_case(case, _quick())


def test_check_failure_stops_the_case():
    def bad():
        raise AssertionError("namespace inode unchanged")
    with pytest.raises(AssertionError, match="inode unchanged"):
        run_case(Case("bad", _net_inode, check=bad), _quick())


def test_missing_peer_is_reported_with_its_install_command():
    case = Case("missing", _net_inode, check=lambda: None, targets=[at_most(0.5, "bwrap-x")],
                peers=[command_peer("bwrap-x", ["nsfast-no-such-tool-xyz"],
                                    install="apt-get install nsfast-no-such-tool"),
                       module_peer("pyroute2-x", "nsfast_no_such_module", lambda m: m.op)])
    r = run_case(case, _quick())
    assert r["peers"] == {}
    assert r["missing"] == {"bwrap-x": "apt-get install nsfast-no-such-tool",
                            "pyroute2-x": "pip install nsfast_no_such_module"}
    [t] = r["targets"]
    assert t["status"] == "N/A" and t["why"] == "bwrap-x missing"
    table = report.markdown([r])
    assert "bwrap-x missing (`apt-get install nsfast-no-such-tool`)" in table


def _failing_command(folder, name: str, after: int = 0) -> str:
    """An executable `name` in folder that succeeds `after` times, then says
    why on stderr and exits 1 on every later call (a real program, no mock)."""
    path = folder / name
    count = folder / f"{name}.calls"
    path.write_text(f"#!/bin/sh\necho x >> '{count}'\n"
                    f"[ $(wc -l < '{count}') -le {after} ] && exit 0\n"
                    f"echo '{name}: broken on this machine' >&2\nexit 1\n")
    path.chmod(0o755)
    return str(path)


def test_a_failing_peer_is_reported_in_its_case_and_the_case_goes_on(tmp_path):
    """A peer whose command starts failing mid-run is taken out of the case with
    its error; nsfast, the floor and the other peers keep every sample, and a
    target against the failed peer is N/A, saying why."""
    broken = _failing_command(tmp_path, "broken-tool", after=4)
    case = Case("peer-fails", _net_inode, check=lambda: None, samples=40,
                floor=Floor("floor_curves.c", ["/bin/true"]),
                peers=[command_peer("broken", [broken]), Peer("works", _net_inode)],
                targets=[at_most(1.0, "broken"), at_most(1e9, "works")])
    r = run_case(case, _quick())
    assert set(r["failed"]) == {"broken"}
    assert "CalledProcessError" in r["failed"]["broken"] and "exit status 1" in r["failed"]["broken"]
    assert "\n" not in r["failed"]["broken"]
    # it really ran, and failed, here: its program was called past its good calls
    assert len((tmp_path / "broken-tool.calls").read_text().split()) >= 5
    assert "broken" not in r["peers"] and "broken" not in r["samples"]
    assert "broken" not in r["missing"] and "broken" not in r["ratio_peers"]
    assert r["nsfast"]["n"] == r["peers"]["works"]["n"] >= 5 and r["floor"]["n"] > 0
    assert [(t["status"], t["why"]) for t in r["targets"]] == [("N/A", "broken failed"),
                                                              ("PASS", "")]
    assert "broken failed (CalledProcessError: " in report.markdown([r])
    # the record is a valid one (the schema takes "failed")
    doc = report.document([r], [], [], quick=True, repeat=1, command=["test"])
    assert validate(doc) == []


def test_a_peer_failing_in_one_repeat_is_failed_in_the_pooled_case(tmp_path):
    broken = _failing_command(tmp_path, "broken-later", after=30)
    case = Case("peer-fails-later", _net_inode, check=lambda: None, samples=20,
                peers=[command_peer("broken", [broken])])
    errors = []
    [r] = run_cases([case], Config(quick=True, repeat=3, case_budget_s=0.05), errors)
    assert errors == [] and len(r["run_medians"]) == 3
    assert set(r["failed"]) == {"broken"} and r["peers"] == {}
    assert set(r["samples"]) == {"nsfast"}


def test_nsfast_failing_with_a_working_peer_is_the_case_error():
    def broken():
        raise OSError(1, "Operation not permitted")
    errors = []
    results = run_cases([Case("ours-fails", broken, check=lambda: None,
                              peers=[Peer("works", _net_inode)])], _quick(), errors)
    assert results == [] and [e["name"] for e in errors] == ["ours-fails"]


@pytest.mark.system   # a benchmark run (nsfast bench --quick)
def test_bench_exits_0_when_a_peer_command_fails(cli, tmp_path):
    """`findmnt` on PATH exits 1 on every call: both mountinfo cases report it
    as failed with its error and still measure nsfast; the run exits 0."""
    tools = tmp_path / "bin"
    tools.mkdir()
    _failing_command(tools, "findmnt")
    out = tmp_path / "bench.json"
    # the 10- and the 100-mount tree: the suite goes on past the first failure
    env = dict(os.environ, PATH=f"{tools}:{os.environ['PATH']}")
    r = cli("bench", "--quick", "--only", "mountinfo parse, 10[-0][-m]*", "--json", str(out),
            timeout=180, env=env)
    err = r.stderr.decode()
    assert r.returncode == 0, err[-2000:]
    doc = json.loads(out.read_text())
    assert validate(doc) == [] and doc["errors"] == []
    assert [x["case"] for x in doc["results"]] == ["mountinfo parse, 10-mount tree",
                                                   "mountinfo parse, 100-mount tree"]
    for res in doc["results"]:
        assert res["failed"]["findmnt -J"].endswith("findmnt', '-J'] exited 1")
        assert res["peers"] == {} and res["nsfast"]["n"] > 0 and res["floor"]["n"] > 0
        assert [(t["status"], t["why"]) for t in res["targets"]] == [("N/A", "findmnt -J failed")]
    assert "findmnt: broken on this machine" in err
    assert "mountinfo parse, 10-mount tree: peer findmnt -J failed: RuntimeError" in err
    assert "findmnt -J failed (RuntimeError" in r.stdout.decode()


def test_targets_express_at_most_and_faster_than():
    assert within(1.10).judge(1.05) == "PASS" and within(1.10).judge(1.2) == "MISS"
    assert at_most(0.5, "unshare").limit == 0.5
    t = faster(3, "pyroute2")
    assert t.judge(0.30) == "PASS" and t.judge(0.40) == "MISS" and t.judge(None) == "N/A"
    assert t.text == "at least 3x faster than pyroute2"


def test_targets_table_lists_every_promise():
    floor = Floor("floor_curves.c", ["/bin/true"])
    claimed = Case("spawn-x", _net_inode, check=lambda: None, floor=floor,
                   targets=[within(1e9, key="spawn-floor")], target=("floor", 0.0))
    r = run_case(claimed, _quick())
    # a limit nothing misses, and one nothing meets
    assert [t["status"] for t in r["targets"]] == ["PASS", "MISS"]
    # a case the suite judges by its name alone; its own identical target is not repeated
    judged = run_case(Case("set_propagation recursive, net", _net_inode, check=lambda: None, floor=floor,
                           target=("floor", 1.2)), _quick())
    rows = report.target_rows([r, judged])
    by_key = {}
    for x in rows:
        by_key.setdefault(x["key"], []).append(x)
    assert [x["case"] for x in by_key["spawn-floor"]] == ["spawn-x"]
    assert by_key["spawn-floor"][0]["status"] == "PASS"
    [prop] = by_key["propagation-floor"]
    assert prop["case"] == "set_propagation recursive, net" and prop["ratio"] == judged["ratio_floor"]
    assert prop["status"] in ("PASS", "MISS")
    # spawn-x has no unshare peer: judged N/A, with the reason
    [uns] = by_key["spawn-unshare"]
    assert uns["status"] == "N/A" and uns["why"] == "unshare not measured"
    for key in ("enter-floor", "netns-add-pyroute2", "pool-nonet"):
        [x] = by_key[key]
        assert x["status"] == "N/A" and x["why"] == "no case measures it"
    assert [x["case"] for x in by_key[""]] == ["spawn-x"]   # its other, unclaimed target
    table = report.targets_markdown([r, judged])
    assert "| spawn | within 1e+09x of the floor | spawn-x |" in table
    assert table.count("set_propagation recursive, net") == 1


def test_noisy_case_is_rerun_and_noted():
    n = [0]

    def op():
        n[0] += 1
        if n[0] % 4 == 0:      # one sample in four is slow: p90 far above the median
            os.stat("/proc/self/ns/net")
            sum(range(20000))
    r = run_case(Case("noisy", op, check=lambda: None, samples=40, warmup=0), Config())
    assert r["reruns"] == 1
    assert "rerun: first run's p90/median was" in r["note"]
    assert "rerun" in report.markdown([r])


def test_quick_budget_bounds_a_slow_case():
    import time
    from nsfast._bench.harness import QUICK_MIN_SAMPLES
    case = Case("slow", lambda: time.sleep(0.01), check=lambda: None, samples=1000)
    r = run_case(case, Config(quick=True, case_budget_s=0.05))
    # 1000 samples asked for; the budget stops it at the minimum (a rerun replaces the run)
    assert r["nsfast"]["n"] == QUICK_MIN_SAMPLES


def test_a_failing_case_is_recorded_and_the_others_run():
    def broken():
        raise OSError(1, "Operation not permitted")
    good = Case("good", _net_inode, check=lambda: None)
    errors = []
    results = run_cases([Case("broken", broken, check=lambda: None), good,
                         Case("unchecked", _net_inode)], _quick(), errors)
    assert [r["case"] for r in results] == ["good"]
    assert [e["name"] for e in errors] == ["broken", "unchecked"]
    assert "no check" in errors[1]["error"] and "\n" not in errors[0]["error"]


def test_a_case_that_blocks_is_stopped(monkeypatch):
    import time
    from nsfast._bench import harness
    monkeypatch.setitem(harness.CASE_TIME_LIMIT_S, True, 0.3)
    r, w = os.pipe()   # nobody ever writes: the op would block for good
    try:
        with pytest.raises(harness.CaseTimeout, match="still running after"):
            run_case(Case("blocks", lambda: os.read(r, 1), check=lambda: None), _quick())
    finally:
        os.close(r)
        os.close(w)
    time.sleep(0.4)   # the alarm was disarmed: nothing fires now


def test_measured_ops_report_their_own_time():
    from nsfast._bench.harness import Measured, time_op
    assert time_op(lambda: Measured(1234)) == 1234


def test_repeat_pools_runs():
    case = Case("repeat", _net_inode, check=lambda: None, samples=20)
    errors = []
    [r] = run_cases([case], Config(quick=True, repeat=2, case_budget_s=0.05), errors)
    assert errors == [] and len(r["run_medians"]) == 2
    assert r["nsfast"]["n"] == len(r["samples"]["nsfast"]) >= 2 * 5


@pytest.mark.system   # a benchmark run (nsfast bench --quick)
def test_validator_rejects_broken_documents(quick_run):
    _, doc, _ = quick_run
    broken = json.loads(json.dumps(doc))
    del broken["results"][0]["nsfast"]["p99"]
    broken["results"][0]["ratio_floor"] = "fast"
    broken["machine"]["extra"] = 1
    problems = validate(broken)
    assert any("missing key p99" in p for p in problems)
    assert any("ratio_floor" in p for p in problems)
    assert any("unexpected key extra" in p for p in problems)
    assert validate([]) != []


def _cgroup_dirs_named(word: str) -> list:
    found = []
    for base in os.listdir("/sys/fs/cgroup"):
        for top, dirs, _ in os.walk(os.path.join("/sys/fs/cgroup", base)):
            found += [os.path.join(top, d) for d in dirs if word in d]
    return found


@pytest.mark.system   # crun makes cgroups in every v1 hierarchy
def test_the_crun_peer_runs_with_its_limits_and_leaves_nothing(tmp_path, monkeypatch):
    """limits-spawn's crun peer: its setup writes a bundle and proves the
    limits on a created container, each sample is a crun run, and teardown
    leaves no bundle, container, cgroup or helper process; a limit it cannot
    translate makes it a missing peer with the reason, never an unlimited one."""
    import tempfile
    from conftest import children_of
    from nsfast import Limits
    from nsfast._bench.cases_limits import LIMITS, NAMES
    from nsfast._bench.peer_crun import CrunPeer
    need_tool("crun")   # the README's install line installs it
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    before = set(children_of(os.getpid()))
    mine = f"nsfast-crun-{os.getpid()}"
    crun = CrunPeer("/bin/true", NAMES, LIMITS)
    r = run_case(Case("crun-peer", lambda: None, check=lambda: None, peers=[crun.peer],
                      setup=crun.setup, teardown=crun.teardown, samples=20), _quick())
    assert crun.peer.op is not None, crun.peer.install
    assert r["missing"] == {} and r["peers"]["crun"]["n"] >= 5
    assert r["peers"]["crun"]["min"] > 100_000   # a container run, in ns
    assert list(tmp_path.iterdir()) == []          # the bundle is gone
    assert _cgroup_dirs_named(mine) == []
    assert set(children_of(os.getpid())) <= before

    bad = CrunPeer("/bin/true", NAMES, Limits(pids=8, wall_time=5))
    r = run_case(Case("crun-peer-bad", lambda: None, check=lambda: None, peers=[bad.peer],
                      setup=bad.setup, teardown=bad.teardown), _quick())
    assert r["peers"] == {} and "cannot run here with the limits" in r["missing"]["crun"]
    assert "memory, pids, cpu" in r["missing"]["crun"]
    assert list(tmp_path.iterdir()) == [] and _cgroup_dirs_named(mine) == []
