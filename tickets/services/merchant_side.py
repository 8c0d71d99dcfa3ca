"""What a merchant does on a ticket that needs it: accept the buyer's claim
(the refund) or contest it with evidence text and images."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from accounts import roles
from tickets.errors import Conflict, InvalidInput, PermissionDenied
from tickets.models import Evidence, Ticket, TicketEvent
from tickets.selectors import get_ticket_for
from tickets.services.conversation import append_message
from tickets.services.transitions import run_transition

MAX_IMAGES = 4
MAX_IMAGE_BYTES = 5 * 1024 * 1024
IMAGE_SIGNATURES = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/webp": (b"RIFF",),
}
ACTIONS = ("accept_refund", "contest")


@dataclass(frozen=True)
class Upload:
    name: str
    content_type: str
    data: bytes


def _check_image(upload: Upload) -> None:
    signatures = IMAGE_SIGNATURES.get(upload.content_type)
    if signatures is None or not upload.data.startswith(signatures):
        raise InvalidInput(f"{upload.name[:60]} is not a JPEG, PNG or WebP image.", field="images")
    if len(upload.data) > MAX_IMAGE_BYTES:
        raise InvalidInput(f"{upload.name[:60]} is larger than 5 MB.", field="images")


@transaction.atomic(durable=True)
def respond_as_merchant(*, actor, ticket_id: int, action: str, text: str = "",
                        images: list[Upload] | None = None) -> TicketEvent:
    """Record the merchant's answer in the conversation and the timeline, keep
    the evidence, and hand the ticket back to its agent (resume)."""
    if not roles.is_merchant_staff(actor):
        raise PermissionDenied("Only the merchant's staff answer here.")
    if action not in ACTIONS:
        raise InvalidInput(f"action is one of {', '.join(ACTIONS)}.", field="action")
    text = (text or "").strip()
    images = images or []
    if action == "contest" and not text:
        raise InvalidInput("Say why you contest the claim.", field="text")
    if len(text) > 2000:
        raise InvalidInput("text is at most 2000 characters.", field="text")
    if len(images) > MAX_IMAGES:
        raise InvalidInput(f"At most {MAX_IMAGES} images.", field="images")
    for upload in images:
        _check_image(upload)
    ticket = get_ticket_for(user=actor, ticket_id=ticket_id, lock=True)
    if ticket.status not in Ticket.ACTIVE:
        raise Conflict("This ticket no longer waits for an answer.")
    now = timezone.now()
    saved = []
    for upload in images:
        evidence = Evidence(ticket=ticket, uploaded_by=actor, content_type=upload.content_type,
                            size=len(upload.data), created_at=now)
        evidence.file.save(upload.name[-60:] or "evidence", ContentFile(upload.data), save=False)
        evidence.save()
        saved.append(evidence.pk)
    summary = {"accept_refund": "商家同意退款。", "contest": "商家提出异议："}[action]
    append_message(ticket=ticket, author=actor, body=f"{summary}{text}".strip(), internal=False, now=now)
    event = TicketEvent.objects.create(
        ticket=ticket, kind=f"merchant_{action}", actor=actor, created_at=now,
        data={"text": text, "evidence_ids": saved},
    )
    if ticket.status == Ticket.Status.WAITING_MERCHANT:
        run_transition(ticket=ticket, name="resume", actor=actor, now=now, system=True,
                       event_data={"reason": f"merchant_{action}"})
    return event
