"""End to end in headless Chromium: a supervisor opens the lost-parcel
incident the emergency plan's rule raised, previews a macro reply to its
tickets (the dry run changes nothing), runs it and watches the progress bar
finish; then looks at the live dashboard. Screenshots for the README."""

from __future__ import annotations

import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from incidents.models import BulkJob, Incident
from tickets.models import Message

from tests.e2e.helpers import orm

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, reset_sequences=True), pytest.mark.timeout(180)]

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
BODY = "{buyer_name}您好，您订单{order_no}的包裹在杭州转运中心丢失，我们已安排补发，请留意物流。"


@pytest.fixture
def demo_data(transactional_db, settings):
    call_command("seed_demo", demo_database=True, stdout=StringIO())  # tests run with DEBUG off
    # as in the embedded default: the job runs in a thread of the server, the page watches it
    settings.BULK_JOBS_IN_THREAD = True
    settings.BULK_PROGRESS_EVERY = 1


def test_supervisor_previews_and_runs_a_macro_on_an_incident(live_server, demo_data, browser_page):
    incident = orm(lambda: Incident.objects.get(rule="lost"))
    linked = orm(lambda: incident.links.count())
    assert linked == 6
    page = browser_page
    page.route_web_socket(re.compile(r".*/ws/.*"), lambda ws: ws.on_message(
        lambda message: ws.send(json.dumps({"type": "pong"})) if "ping" in str(message) else None))

    page.goto(f"{live_server.url}/console/incidents/")
    page.fill("#id_username", "lead1")
    page.fill("#id_password", "demo12345")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/console/incidents/$"))
    row = page.locator(f'tr[data-incident-id="{incident.pk}"]')
    assert "区域丢件" in row.inner_text() and "二级" in row.inner_text()
    row.locator("a").click()
    page.wait_for_url(re.compile(rf"/console/incidents/{incident.pk}/$"))

    # the dry run shows each buyer's filled text and writes nothing
    messages_before = orm(lambda: Message.objects.count())
    page.fill("#macro-body", BODY)
    page.click("[data-preview-job]")
    page.locator(".job-preview").wait_for()
    preview = page.locator(".job-preview").inner_text()
    assert "预演" in preview and "6 项将被执行" in preview and "杭州转运中心丢失" in preview
    assert "{buyer_name}" not in preview
    assert orm(lambda: Message.objects.count()) == messages_before
    page.screenshot(path=str(SHOTS / "console-incident.png"))

    # run it: the request returns, the bar fills as the job goes
    page.click("[data-run-job]")
    page.locator(".job-slot .job-progress").wait_for()
    page.locator('.job-slot .job-progress[data-status="done"]').wait_for(timeout=30_000)
    assert page.locator(".job-slot .progress").get_attribute("aria-valuenow") == "100"
    assert "完成 6" in page.locator(".job-slot .job-figures").inner_text()
    job = orm(lambda: BulkJob.objects.get())
    assert (job.status, job.done_count) == ("done", 6)
    assert orm(lambda: Message.objects.filter(body__contains="杭州转运中心丢失", author__username="lead1").count()) == 6

    # the dashboard: the incident and today's figures
    page.goto(f"{live_server.url}/console/dashboard/")
    page.locator("#dashboard").wait_for()
    assert incident.title in page.locator("#dashboard").inner_text()
    page.screenshot(path=str(SHOTS / "console-dashboard.png"), full_page=True)
    assert page.errors == []
