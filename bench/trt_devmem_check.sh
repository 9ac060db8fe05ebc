#!/usr/bin/env bash
# Verify the TensorRT backend's device-memory layer on a real NVIDIA GPU (no TensorRT needed):
# cuda-python (cuda.bindings.runtime, from its wheel) and pycuda (built here from its sdist against the
# CUDA toolkit), running tests/test_trt_devmem.py with each (alloc, copies, streams, every dtype, OOM).
# Run from the repo root on the GPU machine. WHL: folder with cuda-bindings/cuda-pathfinder/pytest wheels,
# pycuda-*.tar.gz and its wheel deps (pytools, platformdirs, mako, markupsafe, siphash24, typing_extensions).
# OUT: where env.txt, devmem_*.txt and pycuda_build.txt go.
set -u
WHL=${WHL:-wheels/devmem}
OUT=${OUT:-bench/out/trt_devmem}
SITE=${SITE:-/tmp/site}
PY=${PY:-python3}
mkdir -p "$OUT"
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv
  nvcc --version | tail -2
  $PY -c "import sys, numpy; print('python', sys.version.split()[0], 'numpy', numpy.__version__)"
} >"$OUT/env.txt" 2>&1
$PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$WHL"/*.whl >>"$OUT/env.txt" 2>&1
export PYTHONPATH="$SITE:$PWD"
$PY -c "import cuda.bindings, pytest; print('cuda-bindings', cuda.bindings.__version__, 'pytest', pytest.__version__)" >>"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

# cuda-python first (pycuda not importable yet, so "auto" would pick cuda-python too).
$PY -m pytest tests/test_trt_devmem.py -q -rs -p no:cacheprovider 2>&1 | tee "$OUT/devmem_cuda_python.txt" | tail -3

# pycuda from source: configure against the toolkit, link libcuda from the stubs, build in parallel.
BUILD=/tmp/pycuda
rm -rf "$BUILD" && mkdir -p "$BUILD" && tar xzf "$WHL"/pycuda-*.tar.gz -C "$BUILD"
SRC=$(ls -d "$BUILD"/pycuda-*)
T0=$(date +%s)
( cd "$SRC" && $PY configure.py --cuda-root=/usr/local/cuda --cudadrv-lib-dir=/usr/local/cuda/lib64/stubs \
    && $PY setup.py build_ext -j "$(nproc)" --inplace ) >"$OUT/pycuda_build.txt" 2>&1
echo "pycuda build rc=$? in $(( $(date +%s) - T0 )) s" | tee -a "$OUT/pycuda_build.txt"
tail -3 "$OUT/pycuda_build.txt"
export PYTHONPATH="$SRC:$SITE:$PWD"
$PY -c "import pycuda, pycuda.driver as d; d.init(); print('pycuda', pycuda.VERSION_TEXT, d.Device(0).name())" 2>&1 | tee -a "$OUT/env.txt"
$PY -m pytest tests/test_trt_devmem.py -q -rs -p no:cacheprovider 2>&1 | tee "$OUT/devmem_both.txt" | tail -3
