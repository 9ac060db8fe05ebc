"""One tensor's error histogram (engine_core ``ErrorHistogram``) as block-character columns in a Rich ``Text``.

Each log-spaced bin is a column of eighth blocks, its height linear in the bin's count (a non-empty bin
shows at least ``▁``); bins at or above the tolerance are red, the others green. Under the bars: the
smallest and largest error, where the tolerance falls (``┴ tol``), and the elements that cannot sit on a
log axis (exact zeros, NaN/Inf).
"""

from __future__ import annotations

import math
from typing import Any

from rich.text import Text

from tui.widgets.error_plot import BLOCKS
from tui.widgets.error_table import fmt


def histogram_text(h: Any, width: int = 48, height: int = 4) -> Text:
    """``h`` (an ``ErrorHistogram``) in at most ``width`` cells, ``height`` rows of bars plus two text rows."""
    out = Text()
    if not h.counts:
        out.append(f"  no {h.kind} error above 0", style="dim")
        _append_apart(out, h)
        return out
    cell = max(1, width // len(h.counts))
    peak = max(h.counts) or 1
    levels = [0 if c == 0 else max(1, round(c / peak * height * 8)) for c in h.counts]
    tol = h.tolerance
    styles = ["red" if tol is not None and h.edges[k + 1] > tol else "green" for k in range(len(h.counts))]
    for row in range(height, 0, -1):
        out.append("  ")
        for lv, style in zip(levels, styles):
            fill = min(max(lv - (row - 1) * 8, 0), 8)
            out.append(BLOCKS[fill] * cell, style=style)
        out.append("\n")
    span = len(h.counts) * cell
    axis = [" "] * span
    if tol is not None and tol > 0 and h.edges[0] <= tol <= h.edges[-1]:
        lo, hi = math.log10(h.edges[0]), math.log10(h.edges[-1])
        pos = min(span - 1, int((math.log10(tol) - lo) / max(hi - lo, 1e-12) * span))
        axis[pos] = "┴"
        label = f"tol {fmt(tol)}"
        if pos + 2 + len(label) <= span:
            axis[pos + 2 : pos + 2 + len(label)] = list(label)
        elif pos - 1 - len(label) >= 0:
            axis[pos - 1 - len(label) : pos - 1] = list(label)
    out.append("  " + "".join(axis) + "\n", style="dim")
    left, right = fmt(h.edges[0]), fmt(h.edges[-1])
    out.append("  " + left + " " * max(1, span - len(left) - len(right)) + right, style="dim")
    out.append(f"  peak bin {max(h.counts)}/{h.total}", style="dim")
    _append_apart(out, h)
    return out


def _append_apart(out: Text, h: Any) -> None:
    apart = []
    if h.zeros:
        apart.append(f"{h.zeros} exactly 0")
    if h.nonfinite:
        apart.append(f"{h.nonfinite} NaN/Inf")
    if apart:
        out.append("\n  not on the axis: " + ", ".join(apart), style="yellow" if h.nonfinite else "dim")
