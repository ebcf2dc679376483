"""An engine of another API version is refused, naming both versions, and
the kernel goes on (CTest kernel.engine_version). ACTMAX_FAKE_ENGINE is a
libactmax whose am_get_api reports API version 999 and hands out no table
(tests/kernel/fake_engine.c); ACTMAX_ENGINE points the kernel at it."""
import os
import re

from conftest import errors, execute, start, stdout_of, stop

FAKE = os.environ["ACTMAX_FAKE_ENGINE"]


def test_other_api_version_is_refused_and_the_kernel_answers():
    env = dict(os.environ, ACTMAX_ENGINE=FAKE)
    km, kc = start(env=env)
    try:
        reply, msgs = execute(kc, "%model fashion-cnn", timeout=30)
        assert reply["content"]["status"] == "error"
        errs = errors(msgs)
        assert len(errs) == 1 and errs[0]["ename"] == "EngineError", errs
        text = errs[0]["evalue"]
        # Both versions: the engine's (999, actmax 9.9.9) and the kernel's.
        assert "engine API version 999" in text, text
        assert "actmax 9.9.9" in text, text
        m = re.search(r"needs engine API version (\d+)", text)
        assert m and m.group(1) != "999", text
        assert "$ACTMAX_ENGINE" in text, text
        # The kernel still answers, and a second try says the same.
        reply, msgs = execute(kc, "%echo still here")
        assert reply["content"]["status"] == "ok"
        assert stdout_of(msgs) == "still here\n"
        reply, msgs = execute(kc, "%layers", timeout=30)
        assert errors(msgs)[0]["ename"] == "EngineError"
        msg_id = kc.kernel_info()
        assert kc.get_shell_msg(timeout=10)["parent_header"]["msg_id"] == msg_id
    finally:
        stop(km, kc)
