"""The guard in front of every request, as Jupyter guards its notebook server.

- **Host** (DNS rebinding): a page of evil.example whose name an attacker points at 127.0.0.1 sends
  `Host: evil.example`; only the names this server answers to pass (127.0.0.1, localhost, ::1, and the
  `--host` given; a wildcard `--host 0.0.0.0` lets any name through, as Jupyter's remote access does,
  and leaves the token to decide). Refused with 403.
- **Token**: a random token (secrets.token_hex: 48 hex digits, 192 bits) on every request, as `?token=` (the
  printed URL, the page's links, its event stream) or an `X-Cnndsl-Token` / `Authorization: token`
  header (the page's fetches); compared in constant time. No cookie is set, so another site's page
  cannot ride on a browser's session: it would have to know the token. Refused with 401.
- **Origin** on writes (any method but GET and HEAD): a browser's request from another origin
  (`Origin` not this server's own, or `Sec-Fetch-Site: cross-site`) is refused with 403 even with the
  token, since a token that leaked into another page must not let it write.
- **Size**: a body whose Content-Length is over MAX_BODY is refused with 413 before it is read (the
  endpoints read at most that much of a body without one).
- Every answer carries a Content-Security-Policy (scripts only from this server: an SVG that
  smuggled a script in would not run), no referrer (the token stays out of other sites' logs), no
  framing, no sniffing.
"""
from __future__ import annotations

import hmac
import json
from urllib.parse import parse_qs

MAX_BODY = 16 * 2 ** 20     # a 10 MB paste passes, to get the analyzer's own error (E103)
LOOPBACK = ("127.0.0.1", "localhost", "::1")
WILDCARD = ("0.0.0.0", "::", "")
HEADERS = [
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                                 b"img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; "
                                 b"base-uri 'none'; frame-ancestors 'none'; form-action 'none'"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]
SAFE = ("GET", "HEAD")


def allowed_hosts(host: str) -> set | None:
    """The Host names a server bound to `host` answers to; None: any (a wildcard address)."""
    if host in WILDCARD:
        return None
    return {h.lower() for h in LOOPBACK} | {host.strip("[]").lower()}


def host_name(header: str) -> str:
    """`localhost:8765` -> `localhost`, `[::1]:8765` -> `::1`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Guard:
    """ASGI middleware: Host, token, Origin and size checks, and the security headers."""

    def __init__(self, app, token: str, hosts: set | None):
        self.app, self.token, self.hosts = app, token.encode("ascii"), hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        why = self.refusal(scope, headers)
        if why is not None:
            return await _refuse(send, *why)

        async def secured(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": list(message.get("headers", [])) + HEADERS}
            await send(message)
        await self.app(scope, receive, secured)

    def refusal(self, scope, headers):
        """(status, message) for a request to refuse, or None."""
        host = headers.get("host", "")
        if self.hosts is not None and host_name(host) not in self.hosts:
            return 403, f"Host {host[:80]!r} is not this server's name (DNS rebinding protection)"
        if not self._token_ok(scope, headers):
            return 401, "a token is required: open the URL that `cnndsl serve` printed (with its ?token=...)"
        if scope["method"] not in SAFE:
            origin = headers.get("origin")
            if origin is not None and origin != f"{scope.get('scheme', 'http')}://{host}":
                return 403, f"a write from another origin ({origin[:80]}) is refused"
            if headers.get("sec-fetch-site") == "cross-site":
                return 403, "a cross-site write is refused"
        length = headers.get("content-length", "0")
        if not length.isdigit() or int(length) > MAX_BODY:
            return 413, f"the request is over {MAX_BODY // 2 ** 20} MiB"
        return None

    def _token_ok(self, scope, headers) -> bool:
        given = headers.get("x-cnndsl-token")
        auth = headers.get("authorization", "")
        if given is None and auth.lower().startswith("token "):
            given = auth[6:].strip()
        if given is None:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            given = (query.get("token") or [None])[0]
        return given is not None and hmac.compare_digest(given.encode("utf-8", "replace"), self.token)


async def _refuse(send, status, message):
    body = json.dumps({"error": message}).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
                + HEADERS})
    await send({"type": "http.response.body", "body": body})
