#!/usr/bin/env bash
# Precision plans with real FP16/BF16/INT8 types on ONNX Runtime CUDA (the GPU side of issue 3), on the demo model.
# Run from the repo root on the GPU machine; onnxruntime-gpu: already in $SITE, or the pieces $PARTS/ortgpu.part-*
# (bench/ort_gpu.sh says how they are made).
#
#   1. every rewritten model of random FP16 subsets loads and runs on the CUDA EP;
#   2. compare: ort-cuda:fp16 (real types) shows the planted NaN/overflow like the CPU emulation does;
#   3. bisect --subject ort-cuda (FP16, and INT8 + FP16 fallback): culprits, evaluations, step times;
#   4. the plan found on CPU (emulated) passes on the GPU with real types.
# Results: $OUT/precision_gpu.txt (+ JSON documents).
set -u
OUT=${OUT:-bench/out/gpu_precision}
PARTS=${PARTS:-/tmp/parts}
SITE=${SITE:-/tmp/site}
WS=${WS:-/tmp/ws_precision}
PY=${PY:-python3}
mkdir -p "$OUT" "$WS"
LOG="$OUT/precision_gpu.txt"
: >"$LOG"
say() { echo "$@" | tee -a "$LOG"; }

. "$(dirname "$0")/ort_gpu.sh"
install_ort_gpu
export PYTHONPATH="$SITE:$PWD"
if ! $PY -c "import onnxruntime as o, sys; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())"; then
  say "FAIL: onnxruntime in $SITE has no CUDA EP"; exit 2
fi
use_nvidia_libs
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$LOG"

say "== 1. random FP16 subsets of the demo: rewrite -> CUDA session -> run"
$PY - "$WS" <<'EOF' 2>&1 | tee -a "$LOG"
import sys, time, numpy as np, onnxruntime as ort
from engine_core.model.demo import write_demo
from engine_core.model.demo import build_demo_model, demo_inputs
from engine_core.precision.plan import PrecisionPlan
from engine_core.precision.rewrite import rewrite
from engine_core.precision.rules import Analysis
print(write_demo(sys.argv[1]))
an = Analysis(build_demo_model())
cands = an.candidates("fp16")
rng = np.random.default_rng(0)
so = ort.SessionOptions(); so.log_severity_level = 3
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
ok = 0
for k, p in enumerate([1.0, 0.0] + [0.5] * 18):
    sub = [c for c in cands if rng.random() < p]
    for prec in ("fp16", "bf16"):
        res = PrecisionPlan("fp32", {c: prec for c in sub}).resolve(an)
        m = rewrite(an, res.float_low)
        try:
            s = ort.InferenceSession(m.SerializeToString(), so, providers=["CUDAExecutionProvider"])
            assert s.get_providers()[0] == "CUDAExecutionProvider"
            out = s.run(None, demo_inputs())
            ok += 1
        except Exception as e:  # noqa: BLE001
            print(f"subset {k} {prec} ({len(res.float_low)} nodes): {str(e).splitlines()[0][:300]}")
print(f"{ok}/40 rewritten models (20 FP16, 20 BF16 subsets) ran on the CUDA EP")
EOF

T="$PY -m tui.cli.main"
D="$WS/demo.onnx"; I="$WS/demo_inputs.json"
say "== 2. compare, real FP16 on CUDA vs CUDA FP32"
$T compare "$D" --ref ort-cuda --subject ort-cuda:fp16 --load-inputs "$I" --atol 2e-2 --rtol 2e-2 --mark all --json \
  >"$OUT/compare_cuda_fp16.json" 2>>"$LOG"; say "rc=$? (1 = fails, expected)"
$PY -c "import json; d=json.load(open('$OUT/compare_cuda_fp16.json')); print('first failing', (d['first_failing'] or {}).get('name'), '| first NaN/Inf', (d['first_nonfinite'] or {}).get('name'))" | tee -a "$LOG"

say "== 3. bisect on CUDA with real types"
for args in "--precision fp16" "--precision int8 --fallback fp16" "--precision bf16"; do
  name=$(echo "$args" | tr -d ' -' )
  $T bisect "$D" --subject ort-cuda --load-inputs "$I" $args --json --quiet \
    --workspace "$WS/ws_$name" >"$OUT/bisect_cuda_$name.json" 2>>"$LOG"
  say "bisect $args: rc=$?"
  $PY - "$OUT/bisect_cuda_$name.json" <<'EOF' 2>&1 | tee -a "$LOG"
import json, statistics, sys
d = json.load(open(sys.argv[1]))
secs = [s["evaluation"]["seconds"] for s in d["steps"] if not s["cached"]]
print(f"  culprits {d['culprit_precisions']} | demoted {sorted(d['demoted'])} | passed {d['passed']} | "
      f"evaluations {d['evaluations']} | step max {max(secs or [0]):.3f} s median {statistics.median(secs or [0]):.3f} s")
EOF
done

say "== 4. the plan found on CPU (emulated) on CUDA with real FP16"
$T bisect "$D" --load-inputs "$I" --quiet --workspace "$WS/ws_cpu" --json >"$OUT/bisect_cpu_fp16.json" 2>>"$LOG"
PLAN=$($PY -c "import json; print(json.load(open('$OUT/bisect_cpu_fp16.json'))['plan'])")
$T compare "$D" --ref ort-cuda --subject ort-cuda --plan "$PLAN" --load-inputs "$I" --atol 2e-2 --rtol 2e-2 \
  >>"$LOG" 2>&1; say "CPU plan on CUDA real FP16: rc=$? (0 = passes)"
