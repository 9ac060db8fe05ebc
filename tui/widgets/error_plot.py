"""Error along the graph: per-tensor error against graph order, log scale, as a Line-API bar plot.

The compared tensors (rows of the error table in graph order) are bucketed into the plot's columns;
each column shows its worst value as an eighth-block bar, red where a tensor in it failed and yellow
where the subject produced NaN/Inf, green otherwise. The bottom row marks the first failing (``F``)
and first NaN/Inf (``N``) tensors and the cursor (``▲``). ``h``/``l`` (or ←/→) move the cursor along the
graph and post :class:`ErrorPlot.Moved` with the worst tensor of the column; ``m`` cycles the metric.
Columns are computed once per data change with numpy (O(tensors)); a cursor move re-renders a few lines.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.strip import Strip
from textual.widget import Widget

from engine_core.comparator.plot import METRICS, metric_values
from engine_core.safetext import printable
from tui.messages import ResultMessage
from tui.widgets.error_table import text_strip as _strip

BLOCKS = " ▁▂▃▄▅▆▇█"
"""Eighth blocks, empty to full: a bar's top cell (also the detail pane's histogram)."""
GUTTER = 8
"""Cells left of the bars for the axis labels."""


class ErrorPlot(Widget, can_focus=True):
    """Per-tensor error against graph order, with failing / first NaN markers and a movable cursor."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "error-plot--pass",
        "error-plot--fail",
        "error-plot--nonfinite",
        "error-plot--axis",
        "error-plot--cursor",
        "error-plot--title",
    }
    DEFAULT_CSS = """
    ErrorPlot { height: 6; background: $surface; }
    ErrorPlot > .error-plot--pass { color: $success; }
    ErrorPlot > .error-plot--fail { color: $error; }
    ErrorPlot > .error-plot--nonfinite { color: $warning; }
    ErrorPlot > .error-plot--axis { color: $text-muted; }
    ErrorPlot > .error-plot--cursor { background: $block-cursor-blurred-background; }
    ErrorPlot:focus > .error-plot--cursor { background: $block-cursor-background; }
    ErrorPlot > .error-plot--title { color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("l,right", "move(1)", "Along graph →", show=False, id="plot-right"),
        Binding("h,left", "move(-1)", "Along graph ←", show=False, id="plot-left"),
        Binding("L,shift+right", "move(10)", "10 columns →", show=False, id="plot-right-10"),
        Binding("H,shift+left", "move(-10)", "10 columns ←", show=False, id="plot-left-10"),
        Binding("m", "cycle_metric", "Plot metric", id="plot-metric"),
    ]

    class Moved(ResultMessage):
        """The plot's cursor moved onto a column; ``result`` is its worst tensor."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metric = "max_abs"
        self.results: list[Any] = []
        """Results in graph order (what the columns bucket)."""
        self.cursor = 0
        """Cursor column."""
        self._values = np.zeros(0)
        self._failed = np.zeros(0, dtype=bool)
        self._nonfinite = np.zeros(0, dtype=bool)
        self._columns: dict[str, Any] | None = None

    # ------------------------------------------------------------------ data
    def set_results(self, results: list[Any]) -> None:
        """Show ``results`` (in graph order); the cursor stays on the same column."""
        self.results = results
        self._values = metric_values(results, self.metric)
        self._failed = np.fromiter((not r.stats.passed for r in results), dtype=bool, count=len(results))
        self._nonfinite = np.fromiter((bool(r.stats.nonfinite) for r in results), dtype=bool, count=len(results))
        self._columns = None
        self.refresh()

    @property
    def _width(self) -> int:
        return max(1, self.size.width - GUTTER)

    def _layout(self) -> dict[str, Any]:
        """Per column: worst value, row of the worst tensor, failing / non-finite flags (cached per data + width)."""
        width = self._width
        if self._columns is not None and self._columns["width"] == width:
            return self._columns
        n = len(self._values)
        cols = min(width, n) if n else 0
        edges = (np.arange(cols + 1) * n) // max(cols, 1)
        vals = self._values
        finite = np.isfinite(vals)
        # non-finite errors plot at the top; the worst (argmax) in each column is the one to jump to
        key = np.where(np.isnan(vals), np.inf, vals)
        worst = np.zeros(cols, dtype=np.int64)
        top = np.full(cols, np.nan)
        fail = np.zeros(cols, dtype=bool)
        nonf = np.zeros(cols, dtype=bool)
        if cols:
            starts = edges[:-1]
            worst_val = np.maximum.reduceat(key, starts)
            fail = np.logical_or.reduceat(self._failed, starts)
            nonf = np.logical_or.reduceat(self._nonfinite | ~finite, starts)
            for c in range(cols):  # argmax per column (cols <= terminal width)
                a, b = edges[c], edges[c + 1]
                worst[c] = a + int(np.argmax(key[a:b]))
            top = worst_val
        pos = vals[finite & (vals > 0)]
        lo = float(np.log10(pos.min())) if len(pos) else -12.0
        hi = float(np.log10(pos.max())) if len(pos) else 0.0
        if hi - lo < 1:
            lo, hi = lo - 0.5, hi + 0.5
        self._columns = {
            "width": width,
            "cols": cols,
            "edges": edges,
            "top": top,
            "worst": worst,
            "fail": fail,
            "nonfinite": nonf,
            "lo": lo,
            "hi": hi,
        }
        self.cursor = max(0, min(self.cursor, cols - 1))
        return self._columns

    def column_of(self, result: Any) -> int | None:
        """The column that holds ``result`` (None when it is not plotted)."""
        try:
            row = self.results.index(result)
        except ValueError:
            return None
        edges = self._layout()["edges"]
        return int(np.searchsorted(edges, row, side="right") - 1)

    def show_result(self, result: Any) -> None:
        """Move the cursor to the column of ``result`` without posting :class:`Moved` (the table moved)."""
        col = self.column_of(result)
        if col is not None and col != self.cursor:
            self.cursor = col
            self.refresh()

    @property
    def current(self) -> Any:
        lay = self._layout()
        if not lay["cols"]:
            return None
        return self.results[int(lay["worst"][self.cursor])]

    # ------------------------------------------------------------------ actions
    def action_move(self, step: int) -> None:
        lay = self._layout()
        if not lay["cols"]:
            return
        new = max(0, min(self.cursor + step, lay["cols"] - 1))
        if new != self.cursor:
            self.cursor = new
            self.refresh()
            self.post_message(self.Moved(self.current))

    def action_cycle_metric(self) -> None:
        names = list(METRICS)
        self.metric = names[(names.index(self.metric) + 1) % len(names)]
        self.set_results(self.results)

    def on_click(self, event: Any) -> None:
        if event.x >= GUTTER and self._layout()["cols"]:
            self.cursor = min(event.x - GUTTER, self._layout()["cols"] - 1)
            self.refresh()
            self.post_message(self.Moved(self.current))

    def on_resize(self) -> None:
        self._columns = None

    # ------------------------------------------------------------------ rendering
    def render_line(self, y: int) -> Strip:
        width = self.size.width
        height = self.size.height
        base = self.rich_style
        cs = self.get_component_rich_style
        lay = self._layout()
        if y == 0:
            return self._title(width, base)
        bar_rows = max(1, height - 2)
        if y == height - 1:
            return self._marker_row(lay, width, base)
        level = bar_rows - y + 1  # 1-based from the bottom: this row shows eighths (level-1)*8 .. level*8
        text = Text(style=base)
        axis = cs("error-plot--axis")
        if y == 1:
            text.append(f"{_exp(lay['hi']):>{GUTTER - 1}}┤", axis)
        elif y == bar_rows:
            text.append(f"{_exp(lay['lo']):>{GUTTER - 1}}┤", axis)
        else:
            text.append(" " * (GUTTER - 1) + "│", axis)
        span = lay["hi"] - lay["lo"]
        styles = {
            "pass": cs("error-plot--pass"),
            "fail": cs("error-plot--fail"),
            "nonfinite": cs("error-plot--nonfinite"),
        }
        cursor_style = cs("error-plot--cursor")
        for c in range(lay["cols"]):
            v = lay["top"][c]
            if not np.isfinite(v):
                eighths = bar_rows * 8
            elif v <= 0:
                eighths = 0
            else:
                frac = (np.log10(v) - lay["lo"]) / span
                eighths = int(round(min(max(frac, 0.0), 1.0) * bar_rows * 8))
                eighths = max(eighths, 1)
            fill = min(max(eighths - (level - 1) * 8, 0), 8)
            kind = "nonfinite" if lay["nonfinite"][c] else ("fail" if lay["fail"][c] else "pass")
            style = styles[kind]
            if c == self.cursor:
                style = style + cursor_style
            text.append(BLOCKS[fill], style)
        return _strip(text, width, base)

    def _title(self, width: int, base: Style) -> Strip:
        text = Text(style=base)
        title = self.get_component_rich_style("error-plot--title")
        n = len(self.results)
        if not n:
            text.append("  error along the graph: no results yet", title)
            return _strip(text, width, base)
        cur = self.current
        if cur is not None:
            text.append(" ▲ ", title)
            text.append(f"#{cur.slot.topo_index} ")
            text.append(printable(cur.slot.name))
            v = metric_values([cur], self.metric)[0]
            text.append(f" {v:.2e}", "bold")
        text.append(f"  · {METRICS[self.metric]}, log scale, {n} tensors in graph order (m: metric)", title)
        return _strip(text, width, base)

    def _marker_row(self, lay: dict[str, Any], width: int, base: Style) -> Strip:
        cs = self.get_component_rich_style
        cells = [" "] * lay["cols"]
        styles = [Style()] * lay["cols"]
        first_fail = int(np.argmax(self._failed)) if self._failed.any() else None
        first_nan = int(np.argmax(self._nonfinite)) if self._nonfinite.any() else None
        edges = lay["edges"]
        for row, glyph, style in (
            (first_fail, "F", cs("error-plot--fail")),
            (first_nan, "N", cs("error-plot--nonfinite")),
        ):
            if row is not None and lay["cols"]:
                c = int(np.searchsorted(edges, row, side="right") - 1)
                cells[c], styles[c] = glyph, style
        if lay["cols"]:
            c = self.cursor
            cells[c] = "▲" if cells[c] == " " else cells[c]
            styles[c] = styles[c] + Style(bold=True)
        text = Text(" " * GUTTER, style=base)
        for glyph, style in zip(cells, styles):
            text.append(glyph, style)
        return _strip(text, width, base)


def _exp(log10: float) -> str:
    return f"{10.0**log10:.0e}"
