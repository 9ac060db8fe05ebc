"""What a saved inputs/outputs file holds: per iteration and tensor, dtype, shape and value statistics.

Backs ``trtdbg inspect data FILE`` (Polygraphy's ``inspect data``) and the UI's data view. Reads every
format trtdbg writes or reads: Polygraphy JSON (single file or per-iteration directory, inputs lists
or ``RunResults``) and ``.npz``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine_core.data import npz, polyjson
from engine_core.safetext import printable_lines

HIST_BINS = 10
HIST_WIDTH = 40


@dataclass
class TensorSummary:
    """Statistics of one array (min/max/mean/std over its finite values)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    size: int
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    nan: int
    inf: int
    histogram: list[tuple[float, float, int]] | None = None
    values: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        d = dict(self.__dict__)
        d["shape"] = list(self.shape)
        if self.histogram is not None:
            d["histogram"] = [{"lo": lo, "hi": hi, "count": n} for lo, hi, n in self.histogram]
        return d


@dataclass
class DataFileSummary:
    """A whole file: ``kind`` is ``inputs`` or ``outputs``; ``runners`` pairs a runner name with its iterations."""

    path: str
    kind: str
    runners: list[tuple[str, list[list[TensorSummary]]]] = field(default_factory=list)
    totals: list[int] = field(default_factory=list)
    """Iterations each runner holds in the file (``runners`` lists the first ones only, unless all were asked)."""

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly dict (stable keys: path, kind, runners[{name, iterations[[tensor...]], total_iterations}])."""
        return {
            "path": self.path,
            "kind": self.kind,
            "runners": [
                {"name": name, "iterations": [[t.to_json() for t in it] for it in its], "total_iterations": total}
                for (name, its), total in zip(self.runners, self.totals, strict=True)
            ],
        }

    def to_text(self) -> str:
        """Human-readable listing in the spirit of Polygraphy's ``inspect data``."""
        lines = [f"==== {self.kind.capitalize()}: {self.path} ===="]
        for (name, iterations), total in zip(self.runners, self.totals, strict=True):
            shown = f"; the first {len(iterations)} shown (--all lists every one)" if len(iterations) < total else ""
            if self.kind == "outputs":
                lines.append(f"---- Runner: {name} ({total} iteration(s){shown}) ----")
            elif shown:
                lines.append(f"---- {total} iteration(s){shown} ----")
            for i, tensors in enumerate(iterations):
                lines.append(f"Iteration {i}:")
                for t in tensors:
                    lines.append(f"  {t.name} [dtype={t.dtype}, shape={t.shape}] | " + _stats_text(t))
                    if t.values is not None:
                        lines.extend("    " + line for line in t.values.splitlines())
                    if t.histogram:
                        lines.extend("    " + line for line in _histogram_text(t.histogram))
        return printable_lines(lines)


def summarize_array(name: str, array: np.ndarray, *, histogram: bool = False, values: bool = False) -> TensorSummary:
    """Statistics of ``array``; NaN/Inf are counted and left out of min/max/mean/std."""
    a = np.asarray(array)
    nan = inf = 0
    finite = a
    if a.dtype.kind in "fc":
        nan = int(np.count_nonzero(np.isnan(a)))
        inf = int(np.count_nonzero(np.isinf(a)))
        finite = a[np.isfinite(a)] if nan or inf else a
    numeric = a.dtype.kind in "biuf" and finite.size > 0
    f64 = finite.astype(np.float64) if numeric else None
    hist = None
    if histogram and f64 is not None and a.dtype.kind != "b":
        counts, edges = np.histogram(f64, bins=HIST_BINS)
        hist = [(float(edges[i]), float(edges[i + 1]), int(counts[i])) for i in range(len(counts))]
    return TensorSummary(
        name=name,
        dtype=a.dtype.name,
        shape=tuple(int(d) for d in a.shape),
        size=int(a.size),
        min=float(f64.min()) if f64 is not None else None,
        max=float(f64.max()) if f64 is not None else None,
        mean=float(f64.mean()) if f64 is not None else None,
        std=float(f64.std()) if f64 is not None else None,
        nan=nan,
        inf=inf,
        histogram=hist,
        values=np.array2string(a, threshold=100, edgeitems=3) if values else None,
    )


def summarize_file(
    path: str | os.PathLike[str], *, iterations: int | None = 1, histogram: bool = False, values: bool = False
) -> DataFileSummary:
    """Summarize a saved inputs or outputs file; ``iterations`` limits how many are listed (``None``: all)."""
    kind, runners = read_any(path)
    summary = DataFileSummary(str(path), kind)
    for name, its in runners:
        chosen = its if iterations is None else its[:iterations]
        summary.totals.append(len(its))
        summary.runners.append(
            (
                name,
                [
                    [summarize_array(t, arr, histogram=histogram, values=values) for t, arr in feed.items()]
                    for feed in chosen
                ],
            )
        )
    return summary


def read_any(path: str | os.PathLike[str]) -> tuple[str, list[tuple[str, list[dict[str, np.ndarray]]]]]:
    """``("inputs"|"outputs", [(runner name, iterations)])`` for any supported data file or directory."""
    p = Path(path)
    if p.suffix == ".npz":
        its, runner = npz.read_npz(p)
        return ("outputs", [(runner, its)]) if runner is not None else ("inputs", [("inputs", its)])
    probe = polyjson.read_json(polyjson.iteration_files(p)[0] if p.is_dir() else p)
    if polyjson.class_of(probe) == "RunResults":
        return "outputs", polyjson.read_outputs(p)
    return "inputs", [("inputs", polyjson.read_inputs(p))]


def _stats_text(t: TensorSummary) -> str:
    if t.min is None:
        core = "no finite values" if t.size else "empty"
    else:
        core = f"min={t.min:.5g} max={t.max:.5g} mean={t.mean:.5g} std={t.std:.5g}"
    extra = f" | NaN={t.nan} Inf={t.inf}" if t.nan or t.inf else ""
    return core + extra


def _histogram_text(hist: list[tuple[float, float, int]]) -> list[str]:
    top = max((n for _, _, n in hist), default=0) or 1
    rows = ["---- Histogram ----"]
    for lo, hi, n in hist:
        rows.append(f"({lo:<10.3g}, {hi:<10.3g}) | {n:10} | {'#' * int(HIST_WIDTH * n / top)}")
    return rows
