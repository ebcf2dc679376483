"""Discrete prompts for tiny-lm MLP neurons, beside the held-out corpus.

For neurons drawn with a fixed seed across the blocks, objective
blocks.L.mlp.act[-1, n] at a fixed prompt length:
  soft      the continuous embeddings' activation (method soft)
  proj      the activation of their projection to the nearest tokens
  keep      proj / soft (retention)
  gcg       the best discrete prompt found by GCG within the time budget
  corpus    the honest corpus maximum: the neuron at every token of the
            held-out corpus, each token with its natural preceding context
            (at least --context tokens before it, up to the model's
            context), as %examples and am_examples score it
  gcg/corp  ratio; the neuron is a "win" when the prompt beats the corpus
  s         wall seconds for the neuron (soft + gcg), the machine as it is

The corpus pass takes the windows the engine scans (through
actmax.raw.examples with k above their count: each window with the positions
it scores) and taps the four blocks' activations at once, so it is one pass
for every neuron; the engine's own maximum of one neuron checks it.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from machine import cpu_model  # noqa: E402  (bench/machine.py)


def corpus_max(raw, model, corpus, window, context, layers, chunk=256):
    """Per layer, the maximum of each neuron over every scored token, the
    tokens scored, and the engine's maximum of layers[0] neuron 0 (a check)."""
    r = raw.examples(model, f"{layers[0]}[-1, 0]", dataset="fortunes", path=corpus, split="heldout",
                     window=window, context=context, k=100000, batch=chunk)
    items = r["items"]
    if sum(len(e["tokens"]) - e["scored"] for e in items) != r["scanned"]:
        sys.exit(f"corpus: {r['scanned']} tokens in more windows than the scanner keeps (100000); "
                 "use a shorter corpus")
    best = {l: None for l in layers}
    for T in sorted({len(e["tokens"]) for e in items}):
        group = [e for e in items if len(e["tokens"]) == T]
        for i in range(0, len(group), chunk):
            part = group[i:i + chunk]
            ids = np.stack([e["tokens"] for e in part])
            mask = np.array([[p >= e["scored"] for p in range(T)] for e in part])
            for l, a in zip(layers, model.activations(ids, layers)):
                a = np.where(mask[:, :, None], np.asarray(a), -np.inf)
                m = a.reshape(-1, a.shape[-1]).max(0)
                best[l] = m if best[l] is None else np.maximum(best[l], m)
    return best, r["scanned"], r["window"], r["max"]


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
    ap.add_argument("--budget-s", type=float, default=9.5,
                    help="wall seconds per neuron (soft + gcg) after which GCG is cancelled (keeping its best); "
                         "the step in flight then ends, so 9.5 keeps a neuron near the 10 s target")
    ap.add_argument("--window", type=int, default=0, help="corpus windows (0: the model's context)")
    ap.add_argument("--context", type=int, default=0,
                    help="least context of a scored corpus token (0: three quarters of the window)")
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

    ctx = model.input_shape[0]
    window = args.window or ctx
    context = args.context or window * 3 // 4
    t0 = time.time()
    cmax, tokens, (window, context), engine_max = corpus_max(raw, model, args.corpus, window, context, layers)
    t_corpus = time.time() - t0
    check = float(cmax[layers[0]][0])
    if abs(check - engine_max) > 1e-4 * max(1.0, abs(engine_max)):
        sys.exit(f"corpus: the tapped maximum of {layers[0]}[-1, 0] is {check}, the engine's {engine_max}")
    print(f"tiny-lm, prompt len {args.len}: {args.neurons} neurons (seed {args.seed}); CPU: {cpu_model()}, "
          f"{os.cpu_count()} cores (the machine as it is, other work included)")
    print(f"corpus maximum: over every one of the {tokens} tokens of the held-out corpus, each with its "
          f"natural context (at least {context} tokens before it, windows of {window}; the model's context "
          f"is {ctx}), in {t_corpus:.1f} s")
    print(f"soft: {args.soft_steps} Adam steps; gcg: up to {args.gcg_steps} steps x {args.gcg_batch} swaps, "
          f"top-{args.gcg_topk}, {args.restarts} restart(s); each neuron stopped at {args.budget_s:.1f} s")
    hdr = f"{'objective':<30} {'soft':>7} {'proj':>7} {'keep':>6} {'gcg':>7} {'corpus':>7} {'gcg/corp':>8} {'win':>4} {'s':>6}  prompt"
    print(hdr)
    print("-" * len(hdr))
    rows = []
    for layer, n in picks:
        obj = f"{layer}[-1, {n}]"
        t = time.time()
        soft = raw.text_run(model, obj, method=raw.SOFT, len=args.len, steps=args.soft_steps, lr=0.05,
                            seed=args.seed, attribution=0)
        gcg = raw.text_run(model, obj, method=raw.GCG, len=args.len, steps=args.gcg_steps,
                           batch=args.gcg_batch, topk=args.gcg_topk, restarts=args.restarts, seed=args.seed,
                           attribution=0, progress=lambda p: (time.time() - t) > args.budget_s)
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
    wins, n = int(r[:, 5].sum()), len(rows)
    need = -(-4 * n // 5)  # 80%, rounded up: 16 of 20
    print(f"median retention (proj/soft) {np.median(r[:, 2]):.2f}; median gcg/corpus {np.median(r[:, 3] / r[:, 4]):.2f}; "
          f"win rate {wins / n * 100:.0f}% ({wins}/{n}) against the corpus maximum over {tokens} tokens "
          f"(context >= {context}); {r[:, 6].mean():.1f} s per neuron (max {r[:, 6].max():.1f})")
    met_win, met_time = wins >= need, r[:, 6].mean() <= 10.0
    print(f"target: win rate >= 80% ({need}/{n}) at <= 10 s per neuron (mean): win rate "
          f"{'MET' if met_win else 'NOT MET'}, time {'MET' if met_time else 'NOT MET'} ({cpu_model()}, "
          f"{os.cpu_count()} cores, shared)")

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
