"""CLI wiring of the app: ``trtdbg MODEL.onnx`` / ``open`` / ``demo`` (the app itself is tested in test_tui_app)."""

from __future__ import annotations

import json
import subprocess
import sys

import onnx

from engine_core.model.synthetic import chain_model
from tests.conftest import ROOT, run_cli
from tui.cli.main import _model_shortcut, build_parser


def test_model_path_means_open(tmp_path) -> None:
    model = tmp_path / "m.onnx"
    onnx.save(chain_model(3), model)
    assert _model_shortcut([str(model)]) == ["open", str(model)]
    assert _model_shortcut(["--debug", "x/model.ONNX", "--no-mouse"]) == [
        "--debug",
        "open",
        "x/model.ONNX",
        "--no-mouse",
    ]
    assert _model_shortcut(["inspect", str(model)]) == ["inspect", str(model)]
    assert _model_shortcut(["--help"]) == ["--help"]
    assert _model_shortcut(["nothing-here"]) == ["nothing-here"]  # argparse reports the unknown command
    args = build_parser().parse_args(_model_shortcut([str(model), "--low-bandwidth", "--subject", "ort-cuda"]))
    assert args.command == "open" and args.low_bandwidth and args.subject == "ort-cuda"


def test_open_without_a_terminal_says_so(tmp_path) -> None:
    model = tmp_path / "m.onnx"
    onnx.save(chain_model(3), model)
    proc = run_cli(str(model))
    assert proc.returncode == 2
    assert "needs a terminal" in proc.stderr and "trtdbg inspect" in proc.stderr
    proc = run_cli("open", str(tmp_path / "missing.onnx"))
    assert proc.returncode == 2 and "no such file" in proc.stderr


def test_demo_without_terminal_prints_the_report(tmp_path) -> None:
    """`make demo` in CI (no TTY) keeps working: the headless report, exit 1 (the demo's FP16 copy fails)."""
    proc = run_cli("demo", "--workspace", str(tmp_path / "ws"), "--json")
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["passed"] is False and doc["first_failing"] and doc["first_nonfinite"]
    proc = subprocess.run(
        [sys.executable, "-m", "tui.cli.main", "demo", "--workspace", str(tmp_path / "ws")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 1
    assert "printing the compare report instead" in proc.stderr and "First failing:" in proc.stdout


def test_help_lists_open_and_stays_light() -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0 and "open" in proc.stdout and "MODEL.onnx" in proc.stdout
    proc = run_cli("demo", "--help")
    assert "--headless" in proc.stdout and "--low-bandwidth" in proc.stdout
