"""The same interpreter outside Jupyter: `actmax -c` and `actmax run FILE`."""
import os
import signal
import subprocess
import time

EXE = os.environ.get("ACTMAX_EXE", "actmax")


def run(*args, **kw):
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=60, **kw)


def test_c_prints_text_outputs():
    r = run("-c", "%echo hello\n%echo as result to=result\n%set seed=4\n%set")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("hello\nas result\n")
    assert "[now 4]" in r.stdout


def test_c_errors_exit_nonzero():
    r = run("-c", "%echo before\n%slep")
    assert r.returncode == 1
    assert r.stdout == ""  # checked before anything ran
    assert "UnknownMagicError: unknown magic %slep; did you mean %sleep?" in r.stderr


def test_run_file(tmp_path):
    f = tmp_path / "cells.actmax"
    f.write_text("# a file of magics\n%echo from a file\nlsmagic?\n")
    r = run("run", str(f))
    assert r.returncode == 0, r.stderr
    assert "from a file" in r.stdout and "%lsmagic" in r.stdout


def test_sigint_stops_sleep():
    p = subprocess.Popen([EXE, "-c", "%sleep seconds=60"], stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=10)
    assert time.monotonic() - t0 < 5
    assert p.returncode == 130
    assert "KeyboardInterrupt" in err


def test_usage():
    assert run("--version").stdout.startswith("actmax ")
    assert run("bogus").returncode == 2


def test_c_backslash_n_starts_a_new_magic():
    # What a shell passes for '%set seed=3\n%set': a backslash and an n.
    r = run("-c", "%set seed=3\\n%set\\n  # a comment\\n%echo a\\nb")
    assert r.returncode == 0, r.stderr
    assert "[now 3]" in r.stdout
    # Not before a magic or a comment, `\n` is kept as typed.
    assert "a\\nb" in r.stdout
    # Blank lines, help lines and a trailing `\n` split too.
    r = run("-c", "%set seed=5\\n\\n  \\nset?\\n%set\\n")
    assert r.returncode == 0, r.stderr
    assert "[now 5]" in r.stdout and "seed" in r.stdout
