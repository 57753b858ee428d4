"""The affectlab package itself: what `import affectlab` gives."""


def test_top_level_entry_points_are_lazy():
    """`import affectlab` stays light; affectlab.load_model and affectlab.Analyzer arrive on first use."""
    import subprocess
    import sys

    code = ("import sys, affectlab; assert 'torch' not in sys.modules; "
            "from affectlab import load_model, Analyzer; assert callable(load_model) and callable(Analyzer)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_analyzing_an_image_on_the_cpu_imports_neither_torch_nor_torchvision(tmp_path):
    """The start-up path of `affectlab analyze photo.jpg`: the bundled model and MTCNN run on onnxruntime,
    so the process never pays torch's import (its timing is in BENCHMARKS.md, not here)."""
    import subprocess
    import sys
    from pathlib import Path

    photo = Path(__file__).resolve().parents[1] / "examples" / "media" / "single_face.jpg"
    code = ("import sys; from affectlab.cli import main; "
            f"assert main(['analyze', {str(photo)!r}, '--out', {str(tmp_path)!r}, '--quiet']) == 0; "
            "heavy = [m for m in ('torch', 'torchvision', 'scipy') if m in sys.modules]; assert not heavy, heavy")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    assert (tmp_path / "images.csv").read_text().count("\n") == 2  # the header and the one face


def test_checkpoint_metadata_reads_without_torch():
    import subprocess
    import sys

    code = ("import sys; from affectlab.models.meta import read_checkpoint_meta; "
            "from affectlab.inference.backends import DEFAULT_MODEL; "
            "assert read_checkpoint_meta(DEFAULT_MODEL).input_size == 112; assert 'torch' not in sys.modules")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_face_framing_and_the_input_spec_import_without_torch():
    """Framing and normalising faces is numpy and OpenCV, shared by training and torch-free analysis."""
    import subprocess
    import sys

    code = ("import sys; from affectlab.data.transforms import frame_face, normalise; "
            "from affectlab.models.meta import InputSpec; assert 'torch' not in sys.modules")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
