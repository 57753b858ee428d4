"""The pip peer ``fer`` on a video, as its README analyses one: every frame, results to a CSV, nothing drawn.

Run in fer's own environment (it needs TensorFlow; not a dependency of affectlab), as bench/analyze.py's peer:

    python3 -m venv /tmp/fervenv && /tmp/fervenv/bin/pip install fer torch==2.13.0
    python bench/analyze.py --peer-command "/tmp/fervenv/bin/python bench/peer_fer.py {input}"
"""
import sys
import tempfile

from fer.classes import Video
from fer.fer import FER

with tempfile.TemporaryDirectory() as out:
    Video(sys.argv[1], outdir=out).analyze(FER(), output="csv", save_frames=False, save_video=False,
                                           annotate_frames=False, zip_images=False)
