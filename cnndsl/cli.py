"""The command line: arguments in, library calls out, errors printed. Nothing else lives here.

Exit status: 0 fine, 1 a faulty spec (or model file), 2 a usage error.
"""
from __future__ import annotations

import argparse
import os
import sys

from .errors import CnnError

FORMATS = ("table", "markdown", "json", "csv")
MAX_BATCH = 2**31 - 1     # option numbers past these are usage errors (exit 2), never overflows
MAX_REPEAT = 1_000_000


def _whole(lo, hi):
    """An argparse type: a whole number in [lo, hi]; anything else is a usage error (exit 2)."""
    def parse(text):
        text = str(text).strip()
        if not (text.lstrip("+-").isdigit() and len(text) <= 20):
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number")
        n = int(text)
        if not lo <= n <= hi:
            raise argparse.ArgumentTypeError(f"{n} is out of range [{lo}, {hi:,}]")
        return n
    return parse


def _spec_options(p: argparse.ArgumentParser):
    p.add_argument("file", help="a .net spec")
    p.add_argument("--input", metavar="HxWxC", help="override the spec's input volume, e.g. 32x32x3")
    p.add_argument("-D", dest="defines", metavar="NAME=VALUE", action="append", default=[],
                   help="bind a variable or switch an optional (-D pool=off); repeatable")
    p.add_argument("--strict", action="store_true", help="a window that does not fit is an error, not a warning")
    _include_option(p)


def _include_option(p):
    p.add_argument("--include-dir", dest="include_dirs", metavar="DIR", action="append", default=[],
                   help="a folder beyond the spec's own folder tree that its includes may read; repeatable")


def _parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="cnndsl", description="A language for convolutional networks: "
                                  "shape-check, size, compile and draw them.")
    top.add_argument("--version", action="version", version=f"cnndsl {_version()}")
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("report", help="per-layer volumes, parameters, MACs, memory, receptive field")
    _spec_options(p)
    p.add_argument("--batch", type=_whole(-MAX_BATCH, MAX_BATCH), default=1,
                   help="batch size of the training-memory estimate (default 1)")
    p.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default="fp32")
    p.add_argument("--optimizer", choices=("sgd", "momentum", "adam"), default="adam")
    p.add_argument("--memory", metavar="BUDGET", help="a memory budget (24GiB): print the largest batch that trains in it")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("-o", "--output", help="write the report here instead of stdout")

    p = sub.add_parser("check", help="validate specs (errors and warnings only; for CI and editors)")
    p.add_argument("files", nargs="+")
    p.add_argument("-D", dest="defines", metavar="NAME=VALUE", action="append", default=[])
    p.add_argument("--input", metavar="HxWxC")
    p.add_argument("--strict", action="store_true")
    _include_option(p)
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="json: {\"files\": [...], \"diagnostics\": [...]} on stdout")

    p = sub.add_parser("compile", help="write standalone PyTorch source for a spec")
    _spec_options(p)
    p.add_argument("-o", "--output", required=True, help="the .py file to write")
    p.add_argument("--class-name", help="the class name (default: from the file name)")

    p = sub.add_parser("export", help="write an ONNX model built from the spec")
    _spec_options(p)
    p.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    p.add_argument("--weights", help="a checkpoint (.safetensors or .pt state_dict): cnndsl names load by name, "
                   "torchvision-style keys are mapped module by module")
    p.add_argument("--partial-weights", action="store_true",
                   help="load the tensors whose names and shapes match; the rest keeps a random initialisation")
    p.add_argument("--opset", type=_whole(-1000, 1000), help="ONNX opset, 13 or newer (default 17: onnxruntime >= 1.13 loads it)")
    p.add_argument("--batch", default="dynamic", help="a fixed batch size, or 'dynamic' (default)")

    p = sub.add_parser("run", help="run a model with onnxruntime and time it")
    p.add_argument("model", help="a .onnx model or a .net spec (exported with random weights)")
    p.add_argument("--input", dest="data", default="random", help="x.npy (NCHW float32) or 'random'")
    p.add_argument("--batch", type=_whole(-MAX_BATCH, MAX_BATCH), default=None,
                   help="batch of a random input (default: the model's fixed batch, or 1); with --input it must match")
    p.add_argument("--repeat", type=_whole(-MAX_REPEAT, MAX_REPEAT), default=20)
    p.add_argument("-D", dest="defines", metavar="NAME=VALUE", action="append", default=[])
    p.add_argument("--provider", choices=("auto", "cpu", "cuda", "tensorrt"), default="auto")

    p = sub.add_parser("draw", help="render an architecture diagram")
    _spec_options(p)
    p.add_argument("-o", "--output", required=True, help="OUT.svg, .png, .pdf or .dot")
    p.add_argument("--style", choices=("graph", "volumes"), default="graph")
    p.add_argument("--rankdir", choices=("TB", "LR"), default=None)
    p.add_argument("--expand", action="store_true", help="draw every repetition of repeated blocks")
    p.add_argument("--detail", choices=("low", "high"), default="low")
    return top


def _version():
    from . import __version__
    return __version__


def _bindings(defines) -> dict:
    from .net import parse_defines
    return parse_defines(defines)


def _load(args):
    from .net import load
    return load(args.file, input=args.input, bindings=_bindings(args.defines), strict=args.strict,
                include_dirs=args.include_dirs)


def _print_warnings(net):
    for w in net.warnings:
        print(w.render("warning"), file=sys.stderr)


def cmd_report(args):
    from .analysis import report
    net = _load(args)
    if args.batch < 1:
        raise CnnError("--batch must be at least 1", usage=True)
    rep = net.report(dtype=args.dtype, batch=args.batch, optimizer=args.optimizer, memory=args.memory)
    if args.format == "json":
        import json
        text = json.dumps(rep, indent=1) + "\n"
    else:
        text = {"table": report.table, "markdown": report.markdown, "csv": report.csv_text}[args.format](rep)
    if args.format != "json" or args.output:
        _print_warnings(net)
    _emit(text, args.output)
    return 0


def cmd_check(args):
    if args.format == "json":
        return _check_json(args)
    from .net import load
    status = 0
    for f in args.files:
        try:
            net = load(f, input=args.input, bindings=_bindings(args.defines), strict=args.strict,
                       include_dirs=args.include_dirs)
            _print_warnings(net)
            print(f"{f}: ok ({len(net.graph.nodes)} layers)")
        except CnnError as e:
            if e.usage:
                raise
            print(e.render(), file=sys.stderr)
            status = 1
    return status


CHECK_SCHEMA = "cnndsl.check/1"


def _check_json(args):
    """Every file's diagnostics as data; exit 1 if any has an error, 2 for a usage error."""
    import json
    from .net import load
    files, diagnostics, status = [], [], 0
    bindings = _bindings(args.defines)
    for f in args.files:
        try:
            net = load(f, input=args.input, bindings=bindings, strict=args.strict, include_dirs=args.include_dirs)
            found, entry = list(net.warnings), {"file": f, "ok": True, "layers": len(net.graph.nodes)}
        except CnnError as e:
            found, entry = list(e.diagnostics), {"file": f, "ok": False, "layers": None}
            status = max(status, 2 if e.usage else 1)
        entry["errors"] = sum(d.severity == "error" for d in found)
        entry["warnings"] = len(found) - entry["errors"]
        files.append(entry)
        diagnostics += [{**d.to_dict(), "file": d.to_dict()["file"] or f} for d in found]
    print(json.dumps({"schema": CHECK_SCHEMA, "files": files, "diagnostics": diagnostics}, indent=1))
    return status


def cmd_compile(args):
    net = _load(args)
    _print_warnings(net)
    _emit(net.torch_source(class_name=args.class_name), args.output)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def cmd_export(args):
    net = _load(args)
    _print_warnings(net)
    batch = args.batch if args.batch == "dynamic" else _int(args.batch, "--batch")
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        model = net.to_onnx(args.output, weights=args.weights, opset=args.opset, batch=batch,
                            weights_strict=not args.partial_weights)
    for w in caught:
        print(f"cnndsl: warning: {w.message}", file=sys.stderr)
    props = {p.key: p.value for p in model.metadata_props}
    if "cnndsl.weights" in props:
        import json
        _print_weights(json.loads(props["cnndsl.weights"]), args.weights)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _print_weights(r, path):
    """What a checkpoint load did: how it matched, what it mapped, what it left out."""
    how = "by name" if r["source"] == "cnndsl" else "mapped module by module from foreign keys"
    print(f"weights: {r['loaded']} tensors from {path}, {how}", file=sys.stderr)
    if r["same_spec"] is False:
        ck = r["checkpoint"]
        print(f"  saved from another spec: {ck.get('spec_name', '?')} (sha256 {ck['spec_sha256'][:12]})",
              file=sys.stderr)
    if r["source"] == "mapped":
        modules = {}
        for theirs, ours in r["mapping"].items():
            modules.setdefault(theirs.rpartition(".")[0], ours.rpartition(".")[0])
        for theirs, ours in modules.items():
            print(f"  {theirs} -> {ours}", file=sys.stderr)
    for k in r["resized"]:
        s = r["shapes"][k]
        print(f"  resized, not loaded: {k} (checkpoint {_dims(s['checkpoint'])}, here {_dims(s['here'])})",
              file=sys.stderr)
    for k in r["unexpected"]:
        print(f"  skipped, no layer here: {k}", file=sys.stderr)
    for k in r["missing"]:
        print(f"  not in the checkpoint, random: {k}", file=sys.stderr)


def _dims(shape):
    return "x".join(map(str, shape)) or "scalar"


def cmd_run(args):
    from .net import parse_defines
    from .runtime.onnx_run import benchmark, format_benchmark
    result = benchmark(args.model, data=args.data, batch=args.batch, repeat=args.repeat, provider=args.provider,
                       bindings=parse_defines(args.defines))
    for w in result["warnings"]:
        print(w.render("warning"), file=sys.stderr)
    print(format_benchmark(result))
    return 0


def cmd_draw(args):
    net = _load(args)
    _print_warnings(net)
    out = net.draw(args.output, style=args.style, rankdir=args.rankdir, expand=args.expand, detail=args.detail)
    print(f"wrote {out or args.output}", file=sys.stderr)
    return 0


def _int(text, what):
    try:
        return _whole(-MAX_BATCH, MAX_BATCH)(text)
    except argparse.ArgumentTypeError as e:
        raise CnnError(f"{what} {e}", usage=True) from None


def _emit(text: str, path: str | None):
    if not path:
        sys.stdout.write(text)
        return
    from .files import atomic_write
    atomic_write(path, text.encode("utf-8"))


def main(argv=None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    try:
        return globals()[f"cmd_{args.command}"](args)
    except CnnError as e:
        print(e.render(), file=sys.stderr)
        return 2 if e.usage else 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # a bug of ours, not the user's: say so briefly
        if os.environ.get("CNNDSL_DEBUG"):
            raise
        print(f"cnndsl: internal error: {type(e).__name__}: {e}\n"
              f"  this is a bug in cnndsl; rerun with CNNDSL_DEBUG=1 for the traceback", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
