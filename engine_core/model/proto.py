"""The ONNX protobuf classes (``ModelProto``, ``NodeProto``, …) without importing the ``onnx`` package.

``import onnx`` costs about a second of CPU, nearly all of it ``ml_dtypes`` registering its dtypes with
numpy; parsing and indexing a model needs none of that. This module executes onnx's generated
``onnx/onnx_ml_pb2.py`` (which needs only protobuf) under a private name: protobuf builds one class per
descriptor, so these are onnx's own classes (``ModelProto is onnx.ModelProto`` once onnx is imported).
Where that file is missing (another onnx layout) it imports onnx.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

_GENERATED = "onnx.onnx_ml_pb2"


def _generated() -> ModuleType:
    """onnx's generated protobuf module; run from its file when the ``onnx`` package is not imported yet."""
    if "onnx" in sys.modules:
        return importlib.import_module(_GENERATED)
    spec = importlib.util.find_spec("onnx")  # locates the package without running it
    folders = spec.submodule_search_locations if spec is not None else None
    source = Path(folders[0]) / "onnx_ml_pb2.py" if folders else None
    file_spec = (
        importlib.util.spec_from_file_location(f"{__name__}._onnx_ml_pb2", source)
        if source is not None and source.is_file()
        else None
    )
    if file_spec is None or file_spec.loader is None:
        return importlib.import_module(_GENERATED)
    module = importlib.util.module_from_spec(file_spec)
    file_spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:
    from onnx import AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, TypeProto
else:
    _pb = _generated()
    AttributeProto = _pb.AttributeProto
    GraphProto = _pb.GraphProto
    ModelProto = _pb.ModelProto
    NodeProto = _pb.NodeProto
    TensorProto = _pb.TensorProto
    TypeProto = _pb.TypeProto

__all__ = [
    "AttributeProto",
    "GraphProto",
    "ModelProto",
    "NodeProto",
    "TensorProto",
    "TypeProto",
    "plain_attribute_value",
]

_PLAIN_FIELDS = {
    AttributeProto.FLOAT: "f",
    AttributeProto.INT: "i",
    AttributeProto.STRING: "s",
    AttributeProto.FLOATS: "floats",
    AttributeProto.INTS: "ints",
    AttributeProto.STRINGS: "strings",
}


def plain_attribute_value(attr: AttributeProto) -> float | int | str | list[Any] | None:
    """The value of a float, int or string attribute or a list of them, read straight from the protobuf
    (``onnx.helper.get_attribute_value`` would import onnx); strings decoded as UTF-8 (bad bytes replaced).
    ``None`` for the other types (tensors, graphs, type protos)."""
    field = _PLAIN_FIELDS.get(attr.type)
    if field is None:
        return None
    value = getattr(attr, field)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (float, int)):
        return value
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value]
