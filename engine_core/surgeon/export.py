"""Write a model, with weights embedded or in one external data file, atomically and never over an input file."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import onnx
from onnx import ModelProto, TensorProto, numpy_helper

from engine_core.errors import TrtdbgError
from engine_core.model.loader import subgraphs_of
from engine_core.surgeon.graph import PROTOBUF_LIMIT
from engine_core.workspace import atomic_write_bytes

DEFAULT_EXTERNAL_THRESHOLD = 1024
"""Tensors of at least this many bytes go to the external data file."""
_ALIGN = 64


def external_data_files(model: ModelProto, base: str | os.PathLike[str]) -> list[Path]:
    """The external data files a model (loaded without its data) refers to, resolved in folder ``base``."""
    found: dict[Path, None] = {}
    for t in _tensors(model):
        if t.data_location == TensorProto.EXTERNAL:
            loc = next((e.value for e in t.external_data if e.key == "location"), "")
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
) -> list[Path]:
    """Write ``model`` to ``path`` (and ``<name>.data`` beside it with ``external_data``); return the files written.

    ``protect`` lists files that must not be overwritten (the input model and its data files). Weights of at least
    ``threshold`` bytes go to the data file; a model over 2 GB must use external data. Every file is written
    atomically, the data file first.
    """
    target, data_path = check_output_path(path, protect, external_data=external_data)
    if not external_data:
        if model.ByteSize() > PROTOBUF_LIMIT:
            raise TrtdbgError(f"{target}: the model is over 2 GB and cannot be saved as one file; add --external-data")
        return [atomic_write_bytes(target, model.SerializeToString())]
    out = ModelProto()
    out.CopyFrom(model)
    blob = bytearray()
    for t in _tensors(out):
        if t.data_location == TensorProto.EXTERNAL or t.data_type == TensorProto.STRING:
            continue
        raw = t.raw_data if t.HasField("raw_data") else numpy_helper.to_array(t).tobytes()
        if len(raw) < threshold:
            continue
        offset = -(-len(blob) // _ALIGN) * _ALIGN
        blob.extend(b"\0" * (offset - len(blob)))
        blob.extend(raw)
        for field in ("float_data", "int32_data", "string_data", "int64_data", "double_data", "uint64_data"):
            t.ClearField(field)
        t.ClearField("raw_data")
        t.data_location = TensorProto.EXTERNAL
        del t.external_data[:]
        for key, value in (("location", data_path.name), ("offset", str(offset)), ("length", str(len(raw)))):
            entry = t.external_data.add()
            entry.key, entry.value = key, value
    if out.ByteSize() > PROTOBUF_LIMIT:
        raise TrtdbgError(f"{target}: the graph is over 2 GB even without weights; it cannot be saved as ONNX")
    written = [atomic_write_bytes(data_path, bytes(blob))]
    written.append(atomic_write_bytes(target, out.SerializeToString()))
    return written
