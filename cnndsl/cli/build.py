"""What a spec is turned into: `cnndsl compile` (PyTorch source), `export` (ONNX), `run` (an ONNX
model timed in onnxruntime: cnndsl.runtime) and `draw` (a diagram: cnndsl.draw)."""
from __future__ import annotations

import sys

from .. import options as O
from .common import emit, load, print_warnings, print_weights, refuse_overwrite, spec_options


def add_compile(sub):
    p = sub.add_parser("compile", help="write standalone PyTorch source for a spec")
    spec_options(p)
    p.add_argument("-o", "--output", required=True, help="the .py file to write")
    p.add_argument("--class-name", help="the class name (default: from the file name)")
    p.add_argument("--logits", action="store_true",
                   help="leave out a final SOFTMAX (as to_torch(logits=True)), to train with CrossEntropyLoss")


def cmd_compile(args):
    net = load(args)
    refuse_overwrite(net, args.output)
    print_warnings(net)
    emit(net.torch_source(class_name=args.class_name, logits=args.logits), args.output)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def add_export(sub):
    p = sub.add_parser("export", help="write an ONNX model built from the spec")
    spec_options(p)
    p.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    p.add_argument("--weights", help="a checkpoint (.safetensors or .pt state_dict): cnndsl names load by name, "
                   "torchvision-style keys are mapped module by module")
    p.add_argument("--partial-weights", action="store_true",
                   help="load the tensors whose names and shapes match; the rest keeps a random initialisation")
    p.add_argument("--weights-map", metavar="FILE.json", help="{their module prefix: ours}: where a foreign "
                   "state_dict's modules go when its names and shapes leave them ambiguous")
    p.add_argument("--opset", type=O.whole(1, 1000), help="ONNX opset, 13 or newer (default 17: onnxruntime >= 1.13 loads it)")
    p.add_argument("--batch", type=O.whole_or("dynamic", 1, O.MAX_BATCH), default="dynamic",
                   help="a fixed batch size, or 'dynamic' (default)")
    p.add_argument("--normalize-in-graph", nargs="?", const="raw", choices=("raw", "unit"),
                   help="start the graph with the checkpoint's input normalisation (Sub, Div), so that it takes "
                        "the training data's own units (raw, the default) or 0..1 for 0..255 pixels (unit)")


def cmd_export(args):
    net = load(args)
    refuse_overwrite(net, args.output, args.output + ".data")  # a large model's weights go beside it
    print_warnings(net)
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        model = net.to_onnx(args.output, weights=args.weights, opset=args.opset, batch=args.batch,
                            weights_strict=not args.partial_weights, normalize=args.normalize_in_graph,
                            weights_mapping=_weights_map(args.weights_map))
    for w in caught:
        print(f"cnndsl: warning: {w.message}", file=sys.stderr)
    import json
    props = {p.key: p.value for p in model.metadata_props}
    if "cnndsl.weights" in props:
        print_weights(json.loads(props["cnndsl.weights"]), args.weights)
    print(f"input: {json.loads(props['cnndsl.preprocessing'])['feed']}", file=sys.stderr)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _weights_map(path):
    if path is None:
        return None
    from ..weights import read_mapping
    return read_mapping(path)


def add_run(sub):
    p = sub.add_parser("run", help="run a model with onnxruntime and time it")
    p.add_argument("model", help="a .onnx model or a .net spec (exported with random weights)")
    p.add_argument("--input", dest="data", default="random",
                   help="x.npy (NCHW float32, in the training data's units), an image file, or 'random'; "
                        "given data is normalised as the model's metadata records and its top classes printed")
    p.add_argument("--batch", type=O.batch, default=None,
                   help="batch of a random input (default: the model's fixed batch, or 1); with --input it must match")
    p.add_argument("--repeat", type=O.whole(1, O.MAX_REPEAT), default=20)
    p.add_argument("-D", dest="defines", metavar="NAME=VALUE", action="append", default=[])
    p.add_argument("--provider", choices=("auto", "cpu", "cuda", "tensorrt"), default="auto")
    p.add_argument("--top", type=O.whole(0, 1000), default=5, help="classes shown per sample of --input (0: none)")
    p.add_argument("--no-normalize", action="store_true",
                   help="feed --input as given (already normalised), not as the model's metadata records")


def cmd_run(args):
    from ..net import load, parse_defines
    from ..runtime.onnx_run import benchmark, format_benchmark, is_spec
    bindings, model = parse_defines(args.defines), args.model
    model, bindings = (load(model, bindings=bindings), None) if is_spec(model) else (model, bindings)
    result = benchmark(model, data=args.data, batch=args.batch, repeat=args.repeat, provider=args.provider,
                       bindings=bindings, top=args.top, normalize=not args.no_normalize)
    for w in result["warnings"]:
        print(w.render("warning"), file=sys.stderr)
    for note in result["notes"]:
        print(f"cnndsl: warning: {note}", file=sys.stderr)
    print(format_benchmark(result))
    return 0


def add_draw(sub):
    p = sub.add_parser("draw", help="render an architecture diagram")
    spec_options(p)
    p.add_argument("-o", "--output", required=True, help="OUT.svg, .png, .pdf or .dot")
    p.add_argument("--style", choices=("graph", "volumes"), default="graph")
    p.add_argument("--rankdir", choices=("TB", "LR"), default=None)
    p.add_argument("--expand", action="store_true", help="draw every repetition of repeated blocks")
    p.add_argument("--detail", choices=("low", "high"), default="low")
    p.add_argument("--size", metavar="WxH", help="the box the picture fits: px (1920x1080) or inches "
                   "(13.33x7.5in); default a 16:9 slide, 13.33x7.5in")
    p.add_argument("--dpi", type=O.whole(10, 2400), default=None, help="pixels per inch of a PNG (default 144: 1920x1080 px)")


def cmd_draw(args):
    from ..draw import dot_fallback
    net = load(args)
    # without graphviz's dot the DOT is written beside the output: it must not replace the spec either
    refuse_overwrite(net, args.output, dot_fallback(args.output, args.style))
    print_warnings(net)
    out = net.draw(args.output, style=args.style, rankdir=args.rankdir, expand=args.expand, detail=args.detail,
                   size=args.size, dpi=args.dpi)
    print(f"wrote {out or args.output}", file=sys.stderr)
    return 0
