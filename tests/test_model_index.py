"""ModelIndex on generated models: order, names, subgraphs, tensors, initializers, lazy shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine_core.errors import TrtdbgError
from engine_core.model.index import ModelIndex

F = TensorProto.FLOAT


def _model(
    nodes: list[onnx.NodeProto],
    inputs: list[str] = ("x",),
    outputs: list[str] = ("y",),
    inits: list[onnx.TensorProto] = (),
    value_info: list[onnx.ValueInfoProto] = (),
    shape: list[int | str] | None = (2, 3),
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, F, shape) for n in inputs],
        [helper.make_tensor_value_info(n, F, shape) for n in outputs],
        list(inits),
        value_info=list(value_info),
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _diamond(order: list[int] | None = None) -> onnx.ModelProto:
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="A"),
        helper.make_node("Sigmoid", ["a"], ["b"], name="B"),
        helper.make_node("Tanh", ["a"], ["c"], name="C"),
        helper.make_node("Add", ["b", "c"], ["y"], name="D"),
    ]
    return _model([nodes[i] for i in (order or range(4))])


def test_branches_producers_consumers() -> None:
    index = ModelIndex(_diamond())
    assert [n.name for n in index.nodes()] == ["A", "B", "C", "D"]
    assert len(index) == index.num_top_level == 4
    assert index.inputs == ["x"] and index.outputs == ["y"]
    assert index.producer("a") == 0 and index.producer("y") == 3 and index.producer("x") is None
    assert index.consumers("a") == [1, 2]
    assert index.consumers("y") == [] and index.consumers("x") == [0]
    node = index.node(3)
    assert (node.op_type, node.inputs, node.outputs, node.top_level, node.parent) == (
        "Add",
        ("b", "c"),
        ("y",),
        True,
        None,
    )
    assert index.find("C") == 2 and index.find("nope") is None
    assert index.markable() == ["a", "b", "c", "y"]
    assert index.op_histogram() == {"Relu": 1, "Sigmoid": 1, "Tanh": 1, "Add": 1}


def test_unsorted_graph_is_sorted_stably() -> None:
    index = ModelIndex(_diamond([3, 2, 1, 0]))
    assert [n.name for n in index.nodes()] == ["A", "C", "B", "D"]  # C comes first in the file
    assert index.producer("b") == 2 and index.consumers("a") == [1, 2]
    assert index.markable() == ["a", "c", "b", "y"]


def test_cycle_is_an_error_naming_the_nodes(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("Add", ["x", "t2"], ["t1"], name="first"),
        helper.make_node("Relu", ["t1"], ["t2"], name="second"),
        helper.make_node("Relu", ["t2"], ["y"], name="after"),
    ]
    path = tmp_path / "cyc.onnx"
    onnx.save(_model(nodes), path)
    with pytest.raises(TrtdbgError) as info:
        ModelIndex.load(path)
    msg = str(info.value)
    assert "cycle" in msg and "'first'" in msg and "'second'" in msg and "cyc.onnx" in msg and "\n" not in msg
    assert "'after'" not in msg


def test_unnamed_and_duplicate_names_become_unique() -> None:
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),  # unnamed -> Relu_0, but "Relu_0" is taken below
        helper.make_node("Relu", ["a"], ["b"], name="Relu_0"),
        helper.make_node("Neg", ["b"], ["c"], name="dup"),
        helper.make_node("Neg", ["c"], ["y"], name="dup"),
    ]
    index = ModelIndex(_model(nodes))
    names = index.names()
    assert names == ["Relu_0_1", "Relu_0", "dup", "dup_3"]
    assert [index.node(i).name_synthesized for i in range(4)] == [True, False, False, True]
    assert index.node(0).onnx_name == "" and index.node(3).onnx_name == "dup"
    assert index.find("dup_3") == 3 and index.find("dup") == 2


def _body(
    name: str, nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto]
) -> onnx.GraphProto:
    return helper.make_graph(nodes, name, inputs, outputs)


def _control_flow_model(unsorted: bool = False) -> onnx.ModelProto:
    """Top level: h = Relu(x); If(cond) reads h from its branches; Loop body reads x and holds an If."""
    then_g = _body(
        "then",
        [helper.make_node("Add", ["h", "h"], ["then_out"], name="then_add")],
        [],
        [helper.make_tensor_value_info("then_out", F, [2, 3])],
    )
    else_g = _body(
        "else",
        [helper.make_node("Identity", ["h"], ["else_out"], name="else_id")],
        [],
        [helper.make_tensor_value_info("else_out", F, [2, 3])],
    )
    inner_then = _body(
        "inner_then",
        [helper.make_node("Neg", ["acc_new"], ["inner_out"], name="inner_neg")],
        [],
        [helper.make_tensor_value_info("inner_out", F, [2, 3])],
    )
    inner_else = _body(
        "inner_else",
        [helper.make_node("Identity", ["acc_new"], ["inner_out2"])],
        [],
        [helper.make_tensor_value_info("inner_out2", F, [2, 3])],
    )
    body = _body(
        "body",
        [
            helper.make_node("Add", ["acc", "x"], ["acc_new"], name="body_add"),
            helper.make_node(
                "If", ["cond"], ["acc_out"], name="inner_if", then_branch=inner_then, else_branch=inner_else
            ),
            helper.make_node("Identity", ["cond_in"], ["cond_out"], name="body_cond"),
        ],
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc", F, [2, 3]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_out", F, [2, 3]),
        ],
    )
    relu = helper.make_node("Relu", ["x"], ["h"], name="relu_0")
    if_node = helper.make_node("If", ["cond"], ["branch"], name="if_0", then_branch=then_g, else_branch=else_g)
    loop = helper.make_node("Loop", ["trip", "cond", "branch"], ["y"], name="loop_0", body=body)
    nodes = [if_node, relu, loop] if unsorted else [relu, if_node, loop]
    graph = helper.make_graph(
        nodes,
        "cf",
        [helper.make_tensor_value_info("x", F, [2, 3]), helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", F, [2, 3])],
        [numpy_helper.from_array(np.array(3, np.int64), "trip")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize("unsorted", [False, True])
def test_subgraph_nodes_have_parent_paths(unsorted: bool) -> None:
    index = ModelIndex(_control_flow_model(unsorted))
    assert index.num_top_level == 3
    assert [index.name(i) for i in range(3)] == ["relu_0", "if_0", "loop_0"]  # If reads h from its branches
    assert len(index) == 3 + 1 + 1 + 3 + 1 + 1
    by_name = {n.name: n for n in index.nodes()}
    assert by_name["then_add"].parent == "/if_0/then_branch" and by_name["then_add"].parent_index == 1
    assert by_name["then_add"].subgraph_attr == "then_branch" and not by_name["then_add"].top_level
    assert by_name["else_id"].parent == "/if_0/else_branch"
    assert by_name["body_add"].parent == "/loop_0/body"
    assert by_name["inner_neg"].parent == "/loop_0/body/inner_if/then_branch"
    assert by_name["inner_neg"].parent_index == by_name["inner_if"].index
    # attribute order as stored (onnx.helper sorts attributes by name: else_branch first)
    assert [s.path for s in index.subgraphs] == [
        "/if_0/else_branch",
        "/if_0/then_branch",
        "/loop_0/body",
        "/loop_0/body/inner_if/else_branch",
        "/loop_0/body/inner_if/then_branch",
    ]
    body = index.subgraphs[2]
    assert [index.name(i) for i in range(body.first, body.first + body.count)] == ["body_add", "inner_if", "body_cond"]
    assert body.captures == frozenset({"x", "cond"})
    # the If node reads h through its branches, and the branch nodes read it directly
    assert index.consumers("h") == [1, by_name["else_id"].index, by_name["then_add"].index]
    assert index.consumers("x") == [0, 2, body.first]
    assert index.markable() == ["h", "branch", "y"]  # subgraph tensors are not markable
    assert index.producer("acc_new") == body.first
    assert index.op_histogram(top_level_only=True) == {"Relu": 1, "If": 1, "Loop": 1}
    # inference runs on a sorted copy, so an unsorted file still gets shapes, subgraph tensors included
    assert index.tensor_meta("acc_new").shape == (2, 3) and index.tensor_meta("then_out").shape == (2, 3)
    assert index.shape_inference_error is None


def test_markable_skips_constants_and_empty_optional_outputs() -> None:
    nodes = [
        helper.make_node(
            "Constant", [], ["k"], name="const", value=numpy_helper.from_array(np.ones((2, 3), np.float32))
        ),
        helper.make_node("Add", ["x", "k"], ["a"], name="add"),
        helper.make_node("Dropout", ["a"], ["d", ""], name="drop"),
        helper.make_node("Relu", ["d"], ["y"], name="relu"),
    ]
    index = ModelIndex(_model(nodes))
    assert index.markable() == ["a", "d", "y"]
    assert index.node_outputs(2) == ("d", "")


def test_initializer_metadata_and_lazy_stats() -> None:
    w = np.array([[7e4, 1e-9, 0.0], [-3.0, np.nan, np.inf]], np.float32)
    idx = np.array([1, 2], np.int64)
    nodes = [helper.make_node("Add", ["x", "w"], ["y"], name="add")]
    index = ModelIndex(_model(nodes, inits=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(idx, "i")]))
    assert index.initializer_names == ["w", "i"] and index.is_initializer("w")
    info = index.initializer("w")
    assert (info.dtype, info.shape, info.nbytes, info.external) == (np.dtype("float32"), (2, 3), 24, False)
    assert index.initializers_nbytes() == 24 + 16
    assert index._init_stats == {}  # nothing computed before it is asked for
    st = index.initializer_stats("w")
    assert (st.count, st.nan, st.inf, st.fp16_overflow, st.fp16_underflow) == (6, 1, 1, 1, 1)
    assert st.min == -3.0 and st.max == 7e4 and st.mean == pytest.approx((7e4 + 1e-9 - 3.0) / 4)
    ist = index.initializer_stats("i")
    assert (ist.min, ist.max, ist.fp16_overflow) == (1.0, 2.0, None)
    with pytest.raises(TrtdbgError, match="not an initializer"):
        index.initializer("x")


def test_shape_inference_is_lazy_and_dims_are_typed() -> None:
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="r"),
        helper.make_node("Transpose", ["a"], ["y"], name="t", perm=[1, 0]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", F, ["batch", None])],
        [helper.make_tensor_value_info("y", F, None)],
    )
    index = ModelIndex(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert not index.shapes_inferred
    assert index.tensor_meta("x", infer=False).shape == ("batch", None)
    assert index.tensor_meta("a", infer=False) is None
    assert index.describe_tensor("x", infer=False) == "[dtype=float32, shape=('batch', -1)]"
    assert index.describe_tensor("y", infer=False) == "[dtype=float32]"  # declared without a shape
    assert not index.shapes_inferred
    meta = index.tensor_meta("a")
    assert index.shapes_inferred and index.shape_inference_error is None
    assert meta.dtype == np.float32 and meta.shape[0] == "batch"
    assert isinstance(meta.shape[1], str)  # onnx names the unknown dim (unk__N) so equal dims stay linked
    assert index.tensor_meta("y").shape == (meta.shape[1], "batch")
    assert set(index.shapes()) == {"x", "a", "y"}


def test_shape_inference_failure_falls_back_and_says_why() -> None:
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="r"), helper.make_node("Neg", ["a"], ["y"], name="n")]
    bad_vi = helper.make_tensor_value_info("a", F, [2, 3, 4])  # wrong rank: strict inference fails
    index = ModelIndex(_model(nodes, value_info=[bad_vi]))
    assert index.tensor_meta("y").shape == (2, 3)
    assert index.tensor_meta("a").shape == (2, 3, 4)  # what the model declares
    assert "differ in rank" in index.shape_inference_error and "\n" not in index.shape_inference_error


def test_external_data_model_and_deleted_data_file(tmp_path: Path) -> None:
    w = np.linspace(-1, 1, 4096, dtype=np.float32).reshape(2, 2048)
    nodes = [helper.make_node("Add", ["x", "w"], ["y"], name="add")]
    model = _model(nodes, inits=[numpy_helper.from_array(w, "w")], shape=[2, 2048])
    path = tmp_path / "ext.onnx"
    onnx.save(model, path, save_as_external_data=True, location="ext.bin", size_threshold=0)
    index = ModelIndex.load(path, load_external_data=False)
    assert index.initializer("w").external and index.initializer("w").nbytes == w.nbytes
    assert index.initializer_stats("w").max == pytest.approx(1.0)
    assert index.tensor_meta("y").shape == (2, 2048)  # inference works without the weights
    assert ModelIndex.load(path).initializer_stats("w").min == pytest.approx(-1.0)
    (tmp_path / "ext.bin").unlink()
    with pytest.raises(TrtdbgError) as info:
        ModelIndex.load(path)
    assert "ext.bin" in str(info.value) and "ext.onnx" in str(info.value)
    lazy = ModelIndex.load(path, load_external_data=False)
    with pytest.raises(TrtdbgError, match="cannot read values of initializer 'w'"):
        lazy.initializer_stats("w")


def chain_model(n: int) -> onnx.ModelProto:
    """Add/Mul/Relu chain on [1, 64] with scoped names ``/blk.B/layer.L/Op`` (30 nodes per block)."""
    graph = onnx.GraphProto(name="chain")
    ops = ("Add", "Mul", "Relu")
    prev = "x"
    for i in range(n):
        op = ops[i % 3]
        node = graph.node.add()
        node.op_type, node.name = op, f"/blk.{i // 30}/layer.{(i // 3) % 10}/{op}"
        node.input.append(prev)
        if op != "Relu":
            node.input.append("c_" + op)
        prev = f"t{i}" if i < n - 1 else "y"
        node.output.append(prev)
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.full((1, 64), 0.1, np.float32), "c_Add"),
            numpy_helper.from_array(np.full((1, 64), 0.5, np.float32), "c_Mul"),
        ]
    )
    graph.input.append(helper.make_tensor_value_info("x", F, [1, 64]))
    graph.output.append(helper.make_tensor_value_info("y", F, [1, 64]))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_100k_node_chain(tmp_path: Path) -> None:
    path = tmp_path / "big.onnx"
    onnx.save(chain_model(100_000), path)
    index = ModelIndex.load(path)
    assert len(index) == index.num_top_level == 100_000 and index.subgraphs == []
    assert index.name(12345) == "/blk.411/layer.5/Add" and index.op_type(12345) == "Add"
    assert index.node(12345).inputs == ("t12344", "c_Add")
    assert index.producer("t50000") == 50000 and index.consumers("t50000") == [50001]
    assert len(index.consumers("c_Mul")) == 33_333
    markable = index.markable()
    assert len(markable) == 100_000 and markable[0] == "t0" and markable[-1] == "y"
    assert index.op_histogram() == {"Add": 33_334, "Mul": 33_333, "Relu": 33_333}
    assert index.describe_tensor("t99", infer=False) == "" and not index.shapes_inferred


def test_np_dtype_matches_onnx_mapping() -> None:
    """The built-in table (kept so indexing needs no ``import onnx``) agrees with onnx's own mapping."""
    from engine_core.model.index import np_dtype

    for name, elem_type in onnx.TensorProto.DataType.items():
        try:
            expected = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)) if elem_type else None
        except (KeyError, ValueError, TypeError):
            expected = None
        assert np_dtype(elem_type) == expected, name


@pytest.mark.parametrize("stem", ["ppocrv4_det", "minilm_l6_int8w"])
def test_shape_inference_in_a_child_process_gives_the_same_shapes(stem: str) -> None:
    from tests.conftest import SHARED_MODELS

    path = Path(SHARED_MODELS) / f"{stem}.onnx"
    if not path.exists():
        pytest.skip(f"{path} not present")
    here = ModelIndex.load(path, load_external_data=False)
    apart = ModelIndex.load(path, load_external_data=False)
    apart.infer_shapes(separate_process=True)
    assert apart.shapes_inferred
    assert apart.shapes() == here.shapes() and len(here.shapes()) > len(here.shapes(infer=False))
    assert apart.shape_inference_error == here.shape_inference_error


def test_shape_inference_child_reports_failure_and_can_be_cancelled() -> None:
    from engine_core.jobs import CancelToken

    nodes = [helper.make_node("Relu", ["x"], ["a"], name="r"), helper.make_node("Neg", ["a"], ["y"], name="n")]
    bad_vi = helper.make_tensor_value_info("a", F, [2, 3, 4])  # wrong rank: strict inference fails
    index = ModelIndex(_model(nodes, value_info=[bad_vi]))
    index.infer_shapes(separate_process=True)
    assert index.tensor_meta("y").shape == (2, 3)
    assert "differ in rank" in index.shape_inference_error and "\n" not in index.shape_inference_error
    stopped = ModelIndex(_model(nodes, value_info=[bad_vi]))
    cancel = CancelToken()
    cancel.cancel()
    stopped.infer_shapes(separate_process=True, cancel=cancel)
    assert not stopped.shapes_inferred and stopped.shape_inference_error is None
    assert stopped.tensor_meta("y").shape == (2, 3) and stopped.shapes_inferred  # the next request runs it again


def test_shape_inference_child_reads_the_model_file_when_unchanged(tmp_path: Path, monkeypatch) -> None:
    """No serialized copy of a model parsed from its file (at 100k nodes: 30 ms holding the GIL, 10 MB written)."""
    from engine_core.model import infer_child
    from engine_core.model.synthetic import chain_model

    path = tmp_path / "chain.onnx"
    onnx.save(chain_model(30), path)
    sources: list[Path | None] = []
    real = infer_child.infer_in_child

    def spy(model, cancel=None, source=None):
        sources.append(source)
        return real(model, cancel, source)

    monkeypatch.setattr(infer_child, "infer_in_child", spy)
    from_file = ModelIndex.load(path, load_external_data=False)
    from_file.infer_shapes(separate_process=True)
    here = ModelIndex.load(path, load_external_data=False)
    assert from_file.shapes_inferred and from_file.shapes() == here.shapes()
    assert len(here.shapes()) > len(here.shapes(infer=False))
    ModelIndex(onnx.load(path)).infer_shapes(separate_process=True)  # not parsed from a file: a copy
    changed = ModelIndex.load(path, load_external_data=False)
    onnx.save(chain_model(31), path)  # the file changed since it was indexed: a copy
    changed.infer_shapes(separate_process=True)
    assert changed.shapes_inferred and len(changed) == 30
    assert sources == [path, None, None]
