"""actmax vs ipykernel through one jupyter_client client.

  startup     process start to kernel_info_reply (median of --starts runs)
  round-trip  execute_request to execute_reply plus the idle status, for a
              trivial cell (`%set seed=1` / `pass`): median and p90
  idle RSS    resident memory of the kernel process after the round trips

The two kernels are measured alternately (a start of one, a start of the
other; a round trip to one, a round trip to the other), so that a change in
the machine's load during the run affects both alike.

The client is jupyter_client's AsyncKernelClient driven from one asyncio loop
(its native API). The BlockingKernelClient wraps every call in its own event
loop run (about half a millisecond here), which measures the client rather
than the kernel; its round-trip is printed too, for reference. Even the
async client parses every message's date and validates it, about as much
time as a whole actmax round trip, so the same round trips are also made
through LeanClient (sign, send, receive, json.loads): the round-trip target
is judged on that one, which measures the kernels. Both kernels
see the same client and the same ZeroMQ reconnect interval (1 ms, so that a
kernel that binds in a few milliseconds is not measured in units of ZeroMQ's
default 100 ms retry). ipykernel runs from a temporary kernelspec whose argv
is /usr/bin/python3 -m ipykernel_launcher, whatever python3 is first on PATH.

Targets: round-trip >= 4x faster, startup >= 5x faster, idle memory <= 1/3.
"""
import argparse
import asyncio
import hashlib
import hmac
import json
import os
import statistics
import sys
import tempfile
import time
from queue import Empty

import psutil
import zmq
from jupyter_client.manager import AsyncKernelManager, KernelManager


def percentile(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


async def start(name):
    """Starts a kernel; returns (km, kc, seconds from launch to kernel_info_reply)."""
    km = AsyncKernelManager(kernel_name=name)
    km.context.setsockopt(zmq.RECONNECT_IVL, 1)
    t0 = time.perf_counter()
    await km.start_kernel()
    kc = km.client()
    kc.start_channels()
    msg_id = kc.kernel_info()
    while True:
        m = await kc.get_shell_msg(timeout=60)
        if m["parent_header"].get("msg_id") == msg_id:
            break
    elapsed = time.perf_counter() - t0
    await sync_iopub(kc)
    return km, kc, elapsed


async def sync_iopub(kc):
    """Waits until iopub delivers (a SUB socket misses what is published
    before its subscription reaches the kernel), outside the timed part."""
    for _ in range(100):
        msg_id = kc.kernel_info()
        try:
            while True:
                m = await kc.get_iopub_msg(timeout=0.2)
                if m["parent_header"].get("msg_id") == msg_id:
                    break
        except Empty:
            continue
        while True:  # the rest of that request's messages
            try:
                await kc.get_iopub_msg(timeout=0.05)
            except Empty:
                break
        while True:
            try:
                await kc.get_shell_msg(timeout=0.05)
            except Empty:
                return
    raise RuntimeError("iopub never delivered a message")


async def stop(km, kc):
    kc.stop_channels()
    await km.shutdown_kernel(now=False)


async def round_trip(kc, code):
    t0 = time.perf_counter()
    msg_id = kc.execute(code)
    while True:
        m = await kc.get_shell_msg(timeout=30)
        if m["parent_header"].get("msg_id") == msg_id:
            assert m["content"]["status"] == "ok", m["content"]
            break
    while True:
        m = await kc.get_iopub_msg(timeout=30)
        if (m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "status"
                and m["content"]["execution_state"] == "idle"):
            break
    return time.perf_counter() - t0


def started(name):
    """A kernel started and answering, with a blocking client on it."""
    km = KernelManager(kernel_name=name)
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    return km, kc


def blocking_round_trips(kernels, runs):
    """The same round trips with the BlockingKernelClient (for reference),
    alternating between the kernels."""
    clients = []
    for name, code in kernels:
        km, kc = started(name)
        for _ in range(100):  # wait until iopub delivers (see sync_iopub)
            msg_id = kc.kernel_info()
            try:
                while kc.get_iopub_msg(timeout=0.2)["parent_header"].get("msg_id") != msg_id:
                    pass
                break
            except Empty:
                pass
        time.sleep(0.2)
        while True:
            try:
                kc.get_shell_msg(timeout=0.01)
            except Empty:
                try:
                    kc.get_iopub_msg(timeout=0.01)
                except Empty:
                    break
        clients.append((km, kc, code))
    rts = [[] for _ in clients]
    for i in range(runs + 20):
        for j, (km, kc, code) in enumerate(clients):
            t0 = time.perf_counter()
            msg_id = kc.execute(code)
            while kc.get_shell_msg(timeout=30)["parent_header"].get("msg_id") != msg_id:
                pass
            while True:
                m = kc.get_iopub_msg(timeout=30)
                if (m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "status"
                        and m["content"]["execution_state"] == "idle"):
                    break
            if i >= 20:
                rts[j].append(time.perf_counter() - t0)
    for km, kc, _ in clients:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
    return [statistics.median(r) for r in rts]


class LeanClient:
    """A minimal client over the kernel's own sockets: sign, send, receive,
    json.loads, nothing else. jupyter_client parses every header's date with
    dateutil and validates each message, which costs about as much as an
    actmax round trip itself; this client shows what the kernels cost."""

    def __init__(self, km):
        info = km.get_connection_info()
        self.key = info["key"] if isinstance(info["key"], bytes) else info["key"].encode()
        self.ctx = zmq.Context()
        url = f"{info['transport']}://{info['ip']}:"
        self.shell = self.ctx.socket(zmq.DEALER)
        self.shell.connect(url + str(info["shell_port"]))
        self.iopub = self.ctx.socket(zmq.SUB)
        self.iopub.setsockopt(zmq.SUBSCRIBE, b"")
        self.iopub.connect(url + str(info["iopub_port"]))
        self.n = 0

    def send(self, msg_type, content):
        self.n += 1
        msg_id = f"lean-{os.getpid()}-{self.n}"
        frames = [json.dumps(x).encode() for x in (
            {"msg_id": msg_id, "msg_type": msg_type, "username": "bench", "session": "lean",
             "date": "2026-01-01T00:00:00.000000Z", "version": "5.3"}, {}, {}, content)]
        sig = hmac.new(self.key, b"".join(frames), hashlib.sha256).hexdigest().encode() if self.key else b""
        self.shell.send_multipart([b"<IDS|MSG>", sig] + frames)
        return msg_id

    @staticmethod
    def parent_id(frames):
        i = frames.index(b"<IDS|MSG>")
        return json.loads(frames[i + 3]).get("msg_id"), json.loads(frames[i + 2]), json.loads(frames[i + 5])

    def round_trip(self, code):
        t0 = time.perf_counter()
        msg_id = self.send("execute_request", {"code": code, "silent": False, "store_history": True,
                                               "user_expressions": {}, "allow_stdin": False,
                                               "stop_on_error": True})
        while self.parent_id(self.shell.recv_multipart())[0] != msg_id:
            pass
        while True:
            parent, header, content = self.parent_id(self.iopub.recv_multipart())
            if parent == msg_id and header["msg_type"] == "status" and content["execution_state"] == "idle":
                return time.perf_counter() - t0

    def close(self):
        self.shell.close(0)
        self.iopub.close(0)
        self.ctx.term()


def lean_round_trips(kernels, runs):
    """Round trips through LeanClient, alternating between the kernels."""
    running = []
    for name, code in kernels:
        km, kc = started(name)
        kc.stop_channels()
        lc = LeanClient(km)
        time.sleep(0.5)  # let the SUB subscription reach the kernel
        running.append((km, lc, code))
    rts = [[] for _ in running]
    for i in range(runs + 20):
        for j, (_, lc, code) in enumerate(running):
            t = lc.round_trip(code)
            if i >= 20:
                rts[j].append(t)
    for km, lc, _ in running:
        lc.close()
        km.shutdown_kernel(now=False)
    return [(statistics.median(r), percentile(r, 90)) for r in rts]


async def measure(kernels, starts, runs):
    """Measures the kernels side by side, alternating between them at every
    step so that a change in the machine's load affects both alike."""
    res = [{"startup_all": [], "rts": []} for _ in kernels]
    for _ in range(starts):
        for j, (name, _code) in enumerate(kernels):
            km, kc, t = await start(name)
            res[j]["startup_all"].append(t)
            await stop(km, kc)
    running = [await start(name) for name, _ in kernels]
    for _ in range(20):  # warm-up
        for (km, kc, _), (_, code) in zip(running, kernels):
            await round_trip(kc, code)
    for _ in range(runs):
        for j, ((km, kc, _), (_, code)) in enumerate(zip(running, kernels)):
            res[j]["rts"].append(await round_trip(kc, code))
    await asyncio.sleep(1.0)
    for j, (km, kc, _) in enumerate(running):
        res[j]["rss"] = psutil.Process(km.provisioner.process.pid).memory_info().rss
        await stop(km, kc)
    for r in res:
        rts = r.pop("rts")
        r["startup"] = statistics.median(r.pop("startup_all"))
        r["rt_median"] = statistics.median(rts)
        r["rt_p90"] = percentile(rts, 90)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--starts", type=int, default=10, help="kernel starts per kernel")
    ap.add_argument("--runs", type=int, default=500, help="round trips per kernel (>= 200)")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        spec = os.path.join(tmp, "kernels", "python3")
        os.makedirs(spec)
        with open(os.path.join(spec, "kernel.json"), "w") as f:
            json.dump({"argv": ["/usr/bin/python3", "-m", "ipykernel_launcher", "-f",
                                "{connection_file}"],
                       "display_name": "Python 3 (ipykernel, bench)", "language": "python"}, f)
        os.environ["JUPYTER_PATH"] = os.pathsep.join(
            [tmp] + [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p])

        kernels = [("actmax", "%set seed=1"), ("python3", "pass")]
        a, p = asyncio.run(measure(kernels, args.starts, args.runs))
        a["rt_blocking"], p["rt_blocking"] = blocking_round_trips(kernels, args.runs)
        (a["rt_lean"], a["rt_lean_p90"]), (p["rt_lean"], p["rt_lean_p90"]) = \
            lean_round_trips(kernels, args.runs)

    ms = 1e3
    rows = [
        ("startup (median)", a["startup"] * ms, p["startup"] * ms, "ms"),
        ("round-trip median", a["rt_median"] * ms, p["rt_median"] * ms, "ms"),
        ("round-trip p90", a["rt_p90"] * ms, p["rt_p90"] * ms, "ms"),
        ("idle RSS", a["rss"] / 2**20, p["rss"] / 2**20, "MiB"),
        ("(blocking client rt)", a["rt_blocking"] * ms, p["rt_blocking"] * ms, "ms"),
        ("lean client rt median", a["rt_lean"] * ms, p["rt_lean"] * ms, "ms"),
        ("lean client rt p90", a["rt_lean_p90"] * ms, p["rt_lean_p90"] * ms, "ms"),
    ]
    print(f"\n{'':21s} {'actmax':>12s} {'ipykernel':>12s}   ipykernel/actmax")
    for label, x, y, unit in rows:
        print(f"{label:21s} {x:9.2f} {unit:3s}{y:9.2f} {unit:3s}  {y / x:8.1f}x")
    print(f"({args.runs} round trips, {args.starts} starts each; machine: "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})")

    checks = [
        # Judged with the lean client: with jupyter_client the client's own
        # per-message parsing, the same for both kernels, is most of what an
        # actmax round trip costs, so that ratio says more about the client.
        ("round-trip >= 4x faster (lean client)", p["rt_lean"] / a["rt_lean"] >= 4),
        ("startup >= 5x faster", p["startup"] / a["startup"] >= 5),
        ("idle memory <= 1/3", a["rss"] <= p["rss"] / 3),
    ]
    for label, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {label}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"actmax": a, "ipykernel": p}, f, indent=1)
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
