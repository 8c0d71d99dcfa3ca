"""The websocket origin check compares scheme, host and port: only the page's
own origin (or one in CSRF_TRUSTED_ORIGINS) opens a socket, through the real
ASGI application."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.routing import get_default_application
from channels.testing import WebsocketCommunicator
from django.test import Client

from core.origin import origin_allowed, parse_origin

pytestmark = pytest.mark.django_db(transaction=True)


def _cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def _connect(user, *, origin: bytes | None, host: bytes | None = b"127.0.0.1:8000", scheme: str = "ws",
                   extra=()) -> tuple[bool, object]:
    headers = [(b"cookie", await database_sync_to_async(_cookie)(user)), *extra]
    if origin is not None:
        headers.append((b"origin", origin))
    if host is not None:
        headers.append((b"host", host))
    communicator = WebsocketCommunicator(get_default_application(), "/ws/console/", headers=headers)
    communicator.scope["scheme"] = scheme
    connected, code = await communicator.connect(timeout=10)
    await communicator.disconnect()
    return connected, code


async def test_same_origin_passes(agent):
    assert (await _connect(agent, origin=b"http://127.0.0.1:8000"))[0]


async def test_another_port_is_refused(agent):
    # the bug this replaces: host names alone were compared
    assert not (await _connect(agent, origin=b"http://127.0.0.1:1"))[0]
    assert not (await _connect(agent, origin=b"http://127.0.0.1"))[0]


async def test_another_scheme_is_refused(agent):
    assert not (await _connect(agent, origin=b"https://127.0.0.1:8000"))[0]
    # a TLS socket accepts only the https page
    assert not (await _connect(agent, origin=b"http://127.0.0.1:443", host=b"127.0.0.1", scheme="wss"))[0]
    assert (await _connect(agent, origin=b"https://127.0.0.1", host=b"127.0.0.1", scheme="wss"))[0]


async def test_another_allowed_host_is_refused(agent):
    # both hosts are in ALLOWED_HOSTS, but the page is not this socket's
    assert not (await _connect(agent, origin=b"http://localhost:8000"))[0]


async def test_trusted_origin_passes(agent, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://cs.example.com", "https://*.example.org"]
    assert (await _connect(agent, origin=b"https://cs.example.com"))[0]
    assert (await _connect(agent, origin=b"https://desk.example.org"))[0]
    assert not (await _connect(agent, origin=b"http://cs.example.com"))[0]
    assert not (await _connect(agent, origin=b"https://cs.example.com:8443"))[0]


async def test_no_origin_is_refused(agent):
    assert not (await _connect(agent, origin=None))[0]
    assert not (await _connect(agent, origin=b"null"))[0]
    assert not (await _connect(agent, origin=b"http://127.0.0.1:8000", host=None))[0]


async def test_a_host_outside_allowed_hosts_is_refused(agent):
    assert not (await _connect(agent, origin=b"http://evil.example:8000", host=b"evil.example:8000"))[0]


async def test_behind_a_tls_proxy_the_forwarded_scheme_counts(agent, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    proto = ((b"x-forwarded-proto", b"https"),)
    assert (await _connect(agent, origin=b"https://127.0.0.1", host=b"127.0.0.1", extra=proto))[0]
    assert not (await _connect(agent, origin=b"http://127.0.0.1", host=b"127.0.0.1", extra=proto))[0]


def test_origins_parse_with_default_ports():
    assert parse_origin("http://Example.com") == ("http", "example.com", 80)
    assert parse_origin("https://example.com:443") == ("https", "example.com", 443)
    assert parse_origin("http://[::1]:8000") == ("http", "[::1]", 8000)
    for bad in ("null", "ftp://example.com", "http://", "http://x:99999", "http://x/path", "example.com"):
        assert parse_origin(bad) is None, bad


def test_ipv6_same_origin(settings):
    settings.ALLOWED_HOSTS = ["[::1]"]
    scope = {"type": "websocket", "scheme": "ws", "headers": [(b"origin", b"http://[::1]:8000"), (b"host", b"[::1]:8000")]}
    assert origin_allowed(scope)
