"""Shape specs and default shapes, including real models run in onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine_core.data.generate import RandomDataLoader
from engine_core.data.shapes import parse_shapes, resolve_shapes
from engine_core.errors import TrtdbgError
from engine_core.types import TensorMeta
from tests.conftest import SHARED_MODELS

MODELS = SHARED_MODELS
needs_models = pytest.mark.skipif(not MODELS.is_dir(), reason=f"{MODELS} (shared real models) is absent")


def test_parse_x_and_bracket_forms() -> None:
    assert parse_shapes(["x:1x3x640x640"]) == {"x": (1, 3, 640, 640)}
    assert parse_shapes(["x:[1,3,640,640]"]) == {"x": (1, 3, 640, 640)}
    assert parse_shapes(["x:[1, 3]", "y:(4,)", "s:[]"]) == {"x": (1, 3), "y": (4,), "s": ()}


def test_parse_comma_separated_issue_3744() -> None:
    # Polygraphy parses this as one input 'input_ids:3x128,attention_mask' with shape ('3','x','1','2','8')
    assert parse_shapes(["input_ids:3x128,attention_mask:3x128"]) == {"input_ids": (3, 128), "attention_mask": (3, 128)}
    assert parse_shapes(["a:[3,128],b:[3,128]"]) == {"a": (3, 128), "b": (3, 128)}


def test_parse_names_with_colons() -> None:
    assert parse_shapes(["ns:input:0:1x2"]) == {"ns:input:0": (1, 2)}
    assert parse_shapes(["ns:input:0:[1,2],other:3"]) == {"ns:input:0": (1, 2), "other": (3,)}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("x", "bad shape spec 'x'"),
        ("x:", "bad shape spec 'x:'"),
        (":1x2", "bad shape spec ':1x2'"),
        ("x:1xx2", "bad shape spec 'x:1xx2'"),
        ("x:[1,-1]", "bad shape spec 'x:[1,-1]'"),
        ("x:[a,b]", "bad shape spec 'x:[a,b]'"),
        ("input_ids,3x128", "bad shape spec 'input_ids' in 'input_ids,3x128'"),
        ("x:1x2,x:1x2", "shape for input 'x' given twice"),
    ],
)
def test_parse_errors_name_the_offending_text(spec: str, expected: str) -> None:
    with pytest.raises(TrtdbgError) as info:
        parse_shapes([spec])
    message = str(info.value)
    assert "\n" not in message
    assert expected in message


def test_bad_spec_error_shows_expected_syntax() -> None:
    with pytest.raises(TrtdbgError, match=r"'x:1xx2'.*NAME:1x3x224x224"):
        parse_shapes(["x:1xx2"])


def _meta(name: str, shape: tuple | None, dtype: type = np.float32) -> TensorMeta:
    return TensorMeta(name, np.dtype(dtype), shape)


def test_positional_defaults() -> None:
    metas = [
        _meta("img", (None, None, None, None)),
        _meta("seq", (-1, -1)),
        _meta("feat", ("?", "?", "?")),
        _meta("vec", ("",)),
        _meta("vol", (None, None, None, None, None)),
        _meta("fixed", (2, 5)),
    ]
    assert resolve_shapes(metas, {}) == {
        "img": (1, 3, 224, 224),
        "seq": (1, 128),
        "feat": (1, 128, 128),
        "vec": (1,),
        "vol": (1, 1, 1, 1, 1),
        "fixed": (2, 5),
    }


def test_symbol_roles_and_sharing() -> None:
    metas = [
        _meta("input_ids", ("batch_size", "sequence_length"), np.int64),
        _meta("attention_mask", ("batch_size", "sequence_length"), np.int64),
        _meta("pixels", ("N", 3, "height", "imgWidth")),
        _meta("audio", ("B", "n_tokens", "T", "feat")),
    ]
    shapes = resolve_shapes(metas, {"input_ids": (4, 77)})
    assert shapes["attention_mask"] == (4, 77)  # shared symbols follow the override
    assert shapes["pixels"] == (1, 3, 224, 224)
    assert shapes["audio"] == (1, 128, 128, 224)  # 'feat' has no role: positional rank-4 dim 3
    assert resolve_shapes(metas, {})["input_ids"] == (1, 128)


def test_anonymous_dims_are_not_shared() -> None:
    metas = [_meta("a", ("?", "?")), _meta("b", (None, None, None, None))]
    assert resolve_shapes(metas, {"a": (5, 9)}) == {"a": (5, 9), "b": (1, 3, 224, 224)}


def test_override_errors() -> None:
    metas = [_meta("x", ("n", 3, "h", "w")), _meta("y", None)]
    with pytest.raises(TrtdbgError, match=r"unknown input 'z'.*x, y"):
        resolve_shapes(metas, {"z": (1,)})
    with pytest.raises(TrtdbgError, match=r"1x4x8x8 for input 'x'.*\[n, 3, h, w\]"):
        resolve_shapes(metas, {"x": (1, 4, 8, 8), "y": (1,)})
    with pytest.raises(TrtdbgError, match=r"1x3x8 for input 'x'.*give 4 dims"):
        resolve_shapes(metas, {"x": (1, 3, 8), "y": (1,)})
    with pytest.raises(TrtdbgError, match=r"input 'y' has no shape"):
        resolve_shapes(metas, {})
    assert resolve_shapes(metas, {"y": (2, 2)})["y"] == (2, 2)  # unknown rank: any override


def _onnx_input_metas(path: Path) -> list[TensorMeta]:
    import onnx
    from onnx.helper import tensor_dtype_to_np_dtype

    graph = onnx.load(str(path), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    metas = []
    for value in graph.input:
        if value.name in inits:
            continue
        tensor = value.type.tensor_type
        dims = tuple(
            d.dim_value if d.HasField("dim_value") else (d.dim_param if d.HasField("dim_param") else None)
            for d in tensor.shape.dim
        )
        metas.append(TensorMeta(value.name, np.dtype(tensor_dtype_to_np_dtype(tensor.elem_type)), dims))
    return metas


def _run_ort(path: Path, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 4
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, feed)


@needs_models
@pytest.mark.parametrize(
    ("stem", "overrides", "expected"),
    [
        ("ppocrv4_det", [], {"x": (1, 3, 224, 224)}),
        ("magika_v3_3", [], {"bytes": (1, 2048)}),
        # rec's height is an anonymous '?' and the model only accepts heights < 96: it needs an override
        ("ppocrv4_rec", ["x:1x3x48x320"], {"x": (1, 3, 48, 320)}),
    ],
)
def test_real_models_run_with_resolved_shapes(stem: str, overrides: list[str], expected: dict) -> None:
    path = MODELS / f"{stem}.onnx"
    metas = _onnx_input_metas(path)
    shapes = resolve_shapes(metas, parse_shapes(overrides))
    assert shapes == expected
    feed = next(iter(RandomDataLoader(metas, shapes, val_range={"": (0.0, 255.0)} if stem == "magika_v3_3" else None)))
    outputs = _run_ort(path, feed)
    assert outputs and all(np.isfinite(o).all() for o in outputs)


@needs_models
def test_rec_default_shape_follows_documented_rules() -> None:
    metas = _onnx_input_metas(MODELS / "ppocrv4_rec.onnx")
    assert metas[0].shape == ("p2o.DynamicDimension.0", 3, "?", "p2o.DynamicDimension.1")
    assert resolve_shapes(metas, {}) == {"x": (1, 3, 224, 224)}
