#!/usr/bin/env bash
# Verify trtdbg's ort-cuda backend on a real NVIDIA GPU: CPU (ort) reference vs CUDA (ort-cuda) subject,
# every tensor marked, on the demo model and generated models. Run from the repo root on the GPU machine.
#
# Inputs (environment, all optional):
#   PARTS      folder holding the onnxruntime-gpu pieces ortgpu.part-* (default /tmp/parts; bench/ort_gpu.sh says
#              how they are made)
#   SITE       pip --target folder put first on PYTHONPATH (default /tmp/site)
#   WS         workspace for models/inputs (default /tmp/ws)
#   SKIP_INSTALL  set to use the onnxruntime already importable
#   OUT        where results go (default bench/out/gpu_check): env.txt, log.txt, summary.txt, json.tar.gz
#   ATOL/RTOL  tolerances for the CPU-vs-CUDA FP32 compares (default 1e-4 / 1e-3)
#
# ORT 1.31.1's CUDA EP is built for CUDA 13 + cuDNN 9 (libcublas(Lt).so.13, libcurand.so.10,
# libcudart.so.13; cuDNN is dlopened). If they are not on the loader path, the libraries bundled with
# PyTorch's nvidia-* wheels (site-packages/nvidia/*/lib) are put on LD_LIBRARY_PATH.
set -u
OUT=${OUT:-bench/out/gpu_check}
PARTS=${PARTS:-/tmp/parts}
SITE=${SITE:-/tmp/site}
WS=${WS:-/tmp/ws}
ATOL=${ATOL:-1e-4}
RTOL=${RTOL:-1e-3}
PY=${PY:-python3}
. "$(dirname "$0")/ort_gpu.sh"
mkdir -p "$OUT" "$WS"
LOG="$OUT/log.txt"
: >"$LOG"
say() { echo "$@" | tee -a "$LOG"; }
now() { date +%s.%N; }

# ---- 1. environment record -------------------------------------------------------------------
{
  echo "== nvidia-smi"; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
  nvidia-smi 2>&1 | sed -n 3p
  echo "== nvcc"; nvcc --version 2>&1 | tail -1
  echo "== python"; $PY -c "import sys, numpy, onnx; print(sys.version.split()[0], 'numpy', numpy.__version__, 'onnx', onnx.__version__)"
  echo "== loader path for CUDA libs (ldconfig)"; ldconfig -p | grep -E 'libcublas|libcudnn\.so|libcurand|libcudart' || echo "(none in ldconfig)"
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt" | tee -a "$LOG"

# ---- 2. install onnxruntime-gpu into $SITE --------------------------------------------------------
if [ -z "${SKIP_INSTALL:-}" ]; then
  t0=$(now)
  install_ort_gpu
  say "install: $(awk "BEGIN{print $(now) - $t0}") s"
fi
export PYTHONPATH="$SITE:$PWD"
$PY -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.__file__, o.get_available_providers())" 2>&1 | tee -a "$LOG"

# ---- 3. models and inputs -------------------------------------------------------------------
$PY - "$WS" <<'EOF' 2>&1 | tee -a "$LOG"
import sys, onnx
from engine_core.model.demo import write_demo
from engine_core.model.synthetic import small_cnn_model, branchy_model
ws = sys.argv[1]
print(write_demo(ws))
onnx.save(small_cnn_model(), f"{ws}/small_cnn.onnx")
onnx.save(branchy_model(), f"{ws}/branchy.onnx")
EOF

# ---- 4. does the CUDA EP start as the environment stands? otherwise use PyTorch's nvidia libs --
probe() {
  $PY - <<'EOF'
import onnx
from engine_core.backend.ort import OrtRunner
from engine_core.model.synthetic import small_cnn_model
import numpy as np
r = OrtRunner(small_cnn_model(), provider="cuda")
r.activate()
out = r.infer({"input": np.ones((1, 3, 32, 32), np.float32)})
print("probe OK: session providers", r._sessions[()].get_providers(), "probs sum", float(out["probs"].sum()))
EOF
}
say "== probe without extra LD_LIBRARY_PATH"
if probe >>"$LOG" 2>&1; then
  say "CUDA EP starts with the machine's own loader path"
else
  tail -3 "$LOG"
  use_nvidia_libs
  say "== probe with LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  probe 2>&1 | tee -a "$LOG"
fi
grep -q "^probe OK" "$LOG" || say "WARNING: CUDA EP probe did not pass"

# ---- 5. compares: CPU reference vs CUDA subject, all tensors marked --------------------------
# ORT's CUDA EP lets cuBLAS/cuDNN use TF32 for FP32 MatMul/Gemm/Conv by default (provider option
# use_tf32=1). trtdbg's ort-cuda turns it off (true FP32); ort-cuda:tf32 keeps ORT's default.
JSON="$OUT/json"
mkdir -p "$JSON"
run_cmp() {  # name model [compare args...]
  local name=$1 model=$2; shift 2
  local t0 t1 rc
  t0=$(now)
  $PY -m tui.cli.main compare "$model" --mark all --atol "$ATOL" --rtol "$RTOL" \
      --json --workspace "$WS" "$@" >"$JSON/$name.json" 2>>"$LOG"
  rc=$?
  t1=$(now)
  say "$name: rc=$rc wall=$(awk "BEGIN{print $t1 - $t0}") s"
}
DEMO_IN=(--load-inputs "$WS/demo_inputs.json")
for spec in ort-cuda ort-cuda:tf32; do
  tag=${spec/:/_}
  run_cmp demo_cpu_vs_$tag "$WS/demo.onnx" --ref ort --subject $spec "${DEMO_IN[@]}"
  run_cmp small_cnn_cpu_vs_$tag "$WS/small_cnn.onnx" --ref ort --subject $spec
  run_cmp branchy_cpu_vs_$tag "$WS/branchy.onnx" --ref ort --subject $spec
done
# precision subjects: real FP16 types on CUDA vs trtdbg's CPU FP16 storage-rounding emulation
run_cmp demo_fp16_emulated_cpu "$WS/demo.onnx" --ref ort --subject ort:fp16 --atol 1e-2 --rtol 1e-2 "${DEMO_IN[@]}"
run_cmp demo_fp16_real_cuda "$WS/demo.onnx" --ref ort --subject ort-cuda:fp16 --atol 1e-2 --rtol 1e-2 "${DEMO_IN[@]}"
# baseline wall time for the same work with both sides on CPU
run_cmp demo_cpu_vs_cpu "$WS/demo.onnx" --ref ort --subject ort "${DEMO_IN[@]}"
# the demo's FP16 copy vs FP32 on CPU, subject on CUDA and (for contrast) on CPU; expected to fail
run_cmp demo_fp16_cuda "$WS/demo.onnx" --ref ort --subject-model "$WS/demo_fp16.onnx" --subject-backend ort-cuda "${DEMO_IN[@]}"
run_cmp demo_fp16_cpu "$WS/demo.onnx" --ref ort --subject-model "$WS/demo_fp16.onnx" --subject-backend ort "${DEMO_IN[@]}"
# negative check on the GPU host: no GPU visible -> one clear line, exit 2, no CPU fallback
say "== negative: CUDA_VISIBLE_DEVICES= (no GPU visible)"
CUDA_VISIBLE_DEVICES= $PY -m tui.cli.main compare "$WS/small_cnn.onnx" --ref ort --subject ort-cuda --json \
    --workspace "$WS" >/dev/null 2>"$WS/negative.txt"
say "negative rc=$? stderr: $(grep -v '^[[:space:]]*$' "$WS/negative.txt" | tail -1)"

# ---- 6. summary --------------------------------------------------------------------------------
$PY - "$JSON" <<'EOF' 2>&1 | tee "$OUT/summary.txt" | tee -a "$LOG"
import json, sys, glob, os
num = lambda v: v if isinstance(v, (int, float)) else float("inf")  # "NaN"/"Infinity" rank worst
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    try:
        d = json.load(open(f))
    except Exception as e:
        print(os.path.basename(f), "unreadable:", e); continue
    t = d["tensors"]
    n_pass = sum(1 for x in t if x["passed"])
    wa = max(t, key=lambda x: num(x["max_abs"]))
    wr = max(t, key=lambda x: num(x["max_rel"]))
    ff, nf = d.get("first_failing") or {}, d.get("first_nonfinite") or {}
    print(f"{os.path.basename(f)}: {d['ref']} vs {d['subject']} passed={d['passed']} compared={len(t)} "
          f"pass={n_pass} fail={len(t) - n_pass} elapsed_s={d['summary'].get('elapsed_s')}")
    print(f"  worst abs: {wa['name']} max_abs={wa['max_abs']} max_rel={wa['max_rel']}")
    print(f"  worst rel: {wr['name']} max_abs={wr['max_abs']} max_rel={wr['max_rel']} (robust {wr.get('max_rel_robust')})")
    print(f"  first failing: {ff.get('name')} max_abs={ff.get('max_abs')} max_rel={ff.get('max_rel')}")
    if nf: print(f"  first non-finite: {nf.get('name')} nan={nf.get('nan')} inf={nf.get('inf')}")
    if d.get("warnings"): print("  warnings:", d["warnings"][:3])
EOF
# at most 8 files come back from the device: bundle the JSON reports
tar czf "$OUT/json.tar.gz" -C "$OUT" json && rm -rf "$JSON"
