"""Where a command may write: never over a spec it reads or any file that spec includes, never over
another `.net` file, never into a run folder that holds another run or is in use.

    >>> import cnndsl, os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> spec = os.path.join(folder, "tiny.net")
    >>> _ = open(spec, "w").write("input 8x8x1\\nCONV(4, 3)\\n")
    >>> net = cnndsl.load(spec)
    >>> check_target(os.path.join(folder, "tiny.py"), spec_files(net))          # a new file: fine
    >>> try:
    ...     check_target(spec, spec_files(net), flag="-o")
    ... except cnndsl.CnnError as e:
    ...     print(e.message)
    -o ...tiny.net is the spec being read: writing it would replace the spec

Every command that writes asks `check_target` first (report, compile, export and draw `-o`; eval
`--out`; search `--emit` and `--plot`; train `--out`'s files), with the files its spec was read from
(`spec_files`: the spec and, at every depth, its includes). Files are compared as files, not as
names: `os.path.samefile` sees through symbolic links, hard links, `..` and case-insensitive names.
The writes themselves stay atomic (cnndsl.files.atomic_files); a refusal comes before anything is
written.

A training run's folder: `run_files(folder)` are the files that say a run lives there; `train`
refuses such a folder unless told (`resume` or `overwrite`), and `folder_lock(folder)` holds an
exclusive lock on FOLDER/.lock for the whole run (fcntl.flock, never waiting: a second training into
the folder is refused with the holder's pid). The kernel drops the lock when its process dies, so a
`kill -9` leaves no stale lock behind, only an unlocked file that the next run takes over.
"""
from __future__ import annotations

import contextlib
import os
import socket
import stat

from .errors import CnnError
from .lang import astnodes as A

MEMBER_HEAD = b"# a member of "   # the first line of every file `search --emit` writes (search/emit.py)
LOCK = ".lock"
# what cnndsl train writes into --out (checkpoint.py, loop.py): the files that say a run is there
RUN_FILES = ("run.json", "checkpoint.safetensors", "weights.safetensors", "metrics.jsonl")
RUN_EXTRAS = ("curves.png", "spec.net")


def spec_files(source) -> list[str]:
    """The files a Net or Program was read from: the spec itself, then every include at any depth
    (each once). Nothing for a spec made from a string."""
    program = getattr(source, "_program", source)
    out, seen, todo = [], set(), [program]
    while todo:
        p = todo.pop()
        if p is None or id(p) in seen:
            continue
        seen.add(id(p))
        path = getattr(p, "path", "<string>")
        if path and not path.startswith("<"):
            out.append(path)
        todo += [st.program for st in reversed(getattr(p, "statements", ())) if isinstance(st, A.Include)]
    return out


def same_file(a, b) -> bool:
    """Whether two paths name one file (through links); False when either does not exist."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def check_target(path, sources=(), *, flag: str = "-o", member: bool = False, hint: str | None = None) -> None:
    """Refuse to write `path` when it is one of `sources` (the spec being read, its includes) or an
    existing `.net` file; `member=True` (search --emit) lets a member file an earlier --emit wrote
    be written afresh, and nothing else."""
    path = os.fspath(path)
    for i, src in enumerate(sources):
        if same_file(path, src):
            what = (("the spec being read" + (f" ({src})" if os.path.abspath(path) != os.path.abspath(src) else ""))
                    if i == 0 else f"a file the spec includes ({sources[0]} includes {src})")
            raise CnnError(f"{flag} {path} is {what}: writing it would replace the spec", usage=True,
                           hint=hint or "name another output file; cnndsl never writes over a spec or its includes")
    if not (path.lower().endswith(".net") and os.path.lexists(path)):
        return
    if member and is_member_file(path):
        return
    what = "an existing spec that --emit did not write" if member else "an existing spec (a .net file)"
    raise CnnError(f"{flag} {path} is {what}: cnndsl does not write over it", usage=True,
                   hint=hint or "name another output; to replace that spec, delete it first")


def is_member_file(path) -> bool:
    """Whether `path` is a regular file that starts as `search --emit` starts a member file. The
    file is opened without waiting (a FIFO named like a member must not hang the search)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode) and os.read(fd, len(MEMBER_HEAD)) == MEMBER_HEAD
    except OSError:
        return False
    finally:
        os.close(fd)


def check_unique(names: list[str], what) -> None:
    """Refuse to write two outputs to one file: names that differ only in case are one file on
    macOS and Windows. `what(i)` describes the i-th output."""
    first = {}
    for i, name in enumerate(names):
        j = first.setdefault(name.casefold(), i)
        if j != i:
            raise CnnError(f"{what(j)} and {what(i)} would both be written to {names[j]}", usage=True,
                           hint="rename a variable so that the names differ in more than case")


# ---- run folders ---------------------------------------------------------------------------------------
def run_files(folder) -> list[str]:
    """The files of a training run in `folder` (none when it holds no run or does not exist)."""
    return [f for f in RUN_FILES if os.path.lexists(os.path.join(folder, f))]


def check_run_folder(folder, sources=(), *, resume=False, overwrite=False, flag="--out") -> None:
    """Refuse `folder` as a run's --out when it is a file, when it holds another run (unless
    `resume` or `overwrite`), or when the run's spec.net there would replace a spec being read."""
    folder = os.fspath(folder)
    if resume and overwrite:
        raise CnnError("--resume continues the run in --out and --overwrite replaces it: give one", usage=True)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise CnnError(f"{flag} {folder} is a file, not a folder", usage=True,
                       hint="--out names the folder of the run's files (it is made if missing)")
    found = run_files(folder)
    if found and not (resume or overwrite):
        raise CnnError(f"{flag} {folder} holds another run ({', '.join(found)}): training into it would replace "
                       f"its checkpoint and metrics", usage=True,
                       hint="--resume continues that run, --overwrite replaces it; or train into another folder")
    for f in RUN_FILES + RUN_EXTRAS:
        path = os.path.join(folder, f)
        for i, src in enumerate(sources):
            if same_file(path, src) and not (f == "spec.net" and i == 0):  # the spec itself: left as it is
                raise CnnError(f"{flag} {folder}: the run's {f} would replace {src}"
                               + (f", which {sources[0]} includes" if i else ", the spec being read"), usage=True,
                               hint="train into another folder")
    spec = os.path.join(folder, "spec.net")
    if os.path.lexists(spec) and not found and not (sources and same_file(spec, sources[0])):
        raise CnnError(f"{flag} {folder} holds a spec.net that no run wrote: training into it would replace it",
                       usage=True, hint="train into another folder")


def clear_run(folder, sources=()) -> list[str]:
    """--overwrite: remove the previous run's files (never a spec being read); return their names."""
    gone = []
    for f in RUN_FILES + RUN_EXTRAS:
        path = os.path.join(folder, f)
        if os.path.lexists(path) and not any(same_file(path, s) for s in sources):
            try:
                os.unlink(path)
            except OSError as e:
                raise CnnError(f"--overwrite: cannot remove {path}: {e.strerror}", usage=True) from None
            gone.append(f)
    return gone


@contextlib.contextmanager
def folder_lock(folder, what="a training run", flag="--out"):
    """Hold an exclusive lock on FOLDER/.lock while the block runs, or refuse at once when another
    process holds it (naming its pid and host). The lock file is removed when the block ends, and the
    folder too when the lock made it and nothing was written there (a run refused at its data)."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; runs are not guarded there
        yield
        return
    path = os.path.join(folder, LOCK)
    made = not os.path.isdir(folder)
    try:
        os.makedirs(folder, exist_ok=True)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "a process that has not said its pid yet"
                os.close(fd)
                raise CnnError(f"{flag} {folder} is in use: {what} writes there ({holder})", usage=True,
                               hint="wait for it to end, or write into another folder") from None
            if _still_named(fd, path):  # not a file its last holder unlinked after we opened it
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
    except OSError as e:
        raise CnnError(f"cannot lock {path}: {e.strerror}", usage=True) from None
    try:
        yield
    finally:
        try:
            os.unlink(path)  # while still held: whoever opened it meanwhile sees it is gone and retries
        except OSError:
            pass
        os.close(fd)
        if made:
            with contextlib.suppress(OSError):
                os.rmdir(folder)  # only if empty


def _still_named(fd, path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False
