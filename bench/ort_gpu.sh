# Sourced by the GPU bench scripts (they set PARTS, SITE and PY first). onnxruntime-gpu 1.31.1 (cp312) travels to the
# GPU machine (no internet there) as its wheel in pieces that fit one device call each, tree included (64 MiB):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 \
#       onnxruntime-gpu==1.31.1 -d dl && split -b 56M -d dl/onnxruntime_gpu-*.whl ortgpu.part-
# each piece copied into $PARTS by its own call (a whole wheel named $PARTS/ortgpu.part-00 works too), with the wheels
# of trtdbg's dependencies that the GPU image lacks (orjson; same pip download options, `--platform
# manylinux_2_17_x86_64`) as $PARTS/*.whl.
# ORT's CUDA 13 libraries are taken from PyTorch's nvidia-* wheels when the loader does not find them.
ORT_GPU_WHEEL=/tmp/onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl
ORT_GPU_SHA256=05d548956197b9d01f59b625de740e0d6be3593f874e241a12dc0362650ecdf7

# install_ort_gpu: unless $SITE has onnxruntime already, join $PARTS/ortgpu.part-* into the wheel, check its sha256
# and install it with $PARTS/*.whl into $SITE; one line and exit 2 when a step fails.
install_ort_gpu() {
  [ -d "$SITE/onnxruntime" ] && return 0
  ls "$PARTS"/ortgpu.part-* >/dev/null 2>&1 || { echo "no onnxruntime-gpu pieces $PARTS/ortgpu.part-*" >&2; exit 2; }
  cat "$PARTS"/ortgpu.part-* >"$ORT_GPU_WHEEL"
  echo "$ORT_GPU_SHA256  $ORT_GPU_WHEEL" | sha256sum -c --quiet - || { echo "onnxruntime-gpu pieces: wrong sha256" >&2; exit 2; }
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$ORT_GPU_WHEEL" \
    $(ls "$PARTS"/*.whl 2>/dev/null) || exit 2
  rm -f "$ORT_GPU_WHEEL"
}

# use_nvidia_libs: the nvidia-*/lib folders of the installed Python packages go first on LD_LIBRARY_PATH.
use_nvidia_libs() {
  local libs
  libs=$($PY -c "import glob, site; print(':'.join(sorted(d for p in site.getsitepackages() for d in glob.glob(p + '/nvidia/*/lib'))))")
  [ -n "$libs" ] && export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  return 0
}

# ort_gpu_env: install_ort_gpu, then $SITE and the repo first on PYTHONPATH and the nvidia libraries on LD_LIBRARY_PATH.
ort_gpu_env() {
  install_ort_gpu
  export PYTHONPATH="$SITE:$PWD"
  use_nvidia_libs
}

# gpu_versions: the GPU, its driver and CUDA version, and the Python packages that made a result (its env.txt).
gpu_versions() {
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  nvidia-smi | grep "CUDA Version"
  $PY -c "import onnxruntime as o, onnx, numpy, ml_dtypes, os; print('onnxruntime', o.__version__, o.get_available_providers(), 'onnx', onnx.__version__, 'numpy', numpy.__version__, 'ml_dtypes', ml_dtypes.__version__, 'cpus', os.cpu_count())"
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" 2>/dev/null
  return 0
}
