"""Tokenizer throughput: the C tokenizer (ext/data) beside the reference
Python implementation (models/bpe.py, without its word cache, i.e. as a
first pass over unseen text) on the same file, as ratios.

Usage: bench_tokenizer.py BENCH_BINARY TOKENIZER.json TEXT_FILE
"""
import subprocess
import sys
import time

import bpe


def main():
    binary, tok_path, text_path = sys.argv[1:4]
    repeat = 5
    with open(tok_path, encoding="utf-8") as f:
        tok_json = f.read()
    with open(text_path, "rb") as f:
        data = f.read()
    out = subprocess.run([binary, tok_path, text_path, str(repeat)], check=True,
                         capture_output=True, text=True).stdout.split()
    c_enc, c_dec, nbytes, ntok = float(out[1]), float(out[3]), int(out[4]), int(out[5])
    py_enc = py_dec = float("inf")
    for _ in range(repeat):
        tok = bpe.Tokenizer.from_json(tok_json)  # fresh: no cached words
        t0 = time.perf_counter()
        ids = tok.encode(data)
        t1 = time.perf_counter()
        tok.decode(ids)
        t2 = time.perf_counter()
        py_enc, py_dec = min(py_enc, t1 - t0), min(py_dec, t2 - t1)
    if len(ids) != ntok:
        sys.exit(f"token counts differ: C {ntok}, Python {len(ids)}")
    mb = nbytes / 1e6
    print(f"{nbytes} bytes -> {ntok} tokens, best of {repeat}")
    print(f"{'':8} {'C (ms)':>10} {'Python (ms)':>12} {'C MB/s':>8} {'Py MB/s':>8} {'speed-up':>9}")
    for name, c, p in (("encode", c_enc, py_enc), ("decode", c_dec, py_dec)):
        print(f"{name:8} {c * 1e3:10.2f} {p * 1e3:12.2f} {mb / c:8.1f} {mb / p:8.1f} {p / c:8.1f}x")


if __name__ == "__main__":
    main()
