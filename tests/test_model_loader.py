"""load_model / check_runtime_support: every failure is one actionable TrtdbgError line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine_core.errors import TrtdbgError
from engine_core.model.loader import check_runtime_support, load_model, max_onnxruntime_opset, model_opsets


def _relu_model(
    opset: int = 17,
    op: str = "Relu",
    domain: str = "",
    extra_opsets: dict[str, int] | None = None,
    weight: np.ndarray | None = None,
) -> onnx.ModelProto:
    inputs = ["x"] + (["w"] if weight is not None else [])
    node = helper.make_node(op, inputs, ["y"], name="n0", domain=domain)
    inits = [numpy_helper.from_array(weight, "w")] if weight is not None else []
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
        inits,
    )
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in (extra_opsets or {}).items()]
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


def _one_line_error(fn, *args, **kwargs) -> str:
    with pytest.raises(TrtdbgError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_loads_valid_model_without_modifying_it(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_relu_model(), path)
    before = path.read_bytes()
    model = load_model(path)
    assert [n.op_type for n in model.graph.node] == ["Relu"]
    assert model_opsets(model) == {"ai.onnx": 17}
    assert path.read_bytes() == before


def test_missing_file_and_folder(tmp_path: Path) -> None:
    msg = _one_line_error(load_model, tmp_path / "nope.onnx")
    assert "not found" in msg and "nope.onnx" in msg
    msg = _one_line_error(load_model, tmp_path)
    assert "folder" in msg


def test_empty_truncated_and_garbage_files(tmp_path: Path) -> None:
    good = tmp_path / "good.onnx"
    onnx.save(_relu_model(weight=np.ones((2, 4), np.float32)), good)
    data = good.read_bytes()
    (tmp_path / "empty.onnx").write_bytes(b"")
    (tmp_path / "trunc.onnx").write_bytes(data[: len(data) - 20])
    (tmp_path / "garbage.onnx").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "text.onnx").write_text("hello world, not a model\n")
    assert "empty" in _one_line_error(load_model, tmp_path / "empty.onnx")
    for name in ("trunc.onnx", "garbage.onnx", "text.onnx"):
        msg = _one_line_error(load_model, tmp_path / name)
        assert name in msg and "re-export" in msg


def test_external_data_loaded_checked_and_missing(tmp_path: Path) -> None:
    weight = np.arange(8192, dtype=np.float32).reshape(2, 4096)
    model = _relu_model(op="Add", weight=weight)
    model.graph.input[0].CopyFrom(helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4096]))
    path = tmp_path / "ext.onnx"
    onnx.save(
        model,
        path,
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="ext.onnx.data",
        size_threshold=0,
    )
    loaded = load_model(path)
    np.testing.assert_array_equal(numpy_helper.to_array(loaded.graph.initializer[0]), weight)
    lazy = load_model(path, load_external_data=False)
    assert lazy.graph.initializer[0].data_location == TensorProto.EXTERNAL

    moved = tmp_path / "data_dir"
    moved.mkdir()
    (tmp_path / "ext.onnx.data").rename(moved / "ext.onnx.data")
    msg = _one_line_error(load_model, path)
    assert "ext.onnx.data" in msg and "ext.onnx" in msg and "--external-data-dir" in msg
    assert load_model(path, external_data_dir=moved).graph.initializer[0].data_location != TensorProto.EXTERNAL
    assert load_model(path, load_external_data=False).graph.initializer[0].name == "w"

    (moved / "ext.onnx.data").write_bytes(b"\0" * 16)
    assert "shorter" in _one_line_error(load_model, path, external_data_dir=moved)


def test_unknown_op_custom_domain_and_accepted_domains() -> None:
    msg = _one_line_error(check_runtime_support, _relu_model(op="FancyRelu"), "m.onnx")
    assert "FancyRelu" in msg and "'n0'" in msg and "m.onnx" in msg and "ai.onnx" in msg
    msg = _one_line_error(
        check_runtime_support, _relu_model(op="MyOp", domain="my.company", extra_opsets={"my.company": 1})
    )
    assert "my.company" in msg and "MyOp" in msg and "custom-op" in msg
    check_runtime_support(_relu_model(op="FusedGemm", domain="com.microsoft", extra_opsets={"com.microsoft": 1}))
    msg = _one_line_error(check_runtime_support, _relu_model(opset=17, op="Gelu"))
    assert "opset >= 20" in msg


def test_model_local_function_domain_is_accepted() -> None:
    fn = helper.make_function(
        "local.fn", "Double", ["a"], ["b"], [helper.make_node("Add", ["a", "a"], ["b"])], [helper.make_opsetid("", 17)]
    )
    model = _relu_model(op="Double", domain="local.fn", extra_opsets={"local.fn": 1})
    model.functions.append(fn)
    check_runtime_support(model)


def test_opset_newer_than_onnxruntime() -> None:
    limit = max_onnxruntime_opset(40)
    assert 21 <= limit < 40
    msg = _one_line_error(check_runtime_support, _relu_model(opset=limit + 1), "new.onnx")
    assert f"opset {limit + 1}" in msg and f"at most {limit}" in msg and "re-export" in msg
    check_runtime_support(_relu_model(opset=limit))
    check_runtime_support(_relu_model(opset=limit + 1), onnxruntime=False)
