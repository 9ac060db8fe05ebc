"""`trtdbg compare --save-plot F.png|F.svg`: the error-along-the-graph plot for reports (matplotlib extra)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine_core.model.demo import write_demo
from tests.conftest import run_cli

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory):
    return write_demo(str(tmp_path_factory.mktemp("plot") / "ws"))


def _compare(demo, *extra: str):
    return run_cli(
        "compare", str(demo.model), "--subject", "ort:fp16", "--mark", "all", "--load-inputs", str(demo.inputs),
        "--atol", "1e-2", "--rtol", "1e-2", "--workspace", str(demo.workspace), "--quiet", *extra,
    )  # fmt: skip


def test_save_plot_svg_and_png_mark_the_first_failing_tensor(demo_files, tmp_path: Path) -> None:
    svg = tmp_path / "err.svg"
    proc = _compare(demo_files, "--save-plot", str(svg), "--json")
    assert proc.returncode == 1, proc.stderr  # the demo's FP16 subject fails
    first = json.loads(proc.stdout)["first_failing"]["name"]
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    assert f": {first}" in text and "first failing" in text and "(log)" in text
    png = tmp_path / "err.png"
    proc = _compare(demo_files, "--save-plot", str(png), "--plot-metric", "one_minus_cosine")
    assert proc.returncode == 1, proc.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_save_plot_refuses_bad_names_and_says_how_to_get_matplotlib(demo_files, tmp_path: Path, monkeypatch) -> None:
    proc = _compare(demo_files, "--save-plot", str(tmp_path / "err.pdf"))
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and ".png or .svg" in proc.stderr
    from engine_core.comparator import plot
    from engine_core.errors import TrtdbgError

    monkeypatch.setattr(plot.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(TrtdbgError, match=r"needs matplotlib.*pip install 'trtdbg\[plot\]'"):
        plot.check_plot_target(tmp_path / "err.png")
