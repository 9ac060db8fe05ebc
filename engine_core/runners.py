"""Backend specs on the command line (``ort``, ``ort-cuda``, ``trt``, ``trt-rtx``, …) and the runners they make."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import onnx

from engine_core.backend.base import Runner
from engine_core.backend.ort import OrtRunner
from engine_core.errors import TrtdbgError
from engine_core.precision import runner as precision_runner

if TYPE_CHECKING:
    from engine_core.backend.trt.runner import TrtOptions

BACKENDS = {
    "ort": ("cpu", "ONNX Runtime, CPU, FP32"),
    "ort-cpu": ("cpu", "ONNX Runtime, CPU, FP32"),
    "ort-cuda": ("cuda", "ONNX Runtime, CUDA, FP32 (TF32 off)"),
    "ort-cuda:tf32": ("cuda", "ONNX Runtime, CUDA, FP32 with TF32 matrix products (ORT's own default)"),
}


def describe_backends() -> str:
    """One line listing the accepted specs."""
    from engine_core.backend.trt.spec import describe as describe_trt

    return ", ".join(
        [*(f"{k} ({v[1]})" for k, v in BACKENDS.items() if k != "ort-cpu"), describe_trt(), precision_runner.describe()]
    )


def is_tensorrt_spec(spec: str) -> bool:
    """True for the TensorRT specs (``trt``, ``trt-rtx``, with or without a suffix)."""
    return spec.strip().lower().partition(":")[0] in ("trt", "trt-rtx")


def make_runner(
    spec: str,
    model: onnx.ModelProto,
    model_path: str | os.PathLike[str] | None,
    *,
    observable: Sequence[str] = (),
    unobservable: Mapping[str, str] | None = None,
    opt_level: str = "all",
    trt_options: TrtOptions | None = None,
    plan: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
) -> Runner:
    """A runner for ``spec`` over ``model`` (weights may stay external: they are read from ``data_dir``, default
    beside ``model_path``; TensorRT reads them beside ``model_path`` only).

    ``trt_options`` (a :class:`~engine_core.backend.trt.runner.TrtOptions`) applies to ``trt*`` specs. A precision
    suffix (``ort:fp16``, ``ort-cuda:int8``) or a ``plan`` file runs the model that precision plan makes (``trt:fp16``
    builds from the rewrite the precision engine registers with the TensorRT specs).
    """
    key = spec.strip().lower()
    trt = is_tensorrt_spec(key)
    if plan is not None or (precision_runner.is_precision_spec(key) and not trt):

        def base(base_spec: str, built: onnx.ModelProto, level: str) -> Runner:
            return make_runner(
                base_spec,
                built,
                model_path,
                observable=observable,
                unobservable=unobservable,
                opt_level=level,
                trt_options=trt_options,
                data_dir=data_dir,
            )

        return precision_runner.make_precision_runner(
            key,
            model,
            model_path,
            plan_file=plan,
            make_base=base,
            observable=observable,
            unobservable=unobservable,
            data_dir=data_dir,
        )
    if trt:
        if data_dir is not None:
            raise TrtdbgError(f"{spec}: TensorRT reads external data beside the model file only, not from {data_dir}")
        from engine_core.backend.trt.spec import make_trt_runner

        return make_trt_runner(
            key, model, model_path, observable=observable, unobservable=unobservable, options=trt_options
        )
    if key not in BACKENDS:
        raise TrtdbgError(f"unknown backend '{spec}'; available: {describe_backends()}")
    provider, _ = BACKENDS[key]
    return OrtRunner(
        model,
        model_path,
        provider=provider,
        opt_level=opt_level,
        observable=observable,
        unobservable=unobservable,
        name=key if key != "ort-cpu" else "ort",
        allow_tf32=key.endswith(":tf32"),
        data_dir=data_dir,
    )
