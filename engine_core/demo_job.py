"""Files of the built-in demo: the FP32 model, its all-FP16 copy and realistic inputs, in a workspace."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine_core.data.store import save_inputs
from engine_core.model.demo import build_demo_model, demo_inputs
from engine_core.model.synthetic import fp16_copy
from engine_core.workspace import Workspace, atomic_write_bytes


@dataclass(frozen=True)
class DemoFiles:
    """Where the demo was written."""

    workspace: Path
    model: Path
    fp16_model: Path
    inputs: Path


def write_demo(workspace: str | None = None) -> DemoFiles:
    """Build the demo model, its FP16 copy and inputs and write them (atomically) into the workspace.

    Default workspace: ``.trtdbg/`` in the current directory.
    """
    ws = Workspace.for_model(None, workspace)
    ws.check_writable()
    model = build_demo_model()
    files = DemoFiles(ws.root, ws.path("demo.onnx"), ws.path("demo_fp16.onnx"), ws.path("demo_inputs.json"))
    atomic_write_bytes(files.model, model.SerializeToString())
    atomic_write_bytes(files.fp16_model, fp16_copy(model, rename=False).SerializeToString())
    save_inputs(files.inputs, [demo_inputs()])
    return files
