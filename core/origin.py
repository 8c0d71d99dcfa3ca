"""The websocket origin check: a socket is accepted only from the page's own
origin, or from one listed in ``CSRF_TRUSTED_ORIGINS``.

Channels' ``AllowedHostsOriginValidator`` compares host names only, so a page
on ``http://localhost:1`` could open the console's socket with the user's
cookie. Here the ``Origin`` header must equal the socket's own origin in
scheme, host and port:

- scheme: the socket's (``ws`` → ``http``, ``wss`` → ``https``), or ``https``
  when the proxy says so in ``SECURE_PROXY_SSL_HEADER``, as Django decides
  ``request.is_secure()`` for pages;
- host and port: from the ``Host`` header, whose host must be in
  ``ALLOWED_HOSTS``; a missing port is the scheme's default.

Or it matches an entry of ``CSRF_TRUSTED_ORIGINS`` (scheme, host and port;
``https://*.example.com`` covers subdomains, as for CSRF). No ``Origin``, an
opaque ``null`` one or a malformed one is refused. A refused socket is closed
before it is accepted, as Channels' validator does.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import is_same_domain, split_domain_port, validate_host

DEFAULT_PORTS = {"http": 80, "https": 443}


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin1")
    return None


def parse_origin(value: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of an origin, ports defaulted; None if it is not one."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/") or parts.query:
        return None
    host = parts.hostname.lower().rstrip(".")
    if ":" in host:  # IPv6, bracketed as in a Host header
        host = f"[{host}]"
    return scheme, host, port or DEFAULT_PORTS[scheme]


def _is_secure(scope) -> bool:
    if scope.get("scheme") in ("wss", "https"):
        return True
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        name, expected = proxy_header
        # HTTP_X_FORWARDED_PROTO → x-forwarded-proto
        header = name.removeprefix("HTTP_").replace("_", "-").lower().encode()
        value = _header(scope, header)
        return value is not None and value.split(",")[0].strip() == expected
    return False


def own_origin(scope) -> tuple[str, str, int] | None:
    """The socket's own origin, or None when its Host is missing or not allowed."""
    host_header = _header(scope, b"host")
    if not host_header:
        return None
    scheme = "https" if _is_secure(scope) else "http"
    host, port = split_domain_port(host_header.strip())
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = [".localhost", "127.0.0.1", "[::1]"]
    if not host or not validate_host(host, allowed_hosts):
        return None
    try:
        number = int(port) if port else DEFAULT_PORTS[scheme]
    except ValueError:
        return None
    return scheme, host, number


def _trusted(origin: tuple[str, str, int]) -> bool:
    scheme, host, port = origin
    for entry in getattr(settings, "CSRF_TRUSTED_ORIGINS", []):
        wildcard = "://*." in entry
        trusted = parse_origin(entry.replace("://*.", "://", 1) if wildcard else entry)
        if trusted is None or trusted[0] != scheme or trusted[2] != port:
            continue
        if host == trusted[1] or (wildcard and is_same_domain(host, "." + trusted[1])):
            return True
    return False


def origin_allowed(scope) -> bool:
    raw = _header(scope, b"origin")
    origin = parse_origin(raw) if raw else None
    if origin is None:
        return False
    return origin == own_origin(scope) or _trusted(origin)


class SameOriginValidator:
    """ASGI middleware for the websocket router: refuses a socket whose
    ``Origin`` is neither its own (scheme, host, port) nor a trusted one."""

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            raise ValueError("SameOriginValidator guards websocket connections only.")
        if origin_allowed(scope):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)
