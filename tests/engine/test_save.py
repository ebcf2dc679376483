"""am_array_save: arrays written as .npy (numpy.load) and .pt (torch.load)."""
import ctypes as C

import numpy as np
import pytest
import torch

from amlib import lib

AM_DTYPE_FLOAT32, AM_DTYPE_INT64 = 0, 1
lib.am_array_save.restype = C.c_int
lib.am_array_save.argtypes = [C.c_char_p, C.c_int, C.c_void_p, C.POINTER(C.c_int64), C.c_int,
                              C.c_char_p, C.c_size_t]


def save(path, a):
    a = np.require(a, requirements="C")  # (ascontiguousarray would make 0-d arrays 1-d)
    dtype = AM_DTYPE_INT64 if a.dtype == np.int64 else AM_DTYPE_FLOAT32
    shape = (C.c_int64 * max(1, a.ndim))(*a.shape)
    err = C.create_string_buffer(512)
    rc = lib.am_array_save(str(path).encode(), dtype, a.ctypes.data, shape, a.ndim, err, 512)
    return rc, err.value.decode()


CASES = [
    np.random.default_rng(0).random((2, 3, 5, 7), dtype=np.float32),  # a batch of images
    np.random.default_rng(1).standard_normal((1, 1, 28, 28)).astype(np.float32),
    np.arange(-3, 300, dtype=np.int64).reshape(1, 303) * (1 << 40),  # ids past 32 bits
    np.array(2.5, dtype=np.float32),  # no dimensions
    np.zeros((0, 4), dtype=np.float32),  # empty
    np.random.default_rng(2).random((70000,), dtype=np.float32),  # numel past 65535
]


@pytest.mark.parametrize("a", CASES, ids=lambda a: f"{a.dtype}{list(a.shape)}")
@pytest.mark.parametrize("ext", ["npy", "pt"])
def test_round_trip(tmp_path, a, ext):
    path = tmp_path / f"x.{ext}"
    rc, err = save(path, a)
    assert rc == 0, err
    if ext == "npy":
        b = np.load(path)
        assert b.dtype == a.dtype and b.shape == a.shape
        assert np.array_equal(a, b)
    else:
        t = torch.load(path)
        assert isinstance(t, torch.Tensor)
        assert t.dtype == (torch.int64 if a.dtype == np.int64 else torch.float32)
        assert tuple(t.shape) == a.shape and t.is_contiguous()
        assert np.array_equal(t.numpy(), a)


def test_pt_loads_like_torch_save(tmp_path):
    # What torch.save wrote and what the engine wrote give equal tensors.
    a = np.random.default_rng(3).random((2, 1, 4, 4), dtype=np.float32)
    torch.save(torch.from_numpy(a), tmp_path / "ref.pt")
    save(tmp_path / "ours.pt", a)
    assert torch.equal(torch.load(tmp_path / "ref.pt"), torch.load(tmp_path / "ours.pt"))


def test_unknown_extension_names_the_valid_ones(tmp_path):
    rc, err = save(tmp_path / "x.png", np.zeros((2,), np.float32))
    assert rc == -1  # AM_E_ARG
    assert ".npy" in err and ".pt" in err and "x.png" in err
    assert not (tmp_path / "x.png").exists()


def test_unwritable_path():
    rc, err = save("/no/such/dir/x.npy", np.zeros((2,), np.float32))
    assert rc == -2  # AM_E_IO
    assert "cannot write /no/such/dir/x.npy" in err
