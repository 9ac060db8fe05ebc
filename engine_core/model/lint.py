"""``check lint``: static findings about an ONNX model, one per line, each with a severity.

Checks: the ONNX checker (full), tensors produced twice, unnamed and duplicate node names, dead
nodes, unused inputs and initializers, tensors whose shape stays unknown after shape inference,
ops the selected backend cannot run (ONNX Runtime is asked by loading the model), and float weights
outside the FP16 range or so small that FP16 flushes them to zero (initializers and Constant nodes).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from engine_core.errors import TrtdbgError, first_line
from engine_core.fp16 import FP16_MAX, flushes_to_zero
from engine_core.model.index import ModelIndex
from engine_core.model.loader import check_runtime_support
from engine_core.safetext import printable_lines

SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    """One lint result."""

    severity: str
    check: str
    message: str
    node: str | None = None
    tensor: str | None = None

    def line(self) -> str:
        """``ERROR  checker: ... [node /x]``."""
        where = "".join(f" [{k} {v}]" for k, v in (("node", self.node), ("tensor", self.tensor)) if v)
        return f"{self.severity.upper():<7} {self.check}: {self.message}{where}"


@dataclass
class LintReport:
    """All findings for a model, errors first."""

    path: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when there is no error-level finding."""
        return not any(f.severity == "error" for f in self.findings)

    def counts(self) -> dict[str, int]:
        """Findings per severity."""
        c = Counter(f.severity for f in self.findings)
        return {s: c.get(s, 0) for s in SEVERITIES}

    def to_json(self) -> dict[str, Any]:
        """Stable keys: path, passed, summary{error, warning, info}, findings[{severity, check, message, node, tensor}]."""
        return {
            "path": self.path,
            "passed": self.passed,
            "summary": self.counts(),
            "findings": [f.__dict__ for f in self.findings],
        }

    def to_text(self) -> str:
        """One line per finding, then a summary line."""
        c = self.counts()
        lines = [f.line() for f in self.findings]
        lines.append(
            f"{'PASSED' if self.passed else 'FAILED'} | {self.path} | "
            f"{c['error']} error(s), {c['warning']} warning(s), {c['info']} note(s)"
        )
        return printable_lines(lines)


def lint_model(
    model: onnx.ModelProto,
    path: str,
    *,
    backend: str | None = "ort",
    max_per_check: int = 20,
    data_dir: str | None = None,
) -> LintReport:
    """Run every check on ``model`` (external data may stay unloaded: it is read, memory-mapped, from the files in
    ``data_dir``, default beside ``path``) and collect the findings; refused up front when the machine cannot hold
    the weights."""
    from engine_core.model.weights import estimate_memory, external_bytes, require_memory, structure_only

    require_memory(
        f"check lint of {path}",
        estimate_memory(model),
        "free memory, or lint parts of the model cut with `trtdbg surgeon extract`",
    )
    report = LintReport(path)
    add = report.findings.append
    try:
        # the checker reads a model with external data from its path (a protobuf of the weights would pass 2 GB), which
        # finds the data beside it only: with the data elsewhere it checks the structure (check_external_data, the
        # callers' first step, checked the files)
        beside = external_bytes(model) and data_dir is None
        onnx.checker.check_model(path if beside else structure_only(model), full_check=True)
    except Exception as exc:
        add(Finding("error", "checker", first_line(exc)))
    try:
        check_runtime_support(model, path, onnxruntime=False)
    except TrtdbgError as exc:
        add(Finding("error", "unsupported-op", str(exc)))
    index = ModelIndex(model, path, data_dir)
    _structure(index, model, report.findings, max_per_check)
    _shapes(index, report.findings, max_per_check)
    _fp16_range(index, model, report.findings, max_per_check)
    if backend == "ort":
        _ort_support(model, str(index.data_dir), report.findings)
    order = {s: i for i, s in enumerate(SEVERITIES)}
    report.findings.sort(key=lambda f: order[f.severity])
    return report


def _capped(items: list[Finding], limit: int, what: str) -> list[Finding]:
    """The first ``limit`` findings (all of one check), then one line that counts the rest of ``what``."""
    if len(items) <= limit:
        return items
    first = items[0]
    return items[:limit] + [Finding(first.severity, first.check, f"... and {len(items) - limit} more {what}")]


def _structure(index: ModelIndex, model: onnx.ModelProto, out: list[Finding], cap: int) -> None:
    graph = model.graph
    unnamed = [n for n in index.nodes(top_level_only=True) if n.name_synthesized]
    if unnamed:  # a warning: reported after the errors below all the same
        out.append(
            Finding(
                "warning",
                "unnamed-node",
                f"{len(unnamed)} node(s) have no name (shown as {unnamed[0].name}, ...); "
                "errors and plans can only point at them by position",
            )
        )
    repeated = (  # severity, check, message, what the finding points at, counts, what they are
        (
            "error",
            "duplicate-tensor",
            "tensor is produced by {k} nodes",
            "tensor",
            Counter(o for n in graph.node for o in n.output if o),
            "tensors",
        ),
        (
            "warning",
            "duplicate-node-name",
            "{k} nodes share this name",
            "node",
            Counter(n.name for n in graph.node if n.name),
            "names",
        ),
    )
    for severity, check, message, where, counts, what in repeated:
        found = [Finding(severity, check, message.format(k=k), **{where: name}) for name, k in counts.items() if k > 1]
        out += _capped(found, cap, what)
    used = {i for n in index.nodes() for i in n.inputs if i} | set(index.outputs)
    dead = [n for n in index.nodes(top_level_only=True) if n.outputs and not any(o in used for o in n.outputs if o)]
    out += _capped(
        [Finding("warning", "dead-node", "no output of this node is used", node=n.name) for n in dead],
        cap,
        "dead nodes",
    )
    for severity, check, message, tensors, what in (
        ("warning", "unused-input", "graph input is not used by any node", index.inputs, "inputs"),
        ("info", "unused-initializer", "initializer is not used by any node", index.initializer_names, "initializers"),
    ):
        out += _capped([Finding(severity, check, message, tensor=t) for t in tensors if t not in used], cap, what)


def _shapes(index: ModelIndex, out: list[Finding], cap: int) -> None:
    unknown = [t for t in index.markable() if (meta := index.tensor_meta(t)) is None or meta.shape is None]
    if index.shape_inference_error:
        out.append(Finding("warning", "shape-inference", index.shape_inference_error))
    if unknown:
        out.append(
            Finding(
                "info",
                "missing-shape",
                f"{len(unknown)} tensor(s) have no known shape after shape inference (first: {unknown[0]}); "
                "`trtdbg surgeon sanitize --override-input-shapes` can fix many",
            )
        )


def _fp16_range(index: ModelIndex, model: onnx.ModelProto, out: list[Finding], cap: int) -> None:
    found: list[Finding] = []
    for name in index.initializer_names:
        st = index.initializer_stats(name)
        if st.fp16_overflow:
            found.append(
                Finding(
                    "warning",
                    "fp16-overflow",
                    f"{st.fp16_overflow} value(s) beyond ±65504 (max |x| "
                    f"{max(abs(st.min or 0), abs(st.max or 0)):.4g}): inf in FP16; keep its consumers in FP32",
                    tensor=name,
                )
            )
        if st.fp16_underflow:
            found.append(
                Finding(
                    "info",
                    "fp16-underflow",
                    f"{st.fp16_underflow} nonzero value(s) of at most 3e-8 (2^-25) become 0 in FP16",
                    tensor=name,
                )
            )
    for info in index.nodes(top_level_only=True):
        if info.op_type != "Constant":
            continue
        for attr in index.node_proto(info.index).attribute:
            if attr.name != "value":
                continue
            arr = numpy_helper.to_array(attr.t)
            if arr.dtype.kind != "f" or arr.size == 0:
                continue
            mag = np.abs(arr[np.isfinite(arr)])
            over = int(np.count_nonzero(mag > FP16_MAX))
            tiny = mag[flushes_to_zero(mag)]
            if over:
                found.append(
                    Finding("warning", "fp16-overflow", f"{over} constant value(s) beyond ±65504", node=info.name)
                )
            if tiny.size and arr.size <= 4:
                found.append(
                    Finding(
                        "warning",
                        "fp16-underflow",
                        f"constant {float(tiny.min()):.3g} becomes 0 in FP16 "
                        "(an epsilon?): keep this node and its consumer in FP32",
                        node=info.name,
                    )
                )
            elif tiny.size:
                found.append(
                    Finding(
                        "info",
                        "fp16-underflow",
                        f"{tiny.size} of {arr.size} weights (denormal-size, e.g. "
                        f"{float(tiny.min()):.3g}) become 0 in FP16; usually harmless",
                        node=info.name,
                    )
                )
    out += _capped(found, cap, "fp16 range findings")


def _ort_support(model: onnx.ModelProto, base: str, out: list[Finding]) -> None:
    """Whether ONNX Runtime CPU loads ``model`` (external data read from ``base``)."""
    from engine_core.model.loader import ort_cpu_session

    try:
        ort_cpu_session(model, base=base)
    except Exception as exc:
        text = " ".join(str(exc).split())
        out.append(Finding("error", "ort-load", f"ONNX Runtime (CPU) cannot load the model: {text[:300]}"))
