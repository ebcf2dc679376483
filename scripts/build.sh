#!/bin/sh
# Installs what is missing and builds everything into build/ (the kernel, the
# engine, and the built-in models, trained on first build). Shared by the two
# README commands; extra arguments go to the CMake configure step.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"
cmake --build build -j"$(nproc 2>/dev/null || echo 2)"
