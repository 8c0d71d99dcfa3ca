"""Incidents, carrier events and bulk jobs over the API. Validate → service → serialize."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from accounts import roles
from core.api import IntegerField
from core.errors import PermissionDenied
from incidents import selectors, services
from incidents.errors import IncidentNotFound
from incidents.models import BulkJob, Incident, LogisticsEvent


class LogisticsEventInput(serializers.Serializer):
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

    class InputSerializer(serializers.Serializer):
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

    class InputSerializer(serializers.Serializer):
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

    class InputSerializer(serializers.Serializer):
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

    class InputSerializer(serializers.Serializer):
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
