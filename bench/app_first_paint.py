"""The app's first paint and tree-ready time, headless (Textual Pilot), one fresh process per measurement.

    python bench/app_first_paint.py [--runs 3] [MODEL.onnx ...]

Without models: a generated 100,000-node and 8,000-node chain and the shared real models
(../shared/models or $TRTDBG_SHARED_MODELS). For each model, best of ``--runs`` fresh processes:

* ``first_paint_s``: process start (before Textual or trtdbg are imported) → the main screen is drawn
  (``App.run_test`` hands over the pilot; the tree shows "loading model…");
* ``tree_s``: → the tree holds the model's first scope level (indexing done, shapes may still be inferred);
* ``shapes_s``: → shape inference finished (the tree and detail show inferred shapes);
* ``keys_s``: → the tree, once up, has answered ``down`` and ``right`` (cursor moved, scope expanded): the
  keys are pressed when the tree appears, while the shape worker imports onnx (which holds the GIL);
* CPU: the process's CPU time at first paint, tree-ready and shapes-ready, the last with its shape-inference
  child process (wall time is noisy on a shared machine; CPU time is not).

The readiness checks poll every 5 ms with ``asyncio.sleep`` (microseconds of CPU each); polling with
``pilot.pause(0.005)``, as this script did before 2026-12-07, cost ~2 ms CPU per poll, which slowed the
load worker and was counted in the CPU figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from measure import compile_sources

ROOT = Path(__file__).resolve().parents[1]
CHILD = r"""
import time, sys, asyncio, os
t0 = time.perf_counter()
sys.path.insert(0, {root!r})
from tui.app import TrtdbgApp

async def until(ready):
    while not ready():
        await asyncio.sleep(0.005)

async def main():
    app = TrtdbgApp({model!r}, workspace={ws!r})
    out = {{}}
    async with app.run_test(size=(160, 45)) as pilot:
        out["first_paint_s"] = time.perf_counter() - t0
        out["paint_cpu_s"] = time.process_time()
        scr = app.main_screen
        tree = scr.query_one("GraphTree")
        await until(lambda: scr.view.index is not None and bool(tree.root.children))
        out["tree_s"] = time.perf_counter() - t0
        out["tree_cpu_s"] = time.process_time()
        first = tree.root.children[0]
        await pilot.press("down", "right")
        await until(lambda: tree.cursor_node is first and (first.is_expanded or not first.allow_expand))
        out["keys_s"] = time.perf_counter() - t0
        out["keys_cpu_s"] = time.process_time()
        await until(lambda: scr.view.shapes_ready)
        out["shapes_s"] = time.perf_counter() - t0
        kids = os.times()
        out["cpu_s"] = time.process_time() + kids.children_user + kids.children_system  # + the shape-inference child
        out["nodes"] = len(scr.view.index)
    print("RESULT " + __import__("json").dumps(out))

asyncio.run(main())
"""


def measure(model: Path, ws: str) -> dict:
    code = CHILD.format(root=str(ROOT), model=str(model), ws=ws)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"{model}: no result\n{proc.stderr[-2000:]}")
    return json.loads(line[len("RESULT ") :])


def default_models(tmp: Path) -> list[Path]:
    sys.path.insert(0, str(ROOT))
    import onnx

    from engine_core.model.synthetic import chain_model
    from tests.conftest import SHARED_MODELS

    models = []
    for n in (100_000, 8_000):
        path = tmp / f"chain{n // 1000}k.onnx"
        onnx.save(chain_model(n), path)
        models.append(path)
    models += sorted(Path(SHARED_MODELS).glob("*.onnx"))
    return models


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", type=Path)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    compile_sources()
    with tempfile.TemporaryDirectory() as tmp:
        models = args.models or default_models(Path(tmp))
        print(
            f"{'model':<24} {'nodes':>7} {'first paint':>12} {'tree':>8} {'keys':>8} {'shapes':>8}   CPU: {'paint':>6}"
            f" {'tree':>6} {'keys':>6}"
            f" {'shapes':>6}"
        )
        for model in models:
            runs = [measure(model, str(Path(tmp) / "ws")) for _ in range(args.runs)]
            keys = ("first_paint_s", "tree_s", "keys_s", "shapes_s", "cpu_s", "paint_cpu_s", "tree_cpu_s", "keys_cpu_s")
            best = {k: min(r[k] for r in runs) for k in keys}
            print(
                f"{model.name:<24} {runs[0]['nodes']:>7} {best['first_paint_s']:>11.2f}s {best['tree_s']:>7.2f}s"
                f" {best['keys_s']:>7.2f}s {best['shapes_s']:>7.2f}s   {best['paint_cpu_s']:>10.2f}s"
                f" {best['tree_cpu_s']:>5.2f}s {best['keys_cpu_s']:>5.2f}s"
                f" {best['cpu_s']:>5.2f}s",
                flush=True,
            )


if __name__ == "__main__":
    main()
