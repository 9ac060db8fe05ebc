"""``trtdbg debug build``: repeated real builds (TensorRT-RTX in CI, no GPU), a check that sorts engines into good/bad,
and the comparison of engine layer properties between the groups."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from engine_core.backend.trt.debug_build import Iteration, differences, parse_until
from engine_core.errors import TrtdbgError
from engine_core.model.synthetic import small_cnn_model
from tui.cli.main import main


def _it(k: int, verdict: str, layers: dict) -> Iteration:
    return Iteration(k, verdict, f"e{k}.plan", f"{k:064x}", 0.1, None, layers)


def test_differences_name_bad_only_values() -> None:
    conv = {"type": "Convolution", "precision": "Half", "tactic": "t1", "formats": ""}
    good = [
        _it(0, "good", {"conv": conv, "relu": dict(conv, type="Activation")}),
        _it(1, "good", {"conv": dict(conv, tactic="t2"), "relu": dict(conv, type="Activation")}),
    ]
    bad = [_it(2, "bad", {"conv": dict(conv, tactic="t3"), "fused": dict(conv, type="Myelin")})]
    diffs = differences(good, bad)
    texts = [d["text"] for d in diffs]
    assert "'conv' tactic: good t1, t2 | bad t3" in texts
    assert "layer 'relu' only in good engines" in texts and "layer 'fused' only in bad engines" in texts
    assert not any(d["property"] == "precision" for d in diffs)  # same in both groups
    assert differences(good, [_it(3, "bad", None)]) == []  # no listing, no claim
    assert parse_until("good") == "good" and parse_until("3") == 3
    with pytest.raises(TrtdbgError):
        parse_until("0")


def test_check_sorts_engines(trt_flavour, save_model, tmp_path: Path, capsys) -> None:
    model = save_model(small_cnn_model(), "cnn.onnx")
    check = tmp_path / "check.py"
    check.write_text(
        "import os, sys\n"
        "ok = os.path.getsize(sys.argv[1]) > 0 and sys.argv[1] == os.environ['TRTDBG_ENGINE']\n"
        "sys.exit(0 if ok and int(os.environ['TRTDBG_ITERATION']) % 2 == 0 else 1)\n"
    )
    art = tmp_path / "art"
    rc = main(
        [
            "debug",
            "build",
            str(model),
            "--until",
            "3",
            "--precision",
            "fp16",
            "--artifacts-dir",
            str(art),
            "--check",
            f"{sys.executable} {check} {{engine}}",
            "--json",
        ]
    )
    out = capsys.readouterr()
    assert rc == 0, out.err
    doc = json.loads(out.out)
    assert doc["counts"] == {"good": 2, "bad": 1, "built": 0} and doc["compared"] == "good vs bad"
    run = Path(doc["artifacts"])
    assert sorted(p.name for p in (run / "good").glob("*.plan")) == ["iter_0.plan", "iter_2.plan"]
    assert [p.name for p in (run / "bad").glob("*.plan")] == ["iter_1.plan"]
    assert (run / "summary.json").is_file() and "build 1: bad (exit 1)" in out.err
    if trt_flavour.is_rtx:  # RTX logs the layer listing at build time: properties are known without a GPU
        assert all(it["layers"] for it in doc["iterations"])
    # --until good stops at the first good engine
    rc = main(
        [
            "debug",
            "build",
            str(model),
            "--until",
            "good",
            "--artifacts-dir",
            str(art),
            "--check",
            f"{sys.executable} {check} {{engine}}",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0 and "1 build(s)" in text and "1 good, 0 bad" in text


def test_no_check_compares_builds(trt_flavour, save_model, tmp_path: Path, capsys) -> None:
    model = save_model(small_cnn_model(), "cnn.onnx")
    assert main(["debug", "build", str(model), "--until", "2", "--artifacts-dir", str(tmp_path / "a"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["counts"]["built"] == 2 and doc["compared"] == "first build vs the others"


@pytest.mark.parametrize("args", [["--until", "good"], ["--until", "x"], ["--until", "2", "--check", "/no/such/check"]])
def test_bad_input(trt_flavour, save_model, tmp_path: Path, capsys, args: list[str]) -> None:
    model = save_model(small_cnn_model(), "cnn.onnx")
    assert main(["debug", "build", str(model), "--artifacts-dir", str(tmp_path / "a"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("trtdbg: error: ") and err.count("\n") == 1
