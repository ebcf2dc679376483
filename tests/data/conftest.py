"""Shared helpers: where the build put the trained tokenizers and data, and
the data_tool binary."""
import os

import pytest


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


def data_tool():
    tool = os.environ.get("ACTMAX_DATA_TOOL")
    if not tool or not os.path.isfile(tool):
        pytest.fail(f"ACTMAX_DATA_TOOL ({tool}) is not the built data_tool")
    return tool
