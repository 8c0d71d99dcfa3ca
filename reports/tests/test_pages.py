"""The console's reports page: supervisors only, in the console frame, the
period's figures, topics, carriers and export links, in both languages; a bad
period is a 400 page, not a 500."""

from __future__ import annotations

import re

import pytest

from reports.tests.factories import chat, resolved_and_rated, shipment

URL = "/console/reports/"


@pytest.fixture
def boss(client, supervisor):
    client.force_login(supervisor)
    return client


@pytest.mark.django_db
def test_page_is_for_supervisors(client, agent, buyer, merchant_user):
    response = client.get(URL)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    for who in (agent, buyer, merchant_user):
        client.force_login(who)
        assert client.get(URL).status_code == 403


@pytest.mark.django_db
def test_page_shows_the_figures(boss, settings, buyer, agent):
    settings.CHAT_RESPONSE_TARGET_S = 30
    resolved_and_rated(buyer=buyer, agent=agent, score=10, first_response_s=12, region="浙江",
                       category="parcel_damaged")
    resolved_and_rated(buyer=buyer, agent=agent, score=3, first_response_s=90, region="浙江",
                       category="parcel_damaged")
    chat(buyer=buyer, agent=agent, script=[("buyer", 0), ("agent", 45)])
    shipment(carrier="韵达快递")
    response = boss.get(URL, {"group_by": "agent"}, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<a href="/console/reports/" class="is-current">报表</a>' in html  # the console nav, current
    assert re.search(r'data-figure="csat-average">6\.50<', html)
    assert re.search(r'data-figure="promoters">50\.0%<', html)
    assert re.search(r'data-figure="first-p50">45s<', html)  # 12, 45 (the chat), 90 and re.search(r'data-figure="first-p90">1m30s<', html)
    assert 'id="chat-target-alert"' in html  # 45 s average against a 30 s target
    assert "浙江" in html and "韵达快递" in html and agent.name in html
    assert "/api/v1/exports/tickets.csv?from=" in html
    english = boss.get(URL, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Complaint topics rising fastest" in english and "Carrier scorecards" in english
    chinese = boss.get(URL, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "Complaint topics rising fastest" not in chinese and "承运商" in chinese


@pytest.mark.django_db
def test_bad_period_is_a_400_page(boss):
    response = boss.get(URL, {"from": "2026-05-02", "to": "2026-05-01"})
    assert response.status_code == 400
    assert 'data-code="period_reversed"' in response.content.decode()
    assert boss.get(URL, {"from": "²⁰²⁶-01-01"}).status_code == 400


@pytest.mark.django_db
def test_page_query_count_is_constant(boss, buyer, agent, other_agent, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    resolved_and_rated(buyer=buyer, agent=agent, score=8, first_response_s=5)
    with CaptureQueriesContext(connection) as few:
        assert boss.get(URL, {"group_by": "agent"}).status_code == 200
    for i in range(5):
        resolved_and_rated(buyer=buyer, agent=other_agent, score=i, first_response_s=5 + i, region=f"区域{i}")
        shipment(carrier=f"快递{i}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert boss.get(URL, {"group_by": "agent"}).status_code == 200
