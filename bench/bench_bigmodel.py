"""Every command on a model over 2 GB (33 × 4096² MatMul+Tanh, weights in one external file): wall time and peak RSS.

    python bench/bench_bigmodel.py [--folder /tmp/tower] [--only compare-fp16,bisect-fp16] [--out bench/out]

The model is written once into ``--folder`` (2.2 GB; kept between runs, deleted with ``--clean``). Each command is one
fresh process measured by bench/measure.py; outputs go to ``<folder>/out``. Exit code 1 of compare/reduce means
"failing tensors found" (the model has a planted FP16 underflow), which is the expected result.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine_core.model.synthetic import write_matmul_tower

PY = sys.executable


def commands(model: str, out: Path) -> dict[str, list[str]]:
    """``{label: trtdbg arguments}`` covering every command that takes a model."""
    t = "/layers.1/Tanh_output_0"
    lines = {
        "inspect": "inspect {m}",
        "check-lint": "check lint {m}",
        "compare-fp32-mark-all": "compare {m} --mark all",
        "compare-fp16-mark-all": "compare {m} --subject ort:fp16 --mark all",
        "compare-bf16-mark-all": "compare {m} --subject ort:bf16 --mark all",
        "compare-int8": "compare {m} --subject ort:int8",
        "bisect-fp16": "bisect {m} --precision fp16 --workspace {o}/ws-bisect",
        "convert-fp16-onnx": "convert {m} --precision fp16 -o {o}/fp16.onnx",
        "surgeon-extract": "surgeon extract {m} --outputs {t} -o {o}/extract.onnx",
        "surgeon-sanitize": "surgeon sanitize {m} --fold-constants -o {o}/san.onnx --external-data",
        "surgeon-insert": "surgeon insert {m} --op Identity --inputs {t} --outputs ins -o {o}/ins.onnx --external-data",
        "surgeon-prune": "surgeon prune {m} --nodes /layers.32/Tanh -o {o}/prune.onnx --external-data",
        "reduce-fp16": "reduce {m} --subject ort:fp16 --atol 1e-2 --rtol 1e-2 -o {o}/red.onnx --workspace {o}/ws-red",
        "inspect-display-as-trt": "inspect {m} --display-as trt",
        "convert-fp16-plan-rtx": "convert {m} --precision fp16 -o {o}/fp16.plan --shapes x:1x4096",
    }
    return {k: v.format(m=model, o=out, t=t).split() for k, v in lines.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", default="/tmp/trtdbg-bigmodel")
    ap.add_argument("--only", default="", help="comma-separated labels")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out"))
    ap.add_argument("--clean", action="store_true", help="delete the folder (model and outputs) at the end")
    args = ap.parse_args()
    folder = Path(args.folder)
    model = folder / "tower.onnx"
    if not model.exists():
        write_matmul_tower(str(folder))
    out = folder / "out"
    results = []
    only = {s for s in args.only.split(",") if s}
    for label, argv in commands(str(model), out).items():
        if only and label not in only:
            continue
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        cmd = [PY, str(ROOT / "bench" / "measure.py"), PY, "-m", "tui.cli.main", *argv]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        row["command"] = label
        if proc.stderr.strip():
            row["stderr"] = proc.stderr.strip().splitlines()[-1][:300]
        results.append(row)
        print(f"{label:<26} {row['wall_s']:>8.1f} s {row['peak_rss_mib']:>9.0f} MiB  rc {row['rc']}", flush=True)
    shutil.rmtree(out, ignore_errors=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "bigmodel.json").write_text(json.dumps(results, indent=2) + "\n")
    if args.clean:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
