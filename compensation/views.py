"""Console pages of ``compensation``: the remedy panel (loaded into the ticket
page), the supervisor's approval queue, the policy and the breaker. Thin:
reads through selectors, writes through services."""

from __future__ import annotations

import uuid

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import roles
from compensation import rules, selectors, services
from core.errors import DomainError
from core.money import format_fen
from core.parsing import parse_int, parse_optional_int
from merchants import selectors as merchant_selectors
from merchants import services as merchant_services
from tickets.errors import TicketNotFound
from tickets.selectors import get_ticket_for
from tickets.views import _agent_bar, staff_required

REASON_TEXTS = {
    "quota_exhausted": _("your monthly self-service quota is used up"),
    "over_value_cap": _("the order is worth more than the self-service cap"),
    "buyer_daily_cap": _("the buyer has had today's remedies"),
    "breaker_open": _("the day's compensation budget is spent (breaker open)"),
    "buyer_flagged": _("the buyer's account is flagged"),
    "coupon_amount": _("the coupon is not the policy's value"),
}
REFUSAL_TEXTS = {
    "buyer_blacklisted": _("The buyer is blacklisted: no remedy."),
    "order_not_eligible": _("The ticket's order cannot take this remedy."),
    "amount_invalid": _("Nothing is left to refund on this order."),
    "ticket_closed": _("The ticket is resolved or closed."),
}
POLICY_LABELS = {
    "value_cap_fen": _("Self-service order value cap (fen)"),
    "coupon_fen": _("Coupon value (fen)"),
    "coupon_max_fen": _("Largest coupon, with approval (fen)"),
    "agent_monthly_quota": _("Agent monthly self-service quota"),
    "buyer_daily_cap": _("Remedies per buyer per day"),
    "daily_budget_fen": _("Daily compensation budget (fen)"),
    "blacklist_window_days": _("Blacklist: count over the last (days)"),
    "blacklist_entry_days": _("Blacklist: an automatic entry lasts (days)"),
    "blacklist_max_remedies": _("Blacklist: most remedies per account, IP or device in the window"),
    "blacklist_max_tickets": _("Blacklist: most tickets per account, IP or device in the window"),
    "blacklist_max_accounts": _("Blacklist: most accounts on one IP or device in the window"),
    "freeze_on_failed_verification": _("Freeze the account when the owner's verification fails"),
}
_ACTION_LABELS = {
    "refund": _("Refund in full"),
    "refund_coupon": _("Refund + %(coupon)s coupon"),
    "resend": _("Resend"),
    "resend_coupon": _("Resend + %(coupon)s coupon"),
    "coupon": _("%(coupon)s coupon"),
}


def action_label(key: str, *, coupon_fen: int) -> str:
    """A panel action's name, with the coupon a supervisor set in the policy
    (¥5 until it is changed), never a hard-coded value."""
    label = str(_ACTION_LABELS[key])
    return label % {"coupon": format_fen(coupon_fen)} if "%(coupon)s" in label else label


def supervisor_required(view):
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not roles.is_supervisor(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    wrapper.__name__ = view.__name__
    wrapper.__doc__ = view.__doc__
    return wrapper


def _panel_context(request, ticket, **extra) -> dict:
    panel = selectors.remedy_panel(ticket=ticket, agent=request.user)
    options = [
        {
            "option": option,
            "label": action_label(option.key, coupon_fen=panel.policy.coupon_fen),
            "amount": format_fen(option.amount_fen),
            "cost": format_fen(option.cost_fen),
            "reasons": [REASON_TEXTS.get(code, code) for code in option.reasons],
            "refusal": REFUSAL_TEXTS.get(option.refusal, option.refusal),
        }
        for option in panel.options
    ]
    budget = panel.budget
    return {
        "ticket": ticket,
        "options": options,
        "quota": panel.quota,
        "budget": budget,
        "budget_spent": format_fen(budget.spent_fen),
        "budget_total": format_fen(budget.budget_fen),
        "budget_percent": rules.budget_percent(spent_fen=budget.spent_fen, budget_fen=budget.budget_fen),
        "refundable": format_fen(panel.refundable_fen),
        "idempotency_key": uuid.uuid4().hex,
        **extra,
    }


def _ticket(request, ticket_id: int):
    try:
        return get_ticket_for(user=request.user, ticket_id=ticket_id)
    except TicketNotFound:
        raise Http404 from None


@require_GET
@staff_required
def panel(request, ticket_id: int):
    """The remedy panel: what the agent may do self-service, what needs approval and why."""
    return render(request, "compensation/_panel.html", _panel_context(request, _ticket(request, ticket_id)))


@require_POST
@staff_required
def apply(request, ticket_id: int):
    """Apply one panel action (confirmed in the page); answer with the panel and the outcome."""
    ticket = _ticket(request, ticket_id)
    actions = {key: (kind, with_coupon) for key, kind, with_coupon in selectors.PANEL_ACTIONS}
    key = request.POST.get("action", "")
    if key not in actions:
        return render(request, "compensation/_panel.html",
                      _panel_context(request, ticket, error=_("Unknown action.")), status=400)
    kind, with_coupon = actions[key]
    status, outcome, error = 200, None, None
    try:
        result = services.apply_remedy(
            actor=request.user, ticket_id=ticket.pk, kind=kind, with_coupon=with_coupon,
            reason=request.POST.get("reason") or action_label(key, coupon_fen=services.get_policy().coupon_fen),
            idempotency_key=request.POST.get("idempotency_key"),
        )
        status = result.status_code
        outcome = {"status": result.body["status"], "label": action_label(key, coupon_fen=result.body["coupon_fen"]
                                                                          or result.body["amount_fen"]),
                   "reasons": [REASON_TEXTS.get(c, c) for c in result.body.get("reasons", [])]}
    except DomainError as exc:
        status, error = exc.status, REFUSAL_TEXTS.get(exc.code, exc.detail)
    response = render(request, "compensation/_panel.html",
                      _panel_context(request, _ticket(request, ticket_id), outcome=outcome, error=error),
                      status=status)
    response["HX-Trigger"] = "refresh-messages"
    return response


# --- the supervisor's pages ------------------------------------------------------------


def _approval_rows(remedies) -> list[dict]:
    return [
        {
            "remedy": remedy,
            "label": action_label("refund_coupon" if remedy.kind == "refund" and remedy.with_coupon else
                                  "resend_coupon" if remedy.kind == "resend" and remedy.with_coupon else remedy.kind,
                                  coupon_fen=remedy.coupon_fen or remedy.amount_fen),
            "amount": format_fen(remedy.cost_fen),
            "order_value": format_fen(remedy.order.amount_fen) if remedy.order_id else "—",
            "reasons": [REASON_TEXTS.get(c, c) for c in remedy.approval_reasons],
            "idempotency_key": uuid.uuid4().hex,
        }
        for remedy in remedies
    ]


@require_GET
@supervisor_required
def approvals(request):
    """Pending remedies, oldest first, to approve or reject with a reason."""
    payouts = merchant_selectors.payouts_awaiting_review(user=request.user)[:200]
    context = {**_agent_bar(request), "nav": "approvals", "rows": _approval_rows(selectors.pending_approvals()[:200]),
               "payout_rows": [{"payout": p, "amount": format_fen(p.amount_fen)} for p in payouts]}
    return render(request, "compensation/approvals.html", context)


@require_POST
@supervisor_required
def review_payout(request, payout_id: int, verdict: str):
    """A payout of a low-credit merchant: approve (to the bank) or reject
    (back to available, with a note); the row's last cell comes back."""
    status, error, payout = 200, None, None
    try:
        payout = merchant_services.review_payout(actor=request.user, payout_id=payout_id,
                                                 approve=verdict == "approve", note=request.POST.get("note", ""))
    except DomainError as exc:
        status, error = exc.status, exc.detail
    return render(request, "compensation/_payout_decision.html", {"payout": payout, "error": error}, status=status)


@require_POST
@supervisor_required
def decide(request, remedy_id: int, verdict: str):
    decide_fn = services.approve_remedy if verdict == "approve" else services.reject_remedy
    status, error, remedy = 200, None, None
    key = request.POST.get("idempotency_key", "").strip()
    try:
        remedy = decide_fn(actor=request.user, remedy_id=remedy_id, reason=request.POST.get("reason", ""),
                           idempotency_key=f"{key}-{verdict}" if key else None)
    except DomainError as exc:
        status, error = exc.status, exc.detail
    return render(request, "compensation/_decision.html",
                  {"remedy": remedy, "remedy_id": remedy_id, "error": error}, status=status)


@require_http_methods(["GET", "POST"])
@staff_required
def policy(request):
    """The caps (supervisors change them, every change recorded) and the breaker."""
    status, error, notice = 200, None, None
    if request.method == "POST":
        if not roles.is_supervisor(request.user):
            raise PermissionDenied
        try:
            if request.POST.get("form") == "breaker":
                budget_fen = parse_optional_int(request.POST.get("budget_fen"), field="budget_fen", minimum=0)
                services.reset_breaker(actor=request.user, reason=request.POST.get("reason", ""), budget_fen=budget_fen)
                notice = _("Breaker re-armed.")
            else:
                changes = {name: parse_int(request.POST[name], field=name, minimum=0) for name in services.POLICY_FIELDS
                           if request.POST.get(name, "").strip()}
                for name in services.BOOL_FIELDS:
                    if name in changes:
                        changes[name] = bool(changes[name])
                services.update_policy(actor=request.user, changes=changes, reason=request.POST.get("reason", ""))
                notice = _("Policy saved.")
        except DomainError as exc:
            status, error = exc.status, exc.detail
    budget = selectors.budget_today()
    current = services.get_policy()
    context = {
        **_agent_bar(request), "nav": "policy", "history": selectors.policy_history(),
        "field_rows": [(name, POLICY_LABELS[name], getattr(current, name), name in services.BOOL_FIELDS)
                       for name in services.POLICY_FIELDS],
        "budget": budget, "budget_spent": format_fen(budget.spent_fen), "budget_total": format_fen(budget.budget_fen),
        "can_edit": roles.is_supervisor(request.user), "error": error,
        "notice": notice,
    }
    return render(request, "compensation/policy.html", context, status=status)
