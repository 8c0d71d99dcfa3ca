"""The reports' only writes: the audit row of each CSV export.

An export is a GET that writes, on purpose: every export of customer data is
recorded before its first row leaves (who, what, which filters, when) and
given its row count once the last row has gone (counted while streaming, so
it costs nothing). A download cut short keeps ``finished_at`` empty.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from reports.errors import PermissionDenied
from reports.models import ExportRecord
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
