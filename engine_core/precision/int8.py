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
from engine_core.precision.rewrite import Namer
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

QDQ_SUFFIXES = (
    "_scale",
    "_zero_point",
    "_quantized",
    "_QuantizeLinear_Input",
    "_QuantizeLinear_Output",
    "_DequantizeLinear_Output",
)
"""What ONNX Runtime's quantizer appends to a tensor's name to name the Q/DQ tensors it adds for it."""


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


def _quantize(model_path: Path, out_path: Path, nodes: Sequence[str], cache: Path) -> None:
    """Write ``model_path`` with Q/DQ on the inputs of ``nodes`` to ``out_path``, scales from the ranges in ``cache``
    (ONNX Runtime's quantizer: it reads, holds and writes the whole model)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    with _quiet():
        quantize_static(
            str(model_path),
            str(out_path),
            None,
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


def _held(
    path: Path, slot: str, source: onnx.ModelProto | None, base: str | os.PathLike[str] | None
) -> onnx.ModelProto:
    """The quantizer's output with its external weights turned into memory references (under ``slot``, replacing
    those of the previous model quantized there) to a memory map of its data file; the map outlives the temporary
    folder, so the model no longer depends on where that file was. A weight the quantizer wrote unchanged (it keeps
    FP32 weights and adds Q/DQ after them) refers to ``source``'s own map of it instead (weights in ``base``), so
    the model's weights are held once, not once more per quantization."""
    from engine_core.model import weights
    from engine_core.model.loader import load_model

    model = load_model(path, load_external_data=False)
    originals = {t.name: t for t in source.graph.initializer} if source is not None else {}
    for i, t in enumerate(model.graph.initializer):
        if weights.is_external(t):
            make = lambda t=t: weights.tensor_array(t, path.parent)  # noqa: E731
            orig = originals.get(t.name)
            if orig is not None and _unchanged(orig, base, t, path.parent):
                make = lambda orig=orig: weights.tensor_array(orig, base)  # noqa: E731
            held = weights.memory_tensor(t.name, f"{slot}:{t.name}", make, t.data_type, replace=True)
            model.graph.initializer[i].CopyFrom(held)
    return model


def _unchanged(orig: onnx.TensorProto, base: str | os.PathLike[str] | None, t: onnx.TensorProto, folder: Path) -> bool:
    """True when the external tensor ``t`` (data file in ``folder``) holds exactly ``orig``'s values (read in
    pieces from the file, so only ``orig``'s map is held)."""
    from engine_core.model import weights

    if orig.data_type != t.data_type or list(orig.dims) != list(t.dims) or weights.is_memory(t):
        return False
    mine = np.ascontiguousarray(weights.tensor_array(orig, base)).reshape(-1).view(np.uint8)
    info = weights.external_info(t)
    if int(info.get("length") or mine.size) != mine.size:
        return False
    piece = 16 << 20
    with open(folder / info["location"], "rb") as f:
        f.seek(int(info.get("offset") or 0))
        for start in range(0, mine.size, piece):
            want = mine[start : start + piece]
            if not np.array_equal(np.frombuffer(f.read(want.size), np.uint8), want):
                return False
    return True


def _graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """``graph`` and every control-flow body in it."""
    from engine_core.model.loader import subgraphs_of

    yield graph
    for node in graph.node:
        for _, body in subgraphs_of(node):
            yield from _graphs(body)


def _tensor_names(model: onnx.ModelProto) -> set[str]:
    names: set[str] = set()
    for g in _graphs(model.graph):
        names.update(x.name for x in (*g.input, *g.output, *g.initializer))
        names.update(x for n in g.node for x in (*n.input, *n.output) if x)
    return names


def quantizer_clashes(model: onnx.ModelProto) -> dict[str, str]:
    """``{name: free name}`` for the tensors of ``model`` named like a Q/DQ tensor the quantizer would add for another
    tensor (``w_scale`` beside ``w``, common in exported dynamically quantized models): the quantizer would read that
    tensor as its scale or zero point and write a model that fails to run."""
    names = _tensor_names(model)
    fresh = Namer(names)
    return {
        name: fresh(f"{name}__orig")
        for name in sorted(names)
        if any(name.endswith(s) and name[: -len(s)] in names for s in QDQ_SUFFIXES)
    }


def rename_tensors(model: onnx.ModelProto, mapping: Mapping[str, str]) -> None:
    """Rename tensors of ``model`` (every read and write, graph I/O, initializers, value infos, bodies) in place."""
    for g in _graphs(model.graph):
        for node in g.node:
            for field in (node.input, node.output):
                for i, x in enumerate(field):
                    if x in mapping:
                        field[i] = mapping[x]
        for v in (*g.input, *g.output, *g.value_info, *g.initializer):
            if v.name in mapping:
                v.name = mapping[v.name]


class Quantizer:
    """Quantizes node subsets of one model file with fixed calibration ranges (an ONNX Runtime JSON cache)."""

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        ranges_path: str | os.PathLike[str],
        model: onnx.ModelProto | None = None,
        base: str | os.PathLike[str] | None = None,
    ) -> None:
        """``model``: what ``model_path`` holds, with its external weights in ``base`` (quantized models then share
        the weights the quantizer keeps unchanged)."""
        self.model_path = Path(model_path)
        self.ranges_path = Path(ranges_path)
        self.model, self.base = model, base
        if not self.ranges_path.is_file():
            raise TrtdbgError(f"calibration ranges {self.ranges_path} do not exist; calibrate first")
        self._inputs: tuple[Path, Path, dict[str, str]] | None = None

    def _quantizer_inputs(self) -> tuple[Path, Path, dict[str, str]]:
        """``(model file, ranges file, renames)`` the quantizer reads: the model and ranges as given, or, where a
        tensor name clashes with the quantizer's names (:func:`quantizer_clashes`), copies with those tensors renamed
        (written once beside the model; external data references stay valid)."""
        if self._inputs is None:
            from engine_core.model.loader import load_model
            from engine_core.workspace import atomic_write_bytes

            proto = load_model(self.model_path, load_external_data=False)
            clashes = quantizer_clashes(proto)
            self._inputs = (self.model_path, self.ranges_path, clashes)
            if clashes:
                rename_tensors(proto, clashes)
                model_path = self.model_path.with_name(self.model_path.stem + ".unclashed.onnx")
                atomic_write_bytes(model_path, proto.SerializeToString())
                ranges = {clashes.get(k, k): v for k, v in read_ranges(self.ranges_path).items()}
                ranges_path = write_ranges(
                    self.ranges_path.with_name(self.ranges_path.stem + ".unclashed.json"), ranges
                )
                self._inputs = (model_path, ranges_path, clashes)
        return self._inputs

    @classmethod
    def calibrate(
        cls,
        model_path: str | os.PathLike[str],
        feeds: Sequence[Mapping[str, np.ndarray]],
        ranges_path: str | os.PathLike[str],
        model: onnx.ModelProto,
        base: str | os.PathLike[str] | None,
    ) -> Quantizer:
        """Calibrate ``model`` (what ``model_path`` holds, external weights in ``base``) on ``feeds`` once, keep the
        ranges at ``ranges_path`` (:func:`minmax_ranges`) and quantize ``model_path`` with them."""
        ranges = Path(ranges_path)
        if not ranges.is_file():
            if not feeds:
                raise TrtdbgError(
                    "INT8 calibration needs input data; give --load-inputs, --data-loader-script or "
                    "random data (--iterations N)"
                )
            ranges.parent.mkdir(parents=True, exist_ok=True)
            write_ranges(ranges, minmax_ranges(model, base, feeds))
        return cls(model_path, ranges, model, base)

    def quantize(self, nodes: Sequence[str]) -> onnx.ModelProto:
        """The model with Q/DQ on the inputs of ``nodes`` (names as in the model file)."""
        model_path, ranges_path, clashes = self._quantizer_inputs()
        with tempfile.TemporaryDirectory(dir=self.ranges_path.parent) as tmp:
            out = Path(tmp) / "qdq.onnx"
            try:
                _quantize(model_path, out, nodes, ranges_path)
            except Exception as exc:
                raise TrtdbgError(f"INT8 quantization of {self.model_path} failed: {first_line(exc, 400)}") from exc
            model = _held(out, f"int8:{id(self)}", self.model, self.base)
        if clashes:  # the quantizer's tensors get free names, the renamed ones their own names back
            fresh = Namer(_tensor_names(model))
            mine = {name: fresh(f"{name}__qdq") for name in clashes}
            rename_tensors(model, {**mine, **{v: k for k, v in clashes.items()}})
        return model

    def ranges(self) -> dict[str, tuple[float, float]]:
        """``{tensor: (lowest, highest)}`` from the calibration cache."""
        return read_ranges(self.ranges_path)


def minmax_ranges(
    model: onnx.ModelProto, base: str | os.PathLike[str] | None, feeds: Sequence[Mapping[str, np.ndarray]]
) -> dict[str, tuple[float, float]]:
    """``{tensor: (lowest, highest)}`` over ``feeds`` of every float input and output of a quantizable node, NaN
    ignored: the ranges ONNX Runtime's MinMax calibrator finds, computed by one ONNX Runtime session (graph
    optimizations off, as the calibrator's) over the shared weights instead of the calibrator's copies of the model.
    """
    from engine_core.backend.ort import OrtRunner

    inits = {t.name for t in model.graph.initializer}
    names = [
        x
        for x in dict.fromkeys(x for n in model.graph.node if n.op_type in QUANTIZABLE for x in (*n.input, *n.output))
        if x and x not in inits
    ]
    found: dict[str, tuple[float, float]] = {}
    with OrtRunner(model, None, opt_level="disable", data_dir=base) as runner:
        for feed in feeds:
            computed = runner.infer(feed, [x for x in names if x not in feed])
            for name in names:
                arr = feed.get(name, computed.get(name))
                if arr is None or arr.dtype.kind != "f" or not arr.size or np.isnan(arr).all():
                    continue
                lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
                old = found.get(name, (lo, hi))
                found[name] = (min(old[0], lo), max(old[1], hi))
    return found


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
