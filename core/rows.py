"""Model instances from a hand-written ``SELECT``, as the ORM builds them.

A few statements run on every request or every remedy (the API token and its
user, the ticket a remedy locks with its buyer and order), and the ORM spends
more CPU building each of them than the database spends answering. Those are
written once per process (``functools.cache``), their tables and columns named
from the models, and their rows become instances here: every value passes the
converters the ORM would apply (JSON, and dates and decimals on SQLite), and a
related instance is cached on its parent exactly as ``select_related`` leaves
it, so the code that reads them cannot tell the difference.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from django.db import connection as default_connection
from django.db import connections
from django.db.models import Model


def table(model: type[Model]) -> str:
    """The model's table, quoted, for a hand-written statement."""
    return default_connection.ops.quote_name(model._meta.db_table)


def column(model: type[Model], name: str, alias: str = "") -> str:
    """The column of the model's field ``name``, quoted, under the table
    alias ``alias`` when given."""
    quoted = default_connection.ops.quote_name(model._meta.get_field(name).column)
    return f"{alias}.{quoted}" if alias else quoted


@dataclass(frozen=True)
class Columns:
    """Every concrete column of ``model`` under the table alias ``alias``."""

    model: type[Model]
    alias: str

    @functools.cached_property
    def fields(self) -> tuple:
        return tuple(self.model._meta.concrete_fields)

    def sql(self) -> str:
        """``alias."col", …`` in the order ``build`` reads them."""
        return ", ".join(column(self.model, field.name, self.alias) for field in self.fields)

    @functools.cached_property
    def _pk_index(self) -> int:
        return self.fields.index(self.model._meta.pk)

    @property
    def width(self) -> int:
        return len(self.fields)

    def build(self, values, *, using: str = "default") -> Model | None:
        """The instance of one row's slice of values (None when its primary
        key is NULL: the outer side of a join that found nothing)."""
        if values[self._pk_index] is None:
            return None
        connection = connections[using]
        converted = []
        for value, (expression, converters) in zip(values, _converters(self, connection.alias, connection.vendor)):
            for converter in converters:
                value = converter(value, expression, connection)
            converted.append(value)
        return self.model.from_db(using, [field.attname for field in self.fields], converted)


@functools.cache
def _converters(columns: Columns, alias: str, vendor: str) -> tuple:
    """Per column, the expression and the converters ``SQLCompiler`` would
    apply to it (the backend's, then the field's)."""
    connection = connections[alias]
    out = []
    for field in columns.fields:
        expression = field.get_col(columns.model._meta.db_table)
        out.append((expression, tuple(connection.ops.get_db_converters(expression))
                     + tuple(expression.get_db_converters(connection))))
    return tuple(out)


def split(row, *parts: Columns, using: str = "default") -> tuple:
    """One row of ``SELECT <parts[0]>, <parts[1]>, …, <extra>`` as the
    instances of each part, then the extra values as they came."""
    built, start = [], 0
    for part in parts:
        built.append(part.build(row[start:start + part.width], using=using))
        start += part.width
    return (*built, *row[start:])


def cache_related(instance: Model, name: str, related: Model | None) -> None:
    """Leave ``related`` on ``instance`` as ``select_related(name)`` would."""
    instance._meta.get_field(name).set_cached_value(instance, related)
