"""Reports and exports over the API, for supervisors only (everyone else 403,
anonymous 401). Parse the period → selector → serialize."""

from __future__ import annotations

from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.logins import client_ip
from reports import exports, selectors, services
from reports.errors import PermissionDenied
from reports.rules import may_see_reports, parse_group_by, parse_period


class PeriodOutput(serializers.Serializer):
    class Meta:
        ref_name = "ReportPeriod"

    # "from" is a keyword: declared below through the fields mapping
    to = serializers.DateField()
    previous_from = serializers.DateField(help_text="the previous period, as long, just before (top_categories)")
    previous_to = serializers.DateField()

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.DateField(help_text="first day, local time, included")
        return fields


class CsatOutput(serializers.Serializer):
    count = serializers.IntegerField(help_text="ratings given in the period")
    average = serializers.FloatField(allow_null=True)
    distribution = serializers.ListField(child=serializers.IntegerField(), min_length=11, max_length=11,
                                         help_text="how many ratings of each score 0..10")
    promoters_pct = serializers.FloatField(allow_null=True, help_text="scores 9–10, % of count")
    detractors_pct = serializers.FloatField(allow_null=True, help_text="scores 0–6, % of count")


class FirstResponseOutput(serializers.Serializer):
    count = serializers.IntegerField(help_text="tickets opened in the period with a first agent reply")
    p50 = serializers.FloatField(allow_null=True, help_text="seconds, nearest rank")
    p90 = serializers.FloatField(allow_null=True, help_text="seconds, nearest rank")
    average = serializers.FloatField(allow_null=True, help_text="seconds")


class ChatResponseOutput(serializers.Serializer):
    count = serializers.IntegerField(help_text="agent replies to a buyer's waiting chat message")
    average = serializers.FloatField(allow_null=True, help_text="seconds from the buyer's first waiting message")
    target_s = serializers.IntegerField(help_text="settings.CHAT_RESPONSE_TARGET_S")
    over_target_pct = serializers.FloatField(allow_null=True, help_text="replies slower than target_s, %")


class GradeOutput(serializers.Serializer):
    grade = serializers.CharField()
    count = serializers.IntegerField(help_text="tickets resolved in the period")
    within_sla_pct = serializers.FloatField(allow_null=True, help_text="of them, never breached (no SlaBreach), %")


class RemedyKindOutput(serializers.Serializer):
    kind = serializers.CharField()
    count = serializers.IntegerField(help_text="remedies executed in the period")
    amount_fen = serializers.IntegerField(help_text="what they cost the compensation budget")


class TopCategoryOutput(serializers.Serializer):
    category = serializers.CharField()
    region = serializers.CharField(help_text="the order's region; empty without an order")
    count = serializers.IntegerField(help_text="tickets opened in the period")
    previous_count = serializers.IntegerField(help_text="in the previous period")
    change_pct = serializers.FloatField(allow_null=True, help_text="against the previous period; null when new")


class FiguresOutput(serializers.Serializer):
    csat = CsatOutput()
    first_response_s = FirstResponseOutput()
    chat_response_s = ChatResponseOutput()
    resolution_by_grade = GradeOutput(many=True)
    remedies = RemedyKindOutput(many=True)


class GroupOutput(FiguresOutput):
    id = serializers.IntegerField(allow_null=True, help_text="the agent's user id or the queue's id; null: none")
    name = serializers.CharField()


class SummaryOutput(FiguresOutput):
    period = PeriodOutput()
    top_categories = TopCategoryOutput(many=True, help_text="the ten category × region pairs that grew most")
    group_by = serializers.ChoiceField(choices=["agent", "queue"], required=False)
    groups = GroupOutput(many=True, required=False, help_text="only with ?group_by=")


class CarrierOutput(serializers.Serializer):
    carrier = serializers.CharField()
    shipments = serializers.IntegerField(help_text="shipped in the period")
    on_time_pct = serializers.FloatField(allow_null=True, help_text="delivered on or before the ETA, %")
    damaged_pct = serializers.FloatField(allow_null=True)
    lost_pct = serializers.FloatField(allow_null=True)
    stuck_pct = serializers.FloatField(allow_null=True)
    csat_count = serializers.IntegerField(help_text="ratings of tickets about these shipments' orders")
    csat_average = serializers.FloatField(allow_null=True)


class CarriersOutput(serializers.Serializer):
    period = PeriodOutput()
    results = CarrierOutput(many=True)


PERIOD_PARAMETERS = [
    OpenApiParameter("from", OpenApiTypes.DATE, description="first day (YYYY-MM-DD, local), default 6 days before `to`"),
    OpenApiParameter("to", OpenApiTypes.DATE, description="last day, included; default today"),
]
BAD_PERIOD = OpenApiResponse(description="invalid_date, period_reversed, period_too_long (REPORT_MAX_DAYS)")


def _supervisor(request) -> None:
    if not may_see_reports(request.user):
        raise PermissionDenied("Reports are for supervisors.")


class ReportSummaryApi(APIView):
    @extend_schema(
        operation_id="reports_summary",
        parameters=[*PERIOD_PARAMETERS, OpenApiParameter(
            "group_by", str, enum=["agent", "queue"],
            description="also the figures per agent (assignee; chat replies by author; remedies by requester) "
                        "or per queue, in `groups`")],
        responses={200: SummaryOutput, 400: BAD_PERIOD, 403: OpenApiResponse(description="not a supervisor")},
    )
    def get(self, request):
        _supervisor(request)
        period = parse_period(request.query_params.get("from"), request.query_params.get("to"))
        group_by = parse_group_by(request.query_params.get("group_by"))
        return Response(selectors.summary(period=period, group_by=group_by))


class ReportCarriersApi(APIView):
    @extend_schema(
        operation_id="reports_carriers", parameters=PERIOD_PARAMETERS,
        responses={200: CarriersOutput, 400: BAD_PERIOD, 403: OpenApiResponse(description="not a supervisor")},
    )
    def get(self, request):
        _supervisor(request)
        period = parse_period(request.query_params.get("from"), request.query_params.get("to"))
        return Response({"period": period.as_dict(), "results": selectors.carriers(period=period)})


class _ExportApi(APIView):
    """A streaming CSV; errors are JSON whatever the client accepts."""

    kind = ""

    def perform_content_negotiation(self, request, force=False):
        return JSONRenderer(), JSONRenderer.media_type

    def get(self, request):
        _supervisor(request)
        period = parse_period(request.query_params.get("from"), request.query_params.get("to"))
        return export_response(request, kind=self.kind, period=period)


def export_response(request, *, kind: str, period) -> StreamingHttpResponse:
    """Audit first, then stream (the pages' export links use it too)."""
    record = services.start_export(actor=request.user, kind=kind, client_ip=client_ip(request),
                                   filters={"from": period.first.isoformat(), "to": period.last.isoformat()})
    lines = exports.csv_lines(exports.EXPORTS[kind], period,
                              on_done=lambda rows: services.finish_export(record_id=record.pk, row_count=rows))
    django_request = getattr(request, "_request", request)  # under DRF's Request
    content = exports.as_async(lines) if isinstance(django_request, ASGIRequest) else lines
    response = StreamingHttpResponse(content, content_type="text/csv; charset=utf-8")
    name = f"{kind}-{period.first.isoformat()}-{period.last.isoformat()}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "no-store"
    return response


def _export_schema(kind: str):
    return extend_schema(
        operation_id=f"exports_{kind}_csv", parameters=PERIOD_PARAMETERS,
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description=(
            f"{kind} of the period as CSV, UTF-8 with a byte-order mark, streamed; every export is audited")),
                   400: BAD_PERIOD, 403: OpenApiResponse(description="not a supervisor")},
    )


class TicketsExportApi(_ExportApi):
    kind = "tickets"

    @_export_schema("tickets")
    def get(self, request):
        return super().get(request)


class RemediesExportApi(_ExportApi):
    kind = "remedies"

    @_export_schema("remedies")
    def get(self, request):
        return super().get(request)


class LedgerExportApi(_ExportApi):
    kind = "ledger"

    @_export_schema("ledger")
    def get(self, request):
        return super().get(request)
