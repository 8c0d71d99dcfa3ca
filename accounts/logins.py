"""Login history: where a request comes from, and the receiver that records
browser logins (the token endpoint records its own exchanges).

The IP is ``REMOTE_ADDR``: the balancer in front of the ASGI workers must pass
the client's address through (daphne's ``--proxy-headers``) rather than this
code trusting an ``X-Forwarded-For`` anyone can send. The device is the
client's ``X-Device-Id`` when it sends one, else a hash of its user agent.
"""

from __future__ import annotations

import hashlib
import ipaddress

from accounts.models import LoginEvent

DEVICE_HEADER = "X-Device-Id"


def ip_and_device(request) -> tuple[str | None, str]:
    raw_ip = (request.META.get("REMOTE_ADDR") or "").strip()
    try:
        ip = str(ipaddress.ip_address(raw_ip))
    except ValueError:
        ip = None
    device = (request.headers.get(DEVICE_HEADER) or "").strip()[:128]
    if not device:
        agent = request.headers.get("User-Agent") or ""
        device = "ua:" + hashlib.sha256(agent.encode()).hexdigest()[:16] if agent else ""
    return ip, device


def record_session_login(sender, request, user, **kwargs) -> None:
    """``user_logged_in`` receiver: the audit line of a browser login."""
    from accounts.services import record_login

    if request is None:  # ``login()`` called outside a request
        return
    ip, device = ip_and_device(request)
    record_login(user=user, ip=ip, device=device, source=LoginEvent.Source.SESSION)
