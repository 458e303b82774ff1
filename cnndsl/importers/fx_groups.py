"""torch.fx calls on 5-d views of a volume's channels, (B, g, C/g, H, W): SKNet's and ResNeSt's paths.

timm's SelectiveKernel stacks its paths (`torch.stack(paths, dim=1)`), takes a softmax across them
and sums them (`sum(dim=1)`); SplitAttn views its radix groups as `x.reshape(B, r, C // r, H, W)`.
The language has no 5-d tensors, but each of these is a layer of the volume the view stands for:

    view (B, C, H, W) -> (B, g, C/g, H, W)    the volume itself, read as g groups
    torch.stack(tensors, dim=1)                CONCAT of the tensors, as len(tensors) groups
    softmax(dim=1) of a view                   SOFTMAX(groups=g) of the volume
    a * b, a + b of two views of g groups      MUL, ADD of the volumes (a 1x1 one broadcast)
    sum(dim=1) of a view                       { SPLIT(0, g) + ... + SPLIT(g - 1, g) } of the volume
    a view reshaped back to (B, C, H, W)       the volume

`walk.grouped` holds {fx node: (the volume's tensor, g)}; any other call on a view is refused by name.
"""
from __future__ import annotations

from .graph import Node
from .layers import lift as make


def grouped_call(walk, n, fname, ins) -> bool:
    """Handle call `n` where it makes or reads a 5-d view of groups; False where it does neither."""
    views = [a for a in ins if a in walk.grouped]
    if not views:
        return _make_view(walk, n, fname, ins)
    rule = RULES.get(fname)
    if rule is None or not rule(walk, n, views, ins):
        node = walk.add(n, f"call:{fname}", [walk.grouped[a][0] for a in views])
        node.meta["why"] = f"{fname}(...) of a 5-d view of channel groups: no layer of the language computes it"
    return True


def _volume_dims(walk, n, g):
    """NCHW dims of the volume a 5-d view (B, g, C/g, H, W) stands for."""
    d = walk.dims(n)
    return [d[0], d[1] * d[2], *d[3:]]


def _make_view(walk, n, fname, ins) -> bool:
    d_out = walk.dims(n)
    if fname == "stack":
        dim = n.kwargs.get("dim", n.args[1] if len(n.args) > 1 else 0)
        dims = [walk.dims(a) for a in ins]
        if dim != 1 or len(ins) < 2 or any(len(d) != 4 or d != dims[0] for d in dims):
            return False
        node = walk.add(n, "stack", [walk.acts[a] for a in ins])
        node.meta["dims"] = _volume_dims(walk, n, len(ins))
        make(node, "CONCAT", {})
        walk.grouped[n] = (node.name, len(ins))
        del walk.acts[n]
        return True
    if fname in ("view", "reshape") and len(ins) == 1 and d_out and len(d_out) == 5 and _read_as_groups(n):
        d_in = walk.dims(ins[0])
        if len(d_in) == 4 and d_out[0] == d_in[0] and d_out[1] * d_out[2] == d_in[1] and d_out[3:] == d_in[2:]:
            walk.grouped[n] = (walk.acts[ins[0]], d_out[1])
            return True
    return False


def _read_as_groups(n) -> bool:
    """Whether every reader of a 5-d view takes it as groups (a channel shuffle transposes it instead)."""
    def name(u):
        t = u.target if isinstance(u.target, str) else getattr(u.target, "__name__", "")
        return t.strip("_") if t.startswith("__") else t.rstrip("_")
    return all(u.op in ("call_function", "call_method") and name(u) in RULES for u in n.users)


def _back(walk, n, views, ins):
    t, g = walk.grouped[views[0]]
    if len(ins) != 1 or walk.dims(n) != _volume_dims(walk, views[0], g):
        return False
    walk.acts[n] = t
    return True


def _same_view(walk, n, views, ins):
    """contiguous(), clone(): the same view."""
    if len(ins) != 1 or walk.dims(n) != walk.dims(views[0]):
        return False
    walk.grouped[n] = walk.grouped[views[0]]
    return True


def _softmax(walk, n, views, ins):
    dim = n.kwargs.get("dim", n.args[1] if len(n.args) > 1 else None)
    t, g = walk.grouped[views[0]]
    if len(ins) != 1 or dim is None or dim % 5 != 1:
        return False
    node = walk.add(n, "softmax", [t])
    node.meta["dims"] = _volume_dims(walk, n, g)
    make(node, "SOFTMAX", {"groups": g})
    walk.grouped[n] = (node.name, g)
    del walk.acts[n]
    return True


def _join(kind):
    def rule(walk, n, views, ins):
        groups = {walk.grouped[a][1] for a in views}
        if len(ins) != 2 or len(views) != 2 or len(groups) != 1:
            return False
        node = walk.add(n, kind.lower(), [walk.grouped[a][0] for a in views])
        node.meta["dims"] = _volume_dims(walk, n, groups.pop())
        make(node, kind, {})
        walk.grouped[n] = (node.name, walk.grouped[views[0]][1])
        del walk.acts[n]
        return True
    return rule


def _sum(walk, n, views, ins):
    """The groups summed: SPLITs of the volume, added."""
    dim = n.kwargs.get("dim", n.args[1] if len(n.args) > 1 else None)
    keep = n.kwargs.get("keepdim", n.args[2] if len(n.args) > 2 else False)
    t, g = walk.grouped[views[0]]
    if len(ins) != 1 or dim not in (1, -4, (1,), [1]) or keep:
        return False
    parts = []
    for i in range(g):
        part = Node(f"{n.name}:group{i}", "split", [t], source=n.name, where=walk.where,
                    meta={"dims": walk.dims(n)})
        walk.graph.add(make(part, "SPLIT", {"index": i, "parts": g}))
        parts.append(part.name)
    make(walk.add(n, "sum", parts), "ADD", {})
    return True


RULES = {"view": _back, "reshape": _back, "flatten": _back, "contiguous": _same_view, "clone": _same_view,
         "softmax": _softmax, "mul": _join("MUL"), "add": _join("ADD"), "sum": _sum}
