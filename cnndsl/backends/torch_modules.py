"""PyTorch modules that torch itself lacks, for the kinds that need them (`TorchModule.cls` "cnndsl.<Name>").

Each class is self-contained: it uses only `torch` and `torch.nn` (imported as `nn`), no helper of
this package, so that the PyTorch source generator can copy a class's source (inspect.getsource)
into a standalone generated file. `MODULES` maps the name a kind gives to the class.

    >>> import torch
    >>> m = LayerNorm2d(4)
    >>> [(k, tuple(v.shape)) for k, v in m.state_dict().items()]
    [('weight', (4,)), ('bias', (4,))]
    >>> m(torch.randn(2, 4, 3, 3)).shape
    torch.Size([2, 4, 3, 3])
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["LayerNorm2d", "LayerScale", "StochasticDepth", "Mul", "Mean", "Channels", "ChannelSplit", "ChannelShuffle",
           "PadChannels", "MODULES"]


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor, at every position (ConvNeXt's; torchvision's
    LayerNorm2d): the same parameters as nn.LayerNorm(C), `weight` and `bias` of C."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = torch.nn.functional.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class LayerScale(nn.Module):
    """A learnable scale per channel (ConvNeXt's layer scale, CaiT's): y = x * weight.

    `weight` has shape (C, 1, 1) on volumes (NCHW, as torchvision's CNBlock.layer_scale) and (C,)
    on vectors; it starts at `init` everywhere."""

    def __init__(self, channels: int, init: float = 1e-6, volume: bool = True):
        super().__init__()
        shape = (channels, 1, 1) if volume else (channels,)
        self.weight = nn.Parameter(torch.full(shape, float(init)))

    def forward(self, x):
        return x * self.weight

    def extra_repr(self):
        return f"{self.weight.shape[0]}"


class StochasticDepth(nn.Module):
    """Drop path (torchvision.ops.StochasticDepth): while training, zero the whole input of a sample
    ("row") or of the batch ("batch") with probability p and scale the kept ones by 1/(1-p);
    at inference, and for p = 0, the input itself."""

    def __init__(self, p: float = 0.5, mode: str = "row"):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"drop probability has to be between 0 and 1, but got {p}")
        if mode not in ("row", "batch"):
            raise ValueError(f"mode has to be 'row' or 'batch', but got {mode!r}")
        self.p, self.mode = p, mode

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        shape = (x.shape[0],) + (1,) * (x.dim() - 1) if self.mode == "row" else (1,) * x.dim()
        noise = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(keep)
        if keep > 0.0:
            noise.div_(keep)
        return x * noise

    def extra_repr(self):
        return f"p={self.p}, mode={self.mode}"


class Mul(nn.Module):
    """Element-wise product of its inputs, broadcast (a squeeze-and-excitation gate: x * s, s of N x C x 1 x 1)."""

    def forward(self, x, *rest):
        for r in rest:
            x = x * r
        return x


class Mean(nn.Module):
    """Element-wise mean of its inputs (FractalNet's join): their sum divided by their number."""

    def forward(self, x, *rest):
        for r in rest:
            x = x + r
        return x / (1 + len(rest))


class Channels(nn.Module):
    """The channels start..stop-1 (dim 1), a view: x[:, start:stop]."""

    def __init__(self, start: int, stop: int):
        super().__init__()
        self.start, self.stop = start, stop

    def forward(self, x):
        return x[:, self.start:self.stop]

    def extra_repr(self):
        return f"{self.start}, {self.stop}"


class ChannelSplit(nn.Module):
    """Part `index` of `parts` equal parts of the channels (dim 1), a view: x.chunk(parts, 1)[index]
    for channels that `parts` divides."""

    def __init__(self, index: int, parts: int = 2):
        super().__init__()
        self.index, self.parts = index, parts

    def forward(self, x):
        size = x.shape[1] // self.parts
        return x[:, self.index * size:(self.index + 1) * size]

    def extra_repr(self):
        return f"{self.index}, parts={self.parts}"


class ChannelShuffle(nn.Module):
    """torchvision's channel_shuffle: channels as (groups, C/groups), transposed, flattened back."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        return x.unflatten(1, (self.groups, -1)).transpose(1, 2).flatten(1, 2)

    def extra_repr(self):
        return f"{self.groups}"


class PadChannels(nn.Module):
    """`extra` channels of zeros after the input's (dim 1): the CIFAR ResNets' option A shortcut."""

    def __init__(self, extra: int):
        super().__init__()
        self.extra = extra

    def forward(self, x):
        return nn.functional.pad(x, (0, 0) * (x.dim() - 2) + (0, self.extra))

    def extra_repr(self):
        return f"{self.extra}"


MODULES = {"LayerNorm2d": LayerNorm2d, "LayerScale": LayerScale, "StochasticDepth": StochasticDepth, "Mul": Mul,
           "Mean": Mean, "Channels": Channels, "ChannelSplit": ChannelSplit, "ChannelShuffle": ChannelShuffle,
           "PadChannels": PadChannels}
