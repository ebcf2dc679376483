"""Converts a SentencePiece BPE model (a `.model` file or its bytes) to a
Hugging Face tokenizer.json in the Llama layout, as transformers'
LlamaConverter writes it (legacy layout): the normalizers Prepend("\u2581")
and Replace(" ", "\u2581"), byte fallback <0x00>..<0xFF>, <unk> fused, and a
post-processor that puts <s> first.

The merges come from the vocabulary as transformers' SentencePieceExtractor
makes them: every split of a piece into two pieces of the vocabulary, ordered
by the piece's score (highest first), then by the two halves' ids.

Usage: spm_json.py MODEL.model OUT.json
"""
import json
import sys

SPACE = "\u2581"


def _processor(model):
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor()
    if isinstance(model, (bytes, bytearray)):
        sp.LoadFromSerializedProto(bytes(model))
    else:
        sp.Load(str(model))
    return sp


def convert(model):
    """tokenizer.json (a dict) of a SentencePiece BPE model (path or bytes)."""
    sp = _processor(model)
    n = sp.GetPieceSize()
    pieces = [sp.IdToPiece(i) for i in range(n)]
    scores = [sp.GetScore(i) for i in range(n)]
    vocab = {p: i for i, p in enumerate(pieces)}
    if not all(sp.IsByte(vocab[f"<0x{b:02X}>"]) for b in range(256) if f"<0x{b:02X}>" in vocab) or \
            sum(f"<0x{b:02X}>" in vocab for b in range(256)) != 256:
        raise ValueError("the SentencePiece model has no byte fallback pieces <0x00>..<0xFF>; "
                         "train it with byte_fallback=True")
    merges = []
    for i, piece in enumerate(pieces):
        local = [(piece[:k], piece[k:], scores[i]) for k in range(1, len(piece))
                 if piece[:k] in vocab and piece[k:] in vocab]
        local.sort(key=lambda m: (vocab[m[0]], vocab[m[1]]))
        merges.extend(local)
    merges.sort(key=lambda m: m[2], reverse=True)  # stable: ties keep the order above

    unk, bos, eos = sp.unk_id(), sp.bos_id(), sp.eos_id()
    specials = [i for i in (unk, bos, eos) if i >= 0]
    added = [{"id": i, "content": pieces[i], "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False, "special": True} for i in specials]
    post = None
    if bos >= 0:
        b = pieces[bos]
        post = {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": b, "type_id": 0}},
                           {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": b, "type_id": 0}},
                         {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": b, "type_id": 1}},
                         {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {b: {"id": b, "ids": [bos], "tokens": [b]}}}
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": SPACE},
            {"type": "Replace", "pattern": {"String": " "}, "content": SPACE}]},
        "pre_tokenizer": None,
        "post_processor": post,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": SPACE}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": pieces[unk] if unk >= 0 else None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": [[a, b] for a, b, _ in merges]},
    }


def dumps(model):
    return json.dumps(convert(model), ensure_ascii=False)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[-1])
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        f.write(dumps(sys.argv[1]))
