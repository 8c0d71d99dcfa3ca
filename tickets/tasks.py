"""Background jobs: Celery in production, inline in the embedded default."""

from __future__ import annotations

from celery import shared_task
from django.db import transaction


@shared_task(name="tickets.tasks.sla_sweep")
def sla_sweep() -> int:
    from tickets.services import sweep_sla

    return len(sweep_sla())


@shared_task(name="tickets.tasks.fold_search_text")
def fold_search_text() -> int:
    from tickets.services import fold_search_text

    return fold_search_text()


@shared_task(name="tickets.tasks.shift_reminders")
def shift_reminders() -> int:
    from tickets.services import send_shift_reminders

    return len(send_shift_reminders())


@shared_task(name="tickets.tasks.resend_deadlines")
def resend_deadlines() -> int:
    from tickets.services import sweep_missed_resends

    return len(sweep_missed_resends())


@shared_task(name="tickets.tasks.dispatch_chats")
def dispatch_chats_task() -> int:
    from tickets.services import dispatch_chats

    return len(dispatch_chats())


def dispatch_chats_later() -> None:
    """After this transaction commits, offer waiting chats to free agents."""
    from core.tasks import enqueue_on_commit

    enqueue_on_commit(dispatch_chats_task)
