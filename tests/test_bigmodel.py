"""Models over 2 GB with external data through the commands (issue 15): a 2.2 GB generated model, written once.

The model (33 × 4096² MatMul+Tanh, weights in one external file, a planted FP16 underflow at layer 16) is more than
protobuf can hold, so every command must keep its weights in files or memory maps. Each command runs in its own
process; the peak RSS of those processes is checked against what sharing the weights allows.
"""

from __future__ import annotations

import json
import resource
from pathlib import Path

import onnx
import pytest

from engine_core.model.synthetic import write_matmul_tower
from tests.conftest import run_cli

pytestmark = pytest.mark.slow

GIB = 1 << 30


@pytest.fixture(scope="module")
def tower(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tower")
    path, size = write_matmul_tower(str(folder))
    assert size > 2 * GIB
    return Path(path)


def _children_peak_gib() -> float:
    """Largest peak RSS of any finished child process so far (Linux: KiB)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / (1 << 20)


def test_fp16_mark_all_compare_shares_the_weights(tower: Path) -> None:
    proc = run_cli(
        "compare", str(tower), "--subject", "ort:fp16", "--mark", "all", "--atol", "1e-2", "--rtol", "1e-2", "--json"
    )
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["first_failing"]["name"] == "/layers.17/MatMul_output_0"  # the planted underflow, not before
    # FP32 weights once (memory-mapped, shared by both sessions) + FP16 copies (1.1 GB) + activations
    assert _children_peak_gib() < 4.5


def test_fp16_bisection_finds_the_planted_nodes(tower: Path) -> None:
    proc = run_cli("bisect", str(tower), "--precision", "fp16", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["culprits"] == ["/layers.16/MatMul", "/layers.16/Tanh", "/layers.17/MatMul"]
    assert _children_peak_gib() < 4.5


def test_check_lint_reads_the_model_from_its_path(tower: Path) -> None:
    proc = run_cli("check", "lint", str(tower), "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    checks = {f["check"] for f in doc["findings"]}
    assert not {"checker", "ort-load"} & checks
    assert any(f["check"] == "fp16-underflow" and f["tensor"] == "/layers.16/weight" for f in doc["findings"])


def test_sanitize_beside_the_model_reuses_its_weight_file(tower: Path) -> None:
    out = tower.with_name("sanitized.onnx")
    proc = run_cli("surgeon", "sanitize", str(tower), "--fold-constants", "-o", str(out), "--external-data")
    assert proc.returncode == 0, proc.stderr
    model = onnx.load(str(out), load_external_data=False)
    locations = {e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"}
    assert locations == {"tower.onnx.data"} and not out.with_name("sanitized.onnx.data").exists()  # no 2.2 GB copy
    onnx.checker.check_model(str(out), full_check=True)
    out.unlink()


def test_fp16_convert_writes_external_data(tower: Path, tmp_path: Path) -> None:
    out = tmp_path / "fp16.onnx"
    proc = run_cli("convert", str(tower), "--precision", "fp16", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    onnx.checker.check_model(str(out), full_check=True)
    model = onnx.load(str(out), load_external_data=False)
    weights = [t for t in model.graph.initializer if t.name.endswith("weight__fp16")]
    assert len(weights) == 33 and all(t.data_type == onnx.TensorProto.FLOAT16 for t in weights)
    assert all(t.data_location == onnx.TensorProto.EXTERNAL for t in weights)
    assert (tmp_path / "fp16.onnx.data").stat().st_size >= 33 * 4096 * 4096 * 2
