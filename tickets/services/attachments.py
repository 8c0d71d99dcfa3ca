"""Pictures and PDFs in chat (issue #13 item 3).

Uploading stores a file for a ticket, unclaimed; the uploader's next message
on that ticket claims it (``post_message`` and the chat socket's batch, through
``attachments_to_claim`` and ``claim_attachments``).

What is stored is judged by its content, never by the client's name or
declared type: JPEG, PNG, WebP and GIF images (opened and verified by Pillow,
their pixel count checked before anything is decoded, then re-encoded: the
EXIF orientation applied first, every other piece of metadata, EXIF with its
GPS position included, dropped) and PDF documents (``%PDF-``). Anything else,
SVG and HTML included, is refused. The server names every file; the storage
is Django's (``default_storage``), so production may put it in object storage.
"""

from __future__ import annotations

import io
import secrets
import warnings

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from PIL import Image, ImageOps, UnidentifiedImageError

from core import doors
from core.errors import InvalidInput
from core.parsing import MAX_INT
from tickets import rules
from tickets.errors import (
    AttachmentUnavailable, FileRequired, FileTooLarge, ImageTooLarge, ImageUnreadable, TicketClosed,
    TooManyAttachments, UnsupportedFileType,
)
from tickets.models import Attachment, Message, Ticket
from tickets.selectors import get_ticket_for

__all__ = [
    "attachments_to_claim", "claim_attachments", "clean_attachment_ids", "sniff_content_type", "upload_attachment",
]

IMAGE_TYPES = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP", "image/gif": "GIF"}
PDF = "application/pdf"
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/gif": "gif", PDF: "pdf"}
_SIGNATURES = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", PDF),
)


def sniff_content_type(data: bytes) -> str | None:
    """The type by the file's first bytes (its magic number), or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for magic, content_type in _SIGNATURES:
        if data.startswith(magic):
            return content_type
    return None


def _open_image(data: bytes, content_type: str) -> Image.Image:
    """Open, check the pixel count before decoding, verify, then decode the
    (first) frame with its EXIF orientation applied."""
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb check warns above MAX_IMAGE_PIXELS: a refusal here
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            probe = Image.open(io.BytesIO(data))
            if probe.format != IMAGE_TYPES[content_type]:
                raise ImageUnreadable()
            width, height = probe.size
            if width < 1 or height < 1:
                raise ImageUnreadable()
            if width * height > settings.ATTACHMENT_MAX_PIXELS:
                raise ImageTooLarge()
            probe.verify()
            image = Image.open(io.BytesIO(data))
            image.load()
            image = ImageOps.exif_transpose(image)
    except (ImageTooLarge, ImageUnreadable):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge() from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageUnreadable() from error
    except Exception as error:  # noqa: BLE001 - whatever else a damaged file makes Pillow raise, never a 500
        raise ImageUnreadable() from error
    # keep nothing of what the file carried but its transparency: no EXIF (GPS,
    # camera, time), no XMP, no text chunks, no ICC profile
    image.info = {key: image.info[key] for key in ("transparency",) if key in image.info}
    return image


def _encode(image: Image.Image, content_type: str) -> bytes:
    out = io.BytesIO()
    kind = IMAGE_TYPES[content_type]
    if kind == "JPEG":
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        image.save(out, "JPEG", quality=88, optimize=True)
    elif kind == "WEBP":
        image.save(out, "WEBP", quality=88)
    elif kind == "GIF":
        image.save(out, "GIF")  # the first frame
    else:
        image.save(out, "PNG", optimize=True)
    return out.getvalue()


def _thumbnail(image: Image.Image) -> bytes:
    """A JPEG of at most ATTACHMENT_THUMBNAIL_PX on its longest side
    (transparency on white)."""
    side = settings.ATTACHMENT_THUMBNAIL_PX
    thumb = image.copy()
    thumb.thumbnail((side, side))
    if thumb.mode in ("RGBA", "LA", "P", "PA"):
        thumb = thumb.convert("RGBA")
        flat = Image.new("RGB", thumb.size, (255, 255, 255))
        flat.paste(thumb, mask=thumb.getchannel("A"))
        thumb = flat
    elif thumb.mode != "RGB":
        thumb = thumb.convert("RGB")
    out = io.BytesIO()
    thumb.save(out, "JPEG", quality=80, optimize=True)
    return out.getvalue()


def _prepare(data: bytes) -> tuple[str, bytes, bytes | None]:
    """(content type, the bytes to store, the thumbnail's or None)."""
    content_type = sniff_content_type(data)
    if content_type is None:
        raise UnsupportedFileType()
    if content_type == PDF:
        return content_type, data, None
    image = _open_image(data, content_type)
    try:
        return content_type, _encode(image, content_type), _thumbnail(image)
    except Exception as error:  # noqa: BLE001 - an odd mode Pillow cannot write is the file's fault
        raise ImageUnreadable() from error


def upload_attachment(*, actor, ticket_id: int, data: bytes | None, ip: str | None = None,
                      device: str = "") -> Attachment:
    """Store a file for a ticket the actor may write on, unclaimed until the
    actor's next message carries it. Refused: no file (``file_required``),
    over ``ATTACHMENT_MAX_BYTES`` (``file_too_large``), not an image or PDF by
    its content (``unsupported_file_type``), a damaged image
    (``image_unreadable``), too many pixels (``image_too_large``)."""
    now = timezone.now()
    ticket = get_ticket_for(user=actor, ticket_id=ticket_id)
    if ticket.buyer_id == actor.pk:
        doors.check(door=doors.CHAT, user=actor, ip=ip, device=device, now=now)
    if not rules.may_write(status=ticket.status):
        raise TicketClosed()
    if not data:
        raise FileRequired()
    cap = settings.ATTACHMENT_MAX_BYTES
    if len(data) > cap:
        raise FileTooLarge(f"The file is larger than {cap // (1024 * 1024)} MB.", max_bytes=cap)
    content_type, stored, thumbnail = _prepare(data)
    attachment = Attachment(ticket=ticket, uploaded_by=actor, content_type=content_type, size_bytes=len(stored),
                            created_at=now)
    token = secrets.token_urlsafe(16)
    attachment.file.save(f"{token}.{EXTENSIONS[content_type]}", ContentFile(stored), save=False)
    if thumbnail is not None:
        attachment.thumbnail.save(f"{token}-thumb.jpg", ContentFile(thumbnail), save=False)
    try:
        with transaction.atomic(durable=True):
            attachment.save()
    except BaseException:
        attachment.file.delete(save=False)
        if attachment.thumbnail:
            attachment.thumbnail.delete(save=False)
        raise
    return attachment


def clean_attachment_ids(raw) -> tuple[int, ...]:
    """A message's ``attachment_ids`` from JSON or a form: a list of distinct
    positive integers, at most ``ATTACHMENTS_PER_MESSAGE``."""
    if raw is None:
        return ()
    if not isinstance(raw, (list, tuple)):
        raise InvalidInput("attachment_ids is a list of attachment ids.", field="attachment_ids")
    ids: list[int] = []
    for value in raw:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_INT:
            raise InvalidInput("attachment_ids is a list of attachment ids.", field="attachment_ids")
        if value not in ids:
            ids.append(value)
    if len(ids) > settings.ATTACHMENTS_PER_MESSAGE:
        raise TooManyAttachments(f"At most {settings.ATTACHMENTS_PER_MESSAGE} attachments on one message.")
    return tuple(ids)


def claimable(attachment: Attachment | None, *, ticket_id: int, author_id: int) -> bool:
    """A message claims only unclaimed attachments of its own ticket that its author uploaded."""
    return (attachment is not None and attachment.ticket_id == ticket_id and attachment.uploaded_by_id == author_id
            and attachment.message_id is None)


def attachments_to_claim(*, ticket: Ticket, author_id: int, ids: tuple[int, ...]) -> list[Attachment]:
    """The attachments a message is about to claim, checked (one query; the
    ticket is locked by the caller, so no other message claims them meanwhile)."""
    if not ids:
        return []
    found = {a.pk: a for a in Attachment.objects.filter(pk__in=ids)}
    wanted = [found.get(pk) for pk in ids]
    if not all(claimable(a, ticket_id=ticket.pk, author_id=author_id) for a in wanted):
        raise AttachmentUnavailable()
    return wanted


def claim_attachments(*, message: Message, attachments: list[Attachment]) -> None:
    """Point the attachments at their message: one UPDATE, inside the caller's
    transaction (which rolls the message back too when one was taken meanwhile)."""
    if not attachments:
        return
    assert transaction.get_connection().in_atomic_block, "claim_attachments needs the caller's transaction"
    claimed = Attachment.objects.filter(pk__in=[a.pk for a in attachments], message__isnull=True).update(
        message=message)
    if claimed != len(attachments):
        raise AttachmentUnavailable()
    for attachment in attachments:
        attachment.message = message
    remember_attachments(message, attachments)


def remember_attachments(message: Message, attachments: list[Attachment]) -> None:
    """Give ``message.attachments.all()`` these rows without a query (as a
    ``prefetch_related`` would): the frames and pages of a new message read them."""
    queryset = Attachment.objects.filter(message=message)
    queryset._result_cache = list(attachments)
    queryset._prefetch_done = True
    message._prefetched_objects_cache = {**getattr(message, "_prefetched_objects_cache", {}),
                                         "attachments": queryset}
