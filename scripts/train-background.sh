#!/bin/sh
# Trains the named built-in models (tiny-lm, tiny-llama, ...) one after the
# other through their CMake targets, at low priority, for scripts/run.sh to
# start in the background while Jupyter already serves the image tutorials.
# While NAME trains, build/share/actmax/models/NAME.training holds this
# script's process id (line 1) and a sentence for the user (line 2): the
# kernel's `%model NAME` shows that sentence instead of "no model named".
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
        tiny-lm) echo 8 ;;
        tiny-llama) echo 2 ;;
        *) echo 5 ;;
    esac
}

log=$(pwd)/build/models-training.log
now=$(date +%s)
eta=$now
for m in "$@"; do
    eta=$((eta + 60 * $(minutes "$m")))
    printf '%s\n%s\n' "$$" "'$m' is being trained in the background (since $(date -d "@$now" +%H:%M), \
expected ready around $(date -d "@$eta" +%H:%M), longer while other runs share the cores; \
progress in $log)" > "$models/$m.training"
done
trap 'for m in "$@"; do rm -f "$models/$m.training"; done' EXIT
trap 'exit 143' TERM HUP

status=0
for m in "$@"; do
    echo "train-background: $m: started at $(date +%H:%M:%S)"
    t=$(date +%s)
    if nice -n 10 cmake --build build --target "actmax_model_$(echo "$m" | tr - _)"; then
        echo "train-background: $m: ready ($(( $(date +%s) - t )) s)"
    else
        echo "train-background: $m: FAILED; run 'cmake --build build' to see why" >&2
        status=1
    fi
    rm -f "$models/$m.training"
done
exit $status
