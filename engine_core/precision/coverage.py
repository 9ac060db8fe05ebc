"""Precision coverage: how much of the model a precision subject really runs in low precision, and why the rest not.

Every precision subject (``compare --subject ort:fp16``, ``bisect``, ``reduce``, ``convert``) reports one
:class:`Coverage`: the nodes computing in FP16/BF16/INT8 out of the nodes that compute on floats, and the nodes kept
in FP32 counted by reason category (shape sub-graph, schema at the model's opset, no CUDA kernel, control flow …).
Nodes inside If/Loop/Scan bodies are never rewritten: they count as kept (``inside control-flow bodies``), so a model
whose network sits in If bodies shows 0 low nodes instead of "passing" FP16 silently. JSON key:
``precision_coverage`` = ``{precision, nodes_low, nodes_total, kept: {reason: count}}``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from engine_core.precision.plan import PrecisionPlan, Resolved
from engine_core.precision.rules import Analysis

BODY_KIND = "inside control-flow bodies (stay fp32)"
PLAN_KIND = "fp32 in the plan"


@dataclass
class Coverage:
    """Low-precision nodes out of the float-computing nodes, and kept nodes by reason category."""

    precision: str
    nodes_low: int
    nodes_total: int
    kept: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    """What was done to make low precision legal (e.g. an opset upgrade)."""

    def to_json(self) -> dict[str, Any]:
        """The ``precision_coverage`` document."""
        return {
            "precision": self.precision,
            "nodes_low": self.nodes_low,
            "nodes_total": self.nodes_total,
            "kept": dict(self.kept),
        }

    def text(self) -> str:
        """One line, e.g. ``precision coverage: bf16 on 310 of 330 nodes; kept fp32: 12 shape sub-graph, …``."""
        if self.precision == "fp32":
            return "precision coverage: fp32 on every node (no lower precision asked for)"
        line = f"precision coverage: {self.precision} on {self.nodes_low} of {self.nodes_total} nodes"
        if self.kept:
            line += "; kept fp32: " + ", ".join(f"{n} {why}" for why, n in self.kept.items())
        if self.notes:
            line += " (" + "; ".join(self.notes) + ")"
        return line

    def warning(self) -> str | None:
        """A warning when a lower precision was asked for but no node runs in it (the subject is the FP32 model)."""
        if self.nodes_low or self.precision == "fp32":
            return None
        top = max(self.kept.items(), key=lambda kv: kv[1])[0] if self.kept else "no node computes on floats"
        return (
            f"the {self.precision} subject runs no node in {self.precision} (mostly: {top}); "
            "it computes the FP32 model, so a pass means nothing"
        )


def coverage(analysis: Analysis, res: Resolved, plan: PrecisionPlan, notes: list[str] | None = None) -> Coverage:
    """Coverage of ``res`` (``plan`` resolved on ``an``)."""
    kept: Counter[str] = Counter()
    for facts in analysis.facts:
        if not (facts.candidate or facts.int8_candidate):
            continue
        eff = res.precision.get(facts.name, "fp32")
        if eff != "fp32":
            continue
        req = plan.requested(facts.name)
        if req == "fp32":
            kept[PLAN_KIND] += 1
            continue
        tried = plan.fallback if req == "int8" and not facts.allows("int8") else req
        kept[facts.kinds.get(tried) or facts.kinds.get(req) or "not a candidate"] += 1
    bodies = len(analysis.index) - analysis.index.num_top_level
    if bodies:
        kept[BODY_KIND] += bodies
    total = sum(1 for f in analysis.facts if f.candidate or f.int8_candidate) + bodies
    used = [p for p in ("int8", "fp16", "bf16") if p in res.precision.values()]
    asked = [p for p in ("int8", "fp16", "bf16") if p in {plan.default, *plan.nodes.values()}]
    label = "+".join(used or asked or ["fp32"])
    return Coverage(
        label,
        len(res.float_low) + len(res.int8),
        total,
        dict(sorted(kept.items(), key=lambda kv: -kv[1])),
        list(notes or []),
    )
