"""Precision plans: node -> precision with a default, saved as JSON, resolved against a model's rules.

A plan says what the user asks for; :meth:`PrecisionPlan.resolve` says what each node gets. ``int8`` on a node that
is not quantized (or may not be) gives the plan's ``fallback``; ``fp16``/``bf16`` on a node that may not take it
gives ``fp32``. Demotions keep the rule's reason so the UI and the CLI can show it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine_core.errors import TrtdbgError, require_one_of
from engine_core.precision.rules import FLOAT_TYPES, Analysis
from engine_core.workspace import atomic_write_json

PRECISIONS = ("fp32", "fp16", "bf16", "int8")
FALLBACKS = ("fp32", "fp16", "bf16")
FORMAT = "trtdbg-precision-plan"
VERSION = 1
_TRT_NAMES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "int8": "int8"}


@dataclass
class Resolved:
    """The precision every candidate node gets under a plan, for one model."""

    precision: dict[str, str]
    """Effective precision of every node that touches floats (``fp32`` included), in topological order."""
    demoted: dict[str, tuple[str, str]]
    """``{node: (requested, reason)}`` where a rule overrode the request."""
    float_low: dict[str, int]
    """``{node: ONNX elem type}`` of nodes computing in FP16/BF16."""
    int8: list[str]
    """Nodes whose inputs get Q/DQ."""
    coverage: Any = None
    """:class:`~engine_core.precision.coverage.Coverage` where the caller computed it (``convert``)."""


@dataclass
class PrecisionPlan:
    """``default`` precision for every node, ``nodes`` overrides, ``fallback`` for INT8 requests that cannot be INT8."""

    default: str = "fp32"
    nodes: dict[str, str] = field(default_factory=dict)
    fallback: str = "fp32"
    model: str | None = None
    calibration: str | None = None
    """ONNX Runtime calibration ranges (JSON) used for the INT8 nodes, when the plan has any."""

    def __post_init__(self) -> None:
        require_one_of("plan: default precision", self.default, PRECISIONS)
        require_one_of("plan: fallback", self.fallback, FALLBACKS)
        for name, p in self.nodes.items():
            if p not in PRECISIONS:
                raise TrtdbgError(f"plan: node '{name}' has precision '{p}'; use one of {', '.join(PRECISIONS)}")

    def requested(self, node: str) -> str:
        """What the plan asks for ``node``."""
        return self.nodes.get(node, self.default)

    def precisions(self) -> list[str]:
        """Every precision the plan can give a node (default, per-node requests, INT8 fallback)."""
        used = [self.default, *self.nodes.values()]
        if "int8" in used:
            used.append(self.fallback)
        return list(dict.fromkeys(used))

    def key(self) -> str:
        """Canonical text of the plan's semantics (for content hashes)."""
        return json.dumps([self.default, self.fallback, sorted(self.nodes.items())], separators=(",", ":"))

    # ------------------------------------------------------------------ resolution
    def check(self, analysis: Analysis) -> list[str]:
        """Validate node names against the model (unknown names raise); warnings for requests a rule overrides."""
        warnings = []
        for name, p in self.nodes.items():
            facts = analysis.node(name)
            if p == "fp32":
                continue
            if not facts.allows(p):
                eff = self._effective(facts, p)
                warnings.append(f"plan: node '{name}' cannot take {p} ({facts.why_not(p)}); it runs in {eff}")
        return warnings

    def _effective(self, facts: Any, req: str) -> str:
        eff = req
        if eff == "int8" and not facts.allows("int8"):
            eff = self.fallback
        if eff in FLOAT_TYPES and not facts.allows(eff):
            eff = "fp32"
        return eff

    def resolve(self, analysis: Analysis) -> Resolved:
        """Effective precision per node under the model's rules (unknown plan nodes raise)."""
        for name in self.nodes:
            analysis.node(name)
        precision: dict[str, str] = {}
        demoted: dict[str, tuple[str, str]] = {}
        float_low: dict[str, int] = {}
        int8: list[str] = []
        for facts in analysis.facts:
            if not (facts.candidate or facts.int8_candidate):
                continue
            req = self.requested(facts.name)
            eff = self._effective(facts, req)
            precision[facts.name] = eff
            if eff != req:
                # a rule's blocker is a demotion; int8 -> fallback on an op that is never quantized is not
                rule = (
                    req
                    if req in facts.blockers
                    else self.fallback
                    if (req == "int8" and self.fallback in facts.blockers)
                    else None
                )
                if rule is not None or facts.name in self.nodes:
                    demoted[facts.name] = (req, facts.why_not(rule or req))
            if eff == "int8":
                int8.append(facts.name)
            elif eff in FLOAT_TYPES:
                float_low[facts.name] = FLOAT_TYPES[eff]
        return Resolved(precision, demoted, float_low, int8)

    # ------------------------------------------------------------------ export
    def layer_precisions(self, analysis: Analysis) -> str:
        """Polygraphy / TensorRT <= 10 weak-typing flags: builder flags + ``--layer-precisions`` for the nodes the
        plan overrides or a rule demoted (the others are left to the builder)."""
        res = self.resolve(analysis)
        used = set(res.precision.values())
        flags = [f"--{p}" for p in ("fp16", "bf16", "int8") if p in used]
        if not flags:
            return ""
        entries = [
            f"{name}:{_TRT_NAMES[p]}" for name, p in res.precision.items() if name in self.nodes or name in res.demoted
        ]
        if not entries:  # nothing stays in higher precision: the builder flags alone say it
            return " ".join(flags)
        return " ".join(flags + ["--precision-constraints", "obey", "--layer-precisions", *entries])

    def to_json(self, analysis: Analysis | None = None) -> dict[str, Any]:
        """The plan file's document (with the resolved demotions when ``an`` is given, for the reader)."""
        doc: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "model": self.model,
            "default": self.default,
            "fallback": self.fallback,
            "nodes": dict(self.nodes),
        }
        if self.calibration:
            doc["calibration"] = self.calibration
        if analysis is not None:
            res = self.resolve(analysis)
            doc["demoted"] = {n: {"requested": r, "reason": why} for n, (r, why) in res.demoted.items()}
            doc["layer_precisions"] = self.layer_precisions(analysis)
        return doc

    def save(self, path: str | os.PathLike[str], analysis: Analysis | None = None) -> Path:
        """Write the plan (atomically)."""
        return atomic_write_json(path, self.to_json(analysis))

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], where: str = "plan") -> PrecisionPlan:
        """Parse a plan document (``format``/``version`` checked)."""
        if not isinstance(doc, Mapping) or doc.get("format") != FORMAT:
            raise TrtdbgError(
                f'{where} is not a trtdbg precision plan (no "format": "{FORMAT}"); '
                "write one with `trtdbg bisect` or see README 'Precision plans'"
            )
        if doc.get("version") != VERSION:
            raise TrtdbgError(f"{where} has plan version {doc.get('version')}; this trtdbg reads version {VERSION}")
        nodes = doc.get("nodes") or {}
        if not isinstance(nodes, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in nodes.items()
        ):
            raise TrtdbgError(f'{where}: "nodes" must map node names to precisions')
        try:
            return cls(
                default=str(doc.get("default", "fp32")),
                nodes=dict(nodes),
                fallback=str(doc.get("fallback", "fp32")),
                model=doc.get("model"),
                calibration=doc.get("calibration"),
            )
        except TrtdbgError as exc:
            raise TrtdbgError(f"{where}: {exc}") from None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PrecisionPlan:
        """Read a plan file; a relative ``calibration`` path is resolved beside it."""
        p = Path(path)
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TrtdbgError(f"plan file {p} does not exist") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TrtdbgError(f"cannot read plan {p}: {exc}; write plans with `trtdbg bisect`") from None
        plan = cls.from_json(doc, str(p))
        if plan.calibration and not os.path.isabs(plan.calibration):
            plan.calibration = str(p.parent / plan.calibration)
        return plan
