"""The server: a socket bound before anything is printed, a token, uvicorn serving the app.

    server = Server("nets/")              # binds 127.0.0.1:8765 (or the next free port)
    server.url                            # http://127.0.0.1:8765/?token=...
    server.run()                          # until Ctrl-C

The socket is bound here, not by uvicorn, so that the URL printed is one that already answers and
a port in use is a clear error (or, when no --port was given, the next port is tried, as Jupyter
does). uvicorn logs nothing but warnings: the CLI prints what the user needs.
"""
from __future__ import annotations

import errno
import os
import secrets
import socket

from ..errors import CnnError
from .security import LOOPBACK, WILDCARD

DEFAULT_PORT = 8765
PORT_RETRIES = 20
SHUTDOWN_S = 2          # open event streams get this long to close at Ctrl-C


class Server:
    def __init__(self, root, host="127.0.0.1", port=None, token=None):
        root = os.fspath(root)
        if not os.path.isdir(root):
            raise CnnError(f"cannot serve {root}: not a folder", usage=True, hint="cnndsl serve DIR, e.g. cnndsl serve nets/")
        self.root = os.path.realpath(root)
        self.host = host
        self.token = token or secrets.token_hex(24)
        self.sock = _bind(host, port)
        self.port = self.sock.getsockname()[1]
        from .app import make_app
        self.app = make_app(self.root, self.token, host)

    @property
    def url(self) -> str:
        shown = self.host if self.host not in WILDCARD else "127.0.0.1"
        shown = f"[{shown}]" if ":" in shown else shown
        return f"http://{shown}:{self.port}/?token={self.token}"

    @property
    def loopback(self) -> bool:
        return self.host in LOOPBACK or self.host.startswith("127.")

    def run(self):
        """Serve until interrupted (Ctrl-C, SIGTERM); a training run is asked to stop first."""
        import uvicorn
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=SHUTDOWN_S, timeout_keep_alive=5)
        try:
            uvicorn.Server(config).run(sockets=[self.sock])
        finally:
            self.app.runner.stop()
            self.app.runner.join(10)
            self.sock.close()


def _bind(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    tries = [port] if port is not None else [DEFAULT_PORT + i for i in range(PORT_RETRIES)]
    for p in tries:
        # IPPROTO_TCP named: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets that say they
        # are TCP, and with it on, every answer on a kept-alive connection waited 40 ms for a delayed ACK
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, p))
            sock.listen(128)
            sock.set_inheritable(True)
            return sock
        except OSError as e:
            sock.close()
            if e.errno == errno.EADDRINUSE and p != tries[-1]:
                continue
            if e.errno == errno.EADDRINUSE:
                raise CnnError(f"port {p} is in use", usage=True,
                               hint="choose another with --port, or leave --port out to take the next free one") from None
            raise CnnError(f"cannot listen on {host}:{p}: {e.strerror}", usage=True,
                           hint="--host takes an address of this machine (127.0.0.1, 0.0.0.0, ::1)") from None
    raise AssertionError("unreachable")
