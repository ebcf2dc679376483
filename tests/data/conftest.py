"""Shared helpers: where the build put the trained tokenizers and data, and
the data_tool binary."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from build_paths import build_file, share_dir  # noqa: E402,F401


def data_tool():
    tool = os.environ.get("ACTMAX_DATA_TOOL")
    if not tool or not os.path.isfile(tool):
        pytest.fail(f"ACTMAX_DATA_TOOL ({tool}) is not the built data_tool")
    return tool
