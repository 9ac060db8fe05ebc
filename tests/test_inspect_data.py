"""`trtdbg inspect data`: summaries of saved inputs/outputs in every supported format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine_core.data.store import save_inputs, save_outputs
from engine_core.data.summary import summarize_file
from tests.conftest import run_cli


def _arrays() -> dict[str, np.ndarray]:
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    a[0, 0] = np.nan
    a[0, 1] = np.inf
    return {"x": a, "ids": np.array([[1, 5, 9]], dtype=np.int64)}


@pytest.mark.parametrize("name", ["in.json", "in.npz", "in_dir"])
def test_inputs_summary(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    save_inputs(str(path), [_arrays(), _arrays()])
    summary = summarize_file(path, iterations=None, histogram=True)
    assert summary.kind == "inputs"
    ((_, iterations),) = summary.runners
    assert len(iterations) == 2
    x = {t.name: t for t in iterations[0]}["x"]
    assert (x.nan, x.inf, x.min, x.max, x.shape) == (1, 1, 2.0, 11.0, (3, 4))
    assert sum(n for _, _, n in x.histogram) == 10  # finite values only


def test_outputs_summary_cli_text_and_json(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    save_outputs(str(path), "my-runner", [_arrays()])
    text = run_cli("inspect", "data", str(path), "--show-values")
    assert text.returncode == 0, text.stderr
    assert "Runner: my-runner" in text.stdout and "NaN=1 Inf=1" in text.stdout and "ids [dtype=int64" in text.stdout
    doc = json.loads(run_cli("inspect", "data", str(path), "--json").stdout)
    assert doc["kind"] == "outputs" and doc["runners"][0]["name"] == "my-runner"
    ids = doc["runners"][0]["iterations"][0][1]
    assert ids["name"] == "ids" and ids["max"] == 9.0


def test_bad_data_file_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"lst": [')
    proc = run_cli("inspect", "data", str(bad))
    assert proc.returncode == 2 and "bad.json" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_first_iteration_only_says_how_many_the_file_holds(tmp_path: Path) -> None:
    """By default only the first iteration is listed (as Polygraphy); the header must still say the file holds 3
    (it said '1 iteration(s)' for a 4-sample compare's outputs)."""
    path = tmp_path / "out.json"
    save_outputs(str(path), "ort", [_arrays(), _arrays(), _arrays()])
    text = run_cli("inspect", "data", str(path)).stdout
    assert "Runner: ort (3 iteration(s); the first 1 shown (--all lists every one))" in text
    assert text.count("Iteration ") == 1
    every = run_cli("inspect", "data", str(path), "--all").stdout
    assert "Runner: ort (3 iteration(s)) ----" in every and every.count("Iteration ") == 3
    doc = json.loads(run_cli("inspect", "data", str(path), "--json").stdout)
    assert doc["runners"][0]["total_iterations"] == 3 and len(doc["runners"][0]["iterations"]) == 1
    inputs = tmp_path / "in.json"
    save_inputs(str(inputs), [_arrays(), _arrays()])
    assert "---- 2 iteration(s); the first 1 shown" in run_cli("inspect", "data", str(inputs)).stdout
