"""Exports a PyTorch model to the TorchScript file actmax loads: the scripted
(or traced) module plus the metadata extra file actmax.json, and for language
models the tokenizer as a second extra file.

As a function:
    from export import export
    export(model, "mynet.pt", input=[3, 224, 224], labels=[...])

A language model of either tokenizer family, GPT-2's byte-level BPE or
Llama's SentencePiece BPE (a tokenizer.json, or a SentencePiece .model that
is converted to tokenizer.json in Hugging Face's Llama layout):
    export(lm, "lm.pt", kind="text", tokenizer="tokenizer.json", context=1024)
    export(llama, "llama.pt", kind="text", tokenizer="tokenizer.model", context=2048)

From the command line (Debian's /usr/bin/python3):
    export.py --arch resnet18 --weights my_weights.pth --out resnet18.pt
    export.py --module mypkg.nets:build_net --weights w.pth --input 1x28x28 --out net.pt
    export.py --module mypkg.lm:build --kind text --tokenizer tokenizer.model --context 512 --out lm.pt
Weights are a state_dict saved with torch.save; without --weights the
architecture keeps its random initialization (nothing is downloaded).
"""
import argparse
import importlib
import json
import os
import sys

import torch

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


class ExportError(ValueError):
    """A bad argument; the message says what was wrong and what would be right."""


def _shape(value):
    if isinstance(value, str):
        try:
            value = [int(v) for v in value.lower().replace(",", "x").split("x") if v]
        except ValueError:
            raise ExportError(f"input shape {value!r} is not a list of integers; write it like "
                              f"3x224x224 (channels x height x width, no batch)") from None
    value = [int(v) for v in value]
    if not value or any(v <= 0 for v in value):
        raise ExportError(f"input shape {value} must be positive sizes without the batch "
                          f"dimension, e.g. [3, 224, 224]")
    return value


def export(model, path, *, input=None, kind="image", mean=None, std=None, labels=None,
           value_range=(0.0, 1.0), dataset=None, tokenizer=None, context=None,
           method="script", **extra_meta):
    """Writes model to path as TorchScript with actmax.json; returns the metadata.

    kind="image": input is the item shape without batch (e.g. [3, 224, 224]);
      the saved module takes normalized input and the engine normalizes with
      mean/std (default: ImageNet's for 3 channels, none otherwise).
    kind="text": the module maps token ids (1, T) int64 to logits (1, T, V);
      tokenizer is the path of a tokenizer.json (GPT-2's byte-level layout or
      Llama's SentencePiece layout) or of a SentencePiece BPE .model, which is
      converted to tokenizer.json (models/spm_json.py); context is the largest T.
    Other keyword arguments (e.g. eot=, bos=, embedding=) go into actmax.json
    as they are.
    method: "script" (torch.jit.script; falls back to tracing if scripting
      fails) or "trace".
    """
    if not isinstance(model, torch.nn.Module):
        raise ExportError(f"model must be a torch.nn.Module, not {type(model).__name__}")
    if kind not in ("image", "text"):
        raise ExportError(f"kind {kind!r} is not known; use 'image' or 'text'")
    if method not in ("script", "trace"):
        raise ExportError(f"method {method!r} is not known; use 'script' or 'trace'")
    model = model.eval()
    extra = {}
    if kind == "image":
        if input is None:
            raise ExportError("an image model needs input=[channels, height, width] "
                              "(the shape of one item, no batch dimension)")
        input = _shape(input)
        channels = input[0]
        if mean is None and std is None and channels == 3:
            mean, std = IMAGENET_MEAN, IMAGENET_STD
        if mean is None:
            mean, std = [0.0] * channels, [1.0] * channels
        mean, std = [float(m) for m in mean], [float(s) for s in std]
        if len(mean) != channels or len(std) != channels:
            raise ExportError(f"mean ({len(mean)} values) and std ({len(std)} values) need one "
                              f"value per input channel ({channels})")
        if any(s <= 0 for s in std):
            raise ExportError(f"std {std} must be positive")
        example = torch.zeros(1, *input)
        meta = {"kind": "image", "input": input, "mean": mean, "std": std,
                "range": [float(value_range[0]), float(value_range[1])], "normalize": "engine"}
    else:
        if tokenizer is None or context is None:
            raise ExportError("a text model needs tokenizer= (path of a tokenizer.json) and "
                              "context= (the longest token sequence it takes)")
        with open(tokenizer, "rb") as f:
            tok_bytes = f.read()
        if str(tokenizer).endswith(".model"):
            sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
            import spm_json
            try:
                tok_bytes = spm_json.dumps(tok_bytes).encode()
            except Exception as e:  # sentencepiece's own parse errors
                raise ExportError(f"{tokenizer} is not a SentencePiece BPE model with byte "
                                  f"fallback: {e}") from None
        try:
            tok = json.loads(tok_bytes)
            vocab = tok["model"]["vocab"]
        except (ValueError, KeyError, TypeError) as e:
            raise ExportError(f"{tokenizer} is not a tokenizer.json with model.vocab: {e}") from None
        if tok["model"].get("type", "BPE") != "BPE":
            raise ExportError(f"{tokenizer}: model type {tok['model'].get('type')!r} is not "
                              f"supported; actmax reads BPE tokenizers (GPT-2 or Llama layout)")
        extra["tokenizer.json"] = tok_bytes
        example = torch.zeros(1, min(int(context), 8), dtype=torch.long)
        meta = {"kind": "text", "vocab_size": max(vocab.values()) + 1, "context": int(context),
                "tokenizer": "tokenizer.json"}

    with torch.no_grad():
        try:
            out = model(example)
        except Exception as e:  # the user's model: any failure is reported as theirs
            raise ExportError(f"the model fails on an input of shape {list(example.shape)}: "
                              f"{e}") from None
    if not isinstance(out, torch.Tensor):
        raise ExportError(f"the model returns {type(out).__name__}; actmax needs one tensor")
    if labels is not None:
        labels = [str(lb) for lb in labels]
        if out.dim() != 2 or out.shape[1] != len(labels):
            raise ExportError(f"{len(labels)} labels given but the output has shape "
                              f"{list(out.shape)}; give one label per output unit")
        meta["labels"] = labels
    if dataset:
        meta["dataset"] = dataset
    meta.update(extra_meta)

    scripted = None
    if method == "script":
        try:
            scripted = torch.jit.script(model)
        except Exception as e:  # TorchScript cannot compile every Python model
            print(f"export: scripting failed ({str(e).splitlines()[0]}); tracing instead",
                  file=sys.stderr)
    if scripted is None:
        with torch.no_grad():
            scripted = torch.jit.trace(model, example)
    extra["actmax.json"] = json.dumps(meta)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.jit.save(scripted, path, _extra_files=extra)
    return meta


def _load_module(spec):
    if ":" not in spec:
        raise ExportError(f"--module {spec!r} must be 'package.module:callable'")
    mod, fn = spec.split(":", 1)
    sys.path.insert(0, os.getcwd())
    try:
        return getattr(importlib.import_module(mod), fn)()
    except (ImportError, AttributeError) as e:
        raise ExportError(f"cannot build the model from {spec!r}: {e}") from None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--arch", help="a torchvision.models architecture, e.g. resnet18")
    src.add_argument("--module", help="package.module:callable returning an nn.Module")
    ap.add_argument("--weights", help="state_dict file (torch.save); default: random weights")
    ap.add_argument("--out", required=True, help="the .pt file to write")
    ap.add_argument("--kind", default="image", choices=["image", "text"])
    ap.add_argument("--input", help="item shape, e.g. 3x224x224 (default for --arch)")
    ap.add_argument("--mean", help="comma-separated per-channel mean")
    ap.add_argument("--std", help="comma-separated per-channel std")
    ap.add_argument("--labels", help="text file with one label per line")
    ap.add_argument("--dataset", help="dataset name for %%examples")
    ap.add_argument("--tokenizer", help="tokenizer.json (text models)")
    ap.add_argument("--context", type=int, help="longest token sequence (text models)")
    ap.add_argument("--trace", action="store_true", help="trace instead of script")
    args = ap.parse_args(argv)
    try:
        labels = None
        if args.arch:
            import torchvision
            builder = getattr(torchvision.models, args.arch, None)
            if builder is None or not callable(builder):
                raise ExportError(f"torchvision.models has no architecture {args.arch!r}; "
                                  f"e.g. resnet18, vgg16, mobilenet_v3_small")
            model = builder(weights=None)
            try:  # ImageNet class names ship inside torchvision, no download
                enum = torchvision.models.get_model_weights(args.arch)
                labels = list(next(iter(enum)).meta["categories"])
            except Exception:  # architectures without weight enums have no names
                labels = None
            args.input = args.input or "3x224x224"
        else:
            model = _load_module(args.module)
        if args.weights:
            state = torch.load(args.weights, map_location="cpu")
            try:
                model.load_state_dict(state)
            except RuntimeError as e:
                raise ExportError(f"{args.weights} does not fit the architecture: "
                                  f"{str(e).splitlines()[0]}") from None
        if args.labels:
            with open(args.labels, encoding="utf-8") as f:
                labels = [ln.rstrip("\n") for ln in f if ln.strip()]
        floats = lambda s: [float(v) for v in s.split(",")] if s else None  # noqa: E731
        meta = export(model, args.out, input=args.input, kind=args.kind, mean=floats(args.mean),
                      std=floats(args.std), labels=labels, dataset=args.dataset,
                      tokenizer=args.tokenizer, context=args.context,
                      method="trace" if args.trace else "script")
    except (ExportError, OSError) as e:
        ap.exit(2, f"export.py: error: {e}\n")
    print(f"wrote {args.out}: {json.dumps({k: v for k, v in meta.items() if k != 'labels'})}"
          + (f", {len(meta['labels'])} labels" if "labels" in meta else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
