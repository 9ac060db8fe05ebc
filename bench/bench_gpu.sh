#!/usr/bin/env bash
# `trtdbg bench` on a real NVIDIA GPU: ort (CPU) vs ort-cuda (FP32, TF32 off) vs ort-cuda:tf32 on generated models.
# Run from the repo root on the GPU machine. onnxruntime-gpu: the pieces $PARTS/ortgpu.part-* (bench/ort_gpu.sh says
# how they are made), installed into $SITE. Results: $OUT/*.json, summary.txt.
set -u
OUT=${OUT:-bench/out/bench_gpu}
PARTS=${PARTS:-/tmp/parts}
SITE=${SITE:-/tmp/site}
WS=${WS:-/tmp/ws}
N=${N:-200}
PY=${PY:-python3}
mkdir -p "$OUT" "$WS"
. "$(dirname "$0")/ort_gpu.sh"
ort_gpu_env
gpu_versions 2>&1 | tee "$OUT/env.txt"
$PY - "$WS" <<'PYEOF'
import sys, onnx
from engine_core.model.demo import write_demo
from engine_core.model.synthetic import small_cnn_model, wide_activation_model
ws = sys.argv[1]
write_demo(ws)
onnx.save(small_cnn_model(), f"{ws}/small_cnn.onnx")
onnx.save(wide_activation_model(256 << 20), f"{ws}/wide256M.onnx")
PYEOF
for m in demo small_cnn wide256M; do
  for b in ort ort-cuda ort-cuda:tf32; do
    f="$OUT/${m}_${b/:/_}.json"
    $PY -m tui.cli.main bench "$WS/$m.onnx" --backend "$b" -n "$N" --warmup 20 --layer-times --json >"$f" 2>"$f.err" \
      || { echo "$m $b: rc=$? $(cat "$f.err")"; rm -f "$f"; continue; }
  done
done
$PY - "$OUT" <<'PYEOF' | tee "$OUT/summary.txt"
import json, pathlib, sys
print(f"{'model':10} {'backend':14} {'median ms':>10} {'p99 ms':>9} {'inf/s':>9} {'host peak':>10} {'device':>10}  slowest layer")
for f in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    d = json.loads(f.read_text())
    top = max(d["layers"] or [], key=lambda x: x["ms"], default=None)
    dev = "n/a" if d["device_memory_bytes"] is None else f"{d['device_memory_bytes'] / 2**20:.0f} MiB"
    print(f"{pathlib.Path(d['model']).stem:10} {d['backend']:14} {d['latency_ms']['median']:10.3f} {d['latency_ms']['p99']:9.3f} "
          f"{d['throughput_per_s']:9.1f} {d['host_peak_rss_bytes'] / 2**20:7.0f} MiB {dev:>10}  "
          + (f"{top['name']} [{top['op']}] {top['ms']:.3f} ms" if top else ""))
print("device:", d["device"], "| notes:", "; ".join(d["notes"]))
PYEOF
