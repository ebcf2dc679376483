#!/bin/sh
# The whole test suite on a fresh Debian 12 machine: installs what is missing,
# builds everything (training the built-in models on first build), runs ctest,
# then runs the libtorch-free parts again under AddressSanitizer+UBSan.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh --tests
./scripts/build.sh
(cd build && ctest --output-on-failure -j1)

# libtorch itself is not instrumented, and an ASan build of the engine would
# cost CI tens of minutes of compiling for checks the plain build already makes;
# the kernel, the renderer, the tokenizer and the dataset readers are ours
# alone, so they are the ones run under the sanitizers. The built-in models
# come from the cache the first build filled, not from a second training.
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DACTMAX_SANITIZE=ON -DACTMAX_ENGINE=OFF
cmake --build build-asan -j"$(nproc 2>/dev/null || echo 2)"
(cd build-asan && ctest --output-on-failure -j1)
