"""Error along the graph: per-tensor error metrics in graph order, and ``compare --save-plot`` (matplotlib).

The app draws the same series in the terminal (``tui.widgets.error_plot``); :func:`save_plot` writes it
as PNG or SVG for reports: one point per compared tensor (and iteration) in graph order, log scale,
failing tensors in red, the first failing and first NaN/Inf tensors marked. matplotlib is an optional
extra (``pip install 'trtdbg[plot]'``); without it :func:`save_plot` raises one clear line.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine_core.errors import TrtdbgError

METRICS: dict[str, str] = {
    "max_abs": "max abs error",
    "mean_abs": "mean abs error",
    "max_rel": "max rel error",
    "mean_rel": "mean rel error",
    "one_minus_cosine": "1 − cosine",
}
"""Plottable metrics: key → axis title."""


def metric_values(results: Sequence[Any], metric: str) -> np.ndarray:
    """``metric`` of each result (``TensorResult``) as float64; ``one_minus_cosine`` is 1 − cosine similarity."""
    if metric not in METRICS:
        raise TrtdbgError(f"unknown plot metric '{metric}'; use one of {', '.join(METRICS)}")
    if metric == "one_minus_cosine":
        cos = np.fromiter((r.stats.cosine for r in results), dtype=np.float64, count=len(results))
        return np.abs(1.0 - cos)
    return np.fromiter((getattr(r.stats, metric) for r in results), dtype=np.float64, count=len(results))


def graph_order(results: Sequence[Any]) -> list[Any]:
    """Results sorted by graph position, then iteration."""
    return sorted(results, key=lambda r: (r.slot.topo_index, r.iteration))


def check_plot_target(path: str | Path, metric: str = "max_abs") -> None:
    """Refuse a plot that cannot be written (wrong suffix, unknown metric, no matplotlib) before anything runs."""
    if Path(path).suffix.lower() not in (".png", ".svg"):
        raise TrtdbgError(f"--save-plot {path}: use a .png or .svg file name")
    if metric not in METRICS:
        raise TrtdbgError(f"unknown plot metric '{metric}'; use one of {', '.join(METRICS)}")
    if importlib.util.find_spec("matplotlib") is None:
        raise TrtdbgError(
            "--save-plot needs matplotlib, an optional extra: pip install 'trtdbg[plot]' (or pip install matplotlib)"
        )


def save_plot(report: Any, path: str | Path, metric: str = "max_abs") -> Path:
    """Write the error-along-the-graph plot of ``report`` (a ``CompareReport``) to ``path`` (.png or .svg)."""
    check_plot_target(path, metric)
    out = Path(path)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = graph_order(report.results)
    if not results:
        raise TrtdbgError(f"--save-plot {path}: nothing was compared, so there is nothing to plot")
    values = metric_values(results, metric)
    x = np.arange(len(results))
    failed = np.array([not r.stats.passed for r in results])
    nonfinite = np.array([bool(r.stats.nonfinite) for r in results]) | ~np.isfinite(values)
    finite_pos = values[np.isfinite(values) & (values > 0)]
    floor = float(finite_pos.min()) / 10 if len(finite_pos) else 1e-12
    ceil = float(finite_pos.max()) * 10 if len(finite_pos) else 1.0
    shown = np.where(np.isfinite(values), np.maximum(values, floor), ceil)

    fig, ax = plt.subplots(figsize=(12, 4.5), dpi=110)
    ax.plot(x, shown, color="0.6", linewidth=0.6, zorder=1)
    ok = ~failed & ~nonfinite
    ax.scatter(x[ok], shown[ok], s=6, color="tab:green", label="pass", zorder=2)
    bad = failed & ~nonfinite
    ax.scatter(x[bad], shown[bad], s=10, color="tab:red", label="fail", zorder=3)
    if nonfinite.any():
        ax.scatter(x[nonfinite], shown[nonfinite], s=18, marker="^", color="tab:orange", label="NaN/Inf", zorder=4)
    s = report.summary
    marks: dict[int, list[str]] = {}
    for r, label in ((s.first_failing, "first failing"), (s.first_nonfinite, "first NaN/Inf")):
        if r is None:
            continue
        k = next((i for i, q in enumerate(results) if q.slot.name == r.slot.name and q.iteration == r.iteration), None)
        if k is not None:
            marks.setdefault(k, []).append(label)
    for k, labels in marks.items():
        color = "tab:red" if "first failing" in labels else "tab:orange"
        ax.axvline(k, color=color, linestyle="--", linewidth=1)
        text = " and ".join(labels) + f": {results[k].slot.name}"
        ax.annotate(text, (k, ceil), rotation=90, fontsize=7, va="top", ha="right", color=color)
    ax.set_yscale("log")
    ax.set_ylim(floor, ceil)
    ax.set_xlabel(f"compared tensors in graph order ({len(results)})")
    ax.set_ylabel(METRICS[metric] + " (log)")
    ax.set_title(f"{Path(report.model).name if report.model else 'model'}: {report.reference} vs {report.subject}")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{out.suffix}")
    fig.savefig(tmp, format=out.suffix[1:].lower())
    plt.close(fig)
    tmp.replace(out)
    return out
