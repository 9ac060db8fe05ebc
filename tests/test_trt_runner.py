"""TrtRunner and the trt/trt-rtx backend specs without a GPU: parsing, observability, engine cache in the
workspace, profiles, precision specs, weak-typing refusal, and the clear failure when no GPU is present."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from engine_core.backend.trt import spec as trt_spec
from engine_core.comparator.request import unobservable_tensors
from engine_core.errors import TrtdbgError
from engine_core.model.index import ModelIndex
from engine_core.model.synthetic import fp16_copy, small_cnn_model
from engine_core.runners import describe_backends, make_runner


def _runner(path, spec="trt", **kw):
    import onnx

    model = onnx.load(path)
    index = ModelIndex(model, path)
    return make_runner(spec, model, path, observable=index.markable(), unobservable=unobservable_tensors(index), **kw)


def _has_gpu() -> bool:
    from engine_core.backend.trt.devmem import open_device_memory

    try:
        open_device_memory().close()
        return True
    except TrtdbgError:
        return False


def test_specs_listed_and_validated(trt_flavour, save_model) -> None:
    assert "trt:fp16" in describe_backends() and "trt-rtx" in describe_backends()
    path = save_model(small_cnn_model())
    for bad in ("trt:fp8", "trt-foo", "trt:"):
        with pytest.raises(TrtdbgError):
            _runner(path, bad).prepare()
    assert trt_spec.is_trt_spec("TRT-RTX:fp16") and not trt_spec.is_trt_spec("ort-cuda")


def test_runner_observability_and_workspace_cache(trt_flavour, save_model) -> None:
    path = save_model(small_cnn_model(), "cnn.onnx")
    runner = _runner(path, "trt")
    assert runner.name == "trt"
    assert [m.name for m in runner.input_metadata()] == ["input"] and runner.output_names() == ["probs", "features"]
    assert "/relu1/Relu_output_0" in runner.observable_tensors()
    built = runner.build(["/relu1/Relu_output_0"])
    assert not built.cached and built.path.parent == path.parent / ".trtdbg" / "engines"
    again = _runner(path, "trt").build(["/relu1/Relu_output_0"])
    assert again.cached and again.key == built.key
    fusion = runner.fusion()
    assert fusion.tensors["probs"] == "materialized"


def test_runner_unobservable_and_no_gpu(trt_flavour, save_model) -> None:
    path = save_model(small_cnn_model())
    runner = _runner(path, "trt")
    feed = {"input": np.zeros((1, 3, 32, 32), np.float32)}
    with pytest.raises(TrtdbgError, match="'nope' is not observable in trt"):
        runner.infer(feed, ["nope"])
    if _has_gpu():
        pytest.skip("a GPU is present: the no-GPU message cannot be checked here")
    with pytest.raises(TrtdbgError) as info:
        runner.infer(feed)
    msg = str(info.value)
    assert "\n" not in msg and ("GPU" in msg or "not installed" in msg)


def test_dynamic_profiles_from_feed_shapes(trt_flavour, save_model) -> None:
    import onnx

    from tests.graphs import eye, weighted_model

    path = save_model(weighted_model("MatMul", eye(4, "W"), ["batch", 4], ir_version=None), "dyn.onnx")
    runner = _runner(path, "trt")
    with pytest.raises(TrtdbgError, match="input 'x' has a dynamic shape"):
        runner.build_options()
    opts = runner.build_options(shapes={"x": (3, 4)})
    assert opts.profiles == ((("x", (3, 4), (3, 4), (3, 4)),),)
    assert runner.build(shapes={"x": (3, 4)}).plan
    onnx.checker.check_model(onnx.load(path))


def test_precision_specs(trt_flavour, save_model, monkeypatch) -> None:
    path = save_model(small_cnn_model())
    registered = trt_spec._rewriter
    if registered is not None:  # the precision engine's whole-model rewrite: a strongly typed FP16 engine
        runner = _runner(path, "trt:fp16")
        assert runner.options.precision.startswith("fp16") and runner.name == "trt:fp16"
        info = runner.engine_info(runner.build())
        if info is not None:
            assert "Half" in {t.dtype for layer in info.layers for t in layer.outputs}
    monkeypatch.setattr(trt_spec, "_rewriter", None)
    with pytest.raises(TrtdbgError, match="precision-plan rewriter is not available"):
        _runner(path, "trt:fp16")
    calls = []

    def rewriter(model, model_path, precision):
        calls.append(precision)
        return fp16_copy(model), f"{precision} plan test"

    monkeypatch.setattr(trt_spec, "_rewriter", rewriter)
    runner = _runner(path, "trt:fp16")
    assert calls == ["fp16"] and runner.options.precision == "fp16 plan test"
    built = runner.build()
    info = runner.engine_info(built)
    if info is not None:
        assert "Half" in {t.dtype for layer in info.layers for t in layer.outputs}


def test_weak_typing_refused_where_absent(trt_flavour, save_model) -> None:
    from engine_core.backend.trt.legacy import parse_layer_precisions, weak_settings
    from engine_core.backend.trt.runner import TrtOptions

    assert parse_layer_precisions(["a:fp16,b:c:fp32"]) == {"a": "fp16", "b:c": "fp32"}
    with pytest.raises(TrtdbgError, match="cannot read 'x'"):
        parse_layer_precisions(["x"])
    weak = weak_settings(layer_precisions=["/conv1/Conv:fp32"])
    assert ("weak", "1") in weak and ("precision_constraints", "obey") in weak
    path = save_model(small_cnn_model())
    runner = _runner(path, "trt:fp16", trt_options=TrtOptions(weak=weak))
    assert dict(runner.options.weak)["fp16"] == "1"
    with pytest.raises(TrtdbgError, match="calibration"):
        _runner(path, "trt:fp16", trt_options=TrtOptions(weak=weak_settings(calibration_cache="c.cache")))
    if trt_flavour.weak_typing:
        pytest.skip(f"{trt_flavour.label} has weak typing; the refusal is for TensorRT 11 and TensorRT-RTX")
    with pytest.raises(TrtdbgError, match=r"has no weak typing .*trt:fp16 or trt:int8 builds strongly typed"):
        runner.prepare()


def test_trt_options_from_cli_args(trt_flavour) -> None:
    from tui.cli.commands.trt_cli import add_trt_args, trt_options_from_args

    p = argparse.ArgumentParser()
    add_trt_args(p)
    a = p.parse_args(
        [
            "--trt-min-shapes",
            "x:1x4",
            "--trt-opt-shapes",
            "x:4x4",
            "--trt-max-shapes",
            "x:[8,4]",
            "--trt-pool-limit",
            "1G",
            "--trt-opt-level",
            "2",
            "--no-engine-cache",
            "--trt-module",
            "tensorrt_rtx",
        ]
    )
    o = trt_options_from_args(a)
    assert o.profiles == ((("x", (1, 4), (4, 4), (8, 4)),),) and o.pool_limit == 1 << 30 and o.opt_level == 2
    assert o.cache_dir == "" and o.module == "tensorrt_rtx" and o.weak == ()
    with pytest.raises(TrtdbgError, match="need --weak-typing"):
        trt_options_from_args(p.parse_args(["--layer-precisions", "a:fp16"]))
