#!/usr/bin/env bash
# Builds libactmax against this machine's PyTorch 2.x (+ CUDA), then checks
# tapped values against forward hooks on cuda and runs the benchmark with
# device=cuda. Needs: python3 with torch (CUDA), cmake, a C/C++ compiler, nvcc.
# No internet. torchvision is optional (an inline ResNet-18 replaces it).
#
#   bench/engine/gpu_check.sh            [BUILD=dir] [PYTHON=python3] [STEPS=50]
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PYTHON:-python3}
BUILD=${BUILD:-$ROOT/build-gpu}
STEPS=${STEPS:-50}
JOBS=$(nproc 2>/dev/null || echo 4)

say() { echo "gpu_check: $*"; }
die() { echo "gpu_check: ERROR: $*" >&2; exit 1; }
start=$(date +%s)

command -v cmake >/dev/null || die "cmake not found on PATH"
command -v "$PY" >/dev/null || die "'$PY' not found; set PYTHON=/path/to/python3"
"$PY" -c 'import torch' 2>/dev/null || die "'$PY' cannot import torch"
TORCH_VERSION=$("$PY" -c 'import torch; print(torch.__version__)')
PREFIX=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')
TORCH_DIR="$PREFIX/Torch"
[ -f "$TORCH_DIR/TorchConfig.cmake" ] || die "no TorchConfig.cmake under $TORCH_DIR"
"$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' ||
    die "torch $TORCH_VERSION sees no CUDA device (torch.cuda.is_available() is False)"
if ! command -v nvcc >/dev/null; then
    for d in /usr/local/cuda/bin /usr/local/cuda-*/bin; do
        [ -x "$d/nvcc" ] && export PATH="$d:$PATH" && break
    done
fi
command -v nvcc >/dev/null || die "nvcc not found (libtorch's CMake config needs the CUDA toolkit); add it to PATH"
if "$PY" -c 'import torchvision' 2>/dev/null; then tv=present; else tv="absent (inline ResNet-18 used)"; fi
say "torch $TORCH_VERSION, Torch_DIR=$TORCH_DIR, nvcc $(nvcc --version | tail -n1), torchvision $tv"

# Only the engine: no ZeroMQ, cJSON, libpng or cairo needed for these targets.
say "configuring $BUILD"
if ! cmake -S "$ROOT" -B "$BUILD" -DACTMAX_KERNEL=OFF -DACTMAX_MODELS=OFF -DCMAKE_BUILD_TYPE=Release \
      -DTorch_DIR="$TORCH_DIR" -DACTMAX_PYTHON="$(command -v "$PY")" >"$BUILD.configure.log" 2>&1; then
    # Some other part of the tree wants a library this machine lacks; the
    # engine needs none of them, so configure ext/ alone.
    say "full configure failed ($(grep -m1 -i 'error' "$BUILD.configure.log" || true)); configuring ext/ alone"
    SRC="$BUILD-src"
    rm -rf "$BUILD" && mkdir -p "$SRC"
    cat >"$SRC/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.18)
project(actmax VERSION 0.1.0 LANGUAGES C CXX)
set(CMAKE_C_STANDARD 11)
set(CMAKE_CXX_STANDARD 17)
set(CMAKE_POSITION_INDEPENDENT_CODE ON)
set(ACTMAX_C_WARNINGS -Wall -Wextra)
set(ACTMAX_CXX_WARNINGS -Wall -Wextra)
add_subdirectory("$ROOT/ext" ext)
CMAKE
    cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DTorch_DIR="$TORCH_DIR" >"$BUILD.configure.log" 2>&1 ||
        { tail -n 30 "$BUILD.configure.log" >&2; die "cmake configure failed (log: $BUILD.configure.log)"; }
fi
say "building actmax, actmax-engine and the Python module with $JOBS jobs"
cmake --build "$BUILD" -j"$JOBS" --target actmax actmax-engine actmax_python >"$BUILD.build.log" 2>&1 ||
    { tail -n 40 "$BUILD.build.log" >&2; die "build failed (log: $BUILD.build.log; the checks need the Python module: python3-dev for $PY)"; }
LIB="$BUILD/ext/libactmax.so"
[ -f "$LIB" ] || die "built, but $LIB is missing"
export ACTMAX_LIB="$LIB" ACTMAX_ENGINE="$LIB" PYTHONPATH="$BUILD/python${PYTHONPATH:+:$PYTHONPATH}"
say "built in $(( $(date +%s) - start )) s"

say "BLAS / engine self-report:"
"$BUILD/ext/actmax-engine" blas || true

say "correctness on cuda: taps and input gradients vs forward hooks"
"$PY" "$ROOT/bench/engine/cuda_check.py" --device cuda || die "cuda correctness check failed"

say "benchmark on cuda ($STEPS timed steps)"
"$PY" "$ROOT/bench/engine/bench_engine.py" --device cuda --steps "$STEPS" --lib "$LIB" ||
    die "benchmark failed"
say "done in $(( $(date +%s) - start )) s"
