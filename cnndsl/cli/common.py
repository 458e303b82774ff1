"""What the commands share: a spec's options, loading it, printing its warnings, refusing an
output that would replace it, and writing a command's text."""
from __future__ import annotations

import sys

DTYPES = ("fp32", "fp16", "bf16")
MEMORY_OPTIMIZERS = ("sgd", "momentum", "adam")  # the training-memory estimate's (cnndsl.analysis)


def spec_options(p):
    p.add_argument("file", help="a .net spec")
    p.add_argument("--input", metavar="HxWxC", help="override the spec's input volume, e.g. 32x32x3")
    p.add_argument("-D", dest="defines", metavar="NAME=VALUE", action="append", default=[],
                   help="bind a variable or switch an optional (-D pool=off); repeatable")
    p.add_argument("--strict", action="store_true", help="a window that does not fit is an error, not a warning")
    include_option(p)


def include_option(p):
    p.add_argument("--include-dir", dest="include_dirs", metavar="DIR", action="append", default=[],
                   help="a folder beyond the spec's own folder tree that its includes may read; repeatable")


def bindings(defines) -> dict:
    from ..net import parse_defines
    return parse_defines(defines)


def load(args):
    """The Net of a command's spec options (spec_options)."""
    from ..net import load as load_net
    return load_net(args.file, input=args.input, bindings=bindings(args.defines), strict=args.strict,
                    include_dirs=args.include_dirs)


def print_warnings(net):
    for w in net.warnings:
        print(w.render("warning"), file=sys.stderr)


def refuse_overwrite(source, *paths, flag="-o"):
    """Refuse, before any work, outputs that would replace the spec (a Net or Program), one of its
    includes, or another .net file (cnndsl.outputs)."""
    from ..outputs import check_target, spec_files
    files = spec_files(source)
    for path in paths:
        if path:
            check_target(path, files, flag=flag)


def emit(text: str, path: str | None):
    """A command's text on stdout, or written (atomically) to -o PATH."""
    if not path:
        sys.stdout.write(text)
        return
    from ..files import atomic_write
    atomic_write(path, text.encode("utf-8"))


def print_weights(report, path):
    """What a checkpoint load did (cnndsl.weights.report_lines), on stderr."""
    from ..weights import report_lines
    for line in report_lines(report, path):
        print(line, file=sys.stderr)


def threads_text(n) -> str:
    return f"{n} thread{'s' * (n != 1)}"


class Events:
    """A callback for the library's events (training's, the search's): `on_NAME(e)` for each event
    it shows, and at most one tqdm bar at a time, on stderr (drawn only on a terminal)."""

    def __init__(self):
        self.bar = None

    def __call__(self, e):
        getattr(self, "on_" + e["event"], lambda e: None)(e)

    def new_bar(self, total, **options):
        from tqdm import tqdm
        self.close()
        self.bar = tqdm(total=total, file=sys.stderr, disable=None, leave=False, **options)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
