"""The reports' only writes: the audit row of each CSV export.

An export is a GET that writes, on purpose: every export of customer data is
recorded before its first row leaves (who, what, which filters, when) and
given its row count once the last row has gone (counted while streaming, so
it costs nothing). A download cut short keeps ``finished_at`` empty.
"""

from __future__ import annotations

from datetime import date, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from reports.errors import PermissionDenied
from reports.models import DailyFigure, ExportRecord, RollupState
from reports.rules import may_see_reports


@transaction.atomic(durable=True)
def start_export(*, actor, kind: str, filters: dict, client_ip: str | None = None) -> ExportRecord:
    if not may_see_reports(actor):
        raise PermissionDenied("Only supervisors export data.")
    return ExportRecord.objects.create(user=actor, kind=kind, filters=filters, client_ip=client_ip,
                                       started_at=timezone.now())


@transaction.atomic(durable=True)
def finish_export(*, record_id: int, row_count: int) -> None:
    ExportRecord.objects.filter(pk=record_id).update(row_count=row_count, finished_at=timezone.now())


# --- the reports' rollup ---------------------------------------------------
#
# Semantics: each figure is keyed by its event's own local day (a rating by
# when it was given, a resolution by when it happened, a chat reply by when it
# was sent, a shipment by when it was shipped). The periodic job recomputes
# whole closed days (delete + insert of the day in one transaction: running it
# twice leaves the same rows) and moves ``RollupState.through`` to yesterday;
# the reports read the days up to ``through`` from the rollup and every later
# day (today at least) live. Each run recomputes the last
# ``REPORT_ROLLUP_RECOMPUTE_DAYS`` closed days (late commits, and a reopen
# inside ``REOPEN_WINDOW`` taking a resolution out of its day), the shipped
# days of shipments that got a carrier event or a rating since the previous
# run, and the days of ratings of tickets active again (their assignee may
# change); a change of ``CHAT_RESPONSE_TARGET_S`` recomputes every day (the
# chat figure is read live meanwhile). So a closed day reflects what was
# committed up to the job's last run.

ROLLUP_MARGIN = timedelta(minutes=10)  # rows committed late by up to this still count as "since the last run"


def recompute_days() -> int:
    return int(getattr(settings, "REPORT_ROLLUP_RECOMPUTE_DAYS", 8))


@transaction.atomic(durable=True)
def roll_up_day(*, day: date, target: int | None = None) -> int:
    """Replace the day's ``DailyFigure`` rows by a fresh count; the rows' number."""
    from reports.selectors import day_figures, target_s

    # two runs at once (beat and a manual run) take turns per day: the
    # state row is the only lock this transaction takes, so it cannot join a
    # circle of waits (hence not in core.locks' order)
    RollupState.objects.get_or_create(pk=1)
    list(RollupState.objects.select_for_update().filter(pk=1))
    rows = day_figures(day, target=target_s() if target is None else target)
    DailyFigure.objects.filter(day=day).delete()
    DailyFigure.objects.bulk_create(rows, batch_size=2000)
    return len(rows)


def _first_day() -> date | None:
    """The earliest local day any figure can fall on (None: no data)."""
    from compensation.models import Remedy
    from merchants.models import Shipment
    from tickets.models import Message, Rating, Ticket

    firsts = [Ticket.objects.aggregate(m=Min("created_at"))["m"],
              Ticket.objects.aggregate(m=Min("resolved_at"))["m"],
              Rating.objects.aggregate(m=Min("created_at"))["m"],
              Message.objects.filter(waited_from__isnull=False).aggregate(m=Min("created_at"))["m"],
              Remedy.objects.filter(executed_at__isnull=False).aggregate(m=Min("executed_at"))["m"],
              Shipment.objects.aggregate(m=Min("shipped_at"))["m"]]
    firsts = [timezone.localdate(when) for when in firsts if when]
    return min(firsts) if firsts else None


def refresh_rollups(*, rebuild: bool = False) -> int:
    """The periodic job (``reports.tasks.refresh_report_rollups``): bring the
    rollup up to yesterday; every closed day on the first run, after
    ``CHAT_RESPONSE_TARGET_S`` changed, or with ``rebuild``. Returns the
    number of days recomputed. Days are committed one by one (a reader sees a
    day either whole before or whole after), ``through`` last."""
    from reports.selectors import days_touched, target_s

    started = timezone.now()
    today = timezone.localdate(started)
    yesterday = today - timedelta(days=1)
    target = target_s()
    state, _ = RollupState.objects.get_or_create(pk=1)
    if rebuild or state.through is None or state.chat_target_s != target:
        first = _first_day() or today
        days = {first + timedelta(days=i) for i in range((yesterday - first).days + 1)}
    else:
        first = min(state.through + timedelta(days=1), yesterday - timedelta(days=recompute_days() - 1))
        days = {first + timedelta(days=i) for i in range((yesterday - first).days + 1)}
        since = (state.refreshed_at or started) - ROLLUP_MARGIN
        days |= days_touched(since=since, before=today)
    for day in sorted(days):
        roll_up_day(day=day, target=target)
    RollupState.objects.filter(pk=1).update(through=yesterday, chat_target_s=target, refreshed_at=started)
    return len(days)
