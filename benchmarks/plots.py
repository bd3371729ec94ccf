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


def _contenders(r: dict) -> list:
    """(name, median ns) of nsfast, the floor and each peer of one result."""
    out = [("nsfast", r["nsfast"]["median"])]
    if r["floor"]:
        out.append(("floor", r["floor"]["median"]))
    out += [(k, v["median"]) for k, v in r["peers"].items()]
    return out


def bar_chart(results: list, path: str, title: str = "") -> None:
    """Horizontal bars per case: the median of nsfast, the floor and each peer
    (in us, log scale); a name keeps its colour across cases."""
    plt = require_matplotlib()
    colours: dict = {}
    palette = plt.get_cmap("tab10").colors
    rows = sum(len(_contenders(r)) for r in results)
    fig, ax = plt.subplots(figsize=(11, max(3.0, 0.22 * rows + 0.4 * len(results) + 1.5)))
    for i, r in enumerate(results):
        bars = _contenders(r)
        width = 0.8 / len(bars)
        for j, (name, median) in enumerate(bars):
            first = name not in colours
            colour = colours.setdefault(name, palette[len(colours) % len(palette)])
            y = i + (j - (len(bars) - 1) / 2) * width
            ax.barh(y, median / 1000, height=width, color=colour, label=name if first else None)
            ax.text(median / 1000, y, f" {median / 1000:.0f}", va="center", fontsize=6)
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
