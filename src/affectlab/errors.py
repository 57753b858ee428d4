"""Errors a user can cause. The CLI prints them as one line, never as a traceback."""
from __future__ import annotations

import os
import stat
from os import PathLike


class AffectlabError(Exception):
    """A problem with the user's input or request, reported as one clear line."""


class DataError(AffectlabError):
    """Bad input data: names the file (and line, where there is one) and what is wrong."""

    def __init__(self, path: str | PathLike[str], message: str, line: int | None = None):
        self.path = str(path)
        self.line = line
        self.message = message
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {message}")

    def __reduce__(self):
        """Pickled by its parts (an Exception pickles its message alone): a Ray worker's error arrives whole."""
        return type(self), (self.path, self.message, self.line)

def first_line(error: BaseException, last: bool = False) -> str:
    """One line of an exception's message for a one-line error (the first, or with ``last`` the last
    non-blank one); the exception's type name where the message is empty, as some libraries leave it."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return (lines[-1] if last else lines[0]) if lines else type(error).__name__


def not_there(path: str | PathLike[str], expected: str = "file or folder") -> str:
    """Why ``path``, not a regular file or folder, cannot be read: it does not exist, or it is a named
    pipe, a device or a socket (which reading would wait on, or could not seek in)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return f"no such {expected}"
    kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a character device" if stat.S_ISCHR(mode)
            else "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "a special file")
    return f"is {kind}, not a regular {expected}; save what it streams to a file and give that"
