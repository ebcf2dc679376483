#!/bin/sh
# The main job on a fresh Debian 12 machine: installs what is missing, builds
# the kernel, the engine and fashion-cnn, installs the kernelspec for this
# user and starts Jupyter Notebook on the tutorials. The language models
# (tiny-lm, tiny-llama) train in the background meanwhile, so the image
# tutorials open minutes earlier; until a model is ready, `%model NAME` says
# it is still training and when it should be done. Arguments go to Jupyter
# Notebook (e.g. --port=8890 --no-browser).
set -eu
cd "$(dirname "$0")/.."
t0=$(date +%s)
phase() { echo "run.sh: $1 ($(( $(date +%s) - t0 )) s since start)"; }

./scripts/install-deps.sh
phase "packages present"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
phase "configured"
# Only what the first notebooks need (the kernel, the engine, fashion-cnn, and
# the Python module for the python3-kernel notebooks); the tests' programs are
# built by scripts/test.sh (or `cmake --build build`).
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" \
    --target actmax_kernel actmax_logos actmax_python actmax_model_fashion_cnn
cmake --build build --target install-kernelspec
phase "kernel, engine, Python module and fashion-cnn ready"

# In the background, at low priority; a shell's background jobs ignore the
# Ctrl-C that stops Jupyter, so the training finishes either way.
./scripts/train-background.sh tiny-lm tiny-llama >build/models-training.log 2>&1 &
phase "tiny-lm and tiny-llama training in the background (build/models-training.log)"

# The Python module (build/python/actmax) for notebooks on the python3 kernel.
export PYTHONPATH="$(pwd)/build/python${PYTHONPATH:+:$PYTHONPATH}"
set -- --notebook-dir="$(pwd)/notebooks" "$@"
# Notebook refuses to start as root unless told; a container's root is common.
[ "$(id -u)" -ne 0 ] || set -- --allow-root "$@"
phase "starting Jupyter Notebook"
exec /usr/bin/python3 -m notebook "$@"
