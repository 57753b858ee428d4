"""Shared fixtures. Tests that need the real datasets in ../shared/data skip, with a reason, where it is absent."""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("AFFECTLAB_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(autouse=True, scope="module")
def one_cpu_thread():
    """Test inputs are small and gain little from threads, while on a busy 2-core machine
    torch's spinning worker threads slow them down tenfold. Restored after each module."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def imagenet_cache(tmp_path_factory) -> Path:
    """A torch hub cache (TORCH_HOME) holding torchvision's MobileNetV2 ImageNet file name with weights
    made here (a fresh initialisation): ``backbone_weights: imagenet`` resolves to it, offline."""
    from affectlab.models.backbones import Backbone

    home = tmp_path_factory.mktemp("torch_home")
    file = home / "hub" / "checkpoints" / "mobilenet_v2-b0353104.pth"
    file.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(Backbone("mobilenet_v2").body.state_dict(), file)
    previous = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(home)
    yield file
    if previous is None:
        del os.environ["TORCH_HOME"]
    else:
        os.environ["TORCH_HOME"] = previous


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real labelled faces beside the checkout (FER+, AffectNet, CK+, sample media)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set AFFECTLAB_SHARED_DATA to run these tests)")
    return SHARED_DATA


# --- builders for small sources in the exact on-disk formats the readers accept ---------------

AU_HEADER = "AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26"
EXPR_HEADER = "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"
VA_HEADER = "valence,arousal"
MTL_HEADER = "image,valence,arousal,expression,aus"


def write_image(path: Path) -> Path:
    """A tiny real image (JPEG or PNG by suffix), so readers see a file that opens."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (120, 80, 40)).save(path)
    return path


def write_lines(path: Path, lines: Iterable[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


class AbawTree:
    """An Aff-Wild2 layout under ``root``: ``annotations/<task>/<split>/<video>.txt`` and ``cropped_aligned``."""

    def __init__(self, root: Path):
        self.annotations = root / "annotations"
        self.images = root / "cropped_aligned"
        self.images.mkdir(parents=True)

    def annotate(self, task_folder: str, video: str, rows: Sequence[str], *, split: str = "Train_Set",
                 header: str | None = None) -> Path:
        """One annotation file; the header defaults to the task's (by folder name prefix)."""
        default = {"AU": AU_HEADER, "EXPR": EXPR_HEADER, "VA": VA_HEADER}[task_folder.split("_")[0]]
        return write_lines(self.annotations / task_folder / split / f"{video}.txt",
                           [default if header is None else header, *rows])

    def frames(self, video: str, numbers: Iterable[int]) -> None:
        for n in numbers:
            write_image(self.images / video / f"{n:05d}.jpg")


@pytest.fixture
def abaw(tmp_path: Path) -> AbawTree:
    return AbawTree(tmp_path)


@pytest.fixture
def image():
    """``image(path)`` writes a tiny image file and returns its path."""
    return write_image


@pytest.fixture
def lines():
    """``lines(path, rows)`` writes a text file, one row a line."""
    return write_lines

