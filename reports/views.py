"""The console's reports page, for supervisors: the summary of a period
(optionally per agent or queue), complaint topics rising against the previous
period, carrier scorecards, and links to the CSV exports."""

from __future__ import annotations

from urllib.parse import urlencode

from django.shortcuts import render
from django.views.decorators.http import require_GET

from compensation.views import supervisor_required
from core.errors import DomainError
from core.money import format_fen
from reports import selectors
from reports.rules import parse_group_by, parse_period
from tickets import sla
from tickets.models import Category
from tickets.views import _agent_bar

GRADE_LABELS = dict(sla.GRADE_CHOICES)
CATEGORY_LABELS = dict(Category.choices)


def _seconds(value) -> str:
    if value is None:
        return "–"
    value = int(round(value))
    if value >= 3600:
        return f"{value // 3600}h{value % 3600 // 60:02d}m"
    return f"{value // 60}m{value % 60:02d}s" if value >= 60 else f"{value}s"


def _pct(value) -> str:
    return "–" if value is None else f"{value:.1f}%"


def _figures(report: dict) -> dict:
    """What a table row shows of one set of figures."""
    csat, first, chat = report["csat"], report["first_response_s"], report["chat_response_s"]
    top = max(csat["distribution"]) or 1
    return {
        "csat": csat, "csat_average": "–" if csat["average"] is None else f"{csat['average']:.2f}",
        "promoters": _pct(csat["promoters_pct"]), "detractors": _pct(csat["detractors_pct"]),
        "distribution": [{"score": score, "count": n, "x": score * 20, "height": round(60 * n / top),
                          "y": 62 - round(60 * n / top)} for score, n in enumerate(csat["distribution"])],
        "first": first, "first_p50": _seconds(first["p50"]), "first_p90": _seconds(first["p90"]),
        "first_average": _seconds(first["average"]),
        "chat": chat, "chat_average": _seconds(chat["average"]), "chat_over": _pct(chat["over_target_pct"]),
        "chat_target_passed": selectors.chat_target_passed(report),
        "grades": [{**row, "label": GRADE_LABELS.get(row["grade"], row["grade"]), "within": _pct(row["within_sla_pct"])}
                   for row in report["resolution_by_grade"]],
        "remedies": [{**row, "amount": format_fen(row["amount_fen"])} for row in report["remedies"]],
    }


@require_GET
@supervisor_required
def reports(request):
    context = {**_agent_bar(request), "nav": "reports", "params": request.GET}
    try:
        period = parse_period(request.GET.get("from"), request.GET.get("to"))
        group_by = parse_group_by(request.GET.get("group_by"))
    except DomainError as error:
        context["error"] = error
        return render(request, "reports/reports.html", context, status=error.status)
    report = selectors.summary(period=period, group_by=group_by)
    query = urlencode({"from": period.first.isoformat(), "to": period.last.isoformat()})
    context.update({
        "period": period, "group_by": group_by, "report": report, "figures": _figures(report),
        "groups": [{"id": g["id"], "name": g["name"], **_figures(g)} for g in report.get("groups", [])],
        "topics": [{**row, "label": CATEGORY_LABELS.get(row["category"], row["category"]),
                    "change": "new" if row["change_pct"] is None else f"{row['change_pct']:+.1f}%"}
                   for row in report["top_categories"]],
        "carriers": [{**row, **{k: _pct(row[k]) for k in ("on_time_pct", "damaged_pct", "lost_pct", "stuck_pct")},
                      "csat": "–" if row["csat_average"] is None else f"{row['csat_average']:.2f}"}
                     for row in selectors.carriers(period=period)],
        "exports": [(kind, f"/api/v1/exports/{kind}.csv?{query}") for kind in ("tickets", "remedies", "ledger")],
    })
    return render(request, "reports/reports.html", context)
