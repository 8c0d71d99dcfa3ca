"""Login history: where a request comes from, and the receiver that records
browser logins (the token endpoint records its own exchanges).

The client's address is ``REMOTE_ADDR``: the ASGI server resolves it from
the balancer's headers it trusts (uvicorn's ``FORWARDED_ALLOW_IPS``), never
from an ``X-Forwarded-For`` anyone can send. Only when proxies in front of
Django are not resolved there does ``TRUSTED_PROXY_COUNT`` say how many
``X-Forwarded-For`` entries, from the right, were written by them (the same
rule as DRF's ``NUM_PROXIES``). The login lockout (django-axes), the throttles
and the login history all take the address from ``client_ip``. The device is
the client's ``X-Device-Id`` when it sends one, else a hash of its user agent.
"""

from __future__ import annotations

import hashlib
import ipaddress

from django.conf import settings

from accounts.models import LoginEvent

DEVICE_HEADER = "X-Device-Id"


def _ip(raw: str) -> str | None:
    try:
        return str(ipaddress.ip_address(raw.strip()))
    except ValueError:
        return None


def client_ip(request) -> str | None:
    """The real client's address (``AXES_CLIENT_IP_CALLABLE``)."""
    proxies = settings.TRUSTED_PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR") if proxies > 0 else None
    if forwarded:
        hops = forwarded.split(",")
        # the entry the outermost trusted proxy appended: what it saw connect
        return _ip(hops[-min(proxies, len(hops))])
    return _ip(request.META.get("REMOTE_ADDR") or "")


def ip_and_device(request) -> tuple[str | None, str]:
    ip = client_ip(request)
    device = (request.headers.get(DEVICE_HEADER) or "").strip()[:128]
    if not device:
        agent = request.headers.get("User-Agent") or ""
        device = "ua:" + hashlib.sha256(agent.encode()).hexdigest()[:16] if agent else ""
    return ip, device


def ip_and_device_of_scope(scope) -> tuple[str | None, str]:
    """The same for a websocket: the ASGI server resolved the client's address
    (uvicorn's trusted proxies); the device from the same header or user agent."""
    client = scope.get("client") or (None, None)
    ip = _ip(client[0] or "") if client[0] else None
    headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope.get("headers", [])}
    device = (headers.get(DEVICE_HEADER.lower()) or "").strip()[:128]
    if not device:
        agent = headers.get("user-agent") or ""
        device = "ua:" + hashlib.sha256(agent.encode()).hexdigest()[:16] if agent else ""
    return ip, device


def record_session_login(sender, request, user, **kwargs) -> None:
    """``user_logged_in`` receiver: the audit line of a browser login."""
    from accounts.services import record_login

    if request is None:  # ``login()`` called outside a request
        return
    ip, device = ip_and_device(request)
    record_login(user=user, ip=ip, device=device, source=LoginEvent.Source.SESSION)
