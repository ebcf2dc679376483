#!/bin/sh
# Builds what is named, one after the other through the CMake targets, at low
# priority, for scripts/run.sh to start in the background while Jupyter
# already serves the tutorials: "engine" (libactmax and the Python module),
# then the built-in models (fashion-cnn, tiny-lm, tiny-llama, ...).
# While NAME trains, build/share/actmax/models/NAME.training holds this
# script's process id (line 1) and a sentence for the user (line 2): the
# kernel's `%model NAME` shows that sentence instead of "no model named".
# While the engine compiles, build/ext/libactmax.so.building does the same
# for every magic that needs the engine.
# A second copy started while one runs leaves the work to the first.
set -eu
cd "$(dirname "$0")/.."
models=build/share/actmax/models
mkdir -p "$models"

exec 9>build/.models-training.lock
if ! flock -n 9; then
    echo "train-background: another training is running; it will finish the models"
    exit 0
fi

# Minutes on two otherwise idle cores (models/CMakeLists.txt says the same);
# the user's own runs share the cores, so the sentence says "about".
minutes() {
    case "$1" in
        engine) echo 5 ;;
        fashion-cnn) echo 2 ;;
        tiny-lm) echo 8 ;;
        tiny-llama) echo 2 ;;
        *) echo 5 ;;
    esac
}

log=$(pwd)/build/background.log
engine_marker=$(pwd)/build/ext/libactmax.so.building
marker() { if [ "$1" = engine ]; then echo "$engine_marker"; else echo "$models/$1.training"; fi; }
targets() { if [ "$1" = engine ]; then echo "actmax actmax_python"; else echo "actmax_model_$(echo "$1" | tr - _)"; fi; }
what() { if [ "$1" = engine ]; then echo "the engine (libactmax) is being compiled"; else echo "'$1' is being trained"; fi; }

now=$(date +%s)
eta=$now
mkdir -p build/ext
for m in "$@"; do
    eta=$((eta + 60 * $(minutes "$m")))
    printf '%s\n%s\n' "$$" "$(what "$m") in the background (since $(date -d "@$now" +%H:%M), \
expected ready around $(date -d "@$eta" +%H:%M), longer while other runs share the cores; \
progress in $log)" > "$(marker "$m")"
done
trap 'for m in "$@"; do rm -f "$(marker "$m")"; done' EXIT
trap 'exit 143' TERM HUP

status=0
for m in "$@"; do
    echo "train-background: $m: started at $(date +%H:%M:%S)"
    t=$(date +%s)
    # shellcheck disable=SC2046 # two targets for the engine, split on purpose
    if nice -n 10 cmake --build build -j"$(nproc 2>/dev/null || echo 2)" --target $(targets "$m"); then
        echo "train-background: $m: ready ($(( $(date +%s) - t )) s)"
    else
        echo "train-background: $m: FAILED; run 'cmake --build build' to see why" >&2
        status=1
    fi
    rm -f "$(marker "$m")"
done
exit $status
