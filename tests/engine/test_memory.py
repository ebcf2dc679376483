"""am_memory_available: what runs are checked against before they allocate.
On the CPU, MemAvailable lowered by the cgroup's limit and ACTMAX_MEMORY_LIMIT;
on CUDA, the driver's free memory, read here from a stand-in driver library
(fake_libcuda.c: device N has N + 1 GiB free) since this machine may have no
GPU."""
import ctypes
import os

import pytest

import actmax.raw as raw

GIB = 1024 ** 3
FAKE = os.environ.get("ACTMAX_TEST_FAKE_LIBCUDA")


def meminfo_available():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return None


@pytest.fixture
def env(monkeypatch):
    monkeypatch.delenv("ACTMAX_MEMORY_LIMIT", raising=False)
    monkeypatch.delenv("ACTMAX_LIBCUDA", raising=False)
    return monkeypatch


def test_cpu_is_memavailable_or_lower(env):
    got = raw.memory_available("cpu")
    ref = meminfo_available()
    assert got is not None and got > 0
    # The cgroup may lower it; memory moves a little between the two reads.
    assert got <= ref * 1.05 + 64 * 1024 ** 2, (got, ref)
    assert raw.memory_available() == pytest.approx(got, rel=0.05)  # the default device is the CPU


def test_limit_lowers_and_never_raises(env):
    env.setenv("ACTMAX_MEMORY_LIMIT", "64M")
    assert raw.memory_available("cpu") == 64 * 1024 ** 2
    env.setenv("ACTMAX_MEMORY_LIMIT", "100000G")
    assert raw.memory_available("cpu") < 100000 * GIB


def test_bad_device_is_refused(env):
    for bad in ("gpu", "cuda:x", "metal", ""):
        if bad == "":
            assert raw.memory_available(bad) is not None  # "" means the CPU, as NULL does
            continue
        with pytest.raises(ValueError, match="expected cpu, cuda or cuda:N"):
            raw.memory_available(bad)


def test_cuda_without_a_driver_is_unknown_unless_limited(env):
    env.setenv("ACTMAX_LIBCUDA", "/nonexistent/libcuda.so.1")
    assert raw.memory_available("cuda") is None
    env.setenv("ACTMAX_MEMORY_LIMIT", "2G")
    assert raw.memory_available("cuda:0") == 2 * GIB


@pytest.mark.skipif(not FAKE, reason="the stand-in driver library was not built (ACTMAX_TEST_FAKE_LIBCUDA unset)")
def test_cuda_free_memory_from_the_driver(env):
    env.setenv("ACTMAX_LIBCUDA", FAKE)
    lib = ctypes.CDLL(FAKE)  # the same handle the engine opens: its counters
    count = {n: ctypes.c_int.in_dll(lib, "fake_" + n) for n in ("retained", "released", "pushed", "popped")}
    assert raw.memory_available("cuda:0") == 1 * GIB
    assert raw.memory_available("cuda:1") == 2 * GIB
    assert raw.memory_available("cuda") == 1 * GIB  # no index: device 0
    # Every context retained is released and every push popped.
    assert count["retained"].value == count["released"].value == 3
    assert count["pushed"].value == count["popped"].value == 3
    # A device the driver does not have, and a driver that fails: unknown.
    assert raw.memory_available("cuda:5") is None
    ctypes.c_int.in_dll(lib, "fake_fail_init").value = 1
    try:
        assert raw.memory_available("cuda:0") is None
    finally:
        ctypes.c_int.in_dll(lib, "fake_fail_init").value = 0
    # The limit still lowers it.
    env.setenv("ACTMAX_MEMORY_LIMIT", "512M")
    assert raw.memory_available("cuda:1") == 512 * 1024 ** 2
