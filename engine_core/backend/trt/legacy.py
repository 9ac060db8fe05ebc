"""TensorRT 10.x weak typing: builder precision flags, per-layer precisions, INT8 calibration.

This is the seed's ``polygraphy run --trt --fp16 --int8 --calibration-cache`` flow, for users who
still rely on it on TensorRT 10. It exists only where the TensorRT module has it (``BuilderFlag.FP16``,
``ILayer.precision``, ``IInt8EntropyCalibrator2``): TensorRT 11 removed all of it and TensorRT-RTX
never had it, so there it refuses with a pointer to the ONNX-level precision plan (strong typing).

Settings are ``(name, value)`` pairs (hashable, part of the engine cache key): ``fp16``, ``bf16``,
``int8`` (``"1"``), ``layer_precisions`` (``NAME:fp16,NAME2:fp32``), ``precision_constraints``
(``obey``/``prefer``), ``calibration_cache`` (path; read when it exists, else written after calibrating).
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from engine_core.backend.trt.build import BuildOptions, ParsedNetwork
from engine_core.backend.trt.flavour import Flavour
from engine_core.errors import TrtdbgError
from engine_core.workspace import atomic_write_bytes

PRECISIONS = {
    "fp32": "FLOAT",
    "float32": "FLOAT",
    "fp16": "HALF",
    "float16": "HALF",
    "bf16": "BF16",
    "bfloat16": "BF16",
    "int8": "INT8",
}
KEYS = (
    "weak",
    "fp16",
    "bf16",
    "int8",
    "layer_precisions",
    "precision_constraints",
    "calibration_cache",
    "calibration_cache_sha256",
)


def require_weak_typing(flavour: Flavour) -> None:
    """Raise a one-line error when ``flavour`` has no weak typing (TensorRT 11, TensorRT-RTX)."""
    if not flavour.weak_typing:
        raise TrtdbgError(
            f"--weak-typing: {flavour.label} has no weak typing (BuilderFlag.FP16/INT8, layer precisions and INT8 "
            "calibrators exist only up to TensorRT 10); express precision in the ONNX instead: "
            "--subject trt:fp16 or trt:int8 builds strongly typed from the precision plan's rewritten ONNX"
        )


def weak_settings(
    fp16: bool = False,
    bf16: bool = False,
    int8: bool = False,
    layer_precisions: Iterable[str] = (),
    precision_constraints: str = "obey",
    calibration_cache: str | None = None,
) -> tuple[tuple[str, str], ...]:
    """The settings tuple for :attr:`TrtOptions.weak` (always holds ``("weak", "1")``), checked."""
    lp = parse_layer_precisions(layer_precisions)
    if precision_constraints not in ("obey", "prefer"):
        raise TrtdbgError(f"--precision-constraints must be obey or prefer, not '{precision_constraints}'")
    out: list[tuple[str, str]] = [("weak", "1")]
    for name, on in (("fp16", fp16), ("bf16", bf16), ("int8", int8)):
        if on:
            out.append((name, "1"))
    if lp:
        out.append(("layer_precisions", ",".join(f"{k}:{v}" for k, v in lp.items())))
        out.append(("precision_constraints", precision_constraints))
    if calibration_cache:
        out.append(("calibration_cache", str(calibration_cache)))
        path = Path(calibration_cache)
        if path.is_file():
            out.append(("calibration_cache_sha256", hashlib.sha256(path.read_bytes()).hexdigest()[:16]))
    return tuple(out)


def parse_layer_precisions(items: Iterable[str]) -> dict[str, str]:
    """``["conv1:fp16", "a:b:fp32"]`` (or comma lists) → ``{"conv1": "fp16", "a:b": "fp32"}`` (last colon splits)."""
    out: dict[str, str] = {}
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if not part:
                continue
            name, sep, prec = part.rpartition(":")
            if not sep or not name or prec.lower() not in PRECISIONS:
                raise TrtdbgError(
                    f"--layer-precisions: cannot read '{part}'; write LAYER:PRECISION with "
                    f"PRECISION one of {', '.join(sorted(set(PRECISIONS)))}"
                )
            out[name] = prec.lower()
    return out


def weak_typing_configurator(
    weak: tuple[tuple[str, str], ...], runner: Any
) -> Callable[[ParsedNetwork, Any, BuildOptions], None]:
    """A ``configure`` hook for :func:`build_engine` applying ``weak`` to the config and the network's layers."""
    settings = dict(weak)
    unknown = sorted(set(settings) - set(KEYS))
    if unknown:
        raise TrtdbgError(f"unknown weak-typing setting '{unknown[0]}'")

    def configure(parsed: ParsedNetwork, config: Any, options: BuildOptions) -> None:
        flavour = parsed.flavour
        require_weak_typing(flavour)
        for name, flag in (("fp16", "FP16"), ("bf16", "BF16"), ("int8", "INT8")):
            if settings.get(name):
                config.set_flag(flavour.enum("BuilderFlag", flag))
        lp = parse_layer_precisions([settings.get("layer_precisions", "")])
        if lp:
            apply_layer_precisions(parsed, lp)
            flag = (
                "OBEY_PRECISION_CONSTRAINTS"
                if settings.get("precision_constraints", "obey") == "obey"
                else "PREFER_PRECISION_CONSTRAINTS"
            )
            config.set_flag(flavour.enum("BuilderFlag", flag))
        if settings.get("int8"):
            _set_calibrator(parsed, config, options, settings.get("calibration_cache"), runner)

    return configure


def apply_layer_precisions(parsed: ParsedNetwork, precisions: Mapping[str, str]) -> None:
    """Set ``layer.precision`` for each named layer (the only thing Polygraphy's ``debug precision`` sets)."""
    flavour = parsed.flavour
    layers = {layer.name: layer for layer in parsed.layers()}
    for name, prec in precisions.items():
        layer = layers.get(name)
        if layer is None:
            close = difflib.get_close_matches(name, list(layers), n=3)
            hint = (
                f"; did you mean {', '.join(close)}?"
                if close
                else "; `trtdbg inspect MODEL --display-as trt` lists the layer names"
            )
            raise TrtdbgError(f"--layer-precisions: no layer '{name}' in the TensorRT network{hint}")
        layer.precision = flavour.enum("DataType", PRECISIONS[prec])


def _set_calibrator(parsed: ParsedNetwork, config: Any, options: BuildOptions, cache: str | None, runner: Any) -> None:
    flavour = parsed.flavour
    if not flavour.int8_calibration:
        raise TrtdbgError(
            f"--int8 calibration: {flavour.label} has no INT8 calibrators; use a Q/DQ model (precision plan)"
        )
    feeds: Iterator[Mapping[str, np.ndarray]] = iter(())
    if not (cache and Path(cache).is_file()):
        feeds = iter(runner.calibration_feeds())
    runner.activate()  # calibration runs the network on the GPU
    config.int8_calibrator = make_calibrator(
        flavour, feeds, cache, runner._mem, runner._stream, {t.name: t for t in parsed.inputs()}
    )
    if options.profiles and hasattr(config, "set_calibration_profile"):
        profile = parsed.builder.create_optimization_profile()
        for name, _lo, opt, _hi in options.profiles[0]:
            profile.set_shape(name, opt, opt, opt)  # calibration runs at one shape: the OPT shape
        config.set_calibration_profile(profile)


def make_calibrator(
    flavour: Flavour,
    feeds: Iterator[Mapping[str, np.ndarray]],
    cache: str | None,
    mem: Any,
    stream: int,
    inputs: Mapping[str, Any],
) -> Any:
    """An ``IInt8EntropyCalibrator2`` fed from ``feeds`` that reads/writes the calibration cache file."""
    trt = flavour.module
    base = trt.IInt8EntropyCalibrator2

    class _Calibrator(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)
            self.buffers: dict[str, tuple[int, int]] = {}

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str]) -> list[int] | None:
            try:
                feed = next(feeds)
            except StopIteration:
                return None
            ptrs = []
            for name in names:
                if name not in feed:
                    raise TrtdbgError(f"INT8 calibration: the data has no input '{name}'")
                dtype = np.dtype(trt.nptype(inputs[name].dtype))
                arr = np.ascontiguousarray(feed[name], dtype=dtype)
                ptr, cap = self.buffers.get(name, (0, -1))
                if cap < arr.nbytes:
                    if ptr:
                        mem.free(ptr)
                    ptr, cap = mem.alloc(arr.nbytes), arr.nbytes
                    self.buffers[name] = (ptr, cap)
                mem.htod(ptr, arr, stream)
                mem.synchronize(stream)
                ptrs.append(ptr)
            return ptrs

        def read_calibration_cache(self) -> bytes | None:
            if cache and Path(cache).is_file():
                return Path(cache).read_bytes()
            return None

        def write_calibration_cache(self, data: Any) -> None:
            if cache:
                atomic_write_bytes(cache, bytes(data))

    return _Calibrator()
