"""The merchant portal's money pages: access, the balance explained (figures
equal to ``balance_explanation``, never another merchant's), resend tasks
fulfilled from the page, payouts with their idempotency key, the credit page,
and a query count that does not grow with the holds."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from core.money import format_fen
from merchants import services
from merchants.models import MerchantAccount, Payout, ResendTask
from merchants.selectors import balance_explanation
from merchants.tests.factories import fund, paid_order

HTMX = {"HTTP_HX_REQUEST": "true"}
PAGES = ["/merchant/", "/merchant/tasks/", "/merchant/payouts/", "/merchant/credit/"]


def _hold(merchant, *, amount_fen: int, ticket_id: int, reason: str = "Parcel damaged"):
    """A dispute hold on a settled order, placed the way the ticket's transaction places it."""
    order = paid_order(merchant=merchant, amount_fen=amount_fen, released=True)
    with transaction.atomic():
        return services.place_dispute_hold(order=order, ticket_id=ticket_id, reason=reason, now=timezone.now()).hold


def _task(merchant, *, ticket_id: int, hours_left: float = 30):
    order = paid_order(merchant=merchant, amount_fen=19_900)
    now = timezone.now()
    with transaction.atomic():
        return services.create_resend_task(
            order=order, ticket_id=ticket_id, reason="承运商确认丢件，商家补发",
            now=now - services.RESEND_DEADLINE + timedelta(hours=hours_left),
        )


def _figure(html: str, name: str) -> str:
    match = re.search(rf'data-figure="{name}".*?figure-value money">([^<]+)<', html, re.S)
    assert match, name
    return match.group(1)


@pytest.fixture
def portal(client, merchant_user):
    client.force_login(merchant_user)
    return client


@pytest.fixture
def spilled(merchant):
    """merchant1 of the demo: a ¥1,000 deposit and three holds of ¥1,295 in all."""
    fund(merchant, available_fen=500_000, deposit_fen=100_000, pending_fen=35_278)
    holds = [
        _hold(merchant, amount_fen=59_800, ticket_id=9001, reason="Parcel lost / not received"),
        _hold(merchant, amount_fen=39_800, ticket_id=9002, reason="Parcel damaged"),
        _hold(merchant, amount_fen=29_900, ticket_id=9003, reason="Wrong or missing item"),
    ]
    return holds


@pytest.fixture
def others(other_merchant):
    """Another merchant's money, with amounts that appear nowhere else."""
    fund(other_merchant, available_fen=777_123, deposit_fen=333_321)
    hold = _hold(other_merchant, amount_fen=45_671, ticket_id=9901)
    task = _task(other_merchant, ticket_id=9902)
    return {"hold": hold, "task": task}


# --- access ------------------------------------------------------------------------


@pytest.mark.django_db
def test_anonymous_is_sent_to_login(client, merchant):
    for path in PAGES:
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"] == f"/accounts/login/?next={path}"
    task = _task(merchant, ticket_id=1)
    response = client.post(f"/merchant/tasks/{task.pk}/fulfil/", {"carrier": "顺丰速运", "tracking_no": "SF1"})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    response = client.post("/merchant/payouts/", {"amount": "1", "idempotency_key": "k"})
    assert response.status_code == 302
    assert ResendTask.objects.get(pk=task.pk).status == "open" and not Payout.objects.exists()
    htmx = client.get("/merchant/", **HTMX, HTTP_HX_CURRENT_URL="/merchant/tasks/")
    assert htmx.status_code == 401 and htmx["HX-Redirect"].startswith("/accounts/login/?next=")


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["agent", "supervisor", "buyer"])
def test_staff_and_buyers_get_the_403_page(client, request, who, merchant):
    fund(merchant, available_fen=10_000)
    task = _task(merchant, ticket_id=1)
    client.force_login(request.getfixturevalue(who))
    for path in PAGES:
        response = client.get(path)
        assert response.status_code == 403, path
        assert "403" in response.content.decode() and "<html" in response.content.decode()
    assert client.post(f"/merchant/tasks/{task.pk}/fulfil/", {"carrier": "顺丰速运", "tracking_no": "SF1"}).status_code == 403
    assert client.post("/merchant/payouts/", {"amount": "1", "idempotency_key": "k"}).status_code == 403
    assert ResendTask.objects.get(pk=task.pk).status == "open" and not Payout.objects.exists()


# --- the overview ---------------------------------------------------------------------


@pytest.mark.django_db
def test_overview_shows_the_figures_of_the_balance_explanation(portal, merchant, spilled, others):
    response = portal.get("/merchant/")
    assert response.status_code == 200
    html = response.content.decode()
    f = balance_explanation(merchant=merchant).figures
    assert f.spill_fen == 29_500 and f.frozen_from_available_fen == 29_500  # the deposit does not cover it all
    assert _figure(html, "pending") == format_fen(f.pending_fen)
    assert _figure(html, "available") == format_fen(f.available_fen)
    assert _figure(html, "deposit") == format_fen(f.deposit_fen) == "¥1,000.00"
    assert _figure(html, "holds") == format_fen(f.holds_total_fen) == "¥1,295.00"
    assert _figure(html, "frozen") == format_fen(f.frozen_from_available_fen) == "¥295.00"
    assert _figure(html, "withdrawable") == format_fen(f.withdrawable_fen)
    # the arithmetic in one line, and the bar with the spill-over
    formula = re.search(r'id="formula">(.*?)</p>', html, re.S).group(1)
    for amount in (f.holds_total_fen, f.deposit_fen, f.spill_fen, f.available_fen, f.withdrawable_fen):
        assert format_fen(amount) in formula
    assert 'class="cc-seg seg-spill"' in html and 'class="cc-seg seg-frozen"' in html
    # every hold with its order, ticket link, amount and what resolving it would free
    for line in balance_explanation(merchant=merchant).holds:
        row = re.search(rf'data-hold-id="{line.hold.pk}".*?</tr>', html, re.S).group(0)
        assert line.hold.order.order_no in row
        assert f'href="/merchant/tickets/{line.hold.ticket_id}/"' in row
        assert format_fen(line.hold.amount_fen) in row
        assert format_fen(line.withdrawable_if_released_fen) in row
        assert f"#{line.hold.ticket_id}" in row
    # never the other merchant's
    assert others["hold"].order.order_no not in html
    for amount in (777_123, 333_321, 45_671):
        assert format_fen(amount) not in html
    # nothing loads from elsewhere (no CDN); a bare "cdn" substring could be part of a random token
    assert not re.search(r'<(?:script|link|img)[^>]+(?:src|href)="(?:https?:)?//', html)
    assert "htmx-2.0.11.min.js" in html and "css/portal.css" in html


@pytest.mark.django_db
def test_overview_without_holds_and_with_disputed_orders_in_escrow(portal, merchant, buyer):
    fund(merchant, available_fen=12_300, deposit_fen=50_000)
    in_escrow = paid_order(merchant=merchant, buyer=buyer, amount_fen=5_980)
    with transaction.atomic():
        assert services.place_dispute_hold(order=in_escrow, ticket_id=77, reason="Refund request",
                                           now=timezone.now()).hold is None
    html = portal.get("/merchant/").content.decode()
    assert _figure(html, "withdrawable") == "¥123.00" and _figure(html, "frozen") == "¥0.00"
    assert "seg-spill" not in html  # no bar without holds
    disputed = re.search(r'id="disputed".*?</section>', html, re.S).group(0)
    assert in_escrow.order_no in disputed and "¥59.80" in disputed


@pytest.mark.django_db
def test_holds_beyond_available_show_the_uncovered_part(portal, merchant, merchant_user):
    fund(merchant, deposit_fen=10_000)
    orders = [paid_order(merchant=merchant, amount_fen=amount, released=True) for amount in (50_000, 80_000)]
    services.request_payout(actor=merchant_user, merchant_id=merchant.pk, amount_fen=100_000, idempotency_key="p1")
    for i, order in enumerate(orders):
        with transaction.atomic():  # each dispute in its own transaction, as tickets place them
            services.place_dispute_hold(order=order, ticket_id=50 + i, reason="Refund request", now=timezone.now())
    f = balance_explanation(merchant=merchant).figures
    assert (f.available_fen, f.spill_fen, f.uncovered_fen, f.withdrawable_fen) == (30_000, 120_000, 90_000, 0)
    html = portal.get("/merchant/").content.decode()
    assert _figure(html, "withdrawable") == "¥0.00" and _figure(html, "frozen") == "¥300.00"
    assert "¥900.00" in re.search(r'id="formula">(.*?)</p>', html, re.S).group(1)
    assert "seg-uncovered" in html


@pytest.mark.django_db
def test_overview_queries_do_not_grow_with_holds(portal, merchant, django_assert_max_num_queries):
    fund(merchant, available_fen=100_000, deposit_fen=10_000)
    for i in range(3):
        _hold(merchant, amount_fen=1_000 + i, ticket_id=100 + i)
    _task(merchant, ticket_id=1)

    def count() -> int:
        portal.get("/merchant/")  # warm caches that are not per request
        with django_assert_max_num_queries(12) as captured:
            response = portal.get("/merchant/")
        assert response.status_code == 200
        return len(captured.captured_queries)

    three = count()
    for i in range(27):
        _hold(merchant, amount_fen=2_000 + i, ticket_id=200 + i)
    thirty = count()
    assert len(balance_explanation(merchant=merchant).holds) == 30
    assert three == thirty, (three, thirty)


# --- resend tasks -------------------------------------------------------------------------


@pytest.mark.django_db
def test_tasks_page_lists_own_tasks_with_countdowns(portal, merchant, others):
    soon = _task(merchant, ticket_id=11, hours_left=2)
    later = _task(merchant, ticket_id=12, hours_left=30)
    response = portal.get("/merchant/tasks/")
    html = response.content.decode()
    assert response.status_code == 200
    rows = re.findall(r'data-task-id="(\d+)"', html)
    assert rows == [str(soon.pk), str(later.pk)]  # nearest deadline first
    soon_row = re.search(rf'id="task-{soon.pk}".*?</tr>', html, re.S).group(0)
    later_row = re.search(rf'id="task-{later.pk}".*?</tr>', html, re.S).group(0)
    assert f'data-deadline-at="{timezone.localtime(soon.deadline_at).isoformat()}"' in soon_row
    assert "is-urgent" in soon_row and "is-urgent" not in later_row
    assert "tracking_no" in soon_row
    assert str(others["task"].pk) not in rows and others["task"].order.order_no not in html


@pytest.mark.django_db
def test_fulfil_a_task_from_the_page(portal, merchant):
    task = _task(merchant, ticket_id=21)
    response = portal.post(f"/merchant/tasks/{task.pk}/fulfil/",
                           {"carrier": "顺丰速运", "tracking_no": "SF1234567890"}, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html and html.startswith("<tr") and 'data-task-status="fulfilled"' in html
    assert "SF1234567890" in html
    task.refresh_from_db()
    assert (task.status, task.carrier, task.tracking_no) == ("fulfilled", "顺丰速运", "SF1234567890")
    assert task.fulfilled_at is not None
    # a second answer is refused inline
    again = portal.post(f"/merchant/tasks/{task.pk}/fulfil/", {"carrier": "中通快递", "tracking_no": "ZT1"}, **HTMX)
    assert again.status_code == 409 and 'data-code="task_not_open"' in again.content.decode()
    assert ResendTask.objects.get(pk=task.pk).carrier == "顺丰速运"


@pytest.mark.django_db
def test_fulfil_without_htmx_renders_the_page(portal, merchant):
    task = _task(merchant, ticket_id=22)
    response = portal.post(f"/merchant/tasks/{task.pk}/fulfil/", {"carrier": "EMS", "tracking_no": "E-100"})
    assert response.status_code == 200 and "<html" in response.content.decode()
    assert ResendTask.objects.get(pk=task.pk).status == "fulfilled"


@pytest.mark.django_db
@pytest.mark.parametrize("carrier, tracking_no", [
    ("顺丰速运", "SF 12$%"), ("顺丰速运", ""), ("", "SF123"), ("顺丰速运", "X" * 65), ("C" * 33, "SF1"),
])
def test_bad_tracking_input_is_an_inline_400(portal, merchant, carrier, tracking_no):
    task = _task(merchant, ticket_id=23)
    response = portal.post(f"/merchant/tasks/{task.pk}/fulfil/", {"carrier": carrier, "tracking_no": tracking_no}, **HTMX)
    assert response.status_code == 400
    html = response.content.decode()
    assert "<html" not in html and "inline-error" in html and f'id="task-{task.pk}"' in html
    assert "tracking_no" in html  # the form is still there to correct
    assert ResendTask.objects.get(pk=task.pk).status == "open"
    plain = portal.post(f"/merchant/tasks/{task.pk}/fulfil/", {"carrier": carrier, "tracking_no": tracking_no})
    assert plain.status_code == 400 and "inline-error" in plain.content.decode()


@pytest.mark.django_db
def test_another_merchants_task_is_404(portal, others):
    task = others["task"]
    for extra in (HTMX, {}):
        response = portal.post(f"/merchant/tasks/{task.pk}/fulfil/", {"carrier": "顺丰速运", "tracking_no": "SF1"}, **extra)
        assert response.status_code == 404
    assert portal.post("/merchant/tasks/987654/fulfil/", {"carrier": "顺丰速运", "tracking_no": "SF1"}).status_code == 404
    assert ResendTask.objects.get(pk=task.pk).status == "open"


# --- payouts --------------------------------------------------------------------------------


def _key(html: str) -> str:
    return re.search(r'name="idempotency_key" value="([^"]+)"', html).group(1)


@pytest.mark.django_db
def test_payout_page_renders_a_fresh_key_and_the_history(portal, merchant, merchant_user, other_merchant,
                                                         other_merchant_user):
    fund(merchant, available_fen=50_000)
    fund(other_merchant, available_fen=90_000)
    services.request_payout(actor=merchant_user, merchant_id=merchant.pk, amount_fen=12_345, idempotency_key="a")
    services.request_payout(actor=other_merchant_user, merchant_id=other_merchant.pk, amount_fen=67_891,
                            idempotency_key="a")
    first, second = portal.get("/merchant/payouts/"), portal.get("/merchant/payouts/")
    assert first.status_code == 200
    html = first.content.decode()
    assert _key(html) != _key(second.content.decode())
    uuid.UUID(_key(html))
    history = re.search(r'id="payout-history".*?</section>', html, re.S).group(0)
    assert "¥123.45" in history and "¥678.91" not in html
    assert 'id="withdrawable">' + format_fen(50_000 - 12_345) in html


@pytest.mark.django_db
def test_payout_from_the_page_reduces_available(portal, merchant):
    fund(merchant, available_fen=100_000)
    key = str(uuid.uuid4())
    response = portal.post("/merchant/payouts/", {"amount": "¥300.50", "idempotency_key": key}, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-result="created"' in html and "¥300.50" in html
    assert re.search(r'<section id="payout-history"[^>]*hx-swap-oob="true"', html)  # the history refreshes too
    payout = Payout.objects.get()
    assert (payout.amount_fen, payout.idempotency_key, payout.merchant_id) == (30_050, key, merchant.pk)
    assert MerchantAccount.objects.get(merchant=merchant).available_fen == 100_000 - 30_050
    assert _key(html) != key  # the next request gets a new key
    assert 'id="withdrawable">' + format_fen(100_000 - 30_050) in html


@pytest.mark.django_db
def test_the_same_key_twice_pays_once(portal, merchant):
    fund(merchant, available_fen=100_000)
    key = str(uuid.uuid4())
    first = portal.post("/merchant/payouts/", {"amount": "200", "idempotency_key": key}, **HTMX)
    second = portal.post("/merchant/payouts/", {"amount": "200", "idempotency_key": key}, **HTMX)
    assert first.status_code == second.status_code == 200
    assert 'data-result="repeat"' in second.content.decode()
    assert Payout.objects.count() == 1
    assert MerchantAccount.objects.get(merchant=merchant).available_fen == 80_000
    # without htmx (a reload that posts again) it is the same
    again = portal.post("/merchant/payouts/", {"amount": "200", "idempotency_key": key})
    assert again.status_code == 200 and "<html" in again.content.decode() and Payout.objects.count() == 1
    # the same key with another amount is a conflict, not a second payout
    other = portal.post("/merchant/payouts/", {"amount": "150", "idempotency_key": key}, **HTMX)
    assert other.status_code == 409 and 'data-code="idempotency_conflict"' in other.content.decode()
    assert Payout.objects.count() == 1


@pytest.mark.django_db
def test_over_withdrawable_is_a_422_with_the_withdrawable_amount(portal, merchant, spilled):
    f = balance_explanation(merchant=merchant).figures
    too_much = f.withdrawable_fen + 1
    key = str(uuid.uuid4())
    response = portal.post("/merchant/payouts/", {"amount": f"{too_much / 100:.2f}", "idempotency_key": key}, **HTMX)
    assert response.status_code == 422
    html = response.content.decode()
    error = re.search(r'id="payout-error">(.*?)</div>\s*</div>', html, re.S).group(1)
    assert 'data-code="exceeds_withdrawable"' in error and format_fen(f.withdrawable_fen) in error
    assert _key(html) == key  # nothing was paid: the corrected amount may reuse the key
    assert not Payout.objects.exists()
    assert MerchantAccount.objects.get(merchant=merchant).available_fen == f.available_fen
    # exactly the withdrawable amount goes through with that key
    ok = portal.post("/merchant/payouts/", {"amount": f"{f.withdrawable_fen / 100:.2f}", "idempotency_key": key}, **HTMX)
    assert ok.status_code == 200 and Payout.objects.get().amount_fen == f.withdrawable_fen


@pytest.mark.django_db
@pytest.mark.parametrize("amount", ["", "abc", "0", "-5", "1.234", "NaN", "1e999999", "Infinity"])
def test_bad_amounts_are_inline_422s(portal, merchant, amount):
    fund(merchant, available_fen=100_000)
    response = portal.post("/merchant/payouts/", {"amount": amount, "idempotency_key": "k1"}, **HTMX)
    assert response.status_code == 422  # amount_invalid, as everywhere (core.errors.STATUS_BY_CODE)
    assert 'data-code="amount_invalid"' in response.content.decode()
    assert not Payout.objects.exists()


# --- credit ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_credit_page_shows_the_components_and_history(portal, merchant, other_merchant):
    now = timezone.now()
    _task(merchant, ticket_id=31, hours_left=-1)
    services.mark_missed_resends(now=now)  # one missed resend: compliance 0 %
    services.compute_credit(merchant_id=other_merchant.pk, now=now)
    response = portal.get("/merchant/credit/")
    assert response.status_code == 200
    html = response.content.decode()
    latest = merchant.credit_scores.order_by("-computed_at", "-id").first()
    assert latest is not None and latest.resend_compliance == 0.0
    assert re.search(rf'id="credit-score">{latest.score}<', html)
    for key in ("dispute_rate", "on_time_shipping", "resend_compliance"):
        assert f'data-component="{key}"' in html
    part = re.search(r'data-component="resend_compliance".*?</div>\s*</div>', html, re.S).group(0)
    assert "0.0%" in part
    assert html.count("<tr>") - 1 == merchant.credit_scores.count()  # history rows (one header row)


@pytest.mark.django_db
def test_credit_page_before_any_score(portal, merchant):
    html = portal.get("/merchant/credit/").content.decode()
    assert 'id="credit-score">100<' in html


@pytest.mark.django_db
def test_tasks_payouts_and_credit_pages_queries_do_not_grow(portal, merchant, merchant_user,
                                                            django_assert_max_num_queries):
    fund(merchant, available_fen=1_000_000)

    def add(n: int, start: int) -> None:
        for i in range(start, start + n):
            _task(merchant, ticket_id=1000 + i, hours_left=-1 if i % 2 else 30)
            services.request_payout(actor=merchant_user, merchant_id=merchant.pk, amount_fen=100 + i,
                                    idempotency_key=f"k{i}")
        services.mark_missed_resends()  # half of them missed; each sweep adds a credit score row

    def counts() -> list[int]:
        found = []
        for path in ("/merchant/tasks/", "/merchant/payouts/", "/merchant/credit/"):
            portal.get(path)
            with django_assert_max_num_queries(12) as captured:
                assert portal.get(path).status_code == 200
            found.append(len(captured.captured_queries))
        return found

    add(2, 0)
    few = counts()
    add(12, 2)  # more open tasks, missed ones, payouts over a page, a longer credit history
    assert counts() == few
