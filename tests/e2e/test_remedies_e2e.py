"""End to end in headless Chromium: an agent applies resend + ¥5 coupon from
the remedy panel of a ticket (confirming the dialog); a supervisor, in a
second browser context, approves an over-cap refund from the approvals page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.helpers import orm, signed_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"



def _data():
    from accounts import roles
    from accounts.tests.factories import UserFactory
    from compensation import services
    from compensation.models import Policy
    from compensation.tests.factories import remedy_ticket
    from merchants.tests.factories import MerchantFactory

    agent = UserFactory(role=roles.AGENT, username="agent_e2e", display_name="王芳")
    UserFactory(role=roles.SUPERVISOR, username="lead_e2e", display_name="赵敏")
    buyer = UserFactory(role=roles.BUYER, username="buyer_e2e", display_name="林晓雨")
    merchant = MerchantFactory(name="优品数码旗舰店")
    small = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant, amount_fen=2_990)
    Policy.objects.update_or_create(pk=1, defaults={"value_cap_fen": 5_000, "buyer_daily_cap": 10})
    big = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant, amount_fen=18_800)
    pending = services.apply_remedy(actor=agent, ticket_id=big.pk, kind="refund", reason="丢件全额退款",
                                    idempotency_key="e2e-big-refund")
    return small.pk, pending.remedy_id


def test_agent_applies_resend_and_coupon_supervisor_approves_refund(live_server, chromium, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    ticket_id, pending_id = orm(_data)

    # --- the agent: resend + ¥5 coupon from the panel --------------------------------
    page = signed_in(chromium, live_server.url, "agent_e2e", to="/console/", quiet_socket="/ws/console/")
    page.on("dialog", lambda dialog: dialog.accept())  # the confirmation step
    page.goto(f"{live_server.url}/console/tickets/{ticket_id}/")
    panel = page.locator("#remedy-panel")
    panel.wait_for()
    option = panel.locator('[data-action="resend_coupon"]')
    assert "outcome-self_service" in option.get_attribute("class")
    option.locator("button[type=submit]").click()
    page.locator('#remedy-panel [data-outcome="executed"]').wait_for()
    # the buyer's message appears in the conversation without a reload
    page.locator(".msg, .message").filter(has_text="优惠券").first.wait_for()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "console-remedies.png"))

    def agent_side():
        from compensation.models import Coupon, Remedy
        from merchants.models import ResendTask

        remedy = Remedy.objects.get(ticket_id=ticket_id)
        return remedy.status, Coupon.objects.get(remedy=remedy).value_fen, ResendTask.objects.filter(ticket_id=ticket_id).count()

    assert orm(agent_side) == ("executed", 500, 1)
    page.context.close()

    # --- the supervisor: approve the over-cap refund --------------------------------
    lead = signed_in(chromium, live_server.url, "lead_e2e", to="/console/", quiet_socket="/ws/console/")
    lead.click('nav a[href="/console/remedies/approvals/"]')
    row = lead.locator(f"#remedy-{pending_id}")
    row.wait_for()
    assert "¥188.00" in row.inner_text()
    row.locator("input[name=reason]").fill("承运商确认丢件")
    row.locator("button", has_text=re.compile("批准|Approve")).click()
    lead.locator(f'#remedy-{pending_id} [data-decision="executed"]').wait_for()

    def lead_side():
        from compensation.models import Remedy

        remedy = Remedy.objects.select_related("order").get(pk=pending_id)
        return remedy.status, remedy.decided_by.username, remedy.order.refunded_fen

    assert orm(lead_side) == ("executed", "lead_e2e", 18_800)
    lead.context.close()
