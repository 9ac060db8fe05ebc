"""Models for plans: the real rewritten model (GPU subjects, ``--check`` commands) or the CPU emulation, with Q/DQ
for INT8 nodes.

:class:`PlanBuilder` analyses the model once; each :meth:`PlanBuilder.build` resolves a plan, quantizes its INT8
nodes (ONNX Runtime QDQ with fixed calibration ranges), then applies FP16/BF16 to the float part. Node and tensor
names of the original model keep their meaning in every built model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx

from engine_core.errors import TrtdbgError
from engine_core.model.save import save_rewritten
from engine_core.precision.calib_cache import match_cache, ranges_from_scales, read_trt_cache
from engine_core.precision.emulate import emulate
from engine_core.precision.int8 import Quantizer, feeds_digest, write_ranges
from engine_core.precision.plan import PrecisionPlan, Resolved
from engine_core.precision.rewrite import rewrite
from engine_core.precision.rules import Analysis


class PlanBuilder:
    """Builds the subject model of any plan over one model; INT8 needs :meth:`calibrate` or :meth:`import_cache`."""

    def __init__(
        self,
        model: onnx.ModelProto,
        path: str | os.PathLike[str] | None,
        workdir: str | os.PathLike[str],
        analysis: Analysis | None = None,
    ) -> None:
        self.model = model
        self.path = Path(path) if path is not None else None
        self.workdir = Path(workdir)
        self.analysis = analysis or Analysis(model, path)
        self.data_dir = self.analysis.index.data_dir
        """The folder the model's external data references are relative to."""
        self.quantizer: Quantizer | None = None
        self.warnings: list[str] = []
        self._normalized_model: onnx.ModelProto | None = None

    # ------------------------------------------------------------------ INT8 calibration
    def _normalized(self) -> onnx.ModelProto:
        """The model with sorted, uniquely named nodes (what :meth:`_model_file` holds), weights in their own files."""
        if self._normalized_model is None:
            self._normalized_model = rewrite(self.analysis, {})
        return self._normalized_model

    def _model_file(self) -> Path:
        """The model with sorted, uniquely named nodes as a file (ONNX Runtime's quantizer reads files); external
        weights stay external (each data file copied beside it once, see ``save_model(reuse="copy")``)."""
        target = self.workdir / "normalized.onnx"
        if not target.exists():
            save_rewritten(self._normalized(), target, self.data_dir, self.path or "", reuse="copy")
        return target

    def calibrate(self, feeds: Sequence[Mapping[str, np.ndarray]]) -> Path:
        """MinMax ranges of the quantizable tensors on ``feeds`` (cached in the workdir by content)."""
        ranges = self.workdir / f"ranges-{feeds_digest(feeds)[:16]}.json"
        self.quantizer = Quantizer.calibrate(self._model_file(), feeds, ranges, self._normalized(), self.data_dir)
        return ranges

    def import_cache(self, cache: str | os.PathLike[str]) -> Path:
        """Ranges from a TensorRT calibration cache (entries for unknown tensors are ignored with a warning)."""
        _, scales = read_trt_cache(cache)
        hits, warnings = match_cache(scales, self.analysis.types, str(cache), str(self.path or "the model"))
        self.warnings.extend(warnings)
        ranges = write_ranges(self.workdir / "ranges-trt-cache.json", ranges_from_scales(hits))
        self.quantizer = Quantizer(self._model_file(), ranges, self._normalized(), self.data_dir)
        return ranges

    def use_ranges(self, ranges: str | os.PathLike[str]) -> None:
        """Reuse ranges written earlier (a plan's ``calibration``)."""
        self.quantizer = Quantizer(self._model_file(), ranges, self._normalized(), self.data_dir)

    def quantizable(self, nodes: Sequence[str]) -> tuple[list[str], list[str]]:
        """``(nodes with a range for every float activation input, the others)``."""
        if self.quantizer is None:
            return [], list(nodes)
        known = self.quantizer.ranges()
        analysis = self.analysis
        ok: list[str] = []
        missing: list[str] = []
        for name in nodes:
            proto = analysis.protos[analysis.pos[name]]
            acts = [
                x
                for x in proto.input
                if x and x not in analysis.initializers and analysis.types.get(x) == onnx.TensorProto.FLOAT
            ]
            (ok if all(x in known for x in acts) else missing).append(name)
        return ok, missing

    # ------------------------------------------------------------------ building
    def build(self, plan: PrecisionPlan, *, emulated: bool) -> tuple[onnx.ModelProto, Resolved]:
        """The model for ``plan``: real low-precision types, or (``emulated``) FP32 with storage rounding."""
        res = plan.resolve(self.analysis)
        analysis = self.analysis
        if res.int8:
            if self.quantizer is None:
                raise TrtdbgError(
                    "the plan puts nodes in INT8 but no calibration ranges were given; use input data "
                    "for calibration or --calibration-cache"
                )
            analysis = Analysis(self.quantizer.quantize(res.int8))
        low = {n: t for n, t in res.float_low.items() if n in analysis.pos}
        return (emulate(analysis, low) if emulated else rewrite(analysis, low)), res
