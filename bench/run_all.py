"""trtdbg vs Polygraphy 0.53.6, side by side on the same generated models; prints ratios.

    python bench/run_all.py [--quick] [--only inspect,compare,memory] [--out bench/out]

(a) inspect of a 100,000-node model (with and without the per-node listing);
(b) compare of 20,000 marked tensors against saved outputs (Polygraphy: ~85 s on 2 cores);
(c) peak RSS of a mark-all compare on a model whose intermediates total >= 3 GB.
Each measurement is one fresh process (wall time and peak RSS of that process). ``--quick`` shrinks
the models for a smoke run; the README's figures come from a full run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import onnx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine_core.model.synthetic import chain_model, wide_activation_model

PY = sys.executable
BIN = Path(PY).parent
TRTDBG = [str(BIN / "trtdbg")] if (BIN / "trtdbg").exists() else [PY, "-m", "tui.cli.main"]
POLY = [str(BIN / "polygraphy")]


def measure(cmd: list[str]) -> dict[str, float]:
    out = subprocess.run([PY, str(ROOT / "bench" / "measure.py"), *cmd], capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"measure failed for {cmd}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def row(label: str, ours: dict[str, float], theirs: dict[str, float], key: str) -> dict[str, object]:
    ratio = ours[key] / theirs[key] if theirs[key] else float("inf")
    unit = "s" if key == "wall_s" else "MiB"
    print(
        f"{label:<58} trtdbg {ours[key]:>9.2f} {unit:<3} | polygraphy {theirs[key]:>9.2f} {unit:<3} | ratio {ratio:5.2f}x"
        f" | rc {ours['rc']}/{theirs['rc']}",
        flush=True,
    )
    return {
        "bench": label,
        "metric": key,
        "trtdbg": ours[key],
        "polygraphy": theirs[key],
        "ratio": round(ratio, 3),
        "rc_trtdbg": ours["rc"],
        "rc_polygraphy": theirs["rc"],
    }


def bench_inspect(out: Path, nodes: int) -> list[dict[str, object]]:
    model = out / f"chain{nodes}.onnx"
    if not model.exists():
        onnx.save(chain_model(nodes), model)
    rows = []
    for show in ([], ["--show", "layers"]):
        ours = measure([*TRTDBG, "inspect", str(model), *show])
        theirs = measure([*POLY, "inspect", "model", str(model), *show])
        rows.append(row(f"(a) inspect {nodes}-node model {' '.join(show)}".strip(), ours, theirs, "wall_s"))
    return rows


def bench_compare(out: Path, nodes: int) -> list[dict[str, object]]:
    model = out / f"chain{nodes}.onnx"
    if not model.exists():
        onnx.save(chain_model(nodes), model)
    inputs, golden = out / f"chain{nodes}_inputs.json", out / f"chain{nodes}_golden.json"
    if not golden.exists():
        subprocess.run(
            [
                *POLY,
                "run",
                str(model),
                "--onnxrt",
                "--onnx-outputs",
                "*",
                "--save-inputs",
                str(inputs),
                "--save-outputs",
                str(golden),
            ],
            check=True,
            capture_output=True,
        )
    ours = measure(
        [
            *TRTDBG,
            "compare",
            str(model),
            "--mark",
            "all",
            "--ref-outputs",
            str(golden),
            "--subject",
            "ort",
            "--load-inputs",
            str(inputs),
            "--quiet",
            "--workspace",
            str(out / "ws"),
        ]
    )
    theirs = measure(
        [
            *POLY,
            "run",
            str(model),
            "--onnxrt",
            "--onnx-outputs",
            "*",
            "--load-inputs",
            str(inputs),
            "--load-outputs",
            str(golden),
        ]
    )
    return [row(f"(b) compare {nodes - 1} marked tensors vs saved outputs", ours, theirs, "wall_s")]


def bench_memory(out: Path, total_bytes: int, budget: str) -> list[dict[str, object]]:
    model = out / f"wide{total_bytes >> 20}M.onnx"
    if not model.exists():
        onnx.save(wide_activation_model(total_bytes), model)
    ours = measure(
        [
            *TRTDBG,
            "compare",
            str(model),
            "--mark",
            "all",
            "--subject",
            "ort",
            "--mem-budget",
            budget,
            "--quiet",
            "--workspace",
            str(out / "ws"),
        ]
    )
    theirs = measure([*POLY, "run", str(model), "--onnxrt", "--onnxrt", "--onnx-outputs", "*"])
    label = f"(c) mark-all compare, {total_bytes / (1 << 30):.1f} GiB of intermediates, --mem-budget {budget}"
    return [row(label, ours, theirs, "peak_rss_mib"), row(label, ours, theirs, "wall_s")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small models (smoke run)")
    ap.add_argument("--only", default="inspect,compare,memory")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out"))
    args = ap.parse_args()
    if not shutil.which(POLY[0]):
        raise SystemExit("polygraphy is not installed in this environment (pip install polygraphy==0.53.6)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    only = set(args.only.split(","))
    rows: list[dict[str, object]] = []
    if "inspect" in only:
        rows += bench_inspect(out, 10_000 if args.quick else 100_000)
    if "compare" in only:
        rows += bench_compare(out, 2_001 if args.quick else 20_001)
    if "memory" in only:
        rows += bench_memory(out, (256 << 20) if args.quick else (3 << 30) + (64 << 20), "64M" if args.quick else "1G")
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"results: {out / 'results.json'}")


if __name__ == "__main__":
    os.environ.setdefault("POLYGRAPHY_AUTOINSTALL_DEPS", "0")
    main()
