"""Path converters every URLconf uses.

``<id:...>`` is Django's ``<int:...>`` held to a 64-bit row id: a longer
number is no match (a 404), never an integer the database cannot hold
(SQLite raises ``OverflowError``, PostgreSQL an out-of-range error).
"""

from django.urls import register_converter

from core.parsing import MAX_INT


class IdConverter:
    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if not 0 < number <= MAX_INT:
            raise ValueError("not a row id")
        return number

    def to_url(self, value) -> str:
        return str(int(value))


def register() -> None:
    register_converter(IdConverter, "id")
