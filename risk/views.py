"""The console's risk page (``/console/risk/``): the detector's review list and
the restricted accounts, with each account's actions as htmx fragments.
Staff read it; supervisors flag, freeze, cancel pending orders (and undo)
and dismiss; any agent unfreezes after checking the owner's details.
Thin: reads through selectors, writes through services."""

from __future__ import annotations

from functools import wraps

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import render
from django.utils.dateparse import parse_datetime
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import roles
from accounts.models import User
from core.errors import DomainError
from core.errors import NotFound as DomainNotFound
from core.money import format_fen
from core.parsing import parse_ids
from risk import rules, selectors, services
from risk.models import RiskHit
from tickets.views import _agent_bar, staff_required

ERROR_TEXTS = {
    "already_flagged": _("The account is already flagged."),
    "already_frozen": _("The account is already frozen."),
    "not_restricted": _("The account is neither flagged nor frozen."),
    "account_not_eligible": _("Only buyer accounts are restricted here."),
    "hit_closed": _("This hit has already been reviewed."),
    "verification_required": _("Check the owner's registration details first."),
    "verification_failed": _("The registration details did not match: the account stays restricted. The failed check is recorded."),
}
INVALID_TEXTS = {
    "reason": _("Give a reason (at most 255 characters)."),
    "note": _("The note is at most 255 characters."),
    "phone": _("Type the phone number the caller gives."),
    "email": _("The e-mail is at most 254 characters."),
    "order_ids": _("Tick at least one order."),
}
SKIP_TEXTS = {
    "already_shipped": _("shipped meanwhile"),
    "already_cancelled": _("already cancelled"),
    "not_cancelled": _("not cancelled"),
    "undo_expired": _("undo window passed"),
    "undo_unavailable": _("cannot be undone"),
    "changed_since_cancel": _("changed since the cancel"),
    "not_found": _("not this account's order"),
}
SEEN_TEXTS = {
    "login": _("last login"),
    "order": _("last order"),
    "joined": _("joined, never active since"),
}


def supervisor_required(view):
    """Staff (login or 403 as ``staff_required``), and a supervisor on top."""

    @staff_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not roles.is_supervisor(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper


def _error_text(exc: DomainError) -> str:
    if exc.code == "invalid":
        return str(INVALID_TEXTS.get(exc.extra.get("field"), _("Check the form.")))
    return str(ERROR_TEXTS.get(exc.code, exc.detail))


def _evidence(hit: RiskHit) -> dict:
    """The hit's evidence as the page shows it: dates, hours, yuan."""
    data = hit.evidence or {}
    orders = [
        {"order_no": o.get("order_no", ""), "placed_at": parse_datetime(o.get("placed_at") or ""),
         "hour": o.get("hour"), "amount": format_fen(o.get("amount_fen") or 0)}
        for o in data.get("orders", [])
    ]
    return {
        "orders": orders,
        "order_count": data.get("order_count", len(orders)),
        "slots": [f"{hour:02d}:00" for hour in data.get("slots", [])],
        "window_hours": data.get("window_hours"),
        "dormant_days": data.get("dormant_days"),
        "last_seen_at": parse_datetime(data.get("last_seen_at") or ""),
        "last_seen_label": SEEN_TEXTS.get(data.get("last_seen_kind"), ""),
        "reactivated_at": parse_datetime(data.get("reactivated_at") or ""),
    }


def _allowed(account: User) -> dict:
    """What the account's status allows (risk/rules.py), for the page's buttons."""
    status = account.account_status
    return {"may_flag": rules.may_flag(status=status), "may_freeze": rules.may_freeze(status=status),
            "may_unfreeze": rules.may_unfreeze(status=status)}


def _account_context(request, account: User, *, pending: int | None = None, **extra) -> dict:
    if pending is None:
        pending = selectors.pending_counts(account_ids=[account.pk]).get(account.pk, 0)
    context = {"account": account, "pending": pending, "can_act": roles.is_supervisor(request.user),
               "is_buyer": roles.is_buyer(account), **_allowed(account), **extra}
    if not rules.undo_open(undo_until=context.get("undo_until"), now=timezone.now()):
        context["undo_ids"] = []  # past its window the undo is not offered
    return context


def _render_account(request, account: User, *, status: int = 200, **extra):
    return render(request, "risk/_account.html", _account_context(request, account, **extra), status=status)


def _account(request, account_id: int) -> User:
    try:
        return selectors.get_account_for(user=request.user, account_id=account_id)
    except DomainNotFound:
        raise Http404 from None


HIT_STATUSES = ["open", "dismissed", "actioned", "all"]


@require_GET
@staff_required
def review(request):
    """The review list (open hits by default) and the restricted accounts."""
    status = request.GET.get("status") or "open"
    status = status if status in HIT_STATUSES else "open"
    account_status = request.GET.get("account_status", "")
    account_status = account_status if account_status in User.AccountStatus.values else ""
    q = (request.GET.get("q") or "").strip()[:64]
    hits = list(selectors.filter_hits(selectors.hits_visible_to(user=request.user), status=status,
                                      account_status=account_status, q=q)[: selectors.ROWS_SHOWN])
    restricted = list(selectors.restricted_accounts(user=request.user)[: selectors.ROWS_SHOWN])
    counts = selectors.pending_counts(account_ids=sorted({h.user_id for h in hits} | {a.pk for a in restricted}))
    can_act = roles.is_supervisor(request.user)
    rows = [{"hit": hit, "evidence": _evidence(hit),
             "account": {"account": hit.user, "pending": counts.get(hit.user_id, 0), "can_act": can_act,
                         "is_buyer": True, **_allowed(hit.user)}}
            for hit in hits]
    accounts = [{"account": a, "pending": counts.get(a.pk, 0), "can_act": can_act, "is_buyer": True, **_allowed(a)}
                for a in restricted]
    context = {
        **_agent_bar(request), "nav": "risk", "rows": rows, "accounts": accounts, "can_act": can_act,
        "filters": {"status": status, "account_status": account_status, "q": q},
        "hit_statuses": [(s, label) for s, label in RiskHit.Status.choices] + [("all", _("All"))],
        "account_statuses": User.AccountStatus.choices,
        "rows_capped": len(hits) == selectors.ROWS_SHOWN,
    }
    return render(request, "risk/review.html", context)


@require_GET
@staff_required
def account(request, account_id: int):
    """One account's actions (the fragment the page swaps back in on "Back")."""
    return _render_account(request, _account(request, account_id))


@require_POST
@supervisor_required
def restrict(request, account_id: int, verb: str):
    """Flag or freeze, with a reason."""
    account = _account(request, account_id)
    act = services.flag_account if verb == "flag" else services.freeze_account
    try:
        account = act(actor=request.user, user_id=account.pk, reason=request.POST.get("reason", ""))
    except DomainError as exc:
        return _render_account(request, account, status=exc.status, error=_error_text(exc))
    notice = _("Account flagged: new bookings are denied.") if verb == "flag" else \
        _("Account frozen: new bookings are denied until the owner is verified.")
    return _render_account(request, account, notice=notice)


@require_http_methods(["GET", "POST"])
@supervisor_required
def cancel(request, account_id: int):
    """GET: which pending orders a bulk cancel would cancel, to confirm.
    POST: cancel exactly those (each one that shipped meanwhile is skipped)."""
    account = _account(request, account_id)
    if request.method == "GET":
        orders = selectors.pending_orders_of(user_id=account.pk)
        return _render_account(request, account, confirm_cancel=True,
                               orders=[{"order": o, "amount": format_fen(o.amount_fen)} for o in orders],
                               total=format_fen(sum(o.amount_fen for o in orders)))
    try:
        ids = parse_ids(request.POST.getlist("order_id"), field="order_id")
        result = services.cancel_pending_orders(actor=request.user, user_id=account.pk,
                                                reason=request.POST.get("reason", ""), order_ids=ids)
    except DomainError as exc:
        orders = selectors.pending_orders_of(user_id=account.pk)
        return _render_account(request, account, status=exc.status, error=_error_text(exc), confirm_cancel=True,
                               orders=[{"order": o, "amount": format_fen(o.amount_fen)} for o in orders],
                               total=format_fen(sum(o.amount_fen for o in orders)))
    account.refresh_from_db()
    return _render_account(request, account, bulk=_bulk_view(result), undo_ids=[o.pk for o in result.done],
                           undo_until=result.undo_until)


@require_POST
@supervisor_required
def undo(request, account_id: int):
    """Restore the orders a bulk cancel just cancelled, within the undo window."""
    account = _account(request, account_id)
    try:
        ids = parse_ids(request.POST.getlist("order_id"), field="order_id")
        result = services.restore_cancelled_orders(actor=request.user, user_id=account.pk, order_ids=ids)
    except DomainError as exc:
        return _render_account(request, account, status=exc.status, error=_error_text(exc))
    return _render_account(request, account, bulk=_bulk_view(result), restored=True)


def _bulk_view(result) -> dict:
    return {"done": [{"order": o, "amount": format_fen(o.amount_fen)} for o in result.done],
            "skipped": [{"order_id": order_id, "why": SKIP_TEXTS.get(code, code)} for order_id, code in result.skipped]}


@require_http_methods(["GET", "POST"])
@staff_required
def unfreeze(request, account_id: int):
    """GET: the verification form. POST: record the check; unfreeze if it passed."""
    account = _account(request, account_id)
    if request.method == "GET":
        return _render_account(request, account, verify=True)
    try:
        check = services.verify_owner(
            actor=request.user, user_id=account.pk, phone=request.POST.get("phone", ""),
            email=request.POST.get("email", ""), id_last4_confirmed=request.POST.get("id_last4_confirmed") == "1",
            note=request.POST.get("note", ""),
        )
        account = services.unfreeze_account(actor=request.user, user_id=account.pk, verification_id=check.pk,
                                             note=request.POST.get("note", ""))
    except DomainError as exc:
        account.refresh_from_db()
        return _render_account(request, account, status=exc.status, error=_error_text(exc), verify=True)
    return _render_account(request, account, notice=_("Owner verified: the account is active again."))


@require_POST
@supervisor_required
def dismiss(request, hit_id: int):
    """Dismiss a hit with a reason; answers the hit's status cell."""
    status, error, hit = 200, None, None
    try:
        hit = services.dismiss_hit(actor=request.user, hit_id=hit_id, reason=request.POST.get("reason", ""))
    except DomainError as exc:
        if exc.status == 404:
            raise Http404 from None
        status, error = exc.status, _error_text(exc)
    return render(request, "risk/_hit_status.html", {"hit": hit, "hit_id": hit_id, "error": error,
                                                     "can_act": True}, status=status)


@require_GET
@staff_required
def ticket_banner(request, ticket_id: int):
    """The ticket page's risk banner (served here: ``tickets`` never imports
    ``risk``): the detector's open hit on the buyer, a flag or a freeze, and
    the prepared reply for complaints from such accounts, offered as a quick
    reply. Empty when nothing is wrong."""
    try:
        risk = selectors.ticket_risk_for(user=request.user, ticket_id=ticket_id)
    except DomainNotFound:
        raise Http404 from None
    return render(request, "risk/_ticket_banner.html", {"risk": risk, "shortcut": rules.PREPARED_REPLY_SHORTCUT})
