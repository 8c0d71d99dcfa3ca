"""Risk API: the order system's check, and staff's review list and actions.
Validate → service → serialize."""

from __future__ import annotations

from django.utils import translation
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from accounts.models import User
from core.api import Input, IntegerField, filter_choice
from core.parsing import parse_optional_id
from risk import rules, selectors, services
from risk.models import RiskHit


class RiskCheckOutput(serializers.Serializer):
    decision = serializers.ChoiceField(choices=["allow", "deny"])
    reasons = serializers.ListField(
        child=serializers.CharField(),
        help_text="account_frozen, account_flagged, account_blacklisted, ip_blacklisted, device_blacklisted",
    )
    message = serializers.CharField(
        help_text="what the user is shown for a denied booking (\"系统繁忙，请稍后再试\" / \"System busy, please "
                  "try later\"), in the language of `lang` or else Accept-Language; empty when allowed",
    )


class RiskCheckApi(GenericAPIView):
    """May this booking go ahead? For the order system's own token and staff."""

    serializer_class = RiskCheckOutput

    class InputSerializer(Input):
        class Meta:
            ref_name = "RiskCheckInput"

        account = serializers.CharField(required=False, allow_blank=True, max_length=150)
        ip = serializers.CharField(required=False, allow_blank=True, max_length=64)
        device = serializers.CharField(required=False, allow_blank=True, max_length=128)
        lang = serializers.CharField(required=False, allow_blank=True, max_length=16)

    @extend_schema(
        operation_id="risk_check",
        parameters=[
            OpenApiParameter("account", str, description="the account's username"),
            OpenApiParameter("ip", str, description="the client's IPv4 or IPv6 address"),
            OpenApiParameter("device", str, description="the client's device id"),
            OpenApiParameter("lang", str, description="the language of `message`: `zh` (default) or `en`; "
                                                      "without it, the request's Accept-Language"),
        ],
        responses={200: RiskCheckOutput, 400: OpenApiResponse(description="no or malformed account, ip, device"),
                   403: OpenApiResponse(description="neither the order system's token nor staff")},
    )
    def get(self, request):
        data = self.InputSerializer(data=request.query_params)
        data.is_valid(raise_exception=True)
        params = dict(data.validated_data)
        params["lang"] = params.get("lang") or translation.get_language_from_request(request)
        result = services.risk_check(actor=request.user, **params)
        return Response(RiskCheckOutput({"decision": result.decision, "reasons": result.reasons,
                                         "message": result.message}).data)


class RiskHitOutput(serializers.ModelSerializer):
    account_id = IntegerField(source="user_id", read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)
    account_status = serializers.CharField(source="user.account_status", read_only=True)
    rule = serializers.CharField(read_only=True)
    status = serializers.CharField(read_only=True, help_text="open, dismissed or actioned")
    evidence = serializers.DictField(read_only=True, help_text="the orders, their hours, the dormant span")
    reviewed_by_id = IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = RiskHit
        fields = ["id", "account_id", "username", "account_status", "rule", "status", "evidence", "first_order_at",
                  "last_order_at", "detected_at", "reviewed_by_id", "reviewed_at", "review_note"]


class RiskHitListApi(GenericAPIView):
    serializer_class = RiskHitOutput

    @extend_schema(
        operation_id="risk_hits_list",
        parameters=[OpenApiParameter("status", str, enum=RiskHit.Status.values),
                    OpenApiParameter("account", int, description="account (user) id")],
        responses=RiskHitOutput(many=True),
    )
    def get(self, request):
        hits = selectors.hits_visible_to(user=request.user)
        hits = filter_choice(hits, request.query_params, "status", RiskHit.Status.values)
        account_id = parse_optional_id(request.query_params.get("account"), field="account")
        if account_id is not None:
            hits = hits.filter(user_id=account_id)
        page = self.paginate_queryset(hits)
        return self.get_paginated_response(RiskHitOutput(page, many=True).data)


class ReasonInput(Input):
    class Meta:
        ref_name = "RiskReasonInput"

    reason = serializers.CharField(max_length=255)


class RiskHitDismissApi(GenericAPIView):
    serializer_class = RiskHitOutput

    @extend_schema(operation_id="risk_hits_dismiss", request=ReasonInput, responses=RiskHitOutput)
    def post(self, request, hit_id: int):
        data = ReasonInput(data=request.data)
        data.is_valid(raise_exception=True)
        hit = services.dismiss_hit(actor=request.user, hit_id=hit_id, **data.validated_data)
        return Response(RiskHitOutput(hit).data)


class RiskAccountOutput(serializers.ModelSerializer):
    account_status = serializers.ChoiceField(choices=User.AccountStatus.choices, read_only=True)

    class Meta:
        model = User
        fields = ["id", "username", "account_status"]
        ref_name = "RiskAccount"


class RiskAccountStatusApi(GenericAPIView):
    """Flag or freeze a buyer's account (supervisors)."""

    serializer_class = RiskAccountOutput
    verb = "flag"

    @extend_schema(request=ReasonInput, responses=RiskAccountOutput)
    def post(self, request, account_id: int):
        data = ReasonInput(data=request.data)
        data.is_valid(raise_exception=True)
        act = services.flag_account if self.verb == "flag" else services.freeze_account
        account = act(actor=request.user, user_id=account_id, **data.validated_data)
        return Response(RiskAccountOutput(account).data)


class RiskUnfreezeApi(GenericAPIView):
    """An agent records the check of the caller's registration details; when
    it passes the account is unfrozen, when not it is a 422
    ``verification_failed`` (the failed check stays on record)."""

    serializer_class = RiskAccountOutput

    class InputSerializer(Input):
        class Meta:
            ref_name = "RiskUnfreezeInput"

        phone = serializers.CharField(max_length=32, help_text="the phone number the caller states")
        email = serializers.CharField(required=False, allow_blank=True, max_length=254, default="")
        id_last4_confirmed = serializers.BooleanField(required=False, default=False)
        note = serializers.CharField(required=False, allow_blank=True, max_length=255, default="")

    @extend_schema(operation_id="risk_accounts_unfreeze", request=InputSerializer,
                   responses={200: RiskAccountOutput, 422: OpenApiResponse(description="verification_failed")})
    def post(self, request, account_id: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        check = services.verify_owner(actor=request.user, user_id=account_id, **data.validated_data)
        account = services.unfreeze_account(actor=request.user, user_id=account_id, verification_id=check.pk,
                                            note=data.validated_data["note"])
        return Response(RiskAccountOutput(account).data)


class BulkOrderLine(serializers.Serializer):
    order_id = IntegerField(source="pk")
    order_no = serializers.CharField()
    status = serializers.CharField()
    amount_fen = IntegerField()


class BulkSkipLine(serializers.Serializer):
    order_id = IntegerField()
    code = serializers.CharField()


class BulkOrdersOutput(serializers.Serializer):
    orders = BulkOrderLine(many=True)
    skipped = BulkSkipLine(many=True)
    undo_until = serializers.DateTimeField(allow_null=True)


def _bulk_payload(result) -> dict:
    return {"orders": result.done, "undo_until": result.undo_until,
            "skipped": [{"order_id": order_id, "code": code} for order_id, code in result.skipped]}


class RiskCancelOrdersApi(GenericAPIView):
    """Cancel the account's pending orders (all, or the listed ones); each can
    be undone until ``undo_until``."""

    serializer_class = BulkOrdersOutput

    class InputSerializer(Input):
        class Meta:
            ref_name = "RiskCancelOrdersInput"

        reason = serializers.CharField(max_length=255)
        order_ids = serializers.ListField(child=IntegerField(min_value=1), required=False,
                                          min_length=1, max_length=rules.MAX_BULK_ORDERS)

    @extend_schema(operation_id="risk_accounts_cancel_orders", request=InputSerializer, responses=BulkOrdersOutput)
    def post(self, request, account_id: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.cancel_pending_orders(actor=request.user, user_id=account_id, **data.validated_data)
        return Response(BulkOrdersOutput(_bulk_payload(result)).data)


class RiskRestoreOrdersApi(GenericAPIView):
    """Undo the cancel of the listed orders, within the undo window."""

    serializer_class = BulkOrdersOutput

    class InputSerializer(Input):
        class Meta:
            ref_name = "RiskRestoreOrdersInput"

        order_ids = serializers.ListField(child=IntegerField(min_value=1), min_length=1,
                                          max_length=rules.MAX_BULK_ORDERS)

    @extend_schema(operation_id="risk_accounts_restore_orders", request=InputSerializer, responses=BulkOrdersOutput)
    def post(self, request, account_id: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.restore_cancelled_orders(actor=request.user, user_id=account_id, **data.validated_data)
        return Response(BulkOrdersOutput(_bulk_payload(result)).data)


# --- the customer at a glance (issue #13 item 1) ---------------------------------


class ProfileTicket(serializers.Serializer):
    id = IntegerField(read_only=True)
    subject = serializers.CharField(read_only=True)
    category = serializers.CharField(read_only=True)
    status = serializers.CharField(read_only=True)
    order_id = IntegerField(read_only=True, allow_null=True)
    assignee_id = IntegerField(read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)
    url = serializers.SerializerMethodField(help_text="the ticket's console page")

    def get_url(self, ticket) -> str:
        from django.urls import reverse

        return reverse("console:ticket", args=[ticket.pk])


class ProfileOrder(serializers.Serializer):
    id = IntegerField(read_only=True)
    order_no = serializers.CharField(read_only=True)
    merchant_id = IntegerField(read_only=True)
    merchant_name = serializers.CharField(source="merchant.name", read_only=True)
    amount_fen = IntegerField(read_only=True)
    status = serializers.CharField(read_only=True)
    escrow_status = serializers.CharField(read_only=True)
    placed_at = serializers.DateTimeField(read_only=True)


class ProfileRemedy(serializers.Serializer):
    id = IntegerField(read_only=True)
    kind = serializers.CharField(read_only=True, help_text="refund, resend or coupon")
    amount_fen = IntegerField(read_only=True)
    with_coupon = serializers.BooleanField(read_only=True)
    coupon_fen = IntegerField(read_only=True)
    ticket_id = IntegerField(read_only=True)
    agent_id = IntegerField(source="requested_by_id", read_only=True)
    agent_name = serializers.CharField(source="requested_by.name", read_only=True)
    executed_at = serializers.DateTimeField(read_only=True)


class ProfileRating(serializers.Serializer):
    ticket_id = IntegerField(read_only=True)
    score = IntegerField(read_only=True)
    comment = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)


class ProfileRemedyFigures(serializers.Serializer):
    count = IntegerField(read_only=True)
    amount_fen = IntegerField(read_only=True, help_text="what the remedies cost: refunds and coupons, in fen")
    since = serializers.DateTimeField(read_only=True, help_text="the first of this month, 00:00 local time")


class ProfileCsat(serializers.Serializer):
    count = IntegerField(read_only=True)
    average = serializers.FloatField(read_only=True, allow_null=True)
    recent = ProfileRating(many=True, read_only=True)


class ProfileAccount(serializers.Serializer):
    account_status = serializers.CharField(read_only=True, help_text="active, flagged or frozen")
    flagged = serializers.BooleanField(read_only=True)
    frozen = serializers.BooleanField(read_only=True)
    open_risk_hits = IntegerField(read_only=True, help_text="the detector's hits not reviewed yet")
    blacklisted = serializers.BooleanField(read_only=True)
    blacklisted_until = serializers.DateTimeField(read_only=True, allow_null=True)


class BuyerProfileOutput(serializers.Serializer):
    buyer_id = IntegerField(read_only=True)
    username = serializers.CharField(read_only=True)
    name = serializers.CharField(read_only=True)
    phone = serializers.CharField(read_only=True)
    open_tickets = ProfileTicket(many=True, read_only=True)
    recent_tickets = ProfileTicket(many=True, read_only=True)
    recent_orders = ProfileOrder(many=True, read_only=True)
    remedies_this_month = ProfileRemedyFigures(read_only=True)
    recent_remedies = ProfileRemedy(many=True, read_only=True)
    csat = ProfileCsat(read_only=True)
    account = ProfileAccount(read_only=True)


def profile_payload(profile) -> dict:
    buyer = profile.buyer
    return {
        "buyer_id": buyer.pk, "username": buyer.username, "name": buyer.name, "phone": buyer.phone,
        "open_tickets": profile.open_tickets, "recent_tickets": profile.recent_tickets,
        "recent_orders": profile.recent_orders,
        "remedies_this_month": {"count": profile.remedies_this_month.count,
                                "amount_fen": profile.remedies_this_month.amount_fen, "since": profile.month_start},
        "recent_remedies": profile.recent_remedies,
        "csat": {"count": profile.csat.count, "average": profile.csat.average, "recent": profile.csat.recent},
        "account": profile.status,
    }


class BuyerProfileApi(GenericAPIView):
    """The buyer at a glance (staff only): open and recent tickets, recent
    orders, remedies received this month and the last few, CSAT given, and
    the account's status (flag, freeze, the detector's open hits, blacklist)."""

    serializer_class = BuyerProfileOutput

    @extend_schema(
        operation_id="buyer_profile",
        responses={200: BuyerProfileOutput, 403: OpenApiResponse(description="not staff"),
                   404: OpenApiResponse(description="no such buyer")},
    )
    def get(self, request, buyer_id: int):
        from risk.profile import buyer_profile

        profile = buyer_profile(user=request.user, buyer_id=buyer_id)
        return Response(BuyerProfileOutput(profile_payload(profile)).data)
