"""Turning results into the Markdown tables, the JSON document and comparisons."""
from __future__ import annotations

import datetime
import fnmatch
import json
import os
import platform
import shutil
import subprocess
from typing import Optional

from .harness import REQUIRED_TARGETS, judge

SCHEMA = "nsfast-bench/1"
REGRESSION = 1.10   # --compare flags a case whose median grew by more than 10%


def fmt_us(ns) -> str:
    return "-" if ns is None else f"{ns / 1000:.1f}"


def _peers_cell(r: dict) -> str:
    peers = "; ".join(f"{k} {fmt_us(v['median'])} ({r['ratio_peers'].get(k, 0):.2f})"
                      for k, v in r["peers"].items())
    missing = "; ".join(f"{k} missing (`{hint}`)" for k, hint in r["missing"].items())
    # a cell of the table: the error's own "|" would split it
    failed = "; ".join(f"{k} failed ({error.replace('|', '/')})"
                       for k, error in r.get("failed", {}).items())
    return "; ".join(x for x in (peers, missing, failed) if x) or "-"


def _targets_cell(r: dict) -> str:
    cells = []
    for t in r.get("targets", []):
        ratio = "-" if t["ratio"] is None else f"{t['ratio']:.2f}"
        cells.append(f"{t['status']} {t['text']} ({ratio})")
    return "; ".join(cells) or "-"


TABLE_HEAD = ("| case | nsfast median (us) | p90 | p99 | floor (us) | x floor "
              "| peers (us, nsfast/peer) | targets |")
# what markdown() appends to a case's name, and medians_from_markdown() takes off
NOISE_FLAGS = (" (rerun: noisy)", " (noisy, rerun)", " (noisy)")


def markdown(results: list) -> str:
    """Case | nsfast median, p90, p99 | floor | ratio | each peer with its ratio | targets."""
    lines = [TABLE_HEAD, "|---|---|---|---|---|---|---|---|"]
    for r in results:
        floor = r["floor"]["median"] if r["floor"] else None
        ratio = f"{r['ratio_floor']:.2f}" if r["ratio_floor"] else "-"
        flag = ""
        if r.get("reruns"):
            flag = NOISE_FLAGS[0] if not r.get("noisy") else NOISE_FLAGS[1]
        elif r.get("noisy"):
            flag = NOISE_FLAGS[2]
        n = r["nsfast"]
        lines.append(f"| {r['case']}{flag} | {fmt_us(n['median'])} | {fmt_us(n['p90'])} | "
                     f"{fmt_us(n['p99'])} | {fmt_us(floor)} | {ratio} | {_peers_cell(r)} | "
                     f"{_targets_cell(r)} |")
    return "\n".join(lines) + "\n"


def target_rows(results: list) -> list:
    """The targets table: each required target judged on every case it applies to
    (or N/A when none measured it), then the cases' own other targets."""
    rows = []
    claimed = {t["key"] for r in results for t in r.get("targets", []) if t["key"]}
    for key, (what, target, globs) in REQUIRED_TARGETS.items():
        if key in claimed:
            found = [{"what": what, "case": r["case"], **t} for r in results
                     for t in r["targets"] if t["key"] == key]
        else:
            found = [{"what": what, "case": r["case"], **judge(target, r)} for r in results
                     if any(fnmatch.fnmatch(r["case"], g) for g in globs)]
            measured = [x for x in found if x["ratio"] is not None]
            found = measured or found[:1]
        rows += found or [{"what": what, "case": "-", **judge(target, _NOTHING),
                           "why": "no case measures it"}]
    shown = {(x["case"], x["against"], round(x["limit"], 6)) for x in rows}
    for r in results:
        for t in r.get("targets", []):
            if not t["key"] and (r["case"], t["against"], round(t["limit"], 6)) not in shown:
                rows.append({"what": r["case"], "case": r["case"], **t})
    return rows


_NOTHING = {"ratio_floor": None, "ratio_peers": {}, "missing": {}}


def targets_markdown(results: list) -> str:
    lines = ["| what | target | case | ratio | limit | result |", "|---|---|---|---|---|---|"]
    for t in target_rows(results):
        ratio = "-" if t["ratio"] is None else f"{t['ratio']:.2f}"
        limit = f"{t['limit']:.3g}"
        why = f" ({t['why']})" if t.get("why") else ""
        lines.append(f"| {t['what']} | {t['text']} | {t['case']} | {ratio} | {limit} | "
                     f"{t['status']}{why} |")
    return "\n".join(lines) + "\n"


def curves_markdown(curves: list) -> str:
    """One line per series: the curve's y at each x."""
    lines = []
    for c in curves:
        lines.append(f"- **{c['curve']}** ({c['title']}; x = {c['x_label']})")
        for p in c["panels"]:
            # nanoseconds are shown as microseconds, like the case table
            ns = "(ns)" in p["y_label"]
            scale, label = (1000, p["y_label"].replace("(ns)", "(us)")) if ns else (1, p["y_label"])
            for s in p["series"]:
                pts = ", ".join(f"{_num(pt['x'])}: {_num(_div(pt['y'], scale))}"
                                for pt in s["points"])
                lines.append(f"  - {label}, {s['label']}: {pts}")
            if "drain_s" in p:
                lines.append(
                    "  - backlog not drained by the end of the wait" if p["drain_s"] is None
                    else f"  - backlog drained {p['drain_s']:.2f} s after the last creation")
    return "\n".join(lines) + ("\n" if lines else "")


def _div(v, by: float):
    return None if v is None else v / by


def _num(v) -> str:
    if v is None:
        return "-"
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}"


def full_markdown(doc: dict, comparison: Optional[list] = None) -> str:
    out = [markdown(doc["results"]), "\nTargets\n\n", targets_markdown(doc["results"])]
    if doc["curves"]:
        out += ["\nScaling curves\n\n", curves_markdown(doc["curves"])]
    if doc["errors"]:
        out += ["\nErrors\n\n"] + [f"- {e['name']}: {e['error']}\n" for e in doc["errors"]]
    if comparison is not None:
        out += ["\nCompared with the earlier run\n\n", compare_markdown(comparison)]
    return "".join(out)


def medians_from_markdown(text: str) -> Optional[list]:
    """The cases of a table markdown() wrote (a committed results/latest.md) as
    result records holding only the nsfast median, enough for compare(); None
    if text has no such table.  The table rounds to 0.1 us.

    >>> medians_from_markdown(TABLE_HEAD + "\\n|---|\\n| spawn/net (noisy) | 12.5 | 13 |\\n")
    [{'case': 'spawn/net', 'nsfast': {'median': 12500.0}}]
    """
    lines = text.splitlines()
    if TABLE_HEAD not in lines:
        return None
    rows = []
    for line in lines[lines.index(TABLE_HEAD) + 2:]:
        if not line.startswith("| "):
            break
        case, median = (line[2:].split(" | ") + [""])[:2]
        flag = next((f for f in NOISE_FLAGS if case.endswith(f)), "")
        try:
            rows.append({"case": case[:len(case) - len(flag)],
                         "nsfast": {"median": float(median) * 1000}})
        except ValueError:
            raise ValueError(f"no median in this row of the table: {line!r}") from None
    return rows


def compare(old: dict, new_results: list) -> list:
    """Each case in both runs: old and new median, new/old, and whether it regressed."""
    before = {r["case"]: r for r in old.get("results", [])}
    rows = []
    for r in new_results:
        o = before.get(r["case"])
        if o is None:
            continue
        ratio = r["nsfast"]["median"] / o["nsfast"]["median"] if o["nsfast"]["median"] else None
        rows.append({"case": r["case"], "old": o["nsfast"]["median"], "new": r["nsfast"]["median"],
                     "ratio": ratio, "regression": ratio is not None and ratio > REGRESSION})
    return rows


def compare_markdown(rows: list) -> str:
    lines = ["| case | old median (us) | new median (us) | new/old | |", "|---|---|---|---|---|"]
    for c in rows:
        ratio = "-" if c["ratio"] is None else f"{c['ratio']:.2f}"
        flag = f"REGRESSION (> {REGRESSION:.2f})" if c["regression"] else ""
        lines.append(f"| {c['case']} | {fmt_us(c['old'])} | {fmt_us(c['new'])} | {ratio} "
                     f"| {flag} |")
    if not rows:
        lines.append("| (no case in common) | | | | |")
    return "\n".join(lines) + "\n"


def _version(cmd: list) -> str:
    if not shutil.which(cmd[0]):
        return "missing"
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def machine() -> dict:
    """Kernel, CPU, cores, memory, Python and the peers' versions."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_mb = 0
    try:
        mem_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1 << 20)
    except (ValueError, OSError):
        pass
    try:
        import pyroute2
        pr2 = pyroute2.__version__
    except Exception:
        pr2 = "missing"
    try:
        from nsfast import __version__ as nsv
    except Exception:
        nsv = "unknown"
    return {
        "kernel": platform.release(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_mb": mem_mb,
        "python": platform.python_version(),
        "nsfast": nsv,
        "peers": {
            "unshare": _version(["unshare", "--version"]),
            "nsenter": _version(["nsenter", "--version"]),
            "lsns": _version(["lsns", "--version"]),
            "ip": _version(["ip", "-V"]),
            "bwrap": _version(["bwrap", "--version"]),
            "pyroute2": pr2,
        },
    }


def document(results: list, curves: list, errors: list, *, quick: bool, repeat: int,
             command: list) -> dict:
    """The JSON document of a run (benchmarks/SCHEMA.md)."""
    return {"schema": SCHEMA,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": command, "quick": quick, "repeat": repeat, "machine": machine(),
            "results": results, "curves": curves, "errors": errors}


def write_json(doc: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
