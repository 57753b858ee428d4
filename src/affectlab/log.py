"""One logger for affectlab's messages, ``logging.getLogger("affectlab")``.

Library code logs and leaves the showing to the application. The CLI shows them as one
``affectlab: <message>`` line each on stderr, written past any progress bar so the bar stays whole.
"""
from __future__ import annotations

import logging
import sys

from tqdm import tqdm

logger = logging.getLogger("affectlab")


class _PastProgressBars(logging.Handler):
    """Writes each message as a line above tqdm's bars (to the stderr of the moment: tests capture it)."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(self.format(record), file=sys.stderr)


def show_messages() -> None:
    """The CLI's way of showing messages (info and above); installing it twice changes nothing."""
    if not any(isinstance(h, _PastProgressBars) for h in logger.handlers):
        handler = _PastProgressBars()
        handler.setFormatter(logging.Formatter("affectlab: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
