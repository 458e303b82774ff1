"""The folder a page may see: `.net` files under DIR, and nothing else.

    >>> import tempfile, os
    >>> root = tempfile.mkdtemp()
    >>> t = Tree(root)
    >>> t.save("a.net", "input 8x8x1\\nFC(3)\\n")["path"], [f["path"] for f in t.files()]
    ('a.net', ['a.net'])
    >>> t.resolve("../etc/passwd")
    Traceback (most recent call last):
    ...
    cnndsl.serve.tree.Refused: `../etc/passwd` is outside the served folder

Every path a request names is relative to DIR, and is refused when it is absolute, holds `..`,
a NUL or a backslash, or resolves (symbolic links followed) outside DIR: a link inside DIR that
points out is refused as the path it is. Only `.net` files are read or written through it; the
training runs' folders and data sources are resolved by the same rule. Saving is atomic
(cnndsl.files.atomic_write: the old text or the new one on disk, never half), and the hash a page
opened a file with lets a save notice that someone else changed it meanwhile.
"""
from __future__ import annotations

import hashlib
import os
import stat

from ..files import atomic_write
from ..lang.syntax import MAX_TEXT

MAX_PATH = 1024          # characters of a relative path a request may name
MAX_LISTED = 5000        # files listed; a bigger tree is cut, and says so
MAX_DEPTH = 8            # folders below DIR that are walked
SKIP = {"node_modules", "__pycache__"}


class Refused(Exception):
    """A path or a file the page may not touch; `status` is the HTTP status it answers."""

    def __init__(self, message, status=403):
        super().__init__(message)
        self.status = status


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Tree:
    def __init__(self, root):
        self.root = os.path.realpath(os.fspath(root))

    # ---- paths -------------------------------------------------------------------------------------
    def resolve(self, rel) -> str:
        """The real path of `rel` (relative to DIR), or Refused when it is not under DIR."""
        if not isinstance(rel, str) or not rel.strip():
            raise Refused("no path given", 400)
        shown = rel if len(rel) <= 80 else rel[:60] + "..."
        if len(rel) > MAX_PATH or "\0" in rel or "\\" in rel:
            raise Refused(f"`{shown}` is not a path under the served folder", 400)
        parts = rel.split("/")
        if rel.startswith("/") or ".." in parts or os.path.isabs(rel):
            raise Refused(f"`{shown}` is outside the served folder")
        full = os.path.realpath(os.path.join(self.root, rel))
        if full != self.root and not full.startswith(self.root + os.sep):
            raise Refused(f"`{shown}` is outside the served folder")
        return full

    def relative(self, full) -> str:
        return os.path.relpath(full, self.root).replace(os.sep, "/")

    def spec(self, rel) -> str:
        full = self.resolve(rel)
        if not full.endswith(".net"):
            raise Refused(f"`{rel}`: only .net files are opened and saved here")
        return full

    # ---- listing -----------------------------------------------------------------------------------
    def files(self) -> list[dict]:
        """The .net files under DIR (hidden folders and links out left out), sorted by path."""
        return [{"path": self.relative(p), "size": st.st_size, "mtime": st.st_mtime}
                for p, st in self._walk(lambda name: name.endswith(".net"))]

    def data_sources(self) -> list[str]:
        """Folders with a sub-folder per class, and .npz files, under DIR: what training can read."""
        from ..train.data import IMAGE_EXTENSIONS  # torch-free: the data module imports numpy only
        out = [self.relative(p) for p, _ in self._walk(lambda name: name.endswith(".npz"))]
        for folder in self._folders():
            if _looks_like_classes(folder, IMAGE_EXTENSIONS):
                out.append(self.relative(folder) + "/")
        return sorted(out)

    def _walk(self, wanted):
        found = []
        for folder in self._folders():
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            for e in entries:
                if e.name.startswith(".") or not wanted(e.name):
                    continue
                try:
                    full = self.resolve(self.relative(e.path))
                    st = os.stat(full)
                except (Refused, OSError):
                    continue
                if stat.S_ISREG(st.st_mode):
                    found.append((e.path, st))
                if len(found) >= MAX_LISTED:
                    return sorted(found)
        return sorted(found)

    def _folders(self):
        """DIR and its folders, breadth first, not hidden, not links out, at most MAX_DEPTH down."""
        todo, seen = [(self.root, 0)], set()
        while todo:
            folder, depth = todo.pop(0)
            real = os.path.realpath(folder)
            if real in seen or not (real == self.root or real.startswith(self.root + os.sep)):
                continue
            seen.add(real)
            yield folder
            if depth >= MAX_DEPTH or len(seen) > MAX_LISTED:
                continue
            try:
                subs = sorted(e.path for e in os.scandir(folder)
                              if e.is_dir() and not e.name.startswith(".") and e.name not in SKIP)
            except OSError:
                continue
            todo += [(s, depth + 1) for s in subs]

    # ---- reading and writing -----------------------------------------------------------------------
    def read(self, rel) -> dict:
        full = self.spec(rel)
        from ..files import read_spec
        from ..errors import CnnError
        try:
            data = read_spec(full, MAX_TEXT)
        except CnnError as e:
            raise Refused(e.message.replace(full, rel), 404 if not os.path.exists(full) else 413) from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise Refused(f"`{rel}` is not UTF-8 text", 415) from None
        return {"path": rel, "text": text, **self._stamp(full, data)}

    def stat(self, rel) -> dict:
        """What a page polls to notice a change on disk: mtime, size and the text's hash."""
        full = self.spec(rel)
        try:
            st = os.stat(full)
        except OSError:
            return {"path": rel, "exists": False}
        unread = {"path": rel, "exists": True, "mtime": st.st_mtime, "size": st.st_size, "sha256": None}
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_TEXT:
            return unread
        from ..errors import CnnError
        from ..files import read_spec
        try:  # a regular file a moment ago: read_spec opens it without waiting, should it be a FIFO now
            data = read_spec(full, MAX_TEXT)
        except CnnError:
            return unread
        return {"path": rel, **self._stamp(full, data)}

    def save(self, rel, text: str, base_sha256=None, new=False) -> dict:
        """Write `text` atomically. With `base_sha256` (the hash the page opened), a file changed on
        disk since is refused (409), so that nobody's edit is lost without being asked; `new`: only
        if there is no such file yet."""
        full = self.spec(rel)
        data = text.encode("utf-8")
        if len(data) > MAX_TEXT:
            raise Refused(f"the text is over {MAX_TEXT:,} bytes; a spec is at most that", 413)
        if new and os.path.lexists(full):
            raise Refused(f"`{rel}` exists already", 409)
        if base_sha256 is not None and os.path.exists(full):
            now = self.stat(rel).get("sha256")
            if now != base_sha256:
                raise Refused(f"`{rel}` changed on disk since it was opened", 409)
        atomic_write(full, data)
        return {"path": rel, **self._stamp(full, data)}

    @staticmethod
    def _stamp(full, data) -> dict:
        st = os.stat(full)
        return {"exists": True, "mtime": st.st_mtime, "size": len(data), "sha256": sha256(data)}


def _looks_like_classes(folder, extensions) -> bool:
    """A folder of class folders: at least two sub-folders, the first holding an image."""
    try:
        subs = [e for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".")]
        if len(subs) < 2:
            return False
        for e in os.scandir(sorted(subs, key=lambda e: e.name)[0].path):
            if e.name.lower().endswith(extensions):
                return True
    except OSError:
        pass
    return False
