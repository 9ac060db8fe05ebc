"""Several TensorRT optimization profiles: repeated --trt-min/opt/max-shapes groups, built with TensorRT(-RTX),
and the runner's choice of the profile that holds a feed."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from engine_core.backend.trt import build
from engine_core.backend.trt.runner import _profile_for
from engine_core.data.shapes import parse_profiles
from engine_core.errors import TrtdbgError
from tests.graphs import eye, weighted_model
from tui.cli.commands.trt_cli import trt_options_from_args
from tui.cli.main import build_parser

GROUPS = [
    "--trt-min-shapes", "x:1x4", "--trt-opt-shapes", "x:2x4", "--trt-max-shapes", "x:4x4",
    "--trt-min-shapes", "x:[8,4]", "--trt-opt-shapes", "x:16x4", "--trt-max-shapes", "x:32x4",
]  # fmt: skip


def _dyn_model():
    return weighted_model("MatMul", eye(4, "W"), ["n", 4])


def test_repeated_groups_make_one_profile_each() -> None:
    args = build_parser().parse_args(["compare", "m.onnx", *GROUPS])
    profiles = trt_options_from_args(args).profiles
    assert profiles == ((("x", (1, 4), (2, 4), (4, 4)),), (("x", (8, 4), (16, 4), (32, 4)),))
    one = build_parser().parse_args(["compare", "m.onnx", "--trt-opt-shapes", "x:2x4"])
    assert trt_options_from_args(one).profiles == ((("x", (2, 4), (2, 4), (2, 4)),),)
    with pytest.raises(TrtdbgError, match="given 2/1/0 times"):
        parse_profiles([["x:1x4"], ["x:8x4"]], [["x:2x4"]], [])


def test_two_profiles_built_with_tensorrt(trt_flavour) -> None:
    args = build_parser().parse_args(["compare", "m.onnx", *GROUPS])
    parsed = build.parse_onnx(trt_flavour, _dyn_model())
    built = build.build_engine(parsed, build.BuildOptions(profiles=trt_options_from_args(args).profiles), digest="p2")
    assert built.plan
    if built.meta["layers_text"]:  # TensorRT-RTX logs the engine's I/O with its profiles
        from engine_core.backend.trt.inspector import from_layer_text

        x = next(t for t in from_layer_text(built.meta["layers_text"]).io if t.name == "x")
        assert [(p["MinShape"], p["MaxShape"]) for p in x.profiles] == [([1, 4], [4, 4]), ([8, 4], [32, 4])]


def test_runner_picks_the_profile_holding_the_feed() -> None:
    shapes = {0: ((1, 4), (2, 4), (4, 4)), 1: ((8, 4), (16, 4), (32, 4))}
    engine = SimpleNamespace(num_optimization_profiles=2, get_tensor_profile_shape=lambda name, k: shapes[k])
    assert _profile_for(engine, ["x"], {"x": np.zeros((3, 4))}) == 0
    assert _profile_for(engine, ["x"], {"x": np.zeros((20, 4))}) == 1
    assert _profile_for(engine, ["x"], {"x": np.zeros((6, 4))}) == 0  # none fits: profile 0 reports the error


def test_saved_plan_as_subject_is_deserialized(trt_flavour, save_model, tmp_path) -> None:
    """`compare MODEL --subject-model x.plan`: the engine file is read and handed to TensorRT's deserializer.

    Without a usable GPU (this CI machine), TensorRT's own deserialize call fails and that is the one-line error;
    with one, the engine's outputs are compared with ONNX Runtime's.
    """
    from engine_core.model.synthetic import small_cnn_model
    from tests.conftest import run_cli

    model = save_model(small_cnn_model(), "cnn.onnx")
    plan = tmp_path / "cnn.plan"
    built = run_cli("convert", str(model), "-o", str(plan))
    assert built.returncode == 0 and plan.stat().st_size > 0, built.stderr
    proc = run_cli(
        "compare", str(model), "--subject-model", str(plan), "--atol", "1e-3", "--rtol", "1e-3", "--json",
        "--workspace", str(tmp_path / "ws"),
    )  # fmt: skip
    if proc.returncode == 2:
        assert proc.stderr.count("\n") == 1 and f"cannot load engine {plan}" in proc.stderr
        assert "deserializeCudaEngine" in proc.stderr or "GPU" in proc.stderr
    else:
        doc = json.loads(proc.stdout)
        assert doc["passed"] and doc["tensors"][0]["name"] == "probs"
    missing = run_cli("compare", str(model), "--subject-model", str(tmp_path / "nope.plan"))
    assert missing.returncode == 2 and "cannot read engine" in missing.stderr
