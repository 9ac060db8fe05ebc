"""Which ONNX nodes the TensorRT ONNX parser supports, as contiguous supported/unsupported node ranges.

Uses ``OnnxParser.supports_model_v2`` + ``num_subgraphs``/``get_subgraph_nodes`` where the module has them (10.1+, 11,
RTX), ``supports_model`` on older 10.x, else a plain parse (feature-detected). The parser lists the nodes it did
not reject; its per-subgraph "supported" flag is only true when the whole model parses, so a node counts as
supported here when the parser put it in a subgraph and reported no error for it. Errors name the rejected nodes;
a node whose op has no built-in importer (``supports_operator`` false, or "Plugin not found") needs a plugin.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import onnx

from engine_core.backend.trt.build import _issue, create_builder
from engine_core.backend.trt.flavour import Flavour, make_logger
from engine_core.errors import TrtdbgError
from engine_core.safetext import printable_lines


@dataclass(frozen=True)
class Rejected:
    """One node the parser rejected."""

    index: int
    name: str
    op: str
    domain: str
    reason: str
    needs_plugin: bool


@dataclass(frozen=True)
class NodeRange:
    """Nodes ``start..end`` (inclusive, graph order) that are all supported or all unsupported."""

    supported: bool
    start: int
    end: int
    note: str = ""
    """Why a supported range was not parsed again on its own (its inputs' types or ranks are unknown)."""

    @property
    def size(self) -> int:
        """Number of nodes."""
        return self.end - self.start + 1


@dataclass
class Capability:
    """The parser's verdict on one model."""

    model: str
    module: str
    method: str
    """``supports_model_v2``, ``supports_model`` or ``parse``."""
    nodes: list[tuple[str, str, str]]
    """``(name, op, domain)`` per node in graph order."""
    ranges: list[NodeRange]
    rejected: list[Rejected]
    model_errors: list[str] = field(default_factory=list)
    """Parser errors not tied to a node."""
    plugins_possible: bool = True
    """False on TensorRT-RTX, which loads no plugins."""

    @property
    def fully_supported(self) -> bool:
        """Every node supported and no model-level error."""
        return not self.rejected and not self.model_errors and all(r.supported for r in self.ranges)

    def to_json(self) -> dict[str, Any]:
        """Stable JSON document."""

        def rng(r: NodeRange) -> dict[str, Any]:
            doc = {"start": r.start, "end": r.end, "nodes": [self.nodes[i][0] for i in range(r.start, r.end + 1)]}
            return {**doc, "note": r.note} if r.note else doc

        return {
            "model": self.model,
            "module": self.module,
            "method": self.method,
            "node_count": len(self.nodes),
            "fully_supported": self.fully_supported,
            "supported_nodes": sum(r.size for r in self.ranges if r.supported),
            "supported_subgraphs": [rng(r) for r in self.ranges if r.supported],
            "unsupported_subgraphs": [rng(r) for r in self.ranges if not r.supported],
            "unsupported_nodes": [
                {
                    "index": u.index,
                    "name": u.name,
                    "op": u.op,
                    "domain": u.domain,
                    "reason": u.reason,
                    "needs_plugin": u.needs_plugin,
                }
                for u in self.rejected
            ],
            "needs_plugins": sorted({_qual(u.domain, u.op) for u in self.rejected if u.needs_plugin}),
            "plugins_possible": self.plugins_possible,
            "model_errors": list(self.model_errors),
        }

    def to_text(self) -> str:
        """Polygraphy-like summary lines."""
        n = len(self.nodes)
        ok = sum(r.size for r in self.ranges if r.supported)
        lines = [f"[I] {self.module} ONNX parser ({self.method}) on {self.model}: {ok} of {n} node(s) supported"]
        if self.fully_supported:
            lines.append("[I] The whole model is supported: one subgraph of every node")
            lines.append(
                "[I] (by the parser: the builder can still refuse a layer, e.g. INT8 weights without DequantizeLinear;"
                " `trtdbg convert MODEL -o MODEL.plan` builds it)"
            )
            return printable_lines(lines)
        for supported in (True, False):
            group = [r for r in self.ranges if r.supported == supported]
            lines.append(f"[I] {'Supported' if supported else 'Unsupported'} subgraphs ({len(group)}):")
            for r in group:
                first, last = self.nodes[r.start], self.nodes[r.end]
                span = f"'{first[0]}' ({first[1]})" + (f" .. '{last[0]}' ({last[1]})" if r.size > 1 else "")
                note = f" [{r.note}]" if r.note else ""
                lines.append(f"    nodes {r.start}-{r.end} ({r.size}): {span}{note}")
        if self.rejected:
            lines.append("[I] Unsupported nodes:")
            for u in self.rejected:
                tag = "needs a plugin" if u.needs_plugin else "unsupported"
                lines.append(f"    #{u.index} '{u.name}' ({_qual(u.domain, u.op)}): {tag}: {u.reason}")
        plugins = sorted({_qual(u.domain, u.op) for u in self.rejected if u.needs_plugin})
        if plugins:
            note = "" if self.plugins_possible else f" ({self.module} loads no plugins: rewrite these nodes)"
            lines.append(f"[I] Plugins needed for: {', '.join(plugins)}{note}")
        lines += [f"[E] {e}" for e in self.model_errors]
        return printable_lines(lines)


def _qual(domain: str, op: str) -> str:
    return f"{domain}:{op}" if domain not in ("", "ai.onnx") else op


def model_capability(
    flavour: Flavour, model: onnx.ModelProto, model_path: str | os.PathLike[str] | None = None
) -> Capability:
    """Ask ``flavour``'s ONNX parser which nodes of ``model`` it supports (no GPU needed on TensorRT-RTX).

    When the model is not fully supported, every range the parser accepted is parsed again on its own (as
    Polygraphy does): a node after a rejected one may only have passed because its input shapes were unknown.
    """
    path = str(model_path) if model_path else None
    method, whole, groups, issues, owned = _ask(flavour, model.SerializeToString(), path)
    parser = owned[0]
    if any(i.code == "MODEL_DESERIALIZE_FAILED" for i in issues):
        raise TrtdbgError(f"{flavour.label} cannot read {path or 'the model'} as ONNX; check it with `trtdbg inspect`")
    nodes = [(n.name or f"<node {k}>", n.op_type, n.domain) for k, n in enumerate(model.graph.node)]
    bad: dict[int, Rejected] = {}
    model_errors: list[str] = []

    def reject(issues: list[Any], offset: int) -> bool:
        found = False
        for issue in issues:
            k = issue.node_index + offset if issue.node_index >= 0 else -1
            if not 0 <= k < len(nodes):
                if offset == 0:
                    model_errors.append(issue.message)
                continue
            if k not in bad:
                name, op, domain = nodes[k]
                plugin = "Plugin not found" in issue.message or not _has_importer(parser, op)
                bad[k] = Rejected(k, name, op, domain, issue.message, plugin)
                found = True
        return found

    reject(issues, 0)
    notes: dict[int, str] = {}
    listed = {k for g in groups for k in g}
    if whole and not issues:
        ok = [True] * len(nodes)
    elif method == "parse":
        ok = [False] * len(nodes)  # a failed plain parse says nothing about the nodes it did not reach
    else:
        ok = [k in listed and k not in bad for k in range(len(nodes))]
        infos = _value_infos(model)
        for _ in range(len(nodes)):  # each round rejects at least one more node, or stops
            changed = False
            notes.clear()
            for r in _ranges(ok):
                if not r.supported:
                    continue
                sub = _submodel(model, r.start, r.end, infos)
                if isinstance(sub, str):  # the whole-model verdict stands
                    notes[r.start] = f"not parsed alone: input '{sub}' has no known type and rank"
                    continue
                _, _, _, sub_issues, _ = _ask(flavour, sub.SerializeToString(), path)
                if reject(sub_issues, r.start):
                    changed = True
                    for k in bad:
                        ok[k] = False
            if not changed:
                break
    where = os.path.basename(str(model_path)) if model_path else "the model"
    ranges = [
        NodeRange(r.supported, r.start, r.end, notes.get(r.start, "")) if r.supported and not whole else r
        for r in _ranges(ok)
    ]
    return Capability(
        where,
        flavour.label,
        method,
        nodes,
        ranges,
        sorted(bad.values(), key=lambda r: r.index),
        model_errors,
        plugins_possible=not flavour.is_rtx,
    )


def _ask(flavour: Flavour, data: bytes, path: str | None) -> tuple[str, bool, list[list[int]], list[Any], tuple]:
    """``(method, whole model supported, parser's node groups, parser errors, (parser, network, builder, logger))``
    for serialized ``data``."""
    trt = flavour.module
    logger = make_logger(flavour)
    builder = create_builder(flavour, logger)
    flags = 0
    if flavour.has("NetworkDefinitionCreationFlag", "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    groups: list[list[int]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if hasattr(parser, "supports_model_v2") and hasattr(parser, "get_subgraph_nodes"):
            method = "supports_model_v2"
            whole = parser.supports_model_v2(data, path) if path else parser.supports_model_v2(data)
            groups = [list(parser.get_subgraph_nodes(i)) for i in range(parser.num_subgraphs)]
        elif hasattr(parser, "supports_model"):
            method = "supports_model"
            whole, found = parser.supports_model(data, path) if path else parser.supports_model(data)
            groups = [list(nodes) for nodes, _ in found]
        else:
            method = "parse"
            whole = parser.parse(data, path) if path else parser.parse(data)
    issues = [_issue(parser.get_error(i)) for i in range(parser.num_errors)]
    return method, bool(whole), groups, issues, (parser, network, builder, logger)  # kept alive together


def _ranges(ok: list[bool]) -> list[NodeRange]:
    ranges: list[NodeRange] = []
    for k, flag in enumerate(ok):
        if ranges and ranges[-1].supported == flag:
            ranges[-1] = NodeRange(flag, ranges[-1].start, k)
        else:
            ranges.append(NodeRange(flag, k, k))
    return ranges


def _value_infos(model: onnx.ModelProto) -> dict[str, onnx.ValueInfoProto]:
    """Every tensor's value info from the model and (best effort) shape inference."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False).graph
    except Exception:
        inferred = model.graph
    found: dict[str, onnx.ValueInfoProto] = {}
    for vi in [*inferred.value_info, *model.graph.input, *model.graph.output]:
        found.setdefault(vi.name, vi)
    return found


def _submodel(
    model: onnx.ModelProto, start: int, end: int, infos: dict[str, onnx.ValueInfoProto]
) -> onnx.ModelProto | str:
    """Nodes ``start..end`` as a model of their own, or the name of a boundary input with no known type and rank."""
    g = model.graph
    inside = list(g.node[start : end + 1])
    produced = {y for n in inside for y in n.output if y}
    consumed = [x for n in inside for x in _reads(n)]
    inits = {t.name: t for t in g.initializer}
    inputs: list[onnx.ValueInfoProto] = []
    for x in dict.fromkeys(consumed):
        if x in produced or x in inits:
            continue
        vi = infos.get(x)
        if vi is None or not vi.type.tensor_type.elem_type or not vi.type.tensor_type.HasField("shape"):
            return x
        inputs.append(vi)
    outside = {x for k, n in enumerate(g.node) if not start <= k <= end for x in _reads(n)}
    outside |= {o.name for o in g.output}
    outs = [y for y in produced if y in outside] or [y for y in inside[-1].output if y]
    outputs = [infos.get(y) or onnx.helper.make_empty_tensor_value_info(y) for y in outs]
    sub = onnx.helper.make_graph(
        inside, f"{g.name}_{start}_{end}", inputs, outputs, [inits[x] for x in dict.fromkeys(consumed) if x in inits]
    )
    out = onnx.helper.make_model(sub, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    out.functions.extend(model.functions)
    return out


def _reads(node: onnx.NodeProto) -> list[str]:
    """Tensors a node reads, including outer-scope names read inside its sub-graphs."""
    names = [x for x in node.input if x]
    for a in node.attribute:
        for sg in [a.g] if a.HasField("g") else list(a.graphs):
            local = {i.name for i in sg.input} | {t.name for t in sg.initializer}
            local |= {y for n in sg.node for y in n.output}
            names += [x for n in sg.node for x in _reads(n) if x not in local]
    return names


def _has_importer(parser: Any, op: str) -> bool:
    """``supports_operator`` (True when the module lacks it: unknown, so no claim)."""
    try:
        return bool(parser.supports_operator(op))
    except Exception:
        return True
