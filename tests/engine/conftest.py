"""Models shared by the engine tests, traced once per session."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

torch.manual_seed(0)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def resnet18_file(model_dir):
    import torchvision
    torch.manual_seed(0)
    m = torchvision.models.resnet18().eval()
    path = model_dir / "resnet18.pt"
    torch.jit.trace(m, torch.randn(1, 3, 64, 64)).save(str(path))
    return path, m
