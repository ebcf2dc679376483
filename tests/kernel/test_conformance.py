"""The checks of jupyter_kernel_test 0.7.0's `KernelTests` and
`IopubWelcomeTests`, run against the actmax kernel with the project's own
samples. That package is on PyPI only (not in Debian 12), so its checks are
written out here, one test each, with the same samples a subclass would
give it, and every message is checked against the shape messaging spec 5.5
gives its type (the package's `validate_message`)."""
import re
import time

from jupyter_client.manager import KernelManager

from conftest import execute, iopub_for, shell_reply, start, stop

# ---- the samples a KernelTests subclass would give ---------------------------

KERNEL_NAME = "actmax"
LANGUAGE_NAME = "actmax"
FILE_EXTENSION = ".actmax"
CODE_HELLO_WORLD = "%echo hello, world"
CODE_STDERR = "%echo oops to=stderr"
COMPLETION_SAMPLES = [{"text": "%lsm", "matches": {"%lsmagic"}},
                      {"text": "%set se", "matches": {"seed="}}]
COMPLETE_CODE_SAMPLES = ["%lsmagic", "%set seed=1\n%set", "%%echo\nbody\n\n"]
INCOMPLETE_CODE_SAMPLES = ["%%echo", "%echo fc[1,", "%echo 'open", "%echo a \\"]
INVALID_CODE_SAMPLES = ["%lsmagc", "x = 1", "%echo ]"]
CODE_PAGE_SOMETHING = "%set?"
CODE_GENERATE_ERROR = "%nosuchmagic"
CODE_EXECUTE_RESULT = [{"code": "%echo 42 to=result", "result": "42"}]
CODE_DISPLAY_DATA = [{"code": "%echo shown to=display", "mime": "text/plain"}]
CODE_HISTORY_PATTERN = "%echo hist*"
SUPPORTED_HISTORY_OPERATIONS = ("tail", "range", "search")
CODE_INSPECT_SAMPLE = "%sleep"
CODE_CLEAR_OUTPUT = "%clear"


# ---- message shapes (spec 5.5) -------------------------------------------------

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?$")

# Required content fields and their types, per message type.
SHAPES = {
    "kernel_info_reply": {"status": str, "protocol_version": str, "implementation": str,
                          "implementation_version": str, "language_info": dict,
                          "banner": str, "help_links": list},
    "execute_reply": {"status": str, "execution_count": int},
    "complete_reply": {"status": str, "matches": list, "cursor_start": int,
                       "cursor_end": int, "metadata": dict},
    "inspect_reply": {"status": str, "found": bool, "data": dict, "metadata": dict},
    "is_complete_reply": {"status": str},
    "history_reply": {"status": str, "history": list},
    "status": {"execution_state": str},
    "execute_input": {"code": str, "execution_count": int},
    "stream": {"name": str, "text": str},
    "display_data": {"data": dict, "metadata": dict},
    "execute_result": {"data": dict, "metadata": dict, "execution_count": int},
    "error": {"ename": str, "evalue": str, "traceback": list},
    "clear_output": {"wait": bool},
    "iopub_welcome": {"subscription": str},
}


def validate_message(msg, msg_type=None, parent_id=None):
    for part in ("header", "parent_header", "metadata", "content"):
        assert isinstance(msg[part], dict), part
    h = msg["header"]
    for field in ("msg_id", "msg_type", "session", "username", "version"):
        assert isinstance(h[field], str), field
    date = h["date"]
    assert (ISO.match(date) if isinstance(date, str) else hasattr(date, "isoformat")), date
    major, minor = (int(x) for x in h["version"].split(".")[:2])
    assert (major, minor) >= (5, 0)
    if msg_type:
        assert h["msg_type"] == msg_type
    if parent_id:
        assert msg["parent_header"]["msg_id"] == parent_id
    shape = SHAPES.get(h["msg_type"])
    assert shape is not None, f"no shape for {h['msg_type']}"
    c = msg["content"]
    if h["msg_type"] == "execute_reply" and c.get("status") == "aborted":
        return
    for field, typ in shape.items():
        if field in ("execution_count", "status") and h["msg_type"] == "execute_reply" \
                and c.get("status") == "error":
            continue
        assert field in c, f"{h['msg_type']} without {field}: {c}"
        assert isinstance(c[field], typ), f"{h['msg_type']}.{field}: {c[field]!r}"
    if h["msg_type"] == "status":
        assert c["execution_state"] in ("busy", "idle", "starting")
    if h["msg_type"] == "stream":
        assert c["name"] in ("stdout", "stderr")
    if h["msg_type"] == "is_complete_reply":
        assert c["status"] in ("complete", "incomplete", "invalid", "unknown")
        if c["status"] == "incomplete":
            assert isinstance(c["indent"], str)
    if h["msg_type"] == "execute_reply" and c["status"] == "error":
        assert isinstance(c["ename"], str) and isinstance(c["traceback"], list)


def run_and_check(kc, code, **kw):
    """execute_helper: the reply and the iopub messages, every one validated."""
    reply, msgs = execute(kc, code, **kw)
    validate_message(reply, "execute_reply", reply["parent_header"]["msg_id"])
    busy, idle = msgs[0], msgs[-1]
    assert busy["content"]["execution_state"] == "busy"
    assert idle["content"]["execution_state"] == "idle"
    for m in msgs:
        validate_message(m, parent_id=reply["parent_header"]["msg_id"])
    return reply, [m for m in msgs if m["msg_type"] not in ("status", "execute_input")]


# ---- KernelTests ------------------------------------------------------------------

def test_kernel_info(kc):
    msg_id = kc.kernel_info()
    reply = shell_reply(kc, msg_id)
    validate_message(reply, "kernel_info_reply", msg_id)
    c = reply["content"]
    assert c["language_info"]["name"] == LANGUAGE_NAME
    assert c["language_info"]["file_extension"] == FILE_EXTENSION
    assert c["protocol_version"] == "5.5"
    assert isinstance(c["supported_features"], list)


def test_execute_stdout(kc):
    reply, outs = run_and_check(kc, CODE_HELLO_WORLD)
    assert reply["content"]["status"] == "ok"
    assert any(m["msg_type"] == "stream" and m["content"]["name"] == "stdout"
               and "hello, world" in m["content"]["text"] for m in outs)


def test_execute_stderr(kc):
    reply, outs = run_and_check(kc, CODE_STDERR)
    assert any(m["msg_type"] == "stream" and m["content"]["name"] == "stderr" for m in outs)


def test_completion(kc):
    for sample in COMPLETION_SAMPLES:
        msg_id = kc.complete(sample["text"])
        reply = shell_reply(kc, msg_id)
        validate_message(reply, "complete_reply", msg_id)
        assert sample["matches"] <= set(reply["content"]["matches"]), sample


def test_is_complete(kc):
    for codes, want in ((COMPLETE_CODE_SAMPLES, "complete"),
                        (INCOMPLETE_CODE_SAMPLES, "incomplete"),
                        (INVALID_CODE_SAMPLES, "invalid")):
        for code in codes:
            msg_id = kc.is_complete(code)
            reply = shell_reply(kc, msg_id)
            validate_message(reply, "is_complete_reply", msg_id)
            assert reply["content"]["status"] == want, (code, reply["content"])


def test_pager(kc):
    reply, _ = run_and_check(kc, CODE_PAGE_SOMETHING)
    payloads = reply["content"]["payload"]
    assert len(payloads) == 1 and payloads[0]["source"] == "page"
    assert "text/plain" in payloads[0]["data"]


def test_error(kc):
    reply, outs = run_and_check(kc, CODE_GENERATE_ERROR)
    assert reply["content"]["status"] == "error"
    assert [m["msg_type"] for m in outs] == ["error"]


def test_execute_result(kc):
    for sample in CODE_EXECUTE_RESULT:
        reply, outs = run_and_check(kc, sample["code"])
        results = [m for m in outs if m["msg_type"] == "execute_result"]
        assert len(results) == 1
        assert results[0]["content"]["data"]["text/plain"] == sample["result"]
        assert results[0]["content"]["execution_count"] == reply["content"]["execution_count"]


def test_display_data(kc):
    for sample in CODE_DISPLAY_DATA:
        _, outs = run_and_check(kc, sample["code"])
        shown = [m for m in outs if m["msg_type"] == "display_data"]
        assert len(shown) == 1 and sample["mime"] in shown[0]["content"]["data"]


def test_history(kc):
    codes = ["%echo hist-one", "%echo hist-two"]
    for code in codes:
        run_and_check(kc, code)
    for op in SUPPORTED_HISTORY_OPERATIONS:
        kw = {"tail": {"n": 2}, "range": {"session": 0, "start": 1, "stop": 10_000},
              "search": {"pattern": CODE_HISTORY_PATTERN}}[op]
        msg_id = kc.history(hist_access_type=op, raw=True, output=False, **kw)
        reply = shell_reply(kc, msg_id)
        validate_message(reply, "history_reply", msg_id)
        inputs = [h[2] for h in reply["content"]["history"]]
        assert codes[-1] in inputs, (op, inputs)


def test_inspect(kc):
    msg_id = kc.inspect(CODE_INSPECT_SAMPLE)
    reply = shell_reply(kc, msg_id)
    validate_message(reply, "inspect_reply", msg_id)
    assert reply["content"]["found"] is True
    assert reply["content"]["data"]["text/plain"]


def test_clear_output(kc):
    _, outs = run_and_check(kc, CODE_CLEAR_OUTPUT)
    assert [m["msg_type"] for m in outs] == ["clear_output"]


# ---- IopubWelcomeTests ------------------------------------------------------------

def test_recv_iopub_welcome_msg():
    # As the suite does it: a fresh client's very first iopub message is
    # the welcome for its subscription to every topic.
    km = KernelManager(kernel_name=KERNEL_NAME)
    km.start_kernel()
    kc = km.client()
    try:
        kc.start_channels()
        deadline = time.monotonic() + 30
        while True:
            assert time.monotonic() < deadline, "no iopub message"
            try:
                msg = kc.get_iopub_msg(timeout=0.1)
            except Exception:
                continue
            validate_message(msg, "iopub_welcome")
            assert msg["msg_type"] == "iopub_welcome"
            assert msg["content"]["subscription"] == ""
            break
    finally:
        stop(km, kc)


def test_every_client_is_welcomed():
    # A second client of the same kernel (a console beside a notebook) is
    # welcomed too: the kernel asks libzmq for every subscription.
    km, kc = start()
    kc2 = km.client()
    try:
        kc2.start_channels()
        msg = kc2.get_iopub_msg(timeout=30)
        assert msg["msg_type"] == "iopub_welcome"
        reply, msgs = execute(kc, "%echo to both")
        ids = reply["parent_header"]["msg_id"]
        seen = iopub_for(kc2, ids)
        assert [m["msg_type"] for m in seen] == [m["msg_type"] for m in msgs]
    finally:
        kc2.stop_channels()
        stop(km, kc)
