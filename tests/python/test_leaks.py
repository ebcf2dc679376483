"""1000 small calls leave memory and reference counts where they were: Python
objects (gc), Python allocations (tracemalloc), the process (RSS, which would
show engine tensors never released) and the input's reference count."""
import gc
import sys
import tracemalloc

import numpy as np

import actmax


def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def calls(m, x, n):
    for i in range(n):
        m.activations(x, ["conv1", "conv2"])
        m.objective(x, "conv2[1] - fc[2]")
        if i % 10 == 0:
            m.maximize("conv2[3]", steps=1, batch=2, progress=False, thresholds=[1])
        try:
            m.maximize("conv2[999]", steps=1, progress=False)
        except actmax.ObjectiveError:
            pass
        try:
            m.activations(x, ["nope"])
        except actmax.LayerError:
            pass


def test_thousand_calls_do_not_grow(fashion):
    x = np.random.default_rng(0).standard_normal((8, 1, 28, 28)).astype(np.float32)
    calls(fashion, x, 100)  # warm: caches of tap graphs, allocator pools
    gc.collect()
    refs, objs, rss = sys.getrefcount(x), len(gc.get_objects()), rss_mib()
    model_refs = sys.getrefcount(fashion._m)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    calls(fashion, x, 1000)
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    # One leaked (8, 32, 7, 7) output is 50 KiB; 1000 of them would be 50 MiB.
    assert grown < 256 * 1024, f"Python allocations grew by {grown} bytes"
    # Counted outside the asserts: pytest's rewriting keeps its own references.
    refs_now, model_refs_now = sys.getrefcount(x), sys.getrefcount(fashion._m)
    assert refs_now == refs
    assert model_refs_now == model_refs
    assert len(gc.get_objects()) - objs < 100
    # The (8, 16, 14, 14) taps alone are 100 KiB a call: 1000 leaked would be 100 MiB.
    assert rss_mib() - rss < 40, f"RSS grew by {rss_mib() - rss:.1f} MiB"


def test_models_are_freed(fashion):
    gc.collect()
    rss = rss_mib()
    for _ in range(30):
        m = actmax.load("fashion-cnn", device="cpu")
        m.activations(np.zeros((1, 1, 28, 28), np.float32), "fc")
        del m
    gc.collect()
    assert rss_mib() - rss < 40
