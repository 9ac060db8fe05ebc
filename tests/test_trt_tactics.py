"""``inspect tactics`` and ``trtdbg diff``: Polygraphy tactic replays (no TensorRT needed to read them), debug-build
folders built for real (TensorRT-RTX in CI), timing caches where the module has them, the no-algorithm-selector note."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from engine_core.model.synthetic import small_cnn_model
from tui.cli.main import main


def _info(dtype: str) -> dict:
    return {
        "polygraphy_class": "TensorInfo",
        "dtype": f"DataType.{dtype}",
        "strides": [256, 16, 1],
        "vectorized_dim": -1,
        "components_per_element": -1,
    }


def _replay(path: Path, conv_tactic: int, relu_dtype: str = "FLOAT") -> Path:
    algo = {
        "polygraphy_class": "Algorithm",
        "implementation": 7,
        "tactic": conv_tactic,
        "inputs": [_info("FLOAT")],
        "outputs": [_info("FLOAT")],
    }
    relu = dict(algo, tactic=0, outputs=[_info(relu_dtype)])
    path.write_text(json.dumps({"polygraphy_class": "TacticReplayData", "replay": {"conv": algo, "relu": relu}}))
    return path


def test_replay_inspect_and_diff(tmp_path: Path, capsys) -> None:
    a = _replay(tmp_path / "a.json", 0x1234)
    b = _replay(tmp_path / "b.json", 0x9999, relu_dtype="HALF")
    assert main(["inspect", "tactics", str(a), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "tactic replay" and doc["layers"]["conv"]["tactic"] == str(0x1234)
    assert doc["layers"]["relu"]["precision"] == "FLOAT -> FLOAT"
    assert main(["diff", str(a), str(a)]) == 0
    assert "No layer differs" in capsys.readouterr().out
    assert main(["diff", str(a), str(b), "--json"]) == 1
    diffs = {(d["layer"], d["property"]) for d in json.loads(capsys.readouterr().out)["differences"]}
    assert diffs == {("conv", "tactic"), ("relu", "precision")}
    for side, tactic in (("x", 0x1234), ("y", 0x9999)):  # folders of a debug-build run hold its summary.json too
        (tmp_path / side).mkdir()
        _replay(tmp_path / side / "iter_0.json", tactic)
        (tmp_path / side / "summary.json").write_text(json.dumps({"iterations": []}))
    assert main(["diff", str(tmp_path / "x"), str(tmp_path / "y"), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["a"] == [str(tmp_path / "x" / "iter_0.json")]
    assert {(d["layer"], d["property"]) for d in doc["differences"]} == {("conv", "tactic")}


def test_no_selector_said_plainly(trt_flavour, tmp_path: Path, capsys) -> None:
    assert main(["inspect", "tactics", str(_replay(tmp_path / "a.json", 1))]) == 0
    out = capsys.readouterr().out
    if trt_flavour.has("IAlgorithmSelector"):
        assert "has no algorithm selector" not in out
    else:
        assert f"{trt_flavour.label} has no algorithm selector (IAlgorithmSelector was removed in TensorRT 11" in out


def test_debug_build_folders(trt_flavour, save_model, tmp_path: Path, capsys) -> None:
    model = save_model(small_cnn_model(), "cnn.onnx")
    check = tmp_path / "check.py"
    check.write_text("import os, sys\nsys.exit(int(os.environ['TRTDBG_ITERATION']) % 2)\n")
    assert (
        main(
            [
                "debug",
                "build",
                str(model),
                "--until",
                "2",
                "--artifacts-dir",
                str(tmp_path / "art"),
                "--json",
                "--check",
                f"{sys.executable} {check}",
            ]
        )
        == 0
    )
    run = Path(json.loads(capsys.readouterr().out)["artifacts"])
    rc = main(["diff", str(run / "good"), str(run / "bad"), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert doc["a"] == [str(run / "good" / "iter_0.json")] and doc["b"] == [str(run / "bad" / "iter_1.json")]
    assert rc == (1 if doc["differences"] else 0)
    assert main(["inspect", "tactics", str(run / "good" / "iter_0.json")]) == 0
    assert "debug build" in capsys.readouterr().out


def test_timing_cache_and_bad_input(trt_flavour, tmp_path: Path, capsys) -> None:
    blob = tmp_path / "t.cache"
    blob.write_bytes(b"\x00\x01not a cache")
    rc = main(["inspect", "tactics", str(blob)])
    err = capsys.readouterr().err
    if trt_flavour.is_rtx:
        assert rc == 2 and "has no timing cache (its timing-cache calls are no-ops)" in err
    for args in (["inspect", "tactics", str(tmp_path / "none.json")], ["diff", str(tmp_path), str(blob)]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith("trtdbg: error: ") and err.count("\n") == 1
