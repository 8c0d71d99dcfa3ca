"""HTTP through the ASGI application as served (cs_portal.asgi), in-process:
the middleware chain and the view run as one call on the request's thread."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import threading

import pytest
from django.core.signals import request_finished, request_started

from accounts.services import issue_api_token
from core.asgi_http import OneSwitchASGIHandler
from tickets.models import Ticket

pytestmark = pytest.mark.django_db(transaction=True)


def _request(method: str, path: str, *, body: bytes = b"", headers: dict | None = None, query: bytes = b"",
             events: list | None = None) -> tuple[int, dict, bytes]:
    """One request through the served application; ``events`` gets each
    message's type as it is sent."""
    from cs_portal.asgi import application

    raw_headers = [(b"host", b"testserver")] + [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    if body:
        raw_headers.append((b"content-length", str(len(body)).encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": query, "root_path": "", "headers": raw_headers,
             "client": ("127.0.0.1", 50000), "server": ("testserver", 80)}
    sent: list[dict] = []
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        if pending:
            return pending.pop(0)
        await asyncio.Event().wait()  # the client waits for the answer

    async def send(message):
        sent.append(message)
        if events is not None:
            events.append(message["type"])

    asyncio.run(application(scope, receive, send))
    start = sent[0]
    return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, b"".join(
        m.get("body", b"") for m in sent[1:])


def test_the_served_application_uses_the_one_switch_handler():
    from cs_portal import asgi

    assert isinstance(asgi.django_asgi_app, OneSwitchASGIHandler)
    assert not asyncio.iscoroutinefunction(asgi.django_asgi_app._middleware_chain)


def test_signals_middleware_and_view_share_the_request_s_thread(buyer, order, monkeypatch):
    """request_started and request_finished close the database connection of
    the thread they run on: it must be the view's."""
    seen: dict[str, int] = {}

    def started(**kwargs):
        seen["started"] = threading.get_ident()

    def finished(**kwargs):
        seen["finished"] = threading.get_ident()

    from tickets import api

    view = api.TicketListApi.post

    def post(self, request):
        seen["view"] = threading.get_ident()
        return view(self, request)

    monkeypatch.setattr(api.TicketListApi, "post", post)
    request_started.connect(started)
    request_finished.connect(finished)
    try:
        token = issue_api_token(user=buyer).key
        status, headers, body = _request(
            "POST", "/api/v1/tickets/", headers={"authorization": f"Token {token}", "content-type": "application/json"},
            body=json.dumps({"category": "logistics_delay", "subject": "到哪了", "body": "五天没动",
                             "order_id": order.pk}).encode())
    finally:
        request_started.disconnect(started)
        request_finished.disconnect(finished)

    assert status == 201, body
    assert Ticket.objects.filter(pk=json.loads(body)["id"], buyer=buyer).exists()
    assert seen["view"] == seen["started"] == seen["finished"]
    assert seen["view"] != threading.get_ident()  # not on the event loop's thread


def test_refusals_and_middleware_answers_are_unchanged(buyer):
    token = issue_api_token(user=buyer).key
    status, headers, body = _request(
        "POST", "/api/v1/tickets/", headers={"authorization": f"Token {token}", "content-type": "application/json"},
        body=json.dumps({"category": "no_such_thing", "subject": "x", "body": "y"}).encode())
    assert status == 400 and json.loads(body)["code"] == "unknown_category"
    assert Ticket.objects.count() == 0

    status, headers, body = _request("GET", "/api/v1/tickets/")
    assert status in (401, 403)

    # security headers (SecurityMiddleware, XFrameOptionsMiddleware) and the locale (LocaleMiddleware)
    status, headers, body = _request("GET", "/accounts/login/", headers={"accept-language": "en"})
    assert status == 200
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["content-language"] == "en"
    assert "csrftoken" in headers.get("set-cookie", "")

    # a form post without its CSRF token is refused (CsrfViewMiddleware)
    status, headers, body = _request("POST", "/accounts/login/", body=b"username=a&password=b",
                                     headers={"content-type": "application/x-www-form-urlencoded"})
    assert status == 403


def test_static_files_are_served_on_the_way_in():
    status, headers, body = _request("GET", "/static/vendor/htmx-2.0.11.min.js")
    assert status == 200 and b"htmx" in body


def test_a_request_thread_is_kept_for_the_next_request(agent, monkeypatch):
    threads: list[threading.Thread] = []
    from tickets import api

    view = api.TicketListApi.get

    def get(self, request):
        threads.append(threading.current_thread())
        return view(self, request)

    monkeypatch.setattr(api.TicketListApi, "get", get)
    token = issue_api_token(user=agent).key
    for _ in range(2):
        status, headers, body = _request("GET", "/api/v1/tickets/", headers={"authorization": f"Token {token}"})
        assert status == 200
    assert threads[0] is threads[1]  # not a thread started and joined per request
    assert threads[0] is not threading.current_thread()


@pytest.fixture
def finished_events():
    """``events`` with "finished" appended by each ``request_finished``."""
    events: list[str] = []

    def finished(**kwargs):
        events.append("finished")

    request_finished.connect(finished)
    yield events
    request_finished.disconnect(finished)


def test_an_answer_in_memory_hands_the_connection_back_before_it_is_written(agent, finished_events):
    token = issue_api_token(user=agent).key
    status, headers, body = _request("GET", "/api/v1/tickets/", headers={"authorization": f"Token {token}"},
                                     events=finished_events)
    assert status == 200 and "results" in json.loads(body)
    assert finished_events == ["finished", "http.response.start", "http.response.body"]


def test_a_streaming_answer_is_closed_after_its_last_chunk(finished_events):
    status, headers, body = _request("GET", "/static/vendor/htmx-2.0.11.min.js", events=finished_events)
    assert status == 200 and b"htmx" in body
    assert finished_events[0] == "http.response.start"
    assert finished_events[-2:] == ["http.response.body", "finished"]


def test_a_request_django_cannot_read_is_refused_and_finished(finished_events):
    status, headers, body = _request("GET", "/api/v1/tickets/", query=b"q=\xff", events=finished_events)
    assert status == 400
    assert finished_events == ["finished", "http.response.start", "http.response.body"]


def test_a_client_leaving_stops_a_streaming_answer(finished_events, caplog):
    """The export of a client that went away is not streamed on to nobody:
    the stream is closed, and the request finished, once the client leaves."""
    from django.http import StreamingHttpResponse

    state = {"chunks": 0, "closed": False}

    async def endless():
        try:
            while True:
                state["chunks"] += 1
                yield b"row\n"
                await asyncio.sleep(0.005)
        finally:
            state["closed"] = True

    handler = OneSwitchASGIHandler()
    handler.get_response = lambda request: StreamingHttpResponse(endless(), content_type="text/csv")
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": "/export.csv", "raw_path": b"/export.csv", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"testserver")], "client": ("127.0.0.1", 50000), "server": ("testserver", 80)}
    messages = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive():
        if messages:
            return messages.pop(0)
        while state["chunks"] < 5:
            await asyncio.sleep(0.005)
        return {"type": "http.disconnect"}

    async def send(message):
        finished_events.append(message["type"])

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        asyncio.run(asyncio.wait_for(handler(scope, receive, send), timeout=10))
        gc.collect()
    assert not [r for r in caplog.records if r.name == "asyncio"]  # the client's leaving was heard, not left lying

    assert state["closed"]
    assert 5 <= state["chunks"] < 50
    assert finished_events[0] == "http.response.start" and finished_events[-1] == "finished"
    assert finished_events.count("finished") == 1
