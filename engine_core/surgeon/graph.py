"""Shared graph plumbing for the surgeon: name checks, rebuilding, cleanup, toposort, Constant lowering, validation.

All functions return new models; none modifies its argument.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import NoReturn

import numpy as np
import onnx
from onnx import GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto, helper, numpy_helper

from engine_core.errors import TrtdbgError, first_line
from engine_core.model.index import ModelIndex
from engine_core.model.loader import ort_cpu_session, subgraphs_of
from engine_core.model.weights import PROTOBUF_LIMIT, structure_only
from engine_core.types import Dim

"""Largest model protobuf can serialize; bigger ones need external data."""
ORT_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "com.microsoft", "com.microsoft.nchwc", "com.ms.internal.nhwc"})
_KEEP_FOR_INFERENCE = 1024
"""Shape inference keeps initializers up to this many elements (shape tensors); larger ones become typed inputs."""


def top_level_tensors(model: ModelProto) -> set[str]:
    """Names of graph inputs, initializers and top-level node outputs."""
    g = model.graph
    names = {vi.name for vi in g.input} | {t.name for t in g.initializer}
    for node in g.node:
        names.update(o for o in node.output if o)
    return names


def unknown_tensor_error(name: str, known: Collection[str], option: str, where: str) -> TrtdbgError:
    """The one-line error for a tensor name that is not in the model, with close matches."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    hint = (
        f"; did you mean {', '.join(repr(c) for c in close)}?"
        if close
        else "; `trtdbg inspect MODEL --show layers` lists the tensors"
    )
    return TrtdbgError(f"{option}: tensor '{name}' does not exist in {where}{hint}")


def check_top_level(index: ModelIndex, name: str, known: Collection[str], option: str, where: str) -> NoReturn:
    """Raise for a name that is not a top-level tensor: made inside a subgraph, or not in the model at all."""
    p = index.producer(name)
    if p is not None and p >= index.num_top_level:
        raise TrtdbgError(
            f"{option}: tensor '{name}' is made inside subgraph {index.node(p).parent}; only top-level "
            f"tensors can be used here"
        )
    raise unknown_tensor_error(name, known, option, where)


def subgraph_reads(node: NodeProto) -> set[str]:
    """Every name read inside the node's subgraphs (a superset of what they capture from outside)."""
    names: set[str] = set()
    stack: list[GraphProto] = [g for _, g in subgraphs_of(node)]
    while stack:
        g = stack.pop()
        for n in g.node:
            names.update(n.input)
            stack.extend(sg for _, sg in subgraphs_of(n))
        names.update(vi.name for vi in g.output)
    names.discard("")
    return names


def node_reads(node: NodeProto) -> set[str]:
    """Tensors a node needs: its inputs and what its subgraphs read."""
    names = {i for i in node.input if i}
    if node.op_type in ("If", "Loop", "Scan", "SequenceMap") or node.domain not in ("", "ai.onnx"):
        names |= subgraph_reads(node)
    return names


def top_level_deps(index: ModelIndex) -> list[tuple[str, ...]]:
    """For each top-level node (index order): its inputs plus the names its subgraphs capture."""
    captures: dict[int, set[str]] = {}
    for sub in index.subgraphs:
        if sub.node_index < index.num_top_level:
            captures.setdefault(sub.node_index, set()).update(sub.captures)
    deps = []
    for i in range(index.num_top_level):
        ins = tuple(n for n in index.node_inputs(i) if n)
        deps.append(ins + tuple(sorted(captures[i] - set(ins))) if i in captures else ins)
    return deps


def backward_cone(
    index: ModelIndex, deps: Sequence[Sequence[str]], outputs: Iterable[str], stop: AbstractSet[str]
) -> tuple[set[int], set[str]]:
    """Top-level nodes needed to compute ``outputs`` without crossing ``stop``, and every tensor visited."""
    nodes: set[int] = set()
    seen: set[str] = set()
    stack = list(outputs)
    while stack:
        t = stack.pop()
        if t in seen or t in stop:
            continue
        seen.add(t)
        p = index.producer(t)
        if p is not None and p < index.num_top_level and p not in nodes:
            nodes.add(p)
            stack.extend(deps[p])
    return nodes, seen


def shell(model: ModelProto) -> ModelProto:
    """A copy of ``model`` without graph contents (keeps IR version, opsets, functions, metadata, graph name)."""
    out = ModelProto()
    out.ir_version = model.ir_version
    out.opset_import.extend(model.opset_import)
    out.producer_name = model.producer_name
    out.producer_version = model.producer_version
    out.domain = model.domain
    out.model_version = model.model_version
    out.doc_string = model.doc_string
    out.metadata_props.extend(model.metadata_props)
    out.functions.extend(model.functions)
    out.graph.name = model.graph.name
    out.graph.doc_string = model.graph.doc_string
    return out


def rebuild(
    src: ModelProto,
    nodes: Iterable[NodeProto],
    inputs: Sequence[ValueInfoProto],
    outputs: Sequence[ValueInfoProto],
    *,
    extra_initializers: Sequence[TensorProto] = (),
) -> ModelProto:
    """A model with ``src``'s opsets and metadata holding ``nodes`` (in the given order) and the given graph I/O.

    Keeps the initializers of ``src`` that the nodes or outputs read (a graph input of the same name wins), adds
    ``extra_initializers``, and keeps ``src``'s value_info for tensors the nodes still produce.
    """
    out = shell(src)
    g = out.graph
    node_list = list(nodes)
    g.node.extend(node_list)
    g.input.extend(inputs)
    g.output.extend(outputs)
    input_names = {vi.name for vi in inputs}
    used: set[str] = {vi.name for vi in outputs}
    produced: set[str] = set()
    for n in node_list:
        used |= node_reads(n)
        produced.update(o for o in n.output if o)
    extra_names = {t.name for t in extra_initializers}
    g.initializer.extend(
        t for t in src.graph.initializer if t.name in used and t.name not in input_names and t.name not in extra_names
    )
    g.initializer.extend(extra_initializers)
    g.sparse_initializer.extend(t for t in src.graph.sparse_initializer if t.values.name in used)
    io = input_names | {vi.name for vi in outputs}
    g.value_info.extend(vi for vi in src.graph.value_info if vi.name in produced and vi.name not in io)
    return out


def make_value_info(name: str, dtype: np.dtype | None, shape: Sequence[Dim] | None) -> ValueInfoProto:
    """A tensor ValueInfo; ``None`` dims stay unknown, str dims become symbolic."""
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype)) if dtype is not None else TensorProto.UNDEFINED
    dims = None if shape is None else [d if isinstance(d, (int, str)) and d != -1 else None for d in shape]
    return helper.make_tensor_value_info(name, elem, dims)


def live_nodes(index: ModelIndex, outputs: Iterable[str]) -> list[int]:
    """Top-level node positions (index order) that contribute to ``outputs``."""
    deps = top_level_deps(index)
    needed = set(outputs)
    live = []
    for i in range(index.num_top_level - 1, -1, -1):
        if any(o in needed for o in index.node_outputs(i) if o):
            live.append(i)
            needed.update(deps[i])
    return live[::-1]


def cleanup(model: ModelProto) -> ModelProto:
    """Remove nodes that feed no graph output, then unused initializers and stale value_info (inputs stay)."""
    index = ModelIndex(model)
    keep = live_nodes(index, [vi.name for vi in model.graph.output])
    declared = [vi for vi in model.graph.input]
    out = rebuild(model, (index.node_proto(i) for i in keep), declared, list(model.graph.output))
    # Initializers that are also declared graph inputs (IR < 4 defaults) stay even when unused.
    have = {t.name for t in out.graph.initializer}
    declared_names = {vi.name for vi in declared}
    out.graph.initializer.extend(t for t in model.graph.initializer if t.name in declared_names and t.name not in have)
    return out


def toposort(model: ModelProto) -> ModelProto:
    """The same model with top-level nodes in topological order (stable; raises on a cycle)."""
    index = ModelIndex(model)
    out = ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    out.graph.node.extend(index.node_proto(i) for i in range(index.num_top_level))
    return out


def constant_node_value(node: NodeProto) -> np.ndarray | None:
    """The value of a ``Constant`` node (``None`` for sparse values, which stay as nodes)."""
    for attr in node.attribute:
        name = attr.name
        if name == "value":
            return numpy_helper.to_array(attr.t)
        if name == "value_float":
            return np.array(attr.f, np.float32)
        if name == "value_floats":
            return np.array(list(attr.floats), np.float32)
        if name == "value_int":
            return np.array(attr.i, np.int64)
        if name == "value_ints":
            return np.array(list(attr.ints), np.int64)
        if name == "value_string":
            return np.array(attr.s.decode("utf-8"), dtype=object)
        if name == "value_strings":
            return np.array([s.decode("utf-8") for s in attr.strings], dtype=object)
    return None


def lower_constants(model: ModelProto) -> tuple[ModelProto, int]:
    """Top-level ``Constant`` nodes become initializers of the same name; returns the model and how many."""
    lowered: list[TensorProto] = []
    nodes: list[NodeProto] = []
    for node in model.graph.node:
        value = constant_node_value(node) if node.op_type == "Constant" and node.domain in ("", "ai.onnx") else None
        if value is None:
            nodes.append(node)
            continue
        tensor = next((a.t for a in node.attribute if a.name == "value"), None)
        if tensor is not None:
            t = TensorProto()
            t.CopyFrom(tensor)
            t.name = node.output[0]
        else:
            t = numpy_helper.from_array(value, node.output[0])
        lowered.append(t)
    if not lowered:
        return model, 0
    out = ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    out.graph.initializer.extend(lowered)
    return out, len(lowered)


def light_copy(model: ModelProto) -> ModelProto:
    """The model without large or external initializer data (they become typed inputs), for shape inference."""
    light = shell(model)
    src, g = model.graph, light.graph
    g.node.extend(src.node)
    g.input.extend(src.input)
    g.output.extend(src.output)
    g.value_info.extend(src.value_info)
    g.sparse_initializer.extend(src.sparse_initializer)
    declared = {vi.name for vi in src.input}
    for t in src.initializer:
        small = int(np.prod(t.dims, dtype=np.int64)) <= _KEEP_FOR_INFERENCE
        if small and t.data_location != TensorProto.EXTERNAL:
            g.initializer.append(t)
        elif t.name not in declared:
            g.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    return light


def infer_shapes(model: ModelProto, *, strict: bool) -> ModelProto:
    """ONNX shape inference (with data propagation) on a light copy; raises the checker's exception when strict."""
    from onnx import shape_inference

    return shape_inference.infer_shapes(light_copy(model), strict_mode=strict, data_prop=True)


def with_value_info(model: ModelProto, inferred: ModelProto) -> ModelProto:
    """``model`` with its value_info replaced by the inferred model's (graph I/O untouched)."""
    out = ModelProto()
    out.CopyFrom(model)
    io = {vi.name for vi in out.graph.input} | {vi.name for vi in out.graph.output}
    del out.graph.value_info[:]
    out.graph.value_info.extend(vi for vi in inferred.graph.value_info if vi.name not in io)
    return out


def unknown_ort_domains(model: ModelProto) -> set[str]:
    """Op domains of top-level nodes that ONNX Runtime does not implement (model-local functions count as known)."""
    local = {f.domain for f in model.functions}
    return {n.domain for n in model.graph.node} - ORT_DOMAINS - local


def validate(model: ModelProto, what: str, hint: str, path: str | os.PathLike[str] | None = None) -> list[str]:
    """Run the ONNX checker and load the model in ONNX Runtime (CPU); raise :class:`TrtdbgError` on failure.

    External weights stay in their files (beside ``path``, the source model) and are shared with ONNX Runtime, not
    copied. Returns notes about checks that could not run (custom op domains, a graph over 2 GB without its weights).
    """
    if model.ByteSize() > PROTOBUF_LIMIT:
        return [f"{what} is over 2 GB; not checked (save it with --external-data)"]
    try:
        onnx.checker.check_model(structure_only(model))
    except Exception as exc:
        raise TrtdbgError(f"{what} is not a valid ONNX model: {first_line(exc)}; {hint}") from exc
    unknown = unknown_ort_domains(model)
    if unknown:
        return [
            f"{what} was not loaded in ONNX Runtime: op domain(s) {', '.join(sorted(unknown))} need a custom-op library"
        ]
    try:
        ort_cpu_session(model, base=os.path.dirname(os.path.abspath(path)) if path else None)
    except Exception as exc:
        raise TrtdbgError(f"{what} does not load in ONNX Runtime: {first_line(exc)}; {hint}") from exc
    return []


def arrays_equal(arrays: Sequence[np.ndarray]) -> bool:
    """True when all arrays have one shape and dtype and equal values (NaN equals NaN)."""
    first = arrays[0]
    for a in arrays[1:]:
        if a.shape != first.shape or a.dtype != first.dtype:
            return False
        if first.dtype.kind in "fc":
            if not np.array_equal(a, first, equal_nan=True):
                return False
        elif not np.array_equal(a, first):
            return False
    return True


def rename_reads(nodes: Iterable[NodeProto], mapping: Mapping[str, str]) -> None:
    """In place on the given (copied) nodes: replace tensor names they read, inside subgraphs too."""
    for node in nodes:
        for k, name in enumerate(node.input):
            if name in mapping:
                node.input[k] = mapping[name]
        for _, g in subgraphs_of(node):
            rename_reads(g.node, mapping)
            for vi in g.output:
                if vi.name in mapping and vi.name not in {o for n in g.node for o in n.output}:
                    vi.name = mapping[vi.name]
