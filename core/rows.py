"""Model instances from a hand-written ``SELECT``, as the ORM builds them,
and instances stored by an ``INSERT`` or ``UPDATE`` written once per model.

A few statements run on every request or every remedy (the API token and its
user, the ticket a remedy locks with its buyer and order), and the ORM spends
more CPU building each of them than the database spends answering. Those are
written once per process (``functools.cache``), their tables and columns named
from the models, and their rows become instances here: every value passes the
converters the ORM would apply (JSON, and dates and decimals on SQLite), and a
related instance is cached on its parent exactly as ``select_related`` leaves
it, so the code that reads them cannot tell the difference.

``insert`` stores new instances as ``save()`` and ``bulk_create`` would (the
same column values, ``auto_now`` included, the primary key set on each, the
instance no longer "adding"), and ``update`` writes fields of a stored one as
``save(update_fields=…)`` would, each without the ORM's compiler: ticket
intake and a remedy each insert into five to eight tables and every message
moves its ticket's counters, and building each statement cost the ORM as
much CPU as its round trip or more.

``sent_together`` goes one step further on PostgreSQL: inside it, the writes
whose results nothing reads right away (``insert``, ``update``, ``write``) are
held and go to the server in one message with the next statement that is
run, in the order they were made, so a remedy's dozen statements take a few
round trips instead of one each.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from django.db import DatabaseError, connections, transaction
from django.db import connection as default_connection
from django.db.backends.postgresql.base import ServerBindingCursor
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper
from django.db.models import Model
from django.db.models.expressions import DatabaseDefault
from django_fsm import ConcurrentTransition, ConcurrentTransitionMixin, FSMFieldMixin


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


def among(expression: str, values, *, using: str = "default") -> tuple[str, list]:
    """The condition "``expression`` is one of ``values``" for a hand-written
    statement, and its parameters: on PostgreSQL ``= ANY`` of one array, so the
    text is the same whatever the count (one statement prepared per
    connection), elsewhere ``IN`` with a parameter each. ``values`` not empty."""
    values = list(values)
    if connections[using].vendor == "postgresql":
        return f"{expression} = ANY(%s)", [values]
    return f"{expression} IN ({', '.join(['%s'] * len(values))})", values


def split(row, *parts: Columns, using: str = "default") -> tuple:
    """One row of ``SELECT <parts[0]>, <parts[1]>, …, <extra>`` as the
    instances of each part, then the extra values as they came."""
    built, start = [], 0
    for part in parts:
        built.append(part.build(row[start:start + part.width], using=using))
        start += part.width
    return (*built, *row[start:])


def by_key(model: type[Model], key, *, related: tuple[str, ...] = (), using: str = "default") -> Model | None:
    """The ``model`` row whose primary key is ``key`` with the rows
    ``select_related(*related)`` would join (forward foreign keys and
    one-to-ones, reverse one-to-ones, ``__`` for a step further), cached on
    it as the ORM leaves them; None when there is no such row. One prepared
    statement written once per process for each ``related``: a ticket's
    page or answer read through the ORM's compiler spent more CPU building
    the join than PostgreSQL spent answering it (PERFORMANCE.md)."""
    if isinstance(key, int) and not -2**63 <= key < 2**63:
        return None  # no integer key is that large (the ORM's lookup finds nothing too; SQLite would raise)
    plan = _by_key_plan(model, tuple(related), connections[using].vendor)
    with prepared_cursor(using) as cursor:
        cursor.execute(plan.sql, [key])
        row = cursor.fetchone()
    if row is None:
        return None
    built = split(row, *plan.parts, using=using)
    for (parent, local_setter, remote_setter), instance in zip(plan.links, built[1:]):
        if built[parent] is None:
            continue  # the outer side of a join that found nothing: nothing further along it either
        local_setter(built[parent], instance)
        if instance is not None and remote_setter is not None:
            remote_setter(instance, built[parent])
    return built[0]


@dataclass(frozen=True)
class _ByKey:
    sql: str
    parts: tuple[Columns, ...]
    links: tuple[tuple, ...]  # per joined part: (its parent's index in parts, local setter, remote setter)


@functools.cache
def _by_key_plan(model: type[Model], related: tuple[str, ...], vendor: str) -> _ByKey:
    parts, links, joins, index_of = [Columns(model, "r0")], [], [], {"": 0}
    # every step of every path, each once, a step's parent before it
    steps = [step for path in related
             for step in ("__".join(path.split("__")[:n]) for n in range(1, path.count("__") + 2))]
    for step in dict.fromkeys(steps):
        parent_path, _, name = step.rpartition("__")
        parent = parts[index_of[parent_path]]
        field = parent.model._meta.get_field(name)
        alias = f"r{len(parts)}"
        target = field.related_model
        if field.concrete and (field.many_to_one or field.one_to_one):
            near, far = column(parent.model, field.name, parent.alias), column(target, field.target_field.name, alias)
            local, remote = field.set_cached_value, (field.remote_field.set_cached_value if field.unique else None)
        elif field.one_to_one and field.auto_created:  # the reverse side of another model's one-to-one
            forward = field.field
            near = column(parent.model, forward.target_field.name, parent.alias)
            far = column(target, forward.name, alias)
            local, remote = field.set_cached_value, forward.set_cached_value
        else:
            raise ValueError(f"{model.__name__}: {step!r} is not a foreign key or a one-to-one")
        joins.append(f"LEFT JOIN {table(target)} {alias} ON {far} = {near}")
        index_of[step] = len(parts)
        parts.append(Columns(target, alias))
        links.append((index_of[parent_path], local, remote))
    sql = (f"SELECT {', '.join(part.sql() for part in parts)} FROM {table(model)} r0 {' '.join(joins)} "
           f"WHERE {column(model, model._meta.pk.name, 'r0')} = %s")
    return _ByKey(sql=sql, parts=tuple(parts), links=tuple(links))


@contextmanager
def prepared_cursor(using: str = "default") -> Iterator:
    """A cursor (Django's wrapper: logged, counted, execute wrappers applied)
    whose statements PostgreSQL parses and plans once per connection and
    then only executes: psycopg's prepared statements, with the parameters
    sent apart from the text (server-side binding).

    For the statements every request or socket makes, written once per
    process: the reads (the API token and its user, the ticket a remedy
    locks, the caps, a socket's user, scope and replay) and what ``insert``,
    ``update`` and ``write`` run when nothing is held. With the parameters
    inlined, as Django's cursor sends every statement, PostgreSQL parsed and
    planned each of them anew: 0.18-0.31 ms of its CPU for a wide join it
    then executes in 0.05 (PERFORMANCE.md). One statement per ``execute``;
    elsewhere (SQLite) the ordinary cursor."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            yield cursor
        return
    with _kept(connection, _PreparedCursor) as cursor:
        yield cursor


@contextmanager
def _kept(connection, cursor_class) -> Iterator:
    """Django's wrapper around the cursor of ``cursor_class`` kept on the
    database connection (psycopg's, so it goes with the connection through
    the pool): a new cursor for each statement cost ~30 us, and the loaders
    of a wide row's columns made anew (a Python object per date column) as
    much again. Every statement of this module's is run and read within its
    ``with`` block, so one cursor serves them in turn; one asked for while it
    is in use (a statement inside another's block) is a cursor of its own,
    closed after."""
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        raw_connection = connection.connection
        kept = getattr(raw_connection, cursor_class.kept_as, None)
        if kept is not None and not kept.in_use and not kept.closed:
            raw = kept
        else:
            raw = cursor_class(raw_connection)
            _same_timezone(connection, raw)
            if kept is None or kept.closed:
                raw.kept = True
                setattr(raw_connection, cursor_class.kept_as, raw)
        connection.validate_thread_sharing()
        if not connection.queries_logged:
            cursor = connection.make_cursor(raw)
        elif cursor_class is _PreparedCursor:
            cursor = _PreparedDebugWrapper(raw, connection)
        else:
            cursor = connection.make_debug_cursor(raw)
    if not raw.kept:
        with cursor:
            yield cursor
        return
    raw.in_use = True
    try:
        yield cursor
    finally:
        raw.in_use = False


class _KeptClientCursor(psycopg.ClientCursor):
    """The cursor Django makes (client-side binding), kept on the connection
    for this module's own statements that are not prepared: those that take
    held writes along (``sent_together``)."""

    kept_as = "cs_client_cursor"
    kept = False  # the connection's own (``_kept``), never closed by a statement's block
    in_use = False


class _PreparedCursor(ServerBindingCursor):
    """Prepares its statements on their first run on a connection, and runs
    them prepared after that. Django keeps psycopg's preparing off on its
    connections (``prepare_threshold`` None, for poolers that could not keep
    prepared statements; PgBouncer can since 1.21, docs/SCALING.md), which
    also ignores ``prepare=True``: it is turned on for this statement alone,
    so every other statement stays as Django sends it, uncounted by psycopg's
    cache."""

    kept_as = "cs_prepared_cursor"
    kept = False  # the connection's own (``_kept``), never closed by a statement's block
    in_use = False

    def execute(self, query, params=None, *, prepare=None, binary=None):
        connection = self.connection
        turned_on = connection.prepare_threshold is None
        if turned_on:
            connection.prepare_threshold = _ONLY_WHEN_ASKED
        if connection.prepared_max < _PREPARED_MAX:
            connection.prepared_max = _PREPARED_MAX
        try:
            return super().execute(query, params, prepare=True if prepare is None else prepare, binary=binary)
        finally:
            if turned_on:
                connection.prepare_threshold = None


class _PreparedDebugWrapper(CursorDebugWrapper):
    """Django's debug cursor (``connection.queries``, the ``django.db.backends``
    log, the tests' query captures) for a prepared cursor: the statement
    logged with its values in place, as Django logs any other (it reads them
    from a client-side cursor, which this is not)."""

    def execute(self, sql, params=None):
        with self.debug_sql(self.db.ops.compose_sql(sql, params) if params is not None else sql, params):
            return CursorWrapper.execute(self, sql, params)


# psycopg prepares a statement after this many runs unless asked sooner: never, here
_ONLY_WHEN_ASKED = 2**31 - 1
# prepared statements a connection keeps (psycopg's default 100, then the least recently used is
# dropped, a DEALLOCATE round trip each time): a pooled connection serves every kind of request,
# and the statements above (every model's insert and row count, every update's fields) are fewer
_PREPARED_MAX = 300


def _same_timezone(connection, cursor) -> None:
    """What Django's ``create_cursor`` does for each of its cursors: dates
    read in the connection's time zone."""
    from django.db.backends.postgresql.psycopg_any import register_tzloader
    from psycopg.pq import Format

    loader = connection.connection.adapters.get_loader(connection.connection.adapters.types["timestamptz"].oid,
                                                       Format.TEXT)
    if connection.timezone != loader.timezone:
        register_tzloader(connection.timezone, cursor)


def cache_related(instance: Model, name: str, related: Model | None) -> None:
    """Leave ``related`` on ``instance`` as ``select_related(name)`` would."""
    instance._meta.get_field(name).set_cached_value(instance, related)


def insert(*instances: Model, using: str = "default") -> None:
    """Store new instances of one model in one ``INSERT`` (one row each), as
    ``save()`` of a new instance or ``bulk_create`` would: every concrete
    column but an automatic primary key, each value through the field's
    ``pre_save`` (``auto_now``) and ``get_db_prep_save``; then the primary
    key is set on each instance, which is no longer "adding" (a later
    ``save()`` updates it). Instances that all carry a key taken beforehand
    (``next_key_sql``) are stored with it: nothing comes back to wait for, so
    inside ``sent_together`` such a model can be held even though later
    rows point at it. A model with a state machine
    (``ConcurrentTransitionMixin``) takes the state it was stored in as the one
    its next save expects. Model signals are not sent: no model inserted here
    has receivers. Raises ``IntegrityError`` as ``save()`` does."""
    if not instances:
        return
    model = type(instances[0])
    connection = connections[using]
    keyed = model._meta.auto_field is not None and instances[0].pk is not None
    statement = _insert_sql(model, connection.alias, connection.vendor, len(instances), keyed)
    if any(type(instance) is not model or not instance._state.adding
           or (model._meta.auto_field is not None and (instance.pk is not None) is not keyed)
           for instance in instances):
        raise ValueError("insert() takes new instances of one model, all without a primary key of their own or all "
                         "with one taken by next_key_sql().")
    params = []
    for instance in instances:
        for field in statement.fields:
            value = field.pre_save(instance, add=True)
            if isinstance(value, DatabaseDefault) or hasattr(value, "resolve_expression"):
                raise ValueError(f"insert() takes plain values, not {value!r} in {model.__name__}.{field.name}.")
            params.append(field.get_db_prep_save(value, connection=connection))
    held = _held(connection, model)
    if held is not None:
        for instance in instances:  # a key held back is a NULL column: refused, as save() refuses it
            instance._prepare_related_fields_for_save(operation_name="insert")
        held.add(statement.sql, params, read=lambda cursor: _stored(
            instances, [row[0] for row in cursor.fetchall()] if statement.returning else [], using=using))
        return
    with _cursor_for_one(connection) as cursor:
        cursor.execute(statement.sql, params)
        if statement.returning:
            keys = [row[0] for row in cursor.fetchall()]
        elif statement.auto_pk:  # one row, no RETURNING on this backend
            keys = [connection.ops.last_insert_id(cursor, model._meta.db_table, model._meta.pk.column)]
        else:
            keys = []
    _stored(instances, keys, using=using)


def _stored(instances: tuple[Model, ...], keys: list, *, using: str) -> None:
    """Instances just inserted: their keys (when the database made them), no
    longer "adding"."""
    pk = type(instances[0])._meta.pk
    for index, instance in enumerate(instances):
        if keys:
            setattr(instance, pk.attname, keys[index])
        instance._state.adding = False
        instance._state.db = using
        if isinstance(instance, ConcurrentTransitionMixin):
            instance._update_initial_state()


@dataclass(frozen=True)
class _Insert:
    sql: str
    fields: tuple
    auto_pk: bool
    returning: bool


@functools.cache
def _insert_sql(model: type[Model], alias: str, vendor: str, rows: int, keyed: bool = False) -> _Insert:
    connection = connections[alias]
    meta = model._meta
    auto_pk = meta.auto_field is not None and not keyed
    fields = tuple(field for field in meta.local_concrete_fields if keyed or field is not meta.auto_field)
    features = connection.features
    returning = auto_pk and (features.can_return_rows_from_bulk_insert if rows > 1
                             else features.can_return_columns_from_insert)
    if auto_pk and rows > 1 and not returning:
        raise ValueError(f"insert() of several {meta.object_name} rows needs INSERT … RETURNING.")
    quote = connection.ops.quote_name
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    sql = (f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) "
           f"VALUES {', '.join([row] * rows)}")
    if returning:
        sql += f" RETURNING {quote(meta.pk.column)}"
    return _Insert(sql=sql, fields=fields, auto_pk=auto_pk, returning=returning)


def for_update(of: str = "") -> str:
    """The clause that locks a hand-written ``SELECT``'s rows until the
    commit (``of``: only the rows of that table alias), or nothing where the
    backend has no row locks (SQLite: one writer at a time)."""
    features = default_connection.features
    if of:
        return f" FOR UPDATE OF {of}" if features.has_select_for_update_of else ""
    return " FOR UPDATE" if features.has_select_for_update else ""


def next_key_sql(model: type[Model]) -> str | None:
    """An SQL expression that takes the next value of the model's automatic
    primary key, to read in a statement the caller runs anyway (PostgreSQL;
    None elsewhere): an instance given it is inserted with it (``insert``),
    and rows that point at it need not wait for its ``INSERT`` to come back.
    A key taken and not used is a gap, as a rolled-back insert leaves."""
    if default_connection.vendor != "postgresql":
        return None
    quoted = default_connection.ops.quote_name(model._meta.db_table)
    return f"nextval(pg_get_serial_sequence('{quoted}', '{model._meta.auto_field.column}'))"


def update(instance: Model, fields: list[str] | tuple[str, ...], *, using: str = "default") -> None:
    """Write ``fields`` of a stored instance as ``save(update_fields=fields)``
    would: each value through the field's ``pre_save`` (``auto_now``) and
    ``get_db_prep_save``, by primary key, in one ``UPDATE`` written once per
    model and set of fields. A model with a state machine
    (``ConcurrentTransitionMixin``) is written only if its state in the
    database is still the one it was loaded or last saved with, else
    ``ConcurrentTransition`` as its ``save()`` raises; a row that is gone is a
    ``DatabaseError`` as ``save(update_fields=…)`` raises. Model signals are
    not sent: no model written here has receivers."""
    model = type(instance)
    if instance._state.adding or instance.pk is None:
        raise ValueError("update() writes an instance that is stored already.")
    connection = connections[using]
    statement = _update_sql(model, connection.alias, connection.vendor, tuple(fields))
    params = []
    for field in statement.fields:
        value = field.pre_save(instance, add=False)
        if hasattr(value, "resolve_expression"):
            raise ValueError(f"update() takes plain values, not {value!r} in {model.__name__}.{field.name}.")
        params.append(field.get_db_prep_save(value, connection=connection))
    params.append(model._meta.pk.get_db_prep_value(instance.pk, connection))
    states = _initial_states(instance)
    for field in statement.state_fields:
        params.append(field.get_db_prep_value(states[field.attname], connection))
    held = _held(connection, model)
    if held is not None:
        held.add(statement.sql, params, read=lambda cursor: _updated(instance, statement, cursor.rowcount, using=using))
    else:
        with _cursor_for_one(connection) as cursor:
            cursor.execute(statement.sql, params)
            updated = cursor.rowcount
        _updated(instance, statement, updated, using=using)
    if statement.state_fields:
        instance._update_initial_state()


def _updated(instance: Model, statement: _Update, updated: int, *, using: str) -> None:
    """``update``'s statement wrote ``updated`` rows: none is an error."""
    if updated:
        return
    if statement.state_fields and type(instance)._base_manager.using(using).filter(pk=instance.pk).exists():
        raise ConcurrentTransition("Cannot save object! The state has been changed since fetched from the database!")
    raise DatabaseError("Save with update_fields did not affect any rows.")


def _initial_states(instance: Model) -> dict:
    """The state a ``ConcurrentTransitionMixin`` model was loaded or last saved
    in (django-fsm-2 keeps it in a private attribute; the tests of ``update``
    notice if it moves)."""
    return getattr(instance, "_ConcurrentTransitionMixin__initial_states", {})


@dataclass(frozen=True)
class _Update:
    sql: str
    fields: tuple
    state_fields: tuple


@functools.cache
def _update_sql(model: type[Model], alias: str, vendor: str, names: tuple[str, ...]) -> _Update:
    connection = connections[alias]
    meta = model._meta
    fields = tuple(meta.get_field(name) for name in names)
    if not fields or any(not field.concrete or field.primary_key for field in fields):
        raise ValueError(f"update() writes concrete fields of {meta.object_name} other than its key: {names}.")
    state_fields = ()
    if issubclass(model, ConcurrentTransitionMixin):
        state_fields = tuple(field for field in meta.concrete_fields if isinstance(field, FSMFieldMixin))
        if any(field.null for field in state_fields):  # "state = NULL" would match no row
            raise ValueError(f"update() compares {meta.object_name}'s state, which may be NULL: use save().")
    quote = connection.ops.quote_name
    sql = (f"UPDATE {quote(meta.db_table)} SET {', '.join(f'{quote(field.column)} = %s' for field in fields)} "
           f"WHERE {' AND '.join(f'{quote(field.column)} = %s' for field in (meta.pk, *state_fields))}")
    return _Update(sql=sql, fields=fields, state_fields=state_fields)


# --- statements sent together ---------------------------------------------------------------


class Result:
    """What a statement run by ``write`` answered: its first ``row`` (None
    when it returned none) and its ``rowcount``. Inside ``sent_together``
    they are known once the statement has gone to the server; asking sooner
    is an error, never a guess."""

    __slots__ = ("_row", "_rowcount", "_sent")

    def __init__(self) -> None:
        self._sent = False

    @classmethod
    def nothing(cls) -> Result:
        """The answer of a statement not worth sending (no row, none written)."""
        result = cls()
        result._row, result._rowcount, result._sent = None, 0, True
        return result

    def _take(self, cursor) -> None:
        self._row = cursor.fetchone() if cursor.description else None
        self._rowcount = cursor.rowcount
        self._sent = True

    def _answer(self):
        if not self._sent:
            raise RuntimeError("The statement is held: its result is known once the next statement has been sent.")

    @property
    def row(self):
        self._answer()
        return self._row

    @property
    def rowcount(self) -> int:
        self._answer()
        return self._rowcount


def write(sql: str, params=None, *, using: str = "default") -> Result:
    """Run a statement whose result is not needed at once (an ``INSERT`` or
    ``UPDATE``, with ``RETURNING`` or without): held inside
    ``sent_together``, else run now. Its ``Result`` answers once it is sent."""
    connection = connections[using]
    result = Result()
    held = _held(connection, None)
    if held is not None:
        held.add(sql, params, read=result._take)
        return result
    with _cursor_for_one(connection) as cursor:
        cursor.execute(sql, params)
        result._take(cursor)
    return result


@contextmanager
def sent_together(*models: type[Model], using: str = "default") -> Iterator[None]:
    """Inside, on PostgreSQL: ``insert`` and ``update`` of ``models``, and
    ``write``, hold their statements, and the next statement anything runs on
    the connection (a read, a lock, a savepoint, an insert of another model)
    takes them to the server in one message, ahead of itself and in the order
    they were made; what is still held at the end of the block goes in one
    message then. So writes that nothing waits for cost no round trip of
    their own.

    Each runs as it would have alone, in the same order, taking the same
    locks: a statement that fails raises from the statement that carried it
    (an ``IntegrityError`` of a held ``INSERT`` from the next read), and the
    transaction is lost either way. Until it is sent, a held instance has no
    primary key and is still "adding": ``models`` are those whose keys the
    code inside does not read (``insert`` refuses an instance whose foreign
    key points at one held, as ``save()`` refuses an unsaved related object;
    a model left out is inserted at once, its key read). Needs the caller's
    transaction; an exception out of the block drops what is held and marks
    the transaction for rollback. Elsewhere (SQLite, or PostgreSQL with
    server-side binding, which cannot send several statements in one
    message) every statement runs at once, as outside."""
    connection = connections[using]
    if not connection.in_atomic_block:
        raise transaction.TransactionManagementError("sent_together() needs the caller's transaction.")
    if getattr(connection, "rows_held", None) is not None or not _can_hold(connection):
        yield
        return
    held = _Held(connection, models)
    connection.rows_held = held
    try:
        with connection.execute_wrapper(held):
            yield
            held.flush()
    except BaseException:
        if held.statements:
            held.statements.clear()
            transaction.set_rollback(True, using=using)
        raise
    finally:
        connection.rows_held = None
        held.close()


def cursor(using: str = "default"):
    """The cursor for a statement written once and run again and again (a
    lock, a write by difference) that runs now: prepared, unless statements
    are held on the connection (``sent_together``), which the ordinary cursor
    takes with it in the same message."""
    return _cursor_for_one(connections[using])


def _cursor_for_one(connection):
    """``cursor()`` for a statement of ``insert``, ``update`` or ``write``."""
    held = getattr(connection, "rows_held", None)
    if held is not None and held.statements:
        return _client_cursor(connection)
    return prepared_cursor(connection.alias)


def _client_cursor(connection):
    """Django's ordinary cursor for this module's own statements: on
    PostgreSQL the one kept on the connection."""
    if connection.vendor != "postgresql":
        return connection.cursor()
    return _kept(connection, _KeptClientCursor)


def _held(connection, model: type[Model] | None) -> _Held | None:
    """The connection's held statements, if ``model``'s writes (``None``:
    ``write``'s) are held now."""
    held = getattr(connection, "rows_held", None)
    return held if held is not None and (model is None or model in held.models) else None


def _can_hold(connection) -> bool:
    """PostgreSQL through psycopg with client-side binding (Django's default):
    one ``Query`` message may carry several statements."""
    if connection.vendor != "postgresql":
        return False
    connection.ensure_connection()
    return issubclass(connection.connection.cursor_factory, psycopg.ClientCursor)


class _Held:
    """The statements held on one connection, each as the literal SQL psycopg
    would send for it, with what reads its result when it comes back. Also
    the connection's execute wrapper that sends them with the next statement."""

    def __init__(self, connection, models: tuple[type[Model], ...]) -> None:
        self.connection = connection
        self.models = frozenset(models)
        self.statements: list[tuple[str, Callable | None]] = []
        self._literals = psycopg.ClientCursor(connection.connection)

    def add(self, sql: str, params, read: Callable | None = None) -> None:
        self.statements.append((self._literal(sql, params), read))

    def _literal(self, sql: str, params) -> str:
        # what ClientCursor.execute would send; params None: the text as it is, % and all
        return sql if params is None else self._literals.mogrify(sql, params)

    def __call__(self, execute, sql, params, many, context):
        if not self.statements:
            return execute(sql, params, many, context)
        if many or not isinstance(context["cursor"].cursor, psycopg.ClientCursor):
            # several rows of parameters, or a prepared statement (one statement a message): the held ones first
            self.flush()
            return execute(sql, params, many, context)
        statements, self.statements = self.statements, []
        result = execute(";\n".join([text for text, _ in statements] + [self._literal(sql, params)]),
                         None, many, context)
        self._read(statements, context["cursor"].cursor)  # leaves the cursor on the caller's result
        return result

    def close(self) -> None:
        self._literals.close()

    def flush(self) -> None:
        if not self.statements:
            return
        statements, self.statements = self.statements, []
        with _client_cursor(self.connection) as cursor:
            cursor.execute(";\n".join(text for text, _ in statements))
            self._read(statements, cursor.cursor)

    def _read(self, statements: list[tuple[str, Callable | None]], cursor) -> None:
        try:
            for index, (_, read) in enumerate(statements):
                if index:
                    cursor.nextset()
                if read is not None:
                    read(cursor)
        except BaseException:
            # a held write refused after the statements behind it ran: the transaction must not commit
            transaction.set_rollback(True, using=self.connection.alias)
            raise
        cursor.nextset()
