"""Quality of class visualizations, measured: fashion-cnn's 10 logits
visualized by the engine (pixel, Fourier, MACO) and by a PyTorch loop with
Lucent's real defaults, each judged by fashion-judge, a second Fashion-MNIST
classifier trained independently (another architecture and seed).

Metrics per method (one image per class and seed):
  agree    the judge's top class is the visualized class (count / images)
  prob     the judge's mean probability of the visualized class
  plaus    plausibility: mean cosine similarity of the image's judge
           features (its 128-wide hidden layer) to the test images of its
           class, minus that to the test images of the other classes
  plaus@1  images whose own class is the most similar class on that measure
  ratio    fashion-cnn's logit on the image over its maximum over the 10000
           test images (1 = as strong as the strongest real example)
Methods run at equal steps (--steps) and at equal time (the Fourier run's
seconds), and MACO also at a quarter of the steps. Targets: MACO at a quarter
of the steps at least as good as Fourier on every metric; MACO more plausible
than the Lucent-defaults reference.

Usage: bench_quality.py --lib libactmax.so --models DIR [--steps N] [--seeds K]
"""
import argparse
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from machine import cpu_model  # noqa: E402  (bench/machine.py)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "engine"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "models"))
import fmnist  # noqa: E402

CLASSES = 10


def normalize(x):
    return (x - fmnist.MEAN) / fmnist.STD


# ---------------------------------------------------------------- the judge

class Judge:
    def __init__(self, judge_path, cnn_path):
        self.judge = torch.jit.load(judge_path).eval()
        self.cnn = torch.jit.load(cnn_path).eval()
        images, labels = fmnist.load("test")
        x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
        self.labels = torch.from_numpy(labels.astype(np.int64))
        with torch.no_grad():
            feats = F.normalize(self.judge.features(normalize(x)), dim=1)
            self.logit_max = self.cnn(normalize(x)).max(0).values  # (10)
            self.accuracy = (self.judge(normalize(x)).argmax(1) == self.labels).float().mean().item()
        # Mean normalized feature per class: the mean cosine similarity to a
        # class's images is the dot product with it.
        self.centroids = torch.stack([feats[self.labels == c].mean(0) for c in range(CLASSES)])  # (10, 128)

    @torch.no_grad()
    def score(self, images, classes):
        """images (N, 1, 28, 28) in [0, 1], classes (N): the metrics."""
        x = normalize(torch.as_tensor(images, dtype=torch.float32))
        if x.shape[-1] != 28 or x.shape[-2] != 28:
            x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False, antialias=True)
        cls = torch.as_tensor(classes)
        prob = torch.softmax(self.judge(x), 1)
        sims = F.normalize(self.judge.features(x), dim=1) @ self.centroids.t()  # (N, 10)
        own = sims.gather(1, cls[:, None])[:, 0]
        others = (sims.sum(1) - own) / (CLASSES - 1)
        logit = self.cnn(x).gather(1, cls[:, None])[:, 0]
        return dict(agree=int((prob.argmax(1) == cls).sum()), n=len(cls),
                    prob=float(prob.gather(1, cls[:, None]).mean()),
                    plaus=float((own - others).mean()),
                    plaus1=int((sims.argmax(1) == cls).sum()),
                    ratio=float((logit / self.logit_max[cls]).mean()))


# ---------------------------------------------------------------- the engine's runs

def engine_run(model, method, steps, seed, **kw):
    import actmax.raw as raw
    opts = dict(steps=steps, seed=seed)
    if method == "pixel":
        opts.update(param=raw.PARAM_PIXEL)
    elif method == "maco":
        opts.update(param=raw.PARAM_MACO)
    opts.update(kw)
    run = raw.run(model, [f"fc[{c}]" for c in range(CLASSES)], **opts)
    return run.images, run.seconds


# ---------------------------------------------------------------- Lucent's defaults, in PyTorch

def lucent_reference(cnn_path, steps, seed, size=128, out=28):
    """render_vis with Lucent's defaults as a user runs it on a 28-px model:
    param.image(128, channels=1, decorrelate=False) (an FFT image, sd 0.01,
    1/f scaling, Lucid's magic 4, sigmoid), the standard transforms on the
    128-px image, then fixed_image_size=28 (bilinear); Adam lr 0.05; the
    model's parameters left requiring grad. One image per class, batched."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = torch.jit.load(cnn_path).eval()
    for p in model.parameters():
        p.requires_grad_(True)
    B = CLASSES
    fy = torch.fft.fftfreq(size)[:, None]
    fx = torch.fft.rfftfreq(size)[None, :]
    scale = 1.0 / torch.clamp(torch.sqrt(fx * fx + fy * fy), min=1.0 / size)
    spec = (torch.randn(B, 1, size, size // 2 + 1, 2) * 0.01).requires_grad_(True)
    opt = torch.optim.Adam([spec], lr=0.05)
    scales = [1 + (i - 5) / 50.0 for i in range(11)]
    angles = list(range(-10, 11)) + 5 * [0]

    def image():
        s = scale[None, None, :, :, None] * spec
        t = torch.fft.irfft2(torch.view_as_complex(s), s=(size, size), norm="ortho") / 4.0
        return torch.sigmoid(t)

    def jitter(x, d):
        dx, dy = rng.integers(0, d), rng.integers(0, d)
        return x[:, :, dy:dy + x.shape[2] - d, dx:dx + x.shape[3] - d]

    t0 = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        x = F.pad(image(), (12, 12, 12, 12), mode="constant", value=0.5)
        x = jitter(x, 8)
        s = scales[rng.integers(len(scales))]
        x = F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=True)
        a = math.radians(angles[rng.integers(len(angles))])
        theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]]).expand(B, 2, 3)
        x = F.grid_sample(x, F.affine_grid(theta, list(x.shape), align_corners=False), align_corners=False)
        x = jitter(x, 4)
        x = F.interpolate(x, size=(out, out), mode="bilinear", align_corners=True)
        logits = model(normalize(x))
        loss = -logits[torch.arange(B), torch.arange(B)].sum()
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        return image().numpy(), seconds


# ---------------------------------------------------------------- driver

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lib", help="libactmax.so (else ACTMAX_LIB)")
    ap.add_argument("--models", required=True, help="folder with fashion-cnn.pt and fashion-judge.pt")
    ap.add_argument("--steps", type=int, default=128)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--lucent-steps", type=int, default=512, help="Lucent's default thresholds=(512,)")
    ap.add_argument("--maco", default="", help="MACO options for a trial, e.g. crops=8,crop_min=0.4,noise=0.1")
    args = ap.parse_args()
    if args.lib:
        os.environ["ACTMAX_ENGINE"] = args.lib
        # The module of the same build: build/python beside build/ext/libactmax.so.
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(args.lib))), "python"))
    import actmax.raw as raw
    torch.set_num_threads(os.cpu_count() or 1)
    cnn_path = os.path.join(args.models, "fashion-cnn.pt")
    judge = Judge(os.path.join(args.models, "fashion-judge.pt"), cnn_path)
    model = raw.load(cnn_path)
    maco_kw = {}
    for item in filter(None, args.maco.split(",")):
        k, v = item.split("=")
        maco_kw[k] = float(v) if "." in v or "e" in v else int(v)

    print(f"CPU: {cpu_model()} ({os.cpu_count()} cores); torch {torch.__version__}")
    print(f"judge: fashion-judge, test accuracy {judge.accuracy:.4f}; images: one per class x {args.seeds} seeds")
    seeds = range(args.seeds)
    classes = np.tile(np.arange(CLASSES), args.seeds)
    rows = []

    def measure(name, method, steps, **kw):
        imgs, secs = [], 0.0
        for s in seeds:
            im, t = engine_run(model, method, steps, s, **kw)
            imgs.append(im)
            secs += t
        r = judge.score(np.concatenate(imgs), classes)
        r.update(name=name, steps=steps, seconds=secs / len(seeds))
        rows.append(r)
        return r

    n = args.steps
    fft = measure("fourier", "fft", n)
    pix = measure("pixel", "pixel", n)
    maco = measure("maco", "maco", n, **maco_kw)
    maco4 = measure("maco 1/4 steps", "maco", max(1, n // 4), **maco_kw)
    budget = fft["seconds"]
    for name, method, r, kw in [("pixel", "pixel", pix, {}), ("maco", "maco", maco, maco_kw)]:
        k = max(1, int(round(budget / (r["seconds"] / n))))
        measure(f"{name} equal time", method, k, **kw)
    imgs, secs = [], 0.0
    for s in seeds:
        im, t = lucent_reference(cnn_path, args.lucent_steps, s)
        imgs.append(im)
        secs += t
    luc = judge.score(np.concatenate(imgs), classes)
    luc.update(name="Lucent defaults (PyTorch)", steps=args.lucent_steps, seconds=secs / len(seeds))
    rows.append(luc)

    print(f"\n{'method':<28}{'steps':>6}{'s/run':>8}{'agree':>8}{'prob':>7}{'plaus':>8}{'plaus@1':>9}{'ratio':>7}")
    for r in rows:
        print(f"{r['name']:<28}{r['steps']:>6}{r['seconds']:>8.2f}{r['agree']:>5}/{r['n']:<2}{r['prob']:>7.3f}"
              f"{r['plaus']:>8.3f}{r['plaus1']:>6}/{r['n']:<2}{r['ratio']:>7.2f}")

    keys = ["agree", "prob", "plaus", "plaus1", "ratio"]
    worse = [k for k in keys if maco4[k] < fft[k]]
    print(f"\ntarget: MACO at {maco4['steps']} steps >= Fourier at {n} on every metric: "
          + ("met" if not worse else "NOT met (" + ", ".join(worse) + " lower)"))
    print(f"target: MACO more plausible than the Lucent-defaults reference: "
          + ("met" if maco["plaus"] > luc["plaus"] else "NOT met")
          + f" ({maco['plaus']:.3f} vs {luc['plaus']:.3f})")


if __name__ == "__main__":
    main()
