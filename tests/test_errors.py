"""affectlab.errors: the one line of an error."""
from __future__ import annotations

from affectlab.errors import first_line


def test_first_line_of_a_message():
    error = ValueError("  \nthe reason\nthe details\n")
    assert first_line(error) == "the reason" and first_line(error, last=True) == "the details"


def test_an_empty_message_gives_the_exception_type():
    assert first_line(RuntimeError()) == first_line(RuntimeError(" \n "), last=True) == "RuntimeError"
