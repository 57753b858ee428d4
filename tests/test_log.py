"""affectlab.log: library messages go to logging until the application shows them, one line each."""
from __future__ import annotations

import logging
import sys

import pytest
from tqdm import tqdm

from affectlab.log import _PastProgressBars, logger, show_messages


@pytest.fixture
def fresh_logger():
    """The affectlab logger as a library leaves it (no handler, propagating), restored afterwards."""
    saved = (list(logger.handlers), logger.propagate, logger.level)
    logger.handlers.clear()
    logger.propagate = True
    logger.setLevel(logging.NOTSET)
    yield logger
    logger.handlers[:] = saved[0]
    logger.propagate = saved[1]
    logger.setLevel(saved[2])


def test_library_messages_reach_the_applications_logging(fresh_logger, caplog, capsys):
    with caplog.at_level(logging.INFO, logger="affectlab"):
        logger.warning("skipping unreadable image a.jpg: truncated")
        logger.debug("not at this level")
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("affectlab", "WARNING", "skipping unreadable image a.jpg: truncated")]
    assert capsys.readouterr().err == ""  # a library shows nothing itself


def test_show_messages_writes_one_line_each_past_a_progress_bar(fresh_logger, caplog, capsys):
    show_messages()
    show_messages()  # installing twice changes nothing
    assert sum(isinstance(h, _PastProgressBars) for h in logger.handlers) == 1 and not logger.propagate
    with tqdm(total=3, file=sys.stderr, ascii=True) as bar:
        bar.update(1)
        logger.info("run directory: runs/x")
        logger.debug("not shown")
        bar.update(1)
    err = capsys.readouterr().err
    assert "affectlab: run directory: runs/x\n" in err and "not shown" not in err
    assert not caplog.records  # shown by the CLI's handler, no longer passed on to the root logger
