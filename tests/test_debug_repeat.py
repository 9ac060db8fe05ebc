"""`trtdbg debug repeat`: run a check again and again, sort its artifacts into good/bad by exit code."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

from engine_core.model.synthetic import fp16_copy, small_cnn_model
from tests.conftest import run_cli


def _repeat(tmp_path: Path, check: str, artifact: str, *options: str) -> dict[str, Any]:
    """``trtdbg debug repeat OPTIONS --check CHECK`` keeping ``tmp_path/ARTIFACT`` under ``tmp_path/arts``: its JSON."""
    proc = run_cli(
        "debug",
        "repeat",
        *options,
        "--check",
        check,
        "--artifacts",
        str(tmp_path / artifact),
        "--artifacts-dir",
        str(tmp_path / "arts"),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_flaky_check_sorted_by_exit_code(tmp_path: Path) -> None:
    script = tmp_path / "flaky.sh"
    script.write_text('#!/bin/sh\necho "run $TRTDBG_ITERATION" > out.txt\n[ $((TRTDBG_ITERATION % 2)) -eq 0 ]\n')
    script.chmod(0o755)
    doc = _repeat(tmp_path, f"cd {tmp_path} && ./flaky.sh", "out.txt", "--until", "4")
    assert doc["counts"] == {"good": 2, "bad": 2}
    assert [it["verdict"] for it in doc["iterations"]] == ["good", "bad", "good", "bad"]
    run = Path(doc["artifacts_dir"])
    assert sorted(p.name for p in (run / "bad").iterdir()) == ["out_iter1.txt", "out_iter3.txt"]
    assert (run / "good" / "out_iter2.txt").read_text() == "run 2\n"
    assert not (tmp_path / "out.txt").exists()  # moved, so the next iteration starts clean


def test_until_bad_stops_at_the_first_failing_compare(save_model, tmp_path: Path) -> None:
    """The check is a real trtdbg compare (FP32 vs FP16 copy, seed = iteration); its saved outputs are the artifact."""
    model = save_model(small_cnn_model(), "m.onnx")
    sub = save_model(fp16_copy(small_cnn_model()), "m16.onnx")
    compare = [
        sys.executable,
        "-m",
        "tui.cli.main",
        "compare",
        str(model),
        "--subject-model",
        str(sub),
        "--seed",
        "{iteration}",
        "--atol",
        "1e-5",
        "--rtol",
        "1e-5",
        "--save-outputs",
        str(tmp_path / "outs.json"),
        "--workspace",
        str(tmp_path / "ws"),
    ]
    doc = _repeat(tmp_path, shlex.join(compare), "outs.json", "--until", "bad", "--max-iterations", "3")
    assert [it["verdict"] for it in doc["iterations"]] == ["bad"] and doc["iterations"][0]["detail"].startswith(
        "exit 1: FAILED"
    )
    (saved,) = doc["iterations"][0]["artifacts"]
    assert saved.endswith("bad/outs_iter0.json") and Path(saved).stat().st_size > 0


def test_repeat_errors_are_one_line(tmp_path: Path) -> None:
    no_check = run_cli("debug", "repeat", "--until", "2")
    assert no_check.returncode == 2 and "needs --check" in no_check.stderr
    missing = run_cli("debug", "repeat", "--until", "2", "--check", str(tmp_path / "nope.sh"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    never = run_cli(
        "debug",
        "repeat",
        "--until",
        "good",
        "--max-iterations",
        "2",
        "--check",
        "false",
        "--artifacts-dir",
        str(tmp_path / "arts"),
    )
    assert never.returncode == 1 and "no good iteration in 2 runs" in never.stdout
