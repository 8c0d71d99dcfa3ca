"""Incidents, carrier events and bulk jobs over the API. Validate → service → serialize."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from accounts import roles
from core.api import Input, IntegerField
from core.errors import PermissionDenied
from incidents import selectors, services
from incidents.errors import IncidentNotFound, InvalidInput
from incidents.models import AffectedBuyer, BulkJob, CouponFailure, Incident, LogisticsEvent


class LogisticsEventInput(Input):
    class Meta:
        ref_name = "LogisticsEventInput"

    event_id = serializers.CharField(max_length=64, help_text="the carrier's own id; a repeat changes nothing")
    tracking_no = serializers.CharField(max_length=64)
    carrier = serializers.CharField(max_length=32)
    kind = serializers.ChoiceField(choices=LogisticsEvent.Kind.values)
    occurred_at = serializers.DateTimeField(help_text="ISO 8601 with its offset")
    location = serializers.CharField(max_length=64, required=False, allow_blank=True)


class LogisticsEventOutput(serializers.Serializer):
    event_id = serializers.CharField()
    kind = serializers.CharField()
    created = serializers.BooleanField(help_text="false when this event id was already stored")
    ticket_id = IntegerField(allow_null=True, help_text="the ticket the exception opened or updated")
    incident_id = IntegerField(allow_null=True, help_text="an incident it raised or joined")


class LogisticsEventApi(GenericAPIView):
    """Carrier events for shipments, from the carrier feed or the order system (their own token) or staff."""

    serializer_class = LogisticsEventOutput

    @extend_schema(
        operation_id="logistics_event_create",
        request=LogisticsEventInput,
        responses={201: LogisticsEventOutput, 200: LogisticsEventOutput,
                   400: OpenApiResponse(description="malformed event"),
                   403: OpenApiResponse(description="not the carrier feed, the order system or staff"),
                   404: OpenApiResponse(description="unknown_shipment")},
    )
    def post(self, request):
        # the service validates the raw body itself (one place for the rules); the
        # serializer above documents it
        result = services.ingest_logistics_event(actor=request.user, payload=request.data)
        body = {"event_id": result.event.event_id, "kind": result.event.kind, "created": result.created,
                "ticket_id": result.ticket_id, "incident_id": result.incident_id}
        return Response(LogisticsEventOutput(body).data, status=201 if result.created else 200)


class IncidentOutput(serializers.ModelSerializer):
    ticket_count = IntegerField(read_only=True)

    class Meta:
        model = Incident
        fields = ["id", "title", "grade", "owner_tier", "status", "rule", "region", "carrier", "category",
                  "description", "opened_by", "opened_at", "due_at", "breaches", "breached_at", "cause",
                  "actions_taken", "prevention", "closed_by", "closed_at", "ticket_count"]


def _supervisor(request) -> None:
    if not roles.is_supervisor(request.user):
        raise PermissionDenied("Only supervisors run incidents.")


def _incident(incident_id: int) -> Incident:
    from django.db.models import Count

    incident = Incident.objects.annotate(ticket_count=Count("links")).filter(pk=incident_id).first()
    if incident is None:
        raise IncidentNotFound()
    return incident


class IncidentListApi(GenericAPIView):
    serializer_class = IncidentOutput

    class InputSerializer(Input):
        class Meta:
            ref_name = "IncidentInput"

        title = serializers.CharField(max_length=160)
        grade = serializers.CharField(max_length=8)
        region = serializers.CharField(max_length=32, required=False, allow_blank=True)
        carrier = serializers.CharField(max_length=32, required=False, allow_blank=True)
        category = serializers.CharField(max_length=32, required=False, allow_blank=True)
        description = serializers.CharField(max_length=4000, required=False, allow_blank=True)

    @extend_schema(operation_id="incidents_list", responses=IncidentOutput(many=True))
    def get(self, request):
        from django.db.models import Count

        _supervisor(request)
        incidents = Incident.objects.annotate(ticket_count=Count("links")).order_by("-opened_at", "-id")
        status = request.query_params.get("status")
        if status in Incident.Status.values:
            incidents = incidents.filter(status=status)
        page = self.paginate_queryset(incidents)
        return self.get_paginated_response(IncidentOutput(page, many=True).data)

    @extend_schema(operation_id="incident_open", request=InputSerializer, responses={201: IncidentOutput})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        incident = services.open_incident(actor=request.user, **data.validated_data)
        return Response(IncidentOutput(_incident(incident.pk)).data, status=201)


class IncidentDetailApi(GenericAPIView):
    serializer_class = IncidentOutput

    @extend_schema(operation_id="incident_detail", responses=IncidentOutput)
    def get(self, request, incident_id: int):
        _supervisor(request)
        return Response(IncidentOutput(_incident(incident_id)).data)


class LinkOutput(serializers.Serializer):
    linked = IntegerField(help_text="tickets newly linked")
    ticket_count = IntegerField()


class IncidentTicketsApi(GenericAPIView):
    """Link tickets by a query (category, region, carrier, since, until) or by hand (ticket_ids)."""

    serializer_class = LinkOutput

    class InputSerializer(Input):
        class Meta:
            ref_name = "IncidentLinkInput"

        ticket_ids = serializers.ListField(child=IntegerField(), required=False, max_length=5000)
        category = serializers.CharField(required=False, allow_blank=True)
        region = serializers.CharField(required=False, allow_blank=True)
        carrier = serializers.CharField(required=False, allow_blank=True)
        since = serializers.CharField(required=False, allow_blank=True)
        until = serializers.CharField(required=False, allow_blank=True)

    @extend_schema(operation_id="incident_link_tickets", request=InputSerializer, responses=LinkOutput)
    def post(self, request, incident_id: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        ids = values.pop("ticket_ids", None)
        query = services.TicketQuery.parse(values) if any(values.values()) else None
        linked = services.link_tickets(actor=request.user, incident_id=incident_id, query=query, ticket_ids=ids)
        return Response({"linked": linked, "ticket_count": _incident(incident_id).ticket_count})


class IncidentCloseApi(GenericAPIView):
    serializer_class = IncidentOutput

    class InputSerializer(Input):
        class Meta:
            ref_name = "IncidentReviewInput"

        cause = serializers.CharField(allow_blank=True, max_length=4000)
        actions_taken = serializers.CharField(allow_blank=True, max_length=4000)
        prevention = serializers.CharField(allow_blank=True, max_length=4000)

    @extend_schema(operation_id="incident_close", request=InputSerializer, responses=IncidentOutput)
    def post(self, request, incident_id: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.close_incident(actor=request.user, incident_id=incident_id, **data.validated_data)
        return Response(IncidentOutput(_incident(incident_id)).data)


class BulkJobOutput(serializers.ModelSerializer):
    percent = IntegerField(read_only=True)

    class Meta:
        model = BulkJob
        fields = ["id", "kind", "status", "incident", "params", "total", "done_count", "skipped_count",
                  "failed_count", "percent", "created_by", "created_at", "started_at", "finished_at", "undo_until"]


class PreviewRowOutput(serializers.Serializer):
    target_id = IntegerField()
    label = serializers.CharField()
    change = serializers.CharField()
    ok = serializers.BooleanField()


class BulkJobPreviewOutput(serializers.Serializer):
    job = BulkJobOutput()
    counts = serializers.DictField(child=IntegerField())
    rows = PreviewRowOutput(many=True)


class BulkJobListApi(GenericAPIView):
    """Create a job: nothing changes until it is run; its preview shows what will."""

    serializer_class = BulkJobOutput

    class InputSerializer(Input):
        class Meta:
            ref_name = "BulkJobInput"

        kind = serializers.ChoiceField(choices=BulkJob.Kind.values)
        params = serializers.DictField()
        incident_id = IntegerField(required=False)
        ticket_ids = serializers.ListField(child=IntegerField(), required=False, max_length=20000)
        user_ids = serializers.ListField(child=IntegerField(), required=False, max_length=5000)

    @extend_schema(
        operation_id="bulk_job_create", request=InputSerializer, responses={201: BulkJobOutput},
        parameters=[OpenApiParameter("Idempotency-Key", str, location=OpenApiParameter.HEADER,
                                     description="required for a bulk remedy; the same key on a retry gets the same job")],
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = services.create_bulk_job(actor=request.user, idempotency_key=request.headers.get("Idempotency-Key"),
                                       **data.validated_data)
        return Response(BulkJobOutput(job).data, status=201)


class BulkJobDetailApi(GenericAPIView):
    serializer_class = BulkJobOutput

    @extend_schema(operation_id="bulk_job_detail", responses=BulkJobOutput)
    def get(self, request, job_id: int):
        return Response(BulkJobOutput(selectors.get_job_for(user=request.user, job_id=job_id)).data)


class BulkJobPreviewApi(GenericAPIView):
    """The dry run: what each item would do; nothing is written."""

    serializer_class = BulkJobPreviewOutput

    @extend_schema(operation_id="bulk_job_preview", responses=BulkJobPreviewOutput)
    def get(self, request, job_id: int):
        job, rows, counts = selectors.preview_job(user=request.user, job_id=job_id)
        return Response(BulkJobPreviewOutput({"job": job, "counts": counts, "rows": rows}).data)


class BulkJobRunApi(GenericAPIView):
    serializer_class = BulkJobOutput

    @extend_schema(operation_id="bulk_job_run", request=None, responses={202: BulkJobOutput})
    def post(self, request, job_id: int):
        job = services.start_job(actor=request.user, job_id=job_id)
        return Response(BulkJobOutput(selectors.get_job_for(user=request.user, job_id=job.pk)).data, status=202)


class BulkJobUndoApi(GenericAPIView):
    serializer_class = BulkJobOutput

    @extend_schema(operation_id="bulk_job_undo", request=None, responses=BulkJobOutput)
    def post(self, request, job_id: int):
        return Response(BulkJobOutput(services.undo_job(actor=request.user, job_id=job_id)).data)


# --- failed campaign coupons ---------------------------------------------------------


class CouponFailureOutput(serializers.ModelSerializer):
    created_by_id = IntegerField(read_only=True)
    job_id = IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = CouponFailure
        fields = ["id", "code", "title", "remedy", "amount_fen", "reason", "created_by_id", "created_at", "job_id"]


class CouponFailureSummaryOutput(serializers.Serializer):
    total = IntegerField()
    by_source = serializers.DictField(child=IntegerField())
    by_outcome = serializers.DictField(child=IntegerField())
    to_compensate = IntegerField()
    estimated_fen = IntegerField()
    executed_fen = IntegerField()
    budget_left_fen = IntegerField()
    breaker_open = serializers.BooleanField()


class CouponFailureDetailOutput(CouponFailureOutput):
    summary = serializers.SerializerMethodField()
    job = serializers.SerializerMethodField()

    class Meta(CouponFailureOutput.Meta):
        fields = [*CouponFailureOutput.Meta.fields, "summary", "job"]

    @extend_schema_field(CouponFailureSummaryOutput)
    def get_summary(self, failure: CouponFailure) -> dict:
        return CouponFailureSummaryOutput(selectors.coupon_failure_summary(failure)).data

    @extend_schema_field(BulkJobOutput(allow_null=True))
    def get_job(self, failure: CouponFailure) -> dict | None:
        return BulkJobOutput(failure.job).data if failure.job_id else None


class AffectedBuyerOutput(serializers.ModelSerializer):
    buyer_id = IntegerField(read_only=True)
    ticket_id = IntegerField(read_only=True, allow_null=True)
    order_id = IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = AffectedBuyer
        fields = ["id", "buyer_id", "source", "ticket_id", "order_id", "outcome", "remedy_id", "detail",
                  "registered_at", "compensated_at"]


class CouponFailureListApi(GenericAPIView):
    """Failed campaign coupons (supervisors): register one, list them."""

    serializer_class = CouponFailureOutput

    class InputSerializer(Input):
        class Meta:
            ref_name = "CouponFailureInput"

        code = serializers.CharField(max_length=32)
        title = serializers.CharField(max_length=120)
        remedy = serializers.ChoiceField(choices=CouponFailure.Remedy.values)
        amount_fen = IntegerField(required=False, allow_null=True)
        reason = serializers.CharField(max_length=255)

    @extend_schema(operation_id="coupon_failures_list", responses=CouponFailureOutput(many=True))
    def get(self, request):
        page = self.paginate_queryset(selectors.coupon_failures(user=request.user, limit=200))
        return self.get_paginated_response(CouponFailureOutput(page, many=True).data)

    @extend_schema(operation_id="coupon_failures_create", request=InputSerializer, responses={201: CouponFailureOutput})
    def post(self, request):
        _supervisor(request)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        failure = services.create_coupon_failure(actor=request.user, **data.validated_data)
        return Response(CouponFailureOutput(failure).data, status=201)


class CouponFailureDetailApi(GenericAPIView):
    """One failed coupon: the preview before compensating, the report after."""

    serializer_class = CouponFailureDetailOutput

    @extend_schema(operation_id="coupon_failures_detail", responses=CouponFailureDetailOutput)
    def get(self, request, failure_id: int):
        failure = selectors.get_coupon_failure_for(user=request.user, failure_id=failure_id)
        return Response(CouponFailureDetailOutput(failure).data)


class CouponFailureBuyersApi(GenericAPIView):
    """Register affected buyers from one source; list them with their outcome."""

    serializer_class = AffectedBuyerOutput

    class InputSerializer(Input):
        class Meta:
            ref_name = "CouponFailureBuyersInput"

        source = serializers.ChoiceField(choices=AffectedBuyer.Source.values)
        entries = serializers.ListField(child=serializers.CharField(max_length=150), required=False,
                                        max_length=20000)
        since = serializers.DateTimeField(required=False)
        until = serializers.DateTimeField(required=False)

    class RegisteredOutput(serializers.Serializer):
        added = IntegerField()
        already = IntegerField()
        unknown = serializers.ListField(child=serializers.CharField())

    @extend_schema(operation_id="coupon_failures_buyers",
                   parameters=[OpenApiParameter("outcome", str, enum=[o or "none" for o in AffectedBuyer.Outcome.values])],
                   responses=AffectedBuyerOutput(many=True))
    def get(self, request, failure_id: int):
        failure = selectors.get_coupon_failure_for(user=request.user, failure_id=failure_id)
        outcome = request.query_params.get("outcome")
        if outcome is not None:
            outcome = "" if outcome == "none" else outcome
            if outcome not in AffectedBuyer.Outcome.values:
                raise InvalidInput("Unknown outcome.", field="outcome")
        page = self.paginate_queryset(selectors.affected_buyers(failure, outcome=outcome))
        return self.get_paginated_response(AffectedBuyerOutput(page, many=True).data)

    @extend_schema(operation_id="coupon_failures_register", request=InputSerializer, responses=RegisteredOutput)
    def post(self, request, failure_id: int):
        _supervisor(request)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.register_buyers(actor=request.user, failure_id=failure_id, **data.validated_data)
        return Response(self.RegisteredOutput(result).data)


class CouponFailureCompensateApi(GenericAPIView):
    """Compensate every registered buyer not compensated yet, in one bulk job (``Idempotency-Key``)."""

    serializer_class = BulkJobOutput

    @extend_schema(
        operation_id="coupon_failures_compensate", request=None, responses={202: BulkJobOutput},
        parameters=[OpenApiParameter("Idempotency-Key", str, location=OpenApiParameter.HEADER, required=True)],
    )
    def post(self, request, failure_id: int):
        _supervisor(request)
        job = services.compensate(actor=request.user, failure_id=failure_id,
                                  idempotency_key=request.headers.get("Idempotency-Key"))
        return Response(BulkJobOutput(selectors.get_job_for(user=request.user, job_id=job.pk)).data, status=202)
