"""Errors a user can cause. The CLI prints them as one line, never as a traceback."""
from __future__ import annotations

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
