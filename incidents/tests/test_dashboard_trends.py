"""The dashboard's inflow as a market board (issue #14 item 5): today's
minutes against the same minutes yesterday and a week ago, a threshold drawn
and the minutes past it highlighted, a full-screen mode; the figures equal
the tickets opened in those windows, for the same number of queries."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from incidents import selectors
from tickets.models import Ticket
from tickets.tests.factories import open_ticket

HTMX = {"HTTP_HX_REQUEST": "true"}


def opened(buyer, n: int, *, ago: timedelta = timedelta(0)) -> None:
    for _ in range(n):
        ticket = open_ticket(buyer=buyer)
        if ago:
            Ticket.objects.filter(pk=ticket.pk).update(created_at=ticket.created_at - ago)


@pytest.mark.django_db
def test_today_against_yesterday_and_last_week(client, supervisor, buyer, settings, django_assert_max_num_queries):
    settings.DASHBOARD_INFLOW_ALERT_PER_MIN = 2
    opened(buyer, 3)                                  # this minute: past the threshold of 2
    opened(buyer, 2, ago=timedelta(days=1))
    opened(buyer, 4, ago=timedelta(days=7))
    opened(buyer, 5, ago=timedelta(days=3))           # neither window
    board = selectors.dashboard()
    assert sum(board.inflow_yesterday) == 2 and sum(board.inflow_last_week) == 4
    assert len(board.inflow_yesterday) == len(board.inflow_last_week) == len(board.inflow) == 60

    client.force_login(supervisor)
    html = client.get("/console/dashboard/").content.decode()
    figure = lambda name: re.search(rf'data-figure="{name}">([^<]*)<', html).group(1).strip()  # noqa: E731
    assert (figure("inflow-total"), figure("inflow-yesterday"), figure("inflow-last-week")) == ("3", "2", "4")
    assert html.count('class="bar is-hot"') == 1 and 'data-threshold="2"' in html
    assert 'data-trend="yesterday"' in html and 'data-trend="last-week"' in html
    assert 'data-fullscreen="#board"' in html and "js/board.js" in html

    with django_assert_max_num_queries(15) as few:
        client.get("/console/dashboard/figures/", **HTMX)
    opened(buyer, 6, ago=timedelta(days=1))
    with django_assert_max_num_queries(15) as many:
        client.get("/console/dashboard/figures/", **HTMX)
    assert len(few.captured_queries) == len(many.captured_queries)
