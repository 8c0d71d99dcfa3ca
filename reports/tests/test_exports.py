"""GET /api/v1/exports/{tickets,remedies,ledger}.csv: UTF-8 with a BOM, a
header, one row per database row with Chinese text intact, streamed in chunks;
supervisors only; every export audited with its row count."""

from __future__ import annotations

import csv
import io

import pytest
from asgiref.sync import async_to_sync
from django.db import connection, connections
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext

from compensation.models import LedgerEntry, Remedy
from reports import exports
from reports.models import ExportRecord
from reports.tests.factories import executed_remedy
from tickets.models import Ticket
from tickets.tests.factories import open_ticket


def read_csv(response) -> tuple[bytes, list[list[str]]]:
    assert isinstance(response, StreamingHttpResponse)
    raw = b"".join(response.streaming_content)
    return raw, list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))


@pytest.mark.django_db
def test_tickets_csv(api, supervisor, buyer):
    open_ticket(buyer=buyer, subject="耳机左边没有声音", body="刚收到就坏了")
    open_ticket(buyer=buyer, subject="=HYPERLINK(\"http://x\")")
    response = api(supervisor).get("/api/v1/exports/tickets.csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="tickets-')
    raw, rows = read_csv(response)
    assert raw.startswith(b"\xef\xbb\xbf")
    header, body = rows[0], rows[1:]
    assert header[:3] == ["id", "created_at", "status"] and "subject" in header and "csat" in header
    assert len(body) == Ticket.objects.count() == 2
    subjects = {row[header.index("subject")] for row in body}
    assert subjects == {"耳机左边没有声音", "'=HYPERLINK(\"http://x\")"}  # a formula is neutralised
    assert {row[header.index("buyer")] for row in body} == {"林晓雨"}

    record = ExportRecord.objects.get()
    assert (record.user, record.kind, record.row_count) == (supervisor, "tickets", 2)
    assert set(record.filters) == {"from", "to"} and record.finished_at is not None


@pytest.mark.django_db
def test_remedies_and_ledger_csv(api, supervisor, buyer, other_buyer, agent, merchant):
    executed_remedy(buyer=buyer, agent=agent, merchant=merchant, kind="refund", amount_fen=1230, with_coupon=True)
    executed_remedy(buyer=other_buyer, agent=agent, merchant=merchant, kind="coupon")
    _, rows = read_csv(api(supervisor).get("/api/v1/exports/remedies.csv"))
    header, body = rows[0], rows[1:]
    assert len(body) == Remedy.objects.count() == 2
    refund = next(row for row in body if row[header.index("kind")] == "refund")
    assert refund[header.index("amount_fen")] == "1230" and refund[header.index("reason")] == "安抚补偿"
    assert refund[header.index("requested_by")] == "王芳"

    _, rows = read_csv(api(supervisor).get("/api/v1/exports/ledger.csv"))
    header, body = rows[0], rows[1:]
    assert len(body) == LedgerEntry.objects.count() > 0
    per_remedy: dict[str, int] = {}
    for row in body:
        per_remedy[row[header.index("remedy_id")]] = per_remedy.get(row[header.index("remedy_id")], 0) + int(
            row[header.index("amount_fen")])
    assert set(per_remedy.values()) == {0}  # each remedy's entries balance
    assert list(ExportRecord.objects.order_by("id").values_list("kind", "row_count")) == [
        ("remedies", 2), ("ledger", LedgerEntry.objects.count())]


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["tickets", "remedies", "ledger"])
def test_exports_only_for_supervisors_and_refusals_are_not_audited(api, kind, agent, buyer, merchant_user):
    url = f"/api/v1/exports/{kind}.csv"
    response = api(None).get(url)
    assert response.status_code == 401 and response.json()["code"] == "not_authenticated"
    for who in (agent, buyer, merchant_user):
        response = api(who).get(url, HTTP_ACCEPT="text/csv")
        assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    assert not ExportRecord.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("params, code", [
    ({"from": "2026-1-1"}, "invalid_date"),
    ({"from": "2026-03-02", "to": "2026-03-01"}, "period_reversed"),
    ({"from": "2000-01-01", "to": "2026-01-01"}, "period_too_long"),
])
def test_export_bad_period_is_400(api, supervisor, params, code):
    response = api(supervisor).get("/api/v1/exports/tickets.csv", params)
    assert response.status_code == 400 and response.json()["code"] == code
    assert not ExportRecord.objects.exists()


@pytest.mark.django_db
def test_export_streams_in_chunks_with_constant_queries(api, supervisor, buyer, monkeypatch,
                                                        django_assert_max_num_queries):
    monkeypatch.setattr(exports, "CHUNK_ROWS", 2)
    client = api(supervisor)
    open_ticket(buyer=buyer)
    with CaptureQueriesContext(connection) as few:
        read_csv(client.get("/api/v1/exports/tickets.csv"))
    for _ in range(6):
        open_ticket(buyer=buyer)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get("/api/v1/exports/tickets.csv")
        chunks = list(response.streaming_content)
    assert len(chunks) == 1 + 4  # BOM + header, then 7 rows two at a time
    assert ExportRecord.objects.order_by("-id").first().row_count == 7


def test_asgi_adapter_yields_the_same_chunks_one_at_a_time():
    async def collect():
        return [chunk async for chunk in exports.as_async(iter(["a", "b", "c"]))]

    assert async_to_sync(collect)() == ["a", "b", "c"]


@pytest.mark.django_db(transaction=True)
async def test_export_under_asgi_streams_an_async_iterator(supervisor, buyer):
    """Production serves ASGI: the response iterates asynchronously (one chunk per
    thread hop), so Django does not read the whole export into memory first."""
    from asgiref.sync import sync_to_async
    from django.test import AsyncClient

    from accounts.services import issue_api_token

    await sync_to_async(open_ticket)(buyer=buyer, subject="退货地址在哪里")
    token = await sync_to_async(issue_api_token)(user=supervisor)
    response = await AsyncClient().get("/api/v1/exports/tickets.csv", headers={"Authorization": f"Token {token.key}"})
    assert response.status_code == 200 and response.is_async
    raw = b"".join([chunk async for chunk in response.streaming_content])
    assert raw.startswith(b"\xef\xbb\xbf") and "退货地址在哪里" in raw.decode("utf-8-sig")
    record = await ExportRecord.objects.aget()
    assert record.row_count == 1
    await sync_to_async(connections.close_all)()  # the thread-sensitive executor's connection
