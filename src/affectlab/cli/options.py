"""Options several commands share, each declared once, and the small helpers behind them.

Every ``add_*`` adds one option with one help text; a command that takes it calls the function."""
from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Sequence

from affectlab.devices import DEFAULT_DEVICE
from affectlab.labels import AU_SETS, LabelSchema, schema


def whole(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``minimum`` (``--stride``, ``--batch-size``, ...), refused
    before any work starts."""
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
        if number < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {number}")
        return number
    return parse


def schema_arg(value: str) -> LabelSchema:
    """``--aus abaw`` (or teacher-student, bp4d) or an explicit list ``AU1,AU2,AU12``."""
    try:
        return schema(value) if value in AU_SETS else schema(tuple(a for a in value.split(",") if a.strip()))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_aus(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--aus", type=schema_arg, default=schema("abaw"), metavar="SET",
                        help=f"AU set: {', '.join(AU_SETS)} or a list like AU1,AU2,AU12 (default: abaw)")


def add_source(parser: argparse.ArgumentParser) -> None:
    """--images and --split of a labelled source (ABAW frame roots, a set's splits)."""
    parser.add_argument("--images", help="cropped_aligned root for the ABAW layouts (frames without an image "
                                         "are skipped)")
    parser.add_argument("--split", help="read one split only (ABAW: train or validation; FER+: train or valid)")



def add_data(parser: argparse.ArgumentParser, what: str, *, required: bool = True, nargs: str | None = None) -> None:
    """--data SOURCE (with --images and --split): the labelled data a command runs a model on."""
    parser.add_argument("--data", required=required, nargs=nargs, metavar="SOURCE", help=what)
    add_source(parser)


def add_checkpoint(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="CKPT", help="checkpoint (.safetensors)")



def add_folds(parser: argparse.ArgumentParser, over: str, default: int = 3) -> None:
    """--folds K of a command that cross-validates what it chooses."""
    parser.add_argument("--folds", type=whole(2), default=default, help=f"cross-validation folds {over} (default {default})")

def add_stored(parser: argparse.ArgumentParser, what: str, report: str) -> None:
    """--write / --output CKPT / --json FILE of a command that stores what it finds in the checkpoint."""
    parser.add_argument("--write", action="store_true", help=f"store {what} in the checkpoint itself")
    parser.add_argument("--output", metavar="CKPT", help=f"store the model with {what} here instead")
    add_json(parser, report)

def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=DEFAULT_DEVICE, help="cpu, cuda, cuda:1, ... (default: auto)")


def add_batch_size(parser: argparse.ArgumentParser, default: int) -> None:
    parser.add_argument("--batch-size", type=whole(1), default=default,
                        help=f"faces per model call (default: {default})")


def add_loading(parser: argparse.ArgumentParser, batch_size: int = 128) -> None:
    """--batch-size, --workers and --device of a command that runs a model over a labelled table."""
    add_batch_size(parser, batch_size)
    parser.add_argument("--workers", type=whole(0), default=2, help="data loader processes (default: 2)")
    add_device(parser)


def add_thresholds(parser: argparse.ArgumentParser, use: str = "") -> None:
    parser.add_argument("--thresholds", metavar="FILE",
                        help=f'JSON per-AU thresholds {{"AU1": 0.4, ...}}{use} (default 0.5)')


def add_json(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--json", metavar="FILE", help=f"also write {what} as JSON")


def add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def device(value: str) -> str:
    """The device a command runs on (``auto`` resolved)."""
    from affectlab.devices import resolve_device

    return resolve_device(value)


def labelled(path: str, images: str | None, split: str | None, aus: LabelSchema, check_images: bool = True) -> Any:
    """A labelled source as a sample table (affectlab.data.read_labelled)."""
    from affectlab.data import read_labelled

    return read_labelled(path, images=images, split=split, schema=aus, check_images=check_images)


def labelled_data(paths: Sequence[str], images: str | None, split: str | None, aus: LabelSchema) -> Any:
    """The rows of one or more sources, stacked into one sample table (a DataFrame)."""
    from affectlab.data import concat_tables

    return concat_tables([labelled(p, images, split, aus) for p in paths], aus).samples


def thresholds(path: str | None, aus: LabelSchema) -> Any:
    """``--thresholds FILE`` as per-AU values of ``aus``, or None (0.5)."""
    if not path:
        return None
    from affectlab.scoring import load_thresholds

    return load_thresholds(path, aus)


def error(line: str) -> None:
    """The one line a user's mistake ends in."""
    print(f"affectlab: error: {line}", file=sys.stderr)


def warn(line: str) -> None:
    print(f"affectlab: warning: {line}", file=sys.stderr)


def note(line: str) -> None:
    print(f"affectlab: note: {line}", file=sys.stderr)


def plural(n: int, word: str) -> str:
    """``1 file``, ``3 files``."""
    return f"{n} {word}{'' if n == 1 else 's'}"
