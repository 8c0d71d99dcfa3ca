"""Reading integers from outside: query strings, form fields, JSON bodies and
websocket frames. One way, shared by every view, API and consumer.

Why not ``int()`` behind ``str.isdigit()``: ``"²".isdigit()`` is true and
``int("²")`` raises; ``int("１２")`` (full-width digits) succeeds and hides
what the client sent; and an integer past 64 bits reaches the database, where
SQLite raises ``OverflowError`` and PostgreSQL an error. Here only ASCII
digits with an optional sign are integers, within a 64-bit column's range,
and anything else is a 400 ``invalid`` naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from core.errors import InvalidInput

MAX_INT = 2**63 - 1  # a BIGINT column
_INTEGER = re.compile(r"[+-]?[0-9]{1,19}")


def parse_int(raw: Any, *, field: str, minimum: int = -MAX_INT, maximum: int = MAX_INT) -> int:
    """``raw`` as an integer in ``[minimum, maximum]``, else ``InvalidInput``."""
    if isinstance(raw, bool):
        raise InvalidInput(f"{field} is an integer.", field=field)
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and _INTEGER.fullmatch(raw.strip()):
        value = int(raw.strip())
    else:
        raise InvalidInput(f"{field} is an integer.", field=field)
    if value < minimum:
        raise InvalidInput(f"{field} is at least {minimum}.", field=field)
    if value > maximum:
        raise InvalidInput(f"{field} is at most {maximum}.", field=field)
    return value


def parse_optional_int(raw: Any, *, field: str, minimum: int = -MAX_INT, maximum: int = MAX_INT) -> int | None:
    """``None`` when absent or blank, else as ``parse_int``."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    return parse_int(raw, field=field, minimum=minimum, maximum=maximum)


def parse_id(raw: Any, *, field: str) -> int:
    """A row id: a positive 64-bit integer."""
    return parse_int(raw, field=field, minimum=1)


def parse_optional_id(raw: Any, *, field: str) -> int | None:
    return parse_optional_int(raw, field=field, minimum=1)


def parse_ids(values: Iterable[Any], *, field: str, max_items: int = 20000) -> list[int]:
    """A list of row ids (duplicates dropped, order kept)."""
    if isinstance(values, (str, bytes, dict)) or not isinstance(values, Iterable):
        raise InvalidInput(f"{field} is a list of ids.", field=field)
    ids: dict[int, None] = {}
    for raw in values:
        if len(ids) >= max_items:
            raise InvalidInput(f"{field} has at most {max_items} ids.", field=field)
        ids[parse_id(raw, field=field)] = None
    return list(ids)


def int_or_none(raw: Any, *, minimum: int = -MAX_INT, maximum: int = MAX_INT) -> int | None:
    """For lenient reads where a non-number simply means "not a number" (a
    search term that might be a ticket id, an optional cursor): never raises."""
    try:
        return parse_int(raw, field="value", minimum=minimum, maximum=maximum)
    except InvalidInput:
        return None
