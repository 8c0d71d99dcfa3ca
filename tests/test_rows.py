"""``core.rows``: instances built from a hand-written statement equal the
ORM's, field by field, on either database; and the two statements built on it
(the API token's user, the ticket a remedy locks) answer as the ORM did."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_fsm import ConcurrentTransition

from accounts import roles
from accounts.authentication import token_with_user
from accounts.models import ApiToken, User
from accounts.services import issue_api_token, token_digest
from compensation.models import IdempotencyRecord
from compensation.services import remedies
from compensation.tests.factories import remedy_ticket
from core.rows import (Columns, among, by_key, cache_related, column, insert, prepared_cursor, sent_together, split,
                       table, update, write)
from merchants.models import Order
from tickets.models import Ticket, TicketEvent
from tickets.tests.factories import open_ticket

pytestmark = pytest.mark.django_db


def same_fields(built, loaded) -> None:
    assert type(built) is type(loaded) and built.pk == loaded.pk
    for field in loaded._meta.concrete_fields:
        assert getattr(built, field.attname) == getattr(loaded, field.attname), field.name
    assert not built._state.adding and built._state.db == "default"


def test_a_joined_row_builds_the_same_instances_as_select_related(buyer, agent, merchant):
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    Order.objects.filter(pk=ticket.order_id).update(items=[{"sku": "S1", "name": "蓝牙耳机", "qty": 2}],
                                                    released_at=timezone.now() - timedelta(days=1))
    parts = Columns(Ticket, "t"), Columns(User, "b"), Columns(Order, "o")
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {parts[0].sql()}, {parts[1].sql()}, {parts[2].sql()}, 42 "
            f"FROM {quote(Ticket._meta.db_table)} t LEFT JOIN {quote(User._meta.db_table)} b ON b.id = t.buyer_id "
            f"LEFT JOIN {quote(Order._meta.db_table)} o ON o.id = t.order_id WHERE t.id = %s", [ticket.pk])
        row = cursor.fetchone()
    built_ticket, built_buyer, built_order, extra = split(row, *parts)
    loaded = Ticket.objects.select_related("buyer", "order").get(pk=ticket.pk)
    same_fields(built_ticket, loaded)
    same_fields(built_buyer, loaded.buyer)
    same_fields(built_order, loaded.order)
    assert built_order.items == [{"sku": "S1", "name": "蓝牙耳机", "qty": 2}]  # JSON decoded, not text
    assert built_order.released_at.tzinfo is not None and built_ticket.created_at == loaded.created_at
    assert extra == 42
    cache_related(built_ticket, "order", built_order)
    with CaptureQueriesContext(connection) as queries:
        assert built_ticket.order.refundable_fen == loaded.order.refundable_fen
    assert queries.captured_queries == []


def test_the_outer_side_of_a_join_that_found_nothing_is_none(buyer):
    ticket = open_ticket(buyer=buyer)  # no order
    order = Columns(Order, "o")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {order.sql()} FROM {connection.ops.quote_name(Ticket._meta.db_table)} t "
                       f"LEFT JOIN {connection.ops.quote_name(Order._meta.db_table)} o ON o.id = t.order_id "
                       f"WHERE t.id = %s", [ticket.pk])
        (built,) = split(cursor.fetchone(), order)
    assert built is None


def test_a_token_and_its_user_in_one_statement(buyer):
    key = issue_api_token(user=buyer).key
    with CaptureQueriesContext(connection) as queries:
        token = token_with_user(token_digest(key))
        assert token.user.username == buyer.username and token.user.is_active
    assert len(queries.captured_queries) == 1
    same_fields(token, ApiToken.objects.get(digest=token_digest(key)))
    same_fields(token.user, User.objects.get(pk=buyer.pk))
    assert token_with_user(token_digest("not-a-key")) is None


def test_the_token_s_user_holds_its_role_groups_from_the_same_statement(agent, supervisor, monkeypatch):
    from django.contrib.auth.models import Group
    from django.core.cache import cache

    def no_cache_read(*args, **kwargs):
        raise AssertionError("the role groups came with the token's statement")

    bare = User.objects.create_user(username="no_groups")
    expected = {agent.pk: {roles.PERM_AGENT}, supervisor.pk: {roles.PERM_AGENT, roles.PERM_SUPERVISOR},
                bare.pk: set()}
    keys = {user.pk: issue_api_token(user=user).key for user in (agent, supervisor, bare)}
    monkeypatch.setattr(cache, "get", no_cache_read)
    for user_id, key in keys.items():
        token = token_with_user(token_digest(key))
        with CaptureQueriesContext(connection) as queries:
            held = roles.role_permissions(token.user)
        assert queries.captured_queries == []
        assert held == expected[user_id]
    # a change of groups shows on the next request's read: nothing cached in between
    agent.groups.add(Group.objects.get(name=roles.SUPERVISOR))
    assert roles.is_supervisor(token_with_user(token_digest(keys[agent.pk])).user)


def test_the_api_answers_an_expired_or_unknown_token_with_401_and_a_good_one_with_the_user(client, buyer):
    key = issue_api_token(user=buyer).key
    assert client.get("/api/v1/tickets/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 200
    assert client.get("/api/v1/tickets/", HTTP_AUTHORIZATION="Token nope").status_code == 401
    ApiToken.objects.filter(digest=token_digest(key)).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.get("/api/v1/tickets/", HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 401 and response.json()["code"] == "token_expired"


def test_the_ticket_a_remedy_locks_comes_with_its_buyer_order_and_whether_the_key_was_used(buyer, agent, merchant):
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    with transaction.atomic():
        with CaptureQueriesContext(connection) as captured:
            locked = remedies._lock_ticket(actor=agent, ticket_id=ticket.pk, scope="remedy:1", key="k1")
            assert locked.buyer.username == buyer.username and locked.order.amount_fen == ticket.order.amount_fen
        ticket_reads = [q["sql"] for q in captured.captured_queries if "tickets_ticket" in q["sql"]]
        assert len(ticket_reads) == 1
        assert locked.key_used is False
        if connection.features.has_select_for_update_of:
            assert "FOR UPDATE OF" in ticket_reads[0]
    IdempotencyRecord.objects.create(scope="remedy:1", key="k1", request_hash="x", status_code=201, response={"id": 1},
                                     created_at=timezone.now())
    with transaction.atomic():
        assert remedies._lock_ticket(actor=agent, ticket_id=ticket.pk, scope="remedy:1", key="k1").key_used is True
        assert remedies._lock_ticket(actor=agent, ticket_id=ticket.pk + 10**6, scope="remedy:1", key="k1") is None
    with transaction.atomic():  # someone the rule does not let see the ticket: as if it did not exist
        assert remedies._lock_ticket(actor=User.objects.create(username="stranger"), ticket_id=ticket.pk,
                                     scope="remedy:1", key="k1") is None


# --- insert -------------------------------------------------------------------------------------


def _stored_alike(inserted, saved, *, skip=("id",)) -> None:
    """``inserted`` (by ``insert``) and ``saved`` (by ``save()``) load back
    alike, but for the fields in ``skip``."""
    a, b = type(inserted).objects.get(pk=inserted.pk), type(saved).objects.get(pk=saved.pk)
    for field in a._meta.concrete_fields:
        if field.name not in skip:
            assert getattr(a, field.attname) == getattr(b, field.attname), field.name


def test_insert_stores_what_save_stores(buyer, agent, merchant):
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    now = timezone.now()
    data = {"remedy_id": 7, "coupons": ["CP1"], "note": "补发"}
    inserted = TicketEvent(ticket=ticket, kind="remedy_executed", actor=agent, created_at=now, data=data)
    saved = TicketEvent(ticket=ticket, kind="remedy_executed", actor=agent, created_at=now, data=data)
    with CaptureQueriesContext(connection) as queries:
        insert(inserted)
    saved.save()
    assert len(queries) == 1 and queries[0]["sql"].startswith("INSERT")
    assert inserted.pk and inserted.pk != saved.pk and not inserted._state.adding
    _stored_alike(inserted, saved)
    assert TicketEvent.objects.get(pk=inserted.pk).data == data  # JSON, not text


def test_insert_several_rows_in_one_statement_each_with_its_key(buyer, agent, merchant):
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    now = timezone.now()
    events = [TicketEvent(ticket=ticket, kind=f"k{n}", actor=None, created_at=now, data={"n": n}) for n in range(3)]
    with CaptureQueriesContext(connection) as queries:
        insert(*events)
    assert len(queries) == 1
    assert [TicketEvent.objects.get(pk=event.pk).data for event in events] == [{"n": 0}, {"n": 1}, {"n": 2}]


def test_insert_applies_auto_now_and_a_state_machine_saves_as_after_save(buyer, merchant):
    """A ticket inserted has ``updated_at`` set as ``save()`` sets it, and its
    next save updates it, checking the state it was stored in."""
    before = timezone.now()
    ticket = Ticket(subject="s", category="logistics_delay", party="buyer", channel="web", grade="general", tier=1,
                    language="zh", buyer=buyer, merchant=merchant, created_at=before)
    insert(ticket)
    assert ticket.updated_at >= before
    stored = Ticket.objects.get(pk=ticket.pk)
    assert stored.status == Ticket.Status.NEW and stored.updated_at == ticket.updated_at
    ticket.subject = "changed"
    ticket.save()
    assert Ticket.objects.count() == 1 and Ticket.objects.get(pk=ticket.pk).subject == "changed"
    # another request moved the ticket on meanwhile: the state machine refuses the stale save
    Ticket.objects.filter(pk=ticket.pk).update(status=Ticket.Status.CLOSED)
    ticket.subject = "stale"
    with pytest.raises(ConcurrentTransition):
        ticket.save()


def test_insert_refuses_what_it_cannot_store_as_save_would(buyer, agent, merchant):
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    now = timezone.now()
    with pytest.raises(ValueError):
        insert(TicketEvent.objects.create(ticket=ticket, kind="x", created_at=now, data={}))  # stored already
    with pytest.raises(ValueError):
        insert(TicketEvent(ticket=ticket, kind="x", created_at=now, data={}), IdempotencyRecord())  # two models
    insert(IdempotencyRecord(scope="s", key="k", request_hash="h", status_code=201, response={}, created_at=now))
    with pytest.raises(IntegrityError), transaction.atomic():
        insert(IdempotencyRecord(scope="s", key="k", request_hash="h2", status_code=201, response={}, created_at=now))
    assert IdempotencyRecord.objects.filter(scope="s", key="k").get().request_hash == "h"


# --- update -------------------------------------------------------------------------------------


def test_update_writes_what_save_update_fields_writes(buyer, agent, merchant):
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    twin = Ticket.objects.get(pk=ticket.pk)
    before = Ticket.objects.get(pk=ticket.pk).updated_at
    ticket.last_seq, ticket.search_text = 9, "快递 延误"
    with CaptureQueriesContext(connection) as queries:
        update(ticket, ["last_seq", "search_text", "updated_at"])
    assert len(queries) == 1 and queries[0]["sql"].startswith("UPDATE")
    stored = Ticket.objects.get(pk=ticket.pk)
    assert (stored.last_seq, stored.search_text) == (9, "快递 延误")
    assert stored.updated_at == ticket.updated_at and stored.updated_at > before  # auto_now, as save() does
    assert stored.subject == twin.subject  # only the fields named
    # the row's next save expects the state it was written in
    ticket.subject = "again"
    ticket.save()
    assert Ticket.objects.get(pk=ticket.pk).subject == "again"


def test_update_refuses_a_state_changed_meanwhile_and_a_row_gone(buyer, agent, merchant):
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    Ticket.objects.filter(pk=ticket.pk).update(status=Ticket.Status.CLOSED)
    ticket.last_seq = 42
    with pytest.raises(ConcurrentTransition), transaction.atomic():
        update(ticket, ["last_seq"])
    assert Ticket.objects.get(pk=ticket.pk).last_seq != 42
    order = Order.objects.get(pk=ticket.order_id)
    order.refunded_fen = 100
    update(order, ["refunded_fen"])
    assert Order.objects.get(pk=order.pk).refunded_fen == 100
    gone = Order.objects.get(pk=order.pk)
    Order.objects.filter(pk=order.pk).update(order_no="moved")  # a plain model: no state to compare
    gone.pk = 10**9
    with pytest.raises(DatabaseError), transaction.atomic():
        update(gone, ["refunded_fen"])
    with pytest.raises(ValueError):
        update(Order(), ["refunded_fen"])


def test_update_refuses_a_state_machine_whose_state_may_be_null():
    """``state = NULL`` matches no row: such a model would always seem moved on."""
    from django.db import models
    from django.test.utils import isolate_apps
    from django_fsm import ConcurrentTransitionMixin, FSMField

    with isolate_apps("tickets"):  # a model of the test's own, left out of the app registry
        class Nullable(ConcurrentTransitionMixin, models.Model):
            state = FSMField(null=True)

            class Meta:
                app_label = "tickets"
                managed = False

    stored = Nullable(pk=1, state="a")
    stored._state.adding = False  # as if loaded
    with pytest.raises(ValueError, match="may be NULL"):
        update(stored, ["state"])


# --- statements sent together -------------------------------------------------------------------


def _statements(queries) -> list[str]:
    return [statement for query in queries for statement in query["sql"].split(";\n")]


def test_writes_held_go_with_the_next_statement_in_order_and_store_what_they_would_alone(buyer, agent, merchant):
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    now = timezone.now()
    events = [TicketEvent(ticket=ticket, kind="k", actor=agent, created_at=now, data={"n": n, "q": "it's 100%"})
              for n in range(2)]
    ticket.last_seq = 7
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        with sent_together(TicketEvent, Ticket):
            insert(*events)
            update(ticket, ["last_seq"])
            write(f"UPDATE {table(Ticket)} SET {column(Ticket, 'subject')} = %s WHERE id = %s", ["50% 'off'", ticket.pk])
            if connection.vendor == "postgresql":
                assert len(queries) == 0 and events[0].pk is None and events[0]._state.adding  # nothing sent yet
            with connection.cursor() as cursor:  # a read carries them
                cursor.execute("SELECT last_seq, subject FROM tickets_ticket WHERE id = %s", [ticket.pk])
                read = cursor.fetchone()
    assert read == (7, "50% 'off'")  # the read ran after the writes, and its own result came back
    statements = _statements(queries.captured_queries)
    assert [s.split()[0] for s in statements] == ["INSERT", "UPDATE", "UPDATE", "SELECT"]
    assert len(queries) == (1 if connection.vendor == "postgresql" else 4)
    assert all(event.pk and not event._state.adding for event in events)
    assert [TicketEvent.objects.get(pk=event.pk).data for event in events] == [
        {"n": 0, "q": "it's 100%"}, {"n": 1, "q": "it's 100%"}]
    assert Ticket.objects.get(pk=ticket.pk).last_seq == 7


def test_what_is_still_held_at_the_end_goes_in_one_message_and_a_model_not_named_goes_at_once(buyer, agent, merchant):
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    now = timezone.now()
    event = TicketEvent(ticket=ticket, kind="k", actor=agent, created_at=now, data={})
    record = IdempotencyRecord(scope="s", key="k", request_hash="h", status_code=201, response={}, created_at=now)
    last = TicketEvent(ticket=ticket, kind="last", actor=agent, created_at=now, data={})
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        with sent_together(TicketEvent):
            insert(event)
            insert(record)  # not named: sent at once, taking the held event with it; its key is read
            assert record.pk and event.pk
            insert(last)
    assert last.pk and TicketEvent.objects.filter(pk__in=[event.pk, last.pk]).count() == 2
    if connection.vendor == "postgresql":
        assert [len(query["sql"].split(";\n")) for query in queries.captured_queries] == [2, 1]
    else:
        assert len(queries) == 3


def test_insert_refuses_a_foreign_key_to_an_instance_still_held(buyer, agent, merchant):
    from compensation.models import Remedy, RemedyEvent

    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    now = timezone.now()
    remedy = Remedy(ticket=ticket, order=ticket.order, buyer=buyer, requested_by=agent, kind="coupon", amount_fen=500,
                    reason="r", created_at=now)
    if connection.vendor != "postgresql":
        pytest.skip("nothing is held elsewhere")
    with pytest.raises(ValueError, match="unsaved related object"), transaction.atomic(), \
            sent_together(Remedy, RemedyEvent):
        insert(remedy)
        insert(RemedyEvent(remedy=remedy, kind="requested", actor=agent, created_at=now, data={}))
    assert not Remedy.objects.exists()


def test_a_held_insert_refused_raises_from_the_statement_that_carried_it_and_nothing_is_kept(buyer, agent, merchant):
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    now = timezone.now()
    insert(IdempotencyRecord(scope="s", key="k", request_hash="h", status_code=201, response={}, created_at=now))
    events_before = TicketEvent.objects.count()
    with pytest.raises(IntegrityError), transaction.atomic(), sent_together(TicketEvent, IdempotencyRecord):
        insert(TicketEvent(ticket=ticket, kind="k", actor=agent, created_at=now, data={}))
        insert(IdempotencyRecord(scope="s", key="k", request_hash="h2", status_code=201, response={}, created_at=now))
        Ticket.objects.get(pk=ticket.pk)  # carries the held statements on PostgreSQL
    assert TicketEvent.objects.count() == events_before
    assert IdempotencyRecord.objects.get(scope="s", key="k").request_hash == "h"


def test_a_held_update_refused_raises_as_alone_and_the_transaction_cannot_commit(buyer, agent, merchant):
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    Ticket.objects.filter(pk=ticket.pk).update(status=Ticket.Status.CLOSED)
    ticket.last_seq = 42
    event = TicketEvent(ticket=ticket, kind="after", actor=agent, created_at=timezone.now(), data={})
    with transaction.atomic():
        with pytest.raises(ConcurrentTransition), sent_together(Ticket, TicketEvent):
            update(ticket, ["last_seq"])
            insert(event)  # on PostgreSQL it ran, in the same message, after the refused update
        if connection.vendor == "postgresql":  # caught inside the transaction: marked for rollback all the same
            assert transaction.get_rollback()
        transaction.set_rollback(True)  # SQLite refused it at once, before the insert; the caller rolls back
    assert Ticket.objects.get(pk=ticket.pk).last_seq != 42
    assert not TicketEvent.objects.filter(kind="after").exists()


def test_an_exception_out_of_the_block_drops_what_is_held_and_the_transaction_rolls_back(buyer, agent, merchant):
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    with transaction.atomic():
        with pytest.raises(RuntimeError), sent_together(TicketEvent):
            insert(TicketEvent(ticket=ticket, kind="dropped", actor=agent, created_at=timezone.now(), data={}))
            raise RuntimeError("the caller gave up")
        if connection.vendor == "postgresql":  # held and dropped: the transaction must not commit without it
            assert transaction.get_rollback()
        transaction.set_rollback(True)  # SQLite ran it at once; the caller rolls back as a caller would
    assert not TicketEvent.objects.filter(kind="dropped").exists()


@pytest.mark.django_db(transaction=True)
def test_sent_together_needs_a_transaction():
    with pytest.raises(transaction.TransactionManagementError):
        with sent_together(TicketEvent):
            pass


def test_a_held_statement_s_result_is_known_once_sent_and_asking_sooner_is_an_error(buyer, agent, merchant):
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    sql = f"UPDATE {table(Ticket)} SET {column(Ticket, 'last_seq')} = %s WHERE id = %s RETURNING id"
    with transaction.atomic(), sent_together(TicketEvent):
        moved, missed = write(sql, [5, ticket.pk]), write(sql, [6, -1])
        if connection.vendor == "postgresql":
            with pytest.raises(RuntimeError, match="held"):
                moved.row  # noqa: B018 - asking is the test
        insert(IdempotencyRecord(scope="s", key="k", request_hash="h", status_code=201, response={},
                                 created_at=timezone.now()))  # a model not named: sent, carrying both
        assert (moved.row, moved.rowcount) == ((ticket.pk,), 1)
        assert (missed.row, missed.rowcount) == (None, 0)
    assert Ticket.objects.get(pk=ticket.pk).last_seq == 5
    # outside the block it runs at once
    with transaction.atomic():
        assert write(sql, [7, ticket.pk]).row == (ticket.pk,)


def test_an_executemany_inside_the_block_sends_what_is_held_first(buyer, agent, merchant):
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    now = timezone.now()
    first = TicketEvent(ticket=ticket, kind="first", actor=agent, created_at=now, data={})
    with transaction.atomic(), sent_together(TicketEvent):
        insert(first)
        with connection.cursor() as cursor:  # several parameter sets: not carried, sent after what is held
            cursor.executemany(f"UPDATE {table(Ticket)} SET {column(Ticket, 'last_seq')} = %s WHERE id = %s",
                               [(11, ticket.pk), (12, ticket.pk)])
        assert first.pk is not None
    assert Ticket.objects.get(pk=ticket.pk).last_seq == 12
    assert TicketEvent.objects.filter(pk=first.pk, kind="first").exists()


def test_with_server_side_binding_nothing_is_held(buyer, agent, merchant):
    """One message may carry several statements only with client-side binding
    (Django's default); a server-binding cursor runs each at once."""
    import psycopg

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's binding")
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    event = TicketEvent(ticket=ticket, kind="k", actor=agent, created_at=timezone.now(), data={})
    factory = connection.connection.cursor_factory
    connection.connection.cursor_factory = psycopg.Cursor
    try:
        with transaction.atomic(), CaptureQueriesContext(connection) as queries, sent_together(TicketEvent):
            insert(event)
            assert event.pk is not None and len(queries) == 1  # sent at once, its key read
    finally:
        connection.connection.cursor_factory = factory


# --- prepared statements -------------------------------------------------------------------------


def _prepared_here() -> list[str]:
    """The statements PostgreSQL holds prepared for this connection."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def test_a_prepared_cursor_answers_as_the_ordinary_one_and_postgres_plans_it_once(buyer, agent, merchant):
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    Order.objects.filter(pk=ticket.order_id).update(items=[{"sku": "S1", "qty": 2}])
    parts = Columns(Ticket, "t"), Columns(Order, "o")
    sql = (f"SELECT {parts[0].sql()}, {parts[1].sql()} FROM {table(Ticket)} t "
           f"LEFT JOIN {table(Order)} o ON {column(Order, 'id', 'o')} = {column(Ticket, 'order', 't')} "
           f"WHERE {column(Ticket, 'id', 't')} = %(ticket)s AND {column(Ticket, 'subject', 't')} <> %(subject)s")
    params = {"ticket": ticket.pk, "subject": "50% 'off'"}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        expected = cursor.fetchone()
    answers = []
    for _ in range(3):
        with prepared_cursor() as cursor:
            cursor.execute(sql, params)
            answers.append(cursor.fetchone())
    assert answers == [expected] * 3  # dates with their zone, JSON decoded, as Django's cursor reads them
    built_ticket, built_order = split(answers[-1], *parts)
    same_fields(built_ticket, Ticket.objects.get(pk=ticket.pk))
    assert built_order.items == [{"sku": "S1", "qty": 2}]
    if connection.vendor == "postgresql":
        prepared = [statement for statement in _prepared_here() if column(Ticket, "subject", "t") in statement]
        assert len(prepared) == 1 and "$1" in prepared[0]  # parsed and planned once, run three times
        assert connection.connection.prepare_threshold is None  # Django's statements stay unprepared
        assert connection.connection.prepared_max >= 300  # room for every statement core.rows prepares
        with connection.cursor() as cursor:
            for _ in range(6):
                cursor.execute(f"SELECT count(*) FROM {table(Ticket)} WHERE id = %s", [ticket.pk])
        assert not [statement for statement in _prepared_here() if "count(*)" in statement]


def test_a_prepared_statement_is_logged_and_counted_with_its_values(buyer):
    token = issue_api_token(user=buyer)
    with CaptureQueriesContext(connection) as queries:
        found = token_with_user(token_digest(token.key))
    assert found.user == buyer
    assert len(queries) == 1 and token_digest(token.key) in queries.captured_queries[0]["sql"]


def test_a_prepared_read_inside_sent_together_sends_what_is_held_first_and_sees_it(buyer, agent, merchant):
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    event = TicketEvent(ticket=ticket, kind="held", actor=agent, created_at=timezone.now(), data={})
    with transaction.atomic(), sent_together(TicketEvent):
        insert(event)
        with prepared_cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {table(TicketEvent)} WHERE {column(TicketEvent, 'kind')} = %s",
                           ["held"])
            assert cursor.fetchone() == (1,)
        assert event.pk is not None and not event._state.adding
    assert TicketEvent.objects.filter(pk=event.pk, kind="held").exists()


def test_a_prepared_statement_that_fails_raises_django_s_error_and_the_next_one_runs(buyer):
    failing = ["SELECT no_such_column FROM tickets_ticket WHERE id = %s"]  # refused when PostgreSQL parses it
    if connection.vendor == "postgresql":
        failing.append("SELECT 1 / %s")  # parsed and prepared, refused when it runs
    for sql in failing:
        with pytest.raises(DatabaseError), transaction.atomic():
            with prepared_cursor() as cursor:
                cursor.execute(sql, [0])
        with prepared_cursor() as cursor:
            cursor.execute("SELECT 1 + %s", [1])
            assert cursor.fetchone() == (2,)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_one_prepared_cursor_is_kept_per_connection_and_a_nested_one_is_its_own():
    """The statements run one after another share the connection's cursor (its
    column loaders made once); one run inside another's block gets a cursor of
    its own, and neither disturbs the other's answer."""
    raws = []
    for n in range(2):
        with prepared_cursor() as cursor:
            cursor.execute("SELECT %s::int, now()", [n])
            raws.append(cursor.cursor)
            assert cursor.fetchone()[0] == n
    assert raws[0] is raws[1] and not raws[0].closed

    with prepared_cursor() as outer:
        outer.execute("SELECT generate_series(1, %s)", [3])
        with prepared_cursor() as inner:
            inner.execute("SELECT %s::text", ["inner"])
            assert inner.fetchone() == ("inner",)
            nested = inner.cursor
        assert nested is not outer.cursor and nested.closed  # its own, closed after its block
        assert outer.fetchall() == [(1,), (2,), (3,)]
    assert outer.cursor is raws[0] and not outer.cursor.closed

    connection.close()  # a new connection: a new cursor, kept on it
    with prepared_cursor() as cursor:
        cursor.execute("SELECT %s::int", [7])
        assert cursor.fetchone() == (7,) and cursor.cursor is not raws[0]


@pytest.mark.postgres
def test_a_statement_that_takes_held_writes_along_runs_on_the_connection_s_kept_ordinary_cursor(buyer, agent, merchant):
    from core import rows

    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    raws = []
    with transaction.atomic(), sent_together(TicketEvent):
        for n in range(2):
            insert(TicketEvent(ticket=ticket, kind=f"kept{n}", actor=agent, created_at=timezone.now(), data={}))
            with rows.cursor() as cursor:  # something is held: the ordinary cursor, which carries it
                cursor.execute(f"SELECT count(*) FROM {table(TicketEvent)} WHERE {column(TicketEvent, 'kind')} "
                               f"LIKE %s", ["kept%"])
                assert cursor.fetchone() == (n + 1,)
                raws.append(cursor.cursor)
    assert raws[0] is raws[1] and not raws[0].closed
    assert not isinstance(raws[0], type(prepared_cursor_raw()))


def prepared_cursor_raw():
    with prepared_cursor() as cursor:
        return cursor.cursor


@pytest.mark.postgres
def test_an_instance_with_a_key_taken_beforehand_is_held_and_rows_pointing_at_it_go_with_it(buyer, agent, merchant):
    from compensation.models import Remedy, RemedyEvent
    from core.rows import next_key_sql

    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    now = timezone.now()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {next_key_sql(Remedy)}")
            key = cursor.fetchone()[0]
        remedy = Remedy(pk=key, ticket=ticket, order=ticket.order, buyer=buyer, requested_by=agent, kind="coupon",
                        amount_fen=500, reason="补偿", created_at=now)
        with CaptureQueriesContext(connection) as queries, sent_together(Remedy, RemedyEvent):
            insert(remedy)
            insert(RemedyEvent(remedy=remedy, kind="requested", actor=agent, created_at=now, data={}))
            assert remedy._state.adding  # held: nothing has gone yet
        assert len(queries) == 1  # both in one message at the end of the block
        assert remedy.pk == key and not remedy._state.adding
    stored = Remedy.objects.get(pk=key)
    assert (stored.kind, stored.amount_fen, stored.ticket_id) == ("coupon", 500, ticket.pk)
    assert RemedyEvent.objects.filter(remedy_id=key, kind="requested").count() == 1
    # the sequence goes on past it: the next remedy inserted without a key gets a later one
    later = Remedy(ticket=ticket, order=ticket.order, buyer=buyer, requested_by=agent, kind="coupon", amount_fen=500,
                   reason="再补", created_at=now)
    with transaction.atomic():
        insert(later)
    assert later.pk > key


def test_insert_refuses_instances_some_with_a_key_and_some_without(buyer, agent, merchant):
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    events = [TicketEvent(ticket=ticket, kind="a", actor=agent, created_at=timezone.now(), data={}),
              TicketEvent(pk=10**9, ticket=ticket, kind="b", actor=agent, created_at=timezone.now(), data={})]
    with pytest.raises(ValueError), transaction.atomic():
        insert(*events)
    with pytest.raises(ValueError), transaction.atomic():
        insert(*reversed(events))
    assert not TicketEvent.objects.filter(kind__in=["a", "b"]).exists()


def test_for_update_locks_where_the_backend_can_and_is_empty_where_it_cannot():
    from core.rows import for_update

    if connection.vendor == "postgresql":
        assert (for_update(), for_update(of="t")) == (" FOR UPDATE", " FOR UPDATE OF t")
    else:  # SQLite: one writer at a time, no row locks to ask for
        assert (for_update(), for_update(of="t")) == ("", "")


def test_among_finds_the_rows_named_with_one_statement_text_whatever_their_count(buyer, agent, merchant):
    tickets = [remedy_ticket(buyer=buyer, agent=agent, merchant=merchant) for _ in range(3)]
    wanted = [tickets[0].pk, tickets[2].pk, 2**40]  # a key no row has, past a 32-bit integer
    texts = set()
    for keys in (wanted, wanted[:1], [tickets[1].pk, 2**40]):
        where, params = among(column(Ticket, "id"), keys)
        sql = f"SELECT {column(Ticket, 'id')} FROM {table(Ticket)} WHERE {where} ORDER BY 1"
        texts.add(sql)
        with prepared_cursor() as cursor:
            cursor.execute(sql, params)
            assert [row[0] for row in cursor.fetchall()] == sorted(k for k in keys if k != 2**40)
    # on PostgreSQL one text, so one prepared statement; elsewhere a parameter per value
    assert len(texts) == (1 if connection.vendor == "postgresql" else 3)


def test_by_key_builds_what_select_related_builds_in_one_statement(buyer, agent, merchant):
    from merchants.models import Shipment
    from tickets.selectors import CONSOLE_TICKET_RELATED

    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    Shipment.objects.create(order_id=ticket.order_id, carrier="顺丰速运", tracking_no="SF100200300", status="in_transit",
                            eta=timezone.localdate() + timedelta(days=2))
    loaded = Ticket.objects.select_related(*CONSOLE_TICKET_RELATED).get(pk=ticket.pk)
    with CaptureQueriesContext(connection) as queries:
        built = by_key(Ticket, ticket.pk, related=CONSOLE_TICKET_RELATED)
        same_fields(built, loaded)
        for name in ("queue", "assignee", "buyer", "merchant", "order"):
            same_fields(getattr(built, name), getattr(loaded, name))
        same_fields(built.order.shipment, loaded.order.shipment)
        assert built.order.shipment.order is built.order  # the one-to-one's other side, as the ORM leaves it
        assert built.buyer.username == buyer.username and built.order.shipment.tracking_no == "SF100200300"
    assert len(queries) == 1
    # the same text for every key: one statement prepared per connection
    again = by_key(Ticket, ticket.pk, related=CONSOLE_TICKET_RELATED)
    assert again is not built and again.pk == built.pk


def test_by_key_leaves_what_a_join_did_not_find_as_the_orm_does(buyer, agent, merchant):
    from merchants.models import Shipment

    no_order = open_ticket(buyer=buyer)  # nobody holds it, it names no order
    with CaptureQueriesContext(connection) as queries:
        built = by_key(Ticket, no_order.pk, related=("assignee", "order", "order__shipment"))
        assert built.assignee is None and built.order is None
    assert len(queries) == 1
    shipped_not = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)  # its order has no shipment
    Shipment.objects.filter(order_id=shipped_not.order_id).delete()
    built = by_key(Ticket, shipped_not.pk, related=("order__shipment",))
    with CaptureQueriesContext(connection) as queries:
        assert built.order.pk == shipped_not.order_id
        with pytest.raises(Shipment.DoesNotExist):
            built.order.shipment
    assert len(queries) == 0
    assert by_key(Ticket, 2**40) is None  # no such row (a key past a 32-bit integer)
    assert by_key(Ticket, 2**70) is None  # nor past a 64-bit one: no row, not an error
    with pytest.raises(ValueError):
        by_key(Ticket, no_order.pk, related=("subject",))
