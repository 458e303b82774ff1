"""Quantities as people write them: counts (`2.5M`, `1e6`, `500k`) and sizes in bytes (`24GiB`,
`16GB`, `80e9`). One parser reads both: a finite number, then a unit from a table (any case),
giving a whole number from 0 to 10**18; anything else is a usage error.

    >>> parse_count("2.5M"), parse_bytes("24GiB"), parse_bytes("16 GB"), parse_bytes("80e9")
    (2500000, 25769803776, 16000000000, 80000000000)
    >>> parse_bytes("24 parsecs")
    Traceback (most recent call last):
    ...
    cnndsl.errors.CnnError: cnndsl: error: --memory '24 parsecs' is not a size
      hint: write e.g. 24GiB, 16GB or 512MiB

The command line's options (cnndsl/options.py) are these parsers under argparse.
"""
from __future__ import annotations

import math
import re

from ..errors import CnnError

COUNT_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
BYTE_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9, "t": 10**12,
              "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
MAX_QUANTITY = 10**18   # a budget past an exabyte, or 10**18 parameters, is a typo
MAX_MEMORY = MAX_QUANTITY
_NUMBER = re.compile(r"\s*([0-9]*\.?[0-9]+(?:e\+?[0-9]+)?)\s*([a-z]*)\s*")


def quantity(text, units: dict) -> float | None:
    """The number `text` writes with one of `units` ({lower-case suffix: factor}), as a float (inf
    past the floats: 1e400), or None when it is not such a number."""
    m = _NUMBER.fullmatch(str(text).lower()[:100])
    if not m or m.group(2) not in units:
        return None
    return float(m.group(1)) * units[m.group(2)]


def parse_count(text, hi: int = MAX_QUANTITY, what: str = "count") -> int:
    """`1e6`, `500k`, `2.5M`, `1G` -> a whole count from 0 to hi; a usage error otherwise."""
    v = quantity(text, COUNT_UNITS)
    if v is None or not (math.isfinite(v) and 0 <= v <= hi):
        raise CnnError(f"{what} {str(text)[:40]!r} is not a count from 0 to {hi:.0e}", usage=True,
                       hint="write e.g. 1e6, 500k or 2.5M")
    return int(v)


def parse_bytes(text, what: str = "--memory") -> int:
    """`24GiB`, `16GB`, `512MiB`, `80e9` -> bytes (up to 10**18); a usage error otherwise."""
    v = quantity(text, BYTE_UNITS)
    if v is None:
        raise CnnError(f"{what} {str(text)[:40]!r} is not a size", usage=True, hint="write e.g. 24GiB, 16GB or 512MiB")
    if not v <= MAX_MEMORY:  # 1e400 is inf
        raise CnnError(f"{what} {str(text)[:40]!r} is out of range: at most {MAX_MEMORY:.0e} bytes", usage=True,
                       hint="write e.g. 24GiB, 16GB or 512MiB")
    return int(v)
