"""Device-memory layer (pycuda / cuda-python): allocation, copies, streams and round trips of every dtype
TensorRT can bind. Needs an NVIDIA GPU: skipped with the reason elsewhere. Verified on an H100 (README)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from engine_core.backend.trt.devmem import CHOICES, open_device_memory
from engine_core.errors import TrtdbgError

pytestmark = pytest.mark.gpu

DTYPES = (np.float32, np.float16, np.int8, np.uint8, np.int32, np.int64, np.bool_, np.float64)


def _layers() -> list[str]:
    out = []
    if importlib.util.find_spec("pycuda") is not None:
        out.append("pycuda")
    if importlib.util.find_spec("cuda") is not None:
        out.append("cuda-python")
    return out


@pytest.fixture(params=_layers() or ["none"])
def mem(request):
    if request.param == "none":
        pytest.skip("neither pycuda nor cuda-python is installed")
    try:
        m = open_device_memory(request.param)
    except TrtdbgError as exc:
        pytest.skip(f"no usable GPU for {request.param}: {exc}")
    yield m
    m.close()


def test_unknown_layer_and_no_gpu_message() -> None:
    with pytest.raises(TrtdbgError, match="unknown device-memory layer"):
        open_device_memory("torch")
    assert CHOICES == ("auto", "pycuda", "cuda-python")
    for name in _layers():
        try:
            open_device_memory(name).close()
        except TrtdbgError as exc:  # no GPU here: the message is one line and says what is missing
            assert "\n" not in str(exc) and ("GPU" in str(exc) or "not installed" in str(exc))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", [(3, 5, 7), (1,), (0, 4), (1024, 1024)])
def test_round_trip(mem, dtype, shape) -> None:
    rng = np.random.default_rng(sum(shape))
    host = (rng.random(shape) * 200 - 100).astype(dtype)
    stream = mem.create_stream()
    try:
        ptr = mem.to_device(host, stream)
        back = mem.from_device(ptr, host.shape, host.dtype, stream)
        mem.free(ptr)
    finally:
        mem.destroy_stream(stream)
    assert back.dtype == host.dtype and back.shape == host.shape and np.array_equal(back, host)


def test_non_contiguous_and_two_streams(mem) -> None:
    base = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    view = base[:, ::2]  # non-contiguous: copied contiguous first
    s1, s2 = mem.create_stream(), mem.create_stream()
    p1, p2 = mem.to_device(view, s1), mem.to_device(base * 2, s2)
    a = mem.from_device(p1, view.shape, view.dtype, s1)
    b = mem.from_device(p2, base.shape, base.dtype, s2)
    for p in (p1, p2):
        mem.free(p)
    for s in (s1, s2):
        mem.destroy_stream(s)
    assert np.array_equal(a, view) and np.array_equal(b, base * 2)


def test_info_and_out_of_memory(mem) -> None:
    free, total = mem.mem_info()
    assert 0 < free <= total and mem.device_name()
    with pytest.raises(TrtdbgError, match="out of memory"):
        mem.alloc(total * 4)
