"""Shared helpers: where the build put the trained models and data."""
import json
import os

import pytest
import torch


def share_dir():
    d = os.environ.get("ACTMAX_SHARE_DIR")
    if not d:
        pytest.fail("ACTMAX_SHARE_DIR is not set; run these tests through ctest in the build "
                    "directory, or set it to <build>/share")
    return d


def build_file(*parts):
    path = os.path.join(share_dir(), "actmax", *parts)
    if not os.path.isfile(path):
        pytest.fail(f"{path} is missing: the build trains it when configured with "
                    f"-DACTMAX_MODELS=ON (cmake --build <build> --target actmax_models)")
    return path


def load_model(name, extra=("actmax.json",)):
    """(scripted module, {extra file: bytes}) of a built-in model."""
    files = {k: "" for k in extra}
    m = torch.jit.load(build_file("models", f"{name}.pt"), _extra_files=files)
    return m, files


def metadata(files):
    return json.loads(files["actmax.json"])
