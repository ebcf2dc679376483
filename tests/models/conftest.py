"""Shared helpers: where the build put the trained models and data."""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from build_paths import build_file, share_dir  # noqa: E402,F401


def load_model(name, extra=("actmax.json",)):
    """(scripted module, {extra file: bytes}) of a built-in model."""
    files = {k: "" for k in extra}
    m = torch.jit.load(build_file("models", f"{name}.pt"), _extra_files=files)
    return m, files


def metadata(files):
    return json.loads(files["actmax.json"])
