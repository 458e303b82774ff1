"""Reading specs with a bound, and atomic writes: an output or checkpoint is either the old file or
the complete new one, never half."""
from __future__ import annotations

import contextlib
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
    with atomic_files(path) as (f,):
        f.write(data)


@contextlib.contextmanager
def atomic_files(*paths):
    """Open files for writing `paths` all or nothing: each is a temporary file beside its target;
    when the block ends they are fsynced and renamed over their targets in the order given (an
    ONNX model's weights file before the model that names it), and when it raises they are removed
    and the targets keep their old contents. Yields the open binary files, in `paths`' order."""
    paths = [os.fspath(p) for p in paths]
    temps, files = [], []
    try:
        try:
            for path in paths:
                folder = os.path.dirname(os.path.abspath(path))
                os.makedirs(folder, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
                temps.append(tmp)
                files.append(os.fdopen(fd, "wb"))
        except OSError as e:
            raise CnnError(f"cannot write {paths[len(files)]}: {e.strerror}", usage=True) from None
        yield tuple(files)
        path = paths[0]
        try:
            for path, f, tmp in zip(paths, files, temps):
                f.flush()
                os.fsync(f.fileno())
                f.close()
                os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are meant to be shared
            while temps:
                path = paths[len(paths) - len(temps)]
                os.replace(temps[0], path)
                del temps[0]
        except OSError as e:
            raise CnnError(f"cannot write {path}: {e.strerror}", usage=True) from None
    except OSError as e:  # from the block's writes: a full disk, a lost mount
        raise CnnError(f"cannot write {' and '.join(paths)}: {e.strerror}", usage=True) from None
    finally:
        for f in files:
            f.close()
        for tmp in temps:  # those not renamed: all of them when the block raised
            _discard(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _discard(tmp):
    try:
        os.unlink(tmp)
    except OSError:
        pass
