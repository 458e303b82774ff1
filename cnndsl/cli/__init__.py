"""The command line: arguments in, library calls out, their results printed. Nothing else lives here.

A module per group of commands holds their parsers (`add_NAME`) and the functions that run them
(`cmd_NAME`): spec.py (report, check), build.py (compile, export, run, draw), search.py (search,
match), train.py (train, eval), inspect.py, serve.py, importer.py (import); common.py what they
share. COMMANDS says which function runs which command. The work, and the rendering of its results, is the library's
(cnndsl.net, analysis.report.render, search.run and search/render.py, train, inspection, ...):
a command calls it and prints what it returns. This package is the only one that prints.

Exit status: 0 fine, 1 a faulty spec (or model file), 2 a usage error, 3 a bug of ours, 130 Ctrl-C.
"""
from __future__ import annotations

import argparse
import os
import sys

from ..errors import CnnError
from . import build, importer, inspect, search, serve, spec, train

# command: (add its parser, run it), in the order `cnndsl --help` lists them. A new command is a
# module here (its add_NAME and cmd_NAME) and a line in this table.
COMMANDS = {
    "report": (spec.add_report, spec.cmd_report),
    "check": (spec.add_check, spec.cmd_check),
    "compile": (build.add_compile, build.cmd_compile),
    "export": (build.add_export, build.cmd_export),
    "run": (build.add_run, build.cmd_run),
    "draw": (build.add_draw, build.cmd_draw),
    "search": (search.add_search, search.cmd_search),
    "match": (search.add_match, search.cmd_match),
    "train": (train.add_train, train.cmd_train),
    "eval": (train.add_eval, train.cmd_eval),
    "inspect": (inspect.add_inspect, inspect.cmd_inspect),
    "serve": (serve.add_serve, serve.cmd_serve),
    "import": (importer.add_import, importer.cmd_import),
}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="cnndsl", description="A language for convolutional networks: "
                                  "shape-check, size, compile and draw them.")
    top.add_argument("--version", action="version", version=f"cnndsl {_version()}")
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add, _ in COMMANDS.values():
        add(sub)
    return top


def _version():
    from .. import __version__
    return __version__


def main(argv=None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    try:
        return COMMANDS[args.command][1](args)
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
