"""The ASGI application: the page, its static bundle, and the JSON endpoints under /api.

    >>> import tempfile
    >>> from starlette.testclient import TestClient
    >>> app = make_app(tempfile.mkdtemp(), token="t" * 32)
    >>> c = TestClient(app, base_url="http://127.0.0.1:8765")
    >>> c.get("/").status_code, c.get("/?token=" + "t" * 32).status_code
    (401, 200)

Endpoints (all behind security.Guard; bodies are JSON, at most MAX_BODY):

    GET  /                       the page (its links carry the token)
    GET  /static/NAME            the bundle: app.js, app.css (and THIRD_PARTY.txt, its packages' licences)
    GET  /api/files              the .net files under DIR, the data sources training can read
    GET  /api/file?path=P        a file's text, mtime and sha256
    GET  /api/stat?path=P        mtime and sha256 only: what the page polls to notice outside changes
    PUT  /api/file               {path, text, base_sha256, new}: atomic save; 409 when the disk changed
                                 since base_sha256 (or, with new, when the file exists)
    POST /api/analyze            {path, text, bindings}: report, diagnostics, the family's controls
    POST /api/diagram            {path, text, bindings, style}: the diagram's SVG
    POST /api/search             {path, text, bindings, pareto, optionals}: the family's Pareto front
    POST /api/download           {path, text, bindings, format: py|onnx|svg|json, style}: a file
    POST /api/train              {path, text, bindings, data, out, options, resume}: start a run
    POST /api/train/stop         stop it (after the step it is in)
    GET  /api/train              the run's state
    GET  /api/train/events       server-sent events of the run (training.py)

A faulty spec answers 200 with its diagnostics (the editor shows them); a request the page should
not have made (a path outside DIR, a bad option) answers 4xx with {"error": message, "hint"}.
"""
from __future__ import annotations

import asyncio
import json
import os

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..errors import CnnError
from . import live
from .security import MAX_BODY, Guard, allowed_hosts
from .training import Busy, Runner
from .tree import Refused, Tree

STATIC = os.path.join(os.path.dirname(__file__), "static")
STATIC_FILES = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8",
                "THIRD_PARTY.txt": "text/plain; charset=utf-8"}
KEEPALIVE_S = 15.0


def make_app(root, token: str, host: str = "127.0.0.1"):
    """The application serving the .net files under `root` to requests that carry `token`."""
    tree = Tree(root)
    runner = Runner(tree)
    routes = [Route("/", _page(token)), Route("/static/{name}", _static)]
    api = {
        ("GET", "/api/files"): lambda q: {"root": tree.root, "files": tree.files(), "data": tree.data_sources()},
        ("GET", "/api/file"): lambda q: tree.read(q.get("path")),
        ("GET", "/api/stat"): lambda q: tree.stat(q.get("path")),
        ("PUT", "/api/file"): lambda b: tree.save(b.get("path"), _text(b), b.get("base_sha256"), bool(b.get("new"))),
        ("POST", "/api/analyze"): lambda b: live.analyze(tree, b.get("path"), _text(b), _bindings(b)),
        ("POST", "/api/diagram"): lambda b: live.diagram(tree, b.get("path"), _text(b), _bindings(b),
                                                        b.get("style") or "graph"),
        ("POST", "/api/search"): lambda b: live.search(tree, b.get("path"), _text(b), _bindings(b),
                                                      tuple(str(b.get("pareto") or "params,macs").split(",")),
                                                      bool(b.get("optionals"))),
        ("POST", "/api/train"): lambda b: runner.start(live.load(tree, b.get("path"), _text(b), _bindings(b)),
                                                      b.get("path"), b.get("out") or _run_folder(b.get("path")),
                                                      b.get("data"), b.get("options") or {}, bool(b.get("resume"))),
        ("POST", "/api/train/stop"): lambda b: runner.stop(),
        ("GET", "/api/train"): lambda q: runner.status,
    }
    for (method, path), fn in api.items():
        routes.append(Route(path, _endpoint(fn), methods=[method]))
    routes.append(Route("/api/download", _download(tree), methods=["POST"]))
    routes.append(Route("/api/train/events", _events(runner), methods=["GET"]))
    guard = Guard(Starlette(routes=routes), token, allowed_hosts(host))
    guard.tree, guard.runner = tree, runner  # for tests and the server's shutdown
    return guard


def _run_folder(rel) -> str:
    stem = os.path.splitext(os.path.basename(str(rel or "net")))[0] or "net"
    return f"runs/{stem}"


# ---- requests and answers -----------------------------------------------------------------------------
async def _body(request) -> dict:
    """The JSON body, read up to MAX_BODY (a body without a Content-Length is cut there too)."""
    data, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise Refused(f"the request is over {MAX_BODY // 2 ** 20} MiB", 413)
        data.append(chunk)
    try:
        body = json.loads(b"".join(data) or b"{}")
    except ValueError:
        raise Refused("the request is not JSON", 400) from None
    if not isinstance(body, dict):
        raise Refused("the request must be a JSON object", 400)
    return body


def _text(body) -> str:
    text = body.get("text")
    if not isinstance(text, str):
        raise Refused("`text` (the spec's text) is missing", 400)
    return text


def _bindings(body) -> dict:
    b = body.get("bindings") or {}
    if not isinstance(b, dict) or not all(isinstance(v, (str, int, float, bool)) for v in b.values()):
        raise Refused("`bindings` must be an object of NAME: value", 400)
    return {str(k): ("on" if v is True else "off" if v is False else str(v)) for k, v in b.items()}


def _error(status, message, hint=None):
    return JSONResponse({"error": message, "hint": hint}, status_code=status)


def _endpoint(fn):
    async def endpoint(request):
        try:
            arg = dict(request.query_params) if request.method in ("GET", "HEAD") else await _body(request)
            result = await run_in_threadpool(fn, arg)
            return JSONResponse(result)
        except Exception as e:
            return _failure(e)
    return endpoint


def _failure(e):
    """The answer for an exception: the CLI's words for a CnnError, the status a Refused carries."""
    if isinstance(e, Refused):
        return _error(e.status, str(e))
    if isinstance(e, Busy):
        return _error(409, str(e))
    if isinstance(e, CnnError):
        return JSONResponse({"error": e.message, "hint": e.hint, "text": e.render(),
                             "diagnostics": [d.to_dict() for d in e.diagnostics]}, status_code=400)
    return _error(500, f"internal error: {type(e).__name__}: {e}", "this is a bug in cnndsl")


def _page(token):
    with open(os.path.join(STATIC, "index.html"), encoding="utf-8") as f:
        page = f.read().replace("__TOKEN__", token)  # a hex token: nothing to escape

    async def endpoint(request):
        return Response(page, media_type="text/html; charset=utf-8")
    return endpoint


async def _static(request):
    name = request.path_params["name"]
    if name not in STATIC_FILES:
        return _error(404, "no such file")
    with open(os.path.join(STATIC, name), "rb") as f:
        return Response(f.read(), media_type=STATIC_FILES[name])


def _download(tree):
    async def endpoint(request):
        try:
            b = await _body(request)
            name, media, data = await run_in_threadpool(live.download, tree, b.get("path"), _text(b),
                                                        str(b.get("format")), _bindings(b), b.get("style") or "graph")
        except Exception as e:
            return _failure(e)
        return Response(data, media_type=media, headers={"content-disposition": f'attachment; filename="{name}"'})
    return endpoint


def _events(runner):
    async def endpoint(request):
        loop, queue = asyncio.get_running_loop(), asyncio.Queue(maxsize=10_000)
        missed = runner.subscribe(loop, queue)

        async def stream():
            try:
                yield "retry: 2000\n\n"
                for item in missed:
                    yield _sse(item)
                while True:
                    try:
                        item = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                    except asyncio.TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    yield _sse(item)
            finally:
                runner.unsubscribe(queue)
        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"x-accel-buffering": "no"})
    return endpoint


def _sse(item) -> str:
    seq, name, data = item
    return f"id: {seq}\nevent: {name}\ndata: {data}\n\n"
