"""The Python module's cost over the engine, side by side with the command line.

For the same runs (same model, objective, options and seeds) it times:
  cli     the kernel's command line (`actmax -c '%model ...' -o DIR`): per seed one
          process, a first short run to warm up, then the run; the optimization
          loop's seconds as the engine reports them (the "seconds" of its JSON);
  module  m.maximize(...) from Python in this process (warmed once), right after
          the command line's run of the same seed: the
          loop's seconds as the engine reports them (the per-step callback, GIL
          and Ctrl-C checks included) and the wall time of the whole call
          (argument checks, result tensors);
beside the engine's own command line (actmax-engine run, a C caller without
callback, one fresh process per run) and the module with its progress line on,
and prints the fastest of the repeats and the ratios; the target is wall/cli <= 1.02 at
256 steps. Models: fashion-cnn, and a torchvision resnet18 (random weights,
traced at 224 px and saved here). Also the time of `import actmax` and of
loading the engine in a fresh interpreter, beside `import torch`.

usage: bench_python.py --kernel-cli PATH [--engine-cli PATH] [--steps 256] [--repeats 15] [--resnet-repeats 2]
                       [--skip-resnet]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

import actmax

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from machine import cpu_model  # noqa: E402  (bench/machine.py)


def fresh(code, repeats=5):
    """Median seconds of code's own timer in a fresh interpreter."""
    out = []
    for _ in range(repeats):
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        out.append(float(p.stdout.strip().splitlines()[-1]))
    return statistics.median(out)


def cli_seconds(cli, model, objective, steps, seeds, input_key):
    """Loop seconds of each seed's run in one kernel command line process."""
    with tempfile.TemporaryDirectory() as d:
        lines = [f"%model {model} device=cpu {input_key}",
                 f"%maximize {objective} steps=4 seed=0"]
        lines += [f"%maximize {objective} steps={steps} seed={s}" for s in seeds]
        subprocess.run([cli, "-c", "\n".join(lines), "-o", d], capture_output=True, text=True, check=True)
        runs = [json.load(open(os.path.join(d, f))) for f in sorted(os.listdir(d)) if f.endswith(".json")]
    return [r["seconds"] for r in runs[1:]]


def engine_cli_seconds(engine_cli, path, objective, steps, seed, input_shape):
    """The engine's own command line: a C caller, no progress callback, a fresh process."""
    extra = ["--input", input_shape] if input_shape else []
    p = subprocess.run([engine_cli, "run", path, objective, "--steps", str(steps), "--seed", str(seed)]
                       + extra, capture_output=True, text=True, check=True)
    return json.loads(p.stdout[p.stdout.index("{"):])["seconds"]


def bench_model(name, m, model, objective, steps, repeats, cli, engine_cli, input_shape=""):
    m.maximize(objective, steps=4, progress=False)  # warm: tap graph, allocator
    cli_s, eng_s, mod_s, wall_s, live_s = [], [], [], [], []
    input_key = f"input={input_shape}" if input_shape else ""
    for i in range(repeats):
        # Interleaved, so that the machine's other load hits every side alike.
        cli_s += cli_seconds(cli, model, objective, steps, [i], input_key)
        if engine_cli:
            eng_s.append(engine_cli_seconds(engine_cli, m.path, objective, steps, i, input_shape))
        t = time.perf_counter()
        r = m.maximize(objective, steps=steps, seed=i, progress=False)
        wall_s.append(time.perf_counter() - t)
        mod_s.append(r.seconds)
        t = time.perf_counter()
        m.maximize(objective, steps=steps, seed=i, progress=True)  # the terminal's progress line
        live_s.append(time.perf_counter() - t)
    sys.stderr.write("\r" + " " * 100 + "\r")
    # The fastest of the repeats: on a shared machine the other load only adds time.
    c, e, w, lv = (min(v) for v in (cli_s, mod_s, wall_s, live_s))
    g = min(eng_s) if eng_s else float("nan")
    print(f"{name:26} {objective:10} {steps:5d} {c:8.3f} {g:8.3f} {e:8.3f} {w:8.3f} {lv:8.3f} "
          f"{w / c:8.3f} {w / g:8.3f} {w / e:8.3f} {lv / c:8.3f}   (n={repeats})")
    return w / c, w / g


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kernel-cli", required=True)
    ap.add_argument("--engine-cli", default="")
    ap.add_argument("--steps", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--resnet-repeats", type=int, default=2)
    ap.add_argument("--skip-resnet", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical cores; torch {torch.__version__}; "
          f"engine {actmax.engine()['path']}")
    print()
    imp = fresh("import time; t = time.perf_counter(); import actmax; print(time.perf_counter() - t)")
    eng = fresh("import time; t = time.perf_counter(); import actmax; actmax.engine(); "
                "print(time.perf_counter() - t)")
    tor = fresh("import time; t = time.perf_counter(); import torch; print(time.perf_counter() - t)")
    print(f"import actmax                 {imp * 1000:8.1f} ms")
    print(f"import actmax + load engine   {eng * 1000:8.1f} ms   (libtorch loaded by the engine)")
    print(f"import torch (reference)      {tor * 1000:8.1f} ms   ratio {eng / tor:.2f}")
    print()
    print(f"{'model':26} {'objective':10} {'steps':>5} {'cli s':>8} {'eng s':>8} {'loop s':>8} "
          f"{'wall s':>8} {'live s':>8} {'wall/cli':>8} {'wall/eng':>8} {'wall/loop':>8} {'live/cli':>8}")
    m = actmax.load("fashion-cnn", device="cpu")
    ratios = [bench_model("fashion-cnn 28 px", m, "fashion-cnn", "conv2[5]", a.steps, a.repeats, a.kernel_cli,
                          a.engine_cli)]
    if not a.skip_resnet:
        import torchvision
        torch.manual_seed(0)
        net = torchvision.models.resnet18().eval()
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "resnet18.pt")
            torch.jit.trace(net, torch.randn(1, 3, 224, 224)).save(path)
            r18 = actmax.load(path, device="cpu", input="3x224x224")
            ratios.append(bench_model("resnet18 224 px (random)", r18, path, "layer4[7]", a.steps,
                                      a.resnet_repeats, a.kernel_cli, a.engine_cli, "3x224x224"))
    print()
    print("cli: the kernel's command line (its live display rendered), eng: the engine's command line "
          "(no callback, a fresh process), loop: the engine's loop under the module, wall: the module's "
          "whole call, live: the same with progress=True (the terminal's line)")
    print("target wall/cli <= 1.02: " + ", ".join("%.3f" % r[0] for r in ratios)
          + ";  wall/eng: " + ", ".join("%.3f" % r[1] for r in ratios))


if __name__ == "__main__":
    main()
