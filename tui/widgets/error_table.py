"""Live per-tensor error table: a Line-API widget over the compare results (virtualised).

Only visible rows are rendered (one cached ``Strip`` per row); new results are appended in batches
by the screen's 2–5 Hz flush, so a 100k-row table repaints in well under a millisecond per row.
Sorting (graph order, max abs, max rel, cosine) and the failing-only filter are numpy index views;
the results themselves stay engine_core ``TensorResult`` objects.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from rich.cells import cell_len
from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from engine_core.cells import fit
from engine_core.safetext import printable
from tui.messages import ResultMessage

SORTS = ("graph", "max_abs", "max_rel", "cosine")
SORT_TITLES = {
    "graph": "graph order",
    "max_abs": "max abs ↓ (worst first)",
    "max_rel": "max rel ↓ (worst first)",
    "cosine": "cosine ↑ (worst first)",
}


def fmt(x: float) -> str:
    """Scientific notation for errors (never ``0.00`` for 1e-6), literal nan/inf."""
    if x is None:
        return "-"
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.2e}"


class ResultStore:
    """Results in arrival order plus the columns needed to sort and filter them."""

    def __init__(self) -> None:
        self.results: list[Any] = []
        self._topo: list[float] = []
        self._abs: list[float] = []
        self._rel: list[float] = []
        self._cos: list[float] = []
        self._failed: list[bool] = []
        self.failed = 0
        self.nonfinite = 0
        self.iterations = 1

    def __len__(self) -> int:
        return len(self.results)

    def extend(self, results: list[Any]) -> None:
        for r in results:
            st = r.stats
            self.results.append(r)
            self._topo.append(r.slot.topo_index + r.iteration / 1e6)
            self._abs.append(st.max_abs)
            self._rel.append(st.max_rel)
            self._cos.append(st.cosine)
            self._failed.append(not st.passed)
            self.failed += not st.passed
            self.nonfinite += bool(st.nonfinite)
            if r.iteration + 1 > self.iterations:
                self.iterations = r.iteration + 1

    def view(self, sort: str, failing_only: bool) -> np.ndarray:
        """Indices into :attr:`results`, filtered and sorted (NaN errors count as worst)."""
        n = len(self.results)
        idx = np.arange(n)
        if failing_only:
            idx = idx[np.asarray(self._failed, dtype=bool)]
        if sort == "graph":
            key = np.asarray(self._topo, dtype=np.float64)[idx]
            return idx[np.argsort(key, kind="stable")]
        if sort == "cosine":
            key = np.asarray(self._cos, dtype=np.float64)[idx]
            key = np.where(np.isnan(key), -np.inf, key)
            return idx[np.argsort(key, kind="stable")]
        col = self._abs if sort == "max_abs" else self._rel
        key = np.asarray(col, dtype=np.float64)[idx]
        key = np.where(np.isnan(key), np.inf, key)
        return idx[np.argsort(-key, kind="stable")]


@dataclass
class _Columns:
    name: int
    show_it: bool
    op: bool
    cosine: bool
    nonfinite: bool


class ErrorTable(ScrollView, can_focus=True):
    """Sortable, filterable, virtualised table of per-tensor errors."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "error-table--header",
        "error-table--cursor",
        "error-table--fail",
        "error-table--nonfinite",
        "error-table--pass",
        "error-table--first",
        "error-table--muted",
    }
    DEFAULT_CSS = """
    ErrorTable { height: 1fr; background: $surface; overflow-x: hidden; }
    ErrorTable > .error-table--header { text-style: bold; background: $panel; color: $text; }
    ErrorTable > .error-table--cursor { background: $block-cursor-blurred-background; }
    ErrorTable:focus > .error-table--cursor { background: $block-cursor-background; color: $block-cursor-foreground; }
    ErrorTable > .error-table--fail { color: $error; }
    ErrorTable > .error-table--nonfinite { color: $warning; text-style: bold; }
    ErrorTable > .error-table--pass { color: $success; }
    ErrorTable > .error-table--first { text-style: bold; color: $error; }
    ErrorTable > .error-table--muted { color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j,down", "cursor(1)", "Down", show=False, id="table-down"),
        Binding("k,up", "cursor(-1)", "Up", show=False, id="table-up"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="table-page-down"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="table-page-up"),
        Binding("g,home", "jump(0)", "Top", show=False, id="table-top"),
        Binding("G,end", "jump(-1)", "Bottom", show=False, id="table-bottom"),
        Binding("enter", "select", "Show in tree", show=False, id="table-select"),
        Binding("s", "cycle_sort", "Sort", id="table-sort"),
        Binding("f", "toggle_failing", "Failing only", id="table-failing"),
        Binding("w", "toggle_wide", "Wide names", show=False, id="table-wide-names"),
    ]

    class Highlighted(ResultMessage):
        """The cursor moved onto a result."""

    class Selected(ResultMessage):
        """Enter on a result (show its node in the tree)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.store = ResultStore()
        self.sort = "graph"
        self.failing_only = False
        self.wide_names = False
        """Names take the room of the optional columns (op, cosine, nan/inf)."""
        self.cursor = 0
        self._view = np.zeros(0, dtype=np.int64)
        self._cache: dict[tuple, Strip] = {}
        self.first_failing: Any = None
        self.first_nonfinite: Any = None
        self.placeholder = "no results yet: press r to run a comparison"
        self.op_of: Callable[[Any], str] = lambda r: ""
        """Op type of a result's producer (set by the screen from the model index)."""

    # ------------------------------------------------------------------ data
    def reset(self, placeholder: str | None = None) -> None:
        self.store = ResultStore()
        self._view = np.zeros(0, dtype=np.int64)
        self.cursor = 0
        self.first_failing = self.first_nonfinite = None
        if placeholder is not None:
            self.placeholder = placeholder
        self._cache.clear()
        self._update_size()
        self.scroll_to(y=0, animate=False)
        self.refresh()

    def add_results(self, results: list[Any], first_failing: Any = None, first_nonfinite: Any = None) -> None:
        """Append a batch (one repaint for the whole batch), keeping the cursor on the same result."""
        current = self.current
        if results:
            self.store.extend(results)
        changed_first = (first_failing is not self.first_failing) or (first_nonfinite is not self.first_nonfinite)
        self.first_failing, self.first_nonfinite = first_failing, first_nonfinite
        if changed_first:
            self._cache.clear()
        self._rebuild(keep=current)

    @property
    def view_rows(self) -> int:
        return len(self._view)

    @property
    def current(self) -> Any:
        if 0 <= self.cursor < len(self._view):
            return self.store.results[int(self._view[self.cursor])]
        return None

    def row_results(self) -> list[Any]:
        """The results in displayed order (for tests and export)."""
        return [self.store.results[int(i)] for i in self._view]

    def _rebuild(self, keep: Any = None) -> None:
        self._view = self.store.view(self.sort, self.failing_only)
        if keep is not None:
            try:
                pos = self.store.results.index(keep) if len(self.store) < 5000 else None
            except ValueError:
                pos = None
            if pos is not None:
                where = np.nonzero(self._view == pos)[0]
                if len(where):
                    self.cursor = int(where[0])
        self.cursor = max(0, min(self.cursor, len(self._view) - 1))
        self._update_size()
        self.refresh()

    @property
    def _width(self) -> int:
        return self.scrollable_content_region.width

    @property
    def _body_height(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def _update_size(self) -> None:
        self.virtual_size = Size(self._width, len(self._view) + 1)

    def move_to(self, result: Any) -> bool:
        """Put the cursor on ``result`` (clearing the failing-only filter if needed)."""
        try:
            pos = self.store.results.index(result)
        except ValueError:
            return False
        where = np.nonzero(self._view == pos)[0]
        if not len(where):
            self.failing_only = False
            self._cache.clear()
            self._rebuild()
            where = np.nonzero(self._view == pos)[0]
        self.cursor = int(where[0])
        self.scroll_to(y=max(0, self.cursor - self._body_height // 2), animate=False)
        self.refresh()
        self.post_message(self.Highlighted(result))
        return True

    # ------------------------------------------------------------------ actions
    def action_cursor(self, delta: int) -> None:
        self._set_cursor(self.cursor + delta)

    def action_page(self, delta: int) -> None:
        self._set_cursor(self.cursor + delta * self._body_height)

    def action_jump(self, where: int) -> None:
        self._set_cursor(0 if where == 0 else len(self._view) - 1)

    def action_select(self) -> None:
        if self.current is not None:
            self.post_message(self.Selected(self.current))

    def action_cycle_sort(self) -> None:
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self._cache.clear()
        self._rebuild()
        self.cursor = 0
        self.scroll_to(y=0, animate=False)
        self.notify(f"sorted by {SORT_TITLES[self.sort]}", timeout=2)

    def action_toggle_failing(self) -> None:
        self.failing_only = not self.failing_only
        current = self.current
        self._cache.clear()
        self._rebuild(keep=current)
        self.notify("failing tensors only" if self.failing_only else "all compared tensors", timeout=2)

    def action_toggle_wide(self) -> None:
        self.wide_names = not self.wide_names
        self._cache.clear()
        self.refresh()

    def next_failing(self, step: int) -> Any:
        """Move to the next (``step`` 1) or previous (-1) failing row after the cursor; the result or None."""
        if not len(self._view):
            return None
        failed = np.asarray(self.store._failed, dtype=bool)[self._view]
        rows = np.nonzero(failed)[0]
        later = rows[rows > self.cursor] if step > 0 else rows[rows < self.cursor][::-1]
        if not len(later):
            return None
        self._set_cursor(int(later[0]))
        return self.current

    def _set_cursor(self, value: int) -> None:
        if not len(self._view):
            return
        value = max(0, min(value, len(self._view) - 1))
        if value == self.cursor:
            return
        self.cursor = value
        self._scroll_to_cursor()
        self.refresh()
        self.post_message(self.Highlighted(self.current))

    def _scroll_to_cursor(self) -> None:
        body = self._body_height
        top = int(self.scroll_offset.y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False)
        elif self.cursor >= top + body:
            self.scroll_to(y=self.cursor - body + 1, animate=False)

    def on_resize(self) -> None:
        self._cache.clear()
        self._update_size()

    def on_click(self, event: Any) -> None:
        y = event.y
        if y >= 1:
            self._set_cursor(int(self.scroll_offset.y) + y - 1)

    # ------------------------------------------------------------------ rendering
    def _columns(self, width: int) -> _Columns:
        """Columns that fit: tensor name, max abs/rel and verdict always; cosine, nan/inf, op when room."""
        show_it = self.store.iterations > 1
        fixed = 2 + 7 + (4 if show_it else 0) + 10 + 10 + 6
        opt = {"cosine": 10, "nonfinite": 9, "op": 10}
        on = {k: False for k in opt}
        for k in ("cosine", "nonfinite", "op"):
            if not self.wide_names and width - fixed - opt[k] >= 24:
                on[k] = True
                fixed += opt[k]
        return _Columns(max(12, width - fixed), show_it, on["op"], on["cosine"], on["nonfinite"])

    def render_line(self, y: int) -> Strip:
        width = self._width
        base = self.rich_style
        if y == 0:
            return self._header(width)
        row = int(self.scroll_offset.y) + y - 1
        if row >= len(self._view):
            if row == 0 and not len(self._view):
                placeholder = self.placeholder
                if len(self.store) and self.failing_only:
                    placeholder = f"no failing tensor among the {len(self.store)} compared; f shows them all"
                text = Text("  " + placeholder, style=self.get_component_rich_style("error-table--muted"))
                return text_strip(text, width, base)
            return Strip.blank(width, base)
        ri = int(self._view[row])
        is_cursor = row == self.cursor
        key = (ri, is_cursor, width, self.has_focus)
        strip = self._cache.get(key)
        if strip is None:
            if len(self._cache) > 4096:
                self._cache.clear()
            strip = self._cache[key] = self._render_row(self.store.results[ri], is_cursor, width, base)
        return strip

    def _header(self, width: int) -> Strip:
        c = self._columns(width)
        style = self.get_component_rich_style("error-table--header")

        def title(key: str, label: str) -> str:
            return label + ("↑" if key == "cosine" else "↓") if self.sort == key else label

        text = Text(style=style)
        text.append("  ")
        text.append(f"{'#':>6} ")
        if c.show_it:
            text.append(f"{'it':>3} ")
        text.append(_fit("tensor" + (" (failing only)" if self.failing_only else ""), c.name))
        if c.op:
            text.append(f"{'op':<10}")
        text.append(f"{title('max_abs', 'max_abs'):>10}{title('max_rel', 'max_rel'):>10}")
        if c.cosine:
            text.append(f"{title('cosine', 'cosine'):>10}")
        if c.nonfinite:
            text.append(f"{'nan/inf':>9}")
        text.append("  ok  ")
        return text_strip(text, width, style)

    def _render_row(self, r: Any, is_cursor: bool, width: int, base: Style) -> Strip:
        c = self._columns(width)
        st = r.stats
        cs = self.get_component_rich_style
        if st.nonfinite:
            rstyle = cs("error-table--nonfinite")
        elif not st.passed:
            rstyle = cs("error-table--fail")
        else:
            rstyle = Style()
        if is_cursor:
            rstyle = rstyle + cs("error-table--cursor")
        first = r is self.first_failing or r is self.first_nonfinite
        text = Text(style=rstyle)
        text.append("▶ " if first else "  ", cs("error-table--first") if first else Style())
        text.append(f"{r.slot.topo_index:>6} ")
        if c.show_it:
            text.append(f"{r.iteration:>3} ")
        text.append(_fit(printable(r.slot.name), c.name))
        if c.op:
            text.append(_fit(printable(self.op_of(r)), 10))
        text.append(f"{fmt(st.max_abs):>10}{fmt(st.max_rel):>10}")
        if c.cosine:
            text.append(f"{fmt(st.cosine):>10}")
        if c.nonfinite:
            nf = f"{st.nan}/{st.inf}" if st.nan or st.inf else "-"
            text.append(f"{nf:>9}")
        text.append("  ")
        text.append("PASS" if st.passed else "FAIL", cs("error-table--pass") if st.passed else cs("error-table--fail"))
        tags = []
        if r is self.first_failing:
            tags.append("first failing")
        if r is self.first_nonfinite:
            tags.append("first NaN/Inf")
        if tags:
            text.append(" ◀ " + ", ".join(tags), cs("error-table--first"))
        return text_strip(text, width, rstyle if is_cursor else base)


def _fit(s: str, width: int) -> str:
    """``s`` elided in the middle (by path segment) and padded to ``width`` cells, with one cell of gap."""
    return fit(s, width - 1, cell_len) + " " if width > 1 else fit(s, width, cell_len)


def text_strip(text: Text, width: int, style: Style) -> Strip:
    """One line of ``text`` cut or padded to ``width`` cells (no wrapping, no markup)."""
    text.no_wrap = True
    null = Style.null()
    segments = [Segment(seg.text, seg.style or null) for seg in text.render(_CONSOLE, end="") if seg.text != "\n"]
    return Strip(segments).crop_extend(0, width, style)


_CONSOLE = Console(width=10_000, color_system="truecolor", legacy_windows=False, markup=False)
