"""The ticket list's filters, read from a query string (the API, the console
queue) or a saved view's stored filters: one parser for all three, so a view
stores only what the list understands and means the same thing everywhere."""

from __future__ import annotations

from tickets import sla
from tickets.errors import InvalidInput, InvalidTag
from tickets.models import Category, Channel, Queue, Ticket
from tickets.selectors import TicketFilters
from tickets.tags import normalize_tag
from core.parsing import int_or_none, parse_id, parse_int, parse_optional_id

# every key the list reads (``page`` and ``page_size`` are paging, not filters)
FILTER_KEYS = (
    "status", "queue", "grade", "assignee", "mine", "overdue", "merchant", "q", "active",
    "category", "channel", "tier", "tag", "buyer",
)
Q_MAX = 100


def _choices(params, name: str, allowed) -> list[str] | None:
    raw = params.get(name)
    if not raw:
        return None
    values = [v for v in raw.split(",") if v]
    unknown = set(values) - set(allowed)
    if unknown:
        raise InvalidInput(f"{name}: unknown {name} {', '.join(sorted(unknown))[:64]}.", field=name)
    return values or None


def parse_ticket_filters(params, *, user) -> TicketFilters:
    """Query parameters → ``TicketFilters`` (raises ``InvalidInput``, a 400 with
    code ``invalid`` naming the field, for a bad value)."""
    statuses = _choices(params, "status", Ticket.Status.values)
    queue_id = None
    if raw := params.get("queue"):
        if (number := int_or_none(raw, minimum=1)) is not None:
            queue_id = number
        else:
            queue_id = Queue.objects.filter(code=raw[:32]).values_list("pk", flat=True).first()
            if queue_id is None:
                raise InvalidInput(f"queue: unknown queue {raw[:32]!r}.", field="queue")
    grade = params.get("grade") or None
    if grade and grade not in sla.GRADE_DEADLINES:
        raise InvalidInput(f"grade: unknown grade {grade[:16]!r}.", field="grade")
    assignee_id, unassigned = None, False
    if raw := params.get("assignee"):
        if raw == "me":
            assignee_id = user.pk
        elif raw == "none":
            unassigned = True
        else:
            assignee_id = parse_id(raw, field="assignee")
    if params.get("mine") in ("1", "true"):
        assignee_id = user.pk
    merchant_id = parse_optional_id(params.get("merchant"), field="merchant")
    q = (params.get("q") or "").strip()[:Q_MAX] or None
    overdue = params.get("overdue") in ("1", "true", "True")
    tier = None
    if raw := params.get("tier"):
        tier = parse_int(raw, field="tier", minimum=sla.TIER_AGENT, maximum=sla.MAX_TIER)
    tag = None
    if raw := params.get("tag"):
        try:
            tag = normalize_tag(raw)
        except InvalidTag as exc:
            raise InvalidInput(f"tag: {exc.detail}", field="tag") from None
    return TicketFilters(
        status=statuses, queue_id=queue_id, grade=grade, assignee_id=assignee_id, unassigned=unassigned,
        overdue=overdue, merchant_id=merchant_id, q=q, active_only=params.get("active") in ("1", "true"),
        category=_choices(params, "category", Category.values), channel=_choices(params, "channel", Channel.values),
        tier=tier, tag=tag, buyer_id=parse_optional_id(params.get("buyer"), field="buyer"),
    )
