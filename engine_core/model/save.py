"""Write a model, with weights embedded or in external data files, atomically and never over an input file."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import ModelProto, TensorProto, numpy_helper

from engine_core.errors import TrtdbgError
from engine_core.model import weights
from engine_core.model.loader import subgraphs_of
from engine_core.workspace import atomic_write_bytes, atomic_writer

REUSE = ("none", "copy", "link")
"""How :func:`save_model` treats a data file in another folder than the output (see there)."""
DEFAULT_EXTERNAL_THRESHOLD = 1024
"""Tensors of at least this many bytes go to the external data file."""
_ALIGN = 64
_PAGE = 4096
"""Large tensors start at page boundaries (ONNX Runtime memory-maps such data instead of reading it)."""


def external_data_files(model: ModelProto, base: str | os.PathLike[str]) -> list[Path]:
    """The external data files a model (loaded without its data) refers to, resolved in folder ``base``."""
    found: dict[Path, None] = {}
    for t in _tensors(model):
        if weights.is_external(t) and not weights.is_memory(t):
            loc = weights.external_info(t).get("location", "")
            if loc:
                found[(Path(base) / loc).resolve()] = None
    return list(found)


def _tensors(model: ModelProto) -> Iterator[TensorProto]:
    """Initializers and tensor attributes of the graph and all subgraphs."""
    stack = [model.graph]
    while stack:
        g = stack.pop()
        yield from g.initializer
        for node in g.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.TENSOR:
                    yield attr.t
            stack.extend(sg for _, sg in subgraphs_of(node))


def check_output_path(
    path: str | os.PathLike[str], protect: Sequence[str | os.PathLike[str]], *, external_data: bool
) -> tuple[Path, Path]:
    """``(model path, data path)``; raise when writing would overwrite a protected file or ``path`` is a folder."""
    target = Path(path)
    data_path = target.with_name(target.name + ".data")
    guarded = {Path(p).resolve() for p in protect}
    for p in (target, data_path) if external_data else (target,):
        if p.resolve() in guarded:
            raise TrtdbgError(f"refusing to overwrite input file {p}; choose another output path with -o")
    if target.is_dir():
        raise TrtdbgError(f"{target} is a folder; give an output file name such as {target / 'model.onnx'}")
    return target, data_path


def save_model(
    model: ModelProto,
    path: str | os.PathLike[str],
    *,
    external_data: bool = False,
    threshold: int = DEFAULT_EXTERNAL_THRESHOLD,
    protect: Sequence[str | os.PathLike[str]] = (),
    base: str | os.PathLike[str] | None = None,
    reuse: str = "none",
) -> list[Path]:
    """Write ``model`` to ``path`` (and ``<name>.data`` beside it with ``external_data``); return the files written.

    ``protect`` lists files that must not be overwritten (the input model and its data files); ``base`` is the folder
    the model's external data references are relative to (weights loaded lazily stay in their files). Without
    ``external_data`` the weights are embedded, unless the model would pass protobuf's 2 GB: then it is written with
    external data anyway. With external data, weights of at least ``threshold`` bytes are streamed to the data file
    (never gathered into one buffer); a data file the model already uses is referenced as it is when the output is
    written into its folder. The format allows no link to a file elsewhere; ``reuse`` says what happens then:
    ``none``: its used tensors are copied into ``<name>.data``; ``copy``: the whole file is copied once into the
    output's folder (``shared.<its name>``, refreshed when the source changes) and every model written there refers to
    it (candidates written again and again); ``link``: for trtdbg's own intermediate models, read only by trtdbg, it
    is referenced through a symbolic link beside ``path`` (ONNX's loader would refuse it). Every file is written
    atomically, the data file first.
    """
    if reuse not in REUSE:
        raise ValueError(f"reuse must be one of {REUSE}")
    target = Path(path)
    if not external_data:
        refs = [t for t in _tensors(model) if weights.is_external(t)]
        size = model.ByteSize() + sum(weights.tensor_nbytes(t) for t in refs)
        if size <= weights.PROTOBUF_LIMIT:
            check_output_path(target, protect, external_data=False)
            if refs:
                model = _embedded(model, base)
            return [atomic_write_bytes(target, model.SerializeToString())]
        external_data, threshold = True, max(threshold, weights.LARGE_BYTES)
    target, data_path = check_output_path(target, protect, external_data=True)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrtdbgError(f"cannot write {target}: {exc.strerror or exc}; choose a writable location") from exc
    out = ModelProto()
    out.CopyFrom(model)
    written: list[Path] = []
    linked: dict[Path, str | None] = {}
    pieces: list[tuple[TensorProto, bytes | np.ndarray]] = []  # (tensor, buffer) for the new data file
    for t in _tensors(out):
        if t.data_type == TensorProto.STRING:
            continue
        if weights.is_external(t):
            if weights.is_memory(t):
                pieces.append((t, weights.tensor_array(t, None)))
                continue
            src = (Path(base or ".") / weights.external_info(t)["location"]).resolve()
            if src not in linked:
                linked[src] = _reused(src, target) or _elsewhere(src, target, reuse, len(linked))
            location = linked[src]
            if location is None:
                pieces.append((t, weights.tensor_array(t, base)))
            else:
                _set_location(t, location, weights.external_info(t))
            continue
        raw = t.raw_data if t.HasField("raw_data") else numpy_helper.to_array(t).tobytes()
        if len(raw) >= threshold:
            pieces.append((t, raw))
    if pieces:
        with atomic_writer(data_path) as f:
            pos = 0
            for t, buf in pieces:
                flat = buf if isinstance(buf, bytes) else np.ascontiguousarray(buf).reshape(-1).view(np.uint8)
                view = memoryview(flat)  # type: ignore[arg-type]  # numpy arrays are buffers
                align = _PAGE if view.nbytes >= weights.LARGE_BYTES else _ALIGN
                pad = -pos % align
                f.write(b"\0" * pad)
                pos += pad
                f.write(view)
                for field in ("float_data", "int32_data", "string_data", "int64_data", "double_data", "uint64_data"):
                    t.ClearField(field)
                t.ClearField("raw_data")
                t.data_location = TensorProto.EXTERNAL
                _set_location(t, data_path.name, {"offset": str(pos), "length": str(view.nbytes)})
                pos += view.nbytes
        written.insert(0, data_path)
    if out.ByteSize() > weights.PROTOBUF_LIMIT:
        raise TrtdbgError(f"{target}: the graph is over 2 GB even without weights; it cannot be saved as ONNX")
    written.append(atomic_write_bytes(target, out.SerializeToString()))
    return written


def save_rewritten(
    model: ModelProto,
    path: str | os.PathLike[str],
    base: str | os.PathLike[str] | None,
    source: str | os.PathLike[str],
    *,
    reuse: str = "none",
) -> list[Path]:
    """Write a model trtdbg rewrote from ``source`` (external references relative to ``base``): weights that were
    external stay external (converted and copied weights in ``<name>.data``; unchanged data files elsewhere as
    ``reuse`` says, see :func:`save_model`), small models stay one file."""
    protect = [source, *external_data_files(model, base or ".")]
    return save_model(
        model,
        path,
        external_data=weights.external_bytes(model) > 0,
        threshold=weights.LARGE_BYTES,
        protect=protect,
        base=base,
        reuse=reuse,
    )


def _set_location(t: TensorProto, location: str, info: dict[str, str]) -> None:
    """Point ``t`` at ``location`` with the ``offset``/``length`` of ``info``."""
    del t.external_data[:]
    for key in ("location", "offset", "length"):
        value = location if key == "location" else info.get(key)
        if value is not None:
            entry = t.external_data.add()
            entry.key, entry.value = key, value


def _reused(src: Path, target: Path) -> str | None:
    """The location under which the data file ``src`` can be referenced from ``target``: its name when it is in the
    output's folder, else ``None`` (ONNX's checker and loader reject ``..``, absolute paths, symbolic and hard links,
    so a file elsewhere cannot be shared: its tensors are copied)."""
    return src.name if src.parent == target.parent.resolve() else None


def _elsewhere(src: Path, target: Path, reuse: str, k: int) -> str | None:
    """The location under which ``target`` refers to the data file ``src`` of another folder (``None``: its tensors
    are copied), per ``reuse``."""
    if reuse == "copy":
        return _shared_copy(src, target)
    if reuse == "link":
        return _symlinked(src, target, k)
    return None


def _shared_copy(src: Path, target: Path) -> str:
    """The name of a copy of ``src`` beside ``target``, made (streamed, atomically) unless one of the same size and
    modification time is there already."""
    name = f"shared.{src.name}"
    where = target.parent / name
    st = src.stat()
    try:
        have = where.stat()
        fresh = have.st_size == st.st_size and have.st_mtime_ns == st.st_mtime_ns
    except FileNotFoundError:
        fresh = False
    if not fresh:
        import shutil

        with open(src, "rb") as f, atomic_writer(where) as out:
            shutil.copyfileobj(f, out, 16 << 20)
        os.utime(where, ns=(st.st_atime_ns, st.st_mtime_ns))
    return name


def _symlinked(src: Path, target: Path, k: int) -> str:
    """The name of a symbolic link to ``src`` beside ``target`` (made, or replaced atomically when it points
    elsewhere): trtdbg maps the file it points to, so the weights stay one copy in memory and on disk."""
    name = f"{target.name}.linked{k}.{src.name}"
    where = target.parent / name
    if where.is_symlink() and Path(os.readlink(where)) == src:
        return name
    staged = target.parent / f".{name}.{os.getpid()}"
    staged.unlink(missing_ok=True)
    os.symlink(src, staged)
    os.replace(staged, where)
    return name


def _embedded(model: ModelProto, base: str | os.PathLike[str] | None) -> ModelProto:
    """A copy of ``model`` with every external tensor's values inside the protobuf."""
    out = ModelProto()
    out.CopyFrom(model)
    weights.embed_values([t for t in _tensors(out) if weights.is_external(t)], base)
    return out
