"""The command line's numbers, checked in one place: argparse `type=` functions.

Each gives the value or raises argparse.ArgumentTypeError, which argparse turns into a usage
error (exit 2) that names the option: `cnndsl search: error: argument --top: must be a whole
number from 0 to 1,000,000, not '-1'`. Nothing is clamped or rounded in silence: a number is
finite (no inf, nan, 1e400), whole where a count is meant, and inside its range. Counts and sizes
(`2.5M`, `24GiB`) are read by the library's one quantity parser, cnndsl.analysis.quantity.

    >>> whole(0, 10)("3"), amount()("2.5M"), real(0, 1, hi_open=True)("0.5")
    (3, 2500000, 0.5)
    >>> whole(1, 10)("1e400")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be a whole number from 1 to 10, not '1e400'
"""
from __future__ import annotations

import argparse
import math
import re

from .train.options import MAX_SEED  # the training options' bound, defined there once (torch-free)

MAX_BATCH = 2**31 - 1   # a batch or a count past these is a typo, never a value to overflow on
MAX_REPEAT = 1_000_000
MAX_AMOUNT = 10**18     # --max-params, --max-macs: as a spec's numbers
MAX_WORKERS = 1024


def _shown(text) -> str:
    return repr(str(text)[:40])


def _range(lo, hi) -> str:
    return f"from {lo:,} to {hi:,}" if hi is not None else f"of at least {lo:,}"


def whole(lo: int, hi: int | None = None):
    """A whole number in [lo, hi] (hi None: no upper end), written as digits: `3`, `+3`, `-1`."""
    def parse(text):
        t = str(text).strip()
        n = int(t) if re.fullmatch(r"[+-]?[0-9]{1,20}", t) else None
        if n is None or n < lo or (hi is not None and n > hi):
            raise argparse.ArgumentTypeError(f"must be a whole number {_range(lo, hi)}, not {_shown(text)}")
        return n
    return parse


def real(lo: float, hi: float | None = None, lo_open=False, hi_open=False):
    """A finite number in the interval from lo to hi (open at an end when asked)."""
    def parse(text):
        try:
            v = float(str(text).strip())
        except ValueError:
            v = math.nan
        ok = math.isfinite(v) and (v > lo if lo_open else v >= lo) and (
            hi is None or (v < hi if hi_open else v <= hi))
        if not ok:
            bounds = ("(" if lo_open else "[") + f"{lo:g}, " + ("inf)" if hi is None else f"{hi:g}" + (")" if hi_open else "]"))
            raise argparse.ArgumentTypeError(f"must be a finite number in {bounds}, not {_shown(text)}")
        return v
    return parse


def amount(hi: int = MAX_AMOUNT):
    """A count such as parameters or MACs: `1e6`, `500k`, `2.5M`, `1G` (whole, 0 to hi)."""
    def parse(text):
        from .analysis.quantity import parse_count
        from .errors import CnnError
        try:
            return parse_count(text, hi)
        except CnnError:
            raise argparse.ArgumentTypeError(f"must be a count from 0 to {hi:.0e} such as 1e6, 500k or 2.5M, "
                                             f"not {_shown(text)}") from None
    return parse


def size_in_bytes(text):
    """A memory size: `24GiB`, `16GB`, `512MiB`, `80e9` (up to 10**18 bytes)."""
    from .analysis.quantity import parse_bytes
    from .errors import CnnError
    try:
        return parse_bytes(text)
    except CnnError as e:
        raise argparse.ArgumentTypeError(e.message.split(" ", 1)[1] + f" ({e.hint})") from None


def whole_or(word: str, lo: int, hi: int):
    """`word` itself, or a whole number in [lo, hi] (export's `--batch dynamic`)."""
    number = whole(lo, hi)

    def parse(text):
        if str(text).strip() == word:
            return word
        try:
            return number(text)
        except argparse.ArgumentTypeError as e:
            raise argparse.ArgumentTypeError(f"{e} (or {word!r})") from None
    return parse


batch = whole(1, MAX_BATCH)
seed = whole(0, MAX_SEED)
workers = whole(0, MAX_WORKERS)
fraction = real(0, 1, hi_open=True)  # a share such as --val or --label-smoothing: [0, 1)
