"""INT8 through explicit Q/DQ: ONNX Runtime's static quantizer with the settings TensorRT accepts (docs §9-§10).

Symmetric INT8 activations and weights (zero point 0), per-channel Conv/ConvTranspose weights, FP32 weights kept
with a Q/DQ pair, no INT32 bias quantization, no output quantization; Q/DQ only on the inputs of the nodes a plan puts
in INT8. Calibration ranges come once from the same feeds as compare (MinMax) or from a TensorRT calibration cache
(:mod:`engine_core.precision.calib_cache`), and are stored as ONNX Runtime's JSON calibration cache, so every later
quantization of another node subset costs no calibration run.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx

from engine_core.errors import TrtdbgError, first_line
from engine_core.precision.rules import QUANTIZABLE

TRT_OPTIONS: dict[str, object] = {
    "ActivationSymmetric": True,
    "WeightSymmetric": True,
    "QuantizeBias": False,
    "AddQDQPairToWeight": True,
    "QDQOpTypePerChannelSupportToAxis": {"Conv": 0, "ConvTranspose": 1},
    "DedicatedQDQPair": False,
    "ForceQuantizeNoInputCheck": True,
    "OpTypesToExcludeOutputQuantization": list(QUANTIZABLE),
    "QDQDisableWeightAdjustForInt32Bias": True,
}
"""``extra_options`` of ``quantize_static``: ModelOpt's TensorRT-guided ORT recipe (docs/precision.md §10)."""


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the quantizer's pre-processing advice (root logger warnings and prints)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def _quantize(
    model_path: Path,
    out_path: Path,
    nodes: Sequence[str],
    cache: Path,
    feeds: Sequence[Mapping[str, np.ndarray]] | None,
) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class _Reader(CalibrationDataReader):
        def __init__(self, items: Sequence[Mapping[str, np.ndarray]]) -> None:
            self._it = iter(items)

        def get_next(self) -> dict[str, np.ndarray] | None:
            feed = next(self._it, None)
            return dict(feed) if feed is not None else None

    reader = _Reader(feeds) if feeds is not None else None
    with _quiet():
        quantize_static(
            str(model_path),
            str(out_path),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            nodes_to_quantize=list(nodes),
            op_types_to_quantize=list(QUANTIZABLE),
            calibrate_method=CalibrationMethod.MinMax,
            extra_options=dict(TRT_OPTIONS),
            calibration_cache_path=str(cache),
            use_external_data_format=_external(model_path),
        )


def _external(model_path: Path) -> bool:
    """True when ``model_path`` keeps weights in external data: the quantizer must then write its output so too."""
    from engine_core.model.loader import load_model
    from engine_core.model.weights import external_bytes

    return external_bytes(load_model(model_path, load_external_data=False)) > 0


def _held(path: Path, slot: str) -> onnx.ModelProto:
    """The quantizer's output with its external weights turned into memory references (under ``slot``, replacing
    those of the previous model quantized there) to a memory map of its data file; the map outlives the temporary
    folder, so the model no longer depends on where that file was."""
    from engine_core.model import weights
    from engine_core.model.loader import load_model

    model = load_model(path, load_external_data=False)
    for i, t in enumerate(model.graph.initializer):
        if weights.is_external(t):
            make = lambda t=t: weights.tensor_array(t, path.parent)  # noqa: E731
            held = weights.memory_tensor(t.name, f"{slot}:{t.name}", make, t.data_type, replace=True)
            model.graph.initializer[i].CopyFrom(held)
    return model


class Quantizer:
    """Quantizes node subsets of one model file with fixed calibration ranges (an ONNX Runtime JSON cache)."""

    def __init__(self, model_path: str | os.PathLike[str], ranges_path: str | os.PathLike[str]) -> None:
        self.model_path = Path(model_path)
        self.ranges_path = Path(ranges_path)
        if not self.ranges_path.is_file():
            raise TrtdbgError(f"calibration ranges {self.ranges_path} do not exist; calibrate first")

    @classmethod
    def calibrate(
        cls,
        model_path: str | os.PathLike[str],
        feeds: Sequence[Mapping[str, np.ndarray]],
        ranges_path: str | os.PathLike[str],
        nodes: Sequence[str],
    ) -> Quantizer:
        """Run MinMax calibration of ``nodes``' tensors on ``feeds`` (once) and keep the ranges at ``ranges_path``."""
        ranges = Path(ranges_path)
        if not ranges.is_file():
            if not feeds:
                raise TrtdbgError(
                    "INT8 calibration needs input data; give --load-inputs, --data-loader-script or "
                    "random data (--iterations N)"
                )
            ranges.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=ranges.parent) as tmp:
                staged = Path(tmp) / "ranges.json"
                try:
                    _quantize(Path(model_path), Path(tmp) / "calibrated.onnx", nodes, staged, feeds)
                except TrtdbgError:
                    raise
                except Exception as exc:  # ORT's quantizer raises many exception types
                    raise TrtdbgError(f"INT8 calibration of {model_path} failed: {first_line(exc, 400)}") from exc
                os.replace(staged, ranges)
        return cls(model_path, ranges)

    def quantize(self, nodes: Sequence[str]) -> onnx.ModelProto:
        """The model with Q/DQ on the inputs of ``nodes`` (names as in the model file)."""
        with tempfile.TemporaryDirectory(dir=self.ranges_path.parent) as tmp:
            out = Path(tmp) / "qdq.onnx"
            try:
                _quantize(self.model_path, out, nodes, self.ranges_path, None)
            except Exception as exc:
                raise TrtdbgError(f"INT8 quantization of {self.model_path} failed: {first_line(exc, 400)}") from exc
            return _held(out, f"int8:{id(self)}")

    def ranges(self) -> dict[str, tuple[float, float]]:
        """``{tensor: (lowest, highest)}`` from the calibration cache."""
        return read_ranges(self.ranges_path)


def read_ranges(path: str | os.PathLike[str]) -> dict[str, tuple[float, float]]:
    """Tensor ranges from an ONNX Runtime JSON calibration cache."""
    from onnxruntime.quantization.calibrate import load_tensors_data

    try:
        data = load_tensors_data(Path(path))
    except Exception as exc:
        raise TrtdbgError(f"cannot read calibration ranges {path}: {first_line(exc, 400)}") from exc
    out = {}
    for name, td in data.items():
        lo, hi = td.range_value
        out[name] = (float(np.asarray(lo).reshape(-1)[0]), float(np.asarray(hi).reshape(-1)[0]))
    return out


def write_ranges(path: str | os.PathLike[str], ranges: Mapping[str, tuple[float, float]]) -> Path:
    """Write ``{tensor: (lowest, highest)}`` as an ONNX Runtime JSON calibration cache (MinMax), atomically."""
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData, save_tensors_data

    data = TensorsData(
        CalibrationMethod.MinMax,
        {
            name: TensorData(lowest=np.array(lo, np.float32), highest=np.array(hi, np.float32))
            for name, (lo, hi) in ranges.items()
        },
    )
    target = Path(path)
    save_tensors_data(data, target)  # writes a temp file and renames it (atomic)
    return target


def feeds_digest(feeds: Sequence[Mapping[str, np.ndarray]]) -> str:
    """Content hash of calibration feeds (names, dtypes, shapes, bytes)."""
    h = hashlib.sha256()
    for feed in feeds:
        for name in sorted(feed):
            a = np.ascontiguousarray(feed[name])
            h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
            h.update(a.tobytes())
    return h.hexdigest()
