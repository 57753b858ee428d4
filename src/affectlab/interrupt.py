"""SIGTERM, as job schedulers, ``timeout`` and ``kill`` send it, is handled as Ctrl-C is.

Without a handler SIGTERM ends the process on the spot: no message, a training step's state unsaved,
DataLoader workers left running. With :func:`terminate_as_interrupt` it raises :class:`Terminated`, a
KeyboardInterrupt, so every path that keeps work on Ctrl-C (analyze's rows, train's state, the loaders'
workers shut down as their iterators go) keeps it on SIGTERM too. :data:`received` remembers which
signal stopped the run, for the closing line and the exit status (130 for SIGINT, 143 for SIGTERM).
"""
from __future__ import annotations

import signal
import threading


class Terminated(KeyboardInterrupt):
    """The process was sent SIGTERM."""


#: The last SIGINT or SIGTERM the process was sent (handlers that defer the interrupt note it here too).
received: int | None = None


def note(signum: int) -> None:
    global received
    received = signum


def _terminate(signum: int, frame: object) -> None:
    note(signum)
    raise Terminated


def terminate_as_interrupt() -> None:
    """From now on SIGTERM raises Terminated in the main thread (signal handlers can only be set there)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)


def exit_status() -> int:
    """The shell's status for a run stopped by the signal received: 128 + its number."""
    return 128 + (received or signal.SIGINT)
