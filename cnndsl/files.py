"""Reading specs with a bound, and atomic writes: an output or checkpoint is either the old file or
the complete new one, never half."""
from __future__ import annotations

import os
import stat
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


def read_spec(path, limit: int, span=None, what: str | None = None) -> bytes:
    """At most `limit` bytes of a regular file (a spec, an include), or a CnnError that names it:
    a device (`/dev/zero`), a FIFO or a folder is refused before anything is read, and a file
    larger than `limit` after reading `limit + 1` bytes of it. `span`: where it was asked for
    (an include statement); without one the error is a usage error (a file on the command line)."""
    path = os.fspath(path)
    shown = what or path
    usage = span is None
    try:
        # O_NONBLOCK: opening a FIFO for reading must not wait for a writer
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as e:
        raise CnnError(f"cannot read {shown}: {e.strerror}", span, usage=usage, code="E501" if usage else "E208") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                    else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
                    else "not a regular file")
            raise CnnError(f"cannot read {shown}: it is {kind}, not a regular file", span, usage=usage,
                           code="E501" if usage else "E208", hint="a spec is a plain .net text file")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise CnnError(f"cannot read {shown}: {e.strerror}", span, usage=usage, code="E501" if usage else "E208") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise CnnError(f"{shown}: the file is over {limit:,} bytes; the limit is {limit:,}", span, code="E103",
                       hint="a spec that long is generated: generate repeats (`*N`) instead")
    return data


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
