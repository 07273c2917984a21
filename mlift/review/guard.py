"""The review server's defences, in one middleware.

The server holds a person's data and writes into their run folders, and any
web page the same browser has open can send requests to loopback. So:

* **Host** must be an IP literal, ``localhost`` or a name given with
  ``--allow-host``: a DNS-rebinding page reaches the server under its own
  domain name and is refused before it can read anything.
* **Every ``/api/`` request** carries the per-session token (header
  ``X-Mlift-Token``) that only the server's own page holds; another origin
  cannot read that page, so it cannot learn the token.
* **POSTs** also need ``Origin`` equal to the server's own and a JSON
  body: a cross-site form or ``fetch`` is refused even before the token.
* **No request path names a file**: static files are a fixed set read from
  the package at start, run folders are addressed by their number on the
  command line, and pairs by id within them.
* Every response forbids scripts, styles and connections other than the
  server's own (Content-Security-Policy), framing and MIME sniffing; the page
  sets texts with ``textContent`` only, so a pair's ``<script>`` is text.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

TOKEN_HEADER = "X-Mlift-Token"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _host_name(host: str) -> str:
    """``host`` of a Host header without its port ("[::1]:8765" -> "::1")."""
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def host_allowed(host: str | None, extra: Iterable[str] = ()) -> bool:
    if not host:
        return False
    name = _host_name(host).lower()
    if name == "localhost" or name in {e.lower() for e in extra}:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def guard(token: str, allow_hosts: Iterable[str] = ()) -> Callable[..., Awaitable[
        web.StreamResponse]]:
    """The middleware enforcing the rules above for an app whose page holds ``token``."""
    allowed = tuple(allow_hosts)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not host_allowed(request.host, allowed):
            return _refuse(421, "this server answers only to an IP address, localhost or "
                                "--allow-host names (Host header refused)")
        if request.path.startswith("/api/"):
            if not hmac.compare_digest(request.headers.get(TOKEN_HEADER, ""), token):
                return _refuse(403, "missing or wrong session token: reload the page")
            if request.method not in ("GET", "HEAD"):
                origin = request.headers.get("Origin")
                if origin != f"{request.scheme}://{request.host}":
                    return _refuse(403, "cross-origin request refused")
                if request.content_type != "application/json":
                    return _refuse(415, "send JSON (Content-Type: application/json)")
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # 404s and friends get the same headers
            _secure(exc, api=request.path.startswith("/api/"))
            raise
        _secure(response, api=request.path.startswith("/api/"))
        return response

    return middleware


def _secure(response: web.StreamResponse, *, api: bool = True) -> None:
    if api:
        response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"


def _refuse(status: int, message: str) -> web.Response:
    response = web.json_response({"error": message}, status=status)
    _secure(response)
    return response
