"""Real-terminal smoke test: `trtdbg demo` in tmux, keys sent, pane text checked, clean quit (skips without tmux)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def _tmux(session: str, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run tmux on the session's own server (`-L session`): tests never share a server that may be exiting."""
    return subprocess.run(["tmux", "-L", session, *args], capture_output=True, text=True, check=check)


def _pane(session: str) -> str:
    return _tmux(session, "capture-pane", "-p", "-t", session).stdout


def _wait(session: str, text: str, timeout: float = 30.0) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        pane = _pane(session)
        if text in pane:
            return pane
        time.sleep(0.05)
    raise AssertionError(f"{text!r} did not appear within {timeout}s; pane:\n{_pane(session)}")


def _keys(session: str, *keys: str) -> None:
    for k in keys:
        _tmux(session, "send-keys", "-t", session, k, check=True)
        time.sleep(0.15)  # Escape needs the ESC delay before the next key


def test_demo_in_tmux(tmp_path) -> None:
    session = f"trtdbg-smoke-{uuid.uuid4().hex[:8]}"
    cmd = (
        f"cd {ROOT} && unset NO_COLOR COLUMNS LINES; {sys.executable} -m tui.cli.main demo --workspace {tmp_path / 'ws'}; "
        f"echo EXIT=$?; sleep 30"
    )
    _tmux(session, "new-session", "-d", "-s", session, "-x", "120", "-y", "40", cmd, check=True)
    try:
        _wait(session, "251 nodes")
        pane = _wait(session, "Search")
        assert "Search" in pane and "Compare" in pane and "patch_embed" in pane
        _keys(session, "j", "j", "l")
        _wait(session, "act")  # patch_embed expanded
        _keys(session, "r")
        _wait(session, "Run (ctrl+s)")
        _keys(session, "C-s")
        pane = _wait(session, "FAILED:", timeout=60)
        assert "first failing:" in pane and "first NaN/Inf:" in pane
        _keys(session, "?")
        _wait(session, "trtdbg finds where")
        _keys(session, "Escape")
        _wait(session, "FAILED:")
        _keys(session, "C-c")  # nothing running: must not quit
        time.sleep(0.3)
        assert "EXIT=" not in _pane(session)
        _keys(session, "q")
        pane = _wait(session, "EXIT=", timeout=10)
        assert "EXIT=1" not in pane and "EXIT=0" in pane
    finally:
        _tmux(session, "kill-server")


def _start(session: str, args: str, size: tuple[int, int]) -> None:
    cmd = (
        f"cd {ROOT} && unset NO_COLOR COLUMNS LINES; {sys.executable} -m tui.cli.main open {args}; "
        f"echo EXIT=$?; sleep 30"
    )
    _tmux(session, "new-session", "-d", "-s", session, "-x", str(size[0]), "-y", str(size[1]), cmd, check=True)


@pytest.mark.slow
@pytest.mark.parametrize("size", [(160, 45), (100, 30)], ids=["160x45", "100x30"])
def test_real_model_compare_plot_and_jumps_in_tmux(size, tmp_path) -> None:
    """ppocrv4_rec with its real inputs (data options of `open`), FP16-emulated subject, mark all."""
    from tests.conftest import shared_model

    model = shared_model("ppocrv4_rec.onnx")
    loader = model.parent / "inputs.py"
    session = f"trtdbg-real-{uuid.uuid4().hex[:8]}"
    _start(
        session,
        f"{model} --subject ort:fp16 --data-loader-script {loader}:load_ppocrv4_rec --atol 1e-2 --rtol 1e-2 "
        f"--workspace {tmp_path / 'ws'}",
        size,
    )
    try:
        pane = _wait(session, "860 nodes", timeout=60)
        assert "Quit" in pane and "Help" in pane  # the footer keeps them at 100x30 too
        _keys(session, "r")
        _wait(session, "Run (ctrl+s)")
        _keys(session, "C-s")
        pane = _wait(session, "comparisons ·", timeout=240)
        assert "log scale" in pane  # the error-along-the-graph plot is up
        assert "Quit" in pane.splitlines()[-1] or "Quit" in pane
        _keys(session, "e")  # the table
        _keys(session, "F")  # first failing: its full name is shown under the table
        pane = _wait(session, "▶ ")
        _keys(session, "e", "l", "l")  # the plot, moved along the graph
        pane = _wait(session, "▲ #")
        _keys(session, "q")
        pane = _wait(session, "EXIT=", timeout=15)
        assert "EXIT=0" in pane
    finally:
        _tmux(session, "kill-server")


@pytest.mark.slow
def test_quit_during_a_compare_exits_at_once(tmp_path) -> None:
    from tests.conftest import shared_model

    model = shared_model("ppocrv4_det.onnx")
    loader = model.parent / "inputs.py"
    session = f"trtdbg-quit-{uuid.uuid4().hex[:8]}"
    _start(
        session,
        f"{model} --subject ort:fp16 --data-loader-script {loader}:load_ppocrv4_det --workspace {tmp_path / 'ws'}",
        (120, 40),
    )
    try:
        _wait(session, "672 nodes", timeout=60)
        _keys(session, "r")
        _wait(session, "Run (ctrl+s)")
        _keys(session, "C-s")
        _wait(session, "ctrl+c cancels", timeout=30)
        start = time.monotonic()
        _keys(session, "q")
        _wait(session, "EXIT=0", timeout=10)
        print(f"\nquit during a compare: {time.monotonic() - start:.2f}s to the shell")
    finally:
        _tmux(session, "kill-server")
