"""The net being looked at: its module with the checkpoint's weights, its layers by the spec's names,
and inputs prepared as its training prepared them.

    >>> import cnndsl
    >>> s = Subject(cnndsl.loads("input 8x8x1\\nf: [CONV(4, 3) - RELU] - FC(3)"), weights=None)
    >>> s.layer("f.relu1"), s.layer("f")           # a group means its last layer
    ('f.relu1', 'f.relu1')
    >>> s.capture(torch.zeros(2, 1, 8, 8), ["f.conv1"])["f.conv1"].shape
    torch.Size([2, 4, 6, 6])

Layers are found with `model.get_submodule(name)`: to_torch() registers every layer at its spec
name and its forward looks each one up when it runs, so a hook on that module sees what the layer
computes (README, "The modules are the model"). In-place operations are switched off in the
module (a ReLU that overwrote its input would change a tensor a hook kept, and captum's backward
hooks refuse in-place outputs); the numbers are the same.

The checkpoint records the training data's per-channel mean and std, its value range and its class
names (cnndsl.train.checkpoint.recorded(.., "data")): inputs here are always in the normalised units
the net was trained on, `(raw - mean) / std`; pictures show raw values again.
"""
from __future__ import annotations

import contextlib
import difflib
import os
import warnings

import numpy as np
import torch

from .. import weights as W
from ..errors import CnnError
from ..kinds import SPATIAL_FILTERS
from ..train import checkpoint as C, data as D, values as V


class _Stop(Exception):
    """Raised by a capture hook once the last wanted layer has run: the rest of the net is not needed."""


class Subject:
    """A net and its weights, ready to be looked into. `weights`: a checkpoint path (or None for the
    initialisation of `seed`); `device`: "cpu", "cuda" or "auto"."""

    def __init__(self, net, weights, seed=0, device="cpu"):
        self.net, self.graph = net, net.graph
        self.notes: list[str] = []
        self.device = torch.device("cuda" if device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
        self.model = net.to_torch(seed=seed, logits=True)
        self.record = None
        self.weights = weights
        if weights is not None:
            self._load(weights)
        for m in self.model.modules():
            if hasattr(m, "inplace"):
                m.inplace = False
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0  # eval mode makes it the identity anyway; this keeps it so under .train()
        self.model.to(self.device).eval().requires_grad_(False)
        self.names = [n.name for n in self.graph.nodes]
        self.classes = (self.record or {}).get("classes") or None
        self.mean, self.std = self._stats()

    # ---- weights -------------------------------------------------------------------------------------
    def _load(self, path):
        path = os.fspath(path)
        if not os.path.exists(path):
            raise CnnError(f"--weights {path}: no such file", usage=True)
        source = C.weights_source(path)
        if isinstance(source, C.Recorded):  # a .safetensors file: its metadata is read, its tensors once below
            ck = source
            if ck.info("layers") is not None:  # a cnndsl train checkpoint: refuse another spec's by its layers
                try:
                    self.notes += C.check_same_spec(ck, self.net)
                except CnnError as e:
                    e.hint = f"inspect the spec it was trained from ({ck.meta.get('spec_path')}, or spec.net " \
                             "beside the checkpoint), with the same -D values and --input"
                    raise
        report = W.load_into(self.model, source, strict=True)
        self.record = C.recorded(source, "data")
        how = "by name" if report["source"] == "cnndsl" else "mapped from foreign keys"
        self.notes.append(f"weights: {report['loaded']} tensors from {path}, {how}")
        if self.record is None:
            self.notes.append("the checkpoint records no data normalisation: inputs are fed as given")

    def _stats(self):
        c = self.graph.input_shape[-1] if len(self.graph.input_shape) == 3 else 1
        if self.record is None:
            return np.zeros(c, np.float32), np.ones(c, np.float32)
        V.normalisation(self.record["mean"], self.record["std"], c, "the recorded normalisation")
        mean, std = np.asarray(self.record["mean"], np.float32), np.asarray(self.record["std"], np.float32)
        return np.broadcast_to(mean, (c,)).copy(), np.broadcast_to(std, (c,)).copy()

    # ---- units ---------------------------------------------------------------------------------------
    def _per_channel(self, v, ndim):
        return torch.as_tensor(v, device=self.device).reshape(1, -1, *([1] * (ndim - 2))) if ndim > 2 else \
            torch.as_tensor(v, device=self.device).reshape(1, -1)[:, :1]

    def normalise(self, raw: torch.Tensor) -> torch.Tensor:
        return (raw - self._per_channel(self.mean, raw.ndim)) / self._per_channel(self.std, raw.ndim)

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised inputs back in the training data's own units (what a picture shows)."""
        return x * self._per_channel(self.std, x.ndim) + self._per_channel(self.mean, x.ndim)

    @property
    def value_range(self):
        """[lo, hi] of the training data's raw values, or None where the checkpoint records none."""
        return (self.record or {}).get("range")

    def display_range(self, raw) -> list:
        """The range a picture of raw values spans: the training data's, else the values' own."""
        r = self.value_range
        return [float(r[0]), float(r[1])] if r is not None else [float(np.min(raw)), float(np.max(raw))]

    def bounds(self, ndim=4):
        """(lo, hi) per channel in normalised units: where an image may go when it is optimised."""
        r = self.value_range
        if r is None:
            return None
        lo = self.normalise(torch.full((1, len(self.mean)) + (1,) * (ndim - 2), float(r[0]), device=self.device))
        hi = self.normalise(torch.full((1, len(self.mean)) + (1,) * (ndim - 2), float(r[1]), device=self.device))
        return lo, hi

    def blank(self, value="low") -> torch.Tensor:
        """A blank input (1, C, H, W): "low" is the data's lowest raw value (a digit's background, black),
        "mean" the data's mean (0 in normalised units)."""
        x = torch.zeros((1, *self.input_nchw), device=self.device)
        if value == "low" and self.value_range is not None:
            x = self.normalise(x + float(self.value_range[0]))
        return x

    @property
    def input_nchw(self):
        s = self.graph.input_shape
        return (s[2], s[0], s[1]) if len(s) == 3 else tuple(s)

    def class_name(self, k) -> str:
        return str(self.classes[k]) if self.classes and k < len(self.classes) else str(k)

    def class_index(self, c) -> int:
        """A class by index or by its recorded name."""
        n = self.n_classes
        if self.classes and str(c) in map(str, self.classes):
            return [str(x) for x in self.classes].index(str(c))
        try:
            k = int(c)
        except (TypeError, ValueError):
            k = -1
        if not 0 <= k < n:
            names = f" ({', '.join(map(str, self.classes[:12]))})" if self.classes else ""
            raise CnnError(f"class {c!r}: the net has {n} classes, 0..{n - 1}{names}", usage=True)
        return k

    @property
    def n_classes(self) -> int:
        units, _ = D.output_units(self.graph)
        return units or 0

    # ---- layers --------------------------------------------------------------------------------------
    def layer(self, name: str) -> str:
        """The layer a spec name means: a layer, or a group's (block's, label's) last layer; else a
        CnnError naming the closest names."""
        if name in self.names:
            return self._kept(name)
        inside = [n for n in self.names if n.startswith(name + ".")]
        if inside:
            self.notes.append(f"`{name}` is a group: its last layer, {inside[-1]}, is used")
            return self._kept(inside[-1])
        groups = sorted({n.rsplit(".", i)[0] for n in self.names for i in range(1, n.count(".") + 1)})
        close = difflib.get_close_matches(name[:100], self.names + groups, n=4, cutoff=0.5)
        raise CnnError(f"this network has no layer `{name[:60]}`", usage=True,
                       hint=(f"did you mean {', '.join(close)}? " if close else "") +
                       "layers go by the report's names (cnndsl report " + self.net.path + ")")

    def _kept(self, name):
        """A final SOFTMAX is left out of the module (scores are logits): its input stands for it."""
        try:
            self.model.get_submodule(name)
            return name
        except AttributeError:
            node = self.graph[name]
            self.notes.append(f"{name} (the final softmax) is not run: its input {node.inputs[0]} is used")
            return node.inputs[0]

    def module(self, name):
        return self.model.get_submodule(name)

    def shape(self, name) -> tuple:
        """A layer's output volume, HxWxC (or (N,) for a vector), from the analysis."""
        return tuple(self.graph.shape_of(name))

    def convolutions(self) -> list[str]:
        """The layers whose weight is a bank of spatial filters (CONV, STDCONV, ...: the kind says)."""
        return [n.name for n in self.graph.nodes if n.kind.filters == SPATIAL_FILTERS]

    def last_spatial(self) -> str:
        """The last layer whose output still has spatial extent (more than 1x1): Grad-CAM's default."""
        spatial = [n for n in self.names if len(self.shape(n)) == 3 and self.shape(n)[0] * self.shape(n)[1] > 1]
        if not spatial:
            raise CnnError("no layer of this network has an output with spatial extent", usage=True)
        return self._kept(spatial[-1])

    def last_hidden(self) -> str:
        """The layer that feeds the output layer (the last hidden layer's features)."""
        _, out = D.output_units(self.graph)
        if out is None or not out.inputs or out.inputs[0] == "input":
            raise CnnError("this network has no hidden layer before its output", usage=True)
        return out.inputs[0]

    # ---- running -------------------------------------------------------------------------------------
    def capture(self, x: torch.Tensor, names, grad=False) -> dict:
        """{name: output} of the named layers for input batch `x`; the net runs only as far as needed.
        With `grad`, the outputs keep their autograd graph back to `x`."""
        names = list(dict.fromkeys(names))
        out, handles = {}, []
        last = max(names, key=self.names.index)

        def hook(name):
            def keep(module, args, output):
                out[name] = output if grad else output.detach()
                if name == last and len(out) == len(names):
                    raise _Stop
            return keep
        for n in names:
            handles.append(self.module(n).register_forward_hook(hook(n)))
        try:
            with torch.set_grad_enabled(grad):
                self.model(x)
        except _Stop:
            pass
        finally:
            for h in handles:
                h.remove()
        return out

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (logits) for a batch, without autograd."""
        with torch.no_grad():
            return self.model(x).flatten(1)

    def batches(self, x, size=None):
        """`x` (numpy) in batches on the device: 256 small inputs at a time, fewer large ones (26 at 224x224x3)."""
        size = size or max(1, min(256, 4_000_000 // int(np.prod(self.input_nchw))))
        for i in range(0, len(x), size):
            yield torch.as_tensor(x[i:i + size], device=self.device)

    # ---- inputs --------------------------------------------------------------------------------------
    def image(self, path):
        """(normalised input (1, C, H, W), lines saying how the file was read) for an image file or a
        .npy array (C, H, W) or (H, W[, C]) in the training data's units."""
        from ..runtime.preprocess import read_image
        shape = self.graph.input_shape
        if len(shape) != 3:
            raise CnnError(f"{path}: the network's input is a vector of {shape[0]}, not an image", usage=True)
        h, w, c = shape
        path = os.fspath(path)
        if path.endswith(".npy"):
            return self._array(path)
        size = _image_size(path) or (w, h)
        notes = [f"image: {path}, {size[0]}x{size[1]} {'gray' if c == 1 else 'RGB'}, pixel values 0..255"]
        if (self.record or {}).get("source") == "digits" and size == (8, 8) != (w, h):
            raw = read_image(path, (1, c, 8, 8))[0].transpose(1, 2, 0)
            x, how = D.fit_images(raw[None], shape, "digits")  # placed as --data digits placed them
            notes += how
        else:  # exactly as an image folder was read for training: Pillow, L or RGB, resized bilinear
            x = read_image(path, (1, c, h, w))
            if size != (w, h):
                notes.append(f"resized {size[1]}x{size[0]} -> {h}x{w} (bilinear, Pillow, as training read image "
                             "folders)")
        r = self.value_range
        if r is not None and D.range_mismatch(r, [0.0, 255.0], "training") is not None:
            x = r[0] + x * ((r[1] - r[0]) / 255.0)
            notes.append(f"pixel values 0..255 scaled to {r[0]:g}..{r[1]:g}, the range of the training data "
                         f"({self.record['source']})")
        return self._normalised(x, notes)

    def _array(self, path):
        from ..files import npy_header, size_of, user_file
        with user_file(path, "--image") as f:  # a regular file, its declared size checked before numpy allocates it
            npy_header(f, f"--image {path}", size_of(f))
            f.seek(0)
            try:
                a = np.load(f, allow_pickle=False).astype(np.float32)
            except (OSError, ValueError) as e:
                raise CnnError(f"{path}: not a readable .npy array ({e})", usage=True) from None
        h, w, c = self.graph.input_shape
        if a.shape == (c, h, w):
            a = a.transpose(1, 2, 0)
        if a.ndim == 2:
            a = a[..., None]
        if a.ndim != 3:
            raise CnnError(f"{path}: an array of {a.shape} is not an image (C, H, W) or (H, W, C)", usage=True)
        x, how = D.fit_images(a[None], (h, w, c), (self.record or {}).get("source"))
        return self._normalised(x, [f"array: {path}, {'x'.join(map(str, a.shape))}, in the training data's units",
                                    *how])

    def _normalised(self, x, notes):
        if self.record is not None:
            notes.append(f"normalised with the recorded mean {_few(self.mean)} and std {_few(self.std)} of "
                         f"{self.record['source']}")
        return self.normalise(torch.as_tensor(x, device=self.device)), notes

    def dataset(self, source, split=True):
        """DATA as training prepared it (cnndsl.train.data.Data), normalised with the checkpoint's record;
        on the data the net was trained on and with `split`, in its training and validation splits (the
        recorded seed and fraction), else every sample in `x_train`. Its `description` says how."""
        rec = self.record or {}
        same = D.same_source(rec, os.fspath(source))  # imgs and imgs/ are one folder
        opts = (C.recorded(self.weights, "options") or {}) if same else {}  # from the header
        frac = opts.get("val_fraction", 0.2) if same and split else 0.0
        # without a record the net gets the data as given, as it gets an image (mean 0, std 1)
        normalise = (rec["mean"], rec["std"]) if rec else (list(self.mean * 0), list(self.std * 0 + 1))
        d = D.load(source, self.graph, seed=opts.get("seed", 0), val_fraction=frac, normalise=normalise)
        if rec:
            far = D.range_mismatch(rec.get("range"), d.range, f"the training data ({rec['source']})")
            if far:
                d.description.append(f"warning: {far}: the recorded normalisation is of another scale")
        else:
            d.description = [l if not l.startswith("normalised:") else "not normalised: the checkpoint records no "
                             "normalisation, so the data is fed as given" for l in d.description]
        if split and not frac:
            d.description.append("not the data the net was trained on: no training and validation split")
        if self.classes is None:
            self.classes = d.classes
        return d

    def data(self, source, split="all", limit=None, seed=0):
        """(normalised samples (N, ...) as numpy, labels, lines saying how) of DATA (see `dataset`): `split`
        "val" or "train" of the data the net was trained on, else every sample; `limit`: at most that
        many, drawn with `seed`."""
        d = self.dataset(source, split=split != "all")
        x, y = (d.x_val, d.y_val) if split == "val" and len(d.x_val) else (d.x_train, d.y_train)
        if limit is not None and len(x) > limit:
            pick = np.sort(np.random.default_rng(seed).choice(len(x), limit, replace=False))
            x, y = x[pick], y[pick]
            d.description.append(f"{limit} samples drawn (seed {seed})")
        return x, y, d.description


@contextlib.contextmanager
def quiet():
    """captum warns about what this package does on purpose (an input given requires_grad, backward hooks
    set on ReLUs for guided backpropagation): not the user's business."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def _image_size(path):
    from ..files import user_image
    try:
        with user_image(path, "--image", 1) as img:
            return img.size
    except CnnError:  # read_image says what is wrong with the file
        return None


def _few(values):
    return ", ".join(f"{v:.4g}" for v in list(values)[:3]) + (" ..." if len(values) > 3 else "")
