"""Every integer input of every endpoint, fed what clients and attackers send:
``"²"`` (``str.isdigit`` says yes, ``int`` raises), full-width digits, numbers
past 64 bits (SQLite raises ``OverflowError``), and bodies nested past
Python's parser. The answer is always a 4xx with a code, never a 500.

The API is walked from its own OpenAPI schema, so a new endpoint is fuzzed
without being listed here; the pages and sockets that read integers are listed.
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest
from django.test import Client
from drf_spectacular.generators import SchemaGenerator

from tickets.tests.factories import ticket_in_state

BAD_INTEGERS = ["²", "１２", "9" * 25, str(2**70), "-9" + "9" * 24, "1e3", " ", "0x10"]
BAD_JSON_INTEGERS = ["²", 2**70, -(2**70), 1.5, [2**70], {"a": 1}]


def _schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def _resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _example(schema: dict, node: dict):
    """A plausible valid value for a schema node (so the fuzzed field is what fails)."""
    node = _resolve(schema, node)
    if "enum" in node:
        return node["enum"][0]
    if "oneOf" in node or "allOf" in node:
        return _example(schema, (node.get("oneOf") or node.get("allOf"))[0])
    kind = node.get("type")
    if kind == "integer":
        return max(1, node.get("minimum", 1))
    if kind == "number":
        return 1
    if kind == "boolean":
        return False
    if kind == "array":
        return [_example(schema, node.get("items", {}))]
    if kind == "object":
        return {name: _example(schema, prop) for name, prop in node.get("properties", {}).items()
                if name in node.get("required", [])}
    return "x"


def _integer_fields(schema: dict, node: dict) -> list[tuple[str, bool]]:
    """(name, is_list) of the integer properties of a request body."""
    node = _resolve(schema, node)
    found = []
    for name, prop in node.get("properties", {}).items():
        prop = _resolve(schema, prop)
        if prop.get("readOnly"):
            continue
        if prop.get("type") == "integer":
            found.append((name, False))
        elif prop.get("type") == "array" and _resolve(schema, prop.get("items", {})).get("type") == "integer":
            found.append((name, True))
    return found


@pytest.fixture
def world(buyer, agent, supervisor, order, merchant_user):
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)
    return {
        "ticket_id": ticket.pk, "order_id": order.pk, "merchant_id": order.merchant_id,
        "account_id": buyer.pk, "name": "assign",
    }


def _path(template: str, world: dict, override: tuple[str, str] | None = None) -> str:
    def fill(match):
        name = match.group(1)
        if override and override[0] == name:
            return override[1]
        return str(world.get(name, 1))
    return re.sub(r"{(\w+)}", fill, template)


def _clients(api, supervisor, merchant_user, buyer):
    return [api(supervisor), api(merchant_user), api(buyer)]


def _assert_4xx(response, what: str) -> None:
    assert 400 <= response.status_code < 500, f"{what}: {response.status_code} {response.content[:300]!r}"
    if response.status_code != 404 or response.get("Content-Type", "").startswith("application/json"):
        body = response.json()
        assert body.get("code"), f"{what}: no code in {body}"


@pytest.mark.django_db
def test_every_api_integer_input_answers_4xx(world, api, supervisor, merchant_user, buyer):
    schema = _schema()
    clients = _clients(api, supervisor, merchant_user, buyer)
    checked = 0
    for template, operations in schema["paths"].items():
        for method, op in operations.items():
            params = op.get("parameters", [])
            # path ids past 64 bits or not digits: a 404 (no route), never a 500
            for param in params:
                if param["in"] == "path" and param["schema"].get("type") == "integer":
                    for bad in ("9" * 25, str(2**64)):
                        response = clients[0].generic(method.upper(), _path(template, world, (param["name"], bad)))
                        assert response.status_code == 404, (template, bad, response.status_code)
                        checked += 1
            # query integers
            for param in params:
                if param["in"] == "query" and param["schema"].get("type") == "integer":
                    for bad in BAD_INTEGERS:
                        for client in clients:
                            response = client.generic(method.upper(), _path(template, world),
                                                      **{"QUERY_STRING": f"{param['name']}={quote(bad)}"})
                            if bad.strip():
                                _assert_4xx(response, f"{method} {template}?{param['name']}={bad}")
                            else:  # blank is "no filter"
                                assert response.status_code < 500, (template, param["name"])
                            checked += 1
            # body integers, the rest of the body valid
            body_schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if body_schema is None:
                continue
            base = _example(schema, body_schema)
            for name, is_list in _integer_fields(schema, body_schema):
                for bad in BAD_JSON_INTEGERS:
                    body = {**base, name: [bad] if is_list and not isinstance(bad, list) else bad}
                    for client in clients:
                        response = client.generic(method.upper(), _path(template, world), json.dumps(body),
                                                  content_type="application/json", HTTP_IDEMPOTENCY_KEY="fuzz-key")
                        _assert_4xx(response, f"{method} {template} {name}={bad!r}")
                        checked += 1
    assert checked > 300


@pytest.mark.django_db
def test_a_body_nested_past_the_parser_is_a_400(world, api, supervisor):
    schema = _schema()
    client = api(supervisor)
    deep = "[" * 100_000 + "]" * 100_000
    posted = 0
    for template, operations in schema["paths"].items():
        for method, op in operations.items():
            if "requestBody" in op and method in ("post", "patch"):
                response = client.generic(method.upper(), _path(template, world), deep,
                                          content_type="application/json", HTTP_IDEMPOTENCY_KEY="deep")
                assert 400 <= response.status_code < 500, (template, response.status_code)
                posted += 1
    assert posted > 20


@pytest.mark.django_db
def test_pages_that_read_integers_answer_4xx(world, supervisor, merchant_user, buyer):
    staff, merchant, customer = Client(), Client(), Client()
    staff.force_login(supervisor)
    merchant.force_login(merchant_user)
    customer.force_login(buyer)
    ticket_id = world["ticket_id"]
    gets = [
        (staff, "/console/?q={}"), (staff, "/console/?queue={}"), (staff, "/console/?assignee={}"),
        (staff, "/console/?merchant={}"), (staff, "/console/chats/tabs/?current={}"),
        (staff, f"/console/tickets/{ticket_id}/messages/?after_seq={{}}"),
        (merchant, f"/merchant/tickets/{ticket_id}/messages/?after_seq={{}}"),
        (staff, "/console/?tier={}"), (staff, "/console/?buyer={}"), (staff, "/console/playbooks/?ticket={}"),
        (staff, "/console/calls/new/?ticket={}"), (staff, "/console/calls/callers/?caller_phone={}"),
    ]
    for client, url in gets:
        for bad in BAD_INTEGERS:
            response = client.get(url.format(bad))
            assert response.status_code < 500, (url, bad, response.status_code)
    posts = [
        (staff, f"/console/tickets/{ticket_id}/transitions/assign/", "assignee_id"),
        (staff, "/console/remedies/policy/", "agent_monthly_quota"),
        (staff, "/console/remedies/policy/", "budget_fen"),
        (staff, f"/console/risk/accounts/{world['account_id']}/cancel/", "order_id"),
        (staff, f"/console/risk/accounts/{world['account_id']}/undo/", "order_id"),
        (customer, "/chat/start/", "order_id"),
        (customer, f"/chat/{ticket_id}/rate/", "score"),
        (staff, "/console/overtime/", "minutes"),
        (staff, "/console/calls/new/", "order_id"),
        (staff, "/console/calls/new/", "duration"),
        (staff, "/console/calls/new/", "target"),
        (staff, "/console/coupon-failures/", "amount_fen"),
    ]
    for client, url, field in posts:
        for bad in BAD_INTEGERS:
            data = {field: bad, "reason": "fuzz", "form": "breaker" if field == "budget_fen" else "policy"}
            response = client.post(url, data, HTTP_HX_REQUEST="true")
            assert response.status_code < 500, (url, field, bad, response.status_code)


@pytest.mark.django_db(transaction=True)
async def test_sockets_refuse_bad_integers_and_deep_frames(world, buyer):
    from channels.db import database_sync_to_async
    from channels.routing import get_default_application
    from channels.testing import WebsocketCommunicator

    def cookie():
        client = Client()
        client.force_login(buyer)
        return client.cookies["sessionid"].value

    headers = [(b"origin", b"http://testserver"), (b"host", b"testserver"),
               (b"cookie", f"sessionid={await database_sync_to_async(cookie)()}".encode())]
    for bad in ("²", "9" * 25, "-1"):
        ws = WebsocketCommunicator(get_default_application(), f"/ws/tickets/{world['ticket_id']}/chat/?after_seq={bad}",
                                   headers=headers)
        connected, _ = await ws.connect(timeout=10)
        assert connected
        assert (await ws.receive_json_from(timeout=5))["code"] == "invalid"
        assert (await ws.receive_output(timeout=5))["code"] == 4400
    ws = WebsocketCommunicator(get_default_application(), f"/ws/tickets/{world['ticket_id']}/chat/?after_seq=0",
                               headers=headers)
    assert (await ws.connect(timeout=10))[0]
    while not await ws.receive_nothing(timeout=0.3):
        await ws.receive_from()
    await ws.send_to(text_data="[" * 4000 + "]" * 4000)
    assert (await ws.receive_json_from(timeout=5))["code"] == "malformed_json"
    await ws.send_json_to({"type": "read", "seq": "²"})
    assert (await ws.receive_json_from(timeout=5))["code"] == "invalid"
    await ws.disconnect()
