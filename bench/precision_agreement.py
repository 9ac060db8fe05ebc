#!/usr/bin/env python3
"""Emulated vs real low precision: per-tensor verdict agreement on the shared real models.

For each model and precision (fp16, bf16) this runs two layer-wise compares against the same ONNX Runtime CPU FP32
reference, every tensor marked, on one realistic input (``inputs.py`` of the models folder, seed 0):

* emulated: ``--subject ort:P`` (CPU, storage rounding through Cast pairs, :mod:`engine_core.precision.emulate`);
* real: ``--subject ort-cuda:P`` (the rewritten model with real FP16/BF16 types on ONNX Runtime's CUDA provider).

A tensor *agrees* when both subjects give it the same verdict (pass/fail at the precision's tolerance). Also
recorded: each side's failing count, its precision coverage, and any error line. Run on a GPU machine with
onnxruntime-gpu (``bench/gpu_agreement.sh`` installs it); results go to ``OUT/agreement.json`` and
``OUT/agreement.md``, the table the README shows.

    python bench/precision_agreement.py --models ../shared/models --out bench/out/agreement
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("magika_v3_3", "minilm_l6_int8w", "ppocrv4_rec", "ppocrv4_det")
TOLERANCE = {"fp16": 1e-2, "bf16": 5e-2}


def environment() -> dict[str, str]:
    """GPU, driver, CUDA and package versions (what the table was measured with)."""
    env: dict[str, str] = {}
    try:
        q = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            check=False,
        )
        env["gpu"] = q.stdout.strip().splitlines()[0] if q.stdout.strip() else "none"
        head = subprocess.run(["nvidia-smi"], capture_output=True, text=True, check=False).stdout
        env["cuda_driver_api"] = next(
            (ln.split("CUDA Version:")[1].strip(" |") for ln in head.splitlines() if "CUDA Version" in ln), "?"
        )
    except OSError:
        env["gpu"] = "none"
    import onnx
    import onnxruntime

    env["onnxruntime"] = onnxruntime.__version__
    env["providers"] = ",".join(onnxruntime.get_available_providers())
    env["onnx"] = onnx.__version__
    env["numpy"] = np.__version__
    env["python"] = sys.version.split()[0]
    try:
        import torch

        env["torch_cuda"] = str(torch.version.cuda)
    except ImportError:
        pass
    return env


def write_input(models: Path, stem: str, folder: Path) -> Path:
    """One realistic input of ``stem`` (``inputs.make_inputs(stem, seed=0)``) as an .npz file."""
    spec = importlib.util.spec_from_file_location("shared_inputs", models / "inputs.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    path = folder / f"{stem}_input.npz"
    np.savez(path, **mod.make_inputs(stem, seed=0))
    return path


def compare(model: Path, subject: str, tol: float, inputs: Path, workspace: Path) -> dict:
    """One ``trtdbg compare --mark all --json`` run: verdicts by tensor, coverage, rc, error line, seconds."""
    cmd = [sys.executable, "-m", "tui.cli.main", "compare", str(model), "--ref", "ort", "--subject", subject]
    cmd += ["--mark", "all", "--atol", str(tol), "--rtol", str(tol), "--load-inputs", str(inputs), "--json"]
    cmd += ["--workspace", str(workspace)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    seconds = time.perf_counter() - t0
    result: dict = {"rc": done.returncode, "seconds": round(seconds, 1)}
    try:
        doc = json.loads(done.stdout)
    except json.JSONDecodeError:
        lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
        result["error"] = lines[-1][:300] if lines else f"exit {done.returncode}, no output"
        return result
    result["verdicts"] = {t["name"]: bool(t["passed"]) for t in doc["tensors"] if t.get("iteration", 0) == 0}
    result["coverage"] = doc.get("precision_coverage")
    result["subject"] = doc.get("subject")
    return result


def write_results(out: Path, env: dict[str, str], rows: list[dict]) -> str:
    """Write ``agreement.json`` and the Markdown table ``agreement.md`` (after every row); return the table."""
    (out / "agreement.json").write_text(json.dumps({"environment": env, "rows": rows}, indent=2) + "\n")
    table = [
        "| model | precision (atol=rtol) | tensors | verdicts agree | failing: emulated / real | low nodes: emulated / real |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        cov = [
            f"{c['nodes_low']}/{c['nodes_total']}" if (c := r[s].get("coverage")) else r[s].get("error", "-")[:60]
            for s in ("emulated", "real")
        ]
        if "tensors" in r:
            pct = 100.0 * r["agree"] / max(r["tensors"], 1)
            agree = f"{r['agree']}/{r['tensors']} ({pct:.1f}%)"
            fails = f"{r['fail_emulated']} / {r['fail_real']}"
        else:
            agree, fails = "-", "-"
        table.append(
            f"| {r['model']} | {r['precision']} ({r['tolerance']:g}) | {r.get('tensors', '-')} | {agree} | {fails} | {cov[0]} / {cov[1]} |"
        )
    text = "\n".join(table) + "\n"
    (out / "agreement.md").write_text(text)
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=os.environ.get("TRTDBG_SHARED_MODELS", str(ROOT.parent / "shared" / "models")))
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "agreement"))
    ap.add_argument("--precisions", default="fp16,bf16")
    ap.add_argument("--only", default=",".join(MODELS), help="model stems, comma-separated")
    args = ap.parse_args()
    models, out = Path(args.models), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ws = out / "ws"
    ws.mkdir(exist_ok=True)
    env = environment()
    print(json.dumps(env), flush=True)
    rows = []
    for stem in args.only.split(","):
        inputs = write_input(models, stem, ws)
        for precision in args.precisions.split(","):
            tol = TOLERANCE[precision]
            emu = compare(models / f"{stem}.onnx", f"ort:{precision}", tol, inputs, ws)
            real = compare(models / f"{stem}.onnx", f"ort-cuda:{precision}", tol, inputs, ws)
            row = {"model": stem, "precision": precision, "tolerance": tol, "emulated": emu, "real": real}
            ev, rv = emu.get("verdicts"), real.get("verdicts")
            if ev and rv:
                common = [n for n in ev if n in rv]
                row["tensors"] = len(common)
                row["agree"] = sum(ev[n] == rv[n] for n in common)
                row["fail_emulated"] = sum(not ev[n] for n in common)
                row["fail_real"] = sum(not rv[n] for n in common)
                row["disagree"] = [n for n in common if ev[n] != rv[n]][:10]
            for side in ("emulated", "real"):
                row[side].pop("verdicts", None)
            rows.append(row)
            write_results(out, env, rows)
            print(json.dumps({k: v for k, v in row.items() if k not in ("emulated", "real")}), flush=True)
            for side in ("emulated", "real"):
                if "error" in row[side]:
                    print(f"  {side}: {row[side]['error']}", flush=True)
    print(write_results(out, env, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
