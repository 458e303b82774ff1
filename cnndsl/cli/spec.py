"""`cnndsl report` (the analysis: cnndsl.analysis.report renders it; --symbolic: search.symbolic's
closed form) and `cnndsl check` (the diagnostics only)."""
from __future__ import annotations

import sys

from .. import options as O
from ..errors import CnnError, shown_path
from .common import DTYPES, MEMORY_OPTIMIZERS, bindings, emit, include_option, load, print_warnings, \
    refuse_overwrite, spec_options


def add_report(sub):
    p = sub.add_parser("report", help="per-layer volumes, parameters, MACs, memory, receptive field")
    spec_options(p)
    p.add_argument("--batch", type=O.batch, default=1, help="batch size of the training-memory estimate (default 1)")
    p.add_argument("--dtype", choices=DTYPES, default="fp32")
    p.add_argument("--optimizer", choices=MEMORY_OPTIMIZERS, default="adam")
    p.add_argument("--memory", metavar="BUDGET", type=O.size_in_bytes, help="a memory budget (24GiB): print the largest batch that trains in it")
    p.add_argument("--format", choices=("table", "markdown", "json", "csv"), default="table")
    p.add_argument("-o", "--output", help="write the report here instead of stdout")
    p.add_argument("--symbolic", metavar="VARS", help="closed form: volumes, params, MACs and totals as formulas in "
                   "these variables (comma-separated, e.g. C,N; needs sympy)")
    p.add_argument("--freeze", metavar="NAMES", help="layers that do not train (as train --freeze): the "
                   "totals' trainable parameters leave them out")


def cmd_report(args):
    if args.symbolic:
        return _symbolic(args)
    from ..analysis.report import render
    net = load(args)
    refuse_overwrite(net, args.output)
    rep = net.report(dtype=args.dtype, batch=args.batch, optimizer=args.optimizer, memory=args.memory)
    frozen = None
    if args.freeze:
        from ..train import freeze
        freeze.annotate(rep, net.graph, args.freeze)
        frozen = freeze.parse_names(args.freeze)
    text = render(rep, args.format, notes=net.notes, frozen=frozen)
    if args.format != "json" or args.output:  # JSON on stdout stays JSON: its warnings are inside it
        print_warnings(net)
    emit(text, args.output)
    return 0


# the options of `report` that the closed form has no meaning for; every other one works with it
NOT_SYMBOLIC = ("--memory", "--freeze", "--format markdown", "--format csv")


def _symbolic(args):
    from ..search.runner import closed_form, family
    from ..search.symbolic import render
    given = {"--memory": args.memory, "--freeze": args.freeze, f"--format {args.format}": True}
    for flag in NOT_SYMBOLIC:
        if given.get(flag):
            raise CnnError(f"{flag} has no meaning with --symbolic", usage=True,
                           hint="--symbolic prints formulas as a table or --format json; drop " + flag.split()[0])
    prog, space = family(args.file, bindings(args.defines), args.input, args.include_dirs)
    refuse_overwrite(prog, args.output)
    result = closed_form(prog, space, args.symbolic, input=args.input, strict=args.strict, batch=args.batch,
                         dtype=args.dtype, optimizer=args.optimizer)
    text = render(result, args.file, args.format)
    if args.format != "json" or args.output:  # as the report's: the default member's warnings
        for w in result["warnings"]:
            print(w.render("warning"), file=sys.stderr)
    emit(text, args.output)
    return 0


def add_check(sub):
    p = sub.add_parser("check", help="validate specs (errors and warnings only; for CI and editors)")
    p.add_argument("files", nargs="+")
    p.add_argument("-D", dest="defines", metavar="NAME=VALUE", action="append", default=[])
    p.add_argument("--input", metavar="HxWxC")
    p.add_argument("--strict", action="store_true")
    include_option(p)
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="json: {\"files\": [...], \"diagnostics\": [...]} on stdout")


def cmd_check(args):
    from ..net import check, load as load_net
    if args.format == "json":  # every file's diagnostics as data; exit 1 if any has an error, 2 for a usage error
        import json
        doc, status = check(args.files, input=args.input, bindings=bindings(args.defines), strict=args.strict,
                            include_dirs=args.include_dirs)
        print(json.dumps(doc, indent=1))
        return status
    status = 0
    for f in args.files:
        try:
            net = load_net(f, input=args.input, bindings=bindings(args.defines), strict=args.strict,
                           include_dirs=args.include_dirs)
            print_warnings(net)
            print(f"{shown_path(f)}: ok ({len(net.graph.nodes)} layers)")
        except CnnError as e:
            if e.usage:
                raise
            print(e.render(), file=sys.stderr)
            status = 1
    return status
