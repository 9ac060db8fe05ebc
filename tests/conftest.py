"""Shared fixtures: generated models on disk, the shared real models folder, the CLI in-process or as a process,
and the TensorRT module (tests that need one are marked ``trt`` and skip where none imports)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnx
import pytest

ROOT = Path(__file__).resolve().parents[1]


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


def run_cli(
    *args: str | os.PathLike[str], cwd: Path | None = None, process: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run ``trtdbg ARGS`` and return its exit code, stdout and stderr.

    In this process through :func:`tui.cli.main.main` (fast: no interpreter start, no re-import), unless
    ``process`` is set: then in a fresh interpreter, as a user would, for what only a process shows
    (signals, a closed pipe, import weight, the ``python -m`` entry point).
    """
    argv = [str(a) for a in args]
    if process:
        return subprocess.run(
            [sys.executable, "-m", "tui.cli.main", *argv], capture_output=True, text=True, cwd=cwd or ROOT, timeout=600
        )
    from tui.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    try:
        os.chdir(cwd or ROOT)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(argv)
            except SystemExit as exc:  # argparse: usage errors (2) and --help / --version (0)
                rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    finally:
        os.chdir(here)
    return subprocess.CompletedProcess(["trtdbg", *argv], rc, out.getvalue(), err.getvalue())


def surgeon_ok(
    tool: str, model: str | os.PathLike[str], out: str | os.PathLike[str], *options: str
) -> subprocess.CompletedProcess[str]:
    """``trtdbg surgeon TOOL MODEL OPTIONS -o OUT``, which must succeed."""
    proc = run_cli("surgeon", tool, model, *options, "-o", out)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """``cli(*args) -> (exit code, stdout, stderr)`` of ``trtdbg ARGS`` run in this process."""

    def _cli(*args: str | os.PathLike[str]) -> tuple[int, str, str]:
        from tui.cli.main import main

        rc = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return rc, out, err

    return _cli


@pytest.fixture(scope="session")
def trt_flavour() -> Any:
    """The TensorRT module found here (``tensorrt``, else ``tensorrt_rtx``); skips where none imports."""
    from engine_core.backend.trt.flavour import load_flavour
    from engine_core.errors import TrtdbgError

    try:
        return load_flavour("auto")
    except TrtdbgError as exc:
        pytest.skip(f"no TensorRT module importable here ({exc}); CI installs tensorrt-rtx-cu13")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use TensorRT carry the ``trt`` marker (``-m 'not trt'`` leaves them out)."""
    for item in items:
        if "trt_flavour" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.trt)


def shared_model(name: str) -> Path:
    """A model from ../shared/models (skips the test when the folder is absent)."""
    path = SHARED_MODELS / name
    if not path.exists():
        pytest.skip(f"{path} not present (real models live in ../shared/models)")
    return path


def shared_model_and_loader(name: str) -> tuple[Path, str]:
    """A shared model (as :func:`shared_model`) and its ``--data-loader-script`` (``inputs.py:load_<stem>``)."""
    path = shared_model(name)
    return path, f"{path.parent / 'inputs.py'}:load_{path.stem}"
