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


def _pane(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout


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
        subprocess.run(["tmux", "send-keys", "-t", session, k], check=True)
        time.sleep(0.15)  # Escape needs the ESC delay before the next key


def test_demo_in_tmux(tmp_path) -> None:
    session = f"trtdbg-smoke-{uuid.uuid4().hex[:8]}"
    cmd = (
        f"cd {ROOT} && unset NO_COLOR COLUMNS LINES; {sys.executable} -m tui.cli.main demo --workspace {tmp_path / 'ws'}; "
        f"echo EXIT=$?; sleep 30"
    )
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "40", cmd], check=True)
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
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
