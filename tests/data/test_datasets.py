"""The C dataset readers (through data_tool) against Python's reading
of the same files."""
import os
import subprocess

import numpy as np

import bpe
import fortunes
import fmnist
from conftest import build_file, data_tool


def test_fashion_mnist_matches_python():
    root = os.environ.get("ACTMAX_FASHION_MNIST", fmnist.DEFAULT_DIR)
    for split, size in (("train", 60000), ("test", 10000)):
        r = subprocess.run([data_tool(), "images", root, split, "20"], capture_output=True,
                           check=True, text=True)
        head, labels, sums = r.stdout.splitlines()
        assert head.split() == [str(size), "1", "28", "28"]
        images, want = fmnist.load(split, root)
        assert images.shape[0] == size
        assert [int(v) for v in labels.split()] == want[:20].tolist()
        got = np.array([float(v) for v in sums.split()])
        np.testing.assert_allclose(got, images[:20].reshape(20, -1).sum(1) / 255.0, rtol=1e-5)


def test_text_windows_decode_to_heldout_text():
    tok_path = build_file("data", "tiny-lm-tokenizer.json")
    held_path = build_file("data", "fortunes-heldout.txt")
    window = 48
    r = subprocess.run([data_tool(), "windows", tok_path, held_path, str(window)],
                       capture_output=True, check=True)
    count = int(r.stderr.split()[0])
    with open(tok_path, encoding="utf-8") as f:
        tok = bpe.Tokenizer.from_json(f.read())
    with open(held_path, "rb") as f:
        entries = fortunes.parse_entries(f.read().decode("utf-8", "surrogateescape"))
    stream = [i for e in entries for i in tok.encode(e) + [tok.eot]]
    assert count == len(stream) // window
    expected = tok.decode(stream[:count * window])
    assert r.stdout == expected
    # And that is the held-out text itself, entries marked by <|endoftext|>.
    text = b"".join(e.encode("utf-8", "surrogateescape") + bpe.EOT.encode() for e in entries)
    assert text.startswith(r.stdout)
    assert len(r.stdout) > 0.9 * len(text)


def test_long_entries_are_cut_where_the_ids_do_not_change(tmp_path):
    """A "text" file is read in chunks of about 1 MiB and an entry longer than
    that is tokenized in pieces, cut before a line that starts with a
    non-space character: the streamed ids must equal those of the whole
    entry in both tokenizer families (byte-level BPE, and SentencePiece,
    whose dummy-prefix space must not reappear at each cut)."""
    lines = ["the hen and the ant then tan a net eh tether\n", "  indented line\n", "\n",
             "caf\u00e9 \u65e5\u672c\u8a9e \u0416 -- 1984\n", "\ttab first\n", "Capital Start\n"]
    text = "".join(lines[i % len(lines)] for i in range(200000)) + "last line, no newline"
    assert len(text.encode()) > 3 * 2 ** 20
    path = tmp_path / "long.txt"
    path.write_text(text, encoding="utf-8")
    for name in ("tiny-lm-tokenizer.json", "tiny-llama-tokenizer.json"):
        tok = build_file("data", name)
        whole = subprocess.run([data_tool(), "encode", tok, str(path)], capture_output=True, check=True,
                               text=True).stdout.split()
        info = subprocess.run([data_tool(), "info", tok], capture_output=True, check=True,
                              text=True).stdout.split()
        eot = int(info[1])
        streamed = subprocess.run([data_tool(), "stream", tok, str(path)], capture_output=True, check=True,
                                  text=True).stdout.split()
        want = [int(i) for i in whole] + ([eot] if eot >= 0 else [])
        got = [int(i) for i in streamed]
        first = next((k for k, (a, b) in enumerate(zip(got, want)) if a != b), None)
        print(f"\n{name}: {len(want)} ids whole, {len(got)} streamed, first difference at {first}")
        assert len(got) == len(want) and first is None, (got[first - 3:first + 3] if first else None,
                                                         want[first - 3:first + 3] if first else None)
