"""engine_core never imports Textual/Rich UI code; ``trtdbg --help`` stays light and fast."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import engine_core

ROOT = Path(__file__).resolve().parents[1]
UI_PREFIXES = ("textual", "rich", "tui")


def _engine_core_modules() -> list[str]:
    names = ["engine_core"]
    for info in pkgutil.walk_packages(engine_core.__path__, prefix="engine_core."):
        names.append(info.name)
    return names


def test_engine_core_imports_no_ui_code() -> None:
    modules = _engine_core_modules()
    assert len(modules) > 5
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    loaded = json.loads(out.stdout)
    ui = [m for m in loaded if m.split(".")[0] in UI_PREFIXES]
    assert ui == [], f"engine_core pulled in UI modules: {ui[:10]}"


def test_cli_help_imports_no_heavy_modules() -> None:
    code = (
        "import sys, json\n"
        "from tui.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('@@' + json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    loaded = json.loads(out.stdout.split("@@", 1)[1])
    heavy = [m for m in loaded if m.split(".")[0] in ("onnx", "onnxruntime", "textual", "numpy", "engine_core")]
    assert heavy == [], f"--help imported {heavy[:10]}"
    assert "usage: trtdbg" in out.stdout
