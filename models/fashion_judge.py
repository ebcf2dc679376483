"""Trains fashion-judge, a second Fashion-MNIST classifier that only judges:
the quality benchmark (bench/quality) asks it what fashion-cnn's class
visualizations show. It shares nothing with fashion-cnn but the data: another
architecture (5x5 convolutions, no batch norm, a 128-wide hidden layer whose
output is the feature vector the benchmark compares), another seed, no flips.

Saved as TorchScript taking NORMALIZED input like fashion-cnn, with
actmax.json; `features(x)` returns the hidden layer (N, 128).
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fmnist  # noqa: E402


class FashionJudge(nn.Module):
    """(N, 1, 28, 28) normalized -> (N, 10); features (N, 128)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5, padding=2)   # (N, 16, 14, 14) after pooling
        self.conv2 = nn.Conv2d(16, 32, 5)             # (N, 32, 5, 5) after pooling
        self.hidden = nn.Linear(32 * 5 * 5, 128)
        self.out = nn.Linear(128, 10)

    @torch.jit.export
    def features(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.relu(self.hidden(x.flatten(1)))

    def forward(self, x):
        return self.out(self.features(x))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="path of the .pt file to write")
    ap.add_argument("--data", default=fmnist.DEFAULT_DIR, help="Fashion-MNIST IDX directory")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    t0 = time.time()

    def tensors(split):
        images, labels = fmnist.load(split, args.data)
        x = (torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1) - fmnist.MEAN) / fmnist.STD
        return x, torch.from_numpy(labels.astype(np.int64))

    xtr, ytr = tensors("train")
    xte, yte = tensors("test")
    model = FashionJudge()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    batch = 128
    gen = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(xtr.shape[0], generator=gen)
        for i in range(0, xtr.shape[0], batch):
            idx = perm[i:i + batch]
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            acc = (model(xte).argmax(1) == yte).float().mean().item()
        print(f"fashion-judge: epoch {epoch + 1}/{args.epochs} test accuracy {acc:.4f} "
              f"({time.time() - t0:.0f} s)", flush=True)

    meta = {"kind": "image", "input": [1, 28, 28], "range": [0, 1], "mean": [fmnist.MEAN], "std": [fmnist.STD],
            "labels": fmnist.LABELS, "dataset": "fashion-mnist"}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    torch.jit.save(torch.jit.script(model.eval()), tmp, _extra_files={"actmax.json": json.dumps(meta)})
    os.replace(tmp, args.out)
    print(f"fashion-judge: test accuracy {acc:.4f}, trained in {time.time() - t0:.0f} s, wrote {args.out}",
          flush=True)


if __name__ == "__main__":
    main()
