"""The C tokenizer on the SentencePiece family (Hugging Face's Llama layout of
tiny-llama's tokenizer.json, through data_tool) against the reference
implementation, Debian's python3-sentencepiece with the SentencePiece model
the tokenizer was converted from: same ids on every held-out fortunes entry
and on the special cases; the layouts that are refused say why."""
import copy
import json
import subprocess

import pytest

import fortunes
from conftest import build_file, data_tool

spm = pytest.importorskip("sentencepiece", reason="python3-sentencepiece is not installed "
                          "(scripts/install-deps.sh installs it)")

SPECIAL_CASES = {
    "byte fallback": "caf\u00e9 \u65e5\u672c\u8a9e \U0001F600 \u0416",
    "leading spaces": "   three leading spaces",
    "one leading space": " one",
    "newlines": "first line\n\nthird line\n",
    "tabs": "\t\t-- Mark Twain",
    "spaces only": "   ",
    "space runs": "a  b   c    d",
    "trailing spaces": "end   ",
    "digits": "In 1984, 2+2=5 and 3.14159",
    "punctuation": "\"Quote,\" he said -- (really?!) ... 'yes'",
    "one character": "x",
    "empty": "",
}


@pytest.fixture(scope="module")
def tok_path():
    return build_file("data", "tiny-llama-tokenizer.json")


@pytest.fixture(scope="module")
def sp():
    p = spm.SentencePieceProcessor()
    p.Load(build_file("data", "tiny-llama-spm.model"))
    return p


@pytest.fixture(scope="module")
def tok_json(tok_path):
    with open(tok_path, encoding="utf-8") as f:
        return json.load(f)


def c_encode(tok_path, texts, tmp_path):
    """data_tool's ids for each text (one process for all)."""
    raw = [t.encode("utf-8") for t in texts]
    assert not any(b"\0" in r for r in raw)
    p = tmp_path / "texts.bin"
    p.write_bytes(b"\0".join(raw))
    r = subprocess.run([data_tool(), "encode-each", tok_path, str(p)], capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
    lines = r.stdout.decode().split("\n")
    return [[int(v) for v in ln.split()] for ln in lines[:len(texts)]]


def c_decode(tok_path, ids):
    r = subprocess.run([data_tool(), "decode", tok_path], input=" ".join(map(str, ids)).encode(),
                       capture_output=True, check=True)
    return r.stdout


def info(tok_path):
    r = subprocess.run([data_tool(), "info", tok_path], capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


def write_json(tmp_path, obj, name="tokenizer.json"):
    p = tmp_path / name
    p.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")
    return str(p)


def heldout():
    """The held-out entries (fortunes.py's split, as fortunes-heldout.txt holds them)."""
    return fortunes.split()[1]


def test_heldout_identical_to_sentencepiece(tok_path, sp, tmp_path):
    entries = heldout()
    got = c_encode(tok_path, entries, tmp_path)
    same = sum(g == sp.encode(e) for g, e in zip(got, entries))
    print(f"\ntiny-llama tokenizer: ids identical to SentencePiece on {same} of {len(entries)} "
          f"held-out fortunes entries")
    assert len(entries) > 1000 and same == len(entries)


@pytest.mark.parametrize("case", sorted(SPECIAL_CASES))
def test_special_case(tok_path, sp, tmp_path, case):
    text = SPECIAL_CASES[case]
    ref = sp.encode(text)
    assert c_encode(tok_path, [text], tmp_path)[0] == ref, sp.encode_as_pieces(text)
    # The case is what it says it is in the reference too.
    if case == "byte fallback":
        assert sum(sp.IsByte(i) for i in ref) >= 10
    if case in ("newlines", "tabs"):
        assert any(sp.IsByte(i) for i in ref)
    if case == "empty":
        assert ref == []
    # Decoding gives the text back: the space encoding prepended is dropped.
    assert c_decode(tok_path, ref) == text.encode("utf-8")


def test_start_and_end_tokens(tok_path, sp, tmp_path):
    rc, out, err = info(tok_path)
    assert rc == 0, err
    vocab, eot, bos = map(int, out.split("\n")[0].split())
    assert (vocab, eot, bos) == (sp.GetPieceSize(), sp.eos_id(), sp.bos_id())
    assert "SentencePiece-style BPE" in out and "byte fallback" in out
    # <s> and </s> in the text are the added tokens (the tokenizers library
    # splits added tokens out first, then each piece gets its own prefix).
    a, b = sp.encode("a"), sp.encode("b")
    got = c_encode(tok_path, ["<s>", "a<s>b", "a</s>"], tmp_path)
    assert got == [[sp.bos_id()], a + [sp.bos_id()] + b, a + [sp.eos_id()]]


def test_token_bytes_and_text(tok_path, sp):
    the = sp.PieceToId("\u2581the")
    assert sp.IdToPiece(the) == "\u2581the"
    assert c_decode(tok_path, [sp.bos_id(), the]) == b"<s> the"
    r = subprocess.run([data_tool(), "token-text", tok_path, str(sp.PieceToId("<0x0A>"))],
                       capture_output=True, text=True, check=True)
    assert r.stdout == "\\n\n"
    r = subprocess.run([data_tool(), "token-text", tok_path, str(the)], capture_output=True,
                       text=True, check=True)
    assert r.stdout == " the\n"


def test_unknown_token_without_byte_fallback(tok_json, sp, tmp_path):
    """Without byte fallback a character outside the vocabulary is <unk>, a
    run of them one <unk> (fuse_unk): SentencePiece's ids with each run of
    byte tokens replaced by one <unk>."""
    t = copy.deepcopy(tok_json)
    t["model"]["byte_fallback"] = False
    path = write_json(tmp_path, t)
    text = SPECIAL_CASES["byte fallback"]
    expect = []
    for i in sp.encode(text):
        if sp.IsByte(i):
            if not expect or expect[-1] != sp.unk_id():
                expect.append(sp.unk_id())
        else:
            expect.append(i)
    assert sp.unk_id() in expect
    assert c_encode(path, [text], tmp_path)[0] == expect


def test_metaspace_layout(tok_json, sp, tmp_path):
    """The newer layout (a Metaspace pre-tokenizer instead of the normalizers)
    encodes alike, except that it prepends no space to a text that starts
    with one."""
    t = copy.deepcopy(tok_json)
    t["normalizer"] = None
    t["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first",
                          "split": False}
    path = write_json(tmp_path, t)
    texts = heldout()[:200] + ["x y", " leading", "a<s> b"]
    got = c_encode(path, texts, tmp_path)
    for g, text in zip(got[:200], texts):
        assert g == sp.encode(text)
    assert got[200] == sp.encode("x y")
    assert got[201] == sp.encode("leading")
    # "first": only the start of the text gets the prefix, not the text after <s>.
    assert got[202] == sp.encode("a") + [sp.bos_id()] + sp.encode("b")


def _broken(tok_json, edit):
    t = copy.deepcopy(tok_json)
    edit(t)
    return t


UNSUPPORTED = [
    ("normalizer NFKC", lambda t: t.update(normalizer={"type": "NFKC"}),
     "normalizer \"NFKC\" is not supported"),
    ("Whitespace pre-tokenizer", lambda t: t.update(pre_tokenizer={"type": "Whitespace"}),
     "pre_tokenizer \"Whitespace\" is not supported"),
    ("Unigram model", lambda t: t["model"].update(type="Unigram"),
     "model type \"Unigram\" is not supported"),
    ("BPE dropout", lambda t: t["model"].update(dropout=0.1), "BPE dropout (0.1) is not supported"),
    ("regex Replace", lambda t: t["normalizer"]["normalizers"][1].update(pattern={"Regex": " +"}),
     "a Regex pattern is not supported"),
    ("subword prefix", lambda t: t["model"].update(continuing_subword_prefix="##"),
     "\"continuing_subword_prefix\" (\"##\") is not supported"),
    ("Bert post-processor", lambda t: t.update(post_processor={"type": "BertProcessing"}),
     "post_processor \"BertProcessing\" is not supported"),
    ("ByteLevel with byte fallback",
     lambda t: t.update(pre_tokenizer={"type": "ByteLevel", "add_prefix_space": False}),
     "ByteLevel pre_tokenizer together with \"byte_fallback\""),
    ("Llama 3's ByteLevel", lambda t: (t["model"].update(byte_fallback=False), t.update(
        normalizer=None, pre_tokenizer={"type": "ByteLevel", "use_regex": False})),
     "without GPT-2's regex"),
]


@pytest.mark.parametrize("name,edit,message", UNSUPPORTED, ids=[u[0] for u in UNSUPPORTED])
def test_unsupported_layout_is_a_clear_error(tok_json, tmp_path, name, edit, message):
    path = write_json(tmp_path, _broken(tok_json, edit))
    rc, out, err = info(path)
    assert rc == 1 and message in err, err
    assert path in err  # names the file
