"""Remedies API: validate → service → serialize."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from accounts import roles
from compensation import selectors, services
from compensation.models import BlacklistEntry, Policy, Remedy
from core.api import Input, IntegerField, filter_choice
from core.errors import PermissionDenied


class RemedyResultOutput(serializers.Serializer):
    id = IntegerField()
    status = serializers.CharField()
    kind = serializers.CharField()
    amount_fen = IntegerField()
    with_coupon = serializers.BooleanField()
    coupon_fen = IntegerField()
    ticket_id = IntegerField()
    reasons = serializers.ListField(child=serializers.CharField(), required=False)


class TicketRemediesApi(GenericAPIView):
    serializer_class = RemedyResultOutput

    class InputSerializer(Input):
        class Meta:
            ref_name = "RemedyInput"

        kind = serializers.CharField(max_length=16)
        amount_fen = IntegerField(required=False, allow_null=True, min_value=-(2**62), max_value=2**62)
        reason = serializers.CharField(max_length=255)
        with_coupon = serializers.BooleanField(required=False, default=False)

    @extend_schema(
        operation_id="tickets_remedies_create", request=InputSerializer,
        parameters=[OpenApiParameter("Idempotency-Key", str, location=OpenApiParameter.HEADER, required=True,
                                     description="required: a fresh key per remedy, the same on a retry")],
        responses={201: RemedyResultOutput, 202: RemedyResultOutput},
    )
    def post(self, request, ticket_id: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.apply_remedy(
            actor=request.user, ticket_id=ticket_id, idempotency_key=request.headers.get("Idempotency-Key"),
            **data.validated_data,
        )
        return Response(result.body, status=result.status_code)


class RemedyOutput(serializers.ModelSerializer):
    ticket_id = IntegerField(read_only=True)
    order_id = IntegerField(read_only=True, allow_null=True)
    buyer_id = IntegerField(read_only=True)
    requested_by_id = IntegerField(read_only=True)
    decided_by_id = IntegerField(read_only=True, allow_null=True)
    reasons = serializers.ListField(source="approval_reasons", child=serializers.CharField(), read_only=True)

    class Meta:
        model = Remedy
        fields = ["id", "status", "kind", "amount_fen", "with_coupon", "coupon_fen", "reason", "ticket_id",
                  "order_id", "buyer_id", "requested_by_id", "decided_by_id", "decision_reason", "reasons",
                  "self_service", "created_at", "decided_at", "executed_at"]


class RemedyListApi(GenericAPIView):
    serializer_class = RemedyOutput

    @extend_schema(operation_id="remedies_list", parameters=[OpenApiParameter("status", str, enum=Remedy.Status.values)],
                   responses=RemedyOutput(many=True))
    def get(self, request):
        remedies = selectors.remedies_visible_to(user=request.user).order_by("created_at", "id")
        remedies = filter_choice(remedies, request.query_params, "status", Remedy.Status.values)
        page = self.paginate_queryset(remedies)
        return self.get_paginated_response(RemedyOutput(page, many=True).data)


class RemedyDecisionApi(GenericAPIView):
    serializer_class = RemedyOutput
    approve = True

    class InputSerializer(Input):
        class Meta:
            ref_name = "RemedyDecisionInput"

        reason = serializers.CharField(required=False, allow_blank=True, max_length=255)

    @extend_schema(request=InputSerializer, responses=RemedyOutput, parameters=[
        OpenApiParameter("Idempotency-Key", str, location=OpenApiParameter.HEADER, required=True,
                         description="required: a fresh key per decision, the same on a retry")])
    def post(self, request, remedy_id: int):
        data = self.InputSerializer(data=request.data or {})
        data.is_valid(raise_exception=True)
        decide = services.approve_remedy if self.approve else services.reject_remedy
        remedy = decide(actor=request.user, remedy_id=remedy_id, reason=data.validated_data.get("reason", ""),
                        idempotency_key=request.headers.get("Idempotency-Key"))
        return Response(RemedyOutput(remedy).data)


class QuotaOutput(serializers.Serializer):
    period = serializers.CharField()
    limit = IntegerField()
    used = IntegerField()
    remaining = IntegerField()


class QuotaApi(GenericAPIView):
    serializer_class = QuotaOutput

    @extend_schema(operation_id="agents_me_quota", responses=QuotaOutput)
    def get(self, request):
        if not roles.is_agent(request.user):
            raise PermissionDenied("Staff only.")
        return Response(QuotaOutput(selectors.quota_for(agent=request.user)).data)


class BudgetOutput(serializers.Serializer):
    date = serializers.DateField()
    budget_fen = IntegerField()
    spent_fen = IntegerField()
    breaker_open = serializers.BooleanField()


class BudgetApi(GenericAPIView):
    serializer_class = BudgetOutput

    @extend_schema(operation_id="compensation_budget", responses=BudgetOutput)
    def get(self, request):
        if not roles.is_agent(request.user):
            raise PermissionDenied("Staff only.")
        return Response(BudgetOutput(selectors.budget_today()).data)


class PolicyOutput(serializers.ModelSerializer):
    class Meta:
        model = Policy
        fields = list(services.POLICY_FIELDS) + ["coupon_days", "updated_at"]


class PolicyApi(GenericAPIView):
    serializer_class = PolicyOutput

    class InputSerializer(Input):
        class Meta:
            ref_name = "PolicyInput"

        value_cap_fen = IntegerField(required=False, min_value=0, max_value=10**12)
        coupon_fen = IntegerField(required=False, min_value=1, max_value=10**12)
        agent_monthly_quota = IntegerField(required=False, min_value=0, max_value=10**6)
        buyer_daily_cap = IntegerField(required=False, min_value=0, max_value=10**6)
        daily_budget_fen = IntegerField(required=False, min_value=0, max_value=10**12)
        blacklist_window_days = IntegerField(required=False, min_value=1, max_value=365,
                                             help_text="the automatic blacklist counts over the last N days")
        blacklist_entry_days = IntegerField(required=False, min_value=1, max_value=365,
                                            help_text="how long an automatic entry lasts")
        blacklist_max_remedies = IntegerField(required=False, min_value=0, max_value=10**6)
        blacklist_max_tickets = IntegerField(required=False, min_value=0, max_value=10**6)
        blacklist_max_accounts = IntegerField(required=False, min_value=0, max_value=10**6,
                                              help_text="accounts seen on one IP or device in the window")
        freeze_on_failed_verification = serializers.BooleanField(required=False)
        reason = serializers.CharField(required=False, allow_blank=True, max_length=255)

    @extend_schema(operation_id="compensation_policy", responses=PolicyOutput)
    def get(self, request):
        if not roles.is_agent(request.user):
            raise PermissionDenied("Staff only.")
        return Response(PolicyOutput(services.get_policy()).data)

    @extend_schema(operation_id="compensation_policy_update", request=InputSerializer, responses=PolicyOutput)
    def patch(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        changes = dict(data.validated_data)
        reason = changes.pop("reason", "")
        policy = services.update_policy(actor=request.user, changes=changes, reason=reason)
        return Response(PolicyOutput(policy).data)


class BreakerResetApi(GenericAPIView):
    serializer_class = BudgetOutput

    class InputSerializer(Input):
        class Meta:
            ref_name = "BreakerResetInput"

        reason = serializers.CharField(max_length=255)
        budget_fen = IntegerField(required=False, min_value=0, max_value=10**12)

    @extend_schema(operation_id="compensation_breaker_reset", request=InputSerializer, responses=BudgetOutput)
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(BudgetOutput(services.reset_breaker(actor=request.user, **data.validated_data)).data)


class BlacklistOutput(serializers.ModelSerializer):
    added_by_id = IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = BlacklistEntry
        fields = ["id", "kind", "value", "reason", "window_days", "expires_at", "source", "counts", "added_by_id",
                  "created_at"]


class BlacklistApi(GenericAPIView):
    serializer_class = BlacklistOutput

    class InputSerializer(Input):
        class Meta:
            ref_name = "BlacklistInput"

        kind = serializers.CharField(max_length=16)
        value = serializers.CharField(max_length=128)
        reason = serializers.CharField(max_length=255)
        window_days = IntegerField(required=False, default=7)

    @extend_schema(operation_id="compensation_blacklist_list",
                   parameters=[OpenApiParameter("active", bool)], responses=BlacklistOutput(many=True))
    def get(self, request):
        if not roles.is_agent(request.user):
            raise PermissionDenied("Staff only.")
        entries = selectors.blacklist(active_only=request.query_params.get("active") in ("1", "true"))
        page = self.paginate_queryset(entries)
        return self.get_paginated_response(BlacklistOutput(page, many=True).data)

    @extend_schema(operation_id="compensation_blacklist_add", request=InputSerializer, responses={201: BlacklistOutput})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        entry = services.add_to_blacklist(actor=request.user, **data.validated_data)
        return Response(BlacklistOutput(entry).data, status=201)
