#!/bin/sh
# The main job on a fresh Debian 12 machine: installs what is missing, builds
# the kernel, installs the kernelspec for this user and starts Jupyter
# Notebook on the tutorials. The engine (with the Python module) and the
# built-in models (fashion-cnn, then tiny-lm and tiny-llama) build in the
# background meanwhile, so the notebooks open minutes earlier; until one is
# ready, a cell that needs it says so and about when it will be (the kernel
# itself needs no engine to start). Arguments go to Jupyter Notebook
# (e.g. --port=8890 --no-browser).
set -eu
cd "$(dirname "$0")/.."
t0=$(date +%s)
phase() { echo "run.sh: $1 ($(( $(date +%s) - t0 )) s since start)"; }

./scripts/install-deps.sh
phase "packages present"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
phase "configured"
# The kernel is C and compiles in about a minute; the engine's C++ against
# libtorch takes several, so it builds in the background (at low priority, a
# shell's background jobs ignore the Ctrl-C that stops Jupyter). A previous
# run's complete build makes the background job a quick no-op.
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" --target actmax_kernel actmax_logos
cmake --build build --target install-kernelspec
phase "kernel ready"

./scripts/train-background.sh engine fashion-cnn tiny-lm tiny-llama >build/background.log 2>&1 &
phase "engine, fashion-cnn, tiny-lm and tiny-llama building in the background (build/background.log)"

# The Python module (build/python/actmax) for notebooks on the python3 kernel.
export PYTHONPATH="$(pwd)/build/python${PYTHONPATH:+:$PYTHONPATH}"
set -- --notebook-dir="$(pwd)/notebooks" "$@"
# Notebook refuses to start as root unless told; a container's root is common.
[ "$(id -u)" -ne 0 ] || set -- --allow-root "$@"
phase "starting Jupyter Notebook"
exec /usr/bin/python3 -m notebook "$@"
