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
than the kernel; its round-trip is printed too, for reference. Both kernels
see the same client and the same ZeroMQ reconnect interval (1 ms, so that a
kernel that binds in a few milliseconds is not measured in units of ZeroMQ's
default 100 ms retry). ipykernel runs from a temporary kernelspec whose argv
is /usr/bin/python3 -m ipykernel_launcher, whatever python3 is first on PATH.

Targets: round-trip >= 4x faster, startup >= 5x faster, idle memory <= 1/3.
"""
import argparse
import asyncio
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


def blocking_round_trips(kernels, runs):
    """The same round trips with the BlockingKernelClient (for reference),
    alternating between the kernels."""
    clients = []
    for name, code in kernels:
        km = KernelManager(kernel_name=name)
        km.start_kernel()
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
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

    ms = 1e3
    rows = [
        ("startup (median)", a["startup"] * ms, p["startup"] * ms, "ms"),
        ("round-trip median", a["rt_median"] * ms, p["rt_median"] * ms, "ms"),
        ("round-trip p90", a["rt_p90"] * ms, p["rt_p90"] * ms, "ms"),
        ("idle RSS", a["rss"] / 2**20, p["rss"] / 2**20, "MiB"),
        ("(blocking client rt)", a["rt_blocking"] * ms, p["rt_blocking"] * ms, "ms"),
    ]
    print(f"\n{'':21s} {'actmax':>12s} {'ipykernel':>12s}   ipykernel/actmax")
    for label, x, y, unit in rows:
        print(f"{label:21s} {x:9.2f} {unit:3s}{y:9.2f} {unit:3s}  {y / x:8.1f}x")
    print(f"({args.runs} round trips, {args.starts} starts each; machine: "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})")

    checks = [
        ("round-trip >= 4x faster", p["rt_median"] / a["rt_median"] >= 4),
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
