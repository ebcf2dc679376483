"""Runs one built-in model's training script unless a cached result of the
same scripts exists, so a fresh build directory (or a second build variant)
does not retrain: the cache key is a hash of the model's scripts, its
arguments and the torch version.

Usage: train.py NAME --out FILE.pt --data-dir DIR [--cache DIR]
"""
import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))

# name -> (script, the scripts whose text decides the result, extra outputs in --data-dir)
MODELS = {
    "fashion-cnn": ("fashion_cnn.py", ["fashion_cnn.py", "fmnist.py"], []),
    "fashion-judge": ("fashion_judge.py", ["fashion_judge.py", "fmnist.py"], []),
    "tiny-lm": ("tiny_lm.py", ["tiny_lm.py", "bpe.py", "fortunes.py"],
                ["fortunes-heldout.txt", "tiny-lm-tokenizer.json"]),
    "tiny-llama": ("tiny_llama.py", ["tiny_llama.py", "spm_json.py", "fortunes.py", "export.py"],
                   ["tiny-llama-tokenizer.json", "tiny-llama-spm.model"]),
}


def key(name, extra_args):
    h = hashlib.sha256()
    for s in MODELS[name][1]:
        with open(os.path.join(HERE, s), "rb") as f:
            h.update(s.encode() + b"\0" + f.read() + b"\0")
    h.update(" ".join(extra_args).encode() + b"\0" + torch.__version__.encode())
    return h.hexdigest()[:16]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", choices=sorted(MODELS))
    ap.add_argument("--out", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--cache", default="", help="cache directory; empty: no cache")
    args, extra = ap.parse_known_args()
    script, _, data_files = MODELS[args.name]
    outputs = [(args.out, os.path.basename(args.out))] + [
        (os.path.join(args.data_dir, f), f) for f in data_files]
    slot = os.path.join(args.cache, f"{args.name}-{key(args.name, extra)}") if args.cache else None

    if slot and all(os.path.isfile(os.path.join(slot, c)) for _, c in outputs):
        for dst, c in outputs:
            os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
            shutil.copyfile(os.path.join(slot, c), dst)
        print(f"{args.name}: copied from the cache {slot} (delete it to retrain)", flush=True)
        return 0

    cmd = [sys.executable, os.path.join(HERE, script), "--out", args.out]
    if data_files:
        cmd += ["--data-dir", args.data_dir]
    t0 = time.time()
    rc = subprocess.call(cmd + extra)
    if rc != 0:
        print(f"{args.name}: training failed (exit status {rc})", file=sys.stderr)
        return rc
    print(f"{args.name}: training took {time.time() - t0:.0f} s", flush=True)
    if slot:
        try:
            tmp = slot + f".tmp{os.getpid()}"
            os.makedirs(tmp, exist_ok=True)
            for src, c in outputs:
                shutil.copyfile(src, os.path.join(tmp, c))
            os.replace(tmp, slot)
        except OSError as e:  # a read-only or full cache must not fail the build
            print(f"{args.name}: could not fill the cache {slot}: {e}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
