"""Turning case results into the Markdown table and the JSON document."""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess


def fmt_us(ns) -> str:
    return "-" if ns is None else f"{ns / 1000:.1f}"


def markdown(results: list) -> str:
    """Case | nsfast median | floor | ratio | each peer with its ratio | target."""
    lines = ["| case | nsfast median (us) | p90 | floor (us) | x floor | peers (us, nsfast/peer) "
             "| target |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        floor = r["floor"]["median"] if r["floor"] else None
        ratio = f"{r['ratio_floor']:.2f}" if r["ratio_floor"] else "-"
        peers = "; ".join(f"{k} {fmt_us(v['median'])} ({r['ratio_peers'][k]:.2f})"
                          for k, v in r["peers"].items())
        missing = "; ".join(f"{k} missing ({hint})" for k, hint in r["missing"].items())
        peers = "; ".join(x for x in (peers, missing) if x) or "-"
        t = r.get("target")
        target = "-" if not t else (f"{'PASS' if t['pass'] else 'MISS'} "
                                    f"({t['ratio']:.2f} vs {t['against']} <= {t['limit']})"
                                    if t["ratio"] is not None else f"MISS (no {t['against']})")
        noisy = " (noisy)" if r.get("noisy") else ""
        lines.append(f"| {r['case']}{noisy} | {fmt_us(r['nsfast']['median'])} | "
                     f"{fmt_us(r['nsfast']['p90'])} | {fmt_us(floor)} | {ratio} | {peers} | "
                     f"{target} |")
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
    """Kernel, CPU, cores, Python and the peers' versions."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import pyroute2
        pr2 = pyroute2.__version__
    except Exception:
        pr2 = "missing"
    return {
        "kernel": platform.release(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "peers": {
            "unshare": _version(["unshare", "--version"]),
            "nsenter": _version(["nsenter", "--version"]),
            "lsns": _version(["lsns", "--version"]),
            "ip": _version(["ip", "-V"]),
            "bwrap": _version(["bwrap", "--version"]),
            "pyroute2": pr2,
        },
    }


def to_json(results: list, path: str, keep_samples: bool = True) -> None:
    doc = {"schema": "nsfast-bench/1", "machine": machine(),
           "results": [r if keep_samples else {k: v for k, v in r.items() if k != "samples"}
                       for r in results]}
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
