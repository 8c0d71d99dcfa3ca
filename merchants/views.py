"""The merchant portal (``/merchant/``): the money pages.

Thin on purpose: the figures come from ``merchants.selectors.balance_explanation``
(the arithmetic lives in ``merchants.escrow``), writes go through
``merchants.services``; a ``DomainError`` becomes an inline message with its
own 4xx status, never a 500. What is here only shapes data for display:
yuan strings, bar widths, countdown seconds.

Merchant staff see only their own merchant (``merchant_for``); anyone else
gets the 403 page, anonymous visitors the login page. The ticket pages of the
portal live in ``tickets.portal_views`` (a higher app) and reuse the access
check below.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import roles
from accounts.logins import ip_and_device
from core.errors import DomainError
from core.money import format_fen
from merchants import selectors, services
from merchants.errors import AmountInvalid
from merchants.escrow import Figures
from merchants.models import FundHold, ResendTask
from merchants.selectors import balance_explanation, merchant_for

# a resend deadline closer than this is shown in red
URGENT_WITHIN = timedelta(hours=6)
PAYOUTS_PAGE_SIZE = 20
TASK_HISTORY_SHOWN = 50
CREDIT_HISTORY_SHOWN = 30
CARRIERS = ["顺丰速运", "中通快递", "圆通速递", "韵达快递", "申通快递", "京东物流", "EMS", "极兔速递"]


# --- access ----------------------------------------------------------------------


def is_htmx(request) -> bool:
    return request.headers.get("HX-Request") == "true"


def forbidden(request) -> HttpResponse:
    return render(request, "merchants/403.html", status=403)


def merchant_staff_required(view):
    """Anonymous → the login page; anyone but merchant staff → the 403 page.
    The view gets the user's own merchant as ``merchant``."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            if is_htmx(request):
                # the session ran out under an open page: send the whole page to login
                response = HttpResponse(status=401)
                response["HX-Redirect"] = f"{reverse('login')}?next={request.headers.get('HX-Current-URL', '/')}"
                return response
            return redirect_to_login(request.get_full_path())
        if not roles.is_merchant_staff(request.user):
            return forbidden(request)
        merchant = merchant_for(user=request.user)
        if merchant is None:
            return forbidden(request)
        return view(request, *args, merchant=merchant, **kwargs)

    return wrapper


# what a merchant reads when a service says no (the English detail is kept for the unknown ones)
ERROR_TEXTS = {
    "exceeds_withdrawable": gettext_lazy("The amount is more than you can withdraw now."),
    "amount_invalid": gettext_lazy("Enter an amount in yuan greater than zero, with at most two decimals."),
    "idempotency_conflict": gettext_lazy(
        "This form was already sent with another amount. Reload the page and try again."
    ),
    "task_not_open": gettext_lazy("This task is no longer open."),
    "not_found": gettext_lazy("Not found."),
    "permission_denied": gettext_lazy("You do not have permission to do this."),
}
FIELD_TEXTS = {
    "carrier": gettext_lazy("Choose or enter the carrier (at most 32 characters)."),
    "tracking_no": gettext_lazy("Enter the tracking number: 1–64 letters, digits or hyphens."),
}


def error_text(error: DomainError) -> str:
    field = error.extra.get("field")
    if field in FIELD_TEXTS:
        return str(FIELD_TEXTS[field])
    if error.code == "exceeds_withdrawable" and "withdrawable_fen" in error.extra:
        return _("The amount is more than you can withdraw now: at most %(amount)s.") % {
            "amount": format_fen(error.extra["withdrawable_fen"])
        }
    return str(ERROR_TEXTS.get(error.code, error.detail))


def portal_error(error: DomainError) -> dict:
    """What ``merchants/_error.html`` shows."""
    return {"code": error.code, "text": error_text(error)}


# --- display helpers ------------------------------------------------------------------


def _pct(part: int, whole: int) -> str:
    """A bar segment's width in percent, as CSS wants it (display only, never localised)."""
    return f"{100 * part / whole:.2f}" if whole > 0 else "0"


def money_figures(figures: Figures) -> dict:
    """Every figure of the explanation as yuan text, plus the bar geometry."""
    scale = max(figures.deposit_fen, figures.holds_total_fen)
    available_scale = figures.available_fen + figures.uncovered_fen
    return {
        "pending": format_fen(figures.pending_fen),
        "available": format_fen(figures.available_fen),
        "deposit": format_fen(figures.deposit_fen),
        "holds_total": format_fen(figures.holds_total_fen),
        "covered": format_fen(figures.covered_by_deposit_fen),
        "spill": format_fen(figures.spill_fen),
        "frozen": format_fen(figures.frozen_from_available_fen),
        "uncovered": format_fen(figures.uncovered_fen),
        "withdrawable": format_fen(figures.withdrawable_fen),
        "deposit_unused": format_fen(figures.deposit_fen - figures.covered_by_deposit_fen),
        "has_holds": figures.holds_total_fen > 0,
        "has_spill": figures.spill_fen > 0,
        "has_uncovered": figures.uncovered_fen > 0,
        "fen": figures,
        "bar": {
            "deposit": _pct(figures.deposit_fen, scale),
            "covered": _pct(figures.covered_by_deposit_fen, scale),
            "deposit_unused": _pct(figures.deposit_fen - figures.covered_by_deposit_fen, scale),
            "spill": _pct(figures.spill_fen, scale),
            "frozen": _pct(figures.frozen_from_available_fen, available_scale),
            "withdrawable": _pct(figures.withdrawable_fen, available_scale),
            "uncovered": _pct(figures.uncovered_fen, available_scale),
        },
    }


def release_text(hold: FundHold) -> str:
    """What releases a hold, in the reader's language when it is the standard sentence."""
    standard = f"Resolve ticket #{hold.ticket_id}: reply with proof, or accept the refund"
    if hold.release_condition == standard:
        return _("Resolve ticket #%(ticket)s: reply with proof, or accept the refund") % {"ticket": hold.ticket_id}
    return hold.release_condition


def countdown(deadline, now) -> dict:
    """Seconds left to a deadline and the text shown before the script ticks."""
    left = int((deadline - now).total_seconds())
    span = abs(left)
    hours, rest = divmod(span, 3600)
    text = f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
    return {
        "left_s": left,
        "text": text,
        "overdue": left < 0,
        "urgent": 0 <= left < URGENT_WITHIN.total_seconds(),
    }


def _task_row(task: ResendTask, now) -> dict:
    return {"task": task, "countdown": countdown(task.deadline_at, now) if task.status == ResendTask.Status.OPEN else None}


def _common(merchant, nav: str) -> dict:
    return {"merchant": merchant, "nav": nav, "urgent_s": int(URGENT_WITHIN.total_seconds())}


# --- overview: why money is held -------------------------------------------------------


@require_GET
@merchant_staff_required
def overview(request, merchant):
    """The balance explained: every figure, the arithmetic, the deposit bar,
    every hold with what releases it, the disputed orders kept in escrow."""
    now = timezone.now()
    explained = balance_explanation(merchant=merchant)
    money = money_figures(explained.figures)
    holds = [
        {
            "hold": line.hold,
            "amount": format_fen(line.hold.amount_fen),
            "reason": _(line.hold.reason) if line.hold.reason else "",
            "release": release_text(line.hold),
            "withdrawable_if_released": format_fen(line.withdrawable_if_released_fen),
            "gain": format_fen(line.withdrawable_if_released_fen - explained.figures.withdrawable_fen),
            "gains": line.withdrawable_if_released_fen > explained.figures.withdrawable_fen,
        }
        for line in explained.holds
    ]
    disputed = [{"order": order, "amount": format_fen(order.amount_fen)} for order in explained.disputed_in_escrow]
    tasks = selectors.open_task_summary(merchant=merchant)
    context = {
        **_common(merchant, "overview"),
        "money": money,
        "holds": holds,
        "holds_truncated": explained.holds_truncated,
        "disputed": disputed,
        "open_tasks": tasks["count"],
        "next_deadline": tasks["next_deadline"],
        "next_countdown": countdown(tasks["next_deadline"], now) if tasks["next_deadline"] else None,
    }
    return render(request, "merchants/overview.html", context)


# --- compelled resends --------------------------------------------------------------------


def _tasks_context(merchant, *, row_state: dict | None = None) -> dict:
    """Open tasks (nearest deadline first), then the fulfilled and missed ones;
    ``row_state`` adds an error or a confirmation to one row."""
    now = timezone.now()
    open_rows = [_task_row(t, now) for t in selectors.resend_tasks_for(merchant=merchant, open_only=True)]
    done_rows = [
        _task_row(t, now) for t in selectors.resend_tasks_for(merchant=merchant, open_only=False)[:TASK_HISTORY_SHOWN]
    ]
    if row_state:
        rows = [row for row in open_rows + done_rows if row["task"].pk == row_state["task_id"]]
        if not rows:  # just fulfilled: show it on top of the open ones
            rows = [_task_row(selectors.get_task_for(merchant=merchant, task_id=row_state["task_id"]), now)]
            open_rows.insert(0, rows[0])
        rows[0].update(row_state)
    return {**_common(merchant, "tasks"), "open_tasks": open_rows, "done_tasks": done_rows, "carriers": CARRIERS}


@require_GET
@merchant_staff_required
def tasks(request, merchant):
    """Resend tasks with a deadline countdown and a tracking-number form each."""
    return render(request, "merchants/tasks.html", _tasks_context(merchant))


@require_POST
@merchant_staff_required
def fulfil_task(request, merchant, task_id: int):
    """Enter the carrier and tracking number of a resend; answer with the row
    (htmx) or the whole page, the error inline with its 4xx status."""
    task = selectors.get_task_for(merchant=merchant, task_id=task_id)
    if task is None:
        if is_htmx(request):
            return render(request, "merchants/_task_missing.html", status=404)
        raise Http404
    entered = {"carrier": request.POST.get("carrier", ""), "tracking_no": request.POST.get("tracking_no", "")}
    status, state = 200, {"task_id": task.pk, "just_done": True}
    try:
        services.fulfil_resend_task(actor=request.user, task_id=task.pk, **entered)
    except DomainError as error:
        status, state = error.status, {"task_id": task.pk, "error": portal_error(error), "entered": entered}
    if is_htmx(request):
        task = selectors.get_task_for(merchant=merchant, task_id=task.pk)
        context = {**_task_row(task, timezone.now()), **state, "carriers": CARRIERS}
        return render(request, "merchants/_task_row.html", context, status=status)
    return render(request, "merchants/tasks.html", _tasks_context(merchant, row_state=state), status=status)


# --- payouts ----------------------------------------------------------------------------------


def parse_yuan(raw: str) -> int:
    """``"1,084.90"`` or ``"¥12"`` → fen; anything else is ``AmountInvalid``."""
    text = (raw or "").strip().replace(",", "").replace("，", "").lstrip("¥￥").strip()
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise AmountInvalid() from None
    if not amount.is_finite() or amount <= 0 or amount > Decimal(services.MAX_FEN) / 100:
        raise AmountInvalid()
    if amount != amount.quantize(Decimal("0.01"), rounding=ROUND_DOWN):
        raise AmountInvalid()
    return int(amount * 100)


def _payout_panel(merchant, *, result: dict | None = None, error: dict | None = None, entered: str = "",
                  key: str | None = None) -> dict:
    figures = balance_explanation(merchant=merchant).figures
    return {
        "money": money_figures(figures),
        "withdrawable_yuan": f"{figures.withdrawable_fen // 100}.{figures.withdrawable_fen % 100:02d}",
        "idempotency_key": key or uuid.uuid4().hex,
        "result": result,
        "error": error,
        "entered": entered,
    }


def _payout_history(request, merchant) -> dict:
    payouts = selectors.payouts_for(merchant=merchant)
    page = Paginator(payouts, PAYOUTS_PAGE_SIZE).get_page(request.GET.get("page"))
    return {"page": page, "rows": [{"payout": p, "amount": format_fen(p.amount_fen)} for p in page]}


@require_http_methods(["GET", "POST"])
@merchant_staff_required
def payouts(request, merchant):
    """The payout history and the request form. The form carries its own
    Idempotency-Key, so a double submit cannot pay twice."""
    status = 200
    panel = None
    if request.method == "POST":
        entered = request.POST.get("amount", "")
        key = request.POST.get("idempotency_key", "")
        try:
            amount_fen = parse_yuan(entered)
            ip, device = ip_and_device(request)
            payout, created = services.request_payout(
                actor=request.user, merchant_id=merchant.pk, amount_fen=amount_fen, idempotency_key=key,
                ip=ip, device=device,
            )
        except DomainError as error:
            status = error.status
            # nothing was paid: the same key may be sent again with a corrected amount
            panel = _payout_panel(merchant, error=portal_error(error), entered=entered, key=key or None)
        else:
            panel = _payout_panel(merchant, result={
                "created": created, "amount": format_fen(payout.amount_fen), "payout": payout,
            })
        if is_htmx(request):
            context = {**_common(merchant, "payouts"), **panel, "history": _payout_history(request, merchant),
                       "oob": True}
            return render(request, "merchants/_payout_panel.html", context, status=status)
    context = {
        **_common(merchant, "payouts"),
        **(panel or _payout_panel(merchant)),
        "history": _payout_history(request, merchant),
    }
    return render(request, "merchants/payouts.html", context, status=status)


# --- credit score -----------------------------------------------------------------------------


@require_GET
@merchant_staff_required
def credit(request, merchant):
    """The credit score with its three parts and its history."""
    history = selectors.credit_history_for(merchant=merchant, limit=CREDIT_HISTORY_SHOWN)
    latest = history[0] if history else None
    components = []
    if latest is not None:
        parts = [
            ("dispute_rate", _("Dispute rate"), latest.dispute_rate,
             _("Disputes per order over the last 90 days. Lower is better."), True),
            ("on_time_shipping", _("On-time shipping"), latest.on_time_shipping,
             _("Orders shipped by the promised time over the last 90 days. Higher is better."), False),
            ("resend_compliance", _("Resend compliance"), latest.resend_compliance,
             _("Compelled resends shipped before their deadline. Higher is better."), False),
        ]
        components = [
            {"key": key, "label": label, "percent": f"{100 * value:.1f}", "bar": f"{min(100.0, 100 * value):.1f}",
             "hint": hint, "lower_is_better": lower}
            for key, label, value, hint, lower in parts
        ]
    context = {
        **_common(merchant, "credit"),
        "latest": latest,
        "score": latest.score if latest else merchant.credit_score,
        "components": components,
        "history": history,
        "spark": _sparkline([row.score for row in reversed(history)]),
        "standing": selectors.credit_standing_for(merchant=merchant),
        "consequence_labels": CONSEQUENCE_LABELS,
    }
    return render(request, "merchants/credit.html", context)


CONSEQUENCE_LABELS = {
    "dispute_hold": _("A new dispute holds the full order amount at once, even while the money is in escrow"),
    "payout_review": _("Payouts wait for a supervisor's review before they go to your bank"),
    "short_resend": _("Compelled resends are due sooner"),
}


def _sparkline(scores: list[int], width: int = 320, height: int = 64) -> dict | None:
    """SVG polyline points for the score history (oldest left), 0–100 scale."""
    if len(scores) < 2:
        return None
    step = width / (len(scores) - 1)
    points = " ".join(f"{round(i * step, 1)},{round(height - height * s / 100, 1)}" for i, s in enumerate(scores))
    return {"points": points, "width": width, "height": height}
