"""Import TensorRT (``tensorrt`` 10.x/11.x or ``tensorrt_rtx``) and detect what it can do.

Features are detected with ``hasattr`` on the module's classes, never from version strings; the
version is only shown to the user and is part of the engine cache key (an engine is tied to it).
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from engine_core.errors import TrtdbgError

MODULES = {"tensorrt": "TensorRT", "tensorrt_rtx": "TensorRT-RTX"}
ALIASES = {
    "auto": "auto",
    "trt": "tensorrt",
    "tensorrt": "tensorrt",
    "rtx": "tensorrt_rtx",
    "trt-rtx": "tensorrt_rtx",
    "tensorrt_rtx": "tensorrt_rtx",
    "tensorrt-rtx": "tensorrt_rtx",
}
INSTALL_HINT = (
    "install it with `pip install trtdbg[trt]` (TensorRT 10/11 comes from NVIDIA's package index, "
    "pypi.nvidia.com) or `pip install trtdbg[trt-rtx]` for TensorRT-RTX"
)

_LOADED: dict[str, Flavour] = {}


@dataclass(frozen=True)
class Flavour:
    """An imported TensorRT module and the features it has."""

    module: ModuleType = field(repr=False)
    name: str
    """Python module name: ``tensorrt`` or ``tensorrt_rtx``."""
    version: str

    @property
    def label(self) -> str:
        """``TensorRT 10.16.1.11`` or ``TensorRT-RTX 1.7.1.116``."""
        return f"{MODULES[self.name]} {self.version}"

    @property
    def is_rtx(self) -> bool:
        """TensorRT-RTX: JIT kernels, no timing cache, runtime on RTX-class GPUs only."""
        return self.name == "tensorrt_rtx"

    def has(self, cls: str, attr: str | None = None) -> bool:
        """True when ``module.cls`` (and ``module.cls.attr``) exists."""
        obj = getattr(self.module, cls, None)
        return obj is not None and (attr is None or hasattr(obj, attr))

    @property
    def weak_typing(self) -> bool:
        """Builder precision flags and per-layer precisions (TensorRT ≤ 10 only)."""
        return self.has("BuilderFlag", "FP16") and self.has("ILayer", "precision")

    @property
    def int8_calibration(self) -> bool:
        """Implicit INT8 quantization with a calibrator (TensorRT ≤ 10 only)."""
        return self.has("IInt8EntropyCalibrator2") and self.has("IBuilderConfig", "int8_calibrator")

    @property
    def debug_tensors(self) -> bool:
        """``INetworkDefinition.mark_debug`` plus a debug listener at runtime."""
        return self.has("INetworkDefinition", "mark_debug") and self.has("IDebugListener")

    @property
    def unfused_debug_tensors(self) -> bool:
        """``mark_unfused_tensors_as_debug_tensors`` (TensorRT 10.12+, 11, RTX)."""
        return self.has("INetworkDefinition", "mark_unfused_tensors_as_debug_tensors")

    @property
    def timing_cache(self) -> bool:
        """A timing cache that does something (TensorRT-RTX keeps the calls as no-ops)."""
        return not self.is_rtx and self.has("IBuilderConfig", "create_timing_cache")

    @property
    def user_managed_memory(self) -> bool:
        """``create_execution_context(USER_MANAGED)`` + ``set_device_memory`` (10.1+)."""
        return self.has("ExecutionContextAllocationStrategy") and self.has("IExecutionContext", "set_device_memory")

    def enum(self, enum: str, member: str) -> Any:
        """``module.enum.member`` looked up by name (never a stored integer); raises when missing."""
        value = getattr(getattr(self.module, enum, None), member, None)
        if value is None:
            raise TrtdbgError(f"{self.label} has no {enum}.{member}; this feature needs another TensorRT version")
        return value

    def features(self) -> dict[str, bool]:
        """Every detected feature by name (shown by ``inspect`` and in engine metadata)."""
        return {
            "weak_typing": self.weak_typing,
            "int8_calibration": self.int8_calibration,
            "debug_tensors": self.debug_tensors,
            "unfused_debug_tensors": self.unfused_debug_tensors,
            "timing_cache": self.timing_cache,
            "user_managed_memory": self.user_managed_memory,
        }


def load_flavour(which: str = "auto") -> Flavour:
    """Import TensorRT: ``auto`` tries ``tensorrt`` then ``tensorrt_rtx``; raises :class:`TrtdbgError` if absent."""
    key = ALIASES.get(which.strip().lower())
    if key is None:
        raise TrtdbgError(f"unknown TensorRT module '{which}'; choose auto, tensorrt or tensorrt_rtx")
    names = ["tensorrt", "tensorrt_rtx"] if key == "auto" else [key]
    problems: list[str] = []
    for name in names:
        if name in _LOADED:
            return _LOADED[name]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = importlib.import_module(name)
        except ImportError as exc:
            if getattr(exc, "name", None) not in (name, None) or "No module named" not in str(exc):
                problems.append(f"{name}: {_one_line(exc)}")
            continue
        except OSError as exc:  # the bindings load libnvinfer*.so at import
            problems.append(f"{name}: {_one_line(exc)}")
            continue
        if not hasattr(module, "Builder"):
            problems.append(f"{name}: the module has no Builder (a placeholder package?)")
            continue
        flavour = Flavour(module, name, str(getattr(module, "__version__", "unknown")))
        _LOADED[name] = flavour
        return flavour
    wanted = " or ".join(names)
    detail = f" ({'; '.join(problems)})" if problems else ""
    raise TrtdbgError(f"cannot import {wanted}{detail}; {INSTALL_HINT}")


def available_flavours() -> list[str]:
    """Module names of the TensorRT flavours that import here (cheap after the first call)."""
    found = []
    for name in MODULES:
        try:
            load_flavour(name)
            found.append(name)
        except TrtdbgError:
            pass
    return found


class LogRecords:
    """What TensorRT logged during one parse or build, kept small.

    Errors and warnings are kept in full, the engine layer listing that a build logs at VERBOSE
    level (``Layers:`` block, TensorRT-RTX) is kept as ``layers_text``, other messages only the last few.
    """

    KEEP_OTHER = 200

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.other: list[str] = []
        self.layers_text: str | None = None

    def add(self, severity: str, msg: str) -> None:
        """Record one message by severity name."""
        if severity in ("ERROR", "INTERNAL_ERROR"):
            self.errors.append(msg)
        elif severity == "WARNING":
            self.warnings.append(msg)
        elif msg.startswith("Layers:\n") or "\nI/O Tensors:\n" in msg:
            self.layers_text = msg
        else:
            self.other.append(msg)
            if len(self.other) > 2 * self.KEEP_OTHER:
                del self.other[: self.KEEP_OTHER]

    def mark(self) -> int:
        """Position in the error list (to read only the errors after it)."""
        return len(self.errors)

    def error_since(self, mark: int) -> str | None:
        """The most telling error logged after ``mark`` (one line), or ``None``."""
        errs = [e for e in self.errors[mark:] if e.strip()]
        if not errs:
            return None
        # TensorRT repeats a root cause with "Error Code N: ..." lines; prefer the most specific one.
        coded = [e for e in errs if "Error Code" in e]
        return _one_line_text((coded or errs)[0])


def make_logger(flavour: Flavour) -> Any:
    """An ``ILogger`` of this flavour whose ``records`` (:class:`LogRecords`) collect every message."""
    trt = flavour.module

    class _Logger(trt.ILogger):  # type: ignore[name-defined]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.records = LogRecords()

        def log(self, severity: Any, msg: str) -> None:
            self.records.add(getattr(severity, "name", str(severity)), str(msg))

    return _Logger()


def _one_line_text(text: str, limit: int = 400) -> str:
    return " ".join(text.split())[:limit]


def _one_line(exc: BaseException) -> str:
    return _one_line_text(str(exc) or type(exc).__name__)
