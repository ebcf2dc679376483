#!/bin/sh
# The main job on a fresh Debian 12 machine: installs what is missing, builds
# the kernel, the engine and the built-in models, installs the kernelspec for
# this user and starts Jupyter Notebook on the tutorials.
set -eu
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)

./scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$jobs"
cmake --build build --target install-kernelspec

set -- --notebook-dir="$(pwd)/notebooks" "$@"
# Notebook refuses to start as root unless told; a container's root is common.
[ "$(id -u)" -ne 0 ] || set -- --allow-root "$@"
exec /usr/bin/python3 -m notebook "$@"
