"""End to end in headless Chromium (issue #13 items 1 and 2): an agent opens a
buyer's second ticket about one parcel, sees the customer at a glance and the
likely duplicate, clicks "Merge into #N", confirms, and lands on the target
whose conversation now carries the duplicate's messages."""

from __future__ import annotations

import re

import pytest

from tests.e2e.helpers import orm, signed_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]


def _data():
    from accounts import roles
    from accounts.tests.factories import UserFactory
    from merchants.tests.factories import MerchantFactory, OrderFactory
    from tickets.tests.factories import open_ticket, ticket_in_state

    agent = UserFactory(role=roles.AGENT, username="agent_e2e", display_name="王芳")
    buyer = UserFactory(role=roles.BUYER, username="buyer_e2e", display_name="林晓雨")
    order = OrderFactory(buyer=buyer, merchant=MerchantFactory(name="优品数码旗舰店"))
    first = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order, subject="包裹三天没动")
    dup = open_ticket(buyer=buyer, order=order, subject="包裹还是没到", body="第二次来问：我的包裹到底在哪")
    return first.pk, dup.pk


def test_agent_merges_a_duplicate_from_the_ticket_page(live_server, chromium, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    first_id, dup_id = orm(_data)
    page = signed_in(chromium, live_server.url, "agent_e2e", to="/console/", quiet_socket="/ws/console/")
    page.on("dialog", lambda dialog: dialog.accept())  # hx-confirm

    page.goto(f"{live_server.url}/console/tickets/{dup_id}/")
    panel = page.locator("[data-buyer-panel]")
    panel.wait_for()
    assert "林晓雨" in panel.inner_text()
    assert page.locator(f"[data-buyer-panel] a[href='/console/tickets/{first_id}/']").count() >= 1
    button = page.locator(f"[data-merge-into='{first_id}']")
    assert button.is_visible()
    button.click()

    page.wait_for_url(re.compile(rf"/console/tickets/{first_id}/$"))
    conversation = page.locator("#conversation")
    conversation.get_by_text("第二次来问：我的包裹到底在哪").wait_for()
    assert f"#{dup_id}" in conversation.inner_text()
    page.goto(f"{live_server.url}/console/tickets/{dup_id}/")
    assert page.locator("[data-merged-banner]").is_visible()
    assert page.errors == []
    page.context.close()
