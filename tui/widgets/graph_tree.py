"""The graph as a lazily expanded tree grouped by name scope (engine_core ScopeTree).

Never more than one level is built per expansion and never more than ``PAGE`` children under one
tree node (bigger levels are split into pages), so 100k-node models cost only what is on screen.
Labels are drawn by :meth:`GraphTree.render_label` from the shared :class:`GraphView` state (marks,
compare status, search hits, shapes) — a state change is one cache clear and a repaint, never a
per-node label update. Every model string is put into ``rich.text.Text`` (never parsed as markup).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import textual.scrollbar  # noqa: F401  (Textual imports it with the first scrollbar: on the UI thread, while workers import)
from rich.style import Style
from rich.text import Text
from textual import on
from textual.binding import Binding, BindingType
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from engine_core.safetext import printable
from tui.plain import safe

PAGE = 1000
"""Most children shown under one tree node; larger levels are grouped into pages of this size."""

_SHORT_DTYPES = {
    "float32": "f32",
    "float16": "f16",
    "bfloat16": "bf16",
    "float64": "f64",
    "int64": "i64",
    "int32": "i32",
    "int8": "i8",
    "uint8": "u8",
    "bool": "bool",
    "int16": "i16",
}


@dataclass(slots=True)
class Row:
    """What one tree row stands for."""

    kind: str
    """``root``, ``scope``, ``node``, ``subgraph`` or ``page``."""
    path: tuple
    label: str
    count: int = 1
    node: int | None = None
    entries: list | None = None
    """For a page: the ScopeEntry objects it holds."""
    loaded: bool = False


@dataclass
class GraphView:
    """UI state the tree and the detail pane read (owned by the main screen's handlers)."""

    index: Any = None
    scopes: Any = None
    marks: Any = None
    shapes_ready: bool = False
    node_status: dict[int, str] = field(default_factory=dict)
    """``fail`` / ``nonfinite`` / ``pass`` per node index, from the compare results."""
    scope_fails: dict[tuple, int] = field(default_factory=dict)
    """Failing nodes below each scope path."""
    hits: set[int] = field(default_factory=set)
    first_failing: int | None = None
    first_nonfinite: int | None = None
    trt_view: bool = False
    bisect: dict[int, str] = field(default_factory=dict)
    """Bisection tags per node: ``A`` / ``B`` (the two halves of the current split) or ``culprit``."""
    bisect_scopes: dict[tuple, dict[str, int]] = field(default_factory=dict)
    fusion: Any = None
    """engine_core FusionMap of a loaded TensorRT engine (``None``: no engine loaded)."""
    real_shapes: dict[str, tuple] = field(default_factory=dict)
    """Shapes the last compare really produced, per tensor (beat symbolic ``unk__77`` dims)."""
    show_constants: bool = False
    """Constant nodes are listed in the tree (hidden by default: hundreds of them come first)."""

    def shape_text(self, tensor: str) -> str:
        """``f32[1,64,32,32]`` (declared shapes until inference finished), ``""`` when unknown."""
        if self.index is None or not tensor:
            return ""
        meta = self.index.tensor_meta(tensor, infer=self.shapes_ready)
        if meta is None:
            return ""
        dt = str(meta.dtype) if meta.dtype is not None else "?"
        dt = _SHORT_DTYPES.get(dt, dt)
        shape = self.real_shapes.get(tensor, meta.shape)
        if shape is None:
            return dt
        dims = ",".join("?" if d is None else str(d) for d in shape)
        return f"{dt}[{dims}]"


_STATUS_BADGES = {
    "pass": (" ✓", "graph-tree--pass"),
    "fail": (" ✗", "graph-tree--fail"),
    "nonfinite": (" NaN/Inf", "graph-tree--nonfinite"),
}
"""A compared node's badge after its name: text and component class, by node status."""
_BISECT_BADGES = {
    "A": (" ⟦A⟧", "graph-tree--half-a"),
    "B": (" ⟦B⟧", "graph-tree--half-b"),
    "culprit": (" ★ culprit", "graph-tree--culprit"),
}
"""The bisection's badge: which half a node is in, or a culprit."""


class GraphTree(Tree[Row]):
    """Scope tree of the model; rows show mark, name, op type, output shape and compare status."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "graph-tree--op",
        "graph-tree--shape",
        "graph-tree--mark",
        "graph-tree--muted",
        "graph-tree--fail",
        "graph-tree--nonfinite",
        "graph-tree--pass",
        "graph-tree--hit",
        "graph-tree--scope",
        "graph-tree--half-a",
        "graph-tree--half-b",
        "graph-tree--culprit",
    }
    DEFAULT_CSS = """
    GraphTree > .graph-tree--op { color: $accent; }
    GraphTree > .graph-tree--shape { color: $text-muted; }
    GraphTree > .graph-tree--mark { color: $success; text-style: bold; }
    GraphTree > .graph-tree--muted { color: $text-disabled; }
    GraphTree > .graph-tree--fail { color: $error; text-style: bold; }
    GraphTree > .graph-tree--nonfinite { color: $warning; text-style: bold reverse; }
    GraphTree > .graph-tree--pass { color: $success; }
    GraphTree > .graph-tree--hit { background: $warning 30%; }
    GraphTree > .graph-tree--scope { color: $text; text-style: bold; }
    GraphTree > .graph-tree--half-a { color: $text-primary; text-style: bold; }
    GraphTree > .graph-tree--half-b { color: $text-warning; text-style: bold; }
    GraphTree > .graph-tree--culprit { color: $error; text-style: bold; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "screen.mark_node", "Mark", id="mark-toggle"),
        Binding("shift+space", "expand_note", "Expand all", show=False, id="expand-all-disabled"),
        Binding("j", "cursor_down", "Down", show=False, id="cursor-down"),
        Binding("k", "cursor_up", "Up", show=False, id="cursor-up"),
        Binding("l,right", "expand_cursor", "Expand", show=False, id="expand"),
        Binding("h,left", "collapse_cursor", "Collapse", show=False, id="collapse"),
        Binding("g,home", "scroll_home", "Top", show=False, id="top"),
        Binding("G,end", "scroll_end", "Bottom", show=False, id="bottom"),
    ]

    def __init__(self, view: GraphView, **kwargs: Any) -> None:
        super().__init__(Text("(loading model…)"), Row("root", (), "", 0), **kwargs)
        self.view = view
        self.auto_expand = False
        self.guide_depth = 2
        self._by_path: dict[tuple, TreeNode[Row]] = {}
        self._page_of: dict[tuple, TreeNode[Row]] = {}

    # ------------------------------------------------------------------ building
    def populate(self, title: str, root_entries: list) -> None:
        """Show the model: the root and its first level (already computed off the UI thread)."""
        self.clear()
        self._by_path = {(): self.root}
        self._page_of = {}
        self.root.set_label(Text(title))
        self.root.data = Row("root", (), title, len(self.view.index) if self.view.index is not None else 0)
        self._fill(self.root, root_entries)
        self.root.expand()
        self.cursor_line = 0

    def _fill(self, parent: TreeNode[Row], entries: list) -> None:
        assert parent.data is not None
        parent.data.loaded = True
        view = self.view
        if not view.show_constants and view.index is not None and parent.data.kind != "page":
            op = view.index.op_type
            entries = [e for e in entries if e.kind != "node" or op(e.node_index) != "Constant"]
        if len(entries) > PAGE:
            # scope rows first (they are few and say where things are), then the flat nodes in pages
            scopes = [e for e in entries if e.kind != "node"]
            self._add_entries(parent, scopes)
            entries = [e for e in entries if e.kind == "node"]
            for start in range(0, len(entries), PAGE):
                chunk = entries[start : start + PAGE]
                label = f"nodes {start}–{start + len(chunk) - 1}"
                page = parent.add(
                    Text(label), Row("page", parent.data.path + (("page", start),), label, len(chunk), entries=chunk)
                )
                for e in chunk:
                    self._page_of[e.path] = page
            return
        self._add_entries(parent, entries)

    def _add_entries(self, parent: TreeNode[Row], entries: list) -> None:
        for e in entries:
            row = Row(e.kind, e.path, e.label, e.node_count, e.node_index)
            if e.has_children:
                child = parent.add(Text(e.label), row)
            else:
                child = parent.add_leaf(Text(e.label), row)
            self._by_path[e.path] = child

    def ensure_loaded(self, node: TreeNode[Row]) -> None:
        """Add ``node``'s children if that was not done yet (one ScopeTree level)."""
        row = node.data
        if row is None or row.loaded or self.view.scopes is None:
            return
        if row.kind == "page":
            self._fill(node, row.entries or [])
        else:
            self._fill(node, self.view.scopes.children(row.path))

    @on(Tree.NodeExpanded)
    def _load_on_expand(self, event: Tree.NodeExpanded[Row]) -> None:
        if event.node.tree is self:
            self.ensure_loaded(event.node)

    def reveal(self, node_index: int) -> TreeNode[Row] | None:
        """Expand the scopes down to node ``node_index`` and put the cursor on it."""
        scopes = self.view.scopes
        if scopes is None:
            return None
        target = scopes.locate(node_index) + (node_index,)
        cur = self.root
        for k in range(1, len(target) + 1):
            prefix = target[:k]
            self.ensure_loaded(cur)
            child = self._by_path.get(prefix)
            hidden = (
                k == len(target) and not self.view.show_constants and self.view.index.op_type(node_index) == "Constant"
            )
            if child is None and hidden and cur.data is not None:
                # a node the tree hides (a Constant): show it where it belongs
                self._add_entries(cur, [e for e in self.view.scopes.children(cur.data.path) if e.path == prefix])
                child = self._by_path.get(prefix)
            if child is None:
                page = self._page_of.get(prefix)
                if page is None:
                    return None
                if not page.is_expanded:
                    page.expand()
                self.ensure_loaded(page)
                child = self._by_path.get(prefix)
                if child is None:
                    return None
            cur = child
        # Expand every ancestor, also a page or scope that was loaded earlier and collapsed since.
        parent = cur.parent
        while parent is not None:
            if not parent.is_expanded:
                parent.expand()
            parent = parent.parent
        _ = self._tree_lines  # rebuild line numbers before moving
        self.move_cursor(cur)
        # the virtual size grows with the expansion only after the next layout: scroll then
        self.call_after_refresh(self._scroll_to_cursor_node)
        return cur

    def _scroll_to_cursor_node(self) -> None:
        node = self.cursor_node
        if node is not None and node._line >= 0:
            region = self._get_label_region(node._line)
            if region is not None:
                self.scroll_to_region(region, animate=False, force=True, center=True, x_axis=False)

    def node_for_path(self, path: tuple) -> TreeNode[Row] | None:
        return self._by_path.get(path)

    def refresh_labels(self) -> None:
        """Repaint every visible row after a state change (marks, results, hits, shapes)."""
        self._line_cache.clear()
        self.refresh()

    # ------------------------------------------------------------------ actions
    def action_expand_cursor(self) -> None:
        node = self.cursor_node
        if node is not None and node.allow_expand and not node.is_expanded:
            node.expand()
        elif node is not None and node.children:
            self.action_cursor_down()

    def action_collapse_cursor(self) -> None:
        node = self.cursor_node
        if node is None:
            return
        if node.is_expanded and node is not self.root:
            node.collapse()
        elif node.parent is not None:
            self.move_cursor(node.parent)

    def action_expand_note(self) -> None:
        self.notify(
            "expand-all is off: it would build every row of a big graph; use / search or expand scopes",
            severity="information",
        )

    # ------------------------------------------------------------------ rendering
    def process_label(self, label: str | Text) -> Text:
        """A one-line ``Text`` label as it is (Textual copies and splits every label: 2 × 1000 copies per level)."""
        if isinstance(label, Text) and "\n" not in label.plain:
            return label
        return super().process_label(label)

    def render_label(self, node: TreeNode[Row], base_style: Style, style: Style) -> Text:
        return safe(self._label(node, base_style, style))

    def _label(self, node: TreeNode[Row], base_style: Style, style: Style) -> Text:
        row = node.data
        if row is None:
            return super().render_label(node, base_style, style)
        view = self.view
        prefix = (self.ICON_NODE_EXPANDED if node.is_expanded else self.ICON_NODE) if node._allow_expand else "  "
        text = Text(prefix, style=base_style)
        cs = self.get_component_rich_style
        if row.kind == "node" and row.node is not None and view.index is not None:
            i = row.node
            state = view.marks.node_state(i) if view.marks is not None else "unmarked"
            glyph, gstyle = {
                "marked": ("● ", cs("graph-tree--mark", partial=True)),
                "partial": ("◐ ", cs("graph-tree--mark", partial=True)),
                "unobservable": ("⊘ ", cs("graph-tree--muted", partial=True)),
                "not-markable": ("· ", cs("graph-tree--muted", partial=True)),
            }.get(state, ("○ ", cs("graph-tree--muted", partial=True)))
            text.append(glyph, gstyle)
            status = view.node_status.get(i)
            name_style = style
            if status == "fail":
                name_style = style + cs("graph-tree--fail", partial=True)
            elif status == "nonfinite":
                name_style = style + cs("graph-tree--nonfinite", partial=True)
            if i in view.hits:
                name_style = name_style + cs("graph-tree--hit", partial=True)
            text.append(printable(row.label), name_style)
            text.append("  ")
            text.append(printable(view.index.op_type(i)), cs("graph-tree--op", partial=True))
            outs = view.index.node_outputs(i)
            shape = view.shape_text(outs[0]) if outs else ""
            if shape:
                text.append(" " + shape, cs("graph-tree--shape", partial=True))
            for badge in (_STATUS_BADGES.get(status or ""), _BISECT_BADGES.get(view.bisect.get(i) or "")):
                if badge:
                    text.append(badge[0], cs(badge[1], partial=True))
            if i == view.first_failing:
                text.append(" ◀ first failing", cs("graph-tree--fail", partial=True))
            if i == view.first_nonfinite:
                text.append(" ◀ first NaN/Inf", cs("graph-tree--nonfinite", partial=True))
            return text
        if row.kind == "root":
            if view.index is None:
                text.append("loading model…", style + cs("graph-tree--muted", partial=True))
                return text
            text.append(printable(row.label), style + cs("graph-tree--scope", partial=True))
            text.append(f"  {row.count} nodes", cs("graph-tree--shape", partial=True))
            return text
        if row.kind == "subgraph":
            text.append("⟳ ", cs("graph-tree--muted", partial=True))
            text.append(printable(row.label), style)
            text.append(f"  subgraph · {row.count} nodes", cs("graph-tree--shape", partial=True))
            return text
        if row.kind == "page":
            text.append(printable(row.label), style + cs("graph-tree--muted", partial=True))
            return text
        text.append(printable(row.label), style + cs("graph-tree--scope", partial=True))
        text.append(f"  {row.count}", cs("graph-tree--shape", partial=True))
        fails = view.scope_fails.get(row.path)
        if fails:
            text.append(f"  ✗ {fails} failing", cs("graph-tree--fail", partial=True))
        tags = view.bisect_scopes.get(row.path)
        if tags:
            for tag, comp, label in (("A", "half-a", "A"), ("B", "half-b", "B"), ("culprit", "culprit", "★")):
                if tags.get(tag):
                    text.append(f"  {label}{tags[tag]}", cs(f"graph-tree--{comp}", partial=True))
        return text
