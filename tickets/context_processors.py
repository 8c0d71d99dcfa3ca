"""Figures every page of the merchant portal shows in its navigation."""

from __future__ import annotations

from accounts import roles
from tickets.models import Ticket
from tickets.selectors import tickets_visible_to


def merchant_attention(request) -> dict:
    """``merchant_needs_count``: the merchant's tickets waiting on its answer.

    A callable, so the count query runs only on pages that show it.
    """
    def count() -> int:
        user = getattr(request, "user", None)
        if not roles.is_merchant_staff(user):
            return 0
        return tickets_visible_to(user=user).filter(status=Ticket.Status.WAITING_MERCHANT).count()

    return {"merchant_needs_count": count}
