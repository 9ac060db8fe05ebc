"""TensorRT backend specs: ``trt``, ``trt:fp16``, ``trt:int8``, ``trt-rtx``, ``trt-rtx:fp16``, …

``trt`` imports ``tensorrt`` (else ``tensorrt_rtx``); ``trt-rtx`` imports ``tensorrt_rtx`` only. The
suffix is the precision. Strongly typed builds (the default, and the only kind on TensorRT 11 and
TensorRT-RTX) take the precision from the ONNX: ``fp32`` runs the model as it is, other precisions
need the model rewritten by the precision plan (or a reduced-precision model given directly with
``--subject-model M --subject-backend trt``). With ``--weak-typing`` (TensorRT 10 only) the suffix
sets builder flags instead (``fp16`` → ``BuilderFlag.FP16``; ``int8`` → INT8 with calibration).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import onnx

from engine_core.backend.trt.runner import TrtOptions, TrtRunner
from engine_core.errors import TrtdbgError

FAMILIES = {"trt": "auto", "trt-rtx": "tensorrt_rtx"}
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
DESCRIPTIONS = {
    "trt": "TensorRT 10/11 (else TensorRT-RTX), strongly typed, FP32",
    "trt:fp16": "TensorRT, the ONNX rewritten to FP16 by the precision plan (or --weak-typing on TensorRT 10)",
    "trt:int8": "TensorRT, Q/DQ ONNX from the precision plan (or --weak-typing --int8 calibration on TensorRT 10)",
    "trt-rtx[:fp16]": "TensorRT-RTX (RTX GPUs only)",
}

PrecisionRewriter = Callable[[onnx.ModelProto, "str | os.PathLike[str] | None", str], tuple[onnx.ModelProto, str]]
"""``(model, model_path, precision) → (rewritten model, plan label)``; registered by the precision engine."""

_rewriter: PrecisionRewriter | None = None


def register_precision_rewriter(fn: PrecisionRewriter) -> None:
    """Let the precision engine supply the ONNX rewrite used by ``trt:fp16``/``bf16``/``int8``."""
    global _rewriter
    _rewriter = fn


def is_trt_spec(spec: str) -> bool:
    """True for ``trt``, ``trt-rtx`` and their ``:precision`` forms."""
    return spec.strip().lower().partition(":")[0] in FAMILIES


def describe() -> str:
    """One line listing the TensorRT specs."""
    return ", ".join(f"{k} ({v})" for k, v in DESCRIPTIONS.items())


def make_trt_runner(
    spec: str,
    model: onnx.ModelProto,
    model_path: str | os.PathLike[str] | None,
    *,
    observable: Sequence[str] = (),
    unobservable: Mapping[str, str] | None = None,
    options: TrtOptions | None = None,
) -> TrtRunner:
    """A :class:`TrtRunner` for ``spec``; precision handled as the module docstring says."""
    key = spec.strip().lower()
    family, colon, precision = key.partition(":")
    precision = precision or ("" if colon else "fp32")
    if family not in FAMILIES or precision not in PRECISIONS:
        raise TrtdbgError(
            f"unknown TensorRT backend '{spec}'; use trt or trt-rtx with an optional :fp16, :bf16 or :int8 suffix"
        )
    opts = options or TrtOptions()
    if family == "trt-rtx":
        if opts.module not in ("auto", "tensorrt_rtx"):
            raise TrtdbgError(f"backend {spec} uses tensorrt_rtx but --trt-module says {opts.module}")
        opts = replace(opts, module="tensorrt_rtx")
    weak = dict(opts.weak)
    if precision != "fp32" and opts.weak:
        if precision not in weak:
            opts = replace(opts, weak=tuple(sorted({**weak, precision: "1"}.items())))
        opts = replace(opts, precision=f"{precision} (weak typing)")
        if "calibration_cache" in weak and precision != "int8":
            raise TrtdbgError(
                f"--calibration-cache is for INT8 calibration; use {family}:int8 with --weak-typing, or "
                "the precision plan (which imports the cache into Q/DQ scales) for strong typing"
            )
    elif opts.weak and "calibration_cache" in weak:
        raise TrtdbgError(f"--calibration-cache is for INT8 calibration; use {family}:int8 with --weak-typing")
    elif precision != "fp32":
        if _rewriter is None:
            raise TrtdbgError(
                f"{spec} builds strongly typed from a {precision.upper()} ONNX, and the precision-plan rewriter is not "
                f"available in this build; give a {precision.upper()} model with --subject-model M --subject-backend "
                f"{family}, or on TensorRT 10 add --weak-typing"
            )
        model, label = _rewriter(model, model_path, precision)
        opts = replace(opts, precision=label)
    return TrtRunner(model, model_path, opts, observable=observable, unobservable=unobservable, name=key)
