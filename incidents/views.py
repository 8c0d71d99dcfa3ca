"""Console pages for supervisors: incidents with their bulk jobs (preview, run
with a live progress bar, undo), failed campaign coupons and their
compensation, and the live dashboard."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.http import Http404, HttpResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.shortcuts import redirect, render
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from compensation import rules
from compensation import services as compensation_services
from compensation.views import supervisor_required
from core.errors import DomainError, InvalidInput
from core.money import format_fen
from core.parsing import parse_optional_int
from incidents import events, selectors, services
from incidents.models import AffectedBuyer, CouponFailure, Incident, IncidentEvent
from tickets import sla
from tickets.models import Category
from tickets.views import _agent_bar
from tickets.views_work import _overtime_context

ERROR_TEXTS = {
    "review_incomplete": _("Write the cause, what was done and the preventive measures before closing."),
    "incident_closed": _("The incident is already closed."),
    "job_state": _("The job has already been started."),
    "undo_expired": _("The undo window has passed."),
}


def _error(request, error: DomainError, target: str):
    response = render(request, "incidents/_error.html", {"error": error, "text": ERROR_TEXTS.get(error.code, error.detail)},
                      status=error.status)
    response["HX-Retarget"] = target
    response["HX-Reswap"] = "innerHTML"
    return response


def _incident(incident_id: int) -> Incident:
    incident = Incident.objects.filter(pk=incident_id).first()
    if incident is None:
        raise Http404
    return incident


@require_http_methods(["GET", "POST"])
@supervisor_required
def incident_list(request):
    """Open incidents first, and the form to open one."""
    error = None
    if request.method == "POST":
        try:
            incident = services.open_incident(
                actor=request.user, title=request.POST.get("title", ""), grade=request.POST.get("grade", ""),
                region=request.POST.get("region", ""), carrier=request.POST.get("carrier", ""),
                category=request.POST.get("category", ""), description=request.POST.get("description", ""),
            )
            return redirect("incidents:detail", incident_id=incident.pk)
        except DomainError as refused:
            error = refused
    return render(request, "incidents/list.html", {
        **_agent_bar(request), "nav": "incidents", "open": selectors.open_incidents(),
        "closed": Incident.objects.filter(status=Incident.Status.CLOSED).order_by("-closed_at")[:20],
        "grades": sla.GRADE_CHOICES, "categories": Category.choices, "error": error,
        "error_text": ERROR_TEXTS.get(error.code, error.detail) if error else "",
    }, status=error.status if error else 200)


@require_GET
@supervisor_required
def incident_detail(request, incident_id: int):
    incident = _incident(incident_id)
    return render(request, "incidents/detail.html", {
        **_agent_bar(request), "nav": "incidents", "incident": incident,
        "tickets": selectors.incident_tickets(incident), "ticket_count": incident.links.count(),
        "jobs": selectors.recent_jobs(incident), "timeline": IncidentEvent.objects.filter(incident=incident)
        .select_related("actor"), "categories": Category.choices,
        "coupon": format_fen(compensation_services.get_policy().coupon_fen),
    })


@require_POST
@supervisor_required
def link(request, incident_id: int):
    try:
        query = services.TicketQuery.parse(request.POST)
        linked = services.link_tickets(actor=request.user, incident_id=incident_id, query=query)
    except DomainError as refused:
        return _error(request, refused, "#link-result")
    incident = _incident(incident_id)
    return render(request, "incidents/_linked.html", {"linked": linked, "ticket_count": incident.links.count()})


@require_POST
@supervisor_required
def close(request, incident_id: int):
    try:
        services.close_incident(actor=request.user, incident_id=incident_id, cause=request.POST.get("cause", ""),
                                actions_taken=request.POST.get("actions_taken", ""),
                                prevention=request.POST.get("prevention", ""))
    except DomainError as refused:
        return _error(request, refused, "#close-result")
    response = render(request, "incidents/_linked.html", {"closed": True})
    response["HX-Redirect"] = request.path.rsplit("close/", 1)[0]
    return response


@require_POST
@supervisor_required
def job_preview(request, incident_id: int):
    """Create the job from the form and show its dry run: nothing changes yet."""
    # the form has every kind's fields; the service keeps the ones the chosen kind takes
    params = {name: request.POST.get(name, "") for name in ("body", "remedy", "reason")}
    params["with_coupon"] = request.POST.get("with_coupon") == "on"
    try:
        # each preview is a new job (the money moves only when one is run, once)
        job = services.create_bulk_job(actor=request.user, kind=request.POST.get("kind", ""), params=params,
                                       incident_id=incident_id, idempotency_key=uuid.uuid4().hex)
        job, rows, counts = selectors.preview_job(user=request.user, job_id=job.pk)
    except DomainError as refused:
        return _error(request, refused, "#job-slot")
    return render(request, "incidents/_preview.html", {"job": job, "rows": rows, "counts": counts})


@require_POST
@supervisor_required
def job_run(request, job_id: int):
    try:
        services.start_job(actor=request.user, job_id=job_id)
    except DomainError as refused:
        return _error(request, refused, "#job-slot")
    return render(request, "incidents/_progress.html", {"job": selectors.get_job_for(user=request.user, job_id=job_id)})


@require_GET
@supervisor_required
def job_progress(request, job_id: int):
    try:
        job = selectors.get_job_for(user=request.user, job_id=job_id)
    except DomainError:
        raise Http404 from None
    return render(request, "incidents/_progress.html", {"job": job})


@require_POST
@supervisor_required
def job_undo(request, job_id: int):
    try:
        job = services.undo_job(actor=request.user, job_id=job_id)
    except DomainError as refused:
        return _error(request, refused, "#job-slot")
    return render(request, "incidents/_progress.html", {"job": job})


# --- failed campaign coupons ----------------------------------------------------------

COUPON_ERROR_TEXTS = {
    "coupon_failure_exists": _("This campaign code is already registered: open it from the list."),
}


def _coupon_error_text(error: DomainError) -> str:
    return str(COUPON_ERROR_TEXTS.get(error.code) or ERROR_TEXTS.get(error.code) or error.detail)


@require_http_methods(["GET", "POST"])
@supervisor_required
def coupon_failures(request):
    """The failed campaign coupons, and the form to register one."""
    error, form = None, {}
    if request.method == "POST":
        form = {k: request.POST.get(k, "").strip() for k in ("code", "title", "remedy", "amount_fen", "reason")}
        try:
            amount_fen = parse_optional_int(form["amount_fen"], field="amount_fen", minimum=1)
            failure = services.create_coupon_failure(actor=request.user, code=form["code"], title=form["title"],
                                                     remedy=form["remedy"], reason=form["reason"],
                                                     amount_fen=amount_fen)
            return redirect("incidents:coupon-failure", failure_id=failure.pk)
        except DomainError as refused:
            error = refused
    return render(request, "incidents/coupon_failures.html", {
        **_agent_bar(request), "nav": "incidents", "failures": selectors.coupon_failures(user=request.user),
        "remedies": CouponFailure.Remedy.choices, "form": form, "error": error,
        "error_text": _coupon_error_text(error) if error else "",
        "coupon": format_fen(compensation_services.get_policy().coupon_fen),
    }, status=error.status if error else 200)


REPORT_ROWS = 200


def _coupon_context(request, failure: CouponFailure, **extra) -> dict:
    outcome = request.GET.get("outcome")
    if outcome not in AffectedBuyer.Outcome.values:
        outcome = None
    rows = list(selectors.affected_buyers(failure, outcome=outcome)[:REPORT_ROWS])
    summary = selectors.coupon_failure_summary(failure)
    return {
        **_agent_bar(request), "nav": "incidents", "failure": failure, "summary": summary, "rows": rows,
        "outcome": outcome, "outcomes": AffectedBuyer.Outcome.choices, "sources": AffectedBuyer.Source.choices,
        "source_counts": [(label, summary.by_source.get(value, 0)) for value, label in AffectedBuyer.Source.choices],
        "outcome_counts": [(value or "none", label, summary.by_outcome.get(value, 0))
                           for value, label in AffectedBuyer.Outcome.choices],
        "estimated": format_fen(summary.estimated_fen), "executed": format_fen(summary.executed_fen),
        "budget_left": format_fen(summary.budget_left_fen), "amount": format_fen(failure.amount_fen),
        "over_budget": summary.estimated_fen > summary.budget_left_fen,
        "job": failure.job, "idempotency_key": uuid.uuid4().hex, **extra,
    }


@require_GET
@supervisor_required
def coupon_failure(request, failure_id: int):
    """Register who was hit, preview what it costs, compensate, then read the report."""
    try:
        failure = selectors.get_coupon_failure_for(user=request.user, failure_id=failure_id)
    except DomainError:
        raise Http404 from None
    return render(request, "incidents/coupon_failure.html", _coupon_context(request, failure))


def _parse_local(raw: str):
    parsed = parse_datetime(raw or "")
    if parsed is None:
        return None
    return timezone.make_aware(parsed) if timezone.is_naive(parsed) else parsed


@require_POST
@supervisor_required
def coupon_register(request, failure_id: int):
    """Add affected buyers from one source: the code, an uploaded list (a
    text or CSV file, or pasted), or the coupon-failure tickets of a period."""
    source = request.POST.get("source", "")
    entries = None
    if source == AffectedBuyer.Source.LIST:
        text = request.POST.get("entries", "")
        upload = request.FILES.get("file")
        if upload is not None:
            if upload.size > 2 * 1024 * 1024:
                return _coupon_page_error(request, failure_id, InvalidInput("The list is at most 2 MB.", field="file"))
            text += "\n" + upload.read().decode("utf-8-sig", errors="replace")
        entries = [cell.strip() for line in text.splitlines() for cell in line.split(",") if cell.strip()]
    try:
        result = services.register_buyers(
            actor=request.user, failure_id=failure_id, source=source, entries=entries,
            since=_parse_local(request.POST.get("since", "")), until=_parse_local(request.POST.get("until", "")))
    except DomainError as refused:
        return _coupon_page_error(request, failure_id, refused)
    failure = selectors.get_coupon_failure_for(user=request.user, failure_id=failure_id)
    return render(request, "incidents/coupon_failure.html", _coupon_context(request, failure, registered=result))


def _coupon_page_error(request, failure_id: int, error: DomainError):
    try:
        failure = selectors.get_coupon_failure_for(user=request.user, failure_id=failure_id)
    except DomainError:
        raise Http404 from None
    context = _coupon_context(request, failure, error=error, error_text=_coupon_error_text(error))
    return render(request, "incidents/coupon_failure.html", context, status=error.status)


@require_POST
@supervisor_required
def coupon_compensate(request, failure_id: int):
    """Start the compensation job (the page's key makes a double click one job)."""
    try:
        services.compensate(actor=request.user, failure_id=failure_id,
                            idempotency_key=request.POST.get("idempotency_key"))
    except DomainError as refused:
        if refused.code == "not_found":
            raise Http404 from None
        response = _coupon_page_error(request, failure_id, refused)
        if request.headers.get("HX-Request") == "true":
            response["HX-Retarget"], response["HX-Reswap"] = "body", "innerHTML"
        return response
    page = redirect("incidents:coupon-failure", failure_id=failure_id)
    if request.headers.get("HX-Request") == "true":  # the confirmed button: the whole page moves on
        response = HttpResponse(status=204)
        response["HX-Redirect"] = page["Location"]
        return response
    return page


# --- the dashboard ---------------------------------------------------------------


def _trend(today: list[tuple], earlier: dict[str, list[int]], *, threshold: int, width: int = 600,
           height: int = 120) -> dict:
    """Today's bars against the same minutes on earlier days (lines) and a
    threshold (a dashed line; bars past it are hot), on one scale."""
    values = [v for _, v in today]
    top = max(values + [v for series in earlier.values() for v in series] + [threshold, 1])
    step = width / max(len(today), 1)
    bars = [{"x": round(i * step, 1), "w": round(max(step - 1, 1), 1), "h": round(height * v / top, 1),
             "y": round(height - height * v / top, 1), "value": v, "label": label.strftime("%H:%M"),
             "hot": bool(threshold) and v > threshold}
            for i, (label, v) in enumerate(today)]
    lines = {name: " ".join(f"{round(i * step + step / 2, 1)},{round(height - height * v / top, 1)}"
                            for i, v in enumerate(series)) for name, series in earlier.items()}
    return {"bars": bars, "width": width, "height": height, "top": top, "lines": lines,
            "totals": {name: sum(series) for name, series in earlier.items()},
            "threshold": threshold, "threshold_y": round(height - height * threshold / top, 1) if threshold else None,
            "crossed": sum(1 for bar in bars if bar["hot"]),
            "first": today[0][0].strftime("%H:%M") if today else "", "last": today[-1][0].strftime("%H:%M") if today else ""}


def _latest(values: list):
    """The last value of a series that has one (a bucket without tickets or ratings has none)."""
    return next((v for v in reversed(values) if v is not None), None)


def _wait(seconds: int) -> str:
    return f"{seconds // 60}:{seconds % 60:02d}"


def _dashboard_context() -> dict:
    board = selectors.dashboard()
    budget = board.budget
    figures = events.board_payload(board)
    first_reply = _latest(figures["first_reply_s"]["today"])
    csat = _latest(figures["csat"]["today"])
    return {
        "board": board,
        # the market board's figures: the page draws its trend charts from them, and
        # again from each "board" frame the console socket brings (static/js/board.js)
        "figures": figures,
        "board_labels": {"categories": {code: str(label) for code, label in Category.choices},
                         "none": str(_("No tickets this hour."))},
        "alerts": {key: figures[key]["alert"] for key in ("inflow", "waiting", "first_reply_s", "csat", "spend")}
        | {"categories": any(c["alert"] for c in figures["categories"])},
        "category_legend": {"threshold": events.thresholds()["category_per_bucket"],
                            "crossed": sum(c["crossed"] for c in figures["categories"])},
        "spend_limit": format_fen(figures["spend"]["threshold"]) if figures["spend"]["threshold"] else "",
        "first_reply": _wait(round(first_reply)) if first_reply is not None else "—",
        "csat_now": f"{csat:.1f}" if csat is not None else "—",
        "categories": [{"code": c["code"], "label": Category(c["code"]).label if c["code"] in Category.values else c["code"],
                        "today": sum(c["today"]), "alert": c["alert"]} for c in figures["categories"]],
        "inflow": _trend(board.inflow, {"yesterday": list(board.inflow_yesterday),
                                         "last_week": list(board.inflow_last_week)},
                         threshold=settings.DASHBOARD_INFLOW_ALERT_PER_MIN),
        "inflow_total": sum(v for _, v in board.inflow),
        "inflow_last": board.inflow[-1][1] if board.inflow else 0,
        "breaches": [{"grade": label, "count": board.breaches_by_grade[g]} for g, label in sla.GRADE_CHOICES],
        "budget_spent": format_fen(budget.spent_fen) if budget else format_fen(0),
        "budget_total": format_fen(budget.budget_fen) if budget else "—",
        "budget_percent": rules.budget_percent(spent_fen=budget.spent_fen, budget_fen=budget.budget_fen) if budget else 0,
        "breaker_open": bool(budget and budget.breaker_open),
        "longest_wait": _wait(board.longest_wait_s),
        "agents": [{**a, "worked": f"{a['worked_s'] // 3600}:{a['worked_s'] % 3600 // 60:02d}",
                    "load_percent": min(100, round(100 * a["load"] / a["capacity"])) if a["capacity"] else 0}
                   for a in board.agents],
    }


@require_GET
@supervisor_required
def dashboard(request):
    return render(request, "incidents/dashboard.html", {**_agent_bar(request), "nav": "dashboard",
                                                         **_dashboard_context(), **_overtime_context(request)})


@require_GET
@supervisor_required
def dashboard_figures(request):
    return render(request, "incidents/_dashboard.html", _dashboard_context())


