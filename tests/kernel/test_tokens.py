"""The language-model magics through a real kernel and Debian's jupyter_client:
%tokens on tiny-lm (soft projection and GCG: nearest-token and attribution
tables in HTML and text/plain, soft vs projected values, the prompt
re-encoding to its tokens, the live display updated in place, the curve PNG),
%examples on the held-out corpus (coloured token spans, the corpus maximum
beside the optimized prompt), text runs in %runs/%show/%save, and one clear
error per bad input with the session kept."""
import json
import os
import sys
import time

import pytest

from conftest import control_reply, displays, drain, errors, iopub_for, kinds, png_size, run, shell_reply

pytestmark = pytest.mark.skipif(
    os.environ.get("ACTMAX_SANITIZED") == "1",
    reason="the sanitized build is configured without the engine; these run in the plain build")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OBJ = "blocks.2.mlp.act[-1, 123]"
MEAN_OBJ = "blocks.2.mlp.act[:, 123]"


def tiny_lm_path():
    build = os.path.dirname(os.environ["ACTMAX_EXE"])
    return os.path.join(build, "share", "actmax", "models", "tiny-lm.pt")


def tokenizer():
    """The tokenizer tiny-lm carries, through the project's own Python BPE."""
    import torch
    sys.path.insert(0, os.path.join(ROOT, "models"))
    import bpe
    extra = {"actmax.json": "", "tokenizer.json": ""}
    torch.jit.load(tiny_lm_path(), _extra_files=extra)
    return bpe.Tokenizer.from_json(extra["tokenizer.json"])


def summary(msgs):
    (s,) = [d for d in displays(msgs) if "application/json" in d["data"]]
    return s


@pytest.fixture(scope="module")
def lm(kernel):
    km, kc = kernel
    drain(kc)
    msgs, reply = run(kc, "%model tiny-lm")
    assert reply["content"]["status"] == "ok", errors(msgs)
    return kc


def test_soft_tables_values_live_and_plot(lm):
    kc = lm
    msgs, reply = run(kc, f"%tokens {OBJ} len=6 steps=20 updates_per_s=100")
    assert reply["content"]["status"] == "ok", errors(msgs)
    # Live display: one display_data with an id, then updates of that id.
    live = [m for m in kinds(msgs, "display_data") if m["content"].get("transient", {}).get("display_id")]
    assert len(live) == 1
    did = live[0]["content"]["transient"]["display_id"]
    updates = kinds(msgs, "update_display_data")
    assert updates and all(u["content"]["transient"]["display_id"] == did for u in updates)
    last = updates[-1]["content"]["data"]
    assert "20/20" in last["text/plain"] and "best prompt" in last["text/plain"]
    # Summary: soft vs projected and the retention, in text, HTML and JSON.
    s = summary(msgs)
    info = json.loads(s["data"]["application/json"]) if isinstance(s["data"]["application/json"], str) \
        else s["data"]["application/json"]
    assert info["method"] == "soft" and len(info["tokens"]) == 6 and info["steps"] == 20
    text, html = s["data"]["text/plain"], s["data"]["text/html"]
    assert "soft activation" in text and "projected" in text and "retention" in text
    assert f"{info['soft_activation']:.4g}" in text and f"{info['activation']:.4g}" in text
    assert abs(info["retention"] * info["soft_activation"] - info["activation"]) < 1e-3 * max(1, abs(info["activation"]))
    assert "soft (continuous)" in html and "projected (tokens)" in html
    assert html.count('class="actmax-tok"') == 6 and "background:#" in html
    # The kernel's word on re-encoding matches the tokenizer's.
    tok = tokenizer()
    reenc = tok.encode(tok.decode(info["tokens"])) == info["tokens"]
    assert info["roundtrip"] == reenc
    assert ("re-encodes to itself" in text) == reenc
    # Nearest-token table, in HTML and in text.
    (table,) = [d for d in displays(msgs) if "nearest 1" in d["data"]["text/plain"]]
    assert "<table" in table["data"]["text/html"] and "cos" in table["data"]["text/plain"]
    assert "nearest 5" in table["data"]["text/plain"] and "nearest 6" not in table["data"]["text/plain"]
    rows = [l for l in table["data"]["text/plain"].splitlines() if l.strip()[:1].isdigit()]
    assert len(rows) == 6
    # The curve PNG: soft and projected over steps.
    plots = [d for d in displays(msgs) if "image/png" in d["data"]]
    assert len(plots) == 1 and "soft and projected" in plots[0]["data"]["text/plain"]
    assert png_size(plots[0]["data"]["image/png"]) == (640, 360)


def test_compound_objective_gets_token_colours_and_projected_curve(lm):
    """An objective of two terms: the engine evaluates it at each token
    (am_model_objective_positions) and on every projection (am_model_objective);
    at the last token it is the prompt's own activation."""
    import re
    obj = "blocks.2.mlp.act[-1, 123] - 0.5 * blocks.1.mlp.act[-1, 7]"
    msgs, reply = run(lm, f"%tokens {obj} len=6 steps=20")
    assert reply["content"]["status"] == "ok", errors(msgs)
    s = summary(msgs)
    info = s["data"]["application/json"]
    info = json.loads(info) if isinstance(info, str) else info
    html = s["data"]["text/html"]
    assert "colour: the objective at each position" in html
    titles = re.findall(r'class="actmax-tok" style="background:#[0-9a-f]{6}" title="([^"]+)"', html)
    assert len(titles) == 6 and not any(t.startswith("token") for t in titles)
    last = float(titles[-1])
    assert abs(last - info["activation"]) <= 1e-3 * max(1.0, abs(info["activation"]))
    plots = [d for d in displays(msgs) if "image/png" in d["data"]]
    assert len(plots) == 1 and "soft and projected" in plots[0]["data"]["text/plain"]


def test_gcg_reencodes_attribution_and_examples(lm):
    kc = lm
    msgs, reply = run(kc, f"%tokens {MEAN_OBJ} method=gcg len=6 steps=20 batch=64")
    assert reply["content"]["status"] == "ok", errors(msgs)
    s = summary(msgs)
    info = s["data"]["application/json"]
    info = json.loads(info) if isinstance(info, str) else info
    tok = tokenizer()
    assert info["method"] == "gcg" and info["roundtrip"]
    assert tok.encode(tok.decode(info["tokens"])) == info["tokens"], "GCG keeps prompts that re-encode"
    assert "re-encodes to itself" in s["data"]["text/plain"]
    (table,) = [d for d in displays(msgs) if "drop if swapped" in d["data"]["text/plain"]]
    assert "best alternative" in table["data"]["text/html"]
    # %examples: the corpus windows, coloured, with the maximum and the prompt.
    msgs, reply = run(kc, f"%examples {MEAN_OBJ} k=5", timeout=300)
    assert reply["content"]["status"] == "ok", errors(msgs)
    (ex,) = displays(msgs)
    text, html = ex["data"]["text/plain"], ex["data"]["text/html"]
    mx = float(text.split("dataset maximum ")[1].split()[0])
    scores = [float(l.split()[2]) for l in text.splitlines() if l.strip()[:1].isdigit() and "#" in l]
    assert len(scores) == 5 and scores == sorted(scores, reverse=True)
    assert abs(scores[0] - mx) <= 1e-3 * max(1, abs(mx))
    assert html.count('class="actmax-tok"') >= 5 * 8 and 'title="' in html
    colours = {c.split('"')[0] for c in html.split("background:")[1:]}
    assert len(colours) > 2, "tokens coloured by their activation"
    assert f"optimized prompt (run {info['run']})" in text


def test_runs_show_save(lm, tmp_path):
    kc = lm
    msgs, reply = run(kc, f"%tokens {OBJ} len=4 steps=8 nearest=3")
    assert reply["content"]["status"] == "ok", errors(msgs)
    (table,) = [d for d in displays(msgs) if "nearest 1" in d["data"]["text/plain"]]
    assert "nearest 3" in table["data"]["text/plain"] and "nearest 4" not in table["data"]["text/plain"]
    info = summary(msgs)["data"]["application/json"]
    info = json.loads(info) if isinstance(info, str) else info
    msgs, _ = run(kc, "%runs")
    table = displays(msgs)[0]["data"]["text/plain"]
    assert OBJ in table and "method=soft" in table
    msgs, reply = run(kc, f"%show {info['run']}")
    assert reply["content"]["status"] == "ok"
    assert summary(msgs)["data"]["application/json"]
    out = tmp_path / "prompt.txt"
    msgs, reply = run(kc, f"%save last path={out}")
    assert reply["content"]["status"] == "ok", errors(msgs)
    assert out.read_bytes() == tokenizer().decode(info["tokens"])
    plot = tmp_path / "curve.png"
    msgs, reply = run(kc, f"%save last path={plot} what=plot")
    assert reply["content"]["status"] == "ok" and plot.read_bytes()[:4] == b"\x89PNG"


def test_non_utf8_and_whitespace_tokens_are_visible(lm, tmp_path):
    kc = lm
    corpus = tmp_path / "bytes.txt"
    corpus.write_bytes(b"caf\xe9 \xff\xfe na\xefve\n r\xe9sum\xe9 \x80\x81 " * 20)
    msgs, reply = run(kc, f"%examples {MEAN_OBJ} k=3 window=32 path={corpus}")
    assert reply["content"]["status"] == "ok", errors(msgs)
    (ex,) = displays(msgs)
    text, html = ex["data"]["text/plain"], ex["data"]["text/html"]
    assert "\\x" in text and "\\x" in html, "invalid bytes shown as \\xNN"
    assert "\ufffd" not in text
    # Whitespace tokens are visible in the text form: · for a space, ↵ for a newline.
    assert "\u00b7" in text and "\u21b5" in text


def test_text_model_to_maximize_points_to_tokens(lm):
    kc = lm
    msgs, reply = run(kc, f"%maximize {OBJ} steps=4")
    (err,) = errors(msgs)
    assert err["ename"] == "UnsupportedError" and "%tokens" in err["evalue"]


@pytest.mark.parametrize("code,ename,words", [
    (f"%tokens blocks.2.mlp.act[70, 123] len=8 steps=4", "ObjectiveError", ["70"]),
    (f"%tokens {OBJ} len=0 steps=4", "ValueError", ["len=0", "1 and"]),
    (f"%tokens {OBJ} len=65 steps=4", "ValueError", ["64"]),
    (f"%tokens blocks.9.mlp.act[-1, 1] steps=4", "ObjectiveError", ["blocks"]),
    (f"%tokens blocks.2.mlp.act[-1, 9999] steps=4", "ObjectiveError", ["9999"]),
    (f"%tokens {OBJ} method=beam", "UsageError", ["soft, pez, gcg, sweep"]),
    (f"%tokens {OBJ} method=gcg init=hello steps=4", "ValueError", ["len=8"]),
])
def test_bad_input_is_one_error_and_state_is_kept(lm, code, ename, words):
    kc = lm
    msgs, reply = run(kc, code)
    errs = errors(msgs)
    assert len(errs) == 1, errs
    assert errs[0]["ename"] == ename, errs[0]
    for w in words:
        assert w in errs[0]["evalue"], errs[0]["evalue"]
    msgs, reply = run(kc, f"%tokens {OBJ} len=2 steps=2")
    assert reply["content"]["status"] == "ok", errors(msgs)


def test_image_model_and_model_without_tokenizer(kernel, tmp_path):
    import torch
    km, kc = kernel
    drain(kc)
    msgs, reply = run(kc, "%model fashion-cnn")
    assert reply["content"]["status"] == "ok", errors(msgs)
    msgs, reply = run(kc, f"%tokens {OBJ} steps=4")
    (err,) = errors(msgs)
    assert err["ename"] == "UnsupportedError" and "%maximize" in err["evalue"]
    # tiny-lm saved again with its metadata but without the tokenizer file.
    extra = {"actmax.json": "", "tokenizer.json": ""}
    m = torch.jit.load(tiny_lm_path(), _extra_files=extra)
    meta = json.loads(extra["actmax.json"])
    meta.pop("tokenizer", None)
    path = tmp_path / "lm-no-tokenizer.pt"
    torch.jit.save(m, str(path), _extra_files={"actmax.json": json.dumps(meta)})
    msgs, reply = run(kc, f"%model {path}")
    if reply["content"]["status"] != "ok":
        # The engine may refuse the file at load: then that is the clear error.
        (err,) = errors(msgs)
        assert "tokenizer" in err["evalue"], err
    else:
        msgs, reply = run(kc, f"%tokens {OBJ} steps=4")
        (err,) = errors(msgs)
        assert err["ename"] == "TokenizerError" and "tokenizer" in err["evalue"], err
    msgs, reply = run(kc, "%model tiny-lm")
    assert reply["content"]["status"] == "ok", errors(msgs)
    msgs, reply = run(kc, f"%tokens {OBJ} len=2 steps=2")
    assert reply["content"]["status"] == "ok", errors(msgs)


def test_interrupt_keeps_best_prompt_and_kernel_goes_on(kernel):
    km, kc = kernel
    drain(kc)
    run(kc, "%model tiny-lm")
    msg_id = kc.execute(f"%tokens {OBJ} method=gcg len=6 steps=100000")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until the run is live
        m = kc.get_iopub_msg(timeout=60)
        if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "update_display_data":
            break
    req = kc.session.msg("interrupt_request", {})
    kc.control_channel.send(req)
    control_reply(kc, req["header"]["msg_id"])
    msgs = iopub_for(kc, msg_id, timeout=60)
    shell_reply(kc, msg_id)
    (err,) = errors(msgs)
    assert err["ename"] == "KeyboardInterrupt"
    s = summary(msgs)
    assert "interrupted" in s["data"]["text/plain"]
    info = s["data"]["application/json"]
    info = json.loads(info) if isinstance(info, str) else info
    assert info["cancelled"] and 0 < info["steps"] < 100000 and len(info["tokens"]) == 6
    msgs, reply = run(kc, f"%tokens {OBJ} len=2 steps=2")
    assert reply["content"]["status"] == "ok", errors(msgs)


def _bar(text):
    """(done, total) of a live display's text/plain: "... ] 12/345  3%  objective ..."."""
    done, total = text.splitlines()[-1].split("] ", 1)[1].split()[0].split("/")
    return int(done), int(total)


def test_text_examples_live_display(lm):
    kc = lm
    msgs, reply = run(kc, f"%examples {OBJ} k=3 batch=64 updates_per_s=100 verbose=true", timeout=300)
    assert reply["content"]["status"] == "ok", errors(msgs)
    # One display_data with an id (0 windows), then updates of that id, in place.
    live = [m for m in kinds(msgs, "display_data") if m["content"].get("transient", {}).get("display_id")]
    assert len(live) == 1
    did = live[0]["content"]["transient"]["display_id"]
    assert _bar(live[0]["content"]["data"]["text/plain"])[0] == 0
    assert "reading the corpus" in live[0]["content"]["data"]["text/plain"]
    updates = kinds(msgs, "update_display_data")
    assert len(updates) >= 3 and all(u["content"]["transient"]["display_id"] == did for u in updates)
    bars = [_bar(u["content"]["data"]["text/plain"]) for u in updates]
    done = [b[0] for b in bars]
    assert done == sorted(done) and done[0] < done[-1]
    # The result: every token scored, the bar full, the best so far = the maximum.
    (ex,) = displays(msgs)
    text = ex["data"]["text/plain"]
    scanned = int(text.split("corpus maximum ")[1].split("(")[1].split()[0])
    context = int(text.split(" tokens, each with >= ")[1].split()[0])
    assert bars[-1] == (scanned, scanned) and scanned > 3 * 64 * context
    mx = float(text.split("corpus maximum ")[1].split()[0])
    best = float(updates[-1]["content"]["data"]["text/plain"].split("objective ")[1].split()[0])
    assert abs(best - mx) <= 1e-3 * max(1, abs(mx))
    assert "interrupted" not in text
    sent = [m["content"]["text"] for m in kinds(msgs, "stream") if "live display updates sent" in m["content"]["text"]]
    assert sent and int(sent[0].split(":")[1]) == 1 + len(updates)
    # Each row: the peak's corpus position and value, the context around it with the peak bracketed.
    rows = [l for l in text.splitlines() if l.strip()[:1].isdigit() and "@" in l]
    assert len(rows) == 3 and all("[" in r and "]" in r for r in rows)
    assert abs(float(rows[0].split()[2]) - mx) <= 1e-3 * max(1, abs(mx))
    print(f"text %examples: {scanned} tokens in batches of 64 windows, {1 + len(updates)} live display messages, "
          f"steps {done}")


def test_text_examples_interrupt_shows_partial_topk_and_kernel_goes_on(kernel):
    km, kc = kernel
    drain(kc)
    run(kc, "%model tiny-lm")
    # Windows of 4 tokens (2 scored) one per forward: tens of thousands of batches.
    msg_id = kc.execute(f"%examples {OBJ} k=4 window=4 batch=1 updates_per_s=20")
    deadline = time.monotonic() + 120
    seen = 0
    while time.monotonic() < deadline and seen < 5:  # wait until the scan is well under way
        m = kc.get_iopub_msg(timeout=120)
        if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "update_display_data":
            seen += 1
    req = kc.session.msg("interrupt_request", {})
    kc.control_channel.send(req)
    control_reply(kc, req["header"]["msg_id"])
    msgs = iopub_for(kc, msg_id, timeout=60)
    reply = shell_reply(kc, msg_id)
    assert reply["content"]["status"] == "error"
    (err,) = errors(msgs)
    assert err["ename"] == "KeyboardInterrupt"
    # The partial top-k is shown, saying where the scan stopped.
    (ex,) = displays(msgs)
    text = ex["data"]["text/plain"]
    line = [l for l in text.splitlines() if l.startswith("interrupted after ")]
    assert line, text
    n, total = int(line[0].split()[2]), int(line[0].split()[5])
    assert 4 < n < total
    assert f"maximum of the tokens scanned" in text and f"({n} tokens, each with >= 2 tokens of context" in text
    assert "interrupted after" in ex["data"]["text/html"]
    scores = [float(l.split()[2]) for l in text.splitlines() if l.strip()[:1].isdigit() and "@" in l]
    assert len(scores) == 4 and scores == sorted(scores, reverse=True)
    # The live display ends where the scan stopped.
    updates = kinds(msgs, "update_display_data")
    assert updates and _bar(updates[-1]["content"]["data"]["text/plain"]) == (n, total)
    print(f"text %examples interrupted after {n} of about {total} tokens")
    msgs, reply = run(kc, f"%examples {OBJ} k=2 batch=512")
    assert reply["content"]["status"] == "ok", errors(msgs)


def test_completion_of_text_layers(lm):
    kc = lm
    code = "%tokens blocks.2.ml"
    r = shell_reply(kc, kc.complete(code, len(code)))["content"]
    assert "blocks.2.mlp.act" in r["matches"], r["matches"]
    code = f"%tokens {OBJ} meth"
    r = shell_reply(kc, kc.complete(code, len(code)))["content"]
    assert any(m.startswith("method") for m in r["matches"]), r["matches"]


def test_command_line_leaves_live_displays_out(tmp_path):
    """`actmax -c ... -o DIR` writes results, not the live progress that a
    notebook shows in place (every live display id has one prefix)."""
    import subprocess
    out = tmp_path / "out"
    r = subprocess.run([os.environ["ACTMAX_EXE"], "-c", f"%model tiny-lm\n%tokens {OBJ} len=4 steps=10",
                        "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    files = sorted(os.listdir(out))
    progress = [f for f in files if "best prompt" in (out / f).read_text(errors="replace")]
    assert files and any(f.endswith(".json") for f in files) and any(f.endswith(".png") for f in files)
    assert progress == [], f"live progress written to the folder: {progress}"
