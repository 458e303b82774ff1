"""A layer kind defined outside cnndsl, with an enumerated argument, for tests/test_extensible.py:
everything it needs lives here, as a kind of the package would keep it in its own file.

SPATIALPAD pads each side of the height and width by `size`: with zeros, a reflection of the
border, or the edge repeated (PyTorch's F.pad modes constant, reflect, replicate; ONNX's Pad
modes constant, reflect, edge).

    SPATIALPAD(1) - CONV(8, 3)   SPATIALPAD(2, mode=reflect)   SPATIALPAD(1, mode=replicate)
"""
from __future__ import annotations

from cnndsl.kinds import Arg, Kind, ShapeError
from cnndsl.kinds.base import HE_PASS, NO_TENSORS, OWN, REQUIRED, need_volume, torch_module

MODES = ("zeros", "reflect", "replicate")
ONNX_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge"}


class SpatialPad(Kind):
    name = "SPATIALPAD"
    doc = "pads each side of the height and width: zeros, a reflection, or the edge repeated"
    elementwise = False
    args = (Arg("size", "int", REQUIRED, lo=0, doc="rows and columns added on each side"),
            Arg("mode", "word", "zeros", doc="zeros, reflect or replicate", choices=MODES))
    # F.pad's output is a fresh tensor; reflect and replicate keep their input for backward
    # (derivatives.yaml: reflection_pad2d_backward(grad, self, padding)), zeros keeps sizes only
    # drawn with the pooling layers (as UPSAMPLE is): it changes the height and width, as they do
    memory, output_overwritable, he, draw_group = OWN, True, HE_PASS, "pooling"
    samples = ("SPATIALPAD(1)", "SPATIALPAD(2, mode=reflect)", "SPATIALPAD(1, mode=replicate) - RELU")

    def out_shape(self, attrs, ins):
        need_volume(self.name, ins[0])
        (H, W, C), p = ins[0], attrs["size"]
        if attrs["mode"] == "reflect" and p >= min(H, W):
            raise ShapeError(f"SPATIALPAD({p}, mode=reflect) needs an input larger than {p}, got {H}x{W}",
                             hint="a reflection repeats rows inside the input: pad less, or use mode=replicate")
        return (H + 2 * p, W + 2 * p, C)

    def tensors(self, attrs, ins):
        return NO_TENSORS

    def saved(self, attrs, ins, out, inplace=False):
        return ((), 0) if attrs["mode"] == "zeros" else (("in",), 0)

    def torch_module(self, attrs, ins, inplace):
        return torch_module("cnndsl.Pad2d", (("size", attrs["size"]),), (("mode", attrs["mode"]),),
                            spec=(("size", "size"), ("mode", "mode")), defaults={"mode": "zeros"})

    def onnx(self, b, n, xs):
        p = n.attrs["size"]
        pads = b.ints(n, "pads", [0, 0, p, p, 0, 0, p, p])  # NCHW: begins, then ends
        b.node("Pad", [xs[0], pads], n, mode=ONNX_MODES[n.attrs["mode"]])

    def describe(self, attrs):
        return f"{attrs['size']}" + ("" if attrs["mode"] == "zeros" else f" {attrs['mode']}")


def torch_modules():
    """SPATIALPAD's PyTorch module (kinds.torch_classes builds it; torch is imported here only)."""
    import torch
    from torch import nn

    class Pad2d(nn.Module):
        """F.pad of each side of the height and width by `size`."""

        def __init__(self, size: int, mode: str = "zeros"):
            super().__init__()
            self.size, self.mode = size, mode

        def forward(self, x):
            mode = "constant" if self.mode == "zeros" else self.mode
            return torch.nn.functional.pad(x, (self.size,) * 4, mode=mode)

        def extra_repr(self):
            return f"{self.size}, mode={self.mode}"

    return {"Pad2d": Pad2d}
