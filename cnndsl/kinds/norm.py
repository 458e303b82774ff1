"""Normalisation: batch, layer and group normalisation, AlexNet's local response normalisation,
and ConvNeXt's layer scale."""
from __future__ import annotations

from .base import (HE_PASS, HE_STOP, NO_TENSORS, OWN, REQUIRED, Arg, Foreign, Kind, ShapeError, Tensor, channels,
                   n_elems, need_volume, torch_module)


class BatchNorm(Kind):
    name = "BN"
    aliases = ("BATCHNORM",)
    doc = "batch normalisation per channel: trainable scale and shift, running mean and variance"
    args = (Arg("eps", "float", 1e-5, lo=0.0, doc="added to the variance"),
            Arg("momentum", "float", 0.1, lo=0.0, hi=1.0000001, doc="running-statistics update rate"))
    elementwise_ops = 2
    memory, output_overwritable, he, draw_group = OWN, True, HE_PASS, "norm"
    samples = ("BN", "BN(eps=1e-3, momentum=0.01)")

    def tensors(self, attrs, ins):
        c = (ins[0][-1],)
        return (Tensor("weight", c, "ones"), Tensor("bias", c, "zeros"),
                Tensor("running_mean", c, "zeros", buffer=True), Tensor("running_var", c, "ones", buffer=True),
                Tensor("num_batches_tracked", (), "zeros", buffer=True, dtype="int64"))

    def saved(self, attrs, ins, out, inplace=False):
        # its input, and four vectors of C fp32 values that native_batch_norm keeps for backward: the
        # running mean and variance (buffers, referenced, not copied, but kept alive by the graph) and the
        # batch's mean and 1/std. They are per batch, not per image: counted per image as at batch 1, as
        # the weight-standardised convs count theirs (measured with saved_tensors_hooks, tests/test_pytorch.py)
        return (("in",), 4 * 4 * channels(ins))

    def torch_module(self, attrs, ins, inplace):
        return torch_module("nn.BatchNorm2d" if len(ins[0]) == 3 else "nn.BatchNorm1d",
                            (("num_features", ins[0][-1]),),
                            (("eps", attrs["eps"]), ("momentum", attrs["momentum"])),
                            spec=(("num_features", "@in"), ("eps", "eps"), ("momentum", "momentum")),
                            defaults={"eps": 1e-5, "momentum": 0.1})

    def onnx(self, b, n, xs):
        p = n.name
        b.node("BatchNormalization", [xs[0], f"{p}.weight", f"{p}.bias", f"{p}.running_mean", f"{p}.running_var"], n,
               epsilon=float(n.attrs["eps"]))


class LRN(Kind):
    name = "LRN"
    aliases = ("NORM",)
    doc = "local response normalisation across `size` neighbouring channels (AlexNet)"
    args = (Arg("size", "int", 5, lo=1, aliases=("n",), doc="channels in the window"),
            Arg("alpha", "float", 1e-4, lo=0.0, doc="scale"),
            Arg("beta", "float", 0.75, lo=0.0, doc="exponent"),
            Arg("k", "float", 1.0, lo=0.0, aliases=("bias",), doc="additive constant"))
    memory, output_overwritable, he, draw_group = OWN, False, HE_STOP, "norm"
    samples = ("LRN(size=3)", "LRN", "LRN(4)")

    def out_shape(self, attrs, ins):
        need_volume(self.name, ins[0])
        return ins[0]

    def tensors(self, attrs, ins):
        return NO_TENSORS

    def flops(self, attrs, ins, out):
        return n_elems(out) * (attrs["size"] + 3)

    def saved(self, attrs, ins, out, inplace=False):
        # PyTorch's composite LRN keeps its input, the channel-padded squares (C + size - 1 channels)
        # that avg_pool3d reads, the pow input and the divisor, not its output (measured, fp32 bytes)
        H, W, C = ins[0]
        return (("in",), 4 * (2 * n_elems(out) + H * W * (C + attrs["size"] - 1)))

    def torch_module(self, attrs, ins, inplace):
        a = attrs
        return torch_module("nn.LocalResponseNorm", (("size", a["size"]),),
                            (("alpha", a["alpha"]), ("beta", a["beta"]), ("k", a["k"])),
                            spec=(("size", "size"), ("alpha", "alpha"), ("beta", "beta"), ("k", "k")),
                            defaults={"alpha": 1e-4, "beta": 0.75, "k": 1.0})

    def onnx(self, b, n, xs):
        a = n.attrs
        size, alpha, beta, k = a["size"], float(a["alpha"]), float(a["beta"]), float(a["k"])
        if size % 2 and alpha > 0 and beta > 0:
            b.node("LRN", xs[:1], n, size=size, alpha=alpha, beta=beta, bias=k)
            return
        # Even windows: ONNX's LRN looks at (size-1)//2 channels before and size//2 after, PyTorch's at
        # size//2 before and (size-1)//2 after; and onnxruntime refuses alpha = 0 or beta = 0, which
        # PyTorch runs. Lower those as PyTorch computes LRN (pad, average over channels).
        sq = b.node("Mul", [xs[0], xs[0]], n, out=f"{n.name}:square")
        x5 = b.node("Unsqueeze", [sq, b.ints(n, "axis", [1])], n, out=f"{n.name}:square5d")
        pads = b.ints(n, "pads", [0, 0, size // 2, 0, 0, 0, 0, (size - 1) // 2, 0, 0])
        padded = b.node("Pad", [x5, pads], n, out=f"{n.name}:padded")
        avg = b.node("AveragePool", [padded], n, out=f"{n.name}:avg5d", kernel_shape=[size, 1, 1])
        avg = b.node("Squeeze", [avg, b.ints(n, "axis", [1])], n, out=f"{n.name}:avg")
        scaled = b.node("Mul", [avg, b.scalar(alpha)], n, out=f"{n.name}:scaled")
        shifted = b.node("Add", [scaled, b.scalar(k)], n, out=f"{n.name}:shifted")
        div = b.node("Pow", [shifted, b.scalar(beta)], n, out=f"{n.name}:divisor")
        b.node("Div", [xs[0], div], n)

    def describe(self, attrs):
        return f"size {attrs['size']}"


def reduce(b, n, op, x, axes, what):
    """ReduceMean/ReduceMax over `axes`, keeping them: the axes an attribute before opset 18, an input from it."""
    if b.opset >= 18:
        return b.node(op, [x, b.ints(n, f"{what}_axes", axes)], n, out=f"{n.name}:{what}")
    return b.node(op, [x], n, out=f"{n.name}:{what}", axes=list(axes))


def _normalise(b, n, x, axes, eps):
    """(x - mean) / sqrt(var + eps) over `axes`, the biased variance, as PyTorch normalises."""
    mean = reduce(b, n, "ReduceMean", x, axes, "mean")
    d = b.node("Sub", [x, mean], n, out=f"{n.name}:centred")
    var = reduce(b, n, "ReduceMean", b.node("Mul", [d, d], n, out=f"{n.name}:squares"), axes, "var")
    std = b.node("Sqrt", [b.node("Add", [var, b.scalar(eps)], n, out=f"{n.name}:var_eps")], n, out=f"{n.name}:std")
    return b.node("Div", [d, std], n, out=f"{n.name}:normalised")


def _affine(b, n, x, volume, bias=True):
    """x * weight + bias, the per-channel (C,) parameters broadcast over NCHW where x is a volume."""
    w = f"{n.name}.weight"
    if volume:
        w = b.node("Unsqueeze", [w, b.ints(n, "axes", [1, 2])], n, out=f"{n.name}:weight_c11")
    if not bias:
        b.node("Mul", [x, w], n)
        return
    shift = f"{n.name}.bias"
    if volume:
        shift = b.node("Unsqueeze", [shift, b.ints(n, "axes", [1, 2])], n, out=f"{n.name}:bias_c11")
    scaled = b.node("Mul", [x, w], n, out=f"{n.name}:scaled")
    b.node("Add", [scaled, shift], n)


def _nchw(shape):
    return [shape[2], shape[0], shape[1]] if len(shape) == 3 else list(shape)


class _Norm(Kind):
    """Normalisation with statistics of each sample (no buffers); optional affine weight and bias of C."""
    memory, output_overwritable, he, draw_group = OWN, True, HE_STOP, "norm"

    def tensors(self, attrs, ins):
        c = (channels(ins),)
        if not attrs["affine"]:
            return NO_TENSORS
        return (Tensor("weight", c, "ones"),) + ((Tensor("bias", c, "zeros"),) if attrs.get("bias", True) else ())

    def flops(self, attrs, ins, out):
        # statistics at inference too: mean 1, variance 2, normalise 2 per element; affine 2 more (1 without a bias)
        return n_elems(out) * (5 + (1 + attrs.get("bias", True) if attrs["affine"] else 0))

    def _ones(self, b, n):
        import numpy as np  # only the ONNX backend calls this
        c = n.out_shape[-1]
        return b.const(n, "ones", np.ones(c, np.float32)), b.const(n, "zeros", np.zeros(c, np.float32))

    def describe(self, attrs):
        return ("" if attrs.get("bias", True) else "no bias") if attrs["affine"] else "no affine"


class LayerNorm(_Norm):
    name = "LAYERNORM"
    aliases = ("LN",)
    doc = ("layer normalisation over the channels: at every position of a volume (ConvNeXt's LayerNorm2d), "
           "over the features of a vector (nn.LayerNorm)")
    args = (Arg("eps", "float", 1e-5, lo=0.0, doc="added to the variance"),
            Arg("affine", "bool", True, aliases=("elementwise_affine",), doc="learn a scale and shift per channel"),
            Arg("bias", "bool", True, doc="learn the shift (false: a scale only, timm's LayerNorm2dNoBias)"))
    samples = ("LAYERNORM", "LAYERNORM(eps=1e-6, affine=false)", "LAYERNORM(eps=1e-6, bias=false)")

    def saved(self, attrs, ins, out, inplace=False):
        # its input, and the mean and 1/std of every normalised group (fp32): one per position
        positions = n_elems(out) // out[-1]
        return (("in",), 8 * positions)

    def torch_module(self, attrs, ins, inplace):
        volume = len(ins[0]) == 3
        return torch_module("cnndsl.LayerNorm2d" if volume else "nn.LayerNorm", (("normalized_shape", channels(ins)),),
                            (("eps", attrs["eps"]), ("elementwise_affine", attrs["affine"]),
                             ("bias", attrs["bias"] or not attrs["affine"])),
                            spec=(("normalized_shape", "@in"), ("eps", "eps"), ("elementwise_affine", "affine"),
                                  ("bias", "bias")),
                            defaults={"eps": 1e-5, "elementwise_affine": True, "bias": True})

    def onnx(self, b, n, xs):
        a, volume = n.attrs, len(n.out_shape) == 3
        eps = float(a["eps"])
        if b.opset >= 17:
            x = b.node("Transpose", xs[:1], n, out=f"{n.name}:nhwc", perm=[0, 2, 3, 1]) if volume else xs[0]
            scale, bias = (f"{n.name}.weight", f"{n.name}.bias") if a["affine"] else self._ones(b, n)
            if a["affine"] and not a["bias"]:  # LayerNormalization's B is optional, but zeros keep one form
                import numpy as np  # only the ONNX backend calls this
                bias = b.const(n, "zeros", np.zeros(n.out_shape[-1], np.float32))
            y = b.node("LayerNormalization", [x, scale, bias], n, out=f"{n.name}:nhwc_normalised" if volume else None,
                       axis=-1, epsilon=eps)
            if volume:
                b.node("Transpose", [y], n, perm=[0, 3, 1, 2])
            return
        y = _normalise(b, n, xs[0], [1], eps)
        if a["affine"]:
            _affine(b, n, y, volume, bias=a["bias"])
        else:
            b.node("Identity", [y], n)


class GroupNorm(_Norm):
    name = "GROUPNORM"
    aliases = ("GN",)
    doc = "group normalisation: the channels in `groups` groups, each normalised over its channels and positions"
    args = (Arg("groups", "int", REQUIRED, lo=1, aliases=("g", "num_groups"), doc="channel groups (divides C)"),
            Arg("eps", "float", 1e-5, lo=0.0, doc="added to the variance"),
            Arg("affine", "bool", True, doc="learn a scale and shift per channel"))
    samples = ("GROUPNORM(2)", "GROUPNORM(1, eps=1e-6, affine=false)", "GN(4)")

    def out_shape(self, attrs, ins):
        c, g = channels(ins), attrs["groups"]
        if c % g:
            raise ShapeError(f"groups={g} does not divide the {c} channels",
                             arithmetic=f"{c} / {g} = {c / g:.2f}", hint="choose a number of groups that divides C")
        return ins[0]

    def saved(self, attrs, ins, out, inplace=False):
        return (("in",), 8 * attrs["groups"])  # its input, a mean and 1/std per group (fp32)

    def torch_module(self, attrs, ins, inplace):
        return torch_module("nn.GroupNorm", (("num_groups", attrs["groups"]), ("num_channels", channels(ins))),
                            (("eps", attrs["eps"]), ("affine", attrs["affine"])),
                            spec=(("num_groups", "groups"), ("num_channels", "@in"), ("eps", "eps"), ("affine", "affine")),
                            defaults={"eps": 1e-5, "affine": True})

    def onnx(self, b, n, xs):
        a = n.attrs
        eps, g = float(a["eps"]), a["groups"]
        # Decomposed at every opset: GroupNormalization-18 scales per group, not per channel as PyTorch
        # does, and onnx (1.23) has no shape inference for GroupNormalization-21 (onnxruntime runs it),
        # so every edge after it would lose its shape (Netron, the checker's strict mode).
        grouped = b.node("Reshape", [xs[0], b.ints(n, "grouped_shape", [0, g, -1])], n, out=f"{n.name}:grouped")
        y = _normalise(b, n, grouped, [2], eps)
        shape = b.ints(n, "shape", [0, *_nchw(n.out_shape)])  # 0: the batch, as it comes
        y = b.node("Reshape", [y, shape], n, out=f"{n.name}:ungrouped" if a["affine"] else None)
        if a["affine"]:
            _affine(b, n, y, len(n.out_shape) == 3)

    def describe(self, attrs):
        return f"{attrs['groups']} groups" + ("" if attrs["affine"] else ", no affine")


class LayerScale(Kind):
    name = "LAYERSCALE"
    doc = "a learnt scale per channel, starting at `init` (ConvNeXt's layer scale)"
    args = (Arg("init", "float", 1e-6, aliases=("value", "gamma"), doc="the scales' initial value"),)
    elementwise_ops = 1
    memory, output_overwritable, he, draw_group = OWN, True, HE_STOP, "norm"
    samples = ("LAYERSCALE", "LAYERSCALE(0.1)")

    def tensors(self, attrs, ins):
        c = channels(ins)
        # other frameworks keep the scale as a parameter of the block it scales: torchvision's
        # CNBlock.layer_scale (C, 1, 1), timm's ConvNeXtBlock.gamma (C,); or as `scale` (C,) of a
        # module of its own (timm's MetaFormer Scale: PoolFormer's layer scale, ConvFormer's res scale),
        # or as `gamma` (C,) of one (timm's LayerScale: MambaOut's _rw variants)
        shape = (c, 1, 1) if len(ins[0]) == 3 else (c,)
        bare = tuple(Foreign(s, bare=True) for s in dict.fromkeys((shape, (c,))))
        named = (Foreign((c,), name="scale"), Foreign((c,), name="gamma"))
        return (Tensor("weight", shape, "fill", fill=attrs["init"], foreign=bare + named),)

    def saved(self, attrs, ins, out, inplace=False):
        return (("in",), 0)  # x * weight: the weight's gradient needs x

    def torch_module(self, attrs, ins, inplace):
        volume = len(ins[0]) == 3
        return torch_module("cnndsl.LayerScale", (("channels", channels(ins)),),
                            (("init", attrs["init"]), ("volume", volume)),
                            spec=(("channels", "@in"), ("init", "init")), defaults={"init": 1e-6, "volume": True})

    def onnx(self, b, n, xs):
        b.node("Mul", [xs[0], f"{n.name}.weight"], n)

    def describe(self, attrs):
        return f"{attrs['init']:g}"
