"""Orders API: thin views over ``merchants.selectors``."""

from __future__ import annotations


from django.core.exceptions import ObjectDoesNotExist
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from accounts import roles
from accounts.logins import ip_and_device
from core.api import Input, IntegerField, filter_choice
from core.errors import PermissionDenied
from core.money import format_fen
from core.parsing import parse_optional_id
from merchants import services
from merchants.models import (
    CreditPolicy,
    CreditScore,
    FundHold,
    Order,
    OrderChange,
    Payout,
    ResendTask,
    Shipment,
    ShipmentEvent,
    VariantStock,
)
from accounts.roles import is_agent
from merchants.selectors import (
    intercept_of,
    variant_stock_for,
    balance_explanation,
    credit_standing_for,
    payouts_awaiting_review,
    get_merchant_for,
    get_order_for,
    order_tickets_for,
    orders_visible_to,
)


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
    qty = IntegerField()
    price_fen = IntegerField()


def _shipment_of(order: Order) -> Shipment | None:
    try:
        return order.shipment
    except ObjectDoesNotExist:
        return None


class OrderOutput(serializers.ModelSerializer):
    buyer_id = IntegerField(read_only=True)
    merchant_id = IntegerField(read_only=True)
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
    id = IntegerField()
    category = serializers.CharField()
    subject = serializers.CharField()
    status = serializers.CharField()
    created_at = serializers.DateTimeField()


class VariantStockOutput(serializers.Serializer):
    sku = serializers.CharField()
    variant = serializers.CharField()
    on_hand = IntegerField()


class InterceptSummaryOutput(serializers.Serializer):
    id = IntegerField()
    resend_task_id = IntegerField()
    deadline_at = serializers.DateTimeField(source="resend_task.deadline_at")
    resend_status = serializers.CharField(source="resend_task.status")
    reason = serializers.CharField()
    requested_at = serializers.DateTimeField()


class OrderDetailOutput(OrderOutput):
    items = OrderItemOutput(many=True, read_only=True)
    shipping_address = serializers.CharField(read_only=True)
    tickets = serializers.SerializerMethodField()
    variant_stock = serializers.SerializerMethodField(
        help_text="Staff only: the variants of the order's items the merchant keeps and what is on hand "
                  "(a colour or size change before shipment needs the new variant in stock).")
    intercept = serializers.SerializerMethodField(
        help_text="The carrier intercept request on the parcel, with its compelled resend, if any.")

    class Meta(OrderOutput.Meta):
        fields = OrderOutput.Meta.fields + ["items", "shipping_address", "tickets", "variant_stock", "intercept"]

    @extend_schema_field(VariantStockOutput(many=True))
    def get_variant_stock(self, order: Order):
        stock = self.context.get("variant_stock") or {}
        return [{"sku": sku, "variant": variant, "on_hand": on_hand}
                for sku, rows in stock.items() for variant, on_hand in rows]

    @extend_schema_field(InterceptSummaryOutput(allow_null=True))
    def get_intercept(self, order: Order):
        intercept = self.context.get("intercept")
        return InterceptSummaryOutput(intercept).data if intercept else None

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
    return parse_optional_id(request.query_params.get(name), field=name)


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
        orders = filter_choice(orders, request.query_params, "status", Order.Status.values)
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
        context = {"tickets": tickets, "intercept": intercept_of(order=order)}
        if is_agent(request.user):
            context["variant_stock"] = variant_stock_for(order=order)
        return Response(OrderDetailOutput(order, context=context).data)



# --- merchants: balance explanation, holds, payouts -------------------------------


class HoldOutput(serializers.ModelSerializer):
    order_id = IntegerField(read_only=True)
    order_no = serializers.CharField(source="order.order_no", read_only=True)

    class Meta:
        model = FundHold
        fields = ["id", "ticket_id", "order_id", "order_no", "amount_fen", "reason", "placed_at",
                  "release_condition", "status", "settled_at"]


class BalanceHoldOutput(HoldOutput):
    withdrawable_if_released_fen = IntegerField(read_only=True)

    class Meta(HoldOutput.Meta):
        fields = HoldOutput.Meta.fields + ["withdrawable_if_released_fen"]


class DisputedOrderOutput(serializers.Serializer):
    order_id = IntegerField(source="pk")
    order_no = serializers.CharField()
    amount_fen = IntegerField()


class BalanceOutput(serializers.Serializer):
    merchant_id = IntegerField()
    pending_fen = IntegerField()
    available_fen = IntegerField()
    deposit_fen = IntegerField()
    holds_total_fen = IntegerField()
    covered_by_deposit_fen = IntegerField()
    frozen_from_available_fen = IntegerField()
    uncovered_fen = IntegerField()
    withdrawable_fen = IntegerField()
    holds = BalanceHoldOutput(many=True)
    holds_truncated = serializers.BooleanField()
    disputed_in_escrow = DisputedOrderOutput(many=True)
    explanation = serializers.ListField(child=serializers.CharField())


def balance_payload(explained) -> dict:
    f = explained.figures
    holds = []
    for line in explained.holds:
        line.hold.withdrawable_if_released_fen = line.withdrawable_if_released_fen
        holds.append(line.hold)
    return {
        "merchant_id": explained.merchant.pk, "pending_fen": f.pending_fen, "available_fen": f.available_fen,
        "deposit_fen": f.deposit_fen, "holds_total_fen": f.holds_total_fen,
        "covered_by_deposit_fen": f.covered_by_deposit_fen, "frozen_from_available_fen": f.frozen_from_available_fen,
        "uncovered_fen": f.uncovered_fen, "withdrawable_fen": f.withdrawable_fen, "holds": holds,
        "holds_truncated": explained.holds_truncated, "disputed_in_escrow": explained.disputed_in_escrow,
        "explanation": explain_steps(f),
    }


def explain_steps(f) -> list[str]:
    """The arithmetic in words, step by step."""
    steps = [f"holds {format_fen(f.holds_total_fen)} − deposit {format_fen(f.deposit_fen)} = "
             f"{format_fen(f.spill_fen)} not covered by the deposit"]
    steps.append(f"{format_fen(f.frozen_from_available_fen)} frozen from your available {format_fen(f.available_fen)}")
    if f.uncovered_fen:
        steps.append(f"{format_fen(f.uncovered_fen)} of the holds exceeds your available balance")
    steps.append(f"you can withdraw {format_fen(f.withdrawable_fen)}")
    return steps


class MerchantBalanceApi(GenericAPIView):
    serializer_class = BalanceOutput

    @extend_schema(operation_id="merchants_balance", responses=BalanceOutput)
    def get(self, request, merchant_id: int):
        merchant = get_merchant_for(user=request.user, merchant_id=merchant_id)
        return Response(BalanceOutput(balance_payload(balance_explanation(merchant=merchant))).data)


class MerchantHoldsApi(GenericAPIView):
    serializer_class = HoldOutput

    @extend_schema(
        operation_id="merchants_holds", parameters=[OpenApiParameter("status", str, enum=FundHold.Status.values)],
        responses=HoldOutput(many=True),
    )
    def get(self, request, merchant_id: int):
        merchant = get_merchant_for(user=request.user, merchant_id=merchant_id)
        holds = FundHold.objects.filter(merchant=merchant).select_related("order").order_by("-placed_at", "-id")
        holds = filter_choice(holds, request.query_params, "status", FundHold.Status.values)
        page = self.paginate_queryset(holds)
        return self.get_paginated_response(HoldOutput(page, many=True).data)


class PayoutOutput(serializers.ModelSerializer):
    merchant_id = IntegerField(read_only=True)

    class Meta:
        model = Payout
        fields = ["id", "merchant_id", "amount_fen", "status", "created_at", "settled_at", "failure_reason",
                  "review_reason", "reviewed_by_id", "reviewed_at", "review_note"]

    reviewed_by_id = IntegerField(read_only=True, allow_null=True)


class MerchantPayoutsApi(GenericAPIView):
    serializer_class = PayoutOutput

    class InputSerializer(Input):
        class Meta:
            ref_name = "PayoutInput"

        amount_fen = IntegerField()

    @extend_schema(operation_id="merchants_payouts_list", responses=PayoutOutput(many=True))
    def get(self, request, merchant_id: int):
        merchant = get_merchant_for(user=request.user, merchant_id=merchant_id)
        page = self.paginate_queryset(Payout.objects.filter(merchant=merchant).order_by("-created_at", "-id"))
        return self.get_paginated_response(PayoutOutput(page, many=True).data)

    @extend_schema(
        operation_id="merchants_payouts_create", request=InputSerializer,
        parameters=[OpenApiParameter("Idempotency-Key", str, location=OpenApiParameter.HEADER, required=True,
                                     description="required: a fresh key per payout, the same on a retry")],
        responses={201: PayoutOutput, 200: PayoutOutput,
                   403: OpenApiResponse(description="`blacklisted`: the staff account, the client's address or "
                                                    "device is on the blacklist"),
                   422: OpenApiResponse(description="`exceeds_withdrawable`")},
        description="Below the credit policy's `payout_review_below` score the payout is created with status "
                    "`awaiting_review` (the amount leaves available at once) until a supervisor approves or "
                    "rejects it.",
    )
    def post(self, request, merchant_id: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key = request.headers.get("Idempotency-Key")
        ip, device = ip_and_device(request)
        payout, created = services.request_payout(
            actor=request.user, merchant_id=merchant_id, amount_fen=data.validated_data["amount_fen"],
            idempotency_key=key, ip=ip, device=device,
        )
        return Response(PayoutOutput(payout).data, status=201 if created else 200)


class OrderConfirmApi(GenericAPIView):
    serializer_class = OrderOutput

    @extend_schema(operation_id="orders_confirm", request=None, responses=OrderOutput)
    def post(self, request, order_id: int):
        order = services.confirm_receipt(actor=request.user, order_id=order_id)
        return Response(OrderOutput(order).data)


# --- resend tasks, order changes, credit ---------------------------------------------


class ResendTaskOutput(serializers.ModelSerializer):
    merchant_id = IntegerField(read_only=True)
    order_id = IntegerField(read_only=True)
    order_no = serializers.CharField(source="order.order_no", read_only=True)
    kind = serializers.SerializerMethodField()

    class Meta:
        model = ResendTask
        fields = ["id", "kind", "merchant_id", "order_id", "order_no", "ticket_id", "reason", "status",
                  "deadline_at", "carrier", "tracking_no", "created_at", "fulfilled_at", "missed_at"]

    def get_kind(self, task) -> str:
        return "compelled_resend"


class MerchantTasksApi(GenericAPIView):
    serializer_class = ResendTaskOutput

    @extend_schema(
        operation_id="merchants_tasks", parameters=[OpenApiParameter("status", str, enum=ResendTask.Status.values)],
        responses=ResendTaskOutput(many=True),
    )
    def get(self, request, merchant_id: int):
        merchant = get_merchant_for(user=request.user, merchant_id=merchant_id)
        tasks = ResendTask.objects.filter(merchant=merchant).select_related("order").order_by("deadline_at", "id")
        tasks = filter_choice(tasks, request.query_params, "status", ResendTask.Status.values)
        page = self.paginate_queryset(tasks)
        return self.get_paginated_response(ResendTaskOutput(page, many=True).data)


class ResendFulfilApi(GenericAPIView):
    serializer_class = ResendTaskOutput

    class InputSerializer(Input):
        class Meta:
            ref_name = "ResendFulfilInput"

        carrier = serializers.CharField(max_length=32)
        tracking_no = serializers.CharField(max_length=64)

    @extend_schema(operation_id="merchants_tasks_fulfil", request=InputSerializer, responses=ResendTaskOutput)
    def post(self, request, merchant_id: int, task_id: int):
        get_merchant_for(user=request.user, merchant_id=merchant_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        task = services.fulfil_resend_task(actor=request.user, task_id=task_id, **data.validated_data)
        return Response(ResendTaskOutput(task).data)


class OrderChangeOutput(serializers.ModelSerializer):
    order_id = IntegerField(read_only=True)
    actor_id = IntegerField(read_only=True)

    class Meta:
        model = OrderChange
        fields = ["id", "order_id", "actor_id", "changes", "ticket_id", "created_at"]


class OrderChangeApi(GenericAPIView):
    serializer_class = OrderChangeOutput

    class InputSerializer(Input):
        class Meta:
            ref_name = "OrderChangeInput"

        address = serializers.CharField(required=False, max_length=255)
        variant = serializers.JSONField(required=False, help_text="{sku: new variant}, or a string for a one-item order")
        ticket_id = IntegerField(required=False, min_value=1, max_value=2**62)

    @extend_schema(operation_id="orders_change", request=InputSerializer, responses={201: OrderChangeOutput})
    def post(self, request, order_id: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        order = get_order_for(user=request.user, order_id=order_id)
        variants = data.validated_data.get("variant")
        if isinstance(variants, str):
            if len(order.items) != 1:
                raise serializers.ValidationError({"variant": "Name the item: {sku: variant}."})
            variants = {order.items[0]["sku"]: variants}
        elif variants is not None and not (isinstance(variants, dict) and all(isinstance(k, str) for k in variants)):
            raise serializers.ValidationError({"variant": "Expected {sku: variant}."})
        change = services.change_order(
            actor=request.user, order_id=order.pk, address=data.validated_data.get("address"), variants=variants,
            ticket_id=data.validated_data.get("ticket_id"),
        )
        return Response(OrderChangeOutput(change).data, status=201)


class StockRowOutput(serializers.ModelSerializer):
    class Meta:
        model = VariantStock
        fields = ["id", "sku", "variant", "on_hand", "updated_at"]


class MerchantStockApi(GenericAPIView):
    """What the merchant has on hand of each variant: a colour or size change
    before shipment needs the new variant in stock."""

    serializer_class = StockRowOutput

    class InputSerializer(Input):
        class Meta:
            ref_name = "StockInput"

        sku = serializers.CharField(max_length=64)
        variant = serializers.CharField(max_length=64)
        on_hand = IntegerField(min_value=0, max_value=services.MAX_ON_HAND)

    @extend_schema(operation_id="merchants_stock_list", parameters=[OpenApiParameter("sku", str)],
                   responses=StockRowOutput(many=True))
    def get(self, request, merchant_id: int):
        merchant = get_merchant_for(user=request.user, merchant_id=merchant_id)
        rows = VariantStock.objects.filter(merchant=merchant).order_by("sku", "variant", "pk")
        sku = request.query_params.get("sku")
        if sku:
            rows = rows.filter(sku=sku[:64])
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(StockRowOutput(page, many=True).data)

    @extend_schema(operation_id="merchants_stock_set", request=InputSerializer, responses=StockRowOutput)
    def post(self, request, merchant_id: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        row = services.set_stock(actor=request.user, merchant_id=merchant_id, **data.validated_data)
        return Response(StockRowOutput(row).data)


class CreditOutput(serializers.ModelSerializer):
    class Meta:
        model = CreditScore
        fields = ["score", "dispute_rate", "on_time_shipping", "resend_compliance", "computed_at"]


class MerchantCreditApi(GenericAPIView):
    serializer_class = CreditOutput

    @extend_schema(operation_id="merchants_credit", responses=CreditOutput(many=True))
    def get(self, request, merchant_id: int):
        merchant = get_merchant_for(user=request.user, merchant_id=merchant_id)
        page = self.paginate_queryset(CreditScore.objects.filter(merchant=merchant).order_by("-computed_at", "-id"))
        return self.get_paginated_response(CreditOutput(page, many=True).data)


class CreditStandingOutput(serializers.Serializer):
    class ConsequenceOutput(serializers.Serializer):
        class Meta:
            ref_name = "CreditConsequence"

        rule = serializers.ChoiceField(choices=["dispute_hold", "payout_review", "short_resend"])
        threshold = serializers.IntegerField(help_text="the rule acts on a score below this (0: off)")
        active = serializers.BooleanField(help_text="this merchant's score triggers it now")

    merchant_id = serializers.IntegerField(source="merchant.pk")
    score = serializers.IntegerField()
    consequences = ConsequenceOutput(many=True)
    resend_hours = serializers.IntegerField(help_text="the deadline of a new compelled resend")


class MerchantCreditStandingApi(GenericAPIView):
    """The merchant's credit score and what it does now: disputes held at
    once, payouts reviewed, a shorter resend deadline (merchant staff see
    their own, staff every merchant)."""

    serializer_class = CreditStandingOutput
    pagination_class = None

    @extend_schema(operation_id="merchants_credit_standing", responses=CreditStandingOutput)
    def get(self, request, merchant_id: int):
        merchant = get_merchant_for(user=request.user, merchant_id=merchant_id)
        return Response(CreditStandingOutput(credit_standing_for(merchant=merchant)).data)


class CreditPolicyOutput(serializers.ModelSerializer):
    class Meta:
        model = CreditPolicy
        fields = list(services.CREDIT_POLICY_FIELDS) + ["updated_at"]


class CreditPolicyApi(GenericAPIView):
    """What a low credit score does. Staff read it; supervisors change it,
    every change audited; merchant staff read it too (the portal explains it)."""

    serializer_class = CreditPolicyOutput

    class InputSerializer(Input):
        class Meta:
            ref_name = "CreditPolicyInput"

        dispute_hold_below = IntegerField(required=False, min_value=0, max_value=101)
        payout_review_below = IntegerField(required=False, min_value=0, max_value=101)
        short_resend_below = IntegerField(required=False, min_value=0, max_value=101)
        resend_hours = IntegerField(required=False, min_value=1, max_value=720)
        short_resend_hours = IntegerField(required=False, min_value=1, max_value=720)
        reason = serializers.CharField(required=False, allow_blank=True, max_length=255)

    @extend_schema(operation_id="merchants_credit_policy", responses=CreditPolicyOutput)
    def get(self, request):
        if not (roles.is_agent(request.user) or roles.is_merchant_staff(request.user)):
            raise PermissionDenied("Staff and merchants only.")
        return Response(CreditPolicyOutput(services.get_credit_policy()).data)

    @extend_schema(operation_id="merchants_credit_policy_update", request=InputSerializer,
                   responses={200: CreditPolicyOutput, 403: OpenApiResponse(description="not a supervisor")})
    def patch(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        changes = dict(data.validated_data)
        reason = changes.pop("reason", "")
        return Response(CreditPolicyOutput(services.update_credit_policy(actor=request.user, changes=changes,
                                                                         reason=reason)).data)


class PayoutReviewListApi(GenericAPIView):
    """Supervisors: payouts awaiting review (low-credit merchants), oldest first."""

    serializer_class = PayoutOutput

    @extend_schema(operation_id="payouts_awaiting_review", responses=PayoutOutput(many=True))
    def get(self, request):
        page = self.paginate_queryset(payouts_awaiting_review(user=request.user))
        return self.get_paginated_response(PayoutOutput(page, many=True).data)


class PayoutReviewApi(GenericAPIView):
    """A supervisor approves a payout awaiting review (it goes to the bank)
    or rejects it with a note (its amount returns to available)."""

    serializer_class = PayoutOutput
    approve = True

    class InputSerializer(Input):
        class Meta:
            ref_name = "PayoutReviewInput"

        note = serializers.CharField(required=False, allow_blank=True, max_length=255, default="")

    @extend_schema(request=InputSerializer,
                   responses={200: PayoutOutput, 403: OpenApiResponse(description="not a supervisor"),
                              409: OpenApiResponse(description="`payout_not_in_review`")})
    def post(self, request, payout_id: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        payout = services.review_payout(actor=request.user, payout_id=payout_id, approve=self.approve,
                                        note=data.validated_data["note"])
        return Response(PayoutOutput(payout).data)


class PayoutApproveApi(PayoutReviewApi):
    approve = True

    @extend_schema(operation_id="payouts_approve")
    def post(self, request, payout_id: int):
        return super().post(request, payout_id)


class PayoutRejectApi(PayoutReviewApi):
    approve = False

    @extend_schema(operation_id="payouts_reject")
    def post(self, request, payout_id: int):
        return super().post(request, payout_id)
