"""The ``affectlab`` command line: a module per command group, each subcommand a thin shell over a
library function. User mistakes (AffectlabError, unreadable files) end in one line on stderr and exit
status 2 (1 where other inputs of the same call were still done), checked before any model loads
where they can be. Options several commands share are declared once, in :mod:`affectlab.cli.options`."""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from affectlab import __version__
from affectlab.cli import analyze, calibrate, data, evaluate, interpret, train
from affectlab.cli.options import error
from affectlab.errors import AffectlabError
from affectlab import interrupt
from affectlab.log import show_messages

DESCRIPTION = ("Facial action units, expressions and valence/arousal from faces: analyse images and videos, "
               "train the papers' models on partially labelled data, evaluate, score and compare them.")

#: The command groups, in the order ``affectlab --help`` lists them.
GROUPS = (data, evaluate, analyze, interpret, train, calibrate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="affectlab", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"affectlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.add_commands(sub)
    return parser


def _os_reason(error: OSError) -> str:
    """What the system said, and for a file in the way of a folder to create, what that means."""
    if isinstance(error, FileExistsError):
        return "a file is where a folder is needed"
    return error.strerror or str(error)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line as a namespace. Recipe overrides (KEY=VALUE of ``train`` and ``calibrate flip``)
    may also follow the options (``train RECIPE --out DIR key=value``), where plain argparse leaves them
    over: they are taken in order."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    show_messages()
    interrupt.terminate_as_interrupt()  # a scheduler's SIGTERM stops a run as Ctrl-C does, keeping its work
    handler: Callable[[argparse.Namespace], int] = args.func
    try:
        return handler(args)
    except AffectlabError as e:
        error(str(e))
    except OSError as e:
        error(f"{e.filename or ''}: {_os_reason(e)}")
    except KeyboardInterrupt:
        print("affectlab: interrupted" + (" (SIGTERM)" if interrupt.exit_status() == 143 else ""), file=sys.stderr)
        return interrupt.exit_status()
    return 2
