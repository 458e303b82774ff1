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
    p.add_argument("--symbolic", metavar="VARS", help="closed form: volumes, params, MACs and totals as formulas in "
                   "these variables (comma-separated, e.g. C,N; needs sympy)")
    p.add_argument("--freeze", metavar="NAMES", help="layers that do not train (as train --freeze): the "
                   "totals' trainable parameters leave them out")

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
    p.add_argument("--logits", action="store_true",
                   help="leave out a final SOFTMAX (as to_torch(logits=True)), to train with CrossEntropyLoss")

    p = sub.add_parser("export", help="write an ONNX model built from the spec")
    _spec_options(p)
    p.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    p.add_argument("--weights", help="a checkpoint (.safetensors or .pt state_dict): cnndsl names load by name, "
                   "torchvision-style keys are mapped module by module")
    p.add_argument("--partial-weights", action="store_true",
                   help="load the tensors whose names and shapes match; the rest keeps a random initialisation")
    p.add_argument("--weights-map", metavar="FILE.json", help="{their module prefix: ours}: where a foreign "
                   "state_dict's modules go when its names and shapes leave them ambiguous")
    p.add_argument("--opset", type=_whole(-1000, 1000), help="ONNX opset, 13 or newer (default 17: onnxruntime >= 1.13 loads it)")
    p.add_argument("--batch", default="dynamic", help="a fixed batch size, or 'dynamic' (default)")
    p.add_argument("--normalize-in-graph", nargs="?", const="raw", choices=("raw", "unit"),
                   help="start the graph with the checkpoint's input normalisation (Sub, Div), so that it takes "
                        "the training data's own units (raw, the default) or 0..1 for 0..255 pixels (unit)")

    p = sub.add_parser("run", help="run a model with onnxruntime and time it")
    p.add_argument("model", help="a .onnx model or a .net spec (exported with random weights)")
    p.add_argument("--input", dest="data", default="random",
                   help="x.npy (NCHW float32, in the training data's units), an image file, or 'random'; "
                        "given data is normalised as the model's metadata records and its top classes printed")
    p.add_argument("--batch", type=_whole(-MAX_BATCH, MAX_BATCH), default=None,
                   help="batch of a random input (default: the model's fixed batch, or 1); with --input it must match")
    p.add_argument("--repeat", type=_whole(-MAX_REPEAT, MAX_REPEAT), default=20)
    p.add_argument("-D", dest="defines", metavar="NAME=VALUE", action="append", default=[])
    p.add_argument("--provider", choices=("auto", "cpu", "cuda", "tensorrt"), default="auto")
    p.add_argument("--top", type=_whole(0, 1000), default=5, help="classes shown per sample of --input (0: none)")
    p.add_argument("--no-normalize", action="store_true",
                   help="feed --input as given (already normalised), not as the model's metadata records")

    p = sub.add_parser("draw", help="render an architecture diagram")
    _spec_options(p)
    p.add_argument("-o", "--output", required=True, help="OUT.svg, .png, .pdf or .dot")
    p.add_argument("--style", choices=("graph", "volumes"), default="graph")
    p.add_argument("--rankdir", choices=("TB", "LR"), default=None)
    p.add_argument("--expand", action="store_true", help="draw every repetition of repeated blocks")
    p.add_argument("--detail", choices=("low", "high"), default="low")
    p.add_argument("--size", metavar="WxH", help="the box the picture fits: px (1920x1080) or inches "
                   "(13.33x7.5in); default a 16:9 slide, 13.33x7.5in")
    p.add_argument("--dpi", type=int, default=None, help="pixels per inch of a PNG (default 144: 1920x1080 px)")
    _search_parsers(sub)
    _train_parser(sub)
    _eval_parser(sub)
    return top


def _search_parsers(sub):
    p = sub.add_parser("search", help="search a family (ranged variables, free optionals) under budgets")
    p.add_argument("file", help="a .net spec with ranges (let N = 2 in 1..5) or -D ranges")
    p.add_argument("-D", dest="defines", metavar="NAME=VALUES", action="append", default=[],
                   help="a range (N=1..5), a list (K=0,1,2; pool=on,off), pool=each (every occurrence on its own) "
                        "or a fixed value (N=3); repeatable")
    p.add_argument("--input", metavar="HxWxC")
    p.add_argument("--strict", action="store_true", help="drop members whose windows leave input rows unread")
    p.add_argument("--max-params", metavar="X")
    p.add_argument("--max-macs", metavar="X")
    p.add_argument("--max-memory", metavar="BYTES", help="training memory at --batch (24GiB)")
    p.add_argument("--batch", type=int, default=None, help="the batch of the memory estimate, and of training "
                   "with --train (default 1; 32 with --train)")
    p.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default="fp32")
    p.add_argument("--optimizer", choices=("sgd", "momentum", "adam"), default="adam")
    p.add_argument("--min-rf", type=int, metavar="N")
    p.add_argument("--where", metavar="EXPR", help="a condition on the variables and measures: 'N >= M and params < 1e6'")
    p.add_argument("--sort", default="params", help="params, macs, memory, depth or rf (default params)")
    p.add_argument("--top", type=int, default=10, help="members listed (default 10; 0: all)")
    p.add_argument("--pareto", default="params,macs", metavar="A,B", help="the front's two measures (default params,macs)")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument("--emit", metavar="DIR", help="write the listed members as concrete .net files")
    p.add_argument("--plot", metavar="PNG", help="scatter of the kept members with the Pareto front (matplotlib)")
    p.add_argument("--sample", type=int, metavar="N", help="measure N members drawn at random (--seed)")
    p.add_argument("--seed", type=int, default=0, help="of --sample, and of training with --train (default 0)")
    p.add_argument("--limit", type=int, default=200_000, help="refuse spaces larger than this without --sample")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: one per core)")
    p.add_argument("--symbolic", metavar="VARS", help="also print the totals as formulas in these variables")
    t = p.add_argument_group("accuracy, not only cost (--train DATA: cnndsl train's data and options)")
    t.add_argument("--train", metavar="DATA", help="train the members one after another and add their validation "
                   "accuracy: digits, synthetic[:N], a FOLDER with a sub-folder per class, or FILE.npz")
    t.add_argument("--train-on", choices=("front", "top"), default=None,
                   help="front: the Pareto front's members (default); top: the listed best --top")
    t.add_argument("--resume", action="store_true", help="continue the members' runs in --emit DIR (a finished "
                   "member is read back, not retrained)")
    _training_options(t, batch_seed=False)

    p = sub.add_parser("match", help="whether a concrete .net is a member of a family, and with which bindings")
    p.add_argument("net", help="a concrete .net")
    p.add_argument("family", help="a .net with ranges")
    p.add_argument("-D", dest="defines", metavar="NAME=VALUES", action="append", default=[])
    p.add_argument("--input", metavar="HxWxC")
    p.add_argument("--limit", type=int, default=200_000)


def _train_parser(sub):
    p = sub.add_parser("train", help="train a spec's network on data (one process, or each of torchrun's)",
                       description="Options left out take the checkpoint's values with --resume, else the defaults.")
    _spec_options(p)
    p.add_argument("--data", required=True, help="digits, synthetic[:N], a FOLDER with a sub-folder per class, "
                   "or FILE.npz with arrays x and y")
    _training_options(p)
    p.add_argument("--out", metavar="DIR", help="write metrics.jsonl, curves.png, checkpoints and the spec here")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--init", metavar="CKPT", help="start from a checkpoint's tensors whose names and shapes match "
                   "(a torchvision state_dict is mapped); prints what it skipped")
    p.add_argument("--freeze", metavar="NAMES", help="layers or groups that do not train, comma-separated; "
                   "..NAME: everything up to NAME")


def _training_options(p, batch_seed=True):
    """The options of `cnndsl train` that `search --train` passes on too (search has its own --batch
    and --seed, which serve both)."""
    from .train.options import AUGMENTS, DEVICES, OPTIMIZERS, SCHEDULES
    p.add_argument("--epochs", type=int, help="epochs in all (with --resume: to train up to; default 10)")
    if batch_seed:
        p.add_argument("--batch", type=int, help="batch size per process (default 32)")
    p.add_argument("--opt", choices=OPTIMIZERS, help="optimizer (default adam)")
    p.add_argument("--lr", type=float, help="learning rate (default: adam/adamw 0.003, rmsprop 0.001, "
                   "sgd/momentum/nesterov/adagrad 0.01, adadelta 1.0)")
    p.add_argument("--momentum", type=float, help="for momentum and nesterov (default 0.9) and rmsprop (0)")
    p.add_argument("--weight-decay", type=float, help="L2 penalty (default 0)")
    p.add_argument("--schedule", choices=SCHEDULES, help="step: x0.1 every third of the run; exp: x0.1 over "
                   "the run; cosine; plateau: x0.1 when val accuracy stalls 2 epochs (default none)")
    p.add_argument("--warmup", type=int, metavar="STEPS", help="linear warm-up over the first STEPS batches")
    p.add_argument("--augment", choices=AUGMENTS, help="random horizontal flips, random crops (default none)")
    p.add_argument("--label-smoothing", type=float, metavar="S")
    p.add_argument("--device", choices=DEVICES, help="default auto: cuda when there is one")
    p.add_argument("--amp", action="store_true", default=None, help="mixed precision (bf16, or fp16 with loss scaling)")
    p.add_argument("--channels-last", action="store_true", default=None)
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    if batch_seed:
        p.add_argument("--seed", type=int, help="initialisation, split, order, augmentation (default 0)")
    p.add_argument("--workers", type=int, help="DataLoader worker processes (default 0: the data is in memory)")
    p.add_argument("--threads", type=int, help="torch threads (default 1: a second thread gains little on small nets "
                   "and collapses on a shared CPU; same seed, device and threads give the same bits)")
    p.add_argument("--val", type=float, dest="val_fraction", metavar="FRACTION",
                   help="validation share of each class (default 0.2)")


def _eval_parser(sub):
    p = sub.add_parser("eval", help="accuracy, per-class accuracy and confusion matrix of a checkpoint")
    _spec_options(p)
    p.add_argument("--weights", required=True, help="weights.safetensors or checkpoint.safetensors of cnndsl "
                   "train, or any checkpoint of this spec")
    p.add_argument("--data", required=True, help="as for train")
    p.add_argument("--split", choices=("val", "train", "all"),
                   help="default: val on the data it was trained on, else all")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--out", metavar="DIR", help="write confusion.png and eval.json here")


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
    if args.symbolic:
        return _cmd_symbolic(args)
    net = _load(args)
    if args.batch < 1:
        raise CnnError("--batch must be at least 1", usage=True)
    rep = net.report(dtype=args.dtype, batch=args.batch, optimizer=args.optimizer, memory=args.memory)
    if args.freeze:
        from .train import freeze
        freeze.annotate(rep, net.graph, args.freeze)
    if args.format == "json":
        import json
        text = json.dumps(rep, indent=1) + "\n"
    else:
        text = {"table": report.table, "markdown": report.markdown, "csv": report.csv_text}[args.format](rep)
    if args.format != "json" or args.output:
        _print_warnings(net)
    if args.format == "table":  # the spec's `# note:` lines, under the figures they are about
        text += "".join(f"note: {n}\n" for n in net.notes)
    if args.freeze and args.format in ("table", "markdown"):
        t = rep["totals"]
        text += (f"trainable parameters: {t['trainable_params']:,} of {t['params']:,} "
                 f"(frozen: {_frozen_text(args.freeze, rep['frozen'])})\n")
    _emit(text, args.output)
    return 0


def _frozen_text(asked, frozen) -> str:
    """What --freeze named, as the user wrote it, and how many layers that is (never cut short)."""
    from .train.freeze import parse_names
    return f"{', '.join(parse_names(asked))}: {len(frozen)} layer{'s' * (len(frozen) != 1)}"


def _threads_text(n) -> str:
    return f"{n} thread{'s' * (n != 1)}"


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
    _emit(net.torch_source(class_name=args.class_name, logits=args.logits), args.output)
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
                            weights_strict=not args.partial_weights, normalize=args.normalize_in_graph,
                            weights_mapping=_weights_map(args.weights_map))
    for w in caught:
        print(f"cnndsl: warning: {w.message}", file=sys.stderr)
    import json
    props = {p.key: p.value for p in model.metadata_props}
    if "cnndsl.weights" in props:
        _print_weights(json.loads(props["cnndsl.weights"]), args.weights)
    print(f"input: {json.loads(props['cnndsl.preprocessing'])['feed']}", file=sys.stderr)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _weights_map(path):
    """--weights-map: a JSON object {their module prefix: our module prefix}."""
    if path is None:
        return None
    import json
    from .files import read_bytes
    try:
        m = json.loads(read_bytes(path))
    except ValueError as e:
        raise CnnError(f"{path}: not JSON ({e})", usage=True) from None
    if not isinstance(m, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in m.items()):
        raise CnnError(f"{path}: must be a JSON object of strings, {{their module prefix: ours}}", usage=True)
    return m


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
        how = r.get("matched_by", {})
        for theirs, ours in modules.items():
            print(f"  {theirs} -> {ours}" + (f" (by {how[theirs]})" if theirs in how else ""), file=sys.stderr)
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
    from .net import load, parse_defines
    from .runtime.onnx_run import benchmark, format_benchmark, is_spec
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


def cmd_draw(args):
    net = _load(args)
    _print_warnings(net)
    out = net.draw(args.output, style=args.style, rankdir=args.rankdir, expand=args.expand, detail=args.detail,
                   size=args.size, dpi=args.dpi)
    print(f"wrote {out or args.output}", file=sys.stderr)
    return 0


def _family(args):
    from .lang.program import parse_file
    from .search.space import Space
    prog = parse_file(args.file if hasattr(args, "file") else args.family)
    return prog, Space(prog, _bindings(args.defines), input=args.input)


def _cmd_symbolic(args):
    from .search import symbolic as S
    for flag, given in (("--memory", args.memory), ("--freeze", args.freeze),
                        (f"--format {args.format}", args.format in ("markdown", "csv"))):
        if given:
            raise CnnError(f"{flag} has no meaning with --symbolic", usage=True,
                           hint="--symbolic prints formulas as a table or --format json; drop " + flag.split()[0])
    prog, space = _family(args)
    result = S.symbolic(prog, args.symbolic.split(","), bindings=dict(space.fixed), input=args.input,
                        ranges=dict(space.ranges), options=_symbolic_options(args))
    if args.format == "json":
        import json
        text = json.dumps(S.to_json(result, args.file), indent=1) + "\n"
    else:
        text = S.format_table(result, args.file)
    _emit(text, args.output)
    return 0


def _symbolic_options(args):
    if args.batch < 1:
        raise CnnError("--batch must be at least 1", usage=True)
    return dict(batch=args.batch, dtype=args.dtype, optimizer=args.optimizer)


def _amount(text, what):
    if text is None:
        return None
    import re
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kKmMgGtT]?)\s*", str(text))
    if not m:
        raise CnnError(f"{what} {text!r} is not a number", usage=True, hint=f"write e.g. {what} 1e6 or {what} 500k")
    return int(float(m.group(1)) * {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}[m.group(2).lower()])


def cmd_search(args):
    from .search import enumerate as E
    from .search import emit as W
    from .search.where import Where
    from .analysis.analyze import parse_bytes
    prog, space = _family(args)
    where = Where(args.where, set(space.names) | set(space.each)) if args.where else None
    pareto = tuple(m.strip() for m in args.pareto.split(","))
    if len(pareto) != 2 or any(m not in E.MEASURES for m in pareto):
        raise CnnError(f"--pareto {args.pareto}: name two of {', '.join(E.MEASURES)}", usage=True)
    given = _search_training(args)  # before the search: a bad training option is known at once
    n = args.sample if args.sample else space.count
    print(f"{args.file}: {space.count:,} member{'s' * (space.count != 1)}"
          + (f", sampling {min(n, space.count):,}" if args.sample else ""), file=sys.stderr)
    bar = None
    if n >= 2000 and space.count <= args.limit or args.sample:
        from tqdm import tqdm
        bar = tqdm(total=min(n, space.count), unit="member", file=sys.stderr, disable=None, leave=False)
    try:
        result = E.search(space, batch=args.batch, dtype=args.dtype, optimizer=args.optimizer,
                          max_params=_amount(args.max_params, "--max-params"), max_macs=_amount(args.max_macs, "--max-macs"),
                          max_memory=parse_bytes(args.max_memory) if args.max_memory else None, min_rf=args.min_rf,
                          where=where, strict=args.strict, limit=args.limit, sample=args.sample, seed=args.seed,
                          sort=args.sort, top=None, workers=args.jobs, progress=bar.update if bar else None,
                          pareto=pareto)
    finally:
        if bar is not None:
            bar.close()
    everything = result["members"]
    result["members"] = everything[:args.top] if args.top else everything
    if args.symbolic:
        from .search import symbolic as S
        r = S.symbolic(prog, args.symbolic.split(","), bindings=dict(space.fixed), input=args.input,
                       ranges=dict(space.ranges), options=_symbolic_options(args))
        result["symbolic"] = S.text_totals(r)
    if args.emit:
        _emit_members(prog, space, result["members"], args.emit)
    if args.train:
        result["training"] = _train_members(args, space, result, given)
    if args.plot:
        from .search.plot import plot
        plot(result, args.plot, everything=everything)
        print(f"wrote {args.plot}", file=sys.stderr)
    from .search import render
    if args.format == "json":
        import json
        print(json.dumps(result, indent=1, default=str))
    elif args.format == "csv":
        print(render.csv_text(result), end="")
    else:
        print(render.table(result), end="")
    return _training_status(result.get("training"))


SEARCH_TRAIN_OPTIONS = ("epochs", "opt", "lr", "momentum", "weight_decay", "schedule", "warmup", "augment",
                        "label_smoothing", "device", "amp", "channels_last", "compile", "workers", "val_fraction",
                        "threads")


def _search_training(args) -> dict | None:
    """search's --batch (the memory estimate's, and training's: 32 with --train unless given) and the
    training options, checked before any member is measured; None without --train."""
    given = {k: getattr(args, k) for k in SEARCH_TRAIN_OPTIONS if getattr(args, k) is not None}
    if not args.train:
        stray = [k for k in given] + (["resume"] if args.resume else []) + (["train_on"] if args.train_on else [])
        if stray:
            flag = "--" + {"val_fraction": "val"}.get(stray[0], stray[0]).replace("_", "-")
            raise CnnError(f"{flag} is a training option: it needs --train DATA", usage=True,
                           hint="e.g. cnndsl search FAMILY.net --train digits --epochs 5")
        if args.batch is None:
            args.batch = 1
    if args.batch is None:
        from .train.options import DEFAULTS
        args.batch = DEFAULTS["batch"]
    if args.batch < 1:
        raise CnnError("--batch must be at least 1", usage=True)
    if not args.train:
        return None
    args.train_on = args.train_on or "front"
    from .search.train import check_options
    given.update(batch=args.batch, seed=args.seed)
    check_options(args.train, **given)
    return given


def _train_members(args, space, result, given) -> dict:
    from .search.train import select, train_members
    records = select(result, args.train_on)
    progress = _MemberProgress(args, result)
    try:
        summary = train_members(space, records, args.train, out=args.emit, resume=args.resume, callback=progress,
                                include_dirs=getattr(args, "include_dirs", ()), **given)
    finally:
        progress.close()
    summary["on"] = args.train_on
    if summary["interrupted"]:
        print(f"interrupted: {summary['trained'] + summary['failed']} of {summary['selected']} members done"
              + ("; the same command with --resume continues" if args.emit else ""), file=sys.stderr)
    return {k: v for k, v in summary.items() if k not in ("members", "files")}  # the records hold the members'


def _training_status(training) -> int:
    if training is None:
        return 0
    if training["interrupted"]:
        return 130
    return 1 if training["failed"] else 0


class _MemberProgress:
    """search --train's callback: what will train, the data once, a bar per epoch, a line per member."""

    def __init__(self, args, result):
        self.args, self.result, self.bar, self.data_shown, self.resumed = args, result, None, False, None

    def __call__(self, e):
        getattr(self, "on_" + e["event"], lambda e: None)(e)

    def on_plan(self, e):
        o = e["options"]
        which = (f"the Pareto front ({', '.join(self.result['pareto_measures'])})" if self.args.train_on == "front"
                 else f"the best {len(self.result['members'])} by {self.result['sort']}")
        print(f"training {e['members']} member{'s' * (e['members'] != 1)}, {which}, on {e['data']}: {o['opt']} lr "
              f"{o['lr']:g}, batch {o['batch']}, {o['epochs']} epoch{'s' * (o['epochs'] != 1)}, seed {o['seed']}, "
              f"{_threads_text(o['threads'])}, validation {o['val_fraction']:.0%}", file=sys.stderr)

    def on_start(self, e):
        self.resumed = e["resumed_from"]
        if not self.data_shown:
            self.data_shown = True
            for n in e["notes"]:
                print(f"cnndsl: note: {n}", file=sys.stderr)
            for line in e["data"]:
                print(f"data: {line}", file=sys.stderr)
            print(f"device: {e['device']}", file=sys.stderr)

    def on_epoch(self, e):
        from tqdm import tqdm
        self.close()
        self.bar = tqdm(total=e["steps"], desc=f"[{e['member']}/{e['members']}] epoch {e['epoch']}/{e['epochs']}",
                        unit="step", leave=False, file=sys.stderr, disable=None, dynamic_ncols=True)

    def on_progress(self, e):
        if self.bar is not None:
            self.bar.update(e["step"] - self.bar.n)
            self.bar.set_postfix(loss=f"{e['loss']:.4f}", acc=f"{e['acc']:.4f}", refresh=False)

    def on_member_end(self, e):
        self.close()
        r = e["record"]
        from .search.render import bindings_text
        head = f"[{e['member']}/{e['members']}] {bindings_text(r)} ({r['params']:,} params, {r['macs']:,} MACs)"
        if e.get("error"):
            print(f"{head}: failed to train\n{e['error']}", file=sys.stderr, flush=True)
            return
        acc = f"val acc {r['val_acc']:.4f}" if r["val_acc"] is not None else "no validation split"
        acc += f", train acc {r['train_acc']:.4f}" if r["train_acc"] is not None else ""
        done = self.resumed if self.resumed else 0
        again = (", trained before (--resume)" if done >= r["epochs_trained"] else
                 f", resumed after epoch {done}" if done else "")
        self.resumed = None
        print(f"{head}: {acc}, {r['epochs_trained']} epoch{'s' * (r['epochs_trained'] != 1)}, "
              f"{r['train_seconds']:.1f} s{again}", file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _emit_members(prog, space, records, folder):
    from .files import atomic_write
    from .search import emit as W
    os.makedirs(folder, exist_ok=True)
    for r in records:
        name, text = W.member_file(prog, space, r["index"])
        path = os.path.join(folder, name)
        atomic_write(path, text.encode("utf-8"))
        r["file"] = path
    print(f"wrote {len(records)} members to {folder}", file=sys.stderr)


def cmd_match(args):
    from .lang.program import parse_file
    from .search.match import match
    from .search.space import Space
    net = parse_file(args.net)
    fam = parse_file(args.family)
    space = Space(fam, _bindings(args.defines), input=args.input)
    found = match(net, space, input=args.input, limit=args.limit)
    if not found:
        print(f"{args.net} is not a member of {args.family} ({space.count:,} members tried)")
        return 1
    from .search.enumerate import _show
    for c in found:
        print(f"{args.net} is a member of {args.family}: " + " ".join(f"{k}={v}" for k, v in _show(c).items()))
    return 0


TRAIN_OPTIONS = ("epochs", "batch", "opt", "lr", "momentum", "weight_decay", "schedule", "warmup", "augment",
                 "label_smoothing", "device", "amp", "channels_last", "compile", "seed", "workers", "val_fraction",
                 "init", "freeze", "threads")


def cmd_train(args):
    from .train import train
    net = _load(args)
    _print_warnings(net)
    progress = _Progress()
    given = {k: getattr(args, k) for k in TRAIN_OPTIONS}
    try:
        result = train(net, args.data, out=args.out, resume=args.resume, callback=progress, **given)
    finally:
        progress.close()
    if result["rank"] != 0:
        return 0
    for f in result["files"]:
        print(f"wrote {f}", file=sys.stderr)
    sys.stderr.flush()
    final = result["final"]
    if final is None:
        print(f"nothing to train: the checkpoint has {result['resumed_from']} epochs already")
    elif final["val_acc"] is None:
        print(f"final training accuracy: {final['train_acc']:.4f} (epoch {final['epoch']}; no validation split)")
    else:
        print(f"final validation accuracy: {final['val_acc']:.4f} (epoch {final['epoch']})")
    return 0


class _Progress:
    """The train callback: the set-up, a progress bar per epoch (tqdm, on stderr), a line per epoch."""

    def __init__(self):
        self.bar = None

    def __call__(self, e):
        if e["rank"] != 0:
            return
        getattr(self, "on_" + e["event"], lambda e: None)(e)

    def on_start(self, e):
        for n in e["notes"]:
            print(f"cnndsl: note: {n}", file=sys.stderr)
        for w in e["warnings"]:
            print(f"cnndsl: warning: {w}", file=sys.stderr)
        for line in e["data"]:
            print(f"data: {line}")
        o = e["options"]
        where = f"{e['device']}" + (f", {e['world_size']} processes ({e['backend']})" if e["world_size"] > 1 else "")
        print(f"train: {o['opt']} lr {o['lr']:g}" + (f" momentum {o['momentum']:g}" if o["momentum"] else "")
              + (f" weight decay {o['weight_decay']:g}" if o["weight_decay"] else "")
              + f", schedule {o['schedule']}" + (f", warm-up {o['warmup']} steps" if o["warmup"] else "")
              + f", batch {o['batch']}" + (f" x {e['world_size']}" if e["world_size"] > 1 else "")
              + f", {o['epochs']} epochs, seed {o['seed']}, on {where}, {_threads_text(e['threads'])}"
              + (f", amp {e['amp']}" if e["amp"] else ""))
        if e["init"] is not None:
            _print_weights(e["init"], o["init"])
        print(f"parameters: {e['trainable_params']:,} trainable of {e['params']:,}"
              + (f" (frozen: {_frozen_text(o['freeze'], e['frozen'])})" if e["frozen"] else ""))
        if e["resumed_from"] is not None:
            print(f"resumed after epoch {e['resumed_from']}")

    def on_epoch(self, e):
        from tqdm import tqdm
        self.close()
        self.bar = tqdm(total=e["steps"], desc=f"epoch {e['epoch']}/{e['epochs']}", unit="step", leave=False,
                        file=sys.stderr, disable=None, dynamic_ncols=True)

    def on_progress(self, e):
        if self.bar is not None:
            self.bar.update(e["step"] - self.bar.n)
            self.bar.set_postfix(loss=f"{e['loss']:.4f}", acc=f"{e['acc']:.4f}",
                                 img_s=f"{e['images_per_s']:.0f}" if e["images_per_s"] else "-", refresh=False)

    def on_epoch_end(self, e):
        self.close()
        r = e["row"]
        val = f"val loss {r['val_loss']:.4f} acc {r['val_acc']:.4f}" if r["val_acc"] is not None else "no validation"
        print(f"epoch {r['epoch']}: lr {r['lr']:.3g}  train loss {r['train_loss']:.4f} acc {r['train_acc']:.4f}  "
              f"{val}  {r['images_per_s']:.0f} img/s  {r['seconds']:.1f} s", flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def cmd_eval(args):
    from .train import evaluate
    net = _load(args)
    _print_warnings(net)
    r = evaluate(net, args.weights, args.data, split=args.split, batch=args.batch, device=args.device, out=args.out)
    for line in r["data"]:
        print(f"data: {line}")
    classes = r["classes"]
    width = max(5, *(len(str(c)) for c in classes))
    print(f"\nper class ({r['split']} split):")
    print(f"  {'class':<{width}}  {'n':>5}  {'correct':>7}  {'acc':>6}")
    for c in r["per_class"]:
        acc = f"{c['acc']:.4f}" if c["acc"] is not None else "-"
        print(f"  {c['class']:<{width}}  {c['n']:>5}  {c['correct']:>7}  {acc:>6}")
    cell = max(3, *(len(str(v)) for row in r["confusion"] for v in row), *(len(str(c)) for c in classes))
    print(f"\nconfusion matrix (rows: true class, columns: predicted):")
    print(" " * (width + 2) + " ".join(f"{c:>{cell}}" for c in classes))
    for c, row in zip(classes, r["confusion"]):
        print(f"  {c:<{width}}" + " ".join(f"{v:>{cell}}" for v in row))
    if args.out:
        import json
        from .files import atomic_write
        path = os.path.join(args.out, "eval.json")
        atomic_write(path, (json.dumps({k: v for k, v in r.items() if k != "files"}, indent=1) + "\n").encode())
        for f in r["files"] + [path]:
            print(f"wrote {f}", file=sys.stderr)
    print(f"\naccuracy: {r['accuracy']:.4f} ({r['correct']}/{r['n']}, {100 * r['accuracy']:.2f}%)")
    sys.stdout.flush()
    for w in r["warnings"]:  # after the accuracy, which it qualifies
        print(f"cnndsl: warning: {w}", file=sys.stderr)
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
