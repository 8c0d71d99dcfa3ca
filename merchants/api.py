"""Orders API: thin views over ``merchants.selectors``."""

from __future__ import annotations

from django.core.exceptions import ObjectDoesNotExist
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from merchants.models import Order, Shipment, ShipmentEvent
from merchants.selectors import get_order_for, order_tickets_for, orders_visible_to


class ShipmentEventOutput(serializers.ModelSerializer):
    class Meta:
        model = ShipmentEvent
        fields = ["occurred_at", "location", "description"]


class ShipmentOutput(serializers.ModelSerializer):
    class Meta:
        model = Shipment
        fields = ["carrier", "tracking_no", "status", "shipped_at", "eta"]


class ShipmentDetailOutput(ShipmentOutput):
    events = ShipmentEventOutput(many=True, read_only=True)

    class Meta(ShipmentOutput.Meta):
        fields = ShipmentOutput.Meta.fields + ["events"]


class OrderItemOutput(serializers.Serializer):
    sku = serializers.CharField()
    name = serializers.CharField()
    variant = serializers.CharField(required=False, allow_blank=True)
    qty = serializers.IntegerField()
    price_fen = serializers.IntegerField()


def _shipment_of(order: Order) -> Shipment | None:
    try:
        return order.shipment
    except ObjectDoesNotExist:
        return None


class OrderOutput(serializers.ModelSerializer):
    buyer_id = serializers.IntegerField(read_only=True)
    merchant_id = serializers.IntegerField(read_only=True)
    merchant_name = serializers.CharField(source="merchant.name", read_only=True)
    shipment = serializers.SerializerMethodField()

    class Meta:
        model = Order
        fields = [
            "id", "order_no", "buyer_id", "merchant_id", "merchant_name", "amount_fen",
            "status", "escrow_status", "placed_at", "shipment",
        ]

    @extend_schema_field(ShipmentOutput(allow_null=True))
    def get_shipment(self, order: Order):
        shipment = _shipment_of(order)
        return ShipmentOutput(shipment).data if shipment else None


class OrderTicketOutput(serializers.Serializer):
    id = serializers.IntegerField()
    category = serializers.CharField()
    subject = serializers.CharField()
    status = serializers.CharField()
    created_at = serializers.DateTimeField()


class OrderDetailOutput(OrderOutput):
    items = OrderItemOutput(many=True, read_only=True)
    shipping_address = serializers.CharField(read_only=True)
    tickets = serializers.SerializerMethodField()

    class Meta(OrderOutput.Meta):
        fields = OrderOutput.Meta.fields + ["items", "shipping_address", "tickets"]

    @extend_schema_field(ShipmentDetailOutput(allow_null=True))
    def get_shipment(self, order: Order):
        shipment = _shipment_of(order)
        return ShipmentDetailOutput(shipment).data if shipment else None

    @extend_schema_field(OrderTicketOutput(many=True))
    def get_tickets(self, order: Order):
        # ``tickets`` is the reverse accessor of the ticket's order foreign key;
        # the view passes only the tickets the viewer may see.
        return OrderTicketOutput(self.context.get("tickets", []), many=True).data


def _int_param(request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        raise serializers.ValidationError({name: "Expected an integer id."}) from None


class OrderListApi(GenericAPIView):
    serializer_class = OrderOutput

    @extend_schema(
        operation_id="orders_list",
        parameters=[
            OpenApiParameter("buyer", int, description="buyer id"),
            OpenApiParameter("merchant", int, description="merchant id"),
            OpenApiParameter("status", str, enum=Order.Status.values),
        ],
        responses=OrderOutput(many=True),
    )
    def get(self, request):
        orders = orders_visible_to(user=request.user)
        if (buyer_id := _int_param(request, "buyer")) is not None:
            orders = orders.filter(buyer_id=buyer_id)
        if (merchant_id := _int_param(request, "merchant")) is not None:
            orders = orders.filter(merchant_id=merchant_id)
        if status := request.query_params.get("status"):
            if status not in Order.Status.values:
                raise serializers.ValidationError({"status": f"Unknown status {status!r}."})
            orders = orders.filter(status=status)
        page = self.paginate_queryset(orders.order_by("-placed_at", "-pk"))
        return self.get_paginated_response(OrderOutput(page, many=True).data)


class OrderDetailApi(GenericAPIView):
    serializer_class = OrderDetailOutput

    @extend_schema(operation_id="orders_retrieve", responses=OrderDetailOutput)
    def get(self, request, order_id: int):
        order = get_order_for(user=request.user, order_id=order_id)
        shipment = _shipment_of(order)
        if shipment is not None:
            # one query for the tracking history
            shipment._prefetched_objects_cache = {"events": shipment.events.order_by("-occurred_at", "-pk")}
        tickets = order_tickets_for(user=request.user, order=order)
        return Response(OrderDetailOutput(order, context={"tickets": tickets}).data)

