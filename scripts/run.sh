#!/bin/sh
# The main job on a fresh Debian 12 machine: installs what is missing, builds
# the kernel, the engine and the built-in models, installs the kernelspec for
# this user and starts Jupyter Notebook on the tutorials. Arguments go to
# Jupyter Notebook (e.g. --port=8890 --no-browser).
set -eu
cd "$(dirname "$0")/.."
./scripts/build.sh
cmake --build build --target install-kernelspec

# The Python module (build/python/actmax) for notebooks on the python3 kernel.
export PYTHONPATH="$(pwd)/build/python${PYTHONPATH:+:$PYTHONPATH}"
set -- --notebook-dir="$(pwd)/notebooks" "$@"
# Notebook refuses to start as root unless told; a container's root is common.
[ "$(id -u)" -ne 0 ] || set -- --allow-root "$@"
exec /usr/bin/python3 -m notebook "$@"
