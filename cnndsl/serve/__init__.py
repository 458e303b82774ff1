"""`cnndsl serve DIR`: a live page to edit specs and see their report, diagram and errors as one
types, search a family, and watch a net train (README, "The live page").

    tree.py       the .net files under DIR: paths checked, atomic saves, outside changes noticed
    live.py       the analyzer for the page (report, diagnostics, controls, diagram, search, downloads)
    training.py   one training run at a time on a thread, through cnndsl.train, its events to listeners
    visuals.py    first-layer filters and activation maps as PNGs (torch: imported when a run starts)
    security.py   the guard: Host, token, Origin, size; security headers
    app.py        the Starlette application: the page and its endpoints
    server.py     the socket, the token, uvicorn
    static/       the page and its bundle, built from web/ by tools/build_web.sh (no Node needed here)

The editing path (listing, reading, analysing, drawing, searching, saving) never imports torch.
"""
from .server import Server

__all__ = ["Server"]
