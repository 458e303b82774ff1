"""The binding of an `each` optional (`-D pool=each`): one on/off choice per occurrence."""
from __future__ import annotations


class PerUse:
    """The binding of an `each` optional: one on/off choice per occurrence, in expansion order."""
    __slots__ = ("bits", "used")

    def __init__(self, bits):
        self.bits, self.used = tuple(bits), 0

    def next(self) -> bool:
        i = self.used
        self.used += 1
        return self.bits[i] if i < len(self.bits) else True
