"""The layer kinds of the language, each defined once (cnndsl/kinds/base.py lists the facts).

    >>> conv = KINDS["CONV"]
    >>> attrs = conv.bind({"filters": 96, "kernel": 11, "s": 4})
    >>> conv.out_shape(attrs, [(227, 227, 3)])
    (55, 55, 96)
    >>> conv.params(attrs, [(227, 227, 3)])
    34944

Shapes are tuples: (H, W, C) for a volume, (N,) for a flat vector. Errors are
raised as `ShapeError` (message, arithmetic, hint) and get their span from the
elaborator, which knows where the layer was written.

Counting conventions (README, "Counting"):
* MACs: multiply-accumulates of CONV (H2*W2*K*F*F*D1/groups) and FC (in*out),
  bias additions not counted, as fvcore counts them; every other kind has 0.
* FLOPs: 2 per MAC, plus one per elementary operation of the other kinds at
  inference (pool: one per window element per output, adaptive pools one per
  input element; BN: 2 per element; LAYERNORM, GROUPNORM: 5 per element, 7
  with the affine; LAYERSCALE 1; activations (PRELU, GELU, SILU, ... too): 1;
  SOFTMAX: 3, LRN: size + 3, ADD and MUL: 1 per extra input, MEAN: 1 per
  input (n - 1 additions, a division), bias: 1 per output element of CONV/FC);
  FLATTEN, ID, DROPOUT, DROPPATH, CONCAT, CHANNELS, SPLIT, SHUFFLE, PADCHANNELS: 0.

Adding a kind: one class in one of the family files below, listed in ALL; the
kind-completeness test (tests/test_kinds.py) names any fact it lacks.
"""
from __future__ import annotations

from .activations import (ELU, GELU, Hardsigmoid, Hardswish, LeakyReLU, Mish, PReLU, ReLU, ReLU6, Sigmoid, SiLU,
                          Softmax, Softplus, Tanh)
from .base import (DRAW_GROUPS, MAX_DIM, MISSING, Arg, Foreign, Kind, Shape, ShapeError, Tensor, TorchModule,
                   fmt_pair, fmt_shape)
from .conv import Conv, DoesNotFit
from .dense import FC, DropPath, Dropout, Flatten, Identity
from .channels import Channels, PadChannels, Shuffle, Split
from .joins import Add, Concat, JoinError, Mean, Mul
from .norm import LRN, BatchNorm, GroupNorm, LayerNorm, LayerScale
from .pool import AdaptiveAvgPool, AdaptiveMaxPool, AvgPool, GlobalAvgPool, MaxPool

__all__ = ["ALL", "KINDS", "CALLABLE", "DRAW_GROUPS", "MAX_DIM", "MISSING", "Arg", "Kind", "Shape", "ShapeError",
           "DoesNotFit", "JoinError", "Foreign", "Tensor", "TorchModule", "fmt_pair", "fmt_shape"]

ALL = (Conv(), MaxPool(), AvgPool(), GlobalAvgPool(), AdaptiveAvgPool(), AdaptiveMaxPool(), FC(), Flatten(), ReLU(),
       ReLU6(), LeakyReLU(), Sigmoid(), Tanh(), Softplus(), SiLU(), Hardsigmoid(), Hardswish(), GELU(), Mish(), ELU(),
       PReLU(), Softmax(), BatchNorm(), LayerNorm(), GroupNorm(), LayerScale(), LRN(), Dropout(), DropPath(),
       Identity(), Channels(), Split(), Shuffle(), PadChannels(), Concat(), Add(), Mul(), Mean())
KINDS: dict[str, Kind] = {k.name: k for k in ALL}
# What a user may write: names and aliases, joins excluded (they are written with braces).
CALLABLE: dict[str, Kind] = {n: k for k in ALL if not k.join for n in (k.name, *k.aliases)}
