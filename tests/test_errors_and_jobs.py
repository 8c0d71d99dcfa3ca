"""The 500 handler answers in the caller's language (JSON or HTML); the
embedded default runs the periodic jobs inside the server process."""

import asyncio
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.db import OperationalError
from django.test import RequestFactory
from django.utils import timezone

from cs_portal.periodic import EmbeddedJobs, Schedule
from cs_portal.views import server_error
from tickets.models import SlaBreach, Ticket
from tickets.tests.factories import open_ticket


def test_server_error_is_json_for_the_api_and_html_for_pages():
    api = server_error(RequestFactory().get("/api/v1/tickets/"))
    assert api.status_code == 500 and api["Content-Type"] == "application/json"
    page = server_error(RequestFactory().get("/console/"))
    assert page.status_code == 500 and b"Something went wrong" in page.content and b"{%" not in page.content


def test_schedule_knows_every_beat_job():
    schedule = Schedule()
    assert set(schedule.jobs) >= {"sla-sweep", "shift-reminders", "auto-confirm", "resend-deadlines"}


@pytest.mark.django_db(transaction=True)
async def test_embedded_jobs_run_the_sla_sweep_inside_the_server(buyer, order):
    def overdue():
        ticket = open_ticket(buyer=buyer, order=order)
        Ticket.objects.filter(pk=ticket.pk).update(due_at=timezone.now() - timedelta(minutes=5))
        return ticket

    ticket = await database_sync_to_async(overdue)()
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["type"])

    def breached() -> bool:
        # SQLite's in-memory test database shares one cache between connections: a read
        # that meets the job thread's open write fails at once ("table is locked")
        # instead of waiting, as a file database would; that is "not yet", not an error
        try:
            return SlaBreach.objects.filter(ticket_id=ticket.pk).exists()
        except OperationalError as error:
            if "locked" not in str(error):
                raise
            return False

    wrapped = EmbeddedJobs(app)
    await wrapped({"type": "http"}, None, None)
    try:
        for _ in range(100):
            if await database_sync_to_async(breached)():
                break
            await asyncio.sleep(0.1)
        assert await database_sync_to_async(breached)()
        assert seen == ["http"]
    finally:
        wrapped.task.cancel()


@pytest.mark.django_db
def test_a_database_outage_is_a_503_to_retry_not_a_500(api, buyer, order, monkeypatch, client):
    """PostgreSQL restarting (a connection that died, the pool empty): the
    client gets 503 ``unavailable`` with Retry-After, never a 500."""
    from django.db import OperationalError
    from psycopg_pool import PoolTimeout

    from tickets import services as ticket_services

    for error in (OperationalError("server closed the connection unexpectedly"), PoolTimeout("no connection")):
        def broken(**kwargs):
            raise error

        monkeypatch.setattr(ticket_services, "open_ticket", broken)
        response = api(buyer).post("/api/v1/tickets/", {"category": "logistics_delay", "subject": "s", "body": "b",
                                                        "order_id": order.pk}, format="json")
        assert response.status_code == 503 and response["Retry-After"] == "2"
        assert response.json()["code"] == "unavailable"
    # a page: the same answer, as text
    from tickets import views

    monkeypatch.setattr(views.selectors, "console_queue", lambda **kw: (_ for _ in ()).throw(OperationalError("gone")))
    from accounts.tests.factories import UserFactory
    from accounts import roles

    client.force_login(UserFactory(role=roles.AGENT))
    page = client.get("/console/")
    assert page.status_code == 503 and b"unavailable" in page.content
