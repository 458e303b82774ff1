"""Atomic writes: an output or checkpoint is either the old file or the complete new one, never half."""
from __future__ import annotations

import os
import tempfile

from .errors import CnnError


def read_bytes(path) -> bytes:
    """A file's bytes, or a usage error that names it."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise CnnError(f"cannot read {path}: {e.strerror}", usage=True) from None


def atomic_write(path: str, data: bytes) -> None:
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    except OSError as e:
        raise CnnError(f"cannot write {path}: {e.strerror}", usage=True) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are meant to be shared
        os.replace(tmp, path)
    except OSError as e:
        _discard(tmp)
        raise CnnError(f"cannot write {path}: {e.strerror}", usage=True) from None
    except BaseException:
        _discard(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _discard(tmp):
    try:
        os.unlink(tmp)
    except OSError:
        pass
