"""bench/gpu.sh's dry run: every GPU check once on the CPU at toy sizes, so a GPU session measures instead
of debugging the script."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_gpu_script_dry_run_writes_every_section(tmp_path):
    pytest.importorskip("ray", reason="its last check runs --engine ray (the optional extra affectlab[ray])")
    report = tmp_path / "gpu_report.md"
    done = subprocess.run(["bash", str(REPO / "bench" / "gpu.sh"), "--dry-run", str(report)], capture_output=True,
                          text=True, timeout=480, env=dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS="1"))
    assert done.returncode == 0, done.stderr[-2000:]
    text = report.read_text()
    for section in ("## analyze, one process, warm", "## Training step under bf16 autocast, each paper model",
                    "## DistributedDataParallel", "## --engine ray"):
        assert section in text
    from affectlab.models.registry import list_models

    assert all(f"| {name} | 80 |" in text for name in list_models())
    assert "| fp32 |" in text and "| bf16 |" in text and "torchrun, 1 process, gloo" in text
