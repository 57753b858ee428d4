"""affectlab.devices: --device values, checked with one-line errors."""
import pytest
import torch

from affectlab.devices import resolve_device
from affectlab.errors import AffectlabError


def test_auto_and_cpu():
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"


@pytest.mark.parametrize("value, message", [("gpu", "not a device name"), ("mps", "runs on cpu or cuda")])
def test_bad_names(value, message):
    with pytest.raises(AffectlabError, match=message):
        resolve_device(value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message where there is no GPU")
def test_cuda_without_a_gpu():
    with pytest.raises(AffectlabError, match="CUDA is not available"):
        resolve_device("cuda:1")
