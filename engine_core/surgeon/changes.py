"""The change summary every graph edit returns with its new model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import onnx

from engine_core.model.index import dtype_name, np_dtype
from engine_core.safetext import printable_lines
from engine_core.types import json_fields


@dataclass(frozen=True)
class ChangeSummary:
    """What an edit did: node counts, nodes removed/added (by name), the new graph I/O and notes."""

    action: str
    nodes_before: int
    nodes_after: int
    removed: tuple[str, ...]
    added: tuple[str, ...]
    inputs: tuple[str, ...]
    """Graph inputs after the edit, as ``name [dtype, shape]``."""
    outputs: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        return json_fields(self)

    def to_text(self, limit: int = 8) -> str:
        """A few human-readable lines."""
        lines = [
            f"{self.action}: {self.nodes_before} -> {self.nodes_after} nodes "
            f"({len(self.removed)} removed, {len(self.added)} added)"
        ]
        for label, names in (("removed", self.removed), ("added", self.added)):
            if names:
                more = f" ... (+{len(names) - limit} more)" if len(names) > limit else ""
                lines.append(f"  {label}: {', '.join(names[:limit])}{more}")
        lines.append(f"  inputs:  {'; '.join(self.inputs) or '(none)'}")
        lines.append(f"  outputs: {'; '.join(self.outputs) or '(none)'}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return printable_lines(lines)


@dataclass(frozen=True)
class EditResult:
    """A new model and the summary of how it differs from the input model."""

    model: onnx.ModelProto
    changes: ChangeSummary


def node_key(node: onnx.NodeProto) -> str:
    """A node's name, or ``Op(first output)`` for unnamed nodes."""
    if node.name:
        return node.name
    first = next((o for o in node.output if o), "")
    return f"{node.op_type}({first})"


def describe_value_info(vi: onnx.ValueInfoProto) -> str:
    """``name [float32, (1, 'n', ?)]`` from a graph input/output entry."""
    tt = vi.type.tensor_type
    if not vi.type.HasField("tensor_type"):
        return vi.name
    dtype = np_dtype(tt.elem_type)
    parts = [dtype_name(dtype)]
    if tt.HasField("shape"):
        dims = []
        for d in tt.shape.dim:
            which = d.WhichOneof("value")
            dims.append(
                str(d.dim_value) if which == "dim_value" else repr(d.dim_param) if which == "dim_param" else "?"
            )
        parts.append("(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")")
    return f"{vi.name} [{', '.join(parts)}]"


def summarize(
    action: str, before: onnx.ModelProto, after: onnx.ModelProto, notes: list[str] | tuple[str, ...] = ()
) -> ChangeSummary:
    """Compare the top-level nodes of two models and describe the result's graph I/O."""
    old = [node_key(n) for n in before.graph.node]
    new = [node_key(n) for n in after.graph.node]
    old_set, new_set = set(old), set(new)
    init = {t.name for t in after.graph.initializer}
    return ChangeSummary(
        action=action,
        nodes_before=len(old),
        nodes_after=len(new),
        removed=tuple(k for k in old if k not in new_set),
        added=tuple(k for k in new if k not in old_set),
        inputs=tuple(describe_value_info(vi) for vi in after.graph.input if vi.name not in init),
        outputs=tuple(describe_value_info(vi) for vi in after.graph.output),
        notes=tuple(notes),
    )
