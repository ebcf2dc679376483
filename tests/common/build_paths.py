"""Where the build put the trained models, tokenizers and data (shared by the
Python tests of tests/data and tests/models, which ctest runs with
ACTMAX_SHARE_DIR=<build>/share)."""
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
