"""ConvNetJS's view of a net that trains: its first layer's filters and one sample's activation maps
per layer, as small PNGs (data: URLs) for the page. Imported by the training runner only (torch).

    >>> import cnndsl, numpy as np
    >>> net = cnndsl.loads("input 12x12x1\\nc1: CONV(4, 3) - RELU - POOL - FC(3)")
    >>> m = net.to_torch(seed=0)
    >>> f = filters(m, net.graph)
    >>> f["layer"], f["shape"], f["png"].startswith("data:image/png;base64,")
    ('c1', [4, 1, 3, 3], True)
    >>> [(a["name"], a["shape"]) for a in activations(m, net.graph, np.zeros((1, 1, 12, 12), np.float32))]
    [('input', [12, 12, 1]), ('c1', [10, 10, 4]), ('relu1', [10, 10, 4]), ('pool1', [5, 5, 4])]

Each filter is scaled to its own range (ConvNetJS's choice: a filter's pattern, not its size, is
what changes to watch); a layer's maps share one range, so a channel that is dark is one that
fires little. A model in training mode is switched to eval for the one sample (no dropout, no
batch-statistics update) and each module's mode is put back after, so a run that is watched
computes what an unwatched one computes.
"""
from __future__ import annotations

import base64
import io

import numpy as np

MAX_FILTERS = 64
MAX_CHANNELS = 8            # activation maps shown per layer
MAX_LAYERS = 32             # layers shown; a deeper net shows this many, spread evenly
TILE = (40, 64)             # a map or filter is scaled to at least / at most this many pixels a side
GAP = 2


def png(pixels: np.ndarray) -> str:
    """A data: URL of uint8 pixels (H, W) or (H, W, 3)."""
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", optimize=False, compress_level=3)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _unit(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    return np.zeros_like(a) if hi - lo < 1e-12 else (a - lo) / (hi - lo)


def _scaled(tile: np.ndarray) -> np.ndarray:
    """A tile (H, W[, 3]) in 0..1 as uint8, scaled by a whole factor (small) or down (large)."""
    from PIL import Image
    h, w = tile.shape[:2]
    img = Image.fromarray(np.clip(tile * 255 + 0.5, 0, 255).astype(np.uint8))
    side = max(h, w)
    if side < TILE[0]:
        k = -(-TILE[0] // side)
        img = img.resize((w * k, h * k), Image.NEAREST)
    elif side > TILE[1]:
        img = img.resize((max(1, w * TILE[1] // side), max(1, h * TILE[1] // side)), Image.BILINEAR)
    return np.asarray(img)


def _strip(tiles, columns) -> np.ndarray:
    """Tiles of one size in rows of `columns`, GAP pixels apart, on a mid-grey ground."""
    th, tw = tiles[0].shape[:2]
    rows = -(-len(tiles) // columns)
    cols = min(columns, len(tiles))
    shape = (rows * (th + GAP) - GAP, cols * (tw + GAP) - GAP) + tiles[0].shape[2:]
    out = np.full(shape, 128, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, columns)
        out[r * (th + GAP):r * (th + GAP) + th, c * (tw + GAP):c * (tw + GAP) + tw] = t
    return out


def first_conv(graph):
    return next((n for n in graph.nodes if n.op == "CONV"), None)


def filters(module, graph) -> dict | None:
    """The first CONV's filters: one tile each (RGB for 3 input channels, else the first channel)."""
    node = first_conv(graph)
    if node is None:
        return None
    w = module.get_submodule(node.name).weight.detach().float().cpu().numpy()
    k, cin = w.shape[:2]
    shown = w[:MAX_FILTERS]
    if cin == 3:
        tiles = [_scaled(_unit(f.transpose(1, 2, 0))) for f in shown]
        note = "RGB"
    else:
        tiles = [_scaled(_unit(f[0])) for f in shown]
        note = "" if cin == 1 else f"input channel 1 of {cin}"
    if k > MAX_FILTERS:
        note = (note + ", " if note else "") + f"first {MAX_FILTERS} of {k}"
    return {"layer": node.name, "shape": list(w.shape), "png": png(_strip(tiles, 16)), "note": note}


def _volume_nodes(graph):
    nodes = [n for n in graph.nodes if len(n.out_shape) == 3]
    if len(nodes) > MAX_LAYERS:
        step = len(nodes) / MAX_LAYERS
        nodes = [nodes[int(i * step)] for i in range(MAX_LAYERS - 1)] + [nodes[-1]]
    return nodes


def activations(module, graph, sample) -> list[dict]:
    """The sample and, per layer with a volume output, its first channels' maps, one strip each."""
    import torch
    wanted = {}
    for n in _volume_nodes(graph):
        try:
            wanted[n.name] = (n, module.get_submodule(n.name))
        except AttributeError:  # joins and flattens run inline, without a module of their own
            continue
    maps, hooks = {}, []

    def keep(name):
        def hook(_module, _inputs, output):
            if torch.is_tensor(output) and output.dim() == 4:
                maps[name] = output[0, :MAX_CHANNELS].detach().float().cpu().clone().numpy()
        return hook
    for name, (_, m) in wanted.items():
        hooks.append(m.register_forward_hook(keep(name)))
    modes = [(m, m.training) for m in module.modules()]
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    x = torch.as_tensor(np.asarray(sample, np.float32)).to(device)
    try:
        module.eval()
        with torch.no_grad():
            module(x)
    finally:
        for h in hooks:
            h.remove()
        for m, mode in modes:
            m.training = mode
    out = [_input(sample, graph)]
    for name, (node, _) in wanted.items():
        if name in maps:
            a = _unit(maps[name])
            out.append({"name": name, "op": node.op, "shape": list(node.out_shape),
                        "png": png(_strip([_scaled(c) for c in a], MAX_CHANNELS))})
    return out


def _input(sample, graph) -> dict:
    x = np.asarray(sample, np.float32)[0]
    if x.ndim != 3:  # a vector input: nothing to picture
        return {"name": "input", "op": "INPUT", "shape": list(graph.input_shape), "png": None}
    tile = _unit(x.transpose(1, 2, 0)) if x.shape[0] == 3 else _unit(x[0])
    return {"name": "input", "op": "INPUT", "shape": list(graph.input_shape), "png": png(_scaled(tile))}
