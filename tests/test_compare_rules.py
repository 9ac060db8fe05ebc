"""trtdbg's verdict rules beyond Polygraphy's: matched ±inf, integer tolerance, first failing float tensor."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine_core.comparator.metrics import compare_tensors
from engine_core.comparator.tolerances import CompareSettings
from engine_core.model.synthetic import masked_attention_model, quantized_matmul_model
from tests.conftest import run_cli, shared_model_and_loader


def _compare(*args: str) -> tuple[int, dict]:
    proc = run_cli("compare", *args, "--json", "--quiet")
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_matched_infinities_are_equal_by_default(save_model, tmp_path: Path) -> None:
    model = str(save_model(masked_attention_model(), "attn.onnx"))
    common = (model, "--subject", "ort", "--mark", "all", "--workspace", str(tmp_path / "ws"))
    rc, doc = _compare(*common)
    assert rc == 0 and doc["passed"]
    assert doc["summary"]["matched_inf_tensors"] >= 2  # the mask bias, Log(0), the scores they reach
    masked = {t["name"]: t for t in doc["tensors"] if t["inf_matched"]}
    assert "/attn/rel/Log_output_0" in masked and all(t["passed"] for t in masked.values())
    assert all(
        t["cosine"] == pytest.approx(1.0) for t in doc["tensors"]
    )  # identical runs: matched ±inf do not make it NaN
    text = run_cli("compare", *common, "--quiet").stdout
    assert "hold the same ±inf on both sides (counted equal)" in text

    rc, poly = _compare(*common, "--polygraphy-defaults")
    assert rc == 1 and not poly["passed"]
    failing = {t["name"] for t in poly["tensors"] if not t["passed"]}
    assert failing == set(masked)  # only the tensors holding matched infinities: inf - inf = NaN
    assert poly["first_failing"]["name"] in masked
    rc, opt_in = _compare(*common, "--polygraphy-defaults", "--infinities-compare-equal")
    assert rc == 0


def test_nan_always_fails() -> None:
    ref = np.array([1.0, np.nan, -np.inf], np.float32)
    (st,) = compare_tensors(["t"], [ref.copy()], [ref], CompareSettings())
    assert not st.passed and st.mismatches == 1 and st.inf_matched == 1


@pytest.mark.parametrize("settings,passes", [(CompareSettings(), True), (CompareSettings(int_atol=0.0), False)])
def test_quantized_integers_get_one_unit(settings: CompareSettings, passes: bool) -> None:
    ref = np.arange(0, 200, dtype=np.uint8)
    sub = ref.copy()
    sub[::7] += 1
    acc = np.arange(-50, 50, dtype=np.int32)
    ids = np.arange(10, dtype=np.int64)
    res = compare_tensors(["q", "acc", "ids"], [sub, acc - 1, ids + 1], [ref, acc, ids], settings)
    assert [r.passed for r in res] == [passes, passes, False]  # int64 (shapes, ids) stays exact
    assert res[0].atol == (1.0 if passes else 1e-5)
    named = CompareSettings.from_specs(atol=["q:0"])  # --atol NAME:VAL wins over the integer default
    assert not compare_tensors(["q"], [sub], [ref], named)[0].passed
    assert not compare_tensors(["q"], [sub], [ref], CompareSettings.from_specs(polygraphy_defaults=True))[0].passed


def test_first_failing_float_skips_quantized_tensors(save_model, tmp_path: Path) -> None:
    model = str(save_model(quantized_matmul_model(), "q.onnx"))
    subject = str(save_model(quantized_matmul_model(scale=0.998), "q_sub.onnx"))
    common = (model, "--subject-model", subject, "--mark", "all", "--workspace", str(tmp_path / "ws"))
    common += ("--atol", "/in/Mul_output_0:0.01")  # the perturbation itself is not the finding
    rc, doc = _compare(*common)
    tensors = {t["name"]: t for t in doc["tensors"]}
    x_q = tensors["x_q"]
    assert x_q["dtype"] == "uint8" and x_q["max_abs"] == 1.0 and x_q["passed"]
    assert doc["first_failing"]["name"] == "/fc/MatMulInteger_output_0"  # int32 accumulators: |w| units apart
    assert doc["first_failing_float"]["name"] == "/fc/Cast_output_0"
    rc, flt = _compare(*common, "--first-failing", "float")
    assert flt["first_failing_kind"] == "float" and flt["first_failing"]["name"] == "/fc/Cast_output_0"
    rc, exact = _compare(*common, "--int-atol", "0")
    assert exact["first_failing"]["name"] == "x_q"


def test_real_int8_encoder_rules(tmp_path: Path) -> None:
    model, loader = shared_model_and_loader("minilm_l6_int8w.onnx")
    common = (str(model), "--mark", "all", "--data-loader-script", loader, "--workspace", str(tmp_path))
    rc, same = _compare(*common, "--subject", "ort", "--polygraphy-defaults")
    assert rc == 0 and same["summary"]["compared"] == 4 * 385
    rc, fp16 = _compare(*common, "--subject", "ort:fp16", "--first-failing", "float")
    assert rc == 1
    first = fp16["first_failing"]
    kinds = {t["name"]: t["ref_dtype"] for t in fp16["tensors"]}
    assert kinds[first["name"]].startswith("float")
    assert all(t["passed"] for t in fp16["tensors"] if t["ref_dtype"] == "int64")


@pytest.mark.parametrize("n", [8, 1 << 17])  # full statistics and the streaming path
def test_cosine_of_matched_infinities_is_over_the_other_elements(n: int) -> None:
    ref = np.linspace(-1, 1, n, dtype=np.float32)
    ref[::4] = -np.inf
    sub = ref * np.float32(1.5)
    (same,) = compare_tensors(["t"], [ref.copy()], [ref], CompareSettings())
    (scaled,) = compare_tensors(["t"], [sub], [ref], CompareSettings())
    assert same.cosine == pytest.approx(1.0) and same.snr_db == np.inf
    assert scaled.cosine == pytest.approx(1.0) and np.isfinite(scaled.snr_db)
