"""`cnndsl serve DIR`: the live page (cnndsl.serve) over the .net files under DIR."""
from __future__ import annotations

import sys

from .. import options as O


def add_serve(sub):
    p = sub.add_parser("serve", help="a live page: edit specs and see their report, diagram and errors as you type; "
                       "search a family; watch a net train")
    p.add_argument("dir", nargs="?", default=".", help="the folder whose .net files the page edits (default .)")
    p.add_argument("--port", type=O.whole(0, 65535), help="default 8765, or the next free port (0: any free port)")
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1: this machine "
                   "only); another lets other machines in, with the token")
    p.add_argument("--no-browser", action="store_true", help="print the URL, do not open a browser")


def cmd_serve(args):
    from ..serve import Server
    server = Server(args.dir, host=args.host, port=args.port)
    print(f"cnndsl serve: the .net files under {server.root}", flush=True)
    if not server.loopback:
        print(f"cnndsl: warning: listening on {args.host}: whoever reaches this machine and has the token can read "
              f"and write the .net files under {server.root} and train on it", file=sys.stderr)
    print(f"  {server.url}\n(Ctrl-C stops the server)", flush=True)
    if not args.no_browser:
        import webbrowser
        webbrowser.open(server.url)
    server.run()
    return 0
