"""Weights of models over 2 GB: external data read through one memory map per file, converted copies made once.

A model stays small in memory: its large tensors are external references (``data_location == EXTERNAL``). Two kinds:

* file references (ONNX's own): ``location`` relative to the model's folder. :func:`tensor_array` returns a read-only
  view of one process-wide ``np.memmap`` of the file, so every session and rewrite of the model shares the same
  pages (the reference and the subject of a compare hold the FP32 weights once);
* memory references (``location`` starts with :data:`MEMORY_PREFIX`): arrays made by trtdbg (an FP16/BF16 copy of a
  weight), kept in a process-wide cache keyed by their source, so a plan's converted weights are made once and
  shared by every candidate model of a bisection.

ONNX Runtime gets both through ``SessionOptions.add_external_initializers`` (:func:`session_initializers`); files are
written by :func:`engine_core.model.save.save_model`, which links unchanged data files instead of copying them.
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from engine_core.errors import TrtdbgError

PROTOBUF_LIMIT = (1 << 31) - 1
"""Largest serialized protobuf message: a model over it must keep its weights in external data."""
MEMORY_PREFIX = "trtdbg-memory:"
"""``location`` of a tensor whose values live in this process (:func:`memory_tensor`), not in a file."""
LARGE_BYTES = 1 << 20
"""Converted tensors of at least this size become memory references instead of inline protobuf bytes."""

_lock = threading.RLock()
_maps: dict[tuple[int, int, int, int], np.memmap] = {}
_map_of_path: dict[str, tuple[int, int, int, int]] = {}
_memory: dict[str, np.ndarray] = {}
_memory_of_family: dict[str, str] = {}


def external_info(t: TensorProto) -> dict[str, str]:
    """The ``external_data`` entries of ``t`` as a dict (``location``, ``offset``, ``length``…)."""
    return {e.key: e.value for e in t.external_data}


def is_external(t: TensorProto) -> bool:
    """True when ``t``'s values live outside the protobuf (a file or a memory reference)."""
    return t.data_location == TensorProto.EXTERNAL


def is_memory(t: TensorProto) -> bool:
    """True for a memory reference made by :func:`memory_tensor`."""
    return is_external(t) and external_info(t).get("location", "").startswith(MEMORY_PREFIX)


def _file_map(path: Path) -> np.memmap:
    """One read-only map per data file (and version of it) for the whole process; hard links share it."""
    st = path.stat()
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    name = str(path.resolve())
    with _lock:
        mm = _maps.get(key)
        if mm is None:
            old = _map_of_path.get(name)
            if old is not None:  # the file was replaced (a rewritten candidate): forget the old map
                _maps.pop(old, None)
            _map_of_path[name] = key
            # copy-on-write: a stray write (ONNX Runtime never writes initializers) could not reach the file
            mm = np.memmap(path, dtype=np.uint8, mode="c")
            _maps[key] = mm
        return mm


def tensor_array(t: TensorProto, base: str | os.PathLike[str] | None) -> np.ndarray:
    """Values of ``t``: a read-only view of the mapped data file (``base`` = the model's folder), the memory
    reference's array, or the inline values."""
    if not is_external(t):
        return numpy_helper.to_array(t)
    info = external_info(t)
    location = info.get("location", "")
    if location.startswith(MEMORY_PREFIX):
        arr = _memory.get(location)
        if arr is None:
            raise TrtdbgError(f"tensor '{t.name}' refers to weights that are no longer held ({location})")
        return arr
    if base is None:
        raise TrtdbgError(f"tensor '{t.name}' has external data '{location}' but the model's folder is unknown")
    path = Path(base) / location
    try:
        mm = _file_map(path)
    except OSError as exc:
        raise TrtdbgError(
            f"cannot map external data {path} of tensor '{t.name}': {exc.strerror or exc}; check the data file"
        ) from exc
    dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.data_type))
    count = int(np.prod(t.dims, dtype=np.int64))
    offset = int(info.get("offset") or 0)
    length = int(info.get("length") or count * dtype.itemsize)
    if offset + count * dtype.itemsize > mm.size or length < count * dtype.itemsize:
        raise TrtdbgError(
            f"external data {path} is shorter than tensor '{t.name}' needs; the file is truncated or belongs to "
            f"another export — copy it again"
        )
    arr = np.frombuffer(mm, dtype=dtype, count=count, offset=offset).reshape(tuple(t.dims))
    arr.flags.writeable = False
    return arr


def memory_tensor(
    name: str, key: str, make: Callable[[], np.ndarray], elem_type: int, *, replace: bool = False
) -> TensorProto:
    """A memory reference named ``name`` to the array ``make()`` returns, made once per ``key`` for the process
    (``replace``: made again, dropping the array an earlier model under ``key`` referred to). A copy of a data file
    that has since been replaced (same path, new version in ``key``) is dropped when the new one is made.

    ``elem_type`` is the ONNX type the array holds (its numpy dtype is ``onnx.helper.tensor_dtype_to_np_dtype``'s).
    """
    location = f"{MEMORY_PREFIX}{key}"
    family = re.sub(r"#\d+", "", location)  # the same source in another version (a replaced file)
    with _lock:
        arr = None if replace else _memory.get(location)
        if arr is None:
            arr = np.ascontiguousarray(make())
            arr.flags.writeable = False
            old = _memory_of_family.get(family)
            if old is not None and old != location:
                _memory.pop(old, None)  # converted from a file that has since been replaced
            _memory[location] = arr
            _memory_of_family[family] = location
    t = TensorProto()
    t.name = name
    t.data_type = elem_type
    t.dims.extend(arr.shape)
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("length", str(arr.nbytes))):
        entry = t.external_data.add()
        entry.key, entry.value = k, v
    return t


def tensor_nbytes(t: TensorProto) -> int:
    """Bytes of ``t``'s values from its declared type and shape (nothing is read; strings count as 0)."""
    if t.data_type in (TensorProto.STRING, TensorProto.UNDEFINED):
        return 0
    size = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize
    return math.prod(t.dims) * size


def source_key(t: TensorProto, base: str | os.PathLike[str] | None) -> str:
    """A key naming the stored bytes of ``t`` for caches of converted copies: file, offset, length and mtime of
    external data, the memory reference itself, or a digest of inline values."""
    if not is_external(t):
        import hashlib

        digest = hashlib.blake2b(t.SerializeToString(), digest_size=16).hexdigest()
        return f"inline:{digest}"
    info = external_info(t)
    location = info.get("location", "")
    if location.startswith(MEMORY_PREFIX):
        return location
    path = Path(base or ".") / location
    try:
        st = path.stat()
    except OSError as exc:
        raise TrtdbgError(f"cannot read external data {path} of tensor '{t.name}': {exc.strerror or exc}") from exc
    return f"{path.resolve()}@{info.get('offset', '0')}+{info.get('length', '')}#{st.st_mtime_ns}"


def all_tensors(graph: onnx.GraphProto) -> Iterator[TensorProto]:
    """Initializers of ``graph`` and of its sub-graphs (external data lives only there)."""
    from engine_core.model.loader import subgraphs_of

    stack = [graph]
    while stack:
        g = stack.pop()
        yield from g.initializer
        for node in g.node:
            stack.extend(sg for _, sg in subgraphs_of(node))


def session_initializers(
    model: onnx.ModelProto, base: str | os.PathLike[str] | None
) -> list[tuple[str, np.ndarray, int]]:
    """``(name, array, ONNX type)`` of every externally stored top-level initializer (given to ONNX Runtime)."""
    return [(t.name, tensor_array(t, base), t.data_type) for t in model.graph.initializer if is_external(t)]


def external_bytes(model: onnx.ModelProto) -> int:
    """Bytes of the externally stored initializers of ``model`` (from the declared shapes; nothing is read)."""
    return sum(tensor_nbytes(t) for t in all_tensors(model.graph) if is_external(t))


def open_session(
    model: onnx.ModelProto,
    base: str | os.PathLike[str] | None,
    options: Any = None,
    providers: Sequence[Any] = ("CPUExecutionProvider",),
) -> Any:
    """An ``onnxruntime.InferenceSession`` of ``model`` whose external weights are shared, not copied.

    Every externally stored initializer (a file in ``base``, the model's folder, or a trtdbg memory reference) is
    handed to ONNX Runtime with ``SessionOptions.add_initializer`` as a view of one process-wide memory map or
    array (:mod:`engine_core.model.weights`), so any number of sessions over the same weights hold them once, and the
    protobuf given to ONNX Runtime stays far below 2 GB. Weight pre-packing is then off (it copies every weight).
    """
    import onnxruntime as ort

    so = options if options is not None else ort.SessionOptions()
    # ORT's default order runs every input-free node (a Cast of a weight) first, so all their outputs coexist;
    # the priority-based order runs them where they are consumed. Only the order changes, not any kernel.
    so.execution_order = ort.ExecutionOrder.PRIORITY_BASED
    if any((p[0] if isinstance(p, tuple) else p) != "CPUExecutionProvider" for p in providers):
        # ONNX Runtime 1.31's CUDA provider loads external initializers itself (cuda_external_data_loader) from the
        # file they name, so a memory reference (an empty placeholder) fails to load there: its bytes go inline
        model = inline_memory(model)
    given = session_initializers(model, base)
    keep: list[Any] = []
    if given:
        names = {name for name, _, _ in given}
        shell = onnx.ModelProto()
        shell.CopyFrom(model)
        refs = [t for t in shell.graph.initializer if t.name in names]
        files = {t.name: (Path(base or ".") / external_info(t)["location"]).resolve() for t in refs if not is_memory(t)}
        folders = {p.parent for p in files.values()}
        if len(files) == len(refs) and len(folders) == 1:
            # the references name their real files (links resolved: ONNX Runtime refuses links out of the folder):
            # a graph optimizer that needs a weight's values (folding the Cast ONNX Runtime CPU puts after an FP16
            # weight) reads them there instead of failing; every other weight is the given buffer
            (folder,) = folders
            for t in refs:
                _set_entry(t, "location", files[t.name].name)
        else:  # a memory reference has no file: every given weight names an empty placeholder ONNX Runtime accepts
            placeholder = _placeholder_file()
            folder = placeholder.parent
            for t in refs:
                for key, value in (("location", placeholder.name), ("offset", "0"), ("length", "0")):
                    _set_entry(t, key, value)
        so.add_session_config_entry("session.model_external_initializers_file_folder_path", str(folder))
        so.add_session_config_entry("session.disable_prepacking", "1")
        for name, arr, elem_type in given:
            value = _ort_value(arr, elem_type)
            so.add_initializer(name, value)
            keep.append(value)
        model = shell
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=list(providers))
    sess._trtdbg_weights = keep  # the session reads these buffers: keep them alive
    return sess


def inline_memory(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with its top-level memory references stored inline (raw bytes); ``model`` itself when it has none.
    One line (:class:`TrtdbgError`) when the result would exceed the 2 GB protobuf limit."""
    refs = [t for t in model.graph.initializer if is_memory(t)]
    if not refs:
        return model
    if model.ByteSize() + sum(tensor_nbytes(t) for t in refs) > PROTOBUF_LIMIT:
        raise TrtdbgError("the converted weights do not fit a 2 GB model for a non-CPU ONNX Runtime provider")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    embed_values([t for t in out.graph.initializer if is_memory(t)], None)
    return out


def embed_values(tensors: Sequence[TensorProto], base: str | os.PathLike[str] | None) -> None:
    """Store the values of ``tensors`` (external data in ``base``, or memory references) inside them, in place."""
    for t in tensors:
        arr = tensor_array(t, base)
        del t.external_data[:]
        t.data_location = TensorProto.DEFAULT
        t.raw_data = np.ascontiguousarray(arr).tobytes()


def _set_entry(t: TensorProto, key: str, value: str) -> None:
    """Set the ``external_data`` entry ``key`` of ``t`` (when present) to ``value``."""
    for entry in t.external_data:
        if entry.key == key:
            entry.value = value


def _ort_value(arr: np.ndarray, elem_type: int) -> Any:
    """An OrtValue over ``arr``'s buffer (no copy); types numpy lacks (BF16, FP8) go as their bit patterns."""
    import onnxruntime as ort

    if arr.dtype.kind == "V" or arr.dtype.type.__module__.startswith("ml_dtypes"):
        return ort.OrtValue.ortvalue_from_numpy_with_onnx_type(arr.view(f"u{arr.dtype.itemsize}"), elem_type)
    return ort.OrtValue.ortvalue_from_numpy(arr)


_PLACEHOLDER: list[Path] = []


def _placeholder_file() -> Path:
    """An empty file that external initializers given with ``add_initializer`` name: ONNX Runtime checks that the
    location exists, then uses the given buffer instead of reading it."""
    if not _PLACEHOLDER:
        import atexit
        import shutil
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="trtdbg-ort-"))
        atexit.register(shutil.rmtree, folder, True)
        (folder / "weights-given-in-memory").touch()
        _PLACEHOLDER.append(folder / "weights-given-in-memory")
    return _PLACEHOLDER[0]


def structure_only(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with its externally stored top-level initializers turned into typed graph inputs: what
    ``onnx.checker`` and shape inference can check in memory (on a protobuf they would look for the data files
    relative to the working folder, and a memory reference is no file at all)."""
    if not any(is_external(t) for t in model.graph.initializer):
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    kept = [t for t in out.graph.initializer if not is_external(t)]
    moved = [t for t in out.graph.initializer if is_external(t)]
    declared = {vi.name for vi in out.graph.input}
    del out.graph.initializer[:]
    out.graph.initializer.extend(kept)
    out.graph.input.extend(
        onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in moved if t.name not in declared
    )
    return out


def weights_bytes(model: onnx.ModelProto) -> int:
    """Bytes of all initializer values of ``model``, external or inline (from declared shapes)."""
    return sum(tensor_nbytes(t) for t in all_tensors(model.graph))


MEMORY_FIX = "free memory, lower --mem-budget, or cut the model with `trtdbg surgeon extract`"
"""What to do when a run over a model cannot fit (the default advice of :func:`require_memory`)."""


def require_memory(what: str, need: int, fix: str = MEMORY_FIX) -> None:
    """Raise :class:`TrtdbgError` (one line: ``what`` needs so much, so much is available, ``fix``) when ``need``
    bytes (from :func:`estimate_memory`) exceed the memory available now, rather than being killed by the OS
    halfway."""
    from engine_core.sysinfo import check_fits

    check_fits(need, what, fix)


def estimate_memory(
    model: onnx.ModelProto, precisions: Sequence[str] = (), activations: int = 0, *, copies: int = 0, extra: int = 0
) -> int:
    """Bytes a command over ``model`` needs — the one estimate every command makes before loading weights or
    building sessions: its weights once (memory-mapped, shared by every ONNX Runtime session), a converted copy per
    low precision in ``precisions`` (fp16/bf16: half of the float weights; int8: one and a half, for the quantizer's
    protobuf copy of the model, later the weights ONNX Runtime folds out of the Q/DQ pairs: 1.2 measured on a 2.2 GB
    model), ``copies`` whole copies of the weights a library makes of its own (TensorRT's parser and
    builder, an embedded output), ``activations``, ``extra`` bytes (a second model's weights), and 256 MiB for the
    interpreter and libraries."""
    total = weights_bytes(model)
    need = total * (1 + copies) + activations + extra + (256 << 20)
    for p in precisions:
        need += total // 2 if p in ("fp16", "bf16") else total * 3 // 2 if p == "int8" else 0
    return need
