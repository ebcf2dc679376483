#!/bin/sh
# Times the README's main command (scripts/run.sh) on a fresh Debian 12: in a
# minimal bookworm chroot (debootstrap --variant=minbase bookworm DIR) with
# /proc, /sys and /dev bind-mounted, the project cloned inside with git, and
# prints each phase: the packages, configure, compiling the engine and the
# kernel, each model's training, and when Jupyter answers with the first
# tutorial listed. Run as root; the chroot is used up (clone and packages stay
# in it), so give it a copy: `cp -ax /srv/fresh /srv/fresh-copy`.
#
# Usage: bench/setup/fresh_setup.sh CHROOT [MAX_MINUTES]   (default 120)
# The project is cloned from this checkout's HEAD (commit first).
set -eu
[ $# -ge 1 ] || { echo "usage: $0 CHROOT [MAX_MINUTES]" >&2; exit 2; }
ROOT=$(cd "$1" && pwd)
MAX_S=$(( ${2:-120} * 60 ))
REPO=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" -eq 0 ] || { echo "fresh_setup: chroot needs root" >&2; exit 2; }
[ -x "$ROOT/bin/sh" ] || { echo "fresh_setup: $ROOT is not a Debian root (no /bin/sh)" >&2; exit 2; }
[ ! -e "$ROOT/root/actmax" ] || { echo "fresh_setup: $ROOT/root/actmax exists: not fresh" >&2; exit 2; }
git -C "$REPO" diff --quiet HEAD || echo "fresh_setup: note: uncommitted changes are not cloned"

W=$(mktemp -d /tmp/fresh_setup.XXXXXX)
PROJ=$ROOT/root/actmax
PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
TOKEN=fresh-setup-bench
RUNPID=""

in_root() {
    # Only processes started inside this chroot (their root is $ROOT).
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/root" 2>/dev/null)" = "$ROOT" ] && echo "${p#/proc/}"
    done
    return 0
}
cleanup() {
    [ -z "$RUNPID" ] || kill "$RUNPID" 2>/dev/null || true
    sleep 2
    for p in $(in_root); do kill "$p" 2>/dev/null || true; done
    sleep 1
    for m in dev sys proc; do
        mountpoint -q "$ROOT/$m" && umount -R "$ROOT/$m" 2>/dev/null || umount -lR "$ROOT/$m" 2>/dev/null || true
    done
}
trap cleanup EXIT INT TERM

for m in proc sys dev; do
    mount --rbind "/$m" "$ROOT/$m"
    mount --make-rslave "$ROOT/$m"
done
[ -s "$ROOT/etc/resolv.conf" ] || cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
git clone -q "$REPO" "$PROJ"
git -C "$PROJ" checkout -q "$(git -C "$REPO" rev-parse HEAD)"

load0=$(cut -d' ' -f1-3 /proc/loadavg)
t0=$(date +%s)
mkfifo "$W/out"
# Each output line stamped with seconds since the start.
/usr/bin/python3 -u -c '
import sys, time
t0 = float(sys.argv[1])
for line in sys.stdin:
    sys.stdout.write("%7.1f %s" % (time.time() - t0, line))
' "$t0" <"$W/out" >"$W/run.log" &
chroot "$ROOT" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
    sh -c "cd /root/actmax && exec ./scripts/run.sh --no-browser --ip=127.0.0.1 --port=$PORT --NotebookApp.token=$TOKEN" \
    >"$W/out" 2>&1 &
RUNPID=$!
echo "fresh_setup: running scripts/run.sh in $ROOT (log: $W/run.log)"

since() { echo $(( $(date +%s) - t0 )); }
py_ok="" t_jupyter="" t_usable="" t_lm="" t_llama="" t_first_cell="" msg_engine="" msg_training=""
models=$PROJ/build/share/actmax/models
engine_marker=$PROJ/build/ext/libactmax.so.building
# The engine, the Python module and fashion-cnn built, none still marked.
usable() {
    [ -e "$PROJ/build/ext/libactmax.so" ] && [ ! -e "$engine_marker" ] &&
        ls "$PROJ"/build/python/actmax/_actmax*.so >/dev/null 2>&1 &&
        [ -e "$models/fashion-cnn.pt" ] && [ ! -e "$models/fashion-cnn.training" ]
}
in_chroot() { chroot "$ROOT" /usr/bin/env -i HOME=/root PATH=/usr/bin:/bin "$@"; }
while [ "$(since)" -lt "$MAX_S" ]; do
    if ! kill -0 "$RUNPID" 2>/dev/null; then
        echo "fresh_setup: scripts/run.sh stopped early; the end of its log:" >&2
        tail -n 30 "$W/run.log" >&2
        exit 1
    fi
    if [ -z "$t_jupyter" ] && curl -sf "http://127.0.0.1:$PORT/api/contents?token=$TOKEN" 2>/dev/null |
            grep -q '"01-first-neuron.ipynb"'; then
        t_jupyter=$(since)
        load_j=$(cut -d' ' -f1-3 /proc/loadavg)
        # What a student's first cell says while the engine still compiles.
        [ ! -e "$engine_marker" ] || msg_engine=$(in_chroot /root/actmax/build/actmax -c '%model fashion-cnn' 2>&1 | head -n 1)
    fi
    # The first notebook is usable once the engine and fashion-cnn are built:
    # then time what a student's first cells do, and what the text
    # tutorial's first cell says while tiny-lm still trains.
    if [ -n "$t_jupyter" ] && [ -z "$t_usable" ] && usable; then
        t_usable=$(since)
        a=$(date +%s)
        in_chroot sh -c "cd /tmp && /root/actmax/build/actmax -c '%model fashion-cnn
%maximize conv2[5] steps=64'" >"$W/first_cell.txt" 2>&1 && t_first_cell=$(( $(date +%s) - a ))
        # The python3-kernel notebooks' first line.
        in_chroot PYTHONPATH=/root/actmax/build/python /usr/bin/python3 -c \
            'import actmax; print(actmax.load("fashion-cnn"))' >"$W/python_import.txt" 2>&1 &&
            py_ok=yes || py_ok="no: $(tail -n 1 "$W/python_import.txt")"
        [ -e "$models/tiny-lm.pt" ] || msg_training=$(in_chroot /root/actmax/build/actmax -c '%model tiny-lm' 2>&1 | head -n 1)
    fi
    [ -n "$t_lm" ] || [ ! -e "$models/tiny-lm.pt" ] || t_lm=$(since)
    [ -n "$t_llama" ] || [ ! -e "$models/tiny-llama.pt" ] || t_llama=$(since)
    if [ -n "$t_usable" ] && [ -n "$t_lm" ] && [ -n "$t_llama" ] &&
            ! ls "$models"/*.training >/dev/null 2>&1; then
        break
    fi
    sleep 2
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)
cp "$PROJ/build/background.log" "$W/" 2>/dev/null || true

# The time of the first log line matching a pattern, or "-".
at() { awk -v re="$1" '$0 ~ re { print $1; exit }' "$W/run.log" | grep . || echo -; }
said() { grep -ho "$1" "$W/run.log" "$W/background.log" 2>/dev/null | head -n 1 | grep -o '[0-9][0-9]*' | head -n 1 || true; }
t_pkgs=$(at 'run.sh: packages present')
t_conf=$(at 'run.sh: configured')
t_kernel=$(at 'Built target actmax_kernel$')
t_ready=$(at 'run.sh: kernel ready')
# The background job's log has no stamps: its "ready (N s)" lines, added up
# from when it started, give the times since run.sh started.
t_bg=$(at 'run.sh: engine, fashion-cnn')
bg_s() { awk -v m="train-background: $1: ready" 'index($0, m) == 1 { v = $(NF - 1); gsub(/[(]/, "", v); print v; exit }' "$W/background.log" 2>/dev/null; }
t_engine=- t_fcnn=-
if [ "$t_bg" != - ] && [ -n "$(bg_s engine)" ]; then
    t_engine=$(awk -v a="$t_bg" -v b="$(bg_s engine)" 'BEGIN { printf "%.0f", a + b }')
    [ -z "$(bg_s fashion-cnn)" ] || t_fcnn=$(awk -v a="$t_engine" -v b="$(bg_s fashion-cnn)" 'BEGIN { printf "%.0f", a + b }')
fi

echo
echo "Fresh set-up of actmax ($(git -C "$PROJ" log -1 --format='%h %s' | cut -c1-60))"
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(free -g | awk '/^Mem:/{print $2}') GiB"
echo "load average (1, 5, 15 min): $load0 at the start, ${load_j:-?} when Jupyter answered, $load1 at the end"
echo "seconds since scripts/run.sh started:"
printf '  %-52s %6s\n' "Debian packages installed (apt)" "$t_pkgs" \
    "CMake configured" "$t_conf" \
    "kernel compiled (actmax)" "$t_kernel" \
    "kernelspec installed" "$t_ready" \
    "Jupyter answers, first tutorial listed" "${t_jupyter:--}" \
    "engine compiled, with the Python module (background)" "$t_engine" \
    "fashion-cnn trained (background, after the engine)" "$t_fcnn" \
    "first notebook usable (engine and fashion-cnn ready)" "${t_usable:--}" \
    "tiny-lm ready (background)" "${t_lm:--}" \
    "tiny-llama ready (background)" "${t_llama:--}"
echo "training alone (the trainers' own figures, s): fashion-cnn $(said 'fashion-cnn: training took [0-9]*'), \
tiny-lm $(said 'tiny-lm: training took [0-9]*'), tiny-llama $(said 'tiny-llama: training took [0-9]*')"
[ -z "$t_first_cell" ] || echo "first cells (%model fashion-cnn, %maximize conv2[5] steps=64) through the command line: $t_first_cell s"
[ -z "$py_ok" ] || echo "import actmax and load fashion-cnn on Debian's python3 (notebook 06): $py_ok"
[ -z "$msg_engine" ] || echo "%model fashion-cnn while the engine compiled: $msg_engine"
[ -z "$msg_training" ] || echo "%model tiny-lm while it trained: $msg_training"
echo "logs: $W"
