"""What memory this process may still take, and refusing a declared size that cannot fit before it is
allocated: a PNG header's pixels, an .npz header's array, `synthetic:N`, a network's parameters.

    >>> require(10**6, "a test array")          # fits: nothing happens
    >>> try:
    ...     require(10**21, "100M images of 224x224x3", hint="use fewer images")
    ... except CnnError as e:
    ...     e.message[:60]
    '100M images of 224x224x3 would need 867 EiB; this machine ha'

`available()` is the least of what each limit leaves: the kernel's MemAvailable plus free swap
(/proc/meminfo), a container's memory limit less its use (cgroup v2 or v1, each level up to the
root; page cache counted as free, since the kernel reclaims it), and the address-space limit
(`ulimit -v`) less this process's size. Where none can be read (not Linux), `sysconf`'s free pages;
where that fails too, nothing is refused here (the other bounds still hold).

Every figure a caller passes is a lower bound of what the work would allocate: what is refused
could not have fitted, and what fits may still run short near the edge. Reading the limits costs
about 0.2 ms.
"""
from __future__ import annotations

import os

from .errors import CnnError

UNITS = ((2**60, "EiB"), (2**50, "PiB"), (2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"))


def size_text(n: int) -> str:
    """Bytes as people write them: 3 significant digits and a binary unit (`1.5 GiB`, `909 EiB`)."""
    for size, unit in UNITS:
        if n >= size:
            return f"{n / size:.3g} {unit}" if n < 1000 * size else f"{n / size:,.0f} {unit}"
    return f"{n} bytes"


def available() -> tuple[int, str] | None:
    """(bytes this process may still allocate, the limit that says so), or None where unknown."""
    found = [f for f in (_meminfo(), _cgroup(), _address_space()) if f is not None]
    if not found:
        found = [f for f in (_sysconf(),) if f is not None]
    return min(found) if found else None


def require(need: int, what: str, hint: str | None = None, usage: bool = True, span=None) -> None:
    """Refuse `need` bytes (a lower bound of what `what` would allocate) when they cannot fit."""
    have = available()
    if have is None or need <= have[0]:
        return
    raise CnnError(f"{what} would need {size_text(need)}; {have[1].format(size_text(max(0, have[0])))}", span,
                   usage=usage, code="E402", hint=hint or "use a machine with more memory, or make it smaller")


# ---- networks: what their tensors declare -------------------------------------------------------------
ITEMSIZE = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2, "int64": 8}
# the analysis's optimizer state counts (sgd 0, momentum 1, adam 2) for each of train's optimizers
OPTIMIZER_STATES = {"sgd": "sgd", "momentum": "momentum", "nesterov": "momentum", "adagrad": "momentum",
                    "rmsprop": "momentum", "adadelta": "adam", "adam": "adam", "adamw": "adam"}


def tensor_sizes(graph) -> tuple[int, int, int, object]:
    """(values, bytes, bytes of the largest, the node that holds the most bytes) of the network's
    parameters and buffers, as the kinds declare them: nothing is built."""
    values = total = largest = 0
    most, heaviest = -1, None
    seen = {}  # a repeated layer (the same arguments and input shapes) is sized once, as the analysis does
    for node in graph.nodes:
        ins = tuple(graph.shape_of(s) for s in node.inputs)
        key = (node.op, id(node.attrs), ins)
        sizes = seen.get(key)
        if sizes is None:
            sizes = seen[key] = _sizes(node.kind.tensors(node.attrs, list(ins)))
        values += sizes[0]
        total += sizes[1]
        largest = max(largest, sizes[2])
        if sizes[1] > most:
            most, heaviest = sizes[1], node
    return values, total, largest, heaviest


def _sizes(tensors) -> tuple[int, int, int]:
    values = total = largest = 0
    for t in tensors:
        n = 1
        for d in t.shape:
            n *= d
        values += n
        n *= ITEMSIZE.get(t.dtype, 4)
        total += n
        largest = max(largest, n)
    return values, total, largest


def require_network(graph, what: str, copies: int = 1, largest: bool = False) -> None:
    """Refuse to build a network whose parameters and buffers, `copies` times (to_torch: once; an ONNX
    model built and serialised: more), or its largest tensor alone (`largest`: an export that streams
    them), cannot fit; the error points at the layer with the most."""
    values, total, big, heaviest = tensor_sizes(graph)
    need = big if largest else total * copies
    if need > 2**20:  # a small network is never refused: the limits need not be read
        require(need, f"{what} ({values:,} parameter and buffer values{', its largest tensor' if largest else ''})",
                hint=f"make the network smaller: `{heaviest.name}` holds the most (cnndsl report shows each "
                     f"layer's)", usage=False, span=heaviest.span)


def require_disk(need: int, folder: str, what: str) -> None:
    """Refuse to write `need` bytes into `folder` when its disk has less free."""
    import shutil
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # a folder still to be made: the write itself will say what is wrong
    if need > free:
        raise CnnError(f"{what} would take {size_text(need)}; the disk of {folder} has {size_text(free)} free",
                       usage=True, code="E402", hint="write it to a disk with more room, or make the network smaller")


# ---- the limits, each (bytes left, how to say it) ----------------------------------------------------
def _meminfo():
    fields = _fields("/proc/meminfo")
    if "MemAvailable" not in fields:
        return None
    swap = fields.get("SwapFree", 0)
    return ((fields["MemAvailable"] + swap) * 1024,
            "this machine has {} available" + (" (memory and swap)" if swap else ""))


def _fields(path) -> dict:
    try:
        with open(path, encoding="ascii") as f:  # a kernel file: not a user path (tests/test_hostile_files.py)
            pairs = [(k, v.split()) for k, _, v in (line.partition(":") for line in f)]
    except (OSError, ValueError):
        return {}
    return {k: int(v[0]) for k, v in pairs if v and v[0].isdigit()}


def _cgroup():
    """The tightest memory limit of this process's cgroup and its ancestors, less what each uses."""
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as f:  # a kernel file
            lines = f.read().splitlines()
    except OSError:
        return None
    best = None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2: memory.max, memory.current, memory.stat's `file`
            root, limit, used, cache = "/sys/fs/cgroup", "memory.max", "memory.current", "file"
        elif "memory" in controllers.split(","):
            root, limit, used, cache = "/sys/fs/cgroup/memory", "memory.limit_in_bytes", "memory.usage_in_bytes", \
                "total_cache"
        else:
            continue
        parts = [p for p in path.split("/") if p]
        for depth in range(len(parts), -1, -1):
            folder = os.path.join(root, *parts[:depth])
            cap, use = _number(os.path.join(folder, limit)), _number(os.path.join(folder, used))
            if cap is None or use is None or cap >= 2**60:  # no limit at this level ("max", or v1's huge value)
                continue
            left = cap - use + _cgroup_stat(os.path.join(folder, "memory.stat")).get(cache, 0)
            if best is None or left < best[0]:
                best = (left, "this container's memory limit leaves {}")
    return best


def _cgroup_stat(path) -> dict:
    """memory.stat: `name value` lines."""
    try:
        with open(path, encoding="ascii") as f:  # a kernel file
            return {k: int(v) for k, _, v in (line.partition(" ") for line in f) if v.strip().isdigit()}
    except (OSError, ValueError):
        return {}


def _number(path):
    try:
        with open(path, encoding="ascii") as f:  # a kernel file
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _address_space():
    try:
        import resource
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError, AttributeError):
        return None
    if soft == resource.RLIM_INFINITY:
        return None
    size = _fields("/proc/self/status").get("VmSize")
    if size is None:
        return None
    return soft - size * 1024, "the address-space limit (ulimit -v) leaves {}"


def _sysconf():
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "this machine has {} available"
    except (ValueError, OSError, AttributeError):
        return None
