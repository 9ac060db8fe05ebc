"""``surgeon sanitize``: override input shapes, clean up, sort, and fold constants through ONNX Runtime.

Order (as Polygraphy): input shape overrides (then shape inference), cleanup, toposort, constant folding.
Folding repeats until a pass removes no node. Each pass turns ``Constant`` nodes into initializers, replaces
``Shape``/``Size`` of tensors whose shape inference gives a fully static shape by their value, evaluates every
node whose inputs are all constant in one ONNX Runtime session (node by node when that session fails), and
replaces what the remaining graph reads by initializers. Random ops and Quantize/DequantizeLinear (TensorRT needs
explicit Q/DQ) are never folded; nor are graph outputs, or nodes with subgraphs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import ModelProto, numpy_helper

from engine_core.data.shapes import format_dims, format_shape
from engine_core.errors import TrtdbgError, first_line
from engine_core.model.index import ModelIndex
from engine_core.model.loader import RANDOM_OPS, ort_cpu_session, subgraphs_of
from engine_core.surgeon.changes import EditResult, summarize
from engine_core.surgeon.graph import (
    ORT_DOMAINS,
    cleanup,
    infer_shapes,
    lower_constants,
    shell,
    top_level_deps,
    toposort,
    with_value_info,
)

NO_FOLD = RANDOM_OPS | {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}
"""Ops never folded: random ones, and Q/DQ (TensorRT needs them as nodes)."""


@dataclass(frozen=True)
class SanitizeOptions:
    """What ``sanitize`` does; with nothing set it returns the model unchanged."""

    fold_constants: bool = False
    cleanup: bool = False
    toposort: bool = False
    override_input_shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    fold_shapes: bool = True
    """Fold ``Shape``/``Size`` of statically shaped tensors (shape sub-graphs)."""
    fold_size_threshold: int | None = None
    """Do not create folded constants larger than this many bytes (``None``: no limit)."""
    max_passes: int | None = None


def sanitize(model: ModelProto, options: SanitizeOptions, path: str | None = None) -> EditResult:
    """Apply ``options`` in Polygraphy's order; the summary notes one line per folding pass."""
    notes: list[str] = []
    out = model
    if options.override_input_shapes:
        out = override_input_shapes(out, options.override_input_shapes, path)
        notes.append(
            "input shapes: " + ", ".join(f"{k}:{format_dims(v)}" for k, v in options.override_input_shapes.items())
        )
    if options.cleanup:
        out = cleanup(out)
    if options.toposort:
        out = toposort(out)
    if options.fold_constants:
        out, fold_notes = fold_constants(
            out,
            fold_shapes=options.fold_shapes,
            size_threshold=options.fold_size_threshold,
            max_passes=options.max_passes,
            base=os.path.dirname(os.path.abspath(path)) if path else None,
        )
        notes.extend(fold_notes)
    return EditResult(out, summarize("sanitize", model, out, notes))


def override_input_shapes(
    model: ModelProto, shapes: Mapping[str, tuple[int, ...]], path: str | None = None
) -> ModelProto:
    """Set static shapes on graph inputs, then re-run shape inference (value_info is replaced).

    Raises when a name is not a graph input, a shape has the wrong rank or changes a fixed dimension, or strict
    shape inference, which passes on the original model, fails with the new shapes.
    """
    where = path or "the model"
    init = {t.name for t in model.graph.initializer}
    inputs = {vi.name: vi for vi in model.graph.input if vi.name not in init}
    for name, shape in shapes.items():
        if name not in inputs:
            raise TrtdbgError(
                f"--override-input-shapes: '{name}' is not an input of {where}; the inputs are: "
                f"{', '.join(inputs) or '(none)'}"
            )
        tt = inputs[name].type.tensor_type
        if tt.HasField("shape"):
            model_dims = [d.dim_value if d.WhichOneof("value") == "dim_value" else None for d in tt.shape.dim]
            if len(model_dims) != len(shape) or any(m is not None and m != s for m, s in zip(model_dims, shape)):
                raise TrtdbgError(
                    f"--override-input-shapes: shape {format_dims(shape)} for '{name}' contradicts the "
                    f"model shape {format_shape(model_dims)}; give {len(model_dims)} dims and keep the fixed ones"
                )
    try:
        infer_shapes(model, strict=True)
        strict_before = True
    except Exception:
        strict_before = False
    out = ModelProto()
    out.CopyFrom(model)
    del out.graph.value_info[:]
    for vi in out.graph.input:
        if vi.name in shapes:
            dims = vi.type.tensor_type.shape.dim
            del dims[:]
            for d in shapes[vi.name]:
                dims.add().dim_value = int(d)
    try:
        inferred = infer_shapes(out, strict=strict_before)
    except Exception as exc:
        given = ", ".join(f"{k}:{format_dims(v)}" for k, v in shapes.items())
        raise TrtdbgError(
            f"input shapes {given} contradict the graph of {where}: {first_line(exc)}; give shapes the model accepts"
        ) from exc
    return with_value_info(out, inferred)


def fold_constants(
    model: ModelProto,
    *,
    fold_shapes: bool = True,
    size_threshold: int | None = None,
    max_passes: int | None = None,
    base: str | os.PathLike[str] | None = None,
) -> tuple[ModelProto, list[str]]:
    """Fold until a pass changes no node (or ``max_passes``); returns the model and one note per pass (``base``: the
    folder of the model's external data)."""
    notes: list[str] = []
    passes = 0
    while max_passes is None or passes < max_passes:
        before = len(model.graph.node)
        folded, skipped = _fold_pass(model, fold_shapes, size_threshold, base)
        passes += 1
        after = len(folded.graph.node)
        notes.extend(skipped)
        if after == before:
            break
        notes.append(f"fold pass {passes}: {before} -> {after} nodes ({before - after} folded)")
        model = folded
    return model, notes


def _static_shape(index: ModelIndex, name: str) -> tuple[int, ...] | None:
    meta = index.tensor_meta(name)
    if meta is None or meta.shape is None:
        return None
    dims = tuple(d for d in meta.shape if isinstance(d, int) and d >= 0)
    return dims if len(dims) == len(meta.shape) else None


def _shape_value(index: ModelIndex, i: int) -> np.ndarray | None:
    """The value of a ``Shape``/``Size`` node when its input's shape is static."""
    shape = _static_shape(index, index.node_inputs(i)[0])
    if shape is None:
        return None
    if index.op_type(i) == "Size":
        return np.array(int(np.prod(shape, dtype=np.int64)), np.int64)
    attrs = {a.name: a.i for a in index.node_proto(i).attribute}
    rank = len(shape)
    start, end = attrs.get("start", 0), attrs.get("end", rank)
    start = min(max(start + rank if start < 0 else start, 0), rank)
    end = min(max(end + rank if end < 0 else end, 0), rank)
    return np.array(shape[start:end], np.int64)


def _fold_pass(
    model: ModelProto, fold_shapes: bool, size_threshold: int | None, base: str | os.PathLike[str] | None
) -> tuple[ModelProto, list[str]]:
    """One pass: lower Constants, fold what is constant; returns the cleaned model and notes on unfoldable nodes."""
    model, _ = lower_constants(model)
    index = ModelIndex(model, external_data_dir=base)
    deps = top_level_deps(index)
    declared = {vi.name for vi in model.graph.input}
    consts = {t.name for t in model.graph.initializer if t.name not in declared}
    graph_outputs = {vi.name for vi in model.graph.output}
    values: dict[str, np.ndarray] = {}
    shape_nodes: set[int] = set()
    if fold_shapes:
        for i in range(index.num_top_level):
            proto = index.node_proto(i)
            outs = [o for o in proto.output if o]
            if (
                index.op_type(i) in ("Shape", "Size")
                and proto.domain in ("", "ai.onnx")
                and outs
                and outs[0] not in graph_outputs
                and deps[i]
                and deps[i][0] not in consts
            ):
                value = _shape_value(index, i)
                if value is not None:
                    values[outs[0]] = value
                    shape_nodes.add(i)
    known = consts | set(values)
    foldable: list[int] = []
    for i in range(index.num_top_level):
        proto = index.node_proto(i)
        outs = [o for o in proto.output if o]
        if i in shape_nodes or not outs or any(o in graph_outputs for o in outs):
            continue
        if proto.op_type in NO_FOLD or proto.domain not in ORT_DOMAINS or subgraphs_of(proto):
            continue
        if all(d in known for d in deps[i]):
            foldable.append(i)
            known.update(outs)
    notes: list[str] = []
    if foldable:
        evaluated, notes = _evaluate(model, index, foldable, values)
    else:
        evaluated = []
    if not evaluated and not shape_nodes:
        return cleanup(model), notes
    folded = set(evaluated) | shape_nodes
    boundary = _boundary(index, folded)
    while size_threshold is not None:
        big = [t for t in boundary if values[t].nbytes > size_threshold]
        if not big:
            break
        folded.difference_update(index.producer(t) for t in big)
        boundary = _boundary(index, folded)
    out = ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    out.graph.node.extend(index.node_proto(i) for i in range(index.num_top_level) if i not in folded)
    out.graph.initializer.extend(numpy_helper.from_array(values[t], t) for t in sorted(boundary))
    return cleanup(out), notes


def _boundary(index: ModelIndex, folded: set[int]) -> set[str]:
    """Outputs of folded nodes that some node outside ``folded`` reads."""
    return {t for i in folded for t in index.node_outputs(i) if t and any(c not in folded for c in index.consumers(t))}


def _evaluate(
    model: ModelProto, index: ModelIndex, foldable: list[int], values: dict[str, np.ndarray]
) -> tuple[list[int], list[str]]:
    """Compute the outputs of ``foldable`` nodes into ``values``; returns the nodes evaluated and notes.

    One ONNX Runtime session for all of them; when that fails, one session per node (nodes that fail, and those
    depending on them, are left in the graph with a note).
    """
    try:
        batch: dict[str, np.ndarray] | None = _run_constant_graph(
            model, [index.node_proto(i) for i in foldable], values, index.data_dir
        )
    except Exception:
        batch = None
    if batch is not None:
        values.update(batch)
        return foldable, []
    done: list[int] = []
    notes: list[str] = []
    failed: set[str] = set()
    for i in foldable:
        proto = index.node_proto(i)
        if any(d in failed for d in proto.input):
            failed.update(proto.output)
            continue
        try:
            values.update(_run_constant_graph(model, [proto], values, index.data_dir))
            done.append(i)
        except Exception as exc:
            failed.update(proto.output)
            notes.append(f"not folded: node '{index.name(i)}' ({proto.op_type}): {first_line(exc)}")
    return done, notes


def _run_constant_graph(
    model: ModelProto,
    nodes: list[onnx.NodeProto],
    values: Mapping[str, np.ndarray],
    base: str | os.PathLike[str] | None,
) -> dict[str, np.ndarray]:
    """Run input-less ``nodes`` (reading initializers of ``model``, external ones from ``base``, and ``values``) in
    ONNX Runtime."""
    sub = shell(model)
    g = sub.graph
    g.node.extend(nodes)
    reads = {d for n in nodes for d in n.input if d}
    produced = {o for n in nodes for o in n.output if o}
    g.initializer.extend(t for t in model.graph.initializer if t.name in reads and t.name not in produced)
    g.initializer.extend(numpy_helper.from_array(values[name], name) for name in sorted(reads & set(values)))
    names = [o for n in nodes for o in n.output if o]
    for name in names:
        g.output.add().name = name
    sess = ort_cpu_session(sub, base=base)
    return dict(zip(names, sess.run(names, {})))
