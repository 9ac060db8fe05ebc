#!/usr/bin/env bash
# Emulated (ort:fp16/bf16 on CPU) vs real (ort-cuda:fp16/bf16) per-tensor verdict agreement on the shared models,
# on a GPU machine without internet. Run from the repo root there.
#
# onnxruntime-gpu: the pieces $PARTS/ortgpu.part-* (default /tmp/parts; bench/ort_gpu.sh says how they are made),
# joined and installed into $SITE.
#
#   MODELS  folder with the shared models and inputs.py (default ../shared/models)
#   OUT     results: agreement.json, agreement.md, cuda_kernels.json, env.txt (default bench/out/agreement)
set -u
PARTS=${PARTS:-/tmp/parts}
SITE=${SITE:-/tmp/site}
MODELS=${MODELS:-../shared/models}
OUT=${OUT:-bench/out/agreement}
PY=${PY:-python3}
mkdir -p "$OUT" "$SITE"
. "$(dirname "$0")/ort_gpu.sh"
ort_gpu_env
gpu_versions 2>&1 | tee "$OUT/env.txt"
$PY bench/precision_agreement.py --models "$MODELS" --out "$OUT" "$@"
