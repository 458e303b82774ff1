"""Layers that sources write as reshapes and transposes around one op, recognised by what they compute.

Exporters and modules write SOFTMAX(groups=g, card=k) as a softmax over one axis of a reshaped,
transposed view (timm's RadixSoftmax: `x.view(B, k, g, -1).transpose(1, 2)`, a softmax over dim 1,
`reshape(B, -1)`), and CHANCONV as a 1-D convolution of the channels laid out as rows (timm's
EcaModule: `y.view(B, 1, -1)`, nn.Conv1d(1, 1, k); cnndsl's ChannelConv: moved channels-last,
reshaped to (N*H*W, 1, C); circular padding as F.pad or Slices and a Concat). Rather than a pattern
per spelling, the chain is run on a random input and compared with each setting of the kind, by
the kind's own definition:

    >>> judge_softmax(lambda x: radix_softmax(x, 3, 2), [1, 12, 2, 2])
    (3, 2)
    >>> judge_softmax(lambda x: x, [1, 12, 2, 2]) is None
    True
    >>> judge_softmax(lambda x: radix_softmax(x, 12, 1), [1, 12, 1, 1])  # over all the channels
    (1, 1)
    >>> import numpy as np
    >>> w = np.array([[[0.5, 1.0, -1.0]]], np.float32)
    >>> judge_chanconv(lambda x: channel_conv(x, w, None, True), [1, 6, 2, 2], w, None)
    True
"""
from __future__ import annotations


def _sample(dims):
    import numpy as np
    return np.random.default_rng(0).standard_normal(dims).astype(np.float32)


def _same(y, ref) -> bool:
    import numpy as np
    y = np.asarray(y, dtype=np.float64)
    return y.size == ref.size and bool(np.allclose(y.reshape(-1), ref.reshape(-1), rtol=1e-4, atol=1e-5))


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def radix_softmax(x, groups, card):
    """SOFTMAX(groups, card) of an NCHW or NC array: the channels as (card, groups, rest), a softmax
    across the groups, written out as (groups, card, rest) (cnndsl's RadixSoftmax, timm's)."""
    import numpy as np
    y = x.reshape(x.shape[0], card, groups, -1).transpose(0, 2, 1, 3)
    e = np.exp(y - y.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).reshape(x.shape)


def judge_softmax(run, dims):
    """(groups, card) of the SOFTMAX that `run` (an array of `dims`, NCHW or NC -> the chain's output,
    its values in the input's order) computes ((1, 1): over all the channels), or None."""
    import numpy as np
    x = _sample(dims)
    try:
        y = run(x)
    except Exception:
        return None
    c, x64 = dims[1], x.astype(np.float64)
    e = np.exp(x64 - x64.max(axis=1, keepdims=True))
    if _same(y, e / e.sum(axis=1, keepdims=True)):
        return 1, 1
    for g in _divisors(c)[1:]:
        for k in _divisors(c // g):
            if _same(y, radix_softmax(x64, g, k)):
                return g, k
    return None


def channel_conv(x, weight, bias, circular):
    """CHANCONV of an NCHW or NC array: at each position, the channels correlated with the (1, 1, k)
    weight, zero-padded (or wrapped round) by (k - 1) // 2 each side."""
    import numpy as np
    w = np.asarray(weight, np.float64).reshape(-1)
    k, c = w.size, x.shape[1]
    p = (k - 1) // 2
    rows = np.moveaxis(np.asarray(x, np.float64), 1, -1)
    padded = np.pad(rows, [(0, 0)] * (rows.ndim - 1) + [(p, p)], mode="wrap" if circular else "constant")
    y = sum(w[i] * padded[..., i:i + c] for i in range(k))
    if bias is not None:
        y = y + float(np.asarray(bias).reshape(-1)[0])
    return np.moveaxis(y, -1, 1)


def judge_chanconv(run, dims, weight, bias):
    """Whether `run` (an array of `dims` -> the chain's output) is CHANCONV with `weight` (and `bias`)
    zero-padded (False) or wrapped round (True); None where it is neither."""
    import numpy as np
    if np.asarray(weight).size % 2 == 0:
        return None
    x = _sample(dims)
    try:
        y = run(x)
    except Exception:
        return None
    for circular in (False, True):
        if _same(y, channel_conv(x, weight, bias, circular)):
            return circular
    return None


def judge_standardised(weight, sources, numbers):
    """(stored weight, eps, gains or None) where a conv's `weight`, folded from the stored weights
    `sources` ({name: array}) and the small `numbers` added on the way, is one of them standardised
    per filter (mean 0, variance 1 with `eps` added: STDCONV) and times a factor per filter (the
    gains: SCALEDSTDCONV); None where it is not.

        >>> import numpy as np
        >>> raw = np.random.default_rng(1).standard_normal((4, 2, 3, 3)).astype(np.float32)
        >>> flat = raw.reshape(4, -1)
        >>> w = (flat - flat.mean(1, keepdims=True)) / np.sqrt(flat.var(1, keepdims=True) + 1e-5) * 0.5
        >>> found = judge_standardised(w.reshape(raw.shape), {"w": raw}, {1e-5})
        >>> found[1], found[2].round(4).tolist()
        (1e-05, [0.5, 0.5, 0.5, 0.5])
    """
    import numpy as np
    out = weight.shape[0]
    w = np.asarray(weight, np.float64).reshape(out, -1)
    for raw in sources.values():
        if raw.size != weight.size or w.shape[1] < 2:
            continue
        r = np.asarray(raw, np.float64).reshape(out, -1)
        centred, var = r - r.mean(1, keepdims=True), r.var(1, keepdims=True)
        for eps in sorted(numbers):
            if eps <= 0:
                continue
            s = centred / np.sqrt(var + eps)
            gains = (w * s).sum(1) / np.maximum((s * s).sum(1), 1e-30)
            if np.allclose(w, gains[:, None] * s, rtol=1e-4, atol=1e-6 * float(np.abs(w).max())):
                return raw.reshape(weight.shape), eps, None if np.allclose(gains, 1, rtol=1e-6, atol=0) else gains
    return None


def upsample(x, factors, mode, size=None):
    """UPSAMPLE of an NCHW array by whole `factors`: each value repeated (nearest), or PyTorch's
    bilinear interpolation (align_corners=False), by the kind's own weights; or nearest to `size`
    (the rows and columns PyTorch reads, kinds/upsample.py's nearest_sources)."""
    import numpy as np
    from ..kinds.upsample import bilinear_weights, nearest_sources
    x = np.asarray(x, np.float64)
    if size is not None:
        rows, cols = nearest_sources(x.shape[2], size[0]), nearest_sources(x.shape[3], size[1])
        return x[:, :, rows][:, :, :, cols]
    fh, fw = factors
    if mode == "nearest":
        return x.repeat(fh, axis=2).repeat(fw, axis=3)
    rows, cols = bilinear_weights(x.shape[2], fh).astype(np.float64), bilinear_weights(x.shape[3], fw).astype(np.float64)
    return rows @ x @ cols.T


def judge_upsample(run, dims, factors, mode, size=None) -> bool:
    """Whether `run` (an NCHW array of `dims` -> its output) is UPSAMPLE(factors, mode) (or to `size`)."""
    x = _sample(dims)
    try:
        y = run(x)
    except Exception:
        return False
    return _same(y, upsample(x, factors, mode, size))
