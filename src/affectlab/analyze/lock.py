"""One ``analyze`` run at a time per output folder.

Two runs writing the same tables at once would overwrite and rename each other's ``.partial`` files, and
rows would be lost. A run holds an advisory lock (``flock``) on ``OUT/.affectlab-analyze.lock`` while it
writes; a second run into the same folder is refused in one line before its model loads. The kernel
drops the lock when its process ends, however it ends (even SIGKILL), so a stale file never blocks.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from affectlab.errors import AffectlabError

LOCK_NAME = ".affectlab-analyze.lock"


class OutputLock:
    """``with OutputLock(out):`` holds the folder's lock, or raises AffectlabError naming the run that has it."""

    def __init__(self, out: str | os.PathLike[str]):
        self.path = Path(out) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip()
                os.close(fd)
                raise AffectlabError(self.busy(holder)) from None
            try:  # the holder before us may have removed the file between our open and our lock: lock the new one
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def busy(self, holder: str) -> str:
        who = f" (process {holder})" if holder.isdigit() else ""
        return (f"{self.path.parent}: another affectlab analyze{who} is writing to this output folder; "
                "wait for it to finish (then --skip-existing adds what it did not do) or give another --out")

    def check_free(self) -> None:
        """Raise as :meth:`acquire` would, without keeping the lock (the check before the model loads)."""
        self.acquire()
        self.release()

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still holding it, so no one locks a file about to vanish
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "OutputLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
