"""``surgeon prune``: remove named nodes.

By default each removed node is bypassed: whatever read its output reads its first input instead (for
Identity, Dropout, a Cast that changes nothing, a debug Relu...); its dtype and known static shape must match. With
``as_inputs`` the removed nodes' outputs that are still needed become graph inputs instead. Nodes that then feed no
output are removed too.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import numpy as np
import onnx
from onnx import ModelProto

from engine_core.errors import TrtdbgError
from engine_core.model.index import ModelIndex
from engine_core.surgeon.changes import EditResult, summarize
from engine_core.surgeon.extract import TensorSpec, measure_tensors, merge_meta
from engine_core.surgeon.graph import cleanup, make_value_info, rename_reads, shell, validate


def _find_nodes(index: ModelIndex, names: Sequence[str], where: str) -> list[int]:
    top = [index.name(i) for i in range(index.num_top_level)]
    found: set[int] = set()
    for name in names:
        i = index.find(name)
        if i is None or i >= index.num_top_level:
            close = difflib.get_close_matches(name, top, n=3)
            hint = (
                f"; did you mean {', '.join(repr(c) for c in close)}?"
                if close
                else "; `trtdbg inspect MODEL --show layers` lists the nodes"
            )
            raise TrtdbgError(f"--nodes: no top-level node named '{name}' in {where}{hint}")
        found.add(i)
    return sorted(found)


def _live_outputs(index: ModelIndex, i: int, removed: set[int], graph_outputs: set[str]) -> list[str]:
    """Outputs of node ``i`` still read by a kept node or a graph output."""
    return [
        y
        for y in index.node_outputs(i)
        if y and (y in graph_outputs or any(c < index.num_top_level and c not in removed for c in index.consumers(y)))
    ]


def prune_nodes(
    model: ModelProto,
    nodes: Sequence[str],
    *,
    as_inputs: bool = False,
    path: str | None = None,
    fallback_shapes: Sequence[str] = (),
) -> EditResult:
    """Remove ``nodes`` (names as ``trtdbg inspect`` shows them); see the module docstring for the two modes."""
    where = path or "the model"
    if not nodes:
        raise TrtdbgError("--nodes: give at least one node name")
    index = ModelIndex(model, path)
    removed = set(_find_nodes(index, nodes, where))
    graph_outputs = {vi.name for vi in model.graph.output}
    mapping: dict[str, str] = {}
    new_inputs: list[onnx.ValueInfoProto] = []
    notes: list[str] = []
    if as_inputs:
        live = [y for i in sorted(removed) for y in _live_outputs(index, i, removed, graph_outputs)]
        metas = {y: merge_meta(index, TensorSpec(y), "--nodes") for y in live}
        unknown = [y for y, m in metas.items() if m.dtype is None or m.shape is None]
        if unknown:
            measured = measure_tensors(model, path, unknown, fallback_shapes)
            metas.update({y: measured[y] for y in unknown})
            notes.append(f"shape/dtype of {', '.join(unknown)} measured with ONNX Runtime on generated inputs")
        new_inputs = [make_value_info(y, metas[y].dtype, metas[y].shape) for y in live]
        if live:
            notes.append(f"new graph input(s): {', '.join(live)}")
    else:
        for i in sorted(removed):
            live = [y for y in index.node_outputs(i) if y and (y in graph_outputs or index.consumers(y))]
            if not live:
                continue
            source = next((x for x in index.node_inputs(i) if x), None)
            if source is None or len(live) > 1:
                why = "has no input" if source is None else f"has {len(live)} outputs in use"
                raise TrtdbgError(
                    f"cannot bypass node '{index.name(i)}': it {why}; use --as-inputs to make its outputs graph inputs"
                )
            source = mapping.get(source, source)
            _check_bypass(index, index.name(i), live[0], source)
            mapping[live[0]] = source
            notes.append(f"bypassed '{index.name(i)}': readers of '{live[0]}' now read '{source}'")
    kept = [onnx.NodeProto() for i in range(index.num_top_level) if i not in removed]
    for copy, i in zip(kept, (i for i in range(index.num_top_level) if i not in removed)):
        copy.CopyFrom(index.node_proto(i))
    rename_reads(kept, mapping)
    outputs = []
    for vi in model.graph.output:
        copy = onnx.ValueInfoProto()
        copy.CopyFrom(vi)
        if vi.name in mapping:
            copy.name = mapping[vi.name]
            notes.append(f"graph output '{vi.name}' is now '{copy.name}'")
        outputs.append(copy)
    names = [vi.name for vi in outputs]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise TrtdbgError(
            f"pruning makes '{dup}' a graph output twice; keep one of the nodes that produce those outputs"
        )
    out = shell(model)
    g = out.graph
    g.node.extend(kept)
    g.input.extend(model.graph.input)
    g.input.extend(new_inputs)
    g.output.extend(outputs)
    g.initializer.extend(model.graph.initializer)
    g.sparse_initializer.extend(model.graph.sparse_initializer)
    g.value_info.extend(vi for vi in model.graph.value_info if vi.name not in {i.name for i in new_inputs})
    out = cleanup(out)
    extra = len(kept) - len(out.graph.node)
    if extra:
        notes.append(f"{extra} node(s) that fed only the pruned nodes were removed as well")
    notes += validate(out, "the pruned model", "keep the nodes whose outputs are needed, or use --as-inputs", path)
    return EditResult(out, summarize("prune", model, out, notes))


def _check_bypass(index: ModelIndex, node: str, output: str, source: str) -> None:
    """Bypassing must keep the dtype and (where both are static) the shape of the tensor."""
    a, b = index.tensor_meta(output), index.tensor_meta(source)
    if a is None or b is None:
        return
    if np.dtype(a.dtype) != np.dtype(b.dtype):
        raise TrtdbgError(
            f"cannot bypass node '{node}': its output is {np.dtype(a.dtype).name} but its input "
            f"'{source}' is {np.dtype(b.dtype).name}; use --as-inputs"
        )
    if not a.is_dynamic and not b.is_dynamic and tuple(a.shape or ()) != tuple(b.shape or ()):
        raise TrtdbgError(
            f"cannot bypass node '{node}': its output has shape {list(a.shape or ())} but its input "
            f"'{source}' has {list(b.shape or ())}; use --as-inputs"
        )
