"""Reading what the user names (regular files only, with a bound), and atomic writes: an output or
checkpoint is either the old file or the complete new one, never half."""
from __future__ import annotations

import contextlib
import os
import stat
import tempfile

from .errors import CnnError


# ---- reading: every path a user gives ---------------------------------------------------------------
# A path from the command line or the API (a spec, an include, --weights, --init, a --resume checkpoint,
# --data FILE.npz and a data folder's images, run's model and --input, --weights-map) is opened here and
# nowhere else (tests/test_hostile_files.py holds the list of the other `open` calls, each of a file of
# the package or the kernel): a FIFO, a device (`/dev/zero`), a socket or a folder is refused before a
# byte is read, and what is read is bounded by its kind (a spec: MAX_TEXT; a JSON map: MAX_JSON; a
# checkpoint or an array: its declared size, checked against memory by cnndsl.memory).
MAX_JSON = 16 * 2**20  # a --weights-map: a few hundred module names


def _kind(mode) -> str | None:
    """What a non-regular file is, in words; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return ("a folder" if stat.S_ISDIR(mode) else "a FIFO (a named pipe)" if stat.S_ISFIFO(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "not a regular file")


def _open_regular(path, shown, span=None, usage=True, code="E501", hint=None) -> int:
    """A read-only descriptor of the regular file `path`, or a CnnError naming `shown`. O_NONBLOCK: opening
    a FIFO must not wait for a writer (and on a regular file the flag changes nothing); the type is read
    with fstat from the descriptor itself, so the file checked is the file read."""
    fd = None
    try:  # stat first: a socket cannot be opened at all (ENXIO), and should be named as one
        kind = _kind(os.stat(path).st_mode)
        if kind is None:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
            kind = _kind(os.fstat(fd).st_mode)  # the file opened, should it have been replaced meanwhile
    except OSError as e:
        if fd is not None:
            os.close(fd)
        raise CnnError(f"cannot read {shown}: {e.strerror}", span, usage=usage, code=code) from None
    if kind is not None:
        if fd is not None:
            os.close(fd)
        raise CnnError(f"cannot read {shown}: it is {kind}, not a regular file", span, usage=usage, code=code,
                       hint=hint or ("give the path of a file in it" if kind == "a folder" else
                                     "give the path of a file: cnndsl reads files, never pipes or devices, "
                                     "so that a read always ends"))
    return fd


@contextlib.contextmanager
def user_file(path, what: str, hint=None):
    """A regular file the user named, open for reading in binary (refused as _open_regular says);
    `what` names it in errors: the option that gave it (`--weights`), or its role (`checkpoint`)."""
    path = os.fspath(path)
    with os.fdopen(_open_regular(path, f"{what} {path}", hint=hint), "rb") as f:
        f.raw.name = path  # not the descriptor's number: libraries read `name` (onnx, for the format)
        yield f


def size_of(f) -> int:
    return os.fstat(f.fileno()).st_size


def descriptor_path(f, path) -> str:
    """A name of the very file `f` has open, for a library that takes only names (safetensors): the
    descriptor's entry in /proc/self/fd where there is one (the file checked is the file it reads),
    else `path`."""
    alias = f"/proc/self/fd/{f.fileno()}"
    return alias if os.path.exists(alias) else os.fspath(path)


def read_user_bytes(path, what: str, limit: int, hint=None) -> bytes:
    """At most `limit` bytes of a regular file the user named, or a CnnError: over `limit` (known from
    its size before reading, and by reading at most `limit + 1` bytes, should it grow meanwhile)."""
    path = os.fspath(path)
    with user_file(path, what, hint) as f:
        size = size_of(f)
        data = f.read(limit + 1) if size <= limit else b""
    if size > limit or len(data) > limit:
        from .memory import size_text
        raise CnnError(f"{what} {path}: the file is {size_text(max(size, len(data)))}; the limit is "
                       f"{size_text(limit)}", usage=True, hint=hint)
    return data


def read_bytes(path, what: str = "file", limit: int = MAX_JSON) -> bytes:
    """A small file's bytes (read_user_bytes), or a usage error that names it."""
    return read_user_bytes(path, what, limit)


BIG_IMAGE = 64 * 2**20  # an image decoding to more than this is checked against memory first


@contextlib.contextmanager
def user_image(path, what: str, channels: int):
    """A Pillow image of a regular file the user named, with its header read and nothing decoded yet
    (`img.size`, `img.mode`); refused when its header declares more pixels than Pillow's decompression-bomb
    limit (Image.MAX_IMAGE_PIXELS: 89,478,485), or than memory holds decoded and as `channels` float32s."""
    import re
    import warnings
    from PIL import Image, UnidentifiedImageError
    path = os.fspath(path)
    with user_file(path, what) as f:
        try:
            with warnings.catch_warnings():  # Pillow warns from 1x its limit and raises from 2x: both refuse
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(f)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            found = re.search(r"\((\d+) pixels\)", str(e))
            declared = f"{int(found.group(1)):,} pixels" if found else "more pixels than that"
            raise CnnError(f"{what} {path}: its header declares {declared}; cnndsl reads at most "
                           f"{Image.MAX_IMAGE_PIXELS:,} (Pillow's decompression-bomb bound)", usage=True,
                           hint="a training image is far smaller: resize it") from None
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as e:
            raise CnnError(f"{path}: not an image Pillow can read ({e})", usage=True) from None
        with img:
            w, h = img.size
            need = w * h * (len(img.getbands()) + 4 * channels)  # decoded (a byte a band, at least), float32
            if need > BIG_IMAGE:
                from .memory import require
                require(need, f"{what} {path} ({w}x{h} pixels)", hint="resize it")
            yield img


def npy_header(f, shown: str, room: int) -> tuple[tuple, object, int]:
    """(shape, dtype, bytes of data) that the .npy array starting at `f`'s position declares, read from its
    header alone; a CnnError when it is no .npy array, holds Python objects, or declares more data than
    the `room` bytes it has (numpy allocates the declared size before reading: a 700-byte file may declare
    100M images)."""
    from numpy.lib import format as F
    start = f.tell()
    try:
        version = F.read_magic(f)
        shape, _, dtype = (F.read_array_header_1_0 if version == (1, 0) else F.read_array_header_2_0)(f)
    except Exception as e:  # a hostile header: any failure to parse it means the same
        raise CnnError(f"cannot read {shown} as an .npy array: {str(e)[:200]}", usage=True) from None
    if dtype.hasobject:
        raise CnnError(f"{shown}: holds Python objects ({dtype}), not numbers", usage=True,
                       hint="save numeric arrays (np.save / np.savez of float or int arrays)")
    count = 1
    for d in shape:
        count *= d
    nbytes, room = count * dtype.itemsize, room - (f.tell() - start)
    if nbytes > room:
        from .memory import size_text
        raise CnnError(f"{shown}: its header declares {'x'.join(map(str, shape)) or 'a scalar'} {dtype} "
                       f"({size_text(nbytes)}), but the file holds {size_text(max(0, room))} of data", usage=True,
                       hint="the file is cut short or its header is wrong: write it again with np.save / np.savez")
    return tuple(shape), dtype, nbytes


def read_spec(path, limit: int, span=None, what: str | None = None) -> bytes:
    """At most `limit` bytes of a regular file (a spec, an include), or a CnnError that names it:
    a device (`/dev/zero`), a FIFO or a folder is refused before anything is read, and a file
    larger than `limit` after reading `limit + 1` bytes of it. `span`: where it was asked for
    (an include statement); without one the error is a usage error (a file on the command line)."""
    path = os.fspath(path)
    shown = what or path
    usage = span is None
    code = "E501" if usage else "E208"
    fd = _open_regular(path, shown, span, usage, code, hint="a spec is a plain .net text file")
    chunks, size = [], 0
    try:
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise CnnError(f"cannot read {shown}: {e.strerror}", span, usage=usage, code=code) from None
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
    """The process's umask now, read without being changed (files are written from threads: the live
    server's); where /proc cannot say, the umask the process had when this module was imported."""
    mask = _proc_umask()
    return _UMASK_AT_IMPORT if mask is None else mask


def _proc_umask() -> int | None:
    """The `Umask:` line of /proc/self/status (Linux 4.7 and later), or None where there is none."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


# Elsewhere (macOS, older kernels) a umask is read only by setting it and setting it back, and a file
# another thread creates in between gets mode 0666 (measured on Linux: most of 20,000 files created
# beside a thread doing so): so that is done once, here, while importing, before our threads exist.
_UMASK_AT_IMPORT = _proc_umask()
if _UMASK_AT_IMPORT is None:
    _UMASK_AT_IMPORT = os.umask(0o022)
    os.umask(_UMASK_AT_IMPORT)


def _discard(tmp):
    try:
        os.unlink(tmp)
    except OSError:
        pass
