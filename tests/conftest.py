"""Shared fixtures: generated models on disk, the shared real models folder, a CLI runner."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import onnx
import pytest

ROOT = Path(__file__).resolve().parents[1]
import os  # noqa: E402


def _shared_models() -> Path:
    """``$TRTDBG_SHARED_MODELS``, else ``../shared/models`` beside the checkout, else ``/work/shared/models``."""
    candidates = [os.environ.get("TRTDBG_SHARED_MODELS"), ROOT.parent / "shared" / "models", "/work/shared/models"]
    for c in candidates:
        if c and Path(c, "inputs.py").is_file():
            return Path(c)
    return ROOT.parent / "shared" / "models"


SHARED_MODELS = _shared_models()


@pytest.fixture
def save_model(tmp_path: Path):
    """Write a ModelProto under tmp_path and return its path."""

    def _save(model: onnx.ModelProto, name: str = "model.onnx") -> Path:
        path = tmp_path / name
        onnx.save(model, path)
        return path

    return _save


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``trtdbg ARGS`` in a fresh interpreter (as a user would)."""
    return subprocess.run(
        [sys.executable, "-m", "tui.cli.main", *args], capture_output=True, text=True, cwd=cwd or ROOT, timeout=600
    )


def shared_model(name: str) -> Path:
    """A model from ../shared/models (skips the test when the folder is absent)."""
    path = SHARED_MODELS / name
    if not path.exists():
        pytest.skip(f"{path} not present (real models live in ../shared/models)")
    return path
