"""`cnndsl import MODEL`: an ONNX file, a PyTorch module or a Caffe prototxt as a .net spec
(cnndsl.importers does the work and prints the spec)."""
from __future__ import annotations

import sys

from ..errors import CnnError


def add_import(sub):
    p = sub.add_parser("import", help="an ONNX file, a PyTorch module or a Caffe prototxt as a .net spec")
    p.add_argument("model", help="MODEL.onnx, NET.prototxt, or package.module:callable (a PyTorch module)")
    p.add_argument("-o", "--output", help="the .net file to write (default: stdout)")
    p.add_argument("--weights", metavar="OUT.safetensors", help="write the model's weights under the spec's names")
    p.add_argument("--input", metavar="HxWxC", help="the input size, where the model leaves it open")
    p.add_argument("--partial", action="store_true",
                   help="import up to the first node the language has no layer for, and list those nodes")
    p.add_argument("--no-check", action="store_true",
                   help="do not run the source and the import side by side on a random input")


def cmd_import(args):
    from ..importers import import_model
    if args.weights and not args.output:
        raise CnnError("--weights needs -o OUT.net: the weights record the spec they belong to", usage=True)
    imported = import_model(args.model, input=args.input, partial=args.partial)
    for what in imported.unsupported:
        print(f"cnndsl: warning: not imported: {what}", file=sys.stderr)
    r = imported.check() if not args.no_check else imported.net.report()["totals"]
    layers = len([n for n in imported.net.graph.nodes if not n.implicit])
    print(f"imported {args.model}: {layers} layers, {r['params']:,} params, {r['macs']:,} MACs", file=sys.stderr)
    if "max_abs_diff" in r:
        print(f"checked: the source and the import on a random input differ by at most {r['max_abs_diff']:.3g} "
              f"(outputs of scale {r['output_scale']:.3g})", file=sys.stderr)
    if args.output:
        imported.save(args.output, weights=args.weights)
        print(f"wrote {args.output}" + (f" and {args.weights}" if args.weights else ""), file=sys.stderr)
    else:
        sys.stdout.write(imported.text)
    return 0
