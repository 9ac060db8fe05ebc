"""``trtdbg convert``: a model plus a precision (or plan) → the rewritten ONNX, or a TensorRT engine built from it.

The ONNX is what strongly typed TensorRT (11.x, TensorRT-RTX, 10.x by default) deploys: real FP16/BF16 types
(:mod:`engine_core.precision.rewrite`) and Q/DQ for INT8 nodes (:mod:`engine_core.precision.int8`, calibrated on the
given data, the plan's saved ranges or a TensorRT calibration cache). ``.plan`` outputs are built from that ONNX with
:func:`engine_core.backend.trt.build.build_engine` (no engine cache: the output file is the engine).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine_core.errors import TrtdbgError
from engine_core.safetext import printable_lines

ONNX_SUFFIXES = (".onnx",)
ENGINE_SUFFIXES = (".plan", ".engine", ".trt")
_FIX = "free memory, or cut the model with `trtdbg surgeon extract` and convert the parts"


@dataclass(frozen=True)
class Rewrite:
    """What a model is rewritten to: a whole-model ``precision`` or a ``plan_file`` from bisect, the precision of
    nodes that cannot be INT8 (``fallback``), and a TensorRT ``calibration_cache`` for the INT8 scales."""

    precision: str | None = None
    plan_file: str | None = None
    fallback: str = "fp32"
    calibration_cache: str | None = None

    def __post_init__(self) -> None:
        """Refuse what only INT8 uses when the whole model goes to another precision (it would be ignored)."""
        target = None if self.plan_file else (self.precision or "fp32")
        if target in (None, "int8"):
            return
        if self.fallback != "fp32":
            raise TrtdbgError(
                f"--fallback {self.fallback} is the precision of nodes that cannot be INT8; with --precision "
                f"{target} nodes that cannot take it stay fp32 — leave --fallback out"
            )
        if self.calibration_cache:
            raise TrtdbgError(
                f"--calibration-cache holds INT8 scales; --precision {target} has no INT8 node — use "
                "--precision int8, or leave it out"
            )

    @property
    def label(self) -> str:
        """``fp16``, ``plan NAME.json``, ... (``fp32`` when nothing is asked for)."""
        return f"plan {os.path.basename(self.plan_file)}" if self.plan_file else (self.precision or "fp32")


@dataclass
class ConvertResult:
    """What :func:`convert` wrote."""

    output: str
    kind: str
    """``onnx`` or ``engine``."""
    precision: dict[str, int]
    """Nodes per effective precision (``fp32``, ``fp16``, ``bf16``, ``int8``)."""
    demoted: dict[str, tuple[str, str]]
    """``{node: (requested, reason)}`` where a rule kept a node in higher precision."""
    bytes: int
    seconds: float
    engine: dict[str, Any] = field(default_factory=dict)
    """For engines: TensorRT module, version, build seconds, notes."""
    warnings: list[str] = field(default_factory=list)
    coverage: Any = None
    """:class:`~engine_core.precision.coverage.Coverage` of the rewrite."""

    def to_json(self) -> dict[str, Any]:
        """Stable JSON document."""
        return {
            "output": self.output,
            "kind": self.kind,
            "precision": dict(self.precision),
            "demoted": {n: {"requested": r, "reason": why} for n, (r, why) in self.demoted.items()},
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "engine": dict(self.engine),
            "warnings": list(self.warnings),
            "precision_coverage": self.coverage.to_json() if self.coverage else None,
        }

    def to_text(self) -> str:
        """A few human lines."""
        counts = ", ".join(f"{n} {p}" for p, n in self.precision.items() if n) or "no float nodes"
        lines = [
            f"[I] Wrote {self.kind} {self.output} ({self.bytes} bytes, {self.seconds:.2f}s)",
            f"[I] Nodes by precision: {counts}",
        ]
        if self.coverage:
            lines.append(f"[I] {self.coverage.text()}")
        if self.demoted:
            first = next(iter(self.demoted.items()))
            lines.append(
                f"[I] {len(self.demoted)} node(s) kept in higher precision by rules, e.g. '{first[0]}': {first[1][1]}"
            )
        if self.engine:
            lines.append(f"[I] Engine: {self.engine.get('module_label')}, built in {self.engine.get('build_seconds')}s")
            lines += [f"[W] {n}" for n in self.engine.get("notes", [])]
        return printable_lines(lines)


def output_kind(path: str) -> str:
    """``onnx`` or ``engine`` from the output's suffix; raises for anything else."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix in ONNX_SUFFIXES:
        return "onnx"
    if suffix in ENGINE_SUFFIXES:
        return "engine"
    raise TrtdbgError(f"output {path} must end in .onnx (rewritten model) or .plan/.engine (TensorRT engine)")


def convert(
    model_path: str,
    output: str,
    rewrite: Rewrite,
    *,
    feeds: Callable[[], Sequence[Mapping[str, np.ndarray]]] | None = None,
    trt_options: Any = None,
    shapes: Mapping[str, tuple[int, ...]] | None = None,
    on_warning: Callable[[str], None] | None = None,
    data_dir: str | None = None,
) -> ConvertResult:
    """Rewrite ``model_path`` as ``rewrite`` says and write ``output``.

    ``feeds()`` supplies INT8 calibration inputs when neither the plan's ranges nor the calibration cache give them.
    ``trt_options`` is a :class:`~engine_core.backend.trt.runner.TrtOptions` (engines only); ``shapes`` fixes the
    profile of dynamic inputs when it has no explicit profile. ``data_dir``: the folder of the model's external data
    (default: beside ``model_path``; ONNX outputs only, TensorRT reads it beside the model).
    """
    from engine_core.model.save import save_rewritten
    from engine_core.workspace import atomic_write_bytes

    kind = output_kind(output)
    start = time.perf_counter()
    warnings: list[str] = []

    def warn(msg: str) -> None:
        warnings.append(msg)
        if on_warning is not None:
            on_warning(msg)

    if not os.path.isfile(model_path):
        raise TrtdbgError(f"model {model_path} does not exist")
    if os.path.exists(output) and os.path.samefile(output, model_path):
        raise TrtdbgError(f"output {output} is the input model; choose another path (inputs are never modified)")
    if kind == "engine" and data_dir is not None:
        raise TrtdbgError(
            f"{output}: TensorRT reads external data beside the model file only, not from {data_dir}; put the data "
            "files next to the model, or write an .onnx"
        )
    built, res = rewritten_model(
        model_path,
        rewrite,
        feeds=feeds,
        on_warning=warn,
        session=kind == "onnx",
        engine=kind == "engine",
        data_dir=data_dir,
    )
    counts = {p: 0 for p in ("fp32", "fp16", "bf16", "int8")}
    for p in res.precision.values():
        counts[p] += 1
    engine: dict[str, Any] = {}
    if kind == "onnx":
        written = save_rewritten(built, output, data_dir or os.path.dirname(os.path.abspath(model_path)), model_path)
        size = sum(p.stat().st_size for p in written)
    else:
        data, engine = _build(built, model_path, trt_options, shapes or {}, rewrite.label)
        atomic_write_bytes(output, data)
        size = len(data)
    return ConvertResult(
        output, kind, counts, res.demoted, size, time.perf_counter() - start, engine, warnings, res.coverage
    )


def rewritten_model(
    model_path: str,
    rewrite: Rewrite,
    *,
    feeds: Callable[[], Sequence[Mapping[str, np.ndarray]]] | None = None,
    on_warning: Callable[[str], None] | None = None,
    session: bool = False,
    engine: bool = False,
    data_dir: str | None = None,
) -> tuple[Any, Any]:
    """``(model, Resolved)``: ``model_path`` with ``rewrite`` applied, validated
    (``session``: also loaded by ONNX Runtime CPU, skipped for BF16, which it cannot run). Refused up front when
    the machine cannot hold the rewrite (``engine``: and a TensorRT build of it, whose parser copies the weights).
    ``data_dir``: the folder of the model's external data (default: beside ``model_path``)."""
    from engine_core.model.loader import check_external_data, load_model
    from engine_core.model.weights import estimate_memory, require_memory
    from engine_core.precision.build import PlanBuilder
    from engine_core.precision.coverage import coverage
    from engine_core.precision.opset import analyse
    from engine_core.precision.plan import PrecisionPlan
    from engine_core.precision.rewrite import validate

    def warn(msg: str) -> None:
        if on_warning is not None:
            on_warning(msg)

    precision, plan_file, calibration_cache = rewrite.precision, rewrite.plan_file, rewrite.calibration_cache
    if precision and plan_file:
        raise TrtdbgError("give either --precision or --plan, not both")
    if not os.path.isfile(model_path):
        raise TrtdbgError(f"model {model_path} does not exist")
    model = load_model(model_path, load_external_data=False)
    check_external_data(model, model_path, data_dir)
    plan = PrecisionPlan.load(plan_file) if plan_file else PrecisionPlan(precision or "fp32", fallback=rewrite.fallback)
    need = estimate_memory(model, plan.precisions(), copies=int(engine))
    require_memory(f"{'a TensorRT build' if engine else 'the rewrite'} of {model_path}", need, _FIX)
    model, analysis, notes = analyse(model, model_path, plan.precisions(), data_dir)
    with tempfile.TemporaryDirectory(prefix="trtdbg-convert-") as tmp:
        builder = PlanBuilder(model, model_path, tmp, analysis)
        for w in plan.check(builder.analysis):
            warn(w)
        res = plan.resolve(builder.analysis)
        cov = coverage(analysis, res, plan, notes)
        if cov.warning():
            warn(cov.warning() or "")
        if res.int8:
            if calibration_cache:
                builder.import_cache(calibration_cache)
                _, missing = builder.quantizable(res.int8)
                if missing:
                    warn(f"{len(missing)} INT8 node(s) have no scale in {calibration_cache} (e.g. '{missing[0]}')")
            elif plan.calibration:
                builder.use_ranges(plan.calibration)
            elif feeds is not None:
                builder.calibrate(list(feeds()))
            else:
                raise TrtdbgError("INT8 needs calibration: give input data, --calibration-cache, or a plan with ranges")
            for w in builder.warnings:
                warn(w)
        built, res = builder.build(plan, emulated=False)
        res.coverage = cov
    validate(
        built,
        "converted model",
        session=session and "bf16" not in res.precision.values(),
        base=data_dir or os.path.dirname(os.path.abspath(model_path)),
    )
    return built, res


def build_plan(
    model: Any,
    model_path: str,
    trt_options: Any,
    shapes: Mapping[str, tuple[int, ...]],
    label: str,
    timing_cache: str | None = None,
) -> Any:
    """:class:`~engine_core.backend.trt.build.CachedEngine` of ``model`` (parsed afresh, new builder, no engine cache);
    ``timing_cache`` overrides the options' file."""
    from engine_core.backend.trt.build import BuildOptions, build_engine, dynamic_inputs, model_digest, parse_onnx
    from engine_core.backend.trt.flavour import load_flavour
    from engine_core.backend.trt.runner import TrtOptions

    o = trt_options or TrtOptions()
    flavour = load_flavour(o.module)
    parsed = parse_onnx(flavour, model, Path(model_path))
    profiles = o.profiles
    dyn = dynamic_inputs(parsed)
    if dyn and not profiles:
        missing = [n for n in dyn if n not in shapes]
        if missing:
            raise TrtdbgError(
                f"input '{missing[0]}' has a dynamic shape {dyn[missing[0]]}; give its shape with "
                f"--shapes {missing[0]}:1x... (or --trt-min/opt/max-shapes)"
            )
        profiles = BuildOptions.make_profiles([{n: (shapes[n], shapes[n], shapes[n]) for n in dyn}])
    options = BuildOptions(
        profiles=profiles,
        pool_limit=o.pool_limit,
        opt_level=o.opt_level,
        tf32=o.tf32,
        precision=label,
        timing_cache=timing_cache or o.timing_cache,
    )
    return build_engine(parsed, options, digest=model_digest(model), cache=None, where=os.path.basename(model_path))


def _build(
    model: Any, model_path: str, trt_options: Any, shapes: Mapping[str, tuple[int, ...]], label: str
) -> tuple[bytes, dict[str, Any]]:
    """Serialized engine of the converted ``model`` and a summary of the build."""
    built = build_plan(model, model_path, trt_options, shapes, label)
    return built.plan, {
        "module": built.meta["module"],
        "version": built.meta["version"],
        "module_label": _label(built.meta),
        "build_seconds": built.meta.get("build_seconds"),
        "notes": built.meta.get("notes", []),
    }


def _label(meta: Mapping[str, Any]) -> str:
    from engine_core.backend.trt.flavour import MODULES

    return f"{MODULES.get(meta['module'], meta['module'])} {meta['version']}"
