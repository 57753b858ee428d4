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


def test_auto_without_an_nvidia_driver_is_cpu_without_importing_torch(tmp_path):
    import subprocess
    import sys

    code = ("import sys; from pathlib import Path; import affectlab.devices as d; "
            f"d.NVIDIA_DRIVER = Path({str(tmp_path / 'absent')!r}); "
            "assert d.resolve_device('auto') == 'cpu' and 'torch' not in sys.modules")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_every_command_defaults_to_one_device():
    import argparse

    from affectlab.cli import build_parser
    from affectlab.devices import DEFAULT_DEVICE
    from affectlab.train.config import Train

    defaults = {}

    def collect(parser: argparse.ArgumentParser, prefix: str = "") -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, command in action.choices.items():
                    collect(command, f"{prefix}{name} ")
            elif "--device" in action.option_strings:
                defaults[prefix.strip()] = action.default

    collect(build_parser())
    assert len(defaults) >= 5
    # train's None defers to the recipe's train.device, whose default is the same
    assert {d for n, d in defaults.items() if n != "train"} == {DEFAULT_DEVICE} and defaults["train"] is None
    assert Train().device == DEFAULT_DEVICE
