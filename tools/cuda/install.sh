#!/usr/bin/env bash
# Installs a CUDA 13.0 toolkit from PyPI wheels, enough to build `--features cuda` on a
# machine without a GPU, a driver or a system toolkit, and writes an env file to source:
#
#   bash tools/cuda/install.sh && . target/cuda-toolkit/env.sh
#   cargo build --release --features cuda
#
# Idempotent: a second run with the same pins does nothing. DGG_CUDA_TOOLKIT=<dir> puts
# it elsewhere (default target/cuda-toolkit, ignored by git, removed by `cargo clean`).
# About 1.2 GB (cuBLAS is most of it), 16 s on a fast link.
#
# What it builds links the CUDA libraries dynamically (candle enables cudarc's
# `dynamic-linking`): the binary and the plugin need the NVIDIA driver's libcuda.so.1 and
# libcudart/libcublas/libcurand (LD_LIBRARY_PATH below) to start at all, GPU used or not.
#
# Why these wheels: the CUDA 12 `nvidia-cuda-nvcc-cu12` wheels hold no `nvcc` driver;
# the CUDA 13 ones do, and together lay out a toolkit root at nvidia/cu13/ (bin, include,
# lib). CUDA 13.0 (update 2), the oldest CUDA 13: the kernels are PTX, JIT-compiled by
# the driver, and a driver loads only the PTX ISA of its own CUDA release or older, so
# nvcc 13.0 (PTX ISA 9.0) runs with every CUDA 13 driver (R580+); nvcc 13.4's PTX would
# need a 13.4 driver. cudarc 0.19.10 (under candle 0.11.1) also knows only nvcc 13.0..13.4.
set -euo pipefail
cd "$(dirname "$0")/../.."
DEST=${DGG_CUDA_TOOLKIT:-$PWD/target/cuda-toolkit}
PINS=(
  nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88
  nvidia-cuda-runtime==13.0.96 nvidia-cuda-nvrtc==13.0.88 nvidia-cuda-cccl==13.0.85
  nvidia-cublas==13.1.0.3 nvidia-curand==10.4.0.35
)
# Compute capability of the kernels' PTX: candle-kernels (through cudaforge)
# compiles each .cu to PTX for this one target, and the driver JIT-compiles PTX for any
# newer GPU. 80 = Ampere and every newer GPU (A100, RTX 30/40/50, H100/H200, B200) with the
# bf16 kernels (candle compiles them only for >= 80). 75 adds Turing (T4, RTX 20) but has
# no bf16 kernels. Never a bare 90/100: it becomes sm_90a/sm_100a, whose PTX runs on that
# one architecture only. An explicit CUDA_COMPUTE_CAP in the environment wins.
CAP=${CUDA_COMPUTE_CAP:-80}

ROOT=$DEST/nvidia/cu13
STAMP="${PINS[*]} stub-v1"
if [[ -f $DEST/.installed && $(cat "$DEST/.installed") == "$STAMP" && -x $ROOT/bin/nvcc ]]; then
  echo "CUDA toolkit already installed in $DEST"
else
  rm -rf "$DEST"
  # One pip call: `pip --target` does not merge a second call into the shared nvidia/ folder.
  python3 -m pip install --quiet --no-cache-dir --disable-pip-version-check \
    --target "$DEST" "${PINS[@]}"

  # candle links cudarc with `dynamic-linking`: the linker wants the unversioned names,
  # which only a system toolkit ships. Made in the toolkit's lib/, where cudarc looks.
  for lib in cudart cublas cublasLt curand nvrtc; do
    real=$(cd "$ROOT/lib" && ls lib$lib.so.* | sort | head -n1)
    ln -sfn "$real" "$ROOT/lib/lib$lib.so"
  done

  # ...and the driver's libcuda.so, which no wheel ships. A link-time stub in lib/stubs/,
  # as a real toolkit has: every cu* function of cuda.h returns CUDA_ERROR_STUB_LIBRARY
  # (34). Its soname is libcuda.so.1, so the binary loads the real driver at run time;
  # there is no libcuda.so.1 file here, so the stub itself is never loaded.
  mkdir -p "$ROOT/lib/stubs"
  { grep -ohE '\bcu[A-Z][A-Za-z0-9_]*' "$ROOT/include/cuda.h"
    printf '%s\n' cuProfilerInitialize cuProfilerStart cuProfilerStop
  } | sort -u | sed 's/.*/int &(void) { return 34; }/' > "$ROOT/lib/stubs/libcuda-stub.c"
  cc -shared -fPIC -w -Wl,-soname,libcuda.so.1 -o "$ROOT/lib/stubs/libcuda.so" \
    "$ROOT/lib/stubs/libcuda-stub.c"
  echo "$STAMP" > "$DEST/.installed"
fi

cat > "$DEST/env.sh" <<EOF
# Source me to build with --features cuda (written by tools/cuda/install.sh).
export CUDA_ROOT=$ROOT CUDA_PATH=$ROOT CUDA_HOME=$ROOT
export PATH=$ROOT/bin:\$PATH
export CUDA_COMPUTE_CAP=$CAP
# The link (cudarc also searches \$CUDA_ROOT/lib and lib/stubs; candle-kernels does not).
export LIBRARY_PATH=$ROOT/lib:$ROOT/lib/stubs\${LIBRARY_PATH:+:\$LIBRARY_PATH}
# The run: libcudart.so.13 and co. (never lib/stubs: libcuda.so.1 is the driver's).
export LD_LIBRARY_PATH=$ROOT/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}
EOF
echo "CUDA $("$ROOT/bin/nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'), PTX for" \
  "compute_$CAP; now: . $DEST/env.sh"
