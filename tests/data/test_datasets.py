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
