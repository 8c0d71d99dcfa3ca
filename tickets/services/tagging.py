"""Tags on tickets and agents' saved views (issue #13 item 4)."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import roles
from core.locks import lock
from tickets import events
from tickets.errors import InvalidInput, InvalidViewFilters, PermissionDenied, TooManyViews, ViewNameTaken
from tickets.filters import FILTER_KEYS, parse_ticket_filters
from tickets.models import SavedView, Ticket, TicketEvent, TicketTag
from tickets.selectors import VIEWS_PER_AGENT, get_saved_view_for, get_ticket_for
from tickets.tags import normalize_tags

VIEW_NAME_MAX = 40
VIEW_VALUE_MAX = 100


def _require_staff(actor, what: str) -> None:
    if not roles.is_agent(actor):
        raise PermissionDenied(f"Only staff {what}.")


@transaction.atomic(durable=True)
def set_ticket_tags(*, actor, ticket_id: int, tags: list[str]) -> Ticket:
    """Set the ticket's tags to ``tags`` (normalised, at most 10): staff only
    (403 before anything is looked up, so it reveals nothing), 404 for an
    unknown ticket, 400 ``invalid_tag``, 422 ``too_many_tags``. The ticket is
    locked, so two agents tagging at once apply one after the other; a change
    is written to the timeline with what was added and removed (no change, no
    event)."""
    _require_staff(actor, "tag tickets")
    names = normalize_tags(tags)
    ticket = get_ticket_for(user=actor, ticket_id=ticket_id, lock=True)
    current = set(TicketTag.objects.filter(ticket=ticket).values_list("name", flat=True))
    added = [n for n in names if n not in current]
    removed = sorted(current - set(names))
    if not added and not removed:
        return ticket
    now = timezone.now()
    if removed:
        TicketTag.objects.filter(ticket=ticket, name__in=removed).delete()
    if added:
        TicketTag.objects.bulk_create([TicketTag(ticket=ticket, name=n, created_at=now) for n in added])
    Ticket.objects.filter(pk=ticket.pk).update(updated_at=now)
    ticket.updated_at = now
    TicketEvent.objects.create(ticket=ticket, kind="tags_changed", actor=actor, created_at=now,
                               data={"added": sorted(added), "removed": removed, "tags": sorted(names)})
    events.ticket_changed(ticket)
    return ticket


def clean_view_filters(filters, *, actor) -> dict[str, str]:
    """A view's filters as stored: a JSON object of known keys only (400
    ``invalid_view_filters`` for anything else), scalar values kept as the
    query string would carry them, validated by the list's own parser (400
    naming the filter). Empty values are dropped."""
    if not isinstance(filters, dict):
        raise InvalidViewFilters("filters is an object of filter names to values.", field="filters")
    unknown = sorted(str(k)[:32] for k in filters if k not in FILTER_KEYS)
    if unknown:
        raise InvalidViewFilters(f"filters: unknown filter {', '.join(unknown)[:100]}; known: "
                                 f"{', '.join(FILTER_KEYS)}.", field="filters")
    cleaned: dict[str, str] = {}
    for key in FILTER_KEYS:
        value = filters.get(key)
        if value is None or value == "" or value is False:
            continue
        if value is True:
            value = "true"
        elif isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or len(value) > VIEW_VALUE_MAX:
            raise InvalidViewFilters(f"filters.{key} is a string of at most {VIEW_VALUE_MAX} characters, a number "
                                     f"or true.", field="filters")
        cleaned[key] = value.strip()
    parse_ticket_filters(cleaned, user=actor)  # a bad value is a 400 naming it
    return cleaned


@transaction.atomic(durable=True)
def create_saved_view(*, actor, name: str, filters) -> SavedView:
    """Save a named queue filter for the agent: 403 for non-staff, 400 for a
    bad name or filters, 409 ``view_name_taken``, 422 ``too_many_views`` past
    ``VIEWS_PER_AGENT``. The cap is checked with the agent's account row
    locked (``core.locks`` order: account first), so parallel saves cannot
    pass it together; the name is unique by constraint."""
    _require_staff(actor, "save views")
    name = " ".join((name or "").split()) if isinstance(name, str) else ""
    if not name or len(name) > VIEW_NAME_MAX:
        raise InvalidInput(f"name is 1–{VIEW_NAME_MAX} characters.", field="name")
    cleaned = clean_view_filters(filters, actor=actor)
    from django.contrib.auth import get_user_model

    lock(get_user_model().objects.filter(pk=actor.pk).order_by("pk"), "account").first()
    existing = SavedView.objects.filter(owner_id=actor.pk)
    if existing.filter(name=name).exists():
        raise ViewNameTaken()
    if existing.count() >= VIEWS_PER_AGENT:
        raise TooManyViews()
    try:
        with transaction.atomic():
            return SavedView.objects.create(owner_id=actor.pk, name=name, filters=cleaned)
    except IntegrityError:
        raise ViewNameTaken() from None


@transaction.atomic(durable=True)
def delete_saved_view(*, actor, view_id: int) -> None:
    """Delete one of the agent's own views (another agent's is a 404)."""
    _require_staff(actor, "keep views")
    get_saved_view_for(user=actor, view_id=view_id).delete()
