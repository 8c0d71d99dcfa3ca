"""End to end in headless Chromium: the team lead opens the reports page on
the demo data, sees the week's CSAT, response times, rising complaint topics
and carrier scorecards as the database has them, switches to per agent, and
downloads the tickets CSV (BOM first, Chinese intact, the export audited).
Screenshot for the README."""

from __future__ import annotations

import re
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from reports.models import ExportRecord
from tickets.models import Rating, Ticket

from tests.e2e.helpers import orm

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, reset_sequences=True), pytest.mark.timeout(180)]

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture
def demo_data(transactional_db):
    call_command("seed_demo", demo_database=True, stdout=StringIO())  # tests run with DEBUG off


def test_team_lead_reads_the_reports_and_exports_tickets(live_server, demo_data, browser_page, tmp_path):
    page = browser_page
    page.route_web_socket(re.compile(r".*/ws/.*"), lambda ws: None)
    page.goto(f"{live_server.url}/console/reports/")
    page.fill("#id_username", "lead1")
    page.fill("#id_password", "demo12345")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/console/reports/$"))

    start = timezone.make_aware(timezone.datetime.combine(timezone.localdate() - timedelta(days=6),
                                                          timezone.datetime.min.time()))
    ratings = orm(lambda: Rating.objects.filter(created_at__gte=start).count())
    assert page.locator("[data-csat-count]").get_attribute("data-csat-count") == str(ratings)
    assert "上升最快的投诉主题" in page.locator("#topics").inner_text()
    assert "承运商评分卡" in page.locator("#carriers").inner_text()
    assert page.locator("nav a.is-current", has_text="报表").count() == 1
    page.screenshot(path=str(SHOTS / "console-reports.png"), full_page=True)

    page.select_option("select[name=group_by]", "agent")
    page.click("form.report-filters button[type=submit]")
    page.wait_for_url(re.compile(r"group_by=agent"))
    assert page.locator("#groups tbody tr:not(.empty)").count() >= 1

    with page.expect_download() as download:
        page.click('#exports a[href^="/api/v1/exports/tickets.csv"]')
    path = tmp_path / "tickets.csv"
    download.value.save_as(path)
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    lines = raw.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("id,created_at,status")
    opened = orm(lambda: Ticket.objects.filter(created_at__gte=start).count())
    record = orm(lambda: ExportRecord.objects.select_related("user").get())
    assert (record.kind, record.user.username, record.row_count) == ("tickets", "lead1", opened)
    assert page.errors == []
