"""The actmax kernel through jupyter_client (messaging spec 5.5): every
handler, message ordering, the iopub welcome, hostile input on the wire
(stdin included), interrupts, shutdown and restart, and resident memory
over many executions."""
import datetime
import json
import os
import signal
import time

import psutil
import pytest
import zmq
from jupyter_client.session import Session

from conftest import (SANITIZED, control_reply, drain, execute, iopub_for, outputs,
                      shell_reply, start, stdout_of, stop)


# ---- kernel_info -----------------------------------------------------------

def check_kernel_info(content):
    assert content["status"] == "ok"
    assert content["protocol_version"] == "5.5"
    assert content["supported_features"] == []  # no debugger, no subshells
    assert content["implementation"] == "actmax"
    assert content["language_info"]["name"] == "actmax"
    assert "%help" in content["banner"]


def test_kernel_info_shell(kc):
    msg_id = kc.kernel_info()
    reply = shell_reply(kc, msg_id)
    assert reply["msg_type"] == "kernel_info_reply"
    check_kernel_info(reply["content"])
    states = [m["content"]["execution_state"] for m in iopub_for(kc, msg_id)]
    assert states == ["busy", "idle"]


def test_kernel_info_control(kc):
    msg = kc.session.msg("kernel_info_request", {})
    kc.control_channel.send(msg)
    reply = control_reply(kc, msg["header"]["msg_id"])
    assert reply["msg_type"] == "kernel_info_reply"
    check_kernel_info(reply["content"])
    # Busy/idle around control requests too.
    states = [m["content"]["execution_state"] for m in iopub_for(kc, msg["header"]["msg_id"])]
    assert states == ["busy", "idle"]


def test_reply_header(kc):
    msg_id = kc.kernel_info()
    reply = shell_reply(kc, msg_id)
    h = reply["header"]
    assert h["msg_type"] == "kernel_info_reply"
    assert h["version"] == "5.5"
    assert h["msg_id"] and h["session"] and h["date"]
    assert reply["parent_header"]["msg_id"] == msg_id


def test_heartbeat(kernel):
    km, _ = kernel
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.REQ)
    s.linger = 0
    info = km.get_connection_info()
    s.connect(f"tcp://{info['ip']}:{info['hb_port']}")
    s.send(b"ping-123")
    assert s.poll(5000), "heartbeat did not answer"
    assert s.recv() == b"ping-123"
    s.close()


# ---- execute ---------------------------------------------------------------

def test_execute_ordering_and_outputs(kc):
    code = ("%echo to stdout\n%echo to stderr to=stderr\n%echo shown to=display\n"
            "%echo the result to=result")
    reply, msgs = execute(kc, code)
    assert reply["content"]["status"] == "ok"
    n = reply["content"]["execution_count"]
    types = [m["msg_type"] for m in msgs]
    assert types == ["status", "execute_input", "stream", "stream", "display_data",
                     "execute_result", "status"]
    assert msgs[0]["content"]["execution_state"] == "busy"
    assert msgs[-1]["content"]["execution_state"] == "idle"
    assert msgs[1]["content"] == {"code": code, "execution_count": n}
    assert msgs[2]["content"] == {"name": "stdout", "text": "to stdout\n"}
    assert msgs[3]["content"] == {"name": "stderr", "text": "to stderr\n"}
    assert msgs[4]["content"]["data"] == {"text/plain": "shown"}
    assert msgs[4]["content"]["metadata"] == {"actmax_magic": "echo"}
    assert msgs[5]["content"]["execution_count"] == n
    assert msgs[5]["content"]["data"] == {"text/plain": "the result"}

    reply2, _ = execute(kc, "%set")
    assert reply2["content"]["execution_count"] == n + 1


def test_execute_silent_and_store_history(kc):
    reply, _ = execute(kc, "%lsmagic")
    n = reply["content"]["execution_count"]
    reply, msgs = execute(kc, "%echo quiet", silent=True)
    assert reply["content"]["status"] == "ok"
    assert [m["msg_type"] for m in msgs] == ["status", "status"]
    reply, msgs = execute(kc, "%echo not stored", store_history=False)
    assert stdout_of(msgs) == "not stored\n"
    reply, _ = execute(kc, "%lsmagic")
    assert reply["content"]["execution_count"] == n + 1


def test_display_update_and_clear(kc):
    _, msgs = execute(kc, "%echo first to=display display_id=progress\n"
                          "%echo second to=display display_id=progress update=true\n"
                          "%clear wait=true")
    outs = outputs(msgs)
    assert [m["msg_type"] for m in outs] == ["display_data", "update_display_data",
                                             "clear_output"]
    assert outs[0]["content"]["transient"] == {"display_id": "progress"}
    assert outs[1]["content"]["transient"] == {"display_id": "progress"}
    assert outs[1]["content"]["data"] == {"text/plain": "second"}
    assert outs[2]["content"] == {"wait": True}


def test_error_unknown_magic(kc):
    reply, msgs = execute(kc, "%maximise fc[0]")
    c = reply["content"]
    assert c["status"] == "error"
    assert c["ename"] == "UnknownMagicError"
    errors = [m for m in msgs if m["msg_type"] == "error"]
    assert len(errors) == 1
    assert errors[0]["content"]["ename"] == "UnknownMagicError"
    assert "%maximise" in errors[0]["content"]["evalue"]
    assert errors[0]["content"]["traceback"]


def test_error_closest_magic_and_keys(kc):
    reply, msgs = execute(kc, "%slep")
    assert "did you mean %sleep?" in reply["content"]["evalue"]
    reply, msgs = execute(kc, "%sleep secs=1")
    assert reply["content"]["ename"] == "UsageError"
    assert "valid keys: seconds" in reply["content"]["evalue"]
    reply, msgs = execute(kc, "x = 1")
    assert "not a magic" in reply["content"]["evalue"]
    assert "%help" in reply["content"]["evalue"]


def test_errors_keep_session_state(kc):
    execute(kc, "%set seed=42")
    reply, _ = execute(kc, "%set seed=-1")
    assert reply["content"]["status"] == "error"
    reply, _ = execute(kc, "%nosuchmagic")
    assert reply["content"]["status"] == "error"
    _, msgs = execute(kc, "%set")
    assert "[now 42]" in stdout_of(msgs)
    execute(kc, "%set seed=0")


def test_help_page_payload(kc):
    for code in ("sleep?", "%sleep?", "%%echo?"):
        reply, msgs = execute(kc, code)
        c = reply["content"]
        assert c["status"] == "ok"
        assert len(c["payload"]) == 1
        page = c["payload"][0]
        assert page["source"] == "page"
        assert page["start"] == 0
        assert "seconds=FLOAT" in page["data"]["text/plain"] or "%%echo" in page["data"]["text/plain"]
        assert outputs(msgs) == []


def test_help_and_lsmagic_outputs(kc):
    _, msgs = execute(kc, "%lsmagic")
    text = stdout_of(msgs)
    assert "%lsmagic" in text and "%help" in text and "%set" in text
    _, msgs = execute(kc, "%help set")
    assert "%set [seed=INT]" in stdout_of(msgs)


# ---- complete / inspect / is_complete ---------------------------------------

def complete(kc, code, pos):
    msg_id = kc.complete(code, pos)
    return shell_reply(kc, msg_id)["content"]


def test_complete(kc):
    c = complete(kc, "%sl", 3)
    assert c["status"] == "ok"
    assert c["matches"] == ["%sleep"]
    assert (c["cursor_start"], c["cursor_end"]) == (0, 3)
    c = complete(kc, "%sleep se", 9)
    assert c["matches"] == ["seconds="]
    assert (c["cursor_start"], c["cursor_end"]) == (7, 9)
    c = complete(kc, "%set de", 7)
    assert c["matches"] == ["device="]
    c = complete(kc, "%set device=c", 13)
    assert sorted(c["matches"]) == ["cpu", "cuda"]
    assert c["cursor_start"] == 12


def test_complete_code_points(kc):
    # Positions count code points: "✓é" is 2 code points but 5 bytes.
    code = "%echo ✓é\n%set se"
    c = complete(kc, code, len(code))
    assert c["matches"] == ["seed="]
    assert (c["cursor_start"], c["cursor_end"]) == (len(code) - 2, len(code))
    code = "%echo 😀 to=di"
    c = complete(kc, code, len(code))
    assert c["matches"] == ["display"]
    assert c["cursor_start"] == len(code) - 2


def test_inspect(kc):
    msg_id = kc.inspect("%sleep seconds=1", 3)
    c = shell_reply(kc, msg_id)["content"]
    assert c["status"] == "ok" and c["found"] is True
    assert "%sleep [seconds=FLOAT]" in c["data"]["text/plain"]
    msg_id = kc.inspect("%nosuch", 2)
    c = shell_reply(kc, msg_id)["content"]
    assert c["status"] == "ok" and c["found"] is False and c["data"] == {}


def test_is_complete(kc):
    def status(code):
        msg_id = kc.is_complete(code)
        return shell_reply(kc, msg_id)["content"]
    assert status("%lsmagic")["status"] == "complete"
    assert status("%lsmagc")["status"] == "invalid"
    c = status("%%echo\nbody")
    assert c["status"] == "incomplete" and c["indent"] == ""
    assert status("%%echo\nbody\n\n")["status"] == "complete"
    # Where a console user goes on typing: a cell magic without a body, an
    # open bracket or quote, a trailing backslash.
    for code in ("%%echo", "%echo fc[1,", "%echo (a", "%echo 'abc", '%echo x label="a',
                 "%echo a \\", "%set seed=1\n%echo [\n1,"):
        assert status(code)["status"] == "incomplete", code
    # Closed again, the same lines are complete; a wrong closer stays invalid.
    for code in ("%echo fc[1,\n2]", "%echo 'ab\nc'", "%echo a \\\nb"):
        assert status(code)["status"] == "complete", code
    for code in ("%echo fc[1)", "%echo ]", "%lsmagc", "%echo a # note \\"):
        assert status(code)["status"] == "invalid" or code.endswith("\\"), code
    # A backslash inside a comment does not continue the line (as in Python).
    assert status("%echo a # note \\")["status"] == "complete"


def test_continued_lines_run(kc):
    # A trailing backslash joins the next line (both dropped, as in Python);
    # open brackets go on at the next line, the newline kept inside them.
    reply, msgs = execute(kc, "%echo one \\\ntwo\n%echo [1,\n2]")
    assert reply["content"]["status"] == "ok"
    assert stdout_of(msgs) == "one two\n[1,\n2]\n"
    # An error on a continued line names the line where the magic starts.
    reply, _ = execute(kc, "%echo a\n%sleep \\\nsecs=1")
    assert reply["content"]["status"] == "error"
    assert "line 2" in "\n".join(reply["content"]["traceback"])


def test_execute_reply_metadata_started(kc):
    before = datetime.datetime.now(datetime.timezone.utc)
    reply, _ = execute(kc, "%sleep seconds=0.2")
    after = datetime.datetime.now(datetime.timezone.utc)
    md = reply["metadata"]
    started = md["started"]
    # jupyter_client turns ISO dates into datetimes; either way it is UTC
    # and lies within the request's round trip, before the reply.
    if isinstance(started, str):
        started = datetime.datetime.fromisoformat(started.replace("Z", "+00:00"))
    assert before - datetime.timedelta(seconds=1) <= started <= after
    assert started <= reply["header"]["date"] if not isinstance(reply["header"]["date"], str) \
        else True
    assert md["status"] == "ok"
    reply, _ = execute(kc, "%nosuch")
    assert reply["metadata"]["status"] == "error" and "started" in reply["metadata"]


# ---- iopub welcome (spec 5.5) ---------------------------------------------------

def test_iopub_welcome_on_subscription(kernel):
    km, _ = kernel
    info = km.get_connection_info()
    session = Session(key=km.session.key, signature_scheme="hmac-sha256")
    ctx = zmq.Context.instance()
    for topic in (b"", b"kernel."):
        sub = ctx.socket(zmq.SUB)
        sub.linger = 0
        sub.setsockopt(zmq.SUBSCRIBE, topic)
        sub.connect(f"tcp://{info['ip']}:{info['iopub_port']}")
        try:
            assert sub.poll(5000), "no iopub_welcome after subscribing"
            frames = sub.recv_multipart()
            assert frames[0].startswith(topic)
            msg = session.deserialize(frames[frames.index(b"<IDS|MSG>") + 1:])
            assert msg["msg_type"] == "iopub_welcome"
            assert msg["content"] == {"subscription": topic.decode()}
            assert msg["parent_header"] == {}
        finally:
            sub.close()


def test_first_output_after_welcome_not_lost():
    # A client that waits for the welcome (instead of polling kernel_info
    # until iopub delivers) sees the outputs of its very first request.
    from jupyter_client.manager import KernelManager
    km = KernelManager(kernel_name="actmax")
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        first = kc.get_iopub_msg(timeout=30)
        assert first["msg_type"] == "iopub_welcome"
        assert first["content"]["subscription"] == ""
        reply, msgs = execute(kc, "%echo first words")
        assert reply["content"]["status"] == "ok"
        assert stdout_of(msgs) == "first words\n"
    finally:
        stop(km, kc)


# ---- history -----------------------------------------------------------------

def history(kc, **kw):
    msg_id = kc.history(**kw)
    c = shell_reply(kc, msg_id)["content"]
    assert c["status"] == "ok"
    return c["history"]


def test_history(kc):
    execute(kc, "%echo hist-a")
    execute(kc, "%echo hist-b")
    execute(kc, "%echo hist-a")
    tail = history(kc, hist_access_type="tail", n=3, raw=True, output=False)
    assert [h[2] for h in tail] == ["%echo hist-a", "%echo hist-b", "%echo hist-a"]
    first_line = tail[0][1]
    rng = history(kc, hist_access_type="range", session=0, start=first_line,
                  stop=first_line + 2, raw=True, output=False)
    assert [h[1] for h in rng] == [first_line, first_line + 1]
    found = history(kc, hist_access_type="search", pattern="%echo hist-*", raw=True,
                    output=False)
    assert [h[2] for h in found][-3:] == ["%echo hist-a", "%echo hist-b", "%echo hist-a"]
    uniq = history(kc, hist_access_type="search", pattern="%echo hist-?", unique=True,
                   raw=True, output=False)
    assert [h[2] for h in uniq] == ["%echo hist-b", "%echo hist-a"]
    with_out = history(kc, hist_access_type="tail", n=1, raw=True, output=True)
    assert with_out[0][2][0] == "%echo hist-a"


# ---- comms, unknown types ----------------------------------------------------

def test_comm_info_and_open(kc):
    msg_id = kc.comm_info()
    c = shell_reply(kc, msg_id)["content"]
    assert c == {"status": "ok", "comms": {}}
    msg = kc.session.msg("comm_open", {"comm_id": "c-1", "target_name": "jupyter.widget",
                                       "data": {}})
    kc.shell_channel.send(msg)
    msgs = iopub_for(kc, msg["header"]["msg_id"])
    closes = [m for m in msgs if m["msg_type"] == "comm_close"]
    assert len(closes) == 1 and closes[0]["content"]["comm_id"] == "c-1"


def test_unknown_message_type(kc):
    msg = kc.session.msg("no_such_request", {})
    kc.shell_channel.send(msg)
    states = [m["content"]["execution_state"] for m in iopub_for(kc, msg["header"]["msg_id"])]
    assert states == ["busy", "idle"]
    assert shell_reply(kc, kc.kernel_info())["content"]["status"] == "ok"


# ---- hostile input on the wire ------------------------------------------------

@pytest.fixture()
def raw(kernel):
    """A DEALER socket on the shell port and a Session with the kernel's key."""
    km, kc = kernel
    info = km.get_connection_info()
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    s.connect(f"tcp://{info['ip']}:{info['shell_port']}")
    session = Session(key=km.session.key, signature_scheme="hmac-sha256")
    yield s, session, kc
    s.close()


def still_answers(kc):
    drain(kc)
    reply = shell_reply(kc, kc.kernel_info(), timeout=10)
    assert reply["content"]["status"] == "ok"


def no_reply(sock, ms=300):
    return sock.poll(ms) == 0


def test_raw_valid_message_answered(raw):
    s, session, kc = raw
    frames = session.serialize(session.msg("kernel_info_request", {}))
    s.send_multipart(frames)
    assert s.poll(5000), "no reply to a valid raw message"
    reply = s.recv_multipart()
    idx = reply.index(b"<IDS|MSG>")
    msg = session.deserialize(reply[idx + 1:])
    assert msg["msg_type"] == "kernel_info_reply"


def test_bad_signature_dropped(raw):
    s, session, kc = raw
    frames = session.serialize(session.msg("kernel_info_request", {}))
    frames[1] = b"0" * 64
    s.send_multipart(frames)
    assert no_reply(s)
    frames = session.serialize(session.msg("kernel_info_request", {}))
    frames[1] = b""
    s.send_multipart(frames)
    assert no_reply(s)
    # A signature made with another key.
    other = Session(key=b"not-the-key", signature_scheme="hmac-sha256")
    s.send_multipart(other.serialize(other.msg("kernel_info_request", {})))
    assert no_reply(s)
    still_answers(kc)


def test_garbage_and_truncated_frames_dropped(raw):
    s, session, kc = raw
    s.send_multipart([b"garbage"])
    s.send_multipart([b"\xff\x00\x01", b"more garbage", b"<IDS|MSG"])
    s.send_multipart([b"<IDS|MSG>"])
    good = session.serialize(session.msg("kernel_info_request", {}))
    s.send_multipart(good[:4])  # no content frame
    # Signed but malformed JSON.
    hdr = b'{"msg_id": "x", "msg_type": "kernel_info_request"'
    parts = [hdr, b"{}", b"{}", b"{}"]
    s.send_multipart([b"<IDS|MSG>", session.sign(parts)] + parts)
    # Signed JSON that is not an object, and a header without msg_type.
    for parts in ([b"[]", b"{}", b"{}", b"{}"], [b'{"msg_id": "y"}', b"{}", b"{}", b"{}"]):
        s.send_multipart([b"<IDS|MSG>", session.sign(parts)] + parts)
    # An empty multipart frame list element and a huge frame count.
    s.send_multipart([b""] * 2000)
    assert no_reply(s)
    still_answers(kc)


def test_replayed_message_dropped(raw):
    s, session, kc = raw
    frames = session.serialize(session.msg("kernel_info_request", {}))
    s.send_multipart(frames)
    assert s.poll(5000)
    s.recv_multipart()
    s.send_multipart(frames)  # the very same frames again
    assert no_reply(s, 500)
    still_answers(kc)


def test_execute_with_bad_content_survives(raw):
    s, session, kc = raw
    # execute_request without code: an error reply, and the kernel goes on.
    s.send_multipart(session.serialize(session.msg("execute_request", {"silent": False})))
    assert s.poll(5000)
    reply = s.recv_multipart()
    msg = session.deserialize(reply[reply.index(b"<IDS|MSG>") + 1:])
    assert msg["content"]["status"] == "error"
    still_answers(kc)


def test_odd_request_fields(raw):
    s, session, kc = raw

    def ask(msg_type, content):
        s.send_multipart(session.serialize(session.msg(msg_type, content)))
        assert s.poll(5000), f"no reply to {msg_type} {content}"
        f = s.recv_multipart()
        return session.deserialize(f[f.index(b"<IDS|MSG>") + 1:])["content"]

    for pos in (1e300, -5, "3", None):
        c = ask("complete_request", {"code": "%sl", "cursor_pos": pos})
        assert c["status"] == "ok"
        c = ask("inspect_request", {"code": "%sleep", "cursor_pos": pos, "detail_level": 0})
        assert c["status"] == "ok"
    c = ask("history_request", {"hist_access_type": "tail", "n": 1e300, "output": False,
                                "raw": True})
    assert c["status"] == "ok"
    c = ask("history_request", {"hist_access_type": "range", "session": 0, "start": -1e300,
                                "stop": 1e300, "output": False, "raw": True})
    assert c["status"] == "ok"
    c = ask("history_request", {"hist_access_type": "nonsense"})
    assert c == {"status": "ok", "history": []}
    c = ask("complete_request", {"cursor_pos": 3})  # no code
    assert c["status"] == "error"
    still_answers(kc)


def test_nul_byte_is_an_error_not_a_cut(kc):
    # JSON carries U+0000 as \u0000; read as a C string the cell would end
    # there and run "%set seed=1" silently.
    reply, msgs = execute(kc, "%set seed=1\x00\n%nosuch")
    c = reply["content"]
    assert c["status"] == "error" and c["ename"] == "UsageError"
    assert "NUL" in c["evalue"] and "U+0000" in c["evalue"]
    errs = [m for m in msgs if m["msg_type"] == "error"]
    assert len(errs) == 1
    # An escaped backslash before u0000 is text, not a NUL.
    reply, msgs = execute(kc, "%echo a\\u0000b")
    assert reply["content"]["status"] == "ok"
    assert stdout_of(msgs) == "a\\u0000b\n"
    still_answers(kc)


def test_stdin_read_and_dropped(kernel):
    # The kernel never asks for input; whatever a client sends on stdin is
    # read and dropped, so it cannot pile up in the kernel's memory.
    km, kc = kernel
    proc = psutil.Process(km.provisioner.process.pid)
    info = km.get_connection_info()
    session = Session(key=km.session.key, signature_scheme="hmac-sha256")
    ctx = zmq.Context.instance()

    def flood(n, size):
        s = ctx.socket(zmq.DEALER)
        s.linger = 0
        s.sndhwm = 0
        s.connect(f"tcp://{info['ip']}:{info['stdin_port']}")
        payload = "x" * size
        for _ in range(n):
            s.send_multipart(session.serialize(session.msg("input_reply", {"value": payload})))
        # Wait until everything left this process: then it is in the kernel.
        time.sleep(0.5)
        still_answers(kc)
        s.close()

    flood(50, 512 * 1024)  # warm-up
    before = proc.memory_info().rss
    for _ in range(3):
        flood(200, 512 * 1024)  # 100 MiB a connection
    after = proc.memory_info().rss
    growth = after - before
    assert growth < 32 * 1024 * 1024, f"RSS grew by {growth / 2**20:.0f} MiB"
    # Over the size bound (1 MiB a frame on stdin): the peer is cut off,
    # the kernel goes on.
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    s.connect(f"tcp://{info['ip']}:{info['stdin_port']}")
    s.send_multipart([b"<IDS|MSG>", b"", b"{}", b"{}", b"{}", b"y" * (8 << 20)])
    time.sleep(0.5)
    s.close()
    assert km.is_alive()
    still_answers(kc)


def test_oversized_shell_frame_cuts_the_peer_only(raw):
    s, session, kc = raw
    # 64 MiB a frame on shell; more disconnects that peer, nothing else.
    s.send_multipart([b"<IDS|MSG>", b"", b"{}", b"{}", b"{}", b"z" * (65 << 20)])
    time.sleep(1.0)
    still_answers(kc)


# ---- kernelspec -------------------------------------------------------------------

def test_kernelspec_5_5():
    from jupyter_client.kernelspec import KernelSpecManager
    spec = KernelSpecManager().get_kernel_spec("actmax")
    with open(os.path.join(spec.resource_dir, "kernel.json")) as f:
        raw = json.load(f)
    assert raw["kernel_protocol_version"] == "5.5"
    assert raw["interrupt_mode"] == "signal"
    # The SVG logo beside the PNG ones, drawn by the same code: a 64x64 SVG.
    import xml.etree.ElementTree as ET
    svg = os.path.join(spec.resource_dir, "logo-svg.svg")
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    assert root.get("width", "").startswith("64") and root.get("height", "").startswith("64")
    assert len(list(root.iter())) > 5, "an empty SVG"
    for size in (32, 64):
        assert os.path.getsize(os.path.join(spec.resource_dir, f"logo-{size}x{size}.png")) > 100


# ---- stop_on_error -------------------------------------------------------------

def test_stop_on_error_aborts_queued(kc):
    # The first cell fails at run time after a short wait, so the others are
    # already queued in the kernel when it fails.
    bad = kc.execute("%sleep seconds=0.5\n%echo x to=display update=true")
    queued = [kc.execute("%echo queued-1"), kc.execute("%echo queued-2")]
    independent = kc.execute("%echo runs anyway", stop_on_error=False)
    r = shell_reply(kc, bad)
    assert r["content"]["status"] == "error"
    n = r["content"]["execution_count"]
    for q in queued:
        c = shell_reply(kc, q)["content"]
        assert c["status"] == "aborted"
        # An aborted cell did not run: no number (Notebook shows "In [ ]"),
        # never the failed cell's number a second time.
        assert c["execution_count"] is None, (c, n)
    assert shell_reply(kc, independent)["content"]["status"] == "ok"
    # The queue is drained: the next request runs normally.
    reply, msgs = execute(kc, "%echo after")
    assert reply["content"]["status"] == "ok"
    assert stdout_of(msgs) == "after\n"


def test_request_after_error_reply_runs(kc):
    # Only requests queued when the error happened are aborted: one sent right
    # after the error reply arrives runs.
    for _ in range(30):
        bad = kc.execute("%nosuch")
        assert shell_reply(kc, bad)["content"]["status"] == "error"
        good = kc.execute("%set seed=0")
        assert shell_reply(kc, good)["content"]["status"] == "ok"
    drain(kc)


def test_no_abort_without_stop_on_error(kc):
    bad = kc.execute("%sleep seconds=0.3\n%echo x to=display update=true",
                     stop_on_error=False)
    nxt = kc.execute("%echo next")
    assert shell_reply(kc, bad)["content"]["status"] == "error"
    assert shell_reply(kc, nxt)["content"]["status"] == "ok"


# ---- interrupt ------------------------------------------------------------------

def wait_for_busy(kc, msg_id):
    while True:
        m = kc.get_iopub_msg(timeout=10)
        if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "execute_input":
            return


def test_interrupt_signal_during_sleep(kernel):
    km, kc = kernel
    drain(kc)
    t0 = time.monotonic()
    msg_id = kc.execute("%sleep seconds=60")
    wait_for_busy(kc, msg_id)
    time.sleep(0.2)
    km.interrupt_kernel()  # interrupt_mode "signal": SIGINT
    reply = shell_reply(kc, msg_id, timeout=10)
    assert time.monotonic() - t0 < 10
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert km.is_alive()
    still_answers(kc)


def test_interrupt_request_on_control(kernel):
    km, kc = kernel
    drain(kc)
    msg_id = kc.execute("%sleep seconds=60")
    wait_for_busy(kc, msg_id)
    msg = kc.session.msg("interrupt_request", {})
    kc.control_channel.send(msg)
    creply = control_reply(kc, msg["header"]["msg_id"])
    assert creply["msg_type"] == "interrupt_reply"
    assert creply["content"]["status"] == "ok"
    reply = shell_reply(kc, msg_id, timeout=10)
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    still_answers(kc)


def test_sigint_while_idle_is_harmless(kernel):
    km, kc = kernel
    os.kill(km.provisioner.process.pid, signal.SIGINT)
    time.sleep(0.2)
    assert km.is_alive()
    reply, msgs = execute(kc, "%echo fine")
    assert reply["content"]["status"] == "ok"
    assert stdout_of(msgs) == "fine\n"


def test_control_served_while_running(kernel):
    km, kc = kernel
    drain(kc)
    msg_id = kc.execute("%sleep seconds=1.5")
    wait_for_busy(kc, msg_id)
    t0 = time.monotonic()
    msg = kc.session.msg("kernel_info_request", {})
    kc.control_channel.send(msg)
    creply = control_reply(kc, msg["header"]["msg_id"], timeout=5)
    assert time.monotonic() - t0 < 1.0, "control waited for the running command"
    check_kernel_info(creply["content"])
    reply = shell_reply(kc, msg_id, timeout=10)
    assert reply["content"]["status"] == "ok"


# ---- shutdown and restart -----------------------------------------------------------

def test_shutdown_and_restart():
    km, kc = start()
    try:
        first = km.provisioner.process
        reply, _ = execute(kc, "%set seed=9")
        assert reply["content"]["status"] == "ok"
        km.restart_kernel(now=False)
        assert first.wait(timeout=30) == 0
        kc.wait_for_ready(timeout=60)
        # A fresh kernel: counts and settings start over.
        reply, msgs = execute(kc, "%set")
        assert reply["content"]["execution_count"] == 1
        assert "[now 0]" in stdout_of(msgs)
    finally:
        stop(km, kc)


def test_shutdown_request_reply():
    km, kc = start()
    proc = km.provisioner.process
    msg = kc.session.msg("shutdown_request", {"restart": False})
    kc.control_channel.send(msg)
    reply = control_reply(kc, msg["header"]["msg_id"])
    assert reply["msg_type"] == "shutdown_reply"
    assert reply["content"] == {"status": "ok", "restart": False}
    assert proc.wait(timeout=30) == 0
    kc.stop_channels()
    km.cleanup_resources()


def test_shutdown_while_running():
    km, kc = start()
    proc = km.provisioner.process
    msg_id = kc.execute("%sleep seconds=60")
    wait_for_busy(kc, msg_id)
    msg = kc.session.msg("shutdown_request", {"restart": False})
    kc.control_channel.send(msg)
    assert control_reply(kc, msg["header"]["msg_id"])["content"]["status"] == "ok"
    assert proc.wait(timeout=30) == 0
    kc.stop_channels()
    km.cleanup_resources()


# ---- resident memory -------------------------------------------------------------------

def test_memory_stable_over_1000_executions(kernel):
    km, kc = kernel
    proc = psutil.Process(km.provisioner.process.pid)
    cells = ["%set seed=1", "%echo x", "%nosuch", "%sleep seconds=0", "sleep?",
             "%echo y to=display display_id=d"]

    def run(n):
        for i in range(n):
            code = cells[i % len(cells)]
            msg_id = kc.execute(code)
            shell_reply(kc, msg_id)
            iopub_for(kc, msg_id)

    run(300)  # warm-up: allocator pools, history, replay set
    before = proc.memory_info().rss
    run(1000)
    after = proc.memory_info().rss
    growth = after - before
    limit = (4 if SANITIZED else 1) * 1024 * 1024
    assert growth < limit, f"RSS grew by {growth / 1024:.0f} KiB over 1000 executions"


# ---- no signing ---------------------------------------------------------------------------

def test_empty_key_means_no_signing():
    from jupyter_client.manager import KernelManager
    km = KernelManager(kernel_name="actmax")
    km.session.key = b""
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        assert km.get_connection_info()["key"] == b""
        reply, msgs = execute(kc, "%echo unsigned")
        assert reply["content"]["status"] == "ok"
        assert stdout_of(msgs) == "unsigned\n"
    finally:
        stop(km, kc)
