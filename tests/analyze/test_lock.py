"""affectlab.analyze.lock: one analyze run at a time per output folder."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from affectlab.analyze.lock import LOCK_NAME, OutputLock
from affectlab.errors import AffectlabError

SRC = Path(__file__).resolve().parents[2] / "src"
HOLD = "from affectlab.analyze.lock import OutputLock; import sys; l = OutputLock(sys.argv[1]); l.acquire(); " \
       "print('held', flush=True); sys.stdin.read()"


def holder(folder: Path) -> subprocess.Popen:
    """Another process holding ``folder``'s lock until its stdin closes."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=env)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_until_the_first_ends(tmp_path):
    proc = holder(tmp_path)
    with pytest.raises(AffectlabError, match=rf"another affectlab analyze \(process {proc.pid}\) is writing"):
        OutputLock(tmp_path).acquire()
    proc.stdin.close()
    proc.wait(timeout=30)
    with OutputLock(tmp_path):
        assert (tmp_path / LOCK_NAME).read_text().strip() == str(os.getpid())
    assert not (tmp_path / LOCK_NAME).exists()  # a finished run leaves no file behind


def test_a_killed_writer_does_not_block(tmp_path):
    """The kernel drops a killed process's lock; its stale file does not stop the next run."""
    proc = holder(tmp_path)
    proc.kill()
    proc.wait(timeout=30)
    assert (tmp_path / LOCK_NAME).exists()
    OutputLock(tmp_path).check_free()
