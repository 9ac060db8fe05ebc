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
install_ort_gpu
export PYTHONPATH="$SITE:$PWD"
use_nvidia_libs
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  nvidia-smi | grep "CUDA Version"
  $PY -c "import onnxruntime as o, onnx, numpy, ml_dtypes; print('onnxruntime', o.__version__, o.get_available_providers(), 'onnx', onnx.__version__, 'numpy', numpy.__version__, 'ml_dtypes', ml_dtypes.__version__)"
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" 2>/dev/null
} 2>&1 | tee "$OUT/env.txt"
$PY bench/precision_agreement.py --models "$MODELS" --out "$OUT" "$@"
