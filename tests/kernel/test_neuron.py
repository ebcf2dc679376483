"""%neuron and %maximize ... each through a real kernel: every section of
the dashboard for an image model (fashion-cnn) and a text model (tiny-lm),
the numbers behind it (the application/json twin) consistent with each
other, the live phases, and a labelled channel sweep."""
import json
import os
import time

import pytest

from conftest import displays, errors, kinds, pngs, run

pytestmark = pytest.mark.skipif(
    os.environ.get("ACTMAX_SANITIZED") == "1",
    reason="the sanitized build is configured without the engine; these run in the plain build")


def dashboard(msgs):
    (d,) = [d for d in displays(msgs) if "application/json" in d["data"]
            and "actmax-neuron" in d["data"].get("text/html", "")]
    data = d["data"]["application/json"]
    return (json.loads(data) if isinstance(data, str) else data), d["data"]


def live_labels(msgs):
    return " ".join(m["content"]["data"].get("text/plain", "")
                    for m in kinds(msgs, "display_data") + kinds(msgs, "update_display_data"))


def timed(kc, code):
    t = time.time()
    msgs, reply = run(kc, code, timeout=600)
    assert reply["content"]["status"] == "ok", errors(msgs)
    return msgs, time.time() - t


def test_image_dashboard(kernel):
    _, kc = kernel
    msgs, reply = run(kc, "%model fashion-cnn")
    assert reply["content"]["status"] == "ok", errors(msgs)
    first, t1 = timed(kc, "%neuron conv2[3] limit=2000 image_steps=64 updates_per_s=100")
    _, t2 = timed(kc, "%neuron conv2[4] limit=2000 image_steps=64 updates_per_s=100")
    print(f"\n%neuron fashion-cnn conv2 (64 steps, 2000 test images): first {t1:.2f} s, second "
          f"{t2:.2f} s (machine shared with other builds)")
    d, data = dashboard(first)
    for key in ("optimized", "top", "bands", "histogram", "class_means", "scanned", "firing_rate"):
        assert key in d, key
    assert len(d["optimized"]) == 4
    # The marked optimum is the run's activation: the best image's objective.
    assert d["optimum"] == pytest.approx(max(d["optimized"]), rel=1e-6)
    h = d["histogram"]
    assert not h["sampled"] and sum(h["counts"]) == d["scanned"] == 2000
    assert h["lo"] <= d["dataset_max"] <= h["hi"]
    assert d["top"][0]["value"] == pytest.approx(d["dataset_max"])
    assert len(d["bands"]) == 4 and all(b["examples"] for b in d["bands"])
    assert len(d["class_means"]) == 10
    html = data["text/html"]
    for part in ("optimized inputs", "quantile bands", "activation histogram", "per class"):
        assert part in html
    assert html.count("data:image/png;base64") >= 3
    labels = live_labels(first)
    assert "optimizing conv2[3]" in labels and "scanning" in labels


def test_text_dashboard(kernel):
    _, kc = kernel
    msgs, reply = run(kc, "%model tiny-lm")
    assert reply["content"]["status"] == "ok", errors(msgs)
    obj = "blocks.2.mlp.act[-1, {}]"
    first, t1 = timed(kc, "%neuron " + obj.format(123) + " text_steps=8 limit=20000 updates_per_s=100")
    _, t2 = timed(kc, "%neuron " + obj.format(124) + " text_steps=8 limit=20000 updates_per_s=100")
    print(f"\n%neuron tiny-lm blocks.2.mlp.act (GCG 8 steps, 20000 corpus tokens): first {t1:.2f} s, "
          f"second {t2:.2f} s (machine shared with other builds)")
    d, data = dashboard(first)
    for key in ("prompt", "sweep", "top", "bands", "histogram", "lens", "scanned", "firing_rate"):
        assert key in d, key
    assert d["optimum"] == pytest.approx(d["prompt"]["activation"], rel=1e-6)
    assert sum(d["histogram"]["counts"]) == d["scanned"]
    assert len(d["lens"]["top"]) == 10 and len(d["sweep"]) == 10
    tops = [t["value"] for t in d["lens"]["top"]]
    assert tops == sorted(tops, reverse=True)
    assert "logit lens" in data["text/html"] and "single-token sweep" in data["text/html"]


def test_neuron_errors_keep_the_session(kernel):
    _, kc = kernel
    run(kc, "%model fashion-cnn")
    msgs, reply = run(kc, "%neuron conv9[3]")
    assert reply["content"]["status"] == "error"
    assert "conv2" in str(errors(msgs))
    msgs, reply = run(kc, "%neuron conv2[3] steps=0")
    assert reply["content"]["status"] == "error"
    msgs, reply = run(kc, "%layers conv2")
    assert reply["content"]["status"] == "ok", errors(msgs)


def test_maximize_each_labelled_grid(kernel):
    _, kc = kernel
    run(kc, "%model fashion-cnn")
    msgs, reply = run(kc, "%maximize conv2[0:16] each steps=16")
    assert reply["content"]["status"] == "ok", errors(msgs)
    (s,) = [d for d in displays(msgs) if "application/json" in d["data"]]
    js = s["data"]["application/json"]
    js = json.loads(js) if isinstance(js, str) else js
    assert js["units"] == [f"conv2[{i}]" for i in range(16)]
    assert len(js["final"]) == 16
    assert pngs(msgs)
    msgs, reply = run(kc, "%maximize conv2[3] each steps=4")
    assert reply["content"]["status"] == "error"
    assert "needs one slice" in str(errors(msgs))
