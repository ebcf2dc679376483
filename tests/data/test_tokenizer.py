"""The C tokenizer (through data_tool) against models/bpe.py: same ids
on the same text, exact round trips, GPT-2's pre-tokenization quirks."""
import subprocess

import pytest

import bpe
import fortunes
from conftest import build_file, data_tool

SAMPLES = [
    "Hello world, it's  3.14 dogs!!  \n\n  x\t\ty ",
    "I'm sure they'll say we've done what you'd've DONE'S 'tis",
    "   leading spaces\n\n\ntrailing   ",
    "naïve café, Straße, Ελληνικά, русский, 日本語, ½ ² Ⅻ ٣",
    "emoji 😀 and \u00a0nbsp\u2003em space\u3000ideographic",
    "tabs\t\tand\r\nCRLF\r\n",
    "a <|endoftext|>b<|endoftext|><|endoftext|> c",
    "' '' ''' 's'",
    "",
]


@pytest.fixture(scope="module")
def tok_path():
    return build_file("data", "tiny-lm-tokenizer.json")


@pytest.fixture(scope="module")
def tok(tok_path):
    with open(tok_path, encoding="utf-8") as f:
        return bpe.Tokenizer.from_json(f.read())


def c_encode(tok_path, data, tmp_path):
    p = tmp_path / "text.bin"
    p.write_bytes(data)
    r = subprocess.run([data_tool(), "encode", tok_path, str(p)], capture_output=True, check=True)
    return [int(v) for v in r.stdout.split()]


def c_decode(tok_path, ids):
    r = subprocess.run([data_tool(), "decode", tok_path], input=" ".join(map(str, ids)).encode(),
                       capture_output=True, check=True)
    return r.stdout


def test_gpt2_pretokenization():
    # Splits GPT-2's regex is known to make, quirks included: a whitespace run
    # before a word leaves its last character to prefix the word.
    assert bpe.pretokenize("Hello world") == ["Hello", " world"]
    assert bpe.pretokenize("a\n\nb") == ["a", "\n", "\n", "b"]
    assert bpe.pretokenize("a  b") == ["a", " ", " b"]
    assert bpe.pretokenize("x   ") == ["x", "   "]
    assert bpe.pretokenize("I'm") == ["I", "'m"]
    assert bpe.pretokenize("don't!?") == ["don", "'t", "!?"]
    assert bpe.pretokenize("abc123 45") == ["abc", "123", " 45"]


@pytest.mark.parametrize("i", range(len(SAMPLES)))
def test_c_matches_python(tok, tok_path, tmp_path, i):
    data = SAMPLES[i].encode("utf-8")
    want = tok.encode(data)
    assert c_encode(tok_path, data, tmp_path) == want
    assert c_decode(tok_path, want) == data


def test_bad_utf8(tok, tok_path, tmp_path):
    data = b"ok \xff\xfe\xc3( \xe2\x82 \xed\xa0\x80 \xf4\x90\x80\x80 end\x80"
    want = tok.encode(data)
    assert c_encode(tok_path, data, tmp_path) == want
    assert tok.decode(want) == data
    assert c_decode(tok_path, want) == data


def test_heldout_sample_agrees_and_round_trips(tok, tok_path, tmp_path):
    with open(build_file("data", "fortunes-heldout.txt"), "rb") as f:
        held = f.read()
    ids = c_encode(tok_path, held, tmp_path)
    assert ids == tok.encode(held)
    assert c_decode(tok_path, ids) == held
    print(f"held-out: {len(held)} bytes, {len(ids)} tokens, C and Python agree")


def test_heldout_entries_identical(tok, tok_path, tmp_path):
    """Entry by entry, as the dataset reader encodes them."""
    with open(build_file("data", "fortunes-heldout.txt"), "rb") as f:
        entries = [e.encode("utf-8", "surrogateescape") for e in
                   fortunes.parse_entries(f.read().decode("utf-8", "surrogateescape"))]
    p = tmp_path / "entries.bin"
    p.write_bytes(b"\0".join(entries))
    r = subprocess.run([data_tool(), "encode-each", tok_path, str(p)], capture_output=True,
                       check=True)
    got = [[int(v) for v in ln.split()] for ln in r.stdout.decode().split("\n")[:len(entries)]]
    same = sum(g == tok.encode(e) for g, e in zip(got, entries))
    print(f"\ntiny-lm tokenizer: ids identical to models/bpe.py on {same} of {len(entries)} "
          f"held-out fortunes entries")
    assert len(entries) > 1000 and same == len(entries)


def test_token_text_escapes(tok, tok_path):
    run = lambda i: subprocess.run([data_tool(), "token-text", tok_path, str(i)],  # noqa: E731
                                   capture_output=True, check=True).stdout.decode().rstrip("\n")
    assert run(tok.vocab[bpe.BYTE_ENCODER[0xff]]) == "\\xff"
    assert run(tok.vocab[bpe.BYTE_ENCODER[ord("\n")]]) == "\\n"
    assert run(tok.eot) == "<|endoftext|>"
    r = subprocess.run([data_tool(), "token-text", tok_path, str(tok.vocab_size)],
                       capture_output=True)
    assert r.returncode != 0 and b"not in the vocabulary" in r.stderr


def test_json_round_trip(tok):
    again = bpe.Tokenizer.from_json(tok.dumps())
    text = "The quick brown fox's 12 jumps."
    assert again.encode(text) == tok.encode(text)
    assert again.vocab_size == tok.vocab_size
