"""Reads the English text of Debian's `fortunes` package and splits it, by
entry, into training and held-out parts.

Split rule (kept in one place; the held-out part is also written out as
share/actmax/data/fortunes-heldout.txt so that C code never re-derives it):
files are the plain-text fortune files of DEFAULT_DIR in sorted name order
(skipping *.dat index files, *.u8 links and the non-English ones in SKIP);
entries are the texts between lines holding a single '%'; the entry with
running index i (0-based over all files, empty entries dropped) is held out
when i % 10 == 9, so exactly every tenth entry is held out.
"""
import os

DEFAULT_DIR = "/usr/share/games/fortunes"
# ascii-art is pictures, translate-me is mostly non-English.
SKIP = {"ascii-art", "translate-me"}
HELDOUT_EVERY = 10


def files(root=DEFAULT_DIR):
    out = []
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if (name.endswith(".dat") or name.endswith(".u8") or name in SKIP
                or os.path.islink(path) or not os.path.isfile(path)):
            continue
        out.append(path)
    return out


def parse_entries(data):
    """Splits fortune-file text at lines holding a single '%'."""
    entries, cur = [], []
    for line in data.splitlines(keepends=True):
        if line.rstrip("\r\n") == "%":
            entries.append("".join(cur))
            cur = []
        else:
            cur.append(line)
    entries.append("".join(cur))
    return [e for e in entries if e.strip()]


def entries(root=DEFAULT_DIR):
    out = []
    for path in files(root):
        with open(path, "rb") as f:
            # A few entries hold Latin-1 bytes; keep every byte, byte-level BPE
            # handles them.
            out.extend(parse_entries(f.read().decode("utf-8", "surrogateescape")))
    return out


def split(root=DEFAULT_DIR):
    """Returns (train entries, held-out entries)."""
    train, held = [], []
    for i, e in enumerate(entries(root)):
        (held if i % HELDOUT_EVERY == HELDOUT_EVERY - 1 else train).append(e)
    return train, held


def format_entries(es):
    """Fortune-file layout: each entry followed by a line holding '%'."""
    return "".join(e + ("" if e.endswith("\n") else "\n") + "%\n" for e in es)
