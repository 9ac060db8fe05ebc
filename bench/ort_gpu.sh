# Sourced by the GPU bench scripts (they set PARTS, SITE and PY first): onnxruntime-gpu 1.31.1 (cp312), which travels
# as its wheel split in pieces, installed into $SITE; ORT's CUDA 13 libraries taken from PyTorch's nvidia-* wheels
# when the loader does not find them.
ORT_GPU_WHEEL=/tmp/onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl
ORT_GPU_SHA256=05d548956197b9d01f59b625de740e0d6be3593f874e241a12dc0362650ecdf7

# install_ort_gpu PIECES [WHEEL...]: unless $SITE has onnxruntime already, join $PARTS/PIECES.part-* into the wheel,
# check its sha256 and install it (with the other WHEELs) into $SITE; exit 2 when either fails.
install_ort_gpu() {
  local pieces=$1
  shift
  [ -d "$SITE/onnxruntime" ] && return 0
  cat "$PARTS/$pieces".part-* >"$ORT_GPU_WHEEL"
  echo "$ORT_GPU_SHA256  $ORT_GPU_WHEEL" | sha256sum -c - || exit 2
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$ORT_GPU_WHEEL" "$@" || exit 2
}

# use_nvidia_libs: the nvidia-*/lib folders of the installed Python packages go first on LD_LIBRARY_PATH.
use_nvidia_libs() {
  local libs
  libs=$($PY -c "import glob, site; print(':'.join(sorted(d for p in site.getsitepackages() for d in glob.glob(p + '/nvidia/*/lib'))))")
  [ -n "$libs" ] && export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  return 0
}
