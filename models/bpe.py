"""The project's byte-level BPE tokenizer: training, encoding, decoding, and
the Hugging Face tokenizer.json layout GPT-2 tokenizers use.

Semantics follow GPT-2 exactly so that the C tokenizer (ext/data/am_tokenizer.c)
reads this file and any GPT-2-family tokenizer alike:
- text is UTF-8 bytes; bytes that are not valid UTF-8 each count as one
  character of the "other" class below (so any byte string encodes);
- pre-tokenization follows GPT-2's regex
    's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+
  written out by hand (Debian's python3 has no `regex` module), with \\s the
  Unicode White_Space property and \\p{L}/\\p{N} the Unicode general
  categories L*/N* of Python's unicodedata;
- each piece's bytes are mapped to printable characters with GPT-2's
  bytes_to_unicode and merged by rank (lowest rank first, all occurrences);
- added tokens (here "<|endoftext|>") are split out of the text first.
"""
import heapq
import json
import unicodedata

EOT = "<|endoftext|>"

# Unicode White_Space, which is what \s means in GPT-2's regex engines.
WHITESPACE = frozenset(
    [chr(c) for c in range(0x09, 0x0E)] + [chr(c) for c in range(0x2000, 0x200B)] +
    [chr(c) for c in (0x20, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000)])


def bytes_to_unicode():
    """GPT-2's map from each byte to a printable character (same order)."""
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
          + list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


BYTE_ENCODER = bytes_to_unicode()
BYTE_DECODER = {c: b for b, c in BYTE_ENCODER.items()}

_SPACE, _LETTER, _NUMBER, _OTHER = 0, 1, 2, 3


def _klass(ch):
    if ch in WHITESPACE:
        return _SPACE
    cat = unicodedata.category(ch)[0]
    return _LETTER if cat == "L" else _NUMBER if cat == "N" else _OTHER


def pretokenize(text):
    """Splits a str as GPT-2's regex does (lone surrogates count as 'other')."""
    out = []
    n = len(text)
    kl = [_klass(c) for c in text]
    i = 0
    while i < n:
        c = text[i]
        if c == "'" and i + 1 < n:
            if text[i + 1] in "stmd":
                out.append(text[i:i + 2])
                i += 2
                continue
            if text[i + 1:i + 3] in ("re", "ve", "ll"):
                out.append(text[i:i + 3])
                i += 3
                continue
        j = i + 1 if (c == " " and i + 1 < n and kl[i + 1] != _SPACE) else i
        k = kl[j]
        if k != _SPACE:
            e = j + 1
            while e < n and kl[e] == k:
                e += 1
            out.append(text[i:e])
            i = e
            continue
        # Whitespace run: all of it at the end of the text; before other text,
        # all but its last character (which then prefixes the next piece), and
        # a single character alone.
        e = i + 1
        while e < n and kl[e] == _SPACE:
            e += 1
        if e < n and e - i >= 2:
            e -= 1
        out.append(text[i:e])
        i = e
    return out


def _to_str(data):
    if isinstance(data, (bytes, bytearray)):
        return bytes(data).decode("utf-8", "surrogateescape")
    return data


def _piece_bytes(piece):
    return piece.encode("utf-8", "surrogateescape")


def train(texts, vocab_size, special=(EOT,), log=None):
    """Learns merges from a list of str; returns a Tokenizer of vocab_size ids."""
    counts = {}
    for t in texts:
        for p in pretokenize(t):
            counts[p] = counts.get(p, 0) + 1
    base = list(BYTE_ENCODER.values())
    vocab = {s: i for i, s in enumerate(base)}
    symbols = list(base)
    words, freqs = [], []
    for p, c in counts.items():
        words.append([vocab[BYTE_ENCODER[b]] for b in _piece_bytes(p)])
        freqs.append(c)
    pairs, where = {}, {}
    for wi, w in enumerate(words):
        for a, b in zip(w, w[1:]):
            pairs[(a, b)] = pairs.get((a, b), 0) + freqs[wi]
            where.setdefault((a, b), set()).add(wi)
    heap = [(-c, p) for p, c in pairs.items()]
    heapq.heapify(heap)
    merges = []
    n_merges = vocab_size - len(base) - len(special)
    while len(merges) < n_merges and heap:
        negc, best = heapq.heappop(heap)
        if pairs.get(best, 0) != -negc or negc == 0:
            continue  # stale heap entry
        a, b = best
        new = len(symbols)
        symbols.append(symbols[a] + symbols[b])
        vocab[symbols[new]] = new
        merges.append((symbols[a], symbols[b]))
        touched = {}
        for wi in where.pop(best, ()):
            w, f = words[wi], freqs[wi]
            for p in zip(w, w[1:]):
                pairs[p] -= f
                touched[p] = True
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(new)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            words[wi] = out
            for p in zip(out, out[1:]):
                pairs[p] = pairs.get(p, 0) + f
                where.setdefault(p, set()).add(wi)
                touched[p] = True
        for p in touched:
            if pairs.get(p, 0) > 0:
                heapq.heappush(heap, (-pairs[p], p))
            else:
                pairs.pop(p, None)
        if log and len(merges) % 500 == 0:
            log(f"bpe: {len(merges)} merges")
    for s in special:
        vocab[s] = len(vocab)
    return Tokenizer(vocab, merges, special)


class Tokenizer:
    def __init__(self, vocab, merges, special=(EOT,)):
        self.vocab = dict(vocab)                  # token string -> id
        self.merges = [tuple(m) for m in merges]  # in rank order
        self.ranks = {m: r for r, m in enumerate(self.merges)}
        self.special = [s for s in special if s in self.vocab]
        self.id_to_bytes = {}
        for s, i in self.vocab.items():
            if s in self.special:
                self.id_to_bytes[i] = s.encode("utf-8")
            else:
                self.id_to_bytes[i] = bytes(BYTE_DECODER[c] for c in s)
        self._cache = {}

    @property
    def vocab_size(self):
        return max(self.vocab.values()) + 1

    @property
    def eot(self):
        return self.vocab.get(EOT)

    def _bpe(self, piece):
        ids = self._cache.get(piece)
        if ids is not None:
            return ids
        word = [BYTE_ENCODER[b] for b in _piece_bytes(piece)]
        while len(word) > 1:
            best, rank = None, None
            for p in zip(word, word[1:]):
                r = self.ranks.get(p)
                if r is not None and (rank is None or r < rank):
                    best, rank = p, r
            if best is None:
                break
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = out
        ids = [self.vocab[s] for s in word]
        self._cache[piece] = ids
        return ids

    def encode(self, text):
        """str or bytes -> list of ids."""
        text = _to_str(text)
        chunks = [text]
        for s in self.special:
            nxt = []
            for ch in chunks:
                if isinstance(ch, int):
                    nxt.append(ch)
                    continue
                parts = ch.split(s)
                for k, part in enumerate(parts):
                    if k:
                        nxt.append(self.vocab[s])
                    nxt.append(part)
            chunks = nxt
        ids = []
        for ch in chunks:
            if isinstance(ch, int):
                ids.append(ch)
            else:
                for p in pretokenize(ch):
                    ids.extend(self._bpe(p))
        return ids

    def decode(self, ids):
        """list of ids -> bytes (not necessarily valid UTF-8)."""
        return b"".join(self.id_to_bytes[i] for i in ids)

    def to_json(self):
        """The Hugging Face tokenizer.json layout of a GPT-2 tokenizer."""
        bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
              "use_regex": True}
        return {
            "version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [{"id": self.vocab[s], "content": s, "single_word": False,
                              "lstrip": False, "rstrip": False, "normalized": True,
                              "special": True} for s in self.special],
            "normalizer": None, "pre_tokenizer": bl, "post_processor": bl, "decoder": bl,
            "model": {"type": "BPE", "dropout": None, "unk_token": None,
                      "continuing_subword_prefix": "", "end_of_word_suffix": "",
                      "fuse_unk": False,
                      "vocab": dict(sorted(self.vocab.items(), key=lambda kv: kv[1])),
                      "merges": [f"{a} {b}" for a, b in self.merges]},
        }

    def dumps(self):
        return json.dumps(self.to_json(), ensure_ascii=False)

    @classmethod
    def from_json(cls, obj):
        if isinstance(obj, (str, bytes)):
            obj = json.loads(obj)
        model = obj["model"]
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
                  for m in model["merges"]]
        special = [t["content"] for t in obj.get("added_tokens", [])]
        return cls(model["vocab"], merges, special)
