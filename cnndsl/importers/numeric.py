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
    its values in the input's order) computes, or None."""
    import numpy as np
    x = _sample(dims)
    try:
        y = run(x)
    except Exception:
        return None
    c, x64 = dims[1], x.astype(np.float64)
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
