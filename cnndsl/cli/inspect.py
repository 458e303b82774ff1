"""`cnndsl inspect FILE --weights CKPT WHAT`: looking inside a trained net by the spec's layer names
(cnndsl.inspection does the work and renders its result as a table or JSON)."""
from __future__ import annotations

import argparse
import sys

from .. import options as O
from .common import load, print_warnings, refuse_overwrite, spec_options


INSPECT_HELP = {
    "filters": "a layer's filters as an image grid (default: the first convolution)",
    "activations": "a layer's maps for one input, as a grid",
    "stats": "per layer: mean, std, histogram and dead units of the activations (--init: an untrained net)",
    "patches": "the input patches that excite a layer's channels most, cropped at the exact receptive field",
    "neighbours": "nearest neighbours in a layer's feature space against pixel space",
    "embed": "t-SNE of a layer's features, coloured by class",
    "saliency": "a heat map of the class score's dependence on the pixels (captum)",
    "occlusion": "a heat map of the class probability's drop under a sliding occluder (captum)",
    "maximize": "the image that most excites a class (gradient ascent with an L2 prior)",
    "invert": "an image whose features at a layer match a given image's",
    "fool": "the smallest iterative gradient-sign perturbation that makes the net say a class",
}


def add_inspect(sub):
    p = sub.add_parser("inspect", help="look inside a trained net by the spec's layer names (the lecture's "
                       "visualisation deck)", description="cnndsl inspect FILE --weights CKPT WHAT [options]")
    spec_options(p)
    what = p.add_subparsers(dest="what", metavar="WHAT")
    what.required = True
    for name, text in INSPECT_HELP.items():
        w = what.add_parser(name, help=text, description=text)
        _inspect_common(w, argparse.SUPPRESS)  # also after WHAT; given before it, they are kept
        _INSPECT_OPTIONS[name](w)
    _inspect_common(p, None)


def _inspect_common(p, default):
    d = {"default": default}
    p.add_argument("--weights", metavar="CKPT", help="the trained checkpoint (weights.safetensors of cnndsl train)", **d)
    p.add_argument("-o", "--output", metavar="OUT", help="write the picture (.png, .pdf, .svg) or the arrays (.npz)", **d)
    p.add_argument("--format", choices=("table", "json"), help="json: the numbers (arrays too), on stdout", **d)
    p.add_argument("--seed", type=O.whole(0, O.MAX_SEED), help="of samples drawn, t-SNE, initialisation (default 0)", **d)
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), help="default cpu", **d)
    p.add_argument("--threads", type=O.whole(1, 1024), help="torch threads (default 1, as cnndsl train)", **d)


def _layer_opt(p, required=False, text="a layer by its spec name (the report's names; a group: its last layer)"):
    p.add_argument("--layer", metavar="NAME", required=required, help=text)


def _image_opt(p):
    p.add_argument("--image", metavar="IMG", required=True, help="an image file (read as training read image "
                   "folders, fitted to the net's input) or a .npy array in the training data's units")


def _data_opt(p):
    p.add_argument("--data", required=True, help="digits, synthetic[:N], a FOLDER with a sub-folder per class, "
                   "or FILE.npz (as cnndsl train --data), normalised as the checkpoint records")


def _class_opt(p, flag="--class", dest="cls", required=False):
    p.add_argument(flag, dest=dest, metavar="C", required=required,
                   help="a class, by index or recorded name" + ("" if required else " (default: the predicted one)"))


def _opts_filters(p):
    _layer_opt(p, text="a CONV layer (default: the first), or an FC layer that reads a volume")


def _opts_activations(p):
    _layer_opt(p, required=True)
    _image_opt(p)


def _opts_stats(p):
    p.add_argument("--data", help="the inputs (as cnndsl train --data); default with --init: unit Gaussian noise")
    p.add_argument("--init", metavar="he|xavier|normal:STD", help="an untrained net: every CONV/FC weight drawn "
                   "afresh (no --weights)")
    p.add_argument("--act", choices=("relu", "tanh"), help="put this activation in place of every activation layer")
    p.add_argument("--samples", type=O.whole(1, 10**6), help="inputs used (default 512)")


def _opts_patches(p):
    _layer_opt(p, required=True)
    _data_opt(p)
    p.add_argument("--channel", metavar="C", help="a channel, or several: 0,3,5 (default: the first 8)")
    p.add_argument("--top", type=O.whole(1, 1000), help="patches per channel (default 8)")
    p.add_argument("--samples", type=O.whole(1, 10**7), help="at most this many samples searched (default: all)")


def _opts_neighbours(p):
    _data_opt(p)
    _layer_opt(p, text="the feature layer (default: the last hidden layer)")
    p.add_argument("--query", type=O.whole(1, 100), help="query rows drawn (default 5)")
    p.add_argument("--k", type=O.whole(1, 100), help="neighbours per query (default 6)")


def _opts_embed(p):
    _data_opt(p)
    _layer_opt(p, text="the feature layer (default: the last hidden layer)")
    p.add_argument("--samples", type=O.whole(5, 10**5), help="samples embedded (default 1000)")
    p.add_argument("--perplexity", type=O.real(1, 1000), help="t-SNE's perplexity (default 30)")


def _opts_saliency(p):
    _image_opt(p)
    _class_opt(p)
    p.add_argument("--method", choices=("gradient", "guided", "gradcam", "integrated"), help="default gradient")
    _layer_opt(p, text="Grad-CAM's layer (default: the last layer with spatial extent)")
    p.add_argument("--steps", type=O.whole(1, 10**4), help="integrated gradients' steps (default 50)")


def _opts_occlusion(p):
    _image_opt(p)
    _class_opt(p)
    p.add_argument("--window", type=O.whole(1, 10**5), help="the occluder's side in pixels (default 1/6 of the input)")
    p.add_argument("--stride", type=O.whole(1, 10**5), help="its step (default a third of the window)")


def _opts_maximize(p):
    _class_opt(p, required=True)
    p.add_argument("--steps", type=O.whole(1, 10**5), help="gradient steps (default 200)")
    p.add_argument("--l2", type=O.real(0), help="weight of the L2 prior (default 1e-3)")
    p.add_argument("--lr", type=O.real(0, lo_open=True), help="step size in normalised units (default 0.05)")
    p.add_argument("--jitter", type=O.whole(0, 1000), help="random shift of up to this many pixels per step (default 0)")
    p.add_argument("--blur", type=O.real(0, 100), help="Gaussian blur of this sigma every 4 steps (default 0: none)")


def _opts_invert(p):
    _layer_opt(p, required=True)
    _image_opt(p)
    p.add_argument("--steps", type=O.whole(1, 10**5), help="gradient steps (default 200)")
    p.add_argument("--tv", type=O.real(0), help="weight of the total-variation prior (default 1e-2)")
    p.add_argument("--lr", type=O.real(0, lo_open=True), help="step size in normalised units (default 0.05)")


def _opts_fool(p):
    _image_opt(p)
    _class_opt(p, "--target", "target", required=True)
    p.add_argument("--step", type=O.real(0, lo_open=True), help="each step's size, normalised units (default 1/1000 of the data's range)")
    p.add_argument("--steps", type=O.whole(1, 10**5), help="the most steps tried (default 500)")


_INSPECT_OPTIONS = {"filters": _opts_filters, "activations": _opts_activations, "stats": _opts_stats,
                    "patches": _opts_patches, "neighbours": _opts_neighbours, "embed": _opts_embed,
                    "saliency": _opts_saliency, "occlusion": _opts_occlusion, "maximize": _opts_maximize,
                    "invert": _opts_invert, "fool": _opts_fool}


INSPECT_SKIP = {"file", "input", "defines", "strict", "include_dirs", "command", "what", "weights", "output", "format",
                "seed", "device", "threads"}


def cmd_inspect(args):
    from ..inspection import inspect
    net = load(args)
    refuse_overwrite(net, args.output)
    print_warnings(net)
    options = {k: v for k, v in vars(args).items() if k not in INSPECT_SKIP and v is not None}
    bar = Bar(f"inspect {args.what}")
    try:
        r = inspect(net, args.what, weights=args.weights, seed=args.seed or 0, device=args.device or "cpu",
                    threads=args.threads or 1, progress=bar.update, **options)
    finally:
        bar.close()
    for n in r.notes:
        print(f"inspect: {n}", file=sys.stderr)
    if args.output:
        r.save(args.output)
        print(f"wrote {args.output}", file=sys.stderr)
    if args.format == "json":
        import json
        print(json.dumps(r.json(), indent=1))
    else:
        print(r.table(), end="")
    return 0


class Bar:
    """A tqdm bar (on stderr, on a terminal) that appears only once the work has taken a second."""

    def __init__(self, desc):
        import time
        self.desc, self.bar, self.start, self.clock = desc, None, time.monotonic(), time.monotonic

    def update(self, done, total):
        if self.bar is None:
            if self.clock() - self.start < 1.0 or done >= total:
                return
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=self.desc, leave=False, file=sys.stderr, disable=None, dynamic_ncols=True)
        self.bar.update(done - self.bar.n)

    def close(self):
        if self.bar is not None:
            self.bar.close()
