"""Tag names (issue #13 item 4): one normal form, so ``Refund``, `` refund ``
and ``ＲＥＦＵＮＤ`` are one tag and a filter finds them all. Pure: the
service, the list filter and the saved views' validation all ask here."""

from __future__ import annotations

import re
import unicodedata

from tickets.errors import InvalidTag, TooManyTags

TAG_MAX_CHARS = 32
TAGS_PER_TICKET = 10
# letters of any script (Chinese included), digits, and - _ . : inside a tag
_TAG = re.compile(r"[^\W_](?:[\w.:-]*[^\W_])?")


def normalize_tag(raw) -> str:
    """``raw`` in normal form (NFKC, trimmed, lowercased, inner spaces as
    ``-``), else ``InvalidTag`` (400 ``invalid_tag``)."""
    if not isinstance(raw, str):
        raise InvalidTag("A tag is a string.", field="tags")
    name = re.sub(r"\s+", "-", unicodedata.normalize("NFKC", raw).strip().lower())
    if not name:
        raise InvalidTag("A tag cannot be empty.", field="tags")
    if len(name) > TAG_MAX_CHARS:
        raise InvalidTag(f"A tag is at most {TAG_MAX_CHARS} characters.", field="tags")
    if not _TAG.fullmatch(name):
        raise InvalidTag(f"{name[:TAG_MAX_CHARS]!r}: a tag is letters and digits, with - _ . : inside.",
                         field="tags")
    return name


def normalize_tags(raw) -> list[str]:
    """A list of tags in normal form, duplicates dropped, in the order given;
    at most ``TAGS_PER_TICKET`` (422 ``too_many_tags``)."""
    if not isinstance(raw, (list, tuple)):
        raise InvalidTag("tags is a list of strings.", field="tags")
    if len(raw) > 4 * TAGS_PER_TICKET:
        raise TooManyTags()
    names = list(dict.fromkeys(normalize_tag(item) for item in raw))
    if len(names) > TAGS_PER_TICKET:
        raise TooManyTags()
    return names
