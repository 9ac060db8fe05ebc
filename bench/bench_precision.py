"""Precision engine benchmarks (the issue's performance targets; not timed tests).

    python bench/bench_precision.py [--nodes 10000] [--out bench/out]

(a) rewriting a plan on a 10k-node model (< 1 s): rule analysis once, then the FP16 rewrite and the CPU emulation for
    the whole model and for a random half;
(b) evaluations per single culprit (<= ceil(log2 N) + 2): the search against an oracle for N up to 10,000 at many
    positions, and on a real 64-node model in ONNX Runtime;
(c) the time of every bisection step on the demo model (< 1 s on 2 cores), FP16 and INT8 + FP16 fallback, with the
    candidate model an interactive step writes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine_core.model.demo import write_demo
from engine_core.model.synthetic import chain_model
from engine_core.options import DataOptions
from engine_core.precision.bisect import BisectOptions, BisectSession, Phase, Search
from engine_core.precision.emulate import emulate
from engine_core.precision.plan import PrecisionPlan
from engine_core.precision.rewrite import rewrite
from engine_core.precision.rules import Analysis
from tests.precision_models import planted_chain


def _best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_rewrite(nodes: int) -> dict[str, object]:
    model = chain_model(nodes, ops=("Add", "Mul", "Relu", "Sigmoid", "Div"))
    t0 = time.perf_counter()
    analysis = Analysis(model)
    analysis_s = time.perf_counter() - t0
    cands = analysis.candidates("fp16")
    rng = np.random.default_rng(0)
    half = PrecisionPlan("fp32", {c: "fp16" for c in cands if rng.random() < 0.5}).resolve(analysis).float_low
    full = PrecisionPlan("fp16").resolve(analysis).float_low
    out = {
        "nodes": nodes,
        "candidates": len(cands),
        "analysis_s": round(analysis_s, 4),
        "rewrite_all_fp16_s": round(_best(lambda: rewrite(analysis, full)), 4),
        "rewrite_random_half_s": round(_best(lambda: rewrite(analysis, half)), 4),
        "emulate_all_fp16_s": round(_best(lambda: emulate(analysis, full)), 4),
        "resolve_plan_s": round(_best(lambda: PrecisionPlan("fp16").resolve(analysis)), 4),
    }
    print(
        f"(a) {nodes}-node model: analysis {out['analysis_s']:.3f} s once; rewrite all-FP16 "
        f"{out['rewrite_all_fp16_s']:.3f} s, random half {out['rewrite_random_half_s']:.3f} s; emulation "
        f"{out['emulate_all_fp16_s']:.3f} s; plan resolution {out['resolve_plan_s']:.3f} s",
        flush=True,
    )
    return out


def _oracle(n: int, culprit: int) -> int:
    names = [f"n{i}" for i in range(n)]
    search = Search([Phase("fp16", "fp32", names)])
    seen = {search.all_high_plan().key()}
    while (prop := search.proposal()) is not None:
        plan = search.plan(prop.config(0))
        seen.add(plan.key())
        search.advance(prop, 0, plan.nodes.get(names[culprit]) == "fp32")
    return len(seen) - 1


def bench_evaluations() -> dict[str, object]:
    rows = []
    for n in (10, 100, 1000, 10_000):
        positions = sorted({0, n - 1, *np.random.default_rng(n).integers(0, n, 40).tolist()})
        counts = [_oracle(n, c) for c in positions]
        bound = math.ceil(math.log2(n)) + 2
        rows.append({"n": n, "max": max(counts), "mean": round(statistics.mean(counts), 2), "bound": bound})
        print(
            f"(b) oracle N={n:>6}: evaluations per culprit max {max(counts)}, mean {statistics.mean(counts):.2f}, "
            f"bound ceil(log2 N)+2 = {bound}",
            flush=True,
        )
    real = []
    with tempfile.TemporaryDirectory() as tmp:
        for at in (0, 21, 42, 63):
            path = Path(tmp) / f"chain{at}.onnx"
            onnx.save(planted_chain(64, at), path)
            session = BisectSession(BisectOptions(model=str(path), workspace=str(Path(tmp) / f"ws{at}"))).start()
            result = session.run()
            assert result["culprits"] == ["/culprit/Add"], result["culprits"]
            real.append(result["evaluations"])
        bound = result["evaluation_bound"]
    print(f"(b) real 64-node chain in ONNX Runtime (65 candidates): evaluations {real}, bound {bound}", flush=True)
    return {"oracle": rows, "real_chain64": {"evaluations": real, "bound": bound}}


def bench_demo_steps() -> dict[str, object]:
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        files = write_demo(tmp)
        for label, kw in (("fp16", {}), ("int8+fp16", {"precision": "int8", "fallback": "fp16"})):
            t0 = time.perf_counter()
            session = BisectSession(
                BisectOptions(
                    model=str(files.model),
                    data=DataOptions(load_inputs=(str(files.inputs),)),
                    workspace=str(Path(tmp) / label),
                    **kw,
                )
            ).start()
            setup = time.perf_counter() - t0
            steps, writes = [], []
            while (prop := session.proposal()) is not None:
                if prop.halves is not None:
                    t1 = time.perf_counter()
                    session.write_candidate(prop, 0)
                    writes.append(time.perf_counter() - t1)
                t1 = time.perf_counter()
                session.step()
                steps.append(time.perf_counter() - t1)
            result = session.result()
            out[label] = {
                "setup_s": round(setup, 3),
                "steps": len(steps),
                "evaluations": result["evaluations"],
                "step_max_s": round(max(steps), 4),
                "step_median_s": round(statistics.median(steps), 4),
                "candidate_write_max_s": round(max(writes), 4),
                "culprits": result["culprits"],
                "passed": result["passed"],
            }
            print(
                f"(c) demo {label}: setup {setup:.2f} s (model analysis, data{', calibration' if 'int8' in label else ''}"
                f"), {len(steps)} steps, {result['evaluations']} evaluations, step max {max(steps):.3f} s / median "
                f"{statistics.median(steps):.3f} s, +{max(writes):.3f} s to write the candidate model; culprits "
                f"{result['culprits']}",
                flush=True,
            )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=10_000)
    ap.add_argument("--out", default=str(ROOT / "bench" / "out"))
    args = ap.parse_args()
    print(f"{os.cpu_count()} CPU cores", flush=True)
    results = {"rewrite": bench_rewrite(args.nodes), "evaluations": bench_evaluations(), "demo": bench_demo_steps()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "precision.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {out / 'precision.json'}")


if __name__ == "__main__":
    main()
