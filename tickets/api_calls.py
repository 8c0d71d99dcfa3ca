"""The hotline's API (issue #13 item 5): find who is calling, log the call.
Kept beside ``tickets.api`` (validate → service → serialize, nothing else)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from core.api import Input, IntegerField
from core.errors import InvalidInput
from core.parsing import parse_id
from tickets import selectors
from tickets.api import _require_staff
from tickets.models import PhoneCall
from tickets.services.calls import clean_phone, log_call


class PhoneCallOutput(serializers.ModelSerializer):
    ticket_id = IntegerField(read_only=True)
    agent_id = IntegerField(read_only=True)
    message_id = IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = PhoneCall
        fields = ["id", "ticket_id", "agent_id", "direction", "caller_phone", "started_at", "duration_s", "notes",
                  "message_id", "created_at"]


class CallerTicketOutput(serializers.Serializer):
    id = IntegerField()
    subject = serializers.CharField()
    status = serializers.CharField()
    channel = serializers.CharField()
    assignee_id = IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()


class CallerOrderOutput(serializers.Serializer):
    id = IntegerField()
    order_no = serializers.CharField()
    merchant_id = IntegerField()
    amount_fen = IntegerField()
    status = serializers.CharField()


class CallerOutput(serializers.Serializer):
    buyer_id = IntegerField(source="buyer.pk")
    name = serializers.CharField(source="buyer.name")
    phone = serializers.CharField(source="buyer.phone")
    open_tickets = CallerTicketOutput(many=True)
    orders = CallerOrderOutput(many=True)


class CallerLookupApi(GenericAPIView):
    """Who is on the line: buyers by their phone number or by an order number."""

    serializer_class = CallerOutput
    pagination_class = None

    @extend_schema(operation_id="callers_lookup", parameters=[OpenApiParameter("phone", str),
                                                              OpenApiParameter("order_no", str)],
                   responses=CallerOutput(many=True))
    def get(self, request):
        _require_staff(request.user)
        phone = clean_phone(request.query_params.get("phone"))
        order_no = (request.query_params.get("order_no") or "").strip()[:32]
        if not phone and not order_no:
            raise InvalidInput("Give phone or order_no.", field="phone")
        return Response(CallerOutput(selectors.callers(phone=phone, order_no=order_no), many=True).data)


class PhoneCallApi(GenericAPIView):
    serializer_class = PhoneCallOutput

    class InputSerializer(Input):
        class Meta:
            ref_name = "PhoneCallInput"

        started_at = serializers.DateTimeField()
        duration_s = IntegerField(min_value=0, max_value=4 * 3600)
        notes = serializers.CharField(max_length=5000)
        direction = serializers.ChoiceField(choices=PhoneCall.Direction.values, required=False,
                                            default=PhoneCall.Direction.INBOUND)
        caller_phone = serializers.CharField(required=False, allow_blank=True, max_length=40, default="")
        ticket_id = IntegerField(required=False, allow_null=True, min_value=1, max_value=2**62)
        buyer_id = IntegerField(required=False, allow_null=True, min_value=1, max_value=2**62)
        order_id = IntegerField(required=False, allow_null=True, min_value=1, max_value=2**62)
        category = serializers.CharField(required=False, allow_blank=True, max_length=32, default="")
        subject = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")

    @extend_schema(operation_id="calls_log", request=InputSerializer, responses={201: PhoneCallOutput})
    def post(self, request):
        """Log a call on ``ticket_id``, or open a ``phone`` ticket for ``buyer_id``/``order_id`` with ``category``."""
        _require_staff(request.user)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        call = log_call(actor=request.user, **data.validated_data)
        return Response(PhoneCallOutput(call).data, status=status.HTTP_201_CREATED)

    @extend_schema(operation_id="calls_list", parameters=[OpenApiParameter("ticket_id", int, required=True)],
                   responses=PhoneCallOutput(many=True))
    def get(self, request):
        """The calls logged on one ticket the caller may see, oldest first."""
        _require_staff(request.user)
        ticket = selectors.get_ticket_for(
            user=request.user, ticket_id=parse_id(request.query_params.get("ticket_id"), field="ticket_id"))
        page = self.paginate_queryset(selectors.calls_on(ticket=ticket))
        return self.get_paginated_response(PhoneCallOutput(page, many=True).data)
