"""The CSV exports: rows read in chunks (``.iterator(chunk_size=...)``) and
written out one chunk at a time, so memory stays the same at a million rows.

UTF-8 with a byte-order mark first, so Excel opens Chinese text correctly.
Cells of free text that a spreadsheet would run as a formula (``=``, ``+``,
``-``, ``@``) get a leading apostrophe.

Reads may come from the replica (``core.db_router``): the alias is chosen
once, before streaming, because the rows are produced later, outside the
request's ``replica_reads()`` block (under ASGI on another thread).
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.db import router
from django.utils import timezone

from compensation.models import LedgerEntry, Remedy
from core.db_router import replica_reads
from reports.rules import Period
from tickets.models import Ticket

CHUNK_ROWS = 2000
BOM = "\ufeff"
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


class _Line:
    """A file-like that hands back what csv.writer writes."""

    def write(self, value: str) -> str:
        return value


def _safe(value):
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return value


def _time(value) -> str:
    return timezone.localtime(value).isoformat() if value else ""


@dataclass(frozen=True)
class Export:
    kind: str
    header: list[str]
    queryset: Callable[[Period], object]
    row: Callable[[object], list]


def _tickets(period: Period):
    return (Ticket.objects.filter(created_at__gte=period.start, created_at__lt=period.end)
            .select_related("queue", "order", "merchant", "buyer", "assignee", "rating")
            .order_by("created_at", "id"))


def _ticket_row(t: Ticket) -> list:
    rating = getattr(t, "rating", None)
    first = (t.first_response_at - t.created_at).total_seconds() if t.first_response_at else ""
    return [t.pk, _time(t.created_at), t.status, t.category, t.grade, t.tier, t.channel,
            t.queue.code if t.queue else "", t.order.order_no if t.order else "", t.order.region if t.order else "",
            t.buyer_id or "", t.buyer.name if t.buyer else "", t.merchant_id or "", t.merchant.name if t.merchant else "",
            t.assignee_id or "", t.assignee.name if t.assignee else "", _safe(t.subject),
            first, _time(t.resolved_at), _time(t.breached_at), rating.score if rating else ""]


def _remedies(period: Period):
    return (Remedy.objects.filter(created_at__gte=period.start, created_at__lt=period.end)
            .select_related("order", "requested_by", "decided_by").order_by("created_at", "id"))


def _remedy_row(r: Remedy) -> list:
    return [r.pk, r.ticket_id, r.order.order_no if r.order else "", r.buyer_id, r.kind, r.status, r.amount_fen,
            r.coupon_fen if r.with_coupon else 0, r.cost_fen, "yes" if r.self_service else "no",
            r.requested_by.name, r.decided_by.name if r.decided_by else "", _safe(r.reason),
            " ".join(r.approval_reasons or []), _time(r.created_at), _time(r.decided_at), _time(r.executed_at)]


def _ledger(period: Period):
    return LedgerEntry.objects.filter(created_at__gte=period.start, created_at__lt=period.end).order_by("id")


def _ledger_row(e: LedgerEntry) -> list:
    return [e.pk, e.remedy_id, e.chain, e.account, e.amount_fen, _safe(e.memo), _time(e.created_at),
            e.prev_hash, e.hash]


EXPORTS = {
    "tickets": Export("tickets", [
        "id", "created_at", "status", "category", "grade", "tier", "channel", "queue", "order_no", "region",
        "buyer_id", "buyer", "merchant_id", "merchant", "assignee_id", "assignee", "subject",
        "first_response_s", "resolved_at", "breached_at", "csat"], _tickets, _ticket_row),
    "remedies": Export("remedies", [
        "id", "ticket_id", "order_no", "buyer_id", "kind", "status", "amount_fen", "coupon_fen", "cost_fen",
        "self_service", "requested_by", "decided_by", "reason", "approval_reasons", "created_at", "decided_at",
        "executed_at"], _remedies, _remedy_row),
    "ledger": Export("ledger", [
        "id", "remedy_id", "chain", "account", "amount_fen", "memo", "created_at", "prev_hash", "hash"],
        _ledger, _ledger_row),
}


def read_alias(model) -> str:
    """Where the export reads from: the replica when there is one."""
    with replica_reads():
        return router.db_for_read(model) or "default"


def csv_lines(export: Export, period: Period, *, on_done: Callable[[int], None]) -> Iterator[str]:
    """The export as text chunks (the BOM and header first, then one chunk per
    ``CHUNK_ROWS`` rows); ``on_done(rows)`` once the last has been produced."""
    queryset = export.queryset(period)
    queryset = queryset.using(read_alias(queryset.model))
    writer = csv.writer(_Line())
    yield BOM + writer.writerow(export.header)
    rows, batch = 0, []
    for item in queryset.iterator(chunk_size=CHUNK_ROWS):
        batch.append(writer.writerow(export.row(item)))
        rows += 1
        if len(batch) >= CHUNK_ROWS:
            yield "".join(batch)
            batch = []
    if batch:
        yield "".join(batch)
    on_done(rows)


def _next_chunk(chunks: Iterator[str]) -> str | None:
    return next(chunks, None)


async def as_async(chunks: Iterable[str]) -> AsyncIterator[str]:
    """Serve a sync chunk generator under ASGI one chunk at a time (Django would
    otherwise read a sync iterator whole into memory first). Every step runs
    on the same thread (``thread_sensitive``), with the same connection and cursor."""
    iterator = iter(chunks)
    step = sync_to_async(_next_chunk, thread_sensitive=True)
    while (chunk := await step(iterator)) is not None:
        yield chunk
