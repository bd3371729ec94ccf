"""PNG plots of a run: a bar chart of nsfast against the floor and the peers per
case, and one picture per scaling curve (matplotlib, the `bench` extra)."""
from __future__ import annotations

import os

INSTALL_HINT = "pip install nsfast[bench]"


def require_matplotlib():
    """The pyplot module on the Agg backend, or RuntimeError naming the extra."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError(f"--plot needs matplotlib: {INSTALL_HINT}") from None
    return plt


def curve_path(path: str, curve_name: str) -> str:
    """Where the PNG of a curve goes: next to the bar chart, named after both.

    >>> curve_path("out/bench.png", "curve/spawn-rss")
    'out/bench-curve-spawn-rss.png'
    """
    stem, ext = os.path.splitext(path)
    slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in curve_name)
    return f"{stem}-{slug}{ext or '.png'}"


def bar_chart(results: list, path: str, title: str = "") -> None:
    """Horizontal grouped bars: median per contender per case, log scale, in us."""
    plt = require_matplotlib()
    names = ["nsfast", "floor"]
    for r in results:
        names += [p for p in r["peers"] if p not in names]
    height = max(3.0, 0.3 * len(results) * min(len(names), 4) + 1.5)
    fig, ax = plt.subplots(figsize=(11, height))
    bar = 0.8 / len(names)
    for j, name in enumerate(names):
        ys, xs = [], []
        for i, r in enumerate(results):
            stats = r["nsfast"] if name == "nsfast" else (
                r["floor"] if name == "floor" else r["peers"].get(name))
            if stats:
                ys.append(i + (j - (len(names) - 1) / 2) * bar)
                xs.append(stats["median"] / 1000)
        if xs:
            ax.barh(ys, xs, height=bar, label=name)
    ax.set_yticks(range(len(results)))
    ax.set_yticklabels([r["case"] for r in results], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("median latency (us, log scale)")
    ax.set_title(title or "nsfast against the C floor and the peers")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def curve_plot(curve: dict, path: str) -> None:
    """One subplot per panel of the curve, one line per series."""
    plt = require_matplotlib()
    panels = curve["panels"]
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 3.2 * len(panels)), squeeze=False)
    for ax, panel in zip(axes[:, 0], panels):
        ns = "(ns)" in panel["y_label"]
        for s in panel["series"]:
            pts = [p for p in s["points"] if p["y"] is not None]
            scale = 1000 if ns else 1
            ax.plot([p["x"] for p in pts], [p["y"] / scale for p in pts], marker="o",
                    label=s["label"])
            if pts and all("p90" in p for p in pts):
                ax.fill_between([p["x"] for p in pts], [p["y"] / scale for p in pts],
                                [p["p90"] / scale for p in pts], alpha=0.15)
        ax.set_ylabel(panel["y_label"].replace("(ns)", "(us)"))
        if curve.get("log_x"):
            ax.set_xscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[-1, 0].set_xlabel(curve["x_label"])
    axes[0, 0].set_title(curve["title"])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_plots(doc: dict, path: str) -> list:
    """The bar chart at path and a PNG per curve beside it; the paths written."""
    written = []
    if doc["results"]:
        m = doc["machine"]
        bar_chart(doc["results"], path, f"nsfast bench: {m['cpu']}, {m['cores']} cores, "
                                        f"Linux {m['kernel']}")
        written.append(path)
    for c in doc["curves"]:
        p = curve_path(path, c["curve"])
        curve_plot(c, p)
        written.append(p)
    return written
