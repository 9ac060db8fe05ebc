"""Check that an edited model computes what the original computes: same outputs on the same feeds."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from engine_core.backend.ort import OrtRunner

EQUAL_RTOL = 1e-5
EQUAL_ATOL = 1e-6


@dataclass(frozen=True)
class OutputDiff:
    """How one output of the edited model differs from the original over all feeds."""

    name: str
    max_abs: float
    equal: bool
    reason: str = ""


def compare_models(
    original: onnx.ModelProto,
    original_path: str | os.PathLike[str] | None,
    edited: onnx.ModelProto,
    feeds: Sequence[Mapping[str, np.ndarray]],
    *,
    names: Sequence[str] | None = None,
    rtol: float = EQUAL_RTOL,
    atol: float = EQUAL_ATOL,
) -> list[OutputDiff]:
    """Run both models in ONNX Runtime CPU (no graph optimizations) and compare ``names`` (default: the edited
    model's outputs) on every feed; NaN equals NaN, shapes and dtypes must match."""
    edited_runner = OrtRunner(edited, original_path, opt_level="disable")
    wanted = list(names) if names is not None else edited_runner.output_names()
    original_runner = OrtRunner(original, original_path, opt_level="disable", observable=wanted)
    worst: dict[str, float] = dict.fromkeys(wanted, 0.0)
    reasons: dict[str, str] = {}
    with original_runner, edited_runner:
        for k, feed in enumerate(feeds):
            edited_feed = {m.name: feed[m.name] for m in edited_runner.input_metadata()}
            a = original_runner.infer(feed, wanted)
            b = edited_runner.infer(edited_feed, wanted)
            for name in wanted:
                x, y = np.asarray(a[name]), np.asarray(b[name])
                if name in reasons:
                    continue
                if x.shape != y.shape or x.dtype != y.dtype:
                    reasons[name] = f"sample {k}: original {x.dtype}{list(x.shape)} vs edited {y.dtype}{list(y.shape)}"
                    worst[name] = float("inf")
                    continue
                if x.dtype.kind in "fc":
                    same_nan = np.array_equal(np.isnan(x), np.isnan(y))
                    diff = np.abs(x.astype(np.float64) - y.astype(np.float64))
                    finite = np.isfinite(diff)
                    worst[name] = max(worst[name], float(diff[finite].max()) if finite.any() else 0.0)
                    if not same_nan or not np.allclose(y, x, rtol=rtol, atol=atol, equal_nan=True):
                        reasons[name] = f"sample {k}: max |diff| {worst[name]:.3g}"
                elif not np.array_equal(x, y):
                    worst[name] = float("inf")
                    reasons[name] = f"sample {k}: values differ"
    return [OutputDiff(n, worst[n], n not in reasons, reasons.get(n, "")) for n in wanted]
