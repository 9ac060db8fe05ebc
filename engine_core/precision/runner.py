"""Subjects with a precision: ``ort:fp16``, ``ort:bf16``, ``ort:int8``, ``ort-cuda:fp16`` …, or any backend with a
plan file (``--plan``).

On ONNX Runtime CPU the FP16/BF16 part is emulated (storage rounding on the FP32 model, see
:mod:`engine_core.precision.emulate`); every other backend runs the rewritten model with real types. INT8 nodes get
Q/DQ calibrated on the compare's own inputs (or the plan's saved ranges). The original model's tensor names keep
their meaning, so a compare requests the same names from this runner as from the reference.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import onnx

from engine_core.backend.base import Runner
from engine_core.backend.trt.spec import register_precision_rewriter
from engine_core.errors import TrtdbgError
from engine_core.precision.plan import PrecisionPlan
from engine_core.precision.rewrite import ORT_OPT_LEVEL
from engine_core.types import TensorMeta

PRECISION_SUFFIXES = ("fp16", "bf16", "int8")
CPU_SPECS = ("ort", "ort-cpu")


def _trt_rewrite(
    model: onnx.ModelProto, model_path: str | os.PathLike[str] | None, precision: str
) -> tuple[onnx.ModelProto, str]:
    """The ONNX that ``trt:fp16``/``trt:bf16`` build strongly typed: the whole model in ``precision`` (rules apply)."""
    from engine_core.precision.coverage import coverage
    from engine_core.precision.opset import analyse
    from engine_core.precision.rewrite import rewrite

    if precision == "int8":
        raise TrtdbgError(
            "strongly typed INT8 needs Q/DQ calibrated on data: make a plan with `trtdbg bisect "
            "--precision int8` and pass it with --plan FILE to a trt subject (or use --weak-typing on "
            "TensorRT 10)"
        )
    plan = PrecisionPlan(precision)
    _, analysis, notes = analyse(model, model_path, [precision])
    res = plan.resolve(analysis)
    label = f"{precision} (ONNX rewrite; {coverage(analysis, res, plan, notes).text()})"
    return rewrite(analysis, res.float_low), label


register_precision_rewriter(_trt_rewrite)


def describe() -> str:
    """The precision specs, for the list of accepted backends."""
    return (
        "ort:fp16|bf16|int8 (CPU; FP16/BF16 storage rounding emulated, INT8 as Q/DQ), "
        "ort-cuda:fp16|bf16|int8 (real types), or any backend with --plan FILE"
    )


def is_precision_spec(key: str) -> bool:
    """True for ``base:fp16`` style specs."""
    return key.partition(":")[2] in PRECISION_SUFFIXES


class PrecisionRunner(Runner):
    """Runs the model a precision plan makes, on a base backend (built at activation).

    The model is upgraded to a newer opset where that makes more nodes legal in the plan's precisions
    (:mod:`engine_core.precision.opset`); with ``cuda`` (``ort-cuda`` bases) nodes whose low-precision type has no
    CUDA kernel stay FP32. :attr:`coverage` says what really runs in low precision."""

    def __init__(
        self,
        name: str,
        model: onnx.ModelProto,
        model_path: str | os.PathLike[str] | None,
        plan: PrecisionPlan,
        *,
        emulated: bool,
        make_base: Callable[[onnx.ModelProto], Runner],
        cuda: bool = False,
        observable: Sequence[str] = (),
        unobservable: Mapping[str, str] | None = None,
        data_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        """``data_dir``: the folder of the model's external data (default: beside ``model_path``)."""
        from engine_core.backend.ort import OrtRunner
        from engine_core.precision.coverage import coverage
        from engine_core.precision.opset import analyse

        self.name = name
        self.stage_label = name
        self.model_path = model_path
        self.plan = plan
        self.emulated = emulated
        self._make_base = make_base
        self._observable = list(observable)
        self._unobservable = dict(unobservable or {})
        self.model, self.analysis, notes = analyse(model, model_path, plan.precisions(), data_dir)
        if cuda:
            import onnxruntime

            from engine_core.precision.cuda_kernels import keep_without_kernel, session_probe

            keep_without_kernel(self.analysis, plan.precisions(), session_probe(), "CUDA", onnxruntime.__version__)
        self.warnings = plan.check(self.analysis)
        resolved = plan.resolve(self.analysis)
        self.needs_int8 = bool(resolved.int8)
        self.coverage = coverage(self.analysis, resolved, plan, notes)
        """What the subject really runs in low precision (``precision_coverage``)."""
        low = self.coverage.warning()
        if low:
            self.warnings.append(low)
        self._metas = OrtRunner(model, model_path, data_dir=data_dir).input_metadata()
        self._outputs = [o.name for o in model.graph.output]
        self._feeds: list[dict[str, np.ndarray]] | None = None
        self._inner: Runner | None = None
        self._exposed: list[str] = []
        self._workdir: str | None = None

    def set_calibration(self, feeds: Sequence[Mapping[str, np.ndarray]]) -> None:
        """Inputs to calibrate INT8 nodes on (used when the plan has no saved ranges)."""
        self._feeds = [dict(f) for f in feeds]

    def activate(self) -> None:
        if self._inner is not None:
            return
        from engine_core.precision.build import PlanBuilder

        self._workdir = tempfile.mkdtemp(prefix="trtdbg-precision-")
        builder = PlanBuilder(self.model, self.model_path, self._workdir, self.analysis)
        if self.needs_int8:
            if self.plan.calibration:
                builder.use_ranges(self.plan.calibration)
            elif self._feeds:
                self.report_stage("calibrating INT8 ranges", len(self._feeds), None, "samples")
                builder.calibrate(self._feeds)
            else:
                raise TrtdbgError(
                    f"{self.name}: INT8 needs calibration data; give input data (--load-inputs, "
                    "--data-loader-script or random) or a plan with saved ranges"
                )
        self.report_stage("rewriting the model", len(self.model.graph.node), None, "nodes")
        built, _ = builder.build(self.plan, emulated=self.emulated)
        self._inner = self._make_base(built)
        self._inner.on_stage, self._inner.stage_label = self.on_stage, self.stage_label
        self._inner.activate()
        self._inner.expose(self._exposed)

    def deactivate(self) -> None:
        if self._inner is not None:
            self._inner.deactivate()
            self._inner = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def expose(self, names: Sequence[str]) -> None:
        """Exposed by the base runner (the rewrite keeps tensor names)."""
        self._exposed = list(names)
        if self._inner is not None:
            self._inner.expose(self._exposed)

    def input_metadata(self) -> list[TensorMeta]:
        return list(self._metas)

    def output_names(self) -> list[str]:
        return list(self._outputs)

    def infer(self, feed: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        self.activate()
        assert self._inner is not None
        try:
            return self._inner.infer(feed, outputs)
        except TrtdbgError as exc:  # the backend names the original file; what failed is the rewrite of it
            raise TrtdbgError(f"{self.stage_label}, the model rewritten for this subject: {exc}") from exc


def make_precision_runner(
    key: str,
    model: onnx.ModelProto,
    model_path: str | os.PathLike[str] | None,
    *,
    plan_file: str | None,
    make_base: Callable[[str, onnx.ModelProto, str], Runner],
    observable: Sequence[str] = (),
    unobservable: Mapping[str, str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
) -> Runner:
    """A :class:`PrecisionRunner` for ``key`` (``ort:fp16``…) or a base spec with ``plan_file``; ``make_base(spec,
    model, opt_level)`` makes the runner of the built model (ONNX Runtime at :data:`ORT_OPT_LEVEL`); ``data_dir``:
    the folder of the model's external data (default: beside ``model_path``)."""
    base, _, suffix = key.partition(":")
    if suffix in PRECISION_SUFFIXES:
        if plan_file:
            raise TrtdbgError(f"give either a precision in the spec ('{key}') or --plan {plan_file}, not both")
        plan = PrecisionPlan(suffix)
        name = key
    else:
        if not plan_file:
            raise TrtdbgError(f"'{key}' has no precision; use {base}:fp16, {base}:bf16, {base}:int8 or --plan FILE")
        plan = PrecisionPlan.load(plan_file)
        name = f"{key} (plan {os.path.basename(plan_file)})"
        base = key
    emulated = base in CPU_SPECS
    runner = PrecisionRunner(
        name,
        model,
        model_path,
        plan,
        emulated=emulated,
        make_base=lambda built: make_base(base, built, ORT_OPT_LEVEL),
        cuda=base.startswith("ort-cuda"),
        observable=observable,
        unobservable=unobservable,
        data_dir=data_dir,
    )
    if emulated and runner.plan.resolve(runner.analysis).float_low:
        runner.name += " (FP16/BF16 storage rounding emulated)"
    return runner
