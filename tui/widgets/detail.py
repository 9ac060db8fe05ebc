"""The detail pane: what the cursor is on (node, scope, tensor result), as Rich ``Text`` only.

Model strings never go through Rich markup: every cell is a ``Text``. The data comes from the
engine_core index (inputs/outputs, shapes, attributes, initializer statistics) and from the compare
results the screen keeps; nothing here computes model facts itself.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from engine_core.safetext import printable
from tui.plain import safe_renderable
from tui.widgets.error_table import fmt
from tui.widgets.graph_tree import GraphView
from tui.widgets.histogram import histogram_text

_HEAD = "bold"
_MUTED = "dim"
MAX_ATTR_CHARS = 160
SCOPE_DETAIL_LIMIT = 50_000
"""Scopes with more nodes than this show counts only (no op histogram or mark count)."""


def _section(title: str) -> Text:
    return Text("\n" + title, style=_HEAD)


def _tensor_lines(view: GraphView, name: str) -> tuple[Text, Text]:
    """A tensor's name line and its info line, which starts with its shape."""
    line = Text("  ")
    line.append(printable(name))
    info = Text("      ")
    info.append(view.shape_text(name) or "shape unknown", style="cyan")
    return line, info


def _grid(*widths: int | None) -> Table:
    t = Table.grid(padding=(0, 2))
    for w in widths:
        t.add_column(no_wrap=False, max_width=w) if w else t.add_column()
    return t


def attribute_text(attr: Any) -> str:
    """Short display of an ONNX attribute value (tensors and graphs summarised, long lists cut)."""
    from engine_core.model.index import np_dtype
    from engine_core.model.proto import AttributeProto, plain_attribute_value

    if attr.type == AttributeProto.GRAPH:
        return f"graph '{attr.g.name}' ({len(attr.g.node)} nodes)"
    if attr.type == AttributeProto.GRAPHS:
        return f"{len(attr.graphs)} graphs"
    if attr.type == AttributeProto.TENSOR:
        t = attr.t
        dtype = np_dtype(t.data_type)
        dt = dtype.name if dtype is not None else str(t.data_type)
        dims = list(t.dims)
        if t.raw_data and len(t.raw_data) <= 64 or (not t.raw_data and len(dims) <= 1 and (not dims or dims[0] <= 8)):
            from onnx import numpy_helper

            try:
                return f"tensor {dt}{dims} = {numpy_helper.to_array(t).tolist()}"[:MAX_ATTR_CHARS]
            except Exception:
                pass
        return f"tensor {dt}{dims}"
    value = plain_attribute_value(attr)  # the plain types without importing onnx (~1 s of CPU)
    if value is None:
        from onnx import helper

        value = helper.get_attribute_value(attr)
    s = repr(value) if not isinstance(value, str) else value
    return s if len(s) <= MAX_ATTR_CHARS else s[: MAX_ATTR_CHARS - 1] + "…"


def error_bars(stats: Any, kind: str = "abs", width: int = 24) -> Text:
    """Quantiles of one tensor's error (median … max) as log-scaled bars."""
    values = [
        ("median", getattr(stats, f"median_{kind}")),
        ("p90", getattr(stats, f"p90_{kind}")),
        ("p95", getattr(stats, f"p95_{kind}")),
        ("p99", getattr(stats, f"p99_{kind}")),
        ("max", getattr(stats, f"max_{kind}")),
    ]
    finite = [v for _, v in values if v is not None and math.isfinite(v) and v > 0]
    lo = math.log10(min(finite)) if finite else 0.0
    hi = math.log10(max(finite)) if finite else 1.0
    span = max(hi - lo, 1e-9)
    out = Text()
    for label, v in values:
        if v is None or not math.isfinite(v):
            bar = "?" if v is None or math.isnan(v) else "█" * width + "∞"
        elif v <= 0:
            bar = "▏"
        else:
            n = 1 + int(round((math.log10(v) - lo) / span * (width - 1))) if finite else 1
            bar = "█" * n
        out.append(f"  {label:>6} ", style=_MUTED)
        out.append(f"{bar:<{width + 1}}", style="bold red" if label == "max" and not stats.passed else "cyan")
        out.append(f" {fmt(v)}\n")
    out.rstrip()
    return out


def result_block(r: Any, detail: Any = None, note: str = "") -> list[RenderableType]:
    """A tensor's comparison: verdict, main statistics and, once fetched (``detail``, an engine_core
    ``TensorDetail``), its error quantiles and histograms; ``note`` says why they are not shown yet."""
    st = detail.stats if detail is not None else r.stats
    head = Text()
    head.append("PASS" if st.passed else "FAIL", style="bold green" if st.passed else "bold red")
    if not st.passed and st.reason:
        head.append(f"  {printable(st.reason)}")
    if st.nonfinite:
        head.append(f"  subject has {st.nan} NaN / {st.inf} Inf", style="bold yellow")
    if st.ref_nan or st.ref_inf:
        head.append(f"  reference has {st.ref_nan} NaN / {st.ref_inf} Inf", style="yellow")
    if r.iteration:
        head.append(f"  (iteration {r.iteration})", style=_MUTED)
    g = _grid(None, None, None, None)
    g.add_row(
        Text("max abs", style=_MUTED), Text(fmt(st.max_abs)), Text("max rel", style=_MUTED), Text(fmt(st.max_rel))
    )
    g.add_row(
        Text("mean abs", style=_MUTED), Text(fmt(st.mean_abs)), Text("mean rel", style=_MUTED), Text(fmt(st.mean_rel))
    )
    g.add_row(Text("cosine", style=_MUTED), Text(fmt(st.cosine)), Text("SNR dB", style=_MUTED), Text(fmt(st.snr_db)))
    g.add_row(
        Text("mismatches", style=_MUTED),
        Text(f"{st.mismatches}/{st.size}"),
        Text("argmax abs", style=_MUTED),
        Text(str(list(st.argmax_abs)) if st.argmax_abs is not None else "-"),
    )
    parts: list[RenderableType] = [head, g]
    if st.median_abs is not None and not math.isnan(st.median_abs):  # NaN in the tensor: quantiles say nothing
        parts += [
            Text("absolute error quantiles", style=_MUTED),
            error_bars(st, "abs"),
            Text("relative error quantiles", style=_MUTED),
            error_bars(st, "rel"),
        ]
    if detail is not None:
        parts += [
            Text("absolute error histogram (log-spaced bins)", style=_MUTED),
            histogram_text(detail.abs_hist),
            Text("relative error histogram (log-spaced bins)", style=_MUTED),
            histogram_text(detail.rel_hist),
        ]
    elif note:
        parts.append(Text(note, style=_MUTED))
    return parts


def node_detail(
    view: GraphView,
    i: int,
    results: dict[str, Any],
    init_stats: dict[str, Any] | None,
    detail_of: Callable[[Any], tuple[Any, str]] | None = None,
) -> Group:
    """Everything about node ``i``; ``detail_of(result)`` gives a compared tensor's fetched detail and note."""
    index = view.index
    node = index.node(i)
    parts: list[RenderableType] = [Text(printable(node.name), style="bold")]
    line = Text()
    line.append(printable(node.op_type), style="bold cyan")
    line.append(f" · node #{i}" + (f" · domain {printable(node.domain)}" if node.domain else ""), style=_MUTED)
    if node.parent:
        line.append(" · in subgraph ", style=_MUTED)
        line.append(printable(node.parent))
    if node.name_synthesized:
        line.append(" · name made up (file has ", style=_MUTED)
        line.append(repr(node.onnx_name))
        line.append(")", style=_MUTED)
    parts.append(line)
    if view.marks is not None:
        state = view.marks.node_state(i)
        why = view.marks.why_not_markable(i)
        mark = Text()
        mark.append(
            {
                "marked": "● marked",
                "partial": "◐ partly marked",
                "unmarked": "○ not marked",
                "unobservable": "⊘ unobservable",
                "not-markable": "· not markable",
            }[state],
            style="bold green" if state in ("marked", "partial") else _MUTED,
        )
        if why:
            mark.append(f": {why}", style=_MUTED)
        parts.append(mark)
    if not view.shapes_ready:
        parts.append(Text("(inferring shapes… declared shapes shown)", style=_MUTED))

    parts.append(_section(f"Inputs ({len(node.inputs)})"))
    for name in node.inputs:
        if not name:
            parts.append(Text("  (omitted optional input)", style=_MUTED))
            continue
        line, info = _tensor_lines(view, name)
        p = index.producer(name)
        if p is not None:
            info.append("  ← ", style=_MUTED)
            info.append(printable(index.name(p)))
            info.append(f" ({printable(index.op_type(p))})", style=_MUTED)
        elif index.is_initializer(name):
            info.append("  initializer", style=_MUTED)
        elif name in index.inputs:
            info.append("  graph input", style="bold")
        else:
            info.append("  from the enclosing graph", style=_MUTED)
        parts.extend([line, info])

    parts.append(_section(f"Outputs ({len([o for o in node.outputs if o])})"))
    for name in node.outputs:
        if not name:
            continue
        line, info = _tensor_lines(view, name)
        cons = index.consumers(name)
        info.append(f"  → {len(cons)} consumer(s)" if cons else "", style=_MUTED)
        if name in index.outputs:
            info.append("  graph output", style="bold")
        elif not cons:
            info.append("  unused", style=_MUTED)
        if view.marks is not None:
            if name in view.marks:
                info.append("  ● marked", style="green")
            elif name in view.marks.unobservable():
                info.append("  ⊘ unobservable", style=_MUTED)
        r = results.get(name)
        if r is not None:
            info.append("  ")
            info.append("PASS" if r.stats.passed else "FAIL", style="bold green" if r.stats.passed else "bold red")
            info.append(f" max abs {fmt(r.stats.max_abs)} max rel {fmt(r.stats.max_rel)}", style=_MUTED)
        parts.extend([line, info])

    fusion = view.fusion
    if fusion is not None and node.top_level:
        parts.append(_section("TensorRT"))
        key = node.onnx_name or f"node_of_{next((o for o in node.outputs if o), '')}"
        layers = fusion.node_layers.get(key) or fusion.node_layers.get(node.name) or []
        line = Text("  ")
        if layers:
            line.append("engine layer: ", style=_MUTED)
            line.append(printable(", ".join(layers)))
        else:
            line.append("no engine layer (folded at parse or build time)", style=_MUTED)
        parts.append(line)
        for name in node.outputs:
            state = fusion.tensors.get(name)
            if state and state != "materialized":
                t = Text("  ")
                t.append(printable(name))
                t.append(f": {state}", style=_MUTED)
                parts.append(t)

    proto = index.node_proto(i)
    if proto.attribute:
        parts.append(_section(f"Attributes ({len(proto.attribute)})"))
        g = _grid(None, None)
        for a in proto.attribute:
            g.add_row(Text(printable(a.name), style=_MUTED), Text(printable(attribute_text(a))))
        parts.append(g)

    inits = [n for n in node.inputs if n and index.is_initializer(n)]
    if inits:
        parts.append(_section(f"Initializers ({len(inits)})"))
        if init_stats is None:
            parts.append(Text("  computing statistics…", style=_MUTED))
        else:
            g = _grid(None, None)
            for n in inits:
                s = init_stats.get(n)
                g.add_row(Text(printable(n)), _init_text(s))
            parts.append(g)

    shown = [results[n] for n in node.outputs if n in results]
    for r in shown:
        title = _section("Compare: ")
        title.append(printable(r.slot.name), style="bold")
        parts.append(title)
        parts.extend(result_block(r, *(detail_of(r) if detail_of is not None else (None, ""))))
    return Group(*parts)


def _init_text(s: Any) -> Text:
    if s is None:
        return Text("-", style=_MUTED)
    if isinstance(s, str):
        return Text(printable(s), style="red")
    t = Text()
    t.append(f"{s.dtype}{list(s.shape)} ", style="cyan")
    if s.min is None:
        t.append("no finite values" if s.count else "empty", style=_MUTED)
    else:
        t.append(f"min {s.min:.4g}  max {s.max:.4g}  mean {s.mean:.4g}  std {s.std:.4g}")
    if s.nan or s.inf:
        t.append(f"  NaN {s.nan} Inf {s.inf}", style="bold yellow")
    if s.fp16_overflow:
        t.append(f"  {s.fp16_overflow} overflow FP16 (>65504)", style="bold red")
    if s.fp16_underflow:
        t.append(f"  {s.fp16_underflow} flush to 0 in FP16", style="yellow")
    return t


def scope_detail(view: GraphView, row: Any) -> Group:
    """A scope / subgraph / page: counts, ops, marks and failures below it."""
    from engine_core.comparator.marks import nodes_under

    title = "/".join(str(p) for p in row.path if not isinstance(p, tuple)) or row.label
    parts: list[RenderableType] = [Text(printable(title or "(model)"), style="bold")]
    kind = {"root": "model", "scope": "scope", "subgraph": "subgraph", "page": "page"}.get(row.kind, row.kind)
    parts.append(Text(f"{kind} · {row.count} node(s) at this level", style=_MUTED))
    fails = (
        view.scope_fails.get(row.path, 0)
        if row.kind != "root"
        else sum(1 for s in view.node_status.values() if s in ("fail", "nonfinite"))
    )
    if fails:
        parts.append(Text(f"✗ {fails} failing node(s) below", style="bold red"))
    if row.kind == "page":
        nodes = [e.node_index for e in row.entries or [] if e.node_index is not None]
    elif row.count <= SCOPE_DETAIL_LIMIT and view.scopes is not None:
        nodes = nodes_under(view.scopes, row.path)
    else:
        nodes = None
    if nodes is not None and view.marks is not None:
        ops = Counter(view.index.op_type(i) for i in nodes)
        marked = sum(1 for i in nodes if view.marks.node_state(i) == "marked") if len(view.marks) else 0
        parts.append(Text(f"{len(nodes)} node(s) in total, {marked} with marked outputs"))
        parts.append(_section("Op types"))
        g = _grid(None, None)
        for op, n in ops.most_common(12):
            g.add_row(Text(printable(op), style="cyan"), Text(str(n)))
        if len(ops) > 12:
            g.add_row(Text(f"… {len(ops) - 12} more", style=_MUTED), Text(""))
        parts.append(g)
    parts.append(Text("\nm: mark/unmark this scope · space on a node: mark its outputs", style=_MUTED))
    return Group(*parts)


class DetailPane(VerticalScroll):
    """Scrollable pane holding one ``Static`` that the screen fills."""

    DEFAULT_CSS = """
    DetailPane { padding: 0 1; }
    DetailPane > Static { width: 100%; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.renderable: RenderableType = Text("Loading model…", style=_MUTED)

    def compose(self):
        yield Static(self.renderable, id="detail-body")

    def show(self, renderable: RenderableType) -> None:
        self.renderable = safe_renderable(renderable)
        self.query_one("#detail-body", Static).update(self.renderable)

    def plain(self, width: int = 160) -> str:
        """The pane's current content as plain text (tests, copy)."""
        import io

        from rich.console import Console

        console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
        console.print(self.renderable)
        return console.export_text()
