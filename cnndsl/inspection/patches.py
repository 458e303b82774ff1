"""The input patches that excite a layer's units most (Zeiler & Fergus; Girshick et al.'s "units"):
for each channel, the K samples whose strongest unit of that channel is strongest, each cropped at
that unit's exact receptive field (cnndsl.inspection.receptive), padding drawn as padding.

    >>> import cnndsl
    >>> s = Subject(cnndsl.loads("input 8x8x1\\nCONV(2, 3) - RELU - FC(10)"), weights=None)
    >>> r = patches(s, "conv1", np.random.default_rng(0).normal(size=(20, 1, 8, 8)).astype("f4"), np.arange(20) % 10, top=3)
    >>> r["patches"].shape, r["positions"].shape       # channels x K x (C, rf, rf); (sample, y, x)
    ((2, 3, 1, 3, 3), (2, 3, 3))
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import CnnError
from . import figures as F, receptive as R
from .result import Result
from .subject import Subject

MAX_CHANNELS = 8   # rows drawn when no channel is named


def patches(s: Subject, layer, x, y, channel=None, top=8, notes=(), progress=None) -> Result:
    """`x`: normalised samples (N, C, H, W) as numpy; `y` their labels."""
    name = s.layer(layer)
    field = R.fields(s.net).get(name)
    if field is None:
        raise CnnError(f"{name} ({'x'.join(map(str, s.shape(name)))}) has no spatial extent: each of its units sees "
                       "the whole input", usage=True, hint="choose a layer with a volume output: " +
                       ", ".join(s.convolutions()[-4:]))
    h, w, c = s.shape(name)
    channels = _channels(channel, c)
    best, where = _strongest(s, name, x, channels, progress)   # (N, channels), flat positions
    top = max(1, min(top, len(x)))
    order = np.argsort(-best, axis=0, kind="stable")[:top].T    # channels x K sample indices
    crops, inside, pos, acts = [], [], [], []
    for j, row in enumerate(order):
        cr, ins, ps = [], [], []
        for i in row:
            uy, ux = divmod(int(where[i, j]), w)
            p, m = R.crop(x[i], field, uy, ux)
            cr.append(p)
            ins.append(m)
            ps.append((int(i), uy, ux))
        crops.append(cr)
        inside.append(ins)
        pos.append(ps)
        acts.append(best[row, j])
    patches_raw = s.raw(torch.as_tensor(np.nan_to_num(np.asarray(crops)), device=s.device).flatten(0, 1))
    patches_raw = patches_raw.reshape(len(channels), top, *patches_raw.shape[1:]).cpu().numpy()
    patches_raw[~np.broadcast_to(np.asarray(inside)[:, :, None], patches_raw.shape)] = np.nan
    arrays = {"patches": patches_raw, "inside": np.asarray(inside), "positions": np.asarray(pos, np.int64),
              "activations": np.asarray(acts, np.float32), "channels": np.asarray(channels, np.int64),
              "labels": np.asarray(y)[order]}
    values = {"layer": name, "rf": list(field.rf), "jump": list(field.jump), "start": list(field.start),
              "samples": int(len(x)), "top": top, "value_range": s.display_range(patches_raw[np.isfinite(patches_raw)]),
              "class_names": [s.class_name(i) for i in range(s.n_classes)] if s.classes else None}
    return Result("patches", arrays, values, [*s.notes, *notes], _draw, _table)


def _channels(channel, c):
    if channel is None:
        return list(range(min(c, MAX_CHANNELS)))
    chosen = [int(v) for v in str(channel).split(",") if v.strip()]
    bad = [v for v in chosen if not 0 <= v < c]
    if bad:
        raise CnnError(f"--channel {bad[0]}: the layer has {c} channels, 0..{c - 1}", usage=True)
    return chosen


def _strongest(s, name, x, channels, progress):
    """Per sample and channel, the strongest unit's activation and its flat position."""
    best, where = [], []
    idx = torch.as_tensor(channels, device=s.device)
    done = 0
    for xb in s.batches(x):
        out = s.capture(xb, [name])[name].index_select(1, idx).flatten(2)
        v, i = out.max(2)
        best.append(v.cpu().numpy())
        where.append(i.cpu().numpy())
        done += len(xb)
        if progress:
            progress(done, len(x))
    return np.concatenate(best), np.concatenate(where)


def _draw(r):
    p, acts = r["patches"], r["activations"]
    rows, k = p.shape[:2]
    tiles = [F.padded(p[j, i], r["inside"][j, i], r["value_range"]) for j in range(rows) for i in range(k)]
    h, w = tiles[0].shape[:2]
    gap = max(2, round(max(h, w) * 0.45))  # room for the text above and below each tile
    fig = F.figure((max(9.0, min(13.33, 2.2 + 1.4 * k)), min(13.33, 1.6 + 1.5 * rows)))
    ax = fig.subplots()
    canvas, corners = F.mosaic(tiles, k, gap)
    F.show_mosaic(ax, canvas)
    names = r["class_names"]
    for idx, (t, l) in enumerate(corners):
        j, i = divmod(idx, k)
        n, uy, ux = r["positions"][j, i]
        label = r["labels"][j, i]
        ax.text(l + w / 2 - 0.5, t - 0.6, f"{acts[j, i]:.3g}", ha="center", va="bottom", fontsize=11)
        ax.text(l + w / 2 - 0.5, t + h - 0.3, f"#{n} ({names[label] if names else label}) @{uy},{ux}",
                ha="center", va="top", fontsize=8)
    ax.set_yticks([corners[j * k][0] + h / 2 - 0.5 for j in range(rows)], [f"ch {c}" for c in r["channels"]])
    ax.tick_params(left=False)
    rf, jump = r["rf"], r["jump"]
    pad = " (orange: padding)" if not r["inside"].all() else ""
    fig.suptitle(f"{r['layer']}: the {k} of {r['samples']} samples that excite each channel most\ncropped at the "
                 f"unit's receptive field, {rf[0]}x{rf[1]} (jump {jump[0]}){pad}; above: the activation")
    return fig


def _table(r):
    lines = [f"{r['layer']}: receptive field {r['rf'][0]}x{r['rf'][1]}, jump {r['jump'][0]}, first unit's field "
             f"starts at ({r['start'][0]}, {r['start'][1]}); top {r['top']} of {r['samples']} samples per channel"]
    for j, c in enumerate(r["channels"]):
        lines.append(f"  channel {c}: " + ", ".join(
            f"#{n}@{uy},{ux} {a:.3g}" for (n, uy, ux), a in zip(r["positions"][j], r["activations"][j])))
    return "\n".join(lines) + "\n"
