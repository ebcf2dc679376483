#!/usr/bin/env bash
# Builds libactmax and the Python module against this machine's PyTorch and
# checks the text-prompt API on cuda against the PyTorch model (gpu_text_check.py).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PYTHON:-python3}
BUILD=${BUILD:-/tmp/actmax-gpu-text}
PREFIX=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')
for d in /usr/local/cuda/bin /usr/local/cuda-*/bin; do [ -x "$d/nvcc" ] && export PATH="$d:$PATH" && break; done
cmake --version | head -1
# The engine and the Python module (which draws nothing without the kernel).
cmake -S "$ROOT" -B "$BUILD" -DACTMAX_KERNEL=OFF -DACTMAX_MODELS=OFF -DCMAKE_BUILD_TYPE=Release \
    -DTorch_DIR="$PREFIX/Torch" -DACTMAX_PYTHON="$(command -v "$PY")" >"$BUILD.cfg.log" 2>&1 ||
    { tail -n 30 "$BUILD.cfg.log"; exit 1; }
cmake --build "$BUILD" -j"$(nproc)" --target actmax actmax_python 2>&1 | grep -E "error|warning: |Built target" || true
nm -D --defined-only "$BUILD/ext/libactmax.so" | grep -c " T am_tokenizer_\| T am_dataset_\| T am_text_"
ACTMAX_ENGINE="$BUILD/ext/libactmax.so" PYTHONPATH="$BUILD/python" "$PY" "$ROOT/bench/text/gpu_text_check.py"
