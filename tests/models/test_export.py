"""models/export.py on a torchvision model with random weights, through the
function and the command line, on a Llama-family language model with a
SentencePiece tokenizer, and its errors."""
import json
import os
import subprocess
import sys

import pytest
import torch
import torchvision

import export

EXPORT = os.path.join(os.path.dirname(export.__file__), "export.py")


def read(path):
    files = {"actmax.json": ""}
    m = torch.jit.load(path, _extra_files=files)
    return m, json.loads(files["actmax.json"])


def test_function_resnet18(tmp_path):
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None).eval()
    path = str(tmp_path / "resnet18.pt")
    labels = [f"class {i}" for i in range(1000)]
    export.export(net, path, input=[3, 64, 64], labels=labels, dataset="mine")
    m, meta = read(path)
    assert meta["kind"] == "image" and meta["input"] == [3, 64, 64]
    assert meta["mean"] == export.IMAGENET_MEAN and meta["std"] == export.IMAGENET_STD
    assert meta["labels"] == labels and meta["dataset"] == "mine"
    assert "layer3.1.conv2" in {n for n, _ in m.named_modules()}
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(m(x), net(x), rtol=1e-4, atol=1e-4)


def test_cli_resnet18_with_weights(tmp_path):
    torch.manual_seed(1)
    net = torchvision.models.resnet18(weights=None)
    weights = tmp_path / "w.pth"
    torch.save(net.state_dict(), weights)
    out = tmp_path / "r18.pt"
    r = subprocess.run([sys.executable, EXPORT, "--arch", "resnet18", "--weights", str(weights),
                        "--out", str(out), "--input", "3x32x32"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    m, meta = read(str(out))
    assert meta["input"] == [3, 32, 32]
    assert len(meta["labels"]) == 1000 and meta["labels"][0] == "tench"  # ImageNet names
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(m(x), net.eval()(x), rtol=1e-4, atol=1e-4)


def test_errors_are_explained(tmp_path):
    net = torchvision.models.resnet18(weights=None)
    with pytest.raises(export.ExportError, match="one label per output unit"):
        export.export(net, str(tmp_path / "a.pt"), input=[3, 32, 32], labels=["a", "b"])
    with pytest.raises(export.ExportError, match="one value per input channel"):
        export.export(net, str(tmp_path / "a.pt"), input=[3, 32, 32], mean=[0.5], std=[0.5])
    with pytest.raises(export.ExportError, match="the model fails on an input of shape"):
        export.export(net, str(tmp_path / "a.pt"), input=[1, 32, 32])
    with pytest.raises(export.ExportError, match="write it like 3x224x224"):
        export.export(net, str(tmp_path / "a.pt"), input="three")
    r = subprocess.run([sys.executable, EXPORT, "--arch", "resnet1800", "--out",
                        str(tmp_path / "b.pt")], capture_output=True, text=True)
    assert r.returncode == 2 and "no architecture 'resnet1800'" in r.stderr
    assert not (tmp_path / "a.pt").exists() and not (tmp_path / "b.pt").exists()


def test_llama_family_module(tmp_path):
    """A Llama-architecture module with a SentencePiece .model: the tokenizer
    travels as tokenizer.json in Hugging Face's Llama layout, the scripted
    module computes what the Python one does, metadata passes through."""
    spm = pytest.importorskip("sentencepiece", reason="python3-sentencepiece is not installed "
                              "(scripts/install-deps.sh installs it)")
    import fortunes
    import spm_json
    import tiny_llama
    train, _ = fortunes.split()
    model_bytes = tiny_llama.train_tokenizer(train[:2000], 600, threads=1)
    sp_path = tmp_path / "tokenizer.model"
    sp_path.write_bytes(model_bytes)
    torch.manual_seed(2)
    net = tiny_llama.TinyLlama(600, context=32, d=32, layers=2, heads=2, hidden=64).eval()
    path = str(tmp_path / "llama.pt")
    meta = export.export(net, path, kind="text", tokenizer=str(sp_path), context=32, bos=1, eot=2)
    assert meta == {"kind": "text", "vocab_size": 600, "context": 32,
                    "tokenizer": "tokenizer.json", "bos": 1, "eot": 2}
    files = {"actmax.json": "", "tokenizer.json": ""}
    m = torch.jit.load(path, _extra_files=files)
    assert json.loads(files["actmax.json"]) == meta
    tok = json.loads(files["tokenizer.json"])
    assert tok == spm_json.convert(model_bytes)
    assert tok["model"]["byte_fallback"] and tok["post_processor"]["type"] == "TemplateProcessing"
    sp = spm.SentencePieceProcessor()
    sp.LoadFromSerializedProto(model_bytes)
    ids = torch.tensor([[1] + sp.encode("Nothing is so firmly believed as what we least know.")])
    ids = ids[:, :32]
    with torch.no_grad():
        torch.testing.assert_close(m(ids), net(ids), rtol=1e-5, atol=1e-5)
    # Scripted, not traced: another length works too.
    with torch.no_grad():
        assert m(ids[:, :5]).shape == (1, 5, 600)
    assert "layers.1.mlp.act" in {n for n, _ in m.named_modules()}


def test_text_export_errors(tmp_path):
    net = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 10))
    bad = tmp_path / "wordpiece.json"
    bad.write_text(json.dumps({"model": {"type": "WordPiece", "vocab": {"a": 0}}}))
    with pytest.raises(export.ExportError, match="model type 'WordPiece' is not supported"):
        export.export(net, str(tmp_path / "x.pt"), kind="text", tokenizer=str(bad), context=4)
    junk = tmp_path / "junk.model"
    junk.write_bytes(b"not a sentencepiece model")
    with pytest.raises(export.ExportError, match="is not a SentencePiece BPE model"):
        export.export(net, str(tmp_path / "x.pt"), kind="text", tokenizer=str(junk), context=4)
    with pytest.raises(export.ExportError, match="needs tokenizer="):
        export.export(net, str(tmp_path / "x.pt"), kind="text")
