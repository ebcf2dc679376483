"""Text prompts on cuda: the engine's results recomputed with the PyTorch model.

Run by gpu_text_check.sh after building libactmax and the Python module
against the machine's PyTorch; PYTHONPATH holds the module, ACTMAX_ENGINE
names the library.
"""
import json
import os
import sys
import tempfile
import types

import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "tests", "engine"))
try:
    import pytest  # noqa: F401
except ImportError:  # the test module only needs pytest's decorators at import
    stub = types.ModuleType("pytest")
    stub.fixture = lambda *a, **k: (lambda f: f)
    stub.mark = types.SimpleNamespace(parametrize=lambda *a, **k: (lambda f: f),
                                      skipif=lambda *a, **k: (lambda f: f))
    sys.modules["pytest"] = stub
import actmax  # noqa: E402
import actmax.raw as raw  # noqa: E402
import test_text_prompts as tp  # noqa: E402

torch.manual_seed(5)
tok, vocab, eot = tp.tokenizer_json()
model = tp.TinyGPT(vocab).eval()
d = tempfile.mkdtemp()
path = os.path.join(d, "gpt.pt")
torch.jit.save(torch.jit.script(model), path, _extra_files={
    "actmax.json": json.dumps({"kind": "text", "vocab_size": vocab, "context": tp.CTX, "tokenizer": "tokenizer.json"}),
    "tokenizer.json": tok})
m = actmax.load(path, device="cuda")
print("torch", torch.__version__, "cuda", torch.version.cuda)
fails = 0


def check(name, got, ref, tol=1e-3):
    global fails
    ok = abs(got - ref) <= tol * max(1.0, abs(ref))
    fails += not ok
    print(f"{name}: engine {got:.5f} torch {ref:.5f} {'ok' if ok else 'MISMATCH'}")


for meth, name in [(raw.SOFT, "soft"), (raw.PEZ, "pez"), (raw.GCG, "gcg")]:
    r = raw.text_run(m, f"{tp.NEURON}[-1, 3]", method=meth, len=6, steps=20, batch=32, topk=16, fluency=0.1)
    check(f"{name} activation", r.activation, float(tp.neuron_acts(model, ids=r.tokens)[0, -1, 3]))
    check(f"{name} xent", r.xent, tp.xent(model, r.tokens))
    if meth == raw.GCG:
        # With a fluency weight it is the score that never goes down.
        score = r.curve - 0.1 * r.xent_curve
        mono = bool(np.all(np.diff(score) >= -1e-6))
        print("gcg score curve monotone:", mono, "roundtrip:", r.roundtrip)
        fails += not mono or r.roundtrip != 1
r = raw.text_run(m, f"{tp.NEURON}[-1, 11]", method=raw.SWEEP, len=1)
ref = tp.neuron_acts(model, ids=np.arange(vocab)[:, None])[:, 0, 11]
check("sweep max |diff|", float(np.abs(r.sweep - ref).max()), 0.0)
corpus = os.path.join(d, "c.txt")
open(corpus, "w").write("the then an and hen ant tan he a tether net eh " * 20)
mx = raw.examples(m, f"{tp.NEURON}[-1, 6]", dataset="text", path=corpus, window=5, context=4, k=2)["max"]
stream = np.concatenate([raw.tokenize(tok.encode(), open(corpus).read()), [eot]]).astype(np.int64)
w = np.lib.stride_tricks.sliding_window_view(stream, 5)
# Every token with its natural context: the first four from the start, the rest with four before them.
natural = np.concatenate([tp.neuron_acts(model, ids=stream[:5])[0, :4, 6], tp.neuron_acts(model, ids=w)[:, -1, 6]])
check("examples max", mx, float(natural.max()))
print("FAILURES", fails)
sys.exit(1 if fails else 0)
