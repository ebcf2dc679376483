"""Engine correctness on a device: tapped values and input gradients against
PyTorch forward hooks on the same device, plus a short optimization run.

usage: cuda_check.py [--device cuda]      (exit status 1 on any mismatch)
"""
import argparse
import os
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bench_engine import resnet18  # noqa: E402

LAYERS = ["conv1", "bn1", "relu", "layer1.0.relu#1", "layer1.0", "layer2.1.bn2", "layer3", "layer4.1.conv2", "fc"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args()
    # Exact float32 arithmetic on both sides, so differences are rounding only.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.deterministic = True
    import actmax  # the build's python/ folder, on PYTHONPATH (gpu_check.sh)
    import actmax.raw as raw

    model, kind = resnet18()
    torch.manual_seed(0)
    model = model.eval().to(args.device)
    x = torch.randn(2, 3, args.size, args.size, device=args.device)
    path = os.path.join(tempfile.mkdtemp(prefix="actmax-cuda-"), "resnet18.pt")
    torch.jit.trace(model, x).save(path)
    m = actmax.load(path, device=args.device, input=(3, args.size, args.size))
    acts, grad = m.activations(x.cpu(), LAYERS, grad=True)
    acts, grad = [np.asarray(a) for a in acts], np.asarray(grad)

    seen, store = {}, {}
    mods = dict(model.named_modules())
    hs = []
    for name in {l.split("#")[0] for l in LAYERS}:
        def hook(mod, i, o, name=name):
            seen[name] = seen.get(name, 0) + 1
            store[(name, seen[name])] = o.clone()
        hs.append(mods[name].register_forward_hook(hook))
    xr = x.clone().requires_grad_(True)
    model(xr)
    for h in hs:
        h.remove()
    ok = True
    refs = []
    print(f"cuda_check: {kind} on {args.device} ({torch.cuda.get_device_name() if 'cuda' in args.device else 'cpu'}),"
          f" input {tuple(x.shape)}")
    for spec, a in zip(LAYERS, acts):
        name, _, call = spec.partition("#")
        r = store[(name, int(call) if call else seen[name])]
        refs.append(r)
        rn = r.detach().cpu().numpy()
        diff = float(np.abs(a - rn).max())
        tol = 1e-4 * max(1.0, float(np.abs(rn).max()))
        ok &= diff <= tol
        print(f"  {spec:18s} {str(a.shape):22s} max|diff| {diff:.2e}  tol {tol:.1e}  {'ok' if diff <= tol else 'MISMATCH'}")
    (gref,) = torch.autograd.grad(sum(r.sum() for r in refs), xr)
    gdiff = float(np.abs(grad - gref.cpu().numpy()).max())
    gtol = 1e-4 * max(1.0, float(gref.abs().max()))
    ok &= gdiff <= gtol
    print(f"  input gradient     max|diff| {gdiff:.2e}  tol {gtol:.1e}  {'ok' if gdiff <= gtol else 'MISMATCH'}")

    run = raw.run(m, ["layer2[3]", "layer3[7]"], steps=30, seed=0)
    rise = float(run.curve[-5:].mean() - run.curve[:5].mean())
    print(f"  optimization: 30 steps in {run.seconds:.2f} s, objective {run.curve[0]:.3f} -> {run.curve[-1]:.3f}")
    ok &= rise > 0
    if "cuda" in args.device:
        # The engine's figure (the driver's free memory, read through
        # libcuda) against torch's own reading of the same driver call, plus
        # what torch's cache holds, which the engine counts as reusable.
        mine = raw.memory_available(args.device)
        free, _total = torch.cuda.mem_get_info()
        cached = torch.cuda.memory_reserved() - torch.cuda.memory_allocated()
        good = mine is not None and free * 0.9 - 64e6 <= mine <= free + cached + 8e9
        ok &= good
        shown = "unknown" if mine is None else f"{mine / 2**30:.2f} GiB"
        print(f"  memory available   engine {shown}, driver free {free / 2**30:.2f} GiB, torch cache "
              f"{cached / 2**30:.2f} GiB  {'ok' if good else 'MISMATCH'}")
    print("cuda_check: all checks passed" if ok else "cuda_check: FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
