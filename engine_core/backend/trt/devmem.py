"""A small device-memory layer: allocations, host↔device copies and streams on the current GPU.

Two implementations with one interface, :class:`DeviceMemory`:

* :class:`PyCudaMemory` — pycuda (the product owner's choice; source-only, needs a CUDA toolkit to
  install), on the device's primary context so TensorRT and pycuda share it;
* :class:`CudaPythonMemory` — cuda-python's runtime bindings (``cuda.bindings.runtime``, or the older
  ``cuda.cudart``), which install from wheels.

:func:`open_device_memory` picks pycuda when it is installed, else cuda-python. Failures (no driver,
no GPU, out of memory) raise :class:`TrtdbgError` with one line.
"""

from __future__ import annotations

import importlib
import importlib.util
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from engine_core.errors import TrtdbgError

CHOICES = ("auto", "pycuda", "cuda-python")
INSTALL_HINT = "install cuda-python (pip install trtdbg[trt]) or pycuda (pip install trtdbg[pycuda], needs nvcc)"


class DeviceMemory(ABC):
    """Raw device allocations (integer pointers), copies and streams on GPU 0."""

    name: str

    @abstractmethod
    def alloc(self, nbytes: int) -> int:
        """Allocate ``nbytes`` (at least 1) and return the device pointer."""

    @abstractmethod
    def free(self, ptr: int) -> None:
        """Free a pointer from :meth:`alloc`."""

    @abstractmethod
    def create_stream(self) -> int:
        """A new stream's handle (an integer, as TensorRT's ``execute_async_v3`` takes it)."""

    @abstractmethod
    def destroy_stream(self, stream: int) -> None:
        """Destroy a stream from :meth:`create_stream`."""

    @abstractmethod
    def synchronize(self, stream: int) -> None:
        """Wait until all work on ``stream`` has finished."""

    @abstractmethod
    def htod(self, ptr: int, array: np.ndarray, stream: int) -> None:
        """Copy a C-contiguous host array to ``ptr`` on ``stream`` (the array must live until synchronized)."""

    @abstractmethod
    def dtoh(self, array: np.ndarray, ptr: int, stream: int) -> None:
        """Copy ``array.nbytes`` from ``ptr`` into a C-contiguous host array on ``stream``."""

    @abstractmethod
    def mem_info(self) -> tuple[int, int]:
        """(free, total) bytes of device memory."""

    @abstractmethod
    def device_name(self) -> str:
        """The GPU's name."""

    def close(self) -> None:
        """Release what this object holds (contexts)."""

    def to_device(self, array: np.ndarray, stream: int) -> int:
        """Allocate and copy ``array``; return the pointer."""
        array = np.ascontiguousarray(array)
        ptr = self.alloc(array.nbytes)
        if array.nbytes:
            self.htod(ptr, array, stream)
        return ptr

    def from_device(self, ptr: int, shape: tuple[int, ...], dtype: np.dtype, stream: int) -> np.ndarray:
        """Copy a device tensor into a new host array (synchronizes ``stream``)."""
        out = np.empty(shape, dtype=dtype)
        if out.nbytes:
            self.dtoh(out, ptr, stream)
        self.synchronize(stream)
        return out


def _gpu_error(what: str, detail: str, nbytes: int | None = None) -> TrtdbgError:
    low = detail.lower()
    if ("memory" in low and "allocation" in low) or "out of memory" in low:
        size = f" of {nbytes} bytes" if nbytes is not None else ""
        return TrtdbgError(
            f"GPU out of memory during {what}{size} ({detail}); use smaller shapes, mark fewer tensors "
            "per batch (--mem-budget), or free the GPU"
        )
    if "driver" in low or "no cuda-capable" in low or "nodevice" in low or "initialization" in low:
        return TrtdbgError(
            f"no usable NVIDIA GPU ({detail}; during {what}); running engines needs an NVIDIA GPU "
            "and driver (parsing, building and inspecting with TensorRT-RTX do not)"
        )
    return TrtdbgError(f"CUDA failed during {what}: {detail}")


# ------------------------------------------------------------------------------------------ cuda-python


class CudaPythonMemory(DeviceMemory):
    """cuda-python runtime API (``cuda.bindings.runtime``; ``cuda.cudart`` before cuda-bindings 13)."""

    name = "cuda-python"

    def __init__(self) -> None:
        try:
            self._rt = importlib.import_module("cuda.bindings.runtime")
        except ImportError:
            try:
                self._rt = importlib.import_module("cuda.cudart")
            except ImportError as exc:
                raise TrtdbgError(f"cuda-python is not installed; {INSTALL_HINT}") from exc
        try:
            err, count = self._rt.cudaGetDeviceCount()
        except Exception as exc:
            raise _gpu_error("GPU detection", f"no CUDA driver ({' '.join(str(exc).split())[:200]})") from exc
        self._check(err, "GPU detection")
        if count < 1:
            raise TrtdbgError("no NVIDIA GPU found (cudaGetDeviceCount = 0); TensorRT runs need one")
        self._check(self._rt.cudaSetDevice(0)[0], "selecting GPU 0")
        self._streams: dict[int, Any] = {}

    def _check(self, err: Any, what: str, nbytes: int | None = None) -> None:
        if int(err) == 0:
            return
        name = getattr(err, "name", str(err))
        try:
            text = self._rt.cudaGetErrorString(err)[1]
            text = text.decode() if isinstance(text, bytes) else str(text)
        except Exception:
            text = ""
        raise _gpu_error(what, f"{name}: {text}" if text else name, nbytes)

    def alloc(self, nbytes: int) -> int:
        err, ptr = self._rt.cudaMalloc(max(1, int(nbytes)))
        self._check(err, "cudaMalloc", nbytes)
        return int(ptr)

    def free(self, ptr: int) -> None:
        self._check(self._rt.cudaFree(ptr)[0], "cudaFree")

    def create_stream(self) -> int:
        err, stream = self._rt.cudaStreamCreate()
        self._check(err, "cudaStreamCreate")
        handle = int(stream)
        self._streams[handle] = stream
        return handle

    def destroy_stream(self, stream: int) -> None:
        obj = self._streams.pop(stream, stream)
        self._check(self._rt.cudaStreamDestroy(obj)[0], "cudaStreamDestroy")

    def synchronize(self, stream: int) -> None:
        self._check(self._rt.cudaStreamSynchronize(self._streams.get(stream, stream))[0], "cudaStreamSynchronize")

    def htod(self, ptr: int, array: np.ndarray, stream: int) -> None:
        kind = self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        err = self._rt.cudaMemcpyAsync(ptr, array.ctypes.data, array.nbytes, kind, self._streams.get(stream, stream))[0]
        self._check(err, "host-to-device copy")

    def dtoh(self, array: np.ndarray, ptr: int, stream: int) -> None:
        kind = self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        err = self._rt.cudaMemcpyAsync(array.ctypes.data, ptr, array.nbytes, kind, self._streams.get(stream, stream))[0]
        self._check(err, "device-to-host copy")

    def mem_info(self) -> tuple[int, int]:
        err, free, total = self._rt.cudaMemGetInfo()
        self._check(err, "cudaMemGetInfo")
        return int(free), int(total)

    def device_name(self) -> str:
        err, prop = self._rt.cudaGetDeviceProperties(0)
        self._check(err, "cudaGetDeviceProperties")
        name = prop.name
        return (name.split(b"\0", 1)[0].decode() if isinstance(name, bytes) else str(name)).strip()


# ----------------------------------------------------------------------------------------------- pycuda


class PyCudaMemory(DeviceMemory):
    """pycuda on GPU 0's primary context (the context the CUDA runtime and TensorRT use)."""

    name = "pycuda"

    def __init__(self) -> None:
        try:
            self._drv = importlib.import_module("pycuda.driver")
        except ImportError as exc:
            raise TrtdbgError(f"pycuda is not installed; {INSTALL_HINT}") from exc
        try:
            self._drv.init()
            if self._drv.Device.count() < 1:
                raise TrtdbgError("no NVIDIA GPU found (pycuda sees 0 devices); TensorRT runs need one")
            self._dev = self._drv.Device(0)
            self._ctx = self._dev.retain_primary_context()
            self._ctx.push()
        except self._drv.Error as exc:
            raise _gpu_error("pycuda initialization", str(exc)) from exc
        self._allocs: dict[int, Any] = {}
        self._streams: dict[int, Any] = {}

    def _call(self, what: str, fn: Any, *args: Any, nbytes: int | None = None) -> Any:
        try:
            return fn(*args)
        except self._drv.Error as exc:
            raise _gpu_error(what, str(exc), nbytes) from exc

    def alloc(self, nbytes: int) -> int:
        mem = self._call("mem_alloc", self._drv.mem_alloc, max(1, int(nbytes)), nbytes=nbytes)
        self._allocs[int(mem)] = mem
        return int(mem)

    def free(self, ptr: int) -> None:
        mem = self._allocs.pop(ptr, None)
        if mem is not None:
            self._call("free", mem.free)

    def create_stream(self) -> int:
        stream = self._call("Stream", self._drv.Stream)
        self._streams[int(stream.handle)] = stream
        return int(stream.handle)

    def destroy_stream(self, stream: int) -> None:
        self._streams.pop(stream, None)

    def synchronize(self, stream: int) -> None:
        self._call("stream synchronize", self._streams[stream].synchronize)

    def htod(self, ptr: int, array: np.ndarray, stream: int) -> None:
        self._call("host-to-device copy", self._drv.memcpy_htod_async, ptr, array, self._streams[stream])

    def dtoh(self, array: np.ndarray, ptr: int, stream: int) -> None:
        self._call("device-to-host copy", self._drv.memcpy_dtoh_async, array, ptr, self._streams[stream])

    def mem_info(self) -> tuple[int, int]:
        free, total = self._call("mem_get_info", self._drv.mem_get_info)
        return int(free), int(total)

    def device_name(self) -> str:
        return str(self._dev.name())

    def close(self) -> None:
        for mem in list(self._allocs.values()):
            mem.free()
        self._allocs.clear()
        self._streams.clear()
        if getattr(self, "_ctx", None) is not None:
            try:
                self._ctx.pop()
            except self._drv.Error:
                pass
            self._ctx = None


def open_device_memory(prefer: str = "auto") -> DeviceMemory:
    """pycuda when installed (or asked for), else cuda-python; raises :class:`TrtdbgError` when neither works."""
    if prefer not in CHOICES:
        raise TrtdbgError(f"unknown device-memory layer '{prefer}'; choose one of {', '.join(CHOICES)}")
    if prefer == "pycuda":
        return PyCudaMemory()
    if prefer == "cuda-python":
        return CudaPythonMemory()
    if importlib.util.find_spec("pycuda") is not None:
        return PyCudaMemory()
    return CudaPythonMemory()
