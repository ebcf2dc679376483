"""Fixtures for the kernel's protocol tests: a real actmax kernel started by
Debian's jupyter_client from the build tree's kernelspec (JUPYTER_PATH is set
by ctest), helpers to collect the messages of one request, and helpers to
pick outputs out of them (errors, displays, PNGs and their sizes)."""
import base64
import os
import struct
import time

import pytest
from jupyter_client.manager import start_new_kernel

SANITIZED = os.environ.get("ACTMAX_SANITIZED") == "1"


def start(**kw):
    km, kc = start_new_kernel(kernel_name="actmax", startup_timeout=60, **kw)
    sync_iopub(kc)
    return km, kc


def sync_iopub(kc, tries=50):
    """Waits until iopub delivers: a SUB socket only receives what is
    published after its subscription reached the kernel, and actmax answers
    kernel_info within milliseconds, often before that."""
    for _ in range(tries):
        msg_id = kc.kernel_info()
        deadline = time.monotonic() + 0.2
        while time.monotonic() < deadline:
            try:
                m = kc.get_iopub_msg(timeout=0.05)
            except Exception:
                continue
            if m["parent_header"].get("msg_id") == msg_id:
                drain(kc)
                return
    raise AssertionError("iopub never delivered a message")


def stop(km, kc):
    """Shuts the kernel down through the protocol and checks it exited
    cleanly (under ASan, LeakSanitizer turns a leak into a nonzero status)."""
    proc = km.provisioner.process if km.provisioner else None
    kc.stop_channels()
    km.shutdown_kernel(now=False)
    if proc is not None:
        rc = proc.wait(timeout=30)
        assert rc == 0, f"kernel exited with status {rc}"


@pytest.fixture(scope="module")
def kernel():
    km, kc = start()
    yield km, kc
    stop(km, kc)


@pytest.fixture()
def kc(kernel):
    km, kc = kernel
    drain(kc)
    return kc


def drain(kc):
    """Drops whatever earlier tests left on iopub."""
    while True:
        try:
            kc.get_iopub_msg(timeout=0.05)
        except Exception:
            return


def iopub_for(kc, msg_id, timeout=15):
    """iopub messages parented to msg_id, up to and including its idle."""
    out = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no idle for {msg_id}; got {[m['msg_type'] for m in out]}"
        m = kc.get_iopub_msg(timeout=left)
        if m["parent_header"].get("msg_id") != msg_id:
            continue
        out.append(m)
        if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
            return out


def shell_reply(kc, msg_id, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        m = kc.get_shell_msg(timeout=max(0.01, deadline - time.monotonic()))
        if m["parent_header"].get("msg_id") == msg_id:
            return m


def control_reply(kc, msg_id, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        m = kc.get_control_msg(timeout=max(0.01, deadline - time.monotonic()))
        if m["parent_header"].get("msg_id") == msg_id:
            return m


def execute(kc, code, timeout=15, **kw):
    """Runs code; returns (reply, iopub messages)."""
    msg_id = kc.execute(code, **kw)
    reply = shell_reply(kc, msg_id, timeout)
    msgs = iopub_for(kc, msg_id, timeout)
    return reply, msgs


def outputs(msgs):
    return [m for m in msgs if m["msg_type"] not in ("status", "execute_input")]


def stdout_of(msgs):
    return "".join(m["content"]["text"] for m in msgs
                   if m["msg_type"] == "stream" and m["content"]["name"] == "stdout")


def run(kc, code, timeout=120):
    """Runs code; returns (iopub messages, reply). The engine magics' default
    timeout is long enough for a model load or an optimization."""
    msg_id = kc.execute(code)
    msgs = iopub_for(kc, msg_id, timeout=timeout)
    reply = shell_reply(kc, msg_id, timeout=timeout)
    return msgs, reply


def kinds(msgs, t):
    return [m for m in msgs if m["msg_type"] == t]


def errors(msgs):
    return [m["content"] for m in kinds(msgs, "error")]


def displays(msgs):
    """display_data contents, leaving out live displays (those with a display_id)."""
    return [m["content"] for m in kinds(msgs, "display_data")
            if not m["content"].get("transient", {}).get("display_id")]


def pngs(msgs):
    return [m["content"] for m in kinds(msgs, "display_data") if "image/png" in m["content"]["data"]]


def png_size(b64):
    """(width, height) of a base64 PNG from its header, checked by a full
    decode when Pillow is there."""
    raw = base64.b64decode(b64)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    w, h = struct.unpack(">II", raw[16:24])
    try:
        import io

        from PIL import Image
        im = Image.open(io.BytesIO(raw))
        im.load()
        assert im.size == (w, h)
    except ImportError:
        pass
    return w, h
