"""ONNX shape inference in a child Python process.

onnx's C++ shape inference (and ``import onnx`` before it) holds the GIL for as long as it runs — seconds on
a 100k-node model — so in a thread it freezes every other thread of the process (the app's UI). In a child
process (at a lower CPU priority) it runs on another core and this process stays responsive; the child also
contains a crash. The price: the child imports onnx too (~1 s of CPU).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from engine_core.errors import first_line
from engine_core.jobs import CancelToken
from engine_core.model.proto import ModelProto

_CHILD = """
import os, sys
if hasattr(os, "nice"):
    os.nice(10)  # below the process waiting for it: on a busy machine its UI keeps the CPU
from pathlib import Path
from onnx import ModelProto, shape_inference
from engine_core.errors import first_line
src, dst, err = map(Path, sys.argv[1:4])
model = ModelProto()
model.ParseFromString(src.read_bytes())
try:
    out = shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
except Exception as exc:
    err.write_text(first_line(exc))
    out = shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
dst.write_bytes(out.SerializeToString())
"""


def infer_in_child(
    model: ModelProto, cancel: CancelToken | None = None, source: Path | None = None
) -> tuple[ModelProto | None, str | None]:
    """``(inferred model or None, why strict inference failed or None)``, like strict-then-lenient inference in
    this process; setting ``cancel`` kills the child (then ``(None, None)``). ``source``: a file holding exactly
    ``model``, which the child reads (no serialized copy is written)."""
    root = str(Path(__file__).resolve().parents[2])  # the folder holding engine_core
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    with tempfile.TemporaryDirectory(prefix="trtdbg-shapes-") as tmp:
        src, dst, err = (Path(tmp) / name for name in ("in.onnx", "out.onnx", "error.txt"))
        if source is not None:
            src = source
        else:
            src.write_bytes(model.SerializeToString())
        cmd = [sys.executable, "-c", _CHILD, str(src), str(dst), str(err)]
        try:
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except OSError as exc:
            return None, f"cannot start shape inference: {first_line(exc)}"
        while True:
            try:
                _, stderr = proc.communicate(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                if cancel is not None and cancel.is_set():
                    proc.kill()
                    proc.communicate()
                    return None, None
        error = err.read_text() if err.is_file() else None
        if proc.returncode != 0 or not dst.is_file():
            lines = [ln for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
            return None, error or (lines[-1].strip() if lines else f"shape inference exited with {proc.returncode}")
        inferred = ModelProto()
        inferred.ParseFromString(dst.read_bytes())
        return inferred, error
