"""The three real models in ../shared/models (read-only): load, check, index, scopes, inspect."""

from __future__ import annotations

import numpy as np
import pytest

from engine_core.model.index import ModelIndex
from engine_core.model.inspect import inspect_json, inspect_text
from engine_core.model.loader import check_runtime_support, load_model
from engine_core.model.scopes import ScopeTree
from tests.conftest import SHARED_MODELS

MODELS = SHARED_MODELS


def _load(name: str) -> ModelIndex:
    path = MODELS / name
    if not path.exists():
        pytest.skip(f"{path} not present (real models live in /work/shared/models)")
    model = load_model(path)
    check_runtime_support(model, path)
    return ModelIndex(model, path)


def test_ppocrv4_det() -> None:
    index = _load("ppocrv4_det.onnx")
    assert index.opsets == {"ai.onnx": 12}
    assert len(index) == index.num_top_level == 672 and index.subgraphs == []
    hist = index.op_histogram()
    assert hist["Constant"] == 342 and {"Conv", "Resize", "ConvTranspose"} <= set(hist)
    assert index.initializer_names == []
    assert len(index.markable()) == 672 - 342
    x = index.tensor_meta("x", infer=False)
    assert (
        x.dtype == np.float32
        and x.shape[1] == 3
        and all(isinstance(d, str) for d in (x.shape[0], x.shape[2], x.shape[3]))
    )
    assert index.node(0).name == "Constant_0" and index.node(0).name_synthesized  # Paddle leaves Constants unnamed
    root = ScopeTree(index).children()
    assert len(root) == 672 and all(e.kind == "node" for e in root)  # Paddle names have no '/' scopes
    out = index.outputs[0]
    assert index.tensor_meta(out).shape[1] == 1 and index.shape_inference_error is None
    assert len(index.shapes()) > 600


def test_ppocrv4_rec() -> None:
    index = _load("ppocrv4_rec.onnx")
    assert len(index) == 860 and index.opsets == {"ai.onnx": 12}
    assert {"MatMul", "Softmax", "ReduceMean", "Cast"} <= set(index.op_histogram())
    (out,) = index.outputs
    assert index.tensor_meta(out, infer=False).shape[-1] == 6625
    assert index.consumers(index.inputs[0])


def test_magika() -> None:
    index = _load("magika_v3_3.onnx")
    assert len(index) == 95 and index.opsets == {"ai.onnx": 15, "ai.onnx.ml": 2}
    assert index.inputs == ["bytes"]
    meta = index.tensor_meta("bytes", infer=False)
    assert meta.dtype == np.int32 and meta.shape[1] == 2048
    assert len(index.initializer_names) == 36
    stats = index.initializer_stats("jax2tf_get_logits_/Const:0")
    assert stats.shape == (257, 64) and stats.nan == 0 and stats.fp16_overflow == 0
    root = ScopeTree(index).children()
    assert [(e.kind, e.label, e.node_count) for e in root][:1] == [("scope", "jax2tf_get_logits_", 94)]
    data = inspect_json(index, ["layers"])
    assert data["nodes"]["count"] == 95 and len(data["tensors"]) > 95


def test_magika_text_matches_polygraphy() -> None:
    index = _load("magika_v3_3.onnx")
    pytest.importorskip("polygraphy")
    from polygraphy.backend.onnx.util import str_from_onnx

    ours = inspect_text(index, ["layers", "attrs"], shape_inference=False)
    theirs = str_from_onnx(index.model, show_layers=True, show_attrs=True)
    assert ours.split("\n", 1)[1].rstrip("\n") == theirs.rstrip("\n")
