"""Ctrl-C (a KeyboardInterrupt delivered to the main thread, here by
_thread.interrupt_main from a timer) stops a run and returns the best result
so far, as the kernel's interrupt does; the module keeps working after."""
import _thread
import threading

import numpy as np
import torch


def interrupt_after(seconds):
    t = threading.Timer(seconds, _thread.interrupt_main)
    t.start()
    return t


def test_interrupt_stops_an_image_run(fashion):
    t = interrupt_after(1.0)
    r = fashion.maximize("conv2[5]", steps=100000, progress=False)
    t.join()
    assert r.interrupted
    assert 0 < r.steps < 100000
    assert r.curve.shape == (r.steps,)
    assert torch.isfinite(r.images).all() and r.final.shape == (1,)
    # The best result so far is what the engine kept: its value on the image.
    x = (r.images - fashion.mean[0]) / fashion.std[0]
    torch.testing.assert_close(fashion.objective(x, "conv2[5]"), r.final, rtol=1e-4, atol=1e-5)
    again = fashion.maximize("conv2[5]", steps=3, progress=False)
    assert not again.interrupted and again.steps == 3


def test_interrupt_with_progress_shown(fashion):
    t = interrupt_after(1.0)
    r = fashion.maximize("conv2[5]", steps=100000, progress=True)
    t.join()
    assert r.interrupted and r.steps < 100000


def test_interrupt_stops_a_text_run(tiny_lm):
    t = interrupt_after(1.5)
    r = tiny_lm.tokens("blocks.0.mlp.act[-1, 3]", method="gcg", len=4, steps=100000, progress=False)
    t.join()
    assert r.interrupted and r.steps < 100000 and r.ids.shape == (4,)


def test_gil_is_released_during_a_run(fashion):
    """Another Python thread runs while the engine works."""
    ticks = []
    stop = threading.Event()

    def count():
        while not stop.is_set():
            ticks.append(1)
            stop.wait(0.001)

    th = threading.Thread(target=count)
    th.start()
    r = fashion.maximize("conv2[5]", steps=200, progress=False)
    stop.set()
    th.join()
    assert r.steps == 200
    assert len(ticks) > 20, f"the other thread ran {len(ticks)} times during {r.seconds:.2f} s"


def test_a_second_call_on_a_busy_model_is_refused(fashion):
    errors = []

    def progress_call(*args):
        try:
            fashion.objective(np.zeros((1, 1, 28, 28), np.float32), "conv2[1]")
        except RuntimeError as e:
            errors.append(str(e))
        return True  # stop

    r = fashion._m.maximize(["conv2[1]"], {"steps": 50}, None, None, progress_call, 100.0)
    assert r["cancelled"] and errors and "busy" in errors[0]
