"""Discrete prompts for tiny-lm MLP neurons, beside the held-out corpus.

For neurons drawn with a fixed seed across the blocks, objective
blocks.L.mlp.act[-1, n] at a fixed prompt length:
  soft      the continuous embeddings' activation (method soft)
  proj      the activation of their projection to the nearest tokens
  keep      proj / soft (retention)
  gcg       the best discrete prompt found by GCG within the step budget
  corpus    the maximum over every window of the same length in the
            held-out corpus (stride 1), the same objective at the last position
  gcg/corp  ratio; the neuron is a "win" when the prompt beats the corpus
  s         wall seconds for the neuron (soft + gcg), the machine as it is

The corpus pass takes the windows the engine's dataset reader makes (through
actmax.raw.examples, the top-k scanner with k above their count) and taps the
four blocks' activations at once, so it is one pass for every neuron.
"""
import argparse
import os
import sys
import time

import numpy as np


def corpus_max(raw, model, corpus, window, layers, chunk=1024):
    """Per layer, the maximum over windows of each neuron at the last position,
    and the windows scanned. The windows are the engine's own (its dataset
    reader, through the top-k scanner with k above their count), tapped on
    every layer at once: one pass for every neuron."""
    r = raw.examples(model, f"{layers[0]}[-1, 0]", dataset="fortunes", path=corpus, split="heldout",
                     window=window, stride=1, k=100000, batch=chunk)
    if len(r["items"]) < r["scanned"]:
        sys.exit(f"corpus: {r['scanned']} windows, more than the scanner keeps (100000); use a shorter corpus")
    ids = np.stack([e["tokens"] for e in r["items"]])
    best = {l: None for l in layers}
    for i in range(0, len(ids), chunk):
        acts = model.activations(ids[i:i + chunk], layers)
        for l, a in zip(layers, acts):
            m = np.asarray(a)[:, -1, :].max(0)
            best[l] = m if best[l] is None else np.maximum(best[l], m)
    return best, r["scanned"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--neurons", type=int, default=20)
    ap.add_argument("--len", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--soft-steps", type=int, default=200)
    ap.add_argument("--gcg-steps", type=int, default=300)
    ap.add_argument("--gcg-batch", type=int, default=128)
    ap.add_argument("--gcg-topk", type=int, default=64)
    ap.add_argument("--restarts", type=int, default=1)
    ap.add_argument("--fluency", type=float, default=0.5,
                    help="weight of the cross-entropy penalty in the fluency table")
    ap.add_argument("--fluency-neurons", type=int, default=3)
    ap.add_argument("--budget-s", type=float, default=60.0,
                    help="wall seconds per neuron after which GCG is cancelled (keeping its best)")
    args = ap.parse_args()
    # The module of the same build: build/python beside build/ext/libactmax.so.
    os.environ["ACTMAX_ENGINE"] = args.lib
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(args.lib))), "python"))
    import actmax
    import actmax.raw as raw

    model = actmax.load(args.model, device="cpu")
    layers_info = [l for l in model.layers() if l.name.endswith(".mlp.act")]
    layers = [l.name for l in layers_info]
    width = layers_info[0].shape[-1]
    rng = np.random.default_rng(args.seed)
    flat = rng.choice(len(layers) * width, size=args.neurons, replace=False)
    picks = [(layers[int(f) // width], int(f) % width) for f in flat]

    t0 = time.time()
    cmax, windows = corpus_max(raw, model, args.corpus, args.len, layers)
    t_corpus = time.time() - t0
    print(f"tiny-lm, len {args.len}: {args.neurons} neurons (seed {args.seed}); corpus: {windows} windows of "
          f"{args.len} tokens (stride 1) in {t_corpus:.1f} s")
    print(f"soft: {args.soft_steps} Adam steps; gcg: {args.gcg_steps} steps x {args.gcg_batch} swaps, "
          f"top-{args.gcg_topk}, {args.restarts} restart(s), cancelled after {args.budget_s:.0f} s")
    hdr = f"{'objective':<30} {'soft':>7} {'proj':>7} {'keep':>6} {'gcg':>7} {'corpus':>7} {'gcg/corp':>8} {'win':>4} {'s':>6}  prompt"
    print(hdr)
    print("-" * len(hdr))
    rows = []
    for layer, n in picks:
        obj = f"{layer}[-1, {n}]"
        t = time.time()
        soft = raw.text_run(model, obj, method=raw.SOFT, len=args.len, steps=args.soft_steps, lr=0.05,
                            seed=args.seed, attribution=0)
        start = time.time()
        gcg = raw.text_run(model, obj, method=raw.GCG, len=args.len, steps=args.gcg_steps,
                           batch=args.gcg_batch, topk=args.gcg_topk, restarts=args.restarts, seed=args.seed,
                           attribution=0, progress=lambda p: (time.time() - start) > args.budget_s)
        secs = time.time() - t
        cm = float(cmax[layer][n])
        win = gcg.activation > cm
        ratio = gcg.activation / cm if cm > 0 else float("nan")
        rows.append((soft.soft_activation, soft.activation, soft.retention, gcg.activation, cm, win, secs, gcg.xent))
        print(f"{obj:<30} {soft.soft_activation:7.3f} {soft.activation:7.3f} {soft.retention:6.2f} "
              f"{gcg.activation:7.3f} {cm:7.3f} {ratio:8.2f} {'yes' if win else 'no':>4} {secs:6.1f}  "
              f"{gcg.text.decode('utf-8', 'replace')!r}", flush=True)
    r = np.array(rows, dtype=np.float64)
    print("-" * len(hdr))
    print(f"median retention (proj/soft) {np.median(r[:, 2]):.2f}; median gcg/corpus {np.median(r[:, 3] / r[:, 4]):.2f}; "
          f"win rate {r[:, 5].mean() * 100:.0f}% ({int(r[:, 5].sum())}/{len(rows)}); "
          f"{r[:, 6].mean():.1f} s per neuron (max {r[:, 6].max():.1f}), target >= 80% at <= 60 s")

    # Fluency: the same search with the prompt's cross-entropy as a penalty.
    if args.fluency_neurons > 0:
        print(f"\nfluency {args.fluency} (gcg, same seed and steps): activation and cross-entropy (nats/token)")
        print(f"{'objective':<30} {'act w=0':>8} {'xent w=0':>8} {'act':>8} {'xent':>8}  prompt")
        for (layer, n), row in list(zip(picks, rows))[:args.fluency_neurons]:
            obj = f"{layer}[-1, {n}]"
            start = time.time()
            f = raw.text_run(model, obj, method=raw.GCG, len=args.len, steps=args.gcg_steps,
                             batch=args.gcg_batch, topk=args.gcg_topk, seed=args.seed, fluency=args.fluency,
                             attribution=0, progress=lambda p: (time.time() - start) > args.budget_s)
            print(f"{obj:<30} {row[3]:8.3f} {row[7]:8.3f} {f.activation:8.3f} {f.xent:8.3f}  "
                  f"{f.text.decode('utf-8', 'replace')!r}", flush=True)


if __name__ == "__main__":
    main()
