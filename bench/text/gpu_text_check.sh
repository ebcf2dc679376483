#!/usr/bin/env bash
# Builds libactmax (ext/ alone) against this machine's PyTorch and checks the
# text-prompt API on cuda against the PyTorch model (gpu_text_check.py).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PYTHON:-python3}
BUILD=${BUILD:-/tmp/actmax-gpu-text}
PREFIX=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')
for d in /usr/local/cuda/bin /usr/local/cuda-*/bin; do [ -x "$d/nvcc" ] && export PATH="$d:$PATH" && break; done
mkdir -p "$BUILD-src"
cat >"$BUILD-src/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.18)
project(actmax VERSION 0.1.0 LANGUAGES C CXX)
set(CMAKE_C_STANDARD 11)
set(CMAKE_CXX_STANDARD 17)
set(ACTMAX_C_WARNINGS -Wall -Wextra)
set(ACTMAX_CXX_WARNINGS -Wall -Wextra)
add_subdirectory("$ROOT/ext" ext)
CMAKE
cmake --version | head -1
cmake -S "$BUILD-src" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DTorch_DIR="$PREFIX/Torch" >"$BUILD.cfg.log" 2>&1 ||
    { tail -n 30 "$BUILD.cfg.log"; exit 1; }
cmake --build "$BUILD" -j"$(nproc)" --target actmax 2>&1 | grep -E "error|warning: |Built target" || true
nm -D --defined-only "$BUILD/ext/libactmax.so" | grep -c " T am_tokenizer_\| T am_dataset_\| T am_text_"
ACTMAX_LIB="$BUILD/ext/libactmax.so" "$PY" "$ROOT/bench/text/gpu_text_check.py"
