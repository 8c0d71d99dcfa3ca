"""End to end in headless Chromium: a merchant signs in, reads why money is
held (the deposit covers ¥1,000 of ¥1,295 in holds, the ¥295 spill-over is
frozen from the available balance), opens a disputed ticket from a hold,
enters the tracking number of a compelled resend, and the database shows the
task fulfilled. The overview screenshot for the README is taken on the way.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import transaction
from django.utils import timezone

from accounts import roles
from accounts.tests.factories import PASSWORD, UserFactory
from core.money import format_fen
from merchants import services as merchant_services
from merchants.models import ResendTask
from merchants.selectors import balance_explanation
from merchants.tests.factories import MerchantFactory, fund, make_merchant_staff, paid_order
from tickets.tests.factories import open_ticket, ticket_in_state

from tests.e2e.helpers import orm

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"




@pytest.fixture
def portal_data(transactional_db):
    """merchant1 of the demo, built through the services: a ¥1,000 deposit,
    three disputes holding ¥1,295 in all, two compelled resends (one due in
    3 hours), and another merchant whose money must never show."""
    agent = UserFactory(role=roles.AGENT, username="agent_e2e", display_name="王芳")
    merchant = MerchantFactory(code="M001", name="优品数码旗舰店")
    make_merchant_staff(merchant, username="merchant_e2e", display_name="孙磊")
    other = MerchantFactory(code="M002", name="江南丝绸家纺")
    fund(merchant, available_fen=1_000_000, deposit_fen=100_000, pending_fen=35_278)
    fund(other, available_fen=777_123, deposit_fen=333_321)
    for amount, category, subject in [
        (59_800, "not_received", "显示已签收但没收到键盘"),
        (39_800, "parcel_damaged", "耳机盒子压坏了"),
        (29_900, "wrong_item", "买的红轴发来的是青轴"),
    ]:
        buyer = UserFactory(role=roles.BUYER)
        order = paid_order(merchant=merchant, buyer=buyer, amount_fen=amount, released=True)
        ticket_in_state("waiting_merchant", buyer=buyer, agent=agent, order=order, category=category, subject=subject)
    tasks = []
    now = timezone.now()
    for hours_left in (3, 30):
        buyer = UserFactory(role=roles.BUYER)
        order = paid_order(merchant=merchant, buyer=buyer, amount_fen=19_900)
        ticket = open_ticket(buyer=buyer, order=order, category="not_received", subject="包裹丢了")
        with transaction.atomic():
            tasks.append(merchant_services.create_resend_task(
                order=order, ticket_id=ticket.pk, reason="承运商确认丢件，商家补发",
                now=now - merchant_services.RESEND_DEADLINE + timedelta(hours=hours_left),
            ))
    explained = balance_explanation(merchant=merchant)  # what the page must show, read before the browser starts
    lines = [
        {"id": line.hold.pk, "order_no": line.hold.order.order_no, "ticket_id": line.hold.ticket_id,
         "amount_fen": line.hold.amount_fen, "if_released_fen": line.withdrawable_if_released_fen}
        for line in explained.holds
    ]
    return {"figures": explained.figures, "lines": lines, "tasks": [(t.pk, t.order.order_no) for t in tasks]}


def test_merchant_reads_the_holds_and_fulfils_a_resend(live_server, portal_data, browser_page):
    page = browser_page
    figures = portal_data["figures"]
    assert (figures.holds_total_fen, figures.deposit_fen, figures.spill_fen) == (129_500, 100_000, 29_500)

    # --- sign in: the portal sends an anonymous visitor to the login page and back
    page.goto(f"{live_server.url}/merchant/")
    page.wait_for_url(re.compile(r"/accounts/login/\?next=/merchant/"))
    page.fill("#id_username", "merchant_e2e")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/merchant/")
    assert page.locator("html").get_attribute("lang") == "zh-hans"

    # --- why money is held: the figures, the arithmetic, the spill-over bar
    def figure(name: str) -> str:
        return page.locator(f'[data-figure="{name}"] .figure-value').inner_text().strip()

    assert figure("deposit") == "¥1,000.00"
    assert figure("holds") == "¥1,295.00"
    assert figure("frozen") == "¥295.00"
    assert figure("available") == format_fen(figures.available_fen)
    assert figure("withdrawable") == format_fen(figures.withdrawable_fen)
    formula = page.locator("#formula").inner_text()
    assert "争议冻结 ¥1,295.00 − 保证金 ¥1,000.00 = ¥295.00" in formula
    assert format_fen(figures.available_fen) in formula and format_fen(figures.withdrawable_fen) in formula
    spill = page.locator(".cover-chart .cc-seg.seg-spill")
    assert spill.is_visible() and "¥295.00" in spill.inner_text()
    spill_width = spill.bounding_box()["width"]
    covered_width = page.locator(".cover-chart .cc-seg.seg-covered").bounding_box()["width"]
    assert spill_width / covered_width == pytest.approx(295 / 1000, rel=0.05)  # drawn to scale
    rows = page.locator("[data-hold-id]")
    assert rows.count() == 3
    for line in portal_data["lines"]:
        row = page.locator(f'[data-hold-id="{line["id"]}"]').inner_text()
        assert line["order_no"] in row and f'#{line["ticket_id"]}' in row
        assert format_fen(line["amount_fen"]) in row and format_fen(line["if_released_fen"]) in row
    for amount in (777_123, 333_321):
        assert format_fen(amount) not in page.content()
    # the side panel that the tickets app serves (htmx) lists the three disputes
    page.wait_for_selector(".summary-list li")
    assert page.locator(".summary-list li").count() == 3
    deadline = page.locator(".portal-side .deadline")
    assert "is-urgent" in deadline.get_attribute("class")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "merchant-portal.png"))

    # --- a hold links to its dispute, where the merchant can answer
    first = portal_data["lines"][0]
    page.locator(f'[data-hold-id="{first["id"]}"] a[href="/merchant/tickets/{first["ticket_id"]}/"]').click()
    page.wait_for_url(f'{live_server.url}/merchant/tickets/{first["ticket_id"]}/')
    assert page.locator("#answer .waiting-note").is_visible()
    assert format_fen(first["amount_fen"]) in page.locator(".held-figure").inner_text()

    # --- the resend tasks: a countdown that ticks, red under six hours
    page.click("nav.topnav >> text=补发任务")
    page.wait_for_url(f"{live_server.url}/merchant/tasks/")
    (soon, soon_order_no), (later, _) = portal_data["tasks"]
    assert soon_order_no in page.locator(f"#task-{soon}").inner_text()
    soon_deadline = page.locator(f"#task-{soon} .deadline")
    assert "is-urgent" in soon_deadline.get_attribute("class")
    assert "is-urgent" not in page.locator(f"#task-{later} .deadline").get_attribute("class")
    before = soon_deadline.inner_text()
    page.wait_for_function(
        "([sel, text]) => document.querySelector(sel).textContent !== text", arg=[f"#task-{soon} .deadline", before]
    )
    assert re.search(r"\d+:\d{2}:\d{2}", soon_deadline.inner_text())

    # a bad tracking number is refused in the row, then the right one is saved
    row = page.locator(f"#task-{soon}")
    row.locator("input[name=carrier]").fill("顺丰速运")
    row.locator("input[name=tracking_no]").fill("SF 12#")
    row.locator("button[type=submit]").click()
    page.wait_for_selector(f"#task-{soon} .inline-error")
    assert "运单号" in page.locator(f"#task-{soon} .inline-error").inner_text()
    assert orm(lambda: ResendTask.objects.get(pk=soon).status) == "open"
    row = page.locator(f"#task-{soon}")
    assert row.locator("input[name=carrier]").input_value() == "顺丰速运"
    row.locator("input[name=tracking_no]").fill("SF1234567890")
    row.locator("button[type=submit]").click()
    page.wait_for_selector(f'#task-{soon}[data-task-status="fulfilled"]')
    assert "SF1234567890" in page.locator(f"#task-{soon}").inner_text()

    task = orm(lambda: ResendTask.objects.get(pk=soon))
    assert (task.status, task.carrier, task.tracking_no) == ("fulfilled", "顺丰速运", "SF1234567890")
    assert orm(lambda: ResendTask.objects.get(pk=later).status) == "open"
    assert page.errors == []
