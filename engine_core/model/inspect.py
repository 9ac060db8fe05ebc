"""Model summary: Polygraphy ``inspect model`` text layout, and a stable JSON form.

The text matches Polygraphy 0.53.6 (``==== ONNX Model ====``, ``---- N Graph Input(s) ----``,
``Node 0    | name [Op: Conv]``, ``Initializer | `` prefixes, ``---- Attributes ----``) without
the logger's ``[I]`` framing. Differences: unnamed/duplicate nodes show trtdbg's unique names,
unknown dimensions print as ``-1`` and unknown ranks omit ``shape``; with shape inference (the
default for ``layers``) intermediate tensors show dtype and shape, which Polygraphy prints only
with ``--shape-inference``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, TextIO

import onnx
from onnx import AttributeProto, GraphProto, NodeProto

from engine_core.errors import TrtdbgError, first_line
from engine_core.model.index import ModelIndex, SubgraphInfo, dtype_name, np_dtype
from engine_core.model.loader import DEFAULT_DOMAIN
from engine_core.model.proto import plain_attribute_value
from engine_core.safetext import printable

SHOW_CHOICES = ("layers", "attrs", "weights")
_TAB = "    "
_DTYPE_ATTRS = frozenset({"to", "dtype", "target_type"})


def parse_show(values: Iterable[str]) -> frozenset[str]:
    """Validate ``--show`` values (each may be a comma list) and return the set of choices."""
    chosen: set[str] = set()
    for value in values:
        for item in value.split(","):
            item = item.strip().lower()
            if not item:
                continue
            if item not in SHOW_CHOICES:
                raise TrtdbgError(
                    f"unknown --show value '{item}'; choose from {', '.join(SHOW_CHOICES)} "
                    f"(e.g. --show layers attrs, or --show layers,attrs)"
                )
            chosen.add(item)
    return frozenset(chosen)


def _indent(block: str, level: int = 1) -> str:
    """Polygraphy's ``util.indent_block``: prefix every line with ``level`` tabs."""
    tab = _TAB * level
    return tab + f"\n{tab}".join(block.splitlines())


class _TextWriter:
    """Renders one model; caches per-tensor descriptions and subgraph lookups."""

    def __init__(self, index: ModelIndex, show: frozenset[str], infer: bool) -> None:
        self.index = index
        self.layers = "layers" in show
        self.attrs = "attrs" in show
        self.weights = "weights" in show
        self.infer = infer and self.layers
        self.subgraphs: dict[tuple[int, str], SubgraphInfo] = {(s.node_index, s.attr): s for s in index.subgraphs}

    def desc(self, name: str) -> str:
        return self.index.describe_tensor(name, infer=self.infer)

    def model_parts(self) -> list[str]:
        """The whole summary as a list of strings (join or write them in order)."""
        default: object = "Unknown"
        other: dict[str, int] = {}
        for imp in self.index.model.opset_import:
            if not imp.domain:
                default = imp.version
            else:
                other[imp.domain] = imp.version
        title = f"Name: {printable(self.index.graph_name)} | ONNX Opset: {default}"
        if other:
            title += f" | Other Opsets: {printable(str(other))}"
        parts = ["==== ONNX Model ====\n"]
        self._graph_parts(self.index.model.graph, range(self.index.num_top_level), title, 0, parts)
        while parts[-1].endswith("\n"):  # like Polygraphy: no trailing blank lines, then one newline
            parts[-1] = parts[-1].rstrip("\n")
            if not parts[-1]:
                parts.pop()
        parts.append("\n")
        return parts

    def _meta_block(self, names: list[str]) -> str:
        desc = self.desc
        elems = [f"{printable(n)} {d}" if (d := desc(n)) else printable(n) for n in names]
        return "{" + ",\n ".join(elems) + "}"

    def _graph_parts(self, graph: GraphProto, nodes: range, title: str, level: int, parts: list[str]) -> None:
        """Append Polygraphy's ``str_from_graph_data`` of one (sub)graph, not yet indented, to ``parts``."""
        section = "Subgraph" if level else "Graph"
        if title:
            parts.append(title + "\n\n")
        if self.attrs and graph.doc_string:
            parts.append(f"---- Docstring ----\n{printable(graph.doc_string)}\n\n")
        init_list = [t.name for t in graph.initializer]
        init_names = set(init_list)
        inputs = [vi.name for vi in graph.input if vi.name not in init_names]
        outputs = [vi.name for vi in graph.output]
        parts.append(f"---- {len(inputs)} {section} Input(s) ----\n{self._meta_block(inputs)}\n\n")
        parts.append(f"---- {len(outputs)} {section} Output(s) ----\n{self._meta_block(outputs)}\n\n")
        parts.append(f"---- {len(init_list)} Initializer(s) ----\n")
        if self.weights:
            for t in graph.initializer:
                dtype = _np_dtype_name(t.data_type)
                values = self._values(t)
                parts.append(
                    f"Initializer | {printable(t.name)} [dtype={dtype}, shape={list(t.dims)}] | Values:\n{_indent(values)}\n\n"
                )
            if not init_list:
                parts.append("{}\n\n")
        elif self.layers:
            parts.append(self._meta_block(init_list) + "\n\n")
        else:
            parts.append("\n")
        parts.append(f"---- {len(nodes)} Node(s) ----\n")
        if self.layers:
            self._nodes_text(nodes, init_names, level, parts)

    def _nodes_text(self, nodes: range, init_names: set[str], level: int, parts: list[str]) -> None:
        # Reads the index's lists directly (same package): per-node method calls would double the cost.
        index = self.index
        desc = self.desc
        cache: dict[str, str] = {}

        def elem(name: str) -> str:
            e = cache.get(name)
            if e is None:
                d = desc(name)
                e = f"{printable(name)} {d}" if d else printable(name)
                if name in init_names:
                    e = "Initializer | " + e
                cache[name] = e
            return e

        first = nodes.start
        append = parts.append
        for i in nodes:
            ins = index._ins[i]
            outs = index._outs[i]
            head = f"Node {i - first:<4} | {printable(index._names[i])} [Op: {printable(index._ops[i])}]\n"
            if ins:
                in_text = "    {" + ",\n     ".join([elem(n) for n in ins]) + "}"
                if outs:
                    out_text = "\n     -> {" + ",\n         ".join([elem(n) for n in outs]) + "}\n"
                else:
                    out_text = " -> {}\n"
            else:
                in_text = "    {}"
                out_text = " -> {" + ",\n ".join([elem(n) for n in outs]) + "}\n"
            append(head + in_text + out_text)
            if self.attrs:
                proto = index._protos[i]
                if proto.attribute:
                    append(self._attrs_text(i, proto, level))
            append("\n")

    def _attrs_text(self, i: int, proto: NodeProto, level: int) -> str:
        lines = ["    ---- Attributes ----\n"]
        prefix = f"{printable(self.index.name(i))}."
        for attr in proto.attribute:
            lines.append(_indent(f"{prefix}{printable(attr.name)} = {self._attr_value(i, attr, level)}") + "\n")
        return "".join(lines)

    def _attr_value(self, i: int, attr: AttributeProto, level: int) -> str:
        t = attr.type
        value = plain_attribute_value(attr)
        if isinstance(value, int) and attr.name in _DTYPE_ATTRS:
            return _dtype_attr(value)
        if value is not None:
            return printable(value) if isinstance(value, str) else str(value)
        if t == AttributeProto.TENSOR:
            return self._tensor_text(attr.t)
        if t == AttributeProto.TENSORS:
            return "[" + ", ".join(self._tensor_text(x) for x in attr.tensors) + "]"
        if t == AttributeProto.GRAPH:
            return "\n" + self._subgraph_text(i, attr.name, level)
        if t == AttributeProto.GRAPHS:
            return "".join("\n" + self._subgraph_text(i, f"{attr.name}[{k}]", level) for k in range(len(attr.graphs)))
        if t == AttributeProto.SPARSE_TENSOR:
            return (
                f"SparseTensor: [dtype={_np_dtype_name(attr.sparse_tensor.values.data_type)}, "
                f"shape={list(attr.sparse_tensor.dims)}]"
            )
        if t == AttributeProto.TYPE_PROTO:
            return onnx.helper.printable_type(attr.tp)
        if t == AttributeProto.TYPE_PROTOS:
            return str([onnx.helper.printable_type(tp) for tp in attr.type_protos])
        return f"<attribute type {t}>"

    def _tensor_text(self, tensor: onnx.TensorProto) -> str:
        text = f"Tensor: [dtype={_np_dtype_name(tensor.data_type)}, shape={list(tensor.dims)}]"
        if self.weights:
            text += " | Values:\n" + _indent(self._values(tensor))
        return text

    def _subgraph_text(self, i: int, attr: str, level: int) -> str:
        sub = self.subgraphs[(i, attr)]
        parts: list[str] = []
        self._graph_parts(sub.graph, range(sub.first, sub.first + sub.count), "", level + 2, parts)
        return _indent("".join(parts), level + 2)

    def _values(self, tensor: onnx.TensorProto) -> str:
        from onnx import numpy_helper

        base = str(self.index.data_dir) if self.index.data_dir else ""
        try:
            return str(numpy_helper.to_array(tensor, base))
        except Exception as exc:
            return f"<error: failed to load weights: {first_line(exc)}>"


def _np_dtype_name(elem_type: int) -> str:
    return dtype_name(np_dtype(elem_type)) if elem_type else "undefined"


def _dtype_attr(value: int) -> str:
    """``Cast.to = int32`` rendering of a data-type attribute (Polygraphy's naming)."""
    try:
        name = onnx.TensorProto.DataType.Name(value)
    except ValueError:
        return str(value)
    return {"FLOAT": "float32", "DOUBLE": "float64"}.get(name, name.lower())


def inspect_text(index: ModelIndex, show: Iterable[str] = (), *, shape_inference: bool = True) -> str:
    """The Polygraphy-style summary; ``show`` takes ``layers``, ``attrs``, ``weights``.

    ``shape_inference`` (used only with ``layers``) fills dtype/shape of intermediate tensors.
    """
    return "".join(_TextWriter(index, parse_show(show), shape_inference).model_parts())


def write_inspect_text(
    index: ModelIndex,
    out: TextIO,
    show: Iterable[str] = (),
    *,
    shape_inference: bool = True,
    chunk_chars: int = 1 << 20,
) -> None:
    """:func:`inspect_text` written to ``out`` in chunks of about ``chunk_chars`` (no full copy in memory)."""
    chunk: list[str] = []
    size = 0
    for part in _TextWriter(index, parse_show(show), shape_inference).model_parts():
        chunk.append(part)
        size += len(part)
        if size >= chunk_chars:
            out.write("".join(chunk))
            chunk, size = [], 0
    out.write("".join(chunk))


# ---------------------------------------------------------------------- JSON
def _json_meta(index: ModelIndex, name: str, infer: bool) -> dict[str, Any]:
    meta = index.tensor_meta(name, infer=infer)
    if meta is None:
        return {"name": name, "dtype": None, "shape": None}
    return {
        "name": name,
        "dtype": dtype_name(meta.dtype),
        "shape": list(meta.shape) if meta.shape is not None else None,
    }


def _json_number(x: float) -> float | str:
    return x if math.isfinite(x) else str(x)


def _json_attr(index: ModelIndex, i: int, attr: AttributeProto, subgraphs: dict[tuple[int, str], SubgraphInfo]) -> Any:
    t = attr.type
    value = plain_attribute_value(attr)
    if isinstance(value, float):
        return _json_number(value)
    if isinstance(value, int):
        return _dtype_attr(value) if attr.name in _DTYPE_ATTRS else value
    if isinstance(value, list):
        return [_json_number(v) if isinstance(v, float) else v for v in value]
    if value is not None:
        return value
    if t == AttributeProto.TENSOR:
        return {"tensor": {"dtype": _np_dtype_name(attr.t.data_type), "shape": list(attr.t.dims)}}
    if t == AttributeProto.TENSORS:
        return [{"tensor": {"dtype": _np_dtype_name(x.data_type), "shape": list(x.dims)}} for x in attr.tensors]
    if t == AttributeProto.GRAPH:
        sub = subgraphs[(i, attr.name)]
        return {"subgraph": sub.path, "nodes": sub.count}
    if t == AttributeProto.GRAPHS:
        subs = [subgraphs[(i, f"{attr.name}[{k}]")] for k in range(len(attr.graphs))]
        return [{"subgraph": s.path, "nodes": s.count} for s in subs]
    if t == AttributeProto.SPARSE_TENSOR:
        st = attr.sparse_tensor
        return {"sparse_tensor": {"dtype": _np_dtype_name(st.values.data_type), "shape": list(st.dims)}}
    if t == AttributeProto.TYPE_PROTO:
        return onnx.helper.printable_type(attr.tp)
    if t == AttributeProto.TYPE_PROTOS:
        return [onnx.helper.printable_type(tp) for tp in attr.type_protos]
    return None


def inspect_json(index: ModelIndex, show: Iterable[str] = (), *, shape_inference: bool = True) -> dict[str, Any]:
    """The summary as JSON-ready data with stable keys.

    Always: ``path, name, opset, opsets, inputs, outputs, initializers {count, total_bytes},
    nodes {count, total}, op_histogram, subgraphs, shape_inference_error``. ``layers`` adds
    ``nodes.layers`` (every node, subgraph nodes with ``parent``) and ``tensors`` (known
    dtype/shape by name); ``attrs`` adds ``attrs`` to each layer; ``weights`` adds
    ``initializers.items`` with value statistics.
    """
    chosen = parse_show(show)
    infer = shape_inference and "layers" in chosen
    result: dict[str, Any] = {
        "path": str(index.path) if index.path else None,
        "name": index.graph_name,
        "opset": index.opsets.get(DEFAULT_DOMAIN),
        "opsets": dict(index.opsets),
        "inputs": [_json_meta(index, n, infer) for n in index.inputs],
        "outputs": [_json_meta(index, n, infer) for n in index.outputs],
        "initializers": {"count": len(index.initializer_names), "total_bytes": index.initializers_nbytes()},
        "nodes": {"count": index.num_top_level, "total": len(index)},
        "op_histogram": index.op_histogram(),
        "subgraphs": [
            {"path": s.path, "node": index.name(s.node_index), "attr": s.attr, "nodes": s.count}
            for s in index.subgraphs
        ],
        "shape_inference_error": None,
    }
    if "weights" in chosen:
        items = []
        for name in index.initializer_names:
            info = index.initializer(name)
            st = index.initializer_stats(name)
            stats = {
                "min": st.min,
                "max": st.max,
                "mean": st.mean,
                "std": st.std,
                "nan": st.nan,
                "inf": st.inf,
                "fp16_overflow": st.fp16_overflow,
                "fp16_underflow": st.fp16_underflow,
            }
            items.append(
                {
                    "name": name,
                    "dtype": dtype_name(info.dtype),
                    "shape": list(info.shape),
                    "nbytes": info.nbytes,
                    "external": info.external,
                    "stats": stats,
                }
            )
        result["initializers"]["items"] = items
    if "layers" in chosen:
        subgraphs = {(s.node_index, s.attr): s for s in index.subgraphs}
        layers = []
        for node in index.nodes():
            i = node.index
            entry: dict[str, Any] = {
                "index": i,
                "name": node.name,
                "op": node.op_type,
                "inputs": list(node.inputs),
                "outputs": list(node.outputs),
            }
            if node.domain not in ("", DEFAULT_DOMAIN):
                entry["domain"] = node.domain
            if node.parent is not None:
                entry["parent"] = node.parent
            if "attrs" in chosen:
                entry["attrs"] = {a.name: _json_attr(index, i, a, subgraphs) for a in index.node_proto(i).attribute}
            layers.append(entry)
        result["nodes"]["layers"] = layers
        metas: dict[tuple[Any, Any], dict[str, Any]] = {}
        tensors: dict[str, dict[str, Any]] = {}
        for name, dtype, shape in index.known_tensors(infer=infer):
            meta = metas.get((dtype, shape))
            if meta is None:
                meta = {"dtype": dtype_name(dtype), "shape": list(shape) if shape is not None else None}
                metas[(dtype, shape)] = meta
            tensors[name] = meta
        result["tensors"] = tensors
    result["shape_inference_error"] = index.shape_inference_error
    return result


def shape_note(index: ModelIndex) -> str | None:
    """A one-line warning when shape inference failed, else ``None``."""
    if index.shape_inference_error is None:
        return None
    return f"shape inference failed ({index.shape_inference_error}); the shapes shown may be partial"
