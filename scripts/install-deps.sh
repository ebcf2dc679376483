#!/bin/sh
# Installs the Debian 12 packages actmax needs, only when some are missing.
# Idempotent: a second run with everything present makes no network call.
# --tests adds what only the test suite uses (a browser for the notebook UI
# test, pytest, clang-format for the format check): scripts/run.sh leaves them
# out to reach Jupyter sooner.
set -eu

PKGS="build-essential cmake pkg-config git
libtorch-dev libopenblas0-pthread libdnnl-dev
libzmq3-dev libsodium-dev libcjson-dev libpng-dev libcairo2-dev fonts-dejavu-core zlib1g-dev
python3 python3-dev python3-torch python3-torchvision python3-numpy
python3-jupyter-client python3-nbclient python3-nbformat python3-ipykernel python3-sentencepiece
jupyter-notebook
dataset-fashion-mnist fortunes-min fortunes"
if [ "${1:-}" = --tests ]; then
    PKGS="$PKGS python3-pytest python3-psutil chromium clang-format"
fi

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done

if [ -n "$missing" ]; then
    echo "install-deps: installing:$missing"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update
    # A first install unpacks some 60 000 files, and dpkg's fsync of each one
    # was most of its time (bench/setup/fresh_setup.sh). Without it, only a
    # power failure during the install could leave damaged files behind
    # (repaired by `apt-get install --reinstall`).
    # shellcheck disable=SC2086
    $SUDO apt-get install -y --no-install-recommends -o Dpkg::Options::=--force-unsafe-io $missing
fi

# libtorch calls whatever libblas.so.3 is selected; the reference BLAS is ~40x
# slower than OpenBLAS here, so make sure the optimized one wins.
blas=$(update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | awk '/^Value:/{print $2}')
case "$blas" in
    *openblas*) ;;
    *)
        alt=$(update-alternatives --list libblas.so.3-x86_64-linux-gnu 2>/dev/null | grep openblas | head -n1 || true)
        if [ -n "$alt" ]; then
            SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
            $SUDO update-alternatives --set libblas.so.3-x86_64-linux-gnu "$alt"
        fi
        ;;
esac
echo "install-deps: all packages present"
