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


def test_indexing_a_model_does_not_import_onnx(tmp_path: Path) -> None:
    """The app's tree needs only the protobuf classes: ``import onnx`` (~1 s of ml_dtypes set-up) waits
    until shapes, weights or schemas are needed, and then yields the very classes the index holds."""
    import onnx

    from engine_core.model.synthetic import chain_model

    model = tmp_path / "chain.onnx"
    onnx.save(chain_model(300), model)
    code = (
        "import sys, json\n"
        "from engine_core.comparator.marks import MarkSet\n"
        "from engine_core.model.index import ModelIndex\n"
        "from engine_core.model.scopes import ScopeTree\n"
        "from engine_core.workspace import Workspace\n"
        f"index = ModelIndex.load({str(model)!r}, load_external_data=False)\n"
        "root = ScopeTree(index).children(())\n"
        f"marks = MarkSet.load(index, Workspace.for_model({str(model)!r}, {str(tmp_path / 'ws')!r}), {str(model)!r})\n"
        "labels = [index.describe_tensor(t, infer=False) for t in index.inputs + index.outputs]\n"
        "before = sorted(m for m in sys.modules if m.split('.')[0] in ('onnx', 'ml_dtypes'))\n"
        "import onnx\n"
        "same = type(index.model) is onnx.ModelProto and type(index.node_proto(0)) is onnx.NodeProto\n"
        "print('@@' + json.dumps([before, len(root), labels, same]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    before, root, labels, same = json.loads(out.stdout.split("@@", 1)[1])
    assert before == [], f"indexing imported {before[:10]}"
    assert root > 0 and all(label.startswith("[dtype=") for label in labels)
    assert same
