"""Trains fashion-cnn, a small convolutional classifier of Fashion-MNIST, and
saves it as TorchScript with its metadata (actmax.json).

Convention: the saved module takes NORMALIZED input (x - mean) / std of shape
(N, 1, 28, 28), like torchvision models; the engine keeps the optimized image
in [0, 1] and normalizes it with the metadata's mean/std ("normalize": "engine").
"""
import argparse
import json
import os
import sys
import time
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fmnist  # noqa: E402


def block(cin, cout, pool):
    # Each stage is its own Sequential so that `conv2[5]` names channel 5 of a
    # stage's output after its nonlinearity (and pooling), the feature map one
    # usually wants to visualize, while `conv2.conv[5]` still reaches the
    # pre-activation.
    layers = [("conv", nn.Conv2d(cin, cout, 3, padding=1, bias=False)),
              ("bn", nn.BatchNorm2d(cout)),
              ("relu", nn.ReLU())]
    if pool:
        layers.append(("pool", nn.MaxPool2d(2)))
    return nn.Sequential(OrderedDict(layers))


class FashionCNN(nn.Module):
    """(N, 1, 28, 28) normalized images -> (N, 10) logits.

    conv1 (N,16,14,14) -> conv2 (N,32,7,7) -> conv3 (N,64,3,3) -> flatten
    (N,576) -> fc (N,10)
    """

    def __init__(self):
        super().__init__()
        self.conv1 = block(1, 16, pool=True)
        self.conv2 = block(16, 32, pool=True)
        self.conv3 = block(32, 64, pool=True)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(64 * 3 * 3, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = self.conv2(x)
        x = self.conv3(x)
        x = self.flatten(x)
        x = self.dropout(x)
        return self.fc(x)


def metadata():
    return {"kind": "image", "input": [1, 28, 28], "range": [0, 1],
            "mean": [fmnist.MEAN], "std": [fmnist.STD], "normalize": "engine",
            "labels": fmnist.LABELS, "dataset": "fashion-mnist",
            "dataset_splits": ["train", "test"]}


def to_tensors(images, labels):
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    x = (x - fmnist.MEAN) / fmnist.STD
    return x, torch.from_numpy(labels.astype(np.int64))


@torch.no_grad()
def accuracy(model, x, y, batch=1000):
    model.eval()
    correct = 0
    for i in range(0, x.shape[0], batch):
        correct += (model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    return correct / x.shape[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="path of the .pt file to write")
    ap.add_argument("--data", default=fmnist.DEFAULT_DIR, help="Fashion-MNIST IDX directory")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    xtr, ytr = to_tensors(*fmnist.load("train", args.data))
    xte, yte = to_tensors(*fmnist.load("test", args.data))

    model = FashionCNN()
    batch = 128
    steps = args.epochs * ((xtr.shape[0] + batch - 1) // batch)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    gen = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(xtr.shape[0], generator=gen)
        total = 0.0
        for i in range(0, xtr.shape[0], batch):
            idx = perm[i:i + batch]
            xb = xtr[idx]
            # Random horizontal flips: garments are left-right symmetric.
            flip = torch.rand(xb.shape[0], generator=gen) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            loss = F.cross_entropy(model(xb), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * idx.shape[0]
        acc = accuracy(model, xte, yte)
        print(f"fashion-cnn: epoch {epoch + 1}/{args.epochs} train loss "
              f"{total / xtr.shape[0]:.4f} test accuracy {acc:.4f} "
              f"({time.time() - t0:.0f} s)", flush=True)

    model.eval()
    scripted = torch.jit.script(model)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    torch.jit.save(scripted, tmp, _extra_files={"actmax.json": json.dumps(metadata())})
    os.replace(tmp, args.out)
    print(f"fashion-cnn: test accuracy {acc:.4f}, trained in {time.time() - t0:.0f} s, "
          f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
