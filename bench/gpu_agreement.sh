#!/usr/bin/env bash
# Emulated (ort:fp16/bf16 on CPU) vs real (ort-cuda:fp16/bf16) per-tensor verdict agreement on the shared models,
# on a GPU machine without internet. Run from the repo root there.
#
# onnxruntime-gpu travels as its wheel split in pieces that fit one device call each (64 MiB with the tree):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 \
#       onnxruntime-gpu==1.31.1 -d dl && split -b 58M -d dl/onnxruntime_gpu-*.whl ortgpu.part-
# Each piece is copied to $PARTS (default /tmp/parts) by its own call; this script joins and installs them into $SITE.
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
if [ ! -d "$SITE/onnxruntime" ]; then
  WHEEL=/tmp/onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl
  cat "$PARTS"/ortgpu.part-* >"$WHEEL"
  echo "05d548956197b9d01f59b625de740e0d6be3593f874e241a12dc0362650ecdf7  $WHEEL" | sha256sum -c - || exit 2
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$WHEEL" || exit 2
fi
export PYTHONPATH="$SITE:$PWD"
NVLIBS=$($PY -c "import glob, site; print(':'.join(sorted(d for p in site.getsitepackages() for d in glob.glob(p + '/nvidia/*/lib'))))")
[ -n "$NVLIBS" ] && export LD_LIBRARY_PATH="$NVLIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  nvidia-smi | grep "CUDA Version"
  $PY -c "import onnxruntime as o, onnx, numpy, ml_dtypes; print('onnxruntime', o.__version__, o.get_available_providers(), 'onnx', onnx.__version__, 'numpy', numpy.__version__, 'ml_dtypes', ml_dtypes.__version__)"
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" 2>/dev/null
} 2>&1 | tee "$OUT/env.txt"
$PY bench/precision_agreement.py --models "$MODELS" --out "$OUT" "$@"
